"""RAY_ADDRESS, as `ray job submit` sets it for the job it starts, is honoured as --address is
(--address wins over it), and `gensweep run` says which cluster it joined. A real Ray cluster of
its own, started and shut down by Ray's own cluster utilities (never `ray stop`)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ray.cluster_utils import Cluster

GENSWEEP = str(Path(sys.executable).parent / "gensweep")
SPEC = {
    "name": "joined",
    "model": {"name": "vae", "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 256, "val_size": 64},
    "train": {"epochs": 1, "batch_size": 64},
    "search": {"model.latent_dim": {"grid": [2, 4]}},
    "quality": {"every": 0},
}


@pytest.fixture(scope="module")
def cluster():
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    yield cluster
    cluster.shutdown()  # the processes this cluster started, and only those


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _run(tmp_path: Path, ray_address: str | None, *arguments: str) -> subprocess.CompletedProcess:
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    environment = {key: value for key, value in os.environ.items() if key != "RAY_ADDRESS"}
    if ray_address is not None:
        environment["RAY_ADDRESS"] = ray_address
    return subprocess.run([GENSWEEP, "run", "s.yaml", "--storage-path", "out", *arguments], cwd=tmp_path,
                          env=environment, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.slow
def test_run_joins_the_cluster_that_ray_address_names(cluster, tmp_path):
    result = _run(tmp_path, cluster.address)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    joined = [line for line in result.stdout.splitlines() if line.startswith("gensweep: joined the Ray cluster")]
    assert len(joined) == 1, result.stdout[-3000:]
    assert joined[0].startswith(f"gensweep: joined the Ray cluster at {cluster.address} (RAY_ADDRESS {cluster.address})")
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "joined").glob("*/gensweep.json")]
    assert sorted(r["swept"]["model.latent_dim"] for r in records) == [2, 4]
    assert {r["status"] for r in records} == {"finished"}
    head = cluster.head_node.node_id[:8]
    assert all(r["node"].endswith(head) for r in records)  # trained on that cluster, not a Ray of its own


@pytest.mark.slow
def test_address_wins_over_ray_address(cluster, tmp_path):
    # RAY_ADDRESS names a live cluster, --address a dead port: --address is the one tried.
    port = _closed_port()
    result = _run(tmp_path, cluster.address, "--address", f"127.0.0.1:{port}")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr.splitlines() == [f"error: --address 127.0.0.1:{port}: no Ray cluster answers there (Connection refused)"]


def test_a_ray_address_where_no_cluster_answers_is_one_line_naming_it(tmp_path):
    port = _closed_port()
    result = _run(tmp_path, f"127.0.0.1:{port}")
    assert result.returncode == 2, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr.splitlines() == [f"error: RAY_ADDRESS 127.0.0.1:{port}: no Ray cluster answers there (Connection refused)"]
    assert not (tmp_path / "out").exists()  # nothing made for a sweep that did not start


@pytest.mark.slow
def test_without_an_address_a_ray_of_its_own_starts_though_another_runs_here(cluster, tmp_path):
    # A cluster started on this machine (`ray start`, or Ray's Cluster as here) leaves its address
    # in Ray's temp directory, and a plain ray.init() joins it; gensweep asked for no cluster.
    result = _run(tmp_path, None)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "joined the Ray cluster" not in result.stdout
    records = [json.loads(p.read_text()) for p in (tmp_path / "out" / "joined").glob("*/gensweep.json")]
    assert sorted(r["swept"]["model.latent_dim"] for r in records) == [2, 4]
    head = cluster.head_node.node_id[:8]
    assert not any(r["node"].endswith(head) for r in records)  # its own Ray, not the one running here
