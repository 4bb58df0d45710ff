"""Bad input at the config boundary: one ConfigError naming the field and the fix."""

from __future__ import annotations

import math

import pytest
import torch

from spatialopt.config import build_device, build_room, build_zone, scene_from_config
from spatialopt.errors import ConfigError, SpatialoptError


def _raises(cfg, key_fragment: str, text_fragment: str):
    with pytest.raises(ConfigError) as info:
        scene_from_config(cfg)
    message = str(info.value)
    assert key_fragment in message, message
    assert text_fragment in message, message
    assert "\n" not in message  # one line
    return message


def test_driver_inside_another(config_factory):
    cfg = config_factory()
    cfg["device"]["drivers"][1]["azimuth"] = 2  # mid_left moved onto the tweeter (azimuth 0)
    _raises(cfg, "device.drivers[1].position", "overlaps driver 'tweeter'")


def test_monopoles_at_one_point(config_factory):
    cfg = config_factory(device="soundbar_4")
    cfg["device"]["drivers"][1]["position"] = list(cfg["device"]["drivers"][0]["position"])
    _raises(cfg, "device.drivers[1].position", "overlaps")


def test_monopole_inside_the_enclosure(config_factory):
    cfg = config_factory()
    cfg["device"]["drivers"].append({"name": "buried", "model": "monopole", "position": [0.0, 0.0, 0.02]})
    _raises(cfg, "device.drivers[5].position", "inside the rigid enclosure")


def test_sphere_driver_off_its_sphere(config_factory):
    cfg = config_factory()
    cfg["device"]["drivers"][0]["position"] = [0.2, 0.0, 0.0]
    _raises(cfg, "device.drivers[0].position", "|position| must be 0.085")


def test_listener_inside_the_device(config_factory):
    cfg = config_factory()
    cfg["listener"]["distance"] = 0.1
    _raises(cfg, "listener.distance", "overlaps the device")


def test_zone_point_outside_the_room(config_factory):
    cfg = config_factory(room="living_room")
    cfg["listener"]["distance"] = 3.95  # device 1 m from the x0 wall of a 5 m room: 4.95 m + head > 5 m
    _raises(cfg, "zone=", "outside the room")


def test_negative_radius(config_factory):
    cfg = config_factory()
    cfg["device"]["enclosure_radius"] = -0.08
    _raises(cfg, "device.enclosure_radius", "must be > 0")
    cfg = config_factory()
    cfg["listener"]["head_radius"] = -0.0875
    _raises(cfg, "listener.head_radius", "must be > 0")


def test_sh_order_too_low_for_the_band(config_factory):
    cfg = config_factory()
    cfg["device"]["sh_order"] = 8
    message = _raises(cfg, "device.sh_order=8", "has not converged at 24000 Hz")
    assert "use sh_order >=" in message


def test_an_explicit_sufficient_order_is_accepted():
    cfg = {"enclosure_radius": 0.085, "sh_order": 60, "drivers": [{"name": "a", "model": "rigid_sphere_point"}]}
    assert build_device(cfg, 343.0, 24000.0).sh_order == 60


def test_unreadable_sofa_file(tmp_path, config_factory):
    bad = tmp_path / "broken.sofa"
    bad.write_bytes(b"this is not HDF5")
    cfg = config_factory(listener="sofa")
    cfg["listener"]["sofa_file"] = str(bad)
    _raises(cfg, "listener.sofa_file", "broken.sofa")
    cfg["listener"]["sofa_file"] = str(tmp_path / "missing.sofa")
    _raises(cfg, "listener.sofa_file", "missing.sofa")


@pytest.mark.parametrize(
    "mutate, key",
    [
        (lambda c: c["device"]["drivers"][0].update(model="horn"), "device.drivers[0].model"),
        (lambda c: c["device"]["drivers"][0].update(band_hz=[5000, 1000]), "device.drivers[0].band_hz"),
        (lambda c: c["device"]["drivers"][0].update(cap_angle=120), "device.drivers[0].cap_angle"),
        (lambda c: c["device"]["drivers"][0].pop("name"), "device.drivers[0].name"),
        (lambda c: c["device"].update(drivers=[]), "device.drivers"),
        (lambda c: c["device"].update(sh_order="high"), "device.sh_order"),
        (lambda c: c["listener"].update(type="dummy_head"), "listener.type"),
        (lambda c: c["listener"].update(ear_azimuth=200), "listener.ear_azimuth"),
        (lambda c: c["zone"].update(yaw="ten"), "zone.yaw"),
        (lambda c: c["zone"].update(sigma=[0.1, -1, 5]), "zone.sigma"),
        (lambda c: c["scene"].update(n_fft=1001), "scene.n_fft"),
        (lambda c: c.update(fs=float("nan")), "fs"),
        (lambda c: c["room"].update(type="cathedral"), "room.type"),
    ],
)
def test_each_bad_value_names_its_key(mutate, key, config_factory):
    cfg = config_factory()
    mutate(cfg)
    with pytest.raises(ConfigError) as info:
        scene_from_config(cfg)
    assert str(info.value).startswith(key), str(info.value)


@pytest.mark.parametrize(
    "room, key",
    [
        ({"type": "shoebox", "dims": [5, 4], "device_position": [1, 1, 1]}, "room.dims"),
        ({"type": "shoebox", "dims": [5, 4, -2], "device_position": [1, 1, 1]}, "room.dims"),
        ({"type": "shoebox", "dims": [5, 4, 3], "device_position": [6, 1, 1]}, "room.device_position"),
        ({"type": "shoebox", "dims": [5, 4, 3], "device_position": [1, 1, 1], "absorption": 1.5}, "room.absorption"),
        ({"type": "shoebox", "dims": [5, 4, 3], "device_position": [1, 1, 1], "absorption": [0.1] * 5}, "room.absorption"),
        ({"type": "shoebox", "dims": [5, 4, 3], "device_position": [1, 1, 1], "max_order": -1}, "room.max_order"),
    ],
)
def test_bad_rooms(room, key):
    with pytest.raises(ConfigError) as info:
        build_room(room)
    assert str(info.value).startswith(key)


def test_per_band_absorption_and_zone_weights():
    room = build_room({"type": "shoebox", "dims": [5, 4, 3], "device_position": [1, 2, 1],
                       "absorption": [[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]] * 6, "max_order": 1})
    assert room.absorption.shape == (6, 7)
    zone = build_zone({"lateral": [-0.1, 0, 0.1], "depth": [0.0], "yaw": [-10, 0, 10], "sigma": [0.1, 1.0, 10.0]},
                      {"distance": 2.0})
    assert abs(float(zone.weights.sum()) - 1) < 1e-12
    # the nominal point (centre, yaw 0) carries the largest weight; a corner e^{-1} of it
    w = zone.weights.reshape(3, 3)
    assert zone.nominal_index == 4
    assert abs(float(w[0, 0] / w[1, 1]) - math.exp(-1.0)) < 1e-12
    torch.testing.assert_close(zone.points[zone.nominal_index], torch.tensor([2.0, 0, 0, 0], dtype=torch.float64))


def test_config_errors_are_project_errors():
    assert issubclass(ConfigError, SpatialoptError)


def test_driver_band_above_nyquist(config_factory):
    cfg = config_factory()
    cfg["fs"] = 16000
    cfg["device"]["drivers"][0]["band_hz"] = [9000, 20000]
    _raises(cfg, "device.drivers[0].band_hz", "below Nyquist")
