"""Virtualizer (``spatialopt.design.virtualizer``): contralateral model, FIR realisation, parameter
maps, crosstalk fit, gradients.

References: ``scipy.signal.bilinear`` / ``freqz`` for the low-pass, an explicit ``e^{−jωτ}``, and
the ideal (untruncated) impulse responses computed on a 2^15-point grid. Tolerances are stated
next to each assert, with the error measured when the test was written.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal

from conftest import make_config
from spatialopt.config import scene_from_config
from spatialopt.design import virtualizer as V
from spatialopt.design.virtualizer import Virtualizer, crosstalk_response, fit_crosstalk
from spatialopt.dsp.filters import allpass_response, fir_response

FS = 48000.0
F64 = torch.float64


pytestmark = pytest.mark.usefixtures("single_thread")


def _t(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64)


def _dense(count: int = 4097) -> torch.Tensor:
    return torch.linspace(0.0, FS / 2, count, dtype=F64)


def _reference_crosstalk(delay_s: float, corner: float, gain_db: float, freqs: np.ndarray) -> np.ndarray:
    """g · LP · e^{−jωτ} with the low-pass from scipy: prototype ω_c/(s + ω_c), pre-warped
    ω_c = 2fs·tan(πf_c/fs), bilinear transform at fs."""
    wc = 2 * FS * math.tan(math.pi * corner / FS)
    b, a = signal.bilinear([wc], [1.0, wc], fs=FS)
    _, lp = signal.freqz(b, a, worN=freqs, fs=FS)
    return 10 ** (gain_db / 20) * lp * np.exp(-2j * np.pi * freqs * delay_s)


def _virtualizer(n_taps: int, delay_s: float, corner: float, gain_db: float, radii=(0.7, 0.5)) -> Virtualizer:
    v = Virtualizer(FS, n_taps, len(radii), delay_s=delay_s, corner_hz=corner, gain_db=gain_db)
    with torch.no_grad():
        v.raw_radius.copy_(torch.logit(_t(radii) / V.MAX_POLE_RADIUS))
    return v


def _physical(v: Virtualizer) -> dict[str, torch.Tensor]:
    return {k: t.detach() for k, t in v.physical().items()}


def _outside_energy_bound(response_fn, n_taps: int, n_long: int = 1 << 15) -> float:
    """Σ |h[n]| of the ideal impulse response outside the kept taps [0, n_taps) — acausal part
    (the end of the long period) and tail. Truncation and the 8×-grid time aliasing each move
    the response by at most this much at any frequency."""
    grid = torch.fft.rfftfreq(n_long, 1.0 / FS).to(F64)
    h = torch.fft.irfft(response_fn(grid), n_long)
    return float(h[n_taps:].abs().sum())


# ------------------------------------------------------------------------------ analytic model


@pytest.mark.parametrize("delay_s, corner, gain_db", [(2.5e-4, 1500.0, -6.0), (3.7e-4, 6045.0, -4.8),
                                                      (1.2e-3, 250.0, -25.0), (0.0, 11000.0, -0.5)])
def test_crosstalk_response_matches_scipy_bilinear(delay_s, corner, gain_db):
    freqs = np.concatenate([[0.0], np.sort(np.random.default_rng(0).uniform(0, FS / 2, 300)), [FS / 2]])
    got = crosstalk_response(_t(delay_s), _t(corner), _t(gain_db), torch.tensor(freqs), FS).numpy()
    ref = _reference_crosstalk(delay_s, corner, gain_db, freqs)
    # float64 rounding only (measured ≤ 1.9e-15).
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-13)
    # Anchors of the model: gain at DC, −3.01 dB at the corner, zero at fs/2.
    edge = crosstalk_response(_t(delay_s), _t(corner), _t(gain_db), _t([0.0, corner, FS / 2]), FS).abs()
    assert float(edge[0]) == pytest.approx(10 ** (gain_db / 20), rel=1e-12)
    assert float(edge[1]) == pytest.approx(10 ** (gain_db / 20) / math.sqrt(2), rel=1e-12)
    assert float(edge[2]) < 1e-12


# ------------------------------------------------------------------------------ FIR realisation


@pytest.mark.parametrize("n_taps, delay_s, corner, gain_db", [
    (128, 2.5e-4, 1500.0, -6.0),   # the module's default init (12-sample delay)
    (128, 3.7e-4, 6045.0, -4.8),   # the sphere-head fit: fractional delay, high corner
    (128, 1.0e-3, 300.0, -20.0),   # long delay, low corner: truncation of the low-pass tail
    (64, 2.5e-4, 1500.0, -6.0),
])
def test_taps_match_analytic_responses(n_taps, delay_s, corner, gain_db):
    v = _virtualizer(n_taps, delay_s, corner, gain_db)
    taps = v.taps().detach()
    assert taps.shape == (2, n_taps) and taps.dtype == F64
    p = _physical(v)
    freqs = _dense()
    a_ref = allpass_response(p["pole_radius"], p["pole_angle"], freqs, FS)
    x_ref = crosstalk_response(p["delay_s"], p["corner_hz"], p["gain_db"], freqs, FS)
    got = fir_response(taps, freqs, FS)
    err_a = float((got[0] - a_ref).abs().max())
    err_x = float((got[1] - x_ref).abs().max())
    bound_a = _outside_energy_bound(lambda f: allpass_response(p["pole_radius"], p["pole_angle"], f, FS), n_taps)
    bound_x = _outside_energy_bound(lambda f: crosstalk_response(p["delay_s"], p["corner_hz"], p["gain_db"], f, FS), n_taps)
    # The FIR differs from the analytic response only by truncation to n_taps and the 8×-grid
    # aliasing, each bounded by the ideal response's Σ|h| outside [0, n_taps) (+ rounding).
    # Measured on the 4097-point grid: A 4e-15 (128 taps) / 6.1e-10 (64 taps) with poles 0.7, 0.5;
    # X 6.2e-11 (default init, integer delay), 1.6e-3 (fractional 17.8-sample delay: the sinc's
    # acausal part), 4.4e-3 (1 ms / 300 Hz, low-pass tail), 1.9e-5 (64 taps) — each within 1 %
    # of its Σ|h| bound.
    assert err_a <= 2 * bound_a + 1e-12
    assert err_x <= 2 * bound_x + 1e-12
    # Absolute tolerances for these parameters (stated): A ≤ 1e-9; X ≤ 1e-9 for the integer-delay
    # default init at 128 taps, ≤ 5e-3 in the worst listed case.
    assert err_a <= 1e-9
    if (n_taps, delay_s) == (128, 2.5e-4):
        assert err_x <= 1e-9
    assert err_x <= 5e-3


def test_realised_allpass_has_unit_magnitude():
    freqs = _dense()
    for radii, tol in (((0.05, 0.05), 1e-12), ((0.7, 0.5), 1e-12), ((0.9, 0.9), 1e-5)):
        taps = _virtualizer(128, 3e-4, 2000.0, -6.0, radii).taps().detach()
        mag = fir_response(taps[0], freqs, FS).abs()
        # | |A| − 1 | of the 128-tap realisation: rounding for r ≤ 0.7 (measured 1.6e-15);
        # r = 0.9 truncates a 0.9^n tail (measured 3.0e-6).
        assert float((mag - 1).abs().max()) <= tol, radii


def test_zero_sections_gives_unit_impulse():
    v = Virtualizer(FS, 32, num_sections=0)
    taps = v.taps().detach()
    expected = torch.zeros(32, dtype=F64)
    expected[0] = 1.0
    assert torch.allclose(taps[0], expected, atol=1e-14, rtol=0)


# -------------------------------------------------------------------------------- parameter maps


@pytest.mark.parametrize("raw", [-1e4, -50.0, 0.0, 50.0, 1e4, -math.inf, math.inf])
def test_physical_stays_in_documented_ranges(raw):
    v = Virtualizer(FS, 32, 3)
    with torch.no_grad():
        for p in v.parameters():
            p.fill_(raw)
    phys = _physical(v)
    rel = 1e-12  # bounds are met to rounding of exp/log (12000 Hz can come out as 12000·(1+2e-16))
    assert 0.0 <= float(phys["delay_s"]) <= V.DELAY_MAX_S * (1 + rel)
    assert V.CORNER_RANGE_HZ[0] * (1 - rel) <= float(phys["corner_hz"]) <= V.CORNER_RANGE_HZ[1] * (1 + rel)
    assert V.GAIN_RANGE_DB[0] * (1 + rel) <= float(phys["gain_db"]) <= V.GAIN_RANGE_DB[1]
    assert bool(((phys["pole_radius"] >= 0) & (phys["pole_radius"] <= V.MAX_POLE_RADIUS)).all())
    assert bool(((phys["pole_angle"] >= 0) & (phys["pole_angle"] <= math.pi)).all())
    assert all(bool(t.isfinite().all()) for t in phys.values())
    # The realised filters stay finite even at the saturated bounds (stable poles, r ≤ 0.95).
    assert bool(v.taps().detach().isfinite().all())


def test_set_physical_round_trip():
    v = Virtualizer(FS, 64, 2)
    for delay_s, corner, gain_db in ((3.7e-4, 6045.0, -4.8), (1e-5, 210.0, -29.5), (1.4e-3, 11500.0, -0.2)):
        v.set_physical(delay_s, corner, gain_db)
        p = _physical(v)
        # Inverse maps in float64: rounding only (measured ≤ 4e-15 relative).
        assert float(p["delay_s"]) == pytest.approx(delay_s, rel=1e-12)
        assert float(p["corner_hz"]) == pytest.approx(corner, rel=1e-12)
        assert float(p["gain_db"]) == pytest.approx(gain_db, rel=1e-12, abs=1e-12)
        assert v.raw_delay.dtype == F64  # the parameters keep their dtype
    # Out-of-range delays are clamped inside the open interval (finite raw values).
    v.set_physical(0.0, 1000.0, -6.0)
    assert bool(v.raw_delay.isfinite()) and 0 < float(_physical(v)["delay_s"]) < 1e-6
    v.set_physical(1.0, 1000.0, -6.0)
    assert bool(v.raw_delay.isfinite()) and float(_physical(v)["delay_s"]) == pytest.approx(0.999 * V.DELAY_MAX_S, rel=1e-12)


# ---------------------------------------------------------------------------------------- fitting


@pytest.mark.parametrize("delay_s, corner, gain_db", [(2.6e-4, 1500.0, -6.0), (3.9e-4, 6000.0, -4.0),
                                                      (6.0e-4, 800.0, -12.0), (1.0e-4, 3000.0, -2.0)])
def test_fit_crosstalk_recovers_synthetic_parameters(delay_s, corner, gain_db):
    freqs = torch.fft.rfftfreq(2048, 1.0 / FS).to(F64)
    rel = crosstalk_response(_t(delay_s), _t(corner), _t(gain_db), freqs, FS)
    fit = fit_crosstalk(rel, freqs, FS)
    # Measured: delay ≤ 0.7 µs, corner ≤ 0.5 % (200-point log grid, 2 % steps), gain ≤ 0.04 dB.
    assert abs(fit["delay_s"] - delay_s) <= 5e-6
    assert abs(fit["corner_hz"] / corner - 1) <= 0.05
    assert abs(fit["gain_db"] - gain_db) <= 0.1
    assert fit["fit_err_db_rms"] <= 0.05  # measured ≤ 0.015 dB (corner grid quantisation)


@pytest.fixture(scope="module")
def sphere_relative():
    """Relative HRTF H_contra/H_ipsi of the real pair's L speaker (±30°, 2 m) at the nominal point,
    rigid-sphere head (a = 8.75 cm), n_fft 512."""
    scene = scene_from_config(make_config(zone="point", n_fft=512))
    ref = scene.H_ref[:, scene.nominal_index]
    return ref[:, 1, 0] / ref[:, 0, 0], scene.freqs


def test_fit_crosstalk_on_rigid_sphere_head(sphere_relative):
    rel, freqs = sphere_relative
    fit = fit_crosstalk(rel, freqs, FS)
    model = crosstalk_response(_t(fit["delay_s"]), _t(fit["corner_hz"]), _t(fit["gain_db"]), freqs, FS)
    band = (freqs >= 300) & (freqs <= 8000)
    rms_db = float((20 * torch.log10(model[band].abs() / rel[band].abs())).pow(2).mean().sqrt())
    print(f"sphere-head fit: {fit}, rms {rms_db:.3f} dB")
    # A first-order low-pass cannot follow the sphere's shadow ripple: measured 0.79 dB rms over
    # 0.3–8 kHz (τ 368 µs, f_c 6.2 kHz, g −4.85 dB). Bound: 1.5 dB.
    assert rms_db == pytest.approx(fit["fit_err_db_rms"], abs=1e-9)
    assert rms_db < 1.5
    # Low-frequency interaural phase delay of the model (τ plus the low-pass's own) equals the
    # head's, averaged over the fit band 80–700 Hz (measured 393 µs both; equal to rounding).
    low = (freqs > 80) & (freqs < 700)

    def phase_delay(z):
        return float(np.mean(-np.unwrap(torch.angle(z[low]).numpy()) / (2 * np.pi * freqs[low].numpy())))

    assert phase_delay(model) == pytest.approx(phase_delay(rel), abs=1e-6)
    # ... and matches Kuhn's low-frequency sphere ITD 3a/c·sin 30° = 383 µs within 30 µs.
    assert phase_delay(rel) == pytest.approx(3 * 0.0875 / 343.0 * 0.5, abs=30e-6)
    assert V.CORNER_RANGE_HZ[0] < fit["corner_hz"] < V.CORNER_RANGE_HZ[1]
    assert -10.0 < fit["gain_db"] < 0.0  # head shadow at ±30°: a few dB


# ------------------------------------------------------------------------------------- gradients


class _Taps(torch.nn.Module):
    def __init__(self, v: Virtualizer):
        super().__init__()
        self.v = v

    def forward(self):
        return self.v.taps()


def test_taps_gradcheck_float64():
    v = _virtualizer(16, 3e-4, 2500.0, -6.0, radii=(0.6, 0.3))
    wrapper = _Taps(v)
    names = [n for n, _ in wrapper.named_parameters()]
    assert sorted(names) == sorted(f"v.{n}" for n in ("raw_delay", "raw_corner", "raw_gain", "raw_radius", "raw_angle"))
    inputs = tuple(p.detach().clone().requires_grad_(True) for _, p in wrapper.named_parameters())

    def fn(*raws):
        return torch.func.functional_call(wrapper, dict(zip(names, raws)), ())

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)
