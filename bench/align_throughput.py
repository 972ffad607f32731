"""Frames per second, memory and time to the first frame of `gensweep align VIDEO` against a
plain single-process OpenCV loop over the same frames.

A video of N 512x512 frames with known shake (alignment.synthetic's scene, MJPG in .avi) is
written once per N; then, for each method:
(a) plain: one process, one OpenCV thread, decode -> estimate -> warp -> write PNG per frame
    (over the first --plain-frames frames: a per-frame rate, it does not change with N);
(b) `gensweep align VIDEO OUT` as a subprocess (its own Ray over all cores, start-up included
    in "overall", left out of "steady"), with the peak RSS of the driver process and of the
    largest Ray Data worker, sampled every 0.2 s, and the time to the first aligned frame.
Goal: steady (b) >= 0.8 x cores x (a); peak RSS the same at every N.
And the decoding itself: a seek per batch of 16 frames (what the workers do), a seek per
frame, and one sequential read, in ms a frame.

    .venv/bin/python bench/align_throughput.py [--frames 20000[,N2...]] [--methods ecc,fft,features]
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alignment import methods
from alignment.pipeline import AlignSettings, estimate
from alignment.synthetic import MARGIN, jitter, scene
from alignment.video import VideoReader

ROOT = Path(__file__).resolve().parents[1]
GENSWEEP = str(Path(sys.executable).parent / "gensweep")
BATCH = 16


def write_video(path: Path, frames: int, size: int, codec: str = "MJPG") -> None:
    rng = np.random.default_rng(0)
    view = scene(size).astype(np.float32)
    crop = np.array([[1, 0, -MARGIN], [0, 1, -MARGIN], [0, 0, 1]], float)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*codec), 25, (size, size), True)
    for index in range(frames):
        shake = np.eye(3) if index == 0 else jitter(rng, size, "euclidean", 6.0, 1.0, 0.0)
        image = cv2.warpPerspective(view, shake @ crop, (size, size), flags=cv2.INTER_LINEAR)
        image = image + rng.normal(0, 2.0, image.shape)
        writer.write(cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR))
    writer.release()


def plain_loop(video: Path, frames: int, out: Path, settings: AlignSettings) -> float:
    cv2.setNumThreads(1)
    capture = cv2.VideoCapture(str(video))
    start = time.perf_counter()
    reference = capture.read()[1]
    capture.set(cv2.CAP_PROP_POS_FRAMES, 0)
    for index in range(frames):
        frame = capture.read()[1]
        matrix = estimate(frame, reference, settings).matrix
        cv2.imwrite(str(out / f"{index:06d}.png"), methods.warp(frame, matrix))
    capture.release()
    return frames / (time.perf_counter() - start)


def decoding(video: Path, frames: int) -> dict[str, float]:
    """ms a frame: a seek per batch (batches in shuffled order, as two workers take turns), a seek
    every frame, one sequential pass."""
    cv2.setNumThreads(1)
    frames = min(frames, 2000)
    batches = [list(range(i, min(i + BATCH, frames))) for i in range(0, frames, BATCH)]
    np.random.default_rng(0).shuffle(batches)
    result = {}
    for label, seek_every_frame, order in (("seek a batch", False, batches), ("seek a frame", True, batches),
                                           ("sequential", False, [list(range(frames))])):
        reader = VideoReader(video)
        start = time.perf_counter()
        for batch in order:
            if label == "seek a batch":
                reader.position = -1  # another worker read the frames before this batch: seek
            for _ in reader.read(batch, seek_every_frame=seek_every_frame):
                pass
        result[label] = 1000 * (time.perf_counter() - start) / frames
        reader.close()
    return result


def gensweep_run(video: Path, out: Path, method: str) -> dict:
    """`gensweep align` in a subprocess, its Ray its own; peak RSS of the driver and of the
    largest worker (the processes Ray Data's actors run in), sampled every 0.2 s."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_ADDRESS": "local"}
    command = [GENSWEEP, "align", str(video), str(out), "--method", method]
    if method == "fft":
        command += ["--motion", "translation"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env,
                               start_new_session=True)
    peak_driver = peak_worker = 0
    while process.poll() is None:
        processes = _processes()
        peak_driver = max(peak_driver, processes.get(process.pid, (0, 0, ""))[1])
        for pid in _descendants(process.pid, processes):
            if processes[pid][2].startswith("ray::MapWorker"):  # Ray Data's actors set this title
                peak_worker = max(peak_worker, processes[pid][1])
        time.sleep(0.2)
    output = process.stdout.read()
    if process.returncode != 0:
        raise SystemExit(f"gensweep align failed:\n{output}")
    overall = float(re.search(r"([\d.]+) frames/s", output).group(1))
    aligned = int(re.search(r"aligned (\d+)", output).group(1))
    seconds = float(re.search(r"in ([\d.]+) s", output).group(1))
    first = float(re.search(r"first aligned frame after ([\d.]+) s", output).group(1))
    return {"overall": overall, "steady": aligned / (seconds - first), "first": first, "seconds": seconds,
            "driver_mb": peak_driver / 2**20, "worker_mb": peak_worker / 2**20}


def _processes() -> dict[int, tuple[int, int, str]]:
    """pid -> (parent pid, RSS in bytes, command line) of every process, from /proc."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = dict(line.split(":", 1) for line in (entry / "status").read_text().splitlines() if ":" in line)
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        rss = int(status.get("VmRSS", "0 kB").split()[0]) * 1024
        table[int(entry.name)] = (int(status["PPid"]), rss, command)
    return table


def _descendants(root: int, processes: dict[int, tuple[int, int, str]]) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    found, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", default="20000", help="video lengths, comma-separated (RSS compared across them)")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--plain-frames", type=int, default=500, help="frames of the single-thread loop")
    parser.add_argument("--methods", default="ecc,fft,features")
    args = parser.parse_args()
    cores = os.cpu_count()
    lengths = [int(n) for n in args.frames.split(",")]
    work = Path(tempfile.mkdtemp(prefix="align-bench-"))
    print(f"# alignment throughput: videos of {', '.join(map(str, lengths))} frames of {args.size}x{args.size} (MJPG .avi), "
          f"{cores} cores, {platform.machine()}, {time.strftime('%Y-%m-%d')}")
    videos = {}
    for n in lengths:
        started = time.perf_counter()
        videos[n] = work / f"shaken-{n}.avi"
        write_video(videos[n], n, args.size)
        print(f"# wrote {n} frames in {time.perf_counter() - started:.0f} s ({videos[n].stat().st_size / 2**20:.0f} MiB)")
    costs = decoding(videos[lengths[0]], lengths[0])
    print("# decoding MJPG .avi, ms a frame: " + ", ".join(f"{label} {ms:.2f}" for label, ms in costs.items()))
    mp4 = work / "shaken.mp4"  # inter-frame coded: a seek decodes from the last key frame
    write_video(mp4, min(lengths[0], 2000), args.size, "mp4v")
    costs = decoding(mp4, min(lengths[0], 2000))
    print("# decoding mp4v .mp4, ms a frame: " + ", ".join(f"{label} {ms:.2f}" for label, ms in costs.items()))
    print()
    print("| method | frames | plain loop, 1 thread (frames/s) | gensweep align steady (frames/s) | ratio | goal 0.8 x cores "
          "| overall incl. start-up (frames/s) | first aligned frame (s) | peak RSS driver (MiB) | peak RSS worker (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for method in args.methods.split(","):
        settings = AlignSettings(method=method, motion="translation" if method == "fft" else None)
        out = work / f"plain-{method}"
        out.mkdir()
        plain = plain_loop(videos[lengths[0]], min(args.plain_frames, lengths[0]), out, settings)
        shutil.rmtree(out)
        for n in lengths:
            out = work / f"gensweep-{method}-{n}"
            run = gensweep_run(videos[n], out, method)
            shutil.rmtree(out)
            print(f"| {method} | {n} | {plain:.1f} | {run['steady']:.1f} | {run['steady'] / plain:.2f}x | {0.8 * cores:.1f}x "
                  f"| {run['overall']:.1f} | {run['first']:.1f} | {run['driver_mb']:.0f} | {run['worker_mb']:.0f} |", flush=True)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
