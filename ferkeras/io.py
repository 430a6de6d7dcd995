"""Writing files safely: atomic renames, the user's umask, valid JSON, staged outputs.

Every file ferkeras writes goes through here, so three promises hold everywhere:
a reader never sees a half-written file under its final name, written files get
the permissions the user's umask gives (not ``mkstemp``'s private 0600), and JSON
is strict JSON (``NaN`` and infinities become ``null``).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

#: Temporary files carry this marker before their real suffix (Keras and OpenCV
#: pick the format from the suffix), so leftovers of a killed write can be found.
TEMP_MARKER = ".tmp"


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: set and restore (not thread-safe, but brief)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode a plain ``open(path, "w")`` would give a new file (0644 with umask 022)."""
    return 0o666 & ~current_umask()


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in 4 MB blocks (videos and models can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


@contextmanager
def atomic_path(path: str | Path, suffix: str | None = None):
    """Yield a temporary path beside ``path``; rename it over ``path`` on success.

    The temporary name is ``.STEM.XXXX.tmp.SUFFIX``: it keeps ``path``'s suffix (or
    ``suffix``) because writers such as Keras and OpenCV pick the format from it, and
    :func:`remove_stale_temps` recognises it after a ``kill -9``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=TEMP_MARKER + (suffix or "".join(path.suffixes)))
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def ensure_writable(folder: str | Path, what: str = "output folder") -> Path:
    """Create ``folder`` if needed and prove a file can be written there, before any long work.

    A read-only, full or missing location is a one-line :class:`FerKerasError` naming it.
    """
    from ferkeras.errors import FerKerasError, describe_os_error

    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=TEMP_MARKER)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise FerKerasError(f"cannot write to the {what} {folder}: {describe_os_error(exc)}") from None
    return folder


def remove_stale_temps(folder: str | Path) -> list[Path]:
    """Delete temporary files that an interrupted :func:`atomic_path` left in ``folder``.

    Call it only where no other process is writing (e.g. when a run resumes).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    stale = [p for p in folder.glob(f".*.*{TEMP_MARKER}*") if p.is_file()]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def strict_json(obj):
    """``obj`` with NaN/inf floats as None and numpy scalars/arrays as Python values."""
    if isinstance(obj, dict):
        return {str(k): strict_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict_json(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def dumps(obj, indent: int | None = 2) -> str:
    """Strict JSON text for ``obj`` (see :func:`strict_json`)."""
    return json.dumps(strict_json(obj), indent=indent, allow_nan=False)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | Path, obj) -> None:
    """Write ``obj`` as indented strict JSON to ``path`` atomically."""
    atomic_write_text(path, dumps(obj) + "\n")


def read_json(path: str | Path, what: str = "file", hint: str = ""):
    """Parse a JSON file; a missing or truncated one is a one-line :class:`FerKerasError` (ending in ``hint``)."""
    from ferkeras.errors import FerKerasError

    path = Path(path)
    hint = f"; {hint}" if hint else ""
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise FerKerasError(f"{what} not found: {path}{hint}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise FerKerasError(f"{path} is not valid JSON ({exc}): the {what} is truncated or damaged{hint}") from None


class StagedOutputs:
    """Output files written under temporary names and published together at the end.

    ``path = outputs.stage(target)`` returns where to write ``target``.
    :meth:`publish` renames every staged file onto its target; :meth:`keep_partial`
    (after a failure) renames each to ``NAME.partial.SUFFIX`` instead, so an
    incomplete file never sits under the name of a complete one. Either returns the
    paths it wrote; files that were never created are not reported.
    """

    def __init__(self):
        self.staged: list[tuple[Path, Path]] = []  # (temporary path, target)

    def stage(self, target: str | Path) -> Path:
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{target.stem}{TEMP_MARKER}{target.suffix}")
        self.staged.append((temp, target))
        return temp

    @staticmethod
    def partial_name(target: Path) -> Path:
        return target.with_name(f"{target.stem}.partial{target.suffix}")

    def _move(self, partial: bool) -> list[Path]:
        written = []
        for temp, target in self.staged:
            if temp.exists():
                final = self.partial_name(target) if partial else target
                os.replace(temp, final)
                written.append(final)
        self.staged.clear()
        return written

    def discard(self) -> None:
        """Delete every staged file (nothing worth keeping was written)."""
        for temp, _ in self.staged:
            temp.unlink(missing_ok=True)
        self.staged.clear()

    def publish(self) -> list[Path]:
        """Rename every staged file onto its target."""
        return self._move(partial=False)

    def keep_partial(self) -> list[Path]:
        """Rename every staged file to ``NAME.partial.SUFFIX``."""
        return self._move(partial=True)
