"""Tiny generated FER-like data sets: learnable patterns, in both published forms."""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from ferkeras.labels import CLASS_NAMES, CSV_CODE_NAMES


def make_faces(per_class: int, size: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (N, size, size) images whose class sets where a bright blob sits."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for label in range(len(CLASS_NAMES)):
        angle = 2 * np.pi * label / len(CLASS_NAMES)
        cy = int(size / 2 + size / 3.2 * np.sin(angle))
        cx = int(size / 2 + size / 3.2 * np.cos(angle))
        for _ in range(per_class):
            image = rng.normal(90, 20, (size, size))
            cv2.circle(image, (cx, cy), max(size // 7, 2), 230, -1)
            images.append(np.clip(image, 0, 255).astype(np.uint8))
            labels.append(label)
    return np.stack(images), np.asarray(labels, np.int32)


def make_folder_dataset(root: Path, per_class: int = 12, size: int = 48, splits=("train", "val"), seed: int = 0) -> Path:
    """ROOT/<split>/<class>/*.png (train) and *.jpg (other splits)."""
    for offset, split in enumerate(splits):
        images, labels = make_faces(per_class, size, seed + offset)
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / CLASS_NAMES[label]
            folder.mkdir(parents=True, exist_ok=True)
            suffix = "png" if split == "train" else "jpg"
            cv2.imwrite(str(folder / f"{split}_{i}.{suffix}"), image)
    return root


def make_csv_dataset(path: Path, per_class: int = 6, seed: int = 0) -> Path:
    """A fer2013.csv with Training, PublicTest and PrivateTest rows (48x48)."""
    usages = ("Training", "PublicTest", "PrivateTest")
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        for offset, usage in enumerate(usages):
            images, labels = make_faces(per_class, 48, seed + offset)
            for image, label in zip(images, labels):
                code = CSV_CODE_NAMES.index(CLASS_NAMES[label])
                writer.writerow([code, " ".join(map(str, image.ravel())), usage])
    return path
