"""Corner error of each alignment method, at its defaults, on photographs it was never tuned on.

Seven scikit-image photographs (a scene, a face, text, two textures, the low-contrast moon, a
landscape), each moved by known matrices made with scipy, not with alignment/synthetic.py
(tests/moved_frames.py): pure sub-pixel shifts (Fourier shift) and shift + rotation up to 1 deg
+ zoom up to 1% (cubic spline), each clean, with additive noise of sigma 2 and 6 grey levels,
and with brightness and contrast drifting +-30% across the sequence. Prints a markdown table:
median and p95 corner error (px) per method x photograph x motion x condition, and failures;
a cell outside its goal (median, or p95 over twice the median goal) is in bold. The methods at
their defaults (ecc euclidean, fft translation, features SIFT partial), and beside them features
with a homography, and with ORB (`gensweep align`'s detector unless --detector sift).

    .venv/bin/python bench/align_accuracy.py [--frames 9] [--size 256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from moved_frames import CONDITIONS, GOALS, METHODS, MOTIONS, PHOTOS, cells, measure, sequence


def table(frames: int = 9, size: int = 256, methods: tuple[str, ...] = (*METHODS, "features-homography", "features-orb")) -> list[str]:
    """The accuracy table's lines (markdown, with its header and failure reasons as # lines)."""
    cv2.setNumThreads(1)
    started = time.perf_counter()
    sequences = {}
    results = {}
    for method in methods:
        for photo, motion, condition in cells(method):
            key = (photo, motion, condition)
            if key not in sequences:
                sequences[key] = sequence(photo, motion, condition, frames + 1, size, seed=7)
            results[(method, *key)] = measure(method, sequences[key])
    lines = [f"# {frames} moved frames a cell, {size}x{size}; median / p95 corner error (px); "
             f"goals (median; p95 within 2x): " + ", ".join(f"{m} < {GOALS[m]}" for m in methods)
             + f"; {time.perf_counter() - started:.0f} s",
             "| method | photograph (kind) | motion | " + " | ".join(CONDITIONS) + " |",
             "|---|---|---|" + "---:|" * len(CONDITIONS)]
    reasons = set()
    for method in methods:
        for photo, kind in PHOTOS.items():
            for motion in MOTIONS:
                if (method, photo, motion, CONDITIONS[0]) not in results:
                    continue
                row = []
                for condition in CONDITIONS:
                    errors, failures = results[(method, photo, motion, condition)]
                    text = f"{np.median(errors):.3f} / {np.percentile(errors, 95):.3f}" if errors else "-"
                    if failures:
                        text += f" ({len(failures)} failed)"
                        reasons.update(failures)
                    if errors and (np.median(errors) >= GOALS[method] or np.percentile(errors, 95) >= 2 * GOALS[method]):
                        text = f"**{text}**"
                    row.append(text)
                lines.append(f"| {method} | {photo} ({kind}) | {motion} | " + " | ".join(row) + " |")
    lines += [f"# failed: {reason}" for reason in sorted(reasons)]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=9, help="moved frames per cell (plus the reference)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--methods", default=",".join((*METHODS, "features-homography", "features-orb")))
    args = parser.parse_args()
    print("\n".join(table(args.frames, args.size, tuple(args.methods.split(",")))))


if __name__ == "__main__":
    main()
