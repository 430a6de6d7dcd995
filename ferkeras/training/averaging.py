"""Weight averaging over a phase's last epochs (stochastic weight averaging).

Late in a cosine schedule the weights move around one minimum from epoch to
epoch; their average sits nearer its centre and generalises better than any one
epoch (Izmailov et al., 2018, "Averaging Weights Leads to Wider Optima").
BatchNorm statistics of averaged weights are not the average of the statistics,
so the paper estimates them again from the training data
(``recalibrate_batchnorm``); the averaged statistics are the other choice
(``PhaseConfig.average_batchnorm``), which scored as well or better on FER2013.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from ferkeras.models.resnet import batchnorm_layers

SNAPSHOT_DIR = "snapshots"


def snapshot_path(phase_dir: Path, epoch: int) -> Path:
    """Where the weights after ``epoch`` (1-based, within the phase) are kept."""
    return phase_dir / SNAPSHOT_DIR / f"epoch_{epoch:03d}.weights.h5"


def average_snapshots(model: keras.Model, paths: list[Path]) -> None:
    """Set ``model``'s weights to the mean of the weight files in ``paths`` (``.weights.h5`` or ``.keras``)."""
    if not paths:
        raise ValueError("no weight snapshots to average")
    total: list[np.ndarray] | None = None
    for path in paths:
        model.load_weights(path)
        weights = [w.astype(np.float64) for w in model.get_weights()]
        total = weights if total is None else [t + w for t, w in zip(total, weights)]
    model.set_weights([t / len(paths) for t in total])


def averaged_epochs(epochs: int, average_last: int) -> range:
    """The 1-based epochs of a phase whose weights ``average_last`` averages."""
    return range(epochs - average_last + 1, epochs + 1)


def recalibrate_batchnorm(model: keras.Model, images: np.ndarray, batch_size: int = 256, seed: int = 0) -> int:
    """Re-estimate every trainable BatchNorm's moving mean and variance on ``images``.

    Batches are drawn in a seeded random order, as in training: in file order a
    batch holds one class, and the mean of within-class variances would
    understate the variance the layer sees. The statistics become the plain
    average over the batches (momentum ``k / (k + 1)`` at batch ``k``), not an
    exponential average dominated by the last few. Frozen BatchNorm layers keep
    their statistics. Returns the number of layers updated.
    """
    layers = [layer for layer in batchnorm_layers(model) if layer.trainable]
    momenta = [layer.momentum for layer in layers]
    order = np.random.default_rng(seed).permutation(len(images))
    try:
        for step, start in enumerate(range(0, len(images), batch_size)):
            for layer in layers:
                layer.momentum = step / (step + 1)
            model(images[np.sort(order[start : start + batch_size])], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum
    return len(layers)
