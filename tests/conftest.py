import fcntl
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import pytest  # noqa: E402
from synthetic import make_csv_dataset, make_folder_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def invoke(*args):
    """Run the ferkeras command line in-process; arguments may be paths or numbers."""
    from click.testing import CliRunner

    from ferkeras.cli import main

    return CliRunner().invoke(main, [str(arg) for arg in args])


def train_smoke(data, output, *args):
    """``ferkeras train --preset smoke`` on ``data`` into ``output``, with more arguments."""
    return invoke("train", "--preset", "smoke", "--data", data, "--output", output, *args)


def cam(model, source, *args):
    """``ferkeras cam`` with ``model`` on ``source``, with more arguments."""
    return invoke("cam", "--source", source, "--model", model, *args)


SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def folder_data(tmp_path_factory) -> Path:
    """train/ and val/ class folders, 12 faces per class, 48 px."""
    return make_folder_dataset(tmp_path_factory.mktemp("folders"), per_class=12)


@pytest.fixture(scope="session")
def csv_data(tmp_path_factory) -> Path:
    return make_csv_dataset(tmp_path_factory.mktemp("csv") / "fer2013.csv")


def _build_tiny_model(folder: Path) -> Path:
    from tiny_model import SIZE, train_tiny_model

    from ferkeras.export.workflow import run_conversions

    make_folder_dataset(folder / "data", per_class=20, size=SIZE, seed=10)
    train_tiny_model(folder)
    run_conversions(folder, ("none", "float16", "dynamic", "int8"), onnx=True, saved_model=True)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory, worker_id) -> Path:
    """A trained tiny model folder: model.keras, its card, val/train data, every TFLite
    quantization, ONNX and a SavedModel.

    Built once per test run (training and exports cost about a minute on a 2-core CPU)
    and copied into each xdist worker, since some tests convert again in place.
    """
    if worker_id == "master":
        return _build_tiny_model(tmp_path_factory.mktemp("tiny_model"))
    shared = tmp_path_factory.getbasetemp().parent / "tiny_model"  # common to this run's workers
    with open(f"{shared}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "done").exists():
            shutil.rmtree(shared, ignore_errors=True)
            _build_tiny_model(shared)
            (shared / "done").touch()
    copy = tmp_path_factory.mktemp("tiny_model")
    shutil.copytree(shared, copy, dirs_exist_ok=True, ignore=shutil.ignore_patterns("done"))
    return copy


@pytest.fixture(scope="session")
def exported_model(tiny_model) -> Path:
    """The tiny model, for tests that need its exports."""
    return tiny_model


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """The bundled public-domain clip (640x360, 275 frames, several faces)."""
    return REPO / "samples" / "stage_and_audience.mp4"
