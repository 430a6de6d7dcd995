"""``ferkeras train``: phase 1 (backbone frozen) then phase 2 (full fine-tune).

A run folder holds everything::

    RUN/config.yaml            the resolved config (reproduces the run)
    RUN/phase1/, RUN/phase2/   last.keras, best.keras, state.json, history.csv, tensorboard/
    RUN/model.keras            the best model of the latest finished phase (float32)
    RUN/model_card.json        what the model expects, how it was trained, val metrics
    RUN/training_curves.png    loss, accuracy and macro-F1 of both phases on one axis

Rerunning the same command after an interruption continues from the last
finished epoch with the same optimizer state and schedule position.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from ferkeras import __version__
from ferkeras.artifacts import CARD_FILE, CONFIG_FILE, KERAS_FILE, KERAS_ONLY, resolve_model_file
from ferkeras.card import add_ancestor, portable_config, portable_path, read_card, run_name, total_compute_seconds, write_card
from ferkeras.config import TrainConfig, load_config
from ferkeras.data.pipeline import class_weights, make_dataset
from ferkeras.data.sources import Split, load_dataset
from ferkeras.errors import FerKerasError
from ferkeras.evaluation.metrics import classification_metrics
from ferkeras.images import to_model_input
from ferkeras.io import atomic_write_json, remove_stale_temps
from ferkeras.labels import CLASS_NAMES
from ferkeras.models import build_model
from ferkeras.models.files import check_keras_file, load_keras_model
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
from ferkeras.training.distillation import distillation_targets
from ferkeras.training.phases import compile_for_phase
from ferkeras.training.precision import native_bfloat16, resolve_precision

log = logging.getLogger(__name__)
PHASES = ("phase1", "phase2")
AVERAGE_MODEL = "average.keras"
#: What ``ferkeras train`` writes at the top of a run folder; ``--restart`` removes these and nothing else.
RUN_ENTRIES = (CONFIG_FILE, *PHASES, KERAS_FILE, CARD_FILE, "training_curves.png")


def _check_config(run_dir: Path, config: TrainConfig) -> None:
    """Refuse to continue a run with settings other than the ones it started with.

    Settings of a phase that has not started yet may still change, and so may a
    started phase's averaging settings while none of the epochs it averages has run.
    """
    stored_path = run_dir / CONFIG_FILE
    if not stored_path.exists():
        return
    # Through the loader, so keys added to ferkeras after the run began take
    # their defaults (which keep the old behaviour) instead of counting as changes.
    stored = load_config(stored_path).to_dict()
    current = config.to_dict()
    changed = []
    for key, value in current.items():
        # precision only changes speed (a resumed phase keeps its checkpoint's), so a
        # run begun on bfloat16 hardware can go on elsewhere
        if key in ("output_dir", "precision") or stored.get(key) == value:
            continue
        state = load_state(run_dir / key) if key in PHASES else None
        if key in PHASES and state is None:
            continue
        if key in PHASES and _only_average_changed(stored[key], value, state["epoch"]):
            continue
        changed.append(key)
    if changed:
        raise FerKerasError(
            f"{run_dir} holds a run with other settings ({', '.join(changed)} differ); "
            "rerun with its config.yaml, choose a new --output, or pass --restart"
        )


AVERAGING_SETTINGS = ("average_last", "average_batchnorm")


def _only_average_changed(stored: dict, current: dict, epochs_run: int) -> bool:
    """True when only averaging settings differ and no epoch either version averages has run."""
    if {**stored, **{key: current[key] for key in AVERAGING_SETTINGS}} != current:
        return False
    firsts = [averaged_epochs(p["epochs"], p["average_last"]).start for p in (stored, current) if p["average_last"]]
    return all(epochs_run < first for first in firsts)


def _strategy(config: TrainConfig):
    if config.strategy == "mirrored":
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def new_model(config: TrainConfig, pretrained: bool = True) -> keras.Model:
    """The model ``config`` describes, freshly initialised (with ``model.weights`` if ``pretrained``)."""
    m = config.model
    return build_model(
        config.data.input_size,
        config.data.channels,
        attention=m.attention,
        stem=m.stem,
        width=m.width,
        dropout=m.dropout,
        weights=m.weights if pretrained else None,
        bn_momentum=m.bn_momentum,
    )


def float32_copy(model: keras.Model, config: TrainConfig) -> keras.Model:
    """The same weights in a float32 model, for export and CPU inference."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = new_model(config, pretrained=False)
        copy.set_weights(model.get_weights())
        return copy
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _hardware() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "bfloat16_hardware": native_bfloat16(),
    }


def build_card(config: TrainConfig, splits: dict[str, Split], run_dir: Path, model: keras.Model) -> dict:
    """The model card for the run's current best model."""
    states = {p: load_state(run_dir / p) for p in PHASES}
    phases = {
        p: {
            "epochs_run": s["epoch"],
            "best_epoch": s.get("best_epoch"),
            "best_" + config.monitor: s.get("best"),
            "seconds": round(s.get("seconds", 0.0), 1),
            "stopped_early": s.get("stopped_early", False),
        }
        for p, s in states.items()
        if s
    }
    for p, s in states.items():
        if s and s.get("average"):
            phases[p]["averaged_epochs"] = s["average"]["epochs"]
    last = next(p for p in reversed(PHASES) if states[p])
    best_row = states[last].get("average") or _best_epoch_row(states[last])
    ancestors: dict = {}
    start = _initial_model_link(config, states, ancestors)
    teachers = [
        _link(p, getattr(config, p).distill_from, ancestors) for p in PHASES if states[p] and getattr(config, p).distill_from
    ]
    # phases before the one that started from another model did not make this one
    counted = PHASES[PHASES.index(start["phase"]) :] if start else PHASES
    links = {**({"initialised_from": start} if start else {}), **({"teachers": teachers} if teachers else {})}
    lineage = {"phases": {p: phases[p] for p in counted if p in phases}, **links, "ancestors": ancestors}
    return {
        "format_version": 1,
        "name": model.name,
        "ferkeras_version": __version__,
        "class_names": list(CLASS_NAMES),
        "input": {
            "size": config.data.input_size,
            "channels": config.data.channels,
            "color": "grayscale" if config.data.channels == 1 else "grayscale replicated to RGB",
            "dtype": "float32",
            "range": "raw pixels 0-255 (rescaling is inside the model)",
            "layout": "NHWC, batch first",
        },
        "preprocessing": {
            "face_resize": config.data.image_size,
            "center_crop": config.data.crop,
            "description": f"grayscale face crop resized to {config.data.image_size}x{config.data.image_size}"
            + (f", centre crop {config.data.crop}x{config.data.crop}" if config.data.crop else ""),
        },
        "architecture": {
            "family": "ResNet18",
            "attention": config.model.attention,
            "stem": config.model.stem,
            "width": config.model.width,
            "parameters": int(model.count_params()),
        },
        "initialisation": (
            f"weights of {start['model']} ({start['phase']}.init_from)"
            if start
            else config.model.weights or "random (trained from scratch)"
        ),
        "training": {
            "config": portable_config(config.to_dict()),
            "phases": phases,
            **links,
            # with the starting model's and the teachers' training, where their cards say what it cost
            "compute_seconds": total_compute_seconds(lineage),
            "hardware": _hardware(),
            # the phase result's own (a resumed phase keeps its checkpoint's precision)
            "precision": next(layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)).dtype_policy.name,
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            **({"ancestors": ancestors} if ancestors else {}),
        },
        "data": {
            "root": portable_path(str(config.data.root)),
            "counts": {name: dict(zip(CLASS_NAMES, s.class_counts().tolist())) for name, s in splits.items()},
            "sha256": {name: s.checksum() for name, s in splits.items()},
        },
        "metrics": {
            "val_during_training": {k: v for k, v in best_row.items() if k.startswith("val_")},
        },
        "artifacts": {"keras": {"file": KERAS_FILE}},
    }


def _initial_model_link(config: TrainConfig, states: dict, ancestors: dict) -> dict | None:
    """The model the run's latest ``init_from`` phase started from (see :func:`_link`)."""
    phase = next((p for p in reversed(PHASES) if states[p] and getattr(config, p).init_from), None)
    return _link(phase, getattr(config, phase).init_from, ancestors) if phase else None


def _link(phase: str, source: str, ancestors: dict) -> dict:
    """Which model a phase used, by name; its card's lineage joins ``ancestors`` where it has one."""
    name = run_name(source)
    try:
        add_ancestor(ancestors, name, read_card(resolve_model_file(source)).get("training", {}))
    except FerKerasError:
        pass  # a bare .keras file without a card: its cost is unknown
    return {"phase": phase, "model": name}


def _best_epoch_row(state: dict) -> dict:
    """The history row of the phase's best epoch ({} if no epoch was ever best)."""
    return next((r for r in state["history"] if r["epoch"] == state.get("best_epoch")), {})


def phase_result(phase_dir: Path) -> Path:
    """The model a phase hands on: its weight average if it made one, else its best epoch."""
    average = phase_dir / AVERAGE_MODEL
    return average if average.exists() else phase_dir / BEST_CHECKPOINT


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
    best_row = _best_epoch_row(state)
    log.info(
        f"[{phase_dir.name}] average of epochs {epochs[0]}..{epochs[-1]}: val accuracy {metrics['accuracy']:.4f}, "
        f"macro-F1 {metrics['macro_f1']:.4f} (best single epoch {state.get('best_epoch')}: "
        f"{best_row.get('val_accuracy', float('nan')):.4f}, {best_row.get('val_macro_f1', float('nan')):.4f})"
    )


def _resolve_init_path(source: str, phase: str) -> Path:
    """The .keras file ``PHASE.init_from`` names (a file, or a folder holding model.keras)."""
    try:
        return resolve_model_file(source, KERAS_ONLY)
    except FerKerasError as exc:
        raise FerKerasError(f"config: {phase}.init_from: {exc}") from None


def _load_init_model(config: TrainConfig, phase: str) -> keras.Model:
    """The config's model (in its training precision) with the weights of ``PHASE.init_from``."""
    path = _resolve_init_path(getattr(config, phase).init_from, phase)
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


def _run_phase(config: TrainConfig, phase: str, run_dir: Path, splits: dict[str, Split], strategy, verbose) -> None:
    settings = getattr(config, phase)
    phase_dir = run_dir / phase
    phase_dir.mkdir(parents=True, exist_ok=True)
    for stale in remove_stale_temps(phase_dir) + remove_stale_temps(run_dir):
        log.info("removed %s, left by an interrupted save", stale)
    state = load_state(phase_dir)
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
        else:
            state = {"epoch": 0, "history": [], "wait": 0}
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
        )
        val_ds = make_dataset(val, batch_size=config.batch_size * 2, channels=config.data.channels, crop=config.data.crop)
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


def is_run_folder(folder: Path) -> bool:
    """True when ``folder`` holds a ferkeras run: a readable ``config.yaml`` and a phase folder."""
    if not (folder / CONFIG_FILE).is_file() or not any((folder / p).is_dir() for p in PHASES):
        return False
    try:
        load_config(folder / CONFIG_FILE)
    except FerKerasError:
        return False
    return True


def _remove_run(run_dir: Path) -> None:
    """Delete what ``ferkeras train`` wrote in ``run_dir``; other files stay."""
    for name in RUN_ENTRIES:
        path = run_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
    remove_stale_temps(run_dir)
    others = sorted(p.name for p in run_dir.iterdir())
    if others:
        log.warning("--restart kept files that ferkeras did not write in %s: %s", run_dir, ", ".join(others[:5]))


def _check_sources(config: TrainConfig, phases: tuple[str, ...]) -> None:
    """Fail now, not hours into a run, when a phase's ``init_from`` or ``distill_from`` is missing."""
    for phase in phases:
        settings = getattr(config, phase)
        if settings.init_from:
            check_keras_file(_resolve_init_path(settings.init_from, phase), f"{phase}.init_from model")
        if settings.distill_from:
            try:
                resolve_model_file(settings.distill_from)
            except FerKerasError as exc:
                raise FerKerasError(f"config: {phase}.distill_from: {exc}") from None


def train(config: TrainConfig, phase: str = "all", restart: bool = False) -> Path:
    """Run phase ``"1"``, ``"2"`` or ``"all"`` of ``config``; returns the run folder.

    ``restart`` deletes an earlier run in the output folder first, but only once
    the data and every model the config names have been checked, only if the
    folder holds a ferkeras run, and only the files the run wrote.
    """
    run_dir = Path(config.output_dir).expanduser()
    if run_dir.exists() and not run_dir.is_dir():
        raise FerKerasError(f"--output {run_dir} is a file, not a folder")
    if restart and run_dir.is_dir() and any(run_dir.iterdir()) and not is_run_folder(run_dir):
        raise FerKerasError(
            f"--restart: {run_dir} does not hold a ferkeras run (no config.yaml with a phase folder); "
            "refusing to delete anything there: choose another --output"
        )
    if not restart:
        _check_config(run_dir, config)
    phases = PHASES if phase == "all" else (f"phase{phase}",)
    _check_sources(config, phases)
    splits = load_dataset(config.data.root, config.data.image_size, config.data.val_fraction, config.seed, config.data.skip_bad)
    if restart and run_dir.is_dir():
        _remove_run(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config.save(run_dir / CONFIG_FILE)
    keras.utils.set_random_seed(config.seed)
    precision = resolve_precision(config.precision, native_bfloat16())
    keras.mixed_precision.set_global_policy(precision)
    log.info(f"precision: {precision}" + (" (auto)" if config.precision == "auto" else ""))
    log.info("data: " + ", ".join(f"{name} {len(s)}" for name, s in splits.items()))
    strategy = _strategy(config)
    verbose = 1 if sys.stdout.isatty() else 2
    for name in phases:
        _run_phase(config, name, run_dir, splits, strategy, verbose)
    return run_dir
