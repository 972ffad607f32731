"""U-Net 2x super-resolution on the real MNIST test set against bicubic, scored as papers score.

    python bench/reference_sr.py export [--mnist ../shared/data/mnist] [--out runs/reference/data/mnist_t10k_png]
    python bench/reference_sr.py evaluate [--run runs/reference/unet_sr_mnist]

export: the t10k images as lossless PNGs, 00000.png ... 09999.png in file order, for the `paired`
source (it reads folders, not IDX files). Sorted by name they are in t10k order, so paired's
seeded split (runner.data.base.split_indices: permutation by default_rng(seed), the first
val_fraction held out) picks the same 2,000 val images the mnist source holds out.

evaluate: every val image of the trained trial, scored by scikit-image, not by gensweep's own
metrics: peak_signal_noise_ratio and structural_similarity (gaussian_weights=True, sigma=1.5,
use_sample_covariance=False, data_range=1: Wang et al. 2004's SSIM as papers compute it), means
over the images, for
  - bicubic: the 14x14 low-resolution image (INTER_AREA, as `paired` degrades) upscaled here by
    OpenCV's INTER_CUBIC in float (no rounding), and by torch's bicubic (align_corners=False);
  - the U-Net: its output for gensweep's input (bicubic rounded to 8 bits), clipped to [0, 1].
Beside them, what gensweep itself reported for the same images (val/psnr, val/ssim, *_bicubic).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere


def export(mnist: Path, out: Path) -> None:
    from runner.data.mnist import read_idx

    images = read_idx(mnist / "t10k-images-idx3-ubyte.gz")
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for index, image in enumerate(images):
        path = out / f"{index:05d}.png"
        if not path.exists():
            cv2.imwrite(str(path), image)
            written += 1
    print(f"{out}: {len(images)} PNGs ({written} written, the rest already there)")


def scores(outputs: np.ndarray, targets: np.ndarray) -> tuple[float, float]:
    """Mean PSNR (dB) and SSIM over (N, H, W) float images in [0, 1]."""
    psnr = [peak_signal_noise_ratio(t, o, data_range=1.0) for o, t in zip(outputs, targets, strict=True)]
    ssim = [structural_similarity(t, o, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0)
            for o, t in zip(outputs, targets, strict=True)]
    return float(np.mean(psnr)), float(np.mean(ssim))


@torch.no_grad()
def evaluate(run_dir: Path) -> None:
    from runner import data as data_sources
    from runner.train.sample import load_trial

    trial_dirs = sorted(p.parent for p in run_dir.glob("*/gensweep.json"))
    if not trial_dirs:
        raise SystemExit(f"error: {run_dir}: no trials (run `gensweep run search_spaces/reference/unet_sr_mnist.yaml` first)")
    trial_dir = trial_dirs[0]
    record = json.loads((trial_dir / "gensweep.json").read_text())
    spec, model = load_trial(trial_dir)
    model = model.float()
    arrays = data_sources.load(spec.data_name, spec.data)  # the val inputs and targets the trial had
    targets_u8 = arrays.val_targets[:, 0]  # (N, 28, 28) uint8
    inputs_u8 = arrays.val_images[:, 0]
    targets = targets_u8.astype(np.float64) / 255.0
    side, scale = targets.shape[-1], spec.data.scale

    low = np.stack([cv2.resize(t, (side // scale, side // scale), interpolation=cv2.INTER_AREA) for t in targets_u8])
    low = low.astype(np.float32) / 255.0
    cv2_bicubic = np.stack([cv2.resize(x, (side, side), interpolation=cv2.INTER_CUBIC) for x in low]).clip(0, 1)
    torch_bicubic = F.interpolate(torch.from_numpy(low)[:, None], size=(side, side), mode="bicubic",
                                  align_corners=False)[:, 0].clamp(0, 1).numpy()
    # gensweep's input is the same upscale rounded to 8 bits: the check that "bicubic" means one thing here.
    recomputed_input = np.stack([cv2.resize((x * 255).round().astype(np.uint8), (side, side),
                                            interpolation=cv2.INTER_CUBIC) for x in low])
    assert np.array_equal(recomputed_input, inputs_u8), "paired's inputs are not the bicubic upscale described"

    outputs = []
    for start in range(0, len(inputs_u8), 500):
        batch = torch.from_numpy(inputs_u8[start : start + 500, None].astype(np.float32) / 255.0)
        outputs.append(model(batch).clamp(0, 1)[:, 0].double().numpy())
    outputs = np.concatenate(outputs)

    metrics = record["metrics"]
    rows = [
        ("bicubic, OpenCV INTER_CUBIC (float)", *scores(cv2_bicubic.astype(np.float64), targets), None, None),
        ("bicubic, torch (align_corners=False)", *scores(torch_bicubic.astype(np.float64), targets), None, None),
        ("bicubic, 8-bit (gensweep's input)", *scores(inputs_u8 / 255.0, targets),
         metrics["val/psnr_bicubic"], metrics["val/ssim_bicubic"]),
        (f"U-Net (width {spec.model.width}, depth {spec.model.depth}, {spec.train.epochs} epochs)",
         *scores(outputs, targets), metrics["val/psnr"], metrics["val/ssim"]),
    ]
    print(f"MNIST t10k, {len(targets)} val images, 2x ({side // scale}x{side // scale} -> {side}x{side}); "
          f"scikit-image {__import__('skimage').__version__}, means over images\n")
    print("| method | PSNR dB (skimage) | SSIM (skimage) | gensweep's val/psnr | gensweep's val/ssim |")
    print("|---|---:|---:|---:|---:|")
    for name, psnr, ssim, own_psnr, own_ssim in rows:
        own = f"{own_psnr:.3f} | {own_ssim:.4f}" if own_psnr is not None else "- | -"
        print(f"| {name} | {psnr:.3f} | {ssim:.4f} | {own} |")
    print(f"\nU-Net over the 8-bit bicubic input: {rows[3][1] - rows[2][1]:+.3f} dB, SSIM {rows[3][2] - rows[2][2]:+.4f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    export_parser = commands.add_parser("export", help="write the t10k images as PNGs for the paired source")
    export_parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared/data/mnist")
    export_parser.add_argument("--out", type=Path, default=ROOT / "runs/reference/data/mnist_t10k_png")
    evaluate_parser = commands.add_parser("evaluate", help="score the trained U-Net and bicubic with scikit-image")
    evaluate_parser.add_argument("--run", type=Path, default=ROOT / "runs/reference/unet_sr_mnist")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "export":
        export(args.mnist, args.out)
    else:
        evaluate(args.run)


if __name__ == "__main__":
    main()
