"""Builders: plain config mappings (degrees and metres, as in the YAML files) → library objects.

Library code never sees a Hydra ``DictConfig``: the CLI converts it with
``OmegaConf.to_container(cfg, resolve=True)`` and calls these builders. Every value is checked
here, at the boundary, and a wrong one raises :class:`~spatialopt.errors.ConfigError` naming the
key, the value and the fix.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from spatialopt.acoustics.drivers import Driver, truncation_error
from spatialopt.acoustics.head import Listener, OmniPair, SphereHead
from spatialopt.acoustics.room import OCTAVE_CENTRES_HZ, Shoebox
from spatialopt.acoustics.scene import Device, Scene, Zone, build_scene
from spatialopt.errors import ConfigError, DataError
from spatialopt.geometry import rotation_from_az_el, unit_vector

__all__ = ["build_device", "build_listener", "build_zone", "build_room", "scene_from_config"]

DRIVER_MODELS = ("monopole", "rigid_sphere_point", "rigid_sphere_piston", "measured")
SPHERE_MODELS = ("rigid_sphere_point", "rigid_sphere_piston")
LISTENER_TYPES = ("sphere_head", "omni", "sofa")
# Relative far-field energy allowed in the top two degrees of a truncated series.
TRUNCATION_TOLERANCE = 1e-6


def _number(value: Any, key: str, *, positive: bool = False, nonnegative: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(key, value, "must be a finite number")
    if positive and value <= 0:
        raise ConfigError(key, value, "must be > 0")
    if nonnegative and value < 0:
        raise ConfigError(key, value, "must be >= 0")
    return float(value)


def _vector(value: Any, key: str, length: int = 3) -> torch.Tensor:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != length:
        raise ConfigError(key, value, f"must be a list of {length} numbers (metres)")
    return torch.tensor([_number(v, f"{key}[{i}]") for i, v in enumerate(value)], dtype=torch.float64)


def _number_list(value: Any, key: str) -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) == 0:
        raise ConfigError(key, value, "must be a non-empty list of numbers")
    return [_number(v, f"{key}[{i}]") for i, v in enumerate(value)]


def _require(cfg: Mapping, key: str, prefix: str):
    if key not in cfg or cfg[key] is None:
        raise ConfigError(f"{prefix}.{key}", None, "is required")
    return cfg[key]


def build_device(cfg: Mapping, speed_of_sound: float, f_max: float) -> Device:
    """Build and validate a :class:`Device` from ``device:`` config (metres, degrees).

    Args:
        cfg: mapping with ``enclosure_radius`` (m or None), ``drivers`` (list) and optional
            ``sh_order`` ("auto" or int) and ``name``.
        speed_of_sound: m/s. f_max: highest frequency the scene evaluates, Hz (for the SH order).
    """
    radius = cfg.get("enclosure_radius")
    if radius is not None:
        radius = _number(radius, "device.enclosure_radius", positive=True)
    drivers_cfg = cfg.get("drivers")
    if not isinstance(drivers_cfg, Sequence) or isinstance(drivers_cfg, str) or not drivers_cfg:
        raise ConfigError("device.drivers", drivers_cfg, "must be a non-empty list of drivers")
    drivers: list[Driver] = []
    names: set[str] = set()
    for i, dcfg in enumerate(drivers_cfg):
        drv = _build_driver(dcfg, i, radius, speed_of_sound)
        if drv.name in names:
            raise ConfigError(f"device.drivers[{i}].name", drv.name, "driver names must be unique")
        names.add(drv.name)
        drivers.append(drv)
    _check_overlaps(drivers, radius)

    k_max = 2 * math.pi * f_max / speed_of_sound
    auto = max(d.auto_order(k_max) for d in drivers)
    order_cfg = cfg.get("sh_order", "auto")
    if order_cfg in (None, "auto"):
        order = auto
    else:
        if isinstance(order_cfg, bool) or not isinstance(order_cfg, int) or order_cfg < 0:
            raise ConfigError("device.sh_order", order_cfg, "must be 'auto' or an integer >= 0")
        order = order_cfg
        k_top = torch.tensor([k_max], dtype=torch.float64)
        for d in drivers:
            if d.model == "monopole":
                continue
            err = float(truncation_error(d.coefficients(k_top, order), k_top)[0]) if order >= 1 else 1.0
            if err > TRUNCATION_TOLERANCE:
                raise ConfigError(
                    "device.sh_order", order,
                    f"the series of driver '{d.name}' has not converged at {f_max:.0f} Hz "
                    f"(relative energy {err:.1e} in its top orders, tolerance {TRUNCATION_TOLERANCE:.0e}); "
                    f"use sh_order >= {auto} or 'auto'",
                )
    return Device(drivers=drivers, enclosure_radius=radius, sh_order=order)


def _build_driver(dcfg: Any, i: int, radius: float | None, speed_of_sound: float) -> Driver:
    prefix = f"device.drivers[{i}]"
    if not isinstance(dcfg, Mapping):
        raise ConfigError(prefix, dcfg, "must be a mapping with name, model, position/azimuth, band_hz")
    name = str(_require(dcfg, "name", prefix))
    model = dcfg.get("model", "rigid_sphere_point")
    if model not in DRIVER_MODELS:
        raise ConfigError(f"{prefix}.model", model, f"must be one of {', '.join(DRIVER_MODELS)}")
    az = math.radians(_number(dcfg.get("azimuth", 0.0), f"{prefix}.azimuth"))
    el = math.radians(_number(dcfg.get("elevation", 0.0), f"{prefix}.elevation"))
    rotation = rotation_from_az_el(az, el)
    band = dcfg.get("band_hz", [20.0, 20000.0])
    if not isinstance(band, Sequence) or len(band) != 2:
        raise ConfigError(f"{prefix}.band_hz", band, "must be [low, high] in Hz")
    lo, hi = (_number(b, f"{prefix}.band_hz", nonnegative=True) for b in band)
    if not lo < hi:
        raise ConfigError(f"{prefix}.band_hz", list(band), "needs low < high")

    cap_angle = None
    measured = None
    if model in SPHERE_MODELS:
        if radius is None:
            raise ConfigError(f"{prefix}.model", model, "needs device.enclosure_radius (the rigid sphere it sits on)")
        axis = unit_vector(torch.tensor(az, dtype=torch.float64), torch.tensor(el, dtype=torch.float64))
        if dcfg.get("position") is None:
            position = radius * axis
        else:
            position = _vector(dcfg["position"], f"{prefix}.position")
            dist = float(torch.linalg.vector_norm(position))
            if abs(dist - radius) > 1e-3:
                raise ConfigError(
                    f"{prefix}.position", list(dcfg["position"]),
                    f"a {model} driver sits on the enclosure sphere: |position| must be {radius} m "
                    f"(it is {dist:.4f} m); or omit position to place it at azimuth/elevation",
                )
            angle = math.degrees(math.acos(max(-1.0, min(1.0, float(position @ axis) / dist))))
            if angle > 1.0:
                raise ConfigError(
                    f"{prefix}.azimuth", dcfg.get("azimuth", 0.0),
                    f"a sphere-mounted driver faces outward: its azimuth/elevation must point at its position "
                    f"(they differ by {angle:.1f}°); or omit position",
                )
        origin = torch.zeros(3, dtype=torch.float64)
        if model == "rigid_sphere_piston":
            cap_deg = _number(dcfg.get("cap_angle", 20.0), f"{prefix}.cap_angle", positive=True)
            if cap_deg >= 90:
                raise ConfigError(f"{prefix}.cap_angle", cap_deg, "must be in (0, 90) degrees")
            cap_angle = math.radians(cap_deg)
    else:
        position = _vector(_require(dcfg, "position", prefix), f"{prefix}.position")
        origin = position
        if radius is not None and float(torch.linalg.vector_norm(position)) < radius - 1e-3:
            raise ConfigError(
                f"{prefix}.position", list(dcfg["position"]),
                f"lies inside the rigid enclosure (radius {radius} m); move it outside or use a sphere-mounted model",
            )
        if model == "measured":
            measured = _load_measured(dcfg, prefix, speed_of_sound)
    return Driver(name=name, model=model, position=position, rotation=rotation, origin=origin,
                  band_hz=(lo, hi), enclosure_radius=radius if model in SPHERE_MODELS else None,
                  cap_angle=cap_angle, measured=measured)


def _footprint(d: Driver) -> float:
    """Radius (m) of the patch a driver occupies, for overlap checks (1 cm for point sources)."""
    if d.model == "rigid_sphere_piston":
        return d.enclosure_radius * math.sin(d.cap_angle)
    return 0.01


def _check_overlaps(drivers: list[Driver], radius: float | None) -> None:
    for i, a in enumerate(drivers):
        for j in range(i):
            b = drivers[j]
            gap = float(torch.linalg.vector_norm(a.position - b.position))
            need = _footprint(a) + _footprint(b) if (a.model in SPHERE_MODELS or b.model in SPHERE_MODELS) else 0.01
            if gap < need:
                raise ConfigError(
                    f"device.drivers[{i}].position", [round(float(v), 4) for v in a.position],
                    f"driver '{a.name}' overlaps driver '{b.name}' ({gap * 100:.1f} cm apart, need >= {need * 100:.1f} cm); "
                    "move one of them",
                )


def _load_measured(dcfg: Mapping, prefix: str, speed_of_sound: float) -> dict:
    from spatialopt.acoustics import measured as measured_io

    path = dcfg.get("file")
    if not path:
        raise ConfigError(f"{prefix}.file", path, "a measured driver needs file: PATH (.npz or .sofa)")
    try:
        data = measured_io.load_directivity(os.fspath(path))
    except DataError as exc:
        raise ConfigError(f"{prefix}.file", path, str(exc)) from None
    data["speed_of_sound"] = speed_of_sound
    data["regularization"] = _number(dcfg.get("regularization", 1e-6), f"{prefix}.regularization", nonnegative=True)
    data["radius"] = _number(dcfg.get("radius", 0.1), f"{prefix}.radius", positive=True)
    return data


def build_listener(cfg: Mapping, speed_of_sound: float = 343.0) -> Listener:
    """Build the listener from ``listener:`` config (type, head_radius m, ear_azimuth deg, ...).

    ``speed_of_sound`` (m/s) maps wavenumbers to the frequencies of a SOFA HRTF set."""
    kind = cfg.get("type", "sphere_head")
    if kind not in LISTENER_TYPES:
        raise ConfigError("listener.type", kind, f"must be one of {', '.join(LISTENER_TYPES)}")
    head_radius = _number(cfg.get("head_radius", 0.0875), "listener.head_radius", positive=True)
    ear_az = _number(cfg.get("ear_azimuth", 90.0), "listener.ear_azimuth")
    if not 0 < ear_az < 180:
        raise ConfigError("listener.ear_azimuth", ear_az, "must be in (0, 180) degrees")
    ear_el = _number(cfg.get("ear_elevation", 0.0), "listener.ear_elevation")
    common = dict(head_radius=head_radius, ear_azimuth=math.radians(ear_az), ear_elevation=math.radians(ear_el))
    if kind == "sphere_head":
        return SphereHead(**common)
    if kind == "omni":
        return OmniPair(**common)
    from spatialopt.acoustics.sofa import SofaListener

    path = cfg.get("sofa_file")
    if not path:
        raise ConfigError("listener.sofa_file", path, "listener.type=sofa needs sofa_file: PATH to a SimpleFreeFieldHRIR file")
    try:
        return SofaListener.from_file(os.fspath(path), speed_of_sound=speed_of_sound, **common)
    except DataError as exc:
        raise ConfigError("listener.sofa_file", path, str(exc)) from None


def build_zone(zone_cfg: Mapping, listener_cfg: Mapping) -> Zone:
    """Zone grid around the nominal point ``(distance, 0, height)``.

    ``zone.lateral`` (+y, m), ``zone.depth`` (+x, m), ``zone.height`` (+z, m, default [0]) and
    ``zone.yaw`` (deg) are offset lists; the grid is their product. Weights: uniform, or Gaussian
    in the offsets when ``zone.sigma = [lateral_m, depth_m, yaw_deg]`` is given.
    """
    distance = _number(listener_cfg.get("distance", 2.0), "listener.distance", positive=True)
    height = _number(listener_cfg.get("height", 0.0), "listener.height")
    lateral = _number_list(zone_cfg.get("lateral", [0.0]), "zone.lateral")
    depth = _number_list(zone_cfg.get("depth", [0.0]), "zone.depth")
    heights = _number_list(zone_cfg.get("height", [0.0]), "zone.height")
    yaw = _number_list(zone_cfg.get("yaw", [0.0]), "zone.yaw")
    grid = torch.tensor([[distance + dx, dy, height + dz] for dx in depth for dy in lateral for dz in heights], dtype=torch.float64)
    offsets = torch.tensor([[dy, dx, 0.0] for dx in depth for dy in lateral for dz in heights], dtype=torch.float64)
    yaws = torch.tensor([math.radians(v) for v in yaw], dtype=torch.float64)
    n_q, n_y = grid.shape[0], yaws.shape[0]
    sigma = zone_cfg.get("sigma")
    if sigma is None:
        weights = torch.full((n_q * n_y,), 1.0 / (n_q * n_y), dtype=torch.float64)
    else:
        s = _vector(sigma, "zone.sigma")
        if (s <= 0).any():
            raise ConfigError("zone.sigma", list(sigma), "must be three positive numbers [lateral_m, depth_m, yaw_deg]")
        z2 = ((offsets[:, 0] / s[0]) ** 2 + (offsets[:, 1] / s[1]) ** 2)[:, None] + (torch.rad2deg(yaws) / s[2])[None, :] ** 2
        weights = torch.exp(-0.5 * z2).reshape(-1)
        weights = weights / weights.sum()
    dist_nominal = torch.linalg.vector_norm(grid - torch.tensor([distance, 0.0, height], dtype=torch.float64), dim=-1)
    pos_idx = int(torch.argmin(dist_nominal))
    yaw_idx = int(torch.argmin(yaws.abs()))
    return Zone(positions=grid, yaws=yaws, weights=weights, nominal_index=pos_idx * n_y + yaw_idx)


def build_room(cfg: Mapping | None) -> Shoebox | None:
    """``room:`` config → None (free field) or a :class:`Shoebox`."""
    if cfg is None:
        return None
    kind = cfg.get("type", "free")
    if kind == "free":
        return None
    if kind != "shoebox":
        raise ConfigError("room.type", kind, "must be 'free' or 'shoebox'")
    dims = _vector(_require(cfg, "dims", "room"), "room.dims")
    if (dims <= 0).any():
        raise ConfigError("room.dims", list(cfg["dims"]), "room dimensions must be positive (metres)")
    device_position = _vector(_require(cfg, "device_position", "room"), "room.device_position")
    if ((device_position <= 0) | (device_position >= dims)).any():
        raise ConfigError("room.device_position", list(cfg["device_position"]), f"must lie inside the room {dims.tolist()} m")
    absorption = _absorption(cfg.get("absorption", 0.3))
    max_order = cfg.get("max_order", 3)
    if isinstance(max_order, bool) or not isinstance(max_order, int) or not 0 <= max_order <= 30:
        raise ConfigError("room.max_order", max_order, "must be an integer in [0, 30]")
    return Shoebox(dims=dims, device_position=device_position, absorption=absorption, max_order=max_order)


def _absorption(value: Any) -> torch.Tensor:
    key = "room.absorption"
    allowed = (f"must be one number in [0, 1), a list of 6 (walls x0, x1, y0, y1, z0, z1), or 6 lists of "
               f"{len(OCTAVE_CENTRES_HZ)} octave-band values ({', '.join(f'{c:g}' for c in OCTAVE_CENTRES_HZ)} Hz)")
    try:
        a = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise ConfigError(key, value, allowed) from None
    if a.dim() > 2 or (a.dim() >= 1 and a.shape[0] != 6) or (a.dim() == 2 and a.shape[1] != len(OCTAVE_CENTRES_HZ)):
        raise ConfigError(key, value, allowed)
    if not torch.isfinite(a).all() or (a < 0).any() or (a >= 1).any():
        raise ConfigError(key, value, allowed)
    return a


def _check_zone(zone: Zone, device: Device, listener: Listener, room: Shoebox | None) -> None:
    clearance = device.bounding_radius() + listener.head_radius
    dist = torch.linalg.vector_norm(zone.positions, dim=-1)
    bad = torch.nonzero(dist <= clearance).flatten()
    if bad.numel():
        p = zone.positions[int(bad[0])]
        raise ConfigError(
            "listener.distance", round(float(p[0]), 3),
            f"the listener's head (radius {listener.head_radius} m) at {[round(float(v), 3) for v in p]} m overlaps the "
            f"device (bounding radius {device.bounding_radius():.3f} m); move the listener or shrink zone.depth",
        )
    if room is not None:
        inside = room.contains(zone.positions, margin=listener.head_radius)
        if not bool(inside.all()):
            p = zone.positions[int(torch.nonzero(~inside).flatten()[0])]
            raise ConfigError(
                "zone", [round(float(v), 3) for v in p],
                f"zone point (scene coordinates) lies outside the room or within a head radius of a wall "
                f"(room {room.dims.tolist()} m, device at {room.device_position.tolist()} m); "
                "shrink the zone, move listener.distance or room.device_position",
            )
        for d in device.drivers:
            if not bool(room.contains(d.position[None], margin=0.0)[0]):
                raise ConfigError("room.device_position", room.device_position.tolist(),
                                  f"driver '{d.name}' ends up outside the room")


def config_file_paths(cfg: Mapping) -> list[tuple[str, str]]:
    """The files a config would open, as ``(key, path)``: ``listener.sofa_file`` and
    ``device.drivers[i].file``. Callers use it to refuse paths stored in a file they were handed
    (a filter set's design config) unless the user trusts that file."""
    found = []
    listener = cfg.get("listener")
    if isinstance(listener, Mapping) and listener.get("sofa_file"):
        found.append(("listener.sofa_file", str(listener["sofa_file"])))
    device = cfg.get("device")
    drivers = device.get("drivers") if isinstance(device, Mapping) else None
    for i, driver in enumerate(drivers if isinstance(drivers, list) else []):
        if isinstance(driver, Mapping) and driver.get("file"):
            found.append((f"device.drivers[{i}].file", str(driver["file"])))
    return found


def scene_from_config(cfg: Mapping) -> Scene:
    """Build the whole scene from the resolved top-level config mapping.

    Keys used: ``fs``, ``scene.{n_fft, speed_of_sound, ring_count, sphere_order, reference_distance}``,
    ``device``, ``listener``, ``zone``, ``room`` (DESIGN.md §8).
    """
    fs = _number(cfg.get("fs", 48000), "fs", positive=True)
    scene_cfg = cfg.get("scene") or {}
    n_fft = scene_cfg.get("n_fft", 1024)
    if isinstance(n_fft, bool) or not isinstance(n_fft, int) or n_fft < 8 or n_fft % 2:
        raise ConfigError("scene.n_fft", n_fft, "must be an even integer >= 8")
    c = _number(scene_cfg.get("speed_of_sound", 343.0), "scene.speed_of_sound", positive=True)
    ring_count = scene_cfg.get("ring_count", 360)
    if isinstance(ring_count, bool) or not isinstance(ring_count, int) or ring_count < 4:
        raise ConfigError("scene.ring_count", ring_count, "must be an integer >= 4")
    sphere_order = scene_cfg.get("sphere_order", 30)
    if isinstance(sphere_order, bool) or not isinstance(sphere_order, int) or not 1 <= sphere_order <= 200:
        raise ConfigError("scene.sphere_order", sphere_order, "must be an integer in [1, 200]")
    ref_dist = scene_cfg.get("reference_distance")
    if ref_dist is not None:
        ref_dist = _number(ref_dist, "scene.reference_distance", positive=True)

    device_cfg = _require(cfg, "device", "config")
    if not isinstance(device_cfg, Mapping):
        raise ConfigError("device", device_cfg, "must be a mapping (pick one with device=NAME)")
    device = build_device(device_cfg, c, fs / 2)
    for i, drv in enumerate(device.drivers):
        if drv.band_hz[0] >= fs / 2:
            raise ConfigError(f"device.drivers[{i}].band_hz", list(drv.band_hz),
                              f"driver '{drv.name}' has no band below Nyquist (fs/2 = {fs / 2:g} Hz)")
    listener_cfg = cfg.get("listener") or {}
    listener = build_listener(listener_cfg, c)
    zone = build_zone(cfg.get("zone") or {}, listener_cfg)
    room = build_room(cfg.get("room"))
    _check_zone(zone, device, listener, room)
    scene = build_scene(device, listener, zone, room, fs, n_fft, c, ring_count, sphere_order, ref_dist)
    scene.info["device"] = device_cfg.get("name", "device")
    for drv in device.drivers:
        if drv.fit_error is not None:  # measured directivity: how well the SH series fits the samples
            scene.info[f"{drv.name} SH fit error"] = (f"{float(drv.fit_error.max()):.2e} relative (worst measured "
                                                      f"frequency), {float(drv.fit_error.mean()):.2e} mean")
    return scene

