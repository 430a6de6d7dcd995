"""Resident memory of ``ferkeras analyze`` over a long video: it must stay flat (docs/analyze.md).

    python scripts/analyze_memory.py --minutes 60 [--work /tmp/ferkeras-memory]

Loops the bundled clip into a ``--minutes`` long video (640x360, 29.97 fps,
written once and kept in --work), analyses it at --fps 5 in this process, and
samples this process's RSS every 2 s. Prints RSS at each tenth of the run.
"""

import argparse
import os
import threading
import time
from pathlib import Path

import cv2
from bench_cam import read_frames  # scripts/ is on the path when a script runs

from ferkeras.analysis.batch import AnalyzeSettings, run_batch
from ferkeras.inference.auto import cpu_identity
from ferkeras.serve.loadtest import rss_mb

CLIP = Path(__file__).resolve().parents[1] / "samples" / "stage_and_audience.mp4"


def make_long_video(path: Path, minutes: float) -> Path:
    frames = read_frames(CLIP)
    fps = cv2.VideoCapture(str(CLIP)).get(cv2.CAP_PROP_FPS)
    total = int(minutes * 60 * fps)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for index in range(total):
        writer.write(frames[index % len(frames)])
    writer.release()
    return path


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--fps", type=float, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ferkeras-memory"))
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
    summary = run_batch([video], args.work / "out", AnalyzeSettings(fps=args.fps), quiet=True)
    done.set()
    thread.join()
    cpu = cpu_identity()
    print(f"CPU: {cpu['model']} ({' '.join(s for s in cpu['simd'] if s.startswith(('avx2', 'avx512f', 'avx512_vnni', 'amx')))})")
    print(
        f"{summary[0]['status']}: {summary[0]['analysed_frames']} frames analysed, {summary[0]['people']} people, in {time.time() - start:.0f} s"
    )
    for tenth in range(11):
        at, rss = samples[min(len(samples) - 1, round(tenth / 10 * (len(samples) - 1)))]
        print(f"  {tenth * 10:3d}% of the run ({at:5.0f} s): RSS {rss:6.0f} MB")
    print(f"max RSS {max(r for _, r in samples):.0f} MB")


if __name__ == "__main__":
    main()
