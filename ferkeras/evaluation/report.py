"""``ferkeras evaluate``: metrics, confusion matrices and mistakes for one split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ferkeras.artifacts import resolve_model
from ferkeras.card import card_path, update_card
from ferkeras.data.sources import load_split
from ferkeras.errors import FerKerasError
from ferkeras.evaluation.metrics import classification_metrics, format_report
from ferkeras.evaluation.plots import plot_confusion, plot_mistakes, plot_reliability
from ferkeras.images import TTA_MODES, ten_crops, to_model_input
from ferkeras.inference.predictor import Predictor
from ferkeras.io import atomic_write_json, ensure_writable

log = logging.getLogger(__name__)


def predict_with_tta(predictor: Predictor, faces: np.ndarray, mode: str) -> np.ndarray:
    """Probabilities for (N, S, S) faces at the card's face size, averaged over views.

    ``flip`` averages the face and its mirror image; ``tencrop`` averages the four
    corner crops, the centre crop and their mirror images (models trained with crops).
    """
    if mode == "tencrop":
        if not predictor.crop:
            raise FerKerasError("--tta tencrop needs a model trained with random crops (card center_crop > 0)")
        views = ten_crops(faces, predictor.crop)
        return sum(predictor.predict_prepared(to_model_input(view, predictor.channels)) for view in views) / len(views)
    centre = to_model_input(faces, predictor.channels, predictor.crop)
    return predictor.predict_prepared(centre, flip=mode == "flip")


def evaluate(
    model: str | Path | None,
    data: str | Path,
    split: str = "val",
    tta: str | tuple[str, ...] = "none",
    output: str | Path | None = None,
    skip_bad: bool = False,
    update_model_card: bool = False,
    mistakes: int = 32,
) -> dict:
    """Evaluate ``model`` on ``split`` of ``data``; write metrics.json and PNGs; return metrics.

    Metrics without test-time augmentation are always computed; each mode in
    ``tta`` (``flip``, ``tencrop``) adds its averaged variant.
    """
    modes = [tta] if isinstance(tta, str) else list(tta)
    for mode in modes:
        if mode not in TTA_MODES:
            raise FerKerasError(f"--tta must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    predictor = Predictor.load(resolve_model(model))
    predictor.require_fer_classes()
    out_dir = ensure_writable(Path(output) if output else card_path(predictor.path).parent / f"eval_{split}")
    faces = load_split(data, split, predictor.face_resize, skip_bad)
    results = {"model": str(predictor.path), "format": predictor.format, "data": str(data), "split": split}
    probabilities = predict_with_tta(predictor, faces.images, "none")
    results["none"] = classification_metrics(faces.labels, probabilities, predictor.class_names)
    log.info(format_report(results["none"], f"{split} (no TTA)"))
    for mode in modes:
        if mode != "none":
            tta_probs = predict_with_tta(predictor, faces.images, mode)
            results[mode] = classification_metrics(faces.labels, tta_probs, predictor.class_names)
            log.info(format_report(results[mode], f"{split} (TTA {mode})"))

    atomic_write_json(out_dir / "metrics.json", results)
    counts = np.asarray(results["none"]["confusion_matrix"])
    plot_confusion(counts, predictor.class_names, out_dir / "confusion_matrix.png", normalise=False)
    plot_confusion(counts, predictor.class_names, out_dir / "confusion_matrix_normalised.png", normalise=True)
    plot_reliability(faces.labels, {f"T = {predictor.temperature:g}": probabilities}, out_dir / "reliability_diagram.png")
    predicted = probabilities.argmax(axis=1)
    wrong = np.flatnonzero(predicted != faces.labels)
    worst = wrong[np.argsort(-probabilities[wrong, predicted[wrong]])][:mistakes]
    names = predictor.class_names
    plot_mistakes(
        faces.images[worst],
        [f"{names[faces.labels[i]]}->{names[predicted[i]]} {probabilities[i, predicted[i]]:.2f}" for i in worst],
        out_dir / "mistakes.png",
    )
    if update_model_card:
        summary = {
            mode: {
                k: results[mode][k]
                for k in ("accuracy", "macro_f1", "weighted_f1", "ece_15_bins", "nll", "samples")
                if k in results[mode]
            }
            for mode in TTA_MODES
            if mode in results
        }
        update_card(predictor.path, metrics={split: {"data": str(data), **summary}})
    log.info(f"wrote {out_dir}/metrics.json, confusion_matrix*.png, reliability_diagram.png, mistakes.png")
    return results
