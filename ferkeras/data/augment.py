"""Albumentations transforms for the training split, built from :class:`AugmentConfig`."""

from __future__ import annotations

import os

# Albumentations otherwise asks PyPI for a newer version on every import.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402

from ferkeras.config import AugmentConfig  # noqa: E402


def build_train_transform(config: AugmentConfig, crop: int = 0) -> A.Compose:
    """Training-only augmentation; a strength of 0 leaves that transform out."""
    steps: list = []
    if config.affine > 0:
        a = config.affine
        steps.append(
            A.Affine(
                translate_percent=(-a, a),
                scale=(1 - a, 1 + a),
                rotate=(-100 * a, 100 * a),
                border_mode=cv2.BORDER_REFLECT_101,
                p=0.5,
            )
        )
    if crop:
        steps.append(A.RandomCrop(crop, crop))
    if config.flip > 0:
        steps.append(A.HorizontalFlip(p=config.flip))
    if config.brightness_contrast > 0:
        limit = config.brightness_contrast
        steps.append(A.RandomBrightnessContrast(limit, limit, p=0.5))
    if config.blur > 0:
        steps.append(A.GaussianBlur(blur_limit=(3, 5), p=config.blur))
    if config.dropout > 0:
        steps.append(
            A.CoarseDropout(
                num_holes_range=(1, 2), hole_height_range=(0.1, 0.25), hole_width_range=(0.1, 0.25), fill=0, p=config.dropout
            )
        )
    return A.Compose(steps)
