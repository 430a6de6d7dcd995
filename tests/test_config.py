import re

import pytest
from conftest import REPO

from ferkeras.config import TrainConfig, load_config, parse_override
from ferkeras.errors import FerKerasError


def test_defaults_and_preset():
    config = load_config(preset="smoke")
    assert config.data.image_size == 32
    assert config.phase1.epochs == 1
    assert load_config().model.attention == "cbam"


def test_yaml_round_trip(tmp_path):
    config = load_config(overrides=[parse_override("phase2.learning_rate=3e-5"), parse_override("data.crop=44")])
    config.save(tmp_path / "config.yaml")
    again = load_config(tmp_path / "config.yaml")
    assert again == config
    assert again.phase2.learning_rate == pytest.approx(3e-5)
    assert again.data.input_size == 44


def test_none_values_and_types():
    config = load_config(overrides=[parse_override("model.weights=none"), parse_override("data.skip_bad=true")])
    assert config.model.weights is None
    assert config.data.skip_bad is True


@pytest.mark.parametrize(
    "item, message",
    [
        ("model.depth=3", "unknown key 'model.depth'"),
        ("model.stem=huge", "model.stem='huge' is not one of"),
        ("batch_size=big", "batch_size must be int"),
        ("data.crop=64", "data.crop=64 is larger than data.image_size=48"),
        ("phase1.optimizer=adam", "phase1.optimizer='adam'"),
        ("phase2.average_last=21", "phase2.average_last must be between 0 and phase2.epochs (20)"),
        ("phase2.average_last=5", "phase2.average_last needs phase2.patience=0"),
    ],
)
def test_bad_values_name_the_key(item, message):
    with pytest.raises(FerKerasError, match=re.escape(message)):
        load_config(overrides=[parse_override(item)])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(FerKerasError, match="expected KEY=VALUE"):
        parse_override("epochs")
    with pytest.raises(FerKerasError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(FerKerasError, match="unknown preset"):
        load_config(preset="huge")


def test_to_dict_is_plain():
    assert TrainConfig().to_dict()["phase1"]["trainable"] == "attention_and_head"


def test_a_config_states_only_its_differences_from_its_base(tmp_path):
    (tmp_path / "base.yaml").write_text("batch_size: 32\nphase2: {epochs: 7, learning_rate: 0.01}\n")
    (tmp_path / "child.yaml").write_text("base: base.yaml\nphase2: {epochs: 9}\n")
    child = load_config(tmp_path / "child.yaml")
    assert (child.batch_size, child.phase2.epochs, child.phase2.learning_rate) == (32, 9, 0.01)
    (tmp_path / "loop.yaml").write_text("base: loop.yaml\n")
    with pytest.raises(FerKerasError, match="comes back to itself"):
        load_config(tmp_path / "loop.yaml")
    (tmp_path / "orphan.yaml").write_text("base: missing.yaml\n")
    with pytest.raises(FerKerasError, match="not found: .*missing.yaml \\(the base of"):
        load_config(tmp_path / "orphan.yaml")


def test_the_default_recipe_is_the_fast_one_with_the_documented_settings():
    # the default's recipe inherits the fast model's and changes these settings only
    configs = REPO / "configs"
    settings = [
        "model.stem=small",
        "phase2.average_batchnorm=average",
        "phase2.distill_from=saved_models/fer2013_resnet18_cbam",
        "phase2.distill_weight=0.5",
        "output_dir=~/.cache/ferkeras/runs/fer2013_resnet18_cbam_small_stem",
    ]
    shipped_with_settings = load_config(
        configs / "fer2013_resnet18_cbam.yaml", overrides=[parse_override(item) for item in settings]
    )
    assert load_config(configs / "fer2013_resnet18_cbam_small.yaml") == shipped_with_settings
    assert load_config(configs / "fer2013_resnet18_cbam.yaml").model.stem == "small_pool"
