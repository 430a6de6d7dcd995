"""Faces, tracking, smoothing, the Recognizer API and the TensorFlow-free edge path."""

import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest

from ferkeras.errors import FerKerasError
from ferkeras.images import to_gray
from ferkeras.inference.faces import BlazeFaceDetector, Box, HaarDetector, crop_face, make_detector
from ferkeras.inference.recognizer import Recognizer
from ferkeras.inference.smoothing import IoUTracker, Smoother


@pytest.fixture(scope="module")
def face_frame(sample_clip):
    """Frame 240 of the sample clip: two audience faces."""
    capture = cv2.VideoCapture(str(sample_clip))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 240)
    ok, frame = capture.read()
    capture.release()
    assert ok
    return frame


def test_blazeface_finds_the_faces(face_frame):
    boxes = BlazeFaceDetector().detect(face_frame)
    assert len(boxes) >= 2
    for box in boxes:
        assert 0 <= box.x < 640 and 0 <= box.y < 360 and 20 < box.w < 200 and 0.5 < box.h / box.w < 2
        assert 0.5 <= box.score <= 1
    assert BlazeFaceDetector().detect(np.zeros((480, 640, 3), np.uint8)) == []
    assert make_detector("blazeface", min_size=500).detect(face_frame) == []


def test_haar_and_unknown_detector(face_frame):
    assert all(isinstance(b, Box) for b in HaarDetector().detect(face_frame))
    with pytest.raises(FerKerasError, match="unknown detector 'yolo'"):
        make_detector("yolo")


def test_crop_face_is_square_and_padded_at_edges():
    gray = np.arange(100 * 80, dtype=np.uint32).reshape(100, 80).astype(np.uint8)
    crop = crop_face(gray, Box(70, 90, 20, 10), padding=0.5)
    assert crop.shape == (30, 30)
    assert crop_face(gray, Box(10, 10, 20, 20), 0.0).shape == (20, 20)
    assert np.array_equal(crop_face(gray, Box(10, 10, 20, 20), 0.0), gray[10:30, 10:30])


def test_smoothers():
    a, b = np.eye(7)[3], np.eye(7)[5]
    ema = Smoother("ema", alpha=0.5)
    assert np.allclose(ema.update(a), a)
    assert np.allclose(ema.update(b), 0.5 * a + 0.5 * b)
    mean = Smoother("mean", window=2)
    for p in (a, b, b):
        out = mean.update(p)
    assert np.allclose(out, b)
    assert np.allclose(Smoother("none").update(b), b)
    with pytest.raises(FerKerasError, match="unknown smoothing"):
        Smoother("kalman")


def test_tracker_keeps_ids_and_starts_fresh():
    tracker = IoUTracker(lambda: Smoother("ema", alpha=0.5), max_missed=1)
    first = tracker.assign([Box(0, 0, 10, 10), Box(50, 50, 10, 10)])
    assert [t.track_id for t in first] == [1, 2]
    moved = tracker.assign([Box(51, 51, 10, 10), Box(1, 0, 10, 10)])
    assert [t.track_id for t in moved] == [2, 1]
    tracker.assign([])  # one missed frame: kept
    assert [t.track_id for t in tracker.assign([Box(0, 0, 10, 10)])] == [1]
    tracker.assign([])
    tracker.assign([])  # track 2 and then 1 aged out
    again = tracker.assign([Box(0, 0, 10, 10)])
    assert again[0].track_id == 3
    assert again[0].smoother._state is None  # a new track's smoother starts fresh


def test_recognizer_process_and_predict_image(exported_model, face_frame, tmp_path):
    rec = Recognizer.load(exported_model / "model_int8.tflite", threshold=0.0)
    faces = rec.process(face_frame)
    assert len(faces) >= 2
    ids = [f.track_id for f in faces]
    assert [f.track_id for f in rec.process(face_frame)] == ids  # a static frame keeps its ids
    face = faces[0]
    assert face.probabilities.shape == (7,) and abs(face.probabilities.sum() - 1) < 0.05
    assert face.label in rec.class_names and face.confidence == pytest.approx(face.probabilities.max())
    assert set(face.to_dict(rec.class_names)) == {"face_id", "box", "label", "confidence", "probabilities"}
    path = tmp_path / "still.png"
    cv2.imwrite(str(path), face_frame)
    still = rec.predict_image(path)
    assert len(still) == len(faces) and still[0].track_id is None
    whole = rec.predict_image(np.full((48, 48), 128, np.uint8), detect=False)
    assert len(whole) == 1 and whole[0].box == Box(0, 0, 48, 48)
    flipped = Recognizer.load(exported_model / "model_int8.tflite", flip=True).predict_image(face_frame[:48, :48], detect=False)
    np.testing.assert_allclose(flipped[0].probabilities, rec.predictor.predict([to_gray(face_frame[:48, :48])], flip=True)[0])
    strict = Recognizer.load(exported_model / "model.keras", threshold=1.0)
    assert all(f.label == "uncertain" for f in strict.process(face_frame))
    with pytest.raises(FerKerasError, match="cannot read image"):
        rec.predict_image(tmp_path / "missing.png")


def test_edge_path_never_imports_tensorflow(exported_model, sample_clip, tmp_path):
    """With TensorFlow, Keras & co. unimportable, a .tflite model still runs the live runner."""
    code = textwrap.dedent(
        f"""
        import importlib.abc, sys
        BLOCKED = {{"tensorflow", "keras", "tf2onnx", "albumentations", "sklearn", "matplotlib", "onnxruntime"}}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"No module named {{name!r}} (blocked: edge install)")
        sys.meta_path.insert(0, Block())
        import numpy as np
        import ferkeras
        from ferkeras.inference.predictor import Predictor
        from ferkeras.inference.recognizer import Recognizer
        from ferkeras.inference.runner import run
        p = Predictor.load({str(exported_model / "model_int8.tflite")!r})
        assert p.predict(np.zeros((3, 40, 40), np.uint8)).shape == (3, 7)
        rec = Recognizer.load({str(exported_model / "model_int8.tflite")!r})
        stats = run({str(sample_clip)!r}, rec, csv_path={str(tmp_path / "edge.csv")!r}, max_frames=20, quiet=True)
        assert stats.frames == 20, stats
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print("LOADED", loaded)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""}
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOADED []" in out.stdout
    assert (tmp_path / "edge.csv").read_text().count("\n") >= 21


def test_label_hysteresis():
    from ferkeras.inference.smoothing import Track

    track = Track(1, Box(0, 0, 1, 1), Smoother("none"))
    happy, sad = 3, 5

    def p(h, s):
        v = np.full(7, (1 - h - s) / 5)
        v[happy], v[sad] = h, s
        return v

    assert track.choose_label(p(0.3, 0.2), 0.4, 0.15) is None  # not confident yet
    assert track.choose_label(p(0.5, 0.2), 0.4, 0.15) == happy
    assert track.choose_label(p(0.36, 0.3), 0.4, 0.15) == happy  # dips, but within the hysteresis
    assert track.choose_label(p(0.40, 0.50), 0.4, 0.15) == happy  # sad leads by only 0.10
    assert track.choose_label(p(0.30, 0.50), 0.4, 0.15) == sad  # leads by 0.20
    assert track.choose_label(p(0.20, 0.22), 0.4, 0.15) is None  # sad fell below 0.25
