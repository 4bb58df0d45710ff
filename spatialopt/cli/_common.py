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


def one_line_errors(prog: str) -> Callable:
    """Decorator: a :class:`SpatialoptError` (or a missing mandatory config value) becomes one
    line on stderr and exit status 2. ``HYDRA_FULL_ERROR=1`` re-raises for the full traceback."""

    def wrap(func: Callable) -> Callable:
        @functools.wraps(func)
        def inner(*args, **kwargs):
            from omegaconf.errors import MissingMandatoryValue

            try:
                return func(*args, **kwargs)
            except (SpatialoptError, MissingMandatoryValue) as exc:
                if os.environ.get("HYDRA_FULL_ERROR") == "1":
                    raise
                print(f"{prog}: error: {exc}", file=sys.stderr)
                raise SystemExit(2) from None

        return inner

    return wrap
