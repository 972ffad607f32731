"""The GAN reference runs' sample quality beside what real images score in the same feature space.

    python bench/reference_gan.py [runs/reference/dcgan_mnist runs/reference/wgan_gp_mnist]

(Any runs on one labelled data set will do: make results-cifar10 prints its VAEs' this way.)

gensweep's val/fd and val/kid compare 2,000 samples with the 2,000 val images in the features of
a small classifier trained on the training split (README: quality), not Inception's, so their
scale is gensweep's own and not a paper's FID. To read them, this prints the same figures for
2,000 *real* training images against the same val images (what a perfect generator would score,
up to the sampling noise of 2,000 images) and for 2,000 uniform noise images (what nothing scores).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere

SHOWN = ("fd", "kid", "kid_std", "precision", "recall", "class_score")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path,
                        default=[ROOT / "runs/reference/dcgan_mnist", ROOT / "runs/reference/wgan_gp_mnist"])
    args = parser.parse_args()
    torch.set_num_threads(1)
    from runner.train.quality import QualityMeter
    from runner.train.sample import load_trial
    from runner.train.tensors import load_tensors

    rows, spec = [], None
    for run_dir in args.runs:
        for record_path in sorted(run_dir.glob("*/gensweep.json")):
            record = json.loads(record_path.read_text())
            spec, _ = load_trial(record_path.parent)
            metrics = record["metrics"]
            model = getattr(spec.model, "variant", spec.model_name)  # a GAN by its variant
            swept = ", ".join(f"{key.split('.')[-1]}={value}" for key, value in (record.get("swept") or {}).items())
            name = f"{model} ({run_dir.name}{', ' + swept if swept else ''}), {record.get('epoch', spec.train.epochs)} epochs"
            rows.append((name, {key: metrics.get(f"val/{key}") for key in SHOWN}, measured_fd(record_path.parent, spec)))
    if spec is None:
        raise SystemExit(f"error: no trials in {', '.join(map(str, args.runs))} (run the specs first)")

    data = load_tensors(spec.data_name, spec.data)
    count = spec.quality.samples
    meter = QualityMeter(data, count, torch.device("cpu"))
    real = data.train_images[:count].float() / 255
    rows.append((f"real: {count} training images (the floor)", meter.measure_images(real), "-"))
    noise = torch.rand(real.shape, generator=torch.Generator().manual_seed(0))
    rows.append((f"uniform noise: {count} images", meter.measure_images(noise), "-"))

    print(f"{spec.data_name} ({len(data.train_images)} train / {len(data.val_images)} val); each row against "
          f"the first {count} val images, in gensweep's classifier features\n")
    print("| samples | " + " | ".join(f"val/{key}" for key in SHOWN) + " | val/fd as it went (epoch: fd) |")
    print("|---|" + "---:|" * len(SHOWN) + "---|")
    for name, values, history in rows:
        cells = [("-" if values.get(key) is None else f"{values[key]:.4g}") for key in SHOWN]
        print(f"| {name} | " + " | ".join(cells) + f" | {history} |")


def measured_fd(trial_dir: Path, spec) -> str:
    """val/fd at each epoch it was measured (quality.every, and the last), from Ray Tune's result.json."""
    results = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines() if line.strip()]
    last = spec.train.epochs
    return ", ".join(f"{r['training_iteration']}: {r['val/fd']:.4g}" for r in results
                     if r["training_iteration"] % spec.quality.every == 0 or r["training_iteration"] == last)


if __name__ == "__main__":
    main()
