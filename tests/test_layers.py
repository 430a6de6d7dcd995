import keras
import numpy as np
import pytest
from layer_checks import run_layer_checks

from ferkeras.layers import CBAM, ChannelAttention, SpatialAttention


@pytest.mark.parametrize(
    "layer_cls, kwargs",
    [
        (ChannelAttention, {"reduction": 4, "min_hidden": 2}),
        (SpatialAttention, {"kernel_size": 5, "bn_momentum": 0.8}),
        (CBAM, {"reduction": 4, "min_hidden": 2, "kernel_size": 3, "bn_momentum": 0.9}),
    ],
)
def test_layer_contract(layer_cls, kwargs, tmp_path):
    run_layer_checks(layer_cls, kwargs, (4, 6, 6, 16), tmp_path)


def test_channel_attention_matches_formula():
    layer = ChannelAttention(reduction=4, min_hidden=1)
    x = np.random.default_rng(1).normal(size=(2, 5, 5, 8)).astype("float32")
    out = keras.ops.convert_to_numpy(layer(x))
    w1, b1, w2, b2 = layer.fc1.kernel.numpy(), layer.fc1.bias.numpy(), layer.fc2.kernel.numpy(), layer.fc2.bias.numpy()

    def mlp(v):
        return np.maximum(v @ w1 + b1, 0) @ w2 + b2

    scale = 1 / (1 + np.exp(-(mlp(x.mean(axis=(1, 2))) + mlp(x.max(axis=(1, 2))))))
    np.testing.assert_allclose(out, x * scale[:, None, None, :], rtol=1e-5, atol=1e-6)
    assert layer.fc1.units == 2


def test_spatial_attention_scales_positions_only():
    layer = SpatialAttention()
    x = np.abs(np.random.default_rng(2).normal(size=(1, 7, 7, 4))).astype("float32") + 0.1
    ratio = keras.ops.convert_to_numpy(layer(x)) / x
    # one sigmoid weight per position, shared by every channel, in (0, 1)
    np.testing.assert_allclose(ratio, np.repeat(ratio[..., :1], 4, axis=-1), rtol=1e-5)
    assert (ratio > 0).all() and (ratio < 1).all()


def test_mixed_precision_keeps_float32_outputs():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        layer = CBAM()
        out = layer(np.ones((1, 4, 4, 32), "float32"))
        assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    finally:
        keras.mixed_precision.set_global_policy("float32")
