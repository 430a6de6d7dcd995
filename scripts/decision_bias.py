"""Macro-F1 of per-class decision biases fitted on half a split and scored on the other half.

    python scripts/decision_bias.py teacher/members/fer2013_resnet18_cbam_small_restart --data ../shared/fer2013

Adding a bias to each class's log-probability before the argmax trades one
class's recall for another's; fitted for macro-F1 it can lift weak classes
(fear, sad) on the faces it was fitted on. Whether that holds on faces it was
not fitted on is what this measures: the biases are fitted (coordinate ascent
over a grid) on one half of the split and applied to the other, both ways, for
several random halvings. The members' stored probabilities are read (``ferkeras
members``), so no model runs; several members are averaged.
"""

from __future__ import annotations

import argparse

import numpy as np

from ferkeras.config import DEFAULT_DATA
from ferkeras.evaluation.members import member_probabilities, split_loader
from ferkeras.labels import CLASS_NAMES, NUM_CLASSES

GRID = np.linspace(-1.0, 1.0, 41)


def predictions(log_probs: np.ndarray, bias: np.ndarray) -> np.ndarray:
    return (log_probs + bias).argmax(axis=1)


def class_f1(labels: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    true_pos = np.bincount(labels[predicted == labels], minlength=NUM_CLASSES)
    return (
        2 * true_pos / np.maximum(np.bincount(predicted, minlength=NUM_CLASSES) + np.bincount(labels, minlength=NUM_CLASSES), 1)
    )


def fit_bias(log_probs: np.ndarray, labels: np.ndarray, sweeps: int = 4) -> np.ndarray:
    """Per-class biases maximising macro-F1 on these faces (coordinate ascent over ``GRID``)."""
    bias = np.zeros(NUM_CLASSES)
    for _ in range(sweeps):
        for c in range(NUM_CLASSES):
            scores = []
            for value in GRID:
                bias[c] = value
                scores.append(class_f1(labels, predictions(log_probs, bias)).mean())
            bias[c] = GRID[int(np.argmax(scores))]
    return bias - bias.mean()


def report(name: str, labels: np.ndarray, predicted: np.ndarray) -> None:
    f1 = class_f1(labels, predicted)
    per_class = " ".join(f"{c[:3]} {v:.3f}" for c, v in zip(CLASS_NAMES, f1))
    print(f"{name:<34} {np.mean(predicted == labels) * 100:6.2f} %  macro-F1 {f1.mean():.3f}  F1: {per_class}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("members", nargs="+", help="ensemble member folders (ferkeras members)")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--split", default="val")
    parser.add_argument("--view", default="none", choices=["none", "flip", "tencrop"])
    parser.add_argument("--halvings", type=int, default=5, help="random halvings to fit and score")
    args = parser.parse_args()

    faces_at = split_loader(args.data, args.split)
    loaded = [member_probabilities(member, args.split, args.view, faces_at) for member in args.members]
    labels = loaded[0][1].labels
    log_probs = np.log(np.mean([probs for probs, _ in loaded], axis=0).astype(np.float64) + 1e-9)
    print(f"{' + '.join(args.members)}, {args.split}, view {args.view}")
    report("as stored", labels, predictions(log_probs, np.zeros(NUM_CLASSES)))
    for seed in range(args.halvings):
        halves = np.array_split(np.random.default_rng(seed).permutation(len(labels)), 2)
        crossed = np.empty(len(labels), int)
        for fit_on, score_on in (halves, halves[::-1]):
            crossed[score_on] = predictions(log_probs[score_on], fit_bias(log_probs[fit_on], labels[fit_on]))
        report(f"biases cross-fitted, halving {seed}", labels, crossed)
    bias = fit_bias(log_probs, labels)
    report("biases fitted on all (flattered)", labels, predictions(log_probs, bias))
    print("biases fitted on all:", " ".join(f"{c[:3]} {b:+.2f}" for c, b in zip(CLASS_NAMES, bias)))


if __name__ == "__main__":
    main()
