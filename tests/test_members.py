"""Ensemble members as committed files: stored probabilities, resumed, checked against the data, averaged."""

import json

import numpy as np
import pytest
from conftest import invoke
from synthetic import make_folder_dataset

from ferkeras.card import RUNS_DIR, trained_by
from ferkeras.errors import FerKerasError
from ferkeras.evaluation.members import score_ensemble, store_member


def test_a_member_stores_each_split_and_view_once(exported_model, tmp_path):
    data = json.loads((exported_model / "model_card.json").read_text())["training"]["config"]["data"]["root"]
    member = tmp_path / "member"
    record = store_member(exported_model / "model.keras", data, member, splits=("val", "train"))
    # the tiny model trained without crops: no ten-crop view
    assert sorted(record["files"]) == ["train_flip.npy", "train_none.npy", "val_flip.npy", "val_none.npy"]
    stored = np.load(member / "val_none.npy")
    assert stored.dtype == np.float16 and stored.shape == (record["files"]["val_none.npy"]["faces"], 7)
    assert record["files"]["val_none.npy"]["accuracy"] >= 0 and "accuracy" not in record["files"]["train_none.npy"]
    stamps = {p.name: p.stat().st_mtime_ns for p in member.glob("*.npy")}
    store_member(exported_model / "model.keras", data, member, splits=("val", "train"))
    assert {p.name: p.stat().st_mtime_ns for p in member.glob("*.npy")} == stamps  # resumed: nothing redone
    assert len(record["model_sha256"]) == 64 and record["trained_by"] == []  # the tiny model's card names no run
    with pytest.raises(FerKerasError, match="holds probabilities of another model"):
        store_member(exported_model / "model_int8.tflite", data, member, splits=("val",))  # same folder, other file
    single = score_ensemble([member], data, "val", "none")
    assert single["accuracy"] == pytest.approx(record["files"]["val_none.npy"]["accuracy"], abs=2e-3)  # float16 storage
    assert score_ensemble([member, member], data, "val", "none")["accuracy"] == single["accuracy"]


def test_a_member_names_the_runs_that_trained_its_model():
    run = {"training": {"config": {"output_dir": str(RUNS_DIR / "restart")}}}
    assert trained_by(run) == ["restart"]
    soup = {"training": {"soup_of": ["a", "b"], "config": {"output_dir": str(RUNS_DIR / "a")}}}
    assert trained_by(soup) == ["a", "b"]


def test_members_refuse_other_data_and_missing_views(exported_model, tmp_path):
    data = json.loads((exported_model / "model_card.json").read_text())["training"]["config"]["data"]["root"]
    member = tmp_path / "member"
    store_member(exported_model / "model_int8.tflite", data, member, splits=("val",), views=("none",))
    other = make_folder_dataset(tmp_path / "other", per_class=3, size=32, seed=99)
    with pytest.raises(FerKerasError, match="data checksum differs"):
        score_ensemble([member], other, "val", "none")
    with pytest.raises(FerKerasError, match="no val probabilities with view 'flip'"):
        score_ensemble([member], data, "val", "flip")
    result = invoke("ensemble", member, tmp_path / "nowhere", "--data", data, "--view", "none")
    assert result.exit_code == 1 and "member record not found" in result.output


def test_members_and_ensemble_commands(exported_model, tmp_path):
    data = json.loads((exported_model / "model_card.json").read_text())["training"]["config"]["data"]["root"]
    stored = invoke("members", exported_model / "model.onnx", "--output", tmp_path / "m", "--data", data, "--split", "val")
    assert stored.exit_code == 0, stored.output
    assert "val_flip.npy" in stored.output and "val_none.npy" in stored.output
    scored = invoke("ensemble", tmp_path / "m", "--data", data)
    assert scored.exit_code == 0, scored.output
    assert scored.output.startswith("val, mean of 1 (flip): accuracy")


def test_evaluate_scores_members_models_and_their_mean(exported_model, tmp_path):
    from ferkeras.evaluation.report import evaluate

    data = json.loads((exported_model / "model_card.json").read_text())["training"]["config"]["data"]["root"]
    member = tmp_path / "member"
    store_member(exported_model / "model_int8.tflite", data, member, splits=("val",))
    alone = evaluate(member, data, "val", tta="flip", output=tmp_path / "alone")
    assert alone["format"] == "ensemble" and alone["model"] == [str(member)]
    assert alone["flip"]["accuracy"] == score_ensemble([member], data, "val", "flip")["accuracy"]
    assert (tmp_path / "alone" / "confusion_matrix.png").is_file() and (tmp_path / "alone" / "mistakes.png").is_file()

    # a member beside a live model, face for face: the int8 file's stored probabilities and the Keras model's
    keras_alone = evaluate(exported_model / "model.keras", data, "val", output=tmp_path / "keras")
    mixed = evaluate([member, exported_model / "model.keras"], data, "val", output=tmp_path / "mixed")
    assert len(mixed["model"]) == 2 and mixed["none"]["samples"] == keras_alone["none"]["samples"]
    assert mixed["none"]["nll"] <= (alone["none"]["nll"] + keras_alone["none"]["nll"]) / 2 + 1e-3  # a mean of aligned rows
    assert mixed["none"]["accuracy"] == pytest.approx(keras_alone["none"]["accuracy"], abs=0.05)

    with pytest.raises(FerKerasError, match="--output is needed"):
        evaluate([member, member], data, "val")
    with pytest.raises(FerKerasError, match="--update-card takes one model"):
        evaluate(member, data, "val", output=tmp_path / "x", update_model_card=True)
    result = invoke(
        "evaluate", "--model", member, "--model", member, "--data", data, "--tta", "tencrop", "--output", tmp_path / "t"
    )
    assert result.exit_code == 1 and "no val probabilities with view 'tencrop'" in result.output
