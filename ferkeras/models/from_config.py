"""The model a training config describes."""

from __future__ import annotations

import keras

from ferkeras.config import TrainConfig
from ferkeras.models.resnet import build_model


def new_model(config: TrainConfig, pretrained: bool = True) -> keras.Model:
    """The model ``config`` describes, freshly initialised (with ``model.weights`` if ``pretrained``)."""
    m = config.model
    return build_model(
        config.data.input_size,
        config.data.channels,
        attention=m.attention,
        stem=m.stem,
        width=m.width,
        dropout=m.dropout,
        weights=m.weights if pretrained else None,
        bn_momentum=m.bn_momentum,
    )


def float32_copy(model: keras.Model, config: TrainConfig) -> keras.Model:
    """The same weights in a float32 model, for export and CPU inference."""
    policy = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        copy = new_model(config, pretrained=False)
        copy.set_weights(model.get_weights())
        return copy
    finally:
        keras.mixed_precision.set_global_policy(policy)
