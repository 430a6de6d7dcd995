"""Compare the val curves of training runs epoch by epoch, and their means over epoch windows.

    # a running phase 2 against v7's, means over epochs 21-30 and 31-40
    python -m ferkeras.training.compare_histories RUN/phase2/history.csv \
        saved_models/fer2013_resnet18_cbam/history_fer2013_resnet18_cbam_v7_distill_phase2.csv \
        --window 21-30 --window 31-40

Reads the ``history.csv`` that ``ferkeras train`` writes into each phase folder
(and that ``ferkeras ship`` and ``ferkeras soup`` copy beside a model). Epochs are
compared only where every file has them, so a run still in progress is
compared with the same epochs of a finished one. Standard library only: it
runs while training holds the CPUs.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path


def read_history(path: Path) -> dict[int, dict[str, float]]:
    """Rows of a ``history.csv`` keyed by the phase's epoch number."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except OSError as error:
        raise SystemExit(f"error: cannot read history {path}: {error.strerror}") from None
    needed = {"epoch", "seconds", "val_accuracy", "val_macro_f1"}
    if not rows or not needed <= set(rows[0]):
        raise SystemExit(f"error: {path} is not a ferkeras history.csv (needs columns {', '.join(sorted(needed))})")
    history = {}
    for line, row in enumerate(rows, start=2):
        try:
            history[int(row["epoch"])] = {key: float(row[key]) for key in needed - {"epoch"}}
        except (TypeError, ValueError):  # an empty cell, a cut-off line or text where a number belongs
            raise SystemExit(f"error: {path}, line {line}: not a number in {', '.join(sorted(needed))}") from None
    return history


def parse_window(text: str) -> tuple[int, int]:
    """``"21-30"`` -> ``(21, 30)``, inclusive."""
    try:
        first, last = (int(part) for part in text.split("-"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--window {text!r}: expected FIRST-LAST, e.g. 21-30") from None
    if first > last:
        raise argparse.ArgumentTypeError(f"--window {text!r}: FIRST is after LAST")
    return first, last


def window_means(history: dict[int, dict[str, float]], first: int, last: int) -> tuple[float, float] | None:
    """Mean val accuracy and macro-F1 over epochs first..last, or None if any is missing."""
    epochs = range(first, last + 1)
    if any(epoch not in history for epoch in epochs):
        return None
    accuracy = sum(history[epoch]["val_accuracy"] for epoch in epochs) / len(epochs)
    macro_f1 = sum(history[epoch]["val_macro_f1"] for epoch in epochs) / len(epochs)
    return accuracy, macro_f1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "histories", type=Path, nargs="+", help="history.csv files (a phase folder's, or the copies beside a shipped model)"
    )
    parser.add_argument(
        "--window",
        type=parse_window,
        action="append",
        default=[],
        help="FIRST-LAST epochs to average (repeatable); default: all shared epochs and the last 10 of them",
    )
    args = parser.parse_args(argv)

    histories = [read_history(path) for path in args.histories]
    shared = sorted(set.intersection(*(set(history) for history in histories)))
    if not shared:
        raise SystemExit("error: the histories share no epoch")
    names = [
        f"{path.parent.parent.name}/{path.parent.name}" if path.name == "history.csv" else path.stem for path in args.histories
    ]
    width = max(16, *(len(name) for name in names))

    def line(label, cells) -> str:
        return f"{label!s:<14}" + "  ".join(f"{cell:>{width}}" for cell in cells)

    def scores(accuracy: float, macro_f1: float) -> str:
        return f"{accuracy * 100:6.2f} / {macro_f1:.3f}"

    print(line("epoch", names) + "   (val accuracy % / macro-F1)")
    for epoch in shared:
        print(line(epoch, [scores(h[epoch]["val_accuracy"], h[epoch]["val_macro_f1"]) for h in histories]))

    windows = args.window or [(shared[0], shared[-1]), (max(shared[0], shared[-1] - 9), shared[-1])]
    windows = list(dict.fromkeys(windows))  # with 10 shared epochs or fewer the two defaults coincide
    for first, last in windows:
        cells = []
        for history in histories:
            means = window_means(history, first, last)
            cells.append("missing epochs" if means is None else scores(*means))
        print(line(f"mean {first}-{last}:", cells))
    for name, history in zip(names, histories):
        seconds = [row["seconds"] for row in history.values()]
        print(f"{name}: {len(history)} epochs, {min(seconds):.0f}-{max(seconds):.0f} s each, {sum(seconds) / 3600:.1f} h in all")


if __name__ == "__main__":
    main()
