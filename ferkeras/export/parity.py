"""Parity of an exported model with its Keras source, measured on real faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ferkeras.card import update_card
from ferkeras.data.sources import Split
from ferkeras.inference.predictor import Predictor


def parity(reference: Predictor, exported: Predictor, faces: Split) -> dict:
    """Top-1 agreement, accuracies and probability difference on ``faces``."""
    x = reference.prepare(faces.images)
    p_ref = reference.predict_prepared(x)
    p_exp = exported.predict_prepared(x)
    acc_ref = float((p_ref.argmax(1) == faces.labels).mean())
    acc_exp = float((p_exp.argmax(1) == faces.labels).mean())
    return {
        "faces": int(len(faces)),
        "top1_agreement": float((p_ref.argmax(1) == p_exp.argmax(1)).mean()),
        "accuracy_keras": acc_ref,
        "accuracy": acc_exp,
        "accuracy_difference_pp": round(100 * (acc_exp - acc_ref), 3),
        "max_abs_probability_difference": float(np.abs(p_ref - p_exp).max()),
    }


def record_artifact(model_path: Path, artifact: Path, key: str, details: dict) -> None:
    """Add an exported file, its size and its parity to the model card."""
    size = sum(f.stat().st_size for f in artifact.rglob("*") if f.is_file()) if artifact.is_dir() else artifact.stat().st_size
    update_card(model_path, artifacts={key: {"file": artifact.name, "size_bytes": size, **details}})
