"""Images per second of gensweep's trial loop vs plain loops written like pytorch/examples.

Each model trains for one epoch on the same 10,000 digits two ways in one process, alternating,
and the table shows the median of the repeats and the ratio:

- vae: the MLP VAE (784-400-20, batch 128, Adam 1e-3) against a loop written the way
  pytorch/examples' vae/main.py is: a Dataset handing out PIL images through
  transforms.ToTensor (as torchvision's MNIST does), a DataLoader, the loss summed over the
  batch, and `.item()` every step.
- dcgan: gensweep's DCGAN networks (batch 64, Adam 2e-4, betas 0.5/0.999) against a loop
  written like dcgan/main.py, with those same networks: Dataset + ToTensor + Normalize, a
  DataLoader (no worker processes: on two cores they would only compete with training),
  BCE on D's outputs, separate backward passes for real and fake, and `.item()` for D(x),
  D(G(z)) and both losses every step.

It also times the sample-quality metrics (fd, kid, precision/recall, class score) on 10,000
generated images, sampling included.

    .venv/bin/python bench/train_throughput.py [--repeats 3] [--images 10000] [--models vae,dcgan]
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
from runner.data import DigitsData, load
from runner.quality import QualityMeter
from runner.spec import parse_document

VAE_LATENT = 20


class DigitImages(Dataset):
    """What torchvision's MNIST hands a DataLoader: a PIL image per index, then the transform."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, transform):
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        image = Image.fromarray(self.images[index], mode="L")
        return self.transform(image), int(self.labels[index])


# -- vae/main.py ------------------------------------------------------------------------------
class ExamplesVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, VAE_LATENT)
        self.fc22 = nn.Linear(400, VAE_LATENT)
        self.fc3 = nn.Linear(VAE_LATENT, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h1 = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h1), self.fc22(h1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


def plain_vae_epoch(images, labels, seed) -> float:
    torch.manual_seed(seed)
    model = ExamplesVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(DigitImages(images, labels, transforms.ToTensor()), batch_size=128, shuffle=True)
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


# -- dcgan/main.py ----------------------------------------------------------------------------
def plain_dcgan_epoch(images, labels, seed) -> float:
    torch.manual_seed(seed)
    reference = models.build("gan", {"variant": "dcgan"}, models.DataInfo((1, 28, 28), 10), 2e-4)
    net_g, net_d = reference.generator.network, reference.critic.network  # the same networks
    criterion = nn.BCEWithLogitsLoss()  # our D ends in a logit, not examples' sigmoid + BCELoss
    optimizer_d = torch.optim.Adam(net_d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    optimizer_g = torch.optim.Adam(net_g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))])
    loader = DataLoader(DigitImages(images, labels, transform), batch_size=64, shuffle=True)
    nz = reference.config.latent_dim
    for data in loader:
        net_d.zero_grad()
        real = data[0]
        batch_size = real.size(0)
        label = torch.full((batch_size,), 1.0)
        output = net_d(real).view(-1)
        err_d_real = criterion(output, label)
        err_d_real.backward()
        d_x = torch.sigmoid(output).mean().item()
        noise = torch.randn(batch_size, nz)
        fake = net_g(noise)
        label.fill_(0.0)
        output = net_d(fake.detach()).view(-1)
        err_d_fake = criterion(output, label)
        err_d_fake.backward()
        d_g_z1 = torch.sigmoid(output).mean().item()
        err_d = err_d_real + err_d_fake
        optimizer_d.step()
        net_g.zero_grad()
        label.fill_(1.0)
        output = net_d(fake).view(-1)
        err_g = criterion(output, label)
        err_g.backward()
        d_g_z2 = torch.sigmoid(output).mean().item()
        optimizer_g.step()
        _ = (err_d.item(), err_g.item(), d_x, d_g_z1, d_g_z2)  # what examples prints every step
    return err_d.item()


# -- gensweep's loop ----------------------------------------------------------------------------
SPECS = {
    "vae": ({"name": "vae", "arch": "mlp", "latent_dim": VAE_LATENT}, {"batch_size": 128, "lr": 1e-3}),
    "dcgan": ({"name": "gan", "variant": "dcgan"}, {"batch_size": 64, "lr": 2e-4}),
}
PLAIN = {"vae": plain_vae_epoch, "dcgan": plain_dcgan_epoch}


def gensweep_epoch(name, data, count, seed) -> float:
    model_section, train_section = SPECS[name]
    spec = parse_document(
        {
            "name": "bench",
            "model": model_section,
            "data": {"name": "digits", "train_size": count, "val_size": 500},
            "train": {"epochs": 1, "device": "cpu", "seed": seed, **train_section},
        },
        "bench",
    )
    torch.manual_seed(seed)
    model = models.build(spec.model_name, spec.model, data.info, spec.train.lr)
    generator = torch.Generator().manual_seed(seed)
    means, _ = loop.train_epoch(model, data, spec, generator, 0, log_step=lambda values, step: None)
    metrics = {name: float(value) for name, value in means.items()}
    return metrics.get("loss", metrics.get("d_loss"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--models", default="vae,dcgan")
    args = parser.parse_args()

    data = load("digits", DigitsData(train_size=args.images, val_size=10_000, seed=0))  # uint8 tensors, as a trial holds them
    images = data.train_images[:, 0].numpy()
    labels = data.train_labels.numpy()
    print(f"# train throughput: one epoch on {args.images:,} digits, median of {args.repeats}")
    print(f"# {platform.machine()}, torch {torch.__version__}, {torch.get_num_threads()} threads, {time.strftime('%Y-%m-%d')}")
    print()
    print("| model | loop | images/s | epoch s | final loss |")
    print("|---|---|---:|---:|---:|")
    ratios = {}
    for name in args.models.split(","):
        times = {"plain": [], "gensweep": []}
        losses = {"plain": [], "gensweep": []}
        for repeat in range(args.repeats):
            start = time.perf_counter()
            losses["plain"].append(PLAIN[name](images, labels, repeat))
            times["plain"].append(time.perf_counter() - start)
            start = time.perf_counter()
            losses["gensweep"].append(gensweep_epoch(name, data, args.images, repeat))
            times["gensweep"].append(time.perf_counter() - start)
        rates = {k: args.images / statistics.median(v) for k, v in times.items()}
        for loop_name in ("plain", "gensweep"):
            print(f"| {name} | {loop_name} | {rates[loop_name]:,.0f} | {statistics.median(times[loop_name]):.2f} | {statistics.median(losses[loop_name]):.3f} |")
        ratios[name] = rates["gensweep"] / rates["plain"]
    print()
    for name, ratio in ratios.items():
        print(f"{name}: gensweep / plain = {ratio:.2f}x")

    model = models.build("vae", {"latent_dim": 8}, data.info, 1e-3)
    meter = QualityMeter(data, samples=10_000, device=torch.device("cpu"))
    start = time.perf_counter()
    scores = meter.measure(model, torch.Generator().manual_seed(0))
    print(f"quality metrics on 10,000 samples (sampling included): {time.perf_counter() - start:.1f} s "
          f"({', '.join(sorted(scores))})")


if __name__ == "__main__":
    main()
