"""Frames per second of `gensweep align` against a plain single-process OpenCV loop.

On 512x512 frames with known motion (alignment.synthetic), for each method:
(a) plain: one process, one OpenCV thread, read -> estimate -> warp -> write per frame;
(b) gensweep align: the whole command's work (Ray Data over all cores, start-up excluded
    as a separate column, transforms.csv included);
and the floor: read + warp + write alone, one thread. Goal: (b) >= 0.8 x cores x (a).

    .venv/bin/python bench/align_throughput.py [--frames 200] [--methods ecc,fft,features]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import ray

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alignment import methods
from alignment.pipeline import AlignSettings, align_directory, estimate, list_frames
from alignment.synthetic import make_sequence


def plain_loop(frames: list[Path], out: Path, settings: AlignSettings, do_estimate: bool = True) -> float:
    cv2.setNumThreads(1)
    start = time.perf_counter()
    reference = cv2.imread(str(frames[0]), cv2.IMREAD_UNCHANGED)
    for path in frames:
        frame = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        matrix = estimate(frame, reference, settings).matrix if do_estimate else np.eye(3)
        cv2.imwrite(str(out / path.name), methods.warp(frame, matrix))
    return len(frames) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--methods", default="ecc,fft,features")
    args = parser.parse_args()
    cores = os.cpu_count()
    work = Path(tempfile.mkdtemp(prefix="align-bench-"))
    make_sequence(work / "frames", frames=args.frames, size=args.size, motion="euclidean", seed=0)
    (work / "frames" / "truth.csv").unlink()
    frames = list_frames(work / "frames")

    out = work / "floor"
    out.mkdir()
    floor = plain_loop(frames, out, AlignSettings(), do_estimate=False)
    started = time.perf_counter()
    ray.init(num_cpus=cores, include_dashboard=False, logging_level="ERROR")
    ray_start = time.perf_counter() - started

    print(f"# alignment throughput: {args.frames} frames of {args.size}x{args.size}, {cores} cores, {platform.machine()}, {time.strftime('%Y-%m-%d')}")
    print(f"# read + warp + write alone (one thread): {floor:.1f} frames/s; Ray start-up {ray_start:.1f} s (not in the figures)")
    print()
    print("| method | plain loop, 1 thread (frames/s) | gensweep align, all cores (frames/s) | ratio | goal 0.8 x cores |")
    print("|---|---:|---:|---:|---:|")
    for method in args.methods.split(","):
        settings = AlignSettings(method=method, motion="translation" if method == "fft" else None)
        out = work / f"plain-{method}"
        out.mkdir()
        plain = plain_loop(frames, out, settings)
        out = work / f"gensweep-{method}"
        summary = align_directory(work / "frames", out, settings, say=lambda _: None)
        fast = summary.frames_per_second
        print(f"| {method} | {plain:.1f} | {fast:.1f} | {fast / plain:.2f}x | {0.8 * cores:.1f}x |")
    ray.shutdown()
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
