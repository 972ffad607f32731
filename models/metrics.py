"""Metrics as pure functions of tensors."""

from __future__ import annotations

import torch
from torch import Tensor


def active_units(posterior_means: Tensor, threshold: float = 0.01) -> Tensor:
    """How many latent dimensions the encoder uses (Burda et al. 2016).

    A dimension is active when the variance, over the data, of its posterior mean exceeds
    `threshold`: (N, Z) -> 0-dim count.
    """
    return (posterior_means.float().var(dim=0) > threshold).sum()


# -- sample quality: every generator judged in one feature space ---------------------------------
# Features are (N, D) float tensors from one network (runner.train.quality's classifier); the same
# functions serve Inception features. All computed in float64: covariances of a few thousand
# samples lose digits in float32.


def frechet_distance(real: Tensor, fake: Tensor) -> Tensor:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)) between Gaussians fitted to features.

    Heusel et al. 2017's FID formula. The trace of the matrix square root is the sum of the
    square roots of the eigenvalues of S_r S_f. With centred features R (m, D) and F (n, D),
    S_r S_f = R^T R F^T F / ((m-1)(n-1)) has the nonzero eigenvalues of (R F^T)(R F^T)^T, so the
    trace is the sum of the singular values of R F^T / sqrt((m-1)(n-1)): exact, and a symmetric
    eigenproblem of min(m, n) rows instead of a general (D, D) one (2048-d Inception features of 20
    samples: milliseconds, not 40 s on two busy cores). With more samples than dimensions, the
    same through S_r = L L^T: the eigenvalues of L^T S_f L, symmetric (D, D).
    """
    real, fake = real.double(), fake.double()
    m, n, dimensions = len(real), len(fake), real.shape[1]
    centred_real, centred_fake = real - real.mean(dim=0), fake - fake.mean(dim=0)
    mean_gap = (real.mean(dim=0) - fake.mean(dim=0)).square().sum()
    traces = centred_real.square().sum() / (m - 1) + centred_fake.square().sum() / (n - 1)
    if min(m, n) <= dimensions:
        cross = centred_real @ centred_fake.T  # (m, n): its squared singular values, from the smaller Gram matrix
        gram = cross @ cross.T if m <= n else cross.T @ cross
        root_trace = torch.linalg.eigvalsh(gram).clamp_min(0).sqrt().sum() / ((m - 1) * (n - 1)) ** 0.5
    else:
        eigenvalues, vectors = torch.linalg.eigh(torch.cov(real.T))
        factor = vectors * eigenvalues.clamp_min(0).sqrt()  # S_r = factor @ factor.T
        product = factor.T @ torch.cov(fake.T) @ factor
        root_trace = torch.linalg.eigvalsh((product + product.T) / 2).clamp_min(0).sqrt().sum()
    return mean_gap + traces - 2 * root_trace


def _cubic_kernel(a: Tensor, b: Tensor) -> Tensor:
    """KID's polynomial kernel (a.b / d + 1)^3 between the rows of a and b."""
    return (a @ b.T / a.shape[1] + 1) ** 3


def kernel_inception_distance(real: Tensor, fake: Tensor) -> Tensor:
    """Unbiased MMD^2 with the cubic polynomial kernel (x.y / d + 1)^3 (Binkowski et al. 2018)."""
    real, fake = real.double(), fake.double()
    k_rr, k_ff, k_rf = _cubic_kernel(real, real), _cubic_kernel(fake, fake), _cubic_kernel(real, fake)
    m, n = len(real), len(fake)
    within_real = (k_rr.sum() - k_rr.diagonal().sum()) / (m * (m - 1))
    within_fake = (k_ff.sum() - k_ff.diagonal().sum()) / (n * (n - 1))
    return within_real + within_fake - 2 * k_rf.mean()


def kid_subset_estimates(
    real: Tensor, fake: Tensor, subsets: int = 100, subset_size: int = 1000, generator: torch.Generator | None = None
) -> Tensor:
    """KID's unbiased MMD^2 on `subsets` random subsets: (subsets,) estimates.

    Binkowski et al. 2018's estimator, as torch-fidelity and torchmetrics compute it (their
    defaults: 100 subsets of 1,000): each subset draws `subset_size` real and as many fake
    features without replacement, independently. The estimates' mean estimates what
    kernel_inception_distance computes on all features (its expectation over the draws is
    exactly that), their standard deviation how much one subset's figure varies. The draws come
    from `generator` (on the CPU), so a seeded generator gives the same subsets every time.
    """
    real, fake = real.double(), fake.double()
    m, n = len(real), len(fake)
    if not 2 <= subset_size <= min(m, n):
        raise ValueError(f"KID subsets of {subset_size} need 2 to {min(m, n)} (the fewer of {m} real, {n} fake) features")

    def selection(count: int) -> Tensor:  # (subsets, count) rows of 0/1: which features a subset takes
        chosen = torch.rand(subsets, count, generator=generator).argsort(dim=1)[:, :subset_size]
        rows = torch.zeros(subsets, count, dtype=torch.float64).scatter_(1, chosen, 1.0)
        return rows.to(real.device)

    pick_real, pick_fake = selection(m), selection(n)

    def within(pick: Tensor, kernel: Tensor) -> Tensor:  # mean of k(x_i, x_j), i != j, per subset
        pairs = ((pick @ kernel) * pick).sum(dim=1) - pick @ kernel.diagonal()
        return pairs / (subset_size * (subset_size - 1))

    cross = ((pick_real @ _cubic_kernel(real, fake)) * pick_fake).sum(dim=1) / subset_size**2
    return within(pick_real, _cubic_kernel(real, real)) + within(pick_fake, _cubic_kernel(fake, fake)) - 2 * cross


def precision_recall(real: Tensor, fake: Tensor, k: int = 3) -> tuple[Tensor, Tensor]:
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points reaching their k-th nearest
    neighbour. Precision: share of fakes inside the real manifold; recall: share of reals
    inside the fake manifold.
    """
    real, fake = real.double(), fake.double()

    def radii(points: Tensor) -> Tensor:  # distance to the k-th neighbour, self excluded
        return torch.cdist(points, points).kthvalue(k + 1, dim=1).values

    def covered(points: Tensor, centres: Tensor, centre_radii: Tensor) -> Tensor:
        return (torch.cdist(points, centres) <= centre_radii[None]).any(dim=1).double().mean()

    return covered(fake, real, radii(real)), covered(real, fake, radii(fake))


def classifier_score(probabilities: Tensor) -> Tensor:
    """exp(E_x KL(p(y|x) || p(y))): the Inception Score's formula with any classifier.

    Confident and varied samples of 10 balanced classes score 10; one class, or mush, scores 1.
    """
    probabilities = probabilities.double().clamp_min(1e-12)
    marginal = probabilities.mean(dim=0, keepdim=True)
    kl = (probabilities * (probabilities.log() - marginal.log())).sum(dim=1)
    return kl.mean().exp()
