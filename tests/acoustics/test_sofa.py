"""SofaListener: SimpleFreeFieldHRIR sets read with h5py, checked against the rigid-sphere head.

The reference set is the rigid-sphere model itself (``sphere_head_response`` with the source at
100 m, divided by the free-field monopole at the head centre), turned into causal IRs, written as a
SOFA file on a 5° grid and read back; so any difference from ``SphereHead`` is the SOFA path's
(IR representation, onset alignment, direction interpolation).
"""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest
import torch

from spatialopt.acoustics.head import SphereHead, sphere_head_response
from spatialopt.acoustics.sofa import SofaListener, hrir_onsets, interpolation_weights
from spatialopt.config import build_listener
from spatialopt.errors import ConfigError, DataError
from spatialopt.geometry import head_rotation, rotation_z, unit_vector

FS = 48000.0  # Hz, the synthetic set's sample rate
TAPS = 256  # IR length
DELAY = 48  # samples added to make the IRs causal (the ear nearest the source leads by a/c ≈ 12)
C = 343.0  # m/s
RADIUS = 0.0875  # m
DIST = 100.0  # m, source distance of the synthetic set and of the comparisons (far field)
TAPER_HZ = (18000.0, 22000.0)  # raised-cosine roll-off of the set, as a real anti-alias filter

# Tolerances of the 5° idw3 set against the exact sphere (measured values in brackets, CPU float64).
MAG_RMS_DB = 0.4  # rms |dB error|, 0.1–16 kHz, 300 random directions, yaws 0 and 40° [0.22]
MAG_P99_DB = 1.5  # 99th percentile of |dB error| [0.74]; the max (8 dB) is > 10 kHz within 10° of
#   the point opposite an ear, where the sphere's bright-spot interference changes fast with direction
MAG_LOW_MAX_DB = 0.5  # max |dB error| below 2 kHz [0.36]
ITD_MAX_US = 20.0  # max |ITD error| (interaural phase delay), 50–1500 Hz [12.8]
ITD_RMS_US = 6.0  # rms ITD error [4.0]


def _grid(step: float) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth/elevation grid in degrees: every ``step`` in both, poles once."""
    az = np.arange(0.0, 360.0, step)
    el = np.arange(-90.0 + step, 90.0, step)
    a, e = np.meshgrid(az, el, indexing="ij")
    return np.concatenate([a.ravel(), [0.0, 0.0]]), np.concatenate([e.ravel(), [-90.0, 90.0]])


def _sphere_hrir(az_deg: np.ndarray, el_deg: np.ndarray) -> np.ndarray:
    """(D, 2, TAPS) IRs of the rigid sphere relative to the free field at the head centre, delayed by DELAY."""
    f = np.fft.rfftfreq(TAPS, 1.0 / FS)
    k = torch.tensor(2 * np.pi * np.maximum(f, f[1] / 64) / C)  # DC → a tiny k (the series needs k > 0)
    u = unit_vector(torch.tensor(np.radians(az_deg)), torch.tensor(np.radians(el_deg)))  # (D, 3) head frame
    ears = unit_vector(torch.tensor([math.pi / 2, -math.pi / 2], dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    # The response depends on the source–ear angle only: one source, all angles as "ears".
    p = sphere_head_response(k, RADIUS, torch.tensor([DIST], dtype=torch.float64), (u @ ears.T).reshape(1, -1))[:, 0]
    h = (p / (torch.exp(-1j * k * DIST) / (4 * math.pi * DIST))[:, None]).numpy()
    roll = np.clip((f - TAPER_HZ[0]) / (TAPER_HZ[1] - TAPER_HZ[0]), 0.0, 1.0)
    h = h * (0.5 * (1 + np.cos(np.pi * roll)) * np.exp(-2j * np.pi * f * DELAY / FS))[:, None]
    return np.fft.irfft(h, TAPS, axis=0).T.reshape(-1, 2, TAPS)


def _write_sofa(path, ir, az, el, *, convention="SimpleFreeFieldHRIR", fs=FS, delay=None, positions=None,
                position_type="spherical", listener_view=None) -> None:
    """A minimal SimpleFreeFieldHRIR file, as the netCDF writers lay it out (variables at the root)."""
    with h5py.File(path, "w") as f:
        f.attrs["Conventions"] = "SOFA"
        f.attrs["SOFAConventions"] = convention
        f["Data.IR"] = ir
        f["Data.SamplingRate"] = np.array([fs], dtype=np.float64)
        f["Data.Delay"] = np.zeros((1, 2)) if delay is None else delay
        if positions is None:
            positions = np.stack([az, el, np.full_like(az, 1.2)], -1)
        pos = f.create_dataset("SourcePosition", data=positions)
        pos.attrs["Type"] = position_type
        pos.attrs["Units"] = "degree, degree, metre" if position_type == "spherical" else "metre"
        lp = f.create_dataset("ListenerPosition", data=np.zeros((1, 3)))
        lp.attrs["Type"], lp.attrs["Units"] = "cartesian", "metre"
        if listener_view is not None:
            lv = f.create_dataset("ListenerView", data=np.asarray(listener_view, dtype=np.float64)[None])
            lv.attrs["Type"], lv.attrs["Units"] = "cartesian", "metre"


@pytest.fixture(scope="module")
def sphere_set(tmp_path_factory):
    """The 5° rigid-sphere set as a SOFA file: (path, az_deg, el_deg, ir)."""
    az, el = _grid(5.0)
    ir = _sphere_hrir(az, el)
    path = tmp_path_factory.mktemp("sofa") / "sphere_5deg.sofa"
    _write_sofa(path, ir, az, el)
    return str(path), az, el, ir


def _scene_sources(az_deg, el_deg, yaw: float) -> torch.Tensor:
    """(M, 3) scene-frame positions at DIST of sources at head-frame (az, el) for a head at ``yaw``."""
    u = unit_vector(torch.tensor(np.radians(az_deg)), torch.tensor(np.radians(el_deg)))
    return DIST * u @ head_rotation(torch.tensor(yaw, dtype=torch.float64)).T


def _itd(p: torch.Tensor, freqs: torch.Tensor) -> np.ndarray:
    """Interaural phase delay (s), left lagging positive; p (F, ..., 2) on an ascending grid from low f."""
    phase = np.unwrap(np.angle((p[..., 0] * p[..., 1].conj()).numpy()), axis=0)
    return -phase / (2 * np.pi * freqs.numpy().reshape((-1,) + (1,) * (phase.ndim - 1)))


def test_idw3_matches_sphere_between_grid_points(sphere_set):
    path = sphere_set[0]
    rng = np.random.default_rng(0)
    az = rng.uniform(-180, 180, 300)
    el = np.degrees(np.arcsin(rng.uniform(-0.85, 0.85, 300)))  # uniform on the sphere, |el| < 58°
    src = _scene_sources(az, el, 0.0)  # head-frame directions at yaw 0; yaw 40° turns them
    yaws = torch.tensor([0.0, math.radians(40.0)], dtype=torch.float64)
    sphere = SphereHead(head_radius=RADIUS)
    freqs = torch.tensor(np.geomspace(100.0, 16000.0, 80))
    k = 2 * math.pi * freqs / C
    ref = sphere.monopole_response(k, src, yaws)
    errors = {}
    for method in ("nearest", "idw3"):
        got = SofaListener.from_file(path, head_radius=RADIUS, interpolation=method).monopole_response(k, src, yaws)
        assert got.shape == ref.shape == (80, 300, 2, 2) and got.dtype == torch.complex128
        errors[method] = (20 * torch.log10(got.abs() / ref.abs())).abs()
    db = errors["idw3"]
    assert db.pow(2).mean().sqrt() < MAG_RMS_DB
    assert torch.quantile(db.flatten(), 0.99) < MAG_P99_DB
    assert db[freqs < 2000].max() < MAG_LOW_MAX_DB
    # Onset-aligned mixing must beat picking the nearest direction.
    assert db.pow(2).mean() < errors["nearest"].pow(2).mean()

    f_itd = torch.arange(50.0, 1501.0, 50.0)
    k_itd = 2 * math.pi * f_itd / C
    listener = SofaListener.from_file(path, head_radius=RADIUS)
    err = _itd(listener.monopole_response(k_itd, src, yaws), f_itd) - _itd(sphere.monopole_response(k_itd, src, yaws), f_itd)
    assert np.abs(err).max() * 1e6 < ITD_MAX_US
    assert np.sqrt((err**2).mean()) * 1e6 < ITD_RMS_US


@pytest.mark.parametrize("method", ["nearest", "idw3"])
def test_exact_at_measured_direction(sphere_set, method):
    """At a measured direction and an FFT bin, the set returns the sphere exactly, up to the common delay."""
    path, az, el, _ = sphere_set
    pick = [0, 100, 777, 2000, len(az) - 1]  # includes the north pole
    listener = SofaListener.from_file(path, interpolation=method)
    src = _scene_sources(az[pick], el[pick], 0.0)
    bins = torch.arange(1, int(TAPER_HZ[0] * TAPS / FS), dtype=torch.float64) * FS / TAPS  # below the taper
    k = 2 * math.pi * bins / C
    got = listener.monopole_response(k, src, torch.zeros(1, dtype=torch.float64))
    ref = SphereHead(head_radius=RADIUS).monopole_response(k, src, torch.zeros(1, dtype=torch.float64))
    shift = torch.exp(-2j * math.pi * bins * (DELAY / FS - listener.leading_delay))[:, None, None, None]
    level = 1 / (4 * math.pi * DIST)  # free-field pressure at the head centre
    torch.testing.assert_close(got, ref * shift, rtol=1e-9, atol=1e-9 * level)


def test_leading_delay_is_earliest_onset_minus_margin(sphere_set):
    listener = SofaListener.from_file(sphere_set[0], onset_margin=8.0)
    onsets = hrir_onsets(torch.from_numpy(sphere_set[3]), FS)
    assert listener.leading_delay * FS == pytest.approx(float(onsets.min()) - 8.0, abs=1e-9)
    # The earliest IR is an ipsilateral ear: its onset precedes DELAY by about a/c plus the
    # Gaussian detector's lead (2.15 σ_t ≈ 4.5 samples at 3 kHz) — within 2 samples.
    expected = DELAY - RADIUS / C * FS - 4.5
    assert abs(float(onsets.min()) - expected) < 2.0


def test_head_yaw_equals_opposite_source_rotation(sphere_set):
    """Turning the head by +30° (to its left) is the same as moving the source by −30° about the head."""
    listener = SofaListener.from_file(sphere_set[0])
    rng = np.random.default_rng(1)
    src = torch.tensor(rng.normal(size=(20, 3)) * [2.0, 2.0, 0.5], dtype=torch.float64)
    k = 2 * math.pi * torch.tensor([200.0, 1000.0, 5000.0, 12000.0]) / C
    turned = listener.monopole_response(k, src, torch.tensor([math.radians(30.0)], dtype=torch.float64))
    moved_src = src @ rotation_z(torch.tensor(math.radians(-30.0), dtype=torch.float64)).T
    moved = listener.monopole_response(k, moved_src, torch.zeros(1, dtype=torch.float64))
    torch.testing.assert_close(turned, moved, rtol=1e-10, atol=1e-14)
    # And the turn matters: at yaw 0 the listener faces −x, so a source at scene azimuth 120° is
    # 60° to the listener's right (right ear louder); after a +120° turn it is straight behind.
    side = torch.tensor([[-1.0, math.sqrt(3.0), 0.0]], dtype=torch.float64)
    p = listener.monopole_response(k, side, torch.tensor([0.0, 2 * math.pi / 3], dtype=torch.float64))
    ild = (p[..., 1].abs() / p[..., 0].abs())[2, 0]  # right/left at 5 kHz, (yaw,)
    assert float(ild[0]) > 3.0  # > 9.5 dB (sphere: 4.16)
    assert abs(float(ild[1]) - 1.0) < 0.05  # behind: equal ears (symmetric set)


def test_delay_variable_and_frames(sphere_set, tmp_path):
    """Data.Delay is added to the IRs; cartesian positions and a rotated ListenerView read the same."""
    path, az, el, ir = sphere_set
    keep = (np.abs(el) <= 30) & (az % 15 == 0)  # a smaller set keeps this fast
    az, el, ir = az[keep], el[keep], ir[keep]
    base = np.pad(ir, ((0, 0), (0, 0), (8, 0)))
    shifted = np.pad(ir, ((0, 0), (0, 0), (5, 3)))  # 3 samples earlier, put back by Data.Delay
    _write_sofa(tmp_path / "base.sofa", base, az, el)
    _write_sofa(tmp_path / "delay.sofa", shifted, az, el, delay=np.array([[3.0, 3.0]]))
    # Listener looking along +y: every source rotated by +90° about z, written in cartesian metres.
    u = unit_vector(torch.tensor(np.radians(az + 90.0)), torch.tensor(np.radians(el))).numpy() * 1.2
    _write_sofa(tmp_path / "view.sofa", base, az, el, positions=u, position_type="cartesian", listener_view=[0.0, 1.0, 0.0])
    src = _scene_sources(np.array([7.0, 100.0, -50.0]), np.array([3.0, -20.0, 12.0]), 0.0)
    k = 2 * math.pi * torch.tensor([300.0, 3000.0, 9000.0]) / C
    yaw = torch.zeros(1, dtype=torch.float64)
    ref = SofaListener.from_file(str(tmp_path / "base.sofa")).monopole_response(k, src, yaw)
    for name in ("delay.sofa", "view.sofa"):
        got = SofaListener.from_file(str(tmp_path / name)).monopole_response(k, src, yaw)
        torch.testing.assert_close(got, ref, rtol=1e-9, atol=1e-15)


def test_above_nyquist_holds_the_magnitude(sphere_set):
    listener = SofaListener.from_file(sphere_set[0])
    src = _scene_sources(np.array([33.0]), np.array([10.0]), 0.0)
    k = 2 * math.pi * torch.tensor([FS / 2, FS / 2 + 3000.0, 40000.0]) / C
    p = listener.monopole_response(k, src, torch.zeros(1, dtype=torch.float64)).abs()
    torch.testing.assert_close(p[1:], p[:1].expand(2, -1, -1, -1), rtol=1e-12, atol=0.0)


def test_interpolation_weights():
    grid = unit_vector(torch.tensor([0.0, 0.1, 0.0, 0.1], dtype=torch.float64), torch.tensor([0.0, 0.0, 0.1, 0.1], dtype=torch.float64))
    query = unit_vector(torch.tensor([0.0, 0.03], dtype=torch.float64), torch.tensor([0.0, 0.02], dtype=torch.float64))
    idx, w = interpolation_weights(query, grid, "idw3")
    assert idx.shape == w.shape == (2, 3)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, dtype=torch.float64), rtol=0, atol=1e-15)
    assert idx[0, 0] == 0 and w[0, 0] == 1.0  # exact hit takes all the weight
    assert idx[1, 0] == 0 and w[1, 0] > w[1, 1:].max()  # nearest gets the largest weight
    idx, w = interpolation_weights(query, grid, "nearest")
    assert idx.shape == (2, 1) and bool((w == 1).all())


def test_build_listener_from_config(sphere_set, tmp_path):
    listener = build_listener({"type": "sofa", "sofa_file": sphere_set[0], "head_radius": 0.09, "ear_azimuth": 100})
    assert isinstance(listener, SofaListener)
    assert listener.head_radius == pytest.approx(0.09, abs=0) and listener.ear_azimuth == pytest.approx(math.radians(100), abs=1e-15)
    bad = tmp_path / "missing.sofa"
    with pytest.raises(ConfigError, match="missing.sofa"):
        build_listener({"type": "sofa", "sofa_file": str(bad)})


# ---------------------------------------------------------------------------------------------
# Bad files: every one is a DataError naming the file, on one line.
# ---------------------------------------------------------------------------------------------


def _small_set():
    az, el = np.array([0.0, 90.0, 180.0, 270.0]), np.zeros(4)
    ir = np.zeros((4, 2, 16))
    ir[:, :, 3] = 1.0
    return ir, az, el


def _writer(**changes):
    """A writer of the small set with variables replaced (value None = delete) or attributes changed."""

    def write(path):
        ir, az, el = _small_set()
        _write_sofa(path, ir, az, el)
        with h5py.File(path, "a") as f:
            for key, value in changes.items():
                if key.startswith("@"):  # global attribute
                    if value is None:
                        del f.attrs[key[1:]]
                    else:
                        f.attrs[key[1:]] = value
                elif "@" in key:  # variable attribute
                    var, attr = key.split("@")
                    if value is None:
                        del f[var].attrs[attr]
                    else:
                        f[var].attrs[attr] = value
                else:
                    attrs = dict(f[key].attrs) if key in f else {}
                    if key in f:
                        del f[key]
                    if callable(value):
                        value(f, key)
                    elif value is not None:
                        f[key] = value
                        f[key].attrs.update(attrs)

    return write


def _nan_ir():
    ir, _, _ = _small_set()
    ir[2, 1, 5] = np.nan
    return ir


def _zero_ir():
    ir, _, _ = _small_set()
    ir[1, 0] = 0.0
    return ir


BAD_FILES = {
    "empty": lambda p: p.write_bytes(b""),
    "not_hdf5": lambda p: p.write_text("SOFA? no, just text\n"),
    "truncated": lambda p: (_writer()(p), p.write_bytes(p.read_bytes()[:1200])),
    "wrong_convention": _writer(**{"@SOFAConventions": "SimpleFreeFieldHRTF"}),
    "no_convention": _writer(**{"@SOFAConventions": None}),
    "no_ir": _writer(**{"Data.IR": None}),
    "ir_is_group": _writer(**{"Data.IR": lambda f, k: f.create_group(k)}),
    "ir_2d": _writer(**{"Data.IR": np.ones((4, 16))}),
    "three_receivers": _writer(**{"Data.IR": np.ones((4, 3, 16))}),
    "no_measurements": _writer(**{"Data.IR": np.ones((0, 2, 16))}),
    "complex_ir": _writer(**{"Data.IR": np.ones((4, 2, 16), dtype=np.complex128)}),
    "nan_ir": _writer(**{"Data.IR": _nan_ir()}),
    "zero_ir": _writer(**{"Data.IR": _zero_ir()}),
    "too_many_measurements": _writer(**{"Data.IR": lambda f, k: f.create_dataset(k, shape=(300_000, 2, 8), dtype='f8', chunks=(1000, 2, 8))}),
    "too_many_values": _writer(**{"Data.IR": lambda f, k: f.create_dataset(k, shape=(100_000, 2, 512), dtype='f8', chunks=(100, 2, 512))}),
    "no_rate": _writer(**{"Data.SamplingRate": None}),
    "zero_rate": _writer(**{"Data.SamplingRate": np.array([0.0])}),
    "negative_rate": _writer(**{"Data.SamplingRate": np.array([-48000.0])}),
    "absurd_rate": _writer(**{"Data.SamplingRate": np.array([1e12])}),
    "inf_rate": _writer(**{"Data.SamplingRate": np.array([np.inf])}),
    "bad_delay_shape": _writer(**{"Data.Delay": np.zeros((4, 3))}),
    "no_positions": _writer(**{"SourcePosition": None}),
    "positions_shape": _writer(**{"SourcePosition": np.zeros((3, 3))}),
    "positions_nan": _writer(**{"SourcePosition": np.full((4, 3), np.nan)}),
    "positions_no_type": _writer(**{"SourcePosition@Type": None}),
    "positions_sh_type": _writer(**{"SourcePosition@Type": "spherical harmonics"}),
    "source_at_listener": _writer(**{"SourcePosition": np.zeros((4, 3))}),
    "view_zero": _writer(**{"ListenerView": lambda f, k: _typed(f, k, np.zeros((1, 3)))}),
}


def _typed(f, key, value):
    f[key] = value
    f[key].attrs["Type"], f[key].attrs["Units"] = "cartesian", "metre"


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_a_data_error(tmp_path, case):
    path = tmp_path / f"bad_{case}.sofa"
    BAD_FILES[case](path)
    with pytest.raises(DataError) as info:
        SofaListener.from_file(str(path))
    message = str(info.value)
    assert str(path) in message and "\n" not in message, message
    assert len(message) > len(str(path)) + 10  # says what is wrong


def test_missing_file_is_a_data_error(tmp_path):
    path = tmp_path / "nowhere.sofa"
    with pytest.raises(DataError, match="file not found") as info:
        SofaListener.from_file(str(path))
    assert str(path) in str(info.value)


def test_small_valid_set_loads(tmp_path):
    """The base of the bad-file cases is itself valid (so each case fails for its own reason)."""
    path = tmp_path / "good.sofa"
    _writer()(path)
    listener = SofaListener.from_file(str(path))
    assert listener.hrir.shape == (4, 2, 16) and listener.sample_rate == FS
    torch.testing.assert_close(listener.directions[1], torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64), rtol=0, atol=1e-15)
