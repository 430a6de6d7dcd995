"""One training phase: start or resume it, fit it, average it, hand its model on."""

from __future__ import annotations

import logging
import time
import uuid
from pathlib import Path

import keras
import numpy as np

from ferkeras.artifacts import KERAS_FILE, KERAS_ONLY, resolve_model_file
from ferkeras.card import write_card
from ferkeras.config import TrainConfig
from ferkeras.data.pipeline import class_weights, make_dataset
from ferkeras.data.sources import Split
from ferkeras.errors import FerKerasError
from ferkeras.evaluation.metrics import classification_metrics
from ferkeras.images import to_model_input
from ferkeras.io import atomic_write_json, remove_stale_temps
from ferkeras.models.files import load_keras_model
from ferkeras.models.from_config import float32_copy, new_model
from ferkeras.training.averaging import average_snapshots, averaged_epochs, recalibrate_batchnorm, snapshot_path
from ferkeras.training.callbacks import (
    BEST_CHECKPOINT,
    LAST_CHECKPOINT,
    NonFiniteGuard,
    ResumablePlateau,
    RunCheckpoint,
    load_state,
    save_model_atomic,
)
from ferkeras.training.distillation import distillation_targets, online_teacher
from ferkeras.training.multiworker import check_same_start, shard_by_data
from ferkeras.training.phases import build_training_state, compile_for_phase
from ferkeras.training.run_card import best_epoch_row, build_card
from ferkeras.training.run_folder import AVERAGE_MODEL, PHASES, phase_result

log = logging.getLogger(__name__)


def _average_last_epochs(config: TrainConfig, settings, phase_dir: Path, state: dict, splits: dict[str, Split]) -> None:
    """Write ``average.keras`` (mean of the last epochs' weights) and its val metrics to ``state``."""
    epochs = averaged_epochs(settings.epochs, settings.average_last)
    if state.get("average", {}).get("epochs") == [epochs[0], epochs[-1]] and (phase_dir / AVERAGE_MODEL).exists():
        return
    start = time.perf_counter()
    snapshots = [snapshot_path(phase_dir, e) for e in epochs]
    missing = [str(path) for path in snapshots if not path.exists()]
    if missing:
        raise FerKerasError(f"cannot average the last {settings.average_last} epochs: {missing[0]} is missing")
    model = load_keras_model(phase_dir / LAST_CHECKPOINT, what="checkpoint")
    average_snapshots(model, snapshots)
    channels, crop = config.data.channels, config.data.crop
    if settings.average_batchnorm == "reestimate":
        recalibrate_batchnorm(model, to_model_input(splits["train"].images, channels, crop))
    val = splits["val"]
    probabilities = model.predict(to_model_input(val.images, channels, crop), batch_size=256, verbose=0)
    metrics = classification_metrics(val.labels, probabilities)
    state["average"] = {
        "epochs": [epochs[0], epochs[-1]],
        "batchnorm": settings.average_batchnorm,
        "val_accuracy": metrics["accuracy"],
        "val_macro_f1": metrics["macro_f1"],
    }
    state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - start
    save_model_atomic(model, phase_dir / AVERAGE_MODEL)
    best_row = best_epoch_row(state)
    log.info(
        f"[{phase_dir.name}] average of epochs {epochs[0]}..{epochs[-1]}: val accuracy {metrics['accuracy']:.4f}, "
        f"macro-F1 {metrics['macro_f1']:.4f} (best single epoch {state.get('best_epoch')}: "
        f"{best_row.get('val_accuracy', float('nan')):.4f}, {best_row.get('val_macro_f1', float('nan')):.4f})"
    )


def resolve_init_path(source: str, phase: str) -> Path:
    """The .keras file ``PHASE.init_from`` names (a file, or a folder holding model.keras)."""
    try:
        return resolve_model_file(source, KERAS_ONLY)
    except FerKerasError as exc:
        raise FerKerasError(f"config: {phase}.init_from: {exc}") from None


def _load_init_model(config: TrainConfig, phase: str) -> keras.Model:
    """The config's model (in its training precision) with the weights of ``PHASE.init_from``."""
    path = resolve_init_path(getattr(config, phase).init_from, phase)
    # Rebuilt from the config rather than used as loaded: a shipped model is a
    # float32 copy, and training runs in config.precision.
    model = new_model(config, pretrained=False)
    weights = load_keras_model(path, what=f"{phase}.init_from model").get_weights()
    shapes, expected = [w.shape for w in weights], [tuple(w.shape) for w in model.weights]
    if shapes != expected:
        first = next((i for i, (a, b) in enumerate(zip(shapes, expected)) if a != b), min(len(shapes), len(expected)))
        found = f"weight {first} is {shapes[first]}" if first < len(shapes) else f"it has {len(shapes)} weight arrays"
        wanted = f"{expected[first]}" if first < len(expected) else f"{len(expected)} arrays"
        raise FerKerasError(
            f"config: {phase}.init_from: {path} is not the model this config describes ({found}, the config's "
            f"model wants {wanted}): set model.* as that model was trained"
        )
    model.set_weights(weights)
    log.info(f"[{phase}] starting from {path}")
    return model


def run_phase(config: TrainConfig, phase: str, run_dir: Path, splits: dict[str, Split], strategy, verbose) -> None:
    settings = getattr(config, phase)
    phase_dir = run_dir / phase
    phase_dir.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temps(phase_dir) + remove_stale_temps(run_dir):
        log.info("removed %s, left by an interrupted save", stale)
    state = load_state(phase_dir)
    check_same_start(strategy, -1 if state and state.get("finished") else (state or {}).get("epoch", 0), phase)
    if state and state.get("finished"):
        log.info("%s already finished in %s; skipping", phase, phase_dir)
        return
    train, val = splits["train"], splits["val"]
    steps = max(len(train) // config.batch_size, 1)
    epoch_offset = (load_state(run_dir / "phase1") or {}).get("epoch", 0) if phase == "phase2" else 0
    seed = config.seed
    if settings.seed is not None:
        seed = settings.seed
        keras.utils.set_random_seed(seed)
    with strategy.scope():
        if state and (phase_dir / LAST_CHECKPOINT).exists():
            model = load_keras_model(
                phase_dir / LAST_CHECKPOINT,
                compile=True,
                what="checkpoint",
                hint="; delete it to start this phase over, or pass --restart to start the run over",
            )
            log.info(f"[{phase}] resuming after epoch {state['epoch']} from {phase_dir / LAST_CHECKPOINT}")
            state.setdefault("id", uuid.uuid4().hex)  # a run started before phases had ids
        else:
            state = {"epoch": 0, "history": [], "wait": 0, "id": uuid.uuid4().hex}
            if settings.init_from:
                model = _load_init_model(config, phase)
            elif phase == "phase1":
                model = new_model(config)
            else:
                source = phase_result(run_dir / "phase1")
                if not (load_state(run_dir / "phase1") or {}).get("finished") or not source.exists():
                    raise FerKerasError(f"phase 2 needs a finished phase 1 in {run_dir}; run `ferkeras train --phase 1` first")
                model = load_keras_model(source, what="phase 1 result")
            compile_for_phase(model, settings, steps, config.label_smoothing)
    if settings.epochs == 0:
        save_model_atomic(model, phase_dir / BEST_CHECKPOINT)
    elif state["epoch"] < settings.epochs and not state.get("stopped_early"):
        weights = class_weights(train.class_counts(), config.class_weighting)
        train_ds = make_dataset(
            train,
            batch_size=config.batch_size,
            channels=config.data.channels,
            crop=config.data.crop,
            training=True,
            augment=config.augment,
            class_weights=weights,
            seed=seed,
            epoch_offset=state["epoch"] + epoch_offset,
            mixup=settings.mixup,
            cutmix=settings.cutmix,
            targets=distillation_targets(settings, train, phase_dir, phase),
            teacher=online_teacher(settings, phase),
            teacher_weight=settings.distill_weight,
        )
        val_ds = make_dataset(val, batch_size=config.batch_size * 2, channels=config.data.channels, crop=config.data.crop)
        train_ds, val_ds = shard_by_data(train_ds, strategy), shard_by_data(val_ds, strategy)
        guard = NonFiniteGuard()
        callbacks = [
            guard,
            RunCheckpoint(
                phase_dir,
                config.monitor,
                settings.patience,
                state,
                phase,
                epoch_offset,
                snapshot_from=averaged_epochs(settings.epochs, settings.average_last).start if settings.average_last else None,
                guard=guard,
            ),
            keras.callbacks.TensorBoard(phase_dir / "tensorboard", write_graph=False),
        ]
        if settings.schedule == "plateau":
            callbacks.insert(
                0,
                ResumablePlateau(
                    state,
                    monitor=config.monitor,
                    factor=0.5,
                    patience=max(settings.patience // 3, 2),
                    mode="min" if config.monitor.endswith("loss") else "max",
                    verbose=1,
                ),
            )
        with strategy.scope():
            build_training_state(model)
        log.info(
            f"[{phase}] epochs {state['epoch'] + 1}..{settings.epochs}, {steps} steps of {config.batch_size}, "
            f"trainable: {settings.trainable}, {sum(int(np.prod(w.shape)) for w in model.trainable_weights):,} trainable parameters"
        )
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=settings.epochs,
            initial_epoch=state["epoch"],
            callbacks=callbacks,
            verbose=verbose,
            shuffle=False,  # the dataset shuffles itself
        )
        if guard.problem:
            kept = f"epoch {state['epoch']} in {phase_dir / LAST_CHECKPOINT}" if state["epoch"] else "none (no epoch finished)"
            raise FerKerasError(
                f"[{phase}] stopped in epoch {guard.epoch}: {guard.problem}; nothing of that epoch was saved and "
                f"the phase is not finished (last good checkpoint: {kept}); lower {phase}.learning_rate or check the data"
            )
    if settings.average_last and settings.epochs:
        _average_last_epochs(config, settings, phase_dir, state, splits)
    else:
        (phase_dir / AVERAGE_MODEL).unlink(missing_ok=True)  # left by an earlier setting
        state.pop("average", None)
    atomic_write_json(phase_dir / "state.json", state)  # an epochs=0 phase has none yet
    result = load_keras_model(phase_result(phase_dir), what="phase result")
    save_model_atomic(float32_copy(result, config), run_dir / KERAS_FILE)
    write_card(run_dir / KERAS_FILE, build_card(config, splits, run_dir, result))
    from ferkeras.evaluation.plots import plot_training_curves

    history = [row for p in PHASES for row in (load_state(run_dir / p) or {}).get("history", [])]
    plot_training_curves(history, run_dir / "training_curves.png")
    # Marked finished only now: a crash above is repaired by rerunning the command.
    state["finished"] = True
    atomic_write_json(phase_dir / "state.json", state)
    log.info(f"[{phase}] done: {run_dir / KERAS_FILE}")
