"""Two-phase training, evaluation and resume after SIGKILL, on tiny generated data."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from click.testing import CliRunner
from synthetic import make_folder_dataset

from ferkeras.cli import main

FERKERAS = [sys.executable, "-m", "ferkeras.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_folder_dataset(tmp_path_factory.mktemp("tiny"), per_class=16, size=32)


def _history(phase_dir: Path) -> list[dict]:
    return json.loads((phase_dir / "state.json").read_text())["history"]


def test_phase1_phase2_evaluate_end_to_end(tiny, tmp_path):
    run = tmp_path / "run"
    runner = CliRunner()
    common = ["train", "--preset", "smoke", "--data", str(tiny), "--output", str(run), "--set", "phase1.epochs=2", "--crop", "28"]
    result = runner.invoke(main, common + ["--phase", "1"])
    assert result.exit_code == 0, result.output
    phase1 = _history(run / "phase1")
    assert [r["epoch"] for r in phase1] == [1, 2]
    assert {"loss", "val_loss", "val_accuracy", "val_macro_f1", "learning_rate"} <= set(phase1[0])
    card = json.loads((run / "model_card.json").read_text())
    assert card["training"]["phases"]["phase1"]["epochs_run"] == 2
    assert card["input"] == {**card["input"], "size": 28, "channels": 1}
    assert card["preprocessing"]["face_resize"] == 32 and card["preprocessing"]["center_crop"] == 28
    assert card["data"]["counts"]["train"]["happy"] == 16
    assert card["training"]["precision"] == "float32" and "precision: float32" in result.output

    result = runner.invoke(main, common + ["--phase", "2"])
    assert result.exit_code == 0, result.output
    phase2 = _history(run / "phase2")
    assert [r["global_epoch"] for r in phase2] == [3]
    # phase 2 trains every layer; phase 1 only CBAM and head
    assert "trainable: all" in result.output
    assert (run / "training_curves.png").stat().st_size > 10_000
    for name in ("config.yaml", "model.keras", "phase2/best.keras", "phase2/history.csv"):
        assert (run / name).exists(), name

    result = runner.invoke(
        main, ["evaluate", "--model", str(run), "--data", str(tiny), "--tta", "flip", "--tta", "tencrop", "--update-card"]
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((run / "eval_val" / "metrics.json").read_text())
    assert set(metrics) >= {"none", "flip", "tencrop"}
    none = metrics["none"]
    assert none["samples"] == 112
    assert sum(map(sum, none["confusion_matrix"])) == 112
    assert set(none["per_class"]["happy"]) == {"precision", "recall", "f1", "support"}
    for png in ("confusion_matrix.png", "confusion_matrix_normalised.png", "mistakes.png"):
        assert (run / "eval_val" / png).stat().st_size > 5_000
    card = json.loads((run / "model_card.json").read_text())
    assert card["metrics"]["val"]["none"]["accuracy"] == none["accuracy"]
    assert card["metrics"]["val"]["tencrop"]["samples"] == 112


def test_rerun_of_a_finished_phase_and_changed_settings(tiny, tmp_path):
    run = tmp_path / "run"
    runner = CliRunner()
    args = ["train", "--preset", "smoke", "--data", str(tiny), "--output", str(run), "--phase", "1"]
    assert runner.invoke(main, args).exit_code == 0
    again = runner.invoke(main, args)
    assert again.exit_code == 0 and "resuming" not in again.output
    assert len(_history(run / "phase1")) == 1
    changed = runner.invoke(main, args + ["--stem", "small"])
    assert changed.exit_code != 0
    assert "other settings (model differ)" in changed.output
    # precision only changes speed: a run may go on where another one is faster
    other_precision = runner.invoke(main, args + ["--precision", "mixed_bfloat16"])
    assert other_precision.exit_code == 0, other_precision.output
    assert "precision: mixed_bfloat16" in other_precision.output
    phase2_first = runner.invoke(
        main, ["train", "--preset", "smoke", "--data", str(tiny), "--output", str(tmp_path / "other"), "--phase", "2"]
    )
    assert phase2_first.exit_code != 0 and "needs a finished phase 1" in phase2_first.output


def test_evaluate_errors_are_one_line(tiny, tmp_path):
    runner = CliRunner()
    result = runner.invoke(main, ["evaluate", "--model", str(tmp_path / "none.keras"), "--data", str(tiny)])
    assert result.exit_code != 0 and "model not found" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_sigkill_mid_training_resumes_without_losing_epochs(tiny, tmp_path):
    run = tmp_path / "run"
    command = FERKERAS + [
        "train",
        "--preset",
        "smoke",
        "--data",
        str(tiny),
        "--output",
        str(run),
        "--phase",
        "1",
        "--set",
        "phase1.epochs=5",
        "--set",
        "phase1.trainable=all",
        "--set",
        "phase1.warmup_epochs=1",
    ]
    process = subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    state_file = run / "phase1" / "state.json"
    deadline = time.time() + 240
    while time.time() < deadline and process.poll() is None:
        if state_file.exists() and json.loads(state_file.read_text())["epoch"] >= 2:
            break
        time.sleep(0.05)
    assert process.poll() is None, "training ended before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = json.loads(state_file.read_text())
    killed_at = killed["epoch"]
    assert 2 <= killed_at < 5

    resumed = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resuming after epoch {killed_at}" in resumed.stderr  # progress is logged to stderr
    history = _history(run / "phase1")
    assert [r["epoch"] for r in history] == [1, 2, 3, 4, 5]
    # still the same phase: cards count its compute once
    assert json.loads(state_file.read_text())["id"] == killed["id"]
    # the optimizer and schedule continued: step count and learning rate follow on
    steps = int(keras.models.load_model(run / "phase1" / "last.keras").optimizer.iterations.numpy())
    assert steps == 5 * (112 // 16)
    rates = [r["learning_rate"] for r in history]
    assert rates[-1] < rates[-2] < rates[1], rates  # cosine decay, no restart
    assert not list(run.rglob(".*.keras")), "temporary checkpoint left behind"


@pytest.mark.slow  # 1.5-3.5 min on a 2-core AVX2 CPU: kept out of CI
def test_mirrored_strategy_matches_single_device(tiny, tmp_path):
    script = textwrap.dedent(
        f"""
        import json, sys
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import numpy as np, keras
        from ferkeras.config import load_config, parse_override
        from ferkeras.training.trainer import train
        from ferkeras.data import load_split
        results = {{}}
        x = load_split({str(tiny)!r}, "val", 32).images[..., None].astype("float32")
        for strategy in ("default", "mirrored"):
            sets = ["phase1.epochs=8", "phase1.schedule=constant", "phase1.trainable=all", "phase1.learning_rate=0.5", "phase1.optimizer=sgd", "strategy=" + strategy,
                    "batch_size=112",  # one batch per epoch: the shuffle order cannot matter
                    "augment.flip=0", "augment.affine=0", "augment.brightness_contrast=0", "augment.dropout=0", "augment.blur=0",
                    "model.dropout=0", "phase1.freeze_batchnorm=true", "output_dir={tmp_path}/" + strategy, "data.root={tiny}"]
            config = load_config(preset="smoke", overrides=[parse_override(s) for s in sets])
            run = train(config, "1")
            model = keras.models.load_model(run / "phase1" / "last.keras")
            results[strategy] = {{"probs": model.predict(x, verbose=0).tolist(),
                                  "replicas": tf.distribute.MirroredStrategy().num_replicas_in_sync if strategy == "mirrored" else 1}}
        from ferkeras.models.from_config import new_model
        keras.utils.set_random_seed(config.seed)  # the initial weights both runs started from
        results["init"] = {{"probs": new_model(config).predict(x, verbose=0).tolist()}}
        print("RESULT" + json.dumps(results))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], env=ENV, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads(out.stdout.split("RESULT")[-1])
    assert results["mirrored"]["replicas"] == 2
    import numpy as np

    single, mirrored = np.array(results["default"]["probs"]), np.array(results["mirrored"]["probs"])
    init = np.array(results["init"]["probs"])
    # BatchNorm runs on its moving statistics in both (per-replica batch statistics
    # would differ); what is left is the gradient sum over replicas and float order.
    # One batch per epoch, because MirroredStrategy opens one more iterator over the
    # reshuffling dataset than single-device fit does: the same faces, another order.
    change = np.abs(single - init).max()
    assert change > 0.01, "the model did not train"
    assert np.abs(mirrored - single).max() < 0.1 * change


def test_plateau_counter_survives_a_resume():
    import keras
    import numpy as np

    from ferkeras.training.callbacks import ResumablePlateau

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
    # the interrupted run had waited 2 of 3 epochs without improving on 0.5
    state = {"plateau": {"wait": 2, "best": 0.5, "cooldown": 0}}
    plateau = ResumablePlateau(state, monitor="val_macro_f1", mode="max", factor=0.5, patience=3)
    plateau.set_model(model)
    plateau.on_train_begin()
    assert (plateau.wait, plateau.best) == (2, 0.5)
    plateau.on_epoch_end(0, {"val_macro_f1": 0.4})  # third epoch without improvement
    assert np.isclose(float(model.optimizer.learning_rate.numpy()), 0.05)
    assert state["plateau"] == {"wait": 0, "best": 0.5, "cooldown": 0}


@pytest.mark.slow  # 1.5-3.5 min on a 2-core AVX2 CPU: kept out of CI
def test_phase2_seed_restarts_a_copied_phase1_with_another_draw(tiny, tmp_path):
    runner = CliRunner()
    base = ["train", "--preset", "smoke", "--data", str(tiny)]
    first = tmp_path / "first"
    assert runner.invoke(main, base + ["--output", str(first), "--phase", "1"]).exit_code == 0

    def restart(name, *settings):
        run = tmp_path / name
        run.mkdir()
        shutil.copytree(first / "phase1", run / "phase1")
        shutil.copy(first / "config.yaml", run / "config.yaml")
        args = base + ["--output", str(run), "--phase", "2"]
        for setting in settings:
            args += ["--set", setting]
        result = runner.invoke(main, args)
        return result, run

    # the run's own seed is fixed once phase 1 has run; the phase's is not
    refused, _ = restart("run_seed", "seed=7")
    assert refused.exit_code != 0 and "other settings (seed differ)" in refused.output
    weights = {}
    for name, seed in (("a", 7), ("a_again", 7), ("b", 8)):
        result, run = restart(name, f"phase2.seed={seed}")
        assert result.exit_code == 0, result.output
        weights[name] = keras.models.load_model(run / "model.keras").get_weights()
    for x, y in zip(weights["a"], weights["a_again"]):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(weights["a"], weights["b"]))
