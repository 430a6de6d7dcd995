"""Input-pipeline throughput (images/second) with training augmentation on.

    python scripts/bench_pipeline.py --data ../shared/fer2013 --sizes 48 96 224

Faces are decoded once at load (as in training), resized to each output size,
then run through the training tf.data pipeline (shuffle, Albumentations per
batch via tf.numpy_function, batch, prefetch). No model runs: this is the most
the pipeline can feed a train step.
"""

from __future__ import annotations

import argparse
import os
import time

from ferkeras.config import DEFAULT_DATA

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--sizes", type=int, nargs="+", default=[48, 96, 224])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=100)
    args = parser.parse_args()

    from ferkeras.config import AugmentConfig
    from ferkeras.data import load_split
    from ferkeras.data.pipeline import make_dataset

    print("| output px | img/s (augmentation on) | batches | batch |")
    print("|---|---|---|---|")
    for size in args.sizes:
        split = load_split(args.data, "train", size)
        ds = make_dataset(split, batch_size=args.batch_size, training=True, augment=AugmentConfig())
        iterator = iter(ds.repeat())
        for _ in range(5):  # warm-up: tracing, thread pools, prefetch buffer
            next(iterator)
        start = time.perf_counter()
        for _ in range(args.batches):
            next(iterator)
        rate = args.batches * args.batch_size / (time.perf_counter() - start)
        print(f"| {size} | {rate:,.0f} | {args.batches} | {args.batch_size} |", flush=True)


if __name__ == "__main__":
    main()
