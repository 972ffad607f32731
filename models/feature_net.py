"""The small classifier whose penultimate layer is the feature space for sample quality.

Inception-v3 features (FID's) need weights this project may not download, and they were made
for 299x299 photographs. A classifier trained on the data set's own labelled training split is
the usual stand-in for digit data (as in the MNIST GAN literature): cheap, deterministic, and
its features separate exactly the classes a generator must produce.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FEATURE_DIM = 128
# Cached weights are keyed by models.feature_net_recipe.RECIPE_VERSION: bump it when the network
# or its training changes.


class FeatureNet(nn.Module):
    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        channels, height, width = image_shape
        self.body = nn.Sequential(
            nn.Conv2d(channels, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 32, H/2, W/2)
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),  # (B, 64, H/4, W/4)
            nn.Flatten(),
            nn.Linear(64 * (height // 4) * (width // 4), FEATURE_DIM),
            nn.ReLU(),
        )
        self.head = nn.Linear(FEATURE_DIM, num_classes)

    def forward(self, images: Tensor) -> tuple[Tensor, Tensor]:
        """Images in [0, 1] -> (features (B, FEATURE_DIM), class logits (B, classes))."""
        features = self.body(images * 2 - 1)
        return features, self.head(features)


def train_feature_net(
    images: Tensor, labels: Tensor, num_classes: int, epochs: int = 4, seed: int = 0
) -> FeatureNet:
    """Train on uint8 images (N, C, H, W) and labels (N,), on the CPU, the same way every time.

    The caller's random state is left as it was: whether the network came from the cache or
    was trained here must not change the trial that asked for it.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _train(images, labels, num_classes, epochs, torch.Generator().manual_seed(seed))


def _train(images: Tensor, labels: Tensor, num_classes: int, epochs: int, generator: torch.Generator) -> FeatureNet:
    network = FeatureNet(tuple(images.shape[1:]), num_classes)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    for _ in range(epochs):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(images), 256):
            index = order[start : start + 256]
            _, logits = network(images[index].float() / 255)
            loss = F.cross_entropy(logits, labels[index])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return network.eval()
