"""Atomic file writes: write to a temporary file beside the target, then rename over it, so an
interrupted write never leaves a partial file where a good one was."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text"]


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Context manager yielding a temporary path in the target's directory; on success it is
    renamed to ``path`` (atomic on POSIX), on any exception it is removed and the target untouched.

    Args:
        path: the final file path (its directory is created).
        suffix: suffix of the temporary name (some writers pick the format from it).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
