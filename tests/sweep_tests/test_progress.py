"""The progress line from Tune's own Trial objects (stubs: no trainable, no Ray runtime)."""

from __future__ import annotations

from ray.tune.experiment import Trial

from runner.sweep.progress import ProgressLine


def _finished(config: dict, fd: float) -> Trial:
    trial = Trial("run_trial", config=config, stub=True)
    trial.set_status(Trial.TERMINATED)
    trial.run_metadata.last_result = {"val/fd": fd, "done": True, "training_iteration": 3}
    return trial


def test_the_best_trial_shows_the_values_it_swept():
    progress = ProgressLine(num_trials=2, epochs=3, metrics=["val/fd"], modes=["min"])
    line = progress.line([_finished({"model.latent_dim": 8}, 565.5), _finished({"model.latent_dim": 32}, 700.0)])
    assert line.startswith("gensweep: 2/2 done, 0 running, 0 failed | best val/fd 565.5 (latent_dim=8) | ")


def test_a_spec_that_sweeps_nothing_shows_no_empty_brackets():
    progress = ProgressLine(num_trials=1, epochs=3, metrics=["val/fd"], modes=["min"])
    line = progress.line([_finished({}, 565.5)])
    assert line.startswith("gensweep: 1/1 done, 0 running, 0 failed | best val/fd 565.5 | ")
    assert "()" not in line
