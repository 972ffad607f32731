"""What every generative model offers the runner, and the training plumbing they share."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from models.cards import ModelCard
from models.data_info import DataInfo


@dataclass
class Batch:
    images: Tensor  # (B, C, H, W) float in [0, 1], on the model's device
    labels: Tensor | None = None  # (B,) int64, or None for unlabelled data
    targets: Tensor | None = None  # paired: (B, C, H, W) targets of `images`; unpaired: domain B


def adam(parameters, lr: float, betas: tuple[float, float] = (0.9, 0.999)) -> torch.optim.Adam:
    """Adam with the fused kernel: one pass over all parameters instead of a loop of small ops,
    which is most of the step time for the small networks a sweep trains by the hundred
    (2.7x vs 2.1x over the plain loop in bench/train_throughput.py)."""
    return torch.optim.Adam(parameters, lr=lr, betas=betas, fused=True)


class GenerativeModel(nn.Module):
    """Base class: a model owns its networks, its optimizers and its mathematics.

    train_step returns detached 0-dim tensors rather than floats so that the step loop never
    waits for the device; the runner converts them at its logging interval.
    """

    # From the model's card (models/cards.py, which says what each means), set by
    # models.registry.register: a model's defaults are written once, on its card.
    card: ModelCard | None = None
    default_metric: str
    default_mode: str
    pairing: str | None
    generates: bool
    training_signal: str | None
    pack_fields: tuple[str, ...] | None

    def __init__(self, config, data: DataInfo, lr: float):
        super().__init__()
        if self.card is not None:  # the spec check ran it too; a model built directly is checked here
            self.card.check(config, data)
        self.config = config
        self.data = data
        self.lr = lr
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self._autocast_dtype: torch.dtype | None = None
        self._grad_scaler: torch.amp.GradScaler | None = None

    # -- what each model implements -------------------------------------------------------
    def on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch (1-based): for schedules such as a KL warm-up."""
    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        raise NotImplementedError

    def evaluate(self, batches) -> dict[str, float]:
        raise NotImplementedError

    def sample(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        """(count, C, H, W) images in [0, 1]."""
        raise NotImplementedError

    def log_images(self, batch: Batch) -> dict[str, Tensor]:
        """Named (C, H, W) image grids in [0, 1] that show how training goes."""
        return {}

    def networks_to_compile(self) -> dict[str, nn.Module]:
        """The networks train.compile compiles: by default every child module with trainable
        weights (frozen helpers such as a VGG for a perceptual loss run as they are)."""
        return {name: child for name, child in self.named_children()
                if any(parameter.requires_grad for parameter in child.parameters())}

    # -- shared plumbing --------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def use_mixed_precision(self, dtype: torch.dtype | None) -> None:
        """Autocast forward passes to `dtype` (None: full precision); fp16 also scales gradients."""
        self._autocast_dtype = dtype
        scale = dtype == torch.float16
        self._grad_scaler = torch.amp.GradScaler(self.device.type, enabled=scale) if scale else None

    def autocast(self):
        if self._autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self._autocast_dtype)

    def optimize(self, optimizer: torch.optim.Optimizer, loss: Tensor) -> None:
        """One optimizer step on `loss`, through the gradient scaler when fp16 needs it."""
        optimizer.zero_grad(set_to_none=True)
        if self._grad_scaler is None:
            loss.backward()
            optimizer.step()
        else:
            self._grad_scaler.scale(loss).backward()
            self._grad_scaler.step(optimizer)
            self._grad_scaler.update()

    def training_state(self) -> dict:
        """Everything a resumed trial needs: weights, optimizer moments, gradient scale."""
        state = {
            "model": self.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
        }
        if self._grad_scaler is not None:
            state["grad_scaler"] = self._grad_scaler.state_dict()
        return state

    def load_training_state(self, state: dict) -> None:
        self.load_state_dict(state["model"])
        for name, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state["optimizers"][name])
            # The saved state carries the learning rate it ran with; this model's config rules.
            # (Population-based training restarts a trial from another's checkpoint with a new
            # rate; a plain resume restores the same one.)
            for group in optimizer.param_groups:
                group["lr"] = optimizer.defaults["lr"]
            _match_parameter_layouts(optimizer)
        if self._grad_scaler is not None and "grad_scaler" in state:
            self._grad_scaler.load_state_dict(state["grad_scaler"])


def _match_parameter_layouts(optimizer: torch.optim.Optimizer) -> None:
    """Give each parameter's optimizer state (Adam's moments) its parameter's memory layout.

    A checkpoint keeps the layout it was saved in, and train.channels_last may differ between
    the run that saved it and the one that loads it; the fused Adam kernel walks a parameter and
    its moments as flat memory, so mismatched strides would silently pair the wrong elements.
    """
    for parameter, state in optimizer.state.items():
        for name, value in list(state.items()):
            moment_like = torch.is_tensor(value) and value.shape == parameter.shape  # not Adam's step count
            if moment_like and value.stride() != parameter.stride():
                state[name] = torch.empty_like(parameter, dtype=value.dtype).copy_(value)
