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
from dataclasses import dataclass
from typing import Any

import torch

from spatialopt.acoustics.drivers import Driver, truncation_error
from spatialopt.acoustics.head import Listener, OmniPair, SphereHead
from spatialopt.acoustics.room import OCTAVE_CENTRES_HZ, Shoebox
from spatialopt.acoustics.scene import Device, Scene, Zone, build_scene
from spatialopt.errors import ConfigError, DataError
from spatialopt.geometry import rotation_from_az_el, unit_vector

__all__ = ["build_device", "build_listener", "build_zone", "build_room", "scene_from_config", "check_scene_config",
           "validate_config", "check_objective_keys"]

DRIVER_MODELS = ("monopole", "rigid_sphere_point", "rigid_sphere_piston", "measured")
SPHERE_MODELS = ("rigid_sphere_point", "rigid_sphere_piston")
LISTENER_TYPES = ("sphere_head", "omni", "sofa")
# Relative far-field energy allowed in the top two degrees of a truncated series.
TRUNCATION_TOLERANCE = 1e-6

# Limits of the checks below: far beyond any sensible design, they only refuse absurd values (a typo'd
# exponent, a unit mix-up) before anything is allocated.
FS_RANGE_HZ = (8000.0, 768000.0)  # design sample rate (the renderer reads 1–768 kHz)
SPEED_OF_SOUND_RANGE = (100.0, 2000.0)  # m/s: air at any temperature, helium, water
MAX_METRES = 1000.0  # any position, distance, room size or zone offset
MAX_DRIVERS = 64
MAX_ZONE_OFFSETS = 1000  # entries of one zone list
MAX_ZONE_POINTS = 10_000  # positions × yaws of one zone
MAX_N_FFT = 2**20  # of any scene (the evaluation scene's is scene.n_fft × evaluation.n_fft_factor)
MAX_RING_COUNT = 36_000  # 0.01° spacing
MAX_SPHERE_ORDER = 200
MAX_SH_ORDER = 200  # driver series (auto order: 57 for the default device at 48 kHz, 177 at 192 kHz)
MAX_SCENE_BYTES = 16 * 2**30  # estimated transfer tensors of one scene (complex128)
DRIVER_KEYS = ("name", "model", "position", "azimuth", "elevation", "band_hz", "cap_angle", "file", "regularization",
               "radius")
DEVICE_KEYS = ("name", "enclosure_radius", "sh_order", "drivers")
LISTENER_KEYS = ("type", "distance", "height", "head_radius", "ear_azimuth", "ear_elevation", "sofa_file")
ZONE_KEYS = ("lateral", "depth", "height", "yaw", "sigma")
ROOM_KEYS = ("type", "dims", "device_position", "absorption", "max_order")
SCENE_KEYS = ("n_fft", "speed_of_sound", "ring_count", "sphere_order", "reference_distance")


def _number(value: Any, key: str, *, positive: bool = False, nonnegative: bool = False,
            bounds: tuple[float, float] | None = None, unit: str = "") -> float:
    """A finite number (not a bool); ``bounds`` = closed [lo, hi] (``positive``: lo excluded)."""
    if bounds is not None:
        lo, hi = bounds
        allowed = (f"must be > {lo:g} and <= {hi:g}" if positive else f"must be a number in [{lo:g}, {hi:g}]") + (
            f" {unit}" if unit else "")
    else:
        allowed = "must be a finite number"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(key, value, allowed)
    if bounds is not None and not (lo < value <= hi if positive else lo <= value <= hi):
        raise ConfigError(key, value, allowed)
    if positive and value <= 0:
        raise ConfigError(key, value, "must be > 0")
    if nonnegative and value < 0:
        raise ConfigError(key, value, "must be >= 0")
    return float(value)


def _integer(value: Any, key: str, lo: int, hi: int, what: str = "") -> int:
    """An integer (not a bool) in [lo, hi]."""
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(key, value, f"must be an integer in [{lo}, {hi}]{' ' + what if what else ''}")
    return int(value)


def _mapping(value: Any, key: str, what: str = "a mapping") -> Mapping:
    """A config group/node: None (absent: the defaults) → {}, else it must be a mapping."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(key, value, f"must be {what}")
    return value


def _check_keys(cfg: Mapping, known: Sequence[str], prefix: str) -> None:
    """Refuse keys a group does not know (a typo would otherwise be silently ignored)."""
    for key in cfg:
        if key not in known:
            raise ConfigError(f"{prefix}.{key}" if prefix else str(key), cfg[key],
                              f"unknown key; known keys: {', '.join(known)}")


def _vector(value: Any, key: str, length: int = 3, bound: float = MAX_METRES) -> torch.Tensor:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != length:
        raise ConfigError(key, value, f"must be a list of {length} numbers (metres)")
    return torch.tensor([_number(v, f"{key}[{i}]", bounds=(-bound, bound), unit="m") for i, v in enumerate(value)],
                        dtype=torch.float64)


def _number_list(value: Any, key: str, bound: float = MAX_METRES, unit: str = "m") -> list[float]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]  # a single offset: a one-element list
    if not isinstance(value, Sequence) or isinstance(value, str) or not 1 <= len(value) <= MAX_ZONE_OFFSETS:
        raise ConfigError(key, value, f"must be a non-empty list of at most {MAX_ZONE_OFFSETS} numbers ({unit})")
    return [_number(v, f"{key}[{i}]", bounds=(-bound, bound), unit=unit) for i, v in enumerate(value)]


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
    cfg = _mapping(cfg, "device", "a mapping (pick one with device=NAME)")
    _check_keys(cfg, DEVICE_KEYS, "device")
    name = cfg.get("name", "device")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError("device.name", name, "must be a non-empty string")
    radius = cfg.get("enclosure_radius")
    if radius is not None:
        radius = _number(radius, "device.enclosure_radius", positive=True, bounds=(0, 10), unit="m (or null: none)")
    drivers_cfg = cfg.get("drivers")
    if (not isinstance(drivers_cfg, Sequence) or isinstance(drivers_cfg, str) or not drivers_cfg
            or len(drivers_cfg) > MAX_DRIVERS):
        raise ConfigError("device.drivers", drivers_cfg, f"must be a non-empty list of at most {MAX_DRIVERS} drivers")
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
    if isinstance(order_cfg, str) and order_cfg == "auto" or order_cfg is None:  # null: as omitted, auto
        if auto > MAX_SH_ORDER:
            raise ConfigError("device.sh_order", order_cfg,
                              f"the drivers need SH order {auto} to converge up to {f_max:g} Hz, more than {MAX_SH_ORDER}; "
                              "lower fs or the enclosure (measured: driver radius)")
        order = auto
    else:
        if isinstance(order_cfg, bool) or not isinstance(order_cfg, int) or not 0 <= order_cfg <= MAX_SH_ORDER:
            raise ConfigError("device.sh_order", order_cfg, f"must be 'auto' or an integer in [0, {MAX_SH_ORDER}]")
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
    _check_keys(dcfg, DRIVER_KEYS, prefix)
    name = _require(dcfg, "name", prefix)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{prefix}.name", name, "must be a non-empty string")
    model = dcfg.get("model", "rigid_sphere_point")
    if not isinstance(model, str) or model not in DRIVER_MODELS:
        raise ConfigError(f"{prefix}.model", model, f"must be one of {', '.join(DRIVER_MODELS)}")
    az = math.radians(_number(dcfg.get("azimuth", 0.0), f"{prefix}.azimuth", bounds=(-360, 360), unit="degrees"))
    el = math.radians(_number(dcfg.get("elevation", 0.0), f"{prefix}.elevation", bounds=(-90, 90), unit="degrees"))
    rotation = rotation_from_az_el(az, el)
    band = dcfg.get("band_hz", [20.0, 20000.0])
    if not isinstance(band, Sequence) or isinstance(band, str) or len(band) != 2:
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
            cap_deg = _number(dcfg.get("cap_angle", 20.0), f"{prefix}.cap_angle")
            if not 0 < cap_deg < 90:
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
    if not path or not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"{prefix}.file", path, "a measured driver needs file: PATH (.npz or .sofa)")
    try:
        data = measured_io.load_directivity(os.fspath(path))
    except DataError as exc:
        raise ConfigError(f"{prefix}.file", path, str(exc)) from None
    data["speed_of_sound"] = speed_of_sound
    data["regularization"] = _number(dcfg.get("regularization", 1e-6), f"{prefix}.regularization", nonnegative=True)
    data["radius"] = _number(dcfg.get("radius", 0.1), f"{prefix}.radius", positive=True, bounds=(0, 10), unit="m")
    return data


def build_listener(cfg: Mapping, speed_of_sound: float = 343.0) -> Listener:
    """Build the listener from ``listener:`` config (type, head_radius m, ear_azimuth deg, ...).

    ``speed_of_sound`` (m/s) maps wavenumbers to the frequencies of a SOFA HRTF set."""
    cfg = _mapping(cfg, "listener", "a mapping (pick one with listener=NAME)")
    _check_keys(cfg, LISTENER_KEYS, "listener")
    kind = cfg.get("type", "sphere_head")
    if not isinstance(kind, str) or kind not in LISTENER_TYPES:
        raise ConfigError("listener.type", kind, f"must be one of {', '.join(LISTENER_TYPES)}")
    head_radius = _number(cfg.get("head_radius", 0.0875), "listener.head_radius", positive=True, bounds=(0, 0.5), unit="m")
    ear_az = _number(cfg.get("ear_azimuth", 90.0), "listener.ear_azimuth")
    if not 0 < ear_az < 180:
        raise ConfigError("listener.ear_azimuth", ear_az, "must be in (0, 180) degrees")
    ear_el = _number(cfg.get("ear_elevation", 0.0), "listener.ear_elevation", bounds=(-90, 90), unit="degrees")
    common = dict(head_radius=head_radius, ear_azimuth=math.radians(ear_az), ear_elevation=math.radians(ear_el))
    if kind == "sphere_head":
        return SphereHead(**common)
    if kind == "omni":
        return OmniPair(**common)
    from spatialopt.acoustics.sofa import SofaListener

    path = cfg.get("sofa_file")
    if not path or not isinstance(path, (str, os.PathLike)):
        raise ConfigError("listener.sofa_file", path, "listener.type=sofa needs sofa_file: PATH to a SimpleFreeFieldHRIR file")
    try:
        return SofaListener.from_file(os.fspath(path), speed_of_sound=speed_of_sound, **common)
    except DataError as exc:
        raise ConfigError("listener.sofa_file", path, str(exc)) from None


def build_zone(zone_cfg: Mapping, listener_cfg: Mapping, key: str = "zone") -> Zone:
    """Zone grid around the nominal point ``(distance, 0, height)``.

    ``zone.lateral`` (+y, m), ``zone.depth`` (+x, m), ``zone.height`` (+z, m, default [0]) and
    ``zone.yaw`` (deg) are offset lists; the grid is their product. Weights: uniform, or Gaussian
    in the offsets when ``zone.sigma = [lateral_m, depth_m, yaw_deg]`` is given. ``key`` names the
    zone in error messages (``evaluation.zone`` for the evaluation zone).
    """
    zone_cfg = _mapping(zone_cfg, key, "a mapping of lateral, depth, height, yaw, sigma")
    listener_cfg = _mapping(listener_cfg, "listener")
    _check_keys(zone_cfg, ZONE_KEYS, key)
    distance = _number(listener_cfg.get("distance", 2.0), "listener.distance", positive=True, bounds=(0, MAX_METRES), unit="m")
    height = _number(listener_cfg.get("height", 0.0), "listener.height", bounds=(-MAX_METRES, MAX_METRES), unit="m")
    lateral = _number_list(zone_cfg.get("lateral", [0.0]), f"{key}.lateral")
    depth = _number_list(zone_cfg.get("depth", [0.0]), f"{key}.depth")
    heights = _number_list(zone_cfg.get("height", [0.0]), f"{key}.height")
    yaw = _number_list(zone_cfg.get("yaw", [0.0]), f"{key}.yaw", bound=180.0, unit="degrees")
    n_points = len(lateral) * len(depth) * len(heights) * len(yaw)
    if n_points > MAX_ZONE_POINTS:
        raise ConfigError(key, {"lateral": len(lateral), "depth": len(depth), "height": len(heights), "yaw": len(yaw)},
                          f"{n_points} zone points (the product of the list lengths); at most {MAX_ZONE_POINTS}")
    grid = torch.tensor([[distance + dx, dy, height + dz] for dx in depth for dy in lateral for dz in heights], dtype=torch.float64)
    offsets = torch.tensor([[dy, dx, 0.0] for dx in depth for dy in lateral for dz in heights], dtype=torch.float64)
    yaws = torch.tensor([math.radians(v) for v in yaw], dtype=torch.float64)
    n_q, n_y = grid.shape[0], yaws.shape[0]
    sigma = zone_cfg.get("sigma")
    if sigma is None:
        weights = torch.full((n_q * n_y,), 1.0 / (n_q * n_y), dtype=torch.float64)
    else:
        s = _vector(sigma, f"{key}.sigma")
        if (s <= 0).any():
            raise ConfigError(f"{key}.sigma", list(sigma), "must be three positive numbers [lateral_m, depth_m, yaw_deg]")
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
    cfg = _mapping(cfg, "room", "a mapping (pick one with room=NAME)")
    _check_keys(cfg, ROOM_KEYS, "room")
    kind = cfg.get("type", "free")
    if isinstance(kind, str) and kind == "free":
        return None
    if not isinstance(kind, str) or kind != "shoebox":
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


def _check_zone(zone: Zone, device: Device, listener: Listener, room: Shoebox | None, key: str = "zone") -> None:
    clearance = device.bounding_radius() + listener.head_radius
    dist = torch.linalg.vector_norm(zone.positions, dim=-1)
    bad = torch.nonzero(dist <= clearance).flatten()
    if bad.numel():
        nominal = zone.nominal_index // zone.yaws.shape[0]
        p = zone.positions[nominal if nominal in bad.tolist() else int(bad[0])]
        where = [round(float(v), 3) for v in p]
        if nominal in bad.tolist():  # the nominal point itself: the listener distance is the culprit
            key_name, value = "listener.distance", round(float(p[0]), 3)
        else:  # a zone offset reaches into the device
            key_name, value = key, where
        raise ConfigError(
            key_name, value,
            f"the listener's head (radius {listener.head_radius} m) at {where} m overlaps the "
            f"device (bounding radius {device.bounding_radius():.3f} m); move the listener or shrink {key}.depth",
        )
    if room is not None:
        inside = room.contains(zone.positions, margin=listener.head_radius)
        if not bool(inside.all()):
            p = zone.positions[int(torch.nonzero(~inside).flatten()[0])]
            raise ConfigError(
                key, [round(float(v), 3) for v in p],
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


@dataclass
class SceneParts:
    """The validated pieces of a scene config (cheap to build); :func:`scene_from_config` computes
    the transfer tensors from them."""

    fs: float
    n_fft: int
    speed_of_sound: float
    ring_count: int
    sphere_order: int
    reference_distance: float | None
    device: Device
    listener: Listener
    zone: Zone
    room: Shoebox | None
    estimated_bytes: int


def check_scene_config(cfg: Mapping, zone_key: str = "zone", size_key: tuple[str, Any] | None = None) -> SceneParts:
    """Validate everything a scene is built from (``fs``, ``scene``, ``device``, ``listener``,
    ``zone``, ``room``) without computing any transfer tensor; also refuse a scene whose transfer
    tensors would exceed :data:`MAX_SCENE_BYTES`, naming ``size_key`` = (key, value) (default
    ``scene.n_fft``) with the sizes. ``zone_key`` names the zone in messages.

    Raises:
        ConfigError: naming the key, the value and what is allowed.
    """
    cfg = _mapping(cfg, "config")
    fs = _number(cfg.get("fs", 48000), "fs", bounds=FS_RANGE_HZ, unit="Hz")
    scene_cfg = _mapping(cfg.get("scene"), "scene")
    _check_keys(scene_cfg, SCENE_KEYS, "scene")
    n_fft = scene_cfg.get("n_fft", 1024)
    if isinstance(n_fft, bool) or not isinstance(n_fft, int) or not 8 <= n_fft <= MAX_N_FFT or n_fft % 2:
        raise ConfigError("scene.n_fft", n_fft, f"must be an even integer in [8, {MAX_N_FFT}]")
    c = _number(scene_cfg.get("speed_of_sound", 343.0), "scene.speed_of_sound", bounds=SPEED_OF_SOUND_RANGE, unit="m/s")
    ring_count = _integer(scene_cfg.get("ring_count", 360), "scene.ring_count", 4, MAX_RING_COUNT, "(directions)")
    sphere_order = _integer(scene_cfg.get("sphere_order", 30), "scene.sphere_order", 1, MAX_SPHERE_ORDER)
    ref_dist = scene_cfg.get("reference_distance")
    if ref_dist is not None:
        ref_dist = _number(ref_dist, "scene.reference_distance", positive=True, bounds=(0, MAX_METRES),
                           unit="m (or null: the listener distance)")

    device_cfg = _require(cfg, "device", "config")
    device = build_device(device_cfg, c, fs / 2)
    for i, drv in enumerate(device.drivers):
        if drv.band_hz[0] >= fs / 2:
            raise ConfigError(f"device.drivers[{i}].band_hz", list(drv.band_hz),
                              f"driver '{drv.name}' has no band below Nyquist (fs/2 = {fs / 2:g} Hz)")
    listener_cfg = _mapping(cfg.get("listener"), "listener", "a mapping (pick one with listener=NAME)")
    listener = build_listener(listener_cfg, c)
    zone = build_zone(cfg.get("zone"), listener_cfg, zone_key)
    room = build_room(cfg.get("room"))
    _check_zone(zone, device, listener, room, zone_key)
    size = _scene_bytes(n_fft, zone, device, ring_count, sphere_order, room)
    if size > MAX_SCENE_BYTES:
        n_i = 1 if room is None else _image_count(room.max_order)
        key, value = size_key or ("scene.n_fft", n_fft)
        raise ConfigError(
            key, value,
            f"this scene's transfer tensors would take about {size / 2**30:.1f} GiB ({n_fft // 2 + 1} frequencies, "
            f"{zone.positions.shape[0] * zone.yaws.shape[0]} zone points, {len(device.drivers)} drivers, "
            f"{ring_count} ring and {2 * (sphere_order + 1) ** 2} sphere directions, {n_i} room images); at most "
            f"{MAX_SCENE_BYTES / 2**30:g} GiB: lower scene.n_fft (or evaluation.n_fft_factor), the zone, "
            "scene.ring_count, scene.sphere_order or room.max_order",
        )
    return SceneParts(fs=fs, n_fft=n_fft, speed_of_sound=c, ring_count=ring_count, sphere_order=sphere_order,
                      reference_distance=ref_dist, device=device, listener=listener, zone=zone, room=room,
                      estimated_bytes=size)


def _image_count(max_order: int) -> int:
    """Image sources of a shoebox up to ``max_order`` reflections (lattice points with |i|+|j|+|k| <= N)."""
    n = max_order
    return (2 * n + 1) * (2 * n * n + 2 * n + 3) // 3


def _scene_bytes(n_fft: int, zone: Zone, device: Device, ring_count: int, sphere_order: int, room: Shoebox | None) -> int:
    """Rough size (bytes) of the largest tensors :func:`build_scene` allocates (complex128): the
    outputs H, H_ref, G_ring, G_sphere, the listener's image-source responses, and the SH
    coefficient/harmonic tables of measured drivers."""
    f = n_fft // 2 + 1
    p = zone.positions.shape[0] * zone.yaws.shape[0]
    d = len(device.drivers)
    s = 2 * (sphere_order + 1) ** 2
    n_i = 1 if room is None else _image_count(room.max_order)
    elements = f * (p * 2 * d + p * 2 * 2 + ring_count * d + s * d) + f * n_i * p * 2
    if any(drv.model == "measured" for drv in device.drivers):
        elements += (f + s + ring_count) * (device.sh_order + 1) ** 2
    return 16 * elements


def scene_from_config(cfg: Mapping, zone_key: str = "zone") -> Scene:
    """Build the whole scene from the resolved top-level config mapping (validated first by
    :func:`check_scene_config`; ``zone_key`` names the zone in its messages, e.g.
    ``evaluation.zone`` for the held-out zone placed under ``zone``).

    Keys used: ``fs``, ``scene.{n_fft, speed_of_sound, ring_count, sphere_order, reference_distance}``,
    ``device``, ``listener``, ``zone``, ``room`` (DESIGN.md §8).
    """
    p = check_scene_config(cfg, zone_key=zone_key)
    scene = build_scene(p.device, p.listener, p.zone, p.room, p.fs, p.n_fft, p.speed_of_sound, p.ring_count,
                        p.sphere_order, p.reference_distance)
    scene.info["device"] = cfg["device"].get("name", "device")
    for drv in p.device.drivers:
        if drv.fit_error is not None:  # measured directivity: how well the SH series fits the samples
            scene.info[f"{drv.name} SH fit error"] = (f"{float(drv.fit_error.max()):.2e} relative (worst measured "
                                                      f"frequency), {float(drv.fit_error.mean()):.2e} mean")
    return scene


# ------------------------------------------------------------------------------------------------
# the whole experiment config, before any work

TOP_KEYS = ("fs", "seed", "compute", "resume", "progress", "out", "plots", "hparams", "analysis", "analysis_options",
            "objective", "objective_direction", "device", "listener", "zone", "room", "scene", "system", "loss",
            "optim", "export", "evaluation", "upmix")
COMPUTE_KEYS = ("device", "dtype")
EXPORT_KEYS = ("dir",)
EVALUATION_KEYS = ("n_fft_factor", "zone")
MAX_N_FFT_FACTOR = 64
# First components a metrics.json path can start with (the full path is checked after the run).
OBJECTIVE_ROOTS = ("ours", "kirkeby", "ls_zone", "delay_and_sum", "runtime_s", "steps", "rejected_steps",
                   "ctc", "virtual", "beam", "tonal", "effort", "align", "room")


def check_objective_keys(cfg: Mapping) -> tuple[str, str]:
    """``objective`` (a dotted path into metrics.json) and ``objective_direction``."""
    objective = cfg.get("objective", "ctc.separation_db.zone_p10")
    direction = cfg.get("objective_direction", "maximize")
    if (not isinstance(objective, str) or not objective or objective.split(".")[0] not in OBJECTIVE_ROOTS
            or any(not part for part in objective.split("."))):
        raise ConfigError("objective", objective, "must be a dotted path into metrics.json, e.g. ctc.separation_db.zone_p10 "
                          "or ours.beam.null_depth_db (see README, metrics.json schema)")
    if not isinstance(direction, str) or direction not in ("maximize", "minimize"):
        raise ConfigError("objective_direction", direction, "must be maximize or minimize")
    return objective, direction


def _flag(cfg: Mapping, key: str, default: bool) -> bool:
    value = cfg.get(key, default)
    if not isinstance(value, bool):
        raise ConfigError(key, value, "must be true or false")
    return value


def _string(value: Any, key: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(key, value, f"must be {what}")
    return value


def validate_config(cfg: Mapping) -> dict:
    """Validate the whole resolved experiment config — every group and top-level key — before any
    expensive work (no transfer tensor, filter or optimiser is built).

    Checks: unknown keys in every group; the design scene (:func:`check_scene_config`) and the
    evaluation scene (its zone named ``evaluation.zone``); ``system``/``loss``/``optim``
    (:func:`spatialopt.experiment.parse_configs`); ``upmix``; ``evaluation``; ``export``;
    ``compute``; ``seed``, ``resume``, ``progress``, ``plots``, ``out``, ``hparams``;
    ``analysis``/``analysis_options``; ``objective``/``objective_direction``.

    Returns:
        ``{"fs", "device", "dtype", "scene", "eval_scene", "shape", "design", "loss", "optim", "upmix",
        "analyses", "eval_cfg"}``: the parsed pieces (``device``: the torch device).

    Raises:
        ConfigError: one line naming the full dotted key, the value and what is allowed.
    """
    from spatialopt.analysis import check_analyses_geometry, validate_analyses
    from spatialopt.experiment import evaluation_config, parse_configs, upmix_config
    from spatialopt.train import resolve_device

    cfg = _mapping(cfg, "config")
    _check_keys(cfg, TOP_KEYS, "")
    compute = _mapping(cfg.get("compute"), "compute", "a mapping {device, dtype}")
    _check_keys(compute, COMPUTE_KEYS, "compute")
    device_name = compute.get("device", "auto")
    if not isinstance(device_name, str):
        raise ConfigError("compute.device", device_name, "must be auto, cpu, cuda or cuda:N")
    device = resolve_device(device_name)
    dtype = compute.get("dtype", "float32")
    if not isinstance(dtype, str) or dtype not in ("float32", "float64"):
        raise ConfigError("compute.dtype", dtype, "must be float32 or float64")
    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise ConfigError("seed", seed, "must be an integer in [0, 2^63)")
    for key, default in (("resume", False), ("progress", True), ("plots", True)):
        _flag(cfg, key, default)
    _string(cfg.get("out", "scene.npz"), "out", "a file path (spatialopt-scene's output)")
    hparams = cfg.get("hparams")
    if hparams is not None:
        names = [hparams] if isinstance(hparams, str) else hparams
        if (not isinstance(names, Sequence) or not names
                or any(not isinstance(n, str) or not n.strip() for n in names)):
            raise ConfigError("hparams", hparams, "must be null, a dotted key or a non-empty list of dotted keys (e.g. [optim.lr])")
    export = _mapping(cfg.get("export"), "export", "a mapping {dir}")
    _check_keys(export, EXPORT_KEYS, "export")
    _string(export.get("dir", "filterset"), "export.dir", "a directory name (relative to the run directory)")
    check_objective_keys(cfg)

    scene = check_scene_config(cfg)
    fs = scene.fs
    shape, design, loss, optim = parse_configs(cfg, len(scene.device.drivers), fs)
    upmix = upmix_config(cfg, fs)

    evaluation = _mapping(cfg.get("evaluation"), "evaluation", "a mapping {n_fft_factor, zone}")
    _check_keys(evaluation, EVALUATION_KEYS, "evaluation")
    factor = evaluation.get("n_fft_factor", 4)
    if isinstance(factor, bool) or not isinstance(factor, int) or not 4 <= factor <= MAX_N_FFT_FACTOR:
        raise ConfigError("evaluation.n_fft_factor", factor,
                          f"must be an integer in [4, {MAX_N_FFT_FACTOR}] (metrics on a grid at least 4x denser)")
    eval_cfg = evaluation_config(cfg)
    zone_key = "evaluation.zone" if evaluation.get("zone") is not None else "zone"
    eval_n_fft = eval_cfg["scene"]["n_fft"]
    if eval_n_fft > MAX_N_FFT:
        raise ConfigError("evaluation.n_fft_factor", factor,
                          f"scene.n_fft × n_fft_factor = {eval_n_fft} exceeds {MAX_N_FFT}; lower either")
    eval_scene = check_scene_config(eval_cfg, zone_key, size_key=("evaluation.n_fft_factor", factor))
    analyses = validate_analyses(cfg)
    check_analyses_geometry(cfg, analyses, eval_cfg)
    return {"fs": fs, "device": device, "dtype": dtype, "scene": scene, "eval_scene": eval_scene, "shape": shape,
            "design": design, "loss": loss, "optim": optim, "upmix": upmix, "analyses": analyses, "eval_cfg": eval_cfg}
