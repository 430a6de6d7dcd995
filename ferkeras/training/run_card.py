"""The model card of a training run: what the model expects, how it was made, from what."""

from __future__ import annotations

import logging
import os
import platform
from pathlib import Path

import keras
import tensorflow as tf

from ferkeras import __version__
from ferkeras.artifacts import KERAS_FILE, resolve_model_file
from ferkeras.card import add_ancestor, portable_config, portable_path, read_card, run_name, total_compute_seconds
from ferkeras.config import ONLINE_VIEW, TrainConfig, comma_list
from ferkeras.data.sources import Split
from ferkeras.errors import FerKerasError
from ferkeras.labels import CLASS_NAMES
from ferkeras.training.callbacks import load_state
from ferkeras.training.distillation import member_folders
from ferkeras.training.precision import native_bfloat16
from ferkeras.training.run_folder import PHASES

log = logging.getLogger(__name__)


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
            **({"id": s["id"]} if s.get("id") else {}),
        }
        for p, s in states.items()
        if s
    }
    for p, s in states.items():
        if s and s.get("average"):
            phases[p]["averaged_epochs"] = s["average"]["epochs"]
    last = next(p for p in reversed(PHASES) if states[p])
    best_row = states[last].get("average") or best_epoch_row(states[last])
    ancestors: dict = {}
    start = _initial_model_link(config, states, ancestors)
    teachers = [
        _link(p, getattr(config, p).distill_from, ancestors, getattr(config, p).distill_view)
        for p in PHASES
        if states[p] and getattr(config, p).distill_from
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
        "metrics": {"val_during_training": {k: v for k, v in best_row.items() if k.startswith("val_")}},
        "artifacts": {"keras": {"file": KERAS_FILE}},
    }


def _initial_model_link(config: TrainConfig, states: dict, ancestors: dict) -> dict | None:
    """The model the run's latest ``init_from`` phase started from (see :func:`_link`)."""
    phase = next((p for p in reversed(PHASES) if states[p] and getattr(config, p).init_from), None)
    return _link(phase, getattr(config, phase).init_from, ancestors) if phase else None


def _link(phase: str, source: str, ancestors: dict, view: str = "flip") -> dict:
    """Which model(s) or ensemble members a phase used, by name; a model card's lineage joins ``ancestors``."""
    members = member_folders(source)
    if members:
        return {"phase": phase, "members": [portable_path(str(folder)) for folder in members], "view": view}
    names = []
    for part in comma_list(source):
        names.append(run_name(part))
        try:
            add_ancestor(ancestors, names[-1], read_card(resolve_model_file(part)).get("training", {}))
        except FerKerasError:
            pass  # a bare .keras file without a card: its cost is unknown
    if view == ONLINE_VIEW:
        return {"phase": phase, "models": names, "view": view}
    return {"phase": phase, "model": names[0]}


def best_epoch_row(state: dict) -> dict:
    """The history row of the phase's best epoch ({} if no epoch was ever best)."""
    return next((r for r in state["history"] if r["epoch"] == state.get("best_epoch")), {})
