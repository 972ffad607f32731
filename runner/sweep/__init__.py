"""The sweep: the only package that imports Ray Tune.

driver (the Tuner, Optuna, schedulers, run and resume), trial (the Tune adapter around
runner.train), pack_trial (packs under Tune), progress (the one-line progress), records (what
the driver writes into trial records), tune_state (Tune's saved state), interrupts (SIGINT and
SIGTERM), disk_full (a full disk met mid-sweep), trackers and tracker_callbacks (tune.loggers:
MLflow and W&B), launch (a new sweep from a spec file: `gensweep run`
and gensweep.run alike). Imports every layer below it; nothing imports it
but the CLI and gensweep (the Python API).
"""
