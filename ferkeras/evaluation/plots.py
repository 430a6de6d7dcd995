"""PNG figures: training curves, confusion matrices, most confident mistakes, reliability diagrams."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ferkeras.calibration import reliability_bins  # noqa: E402
from ferkeras.io import atomic_path  # noqa: E402


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_training_curves(rows: list[dict], path: Path) -> None:
    """Loss, accuracy and macro-F1 per epoch (history rows of both phases) on one epoch axis."""
    if not rows:
        return
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    x = [r["global_epoch"] for r in rows]
    for ax, metric in zip(axes, ("loss", "accuracy", "macro_f1")):
        for prefix, style in (("", "-"), ("val_", "--")):
            ax.plot(
                x,
                [r.get(prefix + metric, np.nan) for r in rows],
                style,
                marker=".",
                label=f"{'val' if prefix else 'train'} {metric}",
            )
        boundary = [r["global_epoch"] for r in rows if r["phase"] == "phase2"]
        if boundary:
            ax.axvline(boundary[0] - 0.5, color="grey", lw=0.8, ls=":", label="phase 2 starts")
        ax.set_xlabel("epoch")
        ax.set_title(metric)
        ax.legend()
        ax.grid(alpha=0.3)
    _save(fig, path)


def plot_confusion(matrix: np.ndarray, class_names, path: Path, normalise: bool) -> None:
    """A confusion-matrix heat map (rows: true class, columns: predicted)."""
    shown = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1) if normalise else matrix
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(shown, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(shown.shape[0]):
        for j in range(shown.shape[1]):
            text = f"{shown[i, j]:.2f}" if normalise else str(int(shown[i, j]))
            ax.text(j, i, text, ha="center", va="center", color="white" if shown[i, j] > shown.max() / 2 else "black", fontsize=8)
    ax.set_title("confusion matrix" + (" (row-normalised)" if normalise else " (counts)"))
    fig.colorbar(image, ax=ax)
    _save(fig, path)


def plot_mistakes(images: np.ndarray, titles: list[str], path: Path, columns: int = 8) -> None:
    """A grid of face crops with their captions."""
    rows = max(1, int(np.ceil(len(images) / columns)))
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.6, rows * 1.9))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, image, title in zip(np.ravel(axes), images, titles):
        ax.imshow(image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=7)
    fig.suptitle("most confident mistakes (true -> predicted, confidence)")
    _save(fig, path)


def plot_reliability(labels: np.ndarray, curves: dict[str, np.ndarray], path: Path, bins: int = 15) -> None:
    """Accuracy against confidence in ``bins`` bins for each named set of probabilities, with the diagonal."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], ":", color="gray", label="perfectly calibrated")
    for name, probabilities in curves.items():
        used = [(c, a) for count, c, a in reliability_bins(labels, probabilities, bins) if count >= 5]  # fewer faces say little
        ax.plot([c for c, _ in used], [a for _, a in used], "o-", label=name)
    ax.set(xlabel="confidence (top probability)", ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title="reliability")
    ax.legend(loc="upper left")
    _save(fig, path)
