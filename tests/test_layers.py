"""The layers are checked, not hoped for: import-linter's contracts (pyproject.toml), Ray Tune
only in runner/sweep/, every module importable on its own, and the light commands light."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("gensweep", "runner", "models", "alignment")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess:
    # --no-cache: nothing written into the tree; PYTHONPATH first, so grimp reads the tree in cwd.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], check=False, cwd=cwd, capture_output=True, text=True,
                          env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"}, timeout=120)


def test_the_import_contracts_hold():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, arrow, broken", [
    ("runner/spec/names.py", "import runner.sweep.driver", "runner is in layers"),
    ("runner/results/report.py", "import torch", "results and spec import no torch"),
    ("models/losses.py", "from runner.errors import GensweepError", "models imports nothing of runner"),
    ("alignment/methods.py", "import runner.spec", "alignment imports nothing of runner"),
    ("runner/results/report.py", "import gensweep", "gensweep (the Python API) sits on top"),
])
def test_a_new_arrow_that_breaks_a_layer_fails(tmp_path, module, arrow, broken):
    """The contracts catch what they are for: a copy of the tree with one arrow more."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    with open(tmp_path / module, "a") as file:
        file.write(f"\n{arrow}  # noqa\n")
    result = _lint_imports(tmp_path)
    assert result.returncode == 1
    assert f"{broken}" in result.stdout and "BROKEN" in result.stdout


def _python_files():
    for package in PACKAGES:
        yield from sorted((ROOT / package).rglob("*.py"))


def _imported_modules(path: Path):
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def test_only_the_sweep_imports_ray_tune():
    # import-linter names external packages by their top level (ray), so this arrow is read here.
    outside = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in _python_files() if not path.is_relative_to(ROOT / "runner" / "sweep")
        for name in _imported_modules(path) if name == "ray.tune" or name.startswith("ray.tune.")
    ]
    assert outside == []


def _every_module() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        names += [info.name for info in pkgutil.walk_packages(importlib.import_module(package).__path__, package + ".")]
    return names


FORK_EACH = """
import os, sys, traceback
# What our modules import from outside, loaded once; each child then imports one of our modules
# with none of ours loaded before it: a fresh interpreter as far as this project's code goes.
for library in ("numpy", "cv2", "pydantic", "click", "yaml", "torch", "torchvision", "ray", "ray.tune", "ray.data",
                "optuna", "tensorboard", "matplotlib", "skimage", "torchmetrics"):
    __import__(library)
assert not any(name.split(".")[0] in ("gensweep", "runner", "models", "alignment") for name in sys.modules)
failed = 0
for module in sys.argv[1:]:
    pid = os.fork()
    if pid == 0:
        try:
            __import__(module)
        except BaseException:
            print(module + ": " + traceback.format_exc().strip().splitlines()[-1], flush=True)
            os._exit(1)
        os._exit(0)
    failed += os.waitpid(pid, 0)[1] != 0
print("failed", failed)
"""


@pytest.mark.slow
def test_every_module_imports_on_its_own():
    """runner.data.pairs once failed unless runner.data came first: every module is imported
    first, alone, so no module leans on another having been imported before it."""
    modules = _every_module()
    assert len(modules) > 50 and "runner.sweep.driver" in modules and "models.cards" in modules
    result = subprocess.run([sys.executable, "-c", FORK_EACH, *modules], check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip().endswith("failed 0"), result.stdout + result.stderr


HEAVY = ("torch", "torchvision", "ray", "optuna", "tensorboard", "matplotlib")
PROBE = """
import json, sys
import runner.cli as cli
try:
    cli.main(sys.argv[1:], standalone_mode=False)
finally:
    print("HEAVY", json.dumps(sorted({name.split(".")[0] for name in sys.modules} & set(HEAVY))), file=sys.stderr)
""".replace("HEAVY)", repr(HEAVY) + ")")


def _heavy_modules(*args: str) -> list[str]:
    result = subprocess.run([sys.executable, "-c", PROBE, *args], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    line = [line for line in result.stderr.splitlines() if line.startswith("HEAVY")]
    assert line, result.stderr
    return json.loads(line[-1].removeprefix("HEAVY "))


@pytest.mark.parametrize("args", [["--help"], ["validate", "search_spaces/vae_latent.yaml"],
                                  ["validate", "search_spaces/gan_variants.yaml"], ["run", "--help"], ["schema"]])
def test_the_light_commands_import_neither_torch_nor_ray(args):
    assert _heavy_modules(*args) == []


def test_show_and_report_on_a_run_import_neither_torch_nor_ray(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "sweep.json").write_text(json.dumps({"metrics": ["val/recon"], "modes": ["min"]}))
    for latent, recon in ((2, 30.0), (4, 20.0)):
        (run / f"latent_dim={latent}_000{latent}").mkdir()
        record = {"trial_id": f"000{latent}", "status": "finished", "swept": {"model.latent_dim": latent},
                  "metrics": {"val/recon": recon}, "epoch": 3, "error": None}
        (run / f"latent_dim={latent}_000{latent}" / "gensweep.json").write_text(json.dumps(record))
    assert _heavy_modules("show", str(run)) == []
    # The page draws with matplotlib and asks Optuna for importances; torch and Ray it never needs.
    assert not {"torch", "torchvision", "ray"} & set(_heavy_modules("report", str(run)))
    assert (run / "report.html").exists()


SWEEP_DRIVER = """
import sys
import runner.cli, runner.sweep.driver, runner.sweep.launch, runner.sweep.trainable, runner.sweep.progress
import runner.sweep.records, runner.sweep.result_files, runner.sweep.tune_state, runner.train.tb_image_run
print(sorted({name.split(".")[0] for name in sys.modules} & {"torch", "torchvision"}))
"""


def test_a_sweeps_driver_imports_no_torch_once_the_quality_files_are_cached(tmp_path, monkeypatch):
    """torch is the trials' (1.4-1.9 s of a run's start-up): the driver checks the spec's data,
    finds the feature network and the val images' features cached, hands Tune the trainable by
    name and writes the comparison picture, all without it."""
    monkeypatch.setenv("GENSWEEP_CACHE", str(tmp_path / "cache"))
    document = yaml.safe_load((ROOT / "search_spaces" / "vae_latent.yaml").read_text())
    document["data"] |= {"train_size": 600, "val_size": 200}
    document["quality"] = {"samples": 200}
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(document))
    assert "torch" in _heavy_modules("prepare", str(tmp_path / "spec.yaml"))  # trains and caches them
    assert "torch" not in _heavy_modules("prepare", str(tmp_path / "spec.yaml"))
    imported = subprocess.run([sys.executable, "-c", SWEEP_DRIVER], check=True, cwd=ROOT, capture_output=True, text=True)
    assert imported.stdout.split("\n")[-2] == "[]"
