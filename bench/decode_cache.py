"""Decode once, share everywhere (issue 16): a folder of CelebA-sized JPEGs (178x218, made here
from scikit-image's photographs) to 64x64 RGB with a 178 center crop.

    .venv/bin/python bench/decode_cache.py [--images 50000] [--out TABLE.md]

Rows, all in one run on this machine:
1. today's decode loop before the cache (runner/data/base.py's read_images at 8e5e853: imread,
   resize, on one core), the same decode with the center crop on one thread, and `gensweep
   prepare`'s parallel decode into the cache (threads = the cores), each as images/s;
2. a trial's time from the start of its data loading to its first batch with the cache warm
   (fresh process; the file listing, the content key and the map included, imports not);
3. the summed PSS of 4 concurrent processes that each map the cache and gather every image
   (one epoch of batches), against one copy of the decoded data;
4. the decode extrapolated to CelebA's 202,599 images.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CELEBA_IMAGES = 202_599
CELEBA_SIZE = (178, 218)  # width, height of img_align_celeba
DATA_KEYS = {"image_size": 64, "channels": 3, "crop": "center", "crop_size": 178, "val_fraction": 0.05}


def make_jpegs(folder: Path, count: int) -> None:
    """`count` distinct 178x218 JPEGs (quality 95, as CelebA's): windows of the photographs, shifted."""
    from skimage import data as photographs

    sources = [cv2.cvtColor(getattr(photographs, name)(), cv2.COLOR_RGB2BGR)
               for name in ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")]
    width, height = CELEBA_SIZE
    folder.mkdir(parents=True)
    for index in range(count):
        source = sources[index % len(sources)]
        y = (index * 7) % (source.shape[0] - height)
        x = (index * 13) % (source.shape[1] - width)
        cv2.imwrite(str(folder / f"{index + 1:06d}.jpg"), source[y : y + height, x : x + width],
                    [cv2.IMWRITE_JPEG_QUALITY, 95])


def old_read_images(files: list[Path], size: int) -> np.ndarray:
    """read_images as it was before the cache (8e5e853), RGB: one core, no crop."""
    images = np.empty((len(files), 3, size, size), np.uint8)
    for index, path in enumerate(files):
        image = cv2.resize(cv2.imread(str(path), cv2.IMREAD_COLOR), (size, size), interpolation=cv2.INTER_AREA)
        images[index] = cv2.cvtColor(image, cv2.COLOR_BGR2RGB).transpose(2, 0, 1)
    return images


# The child that plays a trial: load as a trial loads (cache warm), time to the first batch; then
# with --touch, gather every image once and wait, so the parent can read its PSS.
TRIAL = """
import json, sys, time
import torch
from runner.data import FolderData
from runner.train.tensors import load_tensors
started = time.perf_counter()
data = load_tensors("folder", FolderData(**json.loads(sys.argv[1])))
batch = next(data.batches("train", 64, torch.Generator().manual_seed(0)))
first = time.perf_counter() - started
if sys.argv[2] == "touch":
    for batch in data.batches("train", 64, torch.Generator().manual_seed(1)):
        pass
    for batch in data.batches("val", 64):
        pass
print(json.dumps({"first_batch": first}), flush=True)
sys.stdin.read()  # hold the map until the parent has measured
"""


def trial_process(keys: dict, touch: bool) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TRIAL, json.dumps(keys), "touch" if touch else "first"],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def pss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no Pss line")


def mapped_pss_bytes(pid: int, name: str) -> int:
    """PSS of the mappings of files called `name` in the process (the cache's images.npy)."""
    total, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and len(fields) >= 5:  # a mapping's header line
            inside = fields[-1].endswith(name)
        elif inside and fields[0] == "Pss:":
            total += int(fields[1]) * 1024
    return total


def baseline_pss(count: int) -> int:
    """Summed PSS of `count` processes at once that imported what a trial imports and loaded
    nothing (at once: their shared libraries' pages split between them as the trials' do)."""
    code = "import torch, runner.train.tensors, sys; print('ok', flush=True); sys.stdin.read()"
    processes = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}) for _ in range(count)]
    for process in processes:
        process.stdout.readline()
    pss = sum(pss_bytes(process.pid) for process in processes)
    for process in processes:
        process.communicate("")
    return pss


def measure(count: int) -> list[str]:
    import functools

    from runner.data import FolderData, decode_image, decoded, folder, image_files
    from runner.data.base import decode_settings

    cores = len(os.sched_getaffinity(0))
    cache_before = os.environ.get("GENSWEEP_CACHE")
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        os.environ["GENSWEEP_CACHE"] = str(scratch / "cache")  # its own cache: cold, then warm
        started = time.perf_counter()
        make_jpegs(scratch / "faces", count)
        made = time.perf_counter() - started
        keys = {"path": str(scratch / "faces"), **DATA_KEYS}
        config = FolderData(**keys)
        files = image_files(scratch / "faces")

        sample = files[: min(len(files), 5000)]  # the one-core loops, on a sample: they are slow
        started = time.perf_counter()
        old_read_images(sample, 64)
        old_rate = len(sample) / (time.perf_counter() - started)
        decode_one = functools.partial(decode_image, settings=decode_settings(config))
        started = time.perf_counter()
        decoded.decode_all(sample, (3, 64, 64), decode_one, workers=1)
        one_thread_rate = len(sample) / (time.perf_counter() - started)

        started = time.perf_counter()
        folder.SOURCE.load(config)  # what `gensweep prepare` runs: list, key, decode into the cache
        prepare_seconds = time.perf_counter() - started
        prepare_rate = count / prepare_seconds
        (entry,) = decoded.entries()
        copy_bytes = (entry.path / decoded.IMAGES_FILE).stat().st_size

        first = []
        for _ in range(3):
            process = trial_process(keys, touch=False)
            first.append(json.loads(process.stdout.readline())["first_batch"])
            process.communicate("")
        base = baseline_pss(4)
        trials = [trial_process(keys, touch=True) for _ in range(4)]
        for process in trials:
            process.stdout.readline()
        pss = [pss_bytes(process.pid) for process in trials]
        mapped = [mapped_pss_bytes(process.pid, decoded.IMAGES_FILE) for process in trials]
        for process in trials:
            process.communicate("")
    if cache_before is None:
        os.environ.pop("GENSWEEP_CACHE", None)
    else:
        os.environ["GENSWEEP_CACHE"] = cache_before

    data_pss = sum(pss) - base
    celeba_minutes = CELEBA_IMAGES / prepare_rate / 60
    return [
        f"{count:,} JPEGs of 178x218 (made in {made:.0f} s) to 64x64 RGB, center crop 178; {cores} cores.",
        "",
        "| measure | value | goal |",
        "|---|---|---|",
        f"| decode, before the cache (read_images of 8e5e853: one core, no crop) | {old_rate:,.0f} images/s | |",
        f"| decode with center crop, one thread | {one_thread_rate:,.0f} images/s | |",
        f"| `gensweep prepare` ({cores} threads, into the cache, fsync included) | {prepare_rate:,.0f} images/s ({prepare_seconds:.1f} s) | |",
        f"| prepare / the one-core loop before it | {prepare_rate / old_rate:.2f}x | >= {0.8 * cores:.1f}x (0.8 x cores) |",
        f"| prepare / one thread of the same decode | {prepare_rate / one_thread_rate:.2f}x | |",
        f"| trial start to first batch, cache warm (best of 3; imports excluded) | {min(first):.2f} s (all: {', '.join(f'{s:.2f}' for s in first)}) | < 2 s |",
        f"| one copy of the decoded data | {copy_bytes / 1e6:,.0f} MB | |",
        f"| summed PSS of 4 trials that each gathered every image (an epoch of batches of 64), less 4 processes that only imported the same, at once | {data_pss / 1e6:,.0f} MB = {data_pss / copy_bytes:.2f}x one copy | < 1.5x |",
        f"| of which the cache's map (summed PSS of images.npy in the 4) | {sum(mapped) / 1e6:,.0f} MB = {sum(mapped) / copy_bytes:.2f}x one copy | |",
        f"| CelebA's {CELEBA_IMAGES:,} images at this prepare rate | {celeba_minutes:.1f} min once per node (one thread: {CELEBA_IMAGES / one_thread_rate / 60:.1f} min) | |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50_000)
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    arguments = parser.parse_args()
    lines = measure(arguments.images)
    print("\n".join(lines))
    if arguments.out:
        arguments.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
