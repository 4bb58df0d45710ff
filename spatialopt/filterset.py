"""The exported filter set (DESIGN.md §6): a directory holding ``manifest.json`` + ``filters.safetensors``.

Layout of a filter set directory::

    <dir>/filters.safetensors   float32 tensors (safetensors; no pickle anywhere, ever)
        fir          (3, D, T)      composite taps, channels (L, R, C) — what renderers apply
        ctc          (2, D, T_ctc)  CTC stage: C_l, C_r per driver
        virtualizer  (2, T_v)       virtualizer stage: A (ipsilateral), X (contralateral)
        beam         (D, T_beam)    centre beamformer
    <dir>/manifest.json         UTF-8 JSON object (strict JSON: no NaN/Infinity)
        format_version   1
        sample_rate      Hz (positive finite number)
        n_taps           T
        channel_names    ["L", "R", "C"]
        driver_names     D strings (unique, non-empty)
        driver_positions (D, 3) metres, or null
        latency_samples  the design's modelling delay, samples (int >= 0)
        delays           {"lr_delay": int, "c_delay": int} whole-sample alignment delays (0..n_taps)
        upmix            LRC upmix parameters, e.g. {"centre_gain": 0.7071} (flat: name → JSON scalar)
        tensors          {name: shape} of every tensor in filters.safetensors
        files            {"tensors": {"name": "filters.safetensors", "bytes": N, "sha256": hex}}
        config           the resolved config that produced the design (JSON object)
        metrics          JSON object or null
        created          ISO-8601 UTC time of the save
        spatialopt_version

The composite equals the composition of the stages (:func:`spatialopt.design.system.compose_fir`);
:meth:`FilterSet.check_composition` verifies it.

Loading (:meth:`FilterSet.load`) validates everything and turns every problem into one
:class:`~spatialopt.errors.DataError` whose message names the file and the problem. The loader only
ever opens ``<dir>/manifest.json`` and ``<dir>/filters.safetensors``: file names in the manifest are
checked (plain names, no separators, no ``..``) but never followed. Sizes claimed by the manifest are
checked against sanity limits before any tensor is read, the tensor file's size is checked against
the sizes the manifest implies before it is read, its SHA-256 is checked on the very bytes that are
then parsed, and the safetensors header is validated (dtype, shapes, offsets) before the bytes are
handed to the safetensors library.

Saving (:meth:`FilterSet.save`) validates first (non-finite values → ``DataError`` before anything is
written), writes the new set into a hidden temporary directory beside the target and then renames it
into place (an existing set is moved aside, the new one renamed in, the old one deleted), so an
interrupted save never leaves a half-written filter set where a good one was.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
import os
import re
import shutil
import struct
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from spatialopt.errors import DataError, SpatialoptError
from spatialopt.fileio import make_directory, swap_directory_into_place

try:
    from numpy import bool_ as np_bool
except ImportError:  # pragma: no cover - numpy is a dependency
    np_bool = bool

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "TENSOR_FILE_NAME",
    "CHANNEL_NAMES",
    "STAGE_NAMES",
    "FilterSet",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
TENSOR_FILE_NAME = "filters.safetensors"
CHANNEL_NAMES = ("L", "R", "C")
STAGE_NAMES = ("ctc", "virtualizer", "beam")
TENSOR_NAMES = ("fir",) + STAGE_NAMES
DELAY_NAMES = ("lr_delay", "c_delay")

# Sanity limits: anything beyond them is a broken or hostile file, not a filter set.
MAX_TAPS = 2**24  # taps of any one filter (~350 s at 48 kHz)
MAX_DRIVERS = 4096
MAX_ELEMENTS = 2**28  # float32 values in all tensors together (1 GiB)
MAX_MANIFEST_BYTES = 64 * 2**20
MAX_HEADER_BYTES = 2**20  # safetensors JSON header (ours is a few hundred bytes)
MAX_SAMPLE_RATE = 10e6  # Hz
MAX_NAME_CHARS = 255


def _fail(where, problem: str) -> DataError:
    return DataError(f"{where}: {problem}")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_int(value) -> bool:
    """An integer (Python or numpy), not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np_bool))


def _is_number(value) -> bool:
    """A real number (Python or numpy), not a bool."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np_bool))


def _safe_file_name(name) -> bool:
    """A plain file name inside the directory: no separators, no ``..``, not absolute, no NUL."""
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_CHARS
        and name not in (".", "..")
        and ".." not in name
        and "/" not in name
        and "\\" not in name
        and "\x00" not in name
        and ":" not in name  # Windows drive letters / alternate data streams
        and not os.path.isabs(name)
    )


def _jsonable(value, key: str):
    """A JSON-ready copy of a config/metrics value (tensors/arrays → lists, non-finite floats → null)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if _is_int(value):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, Tensor):
        return _jsonable(value.detach().cpu().tolist(), key)
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy arrays and scalars
        return _jsonable(value.tolist(), key)
    try:  # OmegaConf containers (the resolved Hydra config)
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(value, (DictConfig, ListConfig)):
            return _jsonable(OmegaConf.to_container(value, resolve=True), key)
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        pass
    raise DataError(f"{key}: value of type {type(value).__name__} cannot be stored in a JSON manifest")


def _reject_constant(name: str):
    raise ValueError(f"non-standard JSON constant {name}")


def _spatialopt_version() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("spatialopt")
    except (ImportError, PackageNotFoundError):  # pragma: no cover - depends on the install
        import spatialopt

        return getattr(spatialopt, "__version__", None)


@dataclass(eq=False)
class FilterSet:
    """A designed filter set: the composite FIR matrix, its stages and its metadata.

    Attributes:
        fir: (3, D, T) float32 composite taps, channels (L, R, C) (``channel_names``) by drivers.
        sample_rate: Hz.
        driver_names: D driver names (unique, non-empty strings).
        latency_samples: the design's modelling delay in samples (the bulk delay of the filters,
            which is what a renderer adds to the signal path).
        stages: ``ctc`` (2, D, T_ctc) (C_l, C_r), ``virtualizer`` (2, T_v) (A, X), ``beam``
            (D, T_beam); float32. ``fir`` is their composition (:meth:`check_composition`).
        delays: ``{"lr_delay": int, "c_delay": int}`` whole-sample alignment delays of the L/R and
            C paths (samples, >= 0).
        channel_names: always ``["L", "R", "C"]``.
        driver_positions: (D, 3) float64 driver positions in metres (scene frame), or None.
        upmix: parameters of the LRC upmix, flat mapping name → JSON scalar, e.g.
            ``{"centre_gain": 0.7071}``.
        config: the resolved config that produced the design (plain JSON-able dict).
        metrics: evaluation metrics (JSON-able dict) or None.
        provenance: read from a saved manifest: ``created`` (ISO time), ``spatialopt_version``;
            empty for a set that was never saved. Not written back (a save records fresh values).
    """

    fir: Tensor
    sample_rate: float
    driver_names: list[str]
    latency_samples: int
    stages: dict[str, Tensor]
    delays: dict[str, int]
    channel_names: list[str] = field(default_factory=lambda: list(CHANNEL_NAMES))
    driver_positions: Tensor | None = None
    upmix: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    provenance: dict[str, Any] = field(default_factory=dict)

    # -----------------------------------------------------------------------------------------
    # Construction helpers and properties
    # -----------------------------------------------------------------------------------------

    @classmethod
    def from_stages(
        cls,
        ctc: Tensor,
        virtualizer: Tensor,
        beam: Tensor,
        lr_delay: int,
        c_delay: int,
        n_taps: int,
        sample_rate: float,
        driver_names: list[str],
        latency_samples: int,
        **kwargs,
    ) -> "FilterSet":
        """Build a filter set whose ``fir`` is the composition of the given stages.

        Args:
            ctc: (2, D, T_ctc). virtualizer: (2, T_v). beam: (D, T_beam). Any float dtype/device;
                stored as float32 on the CPU (detached); the composite is computed in float64 from
                those float32 stages and rounded to float32.
            lr_delay, c_delay: whole-sample alignment delays. n_taps: composite length T.
            sample_rate: Hz. driver_names: D names. latency_samples: modelling delay (samples).
            **kwargs: the remaining fields (``driver_positions``, ``upmix``, ``config``, ``metrics``).
        """
        from spatialopt.design.system import compose_fir

        _check_delays("filter set", {"lr_delay": lr_delay, "c_delay": c_delay}, int(n_taps))
        stages = {
            name: t.detach().to("cpu", torch.float32).contiguous()
            for name, t in (("ctc", ctc), ("virtualizer", virtualizer), ("beam", beam))
        }
        st64 = {name: t.double() for name, t in stages.items()}  # compose in float64, store float32
        fir = compose_fir(st64["ctc"], st64["virtualizer"], st64["beam"], int(lr_delay), int(c_delay), int(n_taps))
        return cls(fir=fir.to(torch.float32).contiguous(), sample_rate=float(sample_rate), driver_names=list(driver_names),
                   latency_samples=int(latency_samples), stages=stages,
                   delays={"lr_delay": int(lr_delay), "c_delay": int(c_delay)}, **kwargs)

    @property
    def n_drivers(self) -> int:
        """D."""
        return int(self.fir.shape[1])

    @property
    def n_taps(self) -> int:
        """T, the composite filter length (samples)."""
        return int(self.fir.shape[2])

    def to_dict(self) -> dict[str, Any]:
        """The metadata as a JSON-ready dict (the manifest less files, hash and provenance)."""
        positions = None
        if self.driver_positions is not None:
            positions = torch.as_tensor(self.driver_positions).detach().to("cpu", torch.float64).tolist()
        return {
            "format_version": FORMAT_VERSION,
            "sample_rate": float(self.sample_rate),
            "n_taps": self.n_taps,
            "channel_names": list(self.channel_names),
            "driver_names": list(self.driver_names),
            "driver_positions": positions,
            "latency_samples": int(self.latency_samples),
            "delays": {k: int(self.delays[k]) for k in DELAY_NAMES},
            "upmix": _jsonable(dict(self.upmix), "upmix"),
            "tensors": {name: list(t.shape) for name, t in self._tensors().items()},
            "config": _jsonable(self.config, "config"),
            "metrics": None if self.metrics is None else _jsonable(self.metrics, "metrics"),
        }

    def _tensors(self) -> dict[str, Tensor]:
        out = {"fir": self.fir}
        out.update({name: self.stages[name] for name in STAGE_NAMES})
        return out

    # -----------------------------------------------------------------------------------------
    # Validation
    # -----------------------------------------------------------------------------------------

    def validate(self, where: str = "filter set") -> None:
        """Check types, shapes, finiteness and metadata; raise :class:`DataError` prefixed by ``where``."""
        if not isinstance(self.fir, Tensor):
            raise _fail(where, f"fir must be a torch tensor, got {type(self.fir).__name__}")
        if not isinstance(self.stages, dict) or set(self.stages) != set(STAGE_NAMES):
            got = sorted(self.stages) if isinstance(self.stages, dict) else type(self.stages).__name__
            raise _fail(where, f"stages must hold exactly {list(STAGE_NAMES)}, got {got}")
        for name, t in self._tensors().items():
            if not isinstance(t, Tensor):
                raise _fail(where, f"{name} must be a torch tensor, got {type(t).__name__}")
            if not (t.dtype.is_floating_point and not t.dtype.is_complex):
                raise _fail(where, f"{name} has dtype {t.dtype}, expected a real floating-point tensor")
        meta = self._raw_metadata(where)
        if not isinstance(self.driver_names, (list, tuple)):
            _check_metadata(where, meta)  # names the driver_names problem
        _check_shapes(where, {n: list(t.shape) for n, t in self._tensors().items()}, len(self.driver_names))
        for name, t in self._tensors().items():
            if not bool(torch.isfinite(t.detach().to(torch.float32)).all()):
                raise _fail(where, f"{name} contains NaN or Inf (or values beyond float32 range)")
        _check_metadata(where, meta)
        _check_delays(where, self.delays, self.n_taps)

    def _raw_metadata(self, where) -> dict[str, Any]:
        """Metadata fields as they are (positions as nested lists), for validation."""
        positions = self.driver_positions
        if positions is not None:
            try:
                positions = torch.as_tensor(positions, dtype=torch.float64).detach().cpu().tolist()
            except (TypeError, ValueError, RuntimeError) as exc:
                raise _fail(where, f"driver_positions is not a (D, 3) array of numbers ({_one_line(exc)})") from None
        return {
            "sample_rate": self.sample_rate,
            "channel_names": self.channel_names,
            "driver_names": self.driver_names,
            "driver_positions": positions,
            "latency_samples": self.latency_samples,
            "delays": self.delays,
            "upmix": self.upmix,
            "config": self.config,
            "metrics": self.metrics,
        }

    def check_composition(self, atol: float = 1e-6, rtol: float = 1e-5) -> float:
        """Check that ``fir`` equals the composition of the stages.

        Recomputes ``compose_fir(ctc, virtualizer, beam, lr_delay, c_delay, T)`` in float64 and
        compares it with ``fir``.

        Args:
            atol: absolute tolerance (tap units). rtol: tolerance relative to the composite's peak
                magnitude (FFT-based float32 composition has errors that scale with the signal).

        Returns:
            the largest absolute difference.

        Raises:
            DataError: the difference exceeds ``atol + rtol · max|composed|``.
        """
        from spatialopt.design.system import compose_fir

        st = {k: v.detach().to("cpu", torch.float64) for k, v in self.stages.items()}
        composed = compose_fir(st["ctc"], st["virtualizer"], st["beam"], int(self.delays["lr_delay"]),
                               int(self.delays["c_delay"]), self.n_taps)
        fir = self.fir.detach().to("cpu", torch.float64)
        if composed.shape != fir.shape:
            raise DataError(f"composition check: stages compose to shape {tuple(composed.shape)}, fir is {tuple(fir.shape)}")
        err = float((composed - fir).abs().max()) if fir.numel() else 0.0
        tol = atol + rtol * (float(composed.abs().max()) if composed.numel() else 0.0)
        if not err <= tol:
            raise DataError(f"composition check: fir differs from the composition of its stages by up to {err:.3g} "
                            f"(tolerance {tol:.3g})")
        return err

    # -----------------------------------------------------------------------------------------
    # Saving
    # -----------------------------------------------------------------------------------------

    def save(self, path) -> Path:
        """Write the filter set as a directory (``manifest.json`` + ``filters.safetensors``).

        Validates first (nothing is written if anything is wrong, e.g. non-finite taps). The set
        is written into a hidden temporary directory beside ``path`` and renamed into place; an
        existing filter set at ``path`` is moved aside, replaced, then deleted (with anything else
        inside it, e.g. stale exports). ``path`` may be absent, an empty directory or an existing
        filter set; anything else (a file, a non-empty directory without a manifest) is refused.

        Returns:
            the directory written.

        Raises:
            DataError: invalid content, or the target cannot be written (naming ``path``).
        """
        import safetensors.torch

        target = Path(os.path.abspath(os.fspath(path)))
        where = f"cannot save filter set to {target}"
        self.validate(where)
        tensors = {name: t.detach().to("cpu", torch.float32).contiguous() for name, t in self._tensors().items()}
        for name, t in tensors.items():  # float64 → float32 may overflow to Inf
            if not bool(torch.isfinite(t).all()):
                raise _fail(where, f"{name} contains values that are not finite in float32")
        try:
            manifest = self.to_dict()
        except DataError as exc:
            raise _fail(where, str(exc)) from None
        manifest["tensors"] = {name: list(t.shape) for name, t in tensors.items()}
        manifest["created"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        manifest["spatialopt_version"] = _spatialopt_version()
        if os.path.lexists(target):
            if not target.is_dir():
                raise _fail(where, "exists and is not a directory")
            if not (target / MANIFEST_NAME).is_file() and any(target.iterdir()):
                raise _fail(where, f"is a non-empty directory without {MANIFEST_NAME} (refusing to replace it)")

        parent = target.parent
        tmp: Path | None = None
        try:
            make_directory(parent)
            tmp = Path(tempfile.mkdtemp(dir=parent, prefix=f".{target.name}.tmp-"))
            tensor_path = tmp / TENSOR_FILE_NAME
            try:
                safetensors.torch.save_file(tensors, str(tensor_path),
                                            metadata={"format": "spatialopt-filterset", "format_version": str(FORMAT_VERSION)})
            except safetensors.SafetensorError as exc:  # its I/O errors (a full disk) name the OS error
                code = re.search(r"os error (\d+)", str(exc))
                if code is None:
                    raise
                raise OSError(int(code[1]), os.strerror(int(code[1])), str(target / TENSOR_FILE_NAME)) from None
            data = tensor_path.read_bytes()
            manifest["files"] = {"tensors": {"name": TENSOR_FILE_NAME, "bytes": len(data),
                                             "sha256": hashlib.sha256(data).hexdigest()}}
            text = json.dumps(manifest, indent=2, allow_nan=False, ensure_ascii=False) + "\n"
            with open(tensor_path, "rb") as fh:
                os.fsync(fh.fileno())
            with open(tmp / MANIFEST_NAME, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            swap_directory_into_place(tmp, target)
            tmp = None
            _fsync_dir(parent)
        except OSError as exc:
            raise _fail(where, _one_line(exc)) from None
        except (TypeError, ValueError) as exc:  # json: a value that is not JSON slipped through
            if isinstance(exc, SpatialoptError):
                raise
            raise _fail(where, f"manifest cannot be written as JSON ({_one_line(exc)})") from None
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    # -----------------------------------------------------------------------------------------
    # Loading
    # -----------------------------------------------------------------------------------------

    @classmethod
    def load(cls, path) -> "FilterSet":
        """Read and validate a filter set directory written by :meth:`save`.

        Raises:
            DataError: naming the file and the problem — missing directory/manifest/tensor file,
                manifest not a JSON object, unknown or newer format version, unsafe file names,
                absurd sizes, size or SHA-256 mismatch, unreadable safetensors, missing or
                unexpected tensors, wrong dtypes/ranks/shapes, non-finite values, bad metadata.
        """
        directory = Path(os.fspath(path))
        try:
            return cls._load(directory)
        except SpatialoptError:
            raise
        except (TypeError, ValueError, KeyError, IndexError, AttributeError, OverflowError,
                RecursionError, UnicodeError, struct.error) as exc:  # belt and braces
            raise _fail(directory, f"malformed filter set ({type(exc).__name__}: {_one_line(exc)})") from None
        except OSError as exc:
            raise _fail(directory, f"cannot read filter set ({_one_line(exc)})") from None

    @classmethod
    def _load(cls, directory: Path) -> "FilterSet":
        from safetensors.torch import load as load_safetensors_bytes  # bytes in, tensors out (no pickle)

        if not os.path.lexists(directory):
            raise _fail(directory, "filter set directory not found")
        if not directory.is_dir():
            raise _fail(directory, "not a directory (a filter set is a directory with manifest.json and filters.safetensors)")
        manifest_path = directory / MANIFEST_NAME
        tensor_path = directory / TENSOR_FILE_NAME

        # --- manifest ------------------------------------------------------------------------
        raw = _read_regular(manifest_path, MAX_MANIFEST_BYTES, "manifest")
        try:
            manifest = json.loads(raw.decode("utf-8"), parse_constant=_reject_constant)
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise _fail(manifest_path, f"not valid JSON ({_one_line(exc)})") from None
        if not isinstance(manifest, dict):
            raise _fail(manifest_path, f"must be a JSON object, got {type(manifest).__name__}")
        version = manifest.get("format_version")
        if "format_version" not in manifest:
            raise _fail(manifest_path, "missing format_version")
        if not _is_int(version) or version < 1:
            raise _fail(manifest_path, f"unknown format_version {version!r} (this spatialopt reads 1..{FORMAT_VERSION})")
        if version > FORMAT_VERSION:
            raise _fail(manifest_path, f"format_version {version} is newer than this spatialopt supports "
                                       f"({FORMAT_VERSION}); upgrade spatialopt to read it")
        required = ("sample_rate", "n_taps", "channel_names", "driver_names", "latency_samples", "delays",
                    "tensors", "files")
        missing = [k for k in required if k not in manifest]
        if missing:
            raise _fail(manifest_path, f"missing {', '.join(missing)}")

        files = manifest["files"]
        if not isinstance(files, dict):
            raise _fail(manifest_path, "files must be an object {role: {name, bytes, sha256}}")
        for role, entry in files.items():
            name = entry.get("name") if isinstance(entry, dict) else entry
            if not _safe_file_name(name):
                raise _fail(manifest_path, f"files.{role}: unsafe or invalid file name {name!r} "
                                           "(must be a plain name inside the filter set directory)")
        entry = files.get("tensors")
        if not isinstance(entry, dict):
            raise _fail(manifest_path, "files.tensors missing (expected {name, bytes, sha256})")
        if entry.get("name") != TENSOR_FILE_NAME:
            raise _fail(manifest_path, f"files.tensors.name is {entry.get('name')!r}, expected {TENSOR_FILE_NAME!r}")
        digest = entry.get("sha256")
        if not (isinstance(digest, str) and len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)):
            raise _fail(manifest_path, f"files.tensors.sha256 must be 64 lowercase hex digits, got {digest!r}")
        claimed_bytes = entry.get("bytes")
        if not _is_int(claimed_bytes) or claimed_bytes < 8:
            raise _fail(manifest_path, f"files.tensors.bytes must be an integer >= 8, got {claimed_bytes!r}")

        # sizes before anything else is read
        n_taps = manifest["n_taps"]
        if not _is_int(n_taps) or not 1 <= n_taps <= MAX_TAPS:
            raise _fail(manifest_path, f"n_taps={n_taps!r}: must be an integer in 1..{MAX_TAPS}")
        names = manifest["driver_names"]
        if not isinstance(names, list) or not 1 <= len(names) <= MAX_DRIVERS:
            count = len(names) if isinstance(names, list) else type(names).__name__
            raise _fail(manifest_path, f"driver_names must be a list of 1..{MAX_DRIVERS} names, got {count}")
        shapes = manifest["tensors"]
        if not isinstance(shapes, dict):
            raise _fail(manifest_path, "tensors must be an object {name: shape}")
        missing = [n for n in TENSOR_NAMES if n not in shapes]
        unexpected = sorted(set(shapes) - set(TENSOR_NAMES))
        if missing or unexpected:
            raise _fail(manifest_path, f"tensors: missing {missing}, unexpected {unexpected} (expected {list(TENSOR_NAMES)})")
        total = 0
        for name in TENSOR_NAMES:
            shape = shapes[name]
            if not isinstance(shape, list) or not all(_is_int(s) and 1 <= s <= MAX_TAPS for s in shape):
                raise _fail(manifest_path, f"tensors.{name}: shape {shape!r} is not a list of integers in 1..{MAX_TAPS}")
            total += math.prod(shape)
        if total > MAX_ELEMENTS:
            raise _fail(manifest_path, f"tensors hold {total} values in all, more than the {MAX_ELEMENTS} allowed")
        _check_shapes(manifest_path, shapes, len(names))
        if shapes["fir"][2] != n_taps:
            raise _fail(manifest_path, f"n_taps={n_taps} but fir has {shapes['fir'][2]} taps")
        _check_metadata(manifest_path, manifest)
        _check_delays(manifest_path, manifest["delays"], n_taps)
        for key in ("created", "spatialopt_version"):
            if manifest.get(key) is not None and not isinstance(manifest[key], str):
                raise _fail(manifest_path, f"{key} must be a string or null")

        # --- tensor file ---------------------------------------------------------------------
        data_bytes = 4 * total
        if not data_bytes + 8 < claimed_bytes <= data_bytes + 8 + MAX_HEADER_BYTES:
            raise _fail(manifest_path, f"files.tensors.bytes={claimed_bytes} is implausible for {data_bytes} bytes of float32 data")
        data = _read_regular(tensor_path, data_bytes + 8 + MAX_HEADER_BYTES, "tensor file")
        if len(data) != claimed_bytes:
            raise _fail(tensor_path, f"has {len(data)} bytes, the manifest says {claimed_bytes} (truncated or replaced?)")
        actual = hashlib.sha256(data).hexdigest()
        if actual != digest:
            raise _fail(tensor_path, f"SHA-256 mismatch: file has {actual}, manifest says {digest} (corrupted or modified)")
        _check_safetensors_header(tensor_path, data, shapes)
        try:
            loaded = load_safetensors_bytes(data)
        except Exception as exc:  # SafetensorError derives from Exception only
            raise _fail(tensor_path, f"unreadable safetensors ({_one_line(exc)})") from None
        tensors = {}
        for name in TENSOR_NAMES:
            t = loaded.get(name)
            if t is None or t.dtype != torch.float32 or list(t.shape) != shapes[name]:
                raise _fail(tensor_path, f"tensor {name} missing or not float32 {shapes[name]}")
            if not bool(torch.isfinite(t).all()):
                raise _fail(tensor_path, f"tensor {name} contains NaN or Inf")
            tensors[name] = t.contiguous()

        positions = manifest.get("driver_positions")
        return cls(
            fir=tensors["fir"],
            sample_rate=float(manifest["sample_rate"]),
            driver_names=list(names),
            latency_samples=int(manifest["latency_samples"]),
            stages={name: tensors[name] for name in STAGE_NAMES},
            delays={k: int(manifest["delays"][k]) for k in DELAY_NAMES},
            channel_names=list(manifest["channel_names"]),
            driver_positions=None if positions is None else torch.tensor(positions, dtype=torch.float64),
            upmix=dict(manifest.get("upmix") or {}),
            config=manifest.get("config") or {},
            metrics=manifest.get("metrics"),
            provenance={"created": manifest.get("created"), "spatialopt_version": manifest.get("spatialopt_version")},
        )


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _check_shapes(where, shapes: dict[str, list], n_drivers: int) -> None:
    """Ranks and mutual consistency of the tensor shapes (lists of ints)."""
    fir, ctc, virt, beam = (shapes[n] for n in TENSOR_NAMES)
    if len(fir) != 3 or fir[0] != 3:
        raise _fail(where, f"fir has shape {tuple(fir)}, expected (3 channels L/R/C, D drivers, T taps)")
    if fir[1] != n_drivers:
        raise _fail(where, f"fir has {fir[1]} drivers but there are {n_drivers} driver_names")
    if len(ctc) != 3 or ctc[0] != 2 or ctc[1] != fir[1]:
        raise _fail(where, f"ctc has shape {tuple(ctc)}, expected (2, {fir[1]}, T_ctc)")
    if len(virt) != 2 or virt[0] != 2:
        raise _fail(where, f"virtualizer has shape {tuple(virt)}, expected (2, T_v)")
    if len(beam) != 2 or beam[0] != fir[1]:
        raise _fail(where, f"beam has shape {tuple(beam)}, expected ({fir[1]}, T_beam)")
    for name, shape in shapes.items():
        if any(s < 1 for s in shape):
            raise _fail(where, f"{name} has an empty dimension {tuple(shape)}")
        if shape[-1] > MAX_TAPS or (len(shape) > 1 and shape[-2] > MAX_DRIVERS):
            raise _fail(where, f"{name} has shape {tuple(shape)}, beyond the limits ({MAX_DRIVERS} drivers, {MAX_TAPS} taps)")


def _check_metadata(where, meta: dict[str, Any]) -> None:
    """Metadata fields (from a manifest or a FilterSet's attributes, before conversion)."""
    rate = meta.get("sample_rate")
    if not _is_number(rate) or not math.isfinite(rate) or not 0 < rate <= MAX_SAMPLE_RATE:
        raise _fail(where, f"sample_rate={rate!r}: must be a positive finite number of Hz (at most {MAX_SAMPLE_RATE:g})")
    channels = meta.get("channel_names")
    if not isinstance(channels, (list, tuple)) or list(channels) != list(CHANNEL_NAMES):
        raise _fail(where, f"channel_names={meta.get('channel_names')!r}: must be {list(CHANNEL_NAMES)}")
    names = meta.get("driver_names")
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and 0 < len(n) <= MAX_NAME_CHARS for n in names):
        raise _fail(where, f"driver_names must be a list of non-empty strings, got {names!r:.200}")
    if len(set(names)) != len(names):
        raise _fail(where, f"driver_names are not unique: {list(names)}")
    positions = meta.get("driver_positions")
    if positions is not None:
        ok = (isinstance(positions, list) and len(positions) == len(names)
              and all(isinstance(p, list) and len(p) == 3 and all(_is_number(v) and math.isfinite(v) for v in p)
                      for p in positions))
        if not ok:
            raise _fail(where, f"driver_positions must be null or {len(names)} finite [x, y, z] triples (metres)")
    latency = meta.get("latency_samples")
    if not _is_int(latency) or not 0 <= latency <= MAX_TAPS:
        raise _fail(where, f"latency_samples={latency!r}: must be an integer in 0..{MAX_TAPS}")
    delays = meta.get("delays")
    if not isinstance(delays, dict) or set(delays) != set(DELAY_NAMES):
        raise _fail(where, f"delays={delays!r:.200}: must be {{'lr_delay': int, 'c_delay': int}}")
    for key in DELAY_NAMES:
        if not _is_int(delays[key]) or not 0 <= delays[key] <= MAX_TAPS:
            raise _fail(where, f"delays.{key}={delays[key]!r}: must be an integer in 0..{MAX_TAPS} (samples)")
    upmix = meta.get("upmix")
    if upmix is None:
        upmix = {}
    if not isinstance(upmix, dict):
        raise _fail(where, f"upmix must be an object of parameters, got {type(upmix).__name__}")
    for key, value in upmix.items():
        scalar = value is None or isinstance(value, (bool, str)) or (_is_number(value) and math.isfinite(value))
        if not isinstance(key, str) or not scalar:
            raise _fail(where, f"upmix.{key}={value!r:.200}: must be a finite number (or a string/bool)")
    if meta.get("config") is not None and not isinstance(meta["config"], dict):
        raise _fail(where, f"config must be an object, got {type(meta['config']).__name__}")
    if meta.get("metrics") is not None and not isinstance(meta["metrics"], dict):
        raise _fail(where, f"metrics must be an object or null, got {type(meta['metrics']).__name__}")


def _check_delays(where, delays: dict, n_taps: int) -> None:
    """Alignment delays place their path inside the composite: at most ``n_taps`` samples (a
    longer delay leaves nothing of the path, and compose_fir cannot place it)."""
    for key in DELAY_NAMES:
        value = delays.get(key) if isinstance(delays, dict) else None
        if _is_int(value) and value > n_taps:
            raise _fail(where, f"delays.{key}={value} is beyond the composite's n_taps={n_taps} samples")


def _read_regular(path: Path, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (size checked before reading)."""
    if not os.path.lexists(path):
        raise _fail(path, f"{what} not found")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise _fail(path, f"cannot stat {what} ({_one_line(exc)})") from None
    import stat as stat_mod

    if not stat_mod.S_ISREG(st.st_mode):
        raise _fail(path, f"{what} is not a regular file")
    if st.st_size > limit:
        raise _fail(path, f"{what} has {st.st_size} bytes, more than the {limit} plausible")
    try:
        with open(path, "rb") as fh:
            data = fh.read(limit + 1)
    except OSError as exc:
        raise _fail(path, f"cannot read {what} ({_one_line(exc)})") from None
    if len(data) > limit:
        raise _fail(path, f"{what} has more than the {limit} bytes plausible")
    return data


def _check_safetensors_header(path: Path, data: bytes, shapes: dict[str, list]) -> None:
    """Validate the safetensors framing against the manifest before the library parses it."""
    (n,) = struct.unpack("<Q", data[:8])
    if n < 2 or n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise _fail(path, f"not a safetensors file (header length {n} does not fit the {len(data)}-byte file)")
    try:
        header = json.loads(data[8 : 8 + n].decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise _fail(path, f"not a safetensors file (header is not JSON: {_one_line(exc)})") from None
    if not isinstance(header, dict):
        raise _fail(path, "not a safetensors file (header is not a JSON object)")
    header.pop("__metadata__", None)
    missing = [name for name in TENSOR_NAMES if name not in header]
    unexpected = sorted(set(header) - set(TENSOR_NAMES))
    if missing or unexpected:
        raise _fail(path, f"tensors: missing {missing}, unexpected {unexpected}")
    spans = []
    for name in TENSOR_NAMES:
        info = header[name]
        if not isinstance(info, dict):
            raise _fail(path, f"tensor {name}: malformed header entry")
        if info.get("dtype") != "F32":
            raise _fail(path, f"tensor {name} has dtype {info.get('dtype')!r}, expected F32 (float32)")
        if info.get("shape") != shapes[name]:
            raise _fail(path, f"tensor {name} has shape {info.get('shape')!r}, the manifest says {shapes[name]}")
        offsets = info.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) for o in offsets)
                and offsets[1] - offsets[0] == 4 * math.prod(shapes[name]) and offsets[0] >= 0):
            raise _fail(path, f"tensor {name} has invalid data_offsets {offsets!r}")
        spans.append(tuple(offsets))
    spans.sort()
    end = 0
    for begin, stop in spans:
        if begin != end:
            raise _fail(path, "tensor data overlaps or leaves gaps")
        end = stop
    if 8 + n + end != len(data):
        raise _fail(path, f"tensor data ends at byte {8 + n + end}, the file has {len(data)} bytes")


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - not supported everywhere
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)
