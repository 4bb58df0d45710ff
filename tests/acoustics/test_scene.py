"""Scene transfer tensors: exactness with the omni listener, symmetry, images by hand, file format."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import small_scene_arrays
from spatialopt.acoustics.drivers import Driver
from spatialopt.acoustics.head import OmniPair, SphereHead
from spatialopt.acoustics.room import Shoebox
from spatialopt.acoustics.scene import Scene, ear_transfer, far_field_patterns
from spatialopt.config import build_device, scene_from_config
from spatialopt.geometry import unit_vector

C = 343.0
EYE = torch.eye(3, dtype=torch.float64)


def monopole(name, position):
    p = torch.tensor(position, dtype=torch.float64)
    return Driver(name=name, model="monopole", position=p, rotation=EYE, origin=p, band_hz=(20.0, 20000.0))


def test_omni_listener_free_field_is_plain_monopole_acoustics():
    """With omni mics and monopole drivers every transfer is e^{-jkd}/(4πd), checkable by hand."""
    drivers = [monopole("a", [0.0, 0.1, 0.0]), monopole("b", [0.02, -0.05, 0.03])]
    listener = OmniPair(head_radius=0.0875, ear_azimuth=math.pi / 2)
    freqs = torch.tensor([100.0, 1000.0, 7000.0], dtype=torch.float64)
    positions = torch.tensor([[2.0, 0.0, 0.0], [1.5, 0.2, 0.1]], dtype=torch.float64)
    yaws = torch.tensor([0.0, 0.3], dtype=torch.float64)
    h = ear_transfer(drivers, listener, None, freqs, positions, yaws, 0, C)

    k = 2 * math.pi * freqs / C
    for q in range(2):
        for y in range(2):
            # Head faces −x turned by yaw: left ear direction = R_z(π+yaw)·(0, 1, 0).
            ang = math.pi + float(yaws[y])
            left = torch.tensor([-math.sin(ang), math.cos(ang), 0.0], dtype=torch.float64)
            for e, sign in enumerate((1.0, -1.0)):
                mic = positions[q] + sign * 0.0875 * left
                for d, drv in enumerate(drivers):
                    dist = float(torch.linalg.vector_norm(mic - drv.position))
                    expected = torch.exp(-1j * k * dist) / (4 * math.pi * dist)
                    torch.testing.assert_close(h[:, q, y, e, d], expected, rtol=1e-12, atol=0)


def test_omni_listener_sees_exact_sphere_driver_field():
    """Omni mics receive exactly the driver's radiated field (near field included)."""
    device = build_device(
        {"enclosure_radius": 0.085, "drivers": [{"name": "m", "model": "rigid_sphere_piston", "azimuth": 40, "cap_angle": 15}]},
        C, 24000.0,
    )
    drv = device.drivers[0]
    listener = OmniPair()
    freqs = torch.tensor([300.0, 3000.0, 15000.0], dtype=torch.float64)
    positions = torch.tensor([[0.6, 0.1, 0.0]], dtype=torch.float64)
    yaws = torch.tensor([0.2], dtype=torch.float64)
    h = ear_transfer(device.drivers, listener, None, freqs, positions, yaws, device.sh_order, C)
    mics = positions[:, None, None] + 0.0875 * listener.ear_directions(yaws)[None]
    expected = drv.pressure(2 * math.pi * freqs / C, mics.reshape(-1, 3), device.sh_order)
    torch.testing.assert_close(h.reshape(3, -1), expected, rtol=1e-10, atol=0)


def test_first_order_images_by_hand():
    """A shoebox with max_order 1 adds six mirror images with gain √(1−α_wall), each a spherical wave."""
    dims = torch.tensor([5.0, 4.0, 3.0], dtype=torch.float64)
    device_position = torch.tensor([1.0, 1.5, 1.2], dtype=torch.float64)
    alpha = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], dtype=torch.float64)
    room = Shoebox(dims=dims, device_position=device_position, absorption=alpha, max_order=1)
    drv = monopole("a", [0.05, 0.1, -0.02])
    listener = OmniPair()
    freqs = torch.tensor([250.0, 2000.0], dtype=torch.float64)
    positions = torch.tensor([[2.0, 0.3, 0.1]], dtype=torch.float64)
    yaws = torch.zeros(1, dtype=torch.float64)
    h = ear_transfer([drv], listener, room, freqs, positions, yaws, 0, C)[:, 0, 0, :, 0]  # (F, 2)

    k = 2 * math.pi * freqs / C
    src = drv.position + device_position
    images = [(src, 1.0)]
    for axis in range(3):
        low = src.clone()
        low[axis] = -src[axis]
        high = src.clone()
        high[axis] = 2 * dims[axis] - src[axis]
        images += [(low, math.sqrt(1 - alpha[2 * axis])), (high, math.sqrt(1 - alpha[2 * axis + 1]))]
    mics = positions[0] + 0.0875 * listener.ear_directions(yaws)[0] + device_position  # (2, 3)
    expected = torch.zeros(2, 2, dtype=torch.complex128)
    for pos, gain in images:
        dist = torch.linalg.vector_norm(mics - pos, dim=-1)
        expected += gain * torch.exp(-1j * k[:, None] * dist) / (4 * math.pi * dist)
    torch.testing.assert_close(h, expected, rtol=1e-12, atol=0)


def test_frequency_chunking_does_not_change_the_result():
    device = build_device({"enclosure_radius": 0.085, "drivers": [
        {"name": "a", "model": "rigid_sphere_point", "azimuth": 0},
        {"name": "b", "model": "rigid_sphere_piston", "azimuth": 70, "cap_angle": 20}]}, C, 24000.0)
    room = Shoebox(dims=torch.tensor([4.0, 3.5, 2.5], dtype=torch.float64),
                   device_position=torch.tensor([1.0, 1.7, 1.0], dtype=torch.float64),
                   absorption=torch.tensor(0.4, dtype=torch.float64), max_order=2)
    freqs = torch.linspace(0, 24000, 23, dtype=torch.float64)
    positions = torch.tensor([[1.8, 0.0, 0.0], [2.0, -0.1, 0.05]], dtype=torch.float64)
    yaws = torch.tensor([0.0, -0.2], dtype=torch.float64)
    args = (device.drivers, SphereHead(), room, freqs, positions, yaws, device.sh_order, C)
    # Chunks pick their own (converged) truncation orders, so agreement is to series accuracy.
    torch.testing.assert_close(ear_transfer(*args, freq_chunk=5), ear_transfer(*args, freq_chunk=64), rtol=1e-10, atol=0)


def test_mirror_symmetry_of_the_smart_speaker(config_factory):
    """Mirroring y → −y swaps mid_left/mid_right and the two ears (nominal point, yaw 0)."""
    scene = scene_from_config(config_factory(n_fft=128))
    names = scene.driver_names
    ml, mr, tw = names.index("mid_left"), names.index("mid_right"), names.index("tweeter")
    h = scene.H[:, scene.nominal_index]
    torch.testing.assert_close(h[:, 0, ml], h[:, 1, mr], rtol=1e-9, atol=1e-15)
    torch.testing.assert_close(h[:, 0, tw], h[:, 1, tw], rtol=1e-9, atol=1e-15)


def test_drivers_have_distinct_interaural_transfer(config_factory):
    """Crosstalk cancellation needs the 2×D ear matrix to have rank 2: the interaural ratio of the
    left and right midranges must differ (here by several dB at 2–8 kHz). A model that sends every
    driver's wave from one shared centre would make the ratios identical."""
    scene = scene_from_config(config_factory(n_fft=256))
    names = scene.driver_names
    ml, mr = names.index("mid_left"), names.index("mid_right")
    h = scene.H[:, scene.nominal_index]
    band = (scene.freqs >= 2000) & (scene.freqs <= 8000)
    ratio_ml = (h[band, 1, ml] / h[band, 0, ml]).abs()
    ratio_mr = (h[band, 1, mr] / h[band, 0, mr]).abs()
    diff_db = 20 * torch.log10(ratio_ml / ratio_mr)
    assert float(diff_db.min()) > 1.0, diff_db
    # the left midrange (device left, +y) is louder at the listener's right ear (+y side)
    assert bool((ratio_ml > 1).all())


def test_far_field_scale_and_phase_reference():
    """A unit monopole at p has G(u) = e^{jk u·p}/(4π): scale 1/(4π), phase re the scene origin."""
    p = [0.03, -0.02, 0.01]
    freqs = torch.tensor([500.0, 5000.0], dtype=torch.float64)
    az = torch.linspace(-math.pi, math.pi, 9, dtype=torch.float64)
    dirs = unit_vector(az, torch.full_like(az, 0.2))
    g = far_field_patterns([monopole("m", p)], freqs, dirs, 0, C)[..., 0]
    k = 2 * math.pi * freqs / C
    expected = torch.exp(1j * k[:, None] * (dirs @ torch.tensor(p, dtype=torch.float64))[None]) / (4 * math.pi)
    torch.testing.assert_close(g, expected, rtol=1e-12, atol=0)


def test_sphere_grid_weights_give_zero_di_for_a_monopole(config_factory):
    cfg = config_factory(device="stereo_pair", n_fft=32)
    cfg["device"]["drivers"] = [{"name": "m", "model": "monopole", "position": [0.0, 0.0, 0.0]}]
    scene = scene_from_config(cfg)
    power = (scene.G_sphere[..., 0].abs() ** 2 * scene.sphere_weights).sum(-1) / (4 * math.pi)
    on_axis = scene.G_ring[:, int(torch.argmin(scene.ring_az.abs())), 0].abs() ** 2
    di_db = 10 * torch.log10(on_axis / power)
    assert float(di_db.abs().max()) < 1e-9
    assert abs(float(scene.sphere_weights.sum()) - 4 * math.pi) < 1e-9


def test_scene_file_round_trip_without_pickle(tmp_path, config_factory):
    scene = scene_from_config(config_factory(zone="default", n_fft=32))
    path = tmp_path / "scene.npz"
    scene.save_npz(path)
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        assert {"freqs", "H", "points", "G_ring", "ring_az", "G_sphere", "sphere_dirs", "sphere_weights",
                "H_ref", "driver_names", "driver_positions"} <= keys
        n_f, n_p, n_d = 17, 27, 5
        assert data["H"].shape == (n_f, n_p, 2, n_d) and data["H"].dtype == np.complex128
        assert data["H_ref"].shape == (n_f, n_p, 2, 2) and data["H_ref"].dtype == np.complex128
        assert data["points"].shape == (n_p, 4)
        assert data["G_ring"].shape == (n_f, 360, n_d)
        assert data["G_sphere"].shape[0] == n_f and data["sphere_dirs"].shape[1] == 2
        assert list(data["driver_names"]) == scene.driver_names
    loaded = Scene.load_npz(path)
    torch.testing.assert_close(loaded.H, scene.H, rtol=0, atol=0)
    assert loaded.nominal_index == scene.nominal_index


def _huge_claim(path) -> None:
    import io
    import zipfile

    arrays = small_scene_arrays(nominal_index=1)
    del arrays["G_sphere"]
    np.savez(path, **arrays)
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "<c16", "fortran_order": False, "shape": (2**40,)})
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("G_sphere.npy", buf.getvalue() + bytes(64))


BAD_SCENES = {
    "not_zip": lambda p: p.write_bytes(b"not an archive"),
    "single_npy": lambda p: np.save(open(p, "wb"), np.zeros(3)),
    "truncated": lambda p: (np.savez(p, **small_scene_arrays(nominal_index=1)), p.write_bytes(p.read_bytes()[:-200])),
    "missing_key": dict(H=None),
    "H_shape": dict(H=np.zeros((4, 2, 2, 3), dtype=complex)),
    "points_rank": dict(points=np.zeros(8)),
    "names_count": dict(driver_names=np.array(["a"])),
    "nan_H": dict(H=np.full((4, 2, 2, 2), np.nan + 0j)),
    "complex_points": dict(points=np.zeros((2, 4), dtype=complex)),
    "string_freqs": dict(freqs=np.array(["1", "2", "3", "4"])),
    "nominal_out_of_range": dict(nominal_index=np.array(2)),
    "nominal_fraction": dict(nominal_index=np.array(0.5)),
    "zero_rate": dict(sample_rate=np.array(0.0)),
    "vector_rate": dict(sample_rate=np.array([48000.0, 44100.0])),
    "huge_claim": _huge_claim,
}


@pytest.mark.parametrize("case", sorted(BAD_SCENES))
def test_damaged_scene_file_is_a_data_error(tmp_path, case):
    """Found by fuzzing (issue 6): damaged archives raised BadZipFile, TypeError, AttributeError or
    MemoryError (a header's claimed shape was allocated), and inconsistent arrays loaded."""
    from spatialopt.errors import DataError

    path = tmp_path / "scene.npz"
    change = BAD_SCENES[case]
    if callable(change):
        change(path)
    else:
        arrays = {k: v for k, v in {**small_scene_arrays(nominal_index=1), **change}.items() if v is not None}
        np.savez(path, **arrays)
    with pytest.raises(DataError) as info:
        Scene.load_npz(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_small_scene_file_loads(tmp_path):
    path = tmp_path / "scene.npz"
    np.savez(path, **small_scene_arrays(nominal_index=1))
    scene = Scene.load_npz(path)
    assert scene.H.dtype == torch.complex128 and scene.points.dtype == torch.float64
    assert scene.nominal_index == 1 and scene.driver_names == ["a", "b"] and scene.sample_rate == 48000.0


def test_reference_pair_left_speaker_is_at_the_listeners_left(config_factory):
    """H_ref channel L is louder at the left ear above 1 kHz and arrives there first."""
    scene = scene_from_config(config_factory(n_fft=256))
    ref = scene.H_ref[:, scene.nominal_index]  # (F, ear, channel)
    band = (scene.freqs >= 1000) & (scene.freqs <= 8000)
    assert bool((ref[band, 0, 0].abs() > ref[band, 1, 0].abs()).all())
    torch.testing.assert_close(ref[:, 0, 0], ref[:, 1, 1], rtol=1e-9, atol=1e-15)  # mirror pair


@pytest.mark.parametrize("device", ["smart_speaker_5", "soundbar_4", "stereo_pair"])
def test_presets_build_with_finite_transfers(device, config_factory):
    scene = scene_from_config(config_factory(device=device, zone="default", room="living_room", n_fft=32))
    assert torch.isfinite(scene.H.abs()).all() and torch.isfinite(scene.G_sphere.abs()).all()
    # every driver reaches every ear at a level within 60 dB of a monopole at 2 m, at 1 kHz
    i = int(torch.argmin((scene.freqs - 1000).abs()))
    level = 20 * torch.log10(scene.H[i].abs() * 4 * math.pi * 2.0)
    assert float(level.min()) > -60 and float(level.max()) < 30
