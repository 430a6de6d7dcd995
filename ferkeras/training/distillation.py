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

With ``distill_view: online`` the teacher is one or more models (comma-separated)
that score every augmented training batch as the student sees it (the same crop,
flip and occlusion), instead of one fixed average per face: "consistent teaching"
(Beyer et al., 2022), at the price of the teachers' inference in every step.

Why: the teacher's flip and ten-crop averages, and ensembles, score above a
single pass; a student trained on those soft targets can learn part of that gain.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import cv2
import numpy as np

from ferkeras.artifacts import FOLDER_PREFERENCE, LIVE_PREFERENCE, resolve_model_file
from ferkeras.config import ONLINE_VIEW, PhaseConfig, comma_list
from ferkeras.data.sources import Split
from ferkeras.errors import FerKerasError
from ferkeras.evaluation.members import MEMBER_FILE, is_member, member_probabilities
from ferkeras.io import atomic_path
from ferkeras.labels import CLASS_NAMES, NUM_CLASSES

log = logging.getLogger(__name__)
TEACHER_FILE = "teacher_probs.npy"


def member_folders(source: str) -> list[Path] | None:
    """The ensemble member folders ``distill_from`` names, or None when it names a model."""
    parts = [Path(part).expanduser() for part in comma_list(source)]
    members = [part for part in parts if is_member(part)]
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
    """(N, 7) float32 training targets for ``split``, or None when ``settings`` has no
    stored teacher (none at all, or an online one: :func:`online_teacher`)."""
    if not settings.distill_from or settings.distill_view == ONLINE_VIEW:
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


def _load_teacher(source: str | Path, phase: str, prefer: tuple[str, ...] = FOLDER_PREFERENCE, threads: int | None = None):
    from ferkeras.inference.predictor import Predictor

    try:
        teacher = Predictor.load(resolve_model_file(source, prefer), threads=threads)
    except FerKerasError as exc:
        raise FerKerasError(f"config: {phase}.distill_from: {exc}") from None
    if teacher.class_names != list(CLASS_NAMES):
        raise FerKerasError(
            f"config: {phase}.distill_from: {teacher.path} predicts {teacher.class_names}, not {list(CLASS_NAMES)}"
        )
    return teacher


class OnlineTeacher:
    """The mean probabilities of several models for a batch of student inputs.

    Each teacher gets the student's input resized to its own input size (bilinear)
    and its own channel count. Safe to call from several tf.data threads: each
    thread runs its own copies on one CPU thread, since a TFLite interpreter is not
    thread-safe and tf.data already runs batches side by side.
    """

    def __init__(self, sources: list[str], phase: str = "phase"):
        self.sources = sources
        self.phase = phase
        self._local = threading.local()
        self._lock = threading.Lock()
        self._spare = self._predictors()  # loaded here, so a bad source fails before training starts

    def _predictors(self):
        # The int8 file where there is one: the teachers' inference is paid in every step.
        return [_load_teacher(source, self.phase, LIVE_PREFERENCE, threads=1) for source in self.sources]

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        if not hasattr(self._local, "teachers"):
            with self._lock:
                teachers, self._spare = self._spare, None
            self._local.teachers = teachers or self._predictors()
        probs = [_run_teacher(teacher, batch) for teacher in self._local.teachers]
        return np.mean(probs, axis=0).astype(np.float32)


def _run_teacher(teacher, batch: np.ndarray) -> np.ndarray:
    size = teacher.input_size
    if batch.shape[1] != size:
        batch = np.stack([cv2.resize(image, (size, size), interpolation=cv2.INTER_LINEAR) for image in batch])
        batch = batch.reshape(len(batch), size, size, -1)
    if batch.shape[-1] != teacher.channels:
        batch = np.repeat(batch.mean(axis=-1, keepdims=True), teacher.channels, axis=-1)
    probs = teacher.predict_prepared(batch)
    return probs / probs.sum(axis=1, keepdims=True)  # an int8 output is quantized in steps of 1/256


def online_teacher_sources(settings: PhaseConfig, phase: str) -> list[str]:
    """``distill_from``'s models for ``distill_view: online``, each checked to resolve to a model file."""
    if member_folders(settings.distill_from):
        raise FerKerasError(
            f"config: {phase}.distill_view {ONLINE_VIEW} needs models in {phase}.distill_from: "
            "member folders hold probabilities stored once per face"
        )
    sources = comma_list(settings.distill_from)
    for source in sources:
        try:
            resolve_model_file(source, LIVE_PREFERENCE)
        except FerKerasError as exc:
            raise FerKerasError(f"config: {phase}.distill_from: {exc}") from None
    return sources


def online_teacher(settings: PhaseConfig, phase: str) -> OnlineTeacher | None:
    """The models that score each training batch, when ``settings`` asks for ``distill_view: online``."""
    if not settings.distill_from or settings.distill_view != ONLINE_VIEW:
        return None
    sources = online_teacher_sources(settings, phase)
    teacher = OnlineTeacher(sources, phase)
    log.info(f"[{phase}] teacher: {len(sources)} model(s) scoring each augmented batch ({', '.join(sources)})")
    return teacher


def teacher_probabilities(source: str | Path, split: Split, cache: Path, phase: str) -> np.ndarray:
    """The teacher's flip-averaged probabilities for every face of ``split``, cached in ``cache``."""
    if cache.is_file():
        try:
            probs = np.load(cache)
        except (OSError, ValueError, EOFError):
            probs = None  # a damaged cache is recomputed
        if probs is not None and probs.shape == (len(split), NUM_CLASSES) and np.isfinite(probs).all():
            return probs
    teacher = _load_teacher(source, phase)
    log.info(f"[{phase}] teacher {teacher.path}: scoring {len(split):,} training faces (flip-averaged)")
    probs = teacher.predict(split.images, flip=True).astype(np.float32)
    with atomic_path(cache) as tmp:
        np.save(tmp, probs)
    return probs
