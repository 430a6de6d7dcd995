"""Loading ``.keras`` files with one-line errors for missing, truncated or foreign files."""

from __future__ import annotations

import zipfile
from pathlib import Path

from ferkeras.errors import FerKerasError


def check_keras_file(path: str | Path, what: str = "Keras model", hint: str = "") -> Path:
    """``path`` if it is a readable ``.keras`` (zip) file, else a one-line :class:`FerKerasError`.

    Keras itself reports a truncated file as "File not found".
    """
    path = Path(path)
    if not path.is_file():
        raise FerKerasError(f"{what} not found: {path}{hint}")
    if not zipfile.is_zipfile(path):
        raise FerKerasError(f"cannot load {what} {path}: not a .keras (zip) file; it is truncated or corrupt{hint}")
    return path


def load_keras_model(path: str | Path, compile: bool = False, what: str = "Keras model", hint: str = ""):
    """``keras.models.load_model(path)``; a bad file is a :class:`FerKerasError` naming it (and ``hint``)."""
    import keras

    import ferkeras.layers  # noqa: F401  (registers our layers)

    path = check_keras_file(path, what, hint)
    try:
        return keras.models.load_model(path, compile=compile)
    except Exception as exc:  # Keras raises many types for a bad file
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise FerKerasError(f"cannot load {what} {path}: {first}{hint}") from None
