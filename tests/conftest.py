"""Shared fixtures: a private digits cache, tiny specs, the real MNIST directory when present, a
Ray runtime, and the fixed batches the model tests train on."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MNIST_DIR = ROOT.parent / "shared" / "data" / "mnist"


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    # Tests must not read a digits cache that an older generator left in the user's home.
    os.environ["GENSWEEP_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture
def tiny_document() -> dict:
    """A spec document that trains in well under a second."""
    return {
        "name": "tiny",
        "model": {"name": "vae", "latent_dim": 2},
        "data": {"name": "digits", "train_size": 256, "val_size": 64},
        "train": {"epochs": 1, "batch_size": 64},
    }


@pytest.fixture
def mnist_dir() -> Path:
    if not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST test set not present at {MNIST_DIR}")
    return MNIST_DIR


@contextlib.contextmanager
def _ray_here():
    """Ray on this machine's cores, no dashboard, shut down after."""
    import ray

    # address="local": a Ray of its own, whatever cluster the last `ray start` here left its address for
    ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level="ERROR")
    try:
        yield ray
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def ray_runtime():
    """One Ray for a test module (the tests in it share its actors and CPUs)."""
    with _ray_here() as ray:
        yield ray


@pytest.fixture
def fresh_ray():
    """One Ray for one test: for tests whose actors hold CPUs the next test would wait for."""
    with _ray_here() as ray:
        yield ray


@pytest.fixture(scope="session")
def fixed_batches() -> dict:
    """One batch of each kind of data a model trains on: 64 digits, 16 degraded/clean pairs, 16
    images of each of two digit styles (keyed by DataInfo.pairing)."""
    from runner.data import DigitsData
    from runner.data.pairs import PairedData, UnpairedData
    from runner.train.tensors import batches, load_tensors

    digits = load_tensors("digits", DigitsData(train_size=64, val_size=16, seed=0))
    paired = load_tensors("paired", PairedData(train_size=16, val_size=16))
    unpaired = load_tensors("unpaired", UnpairedData(train_size=16, val_size=16))
    return {
        None: next(batches(digits.train_images, digits.train_labels, 64)),
        "paired": next(paired.batches("train", 16)),
        "unpaired": next(unpaired.batches("train", 16)),
    }


@pytest.fixture
def fixed_batch(fixed_batches):
    """64 labelled digits, the same in every test."""
    return fixed_batches[None]


# The files that start Ray or train for long, first: `make test` hands files to two test
# processes in this order, so the long ones overlap and the short ones fill the gaps at the end,
# rather than one long file running alone at the end while the other process idles.
LONG_FIRST = ("tests/sweep_tests/", "tests/cluster_tests/", "tests/alignment_tests/", "tests/models_tests/test_ddpm.py",
              "tests/test_gpu_bench.py", "tests/cli_tests/test_bad_input.py", "tests/results_tests/",
              "tests/models_tests/", "tests/train_tests/")


def pytest_configure(config):
    """Under `-n N` (make test), each test process's torch takes its share of the cores: by
    default each takes them all, and N processes' compute threads on the same cores wait on
    each other (the DDPM test took 142 s beside another process, 54 s alone). A trial's
    process sets its own threads (runner.sweep.trial), so only what runs in-process is held."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        return next((index for index, prefix in enumerate(LONG_FIRST) if item.nodeid.startswith(prefix)), len(LONG_FIRST))

    items.sort(key=rank)  # stable: a file's tests keep their order
