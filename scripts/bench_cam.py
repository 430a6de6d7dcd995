"""End-to-end ``cam`` benchmarks: FPS by stage, a fer-style baseline, label stability, memory.

    python scripts/bench_cam.py --model saved_models/fer2013_resnet18_cbam_small/model_int8.tflite

1. FPS (decode -> detect -> crop -> classify -> smooth -> draw -> encode) on a
   640x480 clip with one face and one with several faces, both cut from the
   bundled sample clip and letterboxed to 640x480; the same clips through a
   fer-style pipeline (full-frame Haar, scaleFactor 1.1, minNeighbors 5, then
   the same classifier per face), timed in the same run.
2. Label stability on the sample clip: label changes per second of tracked
   face time, without smoothing and with EMA / moving average; and the lag
   with which the smoothed label follows a real change (the raw per-frame
   outputs of one tracked face followed by those of another face with another
   label, as if the expression changed).
3. Memory: resident set size every 1,000 frames over a 10,000-frame run.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import cv2
import numpy as np

from ferkeras.artifacts import DEFAULT_MODEL, TFLITE_FILES, resolve_model
from ferkeras.inference.faces import HaarDetector, make_detector
from ferkeras.inference.predictor import Predictor
from ferkeras.inference.recognizer import Recognizer
from ferkeras.inference.runner import run
from ferkeras.inference.smoothing import Smoother, Track

REPO = Path(__file__).resolve().parents[1]
CLIP = REPO / "samples" / "stage_and_audience.mp4"  # the bundled demo clip


def read_frames(clip: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(clip))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def letterbox(frame: np.ndarray, width: int = 640, height: int = 480) -> np.ndarray:
    scale = min(width / frame.shape[1], height / frame.shape[0])
    resized = cv2.resize(frame, (int(frame.shape[1] * scale), int(frame.shape[0] * scale)))
    top, left = (height - resized.shape[0]) // 2, (width - resized.shape[1]) // 2
    return cv2.copyMakeBorder(
        resized, top, height - resized.shape[0] - top, left, width - resized.shape[1] - left, cv2.BORDER_CONSTANT
    )


def write_clip(path: Path, frames: list[np.ndarray], fps: float = 30.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def time_pipeline(clip: Path, recognizer: Recognizer, workdir: Path) -> dict:
    stats = run(str(clip), recognizer, output=workdir / "out.mp4", csv_path=workdir / "out.csv", quiet=True)
    return {
        "fps": round(stats.fps, 1),
        "faces_per_frame": round(stats.faces / max(stats.frames, 1), 2),
        "ms_per_frame": {k: round(1000 * v / stats.frames, 2) for k, v in stats.seconds.items()},
    }


def label_changes(frames: list[np.ndarray], recognizer: Recognizer, fps: float) -> tuple[float, dict]:
    """Label changes per second of tracked-face time, and the raw outputs per track."""
    recognizer.reset()
    last, changes, face_frames = {}, 0, 0
    raw_by_track = defaultdict(list)
    for frame in frames:
        for face in recognizer.process(frame):
            face_frames += 1
            raw_by_track[face.track_id].append(face.raw_probabilities)
            if face.track_id in last and last[face.track_id] != face.label:
                changes += 1
            last[face.track_id] = face.label
    return changes / (face_frames / fps), raw_by_track


def follow_lag(raw_by_track: dict, smoothing: tuple, threshold: float, hysteresis: float) -> float | None:
    """Frames until the shown label is the second face's label, averaged over track pairs."""
    long = {t: np.array(v) for t, v in raw_by_track.items() if len(v) >= 20}
    majority = {t: Counter(v.argmax(1)).most_common(1)[0][0] for t, v in long.items()}
    lags = []
    for a in long:
        for b in long:
            if majority[a] == majority[b]:
                continue
            track = Track(0, None, Smoother(*smoothing))
            for p in long[a][:30]:
                track.choose_label(track.smoother.update(p), threshold, hysteresis)
            for i, p in enumerate(long[b][:30]):
                s = track.smoother.update(p)
                if track.choose_label(s, threshold, hysteresis) == majority[b]:
                    lags.append(i + 1)
                    break
    return float(np.mean(lags)) if lags else None


class LoopingSource:
    """Frames from memory, looped, for long runs without a long file."""

    def __init__(self, frames, count, fps=30.0):
        self.frames, self.count, self.fps, self.i = frames, count, fps, 0
        self.name = "loop"

    def read(self):
        if self.i >= self.count:
            return None
        frame = self.frames[self.i % len(self.frames)].copy()
        self.i += 1
        return frame, self.i * 1000 / self.fps

    def close(self):
        pass


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(resolve_model(DEFAULT_MODEL, (TFLITE_FILES["int8"],))))
    parser.add_argument("--clip", default=str(CLIP))
    parser.add_argument("--alpha", type=float, default=0.2)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--hysteresis", type=float, default=0.15)
    parser.add_argument("--skip", nargs="*", default=[], choices=["fps", "memory"], help="Sections to leave out.")
    parser.add_argument("--memory-frames", type=int, default=10_000)
    parser.add_argument("--json", help="Write all results here.")
    args = parser.parse_args()

    frames = read_frames(Path(args.clip))
    source_fps = cv2.VideoCapture(args.clip).get(cv2.CAP_PROP_FPS) or 30.0
    predictor = Predictor.load(args.model, threads=1)
    results = {"model": args.model, "cpu_count": os.cpu_count()}

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        one = [letterbox(f) for f in frames[82:121]] * 8  # single performer, frontal
        many = [letterbox(f) for f in frames[200:275]] * 4  # audience, several faces
        clips = (
            {}
            if "fps" in args.skip
            else {"one_face": write_clip(tmp / "one.mp4", one), "several_faces": write_clip(tmp / "many.mp4", many)}
        )
        results["fps"] = {}
        for name, clip in clips.items():
            ours = Recognizer(predictor, make_detector("blazeface"))
            fer_style = Recognizer(predictor, HaarDetector(min_size=30), smoothing="none", padding=0.0)
            row = {
                "ferkeras (blazeface)": time_pipeline(clip, ours, tmp),
                "fer-style (full-frame Haar)": time_pipeline(clip, fer_style, tmp),
            }
            row["speedup"] = round(row["ferkeras (blazeface)"]["fps"] / row["fer-style (full-frame Haar)"]["fps"], 2)
            results["fps"][name] = row
            print(name, json.dumps(row), flush=True)

    settings = {
        "none": ("none", 1.0, 1, 0.0),
        f"ema alpha={args.alpha}": ("ema", args.alpha, 1, 0.0),
        f"mean N={args.window}": ("mean", 1.0, args.window, 0.0),
        f"ema alpha={args.alpha} + hysteresis {args.hysteresis}": ("ema", args.alpha, 1, args.hysteresis),
        f"mean N={args.window} + hysteresis {args.hysteresis}": ("mean", 1.0, args.window, args.hysteresis),
    }
    results["stability"] = {}
    raw_tracks = None
    for name, (method, alpha, window, hysteresis) in settings.items():
        rec = Recognizer(
            predictor, make_detector("blazeface"), smoothing=method, alpha=alpha, window=window, hysteresis=hysteresis
        )
        rate, tracks = label_changes(frames, rec, source_fps)
        raw_tracks = raw_tracks or tracks
        lag = follow_lag(raw_tracks, (method, alpha, window), rec.threshold, hysteresis)
        results["stability"][name] = {
            "label_changes_per_s": round(rate, 3),
            "follow_lag_frames": None if lag is None else round(lag, 2),
            "follow_lag_s": None if lag is None else round(lag / source_fps, 3),
        }
        print(name, results["stability"][name], flush=True)
    base = results["stability"]["none"]["label_changes_per_s"]
    for row in results["stability"].values():
        row["reduction_vs_none"] = round(base / row["label_changes_per_s"], 1) if row["label_changes_per_s"] else None

    rec = Recognizer(predictor, make_detector("blazeface"))
    memory = []
    if "memory" in args.skip:
        args.memory_frames = 0
    source = LoopingSource([letterbox(f) for f in frames], args.memory_frames)
    with tempfile.TemporaryDirectory() as tmp:
        chunk = 1000
        for start in range(0, args.memory_frames, chunk):
            run(source, rec, output=None, csv_path=Path(tmp) / f"m{start}.csv", max_frames=chunk, quiet=True)
            memory.append(round(rss_mb(), 1))
    results["memory_rss_mb_every_1000_frames"] = memory
    print("rss MB every 1000 frames:", memory)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
