"""The plain script a researcher would write instead of a one-trial sweep: bench/startup.py
times its whole process beside `gensweep run` of the same model on the same data.

The default sweep's model (Kingma & Welling's MLP VAE, 784-400-z-400-784, Bernoulli pixels,
Adam 1e-3, batch 128) on the same drawn digits (the .npz files gensweep caches), trained for the
given epochs, with the val loss printed and one grid of samples saved as PNG: what a script
shows a researcher, nothing more. Shares no code with gensweep.

    python bench/plain_vae.py TRAIN.npz VAL.npz --latent 2 --epochs 1 --threads 1 --out samples.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.utils import save_image


class VAE(nn.Module):
    def __init__(self, latent: int, hidden: int = 400, pixels: int = 784):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(pixels, hidden), nn.ReLU())
        self.mean, self.log_variance = nn.Linear(hidden, latent), nn.Linear(hidden, latent)
        self.decoder = nn.Sequential(nn.Linear(latent, hidden), nn.ReLU(), nn.Linear(hidden, pixels))

    def forward(self, x):
        hidden = self.encoder(x)
        mean, log_variance = self.mean(hidden), self.log_variance(hidden)
        z = mean + torch.randn_like(mean) * torch.exp(0.5 * log_variance)
        return self.decoder(z), mean, log_variance


def negative_elbo(logits, x, mean, log_variance):
    reconstruction = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kl = -0.5 * torch.sum(1 + log_variance - mean.pow(2) - log_variance.exp())
    return reconstruction + kl


def images(path: str) -> torch.Tensor:
    with np.load(path, allow_pickle=False) as stored:
        pixels = stored["images"]
    return torch.from_numpy(pixels.reshape(len(pixels), -1).astype(np.float32) / 255.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("train")
    parser.add_argument("val")
    parser.add_argument("--latent", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="samples.png")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    train, val = images(args.train), images(args.val)
    model = VAE(args.latent)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(1, args.epochs + 1):
        model.train()
        for batch in train[torch.randperm(len(train))].split(128):
            logits, mean, log_variance = model(batch)
            loss = negative_elbo(logits, batch, mean, log_variance) / len(batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        total = 0.0
        with torch.no_grad():
            for batch in val.split(1000):
                logits, mean, log_variance = model(batch)
                total += negative_elbo(logits, batch, mean, log_variance).item()
        print(f"epoch {epoch}: val loss {total / len(val):.2f}")
    with torch.no_grad():
        samples = torch.sigmoid(model.decoder(torch.randn(64, args.latent)))
    save_image(samples.view(64, 1, 28, 28), args.out)


if __name__ == "__main__":
    main()
