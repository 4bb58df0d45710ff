"""The acoustic scene: transfer tensors the optimizer and the evaluator use.

Given a device (drivers), a listener (ears), a zone (listener points) and a room, this module
computes, on the frequency grid ``f_i = i·fs/n_fft`` (i = 0 … n_fft/2):

* ``H`` (freq, point, ear, driver): pressure at each ear of each zone point per unit driver input;
* ``G_ring`` (freq, azimuth, driver) and ``G_sphere`` (freq, direction, driver): free-field far-field
  patterns ``lim r e^{jkr} p``, phase referenced to the scene origin (the device centre);
* ``H_ref`` (freq, point, ear, 2): the same ears listening to a real ±30° stereo pair of unit
  monopoles (channels L, R; L at the nominal listener's left), through the same head and room.

Scale: a unit monopole radiates ``e^{−jkr}/(4πr)`` (DESIGN.md §8).

How a path is computed. Each driver's field near the head is modelled as a spherical wave from
its expansion origin (its "acoustic centre") carrying the driver's directivity in the emission
direction: ``p_ear = D_d(u) · L(f, s, ear)`` with ``L`` the listener's exact response to a unit
monopole at the (image) source ``s`` and ``D_d`` the directivity factor. For the direct path
``D_d = p_d(head centre) / p_mono(head centre)`` (exact near field); for image paths
``D_d = 4π G_d(u_mirrored)`` (far field; images are metres away). With the omnidirectional
listener and monopole drivers every path is therefore exact. The neglected effect is the
driver's directivity varying across the head (±a/r ≈ ±2.5° at 2 m).

The DC bin is evaluated at ``fs/n_fft/8`` (every field here is continuous at k → 0).
Nothing loops in Python over points, frequencies or images: images, points and yaws are batched
tensors; frequencies are processed in chunks only to bound memory.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

from spatialopt.acoustics import sh
from spatialopt.acoustics.drivers import Driver
from spatialopt.acoustics.head import Listener
from spatialopt.acoustics.room import Shoebox
from spatialopt.geometry import unit_vector

__all__ = ["Device", "Zone", "Scene", "ear_transfer", "far_field_patterns", "build_scene", "reference_pair"]


@dataclass
class Device:
    """A loudspeaker: drivers (sharing an optional rigid enclosure sphere) and the SH order.

    Attributes:
        drivers: list of :class:`Driver`.
        enclosure_radius: metres or None.
        sh_order: truncation order of every driver's series.
    """

    drivers: list[Driver]
    enclosure_radius: float | None
    sh_order: int

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.drivers]

    def bounding_radius(self) -> float:
        """Radius (m) of a sphere about the scene origin that holds the whole device."""
        r = self.enclosure_radius or 0.0
        for d in self.drivers:
            r = max(r, float(torch.linalg.vector_norm(d.position)), float(torch.linalg.vector_norm(d.origin)) + d.radius_of_expansion())
        return r


@dataclass
class Zone:
    """Listener points: a grid of head positions times head yaws, with weights.

    Attributes:
        positions: (Q, 3) head-centre positions, scene frame, metres.
        yaws: (Y,) head yaws, radians.
        weights: (Q·Y,) non-negative, summing to 1; point index = q·Y + y.
        nominal_index: index of the nominal point (zero offsets) among the Q·Y points.
    """

    positions: Tensor
    yaws: Tensor
    weights: Tensor
    nominal_index: int

    @property
    def points(self) -> Tensor:
        """(P, 4) = (x, y, z, yaw) with P = Q·Y, q-major; metres and radians."""
        q, y = self.positions.shape[0], self.yaws.shape[0]
        pos = self.positions[:, None, :].expand(q, y, 3)
        yaw = self.yaws[None, :, None].expand(q, y, 1)
        return torch.cat([pos, yaw], -1).reshape(q * y, 4)


def evaluation_wavenumbers(freqs: Tensor, speed_of_sound: float) -> Tensor:
    """(F,) rad/m, with a DC bin replaced by an eighth of the first non-zero bin."""
    freqs = freqs.to(torch.float64)
    if freqs.numel() > 1 and float(freqs[0]) == 0.0:
        freqs = freqs.clone()
        freqs[0] = freqs[1] / 8
    return 2 * math.pi * freqs / speed_of_sound


def _group_by_position(drivers: list[Driver]) -> list[tuple[Tensor, list[int]]]:
    """Drivers that share an acoustic centre (position) share one set of listener responses."""
    groups: list[tuple[Tensor, list[int]]] = []
    for i, d in enumerate(drivers):
        for centre, members in groups:
            if torch.allclose(centre, d.position, atol=1e-12):
                members.append(i)
                break
        else:
            groups.append((d.position.to(torch.float64), [i]))
    return groups


def ear_transfer(
    drivers: list[Driver],
    listener: Listener,
    room: Shoebox | None,
    freqs: Tensor,
    positions: Tensor,
    yaws: Tensor,
    sh_order: int,
    speed_of_sound: float = 343.0,
    freq_chunk: int = 64,
) -> Tensor:
    """Ear transfer of every driver to every listener point.

    Per driver, the head sees spherical waves from the driver's acoustic centre (its position)
    and from that centre's images; each carries the driver's directivity:

    * direct path: per ear, the exact driver field at the ear position divided by the field a
      unit monopole at the driver position would produce there (so with the omni listener the
      result is the exact driver field at each microphone);
    * image paths: ``4π G(u)`` with ``G`` the far-field pattern referenced to the driver position,
      in the emission direction ``u`` toward the head centre, mirrored back through the walls.

    Args:
        drivers: D drivers.
        listener: the ears.
        room: a :class:`Shoebox` or None for free field.
        freqs: (F,) Hz.
        positions: (Q, 3) head-centre positions, scene frame, metres.
        yaws: (Y,) head yaws, radians.
        sh_order: truncation order of the driver series.
        speed_of_sound: m/s.
        freq_chunk: frequencies per chunk (memory bound only; the result does not depend on it).

    Returns:
        (F, Q, Y, 2, D) complex128, Pa per unit driver input.
    """
    positions = positions.to(torch.float64)
    k_all = evaluation_wavenumbers(freqs, speed_of_sound)
    n_f, n_q, n_y, n_d = k_all.shape[0], positions.shape[0], yaws.shape[0], len(drivers)
    out = torch.zeros(n_f, n_q, n_y, 2, n_d, dtype=torch.complex128)
    ears = positions[:, None, None, :] + listener.head_radius * listener.ear_directions(yaws)[None]  # (Q, Y, 2, 3)
    for centre, members in _group_by_position(drivers):
        if room is None:
            img_pos, mirror = centre[None, :], torch.ones(1, 3, dtype=torch.float64)
            hits = torch.zeros(1, 6)
        else:
            img_pos, mirror, hits = room.images(centre)
        n_i = img_pos.shape[0]
        rel = img_pos[:, None, :] - positions[None, :, :]  # (I, Q, 3) source − head centre
        dist = torch.linalg.vector_norm(rel, dim=-1)  # (I, Q)
        emit = (-rel / dist[..., None] * mirror[:, None, :])[1:].reshape(-1, 3)  # image emission dirs, un-mirrored
        ear_dist = torch.linalg.vector_norm(ears - centre, dim=-1).reshape(-1)  # (Q·Y·2,)
        listen_all = listener.monopole_response(k_all, rel.reshape(-1, 3), yaws).reshape(n_f, n_i, n_q, n_y, 2)
        for start in range(0, n_f, freq_chunk):
            stop = min(start + freq_chunk, n_f)
            k = k_all[start:stop]
            listen = listen_all[start:stop]
            gains = room.image_gains(hits, freqs[start:stop]) if room is not None else None  # (Fc, I)
            mono_ears = torch.exp(-1j * k[:, None] * ear_dist) / (4 * math.pi * ear_dist)  # (Fc, Q·Y·2)
            for d_idx in members:
                drv = drivers[d_idx]
                # Analytic series have converged well below sh_order at low frequency.
                order = min(sh_order, drv.auto_order(float(k.max())) + 8) if drv.axisymmetric else sh_order
                direct = drv.pressure(k, ears.reshape(-1, 3), order) / mono_ears
                result = direct.reshape(-1, n_q, n_y, 2) * listen[:, 0]
                if n_i > 1:
                    # Far field about the expansion origin, re-referenced to the driver position.
                    shift = torch.exp(-1j * k[:, None] * (emit @ (drv.position - drv.origin))[None, :])
                    factor = 4 * math.pi * drv.far_field(k, emit, order) * shift
                    factor = factor.reshape(-1, n_i - 1, n_q) * gains[:, 1:, None]
                    result = result + torch.einsum("fiq,fiqye->fqye", factor, listen[:, 1:])
                out[start:stop, ..., d_idx] = result
    return out


def far_field_patterns(drivers: list[Driver], freqs: Tensor, directions: Tensor, sh_order: int, speed_of_sound: float = 343.0) -> Tensor:
    """Free-field far-field patterns, phase referenced to the scene origin.

    Args:
        drivers: D drivers. freqs: (F,) Hz. directions: (M, 3) unit vectors, scene frame.
        sh_order: truncation order. speed_of_sound: m/s.

    Returns:
        (F, M, D) complex128, metres·Pa (a unit monopole at the origin gives 1/(4π)).
    """
    k = evaluation_wavenumbers(freqs, speed_of_sound)
    directions = directions.to(torch.float64)
    cols = []
    for drv in drivers:
        shift = torch.exp(1j * k[:, None] * (directions @ drv.origin)[None, :])  # origin → scene origin
        cols.append(drv.far_field(k, directions, sh_order) * shift)
    return torch.stack(cols, dim=-1)


def reference_pair(listener_position: Tensor, distance: float, angle: float = math.pi / 6) -> Tensor:
    """Positions of a real stereo pair seen at ±``angle`` from a listener facing the device (−x).

    Args:
        listener_position: (3,) nominal head centre, metres.
        distance: speaker distance from the listener, metres.
        angle: half opening angle, radians (30° by default).

    Returns:
        (2, 3) positions (L, R); L is at the listener's left, i.e. toward −y.
    """
    offsets = torch.tensor(
        [[-math.cos(angle), -math.sin(angle), 0.0], [-math.cos(angle), math.sin(angle), 0.0]], dtype=torch.float64
    )
    return listener_position.to(torch.float64)[None, :] + distance * offsets


@dataclass
class Scene:
    """Transfer tensors of one device/listener/zone/room, as saved by ``spatialopt-scene``.

    Shapes (F frequencies, P = Q·Y zone points, D drivers, A ring azimuths, S sphere directions):
    ``freqs`` (F,) Hz; ``H`` (F, P, 2, D); ``points`` (P, 4) x, y, z [m], yaw [rad];
    ``point_weights`` (P,); ``G_ring`` (F, A, D); ``ring_az`` (A,) rad; ``G_sphere`` (F, S, D);
    ``sphere_dirs`` (S, 2) colatitude, azimuth [rad]; ``sphere_weights`` (S,) sr;
    ``H_ref`` (F, P, 2, 2); ``driver_positions`` (D, 3) m; ``driver_bands`` (D, 2) Hz.
    """

    freqs: Tensor
    H: Tensor
    points: Tensor
    point_weights: Tensor
    nominal_index: int
    G_ring: Tensor
    ring_az: Tensor
    G_sphere: Tensor
    sphere_dirs: Tensor
    sphere_weights: Tensor
    H_ref: Tensor
    driver_names: list[str]
    driver_positions: Tensor
    driver_bands: Tensor
    sample_rate: float
    speed_of_sound: float
    info: dict = field(default_factory=dict)

    ARRAY_KEYS = (
        "freqs", "H", "points", "point_weights", "G_ring", "ring_az", "G_sphere", "sphere_dirs",
        "sphere_weights", "H_ref", "driver_positions", "driver_bands",
    )

    def save_npz(self, path) -> None:
        """Write the scene with ``numpy.savez`` (complex128 arrays; loadable with ``allow_pickle=False``).

        Written to a temporary file and renamed, so an interrupted write never leaves a partial file.
        """
        from spatialopt.fileio import atomic_path

        arrays = {key: getattr(self, key).detach().cpu().numpy() for key in self.ARRAY_KEYS}
        arrays["driver_names"] = np.array(self.driver_names, dtype=np.str_)
        arrays["nominal_index"] = np.array(self.nominal_index)
        arrays["sample_rate"] = np.array(self.sample_rate)
        arrays["speed_of_sound"] = np.array(self.speed_of_sound)
        with atomic_path(path, suffix=".npz") as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load_npz(cls, path) -> "Scene":
        """Read a scene written by :meth:`save_npz`.

        No pickle, and no allocation sized by the file's claims: the archive is read with
        :func:`spatialopt.acoustics.measured.read_npz` (headers checked before any data is read, at
        most :data:`MAX_ARRAY_BYTES` per array). Then every array is checked against the shapes in
        the class docstring (consistent F, P, D, A, S), finite, ``nominal_index`` in ``[0, P)``,
        ``sample_rate`` and ``speed_of_sound`` positive. Arrays are returned as float64 (the
        transfer tensors ``H``, ``G_ring``, ``G_sphere``, ``H_ref`` as complex128).

        Raises:
            DataError: naming the file and the problem (unreadable archive, missing or malformed
                array, inconsistent shapes, non-finite values).
        """
        import os

        from spatialopt.acoustics.measured import read_npz
        from spatialopt.errors import DataError

        name = os.fspath(path)
        scalars = ("nominal_index", "sample_rate", "speed_of_sound")
        kinds = {key: "biufc" for key in cls.ARRAY_KEYS} | {key: "biuf" for key in scalars} | {"driver_names": "U"}
        data = read_npz(name, (*cls.ARRAY_KEYS, "driver_names", *scalars), kinds=kinds,
                        max_elements=MAX_ARRAY_BYTES // 16, max_bytes=MAX_ARRAY_BYTES)
        complex_keys = ("H", "G_ring", "G_sphere", "H_ref")
        arrays = {}
        for key in cls.ARRAY_KEYS:
            arr = data[key]
            if arr.dtype.kind == "c" and key not in complex_keys:
                raise DataError(f"{name}: {key} is complex, expected real numbers")
            arr = arr.astype(np.complex128 if key in complex_keys else np.float64)
            if not np.isfinite(arr).all():
                raise DataError(f"{name}: {key} contains NaN or Inf")
            arrays[key] = arr
        names = data["driver_names"]
        extra = {}
        for key in scalars:
            if data[key].size != 1:
                raise DataError(f"{name}: {key} must be a single number, got shape {data[key].shape}")
            extra[key] = data[key].reshape(()).item()
        _check_scene_shapes(name, arrays, names)
        n_points = arrays["points"].shape[0]
        nominal = extra["nominal_index"]
        if isinstance(nominal, float) and not nominal.is_integer() or not 0 <= nominal < n_points:
            raise DataError(f"{name}: nominal_index={nominal!r} is not a point index in [0, {n_points})")
        for key in ("sample_rate", "speed_of_sound"):
            if not (math.isfinite(extra[key]) and extra[key] > 0):
                raise DataError(f"{name}: {key}={extra[key]!r} must be a positive finite number")
        return cls(driver_names=[str(n) for n in names], nominal_index=int(nominal),
                   sample_rate=float(extra["sample_rate"]), speed_of_sound=float(extra["speed_of_sound"]),
                   **{key: torch.from_numpy(arr) for key, arr in arrays.items()})

    def summary(self) -> str:
        """A short human-readable description with a few headline numbers."""
        f = self.freqs
        nominal = self.H[:, self.nominal_index]  # (F, 2, D)
        lines = [
            f"scene: {len(self.driver_names)} drivers ({', '.join(self.driver_names)}), "
            f"{self.points.shape[0]} zone points, {f.shape[0]} frequencies (0–{float(f[-1]):.0f} Hz, "
            f"fs={self.sample_rate:g} Hz), ring {self.ring_az.shape[0]} az, sphere {self.sphere_dirs.shape[0]} dirs",
        ]
        for key, value in self.info.items():
            lines.append(f"  {key}: {value}")
        lines.append("  driver level at the nominal point (dB re unit monopole at 1 m, left/right ear):")
        for hz in (250.0, 1000.0, 4000.0, 12000.0):
            i = int(torch.argmin((f - hz).abs()))
            lev = 20 * torch.log10(nominal[i].abs() * 4 * math.pi).numpy()
            cells = ", ".join(f"{n} {lev[0, d]:+.1f}/{lev[1, d]:+.1f}" for d, n in enumerate(self.driver_names))
            lines.append(f"    {float(f[i]):7.0f} Hz: {cells}")
        ref = self.H_ref[:, self.nominal_index]  # (F, 2 ears, 2 ch)
        ild = 20 * torch.log10(ref[:, 0, 0].abs() / ref[:, 1, 0].abs())
        cells = ", ".join(f"{hz / 1000:g} kHz {float(ild[int(torch.argmin((f - hz).abs()))]):.1f} dB" for hz in (500, 1000, 4000, 8000))
        lines.append(f"  reference ±30° pair, ILD of the L speaker at the nominal point: {cells}")
        return "\n".join(lines)


MAX_ARRAY_BYTES = 2**31
"""Largest array :meth:`Scene.load_npz` reads (bytes): a scene of 4097 frequencies, 1922 sphere
directions and 16 drivers holds 2 GB in ``G_sphere``."""


def _check_scene_shapes(name: str, arrays: dict, names: np.ndarray) -> None:
    """Ranks and mutual consistency of a loaded scene's arrays (Scene docstring), DataError else."""
    from spatialopt.errors import DataError

    ranks = {"freqs": 1, "H": 4, "points": 2, "point_weights": 1, "G_ring": 3, "ring_az": 1, "G_sphere": 3,
             "sphere_dirs": 2, "sphere_weights": 1, "H_ref": 4, "driver_positions": 2, "driver_bands": 2}
    for key, rank in ranks.items():
        if arrays[key].ndim != rank:
            raise DataError(f"{name}: {key} has shape {arrays[key].shape}, expected {rank} dimension(s)")
    if names.ndim != 1:
        raise DataError(f"{name}: driver_names has shape {names.shape}, expected (D,)")
    f, p, d = arrays["H"].shape[0], arrays["H"].shape[1], arrays["H"].shape[3]
    a, s = arrays["G_ring"].shape[1], arrays["G_sphere"].shape[1]
    expected = {"freqs": (f,), "H": (f, p, 2, d), "points": (p, 4), "point_weights": (p,), "G_ring": (f, a, d),
                "ring_az": (a,), "G_sphere": (f, s, d), "sphere_dirs": (s, 2), "sphere_weights": (s,),
                "H_ref": (f, p, 2, 2), "driver_positions": (d, 3), "driver_bands": (d, 2)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise DataError(f"{name}: {key} has shape {arrays[key].shape}, expected {shape} "
                            f"(F={f} frequencies, P={p} points, D={d} drivers, A={a} ring and S={s} sphere directions)")
    if min(f, p, d) < 1:
        raise DataError(f"{name}: empty scene (F={f} frequencies, P={p} points, D={d} drivers)")
    if names.shape[0] != d:
        raise DataError(f"{name}: {names.shape[0]} driver_names for {d} drivers")


def ring_directions(count: int) -> tuple[Tensor, Tensor]:
    """``count`` equally spaced horizontal azimuths in [−π, π) and their unit vectors (count, 3)."""
    az = torch.arange(count, dtype=torch.float64) * (2 * math.pi / count) - math.pi
    return az, unit_vector(az, torch.zeros_like(az))


def build_scene(
    device: Device,
    listener: Listener,
    zone: Zone,
    room: Shoebox | None,
    sample_rate: float,
    n_fft: int,
    speed_of_sound: float = 343.0,
    ring_count: int = 360,
    sphere_order: int = 30,
    reference_distance: float | None = None,
) -> Scene:
    """Compute every transfer tensor of a scene (see the module docstring).

    Args:
        device, listener, zone, room: the scene's parts (room None = free field).
        sample_rate: Hz. n_fft: FFT size; F = n_fft/2 + 1 frequencies.
        speed_of_sound: m/s.
        ring_count: horizontal far-field directions (A).
        sphere_order: the full-sphere grid integrates SH products up to this order exactly.
        reference_distance: distance of the ±30° reference pair from the nominal listener (m);
            default: the nominal listener's distance from the device.

    Returns:
        :class:`Scene`.
    """
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate).to(torch.float64)
    order = device.sh_order
    h = ear_transfer(device.drivers, listener, room, freqs, zone.positions, zone.yaws, order, speed_of_sound)
    n_f, n_q, n_y = h.shape[:3]
    h = h.reshape(n_f, n_q * n_y, 2, len(device.drivers))

    nominal = zone.points[zone.nominal_index, :3]
    distance = reference_distance or float(torch.linalg.vector_norm(nominal))
    pair_pos = reference_pair(nominal, distance)
    eye = torch.eye(3, dtype=torch.float64)
    pair = [
        Driver(name=name, model="monopole", position=p, rotation=eye, origin=p, band_hz=(0.0, sample_rate / 2))
        for name, p in zip(("ref_L", "ref_R"), pair_pos)
    ]
    h_ref = ear_transfer(pair, listener, room, freqs, zone.positions, zone.yaws, 0, speed_of_sound)
    h_ref = h_ref.reshape(n_f, n_q * n_y, 2, 2)

    ring_az, ring_vec = ring_directions(ring_count)
    g_ring = far_field_patterns(device.drivers, freqs, ring_vec, order, speed_of_sound)
    colat, az, weights = sh.gauss_sphere(sphere_order)
    sphere_vec = unit_vector(az, math.pi / 2 - colat)
    g_sphere = far_field_patterns(device.drivers, freqs, sphere_vec, order, speed_of_sound)

    info = {"sh_order": order, "room": "free field" if room is None else
            f"shoebox {[round(float(v), 3) for v in room.dims]} m, max_order {room.max_order}, "
            f"Sabine T60 ≈ {room.sabine_t60(speed_of_sound):.2f} s"}
    return Scene(
        freqs=freqs, H=h, points=zone.points, point_weights=zone.weights, nominal_index=zone.nominal_index,
        G_ring=g_ring, ring_az=ring_az, G_sphere=g_sphere, sphere_dirs=torch.stack([colat, az], -1),
        sphere_weights=weights, H_ref=h_ref, driver_names=device.names,
        driver_positions=torch.stack([d.position for d in device.drivers]),
        driver_bands=torch.tensor([d.band_hz for d in device.drivers], dtype=torch.float64),
        sample_rate=float(sample_rate), speed_of_sound=float(speed_of_sound), info=info,
    )

