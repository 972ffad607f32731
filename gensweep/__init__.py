"""gensweep from Python, for notebooks: the same functions the command line uses.

    import gensweep
    run_dir = gensweep.run("search_spaces/vae_latent.yaml", ["train.epochs=3"])
    trials = gensweep.load(run_dir)          # a pandas DataFrame, one row a trial

`run` is `gensweep run` (runner.sweep.launch.start_sweep); `load` is `gensweep show --csv`
(runner.results.report.trial_table), typed. A user's mistake raises the error the command line
prints as one line: runner.errors.GensweepError (a bad spec: runner.spec.SpecError) or
models.config.ConfigError. Imports here are light; Ray and torch load when a sweep starts.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from runner import __version__

if TYPE_CHECKING:
    import pandas

__all__ = ["__version__", "load", "run"]


def load(run_dir: str | Path) -> pandas.DataFrame:
    """The trials of a run directory as a DataFrame with `gensweep show --csv`'s columns:
    trial_id, status (categorical), every swept parameter by its full path (model.latent_dim),
    every metric (objectives first). Numbers are ints or floats; a missing value is NaN.

    A damaged trial record is left out with a warning, as `show` warns of it.
    """
    import pandas

    from runner.results.report import load_run, trial_table

    run = load_run(Path(run_dir))
    for problem in run.problems:
        warnings.warn(problem, stacklevel=2)
    header, rows = trial_table(run.trials, run.objectives)
    frame = pandas.DataFrame(rows, columns=header)
    # Each column typed from its values (ints stay ints, None in a number column is NaN);
    # trial ids are text even when one happens to be all digits.
    frame = frame.infer_objects()
    frame["trial_id"] = frame["trial_id"].astype(str)
    frame["status"] = frame["status"].astype("category")
    return frame


def run(
    spec: str | Path,
    overrides: Iterable[str] | None = None,
    storage_path: str | Path = "runs",
    *,
    name: str | None = None,
    address: str | None = None,
    keep_checkpoints: int = 2,
    verbose: int = 0,
) -> Path:
    """Run the sweep a spec file describes, as `gensweep run` does; return its run directory.

    overrides: ["train.epochs=3", ...], as `--set` takes them. The lines `gensweep run` prints
    before and during the sweep go to stdout. A sweep interrupted by Ctrl-C (interrupting the
    kernel) stops as the command's does and returns its directory: `gensweep resume` continues it.
    """
    from runner.sweep.launch import start_sweep

    _, outcome = start_sweep(
        spec, overrides or (), storage_path=storage_path, name=name, address=address,
        verbose=verbose, keep_checkpoints=keep_checkpoints,
    )
    return outcome.run_dir
