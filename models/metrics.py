"""Metrics as pure functions of tensors."""

from __future__ import annotations

from torch import Tensor


def active_units(posterior_means: Tensor, threshold: float = 0.01) -> Tensor:
    """How many latent dimensions the encoder uses (Burda et al. 2016).

    A dimension is active when the variance, over the data, of its posterior mean exceeds
    `threshold`: (N, Z) -> 0-dim count.
    """
    return (posterior_means.float().var(dim=0) > threshold).sum()
