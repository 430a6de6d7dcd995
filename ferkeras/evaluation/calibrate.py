"""``ferkeras calibrate``: fit the softmax temperature on a split the model did not train on.

The temperature goes into the model card, where every :class:`Predictor` (Keras,
TFLite, ONNX) applies it, so ``cam``'s "uncertain" threshold and every CSV
probability mean what they say. The "after" figures are two-fold cross-fitted
(a temperature fitted on one half of the split scores the other half), so they
are not flattered by fitting and scoring on the same faces.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ferkeras.artifacts import resolve_model
from ferkeras.calibration import apply_temperature, expected_calibration_error, fit_temperature, negative_log_likelihood
from ferkeras.card import card_path, portable_path, update_card
from ferkeras.data.sources import load_split
from ferkeras.evaluation.plots import plot_reliability
from ferkeras.evaluation.tta import predict_with_tta
from ferkeras.inference.predictor import Predictor
from ferkeras.io import ensure_writable

log = logging.getLogger(__name__)


def calibrate(model: str | Path | None, data: str | Path, split: str = "val", output: str | Path | None = None) -> dict:
    """Fit, record in the card and plot the temperature of ``model``; returns the card's ``calibration`` entry."""
    predictor = Predictor.load(resolve_model(model))
    predictor.require_fer_classes()
    out_dir = ensure_writable(Path(output) if output else card_path(predictor.path).parent / f"eval_{split}")
    faces = load_split(data, split, predictor.face_resize)
    predictor.temperature = 1.0  # fit on the model's own probabilities
    raw = predict_with_tta(predictor, faces.images, "none")
    labels = faces.labels
    halves = np.array_split(np.random.default_rng(0).permutation(len(labels)), 2)
    crossed = np.empty_like(raw)
    for fit_on, score_on in (halves, halves[::-1]):
        crossed[score_on] = apply_temperature(raw[score_on], fit_temperature(labels[fit_on], raw[fit_on]))
    temperature = fit_temperature(labels, raw)
    record = {
        "method": "temperature scaling of the softmax (ferkeras.calibration)",
        "temperature": temperature,
        "fitted_on": {"data": portable_path(str(data)), "split": split, "faces": int(len(labels))},
        "ece_15_bins": {"before": expected_calibration_error(labels, raw), "after": expected_calibration_error(labels, crossed)},
        "nll": {"before": negative_log_likelihood(labels, raw), "after": negative_log_likelihood(labels, crossed)},
        "after": "two-fold cross-fitted on the split",
    }
    update_card(predictor.path, calibration=record)
    plot_reliability(
        labels, {"before (T = 1)": raw, f"after (T = {temperature:g}, cross-fitted)": crossed}, out_dir / "calibration.png"
    )
    log.info(
        f"{predictor.path}: temperature {temperature:g}; on {split}, ECE {record['ece_15_bins']['before']:.4f} -> "
        f"{record['ece_15_bins']['after']:.4f}, NLL {record['nll']['before']:.4f} -> {record['nll']['after']:.4f}; "
        f"wrote {card_path(predictor.path)} and {out_dir / 'calibration.png'}"
    )
    return record
