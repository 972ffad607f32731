"""Images per second of gensweep's trial loop vs a plain loop written like pytorch/examples.

Both train the same MLP VAE (784-400-20, batch 128, Adam 1e-3) for one epoch on the same 10,000
digits, in one process, alternating, and the table shows the median of the repeats and the
ratio. The plain loop is written the way pytorch/examples' vae/main.py is: a Dataset that hands
out PIL images through transforms.ToTensor (as torchvision's MNIST does), a DataLoader, the
loss summed over the batch, and `.item()` every step.

    .venv/bin/python bench/train_throughput.py [--repeats 3] [--images 10000]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import models
from runner import loop
from runner.data import cached_digits, load
from runner.spec import parse_document

LATENT, BATCH, LR = 20, 128, 1e-3


# -- the plain loop, as pytorch/examples writes it ----------------------------------------------
class DigitImages(Dataset):
    def __init__(self, images: np.ndarray, labels: np.ndarray):
        self.images, self.labels = images, labels
        self.transform = transforms.ToTensor()

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = Image.fromarray(self.images[index], mode="L")  # what torchvision's MNIST returns
        return self.transform(image), int(self.labels[index])


class ExamplesVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, LATENT)
        self.fc22 = nn.Linear(400, LATENT)
        self.fc3 = nn.Linear(LATENT, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def plain_epoch(model, optimizer, loader) -> float:
    model.train()
    train_loss = 0.0
    for data, _ in loader:
        optimizer.zero_grad()
        recon_batch, mu, logvar = model(data)
        bce = F.binary_cross_entropy(recon_batch, data.view(-1, 784), reduction="sum")
        kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        loss = bce + kld
        loss.backward()
        train_loss += loss.item()
        optimizer.step()
    return train_loss / len(loader.dataset)


# -- the measurement ----------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000)
    args = parser.parse_args()

    images, labels = cached_digits(args.images, 0, "train")
    spec = parse_document(
        {
            "name": "bench",
            "model": {"name": "vae", "arch": "mlp", "latent_dim": LATENT},
            "data": {"name": "digits", "train_size": args.images, "val_size": 500},
            "train": {"epochs": 1, "batch_size": BATCH, "lr": LR, "device": "cpu"},
        },
        "bench",
    )
    data = load("digits", spec.data)  # uint8 tensors, as a trial holds them
    times = {"gensweep": [], "plain": []}
    losses = {"gensweep": [], "plain": []}
    for repeat in range(args.repeats):
        torch.manual_seed(repeat)
        model = ExamplesVAE()
        optimizer = torch.optim.Adam(model.parameters(), lr=LR)
        loader = DataLoader(DigitImages(images, labels), batch_size=BATCH, shuffle=True)
        start = time.perf_counter()
        losses["plain"].append(plain_epoch(model, optimizer, loader))
        times["plain"].append(time.perf_counter() - start)

        torch.manual_seed(repeat)
        model = models.build("vae", spec.model, data.info, LR)
        generator = torch.Generator().manual_seed(repeat)
        start = time.perf_counter()
        metrics, _ = loop.train_epoch(model, data, spec, generator, epoch=1, global_step=0, logger=None)
        times["gensweep"].append(time.perf_counter() - start)
        losses["gensweep"].append(metrics["loss"])

    rate = {name: args.images / statistics.median(t) for name, t in times.items()}
    print(f"# train throughput: MLP VAE (latent {LATENT}, batch {BATCH}), {args.images} digits, 1 epoch")
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    print()
    print("| loop | images/s | epoch s | final train loss (nats/image) |")
    print("|---|---:|---:|---:|")
    for name in ("plain", "gensweep"):
        print(f"| {name} | {rate[name]:,.0f} | {statistics.median(times[name]):.2f} | {statistics.median(losses[name]):.2f} |")
    print()
    print(f"gensweep / plain: {rate['gensweep'] / rate['plain']:.2f}x")

if __name__ == "__main__":
    main()
