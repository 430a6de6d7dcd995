"""Training configuration: dataclasses with defaults, YAML in, resolved YAML out.

A run folder's ``config.yaml`` holds the fully resolved configuration, so
``ferkeras train --config RUN/config.yaml`` reproduces that run.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ferkeras.errors import FerKerasError
from ferkeras.images import TTA_MODES
from ferkeras.io import atomic_write_text

# distill_view "online": the teacher scores each augmented training batch instead of
# reading probabilities stored once per face (ferkeras.training.distillation)
ONLINE_VIEW = "online"
DISTILL_VIEWS = (*TTA_MODES, ONLINE_VIEW)

#: The choices of each setting that takes a name; the CLI offers the same lists.
STEMS = ("imagenet", "small", "small_pool")
ATTENTIONS = ("cbam", "none")
CLASS_WEIGHTINGS = ("none", "inverse", "sqrt-inverse")
MONITORS = ("val_macro_f1", "val_accuracy", "val_loss")
PRECISIONS = ("auto", "float32", "mixed_bfloat16")
STRATEGIES = ("default", "mirrored", "multiworker")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULES = ("cosine", "plateau", "constant")
TRAINABLES = ("all", "attention_and_head")
AVERAGE_BATCHNORM = ("reestimate", "average")


#: The data root every command uses unless told otherwise (``$FERKERAS_DATA`` overrides it).
DEFAULT_DATA = os.environ.get("FERKERAS_DATA", "../shared/fer2013")


@dataclass
class DataConfig:
    """Where the faces come from and the size the model sees them at."""

    root: str = DEFAULT_DATA
    image_size: int = 48  # faces are resized to this square size
    crop: int = 0  # >0: random crops of this size in training, centre crop otherwise
    channels: int = 1  # 1 = grayscale; 3 = gray replicated to RGB (ImageNet weights)
    val_fraction: float = 0.1  # used only when the data has no val split
    skip_bad: bool = False  # skip unreadable images / bad CSV rows with a warning

    @property
    def input_size(self) -> int:
        """Side of the square the model takes as input."""
        return self.crop or self.image_size


@dataclass
class AugmentConfig:
    """Albumentations strengths for the training split; 0 disables a transform."""

    flip: float = 0.5  # probability of a horizontal flip
    affine: float = 0.1  # shift/scale fraction (rotation = 100x this, degrees)
    brightness_contrast: float = 0.2  # brightness and contrast limit
    dropout: float = 0.5  # probability of coarse dropout (one to two holes)
    blur: float = 0.1  # probability of a Gaussian blur


@dataclass
class ModelConfig:
    """Architecture switches passed to :func:`ferkeras.build_model`."""

    attention: str = "cbam"  # cbam | none
    stem: str = "small_pool"  # imagenet | small | small_pool
    width: float = 1.0  # channel multiplier on 64-128-256-512
    dropout: float = 0.3
    weights: str | None = None  # None | imagenet | path to a safetensors file
    bn_momentum: float = 0.9


@dataclass
class PhaseConfig:
    """One training phase: what trains, with which optimiser and for how long."""

    epochs: int = 10
    trainable: str = "all"  # all | attention_and_head
    optimizer: str = "adamw"  # adamw | sgd (Nesterov momentum 0.9)
    learning_rate: float = 1e-3
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | plateau | constant
    warmup_epochs: float = 1.0
    patience: int = 10  # early stopping on the monitored metric; 0 disables
    freeze_batchnorm: bool = False  # keep BatchNorm layers in inference mode
    # >0: the phase's model is the mean of the weights after its last N epochs
    # (stochastic weight averaging)
    average_last: int = 0
    # the averaged model's BatchNorm statistics: "reestimate" them on the training
    # faces (the SWA paper's way), or "average" the snapshots' own statistics with
    # the weights (as well or better in 10 of 12 comparisons in docs/recipe.md)
    average_batchnorm: str = "reestimate"
    # >0: blend pairs of training faces and their labels, proportion ~ Beta(a, a);
    # with both set, each batch uses one of the two (ferkeras.data.mixing)
    mixup: float = 0.0
    cutmix: float = 0.0
    # the teacher whose predictions are blended into the targets: (1 - distill_weight)
    # * label + distill_weight * teacher (ferkeras.training.distillation). A model
    # (folder or file; flip-averaged), or member folders, comma-separated (the mean
    # of their stored train probabilities for distill_view); with distill_view
    # "online", models, comma-separated, that score each augmented batch as the
    # student sees it
    distill_from: str | None = None
    distill_weight: float = 0.5
    distill_view: str = "flip"
    # a .keras model (file or folder) the phase starts from instead of the previous
    # phase's result (phase 2) or a new model (phase 1): fine-tuning a finished
    # model, e.g. a weight soup, with another schedule or on other data
    init_from: str | None = None
    # the phase's own seed (data order, augmentation, new weights); None uses the
    # run's ``seed``. Set it to restart phase 2 with another draw on a copied phase 1
    # (the run's ``seed`` cannot change once phase 1 has run)
    seed: int | None = None


@dataclass
class ExportConfig:
    """How ``ferkeras convert`` quantizes this model to int8 (its card records what was used)."""

    # TFLite op types the int8 model computes in float32: CBAM's attention (MUL,
    # LOGISTIC, MEAN, REDUCE_MAX, CONCATENATION, SUM) and the residual ADDs. Keeping
    # them in float cost the default's first step 0.42 pp against 1.34 pp with MUL alone,
    # both with untrimmed calibration (docs/recipe.md); comma-separated, "" for a
    # fully int8 model.
    int8_float_ops: str = "MUL,ADD,LOGISTIC,MEAN,REDUCE_MAX,CONCATENATION,SUM"
    calibration_samples: int = 500  # training faces that calibrate the int8 ranges
    # Leave out faces above this per-layer quantile of activation maxima (1.0: none);
    # why in ferkeras/export/calibration.py.
    calibration_trim: float = 0.95


@dataclass
class TrainConfig:
    """Everything ``ferkeras train`` needs; one YAML file holds it."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    phase1: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=5, trainable="attention_and_head", learning_rate=1e-3))
    phase2: PhaseConfig = field(default_factory=lambda: PhaseConfig(epochs=20, learning_rate=1e-4))
    export: ExportConfig = field(default_factory=ExportConfig)
    batch_size: int = 64
    label_smoothing: float = 0.1
    class_weighting: str = "sqrt-inverse"  # none | inverse | sqrt-inverse
    monitor: str = "val_macro_f1"  # val_macro_f1 | val_accuracy | val_loss
    # auto: mixed_bfloat16 where the hardware computes in bfloat16, else float32
    # (ferkeras.training.precision); a resumed phase keeps its checkpoint's precision
    precision: str = "auto"  # auto | float32 | mixed_bfloat16
    strategy: str = "default"  # default | mirrored (all local GPUs) | multiworker (machines in TF_CONFIG)
    seed: int = 1337
    output_dir: str = "runs/default"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        """Write the resolved config atomically."""
        atomic_write_text(path, self.to_yaml())


#: Named starting points; ``smoke`` trains in seconds on tiny data (tests, CI).
PRESETS: dict[str, dict] = {
    "default": {},
    "smoke": {
        "data": {"image_size": 32},
        "model": {"width": 0.125, "stem": "small_pool"},
        "phase1": {"epochs": 1, "warmup_epochs": 0},
        "phase2": {"epochs": 1, "warmup_epochs": 0},
        "batch_size": 16,
        "precision": "float32",  # the same numbers on every machine
        "output_dir": "runs/smoke",
    },
}


def _build(cls, values: dict, where: str):
    if not isinstance(values, dict):
        raise FerKerasError(f"config: {where or 'top level'} must be a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise FerKerasError(f"config: unknown key {where + str(key)!r}; valid keys: {', '.join(known)}")
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if value is not None and not isinstance(value, dict):
                raise FerKerasError(
                    f"config: {where + key} is a section (keys: {', '.join(f.name for f in dataclasses.fields(hint))}), "
                    f"not a value: got {value!r}; set one of its keys, e.g. {where + key}.{dataclasses.fields(hint)[0].name}=..."
                )
            current = dataclasses.asdict(known[key].default_factory())
            current.update(value or {})
            kwargs[key] = _build(hint, current, f"{where}{key}.")
        else:
            kwargs[key] = _coerce(value, hint, where + key)
    return cls(**kwargs)


def _coerce(value, hint, name: str):
    args = typing.get_args(hint)
    allows_none = type(None) in args
    if value is None or (allows_none and isinstance(value, str) and value.lower() in {"none", "null", ""}):
        if allows_none:
            return None
        raise FerKerasError(f"config: {name} must not be empty")
    target = next((t for t in args if t is not type(None)), hint)
    if isinstance(value, (dict, list, tuple, set)):
        raise FerKerasError(f"config: {name} must be {target.__name__}, got {value!r}")
    try:
        if target is bool and isinstance(value, str):
            if value.lower() not in {"true", "false", "1", "0", "yes", "no"}:
                raise ValueError
            return value.lower() in {"true", "1", "yes"}
        if target is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if target in (int, float) and isinstance(value, bool):
            raise ValueError
        result = target(value)
        if target is float and not math.isfinite(result):
            raise FerKerasError(f"config: {name} must be a finite number, got {value!r}")
        return result
    except (TypeError, ValueError, OverflowError):
        raise FerKerasError(f"config: {name} must be {target.__name__}, got {value!r}") from None


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def parse_override(item: str) -> dict:
    """Turn ``"phase2.learning_rate=1e-4"`` into ``{"phase2": {"learning_rate": "1e-4"}}``."""
    if "=" not in item:
        raise FerKerasError(f"--set {item!r}: expected KEY=VALUE, e.g. phase2.epochs=30")
    key, value = item.split("=", 1)
    try:
        parsed = yaml.safe_load(value) if value else None
    except yaml.YAMLError:
        parsed = value  # not YAML (e.g. "a:b["): take it as the string it is
    node: dict = {}
    out = node
    parts = key.strip().split(".")
    for part in parts[:-1]:
        node[part] = {}
        node = node[part]
    node[parts[-1]] = parsed
    return out


def _read_yaml(path: Path, seen: tuple[Path, ...]) -> dict:
    """A config file's values over those of the file its ``base:`` key names (relative to it)."""
    if not path.is_file():
        raise FerKerasError(f"config file not found: {path}" + (f" (the base of {seen[-1]})" if seen else ""))
    if path.resolve() in seen:
        raise FerKerasError(f"config file {path}: its base: chain comes back to itself")
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise FerKerasError(f"config file {path} is not valid YAML: {exc}".splitlines()[0]) from None
    except UnicodeDecodeError:
        raise FerKerasError(f"config file {path} is not a text (YAML) file") from None
    if not isinstance(loaded, dict):
        raise FerKerasError(
            f"config file {path}: the top level must be a mapping of keys (data:, model:, phase1:, ...), "
            f"got a {type(loaded).__name__}"
        )
    base = loaded.pop("base", None)
    if base is None:
        return loaded
    if not isinstance(base, str) or not base:
        raise FerKerasError(f"config file {path}: base must name another config file, got {base!r}")
    return _merge(_read_yaml(path.parent / base, (*seen, path.resolve())), loaded)


def load_config(path: str | Path | None = None, preset: str = "default", overrides: typing.Iterable[dict] = ()) -> TrainConfig:
    """Resolve preset, then YAML file (with its ``base:`` files), then overrides (later wins)."""
    if preset not in PRESETS:
        raise FerKerasError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dataclasses.asdict(TrainConfig())
    values = _merge(values, PRESETS[preset])
    if path is not None:
        values = _merge(values, _read_yaml(Path(path), ()))
    for override in overrides:
        if not isinstance(override, dict):
            raise FerKerasError(f"config override must be a mapping, got {override!r}")
        values = _merge(values, override)
    config = _build(TrainConfig, values, "")
    validate(config)
    return config


def validate(config: TrainConfig) -> None:
    """Reject values that would only fail later, deep inside TensorFlow."""
    choices = {
        "model.attention": (config.model.attention, ATTENTIONS),
        "model.stem": (config.model.stem, STEMS),
        "class_weighting": (config.class_weighting, CLASS_WEIGHTINGS),
        "monitor": (config.monitor, MONITORS),
        "precision": (config.precision, PRECISIONS),
        "strategy": (config.strategy, STRATEGIES),
        "data.channels": (config.data.channels, (1, 3)),
    }
    for phase in ("phase1", "phase2"):
        p = getattr(config, phase)
        choices[f"{phase}.optimizer"] = (p.optimizer, OPTIMIZERS)
        choices[f"{phase}.schedule"] = (p.schedule, SCHEDULES)
        choices[f"{phase}.trainable"] = (p.trainable, TRAINABLES)
        choices[f"{phase}.average_batchnorm"] = (p.average_batchnorm, AVERAGE_BATCHNORM)
        choices[f"{phase}.distill_view"] = (p.distill_view, DISTILL_VIEWS)
        if p.epochs < 0 or p.learning_rate <= 0:
            raise FerKerasError(f"config: {phase}.epochs must be >= 0 and learning_rate > 0")
        _check_range(f"{phase}.weight_decay", p.weight_decay, 0, None)
        _check_range(f"{phase}.warmup_epochs", p.warmup_epochs, 0, None)
        _check_range(f"{phase}.patience", p.patience, 0, None)
        if not 0 <= p.average_last <= p.epochs:
            raise FerKerasError(f"config: {phase}.average_last must be between 0 and {phase}.epochs ({p.epochs})")
        if p.mixup < 0 or p.cutmix < 0:
            raise FerKerasError(f"config: {phase}.mixup and {phase}.cutmix must be >= 0 (0 = off)")
        if not 0 <= p.distill_weight <= 1:
            raise FerKerasError(f"config: {phase}.distill_weight must be between 0 and 1")
        if p.average_last and p.patience:
            raise FerKerasError(
                f"config: {phase}.average_last needs {phase}.patience=0 "
                "(early stopping could end the phase before the epochs it averages)"
            )
    for name, (value, allowed) in choices.items():
        if value not in allowed:
            raise FerKerasError(f"config: {name}={value!r} is not one of {', '.join(map(str, allowed))}")
    if config.data.crop and config.data.crop > config.data.image_size:
        raise FerKerasError(f"config: data.crop={config.data.crop} is larger than data.image_size={config.data.image_size}")
    if config.batch_size < 1 or config.data.image_size < 16:
        raise FerKerasError("config: batch_size must be >= 1 and data.image_size >= 16")
    _check_range("data.crop", config.data.crop, 0, None)
    _check_range("data.val_fraction", config.data.val_fraction, 0, 1, open_ends=True)
    _check_range("label_smoothing", config.label_smoothing, 0, 1, open_ends=(False, True))
    _check_range("model.width", config.model.width, 0, None, open_ends=(True, False))
    _check_range("model.dropout", config.model.dropout, 0, 1, open_ends=(False, True))
    _check_range("model.bn_momentum", config.model.bn_momentum, 0, 1, open_ends=(False, True))
    parse_float_ops(config.export.int8_float_ops)
    _check_range("export.calibration_samples", config.export.calibration_samples, 1, None)
    _check_range("export.calibration_trim", config.export.calibration_trim, 0.5, 1.0)
    for item in dataclasses.fields(config.augment):
        _check_range(f"augment.{item.name}", getattr(config.augment, item.name), 0, 1)


def comma_list(text) -> list[str]:
    """The non-empty, stripped parts of a comma-separated setting (``distill_from``, ``int8_float_ops``)."""
    return [part.strip() for part in str(text).split(",") if part.strip()]


def parse_float_ops(text: str, name: str = "config: export.int8_float_ops") -> tuple[str, ...]:
    """``"MUL,MEAN"`` -> ``("MUL", "MEAN")``; TFLite op types are upper-case names."""
    ops = tuple(op.upper() for op in comma_list(text))
    bad = [op for op in ops if not re.fullmatch(r"[A-Z][A-Z0-9_]*", op)]
    if bad:
        raise FerKerasError(f"{name}: {', '.join(bad)} is not a TFLite op type (e.g. MUL, MEAN, ADD)")
    return ops


def _check_range(name: str, value, low, high, open_ends: bool | tuple[bool, bool] = False) -> None:
    """Refuse ``value`` outside ``low..high`` (None: unbounded); ``open_ends`` excludes an end."""
    low_open, high_open = (open_ends, open_ends) if isinstance(open_ends, bool) else open_ends
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        bounds = f"{'(' if low_open else '['}{low if low is not None else '-inf'}, {high if high is not None else 'inf'}{')' if high_open else ']'}"
        raise FerKerasError(f"config: {name} must be in {bounds}, got {value}")
