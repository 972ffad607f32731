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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=9, help="moved frames per cell (plus the reference)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--methods", default=",".join((*METHODS, "features-homography", "features-orb")))
    args = parser.parse_args()
    cv2.setNumThreads(1)
    started = time.perf_counter()
    chosen = args.methods.split(",")
    sequences = {}
    results = {}
    for method in chosen:
        for photo, motion, condition in cells(method):
            key = (photo, motion, condition)
            if key not in sequences:
                sequences[key] = sequence(photo, motion, condition, args.frames + 1, args.size, seed=7)
            results[(method, *key)] = measure(method, sequences[key])
    print(f"# {args.frames} moved frames a cell, {args.size}x{args.size}; median / p95 corner error (px); "
          f"goals (median; p95 within 2x): " + ", ".join(f"{m} < {GOALS[m]}" for m in chosen)
          + f"; {time.perf_counter() - started:.0f} s")
    print("| method | photograph (kind) | motion | " + " | ".join(CONDITIONS) + " |")
    print("|---|---|---|" + "---:|" * len(CONDITIONS))
    reasons = set()
    for method in chosen:
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
                print(f"| {method} | {photo} ({kind}) | {motion} | " + " | ".join(row) + " |", flush=True)
    for reason in sorted(reasons):
        print(f"# failed: {reason}")


if __name__ == "__main__":
    main()
