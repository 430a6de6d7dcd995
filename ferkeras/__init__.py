"""ferkeras: facial emotion recognition with a ResNet18-CBAM in TensorFlow/Keras.

``import ferkeras`` is light: TensorFlow and Keras load only when first needed.
Our Keras layers are registered as soon as Keras is imported (by anyone), so
``keras.models.load_model("model.keras")`` works after ``import ferkeras``
without ``custom_objects``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

_LAZY = {
    "build_model": "ferkeras.models.resnet",
    "CBAM": "ferkeras.layers.cbam",
    "ChannelAttention": "ferkeras.layers.cbam",
    "SpatialAttention": "ferkeras.layers.cbam",
    "Predictor": "ferkeras.inference.predictor",
    "FaceResult": "ferkeras.inference.recognizer",
    "Recognizer": "ferkeras.inference.recognizer",
    "CLASS_NAMES": "ferkeras.labels",
    "analyze": "ferkeras.analysis.api",
    "Analysis": "ferkeras.analysis.api",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ferkeras' has no attribute {name!r}")


def _register_layers() -> None:
    importlib.import_module("ferkeras.layers")


class _RegisterWhenKerasLoads(importlib.abc.MetaPathFinder):
    """Import ``ferkeras.layers`` right after ``keras`` finishes importing."""

    def find_spec(self, fullname, path, target=None):
        if fullname != "keras":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register_layers()

        spec.loader.exec_module = exec_then_register
        return spec


def _keras_installed() -> bool:
    try:
        return importlib.util.find_spec("keras") is not None
    except (ImportError, ValueError):
        return False


if "keras" in sys.modules:
    _register_layers()
elif _keras_installed():
    sys.meta_path.insert(0, _RegisterWhenKerasLoads())
