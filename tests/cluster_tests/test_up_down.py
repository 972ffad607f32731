"""`gensweep up` / `down`: a local Ray kept up between sweeps, joined by `gensweep run` without
being told, stopped by its own pid and nothing else; and without `up`, runs start their own Ray."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from runner import local_ray
from runner.processes import is_alive

GENSWEEP = str(Path(sys.executable).parent / "gensweep")

SPEC = {
    "name": "kept",
    "model": {"name": "vae", "hidden_dim": 32},
    "data": {"name": "digits", "train_size": 512, "val_size": 64},
    "train": {"epochs": 1, "batch_size": 64},
    "search": {"model.latent_dim": {"grid": [2, 4]}},
    "quality": {"every": 0},
}


def _gensweep(*arguments: str, cwd: Path, environment: dict) -> subprocess.CompletedProcess:
    return subprocess.run([GENSWEEP, *arguments], cwd=cwd, env=environment, capture_output=True, text=True,
                          timeout=300, check=False)


def _answers(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    try:
        socket.create_connection((host, int(port)), timeout=2).close()
        return True
    except OSError:
        return False


def _ray_heads_started_for(cache: Path) -> list[int]:
    """The `ray start --head --block` processes running with this GENSWEEP_CACHE."""
    import psutil

    heads = []
    for process in psutil.process_iter(["cmdline"]):
        command = process.info["cmdline"] or []
        if "start" in command and "--head" in command and "--block" in command:
            try:
                if process.environ().get("GENSWEEP_CACHE") == str(cache):
                    heads.append(process.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
    return heads


@pytest.mark.slow
def test_sweeps_join_the_ray_up_keeps_and_down_stops_only_that(tmp_path):
    import psutil

    environment = {**os.environ, "GENSWEEP_CACHE": str(tmp_path / "cache")}  # its own state: this test's Ray
    environment.pop("RAY_ADDRESS", None)
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(SPEC))
    # A process that looks like a Ray head to anything matching command lines, as a broad
    # `ray stop` or a pkill would: down must leave it alone.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", "ray", "start", "--head"])
    try:
        # Two `up` at once (two terminals): one Ray, which both then name.
        racing = [subprocess.Popen([GENSWEEP, "up", "--cpus", "2"], cwd=tmp_path, env=environment, text=True,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for _ in range(2)]
        outputs = [process.communicate(timeout=300)[0] for process in racing]
        assert [process.returncode for process in racing] == [0, 0], outputs
        state = json.loads((tmp_path / "cache" / "ray-up" / local_ray.STATE_FILE).read_text())
        address, pid = state["address"], state["pid"]
        assert address.startswith("127.0.0.1:")
        assert sorted("Ray is up at" in output for output in outputs) == [False, True], outputs
        assert all(address in output for output in outputs), outputs
        assert _ray_heads_started_for(tmp_path / "cache") == [pid]  # no second Ray left running, unrecorded
        assert (Path(state["token_path"]).stat().st_mode & 0o777) == 0o600  # the token: this user's alone
        again = _gensweep("up", cwd=tmp_path, environment=environment)
        assert f"already up at {address}" in again.stdout and json.loads(
            (tmp_path / "cache" / "ray-up" / local_ray.STATE_FILE).read_text())["pid"] == pid

        for name in ("first", "second"):
            ran = _gensweep("run", "s.yaml", "--storage-path", "out", "--name", name, cwd=tmp_path,
                            environment=environment)
            assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
            assert f"(gensweep up {address})" in ran.stdout and "2 of 2 trials finished" in ran.stdout
            # Its trials ran in the kept Ray's worker processes: their logs are in its directory.
            trial_pids = {json.loads(path.read_text())["pid"] for path in (tmp_path / "out" / name).glob("*/gensweep.json")}
            logs = {path.name for path in Path(state["temp_dir"]).glob("session_*/logs/worker-*.out")}
            assert trial_pids and all(any(name.endswith(f"-{trial_pid}.out") for name in logs) for trial_pid in trial_pids)
            assert psutil.Process(pid).is_running() and _answers(address)  # the sweep's end left it up

        family = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        stopped = _gensweep("down", cwd=tmp_path, environment=environment)
        assert stopped.returncode == 0 and f"stopped the Ray at {address}" in stopped.stdout
        assert not any(is_alive(process) for process in family)
        assert not _answers(address)
        assert bystander.poll() is None  # only what `up` started
        assert not Path(state["temp_dir"]).exists()

        # Without `up`, a run starts a Ray of its own, as it always did, and ends it.
        alone = _gensweep("run", "s.yaml", "--storage-path", "out", "--name", "alone", "--set",
                          "search.model.latent_dim={grid: [2]}", cwd=tmp_path, environment=environment)
        assert alone.returncode == 0, alone.stdout[-2000:] + alone.stderr[-2000:]
        assert "joined" not in alone.stdout and "1 of 1 trials finished" in alone.stdout
        nothing = _gensweep("down", cwd=tmp_path, environment=environment)
        assert nothing.returncode == 0 and "no Ray started by `gensweep up` is running" in nothing.stdout
    finally:
        _gensweep("down", cwd=tmp_path, environment=environment)
        bystander.kill()
        bystander.wait()


def test_a_state_file_whose_process_is_gone_or_another_is_not_a_running_ray(tmp_path, monkeypatch):
    """A killed `up` (or a pid the system gave to another process since) leaves a state file
    that must not make runs try to join a Ray that is not there."""
    import psutil

    monkeypatch.setenv("GENSWEEP_CACHE", str(tmp_path))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    directory = local_ray.state_dir()
    directory.mkdir(parents=True)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state = {"address": "127.0.0.1:1", "pid": gone.pid, "started": time.time(), "token_path": str(tmp_path / "t"),
             "cpus": 1, "temp_dir": str(tmp_path / "ray")}
    (directory / local_ray.STATE_FILE).write_text(json.dumps(state))
    assert local_ray.running() is None
    assert not (directory / local_ray.STATE_FILE).exists()

    other = psutil.Process(os.getpid())  # alive, but not started when the state file says
    (directory / local_ray.STATE_FILE).write_text(json.dumps(state | {"pid": other.pid, "started": other.create_time() - 60}))
    assert local_ray.running() is None

    from runner.cluster import cluster_address

    assert cluster_address(None) == (None, "")  # a Ray of its own
