"""Bad input found early: a damaged image in a folder data set, a storage path that is a file or
read-only, all refused in one line before Ray starts; and a trial that fails for a reason a retry
cannot change (a NaN loss) fails once, not max_failures + 1 times."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from mounts import tmpfs

GENSWEEP = str(Path(sys.executable).parent / "gensweep")

FOLDER_SPEC = {
    "name": "bad_input",
    "model": {"name": "vae", "hidden_dim": 32},
    "data": {"name": "folder", "path": "images", "image_size": 16},
    "train": {"epochs": 1, "batch_size": 8},
}


def _gensweep(*args: str, cwd: Path, timeout: float = 300, watch_ray: bool = True) -> subprocess.CompletedProcess:
    # A Ray temp directory of the test's own: if Ray started at all, it is there afterwards.
    # (Not where Ray must really start: its socket paths would grow past the 107-byte limit.)
    env = {**os.environ, "RAY_TMPDIR": str(cwd / "raytmp")} if watch_ray else None
    return subprocess.run([GENSWEEP, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def _images(directory: Path, count: int = 6) -> list[Path]:
    """Real image files, written by OpenCV in their real formats."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        path = directory / f"frame{index}.{'png' if index % 2 else 'jpg'}"
        assert cv2.imwrite(str(path), rng.integers(0, 256, (24, 24, 3), dtype=np.uint8))
        paths.append(path)
    return paths


def _damage_jpeg_header(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[2:40] = bytes(range(38))  # the markers after SOI: no decoder recognises the file
    path.write_bytes(bytes(raw))


def _assert_refused_before_ray(result: subprocess.CompletedProcess, root: Path, *named: str) -> None:
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: "), result.stderr
    for text in named:
        assert text in errors[0], errors[0]
    assert "Traceback" not in result.stdout + result.stderr
    assert not (root / "raytmp").exists(), "Ray was started"


@pytest.mark.parametrize("damage", [
    pytest.param("corrupt_jpeg", marks=pytest.mark.slow),  # slow: two commands that import torch
    "zero_byte_png",
    pytest.param("truncated_png", marks=pytest.mark.slow),
])
def test_a_damaged_image_is_named_by_validate_and_run_before_ray_starts(tmp_path, damage):
    paths = _images(tmp_path / "images")
    if damage == "corrupt_jpeg":
        bad = paths[2]
        _damage_jpeg_header(bad)
    elif damage == "zero_byte_png":
        bad = paths[3]
        bad.write_bytes(b"")
    else:
        bad = paths[5]
        bad.write_bytes(bad.read_bytes()[:-30])  # the pixels cut short: the header still reads
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(FOLDER_SPEC))

    validated = _gensweep("validate", "s.yaml", cwd=tmp_path)
    _assert_refused_before_ray(validated, tmp_path, bad.name, "data.path")
    ran = _gensweep("run", "s.yaml", "--storage-path", "out", cwd=tmp_path)
    _assert_refused_before_ray(ran, tmp_path, bad.name, "data.path")
    assert not (tmp_path / "out").exists()


def test_a_damaged_target_of_a_paired_folder_set_is_named(tmp_path):
    _images(tmp_path / "in")
    targets = _images(tmp_path / "out_images")
    targets[1].write_bytes(b"")
    spec = {
        "name": "pairs", "model": {"name": "unet_sr"},
        "data": {"name": "paired", "source": "folders", "input_path": "in", "target_path": "out_images", "image_size": 16},
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    _assert_refused_before_ray(_gensweep("validate", "s.yaml", cwd=tmp_path), tmp_path, targets[1].name, "data.target_path")


def test_a_storage_path_that_is_a_file_is_refused_before_ray_starts(tmp_path):
    _images(tmp_path / "images")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(FOLDER_SPEC))
    (tmp_path / "results").write_text("a file, not a directory")
    result = _gensweep("run", "s.yaml", "--storage-path", "results", cwd=tmp_path)
    _assert_refused_before_ray(result, tmp_path, "--storage-path results", "not a directory")
    result = _gensweep("run", "s.yaml", "--storage-path", "results/deeper", cwd=tmp_path)
    _assert_refused_before_ray(result, tmp_path, "--storage-path results/deeper", "not a directory")


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only tmpfs: root ignores mode bits, but not a read-only mount."""
    with tmpfs(tmp_path / f"ro-{uuid.uuid4().hex[:6]}", "ro,size=1m") as directory:
        yield directory


def test_a_read_only_storage_path_is_refused_before_ray_starts(tmp_path, read_only_dir):
    _images(tmp_path / "images")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(FOLDER_SPEC))
    result = _gensweep("run", "s.yaml", "--storage-path", str(read_only_dir / "runs"), cwd=tmp_path)
    _assert_refused_before_ray(result, tmp_path, "cannot write in", str(read_only_dir))


def test_a_read_only_working_directory_is_refused_before_ray_starts(tmp_path, read_only_dir):
    # The default --storage-path is runs/ in the working directory.
    spec = dict(FOLDER_SPEC, data={**FOLDER_SPEC["data"], "path": str(tmp_path / "images")})
    _images(tmp_path / "images")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "RAY_TMPDIR": str(tmp_path / "raytmp")}
    result = subprocess.run([GENSWEEP, "run", str(tmp_path / "s.yaml")], cwd=read_only_dir, env=env,
                            capture_output=True, text=True, timeout=300, check=False)
    _assert_refused_before_ray(result, tmp_path, "--storage-path runs", "cannot write in", str(read_only_dir))


@pytest.mark.slow
@pytest.mark.parametrize("pack", [{}, {"pack": 2, "pack_wait": 1}], ids=["alone", "packed"])
def test_a_nan_loss_fails_its_trial_once_without_retries(tmp_path, pack):
    spec = {
        "name": "nan",
        "model": {"name": "vae", "hidden_dim": 32},
        "data": {"name": "digits", "train_size": 256, "val_size": 64},
        "train": {"epochs": 2, "batch_size": 64, "lr": 1.0e9},
        "search": {"model.latent_dim": {"grid": [2]}},
        "tune": {"max_failures": 2} | pack,  # packed: the NaN is met in the pack's trainer
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    result = _gensweep("run", "s.yaml", "--storage-path", "out", cwd=tmp_path, timeout=600, watch_ray=False)
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    (record_path,) = (tmp_path / "out" / "nan").glob("*/gensweep.json")
    record = json.loads(record_path.read_text())
    assert record["status"] == "error" and record["attempts"] == 1, record
    assert "became nan" in record["error"] and "\n" not in record["error"], record["error"]
    assert "try a lower train.lr" in record["error"], record["error"]
    assert record["error"] in result.stdout  # the table's reason is the record's one line
    assert "0 of 1 trials finished" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_a_truncated_mnist_idx_file_is_named_by_the_check(tmp_path):
    from runner.data import SOURCES, DataError, MnistData

    def idx(shape: tuple[int, ...], body: bytes) -> bytes:
        return bytes([0, 0, 8, len(shape)]) + b"".join(n.to_bytes(4, "big") for n in shape) + body

    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx((10, 28, 28), bytes(10 * 28 * 28 - 100)))  # cut short
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx((10,), bytes(10)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte: header says \(10, 28, 28\) but the file holds 7,756 bytes"):
        SOURCES["mnist"].check(MnistData(path=str(tmp_path)))
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(idx((10, 28, 28), bytes(10 * 28 * 28)))
    SOURCES["mnist"].check(MnistData(path=str(tmp_path)))  # whole again: passes
