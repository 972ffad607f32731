"""VGG-16 features for the perceptual loss (Johnson et al. 2016), from weights already on disk.

Nothing is downloaded: the weights come from the path a spec gives (`model.vgg_path`) or from
torch hub's cache, where torchvision keeps them once fetched. Without them the perceptual term
cannot be computed, and saying so beats training against a random network that looks the same.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

RELU2_2, RELU3_3 = 9, 16  # torchvision's vgg16().features indices just past those activations
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class _ImageNetInput(nn.Module):
    """[0, 1] images, 1 or 3 channels -> what VGG was trained on: RGB, ImageNet-normalized."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: Tensor) -> Tensor:
        if images.shape[1] == 1:
            images = images.expand(-1, 3, -1, -1)
        return (images - self.mean) / self.std


def vgg16_features(weights: Path, layers: int) -> nn.Sequential:
    """torchvision's vgg16().features[:layers], frozen, in eval mode, its weights read from
    `weights` (torchvision's file, or any with its "features.N.*" keys); ValueError naming the
    file when it is unreadable or lacks a layer."""
    from torchvision.models import vgg16

    # Built on the meta device (no memory, no random init: 1.8 s for VGG-16's 138 M weights on
    # a CPU), then given the file's tensors themselves (assign=True).
    with torch.device("meta"):
        features = vgg16(weights=None).features[:layers]
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    # A truncated or foreign file fails in torch.load's unpickler in many ways (IndexError among
    # them): whichever it is, the user's fix is the same file, so name it.
    except Exception as error:  # noqa: BLE001
        raise ValueError(f"model.vgg_path: {weights} is not a readable weights file ({type(error).__name__})") from None
    wanted = {key for key in features.state_dict()}
    found = {key.removeprefix("features."): value for key, value in state.items() if key.startswith("features.")}
    missing = sorted(wanted - found.keys(), key=lambda key: int(key.split(".")[0]))
    if missing:
        raise ValueError(f"model.vgg_path: {weights} lacks VGG-16 feature weights ({', '.join(missing[:3])}, ...)")
    features.load_state_dict({key: found[key].float() for key in wanted}, assign=True)
    features.requires_grad_(False)
    return features.eval()


def vgg_feature_layers(weights: Path) -> nn.ModuleList:
    """Two frozen stages of VGG-16: input -> relu2_2, relu2_2 -> relu3_3 (for losses.perceptual)."""
    features = vgg16_features(weights, RELU3_3)
    layers = nn.ModuleList([nn.Sequential(_ImageNetInput(), *features[:RELU2_2]), features[RELU2_2:RELU3_3]])
    layers.requires_grad_(False)
    return layers.eval()
