"""Pictures as files: every grid a trial logs to TensorBoard is also the latest PNG in its
trial directory, named by runner.results.report.picture_file, the same pixels TensorBoard shows."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from tbreader import read_events

from runner.results.report import SAMPLES_FILE, picture_file
from runner.spec import parse_document
from runner.train import loop
from runner.train.tblog import TrialLogger


def test_picture_file_names_are_safe_and_samples_keeps_its_name():
    assert picture_file("samples") == SAMPLES_FILE == "samples.png"
    assert picture_file("reconstruction") == "reconstruction.png"
    assert picture_file("input_bicubic_output_target") == "input_bicubic_output_target.png"
    assert picture_file("Cycle A/B") == "cycle_a_b.png"
    assert picture_file("../../etc/passwd") == "etc_passwd.png"
    assert picture_file("-é-") == picture_file("") == "picture.png"
    assert picture_file("x" * 500) == "x" * 100 + ".png"


@pytest.mark.parametrize(
    "model, grids",
    [
        ({"name": "vae", "latent_dim": 2}, {"samples", "reconstruction", "manifold"}),
        ({"name": "gan", "arch": "mlp", "width": 8, "latent_dim": 8, "conditional": True}, {"samples", "by_class"}),
        ({"name": "ddpm", "width": 8, "timesteps": 50, "sample_steps": 5}, {"samples", "trajectory", "denoising"}),
    ],
    ids=["vae", "gan", "ddpm"],
)
def test_every_logged_grid_is_also_a_png_in_the_trial_directory(tmp_path, tiny_document, model, grids):
    tiny_document["model"] = model
    tiny_document["quality"] = {"every": 0}  # its classifier would take 20 s to train
    if model["name"] == "gan":
        tiny_document["tune"] = {"metric": "val/d_loss"}  # its own, val/fd, is a quality metric: off here
    if model["name"] == "ddpm":
        tiny_document["data"] |= {"train_size": 64, "val_size": 16}  # its val pass is the slow part
    spec = parse_document(tiny_document, "tiny.yaml")
    logger = TrialLogger(tmp_path)
    loop.train(spec, logger)
    logger.finish(succeeded=True)

    events = read_events(tmp_path)
    assert set(events.Tags()["images"]) == grids
    assert sorted(path.name for path in tmp_path.glob("*.png")) == sorted(picture_file(tag) for tag in grids)
    for tag in grids:
        path = tmp_path / picture_file(tag)
        last = events.Images(tag)[-1]
        assert path.read_bytes() == last.encoded_image_string  # the very bytes TensorBoard holds
        on_disk = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        shown = cv2.imdecode(np.frombuffer(last.encoded_image_string, np.uint8), cv2.IMREAD_UNCHANGED)
        assert on_disk is not None and on_disk.shape[:2] == (last.height, last.width)
        assert np.array_equal(on_disk, shown), tag
    assert not list(tmp_path.glob("*.tmp"))  # written whole: no temporary file left behind


def test_a_pack_members_pictures_reach_its_trial_directory_too(tmp_path, tiny_document):
    """A pack's trainer records each member's logging calls and the member's trial replays them
    into its own TrialLogger (runner.sweep.pack_trial): the recorder must take every call the
    loop makes, as TrialLogger does, or a packed trial fails where a plain one trains."""
    import inspect

    from runner.sweep.pack_trial import RecordingLogger, replay

    def parameters(cls, method):
        return [(p.name, p.default) for p in inspect.signature(getattr(cls, method)).parameters.values()]

    for method in ("scalars", "image", "picture"):
        assert parameters(RecordingLogger, method) == parameters(TrialLogger, method), method
    tiny_document["model"] = {"name": "vae", "latent_dim": 2}
    tiny_document["quality"] = {"every": 0}
    recorder = RecordingLogger()
    loop.train(parse_document(tiny_document, "tiny.yaml"), recorder)
    logger = TrialLogger(tmp_path)
    replay(recorder.drain(), logger)
    logger.finish(succeeded=True)
    assert sorted(path.name for path in tmp_path.glob("*.png")) == ["manifold.png", "reconstruction.png", "samples.png"]
