"""Soft training targets from a teacher model (knowledge distillation).

A phase with ``distill_from`` trains on ``(1 - distill_weight) * one-hot label +
distill_weight * teacher probabilities`` instead of the one-hot label. The
teacher is any model ``Predictor.load`` reads (e.g. the shipped weight soup);
its probabilities are the mean over each face and its mirror image, computed
once per phase on the unaugmented training faces and kept in the phase folder,
so a resumed phase does not rerun the teacher. Why: the teacher's flip and
ten-crop averages score ~1 pp above its single pass; a student trained on
those soft targets can learn part of that gain into one pass.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ferkeras.artifacts import resolve_model_file
from ferkeras.config import PhaseConfig
from ferkeras.data.sources import Split
from ferkeras.errors import FerKerasError
from ferkeras.io import atomic_path
from ferkeras.labels import CLASS_NAMES, NUM_CLASSES

log = logging.getLogger(__name__)
TEACHER_FILE = "teacher_probs.npy"


def distillation_targets(settings: PhaseConfig, split: Split, phase_dir: Path, phase: str) -> np.ndarray | None:
    """(N, 7) float32 training targets for ``split``, or None when ``settings`` has no teacher."""
    if not settings.distill_from:
        return None
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
