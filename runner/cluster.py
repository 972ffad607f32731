"""The Ray cluster a command runs on: start one here or join one, and check that the paths a job
names (results, data, frames) are the same files on every node before any work is handed out."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import uuid
from pathlib import Path

from runner import local_ray, ray_internals
from runner.errors import GensweepError, one_line

NODE_ANSWER_SECONDS = 120
MARKER_PREFIX = ".gensweep-shared-check-"


class ClusterError(GensweepError):
    """Ray cannot be started or reached, or the nodes do not share a path; one-line message."""


def check_reachable(address: str, timeout: float = 5.0, what: str = "--address") -> None:
    """Fail in seconds, not minutes, when HOST:PORT has no Ray head listening (ray.init retries)."""
    host, separator, port = address.rpartition(":")
    if not separator or "://" in address or not port.isdigit():
        return  # "auto" and ray:// client addresses: ray.init itself says what is wrong
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as error:
        raise ClusterError(f"{what} {address}: no Ray cluster answers there ({error.strerror or error})") from None


def cluster_address(address: str | None) -> tuple[str | None, str]:
    """The cluster to join and where that came from: --address, else the RAY_ADDRESS environment
    variable (`ray job submit` sets it for the job it starts), else the Ray `gensweep up` keeps,
    else (None, "") to start Ray here. RAY_ADDRESS=local asks for a Ray of one's own, as it does
    of ray.init (passing over `gensweep up`'s)."""
    if address:
        return address, "--address"
    from_environment = os.environ.get("RAY_ADDRESS", "").strip()
    if from_environment == "local":
        return None, ""
    if from_environment:
        return from_environment, "RAY_ADDRESS"
    kept = local_ray.running()
    if kept is not None:
        return kept.address, "gensweep up"
    return None, ""


def start_or_join(address: str | None, quiet: bool = False) -> bool:
    """Join the cluster at `address`, or start a local Ray with this machine's cores and no
    dashboard. True when Ray was started here (and so is the caller's to shut down).

    quiet: do not copy the workers' output here (a worker's teardown noise, for instance);
    what goes wrong in a trial still reaches the caller through Tune's results.
    """
    import ray

    if ray.is_initialized():
        return False
    address, source = cluster_address(address)
    if address:
        check_reachable(address, what=source)
    if source == "gensweep up":  # its own token, which this process needs to join
        kept = local_ray.running()
        if kept is not None:
            os.environ.update(kept.environment())
            ray_internals.reread_authentication_settings()
    # Ray's notice that a local cluster turned token authentication on: the safe default,
    # nothing to act on, printed at every start.
    logging.getLogger(ray_internals.AUTH_TOKEN_NOTICE_LOGGER).setLevel(logging.ERROR)
    try:
        if address:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=not quiet)
            joined = ray.get_runtime_context().gcs_address  # "auto" resolved to the head's HOST:PORT
            print(f"gensweep: joined the Ray cluster at {joined} ({source} {address}): "
                  f"{_describe(ray.cluster_resources())}", flush=True)
        else:
            # Tune reuses a trial's process only once the previous trial's thread has ended, and
            # fails the next trial if that takes over 2 s: a stopped trial closing its event files
            # on slow storage can. The workers started here inherit this environment.
            os.environ.setdefault("TUNE_FUNCTION_THREAD_TIMEOUT_S", "30")
            os.environ.setdefault(*ray_internals.NO_IDLE_WORKERS_AT_START)  # a trial never uses one
            # address="local": a Ray of its own. Without it, ray.init() joins the cluster whose
            # address the last `ray start` on this machine left in Ray's temp directory.
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False,
                     logging_level=logging.WARNING, log_to_driver=not quiet)
    except (ConnectionError, RuntimeError, ValueError, ray.exceptions.AuthenticationError) as error:
        where = f"at {address} ({source})" if address else "on this machine"
        raise ClusterError(f"cannot start or reach Ray {where}: {_why_not(error)}") from None
    return True


def end_ray_started_here() -> None:
    """End the Ray that start_or_join started here, once no work runs on it (or none is wanted):
    disconnected, then its processes killed at once, without Ray's second-a-process grace
    (runner.ray_internals.shutdown_at_once)."""
    import ray

    ray_internals.shutdown_at_once(ray)


def _why_not(error: Exception) -> str:
    """Why ray.init failed, in one line. A head that refused this machine's token (none, or not
    the cluster's) reaches ray.init only as the text of a traceback inside the cause of its
    ConnectionError ("Failed to connect to Ray cluster"), which alone would not say why
    (tests/cluster_tests/test_netns_cluster.py fails should Ray stop showing it there)."""
    from ray.exceptions import AuthenticationError

    refused = f"{AuthenticationError.__module__}.{AuthenticationError.__qualname__}:"
    if isinstance(error, ConnectionError) and refused in str(error.__cause__):
        return ("the cluster refused this machine's authentication token (none, or not the cluster's): run with "
                "RAY_AUTH_MODE=token and the cluster's token in ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN")
    return one_line(error)


def _describe(resources: dict) -> str:
    nodes = sum(1 for key in resources if key.startswith("node:") and key != "node:__internal_head__")
    gpus = f", {resources['GPU']:g} GPUs" if resources.get("GPU") else ""
    return f"{nodes} node{'s' if nodes != 1 else ''}, {resources.get('CPU', 0):g} CPUs{gpus}"


def fingerprint(path: str) -> str:
    """What a node sees at `path`: missing, a file of some size, or a directory with some names."""
    if os.path.isdir(path):
        names = "\n".join(sorted(os.listdir(path))[:200])
        return "dir:" + hashlib.sha256(names.encode()).hexdigest()[:16]
    if os.path.isfile(path):
        return f"file:{os.path.getsize(path)}"
    return "missing"


def require_shared(paths: dict[str, Path]) -> None:
    """Every live node must see the same files at each path (label -> path): a results directory
    only the head can see would make trials on other nodes write where no one reads. The first
    path, the output, gets a fresh marker file, so a node with an empty directory of its own
    there fails too. Nodes that join later (an autoscaler's) are not checked."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    nodes = [node for node in ray.nodes() if node["Alive"]]
    if len(nodes) < 2:
        return
    labels = list(paths)
    output = Path(paths[labels[0]])
    output.mkdir(parents=True, exist_ok=True)
    marker = output / f"{MARKER_PREFIX}{uuid.uuid4().hex}"
    marker.touch()
    try:
        here = {label: fingerprint(str(path)) for label, path in paths.items()}
        look = ray.remote(num_cpus=0)(_look)
        answers = [
            look.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=False)).remote(
                {label: str(path) for label, path in paths.items()}
            )
            for node in nodes
        ]
        try:
            seen = ray.get(answers, timeout=NODE_ANSWER_SECONDS)
        except ray.exceptions.GetTimeoutError:
            raise ClusterError(f"a node did not answer the shared-storage check in {NODE_ANSWER_SECONDS} s") from None
    finally:
        marker.unlink(missing_ok=True)
    for node, answer in zip(nodes, seen):
        for label in labels:
            if answer[label] != here[label]:
                where = f"node {node['NodeManagerAddress']} ({node['NodeID'][:8]})"
                raise ClusterError(
                    f"{label} {paths[label]}: {where} does not see the same files there; a job on several "
                    "nodes needs storage every node mounts at the same path (NFS, EFS, ...)"
                )


def _look(paths: dict[str, str]) -> dict[str, str]:
    return {label: fingerprint(path) for label, path in paths.items()}
