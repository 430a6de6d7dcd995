"""One video -> per-frame rows, person thumbnails and facts about the run (no files written here).

Frames are sampled by their timestamps, not their index: ``fps=5`` takes the
first frame at or after 0.0, 0.2, 0.4 ... s of video time, whatever the file's
frame rate, variable-rate files included. Memory stays bounded on long videos:
one frame at a time, a few numbers per face, and one thumbnail per person.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ferkeras.analysis.identity import IdentityTracker
from ferkeras.errors import FerKerasError
from ferkeras.inference.faces import crop_face
from ferkeras.inference.recognizer import Recognizer

#: Per-frame table columns before the probabilities (``p_<class>``).
FRAME_COLUMNS = ["time_s", "time_ms", "frame", "person", "x", "y", "w", "h", "label", "confidence"]
THUMBNAIL_SIZE = 96


@dataclass
class VideoResult:
    """What :func:`analyze_video` found: ``rows`` follow :data:`FRAME_COLUMNS` then one probability per class."""

    source: str
    class_names: list[str]
    rows: list[tuple] = field(default_factory=list)
    thumbnails: dict[int, bytes] = field(default_factory=dict)  # person -> JPEG
    facts: dict = field(default_factory=dict)


def sampled_frames(capture: cv2.VideoCapture, fps: float):
    """``(frame_index, time_s, frame)`` for the first frame at or after each multiple of 1/fps seconds."""
    container_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    step, next_time, index, last_time = 1.0 / fps, 0.0, -1, -1.0
    while capture.grab():
        index += 1
        stamp = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0
        if stamp <= last_time and container_fps > 0:  # no usable timestamps: fall back to the frame rate
            stamp = index / container_fps
        last_time = stamp
        if stamp + 1e-6 < next_time:
            continue
        ok, frame = capture.retrieve()
        if not ok or frame is None:
            continue
        yield index, stamp, frame
        next_time = (np.floor(stamp / step + 1e-6) + 1) * step


def _thumbnail(frame: np.ndarray, box) -> bytes:
    face = cv2.resize(crop_face(frame, box, 0.25), (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
    return cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes()


def analyze_video(path: str | Path, recognizer: Recognizer, fps: float, reid: bool = True, progress=None) -> VideoResult:
    """Faces and emotions in ``path`` at ``fps`` analysed frames per second of video time.

    ``progress(seconds_done, seconds_total)`` is called after each analysed frame.
    Raises FerKerasError when the file cannot be read as a video.
    """
    path = Path(path)
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise FerKerasError(f"cannot open {path} as a video")
    frame_count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
    container_fps = capture.get(cv2.CAP_PROP_FPS) or 0.0
    duration = frame_count / container_fps if container_fps > 0 and frame_count > 0 else None
    identities = IdentityTracker(reid=reid)
    result = VideoResult(str(path), list(recognizer.class_names))
    best_face: dict[int, int] = {}  # person -> area of the face in their thumbnail
    started, sampled, last_time = time.perf_counter(), 0, 0.0
    try:
        for index, stamp, frame in sampled_frames(capture, fps):
            sampled, last_time = sampled + 1, stamp
            faces = recognizer.predict_image(frame)
            people = identities.assign(frame, [f.box for f in faces], stamp)
            if not faces:
                result.rows.append(
                    (
                        round(stamp, 3),
                        int(round(stamp * 1000)),
                        index,
                        None,
                        None,
                        None,
                        None,
                        None,
                        "",
                        None,
                        *[None] * len(result.class_names),
                    )
                )
            for face, person in zip(faces, people):
                b = face.box
                probabilities = [round(float(p), 4) for p in face.raw_probabilities]
                result.rows.append(
                    (
                        round(stamp, 3),
                        int(round(stamp * 1000)),
                        index,
                        person,
                        b.x,
                        b.y,
                        b.w,
                        b.h,
                        face.label,
                        round(face.confidence, 4),
                        *probabilities,
                    )
                )
                if b.w * b.h > best_face.get(person, 0):
                    best_face[person] = b.w * b.h
                    result.thumbnails[person] = _thumbnail(frame, b)
            if progress is not None:
                progress(stamp, duration)
    finally:
        capture.release()
    if sampled == 0:
        raise FerKerasError(f"no frames could be decoded from {path} (corrupt, empty or not a video)")
    result.facts = {
        "container_fps": round(container_fps, 3),
        "container_frames": frame_count,
        "duration_s": round(duration if duration else last_time, 3),
        "analysed_frames": sampled,
        "last_time_s": round(last_time, 3),
        "tracks_started": identities.started,
        "reidentified": identities.reidentified,
        "scene_cuts": identities.cuts,
        "reid_matches": identities.matches[:200],
        "seconds": round(time.perf_counter() - started, 2),
    }
    return result
