"""Test-time views: a model's probabilities averaged over the face's flips or ten crops."""

from __future__ import annotations

import numpy as np

from ferkeras.errors import FerKerasError
from ferkeras.images import ten_crops, to_model_input
from ferkeras.inference.predictor import Predictor


def predict_with_tta(predictor: Predictor, faces: np.ndarray, mode: str) -> np.ndarray:
    """Probabilities for (N, S, S) faces at the card's face size, averaged over views.

    ``flip`` averages the face and its mirror image; ``tencrop`` averages the four
    corner crops, the centre crop and their mirror images (models trained with crops).
    """
    if mode == "tencrop":
        if not predictor.crop:
            raise FerKerasError("--tta tencrop needs a model trained with random crops (card center_crop > 0)")
        views = ten_crops(faces, predictor.crop)
        return sum(predictor.predict_prepared(to_model_input(view, predictor.channels)) for view in views) / len(views)
    centre = to_model_input(faces, predictor.channels, predictor.crop)
    return predictor.predict_prepared(centre, flip=mode == "flip")
