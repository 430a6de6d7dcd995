"""Property-based checks: whatever a user feeds the loaders, the config parser or the
predictors, the result is either correct or a :class:`FerKerasError`, never another exception."""

import os
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from ferkeras.config import load_config, parse_override
from ferkeras.data.sources import load_dataset, load_split
from ferkeras.errors import FerKerasError
from ferkeras.inference.predictor import Predictor
from ferkeras.inference.recognizer import Recognizer
from ferkeras.labels import CLASS_NAMES, CSV_USAGE_TO_SPLIT

SETTINGS = settings(
    max_examples=int(os.environ.get("FERKERAS_HYPOTHESIS_EXAMPLES", 150)),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
SIZE = 32


def _check_split(split):
    assert split.images.dtype == np.uint8 and split.images.shape[1:] == (SIZE, SIZE)
    assert len(split.images) == len(split.labels) == len(split.origins)
    assert len(split) and split.labels.min() >= 0 and split.labels.max() < len(CLASS_NAMES)


# --- CSV loader ----------------------------------------------------------------------------


def _pixels(side: int, seed: int) -> str:
    return " ".join(map(str, np.random.default_rng(seed).integers(0, 256, side * side)))


cells = st.one_of(st.text(max_size=12), st.integers(-5, 300).map(str), st.sampled_from(["nan", "inf", "-0", "1e3", " 3 ", ""]))
pixel_cells = st.one_of(
    st.builds(_pixels, st.sampled_from([1, 2, 4, 7, 48]), st.integers(0, 99)),
    st.lists(st.sampled_from(["0", "255", "256", "-1", "nan", "1.5", "x", "12"]), max_size=20).map(" ".join),
    st.text(max_size=30),
)
rows = st.lists(
    st.tuples(
        st.one_of(st.integers(-1, 8).map(str), cells),
        pixel_cells,
        st.one_of(st.sampled_from(list(CSV_USAGE_TO_SPLIT) + [" Training "]), cells),
    ),
    max_size=12,
)
headers = st.sampled_from(
    [
        "emotion,pixels,Usage",
        "\ufeffemotion,pixels,Usage",
        " emotion , pixels , Usage ",
        "emotion,pixels",
        "pixels,emotion,Usage,extra",
        "",
        "a,b,c",
    ]
)


@SETTINGS
@given(header=headers, body=rows, skip_bad=st.booleans())
def test_csv_loader_gives_faces_or_one_error(header, body, skip_bad):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fer2013.csv"
        lines = [header] + [",".join(f'"{c}"' if "," in c or '"' in c else c for c in row) for row in body]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="replace")
        try:
            splits = load_dataset(path, SIZE, skip_bad=skip_bad)
        except FerKerasError:
            return
        assert "train" in splits and "val" in splits
        for split in splits.values():
            _check_split(split)


# --- Folder loader -------------------------------------------------------------------------


def _encoded(kind: str, seed: int, suffix: str) -> bytes:
    rng = np.random.default_rng(seed)
    if kind == "bytes":
        return rng.integers(0, 256, int(rng.integers(0, 300)), dtype=np.uint8).tobytes()
    shape = (int(rng.integers(1, 70)), int(rng.integers(1, 70)))
    if kind == "colour":
        shape += (3,)
    dtype = np.uint16 if kind == "16bit" and suffix in (".png", ".tif") else np.uint8
    image = rng.integers(0, np.iinfo(dtype).max, shape, dtype=dtype)
    ok, data = cv2.imencode(suffix if suffix != ".jpeg" else ".jpg", image)
    data = data.tobytes()
    return data[: len(data) // 2] if kind == "truncated" else data


files = st.lists(
    st.tuples(
        st.sampled_from(CLASS_NAMES + ("Happy", "unknown")),
        st.sampled_from([".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".txt", ""]),
        st.sampled_from(["gray", "colour", "16bit", "truncated", "bytes"]),
        st.integers(0, 10_000),
    ),
    min_size=1,
    max_size=10,
)


@SETTINGS
@given(entries=files, skip_bad=st.booleans())
def test_folder_loader_gives_faces_or_one_error(entries, skip_bad):
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        for i, (label, suffix, kind, seed) in enumerate(entries):
            target = root / "train" / label / f"f{i}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_encoded(kind, seed, suffix) if suffix not in (".txt", "") else b"text")
        try:
            split = load_split(root, "train", SIZE, skip_bad=skip_bad)
        except FerKerasError:
            return
        _check_split(split)


# --- Config parser -------------------------------------------------------------------------

keys = st.sampled_from(
    [
        "phase1",
        "phase1.epochs",
        "phase1.learning_rate",
        "phase2.average_last",
        "phase2.patience",
        "data",
        "data.image_size",
        "data.crop",
        "data.val_fraction",
        "model.width",
        "model.stem",
        "model.weights",
        "augment.flip",
        "batch_size",
        "label_smoothing",
        "seed",
        "precision",
        "output_dir",
        "nope",
        "phase1.nope",
        "",
        "phase2.distill_weight",
        "phase2.init_from",
        "data.skip_bad",
    ]
)
values = st.one_of(
    st.sampled_from(
        [
            "nan",
            "inf",
            "-inf",
            "-1",
            "0",
            "1",
            "0.5",
            "1e9",
            "1e400",
            "[1]",
            "{a: 1}",
            "null",
            "~",
            "true",
            "small",
            "cbam",
            "[",
            "a: b: c",
            "'x",
            "2026-12-05",
            "0x10",
            "!!python/object:x",
        ]
    ),
    st.text(max_size=10),
)


@SETTINGS
@given(overrides=st.lists(st.tuples(keys, values), max_size=4), raw=st.lists(st.text(max_size=15), max_size=2))
def test_config_parser_gives_a_config_or_one_error(overrides, raw):
    items = [f"{k}={v}" for k, v in overrides] + raw
    try:
        config = load_config(None, "smoke", [parse_override(item) for item in items])
    except FerKerasError:
        return
    assert config.batch_size >= 1 and config.phase1.learning_rate > 0
    assert np.isfinite([config.phase1.learning_rate, config.phase2.learning_rate, config.label_smoothing]).all()


@SETTINGS
@given(
    text=st.one_of(
        st.text(max_size=60),
        st.sampled_from(
            [
                "phase1: {epochs: .nan}",
                "data: [1]",
                "- a",
                "x: !!binary AA",
                "model:\n  width: -2",
                "? a\n: b",
                "{",
                "batch_size: 2\n" * 2,
            ]
        ),
    )
)
def test_config_files_give_a_config_or_one_error(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "c.yaml"
        path.write_text(text, encoding="utf-8", errors="replace")
        try:
            load_config(path)
        except FerKerasError:
            pass


# --- Predictor and Recognizer inputs -------------------------------------------------------

dtypes = st.sampled_from([np.uint8, np.uint16, np.int16, np.int64, np.float32, np.float64, np.bool_])
shapes = st.one_of(
    hnp.array_shapes(min_dims=2, max_dims=2, min_side=0, max_side=40),
    st.tuples(st.integers(0, 40), st.integers(0, 40), st.integers(1, 5)),
    hnp.array_shapes(min_dims=0, max_dims=1, max_side=10),
    hnp.array_shapes(min_dims=4, max_dims=4, max_side=6),
)
images = dtypes.flatmap(lambda dtype: shapes.flatmap(lambda shape: hnp.arrays(dtype, shape)))
small_values = st.one_of(
    images, hnp.arrays(np.float32, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.floats(0, 1, width=32))
)


@pytest.fixture(scope="module")
def predictor(exported_model):
    return Predictor.load(exported_model / "model_int8.tflite")


@pytest.fixture(scope="module")
def recognizer(exported_model):
    return Recognizer.load(exported_model / "model_int8.tflite")


def _check_probabilities(p, count):
    assert p.shape == (count, len(CLASS_NAMES)) and p.dtype == np.float32
    assert np.isfinite(p).all() and np.allclose(p.sum(axis=1), 1, atol=0.05)


@SETTINGS
@given(
    faces=st.one_of(st.lists(st.one_of(small_values, st.none()), max_size=4), small_values, st.integers(), st.text(max_size=3))
)
def test_predict_gives_probabilities_or_one_error(predictor, faces):
    try:
        probabilities = predictor.predict(faces)
    except FerKerasError:
        return
    count = 1 if isinstance(faces, np.ndarray) and faces.ndim <= 2 else len(faces)
    _check_probabilities(probabilities, count)


@SETTINGS
@given(frame=st.one_of(images, st.none(), st.integers()))
def test_recognizer_gives_faces_or_one_error(recognizer, frame):
    try:
        faces = recognizer.process(frame)
    except FerKerasError:
        return
    for face in faces:
        _check_probabilities(face.probabilities[None], 1)
