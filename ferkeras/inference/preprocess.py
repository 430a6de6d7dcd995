"""Face crops -> model input, exactly as the model card says training did it."""

from __future__ import annotations

import cv2
import numpy as np


def to_gray(image: np.ndarray) -> np.ndarray:
    """A BGR/BGRA/gray uint8 image as a 2-D gray image."""
    if image.ndim == 2:
        return image
    if image.shape[2] == 1:
        return image[..., 0]
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


def prepare_faces(faces, face_resize: int, crop: int, channels: int) -> np.ndarray:
    """Gray or BGR face crops of any size -> float32 (N, S, S, channels) in 0..255.

    Each face is resized to ``face_resize`` (area when shrinking) and centre
    cropped to ``crop`` (0: no crop), matching the training pipeline.
    """
    out = []
    for face in faces:
        gray = to_gray(np.asarray(face))
        if gray.dtype != np.uint8:
            gray = np.clip(gray, 0, 255).astype(np.uint8)
        if gray.shape != (face_resize, face_resize):
            shrink = min(gray.shape) > face_resize
            gray = cv2.resize(gray, (face_resize, face_resize), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
        if crop:
            top = (face_resize - crop) // 2
            gray = gray[top : top + crop, top : top + crop]
        out.append(gray)
    batch = np.stack(out).astype(np.float32)[..., None] if out else np.zeros((0, crop or face_resize, crop or face_resize, 1), np.float32)
    return np.repeat(batch, channels, axis=-1) if channels > 1 else batch
