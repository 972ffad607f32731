"""Packs: K models trained as one (models/packing.py) and the loop around them (runner/train/packing.py)."""

from __future__ import annotations

import copy
import io

import pytest
import torch

import models
from models.base import Batch, DataInfo
from models.packing import PackedModels, PackError
from runner.spec import SpecError, parse_document
from runner.sweep.pack_trial import state_bytes
from runner.train import loop
from runner.train.packing import Member, Pack, pack_key

DIGITS = DataInfo((1, 28, 28), 10)


def _autoencoder(lr: float) -> models.GenerativeModel:
    torch.manual_seed(0)  # every member starts from the same weights as its solo twin
    return models.build("ae", {"arch": "mlp", "hidden_dim": 32}, DIGITS, lr)


def _max_difference(first, second) -> float:
    return max((a - b).abs().max().item() for a, b in zip(first.parameters(), second.parameters(), strict=True))


def _trained_alike(alone, member, rate: float) -> bool:
    # Float sums in another order; Adam divides by a gradient's size, so a weight whose gradient
    # is near zero can differ by a step. Well under 1% of how far the weights moved.
    return _max_difference(alone, member) < 0.01 * _max_difference(alone, _autoencoder(rate))


def _images(generator, count: int = 32) -> Batch:
    return Batch(torch.rand(count, 1, 28, 28, generator=generator))


def test_a_packed_member_trains_exactly_as_it_would_alone():
    # The autoencoder draws no noise, so a member and its solo twin see the same numbers: any
    # mix-up between members (a gradient slice, a learning rate, a transposed layout) shows.
    rates = [1e-3, 3e-3, 1e-2]
    solo = [_autoencoder(rate) for rate in rates]
    members = [_autoencoder(rate) for rate in rates]
    pack = PackedModels(members)
    generator = torch.Generator().manual_seed(1)
    for _ in range(15):
        batch = _images(generator)
        packed_losses = pack.train_step(batch)["loss"]
        solo_losses = torch.stack([model.train_step(batch)["loss"] for model in solo])
    assert torch.allclose(packed_losses, solo_losses, rtol=1e-5)
    for alone, member, rate in zip(solo, members, rates, strict=True):
        assert _trained_alike(alone, member, rate)
    # The rates differ by 10x: the members' weights are far apart, so the check above could fail.
    assert _max_difference(members[0], members[2]) > 1e-2


def test_a_member_that_leaves_keeps_its_weights_and_the_rest_train_on():
    rates = [1e-3, 3e-3, 1e-2]
    solo = [_autoencoder(rate) for rate in rates]
    members = [_autoencoder(rate) for rate in rates]
    pack = PackedModels(members)
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        batch = _images(generator)
        pack.train_step(batch)
        for model in solo:
            model.train_step(batch)
    left = [parameter.detach().clone() for parameter in members[1].parameters()]
    pack = pack.without({1})
    assert len(pack) == 2
    for _ in range(3):
        batch = _images(generator)
        pack.train_step(batch)
        for index in (0, 2):
            solo[index].train_step(batch)
    assert all(torch.equal(before, after) for before, after in zip(left, members[1].parameters()))
    assert _trained_alike(solo[0], members[0], rates[0]) and _trained_alike(solo[2], members[2], rates[2])


def test_each_member_has_its_own_beta():
    # beta weighs the KL term: a member with beta 8 must end with a smaller KL than one with 0.
    torch.manual_seed(0)
    members = [models.build("vae", {"arch": "mlp", "hidden_dim": 32, "beta": beta}, DIGITS, 3e-3) for beta in (0.0, 8.0)]
    pack = PackedModels(members)
    generator = torch.Generator().manual_seed(3)
    for _ in range(40):
        kl = pack.train_step(_images(generator))["kl"]
    assert kl[1] < 0.5 * kl[0]


def test_only_one_optimizer_models_pack():
    with pytest.raises(PackError, match="cannot be packed"):
        PackedModels([models.build("aae", {}, DIGITS, 1e-3)])  # two optimizers, stepped in turn


@pytest.mark.parametrize(
    ("tune", "model", "message"),
    [
        ({"pack": 4}, {"name": "gan", "variant": "dcgan"}, "gan cannot be packed"),
        ({"pack": 4, "scheduler": "pbt"}, {"name": "vae"}, "pbt"),
        ({"pack": 4, "train": {"compile": True}}, {"name": "vae"}, "train.compile: false"),
        ({"pack": 4, "train": {"channels_last": "on"}}, {"name": "vae", "arch": "conv"}, "channels_last"),
    ],
)
def test_a_spec_that_cannot_pack_says_so(tune, model, message):
    tune = dict(tune)  # parameters are shared between runs: not changed in place
    train = tune.pop("train", {})
    document = {"name": "p", "model": model, "data": {"name": "digits"}, "tune": tune, "train": train,
                "search": {"train.lr": {"loguniform": [1e-4, 1e-2]}}}
    with pytest.raises(SpecError, match=message) as caught:
        parse_document(document, "p.yaml")
    assert "tune.pack" in str(caught.value)


def _member_specs(tiny_document: dict, rates: list[float]):
    document = {**tiny_document, "train": {"epochs": 2, "batch_size": 64, "log_every": 1}, "quality": {"every": 0}}
    return [parse_document(document, "tiny.yaml").with_values({"train.lr": rate}) for rate in rates]


def test_members_differ_only_in_pack_fields(tiny_document):
    first, second = _member_specs(tiny_document, [1e-3, 1e-2])
    assert pack_key(first) == pack_key(second)  # learning rates differ: one pack
    assert pack_key(first) != pack_key(first, start_epoch=1)  # a resumed trial packs with its peers
    wider = first.with_values({"model.latent_dim": 4})
    assert pack_key(wider) != pack_key(first)  # another architecture: another pack


def test_a_diverging_member_fails_alone_and_the_others_finish(tiny_document):
    heard: dict[str, list] = {"epochs": [], "errors": []}
    specs = _member_specs(tiny_document, [1e-3, 1e6])  # Adam at 1e6 blows the second up at once
    members = [
        Member(spec, on_epoch_end=lambda end, i=i: heard["epochs"].append((i, end.epoch)),
               on_error=lambda error, i=i: heard["errors"].append((i, str(error))))
        for i, spec in enumerate(specs)
    ]
    Pack(members).train()
    assert heard["epochs"] == [(0, 1), (0, 2)]
    assert len(heard["errors"]) == 1 and heard["errors"][0][0] == 1
    assert "became nan" in heard["errors"][0][1] and "train.lr" in heard["errors"][0][1]


def test_a_members_checkpoint_holds_that_member_alone_and_loads_into_a_plain_model(tiny_document):
    specs = _member_specs(tiny_document, [1e-3, 3e-3, 1e-2])
    ends: dict[int, loop.EpochEnd] = {}
    saved: dict[int, bytes] = {}

    def keep(index, end):
        ends[index] = end
        saved[index] = state_bytes(end)

    Pack([Member(spec, on_epoch_end=lambda end, i=i: keep(i, end)) for i, spec in enumerate(specs)]).train()
    state = torch.load(io.BytesIO(saved[1]), weights_only=True)
    alone = torch.load(io.BytesIO(_solo_state_bytes(specs[1])), weights_only=True)
    # One member's weights and optimizer moments, not the whole stack's.
    assert abs(len(saved[1]) - len(_solo_state_bytes(specs[1]))) < 0.05 * len(saved[1])
    assert state.keys() == alone.keys() and state["model"].keys() == alone["model"].keys()
    plain = models.build(specs[1].model_name, specs[1].model, specs[1].data_info, specs[1].train.lr)
    plain.load_training_state(state)
    member = ends[1].model
    assert _max_difference(plain, member) == 0
    assert _max_difference(plain, ends[0].model) > 0  # and not another member's weights


def _solo_state_bytes(spec) -> bytes:
    ends = []
    loop.train(spec, on_epoch_end=ends.append)
    return state_bytes(ends[-1])


def test_a_pack_that_cannot_start_tells_every_member(tiny_document):
    # Nobody awaits the trainer's start(): a failure there must still reach each member's trial.
    from runner.sweep.pack_trial import END, PackTrainer

    trainer = PackTrainer(tiny_document, "tiny.yaml", threads=1)
    trainer.start([({"train.lr": 1e-3}, None), ({"train.lr": -1.0}, None)])
    for index in (0, 1):
        message = trainer.next(index)
        assert "train.lr" in message["error"]
        assert trainer.next(index) is END


def test_a_packed_trial_ends_where_it_would_alone(tiny_document):
    # The autoencoder draws no noise: a pack's second member, seeded like a trial of its own,
    # must end with the weights that trial ends with alone (not the next draw after member 0's).
    tiny_document["model"] = {"name": "ae", "hidden_dim": 32}
    specs = [spec.with_values({"train.precision": "fp32"}) for spec in _member_specs(tiny_document, [1e-3, 3e-3])]
    packed: dict[int, loop.EpochEnd] = {}
    Pack([Member(spec, on_epoch_end=lambda end, i=i: packed.__setitem__(i, end)) for i, spec in enumerate(specs)]).train()
    alone: list[loop.EpochEnd] = []
    loop.train(specs[1], on_epoch_end=alone.append)
    torch.manual_seed(specs[1].train.seed)
    first_weights = models.build("ae", specs[1].model, specs[1].data_info, 1e-3)
    moved = _max_difference(alone[-1].model, first_weights)
    assert _max_difference(packed[1].model, alone[-1].model) < 0.01 * moved


def _streams(generator: torch.Generator, device: torch.device) -> dict[str, torch.Tensor]:
    """Every random stream a training loop draws from, as it stands."""
    streams = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state()}
    if device.type == "cuda":
        streams["cuda_rng"] = torch.cuda.get_rng_state(device)
    return streams


def _train_watching_streams(specs, packed: bool, resume_states: list, monkeypatch) -> tuple[dict, list, list]:
    """Train a plain trial (one spec) or a pack; returns each member's checkpoint by (member,
    epoch), the random streams as each trained epoch's first step found them, and the devices
    loop.restore_rng was called with."""
    checkpoints, at_start, restored = {}, [], []
    train_epoch, restore_rng = loop.train_epoch, loop.restore_rng

    def watched_epoch(model, data, spec, generator, global_step, log_step):
        at_start.append(_streams(generator, data.train_images.device))
        return train_epoch(model, data, spec, generator, global_step, log_step)

    def watched_restore(state, generator, device):
        restored.append(device)
        restore_rng(state, generator, device)

    monkeypatch.setattr(loop, "train_epoch", watched_epoch)
    monkeypatch.setattr(loop, "restore_rng", watched_restore)

    def keep(index, end):  # a deep copy, as torch.save would make: the live tensors go on training
        checkpoints[index, end.epoch] = copy.deepcopy(loop.training_state(end))

    if packed:
        Pack([Member(spec, on_epoch_end=lambda end, i=i: keep(i, end), resume_state=state)
              for i, (spec, state) in enumerate(zip(specs, resume_states, strict=True))]).train()
    else:
        loop.train(specs[0], on_epoch_end=lambda end: keep(0, end), resume_state=resume_states[0])
    monkeypatch.undo()
    return checkpoints, at_start, restored


@pytest.mark.parametrize("packed", [False, True], ids=["plain", "packed"])
def test_a_resumed_trial_restores_every_random_stream(tiny_document, monkeypatch, packed):
    # Plain trials and packs resume through one path (loop.open_session, loop.restore_rng): the
    # shuffling generator, torch's CPU generator (the VAE's noise) and, on CUDA, the device's
    # generator stand at the resumed epoch's first step as the checkpoint saved them. (A pack
    # once restored the CPU streams only: on a GPU its noise started again from the seed.)
    specs = _member_specs(tiny_document, [1e-3, 3e-3])[: 2 if packed else 1]
    checkpoints, straight, restored = _train_watching_streams(specs, packed, [None] * len(specs), monkeypatch)
    assert restored == [] and len(straight) == 2  # epochs 1 and 2
    saved = [checkpoints[index, 1] for index in range(len(specs))]
    _, resumed, restored = _train_watching_streams(specs, packed, saved, monkeypatch)
    assert len(resumed) == 1  # epoch 2
    on_cuda = torch.cuda.is_available()  # train.device: auto
    assert [device.type for device in restored] == ["cuda" if on_cuda else "cpu"]
    names = {"generator", "torch_rng"} | ({"cuda_rng"} if on_cuda else set())
    assert set(resumed[0]) == names
    for name in names:  # a pack carries on from its first member's checkpoint
        assert torch.equal(resumed[0][name], saved[0][name].cpu()), name
        # ... which is not where a fresh start stands: the check above could fail.
        assert not torch.equal(straight[0][name], saved[0][name].cpu()), name
    # The uninterrupted run drew the second epoch's order from the same state.
    assert torch.equal(resumed[0]["generator"], straight[1]["generator"])
    if not packed:  # a pack's other members evaluate after the first one's checkpoint
        assert all(torch.equal(resumed[0][name], straight[1][name]) for name in names)


def test_restoring_sets_the_cuda_stream_only_on_cuda(monkeypatch):
    # Without a GPU in the test machine: the CUDA branch of the one resume path, with a fake
    # device generator.
    set_states = []
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: set_states.append((state, device)))
    generator = torch.Generator().manual_seed(5)
    state = {"generator": generator.get_state(), "torch_rng": torch.get_rng_state(), "cuda_rng": torch.arange(4, dtype=torch.uint8)}
    generator.manual_seed(6)
    torch.rand(3)
    loop.restore_rng(state, generator, torch.device("cpu"))
    assert set_states == []
    assert torch.equal(generator.get_state(), state["generator"]) and torch.equal(torch.get_rng_state(), state["torch_rng"])
    loop.restore_rng(state, generator, torch.device("cuda", 0))
    assert len(set_states) == 1 and torch.equal(set_states[0][0], state["cuda_rng"]) and set_states[0][1] == torch.device("cuda", 0)
