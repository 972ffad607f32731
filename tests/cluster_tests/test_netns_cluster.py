"""A real multi-host Ray cluster: three hosts, each a network namespace with an interface and
address of its own on a private switch (tests/netns.py), so their processes reach one another
only over that link, as separate machines do. The head and the worker are started with
`ray start` and token authentication as cluster-local.yaml sets it up (RAY_AUTH_MODE=token, the
cluster's token in each host's ~/.ray/auth_token); the third host has no token.

Shown here: a sweep joined with --address runs trials on both hosts; the worker host's every
process SIGKILLed mid-sweep costs nothing that had finished, and its running trial goes on from
its checkpoint on the head; the host without the token reaches the head's port but can neither
join the cluster nor run a sweep on it. The hosts have no address or route but loopback and the
private link, so a Ray port bound to 0.0.0.0 in one is open on those two only, and every
connection their processes hold is between the test's own addresses; this machine's ~/.ray and
/tmp/ray are left as they were.

The hosts share this machine's filesystem, as nodes sharing an NFS mount do: the results path
is the same files on every host (gensweep checks), and each host has its own HOME and Ray
temporary directory, so no host reads another's token or Ray session files. The head runs
without Ray's dashboard, for time: cluster-local.yaml binds it to the head's 127.0.0.1, which no
other host reaches in any case."""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from netns import Host, Network, skip_unless_namespaces_can_be_made
from sweeps import GENSWEEP, end_if_running, wait_for

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
RAY = str(Path(sys.executable).parent / "ray")
PYTHON = sys.executable
PORT = 6379  # Ray's default: free in a namespace of the test's own, whatever runs on this machine
# Ray's head notices a lost node after 3 missed health checks half a second apart (default: 30 s)
FAST_HEALTH_CHECKS = json.dumps({"health_check_period_ms": 500, "health_check_failure_threshold": 3})
# An outsider's join or ray.init gives up after this many seconds of refusals (Ray's default: 20)
OUTSIDER_RETRY_SECONDS = "3"
EPOCHS = 8  # at a few tenths of a second each: the kill lands mid-trial
REFUSED = "Authentication token is missing or incorrect"  # the head's answer to a wrong or missing token


@dataclass
class TokenCluster:
    network: Network
    head: Host
    worker: Host
    outsider: Host
    scratch: Path  # short paths: Ray's socket paths under its temporary directory must stay short
    untouched: dict  # what this machine's ~/.ray and Ray's address file were before

    @property
    def address(self) -> str:
        return f"{self.head.address}:{PORT}"

    def home(self, host: Host) -> Path:
        return self.scratch / f"home-{host.label}"

    def environment(self, host: Host, auth_mode: str | None = "token", **extra: str) -> dict[str, str]:
        """The environment of a login on `host`: its own HOME (so its own ~/.ray/auth_token),
        cluster-local.yaml's RAY_AUTH_MODE=token, and this checkout on the path. Nothing of
        Ray's from this process's environment (a RAY_ADDRESS or RAY_AUTH_TOKEN of the user's)."""
        environment = {key: value for key, value in os.environ.items() if not key.startswith("RAY_")}
        environment.update(HOME=str(self.home(host)), PYTHONPATH=str(ROOT), **extra)
        if auth_mode is not None:
            environment["RAY_AUTH_MODE"] = auth_mode
        return environment

    def run(self, host: Host, argv: list[str], timeout: float = 120, **environment) -> subprocess.CompletedProcess:
        return subprocess.run(self.network.command(host, argv), env=self.environment(host, **environment),
                              capture_output=True, text=True, timeout=timeout, check=False)

    def start(self, host: Host, argv: list[str], log: Path, **environment) -> subprocess.Popen:
        with open(log, "w") as output:
            return subprocess.Popen(self.network.command(host, argv), env=self.environment(host, **environment),
                                    stdout=output, stderr=subprocess.STDOUT, cwd=log.parent)

    def ray_start(self, host: Host, *arguments: str, temp_name: str = "", **environment) -> subprocess.CompletedProcess:
        temp_dir = self.scratch / f"ray-{host.label}{temp_name}"
        return self.run(host, [RAY, "start", "--node-ip-address", host.address, "--num-cpus", "1",
                               "--disable-usage-stats", "--temp-dir", str(temp_dir), *arguments], **environment)

    def node_addresses(self) -> list[str]:
        """Every node the head has ever known (alive or dead), asked from the head with the token."""
        probe = (f"import json, ray; ray.init(address={self.address!r}, logging_level='ERROR'); "
                 "print(json.dumps(sorted(n['NodeManagerAddress'] for n in ray.nodes())))")
        done = self.run(self.head, [PYTHON, "-c", probe])
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])


def _generate_token(cluster: TokenCluster, host: Host) -> str:
    """`ray get-auth-token --generate` in the host's HOME, as cluster-local.yaml's comment says."""
    done = subprocess.run([RAY, "get-auth-token", "--generate"], env=cluster.environment(host),
                          capture_output=True, text=True, timeout=120, check=False)
    token_file = cluster.home(host) / ".ray" / "auth_token"
    assert done.returncode == 0 and token_file.is_file(), done.stderr[-3000:]
    return token_file.read_text().strip()


def _snapshot(path: Path) -> dict[str, tuple[int, float]]:
    """Names, sizes and modification times under `path` (nothing when it is missing)."""
    if not path.exists():
        return {}
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(f): (f.stat().st_size, f.stat().st_mtime) for f in files}


@pytest.fixture(scope="module")
def cluster():
    skip_unless_namespaces_can_be_made()
    untouched = {"~/.ray": _snapshot(Path.home() / ".ray"), "/tmp/ray": _snapshot(Path("/tmp/ray/ray_current_cluster"))}
    scratch = Path(tempfile.mkdtemp(prefix="gsns-"))
    try:
        with Network(subnet="10.213.0") as network:
            head, worker, outsider = network.add_host("head"), network.add_host("worker"), network.add_host("outsider")
            cluster = TokenCluster(network, head, worker, outsider, scratch, untouched)
            for host in (head, worker, outsider):
                cluster.home(host).mkdir()
            token = _generate_token(cluster, head)
            # cluster-local.yaml's file_mounts: the same token in the worker's ~/.ray/auth_token
            (cluster.home(worker) / ".ray").mkdir()
            (cluster.home(worker) / ".ray" / "auth_token").write_text(token)
            started = cluster.ray_start(head, "--head", "--port", str(PORT), "--include-dashboard", "false",
                                        "--system-config", FAST_HEALTH_CHECKS)
            assert started.returncode == 0, started.stderr[-3000:]
            joined = cluster.ray_start(worker, "--address", cluster.address)
            assert joined.returncode == 0, joined.stderr[-3000:]
            yield cluster
    finally:  # the network's exit has killed every process in every namespace and deleted them
        shutil.rmtree(scratch, ignore_errors=True)


def test_the_hosts_talk_only_over_their_own_link(cluster):
    assert cluster.node_addresses() == [cluster.head.address, cluster.worker.address]
    # The outsider reaches the head's port: what keeps it out below is the token, not the network.
    knock = f"import socket; socket.create_connection(({cluster.head.address!r}, {PORT}), timeout=5).close()"
    reached = cluster.run(cluster.outsider, [PYTHON, "-c", knock])
    assert reached.returncode == 0, reached.stderr[-2000:]
    for host in (cluster.head, cluster.worker):
        # Loopback and the link to the switch, and no route anywhere else: a socket bound to
        # 0.0.0.0 in here listens on these two addresses only, and nothing can leave.
        addresses = _ip_json(host, "addr")
        assert sorted(a["local"] for i in addresses for a in i["addr_info"] if a["family"] == "inet") == sorted(["127.0.0.1", host.address])
        assert [route["dst"] for route in _ip_json(host, "route")] == [f"{cluster.network.subnet}.0/24"]
        # And every connection the Ray processes hold now is between the test's own addresses.
        connections = cluster.run(host, ["ss", "-H", "-tn", "state", "established"]).stdout.split("\n")
        ends = {_ipv4(end.rsplit(":", 1)[0]) for line in connections if line.strip() for end in line.split()[-2:]}
        assert ends and ends <= {"127.0.0.1", cluster.head.address, cluster.worker.address}, ends


def _ipv4(address: str) -> str:
    """An address as ss shows it, "[::ffff:10.213.0.1]" (a dual-stack socket's) as 10.213.0.1."""
    parsed = ipaddress.ip_address(address.strip("[]"))
    return str(getattr(parsed, "ipv4_mapped", None) or parsed)


def _ip_json(host: Host, *what: str) -> list[dict]:
    return json.loads(subprocess.run(["ip", "-j", "-4", "-n", host.name, *what], capture_output=True, text=True, check=True).stdout)


def _outsider_attempts(cluster: TokenCluster) -> dict[str, dict[str, str | None]]:
    """The ways in a host without the cluster's token has: none at all (authentication off on
    its side, Ray's default), or a token of its own. Each gives up after a few seconds."""
    own_token = cluster.scratch / "outsiders-own-token"
    own_token.write_text(secrets.token_hex(32))  # the form of `ray get-auth-token --generate`'s
    quick = {"RAY_gcs_server_port_wait_time_s": OUTSIDER_RETRY_SECONDS}
    return {"no token": {"auth_mode": None, **quick},
            "its own token": {"auth_mode": "token", "RAY_AUTH_TOKEN_PATH": str(own_token), **quick}}


def _slug(what: str) -> str:
    return "-" + "-".join(what.replace(",", "").split())


def _at_once(attempt, attempts: dict[str, dict]) -> dict[str, subprocess.CompletedProcess]:
    """attempt(what, environment) for every attempt, side by side (each waits on the head's refusals)."""
    with ThreadPoolExecutor(len(attempts)) as pool:
        done = {what: pool.submit(attempt, what, environment) for what, environment in attempts.items()}
    return {what: future.result() for what, future in done.items()}


def test_a_host_without_the_token_cannot_join(cluster):
    def join(what, environment):
        return cluster.ray_start(cluster.outsider, "--address", cluster.address, temp_name=_slug(what), **environment)

    outcomes = _at_once(join, _outsider_attempts(cluster))
    cluster.network.kill_all(cluster.outsider.name)  # whatever a refused start left running
    for what, refused in outcomes.items():
        assert refused.returncode != 0, f"{what}: {refused.stdout[-2000:]}"
        assert REFUSED in refused.stderr, f"{what}: {refused.stderr[-3000:]}"
    assert cluster.node_addresses() == [cluster.head.address, cluster.worker.address]


def test_a_host_without_the_token_cannot_run_a_sweep_on_the_cluster(cluster, tmp_path):
    """Refused by the head, in one line that says why; and, with token mode on but no token here
    at all, by Ray on this side before it asks (Ray's AuthenticationError, which gensweep once
    let out as a traceback)."""
    spec = _write_spec(tmp_path, "outsider", [2])
    attempts = _outsider_attempts(cluster) | {"token mode, no token": {"auth_mode": "token"}}
    def submit(what, environment):
        return cluster.run(cluster.outsider, [GENSWEEP, "run", str(spec), "--storage-path", str(tmp_path / "out"),
                                              "--name", f"outsider{_slug(what)}", "--address", cluster.address], **environment)

    outcomes = _at_once(submit, attempts)
    cluster.network.kill_all(cluster.outsider.name)
    for what, refused in outcomes.items():
        assert refused.returncode == 2, f"{what}: {refused.stdout[-2000:]}{refused.stderr[-3000:]}"
        message = refused.stderr.strip().splitlines()[-1]
        assert message.startswith(f"error: cannot start or reach Ray at {cluster.address} (--address): "), message
        expected = "no authentication token was found" if what == "token mode, no token" else "the cluster refused this machine's authentication token"
        assert expected in message, message
    assert not any((tmp_path / "out").glob("*"))  # nothing ran: the run directories claimed are released


def _write_spec(directory: Path, name: str, latent_dims: list[int], **sections) -> Path:
    spec = {
        "name": name,
        "model": {"name": "vae", "hidden_dim": 64},
        "data": {"name": "digits", "train_size": 2048, "val_size": 128},
        "train": {"epochs": EPOCHS, "batch_size": 64},
        "search": {"model.latent_dim": {"grid": latent_dims}},
        "quality": {"every": 0},
        "tune": {"max_failures": 2},
    }
    for section, values in sections.items():
        spec[section] = spec.get(section, {}) | values
    (directory / "s.yaml").write_text(yaml.safe_dump(spec))
    return directory / "s.yaml"


def test_a_sweep_runs_on_both_hosts_and_losing_the_worker_loses_nothing_finished(cluster, tmp_path):
    """Four trials, one CPU a host. Once the worker has finished a trial and is two epochs into
    another, every process in the worker's namespace is SIGKILLed at once: the host is gone."""
    spec = _write_spec(tmp_path, "two_hosts", [2, 3, 4, 5])
    run_dir = tmp_path / "out" / "two_hosts"
    on_worker = f"{cluster.worker.address}:"
    driver = cluster.start(cluster.head, [GENSWEEP, "run", str(spec), "--storage-path", str(tmp_path / "out"),
                                          "--address", cluster.address], tmp_path / "run.log")
    try:
        def worker_in_its_second_trial():
            records = _records(run_dir)
            mine = {name: r for name, r in records.items() if r.get("node", "").startswith(on_worker)}
            done = [name for name, r in mine.items() if r["status"] == "finished"]
            going = [name for name, r in mine.items() if r["status"] == "running" and 2 <= r.get("epoch", 0) < EPOCHS - 2]
            return (records, done, going) if done and going else None

        records, finished_on_worker, (lost,) = wait_for(
            worker_in_its_second_trial, "the worker to finish a trial and be two epochs into another", driver, seconds=300)
        finished = [name for name, record in records.items() if record["status"] == "finished"]
        files_before = {name: _contents(run_dir / name) for name in finished}
        killed = cluster.network.kill_all(cluster.worker.name)
        driver.wait(timeout=300)
    finally:
        end_if_running(driver)
    output = (tmp_path / "run.log").read_text()
    assert killed >= 3, killed  # the raylet, its helpers and the trial's process
    assert driver.returncode == 0, output[-3000:]
    assert f"joined the Ray cluster at {cluster.address} (--address {cluster.address}): 2 nodes, 2 CPUs" in output

    records = _records(run_dir)
    assert sorted(r["status"] for r in records.values()) == ["finished"] * 4
    assert {r["node"].rsplit(":", 1)[0] for r in records.values()} == {cluster.head.address, cluster.worker.address}
    # What had finished is all there: every file as it was, byte for byte, but for what the
    # driver's own Tune loggers append once they hear of the last result (result.json, progress.csv).
    for name in finished:
        after = _contents(run_dir / name)
        lost_or_changed = {f for f, data in files_before[name].items() if not after.get(f, b"").startswith(data)}
        assert not lost_or_changed, (name, sorted(lost_or_changed))
        assert {f for f in files_before[name] if after[f] != files_before[name][f]} <= {"result.json", "progress.csv"}
        assert _epochs(run_dir / name) == list(range(1, EPOCHS + 1))
    assert all(records[name]["node"].startswith(on_worker) for name in finished_on_worker)
    # The trial the worker was running went on from its checkpoint on the head: never back to
    # epoch 1, and on to the end.
    assert records[lost]["node"].startswith(f"{cluster.head.address}:")
    assert records[lost]["attempts"] == 2
    epochs = _epochs(run_dir / lost)
    assert epochs.count(1) == 1 and epochs[-1] == EPOCHS and sorted(set(epochs)) == list(range(1, EPOCHS + 1))


def test_nothing_outside_the_namespaces_was_touched(cluster):
    """Last: the user's ~/.ray (their own token) and Ray's default address file as they were."""
    assert _snapshot(Path.home() / ".ray") == cluster.untouched["~/.ray"]
    assert _snapshot(Path("/tmp/ray/ray_current_cluster")) == cluster.untouched["/tmp/ray"]


def _records(run_dir: Path) -> dict[str, dict]:
    """Each trial directory's gensweep.json (written whole, renamed into place), by directory name."""
    if not run_dir.is_dir():
        return {}
    return {record.parent.name: json.loads(record.read_text()) for record in run_dir.glob("*/gensweep.json")}


def _contents(directory: Path) -> dict[str, bytes]:
    return {str(f.relative_to(directory)): f.read_bytes() for f in sorted(directory.rglob("*")) if f.is_file()}


def _epochs(trial_dir: Path) -> list[int]:
    """The epochs Tune recorded for the trial, in order (result.json: a line a report)."""
    return [json.loads(line)["epoch"] for line in (trial_dir / "result.json").read_text().splitlines()]
