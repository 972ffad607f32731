"""`gensweep tensorboard`: a host that cannot be served on and a port that is taken are one line
and exit 2 before any URL; a host other machines can reach is said so. Real subprocesses, real
sockets, a real TensorBoard."""

from __future__ import annotations

import os
import re
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GENSWEEP = str(Path(sys.executable).parent / "gensweep")
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
URL = re.compile(r"http://\S+:(\d+)/")


def _gensweep(*args, cwd: Path) -> subprocess.CompletedProcess:
    # A wrong refusal would start TensorBoard, which serves until stopped: the timeout ends it.
    return subprocess.run([GENSWEEP, *map(str, args)], capture_output=True, text=True, cwd=cwd, env=ENV,
                          timeout=120, check=False)


def _assert_refused(result: subprocess.CompletedProcess, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not URL.search(result.stdout + result.stderr), result.stdout  # no URL that does not work
    for word in words:
        assert word in lines[0], lines[0]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_a_taken_port_is_one_line_and_exit_2_before_any_url(tmp_path, host):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = _gensweep("tensorboard", tmp_path, "--host", host, "--port", port, cwd=tmp_path)
    _assert_refused(result, f"--port {port}", "in use")


@pytest.mark.parametrize("host", ["evil host", "no-such-host.invalid", "300.1.2.3"])
def test_a_host_that_cannot_be_resolved_is_one_line_and_exit_2(tmp_path, host):
    _assert_refused(_gensweep("tensorboard", tmp_path, "--host", host, "--port", 0, cwd=tmp_path), f"--host {host}")


def _read_until_url(process: subprocess.Popen, deadline_seconds: float) -> list[str]:
    """Lines of the command's output (stderr merged) up to the one with the URL."""
    lines, pending = [], b""
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + deadline_seconds
    while not (lines and URL.search(lines[-1])):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no URL within {deadline_seconds} s: {lines}"
        if not selector.select(remaining):
            continue
        chunk = os.read(process.stdout.fileno(), 4096)
        assert chunk, f"the command ended (status {process.wait()}) before printing a URL: {lines}"
        *complete, pending = (pending + chunk).split(b"\n")
        lines += [line.decode() for line in complete]
    return lines


def _wait_until_served(port: int, deadline_seconds: float) -> None:
    deadline = time.monotonic() + deadline_seconds
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline, f"TensorBoard did not listen on port {port} in {deadline_seconds} s"
            time.sleep(0.2)  # polling a condition, bounded by the deadline


@pytest.mark.slow
@pytest.mark.parametrize("host, warned", [("0.0.0.0", True), ("127.0.0.1", False)])
def test_a_host_other_machines_reach_is_warned_about(tmp_path, host, warned):
    process = subprocess.Popen([GENSWEEP, "tensorboard", str(tmp_path), "--host", host, "--port", "0"], cwd=tmp_path,
                               env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = _read_until_url(process, 60)
        port = int(URL.search(lines[-1]).group(1))
        warnings = [line for line in lines if line.startswith("warning: ")]
        if warned:
            assert len(warnings) == 1, lines
            assert "every interface" in warnings[0] and f"port {port}" in warnings[0] and "anyone" in warnings[0]
        else:
            assert not warnings, lines
        _wait_until_served(port, 120)  # the port printed is the one TensorBoard serves on
    finally:
        process.terminate()  # the command became TensorBoard (exec): this stops the server
        process.wait(timeout=60)
