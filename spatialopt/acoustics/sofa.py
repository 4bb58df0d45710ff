"""HRTF sets from SOFA files (convention SimpleFreeFieldHRIR), read with h5py.

SOFA files are netCDF4, i.e. HDF5; every variable is a dataset at the file root (``Data.IR``,
``SourcePosition``, ...) and the convention is the global attribute ``SOFAConventions``.

Model (:meth:`SofaListener.monopole_response`)::

    p_ear(f) = H_ear(f, u) · e^{−jkr}/(4πr)

with ``r`` the source–head-centre distance, ``u`` the arrival direction in the head frame and
``H_ear`` the HRTF, taken as *ear pressure relative to the free-field pressure at the head
centre*. The set's amplitude is used as stored (SimpleFreeFieldHRIR data are meant to be free-field
compensated); its direction is used, its measurement distance is not (no near-field correction).

**Common leading delay.** A measured IR also holds the propagation delay of the measurement
distance (and the rig's latency). That delay would count twice next to ``e^{−jkr}``, so one common
delay ``leading_delay = min over all IRs of (onset + Data.Delay) − onset_margin`` is removed from
every IR (a pure delay shared by all directions and both ears: ITDs, ILDs and spectra are untouched).
The onset of an IR (:func:`hrir_onsets`) is where it first reaches 10 % of its peak, detected on a
copy low-passed by a zero-phase Gaussian (−3 dB at 3 kHz: no pre-ringing lobes, so the onset is
smooth in direction) and refined to a fraction of a sample. ``onset_margin`` (default 8 samples)
keeps the earliest IR's pre-onset samples at non-negative time. The price is a common latency
relative to the true head-centre reference of about ``head_radius/c`` (the ear nearest a source
hears it that much before the head centre would; 0.26 ms) + the detector's lead (0.095 ms) +
``onset_margin/fs`` (0.17 ms at 48 kHz): ≈ 0.52 ms, 25 samples at 48 kHz, for the rigid-sphere
test set. ``leading_delay`` is stored, so a caller can compensate it.

**Frequencies.** The listener receives wavenumbers ``k``; the HRIR's DTFT is evaluated exactly at
``f = k·c/(2π)`` with ``c = speed_of_sound`` (a field, default 343 m/s — set it to the scene's
speed of sound). Above the set's Nyquist frequency the delay-removed spectrum is held at its
Nyquist value while the onset delay keeps its exact phase (the set holds no information there).

**Direction interpolation** (``interpolation``):

* ``"nearest"`` — the measured direction with the smallest great-circle distance.
* ``"idw3"`` (default) — onset-aligned inverse-distance weighting of the 3 nearest measured
  directions: weights ``w_i ∝ 1/d_i`` (``d_i`` great-circle distance, radians; a query within
  1e-9 rad of a measured direction takes that one alone). Each IR's spectrum is taken with its own
  onset removed, the spectra are mixed with the weights, and the onsets are mixed linearly with
  the same weights and put back as a phase term ``e^{−j2πf(τ − leading_delay)}``. Mixing
  delay-free spectra avoids the comb filtering of mixing responses with different delays, and the
  interpolated onset keeps the ITD continuous in direction.

**Frames.** The SOFA frame of a SimpleFreeFieldHRIR set is the listener's: x forward, y left,
z up, azimuth from x toward y (degrees), elevation up — the project's head frame. If the file has
``ListenerView``/``ListenerUp`` other than +x/+z, source directions are rotated into the
listener's frame (the SOFA standard: the listener looks along ``ListenerView``). A scene direction
``v`` is taken into the head frame at yaw ψ as ``R(ψ)ᵀ v`` with ``R`` =
:func:`spatialopt.geometry.head_rotation`. Ear order is (left, right) = SOFA receivers (0, 1).

Any problem with a file raises :class:`~spatialopt.errors.DataError` naming the file and the problem.
The helpers :func:`open_sofa`, :func:`read_variable`, :func:`read_positions` and
:func:`view_rotations` are shared with :mod:`spatialopt.acoustics.measured`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import h5py
import numpy as np
import torch
from torch import Tensor

from spatialopt.acoustics.head import Listener
from spatialopt.errors import DataError
from spatialopt.geometry import head_rotation

__all__ = [
    "SofaListener",
    "hrir_onsets",
    "interpolation_weights",
    "open_sofa",
    "read_variable",
    "read_positions",
    "view_rotations",
]

# Sanity limits: anything beyond them is a broken or hostile file, not an HRTF set.
MAX_MEASUREMENTS = 200_000
MAX_TAPS = 65_536
MAX_ELEMENTS = 2**26  # values in one variable (512 MiB as float64)
MAX_SAMPLE_RATE = 10e6  # Hz
ONSET_THRESHOLD = 0.1  # fraction of an IR's peak that marks its onset
ONSET_LOWPASS_HZ = 3000.0  # Hz, −3 dB of the Gaussian low-pass applied before onset detection
INTERPOLATIONS = ("nearest", "idw3")
_EXACT_HIT = 1e-9  # rad: closer than this to a measured direction = that direction
# What h5py raises on corrupt files (found by fuzzing bytes of a valid file).
_H5_ERRORS = (OSError, KeyError, RuntimeError, TypeError, ValueError)
_SEARCH_ELEMENTS = 2**22  # query × grid dot products per chunk of the neighbour search (memory)


# ---------------------------------------------------------------------------------------------
# Reading SOFA files (shared with measured.py)
# ---------------------------------------------------------------------------------------------


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (h5py/numpy messages may span several)."""
    return " ".join(str(exc).split())


def attr_text(obj: h5py.HLObject, name: str) -> str | None:
    """A string attribute of an HDF5 object (netCDF stores them as bytes), or None if absent."""
    if name not in obj.attrs:
        return None
    value = obj.attrs[name]
    if isinstance(value, np.ndarray):
        value = value.tolist()
        value = value[0] if isinstance(value, list) and len(value) == 1 else value
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8", "replace").strip().rstrip("\x00")
    return str(value).strip()


@contextmanager
def open_sofa(path: str, convention: str) -> Iterator[h5py.File]:
    """Open a SOFA file read-only after checking that it exists, is HDF5 and has ``convention``.

    Args:
        path: file name.
        convention: expected value of the global attribute ``SOFAConventions``.

    Yields:
        the open ``h5py.File``. HDF5 failures inside the block (a corrupt file makes h5py raise
        ``OSError``, ``KeyError``, ``RuntimeError``, ``TypeError`` or ``ValueError``) become
        :class:`DataError` naming the file.
    """
    name = os.fspath(path)
    if not os.path.exists(name):
        raise DataError(f"{name}: file not found")
    if not os.path.isfile(name):
        raise DataError(f"{name}: not a regular file")
    try:
        is_hdf5 = h5py.is_hdf5(name)
    except _H5_ERRORS as exc:
        raise DataError(f"{name}: cannot be read ({one_line(exc)})") from None
    if not is_hdf5:
        raise DataError(f"{name}: not a SOFA file (SOFA files are netCDF4/HDF5; this one is not HDF5)")
    try:
        handle = h5py.File(name, "r")
    except _H5_ERRORS as exc:
        raise DataError(f"{name}: cannot open as HDF5 ({one_line(exc)})") from None
    try:
        found = attr_text(handle, "SOFAConventions")
        if found is None:
            raise DataError(f"{name}: missing global attribute SOFAConventions (expected {convention!r})")
        if found != convention:
            raise DataError(f"{name}: SOFAConventions is {found!r}, expected {convention!r}")
        yield handle
    except DataError:
        raise
    except _H5_ERRORS as exc:
        raise DataError(f"{name}: unreadable SOFA content ({type(exc).__name__}: {one_line(exc)})") from None
    finally:
        handle.close()


def read_variable(handle: h5py.File, var: str, path: str, required: bool = True) -> np.ndarray | None:
    """A numeric SOFA variable as a finite float64 array (size checked before reading).

    Args:
        handle: open file. var: variable name (e.g. ``"Data.IR"``). path: file name for messages.
        required: raise if absent (else return None).

    Returns:
        float64 array of the variable's shape, or None.
    """
    if var not in handle:
        if required:
            raise DataError(f"{path}: missing variable {var}")
        return None
    obj = handle[var]
    if not isinstance(obj, h5py.Dataset):
        raise DataError(f"{path}: {var} is a group, expected a variable")
    if obj.size > MAX_ELEMENTS:
        raise DataError(f"{path}: {var} has shape {tuple(obj.shape)} ({obj.size} values), more than the {MAX_ELEMENTS} allowed")
    if obj.dtype.kind not in "fiu":
        raise DataError(f"{path}: {var} has non-real-numeric type {obj.dtype}")
    arr = np.asarray(obj[()], dtype=np.float64)
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: {var} contains NaN or Inf")
    return arr


def _rows(arr: np.ndarray, count: int, var: str, path: str) -> np.ndarray:
    """(3,), (1, 3), (count, 3) — optionally with a trailing singleton (SOFA 2 ``I``) — → (count, 3)."""
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] not in (1, count):
        raise DataError(f"{path}: {var} has shape {arr.shape}, expected (1, 3) or ({count}, 3)")
    return np.broadcast_to(arr, (count, 3))


def _to_cartesian(arr: np.ndarray, handle: h5py.File, var: str, path: str) -> np.ndarray:
    kind = attr_text(handle[var], "Type")
    if kind is None:
        raise DataError(f"{path}: {var} has no Type attribute (cartesian or spherical)")
    kind = kind.lower()
    if kind == "cartesian":
        return arr
    if kind != "spherical":
        raise DataError(f"{path}: {var} has Type {kind!r}; only cartesian and spherical are supported")
    units = (attr_text(handle[var], "Units") or "degree").lower()
    # SOFA mandates degrees; accept radians only when the file says so explicitly.
    scale = 1.0 if ("rad" in units and "degree" not in units) else math.pi / 180
    az, el, r = arr[:, 0] * scale, arr[:, 1] * scale, arr[:, 2]
    return np.stack([r * np.cos(el) * np.cos(az), r * np.cos(el) * np.sin(az), r * np.sin(el)], axis=-1)


def read_positions(handle: h5py.File, var: str, count: int, path: str, required: bool = False) -> np.ndarray | None:
    """A SOFA position/vector variable as cartesian (count, 3) float64 (absent and optional → None).

    Spherical values are (azimuth, elevation, radius) in degrees (radians only if ``Units`` says
    so) and metres; the ``Type`` attribute must be ``cartesian`` or ``spherical``.
    """
    arr = read_variable(handle, var, path, required)
    if arr is None:
        return None
    return _to_cartesian(_rows(arr, count, var, path), handle, var, path)


def view_rotations(handle: h5py.File, prefix: str, count: int, path: str) -> np.ndarray:
    """Object-to-SOFA-frame rotations from ``{prefix}View`` and ``{prefix}Up``.

    Args:
        prefix: ``"Listener"``, ``"Source"``, ...; absent variables default to view +x, up +z.
        count: number of measurements M.

    Returns:
        (count, 3, 3) float64, columns (forward, left, up) in SOFA coordinates, so that
        ``local = Rᵀ · global``.
    """
    view = read_positions(handle, f"{prefix}View", count, path)
    up = read_positions(handle, f"{prefix}Up", count, path)
    view = np.broadcast_to([1.0, 0.0, 0.0], (count, 3)) if view is None else view
    up = np.broadcast_to([0.0, 0.0, 1.0], (count, 3)) if up is None else up
    norm = np.linalg.norm(view, axis=-1, keepdims=True)
    if (norm < 1e-12).any():
        raise DataError(f"{path}: {prefix}View has a zero-length vector")
    fwd = view / norm
    up = up - (up * fwd).sum(-1, keepdims=True) * fwd  # Gram–Schmidt: up ⟂ forward
    up_norm = np.linalg.norm(up, axis=-1, keepdims=True)
    if (up_norm < 1e-9).any():
        raise DataError(f"{path}: {prefix}Up is parallel to {prefix}View (or missing and the view is vertical)")
    up = up / up_norm
    left = np.cross(up, fwd)  # z × x = y
    return np.stack([fwd, left, up], axis=-1)


# ---------------------------------------------------------------------------------------------
# Pure functions
# ---------------------------------------------------------------------------------------------


def hrir_onsets(hrir: Tensor, sample_rate: float, threshold: float = ONSET_THRESHOLD, lowpass_hz: float = ONSET_LOWPASS_HZ) -> Tensor:
    """Onset of each IR: where ``|h|`` first reaches ``threshold`` × its peak, after a smooth low-pass.

    Thresholding the raw IR is fragile: the pre-ringing lobes of a band-limited impulse sit near
    10 % of the peak, so the detected onset jumps by a sample or two between neighbouring
    directions, and mixing spectra aligned with such jumps comb-filters the treble. So the IR is
    first low-passed with a zero-phase Gaussian (−3 dB at ``min(lowpass_hz, fs/8)``; a Gaussian
    pulse has no lobes), then the 10 % crossing is refined to a fraction of a sample by linear
    interpolation of ``|h|`` between the two samples around it. (Low-pass filtering before a
    threshold is the usual robust onset/ITD estimator, Andreopoulou & Katz 2017.) For a pure delay
    the result is that delay minus a constant lead of ≈ 2.15 σ_t, σ_t = √(ln 2)/(2π f_3dB)
    (≈ 0.095 ms at 3 kHz, 4.5 samples at 48 kHz).

    Args:
        hrir: (..., N) real IRs; each must be non-zero.
        sample_rate: Hz.
        threshold: fraction of the (low-passed) peak, in (0, 1].
        lowpass_hz: −3 dB frequency of the Gaussian low-pass, Hz.

    Returns:
        (...) float64 onsets in samples from sample 0 (may be slightly negative for an IR that
        starts at once).
    """
    h = hrir.to(torch.float64)
    n_taps = h.shape[-1]
    sigma_f = min(lowpass_hz, sample_rate / 8) / math.sqrt(math.log(2.0))  # Hz
    sigma_t = sample_rate / (2 * math.pi * sigma_f)  # samples
    pad = int(math.ceil(6 * sigma_t)) + 1  # room for the kernel's tails on both sides (no wrap)
    n_fft = n_taps + 2 * pad
    f = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64, device=h.device)
    gauss = torch.exp(-0.5 * (f / sigma_f) ** 2)
    smooth = torch.fft.irfft(torch.fft.rfft(torch.nn.functional.pad(h, (pad, pad)), n_fft) * gauss, n_fft)
    mag = smooth.abs()
    thr = threshold * mag.amax(-1, keepdim=True)
    first = (mag >= thr).to(torch.int64).argmax(-1, keepdim=True)  # first True
    cur = mag.gather(-1, first)
    prev = mag.gather(-1, (first - 1).clamp_min(0))
    frac = (thr - prev) / (cur - prev).clamp_min(1e-300)
    onset = torch.where(first > 0, first - 1 + frac, torch.zeros_like(frac))
    return onset[..., 0] - pad


def _great_circle(a: Tensor, b: Tensor) -> Tensor:
    """Angle (rad) between unit vectors a, b (..., 3); atan2 form, accurate at small angles."""
    return torch.atan2(torch.linalg.vector_norm(torch.cross(a, b, dim=-1), dim=-1), (a * b).sum(-1))


def interpolation_weights(query: Tensor, grid: Tensor, method: str = "idw3") -> tuple[Tensor, Tensor]:
    """Measured directions and weights that make up each query direction.

    Args:
        query: (Q, 3) unit vectors. grid: (D, 3) unit vectors of the measured directions.
        method: ``"nearest"`` (K = 1) or ``"idw3"`` (K = min(3, D), weights ∝ 1/great-circle
            distance; an exact hit — within 1e-9 rad — takes all the weight).

    Returns:
        ``(index, weight)``: (Q, K) int64 rows of ``grid`` and (Q, K) float64 weights summing to 1.
    """
    if method not in INTERPOLATIONS:
        raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {method!r}")
    n_k = 1 if method == "nearest" else min(3, grid.shape[0])
    # Largest dot product = smallest great-circle distance; chunked to bound the (Q, D) memory.
    rows = max(1, _SEARCH_ELEMENTS // max(grid.shape[0], 1))
    index = torch.cat([torch.topk(q @ grid.T, n_k, dim=-1).indices for q in query.split(rows)])
    if n_k == 1:
        return index, torch.ones(index.shape, dtype=torch.float64, device=query.device)
    dist = _great_circle(query[:, None, :], grid[index])  # (Q, K)
    hit = dist[:, :1] < _EXACT_HIT  # topk is sorted: column 0 is the nearest
    inv = 1.0 / dist.clamp_min(_EXACT_HIT)
    inv = torch.where(hit, torch.zeros_like(inv), inv)
    inv[:, 0] = torch.where(hit[:, 0], torch.ones_like(inv[:, 0]), inv[:, 0])
    return index, inv / inv.sum(-1, keepdim=True)


# ---------------------------------------------------------------------------------------------
# The listener
# ---------------------------------------------------------------------------------------------


@dataclass(kw_only=True)
class SofaListener(Listener):
    """Listener with a measured HRTF set (SOFA SimpleFreeFieldHRIR); see the module docstring.

    ``head_radius``, ``ear_azimuth`` and ``ear_elevation`` (inherited) describe the head for the
    rest of the scene (clearance checks, ear positions); the ear pressures come from the set alone.

    Attributes:
        hrir: (D, 2, N) float64 head-related impulse responses, (left, right) ears, dimensionless
            (ear pressure / free-field pressure at the head centre).
        directions: (D, 3) float64 unit vectors of the measured directions, head frame
            (x forward, y left, z up).
        sample_rate: Hz, of ``hrir``.
        delay: (D, 2) seconds, broadband delay of each IR (SOFA ``Data.Delay``); None → zeros.
        onset: (D, 2) seconds, onset of each IR from its sample 0 (``Data.Delay`` excluded);
            None → :func:`hrir_onsets` / ``sample_rate``.
        leading_delay: seconds, the common delay removed from every IR; None →
            ``min(onset + delay) − onset_margin / sample_rate``.
        onset_margin: samples, see ``leading_delay``.
        speed_of_sound: m/s, turns the wavenumbers k into frequencies ``f = k·c/(2π)``.
        interpolation: ``"idw3"`` (default) or ``"nearest"``.
        source: where the set came from (file name), for messages.
    """

    hrir: Tensor = field(repr=False)
    directions: Tensor = field(repr=False)
    sample_rate: float
    delay: Tensor | None = field(default=None, repr=False)
    onset: Tensor | None = field(default=None, repr=False)
    leading_delay: float | None = None
    onset_margin: float = 8.0
    speed_of_sound: float = 343.0
    interpolation: str = "idw3"
    source: str = ""

    def __post_init__(self) -> None:
        self.hrir = torch.as_tensor(self.hrir, dtype=torch.float64)
        self.directions = torch.as_tensor(self.directions, dtype=torch.float64)
        if self.hrir.dim() != 3 or self.hrir.shape[1] != 2 or self.hrir.shape[0] < 1 or self.hrir.shape[2] < 1:
            raise ValueError(f"hrir must be (D >= 1, 2, N >= 1), got {tuple(self.hrir.shape)}")
        n_dir = self.hrir.shape[0]
        if self.directions.shape != (n_dir, 3):
            raise ValueError(f"directions must be ({n_dir}, 3), got {tuple(self.directions.shape)}")
        self.directions = self.directions / torch.linalg.vector_norm(self.directions, dim=-1, keepdim=True)
        if self.interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation must be one of {INTERPOLATIONS}, got {self.interpolation!r}")
        if not self.sample_rate > 0 or not self.speed_of_sound > 0:
            raise ValueError("sample_rate and speed_of_sound must be > 0")
        self.sample_rate = float(self.sample_rate)
        if self.delay is None:
            self.delay = torch.zeros(n_dir, 2, dtype=torch.float64)
        if self.onset is None:
            self.onset = hrir_onsets(self.hrir, self.sample_rate) / self.sample_rate
        self.delay = torch.as_tensor(self.delay, dtype=torch.float64).expand(n_dir, 2).clone()
        self.onset = torch.as_tensor(self.onset, dtype=torch.float64).expand(n_dir, 2).clone()
        if self.leading_delay is None:
            self.leading_delay = float((self.onset + self.delay).min()) - self.onset_margin / self.sample_rate

    @classmethod
    def from_file(
        cls,
        path: str,
        *,
        head_radius: float = 0.0875,
        ear_azimuth: float = math.pi / 2,
        ear_elevation: float = 0.0,
        speed_of_sound: float = 343.0,
        interpolation: str = "idw3",
        onset_margin: float = 8.0,
    ) -> SofaListener:
        """Read a SimpleFreeFieldHRIR SOFA file.

        Reads ``Data.IR`` (M, R=2, N), ``Data.SamplingRate`` (scalar, (1,) or (M,), all equal),
        optional ``Data.Delay`` ((1, 2) or (M, 2) samples), ``SourcePosition`` ((M, 3) or (1, 3);
        ``Type`` spherical (degree, degree, metre) or cartesian (metre)), optional
        ``ListenerPosition`` (subtracted) and ``ListenerView``/``ListenerUp`` (rotated into the
        listener's frame).

        Args:
            path: SOFA file. head_radius: metres. ear_azimuth, ear_elevation: radians.
            speed_of_sound: m/s. interpolation: ``"idw3"`` | ``"nearest"``.
            onset_margin: samples kept before the earliest onset (see the module docstring).

        Raises:
            DataError: the file is missing, not HDF5, of another convention, or has a missing,
                misshapen, non-finite or absurd variable; the message names the file.
        """
        name = os.fspath(path)
        with open_sofa(name, "SimpleFreeFieldHRIR") as handle:
            if "Data.IR" not in handle:
                raise DataError(f"{name}: missing variable Data.IR")
            if not isinstance(handle["Data.IR"], h5py.Dataset):
                raise DataError(f"{name}: Data.IR is a group, expected a variable (M, R=2, N)")
            shape = tuple(handle["Data.IR"].shape)
            if len(shape) != 3:
                raise DataError(f"{name}: Data.IR has shape {shape}, expected (M, R=2, N)")
            n_meas, n_rec, n_taps = shape
            if n_rec != 2:
                raise DataError(f"{name}: Data.IR has R={n_rec} receivers, expected 2 (left, right ears)")
            if n_meas < 1 or n_taps < 1:
                raise DataError(f"{name}: Data.IR is empty (shape {shape})")
            if n_meas > MAX_MEASUREMENTS or n_taps > MAX_TAPS:
                raise DataError(
                    f"{name}: Data.IR has shape {shape}; at most {MAX_MEASUREMENTS} measurements and {MAX_TAPS} taps are accepted"
                )
            ir = read_variable(handle, "Data.IR", name)
            rate = read_variable(handle, "Data.SamplingRate", name).reshape(-1)
            if rate.size not in (1, n_meas):
                raise DataError(f"{name}: Data.SamplingRate has {rate.size} values, expected 1 or M={n_meas}")
            if not np.all(rate == rate[0]):
                raise DataError(f"{name}: Data.SamplingRate differs between measurements; one rate is required")
            fs = float(rate[0])
            if not 0 < fs <= MAX_SAMPLE_RATE:
                raise DataError(f"{name}: Data.SamplingRate is {fs:g} Hz; it must be in (0, {MAX_SAMPLE_RATE:g}]")
            delay = read_variable(handle, "Data.Delay", name, required=False)
            if delay is None:
                delay = np.zeros((n_meas, 2))
            else:
                if delay.ndim == 1:
                    delay = delay[None, :]
                if delay.ndim != 2 or delay.shape[1] != 2 or delay.shape[0] not in (1, n_meas):
                    raise DataError(f"{name}: Data.Delay has shape {delay.shape}, expected (1, 2) or ({n_meas}, 2)")
                if np.abs(delay).max() > MAX_TAPS * 16:
                    raise DataError(f"{name}: Data.Delay holds absurd values (up to {np.abs(delay).max():g} samples)")
                delay = np.broadcast_to(delay, (n_meas, 2))
            src = read_positions(handle, "SourcePosition", n_meas, name, required=True)
            lis = read_positions(handle, "ListenerPosition", n_meas, name)
            rot = view_rotations(handle, "Listener", n_meas, name)
        rel = src - (0.0 if lis is None else lis)
        local = np.einsum("mij,mi->mj", rot, rel)  # Rᵀ · (source − listener)
        norm = np.linalg.norm(local, axis=-1)
        if (norm < 1e-9).any():
            raise DataError(f"{name}: SourcePosition {int(np.argmin(norm))} coincides with the listener; no direction")
        peaks = np.abs(ir).max(-1)
        if (peaks == 0).any():
            m, r = np.argwhere(peaks == 0)[0]
            raise DataError(f"{name}: Data.IR measurement {m}, receiver {r} is all zeros")
        return cls(
            head_radius=head_radius, ear_azimuth=ear_azimuth, ear_elevation=ear_elevation,
            hrir=torch.from_numpy(np.ascontiguousarray(ir)), directions=torch.from_numpy(local / norm[:, None]),
            sample_rate=fs, delay=torch.from_numpy(np.ascontiguousarray(delay)) / fs,
            onset_margin=onset_margin, speed_of_sound=speed_of_sound, interpolation=interpolation, source=name,
        )

    def hrtf(self, freqs: Tensor, directions: Tensor) -> Tensor:
        """HRTFs (ear pressure / free-field pressure at the head centre) toward head-frame directions.

        Args:
            freqs: (F,) Hz (≥ 0).
            directions: (Q, 3) unit vectors of the arrival direction (head centre → source), head frame.

        Returns:
            (F, Q, 2) complex128, (left, right) ears, with the common ``leading_delay`` removed.
        """
        dev = freqs.device
        freqs = freqs.to(torch.float64)
        hrir, grid = self.hrir.to(dev), self.directions.to(dev)
        onset, delay = self.onset.to(dev), self.delay.to(dev)
        index, weight = interpolation_weights(directions.to(dev, torch.float64), grid, self.interpolation)
        used, inverse = torch.unique(index, return_inverse=True)  # DTFT only the directions in use
        n_taps = hrir.shape[-1]
        # Above the set's Nyquist frequency hold the delay-free spectrum (no data there).
        f_held = freqs.clamp(max=self.sample_rate / 2)
        t = torch.arange(n_taps, dtype=torch.float64, device=dev) / self.sample_rate  # (N,) s
        kernel = torch.exp(-2j * math.pi * f_held[:, None] * t[None, :])  # (F, N)
        spectra = kernel @ hrir[used].reshape(-1, n_taps).T.to(torch.complex128)  # (F, U·2)
        spectra = spectra.reshape(freqs.shape[0], used.shape[0], 2)
        spectra = spectra * torch.exp(2j * math.pi * f_held[:, None, None] * onset[used][None])  # own onset removed
        mixed = (spectra[:, inverse] * weight[None, :, :, None]).sum(2)  # (F, Q, 2)
        tau = ((onset + delay)[index] * weight[..., None]).sum(1) - self.leading_delay  # (Q, 2) s
        return mixed * torch.exp(-2j * math.pi * freqs[:, None, None] * tau[None])

    def monopole_response(self, k: Tensor, source_rel: Tensor, yaw: Tensor) -> Tensor:
        """Ear pressures from unit monopoles: ``H_ear(f, u) · e^{−jkr}/(4πr)``.

        Args:
            k: (F,) wavenumbers, rad/m (≥ 0); ``f = k·speed_of_sound/(2π)``.
            source_rel: (M, 3) source positions minus head centre, scene frame, metres (r > 0).
            yaw: (Y,) head yaws, radians.

        Returns:
            (F, M, Y, 2) complex128, Pa, ears (left, right).
        """
        dev = k.device
        k = k.to(torch.float64)
        src = source_rel.to(dev, torch.float64)
        dist = torch.linalg.vector_norm(src, dim=-1)  # (M,)
        if bool((dist <= 0).any()):
            raise ValueError("a source sits at the head centre; its arrival direction is undefined")
        rot = head_rotation(yaw.to(dev, torch.float64))  # (Y, 3, 3), columns = head axes
        u_head = torch.einsum("yij,mi->myj", rot, src / dist[:, None]).reshape(-1, 3)  # Rᵀ u
        h = self.hrtf(k * self.speed_of_sound / (2 * math.pi), u_head)
        h = h.reshape(k.shape[0], src.shape[0], yaw.shape[0], 2)
        free = torch.exp(-1j * k[:, None] * dist[None]) / (4 * math.pi * dist[None])  # (F, M)
        return h * free[:, :, None, None]
