"""The private name of torch's TensorBoard writer (torch.utils.tensorboard.SummaryWriter) that
this project uses, and the only place it does.

It is here because SummaryWriter's public add_* methods each build their own summary: none
writes one made elsewhere. The trial's summaries that need that are an image already encoded
as PNG (OpenCV encodes 8x faster than add_image's PIL), and the HParams plugin's records made
with TensorBoard's own hparams API, in the trial's run (add_hparams writes them into a new run
of its own). tests/test_internals.py writes through it and reads the event file back with
TensorBoard's reader, so an upgrade that moves the name fails that test by name.
"""

from __future__ import annotations

from tensorboard.compat.proto import summary_pb2
from torch.utils.tensorboard import SummaryWriter


def add_summary(writer: SummaryWriter, summary: summary_pb2.Summary, step: int | None = None) -> None:
    """`summary` as it is, into `writer`'s event file at `step` (None: no step, as hparams have).

    Private: SummaryWriter._get_file_writer(), which every add_* method writes through. Not the
    undocumented `writer.file_writer` attribute: that is None once the writer is closed, where
    _get_file_writer() opens a new event file, as the add_* methods do.
    """
    writer._get_file_writer().add_summary(summary, step)
