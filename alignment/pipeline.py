"""`gensweep align`: every frame of a directory registered to one reference, in parallel with Ray Data.

The only module here that knows Ray. Frames are listed by name, the reference is chosen once,
and Ray Data spreads batches of file names over one actor per core (each holds the reference
and its keypoints); an actor reads, estimates, warps and writes its frames itself, so only file
names and matrices travel. transforms.csv is rewritten as results arrive, so an interrupted run
resumes where it stopped.

Nothing is written before every check has passed (settings, frames, reference, mask, and that
no file this run writes would replace one it reads), and nothing is ever written through an
existing file: each output is a new file renamed over its name.
"""

from __future__ import annotations

import csv
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
from alignment.records import FrameRecord, read_records, write_records
from runner.cluster import require_shared, start_or_join

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
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
MEDIAN_SAMPLE = 31  # frames whose pixel-wise median is the `median` reference
SAVE_EVERY_SECONDS = 10.0


@dataclass(frozen=True)
class AlignSettings:
    method: str = "ecc"
    motion: str | None = None  # None: the method's usual model (DEFAULT_MOTION)
    detector: str = "orb"  # features: orb | sift | akaze
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

    @property
    def frames_per_second(self) -> float:
        return (self.aligned + self.failed) / self.seconds if self.seconds else 0.0


def list_frames(input_dir: Path) -> list[Path]:
    if not input_dir.is_dir():
        raise AlignError(f"{input_dir}: no such directory")
    frames = sorted(p for p in input_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not frames:
        raise AlignError(f"{input_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    return frames


def read_frame(path: Path) -> np.ndarray | None:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED)


def choose_reference(frames: list[Path], how: str) -> np.ndarray:
    """first | median (pixel-wise median of a spread sample: robust to a shaken first frame) | a file."""
    if how == "first":
        candidates = frames[:1]
    elif how == "median":
        picks = np.linspace(0, len(frames) - 1, min(MEDIAN_SAMPLE, len(frames))).round().astype(int)
        candidates = [frames[i] for i in sorted(set(picks))]
    else:
        candidates = [Path(how)]
    images = [image for image in (read_frame(p) for p in candidates) if image is not None]
    if not images:
        raise AlignError(f"reference {how}: no readable image among {', '.join(p.name for p in candidates[:3])}")
    if len(images) == 1:
        return images[0]
    shape = images[0].shape
    images = [image for image in images if image.shape == shape]
    return np.median(np.stack(images), axis=0).astype(images[0].dtype)


def _check_reference_fits(frames: list[Path], reference_image: np.ndarray, how: str) -> None:
    """A reference file of another size than the frames would fail every frame, one by one."""
    frame = next((image for image in map(read_frame, frames) if image is not None), None)
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
    """A Ray Data actor: holds the reference (and its keypoints), aligns batches of frame paths."""

    def __init__(self, reference: np.ndarray, output_dir: str, settings: AlignSettings, mask: np.ndarray | None):
        cv2.setNumThreads(1)  # one actor per core: OpenCV's own threads would fight over them
        self.reference, self.output_dir, self.settings, self.mask = reference, Path(output_dir), settings, mask
        self.reference_features = None
        if settings.method == "features":
            self.reference_features = methods.describe(reference, settings.detector, mask)

    def __call__(self, batch: dict) -> dict:
        import ray

        rows = [self.align_one(Path(str(path))) for path in batch["path"]]
        columns = {key: np.array([row[key] for row in rows]) for key in ("frame", "ok", "score", "reason", "matrix")}
        columns["node"] = np.array([ray.get_runtime_context().get_node_id()] * len(rows))
        return columns

    def align_one(self, path: Path) -> dict:
        frame = read_frame(path)
        if frame is None:
            result = methods.Alignment.failed("unreadable or corrupt image")
        else:
            try:
                result = estimate(frame, self.reference, self.settings, self.mask, self.reference_features)
            except Exception as error:  # noqa: BLE001 - one bad frame must not stop 90,000
                result = methods.Alignment.failed(f"{type(error).__name__}: {error}")
        self.write(path, frame, result)
        return {"frame": path.name, "ok": result.ok, "score": result.score, "reason": result.reason,
                "matrix": result.matrix.flatten()}

    def write(self, path: Path, frame: np.ndarray | None, result: methods.Alignment) -> None:
        target = self.output_dir / path.name
        if frame is None:
            return  # an unreadable file is listed as failed, never copied into a data set
        if result.ok:
            height, width = self.reference.shape[:2]
            _write_image(target, methods.warp(frame, result.matrix, (width, height)))
        elif self.settings.on_fail == "copy":
            _write_whole(target, path.read_bytes())
        elif self.settings.on_fail == "identity":
            _write_image(target, frame)


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
    input_dir: Path, output_dir: Path, frames: list[Path], reference: str, mask_path: Path | None
) -> None:
    """Refuse when a file this run writes would replace one it reads: OUTPUT_DIR is INPUT_DIR
    (under any spelling: symlinks, `..`, a bind mount), an input frame is a link to a file in
    OUTPUT_DIR of a name written there, or the reference or mask image is such a file.

    Outputs are OUTPUT_DIR/<each frame's name> and OUTPUT_DIR/transforms.csv, each written as a
    new file renamed over its name, so only a name clash can destroy an input: what a name in
    OUTPUT_DIR links to, or shares an inode with, is never written.
    """
    output_identity = _identity(output_dir)
    if output_identity is None:
        return  # nothing can be read from a directory that does not exist yet
    if output_identity == _identity(input_dir):
        raise AlignError(
            f"OUTPUT_DIR {output_dir} is INPUT_DIR {input_dir} ({input_dir.resolve()}): the aligned frames "
            "would replace the originals; give another OUTPUT_DIR"
        )
    written = {frame.name for frame in frames} | {TRANSFORMS_FILE}
    inputs = [(f"input frame {frame}", frame) for frame in frames]
    if reference not in ("first", "median"):
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
) -> AlignSummary:
    started = time.perf_counter()
    frames = list_frames(input_dir)
    check_writes_spare_inputs(input_dir, output_dir, frames, reference, mask_path)
    # Ray's workers do not run in this working directory: every path they get is absolute.
    input_dir, output_dir = input_dir.resolve(), output_dir.resolve()
    frames = [input_dir / frame.name for frame in frames]
    reference_image = choose_reference(frames, reference)
    if reference not in ("first", "median"):
        _check_reference_fits(frames, reference_image, reference)
    mask = _read_mask(mask_path, reference_image.shape[:2]) if mask_path else None
    transforms = output_dir / TRANSFORMS_FILE
    done = {} if overwrite else _done_before(transforms, settings.method)
    try:  # the first write of this run, after every check
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise AlignError(f"OUTPUT_DIR {output_dir}: cannot create it ({error.strerror or error})") from None
    todo = [p for p in frames if p.name not in done]
    say(f"align: {len(frames)} frames, {len(done)} already done, {len(todo)} to align with "
        f"{settings.method} ({settings.motion_model}), reference {reference}")

    records = dict(done)
    nodes: set[str] = set()
    started_ray = False
    if todo:
        import ray  # here: a refused or finished run answers without loading Ray

        started_ray = start_or_join(address)
        try:
            require_shared({"output": output_dir, "input": input_dir})
            workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
            # At least four batches a worker, so every worker has some even on short runs.
            batch_size = max(1, min(settings.batch_size, len(todo) // (4 * workers)))
            blocks = min(len(todo), -(-len(todo) // batch_size))
            context = ray.data.DataContext.get_current()
            # Start every worker before handing out frames: else the first worker up takes the
            # queue while the others (on other nodes, say) are still importing OpenCV.
            context.wait_for_min_actors_s = 600
            context.max_tasks_in_flight_per_actor = 2  # small queues: work goes where cores are free
            dataset = ray.data.from_items([{"path": str(p)} for p in todo], override_num_blocks=blocks)
            aligned = dataset.map_batches(
                FrameAligner,
                fn_constructor_kwargs={"reference": reference_image, "output_dir": str(output_dir), "settings": settings, "mask": mask},
                batch_size=batch_size,
                batch_format="numpy",
                compute=ray.data.ActorPoolStrategy(size=min(workers, len(todo))),
                num_cpus=1,
            )
            last_save = time.monotonic()
            for batch in aligned.iter_batches(batch_size=batch_size, batch_format="numpy"):
                nodes.update(str(node) for node in batch["node"])
                for index in range(len(batch["frame"])):
                    name = str(batch["frame"][index])
                    records[name] = FrameRecord(name, bool(batch["ok"][index]), settings.method, float(batch["score"][index]),
                                                str(batch["reason"][index]), np.asarray(batch["matrix"][index], float).reshape(3, 3))
                if time.monotonic() - last_save > SAVE_EVERY_SECONDS:  # resumable if interrupted
                    write_records(transforms, list(records.values()))
                    last_save = time.monotonic()
        finally:
            write_records(transforms, list(records.values()))
            if started_ray:
                ray.shutdown()
    new = [records[p.name] for p in todo if p.name in records]
    usable = sum(records[p.name].ok for p in frames if p.name in records)
    scores = [r.score for r in new if r.ok]
    return AlignSummary(
        total=len(frames),
        skipped=len(done),
        aligned=sum(r.ok for r in new),
        failed=sum(not r.ok for r in new),
        median_score=statistics.median(scores) if scores else float("nan"),
        seconds=time.perf_counter() - started,
        failures=[f"{r.frame}: {r.reason}" for r in new if not r.ok][:10],
        nodes=len(nodes),
        usable=usable,
    )


def _done_before(transforms: Path, method: str) -> dict[str, FrameRecord]:
    """The frames an earlier run with this method recorded (aligned or failed): not redone."""
    if not transforms.exists():
        return {}
    try:
        records = read_records(transforms)
    except (OSError, ValueError, KeyError, TypeError, csv.Error) as error:
        raise AlignError(f"{transforms}: unreadable ({type(error).__name__}: {error}); "
                         "move it away, or give --overwrite to redo every frame") from None
    return {name: record for name, record in records.items() if record.method == method}


def _read_mask(path: Path, shape: tuple[int, int]) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise AlignError(f"--mask {path}: not a readable image")
    return cv2.resize((mask > 0).astype(np.uint8) * 255, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
