import os
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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A trained tiny model folder with model.keras, its card and val/train data."""
    from synthetic import make_folder_dataset
    from tiny_model import SIZE, train_tiny_model

    folder = tmp_path_factory.mktemp("tiny_model")
    make_folder_dataset(folder / "data", per_class=20, size=SIZE, seed=10)
    train_tiny_model(folder)
    return folder


@pytest.fixture(scope="session")
def exported_model(tiny_model) -> Path:
    """The tiny model converted to every TFLite quantization, ONNX and a SavedModel."""
    from ferkeras.export.workflow import run_conversions

    run_conversions(tiny_model, ("none", "float16", "dynamic", "int8"), onnx=True, saved_model=True)
    return tiny_model


@pytest.fixture(scope="session")
def sample_clip() -> Path:
    """The bundled public-domain clip (640x360, 275 frames, several faces)."""
    return REPO / "samples" / "stage_and_audience.mp4"
