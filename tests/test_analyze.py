"""ferkeras analyze: batches, resume, failures, time sampling, identities, the cluster and the Python API."""

import json
import os
import shutil
import subprocess
import sys
import time

import cv2
import numpy as np
import pandas as pd
import pytest
from conftest import invoke

pytest.importorskip("pandas", reason="the [analyze] extra is not installed")

import ferkeras  # noqa: E402
from ferkeras.analysis.batch import status_counts  # noqa: E402
from ferkeras.analysis.report import write_report  # noqa: E402
from ferkeras.analysis.video import sampled_frames  # noqa: E402
from ferkeras.artifacts import ACCURATE, MODEL_ROLES, find_shipped_model  # noqa: E402
from ferkeras.card import quality_summary, read_card, write_card  # noqa: E402
from ferkeras.labels import CLASS_NAMES  # noqa: E402

PER_VIDEO = ["frames.csv", "frames.parquet", "tracks.csv", "timeline.png", "video.json"]


@pytest.fixture(scope="module")
def batch(sample_clip, tmp_path_factory):
    """Three copies of the bundled clip and one corrupt file, analysed once at 5 fps."""
    folder = tmp_path_factory.mktemp("videos")
    for name in ("a", "b", "c"):
        shutil.copyfile(sample_clip, folder / f"{name}.mp4")
    (folder / "broken.mp4").write_bytes(sample_clip.read_bytes()[:40_000])
    (folder / "notes.txt").write_text("not a video: ignored in folders")
    out = tmp_path_factory.mktemp("out") / "analysis"
    result = invoke("analyze", folder, "--output", out, "--fps", 5, "--quiet")
    return folder, out, result


def test_batch_writes_tables_pictures_and_report_and_lists_the_corrupt_file(batch):
    _folder, out, result = batch
    assert result.exit_code == 0, result.output
    assert "3 analysed, 0 done before, 1 failed" in result.output
    assert "failed: " in result.output and "broken.mp4" in result.output
    summary = pd.read_csv(out / "summary.csv")
    assert dict(zip(summary["video"], summary["status"])) == {
        "a": "analysed",
        "b": "analysed",
        "broken": "failed",
        "c": "analysed",
    }
    assert "broken.mp4" in summary.loc[summary["video"] == "broken", "error"].item()
    for name in ("a", "b", "c"):
        for file in PER_VIDEO:
            assert (out / name / file).is_file(), (name, file)
        frames = pd.read_parquet(out / name / "frames.parquet")
        assert list(frames.columns[:11]) == [
            "video",
            "time_s",
            "time_ms",
            "frame",
            "person",
            "x",
            "y",
            "w",
            "h",
            "label",
            "confidence",
        ]
        assert [c for c in frames.columns if c.startswith("p_")] == [f"p_{n}" for n in CLASS_NAMES]
        faces = frames.dropna(subset=["person"])
        assert len(faces) > 40 and set(faces["label"]) <= set(CLASS_NAMES)
        assert np.allclose(faces[[f"p_{n}" for n in CLASS_NAMES]].sum(axis=1), 1, atol=0.01)
        assert (frames["time_ms"] == (frames["time_s"] * 1000).round().astype(int)).all()
        assert frames["time_s"].nunique() == 46  # 9.2 s at 5 per second
        assert pd.read_csv(out / name / "frames.csv").shape == frames.shape
        tracks = pd.read_csv(out / name / "tracks.csv")
        assert len(tracks) >= 4 and tracks["dominant_emotion"].isin(CLASS_NAMES).all()
        assert (tracks["last_seen_s"] >= tracks["first_seen_s"]).all()
        shares = tracks[[f"share_{n}" for n in CLASS_NAMES]].sum(axis=1)
        assert np.allclose(shares, 1, atol=1e-3)
        for thumbnail in tracks["thumbnail"]:
            assert cv2.imread(str(out / name / thumbnail)).shape == (96, 96, 3)
        assert cv2.imread(str(out / name / "timeline.png")).std() > 10
    # the three copies are the same video: the same results
    a, b = pd.read_parquet(out / "a" / "frames.parquet"), pd.read_parquet(out / "b" / "frames.parquet")
    pd.testing.assert_frame_equal(a.drop(columns="video"), b.drop(columns="video"))
    report = (out / "report.html").read_text()
    assert report.count('<h2 id="') == 3 and "broken" in report and 'class="failed"' in report
    assert "data:image/png;base64," in report and "<script" not in report and "http" not in report.split("</style>")[1]
    assert json.loads((out / "batch.json").read_text())["counts"] == {"analysed": 3, "done before": 0, "failed": 1, "not run": 0}


def test_the_report_says_how_far_the_model_can_be_trusted(batch, tiny_model, tmp_path):
    _folder, out, _result = batch
    folder = find_shipped_model(MODEL_ROLES[ACCURATE])
    flip = read_card(folder)["metrics"]["val"]["flip"]  # analyze averages each face with its mirror image
    quality = json.loads((out / "batch.json").read_text())["model"]
    assert quality["model"] == folder.name and quality["view"] == "flip" and quality["val_accuracy"] == flip["accuracy"]
    report = (out / "report.html").read_text()
    assert f"it scores {flip['accuracy'] * 100:.1f} % accuracy" in report and "temperature-scaled" in report
    # a card without val scores or a temperature: the report says what it lacks
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(tiny_model / "model.keras", bare)
    card = read_card(tiny_model)
    card.get("metrics", {}).pop("val", None)
    card.pop("calibration", None)
    write_card(bare / "model.keras", card)
    page = write_report(tmp_path, [], status_counts([]), quality_summary(bare / "model.keras", "none")).read_text()
    assert "Model: bare (model.keras, one pass per face)" in page
    assert "no val scores" in page and "stores no temperature" in page


def test_a_rerun_does_no_work_and_a_changed_setting_redoes_it(batch):
    folder, out, _ = batch
    before = {name: (out / name / "video.json").stat().st_mtime_ns for name in ("a", "b", "c")}
    start = time.perf_counter()
    result = invoke("analyze", folder, "--output", out, "--fps", 5, "--quiet")
    assert result.exit_code == 0 and "0 analysed, 3 done before, 1 failed" in result.output
    assert time.perf_counter() - start < 10
    assert before == {name: (out / name / "video.json").stat().st_mtime_ns for name in ("a", "b", "c")}
    copy = out.parent / "fps2"
    shutil.copytree(out, copy)
    result = invoke("analyze", folder / "a.mp4", "--output", copy, "--fps", 2, "--quiet")
    assert "1 analysed" in result.output
    assert pd.read_parquet(copy / "a" / "frames.parquet")["time_s"].nunique() == 19


def test_unfinished_work_is_redone_and_foreign_folders_are_left_alone(batch, tmp_path):
    folder, out, _ = batch
    target = tmp_path / "resume"
    shutil.copytree(out, target)
    (target / "a" / "video.json").unlink()  # as if killed before the folder was complete
    (target / ".b.staging").mkdir()  # a killed run's staging folder
    shutil.rmtree(target / "c")
    (target / "c").mkdir()
    (target / "c" / "mine.txt").write_text("the user's own file")
    result = invoke("analyze", folder, "--output", target, "--quiet")
    summary = pd.read_csv(target / "summary.csv").set_index("video")["status"].to_dict()
    assert summary == {"a": "analysed", "b": "done before", "broken": "failed", "c": "failed"}
    assert (target / "a" / "video.json").is_file() and not (target / ".b.staging").exists()
    assert (target / "c" / "mine.txt").read_text() == "the user's own file"
    assert "is not a ferkeras analyze result" in result.output


def write_video(path, frames, fps):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (frames[0].shape[1], frames[0].shape[0]))
    for frame in frames:
        writer.write(frame)
    writer.release()
    return path


def test_sampling_follows_video_time_not_frame_rate(sample_clip, tmp_path):
    capture = cv2.VideoCapture(str(sample_clip))
    clip = [capture.read()[1] for _ in range(90)]  # 3 s at 30 fps
    for fps, frames in ((30, clip), (10, clip[::3])):
        video = write_video(tmp_path / f"v{fps}.mp4", frames, fps)
        times = [t for _, t, _ in sampled_frames(cv2.VideoCapture(str(video)), 5)]
        assert len(times) == 15, (fps, times)
        assert np.allclose(times, np.arange(15) * 0.2, atol=1 / fps)


def face_patch(frame, box, scale=2.0):
    x, y, w, h = box
    side = int(max(w, h) * scale)
    x0, y0 = int(x + w / 2 - side / 2), int(y + h / 2 - side / 2)
    return cv2.resize(frame[max(y0, 0) : y0 + side, max(x0, 0) : x0 + side], (160, 160))


def test_a_returning_face_keeps_its_id_and_another_face_does_not(sample_clip, tmp_path):
    capture = cv2.VideoCapture(str(sample_clip))
    frames = [capture.read()[1] for _ in range(231)]
    one, other = face_patch(frames[100], (196, 99, 90, 91)), face_patch(frames[230], (301, 54, 69, 68))

    def scene(face, x):
        canvas = np.full((360, 640, 3), 90, np.uint8)
        if face is not None:
            canvas[100:260, x : x + 160] = face
        return canvas

    # 1 s each: face at the left, nobody, the same face at the right, nobody, another face at the right
    parts = [scene(one, 40), scene(None, 0), scene(one, 440), scene(None, 0), scene(other, 440)]
    video = write_video(tmp_path / "comings_and_goings.mp4", [p for p in parts for _ in range(30)], 30)
    with_reid = ferkeras.analyze(video, fps=5)
    without = ferkeras.analyze(video, fps=5, reid=False)

    def people_by_second(analysis):
        faces = analysis.frames.dropna(subset=["person"])
        return {int(t): set(group["person"]) for t, group in faces.groupby(faces["time_s"].astype(int))}

    assert people_by_second(with_reid) == {0: {1}, 2: {1}, 4: {2}}
    assert people_by_second(without) == {0: {1}, 2: {2}, 4: {3}}
    assert list(with_reid.tracks["person"]) == [1, 2] and with_reid.videos["reidentified"].item() == 1


def test_parallel_workers_and_a_two_worker_dask_cluster_give_the_single_process_tables(batch, tmp_path):
    pytest.importorskip("distributed", reason="the [cluster] extra is not installed")
    folder, out, _ = batch
    sources = [folder / "a.mp4", folder / "broken.mp4", folder / "b.mp4"]
    single = ferkeras.analyze(sources)
    pooled = ferkeras.analyze(sources, workers=2)
    port = 20000 + os.getpid() % 20000
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    dask = [sys.executable, "-m", "distributed.cli.dask_scheduler"]
    scheduler = subprocess.Popen(
        [*dask, "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"], env=env, stderr=subprocess.DEVNULL
    )
    workers = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "distributed.cli.dask_worker",
            f"tcp://127.0.0.1:{port}",
            "--nworkers",
            "2",
            "--nthreads",
            "1",
            "--host",
            "127.0.0.1",
            "--no-dashboard",
        ],
        env=env,
        stderr=subprocess.DEVNULL,
    )
    try:
        from distributed import Client

        with Client(f"tcp://127.0.0.1:{port}", timeout="30s") as client:
            client.wait_for_workers(2, timeout=60)
            assert all(address.startswith("tcp://127.0.0.1:") for address in client.scheduler_info()["workers"])
        clustered = ferkeras.analyze(sources, cluster=f"tcp://127.0.0.1:{port}")
    finally:
        workers.terminate()
        scheduler.terminate()
        workers.wait(20)
        scheduler.wait(20)
    for other in (pooled, clustered):
        pd.testing.assert_frame_equal(single.frames, other.frames)
        pd.testing.assert_frame_equal(single.tracks, other.tracks)
        assert list(other.videos["status"]) == ["analysed", "failed", "analysed"]


def test_the_python_api_and_bad_inputs(sample_clip, tmp_path):
    manifest = tmp_path / "list.csv"
    manifest.write_text(f"path,group\n{sample_clip},x\n")
    analysis = ferkeras.analyze(manifest, fps=1, flip=False)
    assert set(analysis.frames["video"]) == {"stage_and_audience"} and analysis.frames["time_s"].nunique() == 10
    assert set(analysis.tracks.columns) >= {"video", "person", "seconds_visible", "dominant_emotion", "label_changes"}
    assert analysis.videos["status"].tolist() == ["analysed"]
    assert analysis.model["view"] == "none" and 0 < analysis.model["val_accuracy"] < 1  # flip=False: one pass per face
    for args, message in (
        (["missing.mp4"], "source not found: missing.mp4"),
        ([str(tmp_path / "empty")], "no videos"),
        ([str(sample_clip), "--fps", "0"], "--fps must be above 0"),
        ([str(sample_clip), "--model", "nope"], "model not found: nope"),
    ):
        (tmp_path / "empty").mkdir(exist_ok=True)
        result = invoke("analyze", *args, "--output", tmp_path / "o", "--quiet")
        assert result.exit_code == 1 and message in result.output and result.output.count("\n") == 1, result.output
    bad_list = tmp_path / "bad.txt"
    bad_list.write_text("# videos\nnot_here.mp4\n")
    result = invoke("analyze", bad_list, "--output", tmp_path / "o")
    assert result.exit_code == 1 and "lists 1 missing file(s), first: " in result.output


def test_the_report_renders_in_a_real_browser(batch, tmp_path):
    from browser import keep_screenshot, launch, not_blank, require_browser

    sync_api = require_browser()
    _folder, out, _ = batch
    problems = []
    with sync_api.sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page(viewport={"width": 1100, "height": 900})
        page.on("console", lambda message: message.type in ("error", "warning") and problems.append(message.text))
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("requestfailed", lambda request: problems.append(f"failed to load {request.url}"))
        page.goto((out / "report.html").as_uri())
        page.wait_for_load_state("load")
        assert page.locator("h2").count() == 3 and page.locator("tr.failed").count() == 1
        sizes = page.eval_on_selector_all("img", "images => images.map(i => i.naturalWidth)")
        assert len(sizes) > 10 and min(sizes) > 0  # every timeline and thumbnail decoded
        shot = tmp_path / "analyze_report.png"
        page.screenshot(path=str(shot))
        browser.close()
    assert not problems, problems
    assert not_blank(shot) > 10
    keep_screenshot(shot, "analyze_report.png")


def test_sampling_a_variable_frame_rate_file_by_timestamps(tmp_path):
    """1 s at 30 fps, 1 s at 5 fps, 1 s at 15 fps in one file: samples land on video time, not frame counts."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg", reason="needs an ffmpeg binary to write a variable-rate file")
    durations = [1 / 30] * 30 + [1 / 5] * 5 + [1 / 15] * 15
    lines = []
    for index, duration in enumerate(durations):
        frame = np.full((64, 64, 3), 0, np.uint8)
        cv2.putText(frame, str(index), (4, 40), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (255, 255, 255), 2)
        cv2.imwrite(str(tmp_path / f"{index:03d}.png"), frame)
        lines += [f"file '{index:03d}.png'", f"duration {duration:.6f}"]
    lines.append(f"file '{len(durations) - 1:03d}.png'")  # the concat demuxer needs the last file twice
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    video = tmp_path / "vfr.mp4"
    subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-loglevel",
            "error",
            "-f",
            "concat",
            "-i",
            "list.txt",
            "-fps_mode",
            "vfr",
            "-c:v",
            "libx264",
            "-pix_fmt",
            "yuv420p",
            str(video),
        ],
        cwd=tmp_path,
        check=True,
    )
    capture = cv2.VideoCapture(str(video))
    stamps = []
    while capture.grab():
        stamps.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    stamps = np.array(stamps)
    assert len(np.unique(np.round(np.diff(stamps), 3))) >= 2  # the file really changes rate
    sampled = list(sampled_frames(cv2.VideoCapture(str(video)), 5))
    targets = np.arange(0, stamps[-1] + 1e-6, 0.2)
    assert len(sampled) == len(targets) >= 15
    for (index, stamp, _), target in zip(sampled, targets):
        # the first frame at or after each 0.2 s step, by its timestamp, whatever the local frame rate
        first = int(np.searchsorted(stamps, target - 1e-6))
        assert index == first and np.isclose(stamp, stamps[first], atol=1e-3)
