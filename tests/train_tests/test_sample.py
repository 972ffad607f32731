"""`gensweep sample`: pictures from a finished trial's checkpoint, and one-line errors for the rest.

The trials are trained without Ray (runner.train.loop.train) and laid out the way a sweep lays them
out: sweep.json in the run directory; gensweep.json and checkpoint_N/state.pt in the trial's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from click.testing import CliRunner

from models.base import DataInfo, GenerativeModel
from runner.cli import main
from runner.files import write_json
from runner.results.report import RECORD_FILE, STATE_FILE, SWEEP_FILE
from runner.spec import parse_document
from runner.train import loop
from runner.train.sample import (
    ARITHMETIC_SCALE,
    LABEL_HEIGHT,
    TILE_GAP,
    SampleError,
    interpolation,
    latest_checkpoint,
    load_trial,
    sample_grid,
    slerp,
)

SIDE = 28  # the digits' side
PADDING = 2  # make_grid's, around every tile
TILE = SIDE + PADDING


def _finished_trial(root: Path, model: dict, swept: dict, tune: dict | None = None) -> Path:
    document = {
        "name": "tiny",
        "model": model,
        "data": {"name": "digits", "train_size": 1024, "val_size": 200},  # 200: every class in val
        "train": {"epochs": 2, "batch_size": 64, "lr": 3e-3},
        "quality": {"every": 0},  # its classifier would take 20 s to train
        "search": {path: {"grid": [value]} for path, value in swept.items()},
        "tune": tune or {},
    }
    spec = parse_document(document, "tiny.yaml").with_values(swept)
    run_dir = root / model["name"]
    trial_dir = run_dir / "trial_00000"
    trial_dir.mkdir(parents=True)
    write_json(run_dir / SWEEP_FILE, {"name": "tiny", "source": "tiny.yaml", "document": document})
    write_json(trial_dir / RECORD_FILE, {"trial_id": "00000", "status": "finished", "swept": swept})

    def save_checkpoint(end: loop.EpochEnd) -> None:
        directory = trial_dir / f"checkpoint_{end.epoch - 1:06d}"
        directory.mkdir()
        torch.save(loop.training_state(end), directory / STATE_FILE)

    loop.train(spec, logger=None, on_epoch_end=save_checkpoint)
    return trial_dir


@pytest.fixture(scope="module")
def trials(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        # Swept latent_dim 4 over the document's 2: a model rebuilt without the swept value
        # would not take the checkpoint's weights.
        "vae": _finished_trial(root, {"name": "vae", "latent_dim": 2}, {"model.latent_dim": 4}),
        "gan": _finished_trial(
            root, {"name": "gan", "arch": "mlp", "width": 8, "latent_dim": 8, "conditional": True}, {},
            tune={"metric": "val/d_loss"},  # its own, val/fd, is a quality metric: off here
        ),
    }


def _sample(*args):
    return CliRunner().invoke(main, ["sample", *map(str, args)])


def _tile(image: np.ndarray, row: int, column: int) -> np.ndarray:
    """One image of a make_grid grid, as float pixels."""
    top, left = PADDING + row * TILE, PADDING + column * TILE
    return image[top : top + SIDE, left : left + SIDE].astype(float)


def test_help():
    result = CliRunner().invoke(main, ["sample", "--help"])
    assert result.exit_code == 0 and "--arithmetic A,B,C" in result.output


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_samples_grid_is_seeded(trials, tmp_path, model):
    result = _sample(trials[model], "--n", 16, "-o", tmp_path / "x.png")
    assert result.exit_code == 0, result.output
    assert result.output.count("\n") == 1 and str(tmp_path / "x.png") in result.output
    image = cv2.imread(str(tmp_path / "x.png"))
    assert image.shape == (4 * TILE + PADDING, 4 * TILE + PADDING, 3)  # 16 samples, 4 a row
    assert _tile(image, 3, 3).std() > 0  # a sample in the last place, not padding

    _sample(trials[model], "--n", 16, "-o", tmp_path / "same.png")
    _sample(trials[model], "--n", 16, "-o", tmp_path / "other.png", "--seed", 1)
    drawn = (tmp_path / "x.png").read_bytes()
    assert (tmp_path / "same.png").read_bytes() == drawn
    assert (tmp_path / "other.png").read_bytes() != drawn

    runner = CliRunner()
    with runner.isolated_filesystem(temp_dir=tmp_path):  # no -o: samples.png here
        assert runner.invoke(main, ["sample", str(trials[model]), "--n", "16"]).exit_code == 0
        assert Path("samples.png").read_bytes() == drawn


@pytest.mark.parametrize("model", ["vae", "gan"])
def test_interpolation_walks_between_its_ends(trials, tmp_path, model):
    result = _sample(trials[model], "--interpolate", "--steps", 5, "--n", 12, "-o", tmp_path / "walk.png")
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(tmp_path / "walk.png"))
    assert image.shape == (3 * TILE + PADDING, 5 * TILE + PADDING, 3)  # rows enough for 12: 3 of 5
    for row in range(3):
        start, middle, end = _tile(image, row, 0), _tile(image, row, 2), _tile(image, row, 4)
        span = np.linalg.norm(end - start)
        assert span > 5 * 255 / 100  # the ends differ visibly
        assert np.linalg.norm(middle - start) < span and np.linalg.norm(end - middle) < span


def test_a_conditional_gan_keeps_each_rows_class(trials):
    _, model = load_trial(trials["gan"])
    labels = []
    model.generator.register_forward_pre_hook(lambda network, args: labels.append(args[1]))
    interpolation(model, steps=4, seed=0, rows=3)
    assert labels[0].tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_models_without_samples_or_latent_say_so():
    class Translator(GenerativeModel):  # as image-to-image models are: no sample(), no latent
        generates = False

    model = Translator(None, DataInfo((1, SIDE, SIDE), None), lr=1e-3)
    with pytest.raises(SampleError, match="Translator: an image-to-image model translates images; it draws no samples"):
        sample_grid(model, 4, seed=0)
    with pytest.raises(SampleError, match="Translator: no latent space to walk through"):
        interpolation(model, steps=4, seed=0, rows=1)


def test_slerp_keeps_to_the_arc():
    start, end = torch.tensor([[3.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 3.0], [2.0, 2.0]])
    assert torch.allclose(slerp(start, end, 0.0), start) and torch.allclose(slerp(start, end, 1.0), end)
    middle = slerp(start, end, 0.5)
    # Orthogonal ends of norm 3: the middle is on the circle at 45 degrees, not inside it.
    assert torch.allclose(middle[0], torch.tensor([3.0, 3.0]) / 2**0.5)
    # Parallel ends: no angle to divide by, the straight line.
    assert torch.allclose(middle[1], torch.tensor([1.5, 1.5]))


def test_arithmetic_is_a_labelled_row(trials, tmp_path):
    result = _sample(trials["vae"], "--arithmetic", "1,1,3", "-o", tmp_path / "sum.png")
    assert result.exit_code == 0, result.output
    image = cv2.imread(str(tmp_path / "sum.png"), cv2.IMREAD_GRAYSCALE)
    side = SIDE * ARITHMETIC_SCALE
    assert image.shape == (LABEL_HEIGHT + side, 4 * side + 3 * TILE_GAP)
    tiles = [image[LABEL_HEIGHT:, i * (side + TILE_GAP) : i * (side + TILE_GAP) + side].astype(float) for i in range(4)]
    labels = [image[:LABEL_HEIGHT, i * (side + TILE_GAP) : i * (side + TILE_GAP) + side] for i in range(4)]
    assert all((label > 128).sum() > 10 for label in labels)  # "a=1", "-b=1", "+c=3", "=" drawn
    assert (labels[3] > 128).sum() < (labels[0] > 128).sum()  # "=" is shorter than "a=1"
    # mean(1) - mean(1) + mean(3) is mean(3) exactly; mean(1) decodes to something else.
    assert np.array_equal(tiles[3], tiles[2])
    assert np.abs(tiles[0] - tiles[2]).mean() > 1


def test_latest_checkpoint_is_the_highest_numbered(tmp_path):
    for name, with_state in (("checkpoint_000009", True), ("checkpoint_000010", True), ("checkpoint_000011", False)):
        (tmp_path / name).mkdir()
        if with_state:  # 11 has none yet: Ray makes the directory before the file
            (tmp_path / name / STATE_FILE).write_bytes(b"")
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint_000010" / STATE_FILE



def _trial_copy(trial_dir: Path, tmp_path: Path, checkpoint: bytes | None = None) -> Path:
    """The trial's run and record, without its checkpoints; with `checkpoint` as its only one."""
    copy = tmp_path / "run" / trial_dir.name
    copy.mkdir(parents=True)
    shutil.copy(trial_dir.parent / SWEEP_FILE, copy.parent)
    shutil.copy(trial_dir / RECORD_FILE, copy)
    if checkpoint is not None:
        (copy / "checkpoint_000000").mkdir()
        (copy / "checkpoint_000000" / STATE_FILE).write_bytes(checkpoint)
    return copy


def _truncated(trial_dir: Path) -> bytes:
    whole = latest_checkpoint(trial_dir).read_bytes()
    return whole[: len(whole) // 2]  # a copy that stopped halfway


ERRORS = {
    "missing": lambda t, tmp: ([tmp / "no-such-trial"], [str(tmp / "no-such-trial"), "no such trial directory"]),
    "run, not trial": lambda t, tmp: ([t["vae"].parent], [str(t["vae"].parent), "not a gensweep trial directory"]),
    "no checkpoint": lambda t, tmp: ([_trial_copy(t["vae"], tmp)], [str(tmp / "run" / "trial_00000"), "no checkpoint"]),
    "corrupt": lambda t, tmp: (
        [_trial_copy(t["vae"], tmp, _truncated(t["vae"]))],
        [str(tmp / "run" / "trial_00000" / "checkpoint_000000" / STATE_FILE), "cannot read the checkpoint"],
    ),
    "gan arithmetic": lambda t, tmp: ([t["gan"], "--arithmetic", "1,2,3"], ["1 - 2 + 3", "model gan has no encoder"]),
    "class out of range": lambda t, tmp: ([t["vae"], "--arithmetic", "1,2,10"], ["10 is not one of the data's classes 0-9"]),
    "not three classes": lambda t, tmp: ([t["vae"], "--arithmetic", "1,2"], ["--arithmetic 1,2: expected three class numbers"]),
}


@pytest.mark.parametrize("case", ERRORS)
def test_mistakes_are_one_line(trials, tmp_path, case):
    args, expected = ERRORS[case](trials, tmp_path)
    result = _sample(*args, "-o", tmp_path / "x.png")
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(part in lines[0] for part in expected), lines[0]
    assert not (tmp_path / "x.png").exists()
