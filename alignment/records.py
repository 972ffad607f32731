"""transforms.csv: one row a frame, in name order; and corner errors between two such files."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MATRIX_COLUMNS = [f"h{row}{col}" for row in range(3) for col in range(3)]
COLUMNS = ["frame", "ok", "method", "score", "reason", *MATRIX_COLUMNS]


@dataclass
class FrameRecord:
    frame: str  # file name
    ok: bool
    method: str
    score: float
    reason: str
    matrix: np.ndarray  # (3, 3) frame pixel -> reference pixel, h22 = 1

    def row(self) -> dict:
        matrix = self.matrix / self.matrix[2, 2]
        values = {name: f"{value:.10g}" for name, value in zip(MATRIX_COLUMNS, matrix.flatten())}
        return {"frame": self.frame, "ok": int(self.ok), "method": self.method,
                "score": f"{self.score:.6g}", "reason": self.reason, **values}


def write_records(path: Path, records: list[FrameRecord]) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)  # a stale one, or a link planted there, is not written through
    with temporary.open("x", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=COLUMNS)
        writer.writeheader()
        for record in sorted(records, key=lambda r: r.frame):
            writer.writerow(record.row())
    temporary.replace(path)


def read_records(path: Path) -> dict[str, FrameRecord]:
    records = {}
    with Path(path).open(newline="") as stream:
        for row in csv.DictReader(stream):
            matrix = np.array([float(row[name]) for name in MATRIX_COLUMNS]).reshape(3, 3)
            records[row["frame"]] = FrameRecord(
                row["frame"], row["ok"] in ("1", "True", "true"), row["method"], float(row["score"] or 0), row["reason"], matrix
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
