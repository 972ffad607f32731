"""Two real Ray nodes on this machine (Ray's own cluster test utilities): a sweep joined with
--address runs trials on both, and an alignment job spreads over both."""

from __future__ import annotations

import json

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


def test_a_sweep_uses_both_nodes(two_nodes, tmp_path):
    spec = {
        "name": "two_nodes",
        "model": {"name": "vae", "hidden_dim": 64},
        "data": {"name": "digits", "train_size": 2048, "val_size": 128},
        "train": {"epochs": 3, "batch_size": 64},
        "search": {"model.latent_dim": {"grid": [2, 4, 8]}},
        "quality": {"every": 0},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--storage-path", str(tmp_path / "out"),
                                       "--address", two_nodes.address])
    assert result.exit_code == 0, result.output[-3000:]
    trials = json.loads(CliRunner().invoke(main, ["show", str(tmp_path / "out" / "two_nodes"), "--json"]).output)
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
