"""The training loop without Ray: epochs, TensorBoard files, non-finite losses, resuming."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tbreader import hparams_of, read_events

from runner.spec import parse_document
from runner.train import loop
from runner.train.tblog import TrialLogger


def test_train_logs_scalars_images_and_hparams(tmp_path, tiny_document):
    tiny_document["train"] |= {"epochs": 2, "log_every": 2}
    spec = parse_document(tiny_document, "tiny.yaml")
    logger = TrialLogger(tmp_path)
    logger.hparams({"model.latent_dim": 2}, spec.metric_names(), discrete={"model.latent_dim": [2, 4]})
    ends = []
    metrics = loop.train(spec, logger, ends.append)
    logger.finish(succeeded=True)

    assert [end.epoch for end in ends] == [1, 2] and ends[-1].global_step == 8  # 256 / 64 * 2
    assert set(metrics) == set(spec.metric_names())
    events = read_events(tmp_path)
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/recon", "train/kl", "val/recon", "val/active_units", "train_step/loss"} <= scalars
    assert [e.step for e in events.Scalars("val/recon")] == [4, 8]  # optimizer steps at epoch ends
    assert [e.value for e in events.Scalars("train/epoch")] == [1, 2]
    assert [e.step for e in events.Scalars("train_step/loss")] == [2, 4, 6, 8]
    assert events.Scalars("val/recon")[-1].value == pytest.approx(metrics["val/recon"])
    assert set(events.Tags()["images"]) == {"samples", "reconstruction", "manifold"}
    assert (tmp_path / loop.SAMPLES_FILE).stat().st_size > 1000
    # TensorBoard's image, as TensorBoard reads it, is the last epoch's samples.png to the pixel.
    last = events.Images("samples")[-1]
    assert last.step == 8
    shown = cv2.imdecode(np.frombuffer(last.encoded_image_string, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (last.width, last.height) == (shown.shape[1], shown.shape[0]) == (242, 242)  # 8x8 grid of 28 + 2 padding
    assert np.array_equal(shown, cv2.imread(str(tmp_path / loop.SAMPLES_FILE), cv2.IMREAD_UNCHANGED))

    records = hparams_of(events)
    start = next(r.session_start_info for r in records.values() if r.HasField("session_start_info"))
    assert start.hparams["model.latent_dim"].number_value == 2
    experiment = next(r.experiment for r in records.values() if r.HasField("experiment"))
    assert "val/recon" in [m.name.tag for m in experiment.metric_infos]
    end = next(r.session_end_info for r in records.values() if r.HasField("session_end_info"))
    assert end.status == 1  # STATUS_SUCCESS


def test_a_nan_loss_stops_training_with_a_clear_message(tiny_document):
    tiny_document["train"] |= {"lr": 1000.0, "log_every": 1}
    with pytest.raises(loop.TrainingError, match=r"train/\w+ became nan at epoch 1, step \d+; try a lower train.lr"):
        loop.train(parse_document(tiny_document, "tiny.yaml"))


def test_cuda_asked_for_without_a_gpu(tiny_document):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    tiny_document["train"]["device"] = "cuda"
    with pytest.raises(loop.TrainingError, match="cuda asked for, but this machine has no CUDA device"):
        loop.train(parse_document(tiny_document, "tiny.yaml"))


@pytest.mark.skipif(torch.cuda.is_available(), reason="the CPU path: this machine has a GPU")
def test_a_trial_uses_only_the_device_ray_assigned():
    cpu = torch.device("cpu")
    # Under Ray with no GPU given: the CPU, even where a GPU exists; asking for cuda is an error.
    assert loop.choose_device("auto", []) == cpu
    with pytest.raises(loop.TrainingError, match="given no GPU: set resources.gpu"):
        loop.choose_device("cuda", [])
    # A GPU given but no CUDA in this process: say which, never fall back silently.
    with pytest.raises(loop.TrainingError, match=r"Ray gave this trial GPU 3, but torch sees no CUDA device"):
        loop.choose_device("auto", ["3"])
    assert loop.choose_device("cpu", ["3"]) == cpu  # asked for explicitly
    assert loop.choose_device("auto", None) == cpu  # outside Ray, on this machine


@pytest.mark.slow  # trains for more than a few seconds
def test_resuming_continues_where_the_checkpoint_stopped(tiny_document):
    tiny_document["train"]["epochs"] = 3
    spec = parse_document(tiny_document, "tiny.yaml")
    states, straight = {}, []
    def keep(end):  # a deep copy, as torch.save would make: the live tensors go on training
        states[end.epoch] = copy.deepcopy(loop.training_state(end))
        straight.append(end.metrics)

    loop.train(spec, on_epoch_end=keep)
    resumed = []
    loop.train(spec, on_epoch_end=lambda end: resumed.append((end.epoch, end.metrics)), resume_state=states[1])
    assert [epoch for epoch, _ in resumed] == [2, 3]
    # Same weights, optimizer moments, shuffling and noise: the resumed run is the same run.
    for (_, metrics), expected in zip(resumed, straight[1:], strict=True):
        assert metrics["train/loss"] == pytest.approx(expected["train/loss"], rel=1e-5)


def test_one_epoch_on_the_real_mnist_test_set(mnist_dir):
    document = {
        "name": "mnist",
        "model": {"name": "vae", "latent_dim": 8},
        "data": {"name": "mnist", "path": str(mnist_dir)},
        "train": {"epochs": 1, "batch_size": 128},
    }
    metrics = loop.train(parse_document(document, "mnist.yaml"))
    # Untrained, a VAE scores about 543 nats (784 log 2); one epoch on 8,000 real digits more
    # than halves that, and uses every latent dimension's worth of KL.
    assert metrics["val/recon"] < 250 and metrics["val/kl"] > 5


def _rss_mb() -> float:
    status = Path("/proc/self/status")
    if not status.exists():
        pytest.skip("no /proc/self/status here")
    line = next(line for line in status.read_text().splitlines() if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


@pytest.mark.slow  # trains for more than a few seconds
def test_memory_does_not_grow_across_epochs(tmp_path, tiny_document):
    """Five epochs with TensorBoard logging and checkpoint-sized state: the resident set after
    each epoch stays within 10% of where it stood after the first."""
    tiny_document["data"] |= {"train_size": 2048, "val_size": 256}
    tiny_document["train"] |= {"epochs": 5, "log_every": 8}
    tiny_document["quality"] = {"every": 0}
    spec = parse_document(tiny_document, "tiny.yaml")
    logger = TrialLogger(tmp_path)
    resident = []
    loop.train(spec, logger, lambda end: (loop.training_state(end), resident.append(_rss_mb())))
    logger.finish(succeeded=True)
    assert len(resident) == 5
    assert max(resident[1:]) <= 1.10 * resident[0], resident


def test_precision_auto_means_bf16_only_where_the_cpu_has_it():
    cpu = torch.device("cpu")
    assert loop.autocast_dtype("fp32", cpu) is None
    assert loop.autocast_dtype("bf16", cpu) is torch.bfloat16
    assert loop.autocast_dtype("fp16", cpu) is torch.float16
    assert loop.autocast_dtype("auto", cpu) is (torch.bfloat16 if loop.cpu_has_native_bf16() else None)
