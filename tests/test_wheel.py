"""A built wheel carries the live models: installed outside the checkout, ``ferkeras cam`` runs."""

import csv
import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import cv2
from conftest import REPO

from ferkeras.artifacts import BUNDLED_FILES, BUNDLED_MODELS


def test_the_wheel_runs_cam_without_the_checkout(tmp_path, sample_clip):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(wheels.glob("ferkeras-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    bundled = {n.split("/")[2] for n in names if n.startswith("ferkeras/bundled/")}
    assert bundled == set(BUNDLED_MODELS)
    for model in BUNDLED_MODELS:
        for name in BUNDLED_FILES:
            assert f"ferkeras/bundled/{model}/{name}" in names
    assert {"ferkeras/serve/page/index.html", "ferkeras/serve/page/app.js"} <= set(names)  # serve's page
    assert not [n for n in names if n.endswith((".keras", ".onnx"))]  # the live files only: a few MB

    # A fresh environment holding the wheel; its dependencies come from this one's
    # site-packages through a plain path entry, which does not run the editable
    # install's hooks, so only the wheel's ferkeras can be imported.
    env_dir = tmp_path / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(wheel)],
        check=True,
        capture_output=True,
    )

    work = tmp_path / "elsewhere"
    work.mkdir()
    capture = cv2.VideoCapture(str(sample_clip))
    capture.set(cv2.CAP_PROP_POS_FRAMES, 100)
    ok, frame = capture.read()
    assert ok
    cv2.imwrite(str(work / "people.jpg"), frame)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "FERKERAS_MODEL")}
    done = subprocess.run(
        [
            str(python),
            "-c",
            "import sys; from ferkeras.cli import main; sys.argv[0] = 'ferkeras'; main()",
            "cam",
            "--source",
            "people.jpg",
            "--no-display",
            "--csv",
            "faces.csv",
        ],
        cwd=work,
        env={**env, "TF_CPP_MIN_LOG_LEVEL": "3", "FERKERAS_CACHE": str(tmp_path / "cache")},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    chosen = next(line for line in done.stderr.splitlines() if line.startswith("model auto: ")).split(",")[0].split()[-1]
    assert chosen in BUNDLED_MODELS  # auto chose among the models the wheel carries, having timed each
    timed = json.loads((tmp_path / "cache" / "auto_model_timings.json").read_text())
    assert {key.split("/")[-2] for key in timed} == set(BUNDLED_MODELS)
    assert f"model: {site / 'ferkeras' / 'bundled' / chosen / 'model_int8.tflite'}" in done.stderr
    with open(work / "faces.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(row["label"] for row in rows)
