"""Training a pack: K trials of one architecture in one loop (models/packing.py). No Ray here.

Each member is a whole trial: its own spec (learning rate, pack fields such as a VAE's beta), its
own logger, its own per-epoch callback (where Tune hears of it), its own checkpoint. The data,
the shuffling order and the forward/backward passes are shared. A member whose loss stops being
finite fails alone; a member stopped from outside (a scheduler) leaves at the next epoch start.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import models
from models.packing import PackedModels, check_packable
from runner.spec import Spec
from runner.train import loop
from runner.train.tblog import TrialLogger


@dataclass
class Member:
    spec: Spec  # this trial's spec: its own learning rate and pack fields
    logger: TrialLogger | None = None
    on_epoch_end: Callable[[loop.EpochEnd], None] = lambda _: None
    resume_state: dict | None = None  # a checkpoint of this trial made by loop.training_state
    on_error: Callable[[Exception], None] = lambda _: None  # this member failed; the others go on


def pack_fields(spec: Spec) -> tuple[str, ...]:
    """The dotted fields that may differ between the members of one pack."""
    card = models.entry(spec.model_name)
    check_packable(card)
    return ("train.lr", *(f"model.{name}" for name in card.pack_fields))


def pack_key(spec: Spec, start_epoch: int = 0) -> str:
    """Trials with equal keys can share a pack: everything but the pack fields is the same,
    and they start from the same epoch."""
    varying = set(pack_fields(spec))
    fixed = {path: value for path, value in spec.flat_config().items() if path not in varying}
    return json.dumps({"config": fixed, "start_epoch": start_epoch}, sort_keys=True, default=str)


@dataclass
class Pack:
    """A pack in training; `leave(index)` may be called from another thread."""

    members: list[Member]
    assigned_gpus: list | None = None
    _leaving: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    training: int = 0  # members in the epoch being trained (fewer once some have left)

    def leave(self, index: int) -> None:
        with self._lock:
            self._leaving.add(index)

    def train(self) -> None:
        """Train every member to its last epoch (or until it leaves or fails)."""
        first = self.members[0].spec
        keys = {pack_key(member.spec, _start_epoch(member)) for member in self.members}
        if len(keys) > 1:
            raise ValueError("a pack's members must differ only in " + ", ".join(pack_fields(first)))
        session = loop.open_session(
            [member.spec for member in self.members], [member.resume_state for member in self.members],
            self.assigned_gpus, packed=True,
        )
        built, data, generator, global_step = session.models, session.data, session.generator, session.global_step
        active = list(range(len(self.members)))  # member indices, in the order of the pack's stack
        packed = PackedModels(built)
        quality_metrics: list[dict[str, float]] = [{} for _ in self.members]
        for epoch in range(session.start_epoch + 1, first.train.epochs + 1):
            with self._lock:
                gone = {position for position, index in enumerate(active) if index in self._leaving}
            if gone:
                packed = packed.without(gone)
                active = [index for position, index in enumerate(active) if position not in gone]
            if packed is None:
                return
            self.training = len(active)
            for index in active:
                built[index].on_epoch_start(epoch)

            def log_step(values: dict[str, torch.Tensor], step: int, epoch: int = epoch, active: list = active) -> None:
                per_member = {name: value.float().cpu().tolist() for name, value in values.items()}
                for position, index in enumerate(active):
                    floats = {name: member_values[position] for name, member_values in per_member.items()}
                    if self._still_in(index, floats, f"epoch {epoch}, step {step}"):
                        logger = self.members[index].logger
                        if logger is not None:
                            logger.scalars("train_step", floats, step)

            means, global_step = loop.train_epoch(packed, data, first, generator, global_step, log_step)
            per_member = {name: value.float().cpu().tolist() for name, value in means.items()}
            for position, index in enumerate(active):
                member, model = self.members[index], built[index]
                train_metrics = {name: member_values[position] for name, member_values in per_member.items()}
                if not self._still_in(index, train_metrics, f"epoch {epoch}"):
                    continue
                try:
                    metrics, quality_metrics[index] = loop.end_epoch(
                        model, data, member.spec, epoch, global_step, train_metrics, session.quality,
                        quality_metrics[index], session.fixed_batch, member.logger,
                    )
                    member.on_epoch_end(loop.EpochEnd(epoch, global_step, metrics, model, generator))
                except Exception as error:  # noqa: BLE001 - this member's evaluation or report: it fails alone
                    self.leave(index)
                    member.on_error(error)

    def _still_in(self, index: int, values: dict[str, float], where: str) -> bool:
        """False for a member that left; a member whose values are not finite fails alone: it is
        told, and it leaves."""
        with self._lock:
            if index in self._leaving:
                return False
        error = loop.divergence(values, where)
        if error is not None:
            self.leave(index)
            self.members[index].on_error(error)
            return False
        return True


def _start_epoch(member: Member) -> int:
    return member.resume_state["epoch"] if member.resume_state is not None else 0
