"""Mixup and CutMix: images, labels and weights blended in the same proportion."""

import numpy as np
import pytest
import tensorflow as tf

from ferkeras.config import AugmentConfig
from ferkeras.data.mixing import mix_batch
from ferkeras.data.pipeline import make_dataset
from ferkeras.data.sources import Split

OFF = AugmentConfig(flip=0, affine=0, brightness_contrast=0, dropout=0, blur=0)
INTENSITY = np.arange(7) * 30.0 + 20.0  # class k's faces are flat images of this value
WEIGHT = np.arange(7) * 0.5 + 1.0


def _flat_faces(per_class: int = 4, size: int = 16) -> Split:
    labels = np.repeat(np.arange(7), per_class).astype(np.int32)
    images = np.broadcast_to(INTENSITY[labels, None, None], (len(labels), size, size)).astype(np.uint8)
    return Split("train", np.ascontiguousarray(images), labels, [f"face {i}" for i in range(len(labels))])


def _mixed_batches(**mix):
    ds = make_dataset(
        _flat_faces(), batch_size=14, training=True, augment=OFF, class_weights=WEIGHT.astype(np.float32), seed=3, **mix
    )
    return [tuple(t.numpy() for t in batch) for batch in ds]


def test_mixup_blends_images_labels_and_weights_alike():
    batches = _mixed_batches(mixup=0.4)
    blended = 0
    for images, labels, weights in batches:
        np.testing.assert_allclose(labels.sum(axis=1), 1.0, rtol=1e-6)
        # a blend of two flat faces is flat, at the label-weighted intensity
        np.testing.assert_allclose(images.std(axis=(1, 2, 3)), 0.0, atol=1e-3)
        np.testing.assert_allclose(images[:, 0, 0, 0], labels @ INTENSITY, rtol=1e-5)
        np.testing.assert_allclose(weights, labels @ WEIGHT, rtol=1e-5)
        blended += int((labels.max(axis=1) < 1.0).sum())
    assert blended > 0


def test_cutmix_pastes_a_box_whose_area_is_the_label_share():
    for images, labels, _ in _mixed_batches(cutmix=1.0):
        for image, label in zip(images[..., 0], labels):
            values, counts = np.unique(image, return_counts=True)
            assert len(values) <= 2
            shares = dict(zip(values, counts / image.size))
            for k in np.flatnonzero(label > 1e-6):
                assert shares[INTENSITY[k]] == pytest.approx(label[k], abs=1e-5)


def test_mixing_is_deterministic_per_seed_and_off_by_default():
    a, b = _mixed_batches(mixup=0.4, cutmix=1.0), _mixed_batches(mixup=0.4, cutmix=1.0)
    assert all(np.array_equal(p[0], q[0]) and np.array_equal(p[1], q[1]) for p, q in zip(a, b))
    for _, labels, _ in _mixed_batches():
        assert set(np.unique(labels)) == {0.0, 1.0}


def test_mix_batch_with_both_uses_one_method_per_batch():
    images = tf.constant(np.stack([np.full((8, 8, 1), v, np.float32) for v in (0.0, 100.0)] * 4))
    onehot = tf.one_hot([0, 1] * 4, 7)
    kinds = set()
    for seed in range(20):
        mixed, labels, _ = mix_batch(images, onehot, tf.ones(8), tf.constant(seed, tf.int64), mixup=0.4, cutmix=1.0)
        flat = np.allclose(mixed.numpy().std(axis=(1, 2, 3)), 0.0, atol=1e-3)
        kinds.add("mixup" if flat else "cutmix")
    assert kinds == {"mixup", "cutmix"}


def test_a_training_phase_with_mixing_runs(tmp_path):
    import json

    from conftest import train_smoke
    from synthetic import make_folder_dataset

    data = make_folder_dataset(tmp_path / "data", per_class=6, size=32)
    result = train_smoke(data, tmp_path / "run", "--phase", "1", "--set", "phase1.mixup=0.2", "--set", "phase1.cutmix=1.0")
    assert result.exit_code == 0, result.output
    config = (tmp_path / "run" / "config.yaml").read_text()
    assert "mixup: 0.2" in config and "cutmix: 1.0" in config
    history = json.loads((tmp_path / "run" / "phase1" / "state.json").read_text())["history"]
    assert np.isfinite(history[0]["loss"])
