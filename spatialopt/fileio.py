"""Atomic file writes: write to a temporary file beside the target, then rename over it, so an
interrupted write never leaves a partial file where a good one was.

Temporaries are hidden siblings of the target (``.NAME-xxxx.ext`` files, ``.NAME.tmp-xxxx``
directories); a process killed mid-write (SIGKILL, power loss) may leave one behind, never a
partial file at the target. Readers look only at the final names, so a leftover is ignored (and
can be deleted).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_text", "make_directory", "os_error_reason", "sound_file_errors",
           "swap_directory_into_place"]


@contextlib.contextmanager
def atomic_path(path, suffix: str = ""):
    """Context manager yielding a temporary path in the target's directory; on success it is
    renamed to ``path`` (atomic on POSIX), on any exception it is removed and the target untouched.
    An :class:`OSError` that names no file (a failed write: disk full, file too large) or names
    the temporary (it cannot be created) is given ``path`` as its file name.

    Args:
        path: the final file path (its directory is created).
        suffix: suffix of the temporary name (some writers pick the format from it).
    """
    path = Path(path)
    make_directory(path.parent)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=suffix)
    except OSError as exc:  # name the file the caller asked for, not the temporary's random name
        raise OSError(exc.errno, exc.strerror, str(path)) if exc.strerror else exc from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        if exc.filename is None and exc.strerror:  # a failed write() (disk full, file too large) names no file
            exc.filename = str(path)
        raise
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def make_directory(directory) -> None:
    """``mkdir -p``; an existing file in its place is a :class:`NotADirectoryError` naming it
    (``Path.mkdir(exist_ok=True)`` says "File exists" then)."""
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(directory)) from None


def atomic_write_text(path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def os_error_reason(exc: BaseException) -> str:
    """The system's reason for a failed file operation, on one line: ``strerror`` of an
    :class:`OSError` (e.g. "No space left on device"), else the exception's text."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


@contextlib.contextmanager
def sound_file_errors(path):
    """Turn a libsndfile error raised while writing ``path`` (``soundfile`` raises a
    ``LibsndfileError`` "System error." for a full disk or an unwritable directory) into an
    :class:`OSError` with the system's errno and reason, naming ``path``."""
    import soundfile as sf

    try:
        yield
    except sf.SoundFileError as exc:
        code = getattr(exc, "code", None)
        err = sf._ffi.errno if code == 2 else 0  # SFE_SYSTEM: errno of the failed system call
        if err:
            raise OSError(err, os.strerror(err), str(path)) from exc
        raise OSError(errno.EIO, f"libsndfile: {os_error_reason(exc)}", str(path)) from exc


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Atomically exchange the names ``a`` and ``b`` (Linux ``renameat2(RENAME_EXCHANGE)``).
    Returns False where the system or the file system does not support it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        func = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc < 2.28, musl
        return False
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    func.restype = ctypes.c_int
    if func(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def swap_directory_into_place(new: Path, target: Path) -> None:
    """Rename the complete directory ``new`` to ``target``, so ``target`` always names either the
    complete old or the complete new directory, even if the process is killed in between.

    An existing ``target`` is exchanged with ``new`` in one atomic step (Linux
    ``renameat2(RENAME_EXCHANGE)``) and the old directory, now at ``new``'s hidden name, deleted.
    Where that is not supported, ``target`` is moved aside first (restored if the rename fails)
    and deleted after: a kill between the two renames leaves the old directory at a hidden
    ``.NAME.old-xxxx`` sibling. A symlinked ``target`` loses only the link."""
    if not os.path.lexists(target):
        os.rename(new, target)
        return
    if _exchange(new, target):
        if os.path.islink(new):
            os.unlink(new)
        else:
            shutil.rmtree(new, ignore_errors=True)
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
