"""`gensweep align`: every frame of a directory or a video registered to one reference, in
parallel with Ray Data.

The only module here that knows Ray. The driver chooses the reference once and hands out frame
positions only, a batch at a time; one actor per core reads (or decodes, for a video) its own
frames, estimates, warps and writes them, and returns rows: matrices, scores and residuals,
never pixels. So the driver's memory does not grow with the frame count, whatever it is.

transforms.csv is the run's state: rows are appended and fsynced as each batch arrives, so a
SIGKILL of the driver loses at most the batches in flight, and a rerun skips every frame that
has a row. At the start (after a torn last line is dropped) and at the end the file is
rewritten whole, one row a frame, sorted by name.

Nothing is written before every check has passed (settings, frames, reference, mask, and that
no file this run writes would replace one it reads), and nothing is ever written through an
existing file: each output is a new file renamed over its name.
"""

from __future__ import annotations

import csv
import io
import os
import stat
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from alignment import methods
from alignment.errors import AlignError
from alignment.records import COLUMNS, FrameRecord, RecordAppender
from alignment.sources import IMAGE_SUFFIXES, FolderSource, VideoSource, list_frames, open_source, read_image
from alignment.sources import choose_reference as _choose_from_source
from alignment.summary import SUMMARY_CSV, SUMMARY_PNG, summarise
from runner.cluster import end_ray_started_here, require_shared, start_or_join

__all__ = ["IMAGE_SUFFIXES", "AlignSettings", "FrameAligner", "align_directory", "list_frames"]
TRANSFORMS_FILE = "transforms.csv"
# The motion models each method can estimate (the one used without --motion: DEFAULT_MOTION).
MOTIONS = {
    "ecc": tuple(methods.ECC_MOTIONS),
    "features": methods.FEATURE_MOTIONS,
    "fft": ("translation", "similarity"),  # similarity: log-polar rotation and scale first
}
DEFAULT_MOTION = {"ecc": "euclidean", "features": "partial", "fft": "translation"}
DETECTORS = ("orb", "sift", "akaze")
ON_FAIL = ("copy", "skip", "identity")
FAILURES_SHOWN = 10
MAX_BLOCKS = 1000  # of the dataset of batches; see align_directory


@dataclass(frozen=True)
class AlignSettings:
    method: str = "ecc"
    motion: str | None = None  # None: the method's usual model (DEFAULT_MOTION)
    detector: str = "sift"  # features: sift (sub-pixel keypoints: within its accuracy goal everywhere) | orb (about 4x faster) | akaze
    levels: int = 3  # ecc: pyramid levels
    upsample: int = 20  # fft: sub-pixel factor
    on_fail: str = "copy"  # copy | skip | identity
    batch_size: int = 16

    def __post_init__(self) -> None:
        # Checked here, in the driver, so that a pair no frame could be aligned with is refused
        # before Ray starts and before OUTPUT_DIR exists, not found out once per frame.
        if self.method not in MOTIONS:
            raise AlignError(f"--method {self.method}: unknown (known: {', '.join(MOTIONS)})")
        if self.motion_model not in MOTIONS[self.method]:
            raise AlignError(
                f"--motion {self.motion}: the {self.method} method estimates {', '.join(MOTIONS[self.method])}; "
                f"give one of them, or leave --motion out for {DEFAULT_MOTION[self.method]}"
            )
        if self.detector not in DETECTORS:
            raise AlignError(f"--detector {self.detector}: unknown (known: {', '.join(DETECTORS)})")
        if self.on_fail not in ON_FAIL:
            raise AlignError(f"--on-fail {self.on_fail}: unknown (known: {', '.join(ON_FAIL)})")
        if self.levels < 1 or self.upsample < 1 or self.batch_size < 1:
            raise AlignError(f"levels {self.levels}, upsample {self.upsample}, batch size {self.batch_size}: each must be at least 1")

    @property
    def motion_model(self) -> str:
        return self.motion or DEFAULT_MOTION[self.method]


@dataclass
class AlignSummary:
    total: int
    skipped: int  # already done in an earlier run
    aligned: int
    failed: int
    median_score: float
    seconds: float
    failures: list[str] = field(default_factory=list)  # "name: reason", the first few
    nodes: int = 0  # Ray nodes whose workers aligned frames
    usable: int = 0  # frames of INPUT_DIR aligned in OUTPUT_DIR, by this run or an earlier one
    first_frame_seconds: float = float("nan")  # from the call to the first aligned batch in the driver
    picture: list[str] = field(default_factory=list)  # what summary.png shows, in a few lines

    @property
    def frames_per_second(self) -> float:
        return (self.aligned + self.failed) / self.seconds if self.seconds else 0.0


def read_frame(path: Path) -> np.ndarray | None:
    return read_image(path)


def choose_reference(frames: list[Path] | FolderSource | VideoSource, how: str) -> np.ndarray:
    """first | median | a frame index | an image file (alignment.sources.choose_reference);
    a list of image paths stands for a folder of exactly those frames."""
    if isinstance(frames, list):
        directory = frames[0].parent
        frames = FolderSource(directory, [p.name for p in frames], range(len(frames)))
    return _choose_from_source(frames, how)


def _check_reference_fits(source: FolderSource | VideoSource, reference_image: np.ndarray, how: str) -> None:
    """A reference of another size than the frames would fail every frame, one by one."""
    frame = next((image for _, image in source.read(list(source.selection[:8])) if image is not None), None)
    source.close()
    if frame is not None and frame.shape[:2] != reference_image.shape[:2]:
        (height, width), (frame_height, frame_width) = reference_image.shape[:2], frame.shape[:2]
        raise AlignError(f"--reference {how}: {width}x{height} pixels, the frames {frame_width}x{frame_height}; "
                         "give a reference image the size of the frames")


def estimate(frame: np.ndarray, reference: np.ndarray, settings: AlignSettings, mask=None, reference_features=None) -> methods.Alignment:
    if settings.method == "ecc":
        return methods.align_ecc(frame, reference, settings.motion_model, levels=settings.levels, mask=mask)
    if settings.method == "fft":  # AlignSettings allows translation or similarity only
        log_polar = settings.motion_model == "similarity"
        return methods.align_fft(frame, reference, upsample=settings.upsample, mask=mask, log_polar=log_polar)
    return methods.align_features(
        frame, reference, settings.detector, settings.motion_model, mask=mask, reference_features=reference_features
    )


class FrameAligner:
    """A Ray Data actor: holds the reference (and its keypoints) and the frame source, and
    aligns a batch of frame positions: reads (or decodes) them, estimates, warps and writes each,
    and returns only rows (matrices, scores, residuals), never pixels."""

    def __init__(self, reference: np.ndarray, output_dir: str, settings: AlignSettings, mask: np.ndarray | None,
                 source: FolderSource | VideoSource | None = None):
        cv2.setNumThreads(1)  # one actor per core: OpenCV's own threads would fight over them
        self.reference, self.output_dir, self.settings, self.mask = reference, Path(output_dir), settings, mask
        self.source = source
        self.reference_gray = methods.to_gray(reference)
        self.reference_features = None
        if settings.method == "features":
            self.reference_features = methods.describe(reference, settings.detector, mask)

    def __call__(self, batch: dict) -> dict:
        import ray

        positions = [int(position) for chunk in batch["positions"] for position in chunk]
        rows = []
        for position, frame in self.source.read(positions):
            name = self.source.name(position)
            original = (lambda position=position: self.source.source_bytes(position))
            reason = "unreadable or corrupt image" if self.source.kind == "folder" else "the video cannot be decoded at this frame"
            rows.append(self.align_frame(name, position, frame, original, reason))
        columns = {key: np.array([row[key] for row in rows]) for key in ROW_KEYS}
        columns["node"] = np.array([ray.get_runtime_context().get_node_id()] * len(rows))
        return columns

    def align_one(self, path: Path, index: int = -1) -> dict:
        """One image file, as the folder source reads it."""
        return self.align_frame(path.name, index, read_frame(path), path.read_bytes, "unreadable or corrupt image")

    def align_frame(self, name: str, index: int, frame: np.ndarray | None, original, unreadable: str) -> dict:
        if frame is None:
            result = methods.Alignment.failed(unreadable)
        else:
            try:
                result = estimate(frame, self.reference, self.settings, self.mask, self.reference_features)
            except Exception as error:  # noqa: BLE001 - one bad frame must not stop 90,000
                result = methods.Alignment.failed(f"{type(error).__name__}: {error}")
        written = self.write(self.output_dir / name, frame, result, original)
        before = self.residual(frame)
        after = self.residual(written) if written is not None else np.nan
        return {"frame": name, "index": index, "ok": result.ok, "score": result.score, "reason": result.reason,
                "matrix": result.matrix.flatten(), "mad_before": before, "mad_after": after}

    def residual(self, image: np.ndarray | None) -> float:
        """Mean absolute grey-level difference from the reference, once the image's brightness
        and contrast are matched to the reference's: what is left is motion (and noise), not
        the light drifting through the day."""
        if image is None or image.shape[:2] != self.reference_gray.shape:
            return np.nan
        gray = methods.to_gray(image)
        mean, spread = cv2.meanStdDev(gray)
        reference_mean, reference_spread = cv2.meanStdDev(self.reference_gray)
        # A flat image (a blank frame) has no contrast to match: its brightness only.
        gain = float(reference_spread[0, 0]) / float(spread[0, 0]) if spread[0, 0] >= methods.BLANK_STD else 1.0
        matched = gray * gain + (float(reference_mean[0, 0]) - float(mean[0, 0]) * gain)
        return float(cv2.absdiff(matched, self.reference_gray).mean())

    def write(self, target: Path, frame: np.ndarray | None, result: methods.Alignment, original) -> np.ndarray | None:
        """Writes the frame's output, and returns the pixels written (None: nothing written)."""
        if frame is None:
            return None  # an unreadable file is listed as failed, never copied into a data set
        if result.ok:
            height, width = self.reference.shape[:2]
            warped = methods.warp(frame, result.matrix, (width, height))
            _write_image(target, warped)
            return warped
        content = original() if self.settings.on_fail == "copy" else None
        if content is not None:
            _write_whole(target, content)
            return frame
        if self.settings.on_fail in ("copy", "identity"):  # copy, of a video frame: it has no file of its own
            _write_image(target, frame)
            return frame
        return None


ROW_KEYS = ("frame", "index", "ok", "score", "reason", "matrix", "mad_before", "mad_after")


def _write_image(target: Path, image: np.ndarray) -> None:
    ok, encoded = cv2.imencode(target.suffix, image)
    if not ok:
        raise OSError(f"{target.name}: OpenCV cannot encode this image as {target.suffix}")
    _write_whole(target, encoded.tobytes())


def _write_whole(target: Path, content: bytes) -> None:
    """A frame written whole or not at all, into a file created here: a stale temporary, or a
    link left under its name, is removed rather than written through (it could lead to an input)."""
    temporary = target.with_name(f".{target.name}.tmp")
    temporary.unlink(missing_ok=True)
    with temporary.open("xb") as stream:  # "x": fails rather than open an existing file
        stream.write(content)
    temporary.replace(target)  # replaces the name; whatever file it named before is not touched


def check_writes_spare_inputs(
    input_path: Path, output_dir: Path, source: FolderSource | VideoSource, reference: str, mask_path: Path | None
) -> None:
    """Refuse when a file this run writes would replace one it reads: OUTPUT_DIR is INPUT_DIR
    (under any spelling: symlinks, `..`, a bind mount), an input frame (or the video) is a link
    to a file in OUTPUT_DIR of a name written there, or the reference or mask image is such a file.

    Outputs are OUTPUT_DIR/<each frame's name>, transforms.csv and the summary files, each
    written as a new file renamed over its name, so only a name clash can destroy an input:
    what a name in OUTPUT_DIR links to, or shares an inode with, is never written.
    """
    output_identity = _identity(output_dir)
    if output_identity is None:
        return  # nothing can be read from a directory that does not exist yet
    if output_identity == _identity(input_path):
        raise AlignError(
            f"OUTPUT_DIR {output_dir} is INPUT_DIR {input_path} ({input_path.resolve()}): the aligned frames "
            "would replace the originals; give another OUTPUT_DIR"
        )
    written = {source.name(position) for position in source.selection} | {TRANSFORMS_FILE, SUMMARY_PNG, SUMMARY_CSV}
    what = "input frame" if source.kind == "folder" else "VIDEO"
    inputs = [(f"{what} {path}", path) for path in source.input_paths()]
    if reference not in ("first", "median") and not reference.isdigit():
        inputs.append((f"--reference {reference}", Path(reference)))
    if mask_path is not None:
        inputs.append((f"--mask {mask_path}", mask_path))
    for what, path in inputs:
        real = path.resolve()  # the file itself, through every link
        if real.name in written and _identity(real.parent) == output_identity:
            raise AlignError(
                f"{what} is {output_dir / real.name}, which this run writes: the original would be "
                "replaced; give another OUTPUT_DIR"
            )


def _identity(directory: Path) -> tuple[int, int] | None:
    """(device, inode) of a directory: the same for every path to it, bind mounts included."""
    try:
        status = os.stat(directory)
    except OSError:
        return None
    return (status.st_dev, status.st_ino) if stat.S_ISDIR(status.st_mode) else None


def align_directory(
    input_dir: Path,
    output_dir: Path,
    settings: AlignSettings,
    reference: str = "first",
    mask_path: Path | None = None,
    overwrite: bool = False,
    address: str | None = None,
    say=print,
    frames: str | None = None,
) -> AlignSummary:
    """Align a folder of frames or a video (input_dir may be either) into output_dir.
    frames: START:STOP[:STEP] of the frames (the folder's sorted listing, or the video's)."""
    started = time.perf_counter()
    source = open_source(Path(input_dir), frames)
    check_writes_spare_inputs(Path(input_dir), output_dir, source, reference, mask_path)
    # Ray's workers do not run in this working directory: every path they get is absolute.
    output_dir = output_dir.resolve()
    reference_image = choose_reference(source, reference)
    if reference not in ("first", "median"):
        _check_reference_fits(source, reference_image, reference)
    mask = _read_mask(mask_path, reference_image.shape[:2]) if mask_path else None
    transforms = output_dir / TRANSFORMS_FILE
    done = set() if overwrite else _done_before(transforms, settings.method)
    try:  # the first write of this run, after every check
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AlignError(f"OUTPUT_DIR {output_dir}: cannot create it ({error.strerror or error})") from None
    _keep_rows(transforms, settings.method, overwrite)
    todo = [position for position in source.selection if source.name(position) not in done]
    skipped = len(source.selection) - len(todo)
    say(f"align: {len(source.selection)} frames, {skipped} already done, {len(todo)} to align with "
        f"{settings.method} ({settings.motion_model}), reference {reference}")

    counts = {"aligned": 0, "failed": 0}
    scores: list[float] = []
    failures: list[str] = []
    nodes: set[str] = set()
    first_frame = float("nan")
    started_ray = False
    if todo:
        import ray  # here: a refused or finished run answers without loading Ray

        started_ray = start_or_join(address)
        appender = RecordAppender(transforms)
        try:
            require_shared({"output": output_dir, "input": source.input_paths()[0].parent})
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            # At least four batches a worker, so every worker has some even on short runs.
            batch_size = max(1, min(settings.batch_size, len(todo) // (4 * workers)))
            # A row of the dataset is a batch of positions (ints): the driver never holds pixels,
            # and an actor decodes a batch of a video from one seek.
            chunks = [{"positions": todo[i:i + batch_size]} for i in range(0, len(todo), batch_size)]
            context = ray.data.DataContext.get_current()
            # Start every worker before handing out frames: else the first worker up takes the
            # queue while the others (on other nodes, say) are still importing OpenCV.
            context.wait_for_min_actors_s = 600
            context.max_tasks_in_flight_per_actor = 2  # small queues: work goes where cores are free
            # A block a batch, up to MAX_BLOCKS: Ray Data keeps some 10 KB in the driver per block
            # (bench/align_throughput.py), so 90,000 frames in 5,625 blocks would cost ~60 MB.
            # Beyond, a block holds a few batches, and its rows are saved when it is done.
            dataset = ray.data.from_items(chunks, override_num_blocks=min(len(chunks), MAX_BLOCKS))
            aligned = dataset.map_batches(
                FrameAligner,
                fn_constructor_kwargs={"reference": reference_image, "output_dir": str(output_dir), "settings": settings,
                                       "mask": mask, "source": source},
                batch_size=1,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(workers, len(chunks))),
                num_cpus=1,
            )
            for batch in aligned.iter_batches(batch_size=None, batch_format="numpy"):
                if np.isnan(first_frame):
                    first_frame = time.perf_counter() - started
                nodes.update(str(node) for node in batch["node"])
                rows = [_record(batch, index, settings.method) for index in range(len(batch["frame"]))]
                appender.append(rows)  # on disk before the next batch is waited for
                for row in rows:
                    counts["aligned" if row.ok else "failed"] += 1
                    if row.ok:
                        scores.append(row.score)
                failures = sorted(failures + [f"{r.frame}: {r.reason}" for r in rows if not r.ok])[:FAILURES_SHOWN]
        finally:
            appender.close()
            _keep_rows(transforms, settings.method, overwrite=False)  # sorted, one row a frame
            if started_ray:
                end_ray_started_here()
    usable = _usable(transforms, {source.name(position) for position in source.selection})
    picture = summarise(transforms, output_dir, reference_image.shape[1], reference_image.shape[0])
    return AlignSummary(
        total=len(source.selection),
        skipped=skipped,
        aligned=counts["aligned"],
        failed=counts["failed"],
        median_score=statistics.median(scores) if scores else float("nan"),
        seconds=time.perf_counter() - started,
        failures=failures,
        nodes=len(nodes),
        usable=usable,
        first_frame_seconds=first_frame,
        picture=picture,
    )


def _record(batch: dict, index: int, method: str) -> FrameRecord:
    return FrameRecord(
        str(batch["frame"][index]), bool(batch["ok"][index]), method, float(batch["score"][index]),
        str(batch["reason"][index]), np.asarray(batch["matrix"][index], float).reshape(3, 3),
        int(batch["index"][index]), float(batch["mad_before"][index]), float(batch["mad_after"][index]),
    )


def _complete_rows(transforms: Path):
    """(header, iterator of (offset, line bytes, fields)) over transforms.csv, a line at a time:
    memory does not grow with the rows. A last line without its newline is a write a SIGKILL cut
    short: left out (its frame is redone), never parsed."""
    stream = transforms.open("rb")

    def rows():
        with stream:
            offset = stream.tell()
            for line in stream:
                if line.endswith(b"\n"):
                    yield offset, line, next(csv.reader([line.decode("utf-8").rstrip("\r\n")]), [])
                offset += len(line)

    lines = rows()
    header = next(lines, (0, b"", COLUMNS))[2]
    return header, lines


def _done_before(transforms: Path, method: str) -> set[str]:
    """The frames an earlier run with this method recorded (aligned or failed): not redone."""
    if not transforms.exists():
        return set()
    try:
        header, rows = _complete_rows(transforms)
        frame, method_column = header.index("frame"), header.index("method")
        return {fields[frame] for _, _, fields in rows if len(fields) == len(header) and fields[method_column] == method}
    except (OSError, ValueError, UnicodeError, csv.Error) as error:
        raise AlignError(f"{transforms}: unreadable ({type(error).__name__}: {error}); "
                         "move it away, or give --overwrite to redo every frame") from None


def _keep_rows(transforms: Path, method: str, overwrite: bool) -> None:
    """Rewrite transforms.csv whole: the rows of `method` (none with overwrite), the last row of
    each frame, sorted by name, in the current columns. Only each row's place in the file is held
    (not its text), so 90,000 rows cost a few MB; rows already in the current columns are copied
    byte for byte."""
    where: dict[str, tuple[int, int]] = {}
    header = COLUMNS
    if transforms.exists() and not overwrite:
        header, rows = _complete_rows(transforms)
        if "method" in header:
            method_column = header.index("method")
            for offset, line, fields in rows:
                if len(fields) == len(header) and fields[method_column] == method:
                    where[fields[0]] = (offset, len(line))
    temporary = transforms.with_name(f".{transforms.name}.tmp")
    temporary.unlink(missing_ok=True)  # a stale one, or a link planted there, is not written through
    with temporary.open("x", newline="") as stream:
        csv.writer(stream).writerow(COLUMNS)
        if where:
            with transforms.open("rb") as source:
                for name in sorted(where):
                    offset, length = where[name]
                    source.seek(offset)
                    line = source.read(length).decode("utf-8")
                    if header != COLUMNS:  # a file from before a column was added
                        values = dict(zip(header, next(csv.reader([line.rstrip("\r\n")]))))
                        line = io.StringIO()
                        csv.writer(line).writerow([values.get(column, "") for column in COLUMNS])
                        line = line.getvalue()
                    stream.write(line)
        stream.flush()
        os.fsync(stream.fileno())
    temporary.replace(transforms)


def _usable(transforms: Path, names: set[str]) -> int:
    """Frames of this selection aligned in OUTPUT_DIR, by this run or an earlier one."""
    header, rows = _complete_rows(transforms)
    frame, ok = header.index("frame"), header.index("ok")
    return sum(1 for _, _, fields in rows if len(fields) == len(header) and fields[frame] in names and fields[ok] == "1")


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise AlignError(f"--mask {path}: not a readable image")
    return cv2.resize((mask > 0).astype(np.uint8) * 255, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
