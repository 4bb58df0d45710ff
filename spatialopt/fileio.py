"""Atomic file writes: write to a temporary file beside the target, then rename over it, so an
interrupted write never leaves a partial file where a good one was."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "swap_directory_into_place"]


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


def swap_directory_into_place(new: Path, target: Path) -> None:
    """Rename the complete directory ``new`` to ``target``; an existing ``target`` is moved aside
    first (and restored if the rename fails) and deleted after, so ``target`` always names either
    the complete old or the complete new directory. A symlinked ``target`` loses only the link."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:12]}"
    os.rename(target, old)
    try:
        os.rename(new, target)
    except BaseException:
        os.rename(old, target)
        raise
    if os.path.islink(old):
        os.unlink(old)
    else:
        shutil.rmtree(old, ignore_errors=True)
