"""LPIPS (Zhang et al. 2018), its VGG-16 version, from weights already on disk.

torchmetrics ships LPIPS's learned part (the 1x1 convolutions that weigh each VGG stage's
feature differences: lpips_models/vgg.pth, 7 KB) but builds its backbone from torchvision's
pretrained weights, which it would download. Here torchmetrics' own network is built with a
random backbone, which then gets the VGG-16 weights the perceptual loss finds on disk
(models.vgg_weights): with the same weights it computes what torchmetrics'
LearnedPerceptualImagePatchSimilarity(net_type="vgg") does (tests/models_tests/test_lpips.py).

torchmetrics' network class (_LPIPS) is private; this module is its one user.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from models.perceptual import vgg16_features

VGG16_LAYERS = 30  # LPIPS reads relu1_2 ... relu5_3: torchvision's vgg16().features[:30]


def shipped_linear_weights() -> Path:
    """torchmetrics' copy of the LPIPS authors' VGG linear layers (v0.1), inside the package."""
    from torchmetrics.functional.image import lpips as torchmetrics_lpips

    return Path(torchmetrics_lpips.__file__).parent / "lpips_models" / "vgg.pth"


def lpips_network(weights: Path) -> nn.Module:
    """LPIPS-VGG, frozen and in eval mode: the backbone from `weights` (torchvision's VGG-16
    file), the linear layers from torchmetrics' package. Nothing is downloaded."""
    from torchmetrics.functional.image.lpips import _LPIPS

    # pretrained=False: no linear layers loaded by torchmetrics (it would unpickle them without
    # weights_only); pnet_rand=True: torchvision builds VGG-16 with weights=None, no download.
    network = _LPIPS(pretrained=False, net="vgg", pnet_rand=True)
    linear = torch.load(shipped_linear_weights(), map_location="cpu", weights_only=True)
    # Its linear layers are lin0 ... lin4 (and the same modules again as lins.0 ... lins.4).
    layers = {key for key in network.state_dict() if key.startswith("lin") and not key.startswith("lins.")}
    if set(linear) != layers:
        raise RuntimeError(f"torchmetrics' LPIPS changed: {shipped_linear_weights()} does not fit its network")
    network.load_state_dict(linear, strict=False)
    # The backbone's stages (net.slice1 ... slice5) hold torchvision's features modules under
    # their own indices ("slice2.4.weight" is features.4.weight): copy each by that index.
    features = vgg16_features(weights, VGG16_LAYERS).state_dict()
    network.net.load_state_dict({key: features[key.split(".", 1)[1]] for key in network.net.state_dict()})
    network.requires_grad_(False)
    return network.eval()


def lpips(prediction: Tensor, target: Tensor, network: nn.Module) -> Tensor:
    """LPIPS per image (B,) of (B, C, H, W) images in [0, 1], C 1 or 3 (gray is repeated to
    RGB, as for the perceptual loss); 0 for identical images, larger for less similar ones."""
    prediction, target = (images.float().clamp(0, 1) for images in (prediction, target))
    if prediction.shape[1] == 1:
        prediction, target = prediction.expand(-1, 3, -1, -1), target.expand(-1, 3, -1, -1)
    return network(prediction, target, normalize=True).flatten()  # normalize: [0, 1] -> [-1, 1]
