"""The model card: what a model expects and how well it did, beside every artifact.

Pure JSON and standard library, so the edge runtime can read it without
TensorFlow. ``evaluate``, ``convert`` and ``cam`` read the card instead of
hard-coding input size, colour mode or class order.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

from ferkeras.artifacts import CARD_FILE, FORMATS, KERAS_FILE, RUNS_DIR
from ferkeras.config import comma_list
from ferkeras.errors import FerKerasError
from ferkeras.io import atomic_write_json, read_json


def card_path(model_path: str | Path) -> Path:
    """The card beside a model file, or inside a run folder."""
    model_path = Path(model_path)
    return (model_path if model_path.is_dir() else model_path.parent) / CARD_FILE


def read_card(model_path: str | Path) -> dict:
    """Read and check the card of ``model_path``; one-line error if it is missing."""
    path = card_path(model_path)
    if not path.is_file():
        raise FerKerasError(f"no model card for {model_path}: expected {path} (models trained by ferkeras carry one)")
    card = read_json(path, "model card")
    if not isinstance(card, dict):
        raise FerKerasError(f"{path} is not a ferkeras model card (not a JSON object)")
    for key in ("class_names", "input"):
        if key not in card:
            raise FerKerasError(f"{path} lacks {key!r}; is it a ferkeras model card?")
    return card


def val_accuracy(card: dict) -> float | None:
    """The model's FER2013 val accuracy without test-time augmentation, as its card records it."""
    value = card.get("metrics", {}).get("val", {}).get("none", {}).get("accuracy")
    return float(value) if value is not None else None


def quality_summary(model_file: str | Path, view: str = "none") -> dict:
    """What the card of ``model_file`` says of its quality, for a reader of its outputs.

    ``view`` is the test-time augmentation the outputs used (``none``, ``flip``
    or ``tencrop``). Returns the model's name, its val scores for that view
    (None where ``ferkeras evaluate`` has not recorded them), how often this file
    agrees with the Keras model it was exported from (1.0 for the Keras file,
    None where no parity was measured), and its temperature calibration, if any.
    """
    model_file = Path(model_file)
    card = read_card(model_file)
    val = card.get("metrics", {}).get("val", {})
    scores = val.get(view) or {}
    artifact = next((a for a in card.get("artifacts", {}).values() if a.get("file") == model_file.name), {})
    parity = artifact.get("parity", {})
    calibration = card.get("calibration") or {}
    return {
        "model": model_file.parent.name,
        "file": model_file.name,
        "view": view,
        "val_data": val.get("data"),
        "val_faces": scores.get("samples"),
        "val_accuracy": scores.get("accuracy"),
        "val_macro_f1": scores.get("macro_f1"),
        "agreement_with_keras": 1.0 if artifact.get("file") == KERAS_FILE else parity.get("top1_agreement"),
        "temperature": calibration.get("temperature"),
        "ece_15_bins": calibration.get("ece_15_bins"),
    }


def write_card(model_path: str | Path, card: dict) -> Path:
    """Write the card beside ``model_path`` atomically; returns its path."""
    path = card_path(model_path)
    atomic_write_json(path, card)
    return path


def update_card(model_path: str | Path, **sections) -> dict:
    """Merge top-level ``sections`` (dicts are merged one level deep) into the card."""
    card = read_card(model_path)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    write_card(model_path, card)
    return card


#: A card's ``training`` section names the models this one was made from under these keys.
LINK_KEYS = ("initialised_from", "teachers", "soup_of")
#: What a card keeps of each model in its lineage (under ``training.ancestors``, each once).
RECORD_KEYS = ("config", "phases", *LINK_KEYS)
#: Config values that name files or folders.
PATH_SETTINGS = (
    ("output_dir",),
    ("data", "root"),
    ("model", "weights"),
    ("phase1", "init_from"),
    ("phase1", "distill_from"),
    ("phase2", "init_from"),
    ("phase2", "distill_from"),
)


def portable_path(path: str) -> str:
    """``path`` without what is particular to one machine: an absolute path becomes
    home-relative (``~/...``) or relative to the working folder, else its last part.
    A comma-separated list (``distill_from``) is made portable part by part."""
    if isinstance(path, str) and "," in path:
        return ",".join(portable_path(part) for part in comma_list(path))
    if not isinstance(path, str) or not Path(path).is_absolute():
        return path
    absolute = Path(path)
    for base, prefix in ((Path.home(), "~/"), (Path.cwd(), "")):
        if absolute.is_relative_to(base) and absolute != base:
            return prefix + str(absolute.relative_to(base))
    return absolute.name


def run_name(path: str | Path) -> str:
    """How a card names a run or model folder (a model file: its folder): relative to the
    runs folder where it lives there."""
    path = Path(path)
    if path.suffix.lower() in FORMATS and path.parent != Path("."):
        path = path.parent
    runs = RUNS_DIR.expanduser()
    absolute = path.expanduser().absolute()
    if absolute.is_relative_to(runs) and absolute != runs:
        return str(absolute.relative_to(runs))
    return portable_path(str(absolute)) if path.is_absolute() else str(path)


def trained_by(card: dict) -> list[str]:
    """The run(s) whose weights a card's model holds: a soup's runs, else the run folder its config wrote."""
    training = card.get("training", {})
    if training.get("soup_of"):
        return list(training["soup_of"])
    output_dir = training.get("config", {}).get("output_dir")
    return [run_name(output_dir)] if output_dir else []


def portable_config(config: dict) -> dict:
    """A resolved config (as a dict) with :func:`portable_path` applied to its path settings."""
    config = copy.deepcopy(config)
    for keys in PATH_SETTINGS:
        node = config
        for key in keys[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict) and isinstance(node.get(keys[-1]), str):
            node[keys[-1]] = portable_path(node[keys[-1]])
    return config


def _flatten(training: dict) -> tuple[dict, dict]:
    """(this model's record, its ancestors by name) from a ``training`` section.

    Reads both the flat form (``ancestors``) and the older nested one, in which
    each link carried its model's whole ``training`` section.
    """
    ancestors = dict(training.get("ancestors", {}))
    record = {key: training[key] for key in ("config", "phases") if key in training}
    if "config" in record:
        record["config"] = portable_config(record["config"])

    def link(source: dict) -> dict:
        if "training" not in source:
            return source
        name = run_name(source["model"])
        add_ancestor(ancestors, name, source["training"])
        return {"phase": source["phase"], "model": name}

    if training.get("initialised_from"):
        record["initialised_from"] = link(training["initialised_from"])
    if training.get("teachers"):
        record["teachers"] = [link(teacher) for teacher in training["teachers"]]
    if training.get("soup_of"):
        names = []
        for ingredient in training["soup_of"]:
            if isinstance(ingredient, dict):
                name = run_name(ingredient["run"])
                add_ancestor(ancestors, name, {k: v for k, v in ingredient.items() if k != "run"})
                ingredient = name
            names.append(ingredient)
        record["soup_of"] = names
    return record, ancestors


def add_ancestor(ancestors: dict, name: str, training: dict) -> None:
    """Add the model ``name`` (its card's ``training`` section) and its own ancestors, each once."""
    record, theirs = _flatten(training)
    for ancestor, entry in theirs.items():
        ancestors.setdefault(ancestor, entry)
    ancestors.setdefault(name, record)


def compact_training(training: dict) -> dict:
    """A ``training`` section in the flat form: links by name, every ancestor once under ``ancestors``."""
    record, ancestors = _flatten(training)
    rest = {key: value for key, value in training.items() if key not in (*RECORD_KEYS, "ancestors")}
    return {**record, **rest, **({"ancestors": ancestors} if ancestors else {})}


def total_compute_seconds(training: dict) -> float:
    """Training seconds of a model and of every model it was made from, each phase once.

    A phase is known by the ``id`` it got when it started, which copies of its
    folder keep: runs that share one phase 1, or a teacher that shares a
    restart with the soup it teaches, then count it once, which is what the
    recipe actually cost. Records from before phases had ids are told apart by
    their content.
    """
    record, ancestors = _flatten(training)
    seen: set[str] = set()
    seconds = 0.0
    for entry in (record, *ancestors.values()):
        for name, phase in entry.get("phases", {}).items():
            key = phase.get("id") or json.dumps([name, phase], sort_keys=True)
            if key not in seen:
                seen.add(key)
                seconds += float(phase.get("seconds", 0.0))
    return round(seconds, 1)
