"""``ferkeras evaluate``: metrics, confusion matrices and mistakes for one split, of a model or an ensemble."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ferkeras.artifacts import resolve_model
from ferkeras.card import card_path, update_card
from ferkeras.errors import FerKerasError
from ferkeras.evaluation.members import is_member, member_probabilities, split_loader
from ferkeras.evaluation.metrics import classification_metrics, format_report
from ferkeras.evaluation.plots import plot_confusion, plot_mistakes, plot_reliability
from ferkeras.evaluation.tta import predict_with_tta
from ferkeras.images import TTA_MODES
from ferkeras.inference.predictor import Predictor
from ferkeras.io import atomic_write_json, ensure_writable
from ferkeras.labels import CLASS_NAMES

log = logging.getLogger(__name__)


def _sources(model) -> list:
    if model is None or isinstance(model, (str, Path)):
        return [model]
    return list(model) or [None]


def evaluate(
    model: str | Path | None | list,
    data: str | Path,
    split: str = "val",
    tta: str | tuple[str, ...] = "none",
    output: str | Path | None = None,
    skip_bad: bool = False,
    update_model_card: bool = False,
    mistakes: int = 32,
) -> dict:
    """Evaluate ``model`` on ``split`` of ``data``; write metrics.json and PNGs; return metrics.

    ``model`` is a model (file, folder, run or shipped name; None: the default),
    an ensemble member folder (``ferkeras members``: its stored probabilities), or
    a list of these, scored as the mean of their probabilities. Metrics without
    test-time augmentation are always computed; each mode in ``tta`` (``flip``,
    ``tencrop``) adds its averaged variant.
    """
    modes = ["none"] + [m for m in ([tta] if isinstance(tta, str) else list(tta)) if m != "none"]
    for mode in modes:
        if mode not in TTA_MODES:
            raise FerKerasError(f"--tta must be one of {', '.join(TTA_MODES)}, got {mode!r}")
    sources = [source if is_member(source) else Predictor.load(resolve_model(source)) for source in _sources(model)]
    single_model = len(sources) == 1 and isinstance(sources[0], Predictor)
    if not single_model:
        if update_model_card:
            raise FerKerasError("--update-card takes one model, not member folders or an ensemble")
        if output is None:
            raise FerKerasError("--output is needed to score member folders or an ensemble (where to write metrics.json)")
    predictors = [source for source in sources if isinstance(source, Predictor)]
    for predictor in predictors:
        predictor.require_fer_classes()
    out_dir = ensure_writable(Path(output) if output else card_path(predictors[0].path).parent / f"eval_{split}")
    faces_at = split_loader(data, split, skip_bad)
    probabilities: dict[str, list[np.ndarray]] = {mode: [] for mode in modes}
    faces = None  # the first source's faces, for the mistakes grid
    for source in sources:
        for mode in modes:
            if isinstance(source, Predictor):
                source_faces = faces_at(source.face_resize)
                probabilities[mode].append(predict_with_tta(source, source_faces.images, mode))
            else:
                stored, source_faces = member_probabilities(source, split, mode, faces_at)
                probabilities[mode].append(stored)
        faces = faces if faces is not None else source_faces
    names = [str(source.path if isinstance(source, Predictor) else source) for source in sources]
    results = {
        "model": names[0] if single_model else names,
        "format": sources[0].format if single_model else "ensemble",
        "data": str(data),
        "split": split,
    }
    label = f"{split}, mean of {len(sources)}" if len(sources) > 1 else split
    classes = list(CLASS_NAMES)
    for mode in modes:
        results[mode] = classification_metrics(faces.labels, np.mean(probabilities[mode], axis=0), classes)
        log.info(format_report(results[mode], f"{label} ({'no TTA' if mode == 'none' else f'TTA {mode}'})"))
    plain = np.mean(probabilities["none"], axis=0)

    atomic_write_json(out_dir / "metrics.json", results)
    counts = np.asarray(results["none"]["confusion_matrix"])
    plot_confusion(counts, classes, out_dir / "confusion_matrix.png", normalise=False)
    plot_confusion(counts, classes, out_dir / "confusion_matrix_normalised.png", normalise=True)
    curve = f"T = {sources[0].temperature:g}" if single_model else label
    plot_reliability(faces.labels, {curve: plain}, out_dir / "reliability_diagram.png")
    predicted = plain.argmax(axis=1)
    wrong = np.flatnonzero(predicted != faces.labels)
    worst = wrong[np.argsort(-plain[wrong, predicted[wrong]])][:mistakes]
    plot_mistakes(
        faces.images[worst],
        [f"{classes[faces.labels[i]]}->{classes[predicted[i]]} {plain[i, predicted[i]]:.2f}" for i in worst],
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
        update_card(sources[0].path, metrics={split: {"data": str(data), **summary}})
    log.info(f"wrote {out_dir}/metrics.json, confusion_matrix*.png, reliability_diagram.png, mistakes.png")
    return results
