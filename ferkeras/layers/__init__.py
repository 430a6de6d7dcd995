"""Custom Keras layers (registered under the ``ferkeras`` package)."""

from ferkeras.layers.cbam import CBAM, ChannelAttention, SpatialAttention

__all__ = ["CBAM", "ChannelAttention", "SpatialAttention"]
