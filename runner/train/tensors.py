"""What training draws batches from: a data set's arrays (runner.data, numpy, no torch) as uint8
tensors in memory, on one device, batches drawn by indexing."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from models.base import Batch
from models.data_info import DataInfo
from runner import data as data_sources


@dataclass
class ImageData:
    """Train and val images (N, C, H, W) uint8 and labels (N,) int64 (or None), on one device.

    Two-image sets (runner.data.pairs) add targets: for "paired" data the target of each image, for
    "unpaired" data a second domain of its own length, drawn independently.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor | None
    val_images: torch.Tensor
    val_labels: torch.Tensor | None
    num_classes: int | None
    train_targets: torch.Tensor | None = None
    val_targets: torch.Tensor | None = None
    pairing: str | None = None  # None, "paired" or "unpaired"

    @property
    def info(self) -> DataInfo:
        return DataInfo(tuple(self.train_images.shape[1:]), self.num_classes, self.pairing)

    def to(
        self, device: torch.device | str, memory_format: torch.memory_format = torch.preserve_format
    ) -> ImageData:
        """On `device`; image tensors (4-D) in `memory_format`, which every batch indexed from them keeps."""
        def move(t):
            if t is None:
                return None
            return t.to(device, memory_format=memory_format) if t.dim() == 4 else t.to(device)
        return ImageData(
            move(self.train_images), move(self.train_labels), move(self.val_images), move(self.val_labels),
            self.num_classes, move(self.train_targets), move(self.val_targets), self.pairing,
        )

    def batches(
        self, split: str, batch_size: int, generator: torch.Generator | None = None,
        max_batches: int | None = None, count: int | None = None,
    ) -> Iterator[Batch]:
        """Batches of the train or val split (its first `count` images), shuffled with a generator."""
        images, labels, targets = (getattr(self, f"{split}_{part}") for part in ("images", "labels", "targets"))
        if count is not None:
            images = images[:count]
            labels = None if labels is None else labels[:count]
            if targets is not None and self.pairing == "paired":  # unpaired: the whole other domain
                targets = targets[:count]
        return batches(images, labels, batch_size, generator, max_batches, targets, self.pairing)


def batches(
    images: torch.Tensor,
    labels: torch.Tensor | None,
    batch_size: int,
    generator: torch.Generator | None = None,
    max_batches: int | None = None,
    targets: torch.Tensor | None = None,
    pairing: str | None = None,
) -> Iterator[Batch]:
    """Batches of float images in [0, 1] on the images' device; shuffled when given a generator.

    Indexing a device tensor with a permutation replaces a DataLoader: no workers, no per-sample
    transforms, one gather and one conversion per batch. Paired targets follow their images;
    unpaired targets (another domain) are drawn in an order of their own, wrapping round.
    """
    count = len(images)
    order = _order(count, generator, images.device)
    if targets is not None and pairing == "unpaired":
        target_order = _order(len(targets), generator, targets.device).repeat(-(-count // len(targets)))
    starts = range(0, count, batch_size)
    if max_batches is not None:
        starts = starts[:max_batches]
    for start in starts:
        index = order[start : start + batch_size]
        batch_labels = None if labels is None else labels[index]
        batch_targets = None
        if targets is not None:
            target_index = target_order[start : start + len(index)] if pairing == "unpaired" else index
            batch_targets = targets[target_index].float().div_(255.0)
        yield Batch(images[index].float().div_(255.0), batch_labels, batch_targets)


def flip_horizontally(batch: Batch, generator: torch.Generator, pairing: str | None = None) -> Batch:
    """The batch with each image mirrored left-right or not, a fair coin each drawn from
    `generator` on its device (no host sync; same seed, same flips): train.flip's augmentation.
    A paired target turns with its input, so the pair still matches; an unpaired target (the
    other domain, drawn independently) tosses coins of its own. Labels stay: a mirrored face is
    still smiling."""
    coins = _coins(len(batch.images), generator, batch.images.device)
    images, targets = _mirrored_where(batch.images, coins), batch.targets
    if targets is not None:
        if pairing == "unpaired":
            coins = _coins(len(targets), generator, targets.device)
        targets = _mirrored_where(targets, coins)
    return Batch(images, batch.labels, targets)


def _coins(count: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(count, 1, 1, 1) booleans, each true with probability 1/2."""
    return (torch.rand(count, generator=generator, device=generator.device) < 0.5).to(device).view(-1, 1, 1, 1)


def _mirrored_where(images: torch.Tensor, coins: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images, those whose coin is true mirrored along W; the layout kept."""
    return torch.where(coins, images.flip(-1), images)


def _order(count: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    if generator is None:
        return torch.arange(count, device=device)
    return torch.randperm(count, generator=generator, device=generator.device).to(device)


def from_arrays(arrays: data_sources.ImageArrays) -> ImageData:
    """A source's numpy arrays as tensors on the CPU, sharing their memory: a memory-mapped cache
    (runner.data.decoded) stays mapped, its pages shared with every other trial on the node."""
    def as_tensor(array):
        if array is None:
            return None
        with warnings.catch_warnings():
            # A read-only map: torch warns that writing through the tensor is undefined. Nothing
            # writes into a data set's tensors (batches are gathered copies), and a write would fault.
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            return torch.from_numpy(array)
    return ImageData(
        as_tensor(arrays.train_images), as_tensor(arrays.train_labels), as_tensor(arrays.val_images),
        as_tensor(arrays.val_labels), arrays.num_classes, as_tensor(arrays.train_targets),
        as_tensor(arrays.val_targets), arrays.pairing,
    )


def load_tensors(name: str, data_config) -> ImageData:
    """The data set `name` (a runner.data source) as tensors on the CPU."""
    return from_arrays(data_sources.load(name, data_config))
