import numpy as np
import pytest
import tensorflow as tf

from ferkeras.config import AugmentConfig
from ferkeras.data import load_split
from ferkeras.data.augment import build_train_transform
from ferkeras.data.pipeline import BatchAugmenter, class_weights, make_dataset, to_model_input
from ferkeras.images import center_crop, ten_crops

OFF = AugmentConfig(flip=0, affine=0, brightness_contrast=0, dropout=0, blur=0)


@pytest.fixture(scope="module")
def train_split(folder_data):
    return load_split(folder_data, "train", 48)


def _batches(ds):
    return [tuple(t.numpy() for t in batch) for batch in ds]


def test_training_batches_shapes_and_weights(train_split):
    weights = class_weights(train_split.class_counts(), "inverse")
    ds = make_dataset(train_split, batch_size=16, channels=3, crop=40, training=True, class_weights=weights)
    assert ds.element_spec[0].shape.as_list() == [None, 40, 40, 3]
    x, y, w = next(iter(ds))
    assert x.shape == (16, 40, 40, 3) and x.dtype == tf.float32
    assert y.shape == (16, 7) and np.allclose(y.numpy().sum(axis=1), 1)
    assert np.allclose(x.numpy()[..., 0], x.numpy()[..., 2])  # gray replicated
    assert 0 <= x.numpy().min() and x.numpy().max() <= 255
    assert np.allclose(w.numpy(), weights[y.numpy().argmax(axis=1)])
    assert len(list(ds)) == len(train_split) // 16  # drop_remainder


def test_same_seed_same_batches(train_split):
    a = _batches(make_dataset(train_split, batch_size=8, training=True, seed=5))
    b = _batches(make_dataset(train_split, batch_size=8, training=True, seed=5))
    c = _batches(make_dataset(train_split, batch_size=8, training=True, seed=6))
    assert all(np.array_equal(p[0], q[0]) for p, q in zip(a, b))
    assert not all(np.array_equal(p[0], q[0]) for p, q in zip(a, c))


def test_epochs_differ_and_offset_moves_on(train_split):
    ds = make_dataset(train_split, batch_size=8, training=True, seed=5)
    first, second = _batches(ds), _batches(ds)
    assert not np.array_equal(first[0][0], second[0][0])
    resumed = _batches(make_dataset(train_split, batch_size=8, training=True, seed=5, epoch_offset=1))
    assert not np.array_equal(resumed[0][0], first[0][0])


def test_strength_zero_is_identity(train_split):
    ds = make_dataset(train_split, batch_size=len(train_split), training=True, augment=OFF, seed=1)
    x, y, _ = next(iter(ds))
    # shuffled, but every output image is one of the inputs, unchanged
    originals = {img.tobytes(): label for img, label in zip(train_split.images, train_split.labels)}
    for image, onehot in zip(x.numpy()[..., 0].astype(np.uint8), y.numpy()):
        assert originals[image.tobytes()] == onehot.argmax()


def test_augmentation_changes_images(train_split):
    strong = AugmentConfig(flip=1.0, affine=0.1, brightness_contrast=0.3, dropout=1.0, blur=0.5)
    out = BatchAugmenter(strong)(train_split.images[:8], np.int64(3))
    assert out.shape == (8, 48, 48) and out.dtype == np.uint8
    assert not np.array_equal(out, train_split.images[:8])
    again = BatchAugmenter(strong)(train_split.images[:8], np.int64(3))
    assert np.array_equal(out, again)


def test_transform_lists_only_enabled_steps():
    names = [type(t).__name__ for t in build_train_transform(OFF, crop=44).transforms]
    assert names == ["RandomCrop"]
    names = [type(t).__name__ for t in build_train_transform(AugmentConfig()).transforms]
    assert names == ["Affine", "HorizontalFlip", "RandomBrightnessContrast", "GaussianBlur", "CoarseDropout"]


def test_eval_dataset_is_ordered_and_cropped(train_split):
    ds = make_dataset(train_split, batch_size=32, crop=44)
    x = np.concatenate([b[0] for b in _batches(ds)])
    assert x.shape == (len(train_split), 44, 44, 1)
    assert np.array_equal(x[..., 0], center_crop(train_split.images, 44).astype(np.float32))
    assert np.array_equal(to_model_input(train_split.images[:2], 1, 44), x[:2])


def test_new_epoch_iterators_do_not_wait_for_the_autotuner(train_split):
    # Deleting an iterator waits for the autotuner's thread, which sleeps up to a
    # minute: Keras deletes one per epoch, so the pipelines run without it.
    for training in (True, False):
        ds = make_dataset(train_split, batch_size=8, training=training)
        assert ds.options().autotune.enabled is False
        assert len(_batches(ds)) == len(_batches(ds))  # every epoch complete


def test_eager_and_tf_data_augmentation_agree(train_split):
    augmenter = BatchAugmenter(AugmentConfig())
    eager = augmenter(train_split.images[:4], np.int64(11))
    graph = tf.numpy_function(augmenter, [tf.constant(train_split.images[:4]), tf.constant(11, tf.int64)], tf.uint8)
    assert np.array_equal(eager, graph.numpy())


def test_ten_crops():
    images = np.arange(2 * 6 * 6, dtype=np.uint8).reshape(2, 6, 6)
    crops = ten_crops(images, 4)
    assert len(crops) == 10 and all(c.shape == (2, 4, 4) for c in crops)
    assert np.array_equal(crops[0], images[:, :4, :4])
    assert np.array_equal(crops[4], images[:, 1:5, 1:5])
    assert np.array_equal(crops[5], images[:, :4, :4][:, :, ::-1])


def test_class_weights():
    counts = np.array([100, 10, 100, 100, 100, 100, 100])
    inverse = class_weights(counts, "inverse")
    assert inverse[1] == pytest.approx(10 * inverse[0])
    assert (inverse * counts).sum() == pytest.approx(counts.sum())
    assert np.allclose(class_weights(counts, "none"), 1)
    sqrt = class_weights(counts, "sqrt-inverse")
    assert sqrt[1] / sqrt[0] == pytest.approx(np.sqrt(10))
