"""`gensweep run` refuses bad input before anything starts: exit 2, one line, no run directory."""

from __future__ import annotations

import socket

import pytest
import torch
import yaml
from click.testing import CliRunner

from runner.cli import main


def _run(tmp_path, document, *extra):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(document))
    return CliRunner().invoke(main, ["run", str(tmp_path / "s.yaml"), "--storage-path", str(tmp_path / "out"), *extra])


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again: nothing listens there


@pytest.mark.parametrize(
    "change, extra, expected",
    [
        ({"model": {"name": "vae", "latent_dim": "big"}}, [], "model.latent_dim: Input should be a valid integer"),
        ({"data": {"name": "mnist", "path": "/no/such/mnist"}}, [], "data.path: directory /no/such/mnist does not exist"),
        ({}, ["--set", "tune.sampler=bayes"], "--set tune.sampler=bayes: tune.sampler: Input should be"),
        ({}, ["--address", "127.0.0.1:PORT"], "no Ray cluster answers there"),
        ({}, ["--storage-path", "s3://bucket/runs"], "--storage-path s3://bucket/runs: storage URIs are not supported"),
        pytest.param({"resources": {"gpu": 0.25}}, [], "resources.gpu: 0.25 per trial, but this machine has no GPU for Ray",
                     marks=[pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
                            pytest.mark.slow]),  # Ray starts before it can count the GPUs
    ],
)
def test_run_refuses_before_starting(tmp_path, tiny_document, change, extra, expected):
    extra = [arg.replace("PORT", str(_free_port())) for arg in extra]
    result = _run(tmp_path, {**tiny_document, **change}, *extra)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("search, expected", [({}, "ok: 1 trial of vae on digits"),
                                              ({"model.latent_dim": {"grid": [2, 4]}}, "ok: 2 trials of vae on digits")])
def test_validate_counts_trials_in_words(tmp_path, tiny_document, search, expected):
    (tmp_path / "s.yaml").write_text(yaml.safe_dump({**tiny_document, "search": search}))
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "s.yaml")])
    assert result.exit_code == 0, result.output
    assert expected in result.output.splitlines()[0]


# -- the console script ---------------------------------------------------------------------------
ENTRY = """
import atexit, pathlib, sys
import runner.cli as cli

command = cli.main

def main_importing_torch():  # as `run` or `validate` do, inside the command: after entry() began
    import torch
    atexit.register(lambda: pathlib.Path("handler-ran").write_text("yes"))
    sys.stdout.write("buffered, not yet flushed")
    command()

cli.main = main_importing_torch
sys.argv = ["gensweep", *sys.argv[1:]]
cli.entry()
"""


@pytest.mark.parametrize("arguments, status", [(["validate", "missing.yaml"], 2), (["--version"], 0), (["bogus"], 2)])
def test_the_console_script_ends_with_mains_status_after_every_exit_handler(tmp_path, arguments, status):
    # entry() ends the process at once after the last exit handler (runner/cli.py::_Ending): the
    # status, the buffered output and the other exit handlers' work must all survive that.
    import subprocess
    import sys
    from importlib.metadata import entry_points

    (script,) = [point for point in entry_points(group="console_scripts") if point.name == "gensweep"]
    assert script.value == "runner.cli:entry"
    result = subprocess.run([sys.executable, "-c", ENTRY, *arguments], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120, check=False)
    assert result.returncode == status, result.stderr
    assert result.stdout.startswith("buffered, not yet flushed")
    assert (tmp_path / "handler-ran").read_text() == "yes"
    if status:
        assert result.stderr.strip(), "a refusal says why"


def test_an_exception_that_escapes_main_exits_1_with_its_traceback(tmp_path):
    import subprocess
    import sys

    code = "import runner.cli as cli\ndef boom(): raise RuntimeError('escaped')\ncli.main = boom\ncli.entry()"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith("RuntimeError: escaped")
