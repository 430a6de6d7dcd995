"""Weight averaging: the mean of snapshots, BatchNorm re-estimation, and the trainer's use of both."""

import json

import keras
import numpy as np
import pytest
from conftest import train_smoke
from synthetic import make_folder_dataset

from ferkeras.models.resnet import batchnorm_layers
from ferkeras.training import weight_averages
from ferkeras.training.averaging import average_snapshots, recalibrate_batchnorm


def _small_model() -> keras.Model:
    inputs = keras.Input((6,))
    x = keras.layers.Dense(4, name="dense")(inputs)
    x = keras.layers.BatchNormalization(momentum=0.9, name="bn")(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def test_average_snapshots_is_the_mean_of_every_weight(tmp_path):
    model = _small_model()
    paths, weights = [], []
    for seed in range(3):
        rng = np.random.default_rng(seed)
        model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.get_weights()])
        weights.append(model.get_weights())
        paths.append(tmp_path / f"s{seed}.weights.h5")
        model.save_weights(paths[-1])
    average_snapshots(model, paths)
    for got, *each in zip(model.get_weights(), *weights):
        np.testing.assert_allclose(got, np.mean(each, axis=0), rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="no weight snapshots"):
        average_snapshots(model, [])


def test_recalibrate_batchnorm_gives_the_plain_average_over_shuffled_batches():
    model = _small_model()
    bn = model.get_layer("bn")
    data = np.random.default_rng(0).normal(2.0, 3.0, size=(96, 6)).astype("float32")
    assert recalibrate_batchnorm(model, data, batch_size=32, seed=4) == 1
    features = keras.Model(model.input, model.get_layer("dense").output).predict(data, verbose=0)
    order = np.random.default_rng(4).permutation(96)
    batches = np.stack([features[np.sort(order[i : i + 32])] for i in (0, 32, 64)])
    np.testing.assert_allclose(bn.moving_mean.numpy(), batches.mean(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.moving_variance.numpy(), batches.var(axis=1).mean(axis=0), rtol=1e-4, atol=1e-5)
    assert bn.momentum == 0.9  # restored


def test_recalibration_sees_the_whole_spread_of_class_sorted_data():
    # two "classes" stored one after the other, as faces load from class folders
    rng = np.random.default_rng(1)
    data = np.concatenate([rng.normal(-5, 1, (512, 6)), rng.normal(5, 1, (512, 6))]).astype("float32")
    inputs = keras.Input((6,))
    model = keras.Model(inputs, keras.layers.BatchNormalization(name="bn")(inputs))
    recalibrate_batchnorm(model, data, batch_size=64)
    np.testing.assert_allclose(model.get_layer("bn").moving_variance.numpy(), data.var(axis=0), rtol=0.1)


def test_a_phase_with_average_last_hands_on_the_average(tmp_path, capsys):
    data = make_folder_dataset(tmp_path / "data", per_class=10, size=32)
    run = tmp_path / "run"
    common = ["--set", "phase1.epochs=3", "--set", "phase1.patience=0", "--set", "phase1.average_last=2"]
    result = train_smoke(data, run, *common, "--phase", "1")
    assert result.exit_code == 0, result.output
    assert "[phase1] average of epochs 2..3: val accuracy" in result.output
    phase1 = run / "phase1"
    assert [p.name for p in sorted((phase1 / "snapshots").iterdir())] == ["epoch_002.weights.h5", "epoch_003.weights.h5"]
    state = json.loads((phase1 / "state.json").read_text())
    assert state["average"]["epochs"] == [2, 3]
    card = json.loads((run / "model_card.json").read_text())
    assert card["training"]["phases"]["phase1"]["averaged_epochs"] == [2, 3]
    assert card["metrics"]["val_during_training"]["val_accuracy"] == state["average"]["val_accuracy"]
    average = keras.models.load_model(phase1 / "average.keras", compile=False)
    for shipped, averaged in zip(keras.models.load_model(run / "model.keras").get_weights(), average.get_weights()):
        np.testing.assert_array_equal(shipped, averaged)

    # ferkeras.training.weight_averages re-scores that average, given a run still in training (a config, no card yet)
    in_training = tmp_path / "in_training"
    in_training.mkdir()
    (in_training / "config.yaml").write_bytes((run / "config.yaml").read_bytes())
    weight_averages.main(["--snapshots", str(phase1), "--last", "2", "--run", str(in_training), "--data", str(data)])
    rows = capsys.readouterr().out.splitlines()
    assert rows[2].startswith("| last 2 epochs, mean |")
    # the same snapshots, re-estimation and val faces as the trainer's: the same scores
    average_scores = f"{state['average']['val_accuracy'] * 100:.2f} % | {state['average']['val_macro_f1']:.4f}"
    assert rows[3] == f"| last 2 epochs, BatchNorm re-estimated | {average_scores} |"

    # phase 2 starts from the average (with 0 epochs its model is that starting point)
    result = train_smoke(data, run, *common, "--phase", "2", "--set", "phase2.epochs=0")
    assert result.exit_code == 0, result.output
    for started, averaged in zip(
        keras.models.load_model(run / "phase2" / "best.keras", compile=False).get_weights(), average.get_weights()
    ):
        np.testing.assert_array_equal(started, averaged)

    changed = train_smoke(data, run, *common[:-1], "phase1.average_last=1", "--phase", "2", "--set", "phase2.epochs=0")
    assert changed.exit_code != 0 and "phase1 differ" in changed.output


@pytest.mark.parametrize(
    "stored_settings, changed_settings",
    [([], ["phase1.average_last=2"]), (["phase1.average_last=2"], ["phase1.average_last=2", "phase1.average_batchnorm=average"])],
)
@pytest.mark.parametrize("epochs_run, allowed", [(1, True), (2, False)])
def test_averaging_settings_may_change_until_an_epoch_they_average_has_run(
    tmp_path, stored_settings, changed_settings, epochs_run, allowed
):
    from ferkeras.config import load_config, parse_override
    from ferkeras.errors import FerKerasError
    from ferkeras.training.run_folder import check_config

    base = ["phase1.epochs=3", "phase1.patience=0"]
    stored = load_config(preset="smoke", overrides=[parse_override(item) for item in base + stored_settings])
    stored.save(tmp_path / "config.yaml")
    (tmp_path / "phase1").mkdir()
    (tmp_path / "phase1" / "state.json").write_text(json.dumps({"epoch": epochs_run, "history": []}))
    current = load_config(preset="smoke", overrides=[parse_override(item) for item in base + changed_settings])
    if allowed:
        check_config(tmp_path, current)
    else:
        with pytest.raises(FerKerasError, match="phase1 differ"):
            check_config(tmp_path, current)


def test_a_run_begun_before_newer_config_keys_still_resumes(tmp_path):
    import yaml

    from ferkeras.config import load_config
    from ferkeras.training.run_folder import check_config

    config = load_config(preset="smoke")
    old = config.to_dict()
    for phase in ("phase1", "phase2"):
        for key in ("average_last", "average_batchnorm", "mixup", "cutmix"):
            del old[phase][key]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(old))
    for phase in ("phase1", "phase2"):
        (tmp_path / phase).mkdir()
        (tmp_path / phase / "state.json").write_text(json.dumps({"epoch": 1, "history": []}))
    check_config(tmp_path, config)


def test_average_batchnorm_average_keeps_the_snapshots_statistics(tmp_path):
    data = make_folder_dataset(tmp_path / "data", per_class=6, size=32)
    run = tmp_path / "run"
    settings = ["phase1.epochs=2", "phase1.patience=0", "phase1.average_last=2", "phase1.average_batchnorm=average"]
    result = train_smoke(data, run, "--phase", "1", *[arg for setting in settings for arg in ("--set", setting)])
    assert result.exit_code == 0, result.output
    phase1 = run / "phase1"
    assert json.loads((phase1 / "state.json").read_text())["average"]["batchnorm"] == "average"
    snapshot_model = keras.models.load_model(phase1 / "last.keras", compile=False)
    snapshots = []
    for epoch in (1, 2):
        snapshot_model.load_weights(phase1 / "snapshots" / f"epoch_{epoch:03d}.weights.h5")
        snapshots.append(snapshot_model.get_weights())
    average = keras.models.load_model(phase1 / "average.keras", compile=False)
    # re-estimation would have replaced these layers' statistics with others
    assert batchnorm_layers(average)
    for got, first, second in zip(average.get_weights(), *snapshots):
        np.testing.assert_allclose(got, (first.astype(np.float64) + second) / 2, rtol=1e-5, atol=1e-6)


def test_average_batchnorm_rejects_an_unknown_choice():
    from ferkeras.config import load_config, parse_override
    from ferkeras.errors import FerKerasError

    with pytest.raises(FerKerasError, match=r"phase2.average_batchnorm='recompute' is not one of reestimate, average"):
        load_config(preset="smoke", overrides=[parse_override("phase2.average_batchnorm=recompute")])
