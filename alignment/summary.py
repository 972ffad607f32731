"""OUTPUT_DIR/summary.png and summary.csv: did the stabilisation work, and where did it fail?

From transforms.csv alone: per frame (by its index), the shake the aligner estimated (where the
reference's centre lies in the frame, in pixels, and the frame's rotation, in degrees) and the
residual motion (mean absolute grey-level difference from the reference before and after
warping, measured by the workers as they aligned). summary.csv holds exactly the series drawn in
summary.png, so what the picture shows can be checked against transforms.csv. No Ray here.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignment.records import MATRIX_COLUMNS

SUMMARY_PNG = "summary.png"
SUMMARY_CSV = "summary.csv"
SERIES_COLUMNS = ["index", "frame", "ok", "shift_x", "shift_y", "rotation_deg", "mad_before", "mad_after"]


@dataclass
class Series:
    """One entry a frame, sorted by index; shift and rotation are NaN where the frame failed."""

    index: np.ndarray
    frame: list[str]
    ok: np.ndarray
    shift_x: np.ndarray
    shift_y: np.ndarray
    rotation_deg: np.ndarray
    mad_before: np.ndarray
    mad_after: np.ndarray


def shake(matrix: np.ndarray, width: int, height: int) -> tuple[float, float, float]:
    """(x, y, degrees): where the reference's centre lies in the frame, less the centre, and the
    frame's rotation. `matrix` maps frame pixels to reference pixels, so the shake is its inverse;
    measured at the centre, a rotation does not show up as a shift."""
    inverse = np.linalg.inv(matrix)
    centre = np.array([(width - 1) / 2, (height - 1) / 2, 1.0])
    seen = inverse @ centre
    x, y = seen[:2] / seen[2] - centre[:2]
    return float(x), float(y), float(math.degrees(math.atan2(inverse[1, 0], inverse[0, 0])))


def read_series(transforms: Path, width: int, height: int) -> Series:
    """Streams transforms.csv (a torn last line is left out); memory: a few numbers a frame."""
    columns: dict[str, list] = {name: [] for name in SERIES_COLUMNS}
    with Path(transforms).open(newline="") as stream:
        for position, row in enumerate(csv.DictReader(stream)):
            if row.get("h22") in (None, ""):
                continue  # torn
            ok = row["ok"] in ("1", "True", "true")
            index = int(row.get("index") or -1)
            x, y, degrees = shake(np.array([float(row[name]) for name in MATRIX_COLUMNS]).reshape(3, 3), width, height)
            values = {"index": index if index >= 0 else position, "frame": row["frame"], "ok": ok,
                      "shift_x": x if ok else math.nan, "shift_y": y if ok else math.nan,
                      "rotation_deg": degrees if ok else math.nan,
                      "mad_before": float(row.get("mad_before") or "nan"), "mad_after": float(row.get("mad_after") or "nan")}
            for name in SERIES_COLUMNS:
                columns[name].append(values[name])
    order = np.argsort(np.array(columns["index"], dtype=np.int64), kind="stable")
    arrays = {name: np.array(columns[name], dtype=float)[order] for name in SERIES_COLUMNS if name not in ("frame", "ok", "index")}
    return Series(np.array(columns["index"], dtype=np.int64)[order], [columns["frame"][i] for i in order],
                  np.array(columns["ok"], dtype=bool)[order], **arrays)


def write_csv(series: Series, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.unlink(missing_ok=True)
    with temporary.open("x", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(SERIES_COLUMNS)
        for i in range(len(series.index)):
            writer.writerow([int(series.index[i]), series.frame[i], int(series.ok[i]),
                             *(_number(getattr(series, name)[i]) for name in SERIES_COLUMNS[3:])])
    temporary.replace(path)


def _number(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.6g}"


def draw(series: Series):
    """The figure: shift, rotation and residual against frame index; failed frames in red."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file, on any machine
    import matplotlib.pyplot as plt

    figure, (shift_axes, rotation_axes, residual_axes) = plt.subplots(3, 1, figsize=(10, 7.5), sharex=True)
    failed = series.index[~series.ok]
    for axes in (shift_axes, rotation_axes, residual_axes):
        if len(failed):  # one collection, however many frames failed
            axes.vlines(failed, 0, 1, transform=axes.get_xaxis_transform(), colors="tab:red", alpha=0.35,
                        linewidth=0.8, label=f"failed ({len(failed)})" if axes is shift_axes else None)
        axes.grid(alpha=0.3)
    shift_axes.plot(series.index, series.shift_x, label="x shift", linewidth=0.8)
    shift_axes.plot(series.index, series.shift_y, label="y shift", linewidth=0.8)
    shift_axes.set_ylabel("shake (px)")
    shift_axes.set_title("Estimated camera shake per frame, and what is left after alignment")
    shift_axes.legend(loc="upper right", fontsize=8)
    rotation_axes.plot(series.index, series.rotation_deg, label="rotation", color="tab:green", linewidth=0.8)
    rotation_axes.set_ylabel("rotation (°)")
    residual_axes.plot(series.index, series.mad_before, label="before alignment", color="tab:gray", linewidth=0.8)
    residual_axes.plot(series.index, series.mad_after, label="after alignment", color="tab:blue", linewidth=0.8)
    residual_axes.set_ylabel("mean |frame − reference|\n(grey levels, light matched)")
    residual_axes.set_xlabel("frame index")
    residual_axes.legend(loc="upper right", fontsize=8)
    figure.tight_layout()
    return figure


def summarise(transforms: Path, output_dir: Path, width: int, height: int) -> list[str]:
    """Writes summary.csv and summary.png beside transforms.csv; returns lines for the terminal."""
    import matplotlib.pyplot as plt

    series = read_series(transforms, width, height)
    write_csv(series, output_dir / SUMMARY_CSV)
    figure = draw(series)
    temporary = output_dir / f".{SUMMARY_PNG}.tmp.png"
    temporary.unlink(missing_ok=True)
    figure.savefig(temporary, dpi=100)
    plt.close(figure)
    temporary.replace(output_dir / SUMMARY_PNG)
    return describe(series) + [f"summary: {output_dir / SUMMARY_PNG} (its series: {SUMMARY_CSV})"]


def describe(series: Series) -> list[str]:
    aligned = series.ok
    lines = []
    if aligned.any():
        x, y, r = series.shift_x[aligned], series.shift_y[aligned], series.rotation_deg[aligned]
        lines.append(f"shake: x {x.min():+.2f} to {x.max():+.2f} px, y {y.min():+.2f} to {y.max():+.2f} px, "
                     f"rotation {r.min():+.3f} to {r.max():+.3f}° over {int(aligned.sum())} aligned frames")
        before, after = series.mad_before[aligned], series.mad_after[aligned]
        if np.isfinite(before).any() and np.isfinite(after).any():
            lines.append(f"residual: mean |frame - reference| {np.nanmedian(before):.2f} before, "
                         f"{np.nanmedian(after):.2f} after alignment (grey levels, light matched; median over aligned frames)")
    failed = series.index[~aligned]
    if len(failed):
        shown = ", ".join(str(i) for i in failed[:10]) + (", ..." if len(failed) > 10 else "")
        lines.append(f"failed frames: {len(failed)} (index {shown})")
    return lines
