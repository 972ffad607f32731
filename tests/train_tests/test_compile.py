"""train.compile and train.channels_last: the same training, to rounding, and checkpoints that
load across both settings.

Tolerance: these runs are fp32 (train.precision: fp32), where a compiled or channels-last run
differs from the plain one only in the order of floating-point operations (fused kernels, other
reduction orders, other convolution algorithms): ~1e-7 relative per operation, grown over a few
Adam steps to well under 1e-5. For these VAEs the losses are in fact bit-equal (2026-11-30): the
compiled networks are linear and conv layers, which inductor hands to the same MKL/oneDNN kernels
as eager mode, and ReLUs, and the losses are computed outside them. rel=1e-4 leaves room for
the rounding of other nets (batch norm's fused reductions) and still fails what breaks training:
a missed step, a wrong gradient, or optimizer moments in the wrong layout (3e-2 here, see the
resume test). Compiling costs ~10-25 s per model on 2 cores with inductor's cache cold (a few
seconds warm), so the models are the smallest that exercise an MLP and a conv net, and the conv
compile is marked slow.
"""

from __future__ import annotations

import copy

import pytest
import torch

import models
from runner.spec import SpecError, parse_document
from runner.train import loop

FP32_RUN_TOLERANCE = 1e-4  # see the module docstring

MLP_VAE = {"name": "vae", "arch": "mlp", "latent_dim": 2, "hidden_dim": 32}
CONV_VAE = {"name": "vae", "arch": "conv", "latent_dim": 2, "hidden_dim": 32}


def _document(model: dict, **train) -> dict:
    return {
        "name": "compile",
        "model": model,
        "data": {"name": "digits", "train_size": 128, "val_size": 64},
        "train": {"epochs": 2, "batch_size": 32, "precision": "fp32", "device": "cpu", **train},
        "quality": {"every": 0},
    }


def _train(document: dict, resume_state: dict | None = None) -> tuple[list[dict], dict]:
    """Per-epoch metrics and the last epoch's checkpoint (a deep copy, as torch.save would make)."""
    epochs, states = [], {}

    def keep(end):
        epochs.append(end.metrics)
        states["last"] = copy.deepcopy(loop.training_state(end))

    loop.train(parse_document(document, "compile.yaml"), on_epoch_end=keep, resume_state=resume_state)
    return epochs, states["last"]


def _assert_same_losses(runs: list[dict], expected: list[dict]) -> None:
    assert len(runs) == len(expected)
    for metrics, reference in zip(runs, expected):
        for name in ("train/loss", "val/loss", "val/recon"):
            assert metrics[name] == pytest.approx(reference[name], rel=FP32_RUN_TOLERANCE), name


# -- spec -------------------------------------------------------------------------------------------
def test_the_new_train_fields_default_off_and_are_validated(tiny_document):
    spec = parse_document(tiny_document, "tiny.yaml")
    assert spec.train.compile is False and spec.train.channels_last == "auto"
    tiny_document["train"] |= {"compile": True, "channels_last": "on"}
    spec = parse_document(tiny_document, "tiny.yaml")
    assert spec.train.compile is True and spec.train.channels_last == "on"
    for key, value, problem in [("channels_last", "yes", "train.channels_last: Input should be 'auto', 'on' or 'off'"),
                                ("compile", "fast", "train.compile: Input should be a valid boolean")]:
        document = copy.deepcopy(tiny_document)
        document["train"][key] = value
        with pytest.raises(SpecError, match=problem):
            parse_document(document, "tiny.yaml")


def test_auto_channels_last_is_for_conv_models_on_cuda_only():
    info = models.DataInfo((1, 28, 28), 10)
    conv, mlp = models.build("vae", {"arch": "conv"}, info, 1e-3), models.build("vae", {"arch": "mlp"}, info, 1e-3)
    assert loop.memory_format("auto", conv) == torch.contiguous_format  # this model is on the CPU
    assert loop.memory_format("on", mlp) == torch.channels_last  # harmless: no 4-D weights, C=1 batches
    assert loop.memory_format("off", conv) == torch.contiguous_format
    assert loop.has_convolutions(conv) and not loop.has_convolutions(mlp)


# -- compile ----------------------------------------------------------------------------------------
def test_compiled_mlp_vae_trains_as_the_plain_one_and_checkpoints_load_both_ways():
    from torch._dynamo.utils import counters

    plain, plain_state = _train(_document(MLP_VAE))
    graphs_before = counters["stats"]["unique_graphs"]
    compiled, compiled_state = _train(_document(MLP_VAE, compile=True))
    assert counters["stats"]["unique_graphs"] > graphs_before  # compiled, not silently run eagerly
    _assert_same_losses(compiled, plain)
    # Compiled in place: no "_orig_mod." in the keys, so either checkpoint loads into either model.
    assert compiled_state["model"].keys() == plain_state["model"].keys()
    resumed, _ = _train(_document(MLP_VAE, epochs=3), resume_state=compiled_state)  # compiled -> plain
    resumed_compiled, _ = _train(_document(MLP_VAE, epochs=3, compile=True), resume_state=plain_state)
    _assert_same_losses(resumed_compiled, resumed)


@pytest.mark.slow
def test_compiled_conv_vae_trains_as_the_plain_one():
    plain, _ = _train(_document(CONV_VAE, epochs=1))
    compiled, compiled_state = _train(_document(CONV_VAE, epochs=1, compile=True))
    _assert_same_losses(compiled, plain)
    fields = {key: value for key, value in CONV_VAE.items() if key != "name"}
    model = models.build("vae", fields, models.DataInfo((1, 28, 28), 10), 1e-3)
    model.load_training_state(compiled_state)  # an uncompiled model, strictly
    assert all(torch.equal(model.state_dict()[k], v) for k, v in compiled_state["model"].items())


def test_compile_without_a_cpp_compiler_fails_in_one_line_naming_the_flag():
    from torch._inductor import config as inductor_config

    # inductor's own patch(): monkeypatch's undo deletes the config entry, hiding it from later tests
    needs = r"^train.compile: torch.compile on the CPU needs a C\+\+ compiler"
    with inductor_config.patch({"cpp.cxx": ("/nonexistent/c++",)}), pytest.raises(loop.TrainingError, match=needs) as error:
        loop.train(parse_document(_document(MLP_VAE, compile=True), "compile.yaml"))
    assert "\n" not in str(error.value)


def test_a_failure_inside_torch_compile_is_one_line_naming_the_flag(monkeypatch):
    def broken_backend(graph, example_inputs):
        raise RuntimeError("no kernels today")

    # Compiled code is shared by every instance of the same network (parameters are inputs to
    # it), so a network compiled by an earlier test would be reused here and never compiled.
    torch._dynamo.reset()
    plain_compile = torch.nn.Module.compile
    monkeypatch.setattr(torch.nn.Module, "compile", lambda module: plain_compile(module, backend=broken_backend))
    with pytest.raises(loop.TrainingError, match=r"^train.compile: torch.compile failed: .*; set train.compile: false$"):
        loop.train(parse_document(_document(MLP_VAE, compile=True), "compile.yaml"))


def test_wgan_gp_compiles_its_generator_but_not_its_critic():
    # The penalty's double backward does not go through compiled graphs (create_graph=True).
    gan = models.build("gan", {"variant": "wgan-gp"}, models.DataInfo((1, 28, 28), 10), 1e-4)
    assert set(gan.networks_to_compile()) == {"generator"}
    dcgan = models.build("gan", {"variant": "dcgan"}, models.DataInfo((1, 28, 28), 10), 2e-4)
    assert set(dcgan.networks_to_compile()) == {"generator", "critic"}


# -- channels_last ----------------------------------------------------------------------------------
def test_channels_last_trains_a_conv_vae_as_contiguous_does_and_resumes_across_layouts():
    contiguous, _ = _train(_document(CONV_VAE, channels_last="off"))
    channels_last, _ = _train(_document(CONV_VAE, channels_last="on"))
    _assert_same_losses(channels_last, contiguous)
    # A channels-last checkpoint resumed contiguous: the optimizer moments must take the
    # parameters' layout, or the fused Adam pairs the wrong elements (see models/base.py).
    _, first_epoch = _train(_document(CONV_VAE, epochs=1, channels_last="on"))
    resumed, _ = _train(_document(CONV_VAE, channels_last="off"), resume_state=first_epoch)
    _assert_same_losses(resumed, channels_last[1:])


def test_optimizer_moments_take_their_parameters_layout_on_load():
    info = models.DataInfo((1, 28, 28), 10)
    saved = models.build("vae", {"arch": "conv"}, info, 1e-3).to(memory_format=torch.channels_last)
    batch = models.Batch(torch.rand(4, 1, 28, 28).contiguous(memory_format=torch.channels_last))
    saved.train_step(batch)
    loaded = models.build("vae", {"arch": "conv"}, info, 1e-3)  # contiguous
    loaded.load_training_state(copy.deepcopy(saved.training_state()))
    optimizer = loaded.optimizers["autoencoder"]
    for parameter in loaded.parameters():
        for name in ("exp_avg", "exp_avg_sq"):
            assert optimizer.state[parameter][name].stride() == parameter.stride()
