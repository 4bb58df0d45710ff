"""Measured driver directivity: load sampled far-field patterns from ``.npz`` or SOFA files.

The result feeds :func:`spatialopt.acoustics.drivers.fit_far_field` (through
``Driver.measured``). Values are far-field samples in **monopole units** (1 = the far field of the
unit monopole at the same distance, i.e. pressure × distance × 4π with the propagation phase
``e^{−jkr}`` removed), phase referenced to the driver's expansion origin, in the driver's
**local frame** (local +x = on-axis, +y left, +z up; azimuth from +x toward +y, elevation up).

Formats:

* ``.npz`` (read by :func:`read_npz`: no pickle, each header checked before its data is read):
  ``freqs`` (M,) Hz, ``pattern`` (M, S) complex, ``azimuth_deg`` and ``elevation_deg`` (S,)
  degrees, optional ``weights`` (S,) quadrature weights (≥ 0, e.g. summing to 4π).
* SOFA ``FreeFieldDirectivityTF`` (any other file name; read with h5py): ``Data.Real`` and
  ``Data.Imag`` (M measurements, R receivers, N frequencies), frequencies in the variable ``N``
  (Hz). The values are taken as monopole-unit far-field samples as they are (no distance or
  propagation correction). Layout:

  - **M = 1, R ≥ 1** (the SOFA 2.x layout: one source surrounded by R microphones): sample r is
    receiver r.
  - **M ≥ 1, R = 1** (one microphone, source turned or microphone moved per measurement): sample
    m is measurement m.
  - M > 1 and R > 1 (e.g. one measurement per musical note) is refused: keep one measurement.

  Geometry: the receiver's position is ``ListenerPosition + R_listener · ReceiverPosition``
  (``ListenerView``/``ListenerUp`` give ``R_listener``; absent variables default to the origin,
  +x, +z); the direction of a sample is that position minus ``SourcePosition``, taken into the
  source's frame with ``SourceView``/``SourceUp`` (the on-axis direction is ``SourceView``).
  Positions may be cartesian (metre) or spherical (degree, degree, metre); only directions are used.
  Weights are None.

Any problem raises :class:`~spatialopt.errors.DataError` naming the file and the problem.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
import zlib

import numpy as np
import torch

from spatialopt.acoustics.sofa import MAX_ELEMENTS, one_line, open_sofa, read_positions, read_variable, view_rotations
from spatialopt.errors import DataError

__all__ = ["load_directivity", "read_npz", "NPZ_KEYS"]

NPZ_KEYS = ("freqs", "pattern", "azimuth_deg", "elevation_deg")  # required; "weights" is optional
# What np.load / zipfile raise on a damaged archive (found by fuzzing bytes of valid ones).
_NPZ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, KeyError, RuntimeError)


def load_directivity(path: str) -> dict:
    """Sampled far-field directivity of one driver, from ``.npz`` or SOFA FreeFieldDirectivityTF.

    Args:
        path: file name; ``*.npz`` is read as a NumPy archive, anything else as SOFA.

    Returns:
        dict with torch tensors: ``freqs`` (M,) float64 Hz, ascending and distinct;
        ``colatitude`` (S,) and ``azimuth`` (S,) float64 radians (local frame, azimuth in
        [−π, π)); ``pattern`` (M, S) complex128 monopole units; ``weights`` (S,) float64 or None.

    Raises:
        DataError: missing or unreadable file, missing key/variable, wrong shapes, NaN/Inf,
            empty data, out-of-range angles or weights; the message names the file.
    """
    name = os.fspath(path)
    if name.lower().endswith(".npz"):
        return _load_npz(name)
    return _load_sofa(name)


def _load_npz(name: str) -> dict:
    arrays = read_npz(name, NPZ_KEYS, optional=("weights",), kinds="biufc", max_elements=MAX_ELEMENTS)
    return _validate(
        name, arrays["freqs"], arrays["pattern"], arrays["azimuth_deg"], arrays["elevation_deg"], arrays.get("weights")
    )


def read_npz(name: str, keys, optional=(), kinds: str | dict = "biufc", max_elements: int = MAX_ELEMENTS,
             max_bytes: int | None = None) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` archive (as :func:`numpy.savez` writes it), read without pickle and
    without trusting its headers.

    Each member's ``.npy`` header is parsed and checked *before* its data is read: versions 1.0
    and 2.0 only, header at most 10000 bytes, a plain dtype of one of ``kinds`` (no object, void or
    structured dtypes: nothing that pickle could be asked to build), no negative dimensions, at
    most ``max_elements`` values and ``max_bytes`` bytes. Then exactly that many bytes are read
    (a short member is refused), and the member must end there (which also makes ``zipfile`` check
    its CRC). So memory is bounded by the limits whatever the headers or the compression claim.

    Args:
        name: file name. keys: required member names (``key`` or ``key.npy`` in the archive).
        optional: members read when present. kinds: allowed ``dtype.kind`` letters, one string for
            all keys or ``{key: kinds}``. max_elements: values per array. max_bytes: bytes per
            array (default ``16 · max_elements``).

    Returns:
        ``{key: array}`` in native byte order (C order), for the required keys and the optional
        ones present.

    Raises:
        DataError: not an ``.npz`` archive, missing member, or any member that fails the checks
            above; the message names the file (and the member).
    """
    import tokenize

    max_bytes = 16 * max_elements if max_bytes is None else max_bytes
    if not os.path.isfile(name):
        raise DataError(f"{name}: file not found")
    # np.load takes anything that is neither zip nor .npy for a pickle; say what it really is.
    try:
        with open(name, "rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise DataError(f"{name}: cannot be read ({one_line(exc)})") from None
    if magic == b"\x93NUMPY":
        raise DataError(f"{name}: holds a single array, expected an .npz archive with keys {', '.join(keys)}")
    if not magic.startswith(b"PK"):
        raise DataError(f"{name}: not an .npz archive (no zip signature)")
    header_errors = (ValueError, SyntaxError, TypeError, tokenize.TokenError, RecursionError)
    arrays = {}
    try:
        with zipfile.ZipFile(name) as archive:
            members = {}
            for member in archive.namelist():
                members.setdefault(member[:-4] if member.endswith(".npy") else member, member)
            missing = [key for key in keys if key not in members]
            if missing:
                raise DataError(f"{name}: missing key(s) {', '.join(missing)} (found: {', '.join(members) or 'none'})")
            for key in (*keys, *(k for k in optional if k in members)):
                allowed = kinds.get(key, "biufc") if isinstance(kinds, dict) else kinds
                where = f"{name}: key {key!r}"
                with archive.open(members[key]) as fp:
                    prefix = fp.read(8)
                    if len(prefix) < 8 or prefix[:6] != b"\x93NUMPY" or prefix[6:8] not in (b"\x01\x00", b"\x02\x00"):
                        raise DataError(f"{where} is not a .npy array (version 1.0 or 2.0)")
                    width = 2 if prefix[6] == 1 else 4
                    length_bytes = fp.read(width)
                    length = int.from_bytes(length_bytes, "little")
                    if len(length_bytes) < width or length > 10000:
                        raise DataError(f"{where}: .npy header of {length} bytes (at most 10000 are read)")
                    text = fp.read(length)
                    if len(text) < length:
                        raise DataError(f"{where}: truncated .npy header")
                    read_header = (np.lib.format.read_array_header_1_0 if width == 2
                                   else np.lib.format.read_array_header_2_0)
                    try:
                        shape, fortran, dtype = read_header(io.BytesIO(length_bytes + text))
                    except header_errors as exc:
                        raise DataError(f"{where}: malformed .npy header ({one_line(exc)})") from None
                    if (dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None
                            or dtype.kind not in allowed or dtype.itemsize == 0):
                        raise DataError(f"{where} cannot be read as a numeric array (dtype {dtype}; expected kinds "
                                        f"{allowed!r}, never objects)")
                    if any(d < 0 for d in shape):
                        raise DataError(f"{where}: invalid shape {shape}")
                    count = math.prod(shape)
                    if count > max_elements or count * dtype.itemsize > max_bytes:
                        raise DataError(f"{where} has shape {shape} ({count} values), more than the "
                                        f"{max_elements} values / {max_bytes} bytes allowed")
                    data = fp.read(count * dtype.itemsize)
                    if len(data) < count * dtype.itemsize:
                        raise DataError(f"{where}: truncated data ({len(data)} of {count * dtype.itemsize} bytes)")
                    if fp.read(1 << 16):
                        raise DataError(f"{where}: unexpected bytes after the array data")
                arr = np.frombuffer(data, dtype=dtype, count=count).reshape(shape, order="F" if fortran else "C")
                arrays[key] = np.array(arr, dtype=dtype.newbyteorder("="), order="C")  # a writable copy
    except DataError:
        raise
    except _NPZ_ERRORS as exc:
        raise DataError(f"{name}: not a readable .npz archive ({one_line(exc)})") from None
    return arrays


def _numeric(name: str, key: str, arr: np.ndarray, ndim: int, complex_ok: bool = False) -> np.ndarray:
    """Check kind, rank, size and finiteness; return float64 (or complex128) array."""
    arr = np.asarray(arr)
    kinds = "fiuc" if complex_ok else "fiu"
    if arr.dtype.kind not in kinds:
        raise DataError(f"{name}: {key} has type {arr.dtype}, expected {'complex or real' if complex_ok else 'real'} numbers")
    if arr.ndim != ndim:
        raise DataError(f"{name}: {key} has shape {arr.shape}, expected {ndim} dimension(s)")
    if arr.size == 0:
        raise DataError(f"{name}: {key} is empty (shape {arr.shape})")
    if arr.size > MAX_ELEMENTS:
        raise DataError(f"{name}: {key} has {arr.size} values, more than the {MAX_ELEMENTS} allowed")
    arr = arr.astype(np.complex128 if complex_ok else np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"{name}: {key} contains NaN or Inf")
    return arr


def _validate(name: str, freqs, pattern, az_deg, el_deg, weights, freq_key: str = "freqs", pattern_key: str = "pattern") -> dict:
    """Shared checks of both formats → the documented dict of tensors.

    Args:
        name: file name for messages. freqs: (M,) Hz. pattern: (M, S). az_deg, el_deg: (S,)
        degrees. weights: (S,) or None. freq_key, pattern_key: how the file calls them.
    """
    freqs = _numeric(name, freq_key, freqs, 1)
    pattern = _numeric(name, pattern_key, pattern, 2, complex_ok=True)
    az_deg = _numeric(name, "azimuth_deg", az_deg, 1)
    el_deg = _numeric(name, "elevation_deg", el_deg, 1)
    n_f, n_s = pattern.shape
    if freqs.shape[0] != n_f:
        raise DataError(f"{name}: {pattern_key} has {n_f} frequency rows but {freq_key} has {freqs.shape[0]} values")
    if az_deg.shape[0] != n_s or el_deg.shape[0] != n_s:
        raise DataError(
            f"{name}: {pattern_key} has {n_s} direction columns but azimuth_deg has {az_deg.shape[0]} and "
            f"elevation_deg {el_deg.shape[0]} values"
        )
    if (freqs < 0).any():
        raise DataError(f"{name}: {freq_key} must be >= 0 Hz (found {freqs.min():g})")
    order = np.argsort(freqs, kind="stable")  # accept any order, keep rows with their frequency
    freqs, pattern = freqs[order], pattern[order]
    if (np.diff(freqs) == 0).any():
        raise DataError(f"{name}: {freq_key} has duplicate values ({freqs[1:][np.diff(freqs) == 0][0]:g} Hz)")
    if (np.abs(el_deg) > 90 + 1e-9).any():
        raise DataError(f"{name}: elevation_deg must lie in [-90, 90] (found {el_deg[np.abs(el_deg).argmax()]:g})")
    if not np.abs(pattern).max() > 0:
        raise DataError(f"{name}: {pattern_key} is all zeros")
    if weights is not None:
        weights = _numeric(name, "weights", weights, 1)
        if weights.shape[0] != n_s:
            raise DataError(f"{name}: weights has {weights.shape[0]} values, expected one per direction ({n_s})")
        if (weights < 0).any() or not weights.sum() > 0:
            raise DataError(f"{name}: weights must be >= 0 with a positive sum")
    az_wrapped = (az_deg + 180.0) % 360.0 - 180.0
    return {
        "freqs": torch.from_numpy(freqs),
        "colatitude": torch.from_numpy(np.radians(90.0 - np.clip(el_deg, -90.0, 90.0))),
        "azimuth": torch.from_numpy(np.radians(az_wrapped)),
        "pattern": torch.from_numpy(np.ascontiguousarray(pattern)),
        "weights": None if weights is None else torch.from_numpy(weights),
    }


def _load_sofa(name: str) -> dict:
    with open_sofa(name, "FreeFieldDirectivityTF") as handle:
        for var in ("Data.Real", "Data.Imag"):
            if var not in handle:
                raise DataError(f"{name}: missing variable {var}")
        shape = tuple(handle["Data.Real"].shape)
        if tuple(handle["Data.Imag"].shape) != shape:
            raise DataError(f"{name}: Data.Real has shape {shape} but Data.Imag {tuple(handle['Data.Imag'].shape)}")
        if len(shape) != 3:
            raise DataError(f"{name}: Data.Real has shape {shape}, expected (M, R, N)")
        n_m, n_r, n_n = shape
        if min(shape) < 1:
            raise DataError(f"{name}: Data.Real is empty (shape {shape})")
        if n_m > 1 and n_r > 1:
            raise DataError(
                f"{name}: {n_m} measurements of {n_r} receivers; one driver directivity needs M=1 (receivers = "
                "directions) or R=1 (measurements = directions) — keep one measurement"
            )
        real = read_variable(handle, "Data.Real", name)
        imag = read_variable(handle, "Data.Imag", name)
        if "N" not in handle:
            raise DataError(f"{name}: missing variable N (the frequencies, Hz)")
        freqs = read_variable(handle, "N", name)
        if freqs.ndim != 1 or freqs.shape[0] != n_n:
            raise DataError(f"{name}: variable N (frequencies, Hz) has shape {freqs.shape}, expected ({n_n},)")
        receivers = read_positions(handle, "ReceiverPosition", n_r, name)
        listener_pos = read_positions(handle, "ListenerPosition", n_m, name)
        listener_rot = view_rotations(handle, "Listener", n_m, name)
        source_pos = read_positions(handle, "SourcePosition", n_m, name)
        source_rot = view_rotations(handle, "Source", n_m, name)
    receivers = np.zeros((n_r, 3)) if receivers is None else receivers
    listener_pos = np.zeros((n_m, 3)) if listener_pos is None else listener_pos
    source_pos = np.zeros((n_m, 3)) if source_pos is None else source_pos
    mic = listener_pos[:, None, :] + np.einsum("mij,rj->mri", listener_rot, receivers)  # (M, R, 3) SOFA frame
    local = np.einsum("mij,mri->mrj", source_rot, mic - source_pos[:, None, :])  # Rᵀ (mic − source)
    dist = np.linalg.norm(local, axis=-1)
    if (dist < 1e-9).any():
        m, r = np.argwhere(dist < 1e-9)[0]
        raise DataError(f"{name}: receiver {r} of measurement {m} sits at the source position; no direction")
    data = real + 1j * imag  # (M, R, N)
    if n_m == 1:
        pattern, dirs = data[0].T, local[0] / dist[0][:, None]  # (N, R), (R, 3)
    else:
        pattern, dirs = data[:, 0].T, local[:, 0] / dist[:, 0][:, None]  # (N, M), (M, 3)
    az = np.degrees(np.arctan2(dirs[:, 1], dirs[:, 0]))
    el = np.degrees(np.arcsin(np.clip(dirs[:, 2], -1.0, 1.0)))
    return _validate(name, freqs, pattern, az, el, None, freq_key="N (frequencies)", pattern_key="Data.Real/Data.Imag")

