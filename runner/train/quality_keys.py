"""The names of the quality metrics' cached files (the feature network's weights, the val
images' features), read from numpy arrays: without torch, so `gensweep run` sees that a sweep's
quality files are cached before it imports torch (1.4-1.9 s of its start-up, BENCHMARKS.md
"Start-up"). runner.train.quality writes and reads the files under these names."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from models.feature_net_recipe import RECIPE_VERSION
from runner.data import ImageArrays, cache_dir

FEATURE_TRAINING_LIMIT = 20_000  # enough for a good digit classifier; bounds the one-off cost
REAL_FEATURES_VERSION = 1  # bump when the features computed for the same network and images change


def feature_net_key(train_shape: tuple[int, ...], leading_images: np.ndarray, leading_labels: np.ndarray) -> str:
    """The feature network's name for a labelled training split of `train_shape` whose first
    FEATURE_TRAINING_LIMIT images and labels (what it is trained on) lead `leading_*` (only
    those are read): its weights' file, and its features' key. A content hash, so the same data gets the same network."""
    digest = hashlib.sha256(f"v{RECIPE_VERSION}:{tuple(train_shape)}".encode())
    digest.update(np.ascontiguousarray(leading_images[:FEATURE_TRAINING_LIMIT]).tobytes())
    digest.update(np.ascontiguousarray(leading_labels[:FEATURE_TRAINING_LIMIT]).tobytes())
    return f"feature-net-{digest.hexdigest()[:20]}"


def feature_net_path(network_key: str) -> Path:
    return cache_dir() / f"{network_key}.pt"


def real_features_path(network_key: str, real: np.ndarray) -> Path:
    """The val images' features by `network_key`'s network: the images are hashed, so another
    split, size or sample count is another entry."""
    digest = hashlib.sha256(f"v{REAL_FEATURES_VERSION}:{network_key}:{tuple(real.shape)}".encode())
    digest.update(np.ascontiguousarray(real).tobytes())
    return cache_dir() / f"real-features-{digest.hexdigest()[:20]}.pt"


def class_features_cached(arrays: ImageArrays, samples: int) -> bool:
    """Whether the feature network for these arrays and its features of their first `samples`
    val images are both cached, each a whole file (torch.save writes a zip archive: a file cut
    short has no central directory)."""
    if arrays.train_labels is None or arrays.num_classes is None:
        return False
    network_key = feature_net_key(arrays.train_images.shape, arrays.train_images, arrays.train_labels)
    files = (feature_net_path(network_key), real_features_path(network_key, arrays.val_images[:samples]))
    return all(path.is_file() and zipfile.is_zipfile(path) for path in files)
