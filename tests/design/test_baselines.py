"""Closed-form baselines: Kirkeby / zone LS CTC, delay-and-sum / LS beamformers, crossovers, metrics.

Numbers measured on the real default scene are printed (run with ``pytest -s`` to see them).
"""

from __future__ import annotations

import math

import numpy as np

import pytest
import torch

from conftest import make_config
from spatialopt.acoustics import sh
from spatialopt.config import scene_from_config
from spatialopt.design import baselines as bl
from spatialopt.geometry import unit_vector

C_SOUND = 343.0


def _random_H(shape, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(shape, generator=g, dtype=torch.float64))


def _target(freqs, delay):
    return torch.exp(-2j * math.pi * freqs * delay)[:, None, None] * torch.eye(2, dtype=torch.complex128)


@pytest.fixture(scope="module")
def scene():
    """smart_speaker_5, rigid-sphere head at 2 m, default 27-point zone, free field, n_fft 256."""
    return scene_from_config(make_config(zone="default", n_fft=256))


# ------------------------------------------------------------------------------------- crossovers


def test_band_mask_shape_and_ramps():
    freqs = torch.linspace(0, 24000, 2001, dtype=torch.float64)
    bands = torch.tensor([[300.0, 8000.0], [0.0, 500.0]], dtype=torch.float64)
    m = bl.band_mask(freqs, bands, transition_octaves=0.5)
    assert m.shape == (2001, 2)
    assert float(m.min()) >= 0.0 and float(m.max()) <= 1.0
    # 0 outside each band, 1 well inside it, transitions inside the band.
    assert float(m[(freqs < 300) | (freqs > 8000), 0].abs().max()) == 0.0
    assert float(m[(freqs >= 300 * 2**0.5) & (freqs <= 8000 / 2**0.5), 0].min()) == pytest.approx(1.0, abs=1e-12)
    assert float(m[0, 1]) == 1.0 and float(m[freqs > 500, 1].abs().max()) == 0.0  # lo = 0: no low roll-off
    # Monotone ramps: rising below 600 Hz, falling above 4 kHz.
    up = m[(freqs >= 300) & (freqs <= 430), 0]
    down = m[(freqs >= 5600) & (freqs <= 8000), 0]
    assert bool((up.diff() >= -1e-15).all()) and bool((down.diff() <= 1e-15).all())


def test_kirkeby_regularization_profile():
    freqs = torch.linspace(0, 24000, 1001, dtype=torch.float64)
    beta = bl.kirkeby_regularization(freqs, band_hz=(200, 8000), inside=1e-3, outside=1.0, transition_octaves=1.0)
    inband = (freqs >= 200) & (freqs <= 8000)
    assert torch.allclose(beta[inband], torch.full_like(beta[inband], 1e-3), rtol=1e-12)
    assert torch.allclose(beta[(freqs >= 16000) | (freqs <= 100)], torch.ones(1, dtype=torch.float64), rtol=1e-12)
    ramp = beta[(freqs >= 8000) & (freqs <= 16000)]
    assert bool((ramp.diff() >= 0).all())  # smooth monotone rise between the plateaus


# --------------------------------------------------------------------------------------------- CTC


def test_kirkeby_two_drivers_zero_beta_is_exact_inverse():
    freqs = torch.linspace(0, 24000, 65, dtype=torch.float64)
    H = _random_H((65, 2, 2), 0)
    delay = 1.3e-3
    C = bl.kirkeby_ctc(H, 0.0, delay, freqs)
    assert C.shape == (65, 2, 2) and C.dtype == torch.complex128
    err = (H @ C - _target(freqs, delay)).abs().max()
    assert float(err) < 1e-9


def test_kirkeby_push_through_equals_direct_form():
    freqs = torch.linspace(0, 24000, 65, dtype=torch.float64)
    H = _random_H((65, 2, 5), 1)
    delay, beta = 2e-3, 1e-2
    C = bl.kirkeby_ctc(H, beta, delay, freqs)  # D > 2: push-through (2×2 solve)
    lam = beta * H.abs().square().sum(dim=(1, 2)) / 2  # documented relative scaling
    Hh = H.mH
    direct = torch.linalg.solve(Hh @ H + lam[:, None, None] * torch.eye(5, dtype=H.dtype), Hh) @ _target(freqs, delay)
    assert float((C - direct).abs().max() / direct.abs().max()) < 1e-12
    normal = bl.kirkeby_ctc(H, beta, delay, freqs, form="normal")
    assert float((C - normal).abs().max() / normal.abs().max()) < 1e-12
    # Absolute λ gives the same as the equivalent relative β.
    absolute = bl.kirkeby_ctc(H, lam, delay, freqs, relative=False)
    assert float((C - absolute).abs().max() / C.abs().max()) < 1e-12


def test_kirkeby_is_the_minimiser():
    freqs = torch.linspace(100, 20000, 17, dtype=torch.float64)
    H = _random_H((17, 2, 4), 2)
    delay, beta = 1e-3, 3e-2
    C = bl.kirkeby_ctc(H, beta, delay, freqs)
    lam = beta * H.abs().square().sum(dim=(1, 2)) / 2
    T = _target(freqs, delay)

    def cost(X):
        return (H @ X - T).abs().square().sum(dim=(1, 2)) + lam * X.abs().square().sum(dim=(1, 2))

    # Stationarity: ∂J/∂C* = Hᴴ(HC − T) + λC = 0.
    grad = H.mH @ (H @ C - T) + lam[:, None, None] * C
    assert float(grad.abs().max() / (H.mH @ T).abs().max()) < 1e-12
    base = cost(C)
    for seed in range(5):
        for eps in (1e-1, 1e-3):
            delta = _random_H(C.shape, 100 + seed) * eps
            assert bool((cost(C + delta) > base).all())
            # Strict convexity: J(C + δ) − J(C) = ‖Hδ‖² + λ‖δ‖² exactly at the minimiser.
            expected = (H @ delta).abs().square().sum(dim=(1, 2)) + lam * delta.abs().square().sum(dim=(1, 2))
            assert torch.allclose(cost(C + delta) - base, expected, rtol=1e-7, atol=1e-12 * float(base.max()))


@pytest.mark.parametrize("n_drivers", [2, 5])
def test_ls_zone_with_one_point_equals_kirkeby(n_drivers):
    freqs = torch.linspace(0, 24000, 33, dtype=torch.float64)
    H = _random_H((33, 2, n_drivers), 3)
    bands = torch.tensor([[0.0, 24000.0]] + [[300.0, 16000.0]] * (n_drivers - 1), dtype=torch.float64)
    mask = bl.band_mask(freqs, bands)
    beta = bl.kirkeby_regularization(freqs)
    ck = bl.kirkeby_ctc(H, beta, 1e-3, freqs, mask=mask)
    cz = bl.ls_zone_ctc(H[:, None], torch.tensor([0.3]), beta, 1e-3, freqs, mask=mask)
    assert float((ck - cz).abs().max() / ck.abs().max()) < 1e-10


def test_ls_zone_contra_weight_one_matches_plain_cost():
    """κ = 1 (one stacked solve) equals the per-column path (κ → 1) and the plain cost's minimiser."""
    freqs = torch.linspace(100, 20000, 9, dtype=torch.float64)
    H = _random_H((9, 4, 2, 5), 4)
    w = torch.tensor([1.0, 2.0, 0.5, 1.0])
    a = bl.ls_zone_ctc(H, w, 1e-2, 1e-3, freqs)
    b = bl.ls_zone_ctc(H, w, 1e-2, 1e-3, freqs, contra_weight=1.0 + 1e-13)
    assert float((a - b).abs().max() / a.abs().max()) < 1e-9
    wn = w / w.sum()
    R = (H.mH @ H * wn[None, :, None, None].to(H.dtype)).sum(1)
    lam = 1e-2 * R.diagonal(dim1=-2, dim2=-1).real.sum(-1) / 2
    rhs = (H.mH * wn[None, :, None, None].to(H.dtype)).sum(1) @ _target(freqs, 1e-3)
    direct = torch.linalg.solve(R + lam[:, None, None] * torch.eye(5, dtype=H.dtype), rhs)
    assert float((a - direct).abs().max() / direct.abs().max()) < 1e-10


def test_separation_db_by_hand():
    E = torch.tensor([[1.0, 0.1], [0.01, 1.0]], dtype=torch.complex128)  # (ear, channel)
    H = torch.eye(2, dtype=torch.complex128)[None].expand(3, 2, 2)
    sep = bl.separation_db(H, E[None].expand(3, 2, 2))
    assert sep.shape == (3,)
    assert torch.allclose(sep, torch.full((3,), 30.0, dtype=torch.float64), atol=1e-9)  # (40 + 20) / 2
    assert bl.separation_db(H[:, None].expand(3, 4, 2, 2), E[None].expand(3, 2, 2)).shape == (3, 4)


def _effort_db(C, H_nominal, freqs, band=(200.0, 16000.0)):
    """Largest per-driver filter gain over the band, relative to 1/rms|H| (0 dB ≈ plain playback level)."""
    sel = (freqs >= band[0]) & (freqs <= band[1])
    rms = H_nominal.abs().square().mean(dim=(1, 2)).sqrt()
    return float(20 * torch.log10((C.abs().amax(dim=(1, 2)) * rms)[sel]).max())


def test_ctc_on_the_default_scene(scene):
    f = scene.freqs
    mask = bl.band_mask(f, scene.driver_bands)
    beta = bl.kirkeby_regularization(f)  # inside 1e-3, outside 1
    delay = float(torch.linalg.vector_norm(scene.points[scene.nominal_index, :3])) / scene.speed_of_sound + 1e-3
    H_nom = scene.H[:, scene.nominal_index]
    band = (1500.0, 8000.0)

    ck = bl.kirkeby_ctc(H_nom, beta, delay, f, mask=mask)
    kirk = bl.separation_summary(scene.H, ck, f, band, scene.nominal_index)
    tau = bl.zone_target_delays(scene.points, scene.nominal_index, delay, scene.speed_of_sound)
    cz = bl.ls_zone_ctc(scene.H, scene.point_weights, beta, tau, f, mask=mask, contra_weight=10.0)
    zone = bl.separation_summary(scene.H, cz, f, band, scene.nominal_index)
    cz1 = bl.ls_zone_ctc(scene.H, scene.point_weights, beta, delay, f, mask=mask)
    zone_plain = bl.separation_summary(scene.H, cz1, f, band, scene.nominal_index)
    for name, s, c in (("kirkeby", kirk, ck), ("ls_zone k=10, ear delays", zone, cz), ("ls_zone k=1, one delay", zone_plain, cz1)):
        print(f"\n{name}: " + ", ".join(f"{k} {v:.1f} dB" for k, v in s.items()) + f", effort {_effort_db(c, H_nom, f):.1f} dB")

    assert kirk["sweet_mean"] > 18.0  # "well over 15 dB" at the sweet spot over 1.5–8 kHz
    assert zone["zone_p10"] > kirk["zone_p10"] + 2.0  # the zone design holds up better over the zone
    assert zone["zone_mean"] > kirk["zone_mean"]
    assert _effort_db(cz, H_nom, f) <= _effort_db(ck, H_nom, f)  # and needs no more effort


def test_crossover_ceiling_is_a_linkwitz_riley_magnitude():
    """Reference: scipy's analog Butterworth; an LR crossover of order 2m is a Butterworth of
    order m squared. Outside the band the ceiling equals |H_LR| in dB (tolerance 1e-9 dB) until
    it reaches the floor; inside it is unconstrained."""
    from scipy import signal

    f = torch.logspace(1, math.log10(24000), 400, dtype=torch.float64)
    lo, hi = 200.0, 10000.0
    c = bl.crossover_ceiling_db(f, torch.tensor([[lo, hi]]), order=8, floor_db=-50.0)[:, 0]
    w = 2 * math.pi * f.numpy()
    b, a = signal.butter(4, 2 * math.pi * lo, btype="highpass", analog=True)
    hp = 2 * 20 * np.log10(np.abs(signal.freqs(b, a, w)[1]))
    b, a = signal.butter(4, 2 * math.pi * hi, btype="lowpass", analog=True)
    lp = 2 * 20 * np.log10(np.abs(signal.freqs(b, a, w)[1]))
    below, above, inside = f < lo, f > hi, (f >= lo) & (f <= hi)
    ref = torch.from_numpy(np.maximum(np.where(below.numpy(), hp, lp), -50.0))
    assert bool(torch.isinf(c[inside]).all())
    torch.testing.assert_close(c[below | above], ref[below | above], rtol=0, atol=1e-9)
    # 48 dB/octave: one octave below the edge LR8 is −20·log10(1 + 2⁸) = −48.2 dB.
    one_octave = bl.crossover_ceiling_db(torch.tensor([100.0]), torch.tensor([[lo, hi]]), 8, -80.0)
    assert float(one_octave) == pytest.approx(-20 * math.log10(1 + 2**8), abs=1e-9)
    with pytest.raises(ValueError, match="even"):
        bl.crossover_ceiling_db(f, torch.tensor([[lo, hi]]), order=3)


def test_band_masks_respected_by_every_baseline(scene):
    f = scene.freqs
    mask = bl.band_mask(f, scene.driver_bands)
    delay = 7e-3
    designs = {
        "kirkeby": bl.kirkeby_ctc(scene.H[:, scene.nominal_index], bl.kirkeby_regularization(f), delay, f, mask=mask),
        "ls_zone": bl.ls_zone_ctc(scene.H, scene.point_weights, bl.kirkeby_regularization(f), delay, f, mask=mask, contra_weight=3.0),
        "delay_and_sum": bl.delay_and_sum(scene.G_ring, scene.ring_az, mask=mask)[..., None],
        "ls_beam": bl.ls_beamformer(scene.G_ring, scene.ring_az, mask=mask, wng_min_db=-10.0)[..., None],
    }
    for name, W in designs.items():
        mag = W.abs().amax(-1)  # (F, D)
        for d, (lo, hi) in enumerate(scene.driver_bands.tolist()):
            inside = (f >= lo) & (f <= hi)
            outside = ~inside
            ratio_db = 20 * math.log10(max(float(mag[outside, d].max()), 1e-300) / float(mag[inside, d].max()))
            assert ratio_db < -40.0, (name, scene.driver_names[d], ratio_db)


# ------------------------------------------------------------------------------------- beamformers


def _monopole_fields(positions, freqs, directions):
    """(F, M, N) far fields e^{jk u·r}/(4π) of unit monopoles, phase referenced to the origin."""
    k = 2 * math.pi * freqs / C_SOUND
    return torch.exp(1j * k[:, None, None] * (directions @ positions.T)[None]) / (4 * math.pi)


def test_delay_and_sum_on_axis_is_unit_monopole(scene):
    mask = bl.band_mask(scene.freqs, scene.driver_bands)
    for m in (None, mask):
        B = bl.delay_and_sum(scene.G_ring, scene.ring_az, mask=m)
        on_axis = (bl.look_response(scene.G_ring, scene.ring_az) * B).sum(-1)
        active = torch.ones_like(on_axis.real, dtype=torch.bool) if m is None else m.sum(-1) > 0
        assert torch.allclose(on_axis[active], torch.full_like(on_axis[active], 1 / (4 * math.pi)), atol=1e-14)
        pattern = bl.beam_pattern_db(scene.G_ring, B, scene.ring_az)
        assert float(pattern[active][:, int(torch.argmin(scene.ring_az.abs()))].abs().max()) < 1e-9


@pytest.mark.parametrize("n", [1, 2, 4, 7])
def test_wng_of_coincident_monopoles_is_10log10_n(n):
    freqs = torch.linspace(100, 8000, 11, dtype=torch.float64)
    az = torch.linspace(-math.pi, math.pi, 9, dtype=torch.float64)[:-1]
    vec = unit_vector(az, torch.zeros_like(az))
    G = _monopole_fields(torch.zeros(n, 3, dtype=torch.float64), freqs, vec)
    B = bl.delay_and_sum(G, az)
    wng = bl.white_noise_gain_db(bl.look_response(G, az), B)
    assert torch.allclose(wng, torch.full_like(wng, 10 * math.log10(n)), atol=1e-9)
    # Referenced to a unit monopole it is the same here (every driver is one).
    assert torch.allclose(bl.white_noise_gain_db(bl.look_response(G, az), B, 1 / (4 * math.pi)), wng, atol=1e-9)


def test_wng_never_exceeds_10log10_d():
    G = _random_H((20, 6), 5)
    B = _random_H((20, 6), 6)
    assert float(bl.white_noise_gain_db(G, B).max()) <= 10 * math.log10(6) + 1e-9
    assert float(bl.white_noise_gain_db(G, G.conj()).min()) <= 10 * math.log10(6) + 1e-9  # matched filter ≤ bound


def _line_array_di(n, kd, endfire):
    """Textbook directivity of a uniform line of n isotropic elements, delay-and-sum steered."""
    q = torch.arange(1, n, dtype=torch.float64)
    arg = (2 if endfire else 1) * q * kd
    denom = n + 2 * ((n - q) * torch.sin(arg) / arg).sum()
    return 10 * math.log10(n * n / float(denom))


@pytest.mark.parametrize("endfire,spacing_wavelengths", [(False, 0.5), (False, 0.3), (True, 0.25), (True, 0.125), (True, 0.4)])
def test_delay_and_sum_directivity_index_of_a_line_array(endfire, spacing_wavelengths):
    n, freq = 4, 2000.0
    lam = C_SOUND / freq
    d = spacing_wavelengths * lam
    offsets = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * d
    axis = 0 if endfire else 1  # end-fire: along +x (the look direction); broadside: along y
    positions = torch.zeros(n, 3, dtype=torch.float64)
    positions[:, axis] = offsets
    freqs = torch.tensor([freq], dtype=torch.float64)
    az = torch.arange(360, dtype=torch.float64) * (2 * math.pi / 360) - math.pi
    G_ring = _monopole_fields(positions, freqs, unit_vector(az, torch.zeros_like(az)))
    colat, saz, w = sh.gauss_sphere(40)
    G_sphere = _monopole_fields(positions, freqs, unit_vector(saz, math.pi / 2 - colat))
    B = bl.delay_and_sum(G_ring, az)
    di = bl.directivity_index_db(G_sphere, w, bl.look_response(G_ring, az), B)
    expected = _line_array_di(n, 2 * math.pi * spacing_wavelengths, endfire)
    assert float(di[0]) == pytest.approx(expected, abs=0.1)
    assert float(di[0]) == pytest.approx(expected, abs=1e-6)  # the quadrature is in fact exact here


def test_centre_beam_target_shape():
    az = torch.arange(360, dtype=torch.float64) * (2 * math.pi / 360) - math.pi
    t, w = bl.centre_beam_target(az)
    deg = torch.rad2deg(az).round()
    assert float(t[deg == 0].real) == 1.0 and float(t[deg == 45].real) == 1.0 and float(t[deg == -45].real) == 1.0
    assert float(t[deg.abs() >= 90].abs().max()) == 0.0
    assert float(w[deg == 90]) > float(w[deg == 0]) > float(w[deg == 60])  # nulls emphasised, taper "don't care"


def test_ls_beamformer_on_the_smart_speaker(scene):
    f, G, az = scene.freqs, scene.G_ring, scene.ring_az
    mask = bl.band_mask(f, scene.driver_bands)
    band = (800.0, 4000.0)
    sel = (f >= band[0]) & (f <= band[1])
    g_look = bl.look_response(G, az)
    results = {}
    for name, B in (
        ("delay_and_sum", bl.delay_and_sum(G, az, mask=mask)),
        ("ls_beamformer", bl.ls_beamformer(G, az, mask=mask, wng_min_db=-10.0)),
        ("ls_beamformer wng>=-3", bl.ls_beamformer(G, az, mask=mask, wng_min_db=-3.0)),
    ):
        wng = bl.white_noise_gain_db(g_look, B)[sel]
        di = bl.directivity_index_db(scene.G_sphere, scene.sphere_weights, g_look, B)[sel]
        results[name] = r = {
            "null_depth_db": float(bl.null_depth_db(G, B, f, band, az)),
            "mainlobe_dev_db": float(bl.mainlobe_deviation_db(G, B, f, band, az)),
            "wng_min_db": float(wng.min()),
            "di_mean_db": float(di.mean()),
        }
        print(f"\n{name}: " + ", ".join(f"{k} {v:.1f}" for k, v in r.items()))
        on_axis = (g_look * B).sum(-1)[sel]
        assert torch.allclose(on_axis, torch.full_like(on_axis, 1 / (4 * math.pi)), atol=1e-14)
    ls = results["ls_beamformer"]
    assert ls["null_depth_db"] <= -15.0
    assert ls["wng_min_db"] >= -10.0
    assert ls["null_depth_db"] < results["delay_and_sum"]["null_depth_db"] - 5.0
    assert results["ls_beamformer wng>=-3"]["wng_min_db"] >= -3.0 - 1e-6
    assert results["ls_beamformer wng>=-3"]["null_depth_db"] <= -15.0
    assert ls["mainlobe_dev_db"] < results["delay_and_sum"]["mainlobe_dev_db"]
