"""gensweep's runner: the CLI, the spec, the sweep, the trial and its data and logging."""

__version__ = "0.1.0"
