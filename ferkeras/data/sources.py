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

import numpy as np

from ferkeras.errors import FerKerasError
from ferkeras.images import IMAGE_SUFFIXES, is_image_file, read_face, resize_face
from ferkeras.labels import CLASS_NAMES, CSV_CODE_TO_INDEX, CSV_USAGE_TO_SPLIT, NUM_CLASSES, class_index

log = logging.getLogger(__name__)

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

    def subset(self, index: np.ndarray, name: str | None = None) -> Split:
        return Split(name or self.name, self.images[index], self.labels[index], [self.origins[i] for i in index])


def _report_bad(bad: list[str], what: str, skip_bad: bool, hint: str) -> None:
    """Raise on the first bad item (naming it), or with ``skip_bad`` warn with the count and the first few."""
    if not bad:
        return
    if not skip_bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise FerKerasError(f"{bad[0]}{more}: {what}; {hint}, or pass --skip-bad to skip them")
    log.warning("skipped %d %s: %s%s", len(bad), what, "; ".join(bad[:3]), " ..." if len(bad) > 3 else "")


def _warn_skipped(skipped: list[Path], split_dir: Path) -> None:
    if skipped:
        kinds = sorted({p.suffix.lower() or "(no suffix)" for p in skipped})
        log.warning(
            "%s: skipped %d file(s) that are not images (%s; ferkeras reads %s): %s%s",
            split_dir,
            len(skipped),
            ", ".join(kinds),
            ", ".join(IMAGE_SUFFIXES),
            ", ".join(p.name for p in skipped[:3]),
            " ..." if len(skipped) > 3 else "",
        )


def _warn_empty_classes(split: Split, source: str) -> None:
    absent = [name for name, count in zip(CLASS_NAMES, split.class_counts()) if count == 0]
    if absent:
        log.warning(
            "%s: split %r has no faces of %s; metrics skip absent classes, and a model trained without them cannot predict them",
            source,
            split.name,
            ", ".join(absent),
        )


def _load_folder_split(split_dir: Path, image_size: int, skip_bad: bool) -> Split:
    paths: list[str] = []
    labels: list[int] = []
    skipped: list[Path] = []
    for entry in sorted(split_dir.iterdir()):
        if not entry.is_dir():
            continue
        try:
            label = class_index(entry.name)
        except ValueError:
            raise FerKerasError(
                f"unknown class folder {entry}; expected folders named {', '.join(CLASS_NAMES)} (rename or move it)"
            ) from None
        for file in sorted(entry.iterdir()):
            if file.is_dir() or file.name.startswith("."):
                continue
            if is_image_file(file):
                paths.append(str(file))
                labels.append(label)
            else:
                skipped.append(file)
    _warn_skipped(skipped, split_dir)
    if not paths:
        raise FerKerasError(f"split {split_dir} has no images; expected {split_dir}/<class>/*{'|'.join(IMAGE_SUFFIXES)}")
    workers = min(8, (os.cpu_count() or 1) * 2)
    with ThreadPoolExecutor(workers) as pool:
        # each face is resized as soon as it is decoded: memory grows with the
        # number of faces, not with the size of the photos they came from
        decoded = list(pool.map(lambda p: read_face(p, image_size), paths, chunksize=64))
    bad = [f"{p} ({problem})" for p, (img, problem) in zip(paths, decoded) if img is None]
    _report_bad(bad, "unreadable or corrupt image(s)", skip_bad, "replace or delete them")
    keep = [i for i, (img, _) in enumerate(decoded) if img is not None]
    if not keep:
        raise FerKerasError(f"split {split_dir} has no readable images")
    split = Split(
        split_dir.name, np.stack([decoded[i][0] for i in keep]), np.asarray(labels, np.int32)[keep], [paths[i] for i in keep]
    )
    _warn_empty_classes(split, str(split_dir))
    return split


def _load_csv(path: Path, image_size: int, skip_bad: bool) -> dict[str, Split]:
    rows: dict[str, tuple[list, list, list]] = {s: ([], [], []) for s in SPLITS}
    bad: list[str] = []
    # utf-8-sig: spreadsheet programs start CSV files with a byte-order mark
    with open(path, newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames:
            reader.fieldnames = [name.strip() for name in reader.fieldnames]
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
        if missing:
            found = ",".join(reader.fieldnames or []) or "nothing"
            raise FerKerasError(
                f"{path}: missing column(s) {', '.join(sorted(missing))}; expected emotion,pixels,Usage, found {found[:200]}"
            )
        for number, row in enumerate(reader, start=2):  # line 1 is the header
            where = f"{path} line {number}"
            try:
                code = int(row["emotion"])
                pixels = np.asarray(row["pixels"].split(), dtype=np.float64)
                usage = row["Usage"].strip()
            except (ValueError, AttributeError, TypeError):
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
            elif not np.isfinite(pixels).all() or (pixels != np.round(pixels)).any():
                problem = "pixel values must be whole numbers 0..255 (found NaN, infinite or fractional values)"
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
    _report_bad(bad, "bad CSV row(s)", skip_bad, "fix them")
    splits = {
        name: Split(name, np.stack(images), np.asarray(labels, np.int32), origins)
        for name, (images, labels, origins) in rows.items()
        if labels
    }
    for split in splits.values():
        _warn_empty_classes(split, str(path))
    return splits


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
    if not val_index:
        raise FerKerasError(
            f"{len(split)} training face(s) are too few to hold out a validation split "
            "(each class needs two or more); add a val split"
        )
    val_mask = np.zeros(len(split), bool)
    val_mask[val_index] = True
    return (split.subset(np.flatnonzero(~val_mask), "train"), split.subset(np.flatnonzero(val_mask), "val"))


def _locate(root: str | Path) -> tuple[Path, Path | None]:
    root = Path(root)
    if not root.exists():
        raise FerKerasError(f"data path not found: {root}")
    return root, _csv_path(root)


def load_split(
    root: str | Path, split: str, image_size: int, skip_bad: bool = False, val_fraction: float = 0.1, seed: int = 1337
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
                f"{csv_path} has no {split!r} rows (Usage {[k for k, v in CSV_USAGE_TO_SPLIT.items() if v == split][0]})"
            )
        return splits[split]
    split_dir = root / split
    if split == "val" and not split_dir.is_dir() and (root / "train").is_dir():
        return stratified_split(_load_folder_split(root / "train", image_size, skip_bad), val_fraction, seed)[1]
    if not split_dir.is_dir():
        present = [s for s in SPLITS if (root / s).is_dir()]
        raise FerKerasError(f"split {split!r} not found: no folder {split_dir} (found: {', '.join(present) or 'none'})")
    return _load_folder_split(split_dir, image_size, skip_bad)


def load_dataset(
    root: str | Path, image_size: int, val_fraction: float = 0.1, seed: int = 1337, skip_bad: bool = False
) -> dict[str, Split]:
    """Load ``train`` and ``val`` (and ``test`` if present).

    Without a ``val`` split, a stratified, seeded ``val_fraction`` of ``train``
    becomes ``val``.
    """
    root, csv_path = _locate(root)
    if csv_path is not None:
        splits = _load_csv(csv_path, image_size, skip_bad)
    else:
        splits = {name: _load_folder_split(root / name, image_size, skip_bad) for name in SPLITS if (root / name).is_dir()}
    if "train" not in splits:
        raise FerKerasError(f"no training data in {root}: expected {root}/train/<class>/ or a fer2013.csv with Training rows")
    if "val" not in splits:
        splits["train"], splits["val"] = stratified_split(splits["train"], val_fraction, seed)
    return splits
