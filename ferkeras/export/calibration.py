"""Which training faces calibrate an int8 export.

TFLite's converter sets each int8 tensor's range from the smallest and largest
value the calibration faces produce there, so one face with an extreme activation
widens a range, and coarsens the steps, for every other face. On the shipped
default, 100 random faces gave 98.7 % top-1 agreement with the Keras model on
held-out training faces and 500 gave 96.7 %. Faces are therefore drawn from a pool
four times the sample, leaving out each face whose largest activation in some
layer is above that layer's ``trim`` quantile over the pool (or, when too few
faces are left, keeping those nearest to it): percentile calibration, done by
the choice of faces (docs/experiments.md).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from ferkeras.data.sources import Split

POOL_FACTOR = 4
BATCH = 250


def layer_extremes(model, x: np.ndarray) -> np.ndarray:
    """(faces, layers): each face's largest absolute activation in each layer of ``model``."""
    import keras

    layers = [
        layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer) and len(layer.output.shape) in (2, 4)
    ]
    probe = keras.Model(model.inputs, [layer.output for layer in layers])
    extremes = []
    for start in range(0, len(x), BATCH):
        outputs = probe.predict_on_batch(x[start : start + BATCH])
        extremes.append(np.stack([np.abs(np.asarray(o)).reshape(len(o), -1).max(axis=1) for o in outputs], axis=1))
    return np.concatenate(extremes)


def calibration_faces(
    model_path: Path, train: Split, prepare: Callable[[np.ndarray], np.ndarray], samples: int, trim: float
) -> np.ndarray:
    """``samples`` prepared training faces for int8 calibration; ``trim`` 1.0 draws them at random."""
    rng = np.random.default_rng(0)
    if trim >= 1.0:
        return prepare(train.images[rng.choice(len(train), min(samples, len(train)), replace=False)])
    from ferkeras.models.files import load_keras_model

    pool = prepare(train.images[rng.choice(len(train), min(POOL_FACTOR * samples, len(train)), replace=False)])
    extremes = layer_extremes(load_keras_model(model_path), pool)
    # How far above its layer's quantile each face goes at worst (<= 1: typical everywhere).
    score = (extremes / np.maximum(np.quantile(extremes, trim, axis=0), 1e-12)).max(axis=1)
    order = np.argsort(score, kind="stable")
    typical = order[score[order] <= 1.0]
    if len(typical) < samples:  # many layers, small pool: the faces nearest to typical
        typical = order[:samples]
    return pool[rng.choice(typical, min(samples, len(typical)), replace=False)]
