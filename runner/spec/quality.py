"""Which sample-quality metrics a spec measures, which it does not, and why; where the Inception
weights are. No torch here: the spec check and `gensweep validate` run before any network exists
(runner.train.quality measures)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from models.config import ConfigError
from models.vgg_weights import hub_dir

# In the feature space of a small classifier trained on the data set's labels (models.feature_net).
CLASS_FEATURE_METRICS = ("fd", "kid", "kid_std", "precision", "recall", "class_score")
# In Inception-v3's 2048-d pool features (torch-fidelity's network and weights): the standard FID and KID.
INCEPTION_METRICS = ("fid", "kid_inception", "kid_inception_std")
INCEPTION_WEIGHTS = "weights-inception-2015-12-05-6726825d.pth"  # the file torch-fidelity loads (its URL's name)
# torch.save writes a zip archive; anything else is not a weights file (and is never unpickled).
_ZIP_START = b"PK\x03\x04"


def default_inception_path() -> Path:
    """Where torch.hub would cache torch-fidelity's download (gensweep never downloads it)."""
    return hub_dir() / "checkpoints" / INCEPTION_WEIGHTS


def find_inception_weights(explicit: str | None) -> Path:
    """The Inception weights file to load: `quality.inception_path`, else the torch hub cache.
    A missing or foreign file is a ConfigError naming the file and both places it may be."""
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError("quality.inception_path", f"no file {path} (torch-fidelity's {INCEPTION_WEIGHTS})")
    else:
        path = default_inception_path()
        if not path.is_file():
            raise ConfigError(
                "quality.fid", f"no Inception weights at {path}: place torch-fidelity's file there "
                "or set quality.inception_path (gensweep downloads nothing)"
            )
    with open(path, "rb") as file:
        if file.read(4) != _ZIP_START:
            raise ConfigError("quality.inception_path", f"{path} is not a torch.save weights file")
    return path


@dataclass(frozen=True)
class QualityPlan:
    """What a spec's trials measure: `metrics` (names without val/), and for each metric not
    measured, why."""

    class_features: bool = False  # fd, kid, ... in the labels' classifier's features
    inception: bool = False  # fid, kid_inception, kid_inception_std
    not_measured: dict[str, list[str]] = field(default_factory=dict)  # reason -> the metrics it keeps out

    @property
    def metrics(self) -> list[str]:
        return [*(CLASS_FEATURE_METRICS if self.class_features else ()), *(INCEPTION_METRICS if self.inception else ())]

    def line(self) -> str:
        """One line: what is measured, what is not and why."""
        measured = []
        if self.class_features:
            measured.append(f"{', '.join(CLASS_FEATURE_METRICS)} (labels' classifier)")
        if self.inception:
            measured.append(f"{', '.join(INCEPTION_METRICS)} (Inception-v3)")
        text = "quality: " + ("; ".join(measured) if measured else "none")
        for reason, names in self.not_measured.items():
            text += f"; not measured: {', '.join(names)} ({reason})"
        return text


def plan_quality(every: int, fid: bool, inception_path: str | None, labelled: bool, generates: bool) -> QualityPlan:
    """The metrics measured with these settings. Inception's are on request (quality.fid: at 299x299
    it runs a few images/s on a CPU, README `quality`); asked for, missing weights are an error."""
    everything = [*CLASS_FEATURE_METRICS, *INCEPTION_METRICS]
    if every == 0:
        return QualityPlan(not_measured={"quality.every: 0": everything})
    if not generates:
        return QualityPlan(not_measured={"the model translates images, it does not sample them": everything})
    not_measured = {}
    if not labelled:
        not_measured["unlabelled data"] = list(CLASS_FEATURE_METRICS)
    if fid:
        find_inception_weights(inception_path)
    else:
        not_measured[f"quality.fid: false{_weights_status(inception_path)}"] = list(INCEPTION_METRICS)
    return QualityPlan(class_features=labelled, inception=fid, not_measured=not_measured)


def _weights_status(inception_path: str | None) -> str:
    """Whether quality.fid: true would find its weights, said briefly."""
    path = Path(inception_path).expanduser() if inception_path else default_inception_path()
    try:
        return f"; Inception weights at {_shown(find_inception_weights(inception_path))}"
    except ConfigError as error:
        if path.is_file():  # there, but not a weights file
            return f", and {error.message}"
        return f", and no Inception weights at {_shown(path)}" + ("" if inception_path else " or quality.inception_path")


def _shown(path: Path) -> str:
    home = Path.home()
    return f"~/{path.relative_to(home)}" if path.is_relative_to(home) else str(path)
