"""Where the perceptual loss's VGG-16 weights are, found without importing torch.

The spec check names a missing or foreign weights file before any network exists; loading the
weights (models.perceptual) is the trial's work.
"""

from __future__ import annotations

import os
from pathlib import Path

VGG16_FILE = "vgg16-397923af.pth"  # torchvision's ImageNet VGG-16 weights
# torch.save writes a zip archive; the files torchvision published before torch 1.6 (this one
# among them) are a bare pickle stream, which begins with the PROTO opcode.
_WEIGHTS_FILE_STARTS = (b"PK\x03\x04", b"\x80")


def hub_dir() -> Path:
    """torch.hub.get_dir() as torch computes it when nobody called torch.hub.set_dir:
    $TORCH_HOME/hub, TORCH_HOME defaulting to $XDG_CACHE_HOME/torch, that to ~/.cache/torch.
    Kept equal to torch's own by tests/models_tests/test_models.py."""
    cache = os.getenv("XDG_CACHE_HOME", os.path.join("~", ".cache"))
    return Path(os.path.expanduser(os.getenv("TORCH_HOME", os.path.join(cache, "torch")))) / "hub"


def hub_weights_path() -> Path:
    return hub_dir() / "checkpoints" / VGG16_FILE


def find_vgg_weights(explicit: str | None, needed_by: str = "model.loss.perceptual") -> Path:
    """The weights file to use, or a ValueError that names the file to place and where.
    `needed_by` is the spec key that asked for them (the perceptual loss, LPIPS)."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ValueError(f"model.vgg_path: no file {path} (torchvision's VGG-16 weights, {VGG16_FILE})")
    elif hub_weights_path().is_file():
        path = hub_weights_path()
    else:
        raise ValueError(
            f"{needed_by}: needs pretrained VGG-16 weights: place {VGG16_FILE} at {hub_weights_path()} "
            "or set model.vgg_path (gensweep downloads nothing)"
        )
    with open(path, "rb") as file:
        start = file.read(4)
    if not start.startswith(_WEIGHTS_FILE_STARTS):
        raise ValueError(f"model.vgg_path: {path} is not a readable weights file (not a torch.save file)")
    return path
