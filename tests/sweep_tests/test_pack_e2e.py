"""`tune.pack` end to end: a real Ray runtime, real Optuna and ASHA, each member its own trial."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from sweeps import GENSWEEP, end_if_running, output_at_exit, run_killing_one_trial, start_run, wait_for
from tbreader import read_events

pytestmark = pytest.mark.slow

EPOCHS = 8
PACKED_SWEEP = {
    "name": "packed",
    "model": {"name": "vae", "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 256, "val_size": 64},
    "train": {"epochs": EPOCHS, "batch_size": 64, "steps_per_epoch": 2, "log_every": 1},
    "quality": {"every": 0},
    # Two rates that barely move the weights: ASHA's worst at every rung, so it stops at least
    # one of them unless that one is the first to reach each of the three rungs.
    "search": {"train.lr": {"grid": [1e-2, 3e-3, 1e-6, 1e-7]}},
    "tune": {"pack": 4, "pack_wait": 60, "scheduler": "asha", "grace_period": 1, "reduction_factor": 2},
}


def _gensweep(*args, cwd):
    return subprocess.run([GENSWEEP, *args], capture_output=True, text=True, cwd=cwd, timeout=600, check=False)


def test_a_pack_trains_four_trials_in_one_process_and_asha_stops_members(tmp_path):
    (tmp_path / "packed.yaml").write_text(yaml.safe_dump(PACKED_SWEEP))
    result = _gensweep("run", "packed.yaml", "--storage-path", "out", cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    trials = json.loads(_gensweep("show", "out/packed", "--json", cwd=tmp_path).stdout)
    assert len(trials) == 4
    # One pack, four members: every trial was trained by the same trainer.
    records = [json.loads((Path(t["logdir"]) / "gensweep.json").read_text()) for t in trials]
    assert sorted((r["pack"]["number"], r["pack"]["member"]) for r in records) == [(1, 0), (1, 1), (1, 2), (1, 3)]
    epochs = {t["swept"]["train.lr"]: t["epoch"] for t in trials}
    assert epochs[1e-2] == EPOCHS  # the best went the whole way
    assert min(epochs[1e-6], epochs[1e-7]) < EPOCHS  # ASHA stopped a member...
    best = next(r for r in records if r["swept"]["train.lr"] == 1e-2)
    assert best["pack"]["size"] < 4  # ...which left the pack: its last epochs trained fewer members
    for trial in trials:
        assert trial["status"] == ("finished" if trial["epoch"] == EPOCHS else "stopped")
        # Its own TensorBoard run: one val/loss point per epoch it trained, and its own samples.
        events = read_events(Path(trial["logdir"]))
        assert len(events.Scalars("val/loss")) == trial["epoch"]
        assert len(events.Scalars("train_step/loss")) == 2 * trial["epoch"]
        assert (Path(trial["logdir"]) / "samples.png").stat().st_size > 1000
    # A member's checkpoint is a plain trial's: `gensweep sample` draws from it.
    member = next(t for t in trials if t["epoch"] == EPOCHS)
    sampled = _gensweep("sample", member["logdir"], "-o", "member.png", cwd=tmp_path)
    assert sampled.returncode == 0, sampled.stderr[-2000:]
    assert (tmp_path / "member.png").stat().st_size > 1000


FAULT_SWEEP = {
    "name": "packed_faults",
    "model": {"name": "vae", "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 1024, "val_size": 64},
    "train": {"epochs": 4, "batch_size": 64, "log_every": 4},
    "quality": {"every": 0},
    "search": {"train.lr": {"grid": [1e-3, 3e-3, 1e-2]}},
    "tune": {"pack": 3, "pack_wait": 30},
}


def _assert_one_point_per_epoch(trial: dict, epochs: int) -> None:
    events = read_events(Path(trial["logdir"]))
    assert [e.value for e in events.Scalars("train/epoch")] == list(range(1, epochs + 1))
    steps = [e.step for e in events.Scalars("val/loss")]
    assert len(set(steps)) == len(steps) == epochs, steps


def test_a_killed_member_is_retried_in_a_new_pack_while_its_old_pack_goes_on(tmp_path):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**FAULT_SWEEP, "tune": {**FAULT_SWEEP["tune"], "pack_wait": 3}}))
    # A member's process SIGKILLed from outside at epoch 2, before that epoch's checkpoint.
    killed, output, process = run_killing_one_trial(tmp_path, "s.yaml", "packed_faults", epoch=2)
    assert process.returncode == 0, output[-3000:]
    trials = json.loads(_gensweep("show", "out/packed_faults", "--json", cwd=tmp_path).stdout)
    assert [t["status"] for t in trials] == ["finished"] * 3
    records = {Path(t["logdir"]).name: json.loads((Path(t["logdir"]) / "gensweep.json").read_text()) for t in trials}
    assert sorted(r["pack"]["number"] for r in records.values()) == [1, 1, 2]
    # The killed member went on from its checkpoint of epoch 1, in a pack of its own: Tune had
    # epoch 1 from the killed process, and no epoch twice.
    assert records[killed.name]["attempts"] == 2 and records[killed.name]["pack"]["number"] == 2
    assert [json.loads(line)["epoch"] for line in (killed / "result.json").read_text().splitlines()] == [1, 2, 3, 4]
    for trial in trials:
        assert trial["epoch"] == 4
        _assert_one_point_per_epoch(trial, 4)


def test_an_interrupted_packed_sweep_resumes(tmp_path):
    import signal

    spec = {**FAULT_SWEEP, "train": {**FAULT_SWEEP["train"], "epochs": 6}, "data": {**FAULT_SWEEP["data"], "train_size": 4096}}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    run_dir = tmp_path / "out" / "packed_faults"
    process = start_run(tmp_path, "s.yaml", "--storage-path", "out")
    try:
        wait_for(lambda: len(list(run_dir.glob("*/checkpoint_000001"))) >= 3,
                 "three members' second checkpoints", process, seconds=300)
        process.send_signal(signal.SIGINT)
        output = output_at_exit(process, tmp_path)
    finally:
        end_if_running(process)
    before = json.loads(_gensweep("show", str(run_dir), "--json", cwd=tmp_path).stdout)
    assert all(1 < t["epoch"] < 6 for t in before), output[-3000:]

    resumed = _gensweep("resume", str(run_dir), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    after = json.loads(_gensweep("show", str(run_dir), "--json", cwd=tmp_path).stdout)
    assert [t["status"] for t in after] == ["finished"] * 3
    for trial in after:
        _assert_one_point_per_epoch(trial, 6)


def test_the_hub_counts_a_retried_trial_once_and_ends_its_pack_with_the_last_member(fresh_ray, tiny_document):
    # A trial that fails while its pack forms and joins again must be one member, not two: else
    # the pack never empties, and its trainer holds its CPUs to the end of the sweep.
    from runner.spec import parse_document
    from runner.sweep.pack_trial import END, start_hub
    from runner.train.packing import pack_key

    document = {**tiny_document, "tune": {"pack": 2, "pack_wait": 30}, "quality": {"every": 0}}
    spec = parse_document(document, "tiny.yaml")
    hub = start_hub(spec, "test-hub", 0.01)
    key = pack_key(spec)
    fresh_ray.get(hub.leave.remote("nobody"))  # the hub is up
    first_try = hub.join.remote(key, "A", {}, None)
    # its process died while the pack formed. Waited for, as PackDepartures does: Ray does not
    # order an async actor's calls, and a departure run after the retry's join took the retry out.
    fresh_ray.get(hub.leave.remote("A"))
    retried = hub.join.remote(key, "A", {}, None)
    other = hub.join.remote(key, "B", {}, None)  # the second member: the pack is full and starts
    (trainer, index_a, number), (same_trainer, index_b, _) = fresh_ray.get([retried, other], timeout=60)
    assert same_trainer == trainer and sorted([index_a, index_b]) == [0, 1] and number == 1
    for index in (index_a, index_b):
        messages = []
        while (message := fresh_ray.get(trainer.next.remote(index), timeout=120)) is not END:
            messages.append(message)
        assert [m["epoch"] for m in messages] == [1] and messages[0]["pack_size"] == 2
    del first_try
    fresh_ray.get([hub.leave.remote("A"), hub.leave.remote("B")])  # the last member out: the trainer goes
    with pytest.raises(fresh_ray.exceptions.RayActorError):
        fresh_ray.get(trainer.next.remote(0), timeout=60)


def test_a_due_pack_waits_for_the_trials_tune_has_started(fresh_ray, tiny_document):
    # Trials Tune starts together reach the hub seconds apart: each process imports torch first,
    # slower on a busy machine. Sealed by the clock alone, the pack split them (clean-clone CI:
    # packs [1, 2, 3] where one pack of three was due). While the driver says a trial is started
    # and not yet in a pack, a pack past its pack_wait waits for it.
    from runner.spec import parse_document
    from runner.sweep.pack_trial import start_hub
    from runner.train.packing import pack_key

    document = {**tiny_document, "tune": {"pack": 3, "pack_wait": 0.2}, "quality": {"every": 0}}
    spec = parse_document(document, "tiny.yaml")
    hub = start_hub(spec, "test-hub-wait", 0.01)
    key = pack_key(spec)
    fresh_ray.get(hub.expect.remote(["A", "B", "C"]))  # the driver: Tune has these three pending or running
    first = hub.join.remote(key, "A", {}, None)
    ready, _ = fresh_ray.wait([first], timeout=3)  # fifteen times pack_wait
    assert not ready, "the pack was sealed while two trials Tune had started were on their way"
    joined = fresh_ray.get([first, hub.join.remote(key, "B", {}, None), hub.join.remote(key, "C", {}, None)], timeout=60)
    assert len({trainer for trainer, _, _ in joined}) == 1  # one pack, one trainer
    assert sorted(index for _, index, _ in joined) == [0, 1, 2] and {number for *_, number in joined} == {1}


def test_a_due_pack_stops_waiting_for_a_trial_that_ended_before_it_joined(fresh_ray, tiny_document):
    from runner.spec import parse_document
    from runner.sweep.pack_trial import start_hub
    from runner.train.packing import pack_key

    document = {**tiny_document, "tune": {"pack": 2, "pack_wait": 0.2}, "quality": {"every": 0}}
    spec = parse_document(document, "tiny.yaml")
    hub = start_hub(spec, "test-hub-ended", 0.01)
    fresh_ray.get(hub.expect.remote(["A", "B"]))
    first = hub.join.remote(pack_key(spec), "A", {}, None)
    ready, _ = fresh_ray.wait([first], timeout=3)
    assert not ready  # B is on its way
    fresh_ray.get(hub.expect.remote(["A"]))  # B's process died before it joined: Tune ended it
    trainer, index, number = fresh_ray.get(first, timeout=60)
    assert (index, number) == (0, 1)
    assert fresh_ray.get(trainer.next.remote(0), timeout=120)["epoch"] == 1  # a pack of one trains


def test_a_trial_told_to_leave_while_its_pack_formed_hears_why_in_one_line(tiny_document):
    # Its join still waits in the hub (a process Tune has given up on): once the pack is sealed
    # without it, the join ends with the hub's own error, not a StopIteration from inside the hub.
    # The hub's own event loop, without Ray: a pack that trains nobody starts no actor.
    import asyncio

    from runner.spec import parse_document
    from runner.sweep.pack_trial import PackHub, PackStartError
    from runner.train.packing import pack_key

    document = {**tiny_document, "tune": {"pack": 2, "pack_wait": 0.05}, "quality": {"every": 0}}
    spec = parse_document(document, "tiny.yaml")
    hub = PackHub(spec.document, spec.source, 2, 0.05, 1.0, 0.0, 0.01)

    async def joined_then_told_to_leave():
        hub.expect(["A"])
        joining = asyncio.ensure_future(hub.join(pack_key(spec), "A", {}, None))
        await asyncio.sleep(0.01)  # the join has run up to its wait for the seal
        assert not joining.done()
        hub.leave("A")
        hub.expect([])
        await asyncio.wait_for(joining, timeout=10)

    with pytest.raises(PackStartError, match="^trial A left its pack before the pack started$"):
        asyncio.run(joined_then_told_to_leave())
    assert hub.packs_made == 0
