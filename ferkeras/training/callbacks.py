"""Epoch-end bookkeeping that survives ``kill -9``: checkpoints, state, history."""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path

import keras
import numpy as np

from ferkeras.errors import FerKerasError
from ferkeras.io import atomic_path, atomic_write_json, atomic_write_text, read_json
from ferkeras.training.averaging import snapshot_path

LAST_CHECKPOINT = "last.keras"  # model and optimizer after the latest finished epoch
BEST_CHECKPOINT = "best.keras"  # the epoch with the best monitored metric


def load_state(phase_dir: Path) -> dict | None:
    """The phase's ``state.json`` (finished epochs, best metric, history) or None."""
    path = phase_dir / "state.json"
    if not path.exists():
        return None
    state = read_json(path, "training state", hint="restore it, or pass --restart to start the run over")
    if not isinstance(state, dict) or not isinstance(state.get("epoch"), int) or not isinstance(state.get("history"), list):
        raise FerKerasError(f"{path} is not a ferkeras training state (no epoch count or history)")
    return state


class NonFiniteGuard(keras.callbacks.Callback):
    """Stops training at the first NaN or infinite loss, metric or weight.

    Keras still ends the epoch after a stop, so :class:`RunCheckpoint` asks
    :attr:`problem` and saves nothing of a poisoned epoch: the last good
    checkpoint stays the one a rerun resumes from. Put it before RunCheckpoint.
    """

    def __init__(self):
        super().__init__()
        self.problem: str | None = None
        self.epoch: int | None = None

    def _stop(self, epoch: int | None, what: str) -> None:
        if self.problem is None:
            self.problem, self.epoch = what, epoch
        self.model.stop_training = True

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self._stop(getattr(self, "_epoch", None), f"the training loss became {float(loss)} at batch {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        bad = [k for k, v in (logs or {}).items() if not math.isfinite(float(v))]
        if bad:
            self._stop(epoch + 1, f"{bad[0]} became {float(logs[bad[0]])}")
        elif not all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in self.model.weights):
            self._stop(epoch + 1, "a weight became NaN or infinite")


def save_model_atomic(model: keras.Model, path: Path) -> None:
    """Save a ``.keras`` file under a temporary name, then rename it into place."""
    with atomic_path(path) as tmp:
        model.save(tmp)


class RunCheckpoint(keras.callbacks.Callback):
    """After each epoch: save ``last.keras`` (weights and optimizer), the weights
    snapshot for averaging (from epoch ``snapshot_from`` on), ``best.keras`` when
    the monitored metric improves, then ``state.json`` and ``history.csv``.

    State is written last, so after a kill it never points past a checkpoint on
    disk; on resume the epoch in ``state.json`` is the next epoch to run. Early
    stopping lives here too, so its patience counter survives a restart.
    """

    def __init__(
        self,
        phase_dir: Path,
        monitor: str,
        patience: int,
        state: dict,
        phase: str,
        epoch_offset: int,
        snapshot_from: int | None = None,
        guard: NonFiniteGuard | None = None,
    ):
        super().__init__()
        self.guard = guard
        self.snapshot_from = snapshot_from  # first epoch (1-based) whose weights are kept for averaging
        self.phase_dir = phase_dir
        self.monitor = monitor
        self.mode = "min" if monitor.endswith("loss") else "max"
        self.patience = patience
        self.state = state
        self.phase = phase
        self.epoch_offset = epoch_offset  # epochs of earlier phases, for one time axis
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def _improved(self, value: float) -> bool:
        best = self.state.get("best")
        if best is None or math.isnan(best):
            return not math.isnan(value)
        return value < best if self.mode == "min" else value > best

    def on_epoch_end(self, epoch, logs=None):
        if self.guard is not None and self.guard.problem:
            return  # nothing of a NaN epoch is kept
        logs = {k: float(v) for k, v in (logs or {}).items()}
        lr = self.model.optimizer.learning_rate
        logs["learning_rate"] = float(keras.ops.convert_to_numpy(lr))
        seconds = time.perf_counter() - self._start
        value = logs.get(self.monitor, float("nan"))
        save_model_atomic(self.model, self.phase_dir / LAST_CHECKPOINT)
        if self.snapshot_from is not None and epoch + 1 >= self.snapshot_from:
            with atomic_path(snapshot_path(self.phase_dir, epoch + 1)) as tmp:
                self.model.save_weights(tmp)
        if self._improved(value):
            save_model_atomic(self.model, self.phase_dir / BEST_CHECKPOINT)
            self.state.update(best=value, best_epoch=epoch + 1, wait=0)
        else:
            self.state["wait"] = self.state.get("wait", 0) + 1
        self.state["epoch"] = epoch + 1
        self.state["seconds"] = self.state.get("seconds", 0.0) + seconds
        self.state["history"].append(
            {
                "phase": self.phase,
                "epoch": epoch + 1,
                "global_epoch": self.epoch_offset + epoch + 1,
                "seconds": round(seconds, 1),
                **logs,
            }
        )
        if self.patience and self.state["wait"] >= self.patience:
            self.state["stopped_early"] = True
            self.model.stop_training = True
        atomic_write_json(self.phase_dir / "state.json", self.state)
        write_history_csv(self.phase_dir / "history.csv", self.state["history"])


class ResumablePlateau(keras.callbacks.ReduceLROnPlateau):
    """ReduceLROnPlateau whose wait counter, best value and cooldown live in the
    run's state, so a resumed run keeps counting instead of starting over.

    The reduced learning rate itself is an optimizer variable, saved in ``last.keras``.
    Put it before :class:`RunCheckpoint`, which writes the state to disk.
    """

    def __init__(self, state: dict, **kwargs):
        super().__init__(**kwargs)
        self.state = state

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        saved = self.state.get("plateau")
        if saved:
            self.wait, self.best, self.cooldown_counter = saved["wait"], saved["best"], saved["cooldown"]

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.state["plateau"] = {"wait": self.wait, "best": float(self.best), "cooldown": self.cooldown_counter}


def write_history_csv(path: Path, history: list[dict]) -> None:
    """Write per-epoch rows (union of keys as columns) atomically."""
    columns: list[str] = []
    for row in history:
        columns += [k for k in row if k not in columns]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, columns)
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(path, buffer.getvalue())
