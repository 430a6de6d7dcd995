"""One call that runs the checks every Keras layer of ours must pass (keras-hub style)."""

from __future__ import annotations

import keras
import numpy as np


def run_layer_checks(layer_cls, init_kwargs: dict, input_shape: tuple, tmp_path) -> None:
    """Config round trip, symbolic and eager call, one fit step, .keras save/load."""
    layer = layer_cls(**init_kwargs)
    config = layer.get_config()
    for key, value in init_kwargs.items():
        assert config[key] == value
    clone = layer_cls.from_config(config)
    assert clone.get_config() == config

    symbolic = layer_cls(**init_kwargs)(keras.Input(input_shape[1:]))
    assert tuple(symbolic.shape[1:]) == tuple(input_shape[1:])

    x = np.random.default_rng(0).normal(size=input_shape).astype("float32")
    eager = layer_cls(**init_kwargs)
    out = keras.ops.convert_to_numpy(eager(x))
    assert out.shape == input_shape and np.isfinite(out).all()

    inputs = keras.Input(input_shape[1:])
    hidden = layer_cls(**init_kwargs, name="under_test")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(hidden))
    model = keras.Model(inputs, outputs)
    model.compile("sgd", "mse")
    before = [w.copy() for w in model.get_layer("under_test").get_weights()]
    model.fit(x, np.zeros((input_shape[0], 2)), epochs=1, verbose=0)
    after = model.get_layer("under_test").get_weights()
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), "fit step did not train the layer"

    path = tmp_path / f"{layer_cls.__name__}.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
