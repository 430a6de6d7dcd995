"""``--model auto``: the most accurate shipped model that keeps the live frame rate on this CPU.

On first use each candidate's int8 TFLite model and the face detector are timed
for about a second; the timings are cached per CPU (model name and instruction
set flags) in the user cache folder, so later runs decide at once. A model keeps
the frame rate when detecting plus classifying ``faces`` faces, one after the
other on one core, fits in one frame at ``fps`` (60, the live target): ``cam``'s
two-stage pipeline then holds it while leaving most of the second core to the
app (a kiosk's browser front end, say).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ferkeras import __version__
from ferkeras.artifacts import SHIPPED_MODELS, TFLITE_FILES, find_shipped_model
from ferkeras.card import read_card, val_accuracy
from ferkeras.errors import FerKerasError
from ferkeras.io import atomic_write_json

log = logging.getLogger(__name__)

#: The frame rate and faces per frame a live model must keep up with.
TARGET_FPS = 60.0
TARGET_FACES = 3
#: Seconds of timing per candidate on first use.
TIMING_SECONDS = 1.0


@dataclass
class Choice:
    """The model ``auto`` picked, and why."""

    name: str
    path: Path
    reason: str


def cache_file() -> Path:
    """Where timings are kept: ``$FERKERAS_CACHE`` or ``$XDG_CACHE_HOME/ferkeras`` (``~/.cache/ferkeras``)."""
    base = os.environ.get("FERKERAS_CACHE") or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ferkeras"
    return Path(base) / "auto_model_timings.json"


def cpu_identity() -> dict:
    """The CPU's model name, family and model numbers, and a digest of them with its feature flags.

    Virtual machines often report a bare "AMD EPYC": the family tells Zen 4
    (25) from Zen 5 (26), whose int8 speed differs by 2x or more.
    """
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())  # the first core's
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    flags = fields.get("flags", "")
    if os.environ.get("FERKERAS_CPUID_MASK") == "avx2":
        # scripts/avx2_only.sh hides these from CPUID; /proc/cpuinfo still lists them.
        name += " (AVX2 kernels: AVX-512, VNNI and AMX hidden from CPUID)"
        flags = " ".join(f for f in flags.split() if not f.startswith(("avx512", "avx_vnni", "amx"))) + " cpuid_mask_avx2"
    simd = sorted({flag for flag in flags.split() if flag.startswith(("avx", "amx", "sse4", "fma"))})
    return {
        "model": name,
        "simd": simd,
        "digest": hashlib.sha256(" ".join([name, *sorted(flags.split())]).encode()).hexdigest()[:16],
    }


def _time(call, seconds: float) -> float:
    """Median milliseconds of ``call()`` over about ``seconds``, after a warm-up."""
    for _ in range(5):
        call()
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 10:
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def measure(model_file: Path, detector_name: str, threads: int, seconds: float = TIMING_SECONDS) -> dict:
    """Milliseconds per face (batch of ``TARGET_FACES``) for a model, and per frame for the detector."""
    from ferkeras.inference.faces import make_detector
    from ferkeras.inference.predictor import Predictor

    predictor = Predictor.load(model_file, threads=threads)
    faces = np.random.default_rng(0).integers(0, 256, (TARGET_FACES, 64, 64), np.uint8)
    classify = _time(lambda: predictor.predict(faces), seconds / 2) / TARGET_FACES
    detector = make_detector(detector_name)
    frame = np.random.default_rng(1).integers(0, 256, (360, 640, 3), np.uint8)
    detect = _time(lambda: detector.detect(frame), seconds / 2)
    return {"classify_ms_per_face": round(classify, 3), "detect_ms": round(detect, 3)}


def decide(candidates: list[dict], fps: float = TARGET_FPS, faces: int = TARGET_FACES) -> tuple[dict, str]:
    """The most accurate candidate whose frame time on one core fits ``1000 / fps`` ms, else the fastest.

    Each candidate has ``name``, ``accuracy``, ``classify_ms_per_face`` and ``detect_ms``.
    """
    budget = 1000.0 / fps
    keeps = f"keeps {fps:g} FPS with {faces} faces on one core"

    def frame_ms(c):
        return c["detect_ms"] + faces * c["classify_ms_per_face"]

    keeping = [c for c in candidates if frame_ms(c) <= budget]
    fastest = min(candidates, key=frame_ms)
    if keeping:
        best = max(keeping, key=lambda c: c["accuracy"])
        # where a live app needs the CPU for more than this, say what the fastest model costs
        faster = "" if best is fastest else f" (the fastest, {fastest['name']}: {frame_ms(fastest):.1f})"
        return best, (
            f"the most accurate model ({best['accuracy'] * 100:.1f} % on val) that {keeps}: "
            f"{frame_ms(best):.1f} ms a frame of {budget:.1f}{faster}"
        )
    return fastest, (
        f"no model {keeps} here; the fastest takes {frame_ms(fastest):.1f} ms a frame of {budget:.1f} "
        f"({1000 / frame_ms(fastest):.0f} FPS on one core)"
    )


def _read_cache(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}  # missing or damaged: time again


def choose_model(detector: str = "blazeface", threads: int = 1, fps: float = TARGET_FPS, cache: Path | None = None) -> Choice:
    """Pick a shipped model for live use on this CPU (see the module docstring)."""
    cache = cache or cache_file()
    cpu = cpu_identity()
    key = f"{cpu['digest']}/{detector}/threads{threads}/ferkeras{__version__}"
    stored = _read_cache(cache)
    candidates, timed = [], False
    for name in SHIPPED_MODELS:
        folder = find_shipped_model(name)
        if folder is None or not (folder / TFLITE_FILES["int8"]).is_file():
            continue
        model_file = folder / TFLITE_FILES["int8"]
        card = read_card(model_file)
        accuracy = card.get("artifacts", {}).get("tflite_int8", {}).get("parity", {}).get("accuracy")
        if accuracy is None:
            accuracy = val_accuracy(card) or 0.0
        entry_key = f"{key}/{name}/{model_file.stat().st_size}"
        timing = stored.get(entry_key)
        if not isinstance(timing, dict) or not {"classify_ms_per_face", "detect_ms"} <= set(timing):
            timing = measure(model_file, detector, threads)
            stored[entry_key] = {**timing, "cpu": cpu["model"], "simd": cpu["simd"]}
            timed = True
        candidates.append({"name": name, "path": model_file, "accuracy": float(accuracy), **timing})
    if not candidates:
        raise FerKerasError("--model auto: no shipped model with an int8 TFLite file was found; pass --model PATH")
    if timed:
        try:
            atomic_write_json(cache, stored)
        except OSError as exc:
            log.warning(f"--model auto: could not cache the timings in {cache} ({exc.strerror}); they are redone next time")
    best, why = decide(candidates, fps)
    source = "timed just now" if timed else f"timings cached in {cache}; delete it to time again"
    return Choice(best["name"], best["path"], f"{why} on {cpu['model']} ({source})")


def resolve_live_model(
    model: str | Path | None, detector: str = "blazeface", threads: int = 1
) -> tuple[str | Path | None, str | None]:
    """``auto`` -> (the chosen shipped model, a line saying why); any other value -> (itself, None)."""
    if str(model) != "auto":
        return model, None
    choice = choose_model(detector, threads)
    return choice.path, f"model auto: {choice.name}, {choice.reason}"
