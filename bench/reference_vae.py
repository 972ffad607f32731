"""An independent check of gensweep's VAE loss accounting on the real MNIST test set.

A plain PyTorch loop that shares nothing with gensweep's training code: it reads the t10k IDX
files itself, splits them by the rule the `mnist` source documents (README: with only the t10k
files, a seeded permutation, the first 20% held out for val), defines the paper's MLP VAE itself
(784-400-z-400-784, ReLU, Bernoulli pixels; Kingma & Welling 2014), and computes the negative
ELBO per image in nats with its own code: the Bernoulli negative log-likelihood of the grey
levels, summed over the 784 pixels, plus the closed-form KL of the posterior from N(0, I).

Two comparisons a latent size, both against the gensweep run of search_spaces/reference/vae_mnist.yaml:
  1. the plain loop trained the same way (seed, epochs, batch 128, Adam 1e-3, fp32): its val
     negative ELBO beside gensweep's val/loss. Two trainings with different shuffles: equal
     within training noise, not to the digit.
  2. gensweep's trained weights (the trial's last checkpoint) scored by this script's loss:
     this must equal gensweep's reported val/loss up to the Monte Carlo noise of the one z
     sample per image gensweep draws; here the expectation is taken over many samples.

    python bench/reference_vae.py --run runs/reference/vae_mnist [--mnist ../shared/data/mnist]
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script from anywhere: gensweep's packages for the checkpoint only

VAL_FRACTION, SPLIT_SEED = 0.2, 0  # the spec's data.val_fraction and data.seed
HIDDEN, BATCH, LR = 400, 128, 1e-3  # the spec's model.hidden_dim, train.batch_size, train.lr
ELBO_SAMPLES = 100  # z draws per val image for the expectation of the negative ELBO
NOISE_REPEATS = 20  # one-draw evaluations whose spread is the noise of gensweep's one-draw val/loss


# -- data, read by hand ----------------------------------------------------------------------------
def read_idx(path: Path) -> np.ndarray:
    """A gzipped unsigned-byte IDX file as an array: magic 0 0 8 ndim, ndim big-endian sizes, the bytes."""
    raw = gzip.decompress(path.read_bytes())
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, np.uint8, offset=4 + 4 * dims).reshape(shape)


def mnist_t10k_split(directory: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(train, val) images as (N, 784) floats in [0, 1]: the mnist source's documented split."""
    images = read_idx(directory / "t10k-images-idx3-ubyte.gz")
    order = np.random.default_rng(SPLIT_SEED).permutation(len(images))
    val_count = round(len(images) * VAL_FRACTION)
    as_float = lambda index: torch.from_numpy(images[index].reshape(len(index), -1).astype(np.float32) / 255.0)
    return as_float(order[val_count:]), as_float(order[:val_count])


# -- the model and its loss, written here ------------------------------------------------------------
class PlainVAE(nn.Module):
    def __init__(self, latent: int):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(784, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 2 * latent))
        self.decoder = nn.Sequential(nn.Linear(latent, HIDDEN), nn.ReLU(), nn.Linear(HIDDEN, 784))


def negative_elbo(encoder, decoder, x: torch.Tensor, samples: int = 1) -> dict[str, torch.Tensor]:
    """Per-image -ELBO = E_q[-log p(x|z)] + KL(q(z|x) || N(0, I)) in nats, (B,) each term; the
    expectation over `samples` draws of z. x: (B, 784) grey levels in [0, 1]."""
    mean, log_var = encoder(x.view(len(x), 1, 28, 28) if _takes_images(encoder) else x).chunk(2, dim=1)
    kl = 0.5 * (mean.pow(2) + log_var.exp() - log_var - 1).sum(dim=1)
    recon = torch.zeros(len(x))
    for _ in range(samples):
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        logits = decoder(z).reshape(len(x), -1)
        recon += F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1) / samples
    return {"loss": recon + kl, "recon": recon, "kl": kl}


def _takes_images(encoder: nn.Module) -> bool:
    return isinstance(encoder[0], nn.Flatten)  # gensweep's MLP encoder flattens (B, 1, 28, 28) itself


@torch.no_grad()
def evaluate(encoder, decoder, val: torch.Tensor, samples: int) -> dict[str, float]:
    sums = {"loss": 0.0, "recon": 0.0, "kl": 0.0}
    for start in range(0, len(val), 500):
        for name, value in negative_elbo(encoder, decoder, val[start : start + 500], samples).items():
            sums[name] += float(value.sum())
    return {name: total / len(val) for name, total in sums.items()}


def train_plain(latent: int, train: torch.Tensor, epochs: int, seed: int, repeat: int) -> PlainVAE:
    """The weights start as gensweep's do (torch.manual_seed(seed), then the layers in the same
    order); the shuffle and the z noise are this loop's own, one stream per repeat."""
    torch.manual_seed(seed)
    model = PlainVAE(latent)
    torch.manual_seed(1000 + repeat)  # the reparameterization noise
    optimizer = torch.optim.Adam(model.parameters(), lr=LR)
    shuffle = torch.Generator().manual_seed(2000 + repeat)
    for _ in range(epochs):
        for index in torch.randperm(len(train), generator=shuffle).split(BATCH):
            loss = negative_elbo(model.encoder, model.decoder, train[index])["loss"].mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return model


def same_initial_weights(latent: int, spec) -> bool:
    """Whether PlainVAE starts from the very weights gensweep's VAE starts from."""
    import models

    torch.manual_seed(spec.train.seed)
    gensweep_model = models.build(spec.model_name, spec.model, spec.data_info, spec.train.lr)
    torch.manual_seed(spec.train.seed)
    plain = PlainVAE(latent)
    theirs = [*gensweep_model.encoder.parameters(), *gensweep_model.decoder.parameters()]
    return all(a.shape == b.shape and torch.equal(a, b) for a, b in zip(plain.parameters(), theirs, strict=True))


# -- gensweep's run ---------------------------------------------------------------------------------
def gensweep_trials(run_dir: Path) -> dict[int, tuple[Path, dict]]:
    """{latent_dim: (trial directory, its gensweep.json record)} of a finished vae_mnist run."""
    trials = {}
    for record_path in sorted(run_dir.glob("*/gensweep.json")):
        record = json.loads(record_path.read_text())
        trials[int(record["swept"]["model.latent_dim"])] = (record_path.parent, record)
    if not trials:
        raise SystemExit(f"error: {run_dir}: no trials (run `gensweep run search_spaces/reference/vae_mnist.yaml` first)")
    return trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=ROOT / "runs/reference/vae_mnist", help="gensweep's run directory")
    parser.add_argument("--repeats", type=int, default=3, help="plain-loop trainings a latent size (own shuffle and noise each)")
    parser.add_argument("--mnist", type=Path, default=ROOT.parent / "shared/data/mnist", help="directory of the t10k IDX files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    from runner.train.sample import load_trial  # gensweep's own reader of a trial's checkpoint

    train, val = mnist_t10k_split(args.mnist)
    trials = gensweep_trials(args.run)
    rows = []
    for latent, (trial_dir, record) in sorted(trials.items()):
        spec, gensweep_model = load_trial(trial_dir)
        epochs, seed = spec.train.epochs, spec.train.seed
        reported = {name: record["metrics"][f"val/{name}"] for name in ("loss", "recon", "kl")}
        torch.manual_seed(0)
        rescored = evaluate(gensweep_model.encoder.float(), gensweep_model.decoder.float(), val, ELBO_SAMPLES)
        # How far one draw a val image (what gensweep reports) strays from the expectation.
        one_draw = [evaluate(gensweep_model.encoder, gensweep_model.decoder, val, 1)["loss"] for _ in range(NOISE_REPEATS)]
        rescored["one_draw_std"] = float(np.std(one_draw))
        started = time.perf_counter()
        plain_runs = []
        for repeat in range(args.repeats):
            plain = train_plain(latent, train, epochs, seed, repeat)
            torch.manual_seed(0)
            plain_runs.append(evaluate(plain.encoder, plain.decoder, val, ELBO_SAMPLES))
        seconds = (time.perf_counter() - started) / args.repeats
        plain_scored = {name: float(np.mean([run[name] for run in plain_runs])) for name in ("loss", "recon", "kl")}
        plain_scored["std"] = float(np.std([run["loss"] for run in plain_runs], ddof=1)) if args.repeats > 1 else float("nan")
        rows.append((latent, epochs, reported, rescored, plain_scored, seconds, same_initial_weights(latent, spec)))

    print(f"MNIST t10k: {len(train)} train / {len(val)} val images; negative ELBO per val image in nats "
          f"(Bernoulli likelihood of the grey levels); this script's figures: expectation over {ELBO_SAMPLES} "
          f"z draws per image; plain loop: {args.repeats} trainings a latent size\n")
    print("| latent | epochs | gensweep val/loss (1 draw) | gensweep's weights, this script's -ELBO | "
          "difference | std of a 1-draw val/loss | plain loop's -ELBO, mean of repeats (recon + KL) | std over repeats | "
          "plain - gensweep | plain loop s a training | same initial weights |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for latent, epochs, reported, rescored, plain, seconds, same in rows:
        print(f"| {latent} | {epochs} | {reported['loss']:.2f} ({reported['recon']:.2f} + {reported['kl']:.2f}) "
              f"| {rescored['loss']:.2f} ({rescored['recon']:.2f} + {rescored['kl']:.2f}) "
              f"| {reported['loss'] - rescored['loss']:+.2f} | {rescored['one_draw_std']:.2f} "
              f"| {plain['loss']:.2f} ({plain['recon']:.2f} + {plain['kl']:.2f}) | {plain['std']:.2f} "
              f"| {plain['loss'] - reported['loss']:+.2f} | {seconds:.1f} | {'yes' if same else 'NO'} |")


if __name__ == "__main__":
    main()
