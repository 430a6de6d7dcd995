"""ResNet18 (BasicBlock, [2, 2, 2, 2]) with an attention slot in every block.

Layers have predictable names (``stem_conv``, ``stack2_block1_conv1``, ...), so
freezing by name and importing torchvision/timm weights are simple string maps.
Strided convolutions use explicit zero padding as PyTorch does, so imported
ImageNet weights give the same outputs as in PyTorch.
"""

from __future__ import annotations

import keras
from keras import layers

from ferkeras.config import ATTENTIONS, STEMS
from ferkeras.errors import FerKerasError
from ferkeras.labels import NUM_CLASSES
from ferkeras.layers import CBAM

#: ImageNet mean/std (RGB), used for every input so ImageNet weights see what they expect.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _conv(x, filters, kernel, stride, name):
    if stride > 1:
        x = layers.ZeroPadding2D(kernel // 2, name=f"{name}_pad")(x)
        return layers.Conv2D(filters, kernel, stride, padding="valid", use_bias=False, name=name)(x)
    return layers.Conv2D(filters, kernel, padding="same", use_bias=False, name=name)(x)


def _bn(x, name, momentum):
    return layers.BatchNormalization(momentum=momentum, epsilon=1e-5, name=name)(x)


def basic_block(x, filters, stride, attention, name, bn_momentum):
    """conv-bn-relu-conv-bn[-attention] + shortcut, then ReLU."""
    shortcut = x
    y = _conv(x, filters, 3, stride, f"{name}_conv1")
    y = _bn(y, f"{name}_bn1", bn_momentum)
    y = layers.ReLU(name=f"{name}_relu1")(y)
    y = _conv(y, filters, 3, 1, f"{name}_conv2")
    y = _bn(y, f"{name}_bn2", bn_momentum)
    if attention == "cbam":
        y = CBAM(bn_momentum=bn_momentum, name=f"{name}_cbam")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = layers.Conv2D(filters, 1, stride, use_bias=False, name=f"{name}_shortcut_conv")(x)
        shortcut = _bn(shortcut, f"{name}_shortcut_bn", bn_momentum)
    y = layers.Add(name=f"{name}_add")([y, shortcut])
    return layers.ReLU(name=f"{name}_out")(y)


def build_model(
    input_size: int = 48,
    channels: int = 1,
    num_classes: int = NUM_CLASSES,
    attention: str = "cbam",
    stem: str = "small_pool",
    width: float = 1.0,
    dropout: float = 0.3,
    weights: str | None = None,
    bn_momentum: float = 0.9,
    blocks: tuple[int, ...] = (2, 2, 2, 2),
    name: str | None = None,
) -> keras.Model:
    """Build a ResNet18 (default) classifier that takes raw 0-255 pixels.

    Args:
        input_size: side of the square input image.
        channels: 1 (grayscale) or 3 (gray replicated to RGB).
        attention: ``"cbam"`` puts CBAM after the second BatchNorm of every block,
            before the residual add; ``"none"`` gives a plain ResNet.
        stem: ``"imagenet"`` (7x7/2 conv + 3x3/2 max-pool, needed for ImageNet
            weights), ``"small"`` (3x3/1 conv, full resolution) or
            ``"small_pool"`` (3x3/1 conv + 2x2 max-pool, a quarter of the cost).
        width: multiplier on the 64-128-256-512 channel widths.
        dropout: dropout rate before the classifier.
        weights: ``None`` (random), ``"imagenet"`` or a path to a torchvision/timm
            ``resnet18`` safetensors file (see :mod:`ferkeras.models.weights`).
        bn_momentum: BatchNormalization momentum (0.9 tracks fast-moving weights;
            Keras' default 0.99 lags badly in short runs from scratch).
    """
    if stem not in STEMS:
        raise FerKerasError(f"unknown stem {stem!r}; choose one of {', '.join(STEMS)}")
    if attention not in ATTENTIONS:
        raise FerKerasError(f"unknown attention {attention!r}; choose one of {', '.join(ATTENTIONS)}")
    if channels not in (1, 3):
        raise FerKerasError(f"channels must be 1 or 3, got {channels}")
    if weights is not None and (stem != "imagenet" or width != 1.0 or tuple(blocks) != (2, 2, 2, 2)):
        raise FerKerasError(
            f"ImageNet weights need stem='imagenet', width=1.0 and ResNet18 blocks (got stem={stem!r}, width={width})"
        )
    widths = [max(8, int(round(w * width))) for w in (64, 128, 256, 512)]

    inputs = keras.Input((input_size, input_size, channels), name="pixels")
    mean = IMAGENET_MEAN if channels == 3 else (sum(IMAGENET_MEAN) / 3,)
    std = IMAGENET_STD if channels == 3 else (sum(IMAGENET_STD) / 3,)
    x = layers.Rescaling(1.0 / 255.0, name="rescale")(inputs)
    x = layers.Normalization(mean=list(mean), variance=[s * s for s in std], name="normalize")(x)
    if stem == "imagenet":
        x = _conv(x, widths[0], 7, 2, "stem_conv")
    else:
        x = _conv(x, widths[0], 3, 1, "stem_conv")
    x = _bn(x, "stem_bn", bn_momentum)
    x = layers.ReLU(name="stem_relu")(x)
    if stem == "imagenet":
        # After a ReLU, zero padding equals PyTorch's -inf padding for max-pool.
        x = layers.ZeroPadding2D(1, name="stem_pool_pad")(x)
        x = layers.MaxPooling2D(3, 2, name="stem_pool")(x)
    elif stem == "small_pool":
        x = layers.MaxPooling2D(2, 2, name="stem_pool")(x)

    for stack, (filters, count) in enumerate(zip(widths, blocks), start=1):
        for block in range(1, count + 1):
            stride = 2 if stack > 1 and block == 1 else 1
            x = basic_block(x, filters, stride, attention, f"stack{stack}_block{block}", bn_momentum)

    x = layers.GlobalAveragePooling2D(name="head_pool")(x)
    x = layers.Dropout(dropout, name="head_dropout")(x)
    # float32 softmax keeps probabilities exact under mixed precision.
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="predictions")(x)
    model = keras.Model(inputs, outputs, name=name or f"resnet18_{attention}_{stem}_{input_size}px")
    if weights is not None:
        from ferkeras.models.weights import load_imagenet_weights

        load_imagenet_weights(model, weights)
    return model


def is_head_or_attention(layer_name: str) -> bool:
    """True for layers phase 1 trains: CBAM blocks and the classifier head."""
    return layer_name.endswith("_cbam") or layer_name.startswith("head_") or layer_name == "predictions"


def batchnorm_layers(model: keras.Model) -> list[layers.BatchNormalization]:
    """Every BatchNormalization in ``model``, also the one inside CBAM's spatial attention."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, layers.BatchNormalization)
    ]


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one forward pass (convolutions, dense layers, CBAM)."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            kh, kw, cin, cout = layer.kernel.shape
            _, height, width, _ = layer.output.shape
            macs += kh * kw * cin * cout * height * width
        elif isinstance(layer, layers.Dense):
            macs += layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, CBAM):
            _, height, width, chans = layer.output.shape
            hidden = layer.channel.fc1.units
            macs += 2 * 2 * chans * hidden + layer.kernel_size**2 * 2 * height * width
    return int(macs)
