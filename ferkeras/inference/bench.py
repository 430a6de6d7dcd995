"""``ferkeras bench``: per-face latency, throughput, size and accuracy per model format."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ferkeras.artifacts import FORMATS
from ferkeras.data.sources import load_split
from ferkeras.inference.predictor import Predictor


def model_files(paths) -> list[Path]:
    """Model files named directly, or every model file inside named folders."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if p.suffix in FORMATS)
        else:
            files.append(path)
    return files


def benchmark(
    path: Path, threads: int = 1, runs: int = 200, batch: int = 64, data: str | None = None, split: str = "val"
) -> dict:
    """Latency (batch 1, median and p90 after warm-up), batched throughput, size, accuracy."""
    predictor = Predictor.load(path, threads=threads)
    size = predictor.crop or predictor.face_resize
    if data:
        predictor.require_fer_classes()
    faces = load_split(data, split, predictor.face_resize) if data else None
    sample = (
        faces.images[:batch] if faces is not None else np.random.default_rng(0).integers(0, 256, (batch, size, size), np.uint8)
    )
    x = predictor.prepare(sample)
    for _ in range(20):
        predictor.predict_prepared(x[:1])
    times = []
    for i in range(runs):
        start = time.perf_counter()
        predictor.predict_prepared(x[i % len(x) : i % len(x) + 1])
        times.append(time.perf_counter() - start)
    predictor.predict_prepared(x)
    start = time.perf_counter()
    repeats = max(3, 2000 // batch)
    for _ in range(repeats):
        predictor.predict_prepared(x)
    throughput = repeats * len(x) / (time.perf_counter() - start)
    row = {
        "model": str(path),
        "format": predictor.format,
        "quantization": _quantization(path),
        "size_mb": round(path.stat().st_size / 1e6, 2),
        "latency_ms_median": round(1000 * float(np.median(times)), 3),
        "latency_ms_p90": round(1000 * float(np.percentile(times, 90)), 3),
        "throughput_img_s": round(throughput, 1),
        "threads": threads,
        "batch": batch,
    }
    if faces is not None:
        probabilities = predictor.predict(faces.images)
        row["accuracy"] = round(float((probabilities.argmax(1) == faces.labels).mean()), 4)
        row["split"] = split
    return row


def _quantization(path: Path) -> str:
    if path.suffix != ".tflite":
        return "float32"
    stem = path.stem.removeprefix("model")
    return stem.lstrip("_") or "float32"


def format_table(rows: list[dict]) -> str:
    """A markdown table of benchmark rows."""
    lines = [
        "| model | format | quantization | size MB | latency ms (median) | p90 ms | throughput img/s | accuracy |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {Path(r['model']).name} | {r['format']} | {r['quantization']} | {r['size_mb']} | {r['latency_ms_median']} | "
            f"{r['latency_ms_p90']} | {r['throughput_img_s']} | {r.get('accuracy', '')} |"
        )
    return "\n".join(lines)
