"""Detection + crop + preprocessing + classification + tracking + smoothing, in one object.

rec = ferkeras.Recognizer.load()            # the shipped model, TFLite if present
for face in rec.process(frame_bgr):         # one video frame
    print(face.track_id, face.box, face.label, face.confidence)
rec.predict_image("photo.jpg")              # one still image, no smoothing
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkeras.artifacts import LIVE_PREFERENCE, resolve_model
from ferkeras.errors import FerKerasError
from ferkeras.images import read_image, to_bgr, to_gray
from ferkeras.inference.faces import Box, crop_face, make_detector
from ferkeras.inference.predictor import Predictor
from ferkeras.inference.smoothing import IoUTracker, Smoother, Track

UNCERTAIN = "uncertain"


@dataclass
class FaceResult:
    """One face in one frame: where, who (track id), and what emotion."""

    track_id: int | None
    box: Box
    probabilities: np.ndarray  # smoothed (equal to raw for still images)
    raw_probabilities: np.ndarray
    label: str  # a class name, or "uncertain" below the confidence threshold
    confidence: float  # smoothed probability of the shown class (of the leader when uncertain)

    def to_dict(self, class_names) -> dict:
        return {
            "face_id": self.track_id,
            "box": {"x": self.box.x, "y": self.box.y, "w": self.box.w, "h": self.box.h},
            "label": self.label,
            "confidence": round(float(self.confidence), 4),
            "probabilities": {n: round(float(p), 4) for n, p in zip(class_names, self.probabilities)},
        }


class Recognizer:
    """Finds faces in BGR frames and reports their (smoothed) emotions.

    Args:
        predictor: the emotion model (any format).
        detector: an object with ``detect(frame) -> list[Box]``.
        smoothing: ``ema`` (``alpha``), ``mean`` (``window`` frames) or ``none``.
        threshold: a class is shown once its smoothed probability reaches this;
            below it (minus ``hysteresis`` for a class already shown) the label
            is "uncertain".
        hysteresis: a tracked face's label changes only when another class
            leads the shown one by this much, which stops labels flickering.
        padding: face boxes are enlarged by this fraction of their side before
            cropping (FER2013 faces include some forehead and chin).
        flip: average each face with its mirror image (more accurate, twice
            the classifier time; see ``Predictor.predict_prepared``).
        classify_every: classify a tracked face on every N-th frame only, reusing
            its last output in between, unless it moved more than ``motion`` (of
            its box side) since; 1 classifies every face on every frame. The
            smoother averages several frames anyway (docs/benchmarks.md measures
            what this costs in recall and label agreement).
    """

    def __init__(
        self,
        predictor: Predictor,
        detector,
        smoothing: str = "ema",
        alpha: float = 0.2,
        window: int = 10,
        threshold: float = 0.4,
        padding: float = 0.1,
        max_missed: int = 5,
        hysteresis: float = 0.15,
        flip: bool = False,
        classify_every: int = 1,
        motion: float = 0.1,
    ):
        Smoother(smoothing, alpha, window)  # validate the options now, not on the first face
        for name, value, low, high in (
            ("threshold", threshold, 0.0, 1.0),
            ("hysteresis", hysteresis, 0.0, 1.0),
            ("padding", padding, 0.0, 4.0),
        ):
            if not low <= value <= high:  # also refuses NaN
                raise FerKerasError(f"{name} must be between {low:g} and {high:g}, got {value}")
        if max_missed < 0:
            raise FerKerasError(f"max_missed must be >= 0, got {max_missed}")
        if classify_every < 1:
            raise FerKerasError(f"classify_every must be >= 1, got {classify_every}")
        self.classify_every, self.motion = classify_every, motion
        self.predictor, self.detector = predictor, detector
        self.class_names = predictor.class_names
        self.threshold, self.padding, self.hysteresis, self.flip = threshold, padding, hysteresis, flip
        self._smoothing = (smoothing, alpha, window)
        self._max_missed = max_missed
        self.tracker = self.new_tracker()
        self.timings = {"detect": 0.0, "classify": 0.0, "smooth": 0.0}

    @classmethod
    def load(
        cls, model: str | Path | None = None, detector: str = "blazeface", min_face: int = 0, threads: int | None = 1, **options
    ) -> Recognizer:
        """Load a model (default: the shipped one, fastest format first) and a detector."""
        if min_face < 0:
            raise FerKerasError(f"min_face must be >= 0 pixels, got {min_face}")
        path = resolve_model(model, prefer=LIVE_PREFERENCE)
        return cls(Predictor.load(path, threads=threads), make_detector(detector, min_size=min_face), **options)

    def new_tracker(self) -> IoUTracker:
        """A fresh tracker with this recognizer's smoothing, for :meth:`process` (one per video or stream)."""
        return IoUTracker(lambda: Smoother(*self._smoothing), max_missed=self._max_missed)

    def reset(self) -> None:
        """Forget all tracks (e.g. at a scene cut or a new video)."""
        self.tracker = self.new_tracker()

    def _classify(self, gray: np.ndarray, boxes: list[Box]) -> np.ndarray:
        start = time.perf_counter()
        probabilities = (
            self.predictor.predict([crop_face(gray, b, self.padding) for b in boxes], flip=self.flip)
            if boxes
            else np.zeros((0, len(self.class_names)), np.float32)
        )
        self.timings["classify"] += time.perf_counter() - start
        return probabilities

    def _result(self, track_id, box, smoothed, raw, shown: int | None) -> FaceResult:
        if shown is None:
            return FaceResult(track_id, box, smoothed, raw, UNCERTAIN, float(smoothed.max()))
        return FaceResult(track_id, box, smoothed, raw, self.class_names[shown], float(smoothed[shown]))

    def _still(self, box, p) -> FaceResult:
        top = int(np.argmax(p))
        return self._result(None, box, p, p, top if p[top] >= self.threshold else None)

    def detect(self, frame: np.ndarray) -> list[Box]:
        """Face boxes in a BGR frame (the first half of :meth:`process`, for pipelines)."""
        start = time.perf_counter()
        boxes = self.detector.detect(to_bgr(frame, "frame"))
        self.timings["detect"] += time.perf_counter() - start
        return boxes

    def _needs_classifying(self, track: Track, box: Box) -> bool:
        if track.raw is None or track.reused + 1 >= self.classify_every:
            return True
        last = track.raw_box
        side = max(last.w, last.h, 1)
        shift = max(abs((box.x + box.w / 2) - (last.x + last.w / 2)), abs((box.y + box.h / 2) - (last.y + last.h / 2)))
        return shift > self.motion * side or abs(box.w - last.w) > self.motion * side

    def process(self, frame: np.ndarray, tracker: IoUTracker | None = None, boxes: list[Box] | None = None) -> list[FaceResult]:
        """Faces in one video frame, tracked and smoothed across calls.

        ``tracker`` (from :meth:`new_tracker`) holds the tracks of one stream, so
        one recognizer can serve several streams in turn; default: its own.
        ``boxes``: this frame's faces when :meth:`detect` already ran (e.g. in
        another thread).
        """
        tracker = self.tracker if tracker is None else tracker
        frame = to_bgr(frame, "frame")
        if boxes is None:
            boxes = self.detect(frame)
        tracks = tracker.assign(boxes)
        fresh = [i for i, (track, box) in enumerate(zip(tracks, boxes)) if self._needs_classifying(track, box)]
        for track in tracks:
            track.reused += 1
        raw = self._classify(to_gray(frame), [boxes[i] for i in fresh])
        for i, p in zip(fresh, raw):
            tracks[i].raw, tracks[i].raw_box, tracks[i].reused = p, boxes[i], 0
        start = time.perf_counter()
        results = []
        for track, box in zip(tracks, boxes):
            smoothed = track.smoother.update(track.raw)
            shown = track.choose_label(smoothed, self.threshold, self.hysteresis)
            results.append(self._result(track.track_id, box, smoothed, track.raw, shown))
        self.timings["smooth"] += time.perf_counter() - start
        return results

    def predict_image(self, image, detect: bool = True) -> list[FaceResult]:
        """Faces in one still image (a path or an array), without smoothing.

        With ``detect=False`` the whole image is taken as one face crop.
        """
        if isinstance(image, (str, Path)):
            loaded, problem = read_image(image, gray=False)
            if loaded is None:
                raise FerKerasError(f"cannot read image {image}: {problem}")
            image = loaded
        image = to_bgr(image, "image")
        height, width = image.shape[:2]
        boxes = self.detector.detect(image) if detect else [Box(0, 0, width, height)]
        raw = self._classify(to_gray(image), boxes) if detect else self.predictor.predict([image], flip=self.flip)
        return [self._still(box, p) for box, p in zip(boxes, raw)]
