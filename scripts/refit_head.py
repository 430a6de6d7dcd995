"""Val accuracy and macro-F1 of a model whose Dense head is refitted on its own training features.

    python scripts/refit_head.py --model saved_models/fer2013_resnet18_cbam --data ../shared/fer2013

A weight soup averages two heads that were each fitted to their own
backbone's features; this refits the soup's head (the backbone stays frozen)
on the soup's features of the training faces: their centre crops plus
``--views`` augmented views (the card's training augmentation), with the
recipe's loss (label smoothing, class weights) and the head's dropout,
starting from the soup's head. The settings are fixed in advance: nothing is
chosen on the split it scores, because a holdout from the training faces
cannot choose them (the backbone has seen those faces: ~85 % accuracy on
them, whatever the head). Feature extraction takes ~2.5 min per view on a
2-core CPU.
"""

from __future__ import annotations

import argparse

import keras
import numpy as np

import ferkeras  # noqa: F401  (registers the custom layers)
from ferkeras.artifacts import KERAS_ONLY, resolve_model
from ferkeras.card import read_card
from ferkeras.config import DEFAULT_DATA, AugmentConfig
from ferkeras.data.augment import build_train_transform
from ferkeras.data.pipeline import class_weights
from ferkeras.data.sources import load_split
from ferkeras.evaluation.metrics import classification_metrics
from ferkeras.images import to_model_input
from ferkeras.labels import NUM_CLASSES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model folder (default: the shipped model)")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--split", default="val")
    parser.add_argument("--views", type=int, default=2, help="augmented views of each training face")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    args = parser.parse_args()

    model_file = resolve_model(args.model, KERAS_ONLY)
    config = read_card(model_file.parent)["training"]["config"]
    model = keras.models.load_model(model_file, compile=False)
    head = model.get_layer("predictions")
    backbone = keras.Model(model.input, head.input)  # dropout is the identity at inference
    crop, size = config["data"]["crop"], config["data"]["image_size"]
    channels = config["data"]["channels"]
    train = load_split(args.data, "train", size)
    scored = load_split(args.data, args.split, size)

    def features(images: np.ndarray) -> np.ndarray:
        return backbone.predict(images, batch_size=512, verbose=0)

    augment = build_train_transform(AugmentConfig(**config["augment"]), crop)
    views = [features(to_model_input(train.images, channels, crop))]
    for view in range(args.views):
        augment.set_random_seed(1000 + view)
        augmented = np.stack([augment(image=face)["image"] for face in train.images])
        views.append(features(to_model_input(augmented, channels)))
    inputs = np.concatenate(views)
    labels = np.tile(train.labels, len(views))

    refit = keras.Sequential(
        [
            keras.Input(inputs.shape[1:]),
            keras.layers.Dropout(config["model"]["dropout"]),
            keras.layers.Dense(NUM_CLASSES, activation="softmax"),
        ]
    )
    refit.layers[-1].set_weights(head.get_weights())
    steps = args.epochs * int(np.ceil(len(inputs) / 512))
    refit.compile(
        keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(args.learning_rate, steps)),
        keras.losses.CategoricalCrossentropy(label_smoothing=config["label_smoothing"]),
    )
    weights = class_weights(train.class_counts(), config["class_weighting"])
    keras.utils.set_random_seed(config["seed"])
    refit.fit(inputs, np.eye(NUM_CLASSES)[labels], sample_weight=weights[labels], batch_size=512, epochs=args.epochs, verbose=0)

    scored_features = features(to_model_input(scored.images, channels, crop))
    for name, probabilities in (
        ("as shipped", np.asarray(head(scored_features))),  # the same backbone pass as the refit's
        ("head refitted", refit.predict(scored_features, batch_size=4096, verbose=0)),
    ):
        metrics = classification_metrics(scored.labels, probabilities)
        correct = int(round(metrics["accuracy"] * len(scored)))
        print(
            f"{name}: {args.split} accuracy {metrics['accuracy']:.4f} ({correct} of {len(scored)}), "
            f"macro-F1 {metrics['macro_f1']:.4f}"
        )


if __name__ == "__main__":
    main()
