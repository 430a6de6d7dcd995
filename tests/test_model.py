import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

import ferkeras
from ferkeras.config import PhaseConfig
from ferkeras.errors import FerKerasError
from ferkeras.layers import CBAM
from ferkeras.models import build_model, count_macs
from ferkeras.training.phases import build_training_state, compile_for_phase


def _blocks(model):
    return sorted({"_".join(layer.name.split("_")[:2]) for layer in model.layers if layer.name.startswith("stack")})


def test_default_is_resnet18_with_cbam_in_every_block():
    model = ferkeras.build_model()
    assert _blocks(model) == [f"stack{s}_block{b}" for s in range(1, 5) for b in (1, 2)]
    cbams = [layer for layer in model.layers if isinstance(layer, CBAM)]
    assert len(cbams) == 8
    # CBAM sits after the second BatchNorm and feeds the residual add
    for layer in cbams:
        block = layer.name[: -len("_cbam")]
        assert layer._inbound_nodes[0].parent_nodes[0].operation.name == f"{block}_bn2"
        add = model.get_layer(f"{block}_add")
        assert layer.output is add._inbound_nodes[0].input_tensors[0]
    assert model.output_shape == (None, 7)
    assert model.get_layer("predictions").activation is keras.activations.softmax
    assert 11_000_000 < model.count_params() < 11_400_000


def test_attention_switch_gives_plain_resnet18():
    plain = build_model(attention="none")
    assert not any(isinstance(layer, CBAM) for layer in plain.layers)
    assert _blocks(plain) == _blocks(build_model())


@pytest.mark.parametrize("stem, size, final", [("imagenet", 64, 2), ("small", 40, 5), ("small_pool", 44, 3)])
def test_stems_set_the_resolution(stem, size, final):
    model = build_model(size, stem=stem, width=0.25)
    assert model.get_layer("stack4_block2_out").output.shape[1:3] == (final, final)
    assert model.get_layer("stack1_block1_conv1").kernel.shape[-1] == 16


def test_small_pool_costs_a_quarter_of_small():
    small = count_macs(build_model(44, stem="small"))
    pooled = count_macs(build_model(44, stem="small_pool"))
    assert 0.23 < pooled / small < 0.3


def test_raw_pixels_in_probabilities_out():
    model = build_model(32, 3, width=0.125)
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    p = model.predict(x, verbose=0)
    assert p.shape == (3, 7)
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert model.get_layer("rescale").scale == pytest.approx(1 / 255)


def test_bad_arguments_are_one_line_errors():
    with pytest.raises(FerKerasError, match="unknown stem 'big'"):
        build_model(stem="big")
    with pytest.raises(FerKerasError, match="unknown attention"):
        build_model(attention="se")
    with pytest.raises(FerKerasError, match="ImageNet weights need stem='imagenet'"):
        build_model(weights="imagenet", stem="small")
    with pytest.raises(FerKerasError, match="channels must be 1 or 3"):
        build_model(channels=2)


def _training_variables(model):
    return {v.path for v in model.optimizer.variables} | {v.path for m in model.metrics for v in m.variables}


def test_fit_step_and_keras_round_trip(tmp_path):
    model = build_model(32, width=0.125)
    compile_for_phase(model, PhaseConfig(), steps_per_epoch=1, label_smoothing=0.0)
    build_training_state(model)
    built = _training_variables(model)
    x = np.random.default_rng(0).uniform(0, 255, (8, 32, 32, 1)).astype("float32")
    y = keras.utils.to_categorical(np.arange(8) % 7, 7)
    loss = model.fit(x, y, epochs=1, verbose=0).history["loss"][0]
    assert np.isfinite(loss)
    # the step created no variable, so TensorFlow traced it once, not twice
    assert _training_variables(model) == built and len(built) > len(model.trainable_variables)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_load_model_in_a_fresh_process_without_custom_objects(tmp_path):
    path = tmp_path / "m.keras"
    x_path = tmp_path / "x.npy"
    model = build_model(32, width=0.125)
    x = np.random.default_rng(0).uniform(0, 255, (2, 32, 32, 1)).astype("float32")
    np.save(x_path, x)
    model.save(path)
    expected = model.predict(x, verbose=0)
    code = textwrap.dedent(
        f"""
        import sys
        import ferkeras
        assert "tensorflow" not in sys.modules, "import ferkeras must stay light"
        import keras, numpy as np
        model = keras.models.load_model({str(path)!r})
        np.save({str(tmp_path / "out.npy")!r}, model.predict(np.load({str(x_path)!r}), verbose=0))
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": ""})
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-6)
