"""Conversion to TFLite/ONNX/SavedModel, parity, the Predictor, and bad inputs."""

import json
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from ferkeras.artifacts import SHIPPED_MODELS
from ferkeras.card import write_card
from ferkeras.cli import main
from ferkeras.data import load_split
from ferkeras.errors import FerKerasError
from ferkeras.export.convert import convert_tflite, float_layers, layer_name, xnnpack_refused_layers
from ferkeras.inference.predictor import Predictor


def _card(folder):
    return json.loads((folder / "model_card.json").read_text())


def test_every_format_agrees_with_keras(exported_model):
    card = _card(exported_model)
    artifacts = card["artifacts"]
    assert {"tflite_none", "tflite_float16", "tflite_dynamic", "tflite_int8", "onnx", "saved_model"} <= set(artifacts)
    keras_accuracy = artifacts["tflite_none"]["parity"]["accuracy_keras"]
    assert keras_accuracy > 0.9, "the tiny model should have learned the blobs"
    for key, entry in artifacts.items():
        if key == "keras":
            continue
        parity = entry["parity"]
        floor = 0.97 if key == "tflite_int8" else 0.99
        assert parity["top1_agreement"] >= floor, (key, parity)
        assert parity["faces"] == 140
        assert entry["size_bytes"] > 10_000
    assert artifacts["tflite_int8"]["size_bytes"] < artifacts["tflite_none"]["size_bytes"] / 2
    assert artifacts["tflite_none"]["parity"]["max_abs_probability_difference"] < 1e-4


def test_predictor_same_interface_for_all_formats(exported_model):
    faces = load_split(exported_model / "data", "val", 32).images[:20]
    keras_predictor = Predictor.load(exported_model / "model.keras")
    reference = keras_predictor.predict(faces)
    assert reference.shape == (20, 7)
    # flip averaging = the mean over the face and its mirror image, in one call
    mirrored = keras_predictor.predict(np.ascontiguousarray(faces[:, :, ::-1]))
    assert np.abs(mirrored - reference).max() > 1e-3  # the mirror image really is another input
    np.testing.assert_allclose(keras_predictor.predict(faces, flip=True), (reference + mirrored) / 2, atol=1e-5)
    np.testing.assert_allclose(reference.sum(axis=1), 1, rtol=1e-4)
    for name, atol in (("model.tflite", 1e-4), ("model_float16.tflite", 2e-2), ("model.onnx", 1e-4), ("model_int8.tflite", 0.1)):
        predictor = Predictor.load(exported_model / name)
        assert predictor.class_names[3] == "happy" and predictor.input_size == 32
        got = predictor.predict(faces)
        assert got.shape == (20, 7) and got.dtype == np.float32
        np.testing.assert_allclose(got, reference, atol=atol, err_msg=name)
        # any face size and colour: a BGR 100x100 crop is resized by the predictor
        bgr = np.repeat(np.kron(faces[:2], np.ones((3, 3), np.uint8))[..., None], 3, axis=-1)
        assert predictor.predict(bgr).shape == (2, 7)
        assert predictor.predict([]).shape == (0, 7)


def test_convert_cli_and_bad_inputs(tiny_model, tmp_path):
    runner = CliRunner()
    result = runner.invoke(
        main, ["convert", "--model", str(tiny_model), "--tflite", "--quantize", "dynamic", "--parity-samples", "30"]
    )
    assert result.exit_code == 0, result.output
    assert "agreement" in result.output and "30 val faces" in result.output
    no_flags = runner.invoke(main, ["convert", "--model", str(tiny_model)])
    assert no_flags.exit_code != 0 and "--tflite" in no_flags.output
    with pytest.raises(FerKerasError, match="int8 quantization needs calibration images"):
        convert_tflite(tiny_model / "model.keras", "int8", None)
    no_data = runner.invoke(main, ["convert", "--model", str(tiny_model), "--tflite", "--data", str(tmp_path / "nothing")])
    assert no_data.exit_code != 0 and "parity and calibration need faces" in no_data.output


def test_int8_conversion_does_not_warn_about_tf_lite_interpreter(exported_model, tmp_path):
    calibration = np.random.default_rng(0).uniform(0, 255, (16, 32, 32, 1)).astype(np.float32)
    model, saved = exported_model / "model.keras", exported_model / "saved_model"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        target = convert_tflite(model, "int8", calibration, output=tmp_path / "m.tflite", saved_model=saved)
    assert target.stat().st_size > 10_000
    assert not [w for w in caught if "tf.lite.Interpreter is deprecated" in str(w.message)]
    # CBAM's attention kept in float (the default) makes another graph than all-int8
    all_int8 = convert_tflite(model, "int8", calibration, output=tmp_path / "all.tflite", float_ops=(), saved_model=saved)
    assert all_int8.read_bytes() != target.read_bytes()


def test_int8_float_ops_option(tiny_model):
    runner = CliRunner()
    bad = runner.invoke(main, ["convert", "--model", str(tiny_model), "--quantize", "int8", "--int8-float-ops", "MUL,not an op"])
    assert bad.exit_code != 0 and "--int8-float-ops: NOT AN OP is not a TFLite op type" in bad.output
    result = runner.invoke(
        main,
        [
            "convert",
            "--model",
            str(tiny_model),
            "--quantize",
            "int8",
            "--int8-float-ops",
            "mul, mean",
            "--parity-samples",
            "30",
            "--calibration-samples",
            "16",
            "--calibration-trim",
            "0.9",
        ],
    )
    assert result.exit_code == 0, result.output
    assert _card(tiny_model)["artifacts"]["tflite_int8"]["float_ops"] == ["MUL", "MEAN"]
    # without options, convert repeats the settings that made the current int8 export
    again = runner.invoke(main, ["convert", "--model", str(tiny_model), "--quantize", "int8", "--parity-samples", "30"])
    assert again.exit_code == 0, again.output
    made = _card(tiny_model)["artifacts"]["tflite_int8"]
    assert made["float_ops"] == ["MUL", "MEAN"] and made["calibration_samples"] == 16 and made["calibration_trim"] == 0.9


def test_int8_settings_come_from_the_card_then_the_config():
    from ferkeras.config import ExportConfig, parse_float_ops
    from ferkeras.export.workflow import int8_settings

    defaults = ExportConfig()
    assert int8_settings({}) == {
        "float_ops": parse_float_ops(defaults.int8_float_ops),
        "calibration_samples": 500,
        "calibration_trim": defaults.calibration_trim,
    }
    export = {"int8_float_ops": "MUL", "calibration_samples": 64, "calibration_trim": 0.9}
    configured = {"training": {"config": {"export": export}}}
    assert int8_settings(configured) == {"float_ops": ("MUL",), "calibration_samples": 64, "calibration_trim": 0.9}
    made = {**configured, "artifacts": {"tflite_int8": {"float_ops": ["ADD"], "calibration_samples": 32}}}
    # an export recorded before faces were trimmed drew them at random
    assert int8_settings(made) == {"float_ops": ("ADD",), "calibration_samples": 32, "calibration_trim": 1.0}
    assert int8_settings(made, ("SUM",), 8, 0.8) == {"float_ops": ("SUM",), "calibration_samples": 8, "calibration_trim": 0.8}


def test_calibration_leaves_out_a_face_with_extreme_activations(tiny_model):
    from ferkeras.data.sources import Split
    from ferkeras.export.calibration import calibration_faces, layer_extremes
    from ferkeras.inference.predictor import Predictor
    from ferkeras.models.files import load_keras_model

    reference = Predictor.load(tiny_model / "model.keras")
    rng = np.random.default_rng(3)
    size = reference.face_resize
    images = rng.integers(90, 160, (40, size, size), dtype=np.uint8)
    images[7] = np.tile(np.array([0, 255], np.uint8), size * size // 2).reshape(size, size)  # harsh black and white stripes
    train = Split("train", images, np.zeros(40, np.int32), [f"face {i}" for i in range(40)])
    x = reference.prepare(images)
    extremes = layer_extremes(load_keras_model(tiny_model / "model.keras"), x)
    assert extremes.shape[0] == 40 and extremes[7].max() == extremes.max()

    def picked(trim):
        faces = calibration_faces(tiny_model / "model.keras", train, reference.prepare, 10, trim)
        return {int(np.flatnonzero((x == face).all(axis=(1, 2, 3)))[0]) for face in faces}

    trimmed = picked(0.9)
    assert len(trimmed) == 10 and 7 not in trimmed
    score = (extremes / np.quantile(extremes, 0.9, axis=0)).max(axis=1)
    assert score[sorted(trimmed)].max() <= np.sort(score)[9]  # the ten nearest to typical
    assert len(picked(1.0)) == 10


@pytest.mark.parametrize("name", SHIPPED_MODELS)
def test_shipped_cards_say_how_their_int8_export_was_made(name):
    from conftest import REPO

    from ferkeras.export.workflow import int8_settings

    card = _card(REPO / "saved_models" / name)
    made = card["artifacts"]["tflite_int8"]
    assert int8_settings(card) == {
        "float_ops": tuple(made["float_ops"]),
        "calibration_samples": made["calibration_samples"],
        "calibration_trim": made.get("calibration_trim", 1.0),
    }


def _narrow_unit_model(folder):
    """A 2x2-pixel model whose dense unit sees pixels 0-255 but outputs only 0-0.004 on its faces."""
    import keras

    pixels = keras.Input((2, 2, 1))
    narrow = keras.layers.Dense(1, activation="relu", name="narrow")(keras.layers.Flatten()(pixels))
    outputs = keras.layers.Dense(7, activation="softmax", name="head")(narrow)
    model = keras.Model(pixels, outputs)
    model.get_layer("narrow").set_weights([np.array([[1.0], [-1.0], [0.0], [0.0]], np.float32), np.zeros(1, np.float32)])
    model.get_layer("head").set_weights([np.linspace(-300, 300, 7, dtype=np.float32)[None], np.zeros(7, np.float32)])
    folder.mkdir()
    model.save(folder / "model.keras")
    write_card(folder / "model.keras", {"class_names": [str(i) for i in range(7)], "input": {"size": 2, "channels": 1}})
    rng = np.random.default_rng(0)
    faces = rng.uniform(0, 255, (64, 2, 2, 1)).astype(np.float32)
    faces[:, 0, 1, 0] = faces[:, 0, 0, 0] - rng.uniform(0, 0.004, 64)  # pixel 1 trails pixel 0 by < 0.004
    return model, faces


def test_int8_keeps_layers_xnnpack_cannot_requantize_in_float(tmp_path, caplog):
    import tensorflow as tf

    model, faces = _narrow_unit_model(tmp_path / "narrow")
    # The plain int8 conversion: the narrow unit's requantization scale is ~400, XNNPACK refuses the model
    model.export(str(tmp_path / "sm"), format="tf_saved_model", verbose=False)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(tmp_path / "sm"))
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([face[None]] for face in faces)
    (tmp_path / "plain").mkdir()
    (tmp_path / "plain" / "model_int8.tflite").write_bytes(plain := converter.convert())
    shutil.copy(tmp_path / "narrow" / "model_card.json", tmp_path / "plain")
    assert [layer_name(name) for name in xnnpack_refused_layers(plain)] == ["narrow"]
    # Predictor falls back to the built-in kernels, and says so
    fallback = Predictor.load(tmp_path / "plain" / "model_int8.tflite")
    assert "XNNPACK cannot run this model" in caplog.text
    caplog.clear()
    np.testing.assert_allclose(fallback.predict_prepared(faces).sum(1), 1, atol=0.02)  # int8 softmax steps of 1/256
    # (Both int8 models lose the 0.004 difference when they quantize the input: this toy checks which kernels run.)

    target = convert_tflite(tmp_path / "narrow" / "model.keras", "int8", faces)
    assert "kept in float32, as XNNPACK refuses their requantization scale (>= 256): narrow" in caplog.text
    caplog.clear()
    flatbuffer = target.read_bytes()
    assert xnnpack_refused_layers(flatbuffer) == [] and float_layers(flatbuffer) == ["narrow"]
    probabilities = Predictor.load(target).predict_prepared(faces)
    assert "XNNPACK" not in caplog.text  # no fallback: XNNPACK runs it
    assert probabilities.shape == (64, 7)
    np.testing.assert_allclose(probabilities.sum(1), 1, atol=0.02)


def test_predictor_bad_files(tiny_model, tmp_path):
    (tmp_path / "model.pt").write_text("x")
    with pytest.raises(FerKerasError, match="unsupported model file .*model.pt"):
        Predictor.load(tmp_path / "model.pt")
    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "model.tflite").write_bytes((tiny_model / "model.keras").read_bytes()[:100])
    with pytest.raises(FerKerasError, match="no model card for"):
        Predictor.load(lonely / "model.tflite")
    (lonely / "model_card.json").write_text((tiny_model / "model_card.json").read_text())
    with pytest.raises(FerKerasError, match="cannot load TFLite model .*model.tflite"):
        Predictor.load(lonely / "model.tflite")
    with pytest.raises(FerKerasError, match="model not found"):
        Predictor.load(tmp_path / "missing.onnx")
    with pytest.raises(FerKerasError, match="no model file in"):
        Predictor.load(tmp_path)


def test_evaluate_tflite_on_csv_and_train_test_layouts(exported_model, csv_data, tmp_path):
    from synthetic import make_folder_dataset

    from ferkeras.evaluation.report import evaluate

    on_csv = evaluate(exported_model / "model_int8.tflite", csv_data, "test", output=tmp_path / "csv")
    assert on_csv["format"] == "tflite" and on_csv["none"]["samples"] == 42
    layout = make_folder_dataset(tmp_path / "tt", per_class=4, size=32, splits=("train", "test"))
    on_test = evaluate(exported_model / "model.onnx", layout, "test", tta="flip", output=tmp_path / "tt_out")
    assert on_test["flip"]["samples"] == 28
    assert (tmp_path / "tt_out" / "confusion_matrix.png").exists()
