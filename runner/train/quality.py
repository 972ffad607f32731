"""Sample quality for every generator, in one feature space: fd, kid (and kid_std), precision/recall, class score.

The feature space is a small classifier (models.feature_net) trained once per data set on its
labelled training split and cached by the data's content hash, so trials, sweeps and machines
that see the same data judge samples with the same network. Unlabelled data has no such
classifier: quality metrics need labels, and specs on unlabelled data do not report them.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import torch

from models import metrics
from models.config import ConfigError
from models.feature_net import RECIPE_VERSION, FeatureNet, train_feature_net
from runner.data import cache_dir
from runner.errors import GensweepError
from runner.files import write_bytes
from runner.spec import check_inception_weights
from runner.train.tensors import ImageData

FEATURE_TRAINING_LIMIT = 20_000  # enough for a good digit classifier; bounds the one-off cost
CHUNK = 500  # images per forward pass when sampling and extracting features
KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 100, 1000, 0  # torch-fidelity's subsets of 1,000 (fewer for few samples)


class QualityError(GensweepError):
    """Quality metrics asked for that cannot be computed here; one-line message."""


def data_fingerprint(data: ImageData) -> str:
    """A content hash of the labelled training split: the feature network's cache key."""
    digest = hashlib.sha256(f"v{RECIPE_VERSION}:{tuple(data.train_images.shape)}".encode())
    digest.update(data.train_images[:FEATURE_TRAINING_LIMIT].cpu().numpy().tobytes())
    digest.update(data.train_labels[:FEATURE_TRAINING_LIMIT].cpu().numpy().tobytes())
    return digest.hexdigest()[:20]


def feature_net_path(data: ImageData) -> Path:
    return cache_dir() / f"feature-net-{data_fingerprint(data)}.pt"


def load_feature_net(data: ImageData, say=lambda message: None) -> FeatureNet:
    """The cached feature network for this data, trained (on the CPU, deterministically) if absent."""
    if data.train_labels is None or data.num_classes is None:
        raise QualityError("quality metrics need labelled data (the feature network is a classifier)")
    path = feature_net_path(data)
    if path.exists():
        with torch.random.fork_rng(devices=[]):  # its random init is overwritten: draw nothing
            network = FeatureNet(tuple(data.train_images.shape[1:]), data.num_classes)
        # weights_only: a state dict of tensors, never arbitrary pickled objects.
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        return network.eval()
    say(f"training the feature network for quality metrics (once: cached in {path.parent})")
    images = data.train_images[:FEATURE_TRAINING_LIMIT].cpu()
    labels = data.train_labels[:FEATURE_TRAINING_LIMIT].cpu()
    network = train_feature_net(images, labels, data.num_classes)
    buffer = io.BytesIO()
    torch.save(network.state_dict(), buffer)
    write_bytes(path, buffer.getvalue())
    return network


def feature_net_accuracy(network: FeatureNet, data: ImageData) -> float:
    with torch.inference_mode():
        _, logits = network(data.val_images.cpu().float() / 255)
    return float((logits.argmax(dim=1) == data.val_labels.cpu()).float().mean())


class QualityMeter:
    """Measures a model's samples against the val images; real features are computed once."""

    def __init__(self, data: ImageData, samples: int, device: torch.device, inception_fid: bool = False):
        self.samples = samples
        self.network = load_feature_net(data).to(device)
        real = data.val_images[:samples]
        self.real_features, _ = self._features(real[i : i + CHUNK].float() / 255 for i in range(0, len(real), CHUNK))
        # KID's cubic kernel assumes features of about unit size (Inception's pool features
        # are); this network's are not, and cubes of large dot products drown the estimate.
        self.kernel_scale = self.real_features.float().square().mean().sqrt().clamp_min(1e-8)
        self.inception = _InceptionFID(real, device) if inception_fid else None

    @torch.inference_mode()
    def _features(self, image_chunks) -> tuple[torch.Tensor, torch.Tensor]:
        features, probabilities = [], []
        for images in image_chunks:
            chunk_features, logits = self.network(images.float())
            features.append(chunk_features)
            probabilities.append(logits.float().softmax(dim=1))
        return torch.cat(features), torch.cat(probabilities)

    def measure_images(self, images: torch.Tensor) -> dict[str, float]:
        """Quality of given images (N, C, H, W) in [0, 1]: the metrics' own sanity tests use this."""
        fake_features, probabilities = self._features(images[i : i + CHUNK] for i in range(0, len(images), CHUNK))
        return self._scores(fake_features, probabilities, images)

    def measure(self, model, generator: torch.Generator | None = None) -> dict[str, float]:
        chunks = [
            model.sample(min(CHUNK, self.samples - start), generator)
            for start in range(0, self.samples, CHUNK)
        ]
        return self.measure_images(torch.cat(chunks))

    def _scores(self, fake_features, probabilities, images) -> dict[str, float]:
        precision, recall = metrics.precision_recall(self.real_features, fake_features)
        scores = {
            "fd": float(metrics.frechet_distance(self.real_features, fake_features)),
            **self._kid(fake_features),
            "precision": float(precision),
            "recall": float(recall),
            "class_score": float(metrics.classifier_score(probabilities)),
        }
        if self.inception is not None:
            scores["fid"] = self.inception.measure(images)
        return scores

    def _kid(self, fake_features) -> dict[str, float]:
        """kid on all features; kid_std over KID_SUBSETS subsets of min(1,000, half the samples),
        drawn by a fixed seed so that one model's figures do not vary with the draw."""
        real, fake = self.real_features / self.kernel_scale, fake_features / self.kernel_scale
        subset_size = max(2, min(KID_SUBSET_SIZE, len(real) // 2, len(fake) // 2))  # samples >= 10: at least 5
        generator = torch.Generator().manual_seed(KID_SEED)
        estimates = metrics.kid_subset_estimates(real, fake, KID_SUBSETS, subset_size, generator)
        return {
            "kid": float(metrics.kernel_inception_distance(real, fake)),
            "kid_std": float(estimates.std(correction=0)),  # population std, as torch-fidelity's
        }


class _InceptionFID:
    """FID proper, through torchmetrics/torch-fidelity, from weights already on this machine."""

    def __init__(self, real_uint8: torch.Tensor, device: torch.device):
        try:  # the spec check ran it in the driver; this node may lack what that one had
            check_inception_weights()
        except ConfigError as error:
            raise QualityError(str(error)) from None
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.metric = FrechetInceptionDistance(feature=2048, normalize=True, reset_real_features=False).to(device)
        for start in range(0, len(real_uint8), CHUNK):
            self.metric.update(_three_channels(real_uint8[start : start + CHUNK].float() / 255), real=True)

    def measure(self, images: torch.Tensor) -> float:
        self.metric.reset()
        for start in range(0, len(images), CHUNK):
            self.metric.update(_three_channels(images[start : start + CHUNK]), real=False)
        return float(self.metric.compute())


def _three_channels(images: torch.Tensor) -> torch.Tensor:
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
