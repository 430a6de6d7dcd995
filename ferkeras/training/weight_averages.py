"""Val accuracy and macro-F1 of weight averages, before and after BatchNorm re-estimation.

    # the last 10, 20 and 30 epoch snapshots of a phase run with average_last >= 30
    python -m ferkeras.training.weight_averages --snapshots RUN/phase2 --last 10 --last 20 --last 30
    # a "soup" of whole models with the same architecture (e.g. two runs from one phase 1)
    python -m ferkeras.training.weight_averages --models RUN_A/phase2/best.keras RUN_B/phase2/best.keras --run RUN_B --float32

Each row: the plain mean of the weights (BatchNorm statistics averaged too),
then the same weights with BatchNorm statistics re-estimated on the training
faces, as ``ferkeras train`` does for ``average_last``. For choosing what to
try; the trainer's own numbers are in the run's state.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import keras

import ferkeras  # noqa: F401  (registers the custom layers)
from ferkeras.card import card_path, read_card
from ferkeras.config import DEFAULT_DATA, load_config
from ferkeras.data.sources import load_split
from ferkeras.evaluation.metrics import classification_metrics
from ferkeras.images import to_model_input
from ferkeras.models.from_config import float32_copy
from ferkeras.training.averaging import average_snapshots, recalibrate_batchnorm, snapshot_path


def _preprocessing(run: Path, config=None) -> tuple[int, int, int]:
    """Face size, centre crop and channels from the run's card; from its config.yaml before the card exists."""
    if card_path(run).is_file():
        card = read_card(run)
        return card["preprocessing"]["face_resize"], card["preprocessing"]["center_crop"], card["input"]["channels"]
    # a run still in training has written no card yet, but its config fixes the same three values
    data = (config or load_config(run / "config.yaml")).data
    return data.image_size, data.crop, data.channels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--snapshots", type=Path, help="a phase folder with snapshots/epoch_NNN.weights.h5")
    parser.add_argument("--last", type=int, action="append", default=[], help="average the last N snapshots")
    parser.add_argument("--models", type=Path, nargs="+", default=[], help=".keras models to average")
    parser.add_argument(
        "--run",
        type=Path,
        help="the run (or model) folder whose card gives the preprocessing (its config.yaml while it has no card yet)",
    )
    parser.add_argument(
        "--float32",
        action="store_true",
        help="also score each average as a float32 copy (as evaluate and every export run it); needs RUN/config.yaml",
    )
    args = parser.parse_args(argv)
    if not args.models and not (args.snapshots and args.last):
        parser.error("give --models, or --snapshots with --last")

    template = args.models[0] if args.models else args.snapshots / "last.keras"
    run = args.run or template.parent.parent  # a phase's files sit in RUN/phaseN/
    config = load_config(run / "config.yaml") if args.float32 else None
    size, crop, channels = _preprocessing(run, config)
    train = to_model_input(load_split(args.data, "train", size).images, channels, crop)
    val = load_split(args.data, "val", size)
    val_input = to_model_input(val.images, channels, crop)
    model = keras.models.load_model(template, compile=False)

    def report(name: str) -> None:
        scored = [(name, model)] + ([(f"{name}, float32", float32_copy(model, config))] if config else [])
        for label, scored_model in scored:
            metrics = classification_metrics(val.labels, scored_model.predict(val_input, batch_size=256, verbose=0))
            print(f"| {label} | {metrics['accuracy'] * 100:.2f} % | {metrics['macro_f1']:.4f} |", flush=True)

    print("| weights | val accuracy | val macro-F1 |\n|---|---|---|")
    groups = []
    if args.snapshots:
        last_epoch = max(
            int(p.stem.split("_")[1].split(".")[0]) for p in (args.snapshots / "snapshots").glob("epoch_*.weights.h5")
        )
        groups += [
            (f"last {n} epochs", [snapshot_path(args.snapshots, e) for e in range(last_epoch - n + 1, last_epoch + 1)])
            for n in args.last
        ]
    if args.models:
        groups.append((" + ".join(str(p) for p in args.models), args.models))
    for name, files in groups:
        average_snapshots(model, files)
        report(f"{name}, mean")
        recalibrate_batchnorm(model, train)
        report(f"{name}, BatchNorm re-estimated")


if __name__ == "__main__":
    main()
