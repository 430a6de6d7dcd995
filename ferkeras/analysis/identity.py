"""Stable person ids across short absences: IoU tracking plus an appearance match.

The IoU tracker follows a face from one analysed frame to the next (and not
across a camera cut, :data:`CUT_THRESHOLD`). When a new track starts within
``window_s`` seconds of a person being lost (they left the frame, turned away,
were hidden, or the shot changed), the new face is compared with each recently
lost person by :func:`similarity`; when the best match reaches ``threshold`` the
new track takes that person's id. Appearance is the face's HOG descriptor
(shape of eyes, brows, nose, mouth, hairline; 64x64 gray) and a hue-saturation
histogram of the face (skin and lighting). How the threshold was chosen, and how
often it fires on the bundled clip: docs/analyze.md.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ferkeras.inference.faces import Box, crop_face
from ferkeras.inference.smoothing import IoUTracker, Smoother

#: Similarity at or above which a returning face takes a lost person's id (docs/analyze.md).
REID_THRESHOLD = 0.77
#: How long (seconds) a lost person can still be recognised.
REID_WINDOW_S = 5.0
#: Colour-histogram correlation between analysed frames below which the shot changed (a camera cut):
#: boxes are then not matched by position across it (on the bundled clip cuts score 0.53-0.61, other frames >= 0.94).
CUT_THRESHOLD = 0.8
FACE_SIZE = 64
_HOG = cv2.HOGDescriptor((FACE_SIZE, FACE_SIZE), (16, 16), (8, 8), (8, 8), 9)
HOG_LENGTH = int(_HOG.getDescriptorSize())
COLOR_WEIGHT = 0.5


def appearance(frame_bgr: np.ndarray, box: Box) -> np.ndarray:
    """The appearance vector of the face in ``box``: unit-length HOG, then a hue-saturation histogram summing to 1."""
    face = cv2.resize(crop_face(frame_bgr, box, 0.0), (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA)
    shape = _HOG.compute(cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)).ravel()
    shape /= np.linalg.norm(shape) + 1e-6
    histogram = cv2.calcHist([cv2.cvtColor(face, cv2.COLOR_BGR2HSV)], [0, 1], None, [16, 4], [0, 180, 0, 256]).ravel()
    histogram /= histogram.sum() + 1e-6
    return np.concatenate([shape, histogram]).astype(np.float32)


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """0..1: HOG cosine and colour-histogram intersection of two :func:`appearance` vectors, weighted 2:1."""
    shape = float(np.dot(a[:HOG_LENGTH], b[:HOG_LENGTH]))
    colour = float(np.minimum(a[HOG_LENGTH:], b[HOG_LENGTH:]).sum())
    return (shape + COLOR_WEIGHT * colour) / (1 + COLOR_WEIGHT)


@dataclass
class Person:
    """One identity: its latest appearance, where and when it was last seen."""

    person_id: int
    look: np.ndarray | None
    box: Box
    last_seen: float


class IdentityTracker:
    """IoU tracking with person ids that survive gaps of up to ``window_s`` (``reid=False``: plain tracking).

    ``assign(frame, boxes, time_s)`` returns one person id per box. ``reidentified``
    counts the tracks that took a lost person's id, ``started`` all tracks,
    ``cuts`` the camera cuts seen (:data:`CUT_THRESHOLD`).
    """

    def __init__(
        self, reid: bool = True, window_s: float = REID_WINDOW_S, threshold: float = REID_THRESHOLD, max_missed: int = 2
    ):
        self.reid, self.window_s, self.threshold = reid, window_s, threshold
        self._scene: np.ndarray | None = None
        self.cuts = 0
        self.tracker = IoUTracker(lambda: Smoother("none"), max_missed=max_missed)
        self.person_of_track: dict[int, int] = {}
        self.people: dict[int, Person] = {}
        self.next_person = 1
        self.started = self.reidentified = 0
        self.matches: list[dict] = []  # every re-identification: who, after how long, how similar

    def _scene_cut(self, frame_bgr: np.ndarray) -> bool:
        hsv = cv2.cvtColor(cv2.resize(frame_bgr, (64, 36), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2HSV)
        histogram = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
        cv2.normalize(histogram, histogram)
        previous, self._scene = self._scene, histogram
        return previous is not None and cv2.compareHist(previous, histogram, cv2.HISTCMP_CORREL) < CUT_THRESHOLD

    def assign(self, frame_bgr: np.ndarray, boxes: list[Box], time_s: float) -> list[int]:
        if self._scene_cut(frame_bgr):
            self.cuts += 1
            self.tracker.clear()  # positions mean nothing across a cut; appearance still may
        tracks = self.tracker.assign(boxes)
        active = {self.person_of_track[t.track_id] for t in tracks if t.track_id in self.person_of_track}
        ids = []
        for track, box in zip(tracks, boxes):
            look = appearance(frame_bgr, box) if self.reid else None  # only re-identification compares looks
            person_id = self.person_of_track.get(track.track_id)
            if person_id is None:
                self.started += 1
                person_id = self._returning(look, time_s, active)
                if person_id is None:
                    person_id, self.next_person = self.next_person, self.next_person + 1
                self.person_of_track[track.track_id] = person_id
                active.add(person_id)
            self.people[person_id] = Person(person_id, look, box, time_s)
            ids.append(person_id)
        self._forget(time_s)
        return ids

    def _returning(self, look: np.ndarray, time_s: float, active: set[int]) -> int | None:
        if not self.reid:
            return None
        best, best_score = None, self.threshold
        for person in self.people.values():
            if person.person_id in active or time_s - person.last_seen > self.window_s:
                continue
            score = similarity(look, person.look)
            if score >= best_score:
                best, best_score = person, score
        if best is None:
            return None
        # a face that moved too far for IoU leaves its old track pending: retire it
        self.tracker.tracks = [t for t in self.tracker.tracks if self.person_of_track.get(t.track_id) != best.person_id]
        self.reidentified += 1
        self.matches.append(
            {"person": best.person_id, "gap_s": round(time_s - best.last_seen, 2), "similarity": round(best_score, 3)}
        )
        return best.person_id

    def _forget(self, time_s: float) -> None:
        """Keep memory bounded on long videos: drop people unseen for longer than the window."""
        for person_id in [p for p, person in self.people.items() if time_s - person.last_seen > self.window_s]:
            del self.people[person_id]
        live = {t.track_id for t in self.tracker.tracks}
        self.person_of_track = {t: p for t, p in self.person_of_track.items() if t in live}
