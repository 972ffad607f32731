"""TensorBoard files for one trial: scalars, image grids and HParams session data.

HParams records are made with TensorBoard's own hparams summary API, written into the trial's
own run so the HParams tab lists one session per trial, beside that trial's curves.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_api
from torch.utils.tensorboard import SummaryWriter

from runner.files import write_bytes
from runner.train.tensorboard_internals import add_summary

HParamValue = int | float | str | bool


class TrialLogger:
    def __init__(self, logdir: Path, purge_step: int | None = None):
        # purge_step: on a resumed trial, events at or past this step from the crashed run go.
        self.logdir = Path(logdir)
        self.writer = SummaryWriter(str(logdir), purge_step=purge_step, flush_secs=10)

    def scalars(self, prefix: str, values: Mapping[str, float], step: int) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{prefix}/{name}", value, step)

    def picture(self, filename: str, grid: torch.Tensor) -> None:
        """A (C, H, W) image in [0, 1] as a PNG file in the trial's directory (samples.png)."""
        save_png(grid, self.logdir / filename)

    def image(self, tag: str, grid: torch.Tensor, step: int, filename: str | None = None) -> None:
        """A (C, H, W) image in [0, 1]; with `filename`, also that PNG file in the trial's
        directory, the very bytes TensorBoard holds, written whole (replacing the last one)."""
        # Encoded by OpenCV: SummaryWriter.add_image's PIL encoder took 20 ms of a 242x242 grid
        # (OpenCV: 2.5 ms), a cost paid for every grid of every epoch of every trial. Once: the
        # event and the file share the encoding.
        encoded = png_bytes(grid)
        height, width = grid.shape[-2:]
        image = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=grid.shape[0], encoded_image_string=encoded
        )
        summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)])
        add_summary(self.writer, summary, step)
        if filename is not None:
            write_bytes(self.logdir / filename, encoded)

    def hparams(
        self,
        values: Mapping[str, Any],
        metric_tags: list[str],
        discrete: Mapping[str, list] | None = None,
    ) -> None:
        """Declare this trial a session with `values` and list the metrics to compare.

        discrete: a grid's values by name, declared as that hparam's domain (the HParams tab's
        filter); one of more than DISCRETE_LIMIT values is left for TensorBoard to gather from the
        sessions, rather than written into every trial's event file.
        """
        discrete = discrete or {}
        declared, session = [], {}
        for name, value in values.items():
            domain = discrete.get(name)
            if domain is not None and len(domain) <= DISCRETE_LIMIT:
                kind = _common_kind([value, *domain])
                choices = [kind(v) for v in _unique(domain, kind)]
                declared.append(hparams_api.HParam(name, hparams_api.Discrete(choices, dtype=type(choices[0]))))
            else:
                kind = _common_kind([value])
                declared.append(hparams_api.HParam(name))
            session[name] = kind(value)
        metrics = [hparams_api.Metric(tag) for tag in metric_tags]
        add_summary(self.writer, hparams_api.hparams_config_pb(declared, metrics))
        add_summary(self.writer, hparams_api.hparams_pb(session))

    def finish(self, succeeded: bool) -> None:
        status = api_pb2.STATUS_SUCCESS if succeeded else api_pb2.STATUS_FAILURE
        add_summary(self.writer, _session_end_pb(status))
        self.close()

    def flush(self) -> None:
        """Everything logged so far written to the event file."""
        self.writer.flush()

    def close(self) -> None:
        self.writer.flush()
        self.writer.close()


DISCRETE_LIMIT = 100  # values of a declared HParams domain


def _common_kind(values: list[Any]) -> Callable[[Any], HParamValue]:
    """One type for an hparam's values and its domain: TensorBoard's Discrete takes one only.

    bool, int, float (ints and floats together: float) or, for anything else or a mix, text.
    """
    kinds = {
        bool if isinstance(v, bool) else int if isinstance(v, int) else float if isinstance(v, float) else str
        for v in values
    }
    if kinds in ({bool}, {int}, {float}):
        return kinds.pop()
    if kinds == {int, float}:
        return float
    return _text


def _text(value: Any) -> str:
    return value if isinstance(value, str) else str(value)  # None, lists, a mix: shown as text rather than dropped


def _unique(values: list[Any], kind: Callable[[Any], HParamValue]) -> list[Any]:
    # 1 and 1.0, or None and "None", are one value once they share a type.
    seen: dict[Any, Any] = {}
    for value in values:
        seen.setdefault(kind(value), value)
    return list(seen.values())


def _session_end_pb(status: int) -> summary_pb2.Summary:
    # TensorBoard's v2 API writes session starts but not ends; this is the record it reads.
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    data = plugin_data_pb2.HParamsPluginData(session_end_info=end, version=metadata.PLUGIN_DATA_VERSION)
    value = summary_pb2.Summary.Value(
        tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data)
    )
    return summary_pb2.Summary(value=[value])


def save_png(grid: torch.Tensor, path: Path) -> None:
    """A (C, H, W) image in [0, 1] as a PNG file, written whole or not at all."""
    write_bytes(path, png_bytes(grid))


def png_bytes(grid: torch.Tensor) -> bytes:
    """A (C, H, W) image in [0, 1] (C: 1 or 3) encoded as PNG."""
    pixels = (grid.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0).cpu().numpy()
    if pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    ok, encoded = cv2.imencode(".png", np.ascontiguousarray(pixels))
    if not ok:
        raise OSError(f"OpenCV could not encode a {pixels.shape} image as PNG")
    return encoded.tobytes()

