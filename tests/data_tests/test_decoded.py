"""The decoded-image cache (runner/data/decoded.py) on real JPEG files made from scikit-image's
photographs: a hit decodes nothing, a changed file makes a new entry, a damaged entry is rebuilt,
concurrent processes decode once between them, a killed build leaves nothing half-made, a full
filesystem is one line, and `gensweep prepare --list/--clear` show and free it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from mounts import tmpfs
from skimage import data as photographs

from runner.cli import main
from runner.data import DataError, decoded

SHAPE = (3, 32, 32)
SETTINGS = {"image_size": 32, "channels": 3}


def decode_photo(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"{path}: not a readable image")
    image = cv2.resize(image, SHAPE[1:], interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)


def counting_decoder(log: Path):
    """decode_photo that appends one line to `log` a file: how many files were decoded, across processes."""
    def decode(path: Path) -> np.ndarray:
        with open(log, "a") as stream:
            stream.write(f"{path.name}\n")
        return decode_photo(path)
    return decode


def decoded_count(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def photo_files(tmp_path) -> list[Path]:
    folder = tmp_path / "photos"
    folder.mkdir()
    files = []
    for index, name in enumerate(["astronaut", "chelsea", "coffee", "rocket"] * 10):
        image = getattr(photographs, name)()
        shift = index * 3
        path = folder / f"{index:03d}.jpg"
        cv2.imwrite(str(path), cv2.cvtColor(image[shift:, shift:], cv2.COLOR_RGB2BGR))
        files.append(path)
    return files


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GENSWEEP_CACHE", str(tmp_path / "cache"))


def test_a_cached_set_decodes_once_and_maps_read_only(photo_files, tmp_path):
    log = tmp_path / "decoded.log"
    first = decoded.decoded_images(photo_files, SETTINGS, SHAPE, counting_decoder(log), workers=2)
    assert decoded_count(log) == len(photo_files)
    expected = np.stack([decode_photo(path) for path in photo_files])
    np.testing.assert_array_equal(first, expected)  # in file order, each image as one decode gives it
    again = decoded.decoded_images(photo_files, SETTINGS, SHAPE, counting_decoder(log))
    assert decoded_count(log) == len(photo_files)  # a hit: nothing decoded
    assert decoded.is_mapped(again) and not again.flags.writeable
    np.testing.assert_array_equal(again, expected)
    with pytest.raises(ValueError):
        again[0, 0, 0, 0] = 1


def test_a_changed_file_or_setting_makes_a_new_entry(photo_files, tmp_path):
    log = tmp_path / "decoded.log"
    decoded.decoded_images(photo_files, SETTINGS, SHAPE, counting_decoder(log))
    cv2.imwrite(str(photo_files[5]), cv2.cvtColor(photographs.camera(), cv2.COLOR_GRAY2BGR))
    changed = decoded.decoded_images(photo_files, SETTINGS, SHAPE, counting_decoder(log))
    assert decoded_count(log) == 2 * len(photo_files)
    np.testing.assert_array_equal(changed[5], decode_photo(photo_files[5]))
    decoded.decoded_images(photo_files, {**SETTINGS, "crop": "center"}, SHAPE, counting_decoder(log))
    assert decoded_count(log) == 3 * len(photo_files)
    assert len(decoded.entries()) == 3


def test_a_damaged_entry_is_rebuilt_and_said(photo_files, tmp_path):
    decoded.decoded_images(photo_files, SETTINGS, SHAPE, decode_photo)
    (entry,) = decoded.entries()
    images = entry.path / decoded.IMAGES_FILE
    os.truncate(images, images.stat().st_size // 2)
    heard = []
    with decoded.reporting(heard.append):
        rebuilt = decoded.decoded_images(photo_files, SETTINGS, SHAPE, decode_photo)
    assert any("rebuilding" in line and "does not map" in line for line in heard), heard
    np.testing.assert_array_equal(rebuilt[-1], decode_photo(photo_files[-1]))
    (entry.path / decoded.META_FILE).write_text("{not json")
    heard.clear()
    with decoded.reporting(heard.append):
        decoded.decoded_images(photo_files, SETTINGS, SHAPE, decode_photo)
    assert any("meta.json" in line for line in heard), heard


# A trial process of its own (a fresh interpreter, as Ray's are; not a fork of this one, which may
# hold Ray's threads): decodes the files listed in argv[1] into the cache, each decode logged a
# line in argv[2], sleeping argv[3] seconds a file; prints the sum of the pixels.
CHILD = """
import sys, time
from pathlib import Path
import cv2, numpy as np
from runner.data import decoded
files = [Path(line) for line in Path(sys.argv[1]).read_text().splitlines()]
def decode(path):
    with open(sys.argv[2], "a") as stream:
        stream.write(path.name + "\\n")
    time.sleep(float(sys.argv[3]))
    image = cv2.resize(cv2.imread(str(path), cv2.IMREAD_COLOR), (32, 32), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
images = decoded.decoded_images(files, {"image_size": 32, "channels": 3}, (3, 32, 32), decode, workers=1)
print(int(images.astype(np.int64).sum()), flush=True)
"""


def _child(files: list[Path], log: Path, tmp_path: Path, seconds_a_file: float = 0.0) -> subprocess.Popen:
    listing = tmp_path / "files.txt"
    listing.write_text("\n".join(map(str, files)))
    root = Path(__file__).resolve().parents[2]
    return subprocess.Popen([sys.executable, "-c", CHILD, str(listing), str(log), str(seconds_a_file)], cwd=root,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(root)})


def test_concurrent_processes_decode_once_between_them(photo_files, tmp_path):
    log = tmp_path / "decoded.log"
    children = [_child(photo_files, log, tmp_path, 0.01) for _ in range(3)]
    sums = [child.communicate(timeout=120)[0].strip() for child in children]
    assert [child.returncode for child in children] == [0, 0, 0]
    assert decoded_count(log) == len(photo_files)  # one built it; the others waited and mapped it
    assert len(set(sums)) == 1 and int(sums[0]) > 0
    assert len(decoded.entries()) == 1


def test_a_build_killed_midway_leaves_no_entry(photo_files, tmp_path):
    log = tmp_path / "decoded.log"
    child = _child(photo_files, log, tmp_path, 0.05)
    deadline = time.monotonic() + 60
    while decoded_count(log) < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert 0 < decoded_count(log) < len(photo_files)
    assert decoded.entries() == []  # nothing half-made is an entry
    leftovers = [p.name for p in decoded.decoded_root().iterdir() if p.name.endswith(".building")]
    assert leftovers
    images = decoded.decoded_images(photo_files, SETTINGS, SHAPE, decode_photo)
    np.testing.assert_array_equal(images[0], decode_photo(photo_files[0]))
    decoded.clear()
    assert list(decoded.decoded_root().iterdir()) == []  # the dead build's directory and the lock too


def test_an_unreadable_file_is_named_and_nothing_is_kept(photo_files):
    photo_files[7].write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(DataError, match="007.jpg"):
        decoded.decoded_images(photo_files, SETTINGS, SHAPE, decode_photo)
    assert decoded.entries() == []
    assert not [p for p in decoded.decoded_root().iterdir() if p.name.endswith(".building")]


def test_a_full_filesystem_is_one_line_and_leaves_nothing(photo_files, tmp_path, monkeypatch):
    with tmpfs(tmp_path / "small", "size=64k") as small:
        monkeypatch.setenv("GENSWEEP_CACHE", str(small))
        with pytest.raises(DataError, match=r"no space left in .* for 0.5 MB of decoded images") as caught:
            decoded.decoded_images(photo_files, SETTINGS, (3, 64, 64), lambda path: np.zeros((3, 64, 64), np.uint8))
        assert "\n" not in str(caught.value)
        assert decoded.entries() == []
        assert not [p for p in decoded.decoded_root().iterdir() if p.name.endswith(".building")]


def test_prepare_lists_and_clears_the_cache(photo_files):
    decoded.decoded_images(photo_files, SETTINGS, SHAPE, decode_photo)
    decoded.decoded_images(photo_files[:10], SETTINGS, SHAPE, decode_photo)
    listing = CliRunner().invoke(main, ["prepare", "--list"])
    assert listing.exit_code == 0, listing.output
    keys = [entry.key for entry in decoded.entries()]
    assert all(key in listing.output for key in keys) and "40" in listing.output and "3x32x32" in listing.output
    one = CliRunner().invoke(main, ["prepare", "--clear", "--key", keys[0]])
    assert one.exit_code == 0 and "removed 1 decoded data set " in one.output
    assert [entry.key for entry in decoded.entries()] == keys[1:]
    everything = CliRunner().invoke(main, ["prepare", "--clear"])
    assert everything.exit_code == 0 and decoded.entries() == []
    assert "no decoded data sets" in CliRunner().invoke(main, ["prepare", "--list"]).output
    misuse = CliRunner().invoke(main, ["prepare", "--key", "abc"])
    assert misuse.exit_code == 2 and "--key goes with --clear" in misuse.output


def _folder_spec(tmp_path: Path, photos: Path, **data) -> Path:
    import yaml

    spec = {"name": "faces", "model": {"name": "vae"},
            "data": {"name": "folder", "path": str(photos), "image_size": 32, "channels": 3, "crop": "center", "crop_size": 180, **data},
            "train": {"epochs": 1}, "quality": {"every": 0}}
    path = tmp_path / "faces.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_a_folder_source_maps_the_cache_and_matches_decoding_in_memory(photo_files):
    from runner.data import FolderData, load

    cached = load("folder", FolderData(path=str(photo_files[0].parent), image_size=32, channels=3, crop="center"))
    again = load("folder", FolderData(path=str(photo_files[0].parent), image_size=32, channels=3, crop="center"))
    in_memory = load("folder", FolderData(path=str(photo_files[0].parent), image_size=32, channels=3, crop="center", cache=False))
    assert decoded.is_mapped(again.train_images) and decoded.is_mapped(again.val_images)
    assert not decoded.is_mapped(in_memory.train_images)
    assert len(decoded.entries()) == 1
    for arrays in (cached, again):
        np.testing.assert_array_equal(arrays.train_images, in_memory.train_images)
        np.testing.assert_array_equal(arrays.val_images, in_memory.val_images)
    assert len(in_memory.val_images) == 4 and len(in_memory.train_images) == 36


def test_gensweep_prepare_decodes_a_spec_once(photo_files, tmp_path):
    spec = _folder_spec(tmp_path, photo_files[0].parent)
    first = CliRunner().invoke(main, ["prepare", str(spec)])
    assert first.exit_code == 0, first.output
    assert "decoding 40 images into the data cache" in first.output
    assert "ready: 36 train + 4 val images, 3x32x32" in first.output and "(cache: " in first.output
    second = CliRunner().invoke(main, ["prepare", str(spec)])
    assert second.exit_code == 0 and "decoding" not in second.output  # a hit
    assert len(decoded.entries()) == 1
    other = CliRunner().invoke(main, ["prepare", str(spec), "--set", "data.image_size=16"])
    assert other.exit_code == 0 and "decoding 40 images" in other.output and len(decoded.entries()) == 2
    photo_files[3].write_bytes(b"")
    broken = CliRunner().invoke(main, ["prepare", str(spec), "--set", "data.image_size=24"])
    assert broken.exit_code == 2 and "003.jpg" in broken.output and "empty file" in broken.output
