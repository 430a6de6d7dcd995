"""Weight soups: the mean of several runs' weights, written as a model folder with a card."""

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner

from ferkeras.card import compact_training, portable_config, portable_path, run_name, total_compute_seconds
from ferkeras.cli import main
from ferkeras.errors import FerKerasError
from ferkeras.inference.predictor import Predictor
from ferkeras.models import build_model
from ferkeras.training.soup import make_soup


def _card(folder):
    return json.loads((folder / "model_card.json").read_text())


def _write_card(folder, card):
    (folder / "model_card.json").write_text(json.dumps(card))


@pytest.fixture()
def two_runs(tiny_model, tmp_path):
    """The tiny model and a copy with shifted weights, each with a card and phase records."""
    first, second = tmp_path / "run_a", tmp_path / "run_b"
    for folder in (first, second):
        folder.mkdir()
        shutil.copy(tiny_model / "model.keras", folder / "model.keras")
    model = keras.models.load_model(second / "model.keras", compile=False)
    model.set_weights([w + 0.01 * (i % 3 + 1) for i, w in enumerate(model.get_weights())])
    model.save(second / "model.keras")
    phase1 = {"epochs_run": 40, "seconds": 100.0}
    for folder, phase2_seconds in ((first, 50.0), (second, 70.0)):
        card = _card(tiny_model)
        card["training"]["phases"] = {"phase1": phase1, "phase2": {"epochs_run": 60, "seconds": phase2_seconds}}
        card["metrics"] = {"val": {"accuracy": 0.5}}
        _write_card(folder, card)
    return first, second


def test_soup_is_the_mean_of_the_weights_with_a_card_naming_its_runs(two_runs, tmp_path):
    first, second = two_runs
    target = make_soup([first, second], tmp_path / "soup")
    weights_a = keras.models.load_model(first / "model.keras", compile=False).get_weights()
    weights_b = keras.models.load_model(second / "model.keras", compile=False).get_weights()
    souped = keras.models.load_model(target, compile=False).get_weights()
    for a, b, s in zip(weights_a, weights_b, souped):
        np.testing.assert_allclose(s, (a + b) / 2, atol=1e-6)
    card = _card(target.parent)
    assert card["training"]["soup_of"] == [run_name(first), run_name(second)]
    assert set(card["training"]["ancestors"]) == {run_name(first), run_name(second)}
    assert card["training"]["compute_seconds"] == 220.0  # the shared phase 1 counted once
    assert card["training"]["config"]["data"]["root"].endswith("data")
    assert card["metrics"] == {} and card["class_names"] == _card(first)["class_names"]
    assert not list(target.parent.glob("training_curves*"))  # the tiny runs have none
    faces = np.random.default_rng(0).integers(0, 255, (4, 32, 32), np.uint8)
    assert Predictor.load(target).predict(faces).shape == (4, 7)


def test_soup_keeps_each_runs_curves_and_histories(two_runs, tmp_path):
    first, second = two_runs
    for folder, phase2_history in ((first, "1,0.5\n"), (second, "1,0.6\n")):
        for phase, rows in (("phase1", "1,0.4\n"), ("phase2", phase2_history)):
            (folder / phase).mkdir()
            (folder / phase / "history.csv").write_text("epoch,val_accuracy\n" + rows)
    (second / "training_curves.png").write_bytes(b"png")
    target = make_soup([first, second], tmp_path / "soup")
    assert (target.parent / "history_run_a_phase2.csv").read_text().endswith("0.5\n")
    assert (target.parent / "history_run_b_phase2.csv").read_text().endswith("0.6\n")
    assert (target.parent / "training_curves_run_b.png").read_bytes() == b"png"
    # the phase 1 both runs share is kept once
    assert sorted(p.name for p in target.parent.glob("history_*phase1.csv")) == ["history_run_a_phase1.csv"]
    # a soup of that soup passes its records on under their names
    again = make_soup([target.parent, second], tmp_path / "soup_again")
    assert sorted(p.name for p in again.parent.glob("history_*.csv")) == [
        "history_run_a_phase1.csv",
        "history_run_a_phase2.csv",
        "history_run_b_phase2.csv",
    ]
    assert (again.parent / "training_curves_run_b.png").read_bytes() == b"png"


def test_compute_counts_each_distinct_phase_record_once():
    shared = {"phase1": {"seconds": 10.0, "best_epoch": 3}}
    ancestors = {
        "a": {"phases": {**shared, "phase2": {"seconds": 5.0}}},
        "b": {"phases": {**shared, "phase2": {"seconds": 7.0}}},
        "c": {"phases": {"phase1": {"seconds": 10.0, "best_epoch": 4}}},  # another phase 1
    }
    assert total_compute_seconds({"soup_of": ["a", "b", "c"], "ancestors": ancestors}) == 32.0


def test_compute_tells_phases_apart_by_id_not_by_their_numbers():
    twin = {"seconds": 4.0, "epochs_run": 1, "best_epoch": 1}
    ancestors = {
        "a": {"phases": {"phase1": {**twin, "id": "p1"}, "phase2": {**twin, "id": "a2"}}},
        "b": {"phases": {"phase1": {**twin, "id": "p1"}, "phase2": {**twin, "id": "b2"}}},  # copied phase 1
    }
    assert total_compute_seconds({"soup_of": ["a", "b"], "ancestors": ancestors}) == 12.0


def test_compute_follows_teachers_and_starting_models_into_their_soups():
    phase1 = {"phase1": {"seconds": 10.0}}
    plain, mixup, distilled = ({"phases": {**phase1, "phase2": {"seconds": s}}} for s in (5.0, 6.0, 7.0))
    teacher = {"soup_of": [{"run": "plain", **plain}, {"run": "mixup", **mixup}]}
    distilled["teachers"] = [{"phase": "phase2", "model": "teacher", "training": teacher}]
    # the shipped recipe: the soup of the mixup run and the run the plain+mixup soup taught
    soup = {"soup_of": [{"run": "mixup", **mixup}, {"run": "distilled", **distilled}]}
    assert total_compute_seconds(soup) == 28.0
    tuned = {"phases": {"phase2": {"seconds": 2.0}}, "initialised_from": {"phase": "phase2", "model": "soup", "training": soup}}
    assert total_compute_seconds(tuned) == 30.0
    # the nested form cards had before is read as the flat one: each model once, by name
    flat = compact_training(tuned)
    assert flat["initialised_from"] == {"phase": "phase2", "model": "soup"}
    assert sorted(flat["ancestors"]) == ["distilled", "mixup", "plain", "soup", "teacher"]
    assert flat["ancestors"]["soup"] == {"soup_of": ["mixup", "distilled"]}
    assert total_compute_seconds(flat) == 30.0


def test_cards_hold_no_absolute_paths():
    home = str(Path.home() / ".cache" / "ferkeras" / "runs" / "v4")
    assert run_name(home) == "v4" and run_name("~/.cache/ferkeras/runs/v4") == "v4"
    assert run_name("saved_models/fer2013_resnet18_cbam") == "saved_models/fer2013_resnet18_cbam"
    # a model file is named by its run or model folder
    assert run_name("~/.cache/ferkeras/runs/v4/model.keras") == "v4"
    assert run_name("saved_models/fer2013_resnet18_cbam/model_int8.tflite") == "saved_models/fer2013_resnet18_cbam"
    assert portable_path(str(Path.home() / "data" / "fer")) == "~/data/fer"
    assert portable_path("/mnt/somewhere/else") == "else" and portable_path("../shared/fer2013") == "../shared/fer2013"
    # distill_from lists teachers: each part is made portable
    assert portable_path(f"/mnt/a/teacher_a, {Path.home() / 'b'}") == "teacher_a,~/b"
    config = portable_config({"output_dir": home, "data": {"root": "/mnt/x/fer2013"}, "phase2": {"distill_from": None}})
    assert config == {"output_dir": "~/.cache/ferkeras/runs/v4", "data": {"root": "fer2013"}, "phase2": {"distill_from": None}}


def test_soup_refuses_models_that_do_not_match(two_runs, tmp_path):
    first, second = two_runs
    card = _card(second)
    card["input"]["size"] = 48
    _write_card(second, card)
    with pytest.raises(FerKerasError, match="run_b with .*run_a: their model cards' 'input' differ"):
        make_soup([first, second], tmp_path / "soup")
    build_model(32, 1, width=0.25, dropout=0.0).save(second / "model.keras")
    _write_card(second, _card(first))
    with pytest.raises(
        FerKerasError, match="cannot average .*run_a/model.keras, .*run_b/model.keras: their weights have different shapes"
    ):
        make_soup([first, second], tmp_path / "soup")
    with pytest.raises(FerKerasError, match="at least two run folders"):
        make_soup([first], tmp_path / "soup")
    (second / "model.keras").unlink()
    _write_card(second, _card(first))
    with pytest.raises(FerKerasError, match="no model to average in .*run_b"):
        make_soup([first, second], tmp_path / "soup")
    assert not (tmp_path / "soup" / "model.keras").exists()


def test_soup_cli(two_runs, tmp_path):
    first, second = two_runs
    result = CliRunner().invoke(main, ["soup", str(first), str(second), "--output", str(tmp_path / "soup")])
    assert result.exit_code == 0, result.output
    assert "mean of 2 models" in result.output and (tmp_path / "soup" / "model_card.json").is_file()
    missing = CliRunner().invoke(main, ["soup", str(first), str(tmp_path / "nowhere"), "--output", str(tmp_path / "x")])
    assert missing.exit_code != 0 and "no model card for" in missing.output


def _train_and_ship(tmp_path):
    """A smoke run's phase 1, shipped as ``tiny``; returns the data, the run, the ship arguments and the folder."""
    from synthetic import make_folder_dataset

    data = make_folder_dataset(tmp_path / "data", per_class=8, size=32)
    run = tmp_path / "runs" / "tiny_run"
    trained = CliRunner().invoke(main, ["train", "--preset", "smoke", "--data", str(data), "--output", str(run), "--phase", "1"])
    assert trained.exit_code == 0, trained.output
    into = tmp_path / "saved_models"
    args = ["ship", str(run), "--name", "tiny", "--data", str(data), "--into", str(into), "--no-onnx"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return data, run, args, into / "tiny"


def test_ship_makes_a_complete_model_folder_and_never_replaces_a_foreign_one(tmp_path):
    data, run, args, folder = _train_and_ship(tmp_path)
    runner = CliRunner()
    into = folder.parent
    (into / "foreign").mkdir(parents=True)
    (into / "foreign" / "thesis.tex").write_text("keep")
    refused = runner.invoke(main, ["ship", str(run), "--name", "foreign", "--data", str(data), "--into", str(into)])
    assert refused.exit_code == 1 and "is not a model folder" in refused.output
    assert (into / "foreign" / "thesis.tex").read_text() == "keep"

    for name in (
        "model.keras",
        "model_card.json",
        "config.yaml",
        "model_int8.tflite",
        "model_float16.tflite",
        "bench.json",
        "bench.md",
        "eval_val/metrics.json",
        "history_tiny_run_phase1.csv",
    ):
        assert (folder / name).is_file(), name
    card = _card(folder)
    assert set(card["metrics"]["val"]) >= {"none", "flip"}  # no ten-crop: the smoke model trains without crops
    assert card["artifacts"]["tflite_int8"]["float_ops"] and len(json.loads((folder / "bench.json").read_text())) == 3
    # shipping again replaces the model folder; a failure puts the old one back
    (folder / "bench.md").write_text("old")
    failed = runner.invoke(main, ["ship", str(run), "--name", "tiny", "--data", str(tmp_path / "missing"), "--into", str(into)])
    assert failed.exit_code == 1 and (folder / "bench.md").read_text() == "old"
    assert not (into / ".tiny.previous").exists()


@pytest.mark.slow  # two trainings and two ships: about 2 min on a 2-core AVX2 CPU
def test_the_next_step_shipped_in_place_keeps_the_first_steps_records_only(tmp_path):
    data, run, args, folder = _train_and_ship(tmp_path)
    runner = CliRunner()
    (folder / "history_unrelated_phase1.csv").write_text("epoch\n")
    restart = tmp_path / "runs" / "tiny_restart"
    step = ["train", "--preset", "smoke", "--data", str(data), "--output", str(restart), "--phase", "2"]
    trained = runner.invoke(main, [*step, "--set", f"phase2.init_from={run / 'model.keras'}"])
    assert trained.exit_code == 0, trained.output
    assert _card(restart)["training"]["initialised_from"]["model"] == run_name(run)  # the run, not its file
    result = runner.invoke(main, ["ship", str(restart), *args[2:]])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in folder.glob("history_*.csv")) == [
        "history_tiny_restart_phase2.csv",
        "history_tiny_run_phase1.csv",
    ]
