"""Shared fixtures: a private digits cache, tiny specs, the real MNIST directory when present."""

from __future__ import annotations

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
