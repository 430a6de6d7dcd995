"""What ``ferkeras analyze SOURCES...`` means: video files, folders (searched recursively) and manifests."""

from __future__ import annotations

import csv
from pathlib import Path

from ferkeras.errors import FerKerasError

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".ts", ".3gp")
MANIFEST_SUFFIXES = (".txt", ".csv")


def _manifest(path: Path) -> list[Path]:
    """Paths from a text file (one per line, ``#`` comments) or a CSV (its ``path`` column, else its first).

    Relative paths are relative to the manifest's folder.
    """
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise FerKerasError(f"manifest {path} is not UTF-8 text") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.reader(text.splitlines()))
        if not rows:
            return []
        header = [cell.strip().lower() for cell in rows[0]]
        column = header.index("path") if "path" in header else 0
        cells = [row[column].strip() for row in rows[1 if "path" in header else 0 :] if len(row) > column]
    else:
        cells = [line.strip() for line in text.splitlines()]
    entries = [Path(cell).expanduser() for cell in cells if cell and not cell.startswith("#")]
    return [entry if entry.is_absolute() else path.parent / entry for entry in entries]


def expand_sources(sources) -> list[Path]:
    """Every video named by ``sources``, in order, each once; a missing path is one error naming it."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    found: list[Path] = []
    for source in sources:
        path = Path(source).expanduser()
        if path.is_dir():
            found += sorted(
                p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES and not p.name.startswith(".")
            )
        elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            listed = _manifest(path)
            missing = [str(p) for p in listed if not p.exists()]
            if missing:
                raise FerKerasError(f"manifest {path} lists {len(missing)} missing file(s), first: {missing[0]}")
            found += expand_sources(listed) if listed else []
        elif path.is_file():
            found.append(path)
        else:
            raise FerKerasError(f"source not found: {source} (a video file, a folder of videos, or a .txt/.csv list of paths)")
    unique = list(dict.fromkeys(p.resolve() for p in found))
    if not unique:
        raise FerKerasError(f"no videos ({', '.join(VIDEO_SUFFIXES)}) found in {', '.join(map(str, sources))}")
    return unique
