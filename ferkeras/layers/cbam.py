"""CBAM: Convolutional Block Attention Module (Woo et al., ECCV 2018).

Channel attention (a shared MLP over average- and max-pooled features) followed
by spatial attention (a 7x7 conv over channel-average and channel-max maps), as
in timm's ``layers/cbam.py``. Written with ``keras.ops`` only, so the layers run
on any Keras backend and convert to TFLite/ONNX.
"""

from __future__ import annotations

import keras
from keras import layers, ops


@keras.saving.register_keras_serializable(package="ferkeras")
class ChannelAttention(layers.Layer):
    """Reweights channels by ``sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))``.

    Args:
        reduction: hidden width of the shared MLP is ``channels // reduction``.
        min_hidden: lower bound on that hidden width (narrow networks).
    """

    def __init__(self, reduction: int = 16, min_hidden: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.min_hidden = min_hidden

    def build(self, input_shape):
        channels = int(input_shape[-1])
        hidden = max(channels // self.reduction, self.min_hidden)
        self.fc1 = layers.Dense(hidden, activation="relu", name=f"{self.name}_fc1", dtype=self.dtype_policy)
        self.fc2 = layers.Dense(channels, name=f"{self.name}_fc2", dtype=self.dtype_policy)
        pooled = tuple(input_shape[:1]) + (channels,)
        self.fc1.build(pooled)
        self.fc2.build(tuple(input_shape[:1]) + (hidden,))

    def call(self, inputs):
        avg = ops.mean(inputs, axis=(1, 2))
        mx = ops.max(inputs, axis=(1, 2))
        scale = ops.sigmoid(self.fc2(self.fc1(avg)) + self.fc2(self.fc1(mx)))
        return inputs * scale[:, None, None, :]

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"reduction": self.reduction, "min_hidden": self.min_hidden})
        return config


@keras.saving.register_keras_serializable(package="ferkeras")
class SpatialAttention(layers.Layer):
    """Reweights positions by ``sigmoid(bn(conv([mean_c(x), max_c(x)])))``.

    Args:
        kernel_size: side of the square convolution over the two pooled maps.
        bn_momentum: momentum of the BatchNormalization after that convolution.
    """

    def __init__(self, kernel_size: int = 7, bn_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.kernel_size = kernel_size
        self.bn_momentum = bn_momentum

    def build(self, input_shape):
        pooled = tuple(input_shape[:-1]) + (2,)
        self.conv = layers.Conv2D(
            1, self.kernel_size, padding="same", use_bias=False, name=f"{self.name}_conv", dtype=self.dtype_policy
        )
        self.bn = layers.BatchNormalization(
            momentum=self.bn_momentum, epsilon=1e-5, name=f"{self.name}_bn", dtype=self.dtype_policy
        )
        self.conv.build(pooled)
        self.bn.build(tuple(input_shape[:-1]) + (1,))

    def call(self, inputs, training=None):
        pooled = ops.concatenate([ops.mean(inputs, axis=-1, keepdims=True), ops.max(inputs, axis=-1, keepdims=True)], axis=-1)
        return inputs * ops.sigmoid(self.bn(self.conv(pooled), training=training))

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"kernel_size": self.kernel_size, "bn_momentum": self.bn_momentum})
        return config


@keras.saving.register_keras_serializable(package="ferkeras")
class CBAM(layers.Layer):
    """Channel attention, then spatial attention, on a (B, H, W, C) feature map."""

    def __init__(self, reduction: int = 16, min_hidden: int = 8, kernel_size: int = 7, bn_momentum: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.reduction = reduction
        self.min_hidden = min_hidden
        self.kernel_size = kernel_size
        self.bn_momentum = bn_momentum

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.channel = ChannelAttention(self.reduction, self.min_hidden, name=f"{self.name}_channel", dtype=self.dtype_policy)
        self.spatial = SpatialAttention(self.kernel_size, self.bn_momentum, name=f"{self.name}_spatial", dtype=self.dtype_policy)
        self.channel.build(input_shape)
        self.spatial.build(input_shape)

    def call(self, inputs, training=None):
        return self.spatial(self.channel(inputs), training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "reduction": self.reduction,
                "min_hidden": self.min_hidden,
                "kernel_size": self.kernel_size,
                "bn_momentum": self.bn_momentum,
            }
        )
        return config
