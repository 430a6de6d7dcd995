"""Train-step throughput of ResNet18(-CBAM) variants on synthetic data.

    python scripts/bench_train.py                      # the full table (slow)
    python scripts/bench_train.py --quick              # a few rows
    python scripts/bench_train.py --variant small_pool:44:0.5 --precision mixed_bfloat16
    python scripts/bench_train.py --variant small:44:0.5 --jit off --jit on   # XLA against none

Prints a markdown table: images/second of ``model.train_on_batch`` after
warm-up, and minutes per FER2013 epoch (28,709 faces).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import time

FER_TRAIN = 28_709
FULL = {
    "variants": [
        "imagenet:48:1",
        "imagenet:64:1",
        "imagenet:96:1",
        "imagenet:224:1",
        "small:40:1",
        "small:48:1",
        "small_pool:44:1",
        "small_pool:44:0.5",
    ],
    "attention": ["cbam", "none"],
    "precision": ["float32", "mixed_bfloat16"],
    "batch": [64, 128],
    # Keras' "auto" leaves XLA off on a CPU-only machine, as ferkeras' training does.
    "jit": ["off"],
}


def measure(
    stem: str, size: int, width: float, attention: str, precision: str, batch: int, steps: int, jit: bool = False
) -> float:
    import keras
    import numpy as np

    from ferkeras.models import build_model

    keras.mixed_precision.set_global_policy(precision)
    model = build_model(size, 1, stem=stem, width=width, attention=attention)
    model.compile(keras.optimizers.SGD(0.01, momentum=0.9), "categorical_crossentropy", jit_compile=jit)
    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 1)).astype("float32")
    y = keras.utils.to_categorical(np.arange(batch) % 7, 7)
    for _ in range(3):
        model.train_on_batch(x, y)
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(x, y)
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", help="stem:size:width, repeatable")
    parser.add_argument("--attention", action="append", choices=["cbam", "none"])
    parser.add_argument("--precision", action="append", choices=["float32", "mixed_bfloat16"])
    parser.add_argument("--batch", action="append", type=int)
    parser.add_argument("--jit", action="append", choices=["off", "on"], help="XLA compilation of the train step")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help="CBAM only, batch 64, a few variants")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: one row, JSON out
    args = parser.parse_args()
    if args.one:
        stem, size, width, attention, precision, batch, jit = args.one.split(",")
        rate = measure(stem, int(size), float(width), attention, precision, int(batch), args.steps, jit == "on")
        print(json.dumps(rate))
        return
    grid = dict(FULL)
    if args.quick:
        grid.update(variants=["imagenet:48:1", "small_pool:44:1", "small_pool:44:0.5"], attention=["cbam"], batch=[64])
    for key in ("variant", "attention", "precision", "batch", "jit"):
        value = getattr(args, key)
        if value:
            grid["variants" if key == "variant" else key] = value
    print("| attention | stem | px | width | precision | batch | XLA | img/s | min/epoch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for variant, attention, precision, batch, jit in itertools.product(
        grid["variants"], grid["attention"], grid["precision"], grid["batch"], grid["jit"]
    ):
        stem, size, width = variant.split(":")
        # A fresh process per row: the precision policy and TF's thread pools are global.
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--steps",
                str(args.steps),
                "--one",
                f"{stem},{size},{width},{attention},{precision},{batch},{jit}",
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        )
        if out.returncode:
            print(
                f"| {attention} | {stem} | {size} | {width} | {precision} | {batch} | {jit} | failed: {out.stderr.strip().splitlines()[-1]} | |"
            )
            continue
        rate = float(out.stdout.strip().splitlines()[-1])
        print(
            f"| {attention} | {stem} | {size} | {width} | {precision} | {batch} | {jit} | {rate:.0f} | {FER_TRAIN / rate / 60:.1f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
