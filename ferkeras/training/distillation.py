"""Soft training targets from a teacher (knowledge distillation).

A phase with ``distill_from`` trains on ``(1 - distill_weight) * one-hot label +
distill_weight * teacher probabilities`` instead of the one-hot label. The
teacher is either

* any model ``Predictor.load`` reads (e.g. the shipped weight soup): its
  probabilities are the mean over each face and its mirror image, computed once
  per phase on the unaugmented training faces and kept in the phase folder, so a
  resumed phase does not rerun the teacher; or
* ensemble members (``ferkeras members`` folders, comma-separated): the mean of
  their stored train probabilities for ``distill_view``, checked against this
  run's training faces by checksum. No teacher model needs to exist any more.

Why: the teacher's flip and ten-crop averages, and ensembles, score above a
single pass; a student trained on those soft targets can learn part of that gain.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ferkeras.artifacts import resolve_model_file
from ferkeras.config import PhaseConfig
from ferkeras.data.sources import Split
from ferkeras.errors import FerKerasError
from ferkeras.evaluation.members import MEMBER_FILE, member_probabilities
from ferkeras.io import atomic_path
from ferkeras.labels import CLASS_NAMES, NUM_CLASSES

log = logging.getLogger(__name__)
TEACHER_FILE = "teacher_probs.npy"


def member_folders(source: str) -> list[Path] | None:
    """The ensemble member folders ``distill_from`` names, or None when it names a model."""
    parts = [Path(part.strip()).expanduser() for part in str(source).split(",") if part.strip()]
    members = [part for part in parts if (part / MEMBER_FILE).is_file()]
    if not members:
        return None
    if len(members) < len(parts):
        missing = next(part for part in parts if part not in members)
        raise FerKerasError(f"distill_from: {missing} is not an ensemble member folder (no {MEMBER_FILE})")
    return members


def members_probabilities(members: list[Path], view: str, split: Split) -> np.ndarray:
    """The mean of the members' stored ``train`` probabilities for ``view``, checked against ``split``."""

    def faces_at(size: int) -> Split:
        if size != split.images.shape[1]:
            raise FerKerasError(f"a member was stored on {size} px faces; this run trains on {split.images.shape[1]} px faces")
        return split

    return np.mean([member_probabilities(folder, "train", view, faces_at)[0] for folder in members], axis=0)


def distillation_targets(settings: PhaseConfig, split: Split, phase_dir: Path, phase: str) -> np.ndarray | None:
    """(N, 7) float32 training targets for ``split``, or None when ``settings`` has no teacher."""
    if not settings.distill_from:
        return None
    members = member_folders(settings.distill_from)
    if members:
        try:
            teacher = members_probabilities(members, settings.distill_view, split)
        except FerKerasError as exc:
            raise FerKerasError(f"config: {phase}.distill_from: {exc}") from None
        log.info(f"[{phase}] teacher: the mean of {len(members)} member(s), view {settings.distill_view}")
    else:
        teacher = teacher_probabilities(settings.distill_from, split, phase_dir / TEACHER_FILE, phase)
    onehot = np.eye(NUM_CLASSES, dtype=np.float32)[split.labels]
    return ((1.0 - settings.distill_weight) * onehot + settings.distill_weight * teacher).astype(np.float32)


def teacher_probabilities(source: str | Path, split: Split, cache: Path, phase: str) -> np.ndarray:
    """The teacher's flip-averaged probabilities for every face of ``split``, cached in ``cache``."""
    if cache.is_file():
        try:
            probs = np.load(cache)
        except (OSError, ValueError, EOFError):
            probs = None  # a damaged cache is recomputed
        if probs is not None and probs.shape == (len(split), NUM_CLASSES) and np.isfinite(probs).all():
            return probs
    from ferkeras.inference.predictor import Predictor

    try:
        teacher = Predictor.load(resolve_model_file(source))
    except FerKerasError as exc:
        raise FerKerasError(f"config: {phase}.distill_from: {exc}") from None
    if teacher.class_names != list(CLASS_NAMES):
        raise FerKerasError(
            f"config: {phase}.distill_from: {teacher.path} predicts {teacher.class_names}, not {list(CLASS_NAMES)}"
        )
    log.info(f"[{phase}] teacher {teacher.path}: scoring {len(split):,} training faces (flip-averaged)")
    probs = teacher.predict(split.images, flip=True).astype(np.float32)
    with atomic_path(cache) as tmp:
        np.save(tmp, probs)
    return probs
