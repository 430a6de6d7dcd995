"""FER2013 in its two published forms: class folders and ``fer2013.csv``.

Images are decoded, checked and resized once, at load time, into one uint8
array per split. A bad file is therefore reported before training starts (one
line naming it) instead of crashing the pipeline in the middle of an epoch.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ferkeras.errors import FerKerasError
from ferkeras.labels import CLASS_NAMES, CSV_CODE_TO_INDEX, CSV_USAGE_TO_SPLIT, NUM_CLASSES

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
SPLITS = ("train", "val", "test")


@dataclass
class Split:
    """One split of faces: ``images`` uint8 (N, S, S), ``labels`` int32 (N,)."""

    name: str
    images: np.ndarray
    labels: np.ndarray
    origins: list[str]  # file path or "fer2013.csv row N", for error reports

    def __len__(self) -> int:
        return len(self.labels)

    def class_counts(self) -> np.ndarray:
        """Number of faces per class, in :data:`CLASS_NAMES` order."""
        return np.bincount(self.labels, minlength=NUM_CLASSES)

    def checksum(self) -> str:
        """SHA-256 of the decoded pixels and labels: identifies the data a model saw."""
        digest = hashlib.sha256(self.images.tobytes())
        digest.update(self.labels.astype(np.int32).tobytes())
        return digest.hexdigest()

    def subset(self, index: np.ndarray, name: str | None = None) -> "Split":
        return Split(
            name or self.name,
            self.images[index],
            self.labels[index],
            [self.origins[i] for i in index],
        )


def resize_face(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a grayscale face to ``size`` x ``size`` (area when shrinking, linear otherwise)."""
    if image.shape[:2] == (size, size):
        return image
    interpolation = cv2.INTER_AREA if min(image.shape[:2]) > size else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def _decode(path: str) -> np.ndarray | None:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError:
        return None
    if data.size == 0:
        return None
    return cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)


def _report_bad(bad: list[str], what: str, skip_bad: bool, hint: str) -> None:
    if not bad:
        return
    if not skip_bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise FerKerasError(f"{bad[0]}{more}: {what}; {hint}, or pass --skip-bad to skip such files")
    log.warning("skipped %d %s, first: %s", len(bad), what, bad[0])


def _load_folder_split(split_dir: Path, image_size: int, skip_bad: bool) -> Split:
    paths: list[str] = []
    labels: list[int] = []
    for entry in sorted(split_dir.iterdir()):
        if not entry.is_dir():
            continue
        name = entry.name.lower()
        if name not in CLASS_NAMES:
            raise FerKerasError(
                f"unknown class folder {entry}; expected folders named {', '.join(CLASS_NAMES)}"
                " (rename or move it)"
            )
        label = CLASS_NAMES.index(name)
        for file in sorted(entry.iterdir()):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                paths.append(str(file))
                labels.append(label)
    if not paths:
        raise FerKerasError(
            f"split {split_dir} has no images; expected {split_dir}/<class>/*.png|jpg"
        )
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        decoded = list(pool.map(_decode, paths, chunksize=256))
    bad = [p for p, img in zip(paths, decoded) if img is None]
    _report_bad(bad, "unreadable or corrupt image", skip_bad, "replace or delete it")
    keep = [i for i, img in enumerate(decoded) if img is not None]
    if not keep:
        raise FerKerasError(f"split {split_dir} has no readable images")
    images = np.stack([resize_face(decoded[i], image_size) for i in keep])
    return Split(
        split_dir.name,
        images,
        np.asarray(labels, np.int32)[keep],
        [paths[i] for i in keep],
    )


def _load_csv(path: Path, image_size: int, skip_bad: bool) -> dict[str, Split]:
    rows: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in SPLITS}
    bad: list[str] = []
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
        if missing:
            raise FerKerasError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; expected emotion,pixels,Usage"
            )
        for number, row in enumerate(reader, start=2):  # line 1 is the header
            where = f"{path} line {number}"
            try:
                code = int(row["emotion"])
                pixels = np.asarray(row["pixels"].split(), dtype=np.float32)
                usage = row["Usage"].strip()
            except (ValueError, AttributeError):
                bad.append(f"{where}: unparsable emotion or pixels")
                continue
            side = math.isqrt(pixels.size)
            problem = None
            if code not in CSV_CODE_TO_INDEX:
                problem = f"emotion {code} is not 0..6"
            elif side * side != pixels.size or side == 0:
                problem = f"{pixels.size} pixel values, expected a square image such as 2304 (48x48)"
            elif usage not in CSV_USAGE_TO_SPLIT:
                problem = f"Usage {usage!r} is not one of {', '.join(CSV_USAGE_TO_SPLIT)}"
            elif pixels.min() < 0 or pixels.max() > 255:
                problem = "pixel values outside 0..255"
            if problem:
                bad.append(f"{where}: {problem}")
                continue
            image = resize_face(pixels.reshape(side, side).astype(np.uint8), image_size)
            images, labels, origins = rows[CSV_USAGE_TO_SPLIT[usage]]
            images.append(image)
            labels.append(CSV_CODE_TO_INDEX[code])
            origins.append(where)
    if bad:
        if not skip_bad:
            more = f" (and {len(bad) - 1} more bad rows)" if len(bad) > 1 else ""
            raise FerKerasError(f"{bad[0]}{more}; fix the row or pass --skip-bad")
        log.warning("skipped %d bad CSV rows, first: %s", len(bad), bad[0])
    return {
        name: Split(name, np.stack(images), np.asarray(labels, np.int32), origins)
        for name, (images, labels, origins) in rows.items()
        if labels
    }


def _csv_path(root: Path) -> Path | None:
    if root.is_file() and root.suffix.lower() == ".csv":
        return root
    candidate = root / "fer2013.csv"
    if root.is_dir() and not (root / "train").is_dir() and candidate.is_file():
        return candidate
    return None


def stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split off ``fraction`` of each class (seeded) as a validation split."""
    if not 0.0 < fraction < 1.0:
        raise FerKerasError(f"val fraction must be between 0 and 1, got {fraction}")
    rng = np.random.default_rng(seed)
    val_index = []
    for label in range(NUM_CLASSES):
        members = np.flatnonzero(split.labels == label)
        take = int(round(len(members) * fraction))
        if len(members) > 1:
            take = min(max(take, 1), len(members) - 1)
        else:
            take = 0
        val_index.extend(rng.choice(members, take, replace=False).tolist())
    val_mask = np.zeros(len(split), bool)
    val_mask[val_index] = True
    return (
        split.subset(np.flatnonzero(~val_mask), "train"),
        split.subset(np.flatnonzero(val_mask), "val"),
    )


def _locate(root: str | Path) -> tuple[Path, Path | None]:
    root = Path(root)
    if not root.exists():
        raise FerKerasError(f"data path not found: {root}")
    return root, _csv_path(root)


def load_split(
    root: str | Path,
    split: str,
    image_size: int,
    skip_bad: bool = False,
    val_fraction: float = 0.1,
    seed: int = 1337,
) -> Split:
    """Load one split (``train``, ``val`` or ``test``) from folders or ``fer2013.csv``.

    Asking for ``val`` where there is none gives the same stratified part of
    ``train`` that training held out (same ``val_fraction`` and ``seed``).
    """
    root, csv_path = _locate(root)
    if csv_path is not None:
        splits = _load_csv(csv_path, image_size, skip_bad)
        if split == "val" and "val" not in splits and "train" in splits:
            return stratified_split(splits["train"], val_fraction, seed)[1]
        if split not in splits:
            raise FerKerasError(
                f"{csv_path} has no {split!r} rows (Usage "
                f"{[k for k, v in CSV_USAGE_TO_SPLIT.items() if v == split][0]})"
            )
        return splits[split]
    split_dir = root / split
    if split == "val" and not split_dir.is_dir() and (root / "train").is_dir():
        return stratified_split(_load_folder_split(root / "train", image_size, skip_bad), val_fraction, seed)[1]
    if not split_dir.is_dir():
        present = [s for s in SPLITS if (root / s).is_dir()]
        raise FerKerasError(
            f"split {split!r} not found: no folder {split_dir}"
            f" (found: {', '.join(present) or 'none'})"
        )
    return _load_folder_split(split_dir, image_size, skip_bad)


def load_dataset(
    root: str | Path,
    image_size: int,
    val_fraction: float = 0.1,
    seed: int = 1337,
    skip_bad: bool = False,
) -> dict[str, Split]:
    """Load ``train`` and ``val`` (and ``test`` if present).

    Without a ``val`` split, a stratified, seeded ``val_fraction`` of ``train``
    becomes ``val``.
    """
    root, csv_path = _locate(root)
    if csv_path is not None:
        splits = _load_csv(csv_path, image_size, skip_bad)
    else:
        splits = {
            name: _load_folder_split(root / name, image_size, skip_bad)
            for name in SPLITS
            if (root / name).is_dir()
        }
    if "train" not in splits:
        raise FerKerasError(
            f"no training data in {root}: expected {root}/train/<class>/ or a fer2013.csv with Training rows"
        )
    if "val" not in splits:
        splits["train"], splits["val"] = stratified_split(splits["train"], val_fraction, seed)
    return splits
