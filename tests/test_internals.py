"""The library internals this project relies on, one adapter per library, each function called
for real against the installed library: an upgrade that moves or renames a private name fails
here, by name, instead of in the middle of a sweep. And no private name outside the adapters.

models/torch_internals.py (torch), runner/ray_internals.py (Ray),
runner/train/tensorboard_internals.py (torch's TensorBoard writer).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
import shutil
import time
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from tbreader import hparams_of, read_events
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_api
from torch.utils.tensorboard import SummaryWriter

from models import torch_internals
from runner import ray_internals
from runner.processes import is_alive
from runner.train import tensorboard_internals

ROOT = Path(__file__).resolve().parents[1]
ADAPTERS = {ROOT / "models" / "torch_internals.py", ROOT / "runner" / "ray_internals.py",
            ROOT / "runner" / "train" / "tensorboard_internals.py"}
# A private name of one of the four libraries (a call, an import or a logger's name in a
# string), and the private names reached through an object, which no module path precedes.
PRIVATE = re.compile(r"(torch|ray|tensorboard|optuna)[a-zA-Z_.]*\._[a-z]|_get_file_writer|get_storage\(|trial_fs_path")


def test_no_private_name_of_torch_ray_tensorboard_or_optuna_outside_the_adapters():
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for package in ("runner", "models", "alignment")
        for path in sorted((ROOT / package).rglob("*.py")) if path not in ADAPTERS
        for number, line in enumerate(path.read_text().splitlines(), 1) if PRIVATE.search(line)
    ]
    assert found == []


# -- torch ----------------------------------------------------------------------------------------
def test_tree_map_reaches_every_leaf_and_keeps_the_containers():
    stack = torch.arange(6.0).reshape(2, 3)
    state = {"epoch": 3, "model": OrderedDict(weight=stack[0], bias=stack[1]),
             "optimizers": [{"state": {0: {"step": torch.tensor(5.0)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]}],
             "shape": (2, "name")}
    cloned = torch_internals.tree_map(lambda v: v.clone() if isinstance(v, torch.Tensor) else v, state)
    assert type(cloned["model"]) is OrderedDict and type(cloned["shape"]) is tuple
    assert cloned["epoch"] == 3 and cloned["shape"] == (2, "name") and cloned["optimizers"][0]["param_groups"][0]["lr"] == 1e-3
    weight = cloned["model"]["weight"]
    assert torch.equal(weight, stack[0]) and weight.untyped_storage().nbytes() == 3 * 4  # its own row, not the stack
    assert cloned["optimizers"][0]["state"][0]["step"].item() == 5.0
    assert torch_internals.tree_map(lambda v: v * 2, [1, (2, {"a": 3})]) == [2, (4, {"a": 6})]


def test_foreach_copy_copies_each_pair_into_views_of_a_stack():
    stack = torch.zeros(2, 3, 4)
    destinations = [stack[0], stack[1]]
    sources = [torch.arange(12.0).reshape(4, 3).t(), torch.full((3, 4), 7.0)]  # the first transposed
    torch_internals.foreach_copy_(destinations, tuple(sources))
    assert torch.equal(stack[0], sources[0]) and torch.equal(stack[1], sources[1])


def test_the_cpu_bf16_checks_exist_and_answer_a_bool():
    missing = [name for name in torch_internals.CPU_BF16_CHECKS if not callable(getattr(torch.cpu, name, None))]
    assert missing == [], f"torch {torch.__version__} no longer has torch.cpu.{missing}: find the new check"
    answer = torch_internals.cpu_has_native_bf16()
    assert isinstance(answer, bool)
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists() and " avx512_bf16" in cpuinfo.read_text():
        assert answer  # the instruction set the kernel reports, seen by torch too


def test_has_triton_answers_a_bool_and_no_without_the_package():
    answer = torch_internals.has_triton()
    assert isinstance(answer, bool)
    if importlib.util.find_spec("triton") is None:
        assert answer is False


def test_cpp_compiler_is_the_one_inductor_finds_and_none_when_it_finds_none():
    from torch._inductor import config as inductor_config

    compiler = torch_internals.cpp_compiler()
    if shutil.which("g++") or shutil.which("c++") or shutil.which("clang++"):
        assert isinstance(compiler, str) and compiler
    # inductor's own patch(): monkeypatch's undo deletes the config entry, hiding it from later tests
    with inductor_config.patch({"cpp.cxx": (None, "/nonexistent/c++")}):
        assert torch_internals.cpp_compiler() is None
        assert torch_internals.cpp_compiler_candidates() == ["/nonexistent/c++"]


def test_is_compile_failure_knows_a_real_torch_compile_failure():
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no kernels today")

    def double(x):  # a function of this test's own: no compiled code cached for it
        return x * 2

    with pytest.raises(RuntimeError) as raised:
        torch.compile(double, backend=broken_backend)(torch.ones(3))
    assert torch_internals.is_compile_failure(raised.value)
    assert not torch_internals.is_compile_failure(RuntimeError("an ordinary failure"))


# -- Ray ------------------------------------------------------------------------------------------
def test_the_auth_token_notice_comes_from_the_logger_we_silence():
    module = importlib.import_module(ray_internals.AUTH_TOKEN_NOTICE_LOGGER)
    assert isinstance(module.logger, logging.Logger)
    assert module.logger.name == ray_internals.AUTH_TOKEN_NOTICE_LOGGER


def test_trial_storage_path_reads_the_trials_directory_from_tunes_storage_context(tmp_path):
    from ray import tune
    from ray.train._internal.storage import StorageContext

    assert callable(getattr(tune.TuneContext, "get_storage", None)), "TuneContext.get_storage() is gone"
    # What Tune builds for a trial (storage path, experiment, trial directory), asked as the trial asks.
    storage = StorageContext(storage_path=str(tmp_path), experiment_dir_name="run", trial_dir_name="latent_dim=2_ab12")

    class Context:
        def get_storage(self):
            return storage

    assert ray_internals.trial_storage_path(Context()) == ("local", tmp_path / "run" / "latent_dim=2_ab12")


def test_the_wandb_callback_starts_its_actor_class_and_stops_each_trials_actor():
    from ray.air.integrations.wandb import WandbLoggerCallback

    actor = ray_internals.wandb_logging_actor_class(WandbLoggerCallback)
    assert callable(getattr(actor, "run", None)) and actor.__name__ == "_WandbLoggingActor"

    class Callback(WandbLoggerCallback):
        pass

    class Actor(actor):
        pass

    ray_internals.use_wandb_logging_actor(Callback, Actor)
    assert Callback._logger_actor_cls is Actor and WandbLoggerCallback._logger_actor_cls is actor
    # No Ray started: the queues and the stop are the callback's own; a stand-in records what is put.
    callback, stops = Callback(project="p"), []
    callback._trial_queues = {"trial": type("Queue", (), {"put": lambda self, item: stops.append(item)})()}
    ray_internals.stop_wandb_logging_actors(callback)
    assert len(stops) == 1 and stops[0][0].name == "END"


def test_restarted_trials_keep_the_drivers_files_when_they_hold_the_stored_ones(tmp_path):
    """The hook Ray's loggers call when a trial starts again, and what the guard reads: the
    behaviour itself is test_faults.py::test_a_killed_trial_is_retried_from_its_checkpoint."""
    import inspect

    from ray.train._internal.storage import StorageContext
    from ray.tune.logger import CSVLoggerCallback, JsonLoggerCallback

    from runner.sweep.result_files import CsvResults, JsonResults

    assert "self._restore_from_remote(EXPR_RESULT_FILE, trial)" in inspect.getsource(JsonLoggerCallback.log_trial_start)
    assert "self._restore_from_remote(EXPR_PROGRESS_FILE, trial)" in inspect.getsource(CSVLoggerCallback._setup_trial)
    for guarded, original in ((JsonResults, JsonLoggerCallback), (CsvResults, CSVLoggerCallback)):
        assert guarded._restore_from_remote is not original._restore_from_remote

    storage = StorageContext(storage_path=str(tmp_path / "storage"), experiment_dir_name="run", trial_dir_name="t")
    stored = Path(storage.trial_fs_path) / "result.json"
    stored.parent.mkdir(parents=True)
    trial = type("Trial", (), {"local_path": str(tmp_path / "driver"), "storage": storage})()
    driver_copy = Path(trial.local_path) / "result.json"
    holds = ray_internals._driver_copy_holds_the_stored_one
    assert not holds(trial, "result.json")  # no driver copy (a resume's new driver): Ray copies
    driver_copy.parent.mkdir()
    driver_copy.write_text('{"epoch": 1}\n{"epoch": 2}\n')
    assert holds(trial, "result.json")  # nothing stored yet
    stored.write_text('{"epoch": 1}\n')
    assert holds(trial, "result.json")  # the driver's has more: kept
    stored.write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3}\n')
    assert not holds(trial, "result.json")  # the stored one has more
    stored.write_text('{"epoch": 7}\n')
    assert not holds(trial, "result.json")  # another file altogether



COUNT_CALLBACKS = """
import json, sys
from ray.air._internal import usage
from ray.tune import Callback
from ray.tune.logger import JsonLoggerCallback, LoggerCallback
from runner import ray_internals
from runner.sweep.result_files import CsvResults, JsonResults
from ray.tune.utils.callback import DEFAULT_CALLBACK_CLASSES
if sys.argv[1] == "patched":
    ray_internals.count_callbacks_without_importing_integrations(Callback, LoggerCallback, DEFAULT_CALLBACK_CLASSES)
named_like_mlflows = type("MLflowLoggerCallback", (LoggerCallback,), {})
callbacks = [JsonLoggerCallback(), JsonResults(), CsvResults(), Callback(), named_like_mlflows(), object()]
print(json.dumps({"counts": usage._count_callbacks(callbacks),
                  "imported": [name for name in ("mlflow", "wandb") if name in sys.modules]}))
"""


def test_rays_usage_tag_counts_a_sweeps_callbacks_as_before_without_importing_mlflow_or_wandb():
    import inspect
    import json
    import subprocess
    import sys

    from ray.air._internal import usage

    assert "_count_callbacks(callbacks)" in inspect.getsource(usage.tag_callbacks)
    installed = [name for name in ("mlflow", "wandb") if importlib.util.find_spec(name)]

    def counted(how: str) -> dict:
        done = subprocess.run([sys.executable, "-c", COUNT_CALLBACKS, how], check=False, cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.splitlines()[-1])

    rays, ours = counted("as Ray counts"), counted("patched")
    assert ours["counts"] == rays["counts"]
    assert rays["counts"] == {"JsonLoggerCallback": 1, "CustomLoggerCallback": 2, "CustomCallback": 1,
                              "MLflowLoggerCallback": 1}
    assert rays["imported"] == installed  # Ray's own count imports every installed one
    assert ours["imported"] == []

# -- TensorBoard ----------------------------------------------------------------------------------
def test_add_summary_writes_a_summary_made_elsewhere_even_after_close(tmp_path):
    writer = SummaryWriter(str(tmp_path))
    image = summary_pb2.Summary.Image(height=1, width=1, colorspace=1, encoded_image_string=b"\x89PNG")
    tensorboard_internals.add_summary(writer, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="grid", image=image)]), 3)
    tensorboard_internals.add_summary(writer, hparams_api.hparams_pb({"latent_dim": 2}))  # no step
    writer.close()
    value = summary_pb2.Summary.Value(tag="late", simple_value=1.5)
    tensorboard_internals.add_summary(writer, summary_pb2.Summary(value=[value]), 4)  # reopens, as add_scalar would
    writer.close()

    events = read_events(tmp_path)
    assert [(image.step, image.encoded_image_string) for image in events.Images("grid")] == [(3, b"\x89PNG")]
    assert hparams_of(events)["_hparams_/session_start_info"].session_start_info.hparams["latent_dim"].number_value == 2
    assert [(scalar.step, scalar.value) for scalar in events.Scalars("late")] == [(4, 1.5)]


# -- Ray -------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_shutdown_at_once_ends_every_process_the_ray_started_here_started(monkeypatch):
    """Ray's private node and process table as runner.ray_internals.shutdown_at_once reads
    them: after it, no process Ray started here (raylet, GCS, agents, workers) is left running,
    and a new Ray starts in the same process. And the setting that keeps Ray from starting idle
    workers (NO_IDLE_WORKERS_AT_START): Ray's default starts one here, the setting none."""
    import os

    import psutil
    import ray

    def process_id() -> int:  # defined here: pickled by value, as a worker cannot import tests
        return os.getpid()

    def workers() -> list:
        """Ray's worker processes here: default_worker.py until they name themselves ray::IDLE
        (or ray::<task>); not its agents (ray::DashboardAgent), nor the raylet, whose
        arguments name default_worker.py."""
        def is_worker(argv: list[str]) -> bool:
            named = argv[:1] and argv[0].startswith("ray::") and not argv[0].split()[0].endswith("Agent")
            return bool(named) or any(argument.endswith("workers/default_worker.py") for argument in argv[1:2])
        return [p for p in psutil.Process().children(recursive=True) if is_worker(p.cmdline())]

    ray.init(address="local", num_cpus=1, include_dashboard=False)
    try:
        started = time.monotonic()
        while not workers():  # Ray's default: an idle worker a CPU, with nothing asked of it
            assert time.monotonic() - started < 60, "Ray started no idle worker"
            time.sleep(0.05)
        idle_after = time.monotonic() - started
        worker_pid = ray.get(ray.remote(process_id).remote())
        family = psutil.Process().children(recursive=True)
        assert worker_pid in {process.pid for process in family}
        assert len(family) >= 4  # GCS, raylet, its agents and the worker at least
    finally:
        ray_internals.shutdown_at_once(ray)
    assert not ray.is_initialized()
    running = [process for process in family if is_alive(process)]
    assert running == []
    monkeypatch.setenv(*ray_internals.NO_IDLE_WORKERS_AT_START)
    ray.init(address="local", num_cpus=1, include_dashboard=False)
    try:
        time.sleep(2 * idle_after + 1)  # twice as long as the idle worker took to come above
        assert workers() == []
        assert ray.get(ray.remote(process_id).remote()) != worker_pid  # a worker started when asked for
    finally:
        ray_internals.shutdown_at_once(ray)
