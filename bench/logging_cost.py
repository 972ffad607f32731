"""What logging costs a trial: an epoch with TensorBoard logging against the same epoch without.

Logging is the per-step scalars every train.log_every steps (a host sync each), and at the end
of each epoch the scalars, the image grids (samples, reconstructions) and samples.png. Both
runs do everything else alike (evaluation included), alternating, median of the repeats; the
goal is under 5% of the epoch.

    .venv/bin/python bench/logging_cost.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODELS = {  # name: (model section, training images per epoch)
    "VAE mlp": ({"name": "vae", "arch": "mlp"}, 30_000),  # half an MNIST epoch
    "VAE conv": ({"name": "vae", "arch": "conv"}, 6_000),
}
EPOCHS = 2  # a trial's first grids pay for warming up the encoders once, not every epoch


def _epoch_seconds(spec, logged: bool) -> float:
    from runner.train import loop
    from runner.train.tblog import TrialLogger

    with tempfile.TemporaryDirectory() as directory:
        logger = TrialLogger(Path(directory)) if logged else None
        start = time.perf_counter()
        loop.train(spec, logger)
        if logger is not None:
            logger.writer.flush()  # the events on disk are part of the cost
        return time.perf_counter() - start


def logging_table(repeats: int, scale: float = 1.0) -> list[str]:
    import torch

    from runner.data import cached_digits
    from runner.spec import parse_document

    torch.set_num_threads(1)  # as a trial with resources.cpu 1
    rows = [f"| model | images per epoch | {EPOCHS} epochs without logging (s) | with logging (s) | logging's share |",
            "|---|---:|---:|---:|---:|"]
    for name, (model, images) in MODELS.items():
        images = int(images * scale)
        cached_digits(images, 0, "train")
        spec = parse_document({"name": "bench", "model": model, "data": {"name": "digits", "train_size": images, "val_size": 1000},
                               "train": {"epochs": EPOCHS, "device": "cpu"}, "quality": {"every": 0}}, "bench")
        plain, logged = [], []
        for _ in range(repeats):
            plain.append(_epoch_seconds(spec, logged=False))
            logged.append(_epoch_seconds(spec, logged=True))
        without, with_logging = statistics.median(plain), statistics.median(logged)
        share = (with_logging - without) / with_logging
        rows.append(f"| {name} | {images:,} | {without:.2f} | {with_logging:.2f} | {100 * share:.1f}% |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print("\n".join(logging_table(args.repeats)))


if __name__ == "__main__":
    main()
