"""The shipped models: their files and cards (fast), and their numbers on FER2013 val (slow)."""

import numpy as np
import pytest
from conftest import REPO, SHARED

from ferkeras.artifacts import ACCURATE, DEFAULT_MODEL, MODEL_ROLES, SHIPPED_MODELS, resolve_model_file
from ferkeras.card import read_card, val_accuracy
from ferkeras.config import load_config
from ferkeras.inference.predictor import Predictor
from ferkeras.inference.recognizer import Recognizer

SAVED_MODELS = REPO / "saved_models"
SHIPPED = SAVED_MODELS / DEFAULT_MODEL
SHIPPED_FOLDERS = sorted(card.parent for card in SAVED_MODELS.glob("*/model_card.json"))


def test_every_shipped_model_is_named_in_artifacts():
    assert sorted(f.name for f in SHIPPED_FOLDERS) == sorted(SHIPPED_MODELS)


def test_roles_name_shipped_models_and_resolve_like_their_names():
    assert set(MODEL_ROLES.values()) <= set(SHIPPED_MODELS)
    for role, name in MODEL_ROLES.items():
        assert resolve_model_file(role) == resolve_model_file(name)
    accuracy = {name: val_accuracy(read_card(SAVED_MODELS / name)) for name in SHIPPED_MODELS}
    assert MODEL_ROLES[ACCURATE] == max(accuracy, key=accuracy.get)


pytestmark = pytest.mark.skipif(not (SHIPPED / "model_card.json").exists(), reason="no shipped model yet")
each_shipped_model = pytest.mark.parametrize("folder", SHIPPED_FOLDERS, ids=[f.name for f in SHIPPED_FOLDERS])


def test_everything_shipped_fits_in_60_mb():
    total = sum(f.stat().st_size for f in SAVED_MODELS.rglob("*") if f.is_file())
    assert total < 60e6
    assert not list(SAVED_MODELS.rglob("last.keras")) and not list(SAVED_MODELS.rglob("best.keras"))


@each_shipped_model
def test_shipped_files_and_card(folder):
    card = read_card(folder)
    assert card["class_names"] == ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    # ONNX is left out to keep saved_models/ under 60 MB (`ferkeras convert --onnx` makes it)
    for key in ("tflite_int8", "tflite_float16"):
        parity = card["artifacts"][key]["parity"]
        if key == "tflite_int8":
            # issue 5's bar is val accuracy within 0.5 pp of Keras; agreement is lower for
            # the small stem (95 %) than for the soup (98 %), as flips go both ways
            assert parity["accuracy_difference_pp"] >= -0.5 and parity["top1_agreement"] >= 0.94
        else:
            assert parity["top1_agreement"] >= 0.99
    for key, entry in card["artifacts"].items():
        assert (folder / entry["file"]).exists(), f"{folder.name}: the card lists {key} but {entry['file']} is missing"
    assert card["training"]["compute_seconds"] > 0 and card["data"]["sha256"]["train"]


def test_the_default_model_was_trained_with_a_config_file_in_the_repository():
    # docs/recipe.md reproduces the default with the config that wrote its run folder (the
    # recipe's last step); the card's config goes through the loader so that settings
    # added since the card was written take their defaults
    trained = load_config(overrides=[read_card(SHIPPED)["training"]["config"]]).to_dict()
    configs = [load_config(path).to_dict() for path in sorted((REPO / "configs").glob("*.yaml"))]
    matching = [settings for settings in configs if settings["output_dir"] == trained["output_dir"]]
    assert len(matching) == 1, f"no single config in configs/ writes to {trained['output_dir']}"
    assert trained == matching[0]


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
@each_shipped_model
def test_evaluate_reproduces_the_card(folder, tmp_path):
    from ferkeras.evaluation.report import evaluate

    card = read_card(folder)
    results = evaluate(folder, SHARED / "fer2013", "val", output=tmp_path)
    assert results["none"]["accuracy"] == pytest.approx(card["metrics"]["val"]["none"]["accuracy"], abs=1e-4)
    assert results["none"]["macro_f1"] == pytest.approx(card["metrics"]["val"]["none"]["macro_f1"], abs=1e-4)
    int8 = Predictor.load(folder / "model_int8.tflite")
    assert int8.predict(np.zeros((1, 48, 48), np.uint8)).shape == (1, 7)
