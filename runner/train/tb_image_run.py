"""An image as a TensorBoard run of its own, written with TensorBoard's own event writer: no
torch, so the driver's last step of a sweep (the comparison picture) does not import it (1.9 s
of `gensweep run`'s end, BENCHMARKS.md "Start-up")."""

from __future__ import annotations

import time
from pathlib import Path

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def write_image_event(logdir: Path, tag: str, png: bytes, height: int, width: int, channels: int) -> int:
    """One PNG-encoded image (height x width, `channels` 1, 3 or 4) as its own run: the
    sweep-level comparison in TensorBoard.

    Each call (the end of a run, then of every resume) writes one event file at the next step,
    so the run holds one image a step, the newest last. Returns that step.
    """
    # Every earlier call left exactly one event file here: their number is the next step.
    step = len(list(Path(logdir).glob("events.out.tfevents.*")))
    image = summary_pb2.Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=png)
    summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])
    writer = EventFileWriter(str(logdir))
    writer.add_event(event_pb2.Event(wall_time=time.time(), step=step, summary=summary))
    writer.close()
    return step
