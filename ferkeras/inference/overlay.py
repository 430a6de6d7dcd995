"""Drawing results onto frames: boxes, ids, labels, per-class bars, FPS."""

from __future__ import annotations

import cv2
import numpy as np

from ferkeras.inference.recognizer import UNCERTAIN, FaceResult

#: One BGR colour per class (angry, disgust, fear, happy, neutral, sad, surprise).
COLOURS = [(40, 40, 220), (40, 140, 40), (160, 60, 160), (40, 200, 240), (200, 200, 200), (200, 120, 40), (40, 160, 240)]
GREY = (150, 150, 150)


def draw_faces(frame: np.ndarray, faces: list[FaceResult], class_names, fps: float | None = None) -> np.ndarray:
    """Draw every face's box, id, label, confidence and a small per-class bar chart."""
    height, width = frame.shape[:2]
    scale = max(0.4, min(width, height) / 900)
    for face in faces:
        b = face.box
        top = int(np.argmax(face.probabilities))
        colour = GREY if face.label == UNCERTAIN else COLOURS[top % len(COLOURS)]
        cv2.rectangle(frame, (b.x, b.y), (b.x + b.w, b.y + b.h), colour, 2)
        ident = f"#{face.track_id} " if face.track_id is not None else ""
        text = f"{ident}{face.label} {face.confidence:.2f}"
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        y = max(b.y - 4, th + 4)
        cv2.rectangle(frame, (b.x, y - th - 4), (b.x + tw + 4, y + 2), colour, -1)
        cv2.putText(frame, text, (b.x + 2, y - 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
        # bars to the right of the box (or inside it near the right edge)
        bar_w = max(30, b.w // 2)
        x0 = b.x + b.w + 4 if b.x + b.w + 4 + bar_w < width else max(b.x + b.w - bar_w, 0)
        row = max(6, int(11 * scale))
        for i, (name, p) in enumerate(zip(class_names, face.probabilities)):
            yy = b.y + i * row
            if yy + row > height:
                break
            cv2.rectangle(frame, (x0, yy), (x0 + int(bar_w * float(p)), yy + row - 2), COLOURS[i % len(COLOURS)], -1)
            if row >= 9:
                cv2.putText(
                    frame,
                    name[:3],
                    (x0 + bar_w + 2, yy + row - 3),
                    cv2.FONT_HERSHEY_SIMPLEX,
                    scale * 0.6,
                    (255, 255, 255),
                    1,
                    cv2.LINE_AA,
                )
    if fps is not None:
        cv2.putText(
            frame, f"{fps:.1f} FPS", (8, int(24 * scale) + 6), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 255, 0), 2, cv2.LINE_AA
        )
    return frame
