"""``ferkeras cam``: frames from a camera, video, URL or images -> faces -> overlay, CSV, JSONL.

Outputs are written under temporary names and renamed when the run ends, also
after Ctrl-C or SIGTERM, so a finished file is always complete.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ferkeras.errors import FerKerasError
from ferkeras.inference.overlay import draw_faces
from ferkeras.inference.recognizer import FaceResult, Recognizer

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
READ_RETRIES = 5
FACE_COLUMNS = ["face_id", "x", "y", "w", "h", "label", "confidence"]
WINDOW_HINT = (
    "no window available (this OpenCV is the headless build); continuing without display. "
    "For a window: pip uninstall opencv-python-headless && pip install 'opencv-python>=4.9,<5'"
)


class FrameSource:
    """Frames and timestamps (ms) from a camera index, a video file or URL, or images."""

    def __init__(self, source: str | int):
        self.name = str(source)
        self.images: list[Path] | None = None
        self.capture = None
        self.live = False
        text = str(source)
        path = Path(text)
        if text.isdigit():
            self.capture, self.live = cv2.VideoCapture(int(text)), True
            if not self.capture.isOpened():
                raise FerKerasError(f"cannot open camera {text}: is it connected and free? (try another index with --source N)")
        elif path.is_dir():
            self.images = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not self.images:
                raise FerKerasError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            self.images = [path]
        elif path.is_file() or "://" in text:
            self.capture, self.live = cv2.VideoCapture(text), "://" in text
            if not self.capture.isOpened():
                raise FerKerasError(f"cannot open video {text}: not a video OpenCV can read")
        else:
            raise FerKerasError(f"source not found: {text} (a camera index, video file, image, folder or URL)")
        self.fps = (self.capture.get(cv2.CAP_PROP_FPS) if self.capture is not None else 0) or 30.0
        self._start = time.monotonic()
        self._index = 0

    def read(self) -> tuple[np.ndarray, float] | None:
        """The next frame and its timestamp in ms, or None at the end (or after repeated failures)."""
        if self.images is not None:
            while self._index < len(self.images):
                path = self.images[self._index]
                self._index += 1
                frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
                if frame is not None:
                    return frame, (time.monotonic() - self._start) * 1000
                print(f"skipping unreadable image {path}", file=sys.stderr)
            return None
        for attempt in range(READ_RETRIES if self.live else 1):
            ok, frame = self.capture.read()
            if ok and frame is not None:
                if self.live:
                    return frame, (time.monotonic() - self._start) * 1000
                return frame, float(self.capture.get(cv2.CAP_PROP_POS_MSEC))
            if self.live:
                time.sleep(0.05 * (attempt + 1))
        if self.live:
            print(f"{self.name}: no frame after {READ_RETRIES} tries; stopping", file=sys.stderr)
        return None

    def close(self) -> None:
        if self.capture is not None:
            self.capture.release()


@dataclass
class RunStats:
    """What a run did and where its time went (seconds per stage)."""

    frames: int = 0
    processed: int = 0
    faces: int = 0
    seconds: dict = field(default_factory=lambda: dict.fromkeys(("decode", "detect", "classify", "smooth", "draw", "encode"), 0.0))
    wall: float = 0.0
    stopped_by: str | None = None

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall else 0.0


class _Outputs:
    """Video, CSV and JSONL writers that land under their real names only at close."""

    def __init__(self, video: Path | None, csv_path: Path | None, jsonl: Path | None, fps: float, class_names):
        self.targets: list[tuple[Path, Path]] = []
        self.video_path, self.writer, self.fps = video, None, fps
        self.csv = self.jsonl = None
        self.class_names = class_names
        if csv_path:
            self.csv_file = self._open(csv_path)
            self.csv = csv.writer(self.csv_file)
            self.csv.writerow(["frame", "timestamp_ms", *FACE_COLUMNS] + [f"p_{c}" for c in class_names])
        if jsonl:
            self.jsonl = self._open(jsonl)

    def _temp(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.part{path.suffix}")
        self.targets.append((tmp, path))
        return tmp

    def _open(self, path: Path):
        return open(self._temp(Path(path)), "w", newline="")

    def write(self, index: int, timestamp: float, faces: list[FaceResult], frame: np.ndarray | None) -> None:
        if self.csv:
            for face in faces:
                b = face.box
                self.csv.writerow([index, f"{timestamp:.1f}", face.track_id, b.x, b.y, b.w, b.h, face.label, f"{face.confidence:.4f}"]
                                  + [f"{p:.4f}" for p in face.probabilities])
            if not faces:
                self.csv.writerow([index, f"{timestamp:.1f}"] + [""] * (len(FACE_COLUMNS) + len(self.class_names)))
        if self.jsonl:
            record = {"frame": index, "timestamp_ms": round(timestamp, 1), "faces": [f.to_dict(self.class_names) for f in faces]}
            self.jsonl.write(json.dumps(record) + "\n")
        if frame is not None and self.video_path:
            if self.writer is None:
                height, width = frame.shape[:2]
                tmp = self._temp(Path(self.video_path))
                self.writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
                if not self.writer.isOpened():
                    raise FerKerasError(f"cannot write video {self.video_path} (use a .mp4 or .avi name)")
            self.writer.write(frame)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.release()
        for handle in (getattr(self, "csv_file", None), self.jsonl):
            if handle:
                handle.close()
        for tmp, target in self.targets:
            if tmp.exists():
                os.replace(tmp, target)


def run(
    source,
    recognizer: Recognizer,
    output: str | Path | None = None,
    csv_path: str | Path | None = None,
    jsonl_path: str | Path | None = None,
    display: bool = False,
    max_frames: int | None = None,
    every: int = 1,
    draw: bool | None = None,
    quiet: bool = False,
) -> RunStats:
    """Process ``source`` (a path, camera index or URL, or a :class:`FrameSource`)
    until it ends, ``max_frames``, Ctrl-C or SIGTERM."""
    if every < 1:
        raise FerKerasError("--every must be >= 1")
    frames = FrameSource(source) if isinstance(source, (str, int, Path)) else source
    stats = RunStats()
    draw = bool(output or display) if draw is None else draw
    outputs = _Outputs(Path(output) if output else None, Path(csv_path) if csv_path else None,
                       Path(jsonl_path) if jsonl_path else None, frames.fps, recognizer.class_names)
    stop = {"signal": None}

    def request_stop(signum, _frame):
        stop["signal"] = signal.Signals(signum).name

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    faces: list[FaceResult] = []
    fps = None
    start = time.perf_counter()
    last = start
    timings_before = dict(recognizer.timings)
    try:
        while stop["signal"] is None and (max_frames is None or stats.frames < max_frames):
            t0 = time.perf_counter()
            item = frames.read()
            stats.seconds["decode"] += time.perf_counter() - t0
            if item is None:
                break
            frame, timestamp = item
            if stats.frames % every == 0:
                faces = recognizer.process(frame)
                stats.processed += 1
            stats.faces += len(faces)
            now = time.perf_counter()
            fps = 1.0 / max(now - last, 1e-6) if fps is None else 0.9 * fps + 0.1 / max(now - last, 1e-6)
            last = now
            t0 = time.perf_counter()
            if draw:
                draw_faces(frame, faces, recognizer.class_names, fps)
            stats.seconds["draw"] += time.perf_counter() - t0
            t0 = time.perf_counter()
            outputs.write(stats.frames, timestamp, faces, frame if output else None)
            stats.seconds["encode"] += time.perf_counter() - t0
            if display:
                try:
                    cv2.imshow("ferkeras", frame)
                    if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                        stop["signal"] = "key"
                except cv2.error:
                    print(WINDOW_HINT, file=sys.stderr)
                    display = False
            stats.frames += 1
            if not quiet and stats.frames % 100 == 0:
                print(f"{stats.frames} frames, {stats.frames / (time.perf_counter() - start):.1f} FPS", file=sys.stderr)
    finally:
        stats.wall = time.perf_counter() - start
        stats.stopped_by = stop["signal"]
        outputs.close()
        frames.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if display:
            cv2.destroyAllWindows()
    for stage in ("detect", "classify", "smooth"):
        stats.seconds[stage] = recognizer.timings[stage] - timings_before[stage]
    return stats
