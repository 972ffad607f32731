"""One live progress line for a sweep, in place of Ray Tune's pages of tables.

    gensweep: 2/3 done, 1 running, 0 failed | best val/recon 101.2 (latent_dim=8) | 0:45, ~0:20 left

On a terminal the line rewrites itself; in a log (CI, `ray submit`) a new line is printed when a
trial starts, ends or fails, and otherwise at most every LOG_INTERVAL seconds.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

from ray.tune import Callback

LOG_INTERVAL = 30.0  # seconds between lines in a log when nothing changes
TERMINAL_INTERVAL = 0.5  # seconds between rewrites on a terminal


def clock(seconds: float) -> str:
    """0:45, 12:03, 1:02:03."""
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


def _short_config(config: dict) -> str:
    return ", ".join(f"{key.split('.')[-1]}={value:.3g}" if isinstance(value, float) else f"{key.split('.')[-1]}={value}"
                     for key, value in sorted(config.items()))


def _completed(trial) -> bool:
    """Tune completed the trial: at its last epoch, or stopped early by the scheduler (both set
    `done` in its last result). A trial stopped because the sweep was interrupted has no `done`."""
    return trial.status == "TERMINATED" and bool((trial.last_result or {}).get("done"))


class ProgressLine(Callback):
    """Tune callback: counts trials by state, the best value so far and the time left.

    Time left assumes the epochs still to run take as long as those run so far; trials stopped
    early (ASHA) or failed count as done; trials stopped by an interrupt are not done.
    """

    def __init__(self, num_trials: int, epochs: int, metrics: list[str], modes: list[str]):
        # Tune pickles its callbacks with the experiment (for a resume): plain values only here.
        self.num_trials, self.epochs = num_trials, epochs
        self.metric = metrics[0] if len(metrics) == 1 else None  # several objectives: no single best
        self.mode = modes[0]
        self.setup()

    @property
    def stream(self) -> TextIO:
        return sys.stdout  # looked up when writing: the CLI's test runner swaps it

    def setup(self, *args, **info) -> None:
        """At the start of a run, and of a resumed one: the clock starts again."""
        self.started = time.time()
        self.last_line, self.last_state, self.last_print = "", None, 0.0

    def line(self, trials) -> str:
        done = sum(_completed(trial) for trial in trials)
        running = sum(trial.status == "RUNNING" for trial in trials)
        failed = sum(trial.status == "ERROR" for trial in trials)
        # Tune marks the trials it stops on Ctrl-C TERMINATED too, as if they had completed.
        interrupted = sum(trial.status == "TERMINATED" and not _completed(trial) for trial in trials)
        parts = [f"{done}/{self.num_trials} done, {running} running, {failed} failed"
                 + (f", {interrupted} interrupted" if interrupted else "")]
        best = self._best(trials)
        if best is not None:
            value, config = best
            swept = f" ({_short_config(config)})" if config else ""  # a spec that sweeps nothing has no config to show
            parts.append(f"best {self.metric} {value:.4g}{swept}")
        elapsed = time.time() - self.started
        finished_epochs = sum(
            self.epochs if _completed(trial) or trial.status == "ERROR" else (trial.last_result or {}).get("training_iteration", 0)
            for trial in trials
        )
        total_epochs = self.num_trials * self.epochs
        timing = clock(elapsed)
        if 0 < finished_epochs < total_epochs and (running or any(trial.status == "PENDING" for trial in trials)):
            timing += f", ~{clock(elapsed / finished_epochs * (total_epochs - finished_epochs))} left"
        parts.append(timing)
        return "gensweep: " + " | ".join(parts)

    def _best(self, trials) -> tuple[float, dict] | None:
        if self.metric is None:
            return None
        scored = [
            (trial.last_result[self.metric], trial.config)
            for trial in trials
            if trial.last_result and isinstance(trial.last_result.get(self.metric), (int, float))
            and math.isfinite(trial.last_result[self.metric])
        ]
        if not scored:
            return None
        pick = min if self.mode == "min" else max
        return pick(scored, key=lambda pair: pair[0])

    def show(self, trials, force: bool = False) -> None:
        now = time.time()
        state = tuple(sorted(trial.status for trial in trials))
        on_terminal = self.stream.isatty()
        interval = TERMINAL_INTERVAL if on_terminal else LOG_INTERVAL
        if not force and state == self.last_state and now - self.last_print < interval:
            return
        line = self.line(trials)
        if line == self.last_line:
            return
        if on_terminal:
            self.stream.write("\r" + line + "\x1b[K")
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.last_line, self.last_state, self.last_print = line, state, now

    # -- Tune's hooks --------------------------------------------------------------------------
    def on_step_end(self, iteration, trials, **info):
        self.show(trials)

    def on_experiment_end(self, trials, **info):
        self.show(trials, force=True)
        if self.stream.isatty():
            self.stream.write("\n")
            self.stream.flush()
