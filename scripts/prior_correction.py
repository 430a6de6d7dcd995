"""Val accuracy and macro-F1 with the training class weights divided back out of a model's probabilities.

    python scripts/prior_correction.py --model saved_models/fer2013_resnet18_cbam --data ../shared/fer2013 --split val

A model trained with class-weighted cross-entropy learns probabilities
proportional to ``p(class | face) * weight[class]``: it over-predicts the rare
classes on purpose, for macro-F1. Dividing the weights back out (``tau`` 1,
logit adjustment) gives the accuracy-optimal decision for the training
prior; ``tau`` 0 is the model as shipped. The weights come from the card's
training counts and ``class_weighting``, so nothing here is fitted on the
split it scores.
"""

from __future__ import annotations

import argparse

import numpy as np

from ferkeras.artifacts import resolve_model
from ferkeras.config import DEFAULT_DATA
from ferkeras.data.pipeline import class_weights
from ferkeras.data.sources import load_split
from ferkeras.evaluation.metrics import classification_metrics
from ferkeras.evaluation.tta import predict_with_tta
from ferkeras.inference.predictor import Predictor


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model file or folder (default: the shipped model)")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--split", default="val")
    parser.add_argument("--tau", type=float, action="append", help="strengths to score (default: 0 and 1)")
    args = parser.parse_args()

    predictor = Predictor.load(resolve_model(args.model))
    card = predictor.card
    counts = np.array([card["data"]["counts"]["train"][name] for name in predictor.class_names])
    weighting = card["training"]["config"]["class_weighting"]
    weights = class_weights(counts, weighting)
    faces = load_split(args.data, args.split, predictor.face_resize)
    log_probs = np.log(predict_with_tta(predictor, faces.images, "none") + 1e-12)
    print(f"{predictor.path} on {args.split}: class weighting {weighting}, weights {[round(float(w), 3) for w in weights]}")
    for tau in args.tau or [0.0, 1.0]:
        metrics = classification_metrics(faces.labels, log_probs - tau * np.log(weights), predictor.class_names)
        correct = int(round(metrics["accuracy"] * len(faces)))
        print(f"tau {tau:g}: accuracy {metrics['accuracy']:.4f} ({correct} of {len(faces)}), macro-F1 {metrics['macro_f1']:.4f}")


if __name__ == "__main__":
    main()
