"""`phaseN.init_from`: a phase starts from another finished model (fine-tuning a soup or a shipped model)."""

import json

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import make_folder_dataset

from ferkeras.card import run_name
from ferkeras.cli import main


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """Smoke data and a run trained through both phases on it."""
    folder = tmp_path_factory.mktemp("init_from")
    data = make_folder_dataset(folder / "data", per_class=6, size=32)
    run = folder / "first"
    result = CliRunner().invoke(main, ["train", "--preset", "smoke", "--data", str(data), "--output", str(run)])
    assert result.exit_code == 0, result.output
    return data, run


def _train(data, run, *settings):
    args = ["train", "--preset", "smoke", "--data", str(data), "--output", str(run), "--phase", "2"]
    for setting in settings:
        args += ["--set", setting]
    return CliRunner().invoke(main, args)


def test_phase2_starts_from_the_named_model_and_counts_its_compute(finished_run, tmp_path):
    data, first = finished_run
    second = tmp_path / "second"
    # no phase 1 in this run: phase 2 needs none when it starts from another model
    result = _train(data, second, f"phase2.init_from={first}", "phase2.epochs=0")
    assert result.exit_code == 0, result.output
    assert f"starting from {first / 'model.keras'}" in result.output
    assert not (second / "phase1").exists()
    start = keras.models.load_model(first / "model.keras").get_weights()
    handed_on = keras.models.load_model(second / "model.keras").get_weights()
    assert len(start) == len(handed_on)
    for a, b in zip(start, handed_on):
        np.testing.assert_array_equal(a, b)
    card = json.loads((second / "model_card.json").read_text())
    first_card = json.loads((first / "model_card.json").read_text())
    assert card["initialisation"] == f"weights of {run_name(first)} (phase2.init_from)"
    assert card["training"]["initialised_from"] == {"phase": "phase2", "model": run_name(first)}
    assert card["training"]["ancestors"][run_name(first)]["phases"] == first_card["training"]["phases"]
    assert card["training"]["compute_seconds"] == pytest.approx(
        first_card["training"]["compute_seconds"] + card["training"]["phases"]["phase2"]["seconds"], abs=0.2
    )


def test_fine_tuning_from_a_model_it_also_distils_counts_that_model_once(finished_run, tmp_path):
    data, first = finished_run
    tuned = tmp_path / "tuned"
    result = _train(data, tuned, f"phase2.init_from={first / 'model.keras'}", f"phase2.distill_from={first}")
    assert result.exit_code == 0, result.output
    start = keras.models.load_model(first / "model.keras").get_weights()
    weights = keras.models.load_model(tuned / "model.keras").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(start, weights))
    card = json.loads((tuned / "model_card.json").read_text())
    first_card = json.loads((first / "model_card.json").read_text())
    assert card["training"]["teachers"] == [{"phase": "phase2", "model": run_name(first)}]
    # a new phase, told apart from the starting model's even where their records' numbers agree
    assert card["training"]["phases"]["phase2"]["id"] != first_card["training"]["phases"]["phase2"]["id"]
    assert card["training"]["ancestors"][run_name(first)]["phases"] == first_card["training"]["phases"]
    # the starting model is also the teacher: its training is counted once
    assert card["training"]["compute_seconds"] == pytest.approx(
        first_card["training"]["compute_seconds"] + card["training"]["phases"]["phase2"]["seconds"], abs=0.2
    )


def test_a_missing_or_different_starting_model_is_a_one_line_error(finished_run, tmp_path):
    data, first = finished_run
    missing = _train(data, tmp_path / "a", f"phase2.init_from={tmp_path / 'nowhere'}")
    assert missing.exit_code != 0
    assert "phase2.init_from: model not found" in missing.output and "Traceback" not in missing.output
    other = _train(data, tmp_path / "b", f"phase2.init_from={first}", "model.width=0.25")
    assert other.exit_code != 0
    assert "phase2.init_from:" in other.output and "is not the model this config describes" in other.output
