"""Face crops -> model input, exactly as the model card says training did it."""

from __future__ import annotations

import numpy as np

from ferkeras.images import resize_face, to_gray, to_model_input


def prepare_faces(faces, face_resize: int, crop: int, channels: int) -> np.ndarray:
    """Gray or BGR face crops of any size and pixel type -> float32 (N, S, S, channels) in 0..255.

    Each face goes through the training loader's rules (:mod:`ferkeras.images`):
    converted to 8-bit gray as its dtype says, resized to ``face_resize``, then
    centre cropped to ``crop`` (0: no crop). A crop that is not an image is a
    :class:`~ferkeras.errors.FerKerasError` naming its position.
    """
    gray = [resize_face(to_gray(face, f"face {i}"), face_resize) for i, face in enumerate(faces)]
    batch = np.stack(gray) if gray else np.zeros((0, face_resize, face_resize), np.uint8)
    return to_model_input(batch, channels, crop)
