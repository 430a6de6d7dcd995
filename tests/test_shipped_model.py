"""The shipped model: its files and card (fast), and its numbers on FER2013 val (slow)."""

import json

import numpy as np
import pytest

from conftest import REPO, SHARED
from ferkeras.inference.predictor import Predictor
from ferkeras.inference.recognizer import Recognizer

SHIPPED = REPO / "saved_models" / "fer2013_resnet18_cbam"
pytestmark = pytest.mark.skipif(not (SHIPPED / "model_card.json").exists(), reason="no shipped model yet")


def _card():
    return json.loads((SHIPPED / "model_card.json").read_text())


def test_shipped_files_and_card():
    card = _card()
    total = sum(f.stat().st_size for f in SHIPPED.rglob("*") if f.is_file())
    assert total < 60e6
    assert not list(SHIPPED.rglob("last.keras")) and not list(SHIPPED.rglob("best.keras"))
    assert card["class_names"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    for key in ("tflite_int8", "tflite_float16", "onnx"):
        entry = card["artifacts"][key]
        assert (SHIPPED / entry["file"]).exists()
        assert entry["parity"]["top1_agreement"] >= (0.97 if key == "tflite_int8" else 0.99)
    assert card["training"]["compute_seconds"] > 0 and card["data"]["sha256"]["train"]


def test_default_recognizer_runs_the_shipped_tflite(sample_clip):
    rec = Recognizer.load()
    assert rec.predictor.format == "tflite"
    import cv2

    capture = cv2.VideoCapture(str(sample_clip))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    frame = capture.read()[1]
    faces = rec.process(frame)
    assert len(faces) == 1 and faces[0].probabilities.shape == (7,)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "fer2013" / "val").is_dir(), reason="FER2013 not available")
def test_evaluate_reproduces_the_card(tmp_path):
    from ferkeras.evaluation.report import evaluate

    card = _card()
    results = evaluate(SHIPPED, SHARED / "fer2013", "val", output=tmp_path)
    assert results["none"]["accuracy"] == pytest.approx(card["metrics"]["val"]["none"]["accuracy"], abs=1e-4)
    assert results["none"]["macro_f1"] == pytest.approx(card["metrics"]["val"]["none"]["macro_f1"], abs=1e-4)
    int8 = Predictor.load(SHIPPED / "model_int8.tflite")
    assert int8.predict(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)
