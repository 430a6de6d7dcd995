"""Faults and bad inputs: nothing a user owns is lost, each failure is one line, no wrong result passes.

docs/reliability.md maps each case of the audit to the test here that covers it.
"""

import json
import os
import resource
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import cam, invoke, train_smoke
from synthetic import make_csv_dataset, make_faces, make_folder_dataset

from ferkeras.data.sources import load_dataset, load_split
from ferkeras.errors import FerKerasError
from ferkeras.evaluation.metrics import classification_metrics
from ferkeras.images import read_image
from ferkeras.inference import runner as runner_module
from ferkeras.inference.predictor import Predictor
from ferkeras.inference.recognizer import Recognizer
from ferkeras.inference.runner import FrameSource
from ferkeras.io import atomic_write_json, atomic_write_text, remove_stale_temps

FERKERAS = [sys.executable, "-m", "ferkeras.cli"]
ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_folder_dataset(tmp_path_factory.mktemp("tiny"), per_class=8, size=32)


def _one_line_error(result, *fragments):
    """The CLI failed with exactly one ``Error: ...`` line holding every fragment, and no traceback."""
    assert result.exit_code == 1, result.output
    lines = [line for line in result.output.strip().splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# 1. Data loss -----------------------------------------------------------------


def test_restart_never_deletes_a_folder_that_is_not_a_run(tiny, tmp_path):
    folder = tmp_path / "p"
    (folder / "sub").mkdir(parents=True)
    (folder / "thesis.tex").write_text("keep")
    for data in (tmp_path / "missing", tiny):
        result = train_smoke(data, folder, "--phase", "1", "--restart")
        _one_line_error(result, "does not hold a ferkeras run", "refusing to delete")
        assert (folder / "thesis.tex").read_text() == "keep" and (folder / "sub").is_dir()


def test_restart_validates_inputs_first_and_removes_only_the_run(tiny, tmp_path):
    run = tmp_path / "run"
    assert train_smoke(tiny, run, "--phase", "1").exit_code == 0
    (run / "notes.txt").write_text("mine")
    before = (run / "phase1" / "state.json").read_text()
    result = train_smoke(tmp_path / "missing", run, "--phase", "1", "--restart")
    _one_line_error(result, "data path not found")
    assert (run / "phase1" / "state.json").read_text() == before  # nothing removed for a bad input
    result = train_smoke(tiny, run, "--phase", "1", "--restart", "--set", "phase1.init_from=" + str(tmp_path / "none.keras"))
    _one_line_error(result, "phase1.init_from", "model not found")
    assert (run / "phase1" / "state.json").read_text() == before
    result = train_smoke(tiny, run, "--phase", "1", "--restart")
    assert result.exit_code == 0, result.output
    assert (run / "notes.txt").read_text() == "mine"  # not a file the run wrote
    assert (run / "phase1" / "state.json").exists()


@pytest.mark.parametrize("option", ["--output", "--csv", "--jsonl"])
def test_cam_refuses_to_overwrite_its_source(exported_model, sample_clip, tmp_path, option):
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(sample_clip.read_bytes())
    result = cam(
        exported_model / "model_int8.tflite",
        clip,
        "--no-display",
        option,
        tmp_path / "." / "clip.mp4",
    )
    _one_line_error(result, "would overwrite the input")
    assert clip.read_bytes() == sample_clip.read_bytes()


def test_cam_refuses_two_outputs_with_one_name(exported_model, sample_clip, tmp_path):
    result = cam(
        exported_model / "model_int8.tflite",
        sample_clip,
        "--no-display",
        "--csv",
        tmp_path / "a.txt",
        "--jsonl",
        tmp_path / "a.txt",
    )
    _one_line_error(result, "both name")


# 2. Silent wrong training ---------------------------------------------------------


@pytest.mark.parametrize("value", ["nan", "inf", "-.inf"])
def test_config_numbers_must_be_finite(tiny, tmp_path, value):
    result = train_smoke(tiny, tmp_path / "run", "--set", f"phase1.learning_rate={value}")
    _one_line_error(result, "phase1.learning_rate must be a finite number")
    assert not (tmp_path / "run").exists()


def test_a_diverging_phase_stops_unfinished_with_valid_json(tiny, tmp_path):
    run = tmp_path / "run"
    args = ["--phase", "1", "--set", "phase1.optimizer=sgd", "--set", "phase1.epochs=2"]
    result = train_smoke(tiny, run, *args, "--set", "phase1.learning_rate=1e30")
    message = _one_line_error(result, "[phase1] stopped in epoch 1", "nan", "not finished", "lower phase1.learning_rate")
    assert "last good checkpoint: none" in message
    assert not (run / "phase1" / "last.keras").exists() and not (run / "model.keras").exists()
    assert not (run / "phase1" / "state.json").exists()  # no epoch finished, nothing recorded as done
    # the same run with a sane learning rate starts cleanly and writes strict JSON
    result = invoke("train", "--config", run / "config.yaml", "--phase", "1", "--restart", "--set", "phase1.learning_rate=0.01")
    assert result.exit_code == 0, result.output
    state = json.loads((run / "phase1" / "state.json").read_text(), parse_constant=pytest.fail)
    assert state["finished"] is True
    json.loads((run / "model_card.json").read_text(), parse_constant=pytest.fail)


def test_json_is_always_strict(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"best": float("nan"), "values": [np.float32(1.5), float("inf")], "n": np.int64(3)})
    text = (tmp_path / "x.json").read_text()
    assert json.loads(text, parse_constant=pytest.fail) == {"best": None, "values": [1.5, None], "n": 3}


# 3. Incomplete outputs published as complete -------------------------------------------


def _limit_file_size(limit):
    def apply():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@pytest.mark.parametrize(
    "limit, outputs, reason",
    [
        (4_000, ["--csv", "f.csv", "--jsonl", "f.jsonl"], "File too large"),
        (60_000, ["--output", "f.mp4", "--csv", "f.csv"], "lost frames"),
    ],
)
def test_cam_on_a_full_disk_keeps_partial_files(exported_model, sample_clip, tmp_path, limit, outputs, reason):
    command = FERKERAS + [
        "cam",
        "--source",
        str(sample_clip),
        "--model",
        str(exported_model / "model_int8.tflite"),
        "--detector",
        "haar",
        "--no-display",
        "--max-frames",
        "60",
        *outputs,
    ]
    done = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, preexec_fn=_limit_file_size(limit))
    assert done.returncode == 1, done.stderr
    assert reason in done.stderr and "Traceback" not in done.stderr
    names = sorted(p.name for p in tmp_path.iterdir())
    expected = sorted(f"{Path(o).stem}.partial{Path(o).suffix}" for o in outputs[1::2])
    assert names == expected, names  # nothing under a complete file's name, no hidden temporaries


def test_cam_with_no_frames_writes_no_video_and_says_so(exported_model, tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    _, encoded = cv2.imencode(".jpg", np.full((64, 64, 3), 90, np.uint8))
    (folder / "cut.jpg").write_bytes(encoded.tobytes()[:300])  # truncated: no frame to read
    result = cam(
        exported_model / "model_int8.tflite",
        folder,
        "--no-display",
        "--output",
        tmp_path / "v.mp4",
        "--csv",
        tmp_path / "f.csv",
    )
    assert result.exit_code == 0, result.output
    assert "no frames read" in result.output and "no video written" in result.output
    assert "skipping image" in result.output and "truncated JPEG" in result.output
    assert not (tmp_path / "v.mp4").exists() and "wrote " + str(tmp_path / "v.mp4") not in result.output
    assert (tmp_path / "f.csv").read_text().startswith("frame,timestamp_ms")


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--max-frames", "-1", "--max-frames must be >= 1"),
        ("--every", "0", "--every must be >= 1"),
        ("--padding", "-1", "padding must be between"),
        ("--threshold", "5", "threshold must be between"),
        ("--hysteresis", "-1", "hysteresis must be between"),
        ("--min-face", "-3", "min_face must be >= 0"),
        ("--alpha", "0", "0 < alpha <= 1"),
    ],
)
def test_cam_option_values_are_checked(exported_model, sample_clip, option, value, message):
    result = cam(exported_model / "model_int8.tflite", sample_clip, "--no-display", option, value)
    _one_line_error(result, message)


# 4. Card and model must agree -----------------------------------------------------------


@pytest.mark.parametrize("count", [5, 9])
@pytest.mark.parametrize("file", ["model.keras", "model_int8.tflite", "model.onnx"])
def test_a_card_that_does_not_fit_the_model_is_refused_at_load(exported_model, tmp_path, count, file):
    (tmp_path / file).write_bytes((exported_model / file).read_bytes())
    card = json.loads((exported_model / "model_card.json").read_text())
    card["class_names"] = (card["class_names"] + ["x", "y"])[:count]
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(FerKerasError, match=f"lists {count} classes but .* outputs shape \\(7,\\)"):
        Predictor.load(tmp_path / file)
    card["class_names"] = (
        card["class_names"][:7] if count > 7 else json.loads((exported_model / "model_card.json").read_text())["class_names"]
    )
    card["input"]["size"] = 40
    card["preprocessing"] = {"face_resize": 40, "center_crop": 0}
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(FerKerasError, match="does not take the input its card"):
        Predictor.load(tmp_path / file)


def test_evaluate_refuses_a_model_with_other_classes(exported_model, tiny, tmp_path):
    (tmp_path / "model.keras").write_bytes((exported_model / "model.keras").read_bytes())
    card = json.loads((exported_model / "model_card.json").read_text())
    card["class_names"] = card["class_names"][::-1]
    (tmp_path / "model_card.json").write_text(json.dumps(card))
    result = invoke("evaluate", "--model", tmp_path, "--data", tiny)
    _one_line_error(result, "scoring on FER2013 labels needs")
    assert not (tmp_path / "eval_val" / "metrics.json").exists()


# 5. One line, not a traceback -----------------------------------------------------------


def test_os_errors_are_one_line_in_every_command(exported_model, tiny, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    model = exported_model / "model_int8.tflite"
    _one_line_error(train_smoke(tiny, blocker / "run"), str(blocker))
    evaluated = invoke("evaluate", "--model", model, "--data", tiny, "--output", blocker / "eval")
    _one_line_error(evaluated, "cannot write to the output folder", str(blocker))
    _one_line_error(cam(model, tiny / "val" / "happy", "--no-display", "--csv", blocker / "f.csv"), str(blocker))
    benched = invoke("bench", model, "--json", blocker / "b.json", "--runs", "2")
    _one_line_error(benched, str(blocker))
    assert "ms/face" not in benched.output  # refused before any model was timed
    debug = invoke("--debug", "evaluate", "--model", model, "--data", tiny, "--output", blocker / "e")
    assert isinstance(debug.exception, FerKerasError)  # --debug lets the exception (and its traceback) through


def test_bench_checks_every_model_before_timing_any(exported_model, tmp_path):
    stray = tmp_path / "model_int8.tflite"
    stray.write_bytes((exported_model / "model_int8.tflite").read_bytes())
    good = exported_model / "model_int8.tflite"
    result = invoke("bench", good, stray, "--runs", "2")
    _one_line_error(result, "no model card", str(stray))
    assert "ms/face" not in result.output
    _one_line_error(invoke("bench", good, tmp_path / "missing.tflite"), "no model file", "missing.tflite")


def test_convert_checks_its_folder_before_working(exported_model, tmp_path, monkeypatch):
    from ferkeras.export import workflow

    def no_data(*args, **kwargs):
        raise AssertionError("data was loaded before the folder was checked")

    monkeypatch.setattr(workflow, "load_split", no_data)
    monkeypatch.setattr(
        workflow,
        "ensure_writable",
        lambda folder, what: (_ for _ in ()).throw(FerKerasError(f"cannot write to the {what} {folder}: Read-only file system")),
    )
    result = invoke("convert", "--model", exported_model, "--onnx")
    _one_line_error(result, "cannot write to the model folder", "Read-only")


@pytest.mark.parametrize(
    "content, message",
    [
        ("[1, 2]", "top level must be a mapping"),
        ("just a string", "top level must be a mapping"),
        ("phase1: 5", "phase1 is a section"),
        ("data: {image_size: [48]}", "data.image_size must be int"),
        ("model: {width: .nan}", "must be a finite number"),
        ("augment: {flip: 3}", "augment.flip must be in"),
    ],
)
def test_bad_config_files_are_one_line(tmp_path, content, message):
    path = tmp_path / "c.yaml"
    path.write_text(content)
    _one_line_error(invoke("train", "--config", path), message)


def test_set_of_a_whole_section_is_one_line(tiny, tmp_path):
    _one_line_error(train_smoke(tiny, tmp_path / "run", "--set", "phase1=3"), "phase1 is a section")


def test_damaged_run_files_are_one_line(tiny, tmp_path):
    run = tmp_path / "run"
    args = ["--phase", "1", "--set", "phase1.epochs=2"]
    assert train_smoke(tiny, run, *args).exit_code == 0
    state = run / "phase1" / "state.json"
    good = state.read_text()
    state.write_text(good[:25])
    _one_line_error(train_smoke(tiny, run, *args), "state.json is not valid JSON", "truncated", "--restart")
    resumable = json.loads(good)
    resumable.update(epoch=1, finished=False)
    state.write_text(json.dumps(resumable))
    last = run / "phase1" / "last.keras"
    last.write_bytes(last.read_bytes()[:3000])
    _one_line_error(train_smoke(tiny, run, *args), "cannot load checkpoint", "truncated or corrupt", "delete it")


def test_corrupt_init_from_model_is_one_line_before_anything_is_written(tiny, tmp_path):
    bad = tmp_path / "bad.keras"
    bad.write_text("junk")
    run = tmp_path / "run"
    result = train_smoke(tiny, run, "--phase", "1", "--set", f"phase1.init_from={bad}")
    _one_line_error(result, "phase1.init_from model", "truncated or corrupt")
    assert not run.exists()


def test_truncated_keras_file_is_not_called_missing(exported_model, tmp_path):
    (tmp_path / "model.keras").write_bytes((exported_model / "model.keras").read_bytes()[:5000])
    (tmp_path / "model_card.json").write_bytes((exported_model / "model_card.json").read_bytes())
    with pytest.raises(FerKerasError, match="truncated or corrupt") as info:
        Predictor.load(tmp_path / "model.keras")
    assert "not found" not in str(info.value)


@pytest.mark.parametrize(
    "face, message",
    [
        (np.zeros((20, 20, 2), np.uint8), "shape"),
        (np.zeros((0, 0), np.uint8), "empty"),
        (np.zeros(30, np.uint8), "shape"),
        (None, "is None"),
        (np.full((20, 20), np.nan, np.float32), "NaN"),
        (np.full((20, 20), -4, np.int16), "0..255"),
    ],
)
def test_predict_refuses_crops_that_are_not_images(exported_model, face, message):
    predictor = Predictor.load(exported_model / "model_int8.tflite")
    with pytest.raises(FerKerasError, match=message):
        predictor.predict([np.zeros((30, 30), np.uint8), face])


def test_recognizer_refuses_a_missing_frame(exported_model):
    rec = Recognizer.load(exported_model / "model_int8.tflite")
    with pytest.raises(FerKerasError, match="frame is None"):
        rec.process(None)
    assert rec.process(np.zeros((40, 60), np.uint8)) == []  # a gray frame is a frame


# 6. Written files respect the umask ------------------------------------------------------


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic_write_text(tmp_path / "card.json", "{}")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "card.json").stat().st_mode) == mode


def test_evaluate_update_card_keeps_the_card_readable(exported_model, tiny, tmp_path):
    for name in ("model_int8.tflite", "model_card.json"):
        (tmp_path / name).write_bytes((exported_model / name).read_bytes())
    (tmp_path / "model_card.json").chmod(0o644)
    previous = os.umask(0o022)
    try:
        result = invoke("evaluate", "--model", tmp_path, "--data", tiny, "--update-card")
    finally:
        os.umask(previous)
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE((tmp_path / "model_card.json").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "eval_val" / "metrics.json").stat().st_mode) == 0o644


# 8. Silent acceptance of wrong input -------------------------------------------------------


def test_csv_rows_of_nan_or_fractional_pixels_are_refused(tmp_path):
    path = make_csv_dataset(tmp_path / "fer2013.csv", per_class=1)
    with open(path, "a") as handle:
        handle.write("3," + " ".join(["nan"] * 2304) + ",Training\n")
        handle.write("3," + " ".join(["0.5"] * 2304) + ",Training\n")
    with pytest.raises(FerKerasError, match=r"line 23: pixel values must be whole numbers .*\(and 1 more\)"):
        load_dataset(path, 48)


def test_csv_with_byte_order_mark_and_spaced_header(tmp_path):
    path = make_csv_dataset(tmp_path / "fer2013.csv", per_class=1)
    lines = path.read_text().splitlines()
    path.write_text("\ufeffemotion, pixels , Usage\n" + "\n".join(lines[1:]) + "\n", encoding="utf-8")
    assert len(load_dataset(path, 48)["train"]) == 7


def test_empty_class_folders_are_named_and_left_out_of_macro_f1(tmp_path, caplog):
    root = make_folder_dataset(tmp_path, per_class=2)
    for file in (root / "val" / "disgust").iterdir():
        file.unlink()
    val = load_split(root, "val", 48)
    assert "has no faces of disgust" in caplog.text
    perfect = np.eye(7)[val.labels]
    metrics = classification_metrics(val.labels, perfect)
    assert metrics["macro_f1"] == 1.0 and metrics["absent_classes"] == ["disgust"]


def test_every_image_format_loads_and_other_files_are_named(tmp_path, caplog):
    root = make_folder_dataset(tmp_path, per_class=1, splits=("train",))
    face = make_faces(1, 48, seed=3)[0][0]
    folder = root / "train" / "happy"
    for suffix in (".bmp", ".webp", ".tif", ".JPEG"):
        assert cv2.imwrite(str(folder / f"extra{suffix}"), face)
    (folder / "notes.txt").write_text("not a face")
    (folder / "anim.gif").write_bytes(b"GIF89a")
    train = load_split(root, "train", 48)
    assert len(train) == 7 + 4
    assert "skipped 2 file(s) that are not images (.gif, .txt" in caplog.text and "anim.gif" in caplog.text


def test_sixteen_bit_faces_keep_their_brightness(tmp_path):
    face = make_faces(1, 48, seed=1)[0][0]
    twelve_bit = face.astype(np.uint16) * 16  # a 12-bit sensor: 0..4080 in a 16-bit file
    cv2.imwrite(str(tmp_path / "12bit.png"), twelve_bit)
    cv2.imwrite(str(tmp_path / "16bit.png"), face.astype(np.uint16) * 257)
    for name in ("12bit.png", "16bit.png"):
        decoded, problem = read_image(tmp_path / name)
        assert problem is None and np.abs(decoded.astype(int) - face).max() <= 1, name


def test_float_and_sixteen_bit_crops_are_scaled_by_their_dtype(exported_model):
    predictor = Predictor.load(exported_model / "model_int8.tflite")
    face = make_faces(1, 32, seed=2)[0][0]
    expected = predictor.predict([face])
    for variant in (face / 255.0, face.astype(np.float32), face.astype(np.uint16) * 257, face.astype(np.int64)):
        np.testing.assert_allclose(predictor.predict([variant]), expected, atol=1e-6)


def test_truncated_images_are_refused_not_half_decoded(tmp_path):
    frame = np.random.default_rng(0).integers(0, 255, (120, 160, 3), np.uint8)
    for suffix in (".jpg", ".png"):
        data = cv2.imencode(suffix, frame)[1].tobytes()
        (tmp_path / f"cut{suffix}").write_bytes(data[: len(data) // 2])
        (tmp_path / f"whole{suffix}").write_bytes(data)
        assert read_image(tmp_path / f"cut{suffix}", gray=False)[1].startswith("truncated")
        assert read_image(tmp_path / f"whole{suffix}", gray=False)[1] is None
    source = FrameSource(str(tmp_path))
    frames = [source.read() for _ in range(3)]
    assert [f is not None for f in frames] == [True, True, False]
    assert sorted(Path(p).name for p in source.skipped) == ["cut.jpg", "cut.png"]


# 9. Smaller ---------------------------------------------------------------------------------


def test_stale_temporaries_of_a_killed_save_are_removed_on_resume(tiny, tmp_path):
    run = tmp_path / "run"
    assert train_smoke(tiny, run, "--phase", "1").exit_code == 0
    stale = run / "phase1" / ".last.abc123.tmp.keras"
    stale.write_bytes(b"half a model")
    keep = run / "phase1" / "notes.keras"
    keep.write_bytes(b"not ours")
    assert train_smoke(tiny, run, "--phase", "1").exit_code == 0
    assert not stale.exists() and keep.exists()
    assert remove_stale_temps(tmp_path / "absent") == []


@pytest.fixture
def stalled_server():
    """A TCP server on 127.0.0.1 that accepts connections and never answers (a stalled stream)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    held = []
    stop = threading.Event()

    def accept():
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for connection in held:
        connection.close()
    server.close()


def test_a_stalled_stream_gives_up_within_its_timeout(stalled_server, monkeypatch):
    monkeypatch.setitem(runner_module.STREAM_TIMEOUTS_MS, "open", 1500)
    start = time.monotonic()
    with pytest.raises(FerKerasError, match="cannot open stream"):
        FrameSource(f"http://127.0.0.1:{stalled_server}/live.mjpg")
    assert time.monotonic() - start < 10


def test_cli_exit_status_matches_the_docs(tmp_path):
    result = invoke("evaluate", "--model", tmp_path / "none.keras")
    assert result.exit_code == 1  # errors.py: FerKerasError exits with status 1
    assert invoke("evaluate", "--split", "nope").exit_code == 2  # usage errors: 2
