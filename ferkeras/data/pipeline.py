"""tf.data pipelines: in-memory faces -> augmentation (train only) -> batches.

Faces arrive decoded and resized (see :mod:`ferkeras.data.sources`), so the
pipeline never touches the disk. Augmentation runs once per batch through
``tf.numpy_function`` with a seed drawn from a seeded ``Dataset.random``: the
same seed gives the same batches, also when several batches run in parallel.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np
import tensorflow as tf

from ferkeras.config import AugmentConfig
from ferkeras.data.augment import build_train_transform
from ferkeras.data.mixing import mix_batch
from ferkeras.data.sources import Split
from ferkeras.images import to_model_input
from ferkeras.labels import NUM_CLASSES


class BatchAugmenter:
    """Applies an Albumentations pipeline to a batch with an explicit seed.

    One Compose per thread, because Compose keeps its random state on itself
    and tf.data may call from several threads at once.
    """

    def __init__(self, config: AugmentConfig, crop: int = 0):
        self.config = config
        self.crop = crop
        self._local = threading.local()

    def _transform(self):
        if not hasattr(self._local, "transform"):
            self._local.transform = build_train_transform(self.config, self.crop)
        return self._local.transform

    def __call__(self, images: np.ndarray, seed: np.int64) -> np.ndarray:
        transform = self._transform()
        transform.set_random_seed(int(seed) % (2**32))
        return np.stack([transform(image=image)["image"] for image in images])


def make_dataset(
    split: Split,
    *,
    batch_size: int,
    channels: int = 1,
    crop: int = 0,
    training: bool = False,
    augment: AugmentConfig | None = None,
    class_weights: np.ndarray | None = None,
    seed: int = 1337,
    epoch_offset: int = 0,
    mixup: float = 0.0,
    cutmix: float = 0.0,
    targets: np.ndarray | None = None,
    teacher: Callable[[np.ndarray], np.ndarray] | None = None,
    teacher_weight: float = 0.0,
) -> tf.data.Dataset:
    """Batches of ``(images float32 0..255, one-hot or soft labels[, sample weights])``.

    Training batches are shuffled, augmented, then blended by ``mixup`` /
    ``cutmix`` (:mod:`ferkeras.data.mixing`); ``epoch_offset`` moves the shuffle,
    augmentation and mixing seeds on, so a resumed run does not replay epoch 0.
    ``targets`` (N, 7) replace the one-hot labels (soft targets for distillation).
    ``teacher`` maps each augmented batch (float32 ``(B, S, S, C)``) to ``(B, 7)``
    probabilities, blended into the labels as ``(1 - teacher_weight) * labels +
    teacher_weight * teacher`` after mixing: the teacher sees what the student sees.
    Evaluation batches are centre-cropped, in file order, without weights.
    """
    size = crop or split.images.shape[1]
    labels = tf.one_hot(split.labels, NUM_CLASSES) if targets is None else tf.constant(targets, tf.float32)
    if not training:
        inputs = to_model_input(split.images, channels, crop)
        return _without_model_thread(
            tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(batch_size).prefetch(tf.data.AUTOTUNE)
        )

    weights = (np.ones(NUM_CLASSES, np.float32) if class_weights is None else class_weights)[split.labels].astype(np.float32)
    seed = seed + 1_000_003 * epoch_offset
    ds = tf.data.Dataset.from_tensor_slices((split.images, labels, weights))
    ds = ds.shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=len(split) >= batch_size)
    augmenter = BatchAugmenter(augment or AugmentConfig(), crop)
    seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True)

    def augment_batch(batch, batch_seed):
        images, onehot, weight = batch
        out = tf.numpy_function(augmenter, [images, batch_seed], tf.uint8, stateful=False)
        out = tf.ensure_shape(out, [None, size, size])
        out = tf.cast(out, tf.float32)[..., None]
        if channels > 1:
            out = tf.repeat(out, channels, axis=-1)
        out, onehot, weight = mix_batch(out, onehot, weight, batch_seed, mixup, cutmix)
        if teacher is not None:
            soft = tf.ensure_shape(tf.numpy_function(teacher, [out], tf.float32, stateful=False), [None, NUM_CLASSES])
            onehot = (1.0 - teacher_weight) * onehot + teacher_weight * soft
        return out, onehot, weight

    return _without_model_thread(
        tf.data.Dataset.zip((ds, seeds))
        .map(augment_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def _without_model_thread(ds: tf.data.Dataset) -> tf.data.Dataset:
    """Turn off tf.data's model-based autotuner (AUTOTUNE then means one call per core).

    Keras makes a new iterator every epoch, and deleting the old one waits for
    the autotuner's thread to wake, which its cancellation does not do (TF 2.21):
    each epoch stalled for up to a minute (its polling period) with no CPU in use,
    88 s epochs taking 140 s on a 2-core Zen 4 (docs/benchmarks.md).
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.with_options(options)


def class_weights(counts: np.ndarray, mode: str) -> np.ndarray:
    """Per-class loss weights from training-set counts, normalised to mean 1 over faces."""
    counts = np.maximum(np.asarray(counts, np.float64), 1.0)
    if mode == "none":
        weights = np.ones_like(counts)
    elif mode == "inverse":
        weights = 1.0 / counts
    elif mode == "sqrt-inverse":
        weights = 1.0 / np.sqrt(counts)
    else:
        raise ValueError(f"unknown class weighting {mode!r}")
    weights *= counts.sum() / (weights * counts).sum()
    return weights.astype(np.float32)
