"""How similar the same person and two different people look to ``ferkeras analyze``'s re-identification.

    python scripts/reid_threshold.py samples/stage_and_audience.mp4 [--fps 5]

Tracks faces by position only (cuts split tracks, no re-identification), then
compares appearance (ferkeras.analysis.identity.similarity):
  same person: two samples of one track at least 1 s apart;
  different people: two tracks in the same frame (certainly two people).
Prints both distributions and the share of each above candidate thresholds.
"""

import argparse

import cv2
import numpy as np

from ferkeras.analysis.identity import IdentityTracker, appearance, similarity
from ferkeras.analysis.video import sampled_frames
from ferkeras.inference.faces import make_detector


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("videos", nargs="+")
    parser.add_argument("--fps", type=float, default=5.0)
    args = parser.parse_args()
    detector = make_detector("blazeface")
    same, different = [], []
    for video in args.videos:
        tracker = IdentityTracker(reid=False)
        looks: dict[int, list[tuple[float, np.ndarray]]] = {}
        for _index, stamp, frame in sampled_frames(cv2.VideoCapture(video), args.fps):
            boxes = detector.detect(frame)
            ids = tracker.assign(frame, boxes, stamp)
            vectors = [appearance(frame, b) for b in boxes]
            for i in range(len(ids)):
                looks.setdefault(ids[i], []).append((stamp, vectors[i]))
                different += [similarity(vectors[i], vectors[j]) for j in range(i + 1, len(ids))]
        for samples in looks.values():
            same += [similarity(a, b) for (ta, a) in samples for (tb, b) in samples if tb - ta >= 1.0]
    for name, values in (("same person", same), ("different people", different)):
        values = np.array(values)
        quantiles = ", ".join(f"p{q}={np.percentile(values, q):.3f}" for q in (1, 5, 50, 95, 99))
        print(f"{name}: {len(values)} pairs, {quantiles}")
    for threshold in (0.65, 0.7, 0.72, 0.75, 0.77, 0.8):
        print(
            f"threshold {threshold}: same person kept {np.mean(np.array(same) >= threshold):.1%}, "
            f"different people merged {np.mean(np.array(different) >= threshold):.1%}"
        )


if __name__ == "__main__":
    main()
