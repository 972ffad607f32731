"""transforms.csv: one row a frame, in name order; and corner errors between two such files.

During a run rows are appended a finished batch at a time and fsynced (RecordAppender), so a
SIGKILL loses at most the batches in flight; a torn last line is dropped on reading. At the
start and the end of a run the file is rewritten whole (sorted, one row a frame) and renamed
over its name.
"""

from __future__ import annotations

import csv
import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MATRIX_COLUMNS = [f"h{row}{col}" for row in range(3) for col in range(3)]
# index: the frame's index in the video, or its place in the folder's sorted listing.
# mad_before, mad_after: mean absolute grey-level difference from the reference before and after
# warping, the frame's brightness and contrast matched to the reference's first (the residual
# motion summary.png shows); empty where the frame could not be read.
COLUMNS = ["frame", "ok", "method", "score", "reason", *MATRIX_COLUMNS, "index", "mad_before", "mad_after"]


@dataclass
class FrameRecord:
    frame: str  # file name
    ok: bool
    method: str
    score: float
    reason: str
    matrix: np.ndarray  # (3, 3) frame pixel -> reference pixel, h22 = 1
    index: int = -1  # -1: not recorded (a file from before the column)
    mad_before: float = math.nan
    mad_after: float = math.nan

    def row(self) -> dict:
        matrix = self.matrix / self.matrix[2, 2]
        values = {name: f"{value:.10g}" for name, value in zip(MATRIX_COLUMNS, matrix.flatten())}
        # One physical line a row: a torn last line is then always the last line of the file.
        reason = " ".join(self.reason.split())
        return {"frame": self.frame, "ok": int(self.ok), "method": self.method,
                "score": f"{self.score:.6g}", "reason": reason, **values, "index": self.index,
                "mad_before": _number(self.mad_before), "mad_after": _number(self.mad_after)}


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6g}"


def _float(text: str | None) -> float:
    return float(text) if text else math.nan


def write_records(path: Path, records: list[FrameRecord]) -> None:
    """The whole file, sorted by frame name, renamed over `path` once it is on disk."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)  # a stale one, or a link planted there, is not written through
    with temporary.open("x", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS)
        writer.writeheader()
        for record in sorted(records, key=lambda r: r.frame):
            writer.writerow(record.row())
        stream.flush()
        os.fsync(stream.fileno())
    temporary.replace(path)


class RecordAppender:
    """Appends finished rows to a file write_records made; each append is on disk when it returns."""

    def __init__(self, path: Path):
        self.stream = Path(path).open("a", newline="")  # noqa: SIM115 - open for the whole run, closed by close()
        self.writer = csv.DictWriter(self.stream, fieldnames=COLUMNS)

    def append(self, records: list[FrameRecord]) -> None:
        for record in records:
            self.writer.writerow(record.row())
        self.stream.flush()
        os.fsync(self.stream.fileno())

    def close(self) -> None:
        self.stream.close()


def read_records(path: Path) -> dict[str, FrameRecord]:
    """Rows by frame name; a later row of a name wins. A last line without its newline is a
    write a SIGKILL cut short: dropped (its frame is redone), never parsed."""
    text = Path(path).read_text()
    if not text.endswith("\n"):
        text = text[: text.rfind("\n") + 1]
    records = {}
    for row in csv.DictReader(io.StringIO(text, newline="")):
        matrix = np.array([float(row[name]) for name in MATRIX_COLUMNS]).reshape(3, 3)
        records[row["frame"]] = FrameRecord(
            row["frame"], row["ok"] in ("1", "True", "true"), row["method"], float(row["score"] or 0), row["reason"], matrix,
            int(row.get("index") or -1), _float(row.get("mad_before")), _float(row.get("mad_after")),
        )
    return records


def corner_errors(estimate: np.ndarray, truth: np.ndarray, width: int, height: int) -> float:
    """Mean distance, in reference pixels, between the four frame corners mapped both ways."""
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [0, height - 1, 1], [width - 1, height - 1, 1]], float).T
    mapped = [(matrix @ corners) for matrix in (estimate, truth)]
    mapped = [points[:2] / points[2] for points in mapped]
    return float(np.linalg.norm(mapped[0] - mapped[1], axis=0).mean())


@dataclass
class Accuracy:
    method: str
    frames: int
    failed: int
    median: float
    p95: float


def accuracy(estimates: dict[str, FrameRecord], truth: dict[str, FrameRecord], width: int, height: int) -> list[Accuracy]:
    """Per method: corner-error median and 95th percentile over aligned frames, and failures."""
    by_method: dict[str, list] = {}
    for name, record in estimates.items():
        by_method.setdefault(record.method, []).append((name, record))
    results = []
    for method, items in sorted(by_method.items()):
        errors = [corner_errors(r.matrix, truth[n].matrix, width, height) for n, r in items if r.ok and n in truth]
        failed = sum(not r.ok for _, r in items)
        results.append(Accuracy(method, len(items), failed,
                                float(np.median(errors)) if errors else float("nan"),
                                float(np.percentile(errors, 95)) if errors else float("nan")))
    return results
