"""Model builders."""

from ferkeras.models.resnet import build_model, count_macs

__all__ = ["build_model", "count_macs"]
