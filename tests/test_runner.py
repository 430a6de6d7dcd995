"""``ferkeras cam`` end to end, headless: CSV, video, signals and failures."""

import csv
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest
from conftest import cam

from ferkeras.errors import FerKerasError
from ferkeras.inference.runner import READ_RETRIES, WINDOW_HINT, FrameSource


def _frames(clip, indices):
    capture = cv2.VideoCapture(str(clip))
    frames, index = {}, 0
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        if index in indices:
            frames[index] = frame
        index += 1
    capture.release()
    return frames


def _write_clip(path, frames, fps=25.0):
    height, width = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


@pytest.fixture(scope="module")
def static_clip(sample_clip, tmp_path_factory):
    """640x480: 20 frames of one still face, 6 black frames, 10 of the face again."""
    face = cv2.copyMakeBorder(_frames(sample_clip, {100})[100], 60, 60, 0, 0, cv2.BORDER_CONSTANT)
    black = np.zeros_like(face)
    return _write_clip(tmp_path_factory.mktemp("clip") / "static.mp4", [face] * 20 + [black] * 6 + [face] * 10)


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _video_info(path):
    capture = cv2.VideoCapture(str(path))
    count = 0
    while capture.read()[0]:
        count += 1
    info = (count, int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)), int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    return info


def test_static_face_clip(exported_model, static_clip, tmp_path):
    out, table = tmp_path / "out.mp4", tmp_path / "frames.csv"
    result = cam(
        exported_model / "model_int8.tflite",
        static_clip,
        "--no-display",
        "--output",
        out,
        "--csv",
        table,
        "--jsonl",
        tmp_path / "f.jsonl",
    )
    assert result.exit_code == 0, result.output
    rows = _rows(table)
    assert list(rows[0])[:9] == ["frame", "timestamp_ms", "face_id", "x", "y", "w", "h", "label", "confidence"]
    assert [c for c in rows[0] if c.startswith("p_")] == [
        "p_angry",
        "p_disgust",
        "p_fear",
        "p_happy",
        "p_neutral",
        "p_sad",
        "p_surprise",
    ]
    frames = [int(r["frame"]) for r in rows]
    assert sorted(set(frames)) == list(range(36))
    stamps = [float(r["timestamp_ms"]) for r in rows]
    assert all(b >= a for a, b in zip(stamps, stamps[1:])) and stamps[-1] > stamps[0]
    first = [r for r in rows if int(r["frame"]) < 20]
    assert len(first) == 20 and {r["face_id"] for r in first} == {"1"}  # one stable id
    empty = [r for r in rows if 20 <= int(r["frame"]) < 26]
    assert len(empty) == 6 and all(r["face_id"] == "" and r["label"] == "" for r in empty)
    back = [r for r in rows if int(r["frame"]) >= 26]
    assert len(back) == 10 and {r["face_id"] for r in back} == {"2"}  # a new track after the gap
    probs = np.array([[float(r[c]) for c in r if c.startswith("p_")] for r in first])
    assert np.allclose(probs.sum(axis=1), 1, atol=0.05)
    assert _video_info(out) == (36, 640, 480)
    assert len((tmp_path / "f.jsonl").read_text().splitlines()) == 36
    assert not list(tmp_path.glob(".*part*"))


def test_sample_clip_every_third_frame(exported_model, sample_clip, tmp_path):
    table = tmp_path / "frames.csv"
    result = cam(
        exported_model / "model_int8.tflite",
        sample_clip,
        "--csv",
        table,
        "--output",
        tmp_path / "o.mp4",
        "--every",
        "3",
    )
    assert result.exit_code == 0, result.output
    rows = _rows(table)
    assert sorted({int(r["frame"]) for r in rows}) == list(range(275))
    assert any(r["face_id"] == "" for r in rows) and any(r["face_id"] for r in rows)
    assert len({r["face_id"] for r in rows if r["face_id"]}) >= 3  # performer, then audience faces
    # between processed frames the results are carried, unchanged
    by_frame = {}
    for r in rows:
        by_frame.setdefault(int(r["frame"]), []).append((r["face_id"], r["x"], r["p_happy"]))
    assert by_frame[1] == by_frame[0] and by_frame[2] == by_frame[0]
    assert _video_info(tmp_path / "o.mp4") == (275, 640, 360)


def test_pipelined_runner_gives_the_plain_runners_rows_and_classify_every_calls_the_model_less(
    exported_model, sample_clip, tmp_path
):
    tables = {}
    for option in ("--pipeline", "--no-pipeline"):
        tables[option] = tmp_path / f"{option}.csv"
        result = cam(exported_model / "model_int8.tflite", sample_clip, "--csv", tables[option], "--max-frames", "120", option)
        assert result.exit_code == 0, result.output
    assert tables["--pipeline"].read_text() == tables["--no-pipeline"].read_text()

    from ferkeras.inference.recognizer import Recognizer
    from ferkeras.inference.runner import run

    counts = {}
    for every in (1, 3):
        recognizer = Recognizer.load(exported_model / "model_int8.tflite", classify_every=every)
        calls = []
        classify = recognizer._classify
        recognizer._classify = lambda gray, boxes, c=classify, calls=calls: calls.append(len(boxes)) or c(gray, boxes)
        stats = run(str(sample_clip), recognizer, max_frames=120, quiet=True, pipeline=True)
        counts[every] = (sum(calls), stats.faces)
    assert counts[1][1] == counts[3][1]  # every face is still reported on every frame
    assert counts[3][0] < 0.6 * counts[1][0]  # but classified about a third as often (more when faces move)


def test_headless_display_request_keeps_working(exported_model, sample_clip, tmp_path):
    result = cam(
        exported_model / "model_int8.tflite",
        sample_clip,
        "--display",
        "--max-frames",
        "5",
        "--csv",
        tmp_path / "f.csv",
    )
    assert result.exit_code == 0, result.output
    assert WINDOW_HINT in result.output
    assert len({r["frame"] for r in _rows(tmp_path / "f.csv")}) == 5


def test_sigterm_finalises_outputs(exported_model, sample_clip, tmp_path):
    frames = list(_frames(sample_clip, set(range(275))).values())
    long_clip = _write_clip(tmp_path / "long.mp4", frames * 6)
    out, table = tmp_path / "out.mp4", tmp_path / "frames.csv"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ferkeras.cli",
            "cam",
            "--source",
            str(long_clip),
            "--model",
            str(exported_model / "model_int8.tflite"),
            "--output",
            str(out),
            "--csv",
            str(table),
            "--detector",
            "haar",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    for line in process.stderr:
        if "100 frames" in line:
            break
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    rest = process.communicate(timeout=60)[1]
    assert process.returncode == 0, rest
    assert "stopped by SIGTERM" in rest
    rows = _rows(table)
    count = len({r["frame"] for r in rows})
    assert 100 <= count < 1650
    assert _video_info(out)[0] == count  # every frame in the CSV is in a playable video


@pytest.mark.parametrize("source, message", [("missing.mp4", "source not found"), ("99", "cannot open camera 99")])
def test_unopenable_sources_are_one_line_errors(exported_model, source, message, tmp_path):
    result = cam(exported_model / "model_int8.tflite", source, "--no-display")
    assert result.exit_code != 0
    assert message in result.output and len(result.output.strip().splitlines()) == 1


def test_not_a_video_and_empty_folder(tmp_path):
    bogus = tmp_path / "clip.mp4"
    bogus.write_bytes(b"not a video")
    with pytest.raises(FerKerasError, match="cannot open video"):
        FrameSource(str(bogus))
    with pytest.raises(FerKerasError, match="no images"):
        FrameSource(str(tmp_path))


def test_image_folder_source(tmp_path, sample_clip):
    for i, frame in _frames(sample_clip, {30, 240}).items():
        cv2.imwrite(str(tmp_path / f"{i}.jpg"), frame)
    (tmp_path / "broken.png").write_bytes(b"nope")
    source = FrameSource(str(tmp_path))
    got = [source.read() for _ in range(4)]
    assert [g is not None for g in got] == [True, True, False, False]


class _FailingCamera:
    """A camera whose frames stop coming (no real camera exists on CI machines)."""

    def __init__(self):
        self.calls = 0

    def read(self):
        self.calls += 1
        return False, None

    def release(self):
        pass


def test_live_read_failures_retry_then_stop(sample_clip, caplog):
    source = FrameSource(str(sample_clip))
    source.capture, source.live = _FailingCamera(), True
    assert source.read() is None
    assert source.capture.calls == READ_RETRIES
    assert "no frame after" in caplog.text
