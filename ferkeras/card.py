"""The model card: what a model expects and how well it did, beside every artifact.

Pure JSON and standard library, so the edge runtime can read it without
TensorFlow. ``evaluate``, ``convert`` and ``cam`` read the card instead of
hard-coding input size, colour mode or class order.
"""

from __future__ import annotations

import json
from pathlib import Path

from ferkeras.artifacts import CARD_FILE
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
        raise FerKerasError(
            f"no model card for {model_path}: expected {path} (models trained by ferkeras carry one)"
        )
    card = read_json(path, "model card")
    if not isinstance(card, dict):
        raise FerKerasError(f"{path} is not a ferkeras model card (not a JSON object)")
    for key in ("class_names", "input"):
        if key not in card:
            raise FerKerasError(f"{path} lacks {key!r}; is it a ferkeras model card?")
    return card


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


def phase_records(training: dict):
    """Every (phase name, record) of a card's ``training`` section and of the models it was made from.

    A model is made from its own phases, a soup's ingredients (``soup_of``), the
    model a phase started from (``initialised_from``) and distillation teachers
    (``teachers``); each of those carries its own ``training`` section.
    """
    yield from training.get("phases", {}).items()
    for ingredient in training.get("soup_of", []):
        yield from phase_records(ingredient)
    sources = [training.get("initialised_from")] + list(training.get("teachers", []))
    for source in filter(None, sources):
        yield from phase_records(source.get("training", {}))


def total_compute_seconds(trainings) -> float:
    """Training seconds of everything behind these ``training`` sections, each distinct phase record once.

    Runs that copy one phase 1, or a teacher that shares a restart with the
    soup it teaches, carry identical records: counting them once is what the
    recipe actually cost.
    """
    seen: set[str] = set()
    seconds = 0.0
    for training in trainings:
        for name, record in phase_records(training):
            key = json.dumps([name, record], sort_keys=True)
            if key not in seen:
                seen.add(key)
                seconds += float(record.get("seconds", 0.0))
    return round(seconds, 1)
