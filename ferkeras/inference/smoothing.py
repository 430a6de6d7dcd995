"""Per-face temporal smoothing of class probabilities and IoU face tracking."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from ferkeras.errors import FerKerasError
from ferkeras.inference.faces import Box

SMOOTHINGS = ("ema", "mean", "none")


class Smoother:
    """Smooths one face's probability vectors over frames.

    ``ema``: ``s = alpha * p + (1 - alpha) * s``; ``mean``: average of the last
    ``window`` frames; ``none``: the latest frame. A new smoother starts fresh
    with the first vector it sees.
    """

    def __init__(self, method: str = "ema", alpha: float = 0.2, window: int = 10):
        if method not in SMOOTHINGS:
            raise FerKerasError(f"unknown smoothing {method!r}; choose ema, mean or none")
        if not 0 < alpha <= 1 or window < 1:
            raise FerKerasError("smoothing needs 0 < alpha <= 1 and window >= 1")
        self.method, self.alpha = method, alpha
        self._state: np.ndarray | None = None
        self._recent: deque = deque(maxlen=window)

    def update(self, probabilities: np.ndarray) -> np.ndarray:
        p = np.asarray(probabilities, np.float64)
        if self.method == "mean":
            self._recent.append(p)
            self._state = np.mean(self._recent, axis=0)
        elif self.method == "ema" and self._state is not None:
            self._state = self.alpha * p + (1 - self.alpha) * self._state
        else:
            self._state = p
        return self._state.astype(np.float32)


@dataclass
class Track:
    """A face followed across frames, with its own smoother."""

    track_id: int
    box: Box
    smoother: Smoother
    missed: int = 0
    shown: int | None = None  # class index on display; None = "uncertain"
    raw: np.ndarray | None = None  # the latest classifier output for this face
    raw_box: Box | None = None  # where the face was when ``raw`` was computed
    reused: int = 0  # frames since ``raw`` was computed

    def choose_label(self, smoothed: np.ndarray, threshold: float, hysteresis: float) -> int | None:
        """The class to show, or None for "uncertain", with hysteresis both ways.

        A shown class stays until its smoothed probability drops below
        ``threshold - hysteresis`` or another class leads it by ``hysteresis``;
        a class is shown once its smoothed probability reaches ``threshold``.
        """
        leader = int(np.argmax(smoothed))
        if self.shown is not None and smoothed[leader] - smoothed[self.shown] >= hysteresis:
            self.shown = leader
        if self.shown is not None and smoothed[self.shown] < threshold - hysteresis:
            self.shown = None
        if self.shown is None and smoothed[leader] >= threshold:
            self.shown = leader
        return self.shown


class IoUTracker:
    """Greedy IoU matching of detections to tracks; ids are never reused.

    A track survives ``max_missed`` frames without a matching detection (short
    detector dropouts), then is forgotten; a face that comes back gets a new id
    and a fresh smoother.
    """

    def __init__(self, make_smoother, iou_threshold: float = 0.3, max_missed: int = 5):
        self.make_smoother = make_smoother
        self.iou_threshold, self.max_missed = iou_threshold, max_missed
        self.tracks: list[Track] = []
        self._next_id = 1

    def clear(self) -> None:
        """Forget every track; ids keep counting, so a face seen again gets a new one."""
        self.tracks = []

    def assign(self, boxes: list[Box]) -> list[Track]:
        """Tracks for ``boxes`` (same order); unmatched old tracks age out."""
        pairs = sorted(((box.iou(t.box), i, j) for i, box in enumerate(boxes) for j, t in enumerate(self.tracks)), reverse=True)
        matched: dict[int, Track] = {}
        used: set[int] = set()
        for iou, i, j in pairs:
            if iou < self.iou_threshold:
                break
            if i in matched or j in used:
                continue
            matched[i] = self.tracks[j]
            used.add(j)
        for j, track in enumerate(self.tracks):
            if j not in used:
                track.missed += 1
        self.tracks = [t for j, t in enumerate(self.tracks) if j in used or t.missed <= self.max_missed]
        result = []
        for i, box in enumerate(boxes):
            track = matched.get(i)
            if track is None:
                track = Track(self._next_id, box, self.make_smoother())
                self._next_id += 1
                self.tracks.append(track)
            track.box, track.missed = box, 0
            result.append(track)
        return result
