"""Packed trials under Ray Tune (`tune.pack: K`): K Tune trials, one training process.

    Tune trial (0 CPU) --join--> PackHub (one per sweep) --start--> PackTrainer (the pack's CPUs/GPU)
    Tune trial <--each epoch: metrics, logs, checkpoint-- PackTrainer

Every member is a Tune trial of its own: Optuna and the scheduler see it, it has its own
directory, record, TensorBoard run and checkpoints. Only the training is shared. The hub groups
trials whose specs differ only in the pack fields (runner/train/packing.py::pack_key) and seals a
pack when it is full, or once tune.pack_wait seconds have passed since its first member came and
no trial Tune has started is still on its way to the hub (the driver tells the hub which trials
Tune has pending or running: a trial's process takes seconds to start, more on a busy machine,
and a pack sealed by the clock alone split trials started together into packs of one).
A member stopped by the scheduler leaves its pack at the next epoch (the driver tells the hub,
through PackDepartures); the trainer ends when its last member has gone.
"""

from __future__ import annotations

import asyncio
import io
import queue
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import ray
import torch
from ray import tune

from models.torch_internals import tree_map
from runner.errors import GensweepError, PermanentError, one_line
from runner.spec import trial_spec
from runner.train import loop
from runner.train.packing import Member, Pack, pack_key

END = None  # what the trainer's queue gives a member once the pack has no more epochs for it


class RecordingLogger:
    """A TrialLogger's interface, kept as a list of calls that the member's trial replays into its
    own TrialLogger: the trainer never writes into a trial's directory itself."""

    def __init__(self):
        self.calls: list[tuple[str, tuple]] = []

    def scalars(self, prefix: str, values: dict[str, float], step: int) -> None:
        self.calls.append(("scalars", (prefix, dict(values), step)))

    def image(self, tag: str, grid: torch.Tensor, step: int, filename: str | None = None) -> None:
        self.calls.append(("image", (tag, grid.detach().float().cpu(), step, filename)))

    def picture(self, filename: str, grid: torch.Tensor) -> None:
        self.calls.append(("picture", (filename, grid.detach().float().cpu())))

    def drain(self) -> list[tuple[str, tuple]]:
        calls, self.calls = self.calls, []
        return calls


def replay(calls: list[tuple[str, tuple]], logger) -> None:
    for method, arguments in calls:
        getattr(logger, method)(*arguments)


def state_bytes(end: loop.EpochEnd) -> bytes:
    """A member's checkpoint (loop.training_state) as bytes, each tensor copied out of the pack's
    stack: a view would save the whole stack, every member's weights."""
    state = tree_map(lambda value: value.clone() if isinstance(value, torch.Tensor) else value, loop.training_state(end))
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def load_state(data: bytes | None) -> dict | None:
    # weights_only: tensors and plain containers, never arbitrary pickled objects.
    return None if data is None else torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class PackTrainer:
    """One pack's training, in a thread of this actor; members pull their epochs with next()."""

    def __init__(self, document: dict, source: str, threads: int):
        import cv2

        torch.set_num_threads(threads)
        cv2.setNumThreads(1)
        self.document, self.source = document, source
        self.pack: Pack | None = None
        self.queues: dict[int, queue.Queue] = {}
        self.lock = threading.Lock()
        self.left_early: set[int] = set()  # leave() can run before start(): the actor is threaded

    def _queue(self, index: int) -> queue.Queue:
        with self.lock:
            return self.queues.setdefault(index, queue.Queue())

    def start(self, joined: list[tuple[dict, bytes | None]]) -> None:
        """Build the pack and train it in a thread; whatever fails reaches every member."""
        try:
            members = []
            for index, (sampled, resume) in enumerate(joined):
                recorder = RecordingLogger()
                members.append(Member(
                    spec=trial_spec(self.document, self.source, sampled),
                    logger=recorder,
                    on_epoch_end=partial(self._epoch_end, index, recorder),
                    resume_state=load_state(resume),
                    on_error=partial(self._error, index),
                ))
            pack = Pack(members, assigned_gpus=[str(gpu) for gpu in ray.get_gpu_ids()])
            with self.lock:
                for index in self.left_early:
                    pack.leave(index)
                self.pack = pack
        except Exception as error:  # noqa: BLE001 - nobody awaits start(): the members must hear it
            self._end(len(joined), error)
            return
        threading.Thread(target=self._train, args=(len(members),), daemon=True).start()

    def _train(self, size: int) -> None:
        try:
            self.pack.train()
        except Exception as error:  # noqa: BLE001 - the pack failed as a whole: every member hears why
            self._end(size, error)
        else:
            self._end(size)

    def _end(self, size: int, error: Exception | None = None) -> None:
        for index in range(size):
            if error is not None:
                self._error(index, error)
            self._queue(index).put(END)

    def _epoch_end(self, index: int, recorder: RecordingLogger, end: loop.EpochEnd) -> None:
        self._queue(index).put(
            {"epoch": end.epoch, "global_step": end.global_step, "metrics": dict(end.metrics),
             "logs": recorder.drain(), "state": state_bytes(end), "pack_size": self.pack.training}
        )

    def _error(self, index: int, error: Exception) -> None:
        # permanent (a NaN loss): the member fails once, as a trial alone would (runner/sweep/trial.py).
        self._queue(index).put({"error": one_line(error), "permanent": isinstance(error, PermanentError)})

    def next(self, index: int) -> dict | None:
        """The member's next epoch (blocks until trained), {"error": ...}, or END."""
        return self._queue(index).get()

    def leave(self, index: int) -> None:
        with self.lock:
            if self.pack is None:
                self.left_early.add(index)
            else:
                self.pack.leave(index)


@dataclass
class _Group:
    """A pack: forming (trials join) until sealed, then training until its last member leaves."""

    sealed: asyncio.Event
    joined: list[tuple[str, dict, bytes | None]] = field(default_factory=list)  # (trial id, values, resume)
    members: set[str] = field(default_factory=set)  # trial ids still in the pack
    trainer: Any = None
    due: bool = False  # pack_wait has passed since its first member came: it seals once no trial is on its way
    number: int = 0  # packs are numbered in the order they were sealed, from 1
    error: str | None = None  # why the pack could not start

    def index_of(self, trial_id: str) -> int:
        return next(index for index, (joined_id, _, _) in enumerate(self.joined) if joined_id == trial_id)


class PackHub:
    """Groups a sweep's trials into packs; one per sweep, owned by the driver."""

    def __init__(self, document: dict, source: str, size: int, wait_seconds: float, cpu: float, gpu: float, member_cpu: float):
        self.document, self.source = document, source
        self.size, self.wait_seconds = size, wait_seconds
        # The members each hold member_cpu of the pack's CPUs, so packs fit where trials would
        # (sweep.py bounds the members alive at once to what the packs' CPUs allow).
        self.trainer_options = {"num_cpus": max(0.0, cpu - size * member_cpu), "num_gpus": gpu, "max_concurrency": size + 4}
        self.threads = max(1, round(cpu))
        self.forming: dict[str, _Group] = {}  # pack key -> the pack forming for it
        self.group_of: dict[str, _Group] = {}  # trial id -> its pack, forming or training
        self.live: set[str] = set()  # the trials Tune has pending or running, as the driver last said
        self.packs_made = 0

    def expect(self, trial_ids: list[str]) -> None:
        """The driver's word: these trials are pending or running in Tune. Those in no pack yet
        are on their way here (a process starting, a failed member's retry), and a pack whose
        pack_wait is over waits for them: they may be its members."""
        self.live = set(trial_ids)
        self._seal_due()

    def _on_their_way(self) -> set[str]:
        return self.live - self.group_of.keys()

    async def join(self, key: str, trial_id: str, sampled: dict, resume: bytes | None) -> tuple[Any, int, int]:
        """Wait until this trial's pack is sealed; returns its trainer, the member's index in it
        and the pack's number."""
        self.leave(trial_id)  # a retried trial: out of the pack its failed run was in
        group = self.forming.get(key)
        if group is None:
            group = self.forming[key] = _Group(asyncio.Event())
            asyncio.get_running_loop().call_later(self.wait_seconds, self._make_due, group)
        group.joined.append((trial_id, sampled, resume))
        group.members.add(trial_id)
        self.group_of[trial_id] = group
        if len(group.joined) >= self.size:
            self._seal(key, group)
        self._seal_due()  # this trial was on its way: a due pack may have waited for it alone
        await group.sealed.wait()
        if group.error is not None:
            raise PackStartError(group.error)
        if trial_id not in group.members:
            # told to leave while its pack formed (its process is gone: PackDepartures waits for
            # each departure before Tune can start the trial again, so a retry joins after it)
            raise PackStartError(f"trial {trial_id} left its pack before the pack started")
        return group.trainer, group.index_of(trial_id), group.number

    def _make_due(self, group: _Group) -> None:
        group.due = True
        self._seal_due()

    def _seal_due(self) -> None:
        """Seal every pack whose pack_wait is over, unless a trial Tune started may still join it."""
        if self._on_their_way():
            return
        for key, group in list(self.forming.items()):
            if group.due:
                self._seal(key, group)

    def _seal(self, key: str, group: _Group) -> None:
        if group.sealed.is_set():
            return
        if self.forming.get(key) is group:
            del self.forming[key]
        if group.joined:  # else every member left while it formed: nothing to train
            try:
                trainer_class = ray.remote(PackTrainer).options(**self.trainer_options)
                group.trainer = trainer_class.remote(self.document, self.source, self.threads)
                group.trainer.start.remote([(sampled, resume) for _, sampled, resume in group.joined])
            except Exception as error:  # noqa: BLE001 - run from a timer: the members must hear it
                group.error = f"the pack's trainer could not start: {one_line(error)}"
            self.packs_made += 1
            group.number = self.packs_made
        group.sealed.set()

    def leave(self, trial_id: str) -> None:
        """The trial ended (done, stopped or failed): out of its pack; the last one out ends it."""
        group = self.group_of.pop(trial_id, None)
        if group is None:
            return
        group.members.discard(trial_id)
        if not group.sealed.is_set():  # still forming: the trainer will never see it
            group.joined = [entry for entry in group.joined if entry[0] != trial_id]
            return
        if group.trainer is None:
            return
        group.trainer.leave.remote(group.index_of(trial_id))
        if not group.members:
            ray.kill(group.trainer)  # frees the pack's CPUs (or GPU) for the next pack


class PackStartError(GensweepError):
    """A pack's trainer could not be started; one-line message."""


class PackDepartures(tune.Callback):
    """In the driver: tells the hub which trials Tune has pending or running, and when a member's
    trial has ended, however it ended.

    Each call waits for the hub to take it in. Ray does not order the calls of different callers
    to an async actor, and a departure must reach the hub before the trial can be started again:
    Tune retries a failed trial only after on_trial_recover returns, so the retry's join can never
    come first and take the retried member out of its new pack.
    """

    told_live: frozenset = frozenset()  # what the hub was last told (a class default: see __getstate__)

    def __init__(self, hub_name: str):
        self.hub_name = hub_name  # a name, not a handle: Tune pickles its callbacks

    def __getstate__(self) -> dict:
        # Tune pickles its callbacks with the experiment; `gensweep resume` starts a new hub that
        # has been told nothing yet, so what the old one was told stays out.
        return {"hub_name": self.hub_name}

    def _left(self, trial) -> None:
        ray.get(ray.get_actor(self.hub_name).leave.remote(trial.trial_id))

    def on_step_end(self, iteration: int, trials: list, **info) -> None:
        # Trial.status strings: Tune's PENDING trials are being started, RUNNING ones are started
        # (their member may not have joined yet); PAUSED never happens to a pack (no PBT).
        live = frozenset(t.trial_id for t in trials if t.status in ("PENDING", "RUNNING"))
        if live != self.told_live:
            ray.get(ray.get_actor(self.hub_name).expect.remote(sorted(live)))
            self.told_live = live

    def on_trial_complete(self, iteration: int, trials: list, trial, **info) -> None:
        self._left(trial)

    def on_trial_error(self, iteration: int, trials: list, trial, **info) -> None:
        self._left(trial)

    def on_trial_recover(self, iteration: int, trials: list, trial, **info) -> None:
        self._left(trial)  # failed, to be retried: it will join a new pack from its checkpoint


def start_hub(spec, hub_name: str, member_cpu: float):
    """The sweep's hub, a named 0-CPU actor that lives as long as the driver holds it."""
    hub_class = ray.remote(num_cpus=0)(PackHub).options(name=hub_name)
    return hub_class.remote(
        spec.document, spec.source, spec.tune.pack, spec.tune.pack_wait, spec.resources.cpu, spec.resources.gpu, member_cpu
    )


def run_packed_trial(sampled: dict[str, Any], *, document: dict, source: str, grid: dict[str, list], hub_name: str) -> None:
    """The Tune function trainable of a packed sweep: joins a pack and reports its member's epochs."""
    from runner.sweep.trial import start_trial

    spec = trial_spec(document, source, sampled)
    trial = start_trial(spec, sampled, grid)
    resume_epoch = trial.resume_state["epoch"] if trial.resume_state is not None else 0
    try:
        _relay_epochs(trial, spec, sampled, resume_epoch, hub_name)
    except Exception as error:
        if trial.record.fields["status"] != "error":  # the trainer's own message is already there
            trial.fail(one_line(error))
        raise
    else:
        trial.close()
    finally:
        trial.logger.close()  # a scheduler's stop is a SystemExit out of tune.report: closed all the same


def _relay_epochs(trial, spec, sampled: dict[str, Any], resume_epoch: int, hub_name: str) -> None:
    """Join a pack, then record, log and report each epoch the pack trains for this member."""
    from runner.sweep.trial import PermanentTrialError, TrialError

    hub = ray.get_actor(hub_name)
    trainer, index, number = ray.get(hub.join.remote(pack_key(spec, resume_epoch), trial.trial_id, sampled, trial.resume_bytes))
    pack = {"number": number, "member": index}
    while (message := ray.get(trainer.next.remote(index))) is not END:
        if "error" in message:
            permanent = message.get("permanent", False)
            trial.fail(message["error"], permanent=permanent)
            raise (PermanentTrialError if permanent else TrialError)(message["error"])
        trial.record.update(pack=pack | {"size": message["pack_size"]})  # members trained in that epoch
        replay(message["logs"], trial.logger)
        trial.report(message["epoch"], message["metrics"], lambda path, data=message["state"]: path.write_bytes(data))
