"""Temperature scaling: fitting, the calibration measures, and every format applying the card's temperature."""

import json

import numpy as np
import pytest
from conftest import invoke

from ferkeras.calibration import apply_temperature, expected_calibration_error, fit_temperature, negative_log_likelihood
from ferkeras.inference.predictor import Predictor


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _sample(n=4000, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 1.5, (n, 7))
    labels = np.array([rng.choice(7, p=p) for p in _softmax(logits)])
    return logits, labels


def test_fit_recovers_the_temperature_of_over_and_under_confident_probabilities():
    logits, labels = _sample()
    for sharpness in (0.5, 2.0):
        distorted = _softmax(logits * sharpness).astype(np.float32)  # a model too flat or too sharp
        fitted = fit_temperature(labels, distorted)
        assert fitted == pytest.approx(sharpness, rel=0.1)  # dividing by it undoes the distortion
        fixed = apply_temperature(distorted, fitted)
        assert expected_calibration_error(labels, fixed) < expected_calibration_error(labels, distorted)
        assert negative_log_likelihood(labels, fixed) < negative_log_likelihood(labels, distorted)
        assert (fixed.argmax(1) == distorted.argmax(1)).all()  # ranks, hence accuracy, unchanged


def test_measures_on_known_cases():
    labels = np.array([0, 1])
    sure = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert expected_calibration_error(labels, sure) == 0.0 and negative_log_likelihood(labels, sure) == pytest.approx(0, abs=1e-6)
    half = np.array([[0.5, 0.5], [0.5, 0.5]])  # 50 % confident, right half the time
    assert expected_calibration_error(labels, half) == pytest.approx(0.0)
    assert negative_log_likelihood(labels, half) == pytest.approx(np.log(2))
    assert apply_temperature(half, 1.0) is half


@pytest.mark.parametrize("file", ["model.keras", "model_int8.tflite", "model.onnx"])
def test_every_format_applies_the_cards_temperature(exported_model, tmp_path, file):
    faces = np.random.default_rng(0).integers(0, 255, (5, 32, 32), np.uint8)
    raw = Predictor.load(exported_model / file).predict(faces)
    (tmp_path / file).write_bytes((exported_model / file).read_bytes())
    card = json.loads((exported_model / "model_card.json").read_text())
    card["calibration"] = {"temperature": 2.0}
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    calibrated = Predictor.load(tmp_path / file).predict(faces)
    np.testing.assert_allclose(calibrated, apply_temperature(raw, 2.0), atol=1e-5)


def test_calibrate_command_stores_the_temperature_and_evaluate_reports_calibration(exported_model, tmp_path):
    for name in ("model.keras", "model_card.json"):
        (tmp_path / name).write_bytes((exported_model / name).read_bytes())
    data = json.loads((exported_model / "model_card.json").read_text())["training"]["config"]["data"]["root"]
    result = invoke("calibrate", "--model", tmp_path, "--data", data)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "model_card.json").read_text())["calibration"]
    assert record["temperature"] > 0 and set(record["ece_15_bins"]) == {"before", "after"}
    assert record["fitted_on"]["split"] == "val" and (tmp_path / "eval_val" / "calibration.png").stat().st_size > 5000
    assert f"temperature {record['temperature']:g}" in result.output
    evaluated = invoke("evaluate", "--model", tmp_path, "--data", data, "--update-card")
    assert evaluated.exit_code == 0, evaluated.output
    metrics = json.loads((tmp_path / "eval_val" / "metrics.json").read_text())["none"]
    assert 0 <= metrics["ece_15_bins"] <= 1 and metrics["nll"] >= 0
    assert (tmp_path / "eval_val" / "reliability_diagram.png").is_file()
