"""Ensemble members as small files: a model's averaged probabilities on whole splits.

A member folder holds, per split and test-time view, the model's probabilities
for every face as float16 (``train_flip.npy``: 28,709 x 7, ~400 KB) and
``member.json`` (the model, its file's SHA-256, its card's essentials, the data
checksum each file was computed on, val metrics per view). Such folders are
small enough to commit, so an ensemble (a teacher for distillation) is the mean
of members that each finished on some machine, whatever happened to the
machines and their caches.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from ferkeras.artifacts import resolve_model
from ferkeras.card import portable_path, run_name, trained_by
from ferkeras.data.sources import load_split
from ferkeras.errors import FerKerasError
from ferkeras.evaluation.metrics import classification_metrics
from ferkeras.evaluation.tta import predict_with_tta
from ferkeras.images import TTA_MODES
from ferkeras.inference.predictor import Predictor
from ferkeras.io import atomic_path, atomic_write_json, read_json

log = logging.getLogger(__name__)
MEMBER_FILE = "member.json"


def _probability_file(folder: Path, split: str, view: str) -> Path:
    return folder / f"{split}_{view}.npy"


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def store_member(model, data, output, splits=("val", "train"), views=("none", "flip", "tencrop")) -> dict:
    """Write ``output``'s probability files for each split and view, skipping those already there.

    Each file is written as soon as it is computed, so an interrupted run resumes
    where it stopped; a folder started by another model file is refused. Returns
    the member record.
    """
    predictor = Predictor.load(resolve_model(model))
    predictor.require_fer_classes()
    output = Path(output)
    record_path = output / MEMBER_FILE
    record = read_json(record_path, "member record") if record_path.is_file() else {}
    model_sha256 = _file_sha256(predictor.path)
    name = run_name(predictor.path)
    known = record.get("model_sha256")
    if record.get("files") and (known != model_sha256 if known else record.get("model") != name):
        # a model path can come to hold another model (a shipped folder replaced): never mix two models' files
        raise FerKerasError(f"{output} holds probabilities of another model ({record.get('model')}): choose a new --output")
    record.update(
        model=name,
        model_sha256=model_sha256,
        trained_by=trained_by(predictor.card),
        data=portable_path(str(data)),
        architecture=predictor.card.get("architecture", {}),
        training_compute_seconds=predictor.card.get("training", {}).get("compute_seconds"),
    )
    record.setdefault("files", {})
    views = [v for v in views if v != "tencrop" or predictor.crop]  # ten crops need a crop-trained model
    for split in splits:
        faces = load_split(data, split, predictor.face_resize)
        checksum = faces.checksum()
        for view in views:
            target = _probability_file(output, split, view)
            done = record["files"].get(target.name, {})
            if target.is_file() and done.get("data_sha256") == checksum:
                continue
            probabilities = predict_with_tta(predictor, faces.images, view)
            with atomic_path(target) as tmp:
                np.save(tmp, probabilities.astype(np.float16))
            entry = {
                "split": split,
                "view": view,
                "faces": len(faces),
                "face_size": predictor.face_resize,
                "data_sha256": checksum,
            }
            if split == "val":
                metrics = classification_metrics(faces.labels, probabilities)
                entry.update(accuracy=metrics["accuracy"], macro_f1=metrics["macro_f1"])
            record["files"][target.name] = entry
            atomic_write_json(record_path, record)
            log.info(f"{target}: {len(faces)} faces" + (f", accuracy {entry['accuracy']:.4f}" if "accuracy" in entry else ""))
    return record


def is_member(path) -> bool:
    """Whether ``path`` is an ensemble member folder (``ferkeras members`` wrote it)."""
    return path is not None and (Path(path) / MEMBER_FILE).is_file()


def split_loader(data, split: str, skip_bad: bool = False):
    """``faces_at(size)``: ``split`` of ``data`` at that face size, decoded once per size."""
    loaded: dict = {}

    def faces_at(size: int):
        if size not in loaded:
            loaded[size] = load_split(data, split, size, skip_bad)
        return loaded[size]

    return faces_at


def member_probabilities(folder: str | Path, split: str, view: str, faces_at):
    """A member's stored float32 probabilities for ``split``/``view`` and the faces they were checked against.

    ``faces_at(size)`` gives the split's faces at that face size; the stored
    file must have been computed on exactly these faces (data checksum).
    """
    folder = Path(folder)
    record = read_json(folder / MEMBER_FILE, "member record")
    name = _probability_file(folder, split, view).name
    entry = record.get("files", {}).get(name)
    if entry is None or not (folder / name).is_file():
        raise FerKerasError(
            f"{folder} has no {split} probabilities with view {view!r}: run ferkeras members with --split {split}"
        )
    faces = faces_at(int(entry["face_size"]))
    if entry.get("data_sha256") != faces.checksum():
        raise FerKerasError(f"{folder / name} was computed on other {split} faces than these (data checksum differs)")
    return np.load(folder / name).astype(np.float32), faces


def score_ensemble(members, data, split: str = "val", view: str = "flip") -> dict:
    """Metrics of the mean of the members' stored probabilities on ``split``."""
    if view not in TTA_MODES:
        raise FerKerasError(f"view must be one of {', '.join(TTA_MODES)}, got {view!r}")
    if not members:
        raise FerKerasError("an ensemble needs at least one member folder")
    faces_at = split_loader(data, split)
    loaded = [member_probabilities(m, split, view, faces_at) for m in members]
    return classification_metrics(loaded[0][1].labels, np.mean([probabilities for probabilities, _ in loaded], axis=0))
