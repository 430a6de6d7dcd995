"""``ferkeras cam``: frames from a camera, video, URL or images -> faces -> overlay, CSV, JSONL.

Outputs are written under temporary names and published when the run ends,
also after Ctrl-C or SIGTERM, so a file under its own name is always complete;
after a failure (full disk, a writer error) they are kept as ``NAME.partial.EXT``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ferkeras.errors import FerKerasError
from ferkeras.images import IMAGE_SUFFIXES, is_image_file, read_image
from ferkeras.inference.overlay import draw_faces
from ferkeras.inference.recognizer import FaceResult, Recognizer
from ferkeras.io import StagedOutputs

log = logging.getLogger(__name__)
READ_RETRIES = 5
#: A network stream that stalls longer than this (ms) counts as a failed read,
#: so Ctrl-C and the retry limit take effect within seconds.
STREAM_TIMEOUTS_MS = {"open": 10000, "read": 3000}
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
        self.stopping = False  # set by a signal handler: give up retrying at once
        self.skipped: list[str] = []
        text = str(source)
        path = Path(text)
        self.path = path if path.is_file() or path.is_dir() else None
        if text.isdigit():
            self.capture, self.live = cv2.VideoCapture(int(text)), True
            if not self.capture.isOpened():
                raise FerKerasError(f"cannot open camera {text}: is it connected and free? (try another index with --source N)")
        elif path.is_dir():
            self.images = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
            if not self.images:
                raise FerKerasError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in folder {path}")
        elif path.is_file() and is_image_file(path):
            self.images = [path]
        elif "://" in text:
            timeouts = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
                STREAM_TIMEOUTS_MS["open"],
                cv2.CAP_PROP_READ_TIMEOUT_MSEC,
                STREAM_TIMEOUTS_MS["read"],
            ]
            self.capture, self.live = cv2.VideoCapture(text, cv2.CAP_FFMPEG, timeouts), True
            if not self.capture.isOpened():
                raise FerKerasError(f"cannot open stream {text}: unreachable, or not a video OpenCV can read")
        elif path.is_file():
            self.capture = cv2.VideoCapture(text)
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
                frame, problem = read_image(path, gray=False)
                if frame is not None:
                    return frame, (time.monotonic() - self._start) * 1000
                self.skipped.append(str(path))
                log.warning(f"skipping image {path}: {problem}")
            return None
        for attempt in range(READ_RETRIES if self.live else 1):
            if self.stopping:
                return None
            ok, frame = self.capture.read()
            if ok and frame is not None:
                if self.live:
                    return frame, (time.monotonic() - self._start) * 1000
                return frame, float(self.capture.get(cv2.CAP_PROP_POS_MSEC))
            if self.live and not self.stopping:
                time.sleep(0.05 * (attempt + 1))
        if self.live:
            log.warning(f"{self.name}: no frame after {READ_RETRIES} tries; stopping")
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
    seconds: dict = field(
        default_factory=lambda: dict.fromkeys(("decode", "detect", "classify", "smooth", "draw", "encode"), 0.0)
    )
    wall: float = 0.0
    stopped_by: str | None = None
    written: list = field(default_factory=list)  # output paths, complete ones under their own names
    partial: str | None = None  # why ``written`` are NAME.partial.EXT files, if they are

    @property
    def fps(self) -> float:
        return self.frames / self.wall if self.wall else 0.0


def check_output_paths(source, outputs: dict[str, str | Path | None]) -> None:
    """Refuse outputs that would overwrite the input or each other, or that name a folder.

    ``outputs`` maps option names (``--output``) to paths (None: not requested).
    """
    if isinstance(source, (str, Path)):
        source_path = Path(source)
    else:  # a FrameSource, or any object with read() (its file, if it has one)
        source_path = getattr(source, "path", None)
    seen: dict[Path, str] = {}
    for option, path in outputs.items():
        if not path:
            continue
        resolved = Path(path).expanduser().resolve()
        if resolved.is_dir():
            raise FerKerasError(f"{option} {path} is a folder; name a file")
        if (
            source_path is not None
            and source_path.exists()
            and (
                resolved == source_path.resolve()
                or (source_path.is_dir() and source_path.resolve() in resolved.parents and is_image_file(resolved))
            )
        ):
            raise FerKerasError(f"{option} {path} would overwrite the input {source_path}; choose another file name")
        if resolved in seen:
            raise FerKerasError(f"{option} and {seen[resolved]} both name {path}; choose two file names")
        seen[resolved] = option


class _Outputs:
    """Video, CSV and JSONL writers, staged under temporary names (see :class:`StagedOutputs`)."""

    def __init__(self, video: Path | None, csv_path: Path | None, jsonl: Path | None, fps: float, class_names):
        self.staged = StagedOutputs()
        self.video_path, self.writer, self.fps = video, None, fps
        self.video_frames = 0
        self.csv = self.jsonl = self.csv_file = None
        self.class_names = class_names
        try:
            if csv_path:
                self.csv_file = self._open(csv_path)
                self.csv = csv.writer(self.csv_file)
                self.csv.writerow(["frame", "timestamp_ms", *FACE_COLUMNS] + [f"p_{c}" for c in class_names])
            if jsonl:
                self.jsonl = self._open(jsonl)
        except BaseException:
            if self.csv_file:
                self.csv_file.close()
            self.staged.discard()
            raise

    def _open(self, path: Path):
        temp = self.staged.stage(path)
        try:
            return open(temp, "w", newline="")
        except OSError as exc:
            raise FerKerasError(f"cannot write {path}: {exc.strerror}") from None

    def write(self, index: int, timestamp: float, faces: list[FaceResult], frame: np.ndarray | None) -> None:
        try:
            self._write(index, timestamp, faces, frame)
        except OSError as exc:  # a full disk or a vanished folder, named
            names = ", ".join(str(target) for _, target in self.staged.staged)
            raise FerKerasError(f"cannot write {names}: {exc.strerror or exc}") from None

    def _write(self, index: int, timestamp: float, faces: list[FaceResult], frame: np.ndarray | None) -> None:
        if self.csv:
            for face in faces:
                b = face.box
                self.csv.writerow(
                    [index, f"{timestamp:.1f}", face.track_id, b.x, b.y, b.w, b.h, face.label, f"{face.confidence:.4f}"]
                    + [f"{p:.4f}" for p in face.probabilities]
                )
            if not faces:
                self.csv.writerow([index, f"{timestamp:.1f}"] + [""] * (len(FACE_COLUMNS) + len(self.class_names)))
        if self.jsonl:
            record = {"frame": index, "timestamp_ms": round(timestamp, 1), "faces": [f.to_dict(self.class_names) for f in faces]}
            self.jsonl.write(json.dumps(record) + "\n")
        if frame is not None and self.video_path:
            if self.writer is None:
                self._open_video(frame)
            self.writer.write(frame)
            self.video_frames += 1

    def _open_video(self, frame: np.ndarray) -> None:
        height, width = frame.shape[:2]
        temp = self.video_temp = self.staged.stage(self.video_path)
        self.writer = cv2.VideoWriter(str(temp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (width, height))
        if not self.writer.isOpened():
            folder = self.video_path.parent
            if not os.access(folder, os.W_OK):
                raise FerKerasError(f"cannot write video {self.video_path}: no permission to write in {folder}")
            raise FerKerasError(
                f"cannot write video {self.video_path}: OpenCV has no encoder for "
                f"'{self.video_path.suffix or '(no suffix)'}' files; use a .mp4 or .avi name"
            )

    def _video_complete(self) -> bool:
        """Whether the finished video opens and holds every frame written (a full disk truncates it silently)."""
        if self.writer is None:
            return True
        capture = cv2.VideoCapture(str(self.video_temp))
        try:
            return capture.isOpened() and int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == self.video_frames
        finally:
            capture.release()

    def close(self, complete: bool) -> tuple[list[Path], str | None]:
        """Finish every file; publish them if ``complete`` and all closed cleanly, else keep them as partial.

        Returns the paths written and, for partial ones, what went wrong.
        """
        problem = None if complete else "the run failed"
        if self.writer is not None:
            self.writer.release()
        for handle in (self.csv_file, self.jsonl):
            if handle:
                try:
                    handle.close()
                except OSError as exc:  # the final flush hit a full disk
                    problem = problem or f"finishing {handle.name} failed: {exc.strerror}"
        if problem is None and not self._video_complete():
            problem = f"the video writer lost frames of {self.video_path} (disk full?)"
        return (self.staged.publish(), None) if problem is None else (self.staged.keep_partial(), problem)


class _Reader:
    """Frames in order: ``(frame, timestamp, None)``; :meth:`Recognizer.process` detects."""

    def __init__(self, frames: FrameSource, stats: RunStats):
        self.frames, self.stats = frames, stats

    def next(self):
        start = time.perf_counter()
        item = self.frames.read()
        self.stats.seconds["decode"] += time.perf_counter() - start
        return None if item is None else (*item, None)

    def close(self) -> None:
        pass


class _PipelinedReader(_Reader):
    """Reads and detects in a thread, up to two frames ahead: ``(frame, timestamp, boxes)``."""

    def __init__(self, frames: FrameSource, recognizer: Recognizer, every: int, limit: float, stats: RunStats):
        super().__init__(frames, stats)
        self.queue: queue.Queue = queue.Queue(maxsize=2)
        self.stopping = threading.Event()

        def produce():
            index = 0
            try:
                while not self.stopping.is_set() and index < limit:
                    item = _Reader.next(self)
                    if item is None:
                        break
                    frame, timestamp, _ = item
                    boxes = recognizer.detect(frame) if index % every == 0 else None
                    self._put((frame, timestamp, boxes))
                    index += 1
                self._put(None)
            except BaseException as exc:  # handed to the consumer, which raises it
                self._put(exc)

        self.thread = threading.Thread(target=produce, name="ferkeras-detect", daemon=True)
        self.thread.start()

    def _put(self, item) -> None:
        while not self.stopping.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def next(self):
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)


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
    pipeline: bool = False,
) -> RunStats:
    """Process ``source`` (a path, camera index or URL, or a :class:`FrameSource`)
    until it ends, ``max_frames``, Ctrl-C or SIGTERM.

    ``pipeline`` reads and detects the next frame in a second thread while this
    one classifies, smooths and writes the current one (the runtimes release the
    GIL, so two cores work at once); the results are the same as without.

    ``stats.written`` lists the files written: under their own names when the run
    ended normally or by a signal. When it failed, or an output came out short
    (a full disk), they are kept as ``NAME.partial.EXT`` and an error is raised.
    """
    if every < 1:
        raise FerKerasError(f"--every must be >= 1, got {every}")
    if max_frames is not None and max_frames < 1:
        raise FerKerasError(f"--max-frames must be >= 1, got {max_frames}")
    frames = FrameSource(source) if isinstance(source, (str, int, Path)) else source
    check_output_paths(frames, {"--output": output, "--csv": csv_path, "--jsonl": jsonl_path})
    stats = RunStats()
    draw = bool(output or display) if draw is None else draw
    outputs = _Outputs(
        Path(output) if output else None,
        Path(csv_path) if csv_path else None,
        Path(jsonl_path) if jsonl_path else None,
        frames.fps,
        recognizer.class_names,
    )
    stop = {"signal": None}

    def request_stop(signum, _frame):
        stop["signal"] = signal.Signals(signum).name
        frames.stopping = True

    previous = {s: signal.signal(s, request_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    faces: list[FaceResult] = []
    fps = None
    start = time.perf_counter()
    last = start
    timings_before = dict(recognizer.timings)
    complete = False
    read = None
    try:
        limit = max_frames if max_frames is not None else float("inf")
        read = _PipelinedReader(frames, recognizer, every, limit, stats) if pipeline else _Reader(frames, stats)
        while stop["signal"] is None and stats.frames < limit:
            item = read.next()
            if item is None:
                break
            frame, timestamp, boxes = item
            if stats.frames % every == 0:
                faces = recognizer.process(frame, boxes=boxes)
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
                    log.warning(WINDOW_HINT)
                    display = False
            stats.frames += 1
            if not quiet and stats.frames % 100 == 0:
                log.info(f"{stats.frames} frames, {stats.frames / (time.perf_counter() - start):.1f} FPS")
        complete = True
    finally:
        if read is not None:
            read.close()
        stats.wall = time.perf_counter() - start
        stats.stopped_by = stop["signal"]
        stats.written, stats.partial = outputs.close(complete)
        if stats.partial and stats.written:
            log.warning("kept incomplete output(s): " + ", ".join(map(str, stats.written)))
        frames.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if display:
            cv2.destroyAllWindows()
    if stats.partial:
        raise FerKerasError(f"{stats.partial}; incomplete outputs kept as " + ", ".join(map(str, stats.written)))
    for stage in ("detect", "classify", "smooth"):
        stats.seconds[stage] = recognizer.timings[stage] - timings_before[stage]
    return stats
