"""Peak memory of the face loader on large photos (the loader resizes while decoding).

    python scripts/bench_loader_memory.py --count 200 --width 4000 --height 3000

Writes COUNT photo-sized JPEGs into a class-folder data set under a temporary
folder, then loads the ``train`` split at 48 px in a fresh process and prints
its peak resident memory (``ru_maxrss``) and the baseline of a process that only
imported the loader. ``--repo PATH`` measures another checkout's loader.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

MEASURE = """
import resource, sys, time
sys.path.insert(0, {repo!r})
from ferkeras.data.sources import load_split
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
split = load_split({root!r}, "train", 48)
print(len(split), base // 1024, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024, round(time.perf_counter() - start, 1))
"""


def write_photos(root: Path, count: int, width: int, height: int) -> None:
    """COUNT smooth-gradient JPEGs with noise (realistic size on disk), spread over the 7 class folders."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 210, width, dtype=np.float32)[None, :].repeat(height, 0)
    classes = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
    for i in range(count):
        folder = root / "train" / classes[i % len(classes)]
        folder.mkdir(parents=True, exist_ok=True)
        image = ramp + rng.normal(0, 8, (height, width)).astype(np.float32)
        colour = cv2.cvtColor(np.clip(image, 0, 255).astype(np.uint8), cv2.COLOR_GRAY2BGR)
        cv2.imwrite(str(folder / f"photo_{i}.jpg"), colour, [cv2.IMWRITE_JPEG_QUALITY, 85])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--width", type=int, default=4000)
    parser.add_argument("--height", type=int, default=3000)
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]), help="checkout whose loader to measure")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_photos(Path(folder), args.count, args.width, args.height)
        code = MEASURE.format(repo=args.repo, root=folder)
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    faces, base, peak, seconds = out
    print(
        f"{faces} photos of {args.width}x{args.height}: peak RSS {peak} MB (after imports {base} MB), {seconds} s; loader: {args.repo}"
    )


if __name__ == "__main__":
    main()
