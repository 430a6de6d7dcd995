"""``ferkeras convert``: each requested export, then its parity check and card entry."""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from ferkeras.artifacts import KERAS_ONLY, resolve_model
from ferkeras.card import read_card
from ferkeras.config import ExportConfig, parse_float_ops
from ferkeras.data.sources import load_split
from ferkeras.errors import FerKerasError
from ferkeras.export.calibration import calibration_faces
from ferkeras.export.convert import convert_onnx, convert_tflite, export_saved_model, float_layers
from ferkeras.export.parity import parity, record_artifact
from ferkeras.inference.predictor import Predictor
from ferkeras.io import ensure_writable

log = logging.getLogger(__name__)


def _data_root(card: dict, data: str | None) -> Path:
    root = data or card.get("training", {}).get("config", {}).get("data", {}).get("root")
    if not root or not Path(root).exists():
        raise FerKerasError(f"parity and calibration need faces: pass --data ROOT (the card's data root {root!r} is not here)")
    return Path(root)


def int8_settings(
    card: dict,
    float_ops: tuple[str, ...] | None = None,
    calibration_samples: int | None = None,
    calibration_trim: float | None = None,
) -> dict:
    """The int8 settings to use: the ones given, else those that made the model's current
    int8 export (its card), else its training config's ``export`` section, else the defaults.

    So ``ferkeras convert`` with no options reproduces a shipped export.
    """
    made = card.get("artifacts", {}).get("tflite_int8", {})
    configured = {**vars(ExportConfig()), **card.get("training", {}).get("config", {}).get("export", {})}
    if float_ops is None:
        float_ops = tuple(made["float_ops"]) if "float_ops" in made else parse_float_ops(configured["int8_float_ops"])
    if calibration_samples is None:
        calibration_samples = int(made.get("calibration_samples", configured["calibration_samples"]))
    if calibration_trim is None:
        # An export recorded before faces were trimmed drew them at random (1.0).
        calibration_trim = float(made.get("calibration_trim", 1.0) if made else configured["calibration_trim"])
    return {"float_ops": tuple(float_ops), "calibration_samples": calibration_samples, "calibration_trim": calibration_trim}


def run_conversions(
    model: str | Path | None,
    quantizations=(),
    onnx: bool = False,
    saved_model: bool = False,
    data: str | None = None,
    parity_split: str = "val",
    parity_samples: int = 0,
    calibration_samples: int | None = None,
    float_ops: tuple[str, ...] | None = None,
    calibration_trim: float | None = None,
) -> dict:
    """Convert ``model`` to each requested format; returns {artifact key: parity}.

    int8 settings left at None come from the model's card (:func:`int8_settings`).
    """
    model_path = resolve_model(model, prefer=KERAS_ONLY)
    card = read_card(model_path)
    settings = int8_settings(card, float_ops, calibration_samples, calibration_trim)
    ensure_writable(model_path.parent, "model folder")
    root = _data_root(card, data)
    reference = Predictor.load(model_path)
    reference.require_fer_classes()
    faces = load_split(root, parity_split, reference.face_resize)
    if parity_samples and parity_samples < len(faces):
        faces = faces.subset(np.random.default_rng(0).choice(len(faces), parity_samples, replace=False))
    calibration = None
    if "int8" in quantizations:
        train = load_split(root, "train", reference.face_resize)
        calibration = calibration_faces(
            model_path, train, reference.prepare, settings["calibration_samples"], settings["calibration_trim"]
        )

    with tempfile.TemporaryDirectory(prefix="ferkeras_export_") as workdir:
        # One SavedModel serves every TFLite conversion: exporting it is most of a conversion's time.
        saved = None
        if quantizations or saved_model:
            saved = export_saved_model(model_path, None if saved_model else Path(workdir) / "saved_model")
        jobs = [
            (
                f"tflite_{q}",
                lambda q=q: convert_tflite(model_path, q, calibration, float_ops=settings["float_ops"], saved_model=saved),
                {
                    "format": "tflite",
                    "quantization": q,
                    **({**settings, "float_ops": list(settings["float_ops"])} if q == "int8" else {}),
                },
            )
            for q in quantizations
        ]
        if onnx:
            jobs.append(("onnx", lambda: convert_onnx(model_path), {"format": "onnx"}))
        if saved_model:
            jobs.append(("saved_model", lambda: saved, {"format": "saved_model"}))
        results = {}
        for key, job, details in jobs:
            artifact = job()
            if key == "tflite_int8":
                details = {**details, "float_layers": float_layers(artifact.read_bytes())}
            check = parity(reference, Predictor.load(artifact), faces)
            record_artifact(model_path, artifact, key, {**details, "parity": {"split": parity_split, "data": str(root), **check}})
            results[key] = check
            log.info(
                f"{artifact}: agreement {check['top1_agreement']:.2%} with Keras on {check['faces']} {parity_split} faces, "
                f"accuracy {check['accuracy']:.4f} ({check['accuracy_difference_pp']:+.2f} pp)"
            )
    return results
