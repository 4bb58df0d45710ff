"""Shared plumbing of the Hydra entry points: config → plain dict, one-line errors, output paths."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path
from typing import Any, Callable

from spatialopt.errors import SpatialoptError

CONF_DIR = str(Path(__file__).resolve().parents[2] / "conf")


def to_plain(cfg) -> dict[str, Any]:
    """Resolved Hydra ``DictConfig`` → plain dict (library code never sees a DictConfig)."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)


def run_dir() -> Path:
    """The Hydra run directory of the current job (created by Hydra)."""
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def output_path(path: str) -> Path:
    """A user-given output path: absolute as is, relative to the run directory otherwise."""
    p = Path(os.path.expanduser(path))
    return p if p.is_absolute() else run_dir() / p


def os_error_line(exc: OSError) -> str:
    """A file-system error on one line, ``PATH: REASON``, e.g.
    ``/run/metrics.json: No space left on device``."""
    if exc.strerror and exc.filename is not None:
        names = " -> ".join(os.fsdecode(f) for f in (exc.filename, exc.filename2) if f is not None)
        return f"{names}: {exc.strerror}"
    return " ".join(str(exc).split()) or type(exc).__name__


_THREAD_PROG = ["spatialopt"]  # the program named by the writer-thread hook (the latest one_line_errors call)


def _quiet_writer_threads(prog: str) -> None:
    """Install (once per process) a ``threading.excepthook`` that reports a file-system error of
    a TensorBoard writer thread (a full disk) on one line instead of a traceback; the writer
    raises it again in the main thread at its next write, which then ends the run with one error
    line. Other threads' exceptions go to the previous hook."""
    import threading

    _THREAD_PROG[0] = prog
    previous = threading.excepthook
    if getattr(previous, "_spatialopt", False):
        return

    def hook(args):
        if isinstance(args.exc_value, OSError) and type(args.thread).__name__ == "_AsyncWriterThread":
            print(f"{_THREAD_PROG[0]}: warning: TensorBoard writer: {os_error_line(args.exc_value)}", file=sys.stderr)
        else:
            previous(args)

    hook._spatialopt = True
    threading.excepthook = hook


def config_error_line(exc: Exception) -> str:
    """A SpatialoptError as its message; an OmegaConf error (a ``???`` value left unset, an
    unresolvable interpolation) as one line ``key=???: is required …`` / ``key: reason``."""
    from omegaconf.errors import MissingMandatoryValue

    if isinstance(exc, SpatialoptError):
        return " ".join(str(exc).splitlines())
    key = getattr(exc, "full_key", None) or getattr(exc, "key", None) or "config"
    if isinstance(exc, MissingMandatoryValue):
        return f"{key}=???: is required (set it on the command line: {key}=VALUE)"
    return f"{key}: {(str(exc).splitlines() or [type(exc).__name__])[0].strip()}"


def one_line_errors(prog: str) -> Callable:
    """Decorator: a :class:`SpatialoptError` (or a missing mandatory config value), or an
    :class:`OSError` (a full disk, an unwritable directory) becomes one line on stderr and exit
    status 2. ``HYDRA_FULL_ERROR=1`` re-raises for the full traceback."""

    def wrap(func: Callable) -> Callable:
        @functools.wraps(func)
        def inner(*args, **kwargs):
            from omegaconf.errors import OmegaConfBaseException

            full = os.environ.get("HYDRA_FULL_ERROR") == "1"
            if not full:
                _quiet_writer_threads(prog)
            try:
                return func(*args, **kwargs)
            except (SpatialoptError, OmegaConfBaseException) as exc:
                if full:
                    raise
                print(f"{prog}: error: {config_error_line(exc)}", file=sys.stderr)
                raise SystemExit(2) from None
            except OSError as exc:
                if full:
                    raise
                print(f"{prog}: error: {os_error_line(exc)}", file=sys.stderr)
                raise SystemExit(2) from None

        return inner

    return wrap
