"""A run folder: what ``ferkeras train`` writes, and checks before it writes there.

RUN/config.yaml            the resolved config (reproduces the run)
RUN/phase1/, RUN/phase2/   last.keras, best.keras, state.json, history.csv, tensorboard/
RUN/model.keras            the best model of the latest finished phase (float32)
RUN/model_card.json        what the model expects, how it was trained, val metrics
RUN/training_curves.png    loss, accuracy and macro-F1 of both phases on one axis
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from ferkeras.artifacts import CARD_FILE, CONFIG_FILE, KERAS_FILE
from ferkeras.config import TrainConfig, load_config
from ferkeras.errors import FerKerasError
from ferkeras.io import remove_stale_temps
from ferkeras.training.averaging import averaged_epochs
from ferkeras.training.callbacks import BEST_CHECKPOINT, load_state

log = logging.getLogger(__name__)


PHASES = ("phase1", "phase2")


AVERAGE_MODEL = "average.keras"
#: What ``ferkeras train`` writes at the top of a run folder; ``--restart`` removes these and nothing else.


RUN_ENTRIES = (CONFIG_FILE, *PHASES, KERAS_FILE, CARD_FILE, "training_curves.png")


def check_config(run_dir: Path, config: TrainConfig) -> None:
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


def phase_result(phase_dir: Path) -> Path:
    """The model a phase hands on: its weight average if it made one, else its best epoch."""
    average = phase_dir / AVERAGE_MODEL
    return average if average.exists() else phase_dir / BEST_CHECKPOINT


def is_run_folder(folder: Path) -> bool:
    """True when ``folder`` holds a ferkeras run: a readable ``config.yaml`` and a phase folder."""
    if not (folder / CONFIG_FILE).is_file() or not any((folder / p).is_dir() for p in PHASES):
        return False
    try:
        load_config(folder / CONFIG_FILE)
    except FerKerasError:
        return False
    return True


def remove_run(run_dir: Path) -> None:
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
