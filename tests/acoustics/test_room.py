"""Shoebox image-source model, validated against pyroomacoustics (an independent implementation).

What pyroomacoustics (checked with 0.10.1) does, and how the comparisons account for it:

* It stores image positions and dampings as **float32** (``room.sources[0].images`` (3, I),
  ``damping`` (bands, I)). Its images agree with ours to float32 rounding of room-sized numbers, so positions are
  compared to within eps(float32)·(|x| + longest side) and gains to 4·eps(float32) relative — a
  1e-9 m tolerance cannot be met by float32 data.
* Its RIR puts, per image, ``damping / r`` (no 1/(4π)) through an 81-tap (``frac_delay_length``)
  Hann-windowed-sinc fractional-delay filter centred on the arrival, and shifts the whole RIR by
  ``frac_delay_length // 2`` = 40 samples so the filter is causal. Our transfer uses
  ``e^{−jkr}/(4πr)`` (DESIGN.md §8), so ``4π·H_ours ≈ FFT(rir)·e^{+jω·40/fs}`` where the
  windowed sinc is accurate (below ≈0.8·fs/2).
* By default it high-passes the RIR (10 Hz Butterworth, ``rir_hpf_enable``); the transfer tests
  switch that off and restore the global constant afterwards.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from spatialopt.acoustics.drivers import Driver
from spatialopt.acoustics.head import OmniPair
from spatialopt.acoustics.room import OCTAVE_CENTRES_HZ, Shoebox, image_sources, wall_reflection_gains
from spatialopt.acoustics.scene import ear_transfer

pra = pytest.importorskip("pyroomacoustics")

FS = 48000
C = 343.0
DIMS = (5.0, 4.0, 2.7)
ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6)  # energy absorption of walls x0, x1, y0, y1, z0, z1
DEVICE_POSITION = (1.0, 2.0, 1.0)
F32_EPS = float(np.finfo(np.float32).eps)


def _t(values) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _pra_room(alphas, max_order: int, source_room, mics_room) -> "pra.ShoeBox":
    """A pyroomacoustics shoebox with flat per-wall energy absorption (its wall order is ours:
    west x=0, east x=Lx, south y=0, north y=Ly, floor z=0, ceiling z=Lz)."""
    names = ("west", "east", "south", "north", "floor", "ceiling")
    materials = pra.make_materials(**{name: float(a) for name, a in zip(names, alphas)})
    room = pra.ShoeBox(list(DIMS), fs=FS, materials=materials, max_order=max_order, air_absorption=False)
    assert room.c == C
    room.add_source(list(source_room))
    room.add_microphone_array(np.asarray(mics_room, dtype=np.float64).T)
    return room


@pytest.fixture
def no_pra_highpass():
    """Switch off pyroomacoustics' default RIR high-pass filter for one test, then restore it."""
    old = pra.constants.get("rir_hpf_enable")
    pra.constants.set("rir_hpf_enable", False)
    try:
        yield
    finally:
        pra.constants.set("rir_hpf_enable", old)


def _lex_order(points: np.ndarray) -> np.ndarray:
    """Indices sorting (I, 3) points by (x, y, z), on values rounded well above float32 noise."""
    keys = np.round(points, 4)
    return np.lexsort((keys[:, 2], keys[:, 1], keys[:, 0]))


# --------------------------------------------------------------------------------------------
# (a) image set: positions, reflection orders and gains against pyroomacoustics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_order", [0, 1, 2, 3])
@pytest.mark.parametrize("source", [(1.3, 2.2, 0.9), (0.35, 3.6, 2.45)])
def test_images_match_pyroomacoustics(source, max_order):
    img = image_sources(_t(source), _t(DIMS), max_order)
    beta = np.sqrt(1.0 - np.asarray(ALPHAS))  # pressure reflection factor per wall
    ours_pos = img.positions.numpy()
    ours_gain = np.prod(beta[None, :] ** img.hits.numpy(), axis=1)

    room = _pra_room(ALPHAS, max_order, source, [[4.1, 0.7, 1.6]])
    room.image_source_model()
    src = room.sources[0]
    assert src.damping.shape[0] == 1  # flat absorption: one band
    theirs_pos = src.images.T.astype(np.float64)
    theirs_gain = src.damping[0].astype(np.float64)

    assert ours_pos.shape == theirs_pos.shape
    i, j = _lex_order(ours_pos), _lex_order(theirs_pos)
    ours_pos, ours_gain, ours_order = ours_pos[i], ours_gain[i], img.order.numpy()[i]
    theirs_pos, theirs_gain, theirs_order = theirs_pos[j], theirs_gain[j], src.orders[j]

    # pyroomacoustics computes and stores images in float32, from room-sized numbers: allow
    # eps(float32)·(|x| + longest room side) per coordinate (≤ 2.5e-6 m at order 3; measured
    # ≤ 0.33 of that, i.e. ≤ 1e-6 m).
    tol = F32_EPS * (np.abs(ours_pos) + max(DIMS))
    np.testing.assert_array_less(np.abs(ours_pos - theirs_pos), tol)
    np.testing.assert_allclose(ours_gain, theirs_gain, rtol=4 * F32_EPS, atol=0)
    np.testing.assert_array_equal(ours_order, theirs_order)


def test_shoebox_images_are_scene_coordinates():
    """``Shoebox.images`` = room-frame images shifted by −device_position, gains Π β^hits."""
    room = Shoebox(dims=_t(DIMS), device_position=_t(DEVICE_POSITION), absorption=_t(ALPHAS), max_order=3)
    source_scene = _t([0.05, 0.12, 0.08])
    pos, mirror, hits = room.images(source_scene)
    ref = image_sources(source_scene + room.device_position, room.dims, 3)
    torch.testing.assert_close(pos + room.device_position, ref.positions, rtol=0, atol=1e-12)
    torch.testing.assert_close(hits, ref.hits, rtol=0, atol=0)
    # Mirror sign −1 exactly along axes with an odd number of reflections.
    odd = (hits[:, 0::2] + hits[:, 1::2]) % 2 == 1
    torch.testing.assert_close(mirror, torch.where(odd, -1.0, 1.0).to(torch.float64), rtol=0, atol=0)
    freqs = _t([100.0, 1000.0, 10000.0])
    gains = room.image_gains(hits, freqs)  # (F, I)
    expected = torch.prod(torch.sqrt(1 - _t(ALPHAS))[None, :] ** hits.to(torch.float64), dim=1)
    torch.testing.assert_close(gains, expected[None, :].expand(3, -1), rtol=1e-12, atol=0)


# --------------------------------------------------------------------------------------------
# (b) transfer function of an omni source to an omni receiver against pyroomacoustics' RIR
# --------------------------------------------------------------------------------------------

SOURCE_SCENE = (0.05, 0.12, 0.08)
HEAD_SCENE = (1.8, -0.3, 0.15)
YAW = math.radians(20.0)
EAR_AZIMUTH = math.radians(100.0)
HEAD_RADIUS = 0.0875


def _mic_positions_scene() -> np.ndarray:
    """(2, 3) where OmniPair puts its (left, right) mics, derived here from the conventions:
    the head faces −x at yaw 0 and turns by ``YAW`` about +z, so its own azimuth α points at scene
    azimuth π + YAW + α; the left mic is at +EAR_AZIMUTH, the right one at −EAR_AZIMUTH, on a
    circle of HEAD_RADIUS around the head centre (ear elevation 0)."""
    head = np.asarray(HEAD_SCENE)
    out = []
    for sign in (+1.0, -1.0):
        az = math.pi + YAW + sign * EAR_AZIMUTH
        out.append(head + HEAD_RADIUS * np.array([math.cos(az), math.sin(az), 0.0]))
    return np.stack(out)


def _ours_and_pra(max_order: int, n_fft: int):
    """Our (F, 2) omni transfer on the rfft grid of ``n_fft`` and pyroomacoustics' two RIRs."""
    room = Shoebox(dims=_t(DIMS), device_position=_t(DEVICE_POSITION), absorption=_t(ALPHAS), max_order=max_order)
    src = _t(SOURCE_SCENE)
    driver = Driver(name="mono", model="monopole", position=src, rotation=torch.eye(3, dtype=torch.float64),
                    origin=src, band_hz=(0.0, FS / 2))
    listener = OmniPair(head_radius=HEAD_RADIUS, ear_azimuth=EAR_AZIMUTH)
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / FS).to(torch.float64)
    h = ear_transfer([driver], listener, room, freqs, _t([HEAD_SCENE]), _t([YAW]), 0, C)  # (F, 1, 1, 2, 1)
    ours = h[:, 0, 0, :, 0].numpy()

    offset = np.asarray(DEVICE_POSITION)
    mics_room = _mic_positions_scene() + offset
    proom = _pra_room(ALPHAS, max_order, np.asarray(SOURCE_SCENE) + offset, mics_room)
    proom.compute_rir()
    rirs = [np.asarray(proom.rir[m][0], dtype=np.float64) for m in range(2)]
    return freqs.numpy(), ours, rirs, proom, mics_room


def test_mic_positions_match_omni_pair():
    """The mic positions handed to pyroomacoustics are where OmniPair puts its mics."""
    listener = OmniPair(head_radius=HEAD_RADIUS, ear_azimuth=EAR_AZIMUTH)
    mics = _t(HEAD_SCENE) + HEAD_RADIUS * listener.ear_directions(_t([YAW]))[0]
    np.testing.assert_allclose(mics.numpy(), _mic_positions_scene(), rtol=0, atol=1e-12)


def test_transfer_matches_pyroomacoustics_rir(no_pra_highpass):
    """4π·H_ours vs FFT of pyroomacoustics' RIR (its 40-sample FD delay removed), 100 Hz – 0.8·fs/2.

    Measured with pyroomacoustics 0.10.1: 0.12 % rms relative error (both mics), worst bin 0.44 % of
    the rms magnitude; per sub-band 0.05–0.06 % below 5 kHz rising to 0.17 % at 12–19.2 kHz
    (windowed-sinc FD and float32 RIR). Asserted: < 0.5 % rms, < 1.5 % worst bin, < 1 % per sub-band.
    """
    n_fft = 4096
    freqs, ours, rirs, _, _ = _ours_and_pra(max_order=3, n_fft=n_fft)
    fdl2 = pra.constants.get("frac_delay_length") // 2
    assert fdl2 == 40
    band = (freqs >= 100.0) & (freqs <= 0.8 * FS / 2)
    f = freqs[band]
    for ear in range(2):
        rir = rirs[ear]
        assert len(rir) <= n_fft, "FFT would truncate the RIR"
        theirs = np.fft.rfft(rir, n_fft)[band] * np.exp(2j * np.pi * f * fdl2 / FS) / (4 * np.pi)
        h = ours[band, ear]
        err = np.abs(theirs - h)
        scale = np.sqrt(np.mean(np.abs(h) ** 2))
        rms_rel = np.sqrt(np.mean(err**2)) / scale
        assert rms_rel < 5e-3, f"ear {ear}: rms relative error {rms_rel:.2e}"
        assert err.max() / scale < 1.5e-2, f"ear {ear}: worst-bin error {err.max() / scale:.2e} of rms magnitude"
        # Also per sub-band, so a local failure cannot hide in the average.
        for lo, hi in ((100.0, 1000.0), (1000.0, 5000.0), (5000.0, 12000.0), (12000.0, 0.8 * FS / 2 + 1)):
            m = (f >= lo) & (f < hi)
            sub = np.sqrt(np.mean(err[m] ** 2) / np.mean(np.abs(h[m]) ** 2))
            assert sub < 1e-2, f"ear {ear}, {lo:.0f}–{hi:.0f} Hz: rms relative error {sub:.2e}"


def _peaks(signal: np.ndarray, expected: np.ndarray, upsample: int) -> tuple[np.ndarray, np.ndarray]:
    """Peak time (samples) and height near each expected arrival, parabolic-refined on the
    ``upsample``-times finer grid."""
    times, heights = [], []
    for t in expected:
        lo, hi = int(round((t - 3) * upsample)), int(round((t + 3) * upsample))
        j = lo + int(np.argmax(signal[lo:hi]))
        y0, y1, y2 = signal[j - 1 : j + 2]
        d = 0.5 * (y0 - y2) / (y0 - 2 * y1 + y2)
        times.append((j + d) / upsample)
        heights.append(y1 - 0.25 * (y0 - y2) * d)
    return np.array(times), np.array(heights)


def test_direct_and_first_order_arrival_times(no_pra_highpass):
    """Arrival times of the direct path and the six first-order images.

    Reference: geometry from pyroomacoustics' own image list and the mic positions. Measured:
    the peaks of our band-limited impulse response (IFFT of our transfer under a cos² taper to
    0.8·fs/2, upsampled 16×) and of pyroomacoustics' RIR through the same taper. Its peaks sit
    exactly ``frac_delay_length // 2`` samples late and are 4π times ours (``damping / r`` per image).
    Measured: |Δt| ≤ 5e-4 samples (10 ns) both ways, height ratio 4π within 0.12 %. Asserted:
    |Δt| ≤ 0.01 samples (0.2 µs), ratio within 1 %. The geometry keeps the seven arrivals ≥ 24
    samples apart so the taper's pulses do not interfere.
    """
    n_fft, upsample = 4096, 16
    freqs, ours, rirs, proom, mics_room = _ours_and_pra(max_order=1, n_fft=n_fft)
    fdl2 = pra.constants.get("frac_delay_length") // 2
    f_max = 0.8 * FS / 2
    taper = np.where(freqs <= f_max, np.cos(0.5 * np.pi * freqs / f_max) ** 2, 0.0)
    images = proom.sources[0].images.T.astype(np.float64)
    assert images.shape[0] == 7

    # Our own geometric arrivals agree with pyroomacoustics' (same images, same mics).
    room = Shoebox(dims=_t(DIMS), device_position=_t(DEVICE_POSITION), absorption=_t(ALPHAS), max_order=1)
    our_images = room.images(_t(SOURCE_SCENE))[0].numpy() + np.asarray(DEVICE_POSITION)

    for ear in range(2):
        geo = np.sort(np.linalg.norm(images - mics_room[ear], axis=1)) / C * FS  # samples
        our_geo = np.sort(np.linalg.norm(our_images - mics_room[ear], axis=1)) / C * FS
        np.testing.assert_allclose(our_geo, geo, rtol=0, atol=1e-3)  # float32 image positions: ≤ 1e-3 samples
        assert np.diff(geo).min() > 20

        ours_ir = np.fft.irfft(ours[:, ear] * taper, n_fft * upsample)
        pra_ir = np.fft.irfft(np.fft.rfft(rirs[ear], n_fft) * taper, n_fft * upsample)
        t_ours, a_ours = _peaks(ours_ir, geo, upsample)
        t_pra, a_pra = _peaks(pra_ir, geo + fdl2, upsample)
        np.testing.assert_allclose(t_ours, geo, rtol=0, atol=1e-2)  # samples (0.2 µs)
        np.testing.assert_allclose(t_pra - fdl2, geo, rtol=0, atol=1e-2)
        np.testing.assert_allclose(t_ours, t_pra - fdl2, rtol=0, atol=1e-2)
        np.testing.assert_allclose(a_pra / a_ours, 4 * np.pi, rtol=1e-2)


# --------------------------------------------------------------------------------------------
# (c) octave-band absorption and Sabine T60
# --------------------------------------------------------------------------------------------

BANDS = torch.tensor(
    [[0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60],
     [0.10, 0.15, 0.20, 0.25, 0.30, 0.35, 0.40],
     [0.02, 0.04, 0.08, 0.16, 0.32, 0.48, 0.64],
     [0.60, 0.50, 0.40, 0.30, 0.20, 0.10, 0.05],
     [0.30, 0.30, 0.30, 0.30, 0.30, 0.30, 0.30],
     [0.00, 0.01, 0.02, 0.03, 0.04, 0.05, 0.06]],
    dtype=torch.float64,
)


def test_octave_band_gains_at_centres_and_held_outside():
    centres = _t(OCTAVE_CENTRES_HZ)
    beta = wall_reflection_gains(BANDS, centres)  # (7, 6)
    torch.testing.assert_close(beta, torch.sqrt(1 - BANDS).T, rtol=0, atol=1e-12)
    below = wall_reflection_gains(BANDS, _t([0.0, 20.0, 60.0, 124.9]))
    torch.testing.assert_close(below, torch.sqrt(1 - BANDS[:, 0])[None].expand(4, 6), rtol=0, atol=1e-12)
    above = wall_reflection_gains(BANDS, _t([8000.1, 12000.0, 24000.0]))
    torch.testing.assert_close(above, torch.sqrt(1 - BANDS[:, -1])[None].expand(3, 6), rtol=0, atol=1e-12)


def test_octave_band_interpolation_is_linear_in_log_frequency():
    """Between two centres, α is linear in log2(f): at the geometric mean it is the mean α."""
    for b in range(len(OCTAVE_CENTRES_HZ) - 1):
        lo, hi = OCTAVE_CENTRES_HZ[b], OCTAVE_CENTRES_HZ[b + 1]
        fracs = (0.25, 0.5, 0.75)
        freqs = _t([lo * 2.0**w for w in fracs])  # centres are an octave apart
        alpha = 1 - wall_reflection_gains(BANDS, freqs) ** 2  # (3, 6)
        expected = torch.stack([(1 - w) * BANDS[:, b] + w * BANDS[:, b + 1] for w in fracs])
        torch.testing.assert_close(alpha, expected, rtol=0, atol=1e-12)


def test_flat_absorption_shapes():
    freqs = _t([50.0, 1000.0, 20000.0])
    torch.testing.assert_close(wall_reflection_gains(_t(0.36), freqs), torch.full((3, 6), 0.8, dtype=torch.float64),
                               rtol=0, atol=1e-15)
    torch.testing.assert_close(wall_reflection_gains(_t(ALPHAS), freqs),
                               torch.sqrt(1 - _t(ALPHAS))[None].expand(3, 6), rtol=0, atol=1e-15)


@pytest.mark.parametrize(
    "absorption, alpha_1k",
    [(0.3, [0.3] * 6), (list(ALPHAS), list(ALPHAS)), (BANDS.tolist(), BANDS[:, 3].tolist())],
    ids=["scalar", "per_wall", "octave_bands"],
)
@pytest.mark.parametrize("c", [343.0, 340.0])
def test_sabine_t60_textbook(absorption, alpha_1k, c):
    """T60 = 24·ln(10)·V / (c·Σ S_w α_w) (≈ 0.161·V/A at c = 343 m/s), α at 1 kHz."""
    room = Shoebox(dims=_t(DIMS), device_position=_t(DEVICE_POSITION), absorption=_t(absorption), max_order=3)
    lx, ly, lz = DIMS
    volume = 5.0 * 4.0 * 2.7  # 54 m³
    areas = [4.0 * 2.7, 4.0 * 2.7, 5.0 * 2.7, 5.0 * 2.7, 5.0 * 4.0, 5.0 * 4.0]  # walls x0, x1, y0, y1, z0, z1
    assert math.isclose(volume, lx * ly * lz)
    sabins = sum(s * a for s, a in zip(areas, alpha_1k))
    expected = 24 * math.log(10) * volume / (c * sabins)
    assert math.isclose(room.sabine_t60(c), expected, rel_tol=1e-12)
    if absorption == 0.3 and c == 343.0:
        assert math.isclose(expected, 0.161 * 54 / (0.3 * 88.6), rel_tol=1e-3)  # the 0.161·V/A form


# --------------------------------------------------------------------------------------------
# (d) image enumeration counts
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("max_order", range(7))
def test_image_counts_and_orders(max_order):
    """#images with order ≤ N = #lattice points with |tx|+|ty|+|tz| ≤ N = (2N+1)(2N²+2N+3)/3
    (1, 7, 25, 63, 129, ...); hits sum to the order; every image is distinct; direct path first."""
    img = image_sources(_t([1.3, 2.2, 0.9]), _t(DIMS), max_order)
    n = max_order
    expected = (2 * n + 1) * (2 * n * n + 2 * n + 3) // 3
    assert img.positions.shape == (expected, 3)
    if n <= 3:
        assert expected == (1, 7, 25, 63)[n]
    per_order = torch.bincount(img.order, minlength=n + 1)
    # Shell k of the octahedral lattice holds 4k² + 2 points (1 for k = 0).
    assert per_order.tolist() == [1] + [4 * k * k + 2 for k in range(1, n + 1)]
    torch.testing.assert_close(img.hits.sum(-1), img.order, rtol=0, atol=0)
    assert bool((img.order[1:] >= img.order[:-1]).all())
    torch.testing.assert_close(img.positions[0], _t([1.3, 2.2, 0.9]), rtol=0, atol=0)
    assert int(img.order.max()) == n
    assert torch.unique(torch.round(img.positions * 1e6), dim=0).shape[0] == expected
    # An axis with |t| reflections splits them ⌈|t|/2⌉ / ⌊|t|/2⌋ between its two walls.
    per_axis = img.hits[:, 0::2] + img.hits[:, 1::2]
    assert bool(((img.hits[:, 0::2] - img.hits[:, 1::2]).abs() <= 1).all())
    assert int(per_axis.sum(-1).max()) == n
