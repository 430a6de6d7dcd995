"""Mixup and CutMix on training batches: regularisers that blend faces and labels.

Mixup (Zhang et al., 2018) blends two whole faces; CutMix (Yun et al., 2019)
pastes a box of one face onto another. Either way the one-hot labels and the
class weights are blended in the same proportion, so the loss still sums to one
face's worth. Randomness comes from the batch's seed (stateless ops), so the
same seed gives the same batch, as for the rest of the pipeline.
"""

from __future__ import annotations

import tensorflow as tf


def _seed(batch_seed: tf.Tensor, stream: int) -> tf.Tensor:
    return tf.stack([tf.cast(batch_seed, tf.int64), tf.constant(stream, tf.int64)])


def _beta(alpha: float, seed: tf.Tensor) -> tf.Tensor:
    a = tf.random.stateless_gamma([], seed=seed, alpha=alpha)
    b = tf.random.stateless_gamma([], seed=seed + 1, alpha=alpha)
    return a / (a + b)


def _cutmix_mask(size: tf.Tensor, lam: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """(size, size, 1) float mask, 1 inside a box of about ``(1 - lam)`` of the area."""
    side = tf.cast(tf.round(tf.cast(size, tf.float32) * tf.sqrt(1.0 - lam)), tf.int32)
    centre = tf.random.stateless_uniform([2], seed=seed, maxval=size, dtype=tf.int32)
    low = tf.clip_by_value(centre - side // 2, 0, size)
    high = tf.clip_by_value(centre - side // 2 + side, 0, size)
    positions = tf.range(size)
    rows = (positions >= low[0]) & (positions < high[0])
    cols = (positions >= low[1]) & (positions < high[1])
    return tf.cast(rows[:, None, None] & cols[None, :, None], tf.float32)


def mix_batch(
    images: tf.Tensor, onehot: tf.Tensor, weights: tf.Tensor, batch_seed: tf.Tensor, mixup: float = 0.0, cutmix: float = 0.0
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """Blend each face of a (N, S, S, C) batch with another face of the same batch.

    ``mixup`` and ``cutmix`` are the Beta(alpha, alpha) parameters of the blend
    proportion; 0 turns that method off. With both on, each batch uses one of the
    two, chosen at random.
    """
    if not mixup and not cutmix:
        return images, onehot, weights
    count = tf.shape(images)[0]
    partner = tf.argsort(tf.random.stateless_uniform([count], seed=_seed(batch_seed, 1)))
    other = tf.gather(images, partner)

    def by_mixup():
        lam = _beta(mixup, _seed(batch_seed, 2))
        return lam * images + (1.0 - lam) * other, lam

    def by_cutmix():
        lam = _beta(cutmix, _seed(batch_seed, 4))
        mask = _cutmix_mask(tf.shape(images)[1], lam, _seed(batch_seed, 6))
        kept = 1.0 - tf.reduce_mean(mask)  # the box was clipped at the border: use its real area
        return images * (1.0 - mask) + other * mask, kept

    if mixup and cutmix:
        use_cutmix = tf.random.stateless_uniform([], seed=_seed(batch_seed, 7)) < 0.5
        mixed, lam = tf.cond(use_cutmix, by_cutmix, by_mixup)
    else:
        mixed, lam = by_cutmix() if cutmix else by_mixup()

    def blend(values):
        return lam * values + (1.0 - lam) * tf.gather(values, partner)

    return mixed, blend(onehot), blend(weights)
