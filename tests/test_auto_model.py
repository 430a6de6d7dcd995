"""``--model auto``: the most accurate shipped model that keeps the frame rate, timed once per CPU."""

import json

from click.testing import CliRunner

from ferkeras.artifacts import SHIPPED_MODELS
from ferkeras.cli import main
from ferkeras.inference.auto import choose_model, cpu_identity, decide


def _candidate(name, accuracy, classify, detect=3.0):
    return {"name": name, "accuracy": accuracy, "classify_ms_per_face": classify, "detect_ms": detect}


def test_decide_prefers_accuracy_within_the_frame_budget():
    accurate, fast = _candidate("accurate", 0.70, 0.8), _candidate("fast", 0.69, 0.26)
    best, why = decide([accurate, fast])
    assert best["name"] == "accurate"  # 3 + 3 x 0.8 ms within a 60 FPS frame (16.7 ms)
    assert "keeps 60 FPS with 3 faces on one core" in why
    assert why.endswith("5.4 ms a frame of 16.7 (the fastest, fast: 3.8)")  # the fastest is named for those short of CPU
    avx2 = [_candidate("accurate", 0.70, 6.1, detect=5.0), _candidate("fast", 0.69, 1.08, detect=5.0)]
    assert decide(avx2)[0]["name"] == "fast"  # 23.3 ms: 60 FPS would take both cores
    assert decide(avx2, fps=30)[0]["name"] == "accurate"
    slow_cpu = [_candidate("accurate", 0.70, 20.2, detect=21.7), _candidate("fast", 0.69, 3.0, detect=21.7)]
    best, why = decide(slow_cpu, fps=30)
    assert best["name"] == "fast" and "keeps 30 FPS with 3 faces on one core:" in why  # 21.7 + 3 x 3.0 = 30.7 ms of 33.3
    best, why = decide(slow_cpu)
    assert best["name"] == "fast" and why.startswith("no model keeps 60 FPS with 3 faces on one core here")
    assert why.endswith("30.7 ms a frame of 16.7 (33 FPS on one core)")


def test_cpu_identity_names_the_instruction_sets():
    cpu = cpu_identity()
    assert cpu["model"] and len(cpu["digest"]) == 16
    assert all(flag.startswith(("avx", "amx", "sse4", "fma")) for flag in cpu["simd"])


def test_auto_times_once_then_uses_the_cache(tmp_path):
    cache = tmp_path / "timings.json"
    first = choose_model(cache=cache)
    assert first.name in SHIPPED_MODELS and first.path.is_file() and "timed just now" in first.reason
    stored = json.loads(cache.read_text())
    assert len(stored) == len(SHIPPED_MODELS) and all(v["classify_ms_per_face"] > 0 for v in stored.values())
    again = choose_model(cache=cache)
    assert again.name == first.name and f"cached in {cache}; delete it to time again" in again.reason
    cache.unlink()  # what the line says to do
    assert "timed just now" in choose_model(cache=cache).reason
    cache.write_text("{not json")  # a damaged cache is timed again, not an error
    assert "timed just now" in choose_model(cache=cache).reason


def test_cam_says_what_auto_chose_and_why(tmp_path, sample_clip, monkeypatch):
    monkeypatch.setenv("FERKERAS_CACHE", str(tmp_path))
    result = CliRunner().invoke(main, ["cam", "--source", str(sample_clip), "--no-display", "--max-frames", "3"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("model auto:"))
    assert "FPS" in line and "timed just now" in line
    assert line.split(",")[0].removeprefix("model auto: ") in SHIPPED_MODELS
