"""The decoded cache on two real Ray nodes: each node keeps its own (GENSWEEP_CACHE set per node,
as two machines' home directories are), the driver decodes the head's before any trial starts,
a node decodes its own the first time a trial runs there, and both hold the same bytes. (Nodes
that share one cache, as every other cluster test's do, find the driver's entry.)"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import yaml
from click.testing import CliRunner
from ray.cluster_utils import Cluster
from skimage import data as photographs

from runner.cli import main

pytestmark = pytest.mark.slow


def _photo_folder(folder):
    folder.mkdir()
    for index, name in enumerate(["astronaut", "chelsea", "coffee", "rocket"] * 8):
        image = cv2.cvtColor(getattr(photographs, name)(), cv2.COLOR_RGB2BGR)
        cv2.imwrite(str(folder / f"{index:03d}.jpg"), image[index * 5 :, index * 3 :])


def _spec(tmp_path, photos):
    spec = {
        "name": "faces_two_nodes",
        "model": {"name": "vae", "hidden_dim": 32},
        "data": {"name": "folder", "path": str(photos), "image_size": 16, "channels": 3, "crop": "center"},
        "train": {"epochs": 2, "batch_size": 8},
        "search": {"model.latent_dim": {"grid": [2, 4]}},
        "quality": {"every": 0},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path / "s.yaml"


def _entries(cache):
    return sorted((cache / "decoded").glob("*/images.npy"))


def test_each_node_decodes_into_its_own_cache(tmp_path, monkeypatch):
    head_cache, worker_cache = tmp_path / "head-cache", tmp_path / "worker-cache"
    monkeypatch.setenv("GENSWEEP_CACHE", str(head_cache))  # the driver runs on the head node
    _photo_folder(tmp_path / "photos")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "include_dashboard": False, "env_vars": {"GENSWEEP_CACHE": str(head_cache)}})
    cluster.add_node(num_cpus=1, env_vars={"GENSWEEP_CACHE": str(worker_cache)})
    cluster.wait_for_nodes()
    try:
        result = CliRunner().invoke(main, ["run", str(_spec(tmp_path, tmp_path / "photos")), "--storage-path",
                                           str(tmp_path / "out"), "--address", cluster.address])
    finally:
        cluster.shutdown()
    assert result.exit_code == 0, result.output[-3000:]
    assert f"decoded images mapped from {head_cache / 'decoded'}" in result.output
    trials = json.loads(CliRunner().invoke(main, ["show", str(tmp_path / "out" / "faces_two_nodes"), "--json"]).output)
    assert [t["status"] for t in trials] == ["finished"] * 2 and len({t["node"] for t in trials}) == 2
    (head_entry,), (worker_entry,) = _entries(head_cache), _entries(worker_cache)
    assert head_entry.parent.name == worker_entry.parent.name  # the same key on both nodes
    assert np.array_equal(np.load(head_entry), np.load(worker_entry))  # and the same bytes
    # The head's copy, which the driver shares: decoded before any trial began (no trial rebuilt
    # it) and mapped by the trials there since; the worker's was decoded by its first trial.
    built = {entry: json.loads((entry.parent / "meta.json").read_text())["created"] for entry in (head_entry, worker_entry)}
    assert built[head_entry] < min(t["started"] for t in trials) < built[worker_entry]
    assert head_entry.parent.joinpath("used").stat().st_mtime >= min(t["started"] for t in trials)
