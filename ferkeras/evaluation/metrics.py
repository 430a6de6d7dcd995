"""Classification metrics from labels and probabilities."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from ferkeras.calibration import expected_calibration_error, negative_log_likelihood
from ferkeras.labels import CLASS_NAMES


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names=CLASS_NAMES) -> dict:
    """Accuracy, per-class precision/recall/F1/support, macro and weighted F1, confusion matrices.

    Macro-F1 averages the classes that occur in ``labels``: a class the split
    lacks has no F1 to speak of, and counting it as 0 would understate the
    model (such classes are listed under ``absent_classes``).
    """
    predicted = probabilities.argmax(axis=1)
    indices = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(labels, predicted, labels=indices, zero_division=0)
    counts = confusion_matrix(labels, predicted, labels=indices)
    normalised = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    present = support > 0
    # confidence against correctness, for probabilities a threshold can rely on (ferkeras.calibration)
    calibration = {
        "ece_15_bins": expected_calibration_error(labels, probabilities),
        "nll": negative_log_likelihood(labels, probabilities),
    }
    return {
        "samples": int(len(labels)),
        "accuracy": float((predicted == labels).mean()) if len(labels) else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "absent_classes": [name for name, there in zip(class_names, present) if not there],
        **(calibration if len(labels) else {}),
        "weighted_f1": float((f1 * support).sum() / max(support.sum(), 1)),
        "per_class": {
            name: {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
            for name, p, r, f, s in zip(class_names, precision, recall, f1, support)
        },
        "confusion_matrix": counts.tolist(),
        "confusion_matrix_normalised": np.round(normalised, 4).tolist(),
    }


def format_report(metrics: dict, title: str) -> str:
    """A plain-text table of the metrics, for the terminal."""
    lines = [
        f"{title}: accuracy {metrics['accuracy']:.4f}  macro-F1 {metrics['macro_f1']:.4f}  weighted-F1 {metrics['weighted_f1']:.4f}  "
        f"ECE {metrics.get('ece_15_bins', float('nan')):.4f}  NLL {metrics.get('nll', float('nan')):.4f}  ({metrics['samples']} faces)"
    ]
    lines.append(f"  {'class':<10}{'precision':>10}{'recall':>10}{'f1':>10}{'support':>10}")
    for name, row in metrics["per_class"].items():
        lines.append(f"  {name:<10}{row['precision']:>10.3f}{row['recall']:>10.3f}{row['f1']:>10.3f}{row['support']:>10d}")
    return "\n".join(lines)
