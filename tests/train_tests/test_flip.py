"""train.flip: each training image mirrored left-right by a coin from the trial's generator, on
the device; paired targets turn with their inputs, unpaired ones toss their own coins; the loop
flips train batches only, and the same seed gives the same flips."""

from __future__ import annotations

import pytest
import torch

from models.base import Batch
from runner.spec import parse_document
from runner.train import loop
from runner.train.tensors import flip_horizontally, load_tensors


def _batch(count: int = 64, seed: int = 0, targets: torch.Tensor | None = None) -> Batch:
    images = torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(seed))  # no image is its own mirror
    return Batch(images, torch.arange(count), targets)


def _mirrored(before: torch.Tensor, after: torch.Tensor) -> torch.Tensor:
    """Which images came out mirrored; asserts every other one came out unchanged."""
    mirrored = (after == before.flip(-1)).flatten(1).all(1)
    kept = (after == before).flatten(1).all(1)
    assert (mirrored ^ kept).all(), "an image neither kept nor mirrored"
    return mirrored


def test_each_image_is_kept_or_mirrored_by_a_fair_coin_from_the_generator():
    batch = _batch()
    flipped = flip_horizontally(batch, torch.Generator().manual_seed(1))
    mirrored = _mirrored(batch.images, flipped.images)
    assert 16 < int(mirrored.sum()) < 48  # 64 fair coins
    assert torch.equal(flipped.labels, batch.labels)
    again = flip_horizontally(batch, torch.Generator().manual_seed(1))
    assert torch.equal(again.images, flipped.images)  # same seed, same flips
    other = flip_horizontally(batch, torch.Generator().manual_seed(2))
    assert not torch.equal(_mirrored(batch.images, other.images), mirrored)


def test_paired_targets_turn_with_their_inputs():
    images = _batch().images
    batch = Batch(images, None, images * 0.5)
    flipped = flip_horizontally(batch, torch.Generator().manual_seed(1), "paired")
    assert torch.equal(flipped.targets, flipped.images * 0.5)
    assert _mirrored(images, flipped.images).any()


def test_an_unpaired_domain_tosses_its_own_coins():
    batch = _batch(targets=_batch(seed=1).images)
    flipped = flip_horizontally(batch, torch.Generator().manual_seed(1), "unpaired")
    image_coins = _mirrored(batch.images, flipped.images)
    target_coins = _mirrored(batch.targets, flipped.targets)
    assert not torch.equal(image_coins, target_coins)


def test_the_memory_layout_is_kept():
    images = _batch().images.contiguous(memory_format=torch.channels_last)
    flipped = flip_horizontally(Batch(images), torch.Generator().manual_seed(0))
    assert flipped.images.is_contiguous(memory_format=torch.channels_last)


class _Recorder:
    """Stands in for a model in train_epoch: keeps every batch it is given."""

    def __init__(self):
        self.seen: list[torch.Tensor] = []

    def train(self):
        pass

    def train_step(self, batch: Batch) -> dict[str, torch.Tensor]:
        self.seen.append(batch.images.clone())
        return {"loss": torch.zeros(())}


def _epoch_batches(document: dict, flip: bool) -> tuple[list[torch.Tensor], torch.Tensor]:
    document["train"] |= {"flip": flip}
    spec = parse_document(document, "tiny.yaml")
    data = load_tensors(spec.data_name, spec.data)
    recorder = _Recorder()
    generator = torch.Generator().manual_seed(spec.train.seed)
    loop.train_epoch(recorder, data, spec, generator, 0, lambda *_: None)
    return recorder.seen, data.train_images.float() / 255.0


@pytest.mark.parametrize("flip", [True, False])
def test_the_loop_flips_training_batches_when_asked_and_the_same_seed_flips_the_same(tiny_document, flip):
    seen, train_images = _epoch_batches(dict(tiny_document, train=dict(tiny_document["train"])), flip)
    originals = {image.numpy().tobytes() for image in train_images}
    mirrors = {image.flip(-1).numpy().tobytes() for image in train_images}
    shown = [image.numpy().tobytes() for batch in seen for image in batch]
    assert len(shown) == len(train_images)
    assert all(image in originals or image in mirrors for image in shown)
    mirrored = sum(image in mirrors and image not in originals for image in shown)
    assert (mirrored > len(shown) // 4) if flip else mirrored == 0
    again, _ = _epoch_batches(dict(tiny_document, train=dict(tiny_document["train"])), flip)
    assert all(torch.equal(a, b) for a, b in zip(seen, again, strict=True))


def test_a_run_with_flip_trains_to_finite_metrics_and_shows_val_images_as_stored(tiny_document):
    tiny_document["train"] |= {"flip": True}
    spec = parse_document(tiny_document, "tiny.yaml")
    session = loop.open_session([spec], [None], None)
    fixed = session.fixed_batch.images
    assert torch.equal(fixed, session.data.val_images[: len(fixed)].float() / 255.0)
    metrics = loop.train(spec)
    assert all(torch.isfinite(torch.tensor(value)) for value in metrics.values())
