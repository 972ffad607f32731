"""Sample quality for every generator: measured in two feature spaces.

- A small classifier (models.feature_net) trained once per data set on its labelled training
  split and cached by the data's content hash, so trials, sweeps and machines that see the same
  data judge samples with the same network: fd, kid, kid_std, precision, recall, class_score.
  Labelled data only.
- Inception-v3's 2048-d pool features, from torch-fidelity's network and weights file (the
  standard FID/KID network), on any data, grey or RGB: fid, kid_inception, kid_inception_std.
  On request (quality.fid), from a file already on this machine: nothing is downloaded.

runner.spec.quality decides which are measured (and says why others are not); this measures.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import torch

from models import metrics
from models.feature_net import FeatureNet, train_feature_net
from runner.errors import GensweepError
from runner.files import write_bytes
from runner.spec.quality import INCEPTION_WEIGHTS
from runner.train import quality_keys
from runner.train.quality_keys import FEATURE_TRAINING_LIMIT
from runner.train.tensors import ImageData

CHUNK = 500  # images per forward pass when sampling and extracting features
INCEPTION_CHUNK = 32  # Inception's first layers at 299x299 hold about 6 MB of activations per image
KID_SUBSETS, KID_SUBSET_SIZE, KID_SEED = 100, 1000, 0  # torch-fidelity's subsets of 1,000 (fewer for few samples)


class QualityError(GensweepError):
    """Quality metrics asked for that cannot be computed here; one-line message."""


def feature_net_key(data: ImageData) -> str:
    """The feature network's name for this data (runner.train.quality_keys): a content hash of
    its labelled training split."""
    leading = slice(0, FEATURE_TRAINING_LIMIT)  # to the host: what the network trains on, not the whole split
    return quality_keys.feature_net_key(tuple(data.train_images.shape), data.train_images[leading].cpu().numpy(),
                                        data.train_labels[leading].cpu().numpy())


def feature_net_path(data: ImageData) -> Path:
    return quality_keys.feature_net_path(feature_net_key(data))


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
    """Measures a model's samples against the val images; real features are computed once.

    class_features: the labels' classifier's metrics (the data must be labelled);
    inception_weights: a weights file (runner.spec.quality.find_inception_weights) for the
    Inception metrics, or None."""

    def __init__(self, data: ImageData, samples: int, device: torch.device, class_features: bool = True,
                 inception_weights: Path | None = None):
        self.samples = samples
        real = data.val_images[:samples]
        self.network = None
        if class_features:
            self.network = load_feature_net(data).to(device)
            self.real_features = real_features(
                feature_net_key(data), real, device,
                lambda: self._features(real[i : i + CHUNK].float() / 255 for i in range(0, len(real), CHUNK))[0],
            )
            # KID's cubic kernel (x.y / d + 1)^3 was made for Inception's pool features (small
            # post-ReLU averages: used as they are, as torch-fidelity does). This network's are
            # not of that size, and cubes of large dot products drown the estimate: divided by
            # the real features' RMS, so they are of about unit size.
            self.kernel_scale = self.real_features.float().square().mean().sqrt().clamp_min(1e-8)
        self.inception = None
        if inception_weights is not None:
            self.inception = InceptionFeatures(inception_weights, device)
            weights = inception_weights.stat()
            self.real_inception = real_features(
                f"inception-{weights.st_size}-{weights.st_mtime_ns}", real, device, lambda: self.inception(real)
            )

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
        scores = {}
        if self.network is not None:
            fake_features, probabilities = self._features(images[i : i + CHUNK] for i in range(0, len(images), CHUNK))
            precision, recall = metrics.precision_recall(self.real_features, fake_features)
            kid, kid_std = kid_figures(self.real_features / self.kernel_scale, fake_features / self.kernel_scale)
            scores |= {
                "fd": float(metrics.frechet_distance(self.real_features, fake_features)),
                "kid": kid,
                "kid_std": kid_std,
                "precision": float(precision),
                "recall": float(recall),
                "class_score": float(metrics.classifier_score(probabilities)),
            }
        if self.inception is not None:
            fake_inception = self.inception(images)
            kid, kid_std = kid_figures(self.real_inception, fake_inception)
            scores |= {
                "fid": float(metrics.frechet_distance(self.real_inception, fake_inception)),
                "kid_inception": kid,
                "kid_inception_std": kid_std,
            }
        return scores

    def measure(self, model, generator: torch.Generator | None = None) -> dict[str, float]:
        chunks = [
            model.sample(min(CHUNK, self.samples - start), generator)
            for start in range(0, self.samples, CHUNK)
        ]
        return self.measure_images(torch.cat(chunks))


def real_features(network_key: str, real: torch.Tensor, device: torch.device, compute) -> torch.Tensor:
    """The val images' features (compute() gives them), computed once per network and images and
    kept in the cache: every trial of every sweep on the same data compares its samples with the
    same real features, without each spending seconds (Inception: minutes on a CPU) on them.

    network_key names the network's weights; the images are hashed, so another split, size or
    sample count is another entry (runner.train.quality_keys names it). Whole files only: trials
    starting together may each write it.
    """
    path = quality_keys.real_features_path(network_key, real.cpu().numpy())
    if path.exists():
        try:
            stored = torch.load(path, map_location=device, weights_only=True)
            if isinstance(stored, torch.Tensor) and stored.shape[0] == len(real):
                return stored
        except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError):
            pass  # damaged (a disk that filled mid-write elsewhere): computed and written again
    features = compute()
    buffer = io.BytesIO()
    torch.save(features.detach().cpu().contiguous(), buffer)
    write_bytes(path, buffer.getvalue())
    return features



def kid_figures(real: torch.Tensor, fake: torch.Tensor) -> tuple[float, float]:
    """kid on all features; kid_std over KID_SUBSETS subsets of min(1,000, half the samples),
    drawn by a fixed seed so that one model's figures do not vary with the draw."""
    subset_size = max(2, min(KID_SUBSET_SIZE, len(real) // 2, len(fake) // 2))  # samples >= 10: at least 5
    generator = torch.Generator().manual_seed(KID_SEED)
    estimates = metrics.kid_subset_estimates(real, fake, KID_SUBSETS, subset_size, generator)
    # population std, as torch-fidelity's
    return float(metrics.kernel_inception_distance(real, fake)), float(estimates.std(correction=0))


def load_inception_state(path: Path) -> dict[str, torch.Tensor]:
    """The weights file read as a state dict of tensors, and nothing else: torch-fidelity itself
    unpickles its file with weights_only=False, which would run any code a foreign file holds."""
    try:
        state = torch.load(io.BytesIO(path.read_bytes()), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # torch's own text offers to load it unsafely: not ours to say
        raise QualityError(f"{path}: not a state dict of tensors (it pickles other objects): refused unread") from None
    except (RuntimeError, EOFError, ValueError, OSError) as error:  # not a torch.save file, cut short
        reason = (str(error).strip().splitlines() or [type(error).__name__])[0][:120]
        raise QualityError(f"{path}: not a state dict of tensors, refused unread ({reason})") from None
    if not isinstance(state, dict) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()
    ):
        raise QualityError(f"{path}: not a state dict of tensors ({type(state).__name__}), refused")
    return state


class InceptionFeatures:
    """torch-fidelity's Inception-v3 (FID's network, its TF1-exact resizing to 299x299 included):
    images in, 2048-d pool features out."""

    def __init__(self, path: Path, device: torch.device):
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        # torch-fidelity takes a path or a file object and torch.loads it: hand it the checked
        # tensors, saved again, never the file itself.
        checked = io.BytesIO()
        torch.save(load_inception_state(path), checked)
        checked.seek(0)
        try:
            network = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=checked)
        except RuntimeError as error:  # load_state_dict: missing, unexpected or misshapen tensors
            first = str(error).splitlines()[0][:120]
            raise QualityError(f"{path}: not torch-fidelity's Inception-v3 weights ({INCEPTION_WEIGHTS}): {first}") from None
        self.network = network.to(device)
        self.device = device

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 1 or 3, H, W) uint8, or float in [0, 1] (rounded to uint8 as a saved PNG would be)
        -> (N, 2048) float32. Grey images become RGB by repeating the channel."""
        features = []
        for start in range(0, len(images), INCEPTION_CHUNK):
            chunk = images[start : start + INCEPTION_CHUNK].to(self.device)
            if chunk.dtype != torch.uint8:
                chunk = (chunk.float() * 255).round().clamp(0, 255).to(torch.uint8)
            if chunk.shape[1] == 1:
                chunk = chunk.expand(-1, 3, -1, -1)
            (chunk_features,) = self.network(chunk)
            features.append(chunk_features.float())
        return torch.cat(features)
