"""Decode once, share everywhere: image files decoded and preprocessed into a uint8 array on disk
that every trial memory-maps read-only, so concurrent trials on one node share its pages (one copy
in the page cache, however many trials) and a later sweep on the same data starts without decoding.

An entry is a directory `<cache_dir()>/decoded/<key>/` holding `images.npy` (N, C, H, W) uint8,
in the order of the file list it was made from, and `meta.json`. The key is a hash of what the
pixels depend on: each file's path (relative to the files' common folder), size and mtime, in
order, and every preprocessing setting; a changed file makes a new key, so a stale entry is
never used (`gensweep prepare --clear` frees old ones). An entry is built in a temporary
directory beside it and renamed into place whole, under an flock, so concurrent trials that find
it missing decode it once between them and never see half of one. An entry whose files do not
match its meta.json (a truncated array, a missing or foreign meta) is rebuilt.

Where it lives: per node, in `$GENSWEEP_CACHE` (default ~/.cache/gensweep). On a cluster each node
decodes its own copy the first time a trial runs there, unless GENSWEEP_CACHE names storage that
every node shares, when the data is decoded once for the whole cluster.
"""

from __future__ import annotations

import contextvars
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runner.data.base import DataError, DecodeSettings, cache_dir, decode_image
from runner.files import is_disk_full, read_json, write_json

FORMAT_VERSION = 1
IMAGES_FILE, META_FILE, USED_FILE = "images.npy", "meta.json", "used"
CHUNK = 256  # files a worker decodes per task: large enough to amortise, small enough to balance
PROGRESS_EVERY = 2.0  # seconds between progress lines

Decoder = Callable[[Path], np.ndarray]  # one file -> (C, H, W) uint8
Say = Callable[[str], None]

# Who hears about decoding (a long job: `gensweep prepare` and `run` print its progress): set by
# the caller around a source's load, which knows nothing of printing.
_reporter: contextvars.ContextVar[Say] = contextvars.ContextVar("decoded_reporter", default=lambda message: None)


@contextmanager
def reporting(say: Say) -> Iterator[None]:
    token = _reporter.set(say)
    try:
        yield
    finally:
        _reporter.reset(token)


def load_files(files: list[Path], settings: DecodeSettings, cache: bool = True) -> np.ndarray:
    """The files as (N, C, S, S) uint8 by decode_image, decoded in parallel: from this node's
    shared cache (decoded into it first when it lacks them), or with cache False into memory."""
    shape = (settings.channels, settings.image_size, settings.image_size)
    decode = functools.partial(decode_image, settings=settings)
    if cache:
        return decoded_images(files, dataclasses.asdict(settings), shape, decode)
    return decode_all(files, shape, decode)


def load_split(
    files: list[Path], train: np.ndarray, val: np.ndarray, settings: DecodeSettings, cache: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """(train images, val images) of the files at those indices: decoded in the order train
    then val, so each split is a slice of one array (of the cache's map: no copy, shared pages)."""
    order = [files[index] for index in (*train, *val)]
    images = load_files(order, settings, cache)
    return images[: len(train)], images[len(train) :]


def holds(files: list[Path], settings: DecodeSettings) -> bool:
    """Whether this node's cache has these files decoded with these settings (a source's check
    skips reading every header again: the files decoded whole when the entry was made)."""
    entry = decoded_root() / cache_key(files, dataclasses.asdict(settings))
    return isinstance(read_json(entry / META_FILE), dict)


def decoded_root() -> Path:
    return cache_dir() / "decoded"


def cache_key(files: list[Path], settings: dict) -> str:
    """A hash of the files (relative path, size, mtime, in order) and the settings."""
    root = len(str(common_folder(files))) + 1  # each path below it, as text (os.path.relpath: 3x the time)
    digest = hashlib.sha256(json.dumps({"version": FORMAT_VERSION, "settings": settings}, sort_keys=True).encode())
    for path in files:
        text = str(path)
        status = os.stat(text)
        digest.update(f"{text[root:]}\0{status.st_size}\0{status.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def common_folder(files: list[Path]) -> Path:
    return Path(os.path.commonpath([str(path.parent) for path in files]))


@dataclass(frozen=True)
class Entry:
    """One decoded data set on disk, as `gensweep prepare --list` shows it."""

    key: str
    path: Path
    meta: dict

    @property
    def size_bytes(self) -> int:
        return sum(part.stat().st_size for part in self.path.iterdir() if part.is_file())

    @property
    def last_used(self) -> float:
        used = self.path / USED_FILE
        return used.stat().st_mtime if used.exists() else (self.path / META_FILE).stat().st_mtime


def decoded_images(
    files: list[Path], settings: dict, image_shape: tuple[int, int, int], decode: Decoder, workers: int | None = None,
) -> np.ndarray:
    """The files decoded by `decode` as one read-only (N, C, H, W) uint8 memory map, from the
    cache, decoding them first (in parallel, once per node) when the cache does not hold them."""
    say = _reporter.get()
    if not files:
        raise DataError("no image files to decode")
    key = cache_key(files, settings)
    entry = decoded_root() / key
    shape = (len(files), *image_shape)
    images = _open(entry, shape)
    if images is not None:
        return images
    decoded_root().mkdir(parents=True, exist_ok=True)
    with _locked(decoded_root() / f"{key}.lock"):
        images = _open(entry, shape, say)  # another process may have built it while this one waited
        if images is None:
            _build(entry, files, settings, shape, decode, say, workers)
            images = _open(entry, shape)
    if images is None:
        raise DataError(f"data cache: {entry} was written but does not read back")
    return images


def decode_all(
    files: list[Path], image_shape: tuple[int, int, int], decode: Decoder, out: np.ndarray | None = None,
    say: Say | None = None, workers: int | None = None,
) -> np.ndarray:
    """Every file decoded into `out` (made when None), on `workers` threads (default: the cores
    this process may use): OpenCV releases the GIL while it decodes and resizes, so threads
    scale without copying results between processes."""
    if out is None:
        out = np.empty((len(files), *image_shape), np.uint8)
    workers = workers or len(os.sched_getaffinity(0))
    say = say or _reporter.get()
    started = last_said = time.monotonic()
    done = 0

    def decode_chunk(start: int) -> int:
        for index in range(start, min(start + CHUNK, len(files))):
            image = decode(files[index])
            if image.shape != out.shape[1:]:
                raise DataError(f"{files[index]}: decoded to shape {image.shape}, expected {out.shape[1:]}")
            out[index] = image
        return min(CHUNK, len(files) - start)

    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        for count in pool.map(decode_chunk, range(0, len(files), CHUNK)):
            done += count
            if time.monotonic() - last_said >= PROGRESS_EVERY and done < len(files):
                last_said = time.monotonic()
                rate = done / (last_said - started)
                say(f"decoded {done:,}/{len(files):,} images ({rate:,.0f}/s, {(len(files) - done) / rate:.0f} s left)")
    return out


def size_text(count: int) -> str:
    return f"{count / 1e9:.2f} GB" if count >= 1e9 else f"{count / 1e6:.1f} MB"


def is_mapped(array: np.ndarray) -> bool:
    """Whether the array (or what it is a view of) is a memory map: the cache's, when a source used it."""
    while array is not None:
        if isinstance(array, np.memmap):
            return True
        array = array.base if isinstance(array.base, np.ndarray) else None
    return False


def entries() -> list[Entry]:
    """The complete entries in this node's cache, most recently used first."""
    root = decoded_root()
    found = []
    for path in root.iterdir() if root.is_dir() else ():
        meta = read_json(path / META_FILE) if path.is_dir() and not path.name.startswith(".") else None
        if isinstance(meta, dict):
            found.append(Entry(path.name, path, meta))
    return sorted(found, key=lambda entry: entry.last_used, reverse=True)


def clear(keys: list[str] | None = None) -> tuple[int, int]:
    """Remove the named entries (all when None), and unfinished builds left by killed processes;
    (entries removed, bytes freed). A trial that has an entry mapped keeps reading it: the
    pages stay until it unmaps them."""
    removed, freed = 0, 0
    for entry in entries():
        if keys is None or entry.key in keys:
            freed += entry.size_bytes
            shutil.rmtree(entry.path, ignore_errors=True)
            removed += 1
    if keys is None and decoded_root().is_dir():
        for leftover in decoded_root().iterdir():
            if leftover.name.startswith(".") or leftover.suffix == ".lock":
                _remove_if_unlocked(leftover)
    return removed, freed


# -- building and opening an entry ---------------------------------------------------------------
def _build(entry: Path, files, settings, shape, decode, say, workers) -> None:
    building = entry.with_name(f".{entry.name}.{os.getpid()}.building")
    shutil.rmtree(building, ignore_errors=True)
    building.mkdir(parents=True)
    say(f"decoding {len(files):,} images into the data cache ({entry.parent}; once per node)")
    try:
        out = np.lib.format.open_memmap(building / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=shape)
        # The file is sparse until written; on a full filesystem a write through the map would be
        # a SIGBUS that kills the process. Reserving every block first turns that into ENOSPC here.
        with open(building / IMAGES_FILE, "r+b") as stream:
            os.posix_fallocate(stream.fileno(), 0, os.fstat(stream.fileno()).st_size)
        decode_all(files, shape[1:], decode, out, say, workers)
        out.flush()
        del out
        write_json(building / META_FILE, {
            "version": FORMAT_VERSION, "shape": list(shape), "settings": settings,
            "folder": str(common_folder(files)), "files": len(files), "created": time.time(),
        })
        _fsync_directory_tree(building)
        if entry.exists():  # a damaged entry this process was asked to replace
            shutil.rmtree(entry)
        building.rename(entry)
    except BaseException as error:
        shutil.rmtree(building, ignore_errors=True)
        if isinstance(error, OSError) and is_disk_full(error):
            raise DataError(f"data cache: no space left in {entry.parent} for {size_text(int(np.prod(shape)))} of decoded images; "
                            "free space there (gensweep prepare --clear), point GENSWEEP_CACHE elsewhere, "
                            "or set data.cache: false") from None
        raise


def _open(entry: Path, shape: tuple, say: Say | None = None) -> np.ndarray | None:
    """The entry's images, read-only and memory-mapped, or None when it is absent or damaged
    (then, with `say`, telling why: the caller rebuilds it)."""
    if not entry.exists():
        return None
    meta = read_json(entry / META_FILE)
    problem = None
    if not isinstance(meta, dict) or meta.get("version") != FORMAT_VERSION:
        problem = "its meta.json is missing or not this version's"
    elif tuple(meta.get("shape", ())) != shape:
        problem = f"it holds shape {tuple(meta.get('shape', ()))}, not {shape}"
    else:
        try:
            images = np.load(entry / IMAGES_FILE, mmap_mode="r")
        except (OSError, ValueError) as error:  # a truncated file: numpy cannot map what is not there
            problem = f"{IMAGES_FILE} does not map ({error})"
        else:
            if images.shape == shape and images.dtype == np.uint8:
                _touch(entry / USED_FILE)
                return images
            problem = f"{IMAGES_FILE} holds {images.dtype} {images.shape}"
    if say is not None:
        say(f"data cache: rebuilding {entry.name}: {problem}")
    return None


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with open(path, "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits while another process builds this entry
        yield


def _remove_if_unlocked(path: Path) -> None:
    if path.suffix == ".lock":
        with open(path, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return  # a build is under way
            path.unlink(missing_ok=True)
    elif path.name.endswith(".building"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _touch(path: Path) -> None:
    try:
        path.touch()
    except OSError:
        pass  # a read-only shared cache: last-used times are a nicety


def _fsync_directory_tree(directory: Path) -> None:
    for part in directory.iterdir():
        with open(part, "rb") as stream:
            os.fsync(stream.fileno())
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
