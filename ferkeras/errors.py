"""Errors that the command line prints as one readable line."""

from __future__ import annotations


class FerKerasError(Exception):
    """A problem with the user's input (file, option, data) that they can fix.

    The CLI prints ``str(error)`` as one ``Error: ...`` line and exits with
    status 1 instead of showing a traceback (``ferkeras --debug`` shows it).
    """


def describe_os_error(exc: OSError) -> str:
    """One line for an OS error: the file(s) involved and the system's reason."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    files = [str(f) for f in (exc.filename, getattr(exc, "filename2", None)) if f]
    return f"{' -> '.join(files)}: {reason}" if files else reason
