"""A local Ray kept up between sweeps: `gensweep up` starts it, `gensweep run` (and `align`)
join it without being told, `gensweep down` stops it. Opt-in: without `up`, every command
starts a Ray of its own and ends it, as before.

Ray is started as `ray start --head --block` in a process of its own, on 127.0.0.1 with token
authentication (a token of its own, in a file only this user reads). That process is the
handle: its pid and start time go to a state file, and `down` ends that process and the
processes it started, never anything else (no broad `ray stop`, which would end every Ray on
the machine, another user's or another test's included).

Trials run in the environment `gensweep up` was started in (GENSWEEP_CACHE, for instance), as
Ray's workers are its children.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from runner.errors import GensweepError
from runner.files import cache_dir, write_bytes
from runner.processes import kill_and_wait

STATE_FILE = "up.json"
TOKEN_FILE = "auth_token"
LOG_FILE = "ray-start.log"
LOCK_FILE = ".lock"
READY_SECONDS = 120


class LocalRayError(GensweepError):
    """`gensweep up` could not start Ray, or `down` could not stop it; one-line message."""


@dataclass(frozen=True)
class LocalRay:
    address: str  # 127.0.0.1:PORT
    pid: int  # the `ray start --block` process
    started: float  # its start time, as the kernel reports it: a reused pid is not ours
    token_path: Path
    cpus: int
    temp_dir: Path  # Ray's own files: removed by `down`

    def environment(self) -> dict[str, str]:
        """What a process needs in its environment to join it: token authentication, its token."""
        return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(self.token_path)}


def state_dir() -> Path:
    return cache_dir() / "ray-up"


def running() -> LocalRay | None:
    """The Ray `gensweep up` started, when it is still running (a state file whose process is
    gone, a killed `up`, is removed)."""
    path = state_dir() / STATE_FILE
    try:
        state = json.loads(path.read_text())
        kept = LocalRay(state["address"], int(state["pid"]), float(state["started"]), Path(state["token_path"]),
                        int(state["cpus"]), Path(state["temp_dir"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _is_ours(kept):
        path.unlink(missing_ok=True)
        return None
    return kept


@contextlib.contextmanager
def _alone():
    """This user's `up` and `down` one at a time (an flock on the state directory): two `up`
    started together would otherwise each start a Ray, and the state file keep only one."""
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / LOCK_FILE, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, or the process dies
        yield


def up(cpus: int | None = None, say=print) -> LocalRay:
    """Start Ray here and keep it up; the one running already when there is one."""
    with _alone():
        return _up(cpus, say)


def _up(cpus: int | None, say) -> LocalRay:
    existing = running()
    if existing is not None:
        say(f"gensweep: Ray is already up at {existing.address} ({existing.cpus} CPUs, pid {existing.pid})")
        return existing
    directory = state_dir()
    directory.mkdir(parents=True, exist_ok=True)
    token_path = directory / TOKEN_FILE
    descriptor = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # this user alone reads it
    with os.fdopen(descriptor, "w") as token:
        token.write(secrets.token_hex(32))
    cpus = cpus or os.cpu_count() or 1
    port = _free_port()
    address = f"127.0.0.1:{port}"
    ray_command = Path(sys.executable).parent / "ray"
    # Ray's files (sessions, sockets, logs) in a directory of its own: `ray start` leaves its
    # address in its temp directory, where a later plain ray.init() on this machine (anyone's)
    # would find and join it. Short: Ray's socket paths must fit in 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="gensweep-up-"))
    environment = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_path)}
    environment.pop("RAY_ADDRESS", None)
    with open(directory / LOG_FILE, "w") as log:
        process = subprocess.Popen(
            [str(ray_command), "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={port}",
             f"--num-cpus={cpus}", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
            env=environment, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,  # not ended by this terminal's Ctrl-C, nor by this process's end
        )
    kept = LocalRay(address, process.pid, _start_time(process.pid), token_path, cpus, temp_dir)
    try:
        _wait_until_ready(kept, process)
    except BaseException:
        _end(kept)
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    write_bytes(directory / STATE_FILE, json.dumps(
        {"address": kept.address, "pid": kept.pid, "started": kept.started, "token_path": str(token_path),
         "cpus": cpus, "temp_dir": str(temp_dir)}).encode())
    say(f"gensweep: Ray is up at {address} ({cpus} CPUs, token authentication, pid {process.pid}); "
        "`gensweep run` joins it, `gensweep down` stops it")
    return kept


def down(say=print) -> bool:
    """Stop the Ray `gensweep up` started (and whatever still runs on it). False: none was up."""
    with _alone():
        return _down(say)


def _down(say) -> bool:
    kept = running()
    if kept is None:
        say("gensweep: no Ray started by `gensweep up` is running")
        return False
    _end(kept)
    (state_dir() / STATE_FILE).unlink(missing_ok=True)
    shutil.rmtree(kept.temp_dir, ignore_errors=True)
    say(f"gensweep: stopped the Ray at {kept.address} (pid {kept.pid})")
    return True


def _wait_until_ready(kept: LocalRay, process: subprocess.Popen) -> None:
    """Ray's GCS answers on the port and a node with CPUs has joined (a sweep started at once
    would otherwise see a cluster of no CPUs)."""
    deadline = time.monotonic() + READY_SECONDS
    host, port = kept.address.rsplit(":", 1)
    while True:
        if process.poll() is not None:
            log = (state_dir() / LOG_FILE).read_text(errors="replace").strip().splitlines()
            raise LocalRayError(f"`ray start` ended (exit {process.returncode}) before Ray was up: "
                                f"{log[-1] if log else 'no output'} (log: {state_dir() / LOG_FILE})")
        try:
            socket.create_connection((host, int(port)), timeout=1).close()
            break
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise LocalRayError(f"Ray did not answer at {kept.address} within {READY_SECONDS} s "
                                f"(log: {state_dir() / LOG_FILE})")
        time.sleep(0.1)
    command = ("import ray, sys, time, logging\n"
               f"ray.init(address={kept.address!r}, logging_level=logging.ERROR)\n"
               f"deadline = time.monotonic() + {READY_SECONDS}\n"
               "while not ray.cluster_resources().get('CPU') and time.monotonic() < deadline:\n"
               "    time.sleep(0.1)\n"
               "sys.exit(0 if ray.cluster_resources().get('CPU') else 1)\n")
    # A process of its own: this one stays free of Ray's imports and connections.
    checked = subprocess.run([sys.executable, "-c", command], env={**os.environ, **kept.environment()},
                             capture_output=True, text=True, timeout=READY_SECONDS + 30, check=False)
    if checked.returncode != 0:
        last = (checked.stderr.strip().splitlines() or ["no output"])[-1]
        raise LocalRayError(f"Ray at {kept.address} did not take work: {last[:200]}")


def _end(kept: LocalRay) -> None:
    """End the `ray start --block` process and every process it started, at once: an idle
    Ray holds nothing of ours, and Ray's own drain on SIGTERM waits up to 30 s."""
    import psutil

    try:
        handle = psutil.Process(kept.pid)
        family = [*handle.children(recursive=True), handle]
    except psutil.NoSuchProcess:
        return
    kill_and_wait(family)


def _is_ours(kept: LocalRay) -> bool:
    try:
        return abs(_start_time(kept.pid) - kept.started) < 0.01
    except (OSError, ValueError):
        return False


def _start_time(pid: int) -> float:
    import psutil

    try:
        return psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        raise OSError(f"no process {pid}") from None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
