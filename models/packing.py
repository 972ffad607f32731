"""K models of one architecture trained as one: stacked weights, one vmapped step.

A sweep's trials often share an architecture and differ only in scalars (a learning rate, a
loss weight). Packed, their forward and backward passes run as one batched computation
(torch.func's stack_module_state and vmap), which is how a GPU stays busy with small networks.
Each member stays a whole model: its parameters are views into the stacked weights, so the
member's own evaluate(), sample() and training_state() work unchanged, and its own optimizer
(with its own learning rate) steps its own slice.
"""

from __future__ import annotations

import contextlib

import torch
from torch import Tensor
from torch.func import functional_call, stack_module_state, vmap

from models.base import Batch, GenerativeModel
from models.cards import ModelCard
from models.torch_internals import foreach_copy_


class PackError(ValueError):
    """These models cannot be trained as one pack; the message names why."""


def check_packable(card: ModelCard) -> None:
    if card.pack_fields is None:
        raise PackError(f"{card.name} cannot be packed (packing covers one-optimizer models: ae, dae, vae)")


class PackedModels:
    """Trains `members` (same class and architecture, each with its optimizer) in one step."""

    def __init__(self, members: list[GenerativeModel]):
        if not members:
            raise PackError("a pack needs at least one member")
        check_packable(members[0].card)
        if any(type(member) is not type(members[0]) for member in members):
            raise PackError("a pack's members must be one model class")
        if any(member._grad_scaler is not None for member in members):
            raise PackError("train.precision: fp16 needs a gradient scaler per member; packs take bf16 or fp32")
        self.members = list(members)
        self.base = members[0]  # the module the vmapped step calls, with each member's weights
        self.params, self.buffers = stack_module_state(self.members)  # {name: (K, ...)}
        # Gradients land here (contiguous, in the weights' layout), each member's .grad a slice.
        self._gradients = {name: torch.zeros_like(stacked) for name, stacked in self.params.items()}
        groups = []
        for index, member in enumerate(self.members):
            # Each member's tensors become its slice of the stack: what the step trains is what
            # the member evaluates, samples and checkpoints, with no copying back and forth.
            for name, parameter in member.named_parameters():
                parameter.data = self.params[name].detach()[index]
                parameter.grad = self._gradients[name][index]
            for name, buffer in member.named_buffers():
                if name in self.buffers:
                    buffer.data = self.buffers[name][index]
            (optimizer,) = member.optimizers.values()
            groups += optimizer.param_groups  # the member's learning rate and betas
        # One fused optimizer steps every member (a step per member cost more than the rest of
        # a small model's step). Its state per weight is the member optimizer's own dict, so a
        # member's training_state() holds its moments and a resumed member brings them in.
        self.optimizer = type(optimizer)([dict(group) for group in groups], fused=True)
        for member in self.members:
            (optimizer,) = member.optimizers.values()
            for parameter in member.parameters():
                self.optimizer.state[parameter] = optimizer.state[parameter]
        self._parameter_names = list(self.params)
        self._scalars: tuple[tuple, dict[str, Tensor]] = ((), {})
        self._step = vmap(self._member_values, in_dims=(0, 0, 0, None), randomness="different")

    def __len__(self) -> int:
        return len(self.members)

    def train(self) -> None:
        """Training mode for every member (the runner's epoch loop calls it, as on a model)."""
        for member in self.members:
            member.train()

    def _member_values(self, params: dict, buffers: dict, scalars: dict, images: Tensor) -> dict[str, Tensor]:
        """One member's batch means, computed by the base module with that member's weights."""
        with _attributes(self.base, scalars):
            values = functional_call(self.base, (params, buffers), (Batch(images),))
        return {name: value.mean() for name, value in values.items() if not name.startswith("_")}

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        """One optimizer step of every member on the same batch; {name: (K,) detached means}."""
        values = self._step(self.params, self.buffers, self._member_scalars(), batch.images)
        # The members are independent, so the gradient of the sum is each member's own gradient.
        gradients = torch.autograd.grad(values["loss"].sum(), [self.params[name] for name in self._parameter_names])
        # Copied into the members' .grad slices: a batched matmul's weight gradient can come
        # transposed, and the fused optimizer walks gradient and weight in one memory order.
        foreach_copy_([self._gradients[name] for name in self._parameter_names], gradients)
        self.optimizer.step()
        return {name: value.detach() for name, value in values.items()}

    def _member_scalars(self) -> dict[str, Tensor]:
        """Per-member scalars (a VAE's beta, which a warm-up changes per epoch) as (K,) tensors,
        made again only when they change: a host-to-device copy per step would stall a GPU."""
        current = tuple(float(getattr(member, name)) for name in self.base.pack_fields for member in self.members)
        if current != self._scalars[0]:
            count = len(self.members)
            values = torch.tensor(current, device=self.base.device).reshape(len(self.base.pack_fields), count)
            self._scalars = (current, dict(zip(self.base.pack_fields, values, strict=True)))
        return self._scalars[1]

    def without(self, leaving: set[int]) -> PackedModels:
        """A pack of the members not in `leaving` (indices), their weights and optimizer state kept."""
        staying = [member for index, member in enumerate(self.members) if index not in leaving]
        for index in sorted(leaving):  # the leavers keep their weights, no longer views of the stack
            member = self.members[index]
            for parameter in member.parameters():
                parameter.data = parameter.data.clone()
                parameter.grad = None
        return PackedModels(staying) if staying else None


@contextlib.contextmanager
def _attributes(module, values: dict):
    saved = {name: getattr(module, name) for name in values}
    for name, value in values.items():
        setattr(module, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)
