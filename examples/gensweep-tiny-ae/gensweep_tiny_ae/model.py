"""The network: imported only where gensweep builds the model (trial processes included)."""

import math

import torch
from torch import Tensor, nn
from torch.nn import functional

from gensweep_tiny_ae.card import CARD
from models.base import Batch, GenerativeModel, adam
from models.registry import register


@register(CARD)
class TinyAutoencoder(GenerativeModel):
    def __init__(self, config, data, lr: float):
        super().__init__(config, data, lr)  # runs CARD.check
        pixels = math.prod(data.image_shape)
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(pixels, config.hidden_dim), nn.ReLU(),
                                     nn.Linear(config.hidden_dim, config.latent_dim))
        self.decoder = nn.Sequential(nn.Linear(config.latent_dim, config.hidden_dim), nn.ReLU(),
                                     nn.Linear(config.hidden_dim, pixels), nn.Unflatten(1, data.image_shape))
        self.optimizers["autoencoder"] = adam(self.parameters(), lr)

    def loss(self, images: Tensor) -> Tensor:
        """Binary cross-entropy summed per image, averaged over the batch."""
        logits = self.decoder(self.encoder(images))
        return functional.binary_cross_entropy_with_logits(logits, images, reduction="sum") / len(images)

    def train_step(self, batch: Batch) -> dict[str, Tensor]:
        loss = self.loss(batch.images)
        self.optimize(self.optimizers["autoencoder"], loss)
        return {"loss": loss.detach()}

    @torch.inference_mode()
    def evaluate(self, batches) -> dict[str, float]:
        total, count = 0.0, 0
        for batch in batches:
            total += float(self.loss(batch.images)) * len(batch.images)
            count += len(batch.images)
        return {"loss": total / count}

    @torch.inference_mode()
    def sample(self, count: int, generator: torch.Generator | None = None) -> Tensor:
        codes = torch.randn(count, self.config.latent_dim, generator=generator, device=self.device)
        return torch.sigmoid(self.decoder(codes))
