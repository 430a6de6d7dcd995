"""A small real model trained in seconds on generated faces, with its card and exports."""

from __future__ import annotations

from pathlib import Path

import keras
from synthetic import make_faces

from ferkeras.card import write_card
from ferkeras.labels import CLASS_NAMES
from ferkeras.models import build_model
from ferkeras.training.phases import build_training_state

SIZE = 32


def train_tiny_model(folder: Path, epochs: int = 12) -> Path:
    """Train a width-1/8 ResNet18-CBAM on blob faces; write model.keras and its card."""
    keras.utils.set_random_seed(0)
    images, labels = make_faces(40, SIZE, seed=0)
    x = images[..., None].astype("float32")
    y = keras.utils.to_categorical(labels, len(CLASS_NAMES))
    model = build_model(SIZE, 1, width=0.125, dropout=0.0)
    model.compile(keras.optimizers.Adam(3e-3), "categorical_crossentropy", metrics=["accuracy"])
    build_training_state(model)
    model.fit(x, y, batch_size=32, epochs=epochs, verbose=0, shuffle=True)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.keras"
    model.save(path)
    write_card(
        path,
        {
            "format_version": 1,
            "name": model.name,
            "class_names": list(CLASS_NAMES),
            "input": {"size": SIZE, "channels": 1, "dtype": "float32", "range": "raw pixels 0-255"},
            "preprocessing": {"face_resize": SIZE, "center_crop": 0},
            "training": {"config": {"data": {"root": str(folder / "data")}}},
            "artifacts": {"keras": {"file": "model.keras"}},
        },
    )
    return path
