import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
sys.path.insert(0, str(Path(__file__).parent))

import pytest  # noqa: E402

from synthetic import make_csv_dataset, make_folder_dataset  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture(scope="session")
def folder_data(tmp_path_factory) -> Path:
    """train/ and val/ class folders, 12 faces per class, 48 px."""
    return make_folder_dataset(tmp_path_factory.mktemp("folders"), per_class=12)


@pytest.fixture(scope="session")
def csv_data(tmp_path_factory) -> Path:
    return make_csv_dataset(tmp_path_factory.mktemp("csv") / "fer2013.csv")
