"""Temperature scaling: probabilities whose confidence matches how often they are right.

A network trained with cross-entropy tends to be over- or under-confident.
Dividing its logits by one temperature ``T`` (fitted on faces it did not train
on, stored in the model card) fixes most of that without changing any
prediction's rank, so accuracy stays the same. The models here end in a
softmax, so the logits are recovered as log-probabilities. numpy only: the edge
runtime applies it to every model format.
"""

from __future__ import annotations

import numpy as np

#: Probabilities are clipped here before the log (int8 models output exact zeros).
_FLOOR = 1e-7


def apply_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log(p) / T)`` row by row; ``T == 1`` returns ``p`` unchanged."""
    if temperature == 1.0:
        return probabilities
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), _FLOOR, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    scaled = np.exp(logits)
    return (scaled / scaled.sum(axis=-1, keepdims=True)).astype(np.float32)


def negative_log_likelihood(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """Mean of ``-log p(true class)``."""
    picked = np.asarray(probabilities, np.float64)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, _FLOOR, 1.0)).mean())


def reliability_bins(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> list[tuple[int, float, float]]:
    """(faces, mean confidence, accuracy) of each non-empty one of ``bins`` equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    return [
        (int((which == b).sum()), float(confidence[which == b].mean()), float(correct[which == b].mean()))
        for b in range(bins)
        if (which == b).any()
    ]


def expected_calibration_error(labels: np.ndarray, probabilities: np.ndarray, bins: int = 15) -> float:
    """Mean gap between confidence and accuracy over ``bins`` equal-width confidence bins, weighted by count."""
    return float(
        sum(count * abs(confidence - accuracy) for count, confidence, accuracy in reliability_bins(labels, probabilities, bins))
        / len(labels)
    )


def fit_temperature(labels: np.ndarray, probabilities: np.ndarray) -> float:
    """The temperature that minimises the negative log-likelihood (golden-section search on log T)."""
    low, high = np.log(0.05), np.log(20.0)
    ratio = (np.sqrt(5) - 1) / 2

    def loss(log_t: float) -> float:
        return negative_log_likelihood(labels, apply_temperature(probabilities, float(np.exp(log_t))))

    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = loss(a), loss(b)
    for _ in range(60):
        if fa < fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    return round(float(np.exp((low + high) / 2)), 4)
