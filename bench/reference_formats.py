"""Data sets in the publishers' formats, made here, for the reference runs' data-path checks.

    python bench/reference_formats.py cifar10 [--out runs/reference/data/cifar10] [--per-file 1000]

cifar10: CIFAR-10's binary version (https://www.cs.toronto.edu/~kriz/cifar.html, "binary
version"): cifar-10-batches-bin/ data_batch_1.bin ... data_batch_5.bin and test_batch.bin, each
a run of 3073-byte records, a label byte then the 32x32 red plane, green, blue. The images are
not noise, so that a model and the quality metrics' classifier have something to learn: each
class is one shape (disc, square, triangle, ring, cross, bars, ...) in its own hue, jittered in
place, size and brightness, over a dim textured background. Same seed, same bytes.

The reference run (make results-cifar10) then reads them through the cifar10 source, trains a
conv VAE on them with gensweep run, and reports its losses and sample-quality figures: the data
path end to end, not a CIFAR-10 result.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SIDE = 32
SHAPES = ("disc", "square", "triangle", "ring", "cross", "bars", "diamond", "dots", "frame", "stripes")
RECORD = 1 + 3 * SIDE * SIDE  # CIFAR-10: label byte + 3072 pixel bytes


def draw(label: int, rng: np.random.Generator) -> np.ndarray:
    """One (32, 32, 3) RGB uint8 image of class `label`."""
    background = rng.integers(0, 60, 3).astype(np.float32)
    image = np.clip(background + rng.normal(0, 12, (SIDE, SIDE, 3)), 0, 255).astype(np.uint8)
    hue = int(label * 18)  # OpenCV hues run 0-179: ten classes, ten hues
    colour = cv2.cvtColor(np.uint8([[[hue, 220, int(rng.integers(170, 256))]]]), cv2.COLOR_HSV2RGB)[0, 0]
    colour = tuple(int(c) for c in colour)
    cx, cy = (int(v) for v in rng.integers(11, 21, 2))
    r = int(rng.integers(6, 11))
    shape = SHAPES[label]
    if shape == "disc":
        cv2.circle(image, (cx, cy), r, colour, -1, cv2.LINE_AA)
    elif shape == "square":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    elif shape == "triangle":
        points = np.int32([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]])
        cv2.fillPoly(image, [points], colour, cv2.LINE_AA)
    elif shape == "ring":
        cv2.circle(image, (cx, cy), r, colour, 2, cv2.LINE_AA)
    elif shape == "cross":
        cv2.line(image, (cx - r, cy - r), (cx + r, cy + r), colour, 3, cv2.LINE_AA)
        cv2.line(image, (cx - r, cy + r), (cx + r, cy - r), colour, 3, cv2.LINE_AA)
    elif shape == "bars":
        for dx in (-r, 0, r):
            cv2.line(image, (cx + dx, cy - r), (cx + dx, cy + r), colour, 2)
    elif shape == "diamond":
        points = np.int32([[cx, cy - r], [cx + r, cy], [cx, cy + r], [cx - r, cy]])
        cv2.fillPoly(image, [points], colour, cv2.LINE_AA)
    elif shape == "dots":
        for dx, dy in ((-1, -1), (1, -1), (-1, 1), (1, 1)):
            cv2.circle(image, (cx + dx * r // 2, cy + dy * r // 2), max(2, r // 3), colour, -1, cv2.LINE_AA)
    elif shape == "frame":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, 2)
    else:  # stripes: horizontal
        for dy in range(-r, r + 1, 4):
            cv2.line(image, (cx - r, cy + dy), (cx + r, cy + dy), colour, 1)
    return image


def cifar10_records(count: int, rng: np.random.Generator) -> bytes:
    labels = rng.integers(0, 10, count)
    records = np.empty((count, RECORD), np.uint8)
    for index, label in enumerate(labels):
        records[index, 0] = label
        records[index, 1:] = draw(int(label), rng).transpose(2, 0, 1).reshape(-1)  # R plane, G, B
    return records.tobytes()


def write_cifar10(out: Path, per_file: int, seed: int = 0) -> Path:
    folder = out / "cifar-10-batches-bin"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    names = [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
    for name in names:
        (folder / name).write_bytes(cifar10_records(per_file, rng))
    print(f"{folder}: {len(names)} files of {per_file} records ({5 * per_file} train, {per_file} test images)")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="format", required=True)
    cifar = commands.add_parser("cifar10", help="CIFAR-10 binary batches of drawn shapes")
    cifar.add_argument("--out", type=Path, default=ROOT / "runs/reference/data/cifar10")
    cifar.add_argument("--per-file", type=int, default=1000, help="records in each of the six files")
    args = parser.parse_args()
    write_cifar10(args.out, args.per_file)


if __name__ == "__main__":
    main()
