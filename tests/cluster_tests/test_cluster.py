"""Real Ray nodes on this machine (Ray's own cluster test utilities, and `ray start` in a mount
namespace of its own): a sweep joined with --address runs trials on both nodes, an alignment job
spreads over both, a lost node costs only its trials, a results directory that another node
cannot see is refused, and fractional GPUs pack four trials onto one GPU."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from ray.cluster_utils import Cluster

from alignment.pipeline import AlignSettings, align_directory
from alignment.synthetic import make_sequence
from runner.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def two_nodes():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    cluster.shutdown()


def _write_spec(tmp_path: Path, name: str, latent_dims: list[int], **sections) -> Path:
    spec = {
        "name": name,
        "model": {"name": "vae", "hidden_dim": 64},
        "data": {"name": "digits", "train_size": 2048, "val_size": 128},
        "train": {"epochs": 3, "batch_size": 64},
        "search": {"model.latent_dim": {"grid": latent_dims}},
        "quality": {"every": 0},
    }
    for section, values in sections.items():
        spec[section] = spec.get(section, {}) | values
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "s.yaml"


def _records(run_dir: Path) -> list[dict]:
    return json.loads(CliRunner().invoke(main, ["show", str(run_dir), "--json"]).output)


def test_a_sweep_uses_both_nodes(two_nodes, tmp_path):
    _write_spec(tmp_path, "two_nodes", [2, 4, 8])
    result = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--storage-path", str(tmp_path / "out"),
                                       "--address", two_nodes.address])
    assert result.exit_code == 0, result.output[-3000:]
    trials = _records(tmp_path / "out" / "two_nodes")
    assert [t["status"] for t in trials] == ["finished"] * 3
    assert len({t["node"] for t in trials}) == 2  # one CPU a node: the first two trials ran apart


def test_alignment_spreads_over_both_nodes(two_nodes, tmp_path):
    import ray

    make_sequence(tmp_path / "frames", frames=24, size=64, motion="translation", max_shift=2)
    ray.init(address=two_nodes.address, logging_level="ERROR")
    try:
        summary = align_directory(tmp_path / "frames", tmp_path / "aligned", AlignSettings(method="fft"), say=lambda _: None)
    finally:
        ray.shutdown()
    assert (summary.aligned, summary.failed, summary.nodes) == (24, 0, 2)


def test_a_lost_node_costs_only_its_trials(tmp_path):
    # Its own two nodes: this test kills one. Fast health checks, so Ray notices in seconds.
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False,
        "_system_config": {"health_check_period_ms": 500, "health_check_failure_threshold": 3},
    })
    doomed = cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    spec = _write_spec(tmp_path, "lose_a_node", [2, 4], train={"epochs": 12}, data={"train_size": 4096},
                       tune={"max_failures": 2})
    run_dir = tmp_path / "out" / "lose_a_node"
    lost = {}

    def remove_the_node_mid_trial():
        deadline = time.time() + 300
        while time.time() < deadline and not lost:
            for record_file in run_dir.glob("*/gensweep.json"):
                record = json.loads(record_file.read_text() or "{}")
                if record.get("node", "").endswith(doomed.node_id[:8]) and record.get("epoch", 0) >= 2:
                    lost.update(record)
                    cluster.remove_node(doomed, allow_graceful=False)  # its raylet and workers: SIGKILL
                    return
            time.sleep(0.1)

    remover = threading.Thread(target=remove_the_node_mid_trial, daemon=True)
    remover.start()
    try:
        result = CliRunner().invoke(main, ["run", str(spec), "--storage-path", str(tmp_path / "out"),
                                           "--address", cluster.address])
        remover.join(timeout=5)
    finally:
        cluster.shutdown()
    assert result.exit_code == 0, result.output[-3000:]
    assert lost, "no trial was seen running on the second node"
    trials = {t["trial_id"]: t for t in _records(run_dir)}
    assert [t["status"] for t in trials.values()] == ["finished", "finished"]
    moved = trials[lost["trial_id"]]
    assert not moved["node"].endswith(doomed.node_id[:8])  # rescheduled on the node that is left
    epochs = {
        record_file.parent.name: [json.loads(line)["epoch"] for line in (record_file.parent / "result.json").read_text().splitlines()]
        for record_file in run_dir.glob("*/gensweep.json")
    }
    (moved_name,) = [name for name in epochs if lost["trial_id"] in name]
    (other_name,) = set(epochs) - {moved_name}
    # The moved trial went on from its checkpoint: never back to epoch 1, and on to the end.
    assert epochs[moved_name].count(1) == 1 and epochs[moved_name][-1] == 12 and epochs[moved_name].index(12) >= 11
    assert epochs[other_name] == list(range(1, 13))  # the other trial ran once, untouched


def _can_unshare_mounts() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(["unshare", "-m", "true"], check=False, capture_output=True).returncode == 0


@pytest.mark.skipif(not _can_unshare_mounts(), reason="needs unshare -m (root) to give a node a directory of its own")
def test_results_a_node_cannot_see_are_refused(tmp_path):
    """The second node runs in a mount namespace of its own with a private tmpfs over the results
    directory: the same path, other files, as a head-local disk is to a real worker."""
    import ray

    # `ray start` records its cluster in Ray's address file, where a later ray.init() would try
    # to join it: put the file back as it was, whatever happens here.
    address_file = Path("/tmp/ray/ray_current_cluster")
    address_before = address_file.read_text() if address_file.exists() else None
    storage = tmp_path / "results"
    storage.mkdir()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    ray_cli = str(Path(sys.executable).with_name("ray"))
    join = f"exec {ray_cli} start --address={cluster.address} --num-cpus=1 --block --disable-usage-stats"
    node = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", f"mount -t tmpfs tmpfs {storage} && {join}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        deadline = time.time() + 60
        while len([n for n in ray.nodes() if n["Alive"]]) < 2 and time.time() < deadline:
            time.sleep(0.5)
        nodes = len([n for n in ray.nodes() if n["Alive"]])
        ray.shutdown()
        assert nodes == 2, "the second node did not join"
        spec = _write_spec(tmp_path, "unseen", [2])
        result = CliRunner().invoke(main, ["run", str(spec), "--storage-path", str(storage), "--address", cluster.address])
    finally:
        node.send_signal(signal.SIGTERM)
        node.wait(timeout=60)
        cluster.shutdown()
        if address_before is None:
            address_file.unlink(missing_ok=True)
        else:
            address_file.write_text(address_before)
    assert result.exit_code == 2, result.output[-3000:]
    message = result.stderr.strip().splitlines()[-1]
    assert message.startswith(f"error: --storage-path {storage}: node ") and "does not see the same files" in message
    assert not (storage / "unseen").exists()  # refused before anything was written
    assert not list(storage.glob(".gensweep-shared-check-*"))  # its marker cleaned up


def test_fractional_gpus_pack_four_trials_on_one_gpu(tmp_path):
    """Ray with one GPU declared (this machine has none, so the trials train on the CPU):
    gpu: 0.25 puts four trials on it at once, and each is told it holds GPU 0."""
    import ray

    ray.init(num_cpus=2, num_gpus=1, include_dashboard=False, logging_level="ERROR")
    try:
        spec = _write_spec(tmp_path, "packed", [2, 3, 4, 5], resources={"cpu": 0.5, "gpu": 0.25},
                           train={"device": "cpu", "epochs": 8})
        result = CliRunner().invoke(main, ["run", str(spec), "--storage-path", str(tmp_path / "out")])
    finally:
        ray.shutdown()
    assert result.exit_code == 0, result.output[-3000:]
    trials = _records(tmp_path / "out" / "packed")
    assert [t["status"] for t in trials] == ["finished"] * 4
    assert all(t["gpus"] == ["0"] for t in trials)
    assert max(t["started"] for t in trials) < min(t["updated"] for t in trials)  # all four at once


def test_a_ray_started_here_lets_a_reused_trial_process_wait_for_the_last_trial(monkeypatch):
    # Tune fails the next trial if the previous one's thread takes over 2 s to end (Ray's
    # default): the workers of a Ray that gensweep starts wait 30 s instead.
    import os

    import ray

    from runner.cluster import start_or_join

    monkeypatch.delenv("TUNE_FUNCTION_THREAD_TIMEOUT_S", raising=False)
    assert start_or_join(None, quiet=True)
    try:
        probe = ray.remote(num_cpus=0)(lambda: os.environ.get("TUNE_FUNCTION_THREAD_TIMEOUT_S"))
        assert ray.get(probe.remote(), timeout=60) == "30"
    finally:
        ray.shutdown()
        os.environ.pop("TUNE_FUNCTION_THREAD_TIMEOUT_S", None)  # set by start_or_join, for this test only
