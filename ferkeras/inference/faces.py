"""Face detectors behind one small interface, and cropping faces for the model.

``detect(frame) -> list[Box]`` in pixel coordinates of the BGR frame.

* ``blazeface`` (default): MediaPipe BlazeFace full-range (192 px input), run
  with ai-edge-litert; anchors and NMS are decoded here. About 3 ms per frame
  at any resolution on one core of a Zen 5 CPU (docs/benchmarks.md), and it finds
  small and turned faces.
* ``blazeface-short``: the 128 px short-range model, for faces close to a camera.
* ``haar``: OpenCV's frontal Haar cascade; no extra files, slower on big frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import cv2
import numpy as np

from ferkeras.errors import FerKerasError

DETECTORS = ("blazeface", "blazeface-short", "haar")


@dataclass(frozen=True)
class Box:
    """A face box in pixels: top-left corner, width, height and detector score."""

    x: int
    y: int
    w: int
    h: int
    score: float = 1.0

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other``."""
        ix = max(0, min(self.x + self.w, other.x + other.w) - max(self.x, other.x))
        iy = max(0, min(self.y + self.h, other.y + other.h) - max(self.y, other.y))
        inter = ix * iy
        union = self.w * self.h + other.w * other.h - inter
        return inter / union if union > 0 else 0.0


def _asset(name: str) -> Path:
    return Path(str(resources.files("ferkeras") / "assets" / name))


def _ssd_anchors(input_size: int, strides: list[int], per_cell: list[int]) -> np.ndarray:
    """Anchor centres (x, y) in 0..1, in the order BlazeFace emits its boxes."""
    anchors = []
    for stride, count in zip(strides, per_cell):
        cells = input_size // stride
        ys, xs = np.meshgrid(np.arange(cells), np.arange(cells), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) / cells, (ys.ravel() + 0.5) / cells], axis=1)
        anchors.append(np.repeat(centres, count, axis=0))
    return np.concatenate(anchors).astype(np.float32)


class BlazeFaceDetector:
    """MediaPipe BlazeFace on ai-edge-litert with letterboxing, decoding and NMS."""

    VARIANTS = {
        # file, input size, anchor strides, anchors per cell for each stride
        "full": ("face_detection_full_range.tflite", 192, [4], [1]),
        "short": ("face_detection_short_range.tflite", 128, [8, 16], [2, 6]),
    }

    def __init__(self, variant: str = "full", min_score: float = 0.5, nms_iou: float = 0.3, min_size: int = 0, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        filename, self.size, strides, per_cell = self.VARIANTS[variant]
        self.interpreter = Interpreter(model_path=str(_asset(filename)), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        outputs = sorted(self.interpreter.get_output_details(), key=lambda d: -d["shape"][-1])
        self.boxes_index, self.scores_index = outputs[0]["index"], outputs[1]["index"]
        self.anchors = _ssd_anchors(self.size, strides, per_cell)
        self.min_score, self.nms_iou, self.min_size = min_score, nms_iou, min_size

    def detect(self, frame: np.ndarray) -> list[Box]:
        height, width = frame.shape[:2]
        side = max(height, width)
        # letterbox: pad to a square so the face keeps its aspect ratio
        pad_y, pad_x = (side - height) // 2, (side - width) // 2
        square = cv2.copyMakeBorder(frame, pad_y, side - height - pad_y, pad_x, side - width - pad_x, cv2.BORDER_CONSTANT)
        rgb = cv2.cvtColor(cv2.resize(square, (self.size, self.size), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2RGB)
        self.interpreter.set_tensor(self.input_index, (rgb.astype(np.float32) / 127.5 - 1.0)[None])
        self.interpreter.invoke()
        raw = self.interpreter.get_tensor(self.boxes_index)[0]
        logits = np.clip(self.interpreter.get_tensor(self.scores_index)[0, :, 0], -80, 80)
        scores = 1.0 / (1.0 + np.exp(-logits))
        keep = np.flatnonzero(scores >= self.min_score)
        if not len(keep):
            return []
        centre = raw[keep, :2] / self.size + self.anchors[keep]
        half = raw[keep, 2:4] / self.size / 2
        corners = np.concatenate([centre - half, centre + half], axis=1) * side
        corners -= [pad_x, pad_y, pad_x, pad_y]
        rects = [[float(x0), float(y0), float(x1 - x0), float(y1 - y0)] for x0, y0, x1, y1 in corners]
        chosen = cv2.dnn.NMSBoxes(rects, scores[keep].tolist(), self.min_score, self.nms_iou)
        boxes = []
        for i in np.asarray(chosen).ravel():
            x, y, w, h = rects[i]
            x0, y0 = max(int(round(x)), 0), max(int(round(y)), 0)
            x1, y1 = min(int(round(x + w)), width), min(int(round(y + h)), height)
            if x1 - x0 >= max(self.min_size, 2) and y1 - y0 >= max(self.min_size, 2):
                boxes.append(Box(x0, y0, x1 - x0, y1 - y0, float(scores[keep][i])))
        return boxes


class HaarDetector:
    """OpenCV's frontal-face Haar cascade (scaleFactor 1.1, minNeighbors 5)."""

    def __init__(self, min_size: int = 30, scale_factor: float = 1.1, min_neighbors: int = 5):
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FerKerasError(f"cannot load the Haar cascade {path}; use opencv-python-headless>=4.9,<5")
        self.min_size, self.scale_factor, self.min_neighbors = max(min_size, 1), scale_factor, min_neighbors

    def detect(self, frame: np.ndarray) -> list[Box]:
        gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = self.cascade.detectMultiScale(gray, self.scale_factor, self.min_neighbors, minSize=(self.min_size, self.min_size))
        return [Box(int(x), int(y), int(w), int(h)) for x, y, w, h in found]


def make_detector(name: str = "blazeface", min_size: int = 0, min_score: float = 0.5):
    """A detector by name: ``blazeface``, ``blazeface-short`` or ``haar``."""
    if name == "blazeface":
        return BlazeFaceDetector("full", min_score=min_score, min_size=min_size)
    if name == "blazeface-short":
        return BlazeFaceDetector("short", min_score=min_score, min_size=min_size)
    if name == "haar":
        return HaarDetector(min_size=max(min_size, 30))
    raise FerKerasError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")


def crop_face(gray: np.ndarray, box: Box, padding: float) -> np.ndarray:
    """A square gray crop around ``box``, enlarged by ``padding`` of its side, edges replicated."""
    side = int(round(max(box.w, box.h) * (1.0 + padding)))
    cx, cy = box.x + box.w / 2.0, box.y + box.h / 2.0
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    height, width = gray.shape[:2]
    pad = max(0, -x0, -y0, x0 + side - width, y0 + side - height)
    if pad:
        gray = cv2.copyMakeBorder(gray, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        x0, y0 = x0 + pad, y0 + pad
    return gray[y0 : y0 + side, x0 : x0 + side]
