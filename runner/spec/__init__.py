"""The sweep spec: one YAML file, validated completely before anything starts.

A spec has these top-level keys (README, "The spec", documents every one):

    name, description          the run's name (default: the file's stem) and free text
    model: {name, ...}         a registered model and its config fields
    data: {name, ...}          a data source (digits | mnist | folder) and its fields
    train: {...}               TrainSpec
    search: {path: dimension}  swept fields, e.g. model.latent_dim: {grid: [2, 4, 8]}
    tune: {...}                TuneSpec
    resources: {cpu, gpu}      per trial

Every error is a SpecError whose text is one line: where (file or --set), key path, problem.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

import models
from models.config import ConfigError, as_dict, config, parse_config
from runner import data as data_sources
from runner.errors import GensweepError
from runner.spec.names import MAX_NAME, is_safe_name
from runner.spec.names import RULE as NAME_RULE
from runner.spec.quality import QualityPlan, plan_quality
from runner.spec.yaml_io import MAX_GRID_POINTS, MAX_SEARCH_VALUES, YamlError, load_yaml


class SpecError(GensweepError, ValueError):
    """A spec problem, as one line naming where it is and what is wrong."""

    def __init__(self, source: str, key: str, message: str):
        super().__init__(f"{source}: {key}: {message}" if key else f"{source}: {message}")
        self.source, self.key, self.message = source, key, message


def _switch_word(value: Any) -> Any:
    # YAML 1.1 reads an unquoted on/off (as the README writes them) as true/false.
    return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


# auto, on or off; `channels_last: on` in a spec file arrives as True and means "on". The JSON
# Schema says so too: an editor reading YAML 1.2 sees "on", gensweep (YAML 1.1) sees true.
Switch = Annotated[
    Literal["auto", "on", "off"], BeforeValidator(_switch_word),
    WithJsonSchema({"enum": ["auto", "on", "off", True, False]}),
]


@config
class TrainSpec:
    epochs: int = Field(10, ge=1, description="passes over the training set")
    batch_size: int = Field(128, ge=1, description="images per optimizer step")
    lr: float = Field(1e-3, gt=0, description="learning rate of the model's optimizers")
    seed: int = Field(0, description="seeds weights, shuffling and noise: same seed, same run")
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: the GPU Ray assigned to the trial, else the CPU"
    )
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 (or fp16) autocast on CUDA; bf16 on a CPU with native bf16, else fp32"
    )
    steps_per_epoch: int | None = Field(
        None, ge=1, description="cap on optimizer steps per epoch (smoke tests); null: all"
    )
    log_every: int = Field(50, ge=1, description="optimizer steps between per-step scalars")
    flip: bool = Field(
        False, description="mirror each training image left-right with probability 1/2, drawn on the device "
        "from the trial's seeded generator (val images never); paired targets turn with their inputs",
    )
    compile: bool = Field(
        False,
        description="torch.compile each network the model trains (needs a C++ compiler on the CPU, "
        "Triton on CUDA); costs compile time at the first steps and the first evaluation: 10-25 s per "
        "model on 2 CPU cores with an empty inductor cache, 1-2 s once cached. On a 2-core CPU the "
        "models ran 0.63-0.94x as fast compiled (BENCHMARKS.md)",
    )
    channels_last: Switch = Field(
        "auto",
        description="conv weights and image batches in channels-last memory layout; auto: on for conv "
        "models on CUDA (cuDNN's tensor-core convolutions work in it), off on the CPU, where oneDNN gained "
        "nothing (VAE conv 0.98x, DCGAN 0.95x: bench/train_throughput.py --options)",
    )


Mode = Literal["min", "max"]


@config
class TuneSpec:
    metric: str | list[str] | None = Field(
        None, description="the metric to optimize, or a list for multi-objective; null: the model's default"
    )
    mode: Mode | list[Mode] | None = Field(
        None, description="min or max, or a list matching a metric list; null: the model's default metric's"
    )
    num_samples: int | None = Field(
        None, ge=1, description="trials to run; null: the grid's size, or 10 for other samplers"
    )
    sampler: Literal["auto", "grid", "tpe", "random", "cmaes", "nsga2"] = Field(
        "auto", description="Optuna sampler; auto: grid when every dimension is a grid, else tpe"
    )
    seed: int = Field(0, description="seed of the sampler")
    scheduler: Literal["none", "asha", "pbt"] = Field(
        "none", description="asha: stop poor trials early; pbt: population-based training"
    )
    grace_period: int = Field(1, ge=1, description="asha: epochs every trial runs at least")
    reduction_factor: float = Field(3.0, gt=1, description="asha: 1/fraction kept at each rung")
    perturbation_interval: int = Field(2, ge=1, description="pbt: epochs between exploit/explore steps")
    max_concurrent: int = Field(0, ge=0, description="trials at once; 0: as many as resources allow")
    max_failures: int = Field(1, ge=0, description="restarts of a failed trial from its last checkpoint")
    pack: int = Field(
        1, ge=1, description="train up to this many trials as one batched model in one process (ae, dae, vae); "
        "each is still its own trial. Members differ only in train.lr and the model's pack fields (vae: beta)",
    )
    pack_wait: float = Field(10.0, gt=0, description="pack: seconds a pack waits for members before it starts")
    loggers: list[Literal["mlflow", "wandb"]] = Field(
        default_factory=list, description="trackers each trial also logs to, one run per trial grouped by the "
        "run's name: its swept values, every metric per epoch, its sample grids. mlflow: MLFLOW_TRACKING_URI, "
        "else <run_dir>/mlflow.db; wandb: offline into <run_dir>/wandb without an API key (WANDB_MODE honoured). "
        "Each needs its extra: pip install 'gensweep[mlflow]' / 'gensweep[wandb]'",
    )


@config
class QualitySpec:
    every: int = Field(1, ge=0, description="epochs between sample-quality measurements; 0: never")
    samples: int = Field(2000, ge=10, description="generated images measured against as many val images")
    fid: bool = Field(
        False, description="also Inception-v3 FID and KID (fid, kid_inception, kid_inception_std), labelled data or not; "
        "needs torch-fidelity's weights file (slow on a CPU: on request)",
    )
    inception_path: str | None = Field(None, description="the Inception weights file; null: the torch hub cache's")


@config
class ResourcesSpec:
    cpu: float = Field(1.0, gt=0, description="CPU cores per trial (also its torch threads)")
    gpu: float = Field(0.0, ge=0, description="GPUs per trial; fractions share one GPU")


SEARCH_KINDS = ("grid", "choice", "uniform", "loguniform", "int")
SWEEPABLE_SECTIONS = ("model", "data", "train")
TOP_LEVEL_KEYS = ("name", "description", "model", "data", "train", "search", "tune", "quality", "resources")
DEFAULT_RANDOM_SAMPLES = 10


@dataclass(frozen=True)
class SearchDim:
    """One swept field: `grid`/`choice` list values; `uniform`/`loguniform`/`int` span [low, high]."""

    kind: str
    values: tuple = ()
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Spec:
    name: str
    source: str  # the file it came from, for messages
    document: dict = field(repr=False)  # the validated YAML document, paths made absolute
    model_name: str
    model: Any  # the model's config dataclass
    data_name: str
    data: Any  # the data source's config dataclass
    train: TrainSpec
    search: dict[str, SearchDim]
    tune: TuneSpec
    quality: QualitySpec
    resources: ResourcesSpec

    @property
    def data_info(self) -> models.DataInfo:
        return data_sources.SOURCES[self.data_name].describe(self.data)

    @property
    def metrics(self) -> list[str]:
        """The optimized metrics: one, or several for a multi-objective search."""
        metric = self.tune.metric or self._default_metric()
        return [metric] if isinstance(metric, str) else list(metric)

    def _default_metric(self) -> str:
        """The model's own metric; on unlabelled data with quality.fid, a classifier-feature
        distance (val/fd, which needs labels) becomes its Inception counterpart (val/fid)."""
        metric = models.entry(self.model_name).default_metric
        inception_counterpart = {"val/fd": "val/fid", "val/kid": "val/kid_inception"}.get(metric)
        if inception_counterpart and self.quality.fid and self.quality.every > 0 and self.data_info.num_classes is None:
            return inception_counterpart
        return metric

    @property
    def modes(self) -> list[str]:
        mode = self.tune.mode
        if mode is None:  # the model's own metric goes its own way; any other metric: minimized
            default = models.entry(self.model_name)
            mode = default.default_mode if self.metrics == [self._default_metric()] else "min"
        return [mode] * len(self.metrics) if isinstance(mode, str) else list(mode)

    @property
    def sampler(self) -> str:
        if self.tune.scheduler == "pbt":
            return "pbt"  # PBT samples its population itself and refuses a search algorithm
        if self.tune.sampler != "auto":
            return self.tune.sampler
        if self.search and all(dim.kind == "grid" for dim in self.search.values()):
            return "grid"
        return "tpe"

    @property
    def grid_size(self) -> int:
        return math.prod(len(dim.values) for dim in self.search.values() if dim.kind == "grid")

    @property
    def num_samples(self) -> int:
        if self.tune.num_samples is not None:
            return self.tune.num_samples
        if not self.search:
            return 1
        return self.grid_size if self.sampler == "grid" else DEFAULT_RANDOM_SAMPLES

    def quality_plan(self) -> QualityPlan:
        """The sample-quality metrics this spec's trials measure, and why any others are not
        (runner.spec.quality); with quality.fid, the Inception weights must be there."""
        return plan_quality(
            self.quality.every, self.quality.fid, self.quality.inception_path,
            labelled=self.data_info.num_classes is not None, generates=models.entry(self.model_name).generates,
        )

    def quality_metrics(self) -> list[str]:
        return self.quality_plan().metrics

    def metric_names(self) -> list[str]:
        reported = models.entry(self.model_name).reported_metrics(self.model)
        names = [f"{split}/{name}" for split in ("train", "val") for name in reported]
        return names + [f"val/{name}" for name in self.quality_metrics()]

    def notes(self) -> list[str]:
        """What the trials will not measure and why, one line each (validate and run print them)."""
        return list(models.entry(self.model_name).notes(self.model))

    def with_values(self, values: Mapping[str, Any]) -> Spec:
        """This spec with swept `values` ({"model.latent_dim": 4}) set: what one trial runs.

        The search space is this spec's own, checked value by value when it was parsed, so this
        validates the fields once: the same work for a grid of 3 values or of 10,000.
        """
        return _with_values(self.document, self.source, self.search, values)

    def flat_config(self) -> dict[str, Any]:
        """Every field of model, data, train as {"section.field": value}, defaults included."""
        flat = {"model.name": self.model_name, "data.name": self.data_name}
        for section, values in (("model", self.model), ("data", self.data), ("train", self.train)):
            for key, value in as_dict(values).items():
                flat[f"{section}.{key}"] = value
        return flat


def load_spec(path: str | Path, overrides: Iterable[str] = ()) -> Spec:
    """Read, override and validate a spec file. Raises SpecError."""
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise SpecError(source, "", "no such spec file")
    try:
        document = load_yaml(path.read_text())
    except YamlError as error:
        raise SpecError(source, "", str(error)) from None
    except UnicodeDecodeError as error:
        raise SpecError(source, "", f"cannot read as YAML: {error}") from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SpecError(source, "", "expected a mapping of keys at the top level")
    document.setdefault("name", path.stem)
    parse_document(document, source)  # errors in the file itself are the file's, named so
    overrides = list(overrides)
    for override in overrides:
        key, value = parse_override(override)
        _set_path(document, _override_path(key), value)
    try:
        spec = parse_document(document, source)
    except SpecError as error:
        raise SpecError(_blame(overrides, error.key), error.key, error.message) from None
    return _with_absolute_paths(spec)


def parse_override(text: str) -> tuple[str, Any]:
    """`model.latent_dim=4` -> ("model.latent_dim", 4): the value typed as YAML would type it."""
    key, separator, value = text.partition("=")
    if not separator or not key.strip():
        raise SpecError(_set_option(text), "", "expected dotted.key=value")
    try:
        return key.strip(), load_yaml(value)
    except YamlError as error:
        raise SpecError(_set_option(text), key.strip(), f"value is not valid YAML ({error})") from None


def parse_document(document: Mapping[str, Any], source: str) -> Spec:
    """Validate a spec document (already loaded from YAML). Raises SpecError."""
    try:
        return _parse(document, source)
    except ConfigError as error:
        raise SpecError(source, error.key, error.message) from None


def trial_spec(document: Mapping[str, Any], source: str, values: Mapping[str, Any]) -> Spec:
    """The spec one trial runs: the sweep's `document`, checked whole (every search value
    included) by the driver before the sweep started, with the trial's sampled `values` set.

    Parses the fields once and the search space for its shape only, so a trial's set-up does
    not grow with the search space. Raises SpecError.
    """
    try:
        search = _parse_search(_section(document, "search"))
    except ConfigError as error:
        raise SpecError(source, error.key, error.message) from None
    return _with_values(document, source, search, values)


def _with_values(
    document: Mapping[str, Any], source: str, search: dict[str, SearchDim], values: Mapping[str, Any]
) -> Spec:
    document = copy.deepcopy(dict(document))
    for path, value in values.items():
        _set_path(document, path.split("."), value)
    try:
        return _parse(document, source, checked_search=search)
    except ConfigError as error:
        raise SpecError(source, error.key, error.message) from None


def _parse(document: Mapping[str, Any], source: str, checked_search: dict[str, SearchDim] | None = None) -> Spec:
    """The spec in `document`; its search space parsed and each of its values checked against its
    field, unless `checked_search` gives that space already checked (a trial's spec)."""
    for key in document:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(str(key), f"unknown key (known keys: {', '.join(TOP_LEVEL_KEYS)})")
    name = document.get("name")
    if not is_safe_name(name):  # it names the run directory: one safe path component
        raise ConfigError("name", f"expected {NAME_RULE}, at most {MAX_NAME} characters, got {name!r}")
    if "description" in document and not isinstance(document["description"], str):
        raise ConfigError("description", "expected text")

    model_section = _section(document, "model")
    model_name = model_section.get("name")
    if model_name is None:
        raise ConfigError("model.name", f"required key is missing (known models: {', '.join(models.names())})")
    if not isinstance(model_name, str):
        raise ConfigError("model.name", f"expected a model name, got {model_name!r}")
    model_params = {k: v for k, v in model_section.items() if k != "name"}
    model_config = models.make_config(model_name, model_params)

    data_section = _section(document, "data")
    data_name = data_section.get("name", "digits")
    if data_name not in data_sources.SOURCES:
        known = ", ".join(data_sources.SOURCES)
        raise ConfigError("data.name", f"unknown data source {data_name!r} (known: {known})")
    data_params = {k: v for k, v in data_section.items() if k != "name"}
    data_config = parse_config(data_sources.SOURCES[data_name].config_class, data_params, "data")

    spec = Spec(
        name=name,
        source=source,
        document=copy.deepcopy(dict(document)),
        model_name=model_name,
        model=model_config,
        data_name=data_name,
        data=data_config,
        train=parse_config(TrainSpec, _section(document, "train"), "train"),
        search=_parse_search(_section(document, "search")) if checked_search is None else checked_search,
        tune=parse_config(TuneSpec, _section(document, "tune"), "tune"),
        quality=parse_config(QualitySpec, _section(document, "quality"), "quality"),
        resources=parse_config(ResourcesSpec, _section(document, "resources"), "resources"),
    )
    _check_model_fits_data(spec)
    if checked_search is None:
        checked = {path: _checked_dim(spec, path, dim) for path, dim in spec.search.items()}
        spec = dataclasses.replace(spec, search=checked)
    _check_search_kinds(spec)
    _check_tune(spec)
    return spec


def _section(document: Mapping[str, Any], key: str) -> dict:
    value = document.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, f"expected a mapping of keys to values, got {value!r}")
    return value


def _parse_search(section: Mapping[str, Any]) -> dict[str, SearchDim]:
    """Each dimension's kind and values as written; _checked_dim checks them against their fields."""
    dims = {}
    for path, body in section.items():
        key = f"search.{path}"
        if not isinstance(body, dict) or len(body) != 1:
            raise ConfigError(key, f"expected one of {{{': ..., '.join(SEARCH_KINDS)}: ...}}, got {_show(body)}")
        kind, arguments = next(iter(body.items()))
        if kind not in SEARCH_KINDS:
            raise ConfigError(key, f"unknown dimension {kind!r} (known: {', '.join(SEARCH_KINDS)})")
        if kind in ("grid", "choice"):
            if not isinstance(arguments, list) or not arguments:
                raise ConfigError(key, f"{kind} expects a non-empty list of values, got {_show(arguments)}")
            if len(arguments) > MAX_SEARCH_VALUES:
                raise ConfigError(key, f"{kind} lists {len(arguments):,} values; the limit is {MAX_SEARCH_VALUES:,}")
            dims[path] = SearchDim(kind, values=tuple(arguments))
            continue
        if (
            not isinstance(arguments, list)
            or len(arguments) != 2
            or not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in arguments)
        ):
            raise ConfigError(key, f"{kind} expects [low, high], got {_show(arguments)}")
        low, high = arguments
        if kind == "int" and not all(isinstance(x, int) for x in arguments):
            raise ConfigError(key, f"int expects whole numbers [low, high], got {arguments!r}")
        if not all(math.isfinite(x) for x in arguments):  # Optuna's sampler overflows on an infinite end
            raise ConfigError(key, f"{kind} expects finite ends, got {arguments!r}")
        if not low < high:
            raise ConfigError(key, f"{kind} expects low < high, got {arguments!r}")
        if kind == "loguniform" and low <= 0:
            raise ConfigError(key, f"loguniform expects low > 0, got {arguments!r}")
        dims[path] = SearchDim(kind, low=low, high=high)
    points = math.prod(len(dim.values) for dim in dims.values() if dim.kind == "grid")
    if points > MAX_GRID_POINTS:
        raise ConfigError("search", f"the grid has {points:,} points (trials); the limit is {MAX_GRID_POINTS:,}")
    return dims


def _checked_dim(spec: Spec, path: str, dim: SearchDim) -> SearchDim:
    """`dim` with each value checked against its field, alone, and kept as the field holds it.

    Kept as the field holds it: a float field's grid [0.5, 1, 4] becomes (0.5, 1.0, 4.0), so every
    trial of one dimension gets the same type (TensorBoard's HParams domain takes one type only).
    """
    key = f"search.{path}"
    section, _, field_name = path.partition(".")
    field_name, _, entry = field_name.partition(".")  # model.loss.ssim: one weight of a mix
    if section not in SWEEPABLE_SECTIONS or not field_name or "." in entry:
        raise ConfigError(key, f"expected section.field with section one of {', '.join(SWEEPABLE_SECTIONS)}")
    if field_name == "name":
        raise ConfigError(key, f"{section}.name cannot be swept: write one spec per {section}")
    fields = as_dict(getattr(spec, section))
    if field_name not in fields:
        raise ConfigError(key, f"{section} has no field {field_name!r} (known: {', '.join(fields)})")
    if entry and not isinstance(fields[field_name], dict):
        raise ConfigError(key, f"{section}.{field_name} is not a mapping, so it has no entry {entry!r}")

    def held(value: Any) -> Any:
        try:
            return _field_value(spec, section, field_name, entry, value)
        except ConfigError as error:
            raise ConfigError(key, f"value {_show(value)} does not fit: {error.message}") from None

    if dim.kind in ("uniform", "loguniform"):
        # These draw floats: ends that fit only as whole numbers mean an int field.
        for end in (dim.low, dim.high):
            try:
                held(float(end))
            except ConfigError:
                held(end)  # an end that does not fit at all says so
                raise ConfigError(
                    key, f"{dim.kind} draws floats, and {path} takes whole numbers: write int: [low, high]"
                ) from None
        return dim
    if dim.kind == "int":
        held(dim.low), held(dim.high)
        return dim
    values = tuple(held(value) for value in dim.values)
    if len(set(map(repr, values))) != len(values):
        raise ConfigError(key, f"{dim.kind} lists a value twice: {_show(list(dim.values))}")
    return dataclasses.replace(dim, values=values)


def _field_value(spec: Spec, section: str, field_name: str, entry: str, value: Any) -> Any:
    """`value` as the field `section.field_name[.entry]` holds it, or ConfigError. Validates that
    section's config alone, and builds the model (shapes only) for a model or data field, the
    only ones that can change its shapes: train fields never do (train.lr reaches the model only
    for its optimizers, which a shape check does not make)."""
    params = {k: v for k, v in _section(spec.document, section).items() if k != "name"}
    if entry:
        mix = params.get(field_name)
        params[field_name] = {**(mix if isinstance(mix, dict) else {}), entry: value}
    else:
        params[field_name] = value
    if section == "model":
        held = models.make_config(spec.model_name, params)
        _check_model_fits_data(dataclasses.replace(spec, model=held))
    elif section == "data":
        held = parse_config(data_sources.SOURCES[spec.data_name].config_class, params, "data")
        _check_model_fits_data(dataclasses.replace(spec, data=held))
    else:
        held = parse_config(TrainSpec, params, "train")
    value = getattr(held, field_name)
    return value[entry] if entry else value


def _check_search_kinds(spec: Spec) -> None:
    kinds = {dim.kind for dim in spec.search.values()}
    if "grid" in kinds and kinds != {"grid"}:
        raise ConfigError("search", "grid dimensions cannot mix with others; use choice with tpe/random")
    if spec.tune.sampler == "grid" and kinds - {"grid"}:
        raise ConfigError("tune.sampler", "grid needs every search dimension to be a grid")
    if "grid" in kinds and spec.tune.sampler not in ("auto", "grid"):
        raise ConfigError("tune.sampler", f"{spec.tune.sampler} cannot walk a grid; write choice instead")


def _check_tune(spec: Spec) -> None:
    known = spec.metric_names()
    for metric in spec.metrics:
        if metric not in known:
            why = ""
            name = metric.removeprefix("val/")
            for reason, names in spec.quality_plan().not_measured.items():
                why = f" (not measured: {reason})" if name in names else why
            why += "".join(f" ({note})" for note in spec.notes() if f"{metric} not measured" in note)
            raise ConfigError(
                "tune.metric", f"{spec.model_name} does not report {metric!r}{why} (it reports: {', '.join(known)})"
            )
    if len(spec.modes) != len(spec.metrics):
        raise ConfigError("tune.mode", f"gives {len(spec.modes)} modes for {len(spec.metrics)} metrics")
    several = len(spec.metrics) > 1
    if several and spec.tune.scheduler != "none":
        raise ConfigError("tune.scheduler", f"{spec.tune.scheduler} ranks trials by one metric; a multi-objective search takes none")
    if spec.tune.sampler == "nsga2" and not several:
        raise ConfigError("tune.sampler", "nsga2 is for multi-objective searches: give tune.metric a list")
    if spec.tune.sampler == "cmaes" and several:
        raise ConfigError("tune.sampler", "cmaes optimizes one metric; use tpe or nsga2")
    if spec.tune.scheduler == "asha" and spec.tune.grace_period > spec.train.epochs:
        raise ConfigError("tune.grace_period", f"exceeds train.epochs ({spec.train.epochs})")
    if spec.tune.scheduler == "pbt":
        if spec.tune.sampler != "auto":
            raise ConfigError("tune.sampler", "pbt draws its population with Ray Tune's own sampling: leave it auto")
        if not spec.search or any(dim.kind == "grid" for dim in spec.search.values()):
            raise ConfigError("search", "pbt needs dimensions to mutate (uniform, loguniform, int or choice), no grid")
    if spec.tune.pack > 1:
        _check_pack(spec)
    spec.quality_plan()  # quality.fid without its weights: refused here, before anything runs


def _check_pack(spec: Spec) -> None:
    if models.entry(spec.model_name).pack_fields is None:
        raise ConfigError("tune.pack", f"{spec.model_name} cannot be packed (packs train one-optimizer models: ae, dae, vae)")
    if spec.tune.scheduler == "pbt":
        raise ConfigError("tune.pack", "pbt moves checkpoints between trials; it does not take packs")
    if spec.train.precision == "fp16":
        raise ConfigError("tune.pack", "fp16 needs a gradient scaler per member; packs take bf16 or fp32")
    # A pack's step is a vmapped functional call of stacked weights: no compiled networks in it,
    # and its weights stay in the stack's own (contiguous) layout.
    if spec.train.compile:
        raise ConfigError("tune.pack", "packs do not compile their step: set train.compile: false")
    if spec.train.channels_last == "on":
        raise ConfigError("tune.pack", "packs keep their weights stacked in one layout: set train.channels_last: auto or off")


def _check_model_fits_data(spec: Spec) -> None:
    try:  # the card's checks: a shape a config cannot know alone (conv on odd sizes), the data's kind
        models.entry(spec.model_name).check(spec.model, spec.data_info)
    except ValueError as error:
        message = str(error)
        key, _, rest = message.partition(": ")
        raise ConfigError(key if rest else "model", rest or message) from None


def _show(value: Any) -> str:
    # A value in a message: a 10,000-value list must not make a 155 KB line.
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _override_path(key: str) -> list[str]:
    # search.model.latent_dim names one dimension whose own key has a dot: keep it whole.
    head, _, rest = key.partition(".")
    return [head, rest] if head == "search" and rest else key.split(".")


def _set_path(document: dict, path: list[str], value: Any) -> None:
    node = document
    for part in path[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[path[-1]] = value


def _blame(overrides: list[str], key: str) -> str:
    """The --set option that an error's key path points at, or all of them."""
    for override in overrides:
        name = override.partition("=")[0].strip()
        if key == name or key.startswith(name + ".") or name.startswith(key + "."):
            return _set_option(override)
    return " ".join(map(_set_option, overrides)) if overrides else "spec"


def _set_option(override: str) -> str:
    # An option as a message names it: a long value (a whole grid) cut, so the message stays a line.
    return "--set " + (override if len(override) <= 60 else override[:57] + "...")


def _with_absolute_paths(spec: Spec) -> Spec:
    # Trials run in their own directories, maybe on other machines: resolve paths here, once.
    document = copy.deepcopy(spec.document)
    changed = False
    for section in ("model", "data", "quality"):
        for key, value in (document.get(section) or {}).items():
            if (key == "path" or key.endswith("_path")) and isinstance(value, str):
                absolute = str(Path(value).expanduser().resolve())
                changed |= absolute != value
                document[section][key] = absolute
    return parse_document(document, spec.source) if changed else spec
