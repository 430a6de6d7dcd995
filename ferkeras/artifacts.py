"""Model files: their names, the bundled models, and finding a model from what a user names.

A model is named by a file (``.keras``, ``.tflite``, ``.onnx``), a folder holding
model files and ``model_card.json`` (a run folder, a ``saved_models/`` folder), or
the name of a shipped model. Shipped models are looked up in ``./saved_models``,
then in the ``saved_models`` of the checkout ferkeras runs from, then in the
package itself: a wheel carries the default model's int8 TFLite file and card, so
``pip install ferkeras`` runs ``ferkeras cam`` anywhere.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

from ferkeras.errors import FerKerasError

KERAS_FILE = "model.keras"
CARD_FILE = "model_card.json"
ONNX_FILE = "model.onnx"
CONFIG_FILE = "config.yaml"
TFLITE_FILES = {
    "none": "model.tflite",
    "float16": "model_float16.tflite",
    "dynamic": "model_dynamic.tflite",
    "int8": "model_int8.tflite",
}
FORMATS = {".keras": "keras", ".tflite": "tflite", ".onnx": "onnx"}
#: Where the recipes in configs/ put their runs; cards name runs there relative to it.
RUNS_DIR = Path("~/.cache/ferkeras/runs")

#: In a model folder, the file ``Predictor.load(folder)`` picks, most faithful first.
FOLDER_PREFERENCE = (KERAS_FILE, TFLITE_FILES["int8"], TFLITE_FILES["float16"], TFLITE_FILES["none"], ONNX_FILE)
#: For live use, the fastest format present wins.
LIVE_PREFERENCE = (TFLITE_FILES["int8"], TFLITE_FILES["float16"], TFLITE_FILES["none"], ONNX_FILE, KERAS_FILE)
#: For offline analysis, the most faithful format the edge runtime runs wins (speed is not the point).
ACCURATE_PREFERENCE = (TFLITE_FILES["none"], TFLITE_FILES["float16"], ONNX_FILE, TFLITE_FILES["int8"], KERAS_FILE)
#: Only a Keras model can be converted, averaged or trained on.
KERAS_ONLY = (KERAS_FILE,)

#: The shipped models, by name; the first is the default.
SHIPPED_MODELS = {
    "fer2013_resnet18_cbam_small": "the default: 3x3 stride-1 stem, 275 M multiply-accumulates per face",
    "fer2013_resnet18_cbam": "the fast one: a quarter of the default's compute, less accurate",
    "fer2013_resnet18_cbam_realtime": "the realtime one: 3/8 width, 40 M multiply-accumulates per face, slightly more accurate than the fast one",
}
DEFAULT_MODEL = next(iter(SHIPPED_MODELS))
#: Shipped models named by what they are for: ``--model accurate`` / ``realtime`` work wherever a model is named.
ACCURATE = "accurate"
MODEL_ROLES = {
    ACCURATE: "fer2013_resnet18_cbam_small",
    "realtime": "fer2013_resnet18_cbam_realtime",
}
#: The models a wheel carries (``ferkeras/bundled/``): the default, and the
#: realtime one that ``--model auto`` picks on small CPUs; their live files only.
BUNDLED_MODELS = (DEFAULT_MODEL, MODEL_ROLES["realtime"])
BUNDLED_FILES = (TFLITE_FILES["int8"], CARD_FILE)


def _checkout_models() -> Path:
    return Path(__file__).resolve().parents[1] / "saved_models"


def _bundled_models() -> Path:
    return Path(str(resources.files("ferkeras") / "bundled"))


def model_search_path() -> list[Path]:
    """Folders holding shipped models, searched in this order."""
    return [Path.cwd() / "saved_models", _checkout_models(), _bundled_models()]


def find_shipped_model(name: str) -> Path | None:
    """The folder of the shipped model ``name`` (or role, :data:`MODEL_ROLES`), or None."""
    name = MODEL_ROLES.get(name, name)
    for base in model_search_path():
        if (base / name / CARD_FILE).is_file():
            return base / name
    return None


def default_model_dir() -> Path:
    """``$FERKERAS_MODEL``, else the default shipped model (:func:`model_search_path`)."""
    if os.environ.get("FERKERAS_MODEL"):
        return Path(os.environ["FERKERAS_MODEL"])
    found = find_shipped_model(DEFAULT_MODEL)
    if found is None:
        raise FerKerasError(
            f"the default model {DEFAULT_MODEL} was not found in {', '.join(map(str, model_search_path()))}; "
            "pass --model PATH or set FERKERAS_MODEL"
        )
    return found


def resolve_model_file(path: str | Path, prefer: tuple[str, ...] = FOLDER_PREFERENCE) -> Path:
    """A model file, or the preferred model file inside a model/run folder, or a shipped model's."""
    path = Path(path).expanduser()
    if not path.exists() and len(path.parts) == 1 and not path.suffix:
        shipped = find_shipped_model(path.name)
        if shipped is None:
            raise FerKerasError(
                f"model not found: {path} (not a file or folder; shipped models: {', '.join([*MODEL_ROLES, *SHIPPED_MODELS])})"
            )
        path = shipped
    if path.is_dir():
        for name in prefer:
            if (path / name).is_file():
                return path / name
        raise FerKerasError(f"no model file in {path}: expected one of {', '.join(prefer)}")
    if not path.exists():
        raise FerKerasError(f"model not found: {path}")
    if path.suffix.lower() not in FORMATS:
        raise FerKerasError(f"unsupported model file {path}: expected .keras, .tflite or .onnx")
    if prefer == KERAS_ONLY and path.suffix.lower() != ".keras":
        raise FerKerasError(f"{path} is not a .keras model (this needs the Keras model, not an export)")
    return path


def resolve_model(path: str | Path | None, prefer: tuple[str, ...] = FOLDER_PREFERENCE) -> Path:
    """Like :func:`resolve_model_file`, with ``None`` meaning the default model."""
    return resolve_model_file(path if path is not None else default_model_dir(), prefer)
