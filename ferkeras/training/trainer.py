"""``ferkeras train``: check the inputs, prepare the run folder, run phase 1 and/or phase 2.

The run folder's layout: :mod:`ferkeras.training.run_folder`; one phase:
:mod:`ferkeras.training.phase`. Rerunning the same command after an interruption
continues from the last finished epoch with the same optimizer state and schedule.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import keras
import tensorflow as tf

from ferkeras.artifacts import CONFIG_FILE, resolve_model_file
from ferkeras.config import ONLINE_VIEW, TrainConfig
from ferkeras.data.sources import load_dataset
from ferkeras.errors import FerKerasError
from ferkeras.models.files import check_keras_file
from ferkeras.training.distillation import member_folders, members_probabilities, online_teacher_sources
from ferkeras.training.multiworker import is_chief, multiworker_strategy, worker_folder
from ferkeras.training.phase import resolve_init_path, run_phase
from ferkeras.training.precision import native_bfloat16, resolve_precision
from ferkeras.training.run_folder import PHASES, check_config, is_run_folder, remove_run

log = logging.getLogger(__name__)


def _strategy(config: TrainConfig):
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    if config.strategy == "multiworker":
        return multiworker_strategy()
    return tf.distribute.get_strategy()


def _check_sources(config: TrainConfig, phases: tuple[str, ...], train_split) -> None:
    """Fail now, not hours into a run, when a phase's ``init_from`` or ``distill_from`` is missing or does not fit."""
    for phase in phases:
        settings = getattr(config, phase)
        if settings.init_from:
            check_keras_file(resolve_init_path(settings.init_from, phase), f"{phase}.init_from model")
        if settings.distill_from and settings.distill_view == ONLINE_VIEW:
            online_teacher_sources(settings, phase)
        elif settings.distill_from:
            try:
                members = member_folders(settings.distill_from)
                if members is None:
                    resolve_model_file(settings.distill_from)
                else:  # stored probabilities must be of exactly these training faces
                    members_probabilities(members, settings.distill_view, train_split)
            except FerKerasError as exc:
                raise FerKerasError(f"config: {phase}.distill_from: {exc}") from None


def train(config: TrainConfig, phase: str = "all", restart: bool = False) -> Path:
    """Run phase ``"1"``, ``"2"`` or ``"all"`` of ``config``; returns the run folder.

    ``restart`` deletes an earlier run in the output folder first, but only once
    the data and every model the config names have been checked, only if the
    folder holds a ferkeras run, and only the files the run wrote.
    """
    strategy = _strategy(config)  # first: the multi-worker strategy must start before other TensorFlow work
    run_dir = Path(config.output_dir).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise FerKerasError(f"--output {run_dir} is a file, not a folder")
    if restart and run_dir.is_dir() and any(run_dir.iterdir()) and not is_run_folder(run_dir):
        raise FerKerasError(
            f"--restart: {run_dir} does not hold a ferkeras run (no config.yaml with a phase folder); "
            "refusing to delete anything there: choose another --output"
        )
    if not restart:
        check_config(run_dir, config)
    phases = PHASES if phase == "all" else (f"phase{phase}",)
    splits = load_dataset(config.data.root, config.data.image_size, config.data.val_fraction, config.seed, config.data.skip_bad)
    _check_sources(config, phases, splits["train"])
    run_dir = worker_folder(run_dir, strategy, copy=not restart)  # non-chief workers write a scratch copy
    if restart and run_dir.is_dir():
        remove_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / CONFIG_FILE)
    keras.utils.set_random_seed(config.seed)
    precision = resolve_precision(config.precision, native_bfloat16())
    keras.mixed_precision.set_global_policy(precision)
    log.info(f"precision: {precision}" + (" (auto)" if config.precision == "auto" else ""))
    log.info("data: " + ", ".join(f"{name} {len(s)}" for name, s in splits.items()))
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is not None:
        role = "chief" if is_chief(strategy) else f"writing to {run_dir}"
        log.info(f"strategy: multiworker, {strategy.num_replicas_in_sync} replicas; this is worker {resolver.task_id} ({role})")
    verbose = 1 if sys.stdout.isatty() else 2
    for name in phases:
        run_phase(config, name, run_dir, splits, strategy, verbose)
    return run_dir
