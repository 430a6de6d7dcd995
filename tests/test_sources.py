import shutil

import cv2
import numpy as np
import pytest
from synthetic import make_csv_dataset, make_folder_dataset

from ferkeras.data import load_dataset, load_split
from ferkeras.data.sources import stratified_split
from ferkeras.errors import FerKerasError
from ferkeras.labels import CLASS_NAMES, CSV_CODE_TO_INDEX, class_index


def test_csv_codes_map_onto_our_order():
    # fer2013.csv: 4 = sad, 5 = surprise, 6 = neutral
    assert CLASS_NAMES[CSV_CODE_TO_INDEX[4]] == "sad"
    assert CLASS_NAMES[CSV_CODE_TO_INDEX[5]] == "surprise"
    assert CLASS_NAMES[CSV_CODE_TO_INDEX[6]] == "neutral"
    assert sorted(CSV_CODE_TO_INDEX.values()) == list(range(7))
    with pytest.raises(ValueError, match="unknown class 'joy'"):
        class_index("joy")


def test_folders_load_with_labels_and_size(folder_data):
    splits = load_dataset(folder_data, 40)
    assert set(splits) == {"train", "val"}
    train = splits["train"]
    assert train.images.shape == (84, 40, 40) and train.images.dtype == np.uint8
    assert train.class_counts().tolist() == [12] * 7
    # the file under happy/ carries the happy label
    happy = train.origins.index(next(o for o in train.origins if "/happy/" in o))
    assert train.labels[happy] == CLASS_NAMES.index("happy")


def test_missing_val_is_stratified_and_seeded(tmp_path):
    root = make_folder_dataset(tmp_path, per_class=10, splits=("train", "test"))
    a = load_dataset(root, 48, val_fraction=0.2, seed=3)
    b = load_dataset(root, 48, val_fraction=0.2, seed=3)
    assert set(a) == {"train", "val", "test"}
    assert a["val"].class_counts().tolist() == [2] * 7
    assert a["train"].class_counts().tolist() == [8] * 7
    assert a["val"].origins == b["val"].origins
    assert not set(a["val"].origins) & set(a["train"].origins)
    c = load_dataset(root, 48, val_fraction=0.2, seed=4)
    assert c["val"].origins != a["val"].origins
    # evaluating "val" on such data gives the very faces training held out
    assert load_split(root, "val", 48, val_fraction=0.2, seed=3).origins == a["val"].origins


def test_csv_splits_and_labels(csv_data):
    splits = load_dataset(csv_data, 48)
    assert set(splits) == {"train", "val", "test"}
    assert len(splits["test"]) == 42
    assert splits["train"].class_counts().tolist() == [6] * 7
    # same generator, same pixels: CSV and folder forms agree on label order
    from synthetic import make_faces

    images, labels = make_faces(6, 48, 0)
    order = np.lexsort((np.arange(len(labels)), splits["train"].labels))
    assert np.array_equal(splits["train"].images[order], images[np.argsort(labels, kind="stable")])
    assert load_split(csv_data.parent, "test", 48).name == "test"


def test_other_data_sets_folder_names(tmp_path):
    root = make_folder_dataset(tmp_path, per_class=2)
    for split in ("train", "val"):
        for ours, theirs in (("angry", "Anger"), ("happy", "happiness"), ("sad", "Sadness"), ("surprise", "surprised")):
            (root / split / ours).rename(root / split / theirs)
    renamed = load_dataset(root, 48)["train"]
    assert renamed.class_counts().tolist() == [2] * 7
    happy = next(i for i, origin in enumerate(renamed.origins) if "/happiness/" in origin)
    assert renamed.labels[happy] == CLASS_NAMES.index("happy")
    assert class_index(" Fearful ") == CLASS_NAMES.index("fear")


def test_unknown_class_folder(tmp_path):
    root = make_folder_dataset(tmp_path, per_class=2)
    (root / "train" / "contempt").mkdir()
    with pytest.raises(FerKerasError, match=r"unknown class folder .*contempt; expected folders named angry"):
        load_dataset(root, 48)


def test_empty_split_and_missing_path(tmp_path):
    root = make_folder_dataset(tmp_path, per_class=2)
    shutil.rmtree(root / "val")
    (root / "val" / "happy").mkdir(parents=True)
    with pytest.raises(FerKerasError, match=r"split .*val has no images"):
        load_dataset(root, 48)
    with pytest.raises(FerKerasError, match="data path not found"):
        load_dataset(tmp_path / "missing", 48)
    with pytest.raises(FerKerasError, match=r"split 'test' not found: no folder .*\(found: train, val\)"):
        load_split(root, "test", 48)
    with pytest.raises(FerKerasError, match=r"split 'val' not found: no folder .*\(found: none\)"):
        load_split(tmp_path / "val" / "happy", "val", 48)


def test_corrupt_image_is_named_or_skipped(tmp_path, caplog):
    root = make_folder_dataset(tmp_path, per_class=3)
    bad = root / "train" / "fear" / "broken.png"
    bad.write_bytes(b"\x89PNG not really")
    (root / "train" / "fear" / "empty.jpg").write_bytes(b"")
    with pytest.raises(FerKerasError) as error:
        load_dataset(root, 48)
    message = str(error.value)
    assert "broken.png" in message and "(and 1 more)" in message and "--skip-bad" in message
    assert "\n" not in message
    splits = load_dataset(root, 48, skip_bad=True)
    assert len(splits["train"]) == 21
    assert "skipped 2 unreadable or corrupt image" in caplog.text


def test_csv_bad_rows(tmp_path, caplog):
    path = make_csv_dataset(tmp_path / "fer2013.csv", per_class=1)
    lines = path.read_text().splitlines()
    lines.append("3," + " ".join(["0"] * 2303) + ",Training")
    lines.append("9," + " ".join(["0"] * 2304) + ",Training")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(FerKerasError, match=r"line 23: 2303 pixel values, expected a square image .*\(and 1 more\): bad CSV row"):
        load_dataset(path, 48)
    splits = load_dataset(path, 48, skip_bad=True)
    assert len(splits["train"]) == 7
    assert "skipped 2 bad CSV row(s)" in caplog.text and "line 24: emotion 9" in caplog.text


def test_csv_missing_column(tmp_path):
    path = tmp_path / "fer2013.csv"
    path.write_text("emotion,pixels\n0,1 2 3 4\n")
    with pytest.raises(FerKerasError, match="missing column"):
        load_dataset(path, 48)


def test_odd_sizes_are_resized(tmp_path):
    root = make_folder_dataset(tmp_path, per_class=2)
    cv2.imwrite(str(root / "train" / "happy" / "big.png"), np.full((100, 80), 200, np.uint8))
    cv2.imwrite(str(root / "train" / "happy" / "colour.png"), np.full((30, 30, 3), 50, np.uint8))
    train = load_dataset(root, 48)["train"]
    assert train.images.shape[1:] == (48, 48)
    assert len(train) == 16


def test_stratified_split_rejects_bad_fraction(folder_data):
    train = load_split(folder_data, "train", 48)
    with pytest.raises(FerKerasError, match="val fraction"):
        stratified_split(train, 1.5, 0)
