"""Loading ``.keras`` files with one-line errors for missing, truncated or foreign files."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ferkeras.errors import FerKerasError


def load_keras_model(path: str | Path, compile: bool = False, what: str = "Keras model"):
    """``keras.models.load_model(path)``; a bad file is a :class:`FerKerasError` naming it.

    Keras reports a truncated file as "File not found"; here it is called what it is.
    """
    import keras

    import ferkeras.layers  # noqa: F401  (registers our layers)

    path = Path(path)
    if not path.is_file():
        raise FerKerasError(f"{what} not found: {path}")
    if not zipfile.is_zipfile(path):
        raise FerKerasError(f"cannot load {what} {path}: not a .keras (zip) file; it is truncated or corrupt")
    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a bad file
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise FerKerasError(f"cannot load {what} {path}: {first}") from None
