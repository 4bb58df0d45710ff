"""Filter primitives of ``spatialopt.dsp.filters`` vs independent references.

References: ``numpy.fft`` / ``torch.fft`` and ``scipy.signal`` (freqz, bilinear, group_delay).
Every tolerance is stated next to its assert, with the error measured when the test was written
where it is not simply rounding.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import signal

from spatialopt.dsp import filters as F

FS = 48000.0
F64 = torch.float64
F32 = torch.float32


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _freqs(count: int = 257, seed: int = 0) -> torch.Tensor:
    """A non-uniform grid in Hz: random points in [0, fs/2], plus DC, fs/2 and two above fs/2."""
    f = np.sort(_rng(seed).uniform(0.0, FS / 2, count - 4))
    return torch.tensor(np.concatenate([[0.0], f, [FS / 2, 0.7 * FS, 1.3 * FS]]), dtype=F64)


def _wrap(phase: np.ndarray) -> np.ndarray:
    return np.angle(np.exp(1j * phase))


# ----------------------------------------------------------------------------------------------
# FIR responses


def test_fir_response_matches_freqz():
    taps = _rng(1).standard_normal((3, 37))
    freqs = _freqs()
    got = F.fir_response(torch.tensor(taps), freqs, FS).numpy()
    assert got.shape == (3, freqs.numel()) and got.dtype == np.complex128
    for i in range(3):
        _, ref = signal.freqz(taps[i], [1.0], worN=freqs.numpy(), fs=FS)
        # float64: rounding only (measured 1.3e-13; phases reach 1.3·fs·T).
        np.testing.assert_allclose(got[i], ref, rtol=0, atol=1e-12)
    got32 = F.fir_response(torch.tensor(taps, dtype=F32), freqs, FS)
    assert got32.dtype == torch.complex64
    # float32: scaled by Σ|h| ≈ 26; kernel phase is formed in float64 (measured 1.9e-6 absolute).
    np.testing.assert_allclose(got32.numpy(), got, rtol=0, atol=1e-6 * np.abs(taps).sum(-1).max())


def test_fir_response_equals_rfft_on_rfft_grid():
    n_fft = 256
    taps = torch.tensor(_rng(2).standard_normal((2, 4, 100)))
    grid = torch.arange(n_fft // 2 + 1, dtype=F64) * FS / n_fft
    ref = torch.fft.rfft(taps, n=n_fft)
    torch.testing.assert_close(F.fir_response(taps, grid, FS), ref, rtol=0, atol=1e-12)
    got32 = F.fir_response(taps.float(), grid, FS)
    torch.testing.assert_close(got32, ref.to(torch.complex64), rtol=0, atol=3e-5)  # measured 1.1e-5


def test_fir_from_response_round_trip_short_fir_is_exact():
    n_fft, n_taps = 128, 40
    taps = torch.tensor(_rng(3).standard_normal((2, 3, 20)))
    response = torch.fft.rfft(taps, n=n_fft)
    out = F.fir_from_response(response, n_taps, n_fft, window=None)
    assert out.shape == (2, 3, n_taps) and out.dtype == F64
    torch.testing.assert_close(out[..., :20], taps, rtol=0, atol=1e-13)
    torch.testing.assert_close(out[..., 20:], torch.zeros(2, 3, n_taps - 20, dtype=F64), rtol=0, atol=1e-13)
    # n_fft inferred from the bin count (even).
    torch.testing.assert_close(F.fir_from_response(response, n_taps, window=None), out, rtol=0, atol=0)


def test_fir_from_response_delayed_acausal_response():
    """A FIR advanced by d samples (acausal) comes back exactly after a circular shift by d."""
    n_fft, n_taps, d = 128, 48, 10
    taps = torch.tensor(_rng(4).standard_normal((3, 20)))
    omega = 2 * math.pi * torch.arange(n_fft // 2 + 1, dtype=F64) / n_fft
    advanced = torch.fft.rfft(taps, n=n_fft) * torch.exp(1j * omega * d)  # e^{+jωd}: an advance
    unshifted = F.fir_from_response(advanced, n_taps, n_fft, window=None)
    assert unshifted[..., :10].abs().max() > 0.1  # without the shift the taps are scrambled
    out = F.fir_from_response(advanced, n_taps, n_fft, window=None, delay_samples=d)
    torch.testing.assert_close(out[..., :20], taps, rtol=0, atol=1e-13)
    torch.testing.assert_close(out[..., 20:], torch.zeros(3, n_taps - 20, dtype=F64), rtol=0, atol=1e-13)


def test_fir_from_response_taper():
    n_fft = 256
    # Zero-phase (real, even) response: the realised FIR with the symmetric taper is linear phase.
    mag = torch.tensor(1.0 / (1.0 + (np.arange(n_fft // 2 + 1) / 20.0) ** 2), dtype=F64)
    n_taps, d = 41, 20
    out = F.fir_from_response(mag.to(torch.complex128), n_taps, n_fft, window="hann", delay_samples=d)
    torch.testing.assert_close(out, out.flip(-1), rtol=0, atol=1e-14)  # symmetric about tap d
    raw = F.fir_from_response(mag.to(torch.complex128), n_taps, n_fft, window=None, delay_samples=d)
    w = out / raw
    assert abs(w[d].item() - 1.0) < 1e-14 and w.max().item() <= 1.0 + 1e-14
    assert w[0].item() < 0.01 and w[-1].item() < 0.01  # sin²(π/42) = 0.0056 at both ends
    # One-sided taper (d = 0): 1 at tap 0, then monotonically falling.
    w1 = F._taper(32, 0, F64, "cpu")
    assert w1[0].item() == 1.0 and bool((w1.diff() < 0).all())
    with pytest.raises(ValueError, match="bins"):
        F.fir_from_response(mag.to(torch.complex128), 16, n_fft=100)
    with pytest.raises(ValueError, match="delay_samples"):
        F.fir_from_response(mag.to(torch.complex128), 16, window="hann", delay_samples=16)


# ----------------------------------------------------------------------------------------------
# IIR responses


@pytest.mark.parametrize("corner", [50.0, 1000.0, 5000.0, 15000.0, 23000.0])
def test_first_order_lowpass_matches_scipy_bilinear(corner):
    freqs = _freqs()
    wa = 2 * FS * math.tan(math.pi * corner / FS)  # pre-warped analog corner, rad/s
    b, a = signal.bilinear([wa], [1.0, wa], fs=FS)
    _, ref = signal.freqz(b, a, worN=freqs.numpy(), fs=FS)
    got = F.first_order_lowpass(torch.tensor(corner, dtype=F64), freqs, FS).numpy()
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)  # measured 1e-15
    at = F.first_order_lowpass(torch.tensor(corner, dtype=F64), torch.tensor([0.0, corner]), FS)
    assert abs(at[0].item() - 1.0) < 1e-12  # unity at DC
    assert abs(20 * math.log10(abs(at[1].item())) - (-10 * math.log10(2))) < 1e-9  # −3.0103 dB


def test_biquad_matches_freqz():
    rng = _rng(5)
    count = 4
    r = rng.uniform(0.2, 0.95, count)
    th = rng.uniform(0.1, 3.0, count)
    a0 = rng.uniform(0.5, 2.0, count)  # a0 ≠ 1 must be honoured
    a = np.stack([a0, -2 * r * np.cos(th) * a0, r**2 * a0], -1)
    b = rng.standard_normal((count, 3))
    freqs = _freqs()
    got = F.biquad_response(torch.tensor(b), torch.tensor(a), freqs, FS).numpy()
    for i in range(count):
        _, ref = signal.freqz(b[i], a[i], worN=freqs.numpy(), fs=FS)
        np.testing.assert_allclose(got[i], ref, rtol=1e-11, atol=1e-12)  # measured 1.4e-14 relative
    with pytest.raises(ValueError, match="3 entries"):
        F.biquad_response(torch.ones(2), torch.ones(3), freqs, FS)


def test_head_shadow_limits():
    freqs = torch.tensor([0.0, 1e7], dtype=F64)
    inc = torch.tensor([0.0, 5 * math.pi / 6, math.pi / 2], dtype=F64)
    h = F.head_shadow_response(inc, freqs)
    torch.testing.assert_close(h[:, 0], torch.ones(3, dtype=torch.complex128), rtol=0, atol=1e-14)  # DC
    # α(0) = 2 (+6 dB), α(θ_min) = α_min = 0.1, α(π/2) = 1.05 + 0.95 cos(0.6π); at 10 MHz |H| ≈ α (measured 8e-7).
    alpha = np.array([2.0, 0.1, 1.05 + 0.95 * math.cos(0.6 * math.pi)])
    np.testing.assert_allclose(h[:, 1].abs().numpy(), alpha, rtol=1e-5, atol=0)


# ----------------------------------------------------------------------------------------------
# all-pass


def _random_allpass(k: int, seed: int, max_radius: float = 0.95):
    rng = _rng(seed)
    return rng.uniform(0.0, max_radius, k), rng.uniform(0.05, math.pi - 0.05, k)


def test_allpass_unit_magnitude_and_matches_freqz():
    radius, angle = _random_allpass(5, 6, max_radius=0.999)
    freqs = _freqs(2049)
    a = F.allpass_response(torch.tensor(radius), torch.tensor(angle), freqs, FS)
    assert a.shape == (freqs.numel(),) and a.dtype == torch.complex128
    assert (a.abs() - 1.0).abs().max().item() < 1e-12  # |A| = 1 (measured 2e-16)
    a32 = F.allpass_response(torch.tensor(radius, dtype=F32), torch.tensor(angle, dtype=F32), freqs, FS)
    assert a32.dtype == torch.complex64 and (a32.abs() - 1.0).abs().max().item() < 1e-6
    ref = np.ones(freqs.numel(), dtype=complex)
    for r, th in zip(radius, angle):
        den = [1.0, -2 * r * math.cos(th), r * r]
        ref *= signal.freqz(den[::-1], den, worN=freqs.numpy(), fs=FS)[1]
    np.testing.assert_allclose(a.numpy(), ref, rtol=0, atol=1e-12)  # measured 3e-14


def test_allpass_group_delay_matches_scipy():
    radius, angle = _random_allpass(4, 7)
    f = torch.linspace(10.0, FS / 2 - 10.0, 500, dtype=F64)
    h = 1e-3  # Hz; central difference of the phase, error O(h²)
    ap = lambda x: F.allpass_response(torch.tensor(radius), torch.tensor(angle), x, FS).numpy()  # noqa: E731
    dphi = np.angle(ap(f + h) / ap(f - h))  # phase difference without unwrapping
    gd = -dphi / (2 * math.pi * 2 * h / FS)  # samples
    ref = np.zeros(f.numel())
    for r, th in zip(radius, angle):
        den = [1.0, -2 * r * math.cos(th), r * r]
        ref += signal.group_delay((den[::-1], den), w=f.numpy(), fs=FS)[1]
    # measured max |Δ| 5e-8 samples for group delays up to 17 samples (finite-difference rounding)
    np.testing.assert_allclose(gd, ref, rtol=0, atol=1e-5)


def test_first_order_allpass():
    c = np.array([0.6, -0.3, 0.95])
    freqs = _freqs()
    a = F.first_order_allpass_response(torch.tensor(c), freqs, FS)
    assert (a.abs() - 1.0).abs().max().item() < 1e-12
    ref = np.ones(freqs.numel(), dtype=complex)
    for ck in c:
        ref *= signal.freqz([ck, 1.0], [1.0, ck], worN=freqs.numpy(), fs=FS)[1]
    np.testing.assert_allclose(a.numpy(), ref, rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# delays


def test_fractional_delay_response_phase_is_minus_omega_tau():
    tau = torch.tensor([0.0, 1.234e-4, 2.5e-3, -3.3e-4], dtype=F64)
    freqs = _freqs()
    h = F.fractional_delay_response(tau, freqs)
    assert h.shape == (4, freqs.numel()) and h.dtype == torch.complex128
    assert (h.abs() - 1.0).abs().max().item() < 1e-14
    expected = -2 * math.pi * freqs.numpy()[None, :] * tau.numpy()[:, None]
    err = np.abs(_wrap(np.angle(h.numpy()) - expected))
    assert err.max() < 1e-11  # phases up to 1e3 rad; measured 8e-14
    h32 = F.fractional_delay_response(tau.float(), freqs)
    assert h32.dtype == torch.complex64


@pytest.mark.parametrize("half_width", [8, 16, 32])
def test_fractional_delay_fir_accurate_band(half_width):
    m = half_width
    n_taps = 2 * m + 24
    delays = torch.linspace(m - 1.0, n_taps - m, 37, dtype=F64) + 0.123  # clip the last one below
    delays = delays.clamp(max=n_taps - m)
    band = (0.5 - 1.3 / m) * FS
    freqs = torch.linspace(0.0, band, 400, dtype=F64)
    taps = F.fractional_delay_fir(delays, n_taps, half_width=m)
    assert taps.shape == (37, n_taps)
    got = F.fir_response(taps, freqs, FS)
    ideal = F.fractional_delay_response(delays / FS, freqs)
    # documented bound 5e-4 over |f| ≤ (0.5 − 1.3/M)·fs (measured 2.8e-4 for β = 8)
    assert (got - ideal).abs().max().item() < 5e-4


def test_fractional_delay_fir_integer_delay_is_unit_impulse():
    taps = F.fractional_delay_fir(torch.tensor([20.0, 21.0], dtype=F64), 48)
    expected = torch.zeros(2, 48, dtype=F64)
    expected[0, 20] = expected[1, 21] = 1.0
    torch.testing.assert_close(taps, expected, rtol=0, atol=1e-15)


# ----------------------------------------------------------------------------------------------
# parameter maps


@pytest.mark.parametrize("dtype", [F32, F64])
def test_pole_radius_always_below_one(dtype):
    raw = torch.cat([torch.tensor([-1e6, -50.0, 0.0, 50.0, 1e6, 1e30]), torch.randn(1000) * 30]).to(dtype)
    r = F.pole_radius(raw)
    assert bool((r < 1.0).all()) and bool((r >= 0.0).all())
    assert r.max().item() <= 0.999 + 1e-7  # bound reached only by saturation
    assert F.pole_radius(raw, max_radius=0.5).max().item() <= 0.5
    with pytest.raises(ValueError):
        F.pole_radius(raw, max_radius=1.0)


def test_parameter_maps_round_trip_and_ranges():
    raw = torch.linspace(-8.0, 8.0, 101, dtype=F64)
    tol = dict(rtol=0, atol=1e-8)  # logit near sigmoid saturation loses ~e^8·eps (measured 1.4e-9)
    torch.testing.assert_close(F.pole_radius_inverse(F.pole_radius(raw, 0.99), 0.99), raw, **tol)
    torch.testing.assert_close(F.bounded_inverse(F.bounded(raw, -2.0, 3.0), -2.0, 3.0), raw, **tol)
    torch.testing.assert_close(F.corner_hz_inverse(F.corner_hz(raw, 50.0, 16000.0), 50.0, 16000.0), raw, **tol)
    pos = torch.linspace(-30.0, 30.0, 101, dtype=F64)
    torch.testing.assert_close(F.positive_inverse(F.positive(pos)), pos, rtol=0, atol=1e-9)
    db = torch.linspace(-60.0, 20.0, 81, dtype=F64)
    torch.testing.assert_close(F.gain_to_db(F.db_to_gain(db)), db, rtol=0, atol=1e-12)
    assert abs(F.db_to_gain(torch.tensor(-6.0206, dtype=F64)).item() - 0.5) < 1e-5
    # ranges, including extreme raw values
    extreme = torch.tensor([-1e6, -10.0, 0.0, 10.0, 1e6], dtype=F64)
    c = F.corner_hz(extreme, 50.0, 16000.0)
    assert bool((c >= 50.0 - 1e-9).all() and (c <= 16000.0 + 1e-9).all())
    assert abs(F.corner_hz(torch.tensor(0.0, dtype=F64), 100.0, 6400.0).item() - 800.0) < 1e-9  # geometric mid
    assert bool((F.positive(extreme) >= 0).all()) and F.positive(torch.tensor(0.0)).item() > 0
    b = F.bounded(extreme, -2.0, 3.0)
    assert bool((b >= -2.0).all() and (b <= 3.0).all())


# ----------------------------------------------------------------------------------------------
# gradients (float64 gradcheck) and batch consistency


def _leaf(x) -> torch.Tensor:
    return torch.tensor(x, dtype=F64, requires_grad=True)


def test_gradcheck_pure_functions():
    freqs = torch.tensor([0.0, 300.0, 2500.0, 11000.0, 23000.0], dtype=F64)
    rng = _rng(8)
    def gc(fn, *inputs, eps=1e-6):
        return torch.autograd.gradcheck(fn, inputs, eps=eps, atol=1e-5, rtol=1e-4)

    assert gc(lambda t: F.fir_response(t, freqs, FS), _leaf(rng.standard_normal((2, 6))))
    assert gc(lambda b, a: F.biquad_response(b, a, freqs, FS), _leaf(rng.standard_normal((2, 3))),
              _leaf([[1.0, -0.5, 0.2], [1.2, 0.3, 0.1]]))
    assert gc(lambda b, a: F.iir_response(b, a, freqs, FS), _leaf(rng.standard_normal(4)), _leaf([1.0, -0.4]))
    resp = torch.tensor(rng.standard_normal(9) + 1j * rng.standard_normal(9), requires_grad=True)
    assert gc(lambda r: F.fir_from_response(r, 12, 16, window="hann", delay_samples=3), resp)
    # τ in seconds: ∂/∂τ ~ 2πf ~ 1e5, so the finite-difference step must be far below a period.
    assert gc(lambda d: F.fractional_delay_response(d, freqs), _leaf([1e-4, -3.3e-4]), eps=1e-10)
    assert gc(lambda d: F.fractional_delay_fir(d, 24, half_width=8), _leaf([10.3, 12.77]))
    assert gc(lambda c: F.first_order_lowpass(c, freqs, FS), _leaf([150.0, 4000.0]))
    assert gc(lambda t: F.head_shadow_response(t, freqs), _leaf([0.3, 2.0]))
    assert gc(lambda r, t: F.allpass_response(r, t, freqs, FS), _leaf([[0.3, 0.8], [0.95, 0.5]]),
              _leaf([[0.4, 2.0], [1.0, 2.9]]))
    assert gc(lambda c: F.first_order_allpass_response(c, freqs, FS), _leaf([[0.5, -0.7]]))
    raw = _leaf([-2.0, 0.1, 3.0])
    assert gc(lambda x: F.pole_radius(x), raw)
    assert gc(lambda x: F.corner_hz(x, 50.0, 16000.0), raw)
    assert gc(lambda x: F.positive(x), raw)
    assert gc(lambda x: F.bounded(x, -1.0, 2.0), raw)
    assert gc(lambda x: F.db_to_gain(x), raw)


def test_batched_calls_equal_per_item_calls():
    freqs = _freqs(65)
    rng = _rng(9)
    same = dict(rtol=0, atol=1e-13)

    def check(fn, *batched):
        out = fn(*batched)
        items = torch.stack([fn(*(x[i] for x in batched)) for i in range(batched[0].shape[0])])
        torch.testing.assert_close(out, items, **same)

    check(lambda t: F.fir_response(t, freqs, FS), torch.tensor(rng.standard_normal((3, 2, 10))))
    check(lambda b, a: F.biquad_response(b, a, freqs, FS), torch.tensor(rng.standard_normal((3, 3))),
          torch.tensor([[1.0, -0.5, 0.2], [1.2, 0.3, 0.1], [0.9, 0.0, 0.5]], dtype=F64))
    check(lambda d: F.fractional_delay_response(d, freqs), torch.tensor([1e-4, 2e-3, -1e-4], dtype=F64))
    check(lambda d: F.fractional_delay_fir(d, 40), torch.tensor([[16.2, 20.0], [17.9, 23.5]], dtype=F64))
    check(lambda c: F.first_order_lowpass(c, freqs, FS), torch.tensor([[100.0, 800.0], [5000.0, 20000.0]], dtype=F64))
    check(lambda t: F.head_shadow_response(t, freqs), torch.tensor([0.0, 1.0, 3.0], dtype=F64))
    check(lambda r, t: F.allpass_response(r, t, freqs, FS), torch.tensor(rng.uniform(0, 0.99, (3, 2, 4))),
          torch.tensor(rng.uniform(0, 3.1, (3, 2, 4))))
    check(lambda c: F.first_order_allpass_response(c, freqs, FS), torch.tensor(rng.uniform(-0.9, 0.9, (4, 3))))
    n_fft = 64
    resp = torch.fft.rfft(torch.tensor(rng.standard_normal((3, 2, n_fft))))
    check(lambda r: F.fir_from_response(r, 24, n_fft, window="hann", delay_samples=5), resp)


# ----------------------------------------------------------------------------------------------
# modules


def _modules():
    return {
        "fir": F.FIRFilter(16, shape=(3, 2), delay_samples=4),
        "delay": F.FractionalDelay(torch.tensor([0.0, 1e-3, 4e-3]), max_delay_s=5e-3),
        "allpass": F.AllPass(3, initial_radius=0.7, shape=(2,)),
        "lowpass": F.LowPass(torch.tensor([200.0, 3000.0]), low=100.0, high=16000.0),
        "gain": F.Gain(torch.tensor([-6.0, 0.0, 3.0])),
    }


def test_modules_parameters_physical_and_dtype():
    freqs = torch.linspace(0.0, FS / 2, 33, dtype=F64)
    for name, module in _modules().items():
        params = list(module.parameters())
        assert params and all(p.is_leaf and p.requires_grad for p in params), name
        assert all(p.dtype == torch.get_default_dtype() for p in params), name
        out32 = module(freqs)
        assert out32.dtype == torch.complex64 and out32.shape[-1] == 33, name
        out32.abs().sum().backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params), name
        module.double()
        out64 = module(freqs.float())
        assert out64.dtype == torch.complex128, name
        # float32 rounding of the raw → physical map: a 4 ms delay at 24 kHz is ~600 rad of phase,
        # so ~1e-7 relative delay error gives ~6e-5 (measured); other modules agree to ~1e-6.
        torch.testing.assert_close(out64.to(torch.complex64), out32.detach(), rtol=0, atol=2e-4)
        phys = module.physical()
        assert phys and all(isinstance(v, torch.Tensor) for v in phys.values()), name


def test_modules_physical_values_and_ranges():
    m = _modules()
    fir = m["fir"].physical()["taps"]
    assert fir.shape == (3, 2, 16) and fir[..., 4].eq(1).all() and fir.sum().item() == 6.0
    d = m["delay"].physical()["delay_s"]
    torch.testing.assert_close(d, torch.tensor([0.0, 1e-3, 4e-3]), rtol=0, atol=1e-7)  # bound nudged by 1e-6·max
    ap = m["allpass"].physical()
    assert ap["radius"].shape == (2, 3)
    torch.testing.assert_close(ap["radius"], torch.full((2, 3), 0.7), rtol=0, atol=1e-6)
    torch.testing.assert_close(ap["pole_hz"][0], torch.tensor([4000.0, 12000.0, 20000.0]), rtol=1e-5, atol=0)
    torch.testing.assert_close(m["lowpass"].physical()["corner_hz"], torch.tensor([200.0, 3000.0]), rtol=1e-5, atol=0)
    torch.testing.assert_close(m["gain"].physical()["gain"], torch.tensor([0.501187, 1.0, 1.412538]), rtol=1e-5, atol=0)
    # Whatever the optimizer does to the raw parameters, the physical values stay in range.
    with torch.no_grad():
        for module in m.values():
            for p in module.parameters():
                p.copy_(torch.where(torch.rand_like(p) < 0.5, -1e6, 1e6))
    assert bool((m["delay"].physical()["delay_s"] >= 0).all() and (m["delay"].physical()["delay_s"] <= 5e-3).all())
    assert bool((m["allpass"].physical()["radius"] < 1).all())
    ang = m["allpass"].physical()["angle"]
    assert bool((ang >= 0).all() and (ang <= math.pi).all())
    c = m["lowpass"].physical()["corner_hz"]
    assert bool((c >= 100.0 - 1e-3).all() and (c <= 16000.0 + 1e-3).all())
    assert (m["allpass"](torch.linspace(0, FS / 2, 9)).abs() - 1).abs().max().item() < 1e-6


def test_module_initialisers():
    taps = torch.tensor(_rng(10).standard_normal((2, 12)), dtype=F64)
    fir = F.FIRFilter.from_taps(taps, sample_rate=FS)
    torch.testing.assert_close(fir.physical()["taps"].detach(), taps, rtol=0, atol=0)
    assert fir.taps.dtype == F64 and fir.taps.is_leaf
    lp = F.LowPass(1000.0, sample_rate=FS, dtype=F64)
    torch.testing.assert_close(lp.physical()["corner_hz"], torch.tensor(1000.0, dtype=F64), rtol=1e-12, atol=0)
    ap = F.AllPass(2, initial_radius=_leaf([0.2, 0.9]).detach(), initial_angle=[0.5, 2.5], dtype=F64)
    torch.testing.assert_close(ap.physical()["radius"], torch.tensor([0.2, 0.9], dtype=F64), rtol=0, atol=1e-12)
    torch.testing.assert_close(ap.physical()["angle"], torch.tensor([0.5, 2.5], dtype=F64), rtol=0, atol=1e-12)
    delay = F.FractionalDelay(1e-3, 4e-3, dtype=F64)
    torch.testing.assert_close(delay.physical()["delay_s"], torch.tensor(1e-3, dtype=F64), rtol=1e-12, atol=0)
    fir_taps = delay.fir(64, FS)
    assert fir_taps.shape == (64,) and abs(fir_taps.sum().item() - 1.0) < 1e-3
    with pytest.raises(ValueError, match="initial_delay_s"):
        F.FractionalDelay(6e-3, 4e-3)
    with pytest.raises(ValueError, match="initial_radius"):
        F.AllPass(1, initial_radius=1.0)
    with pytest.raises(ValueError, match="initial_corner_hz"):
        F.LowPass(50.0, low=100.0, high=1000.0)
    with pytest.raises(ValueError, match="fs/2"):
        F.LowPass(1000.0, low=100.0, high=30000.0, sample_rate=FS)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    freqs = _freqs(129)
    rng = _rng(11)
    taps = torch.tensor(rng.standard_normal((2, 3, 50)), dtype=F32)
    r = torch.tensor(rng.uniform(0, 0.99, (2, 4)), dtype=F32)
    t = torch.tensor(rng.uniform(0, 3.1, (2, 4)), dtype=F32)
    cases = [
        (lambda x: F.fir_response(x, freqs, FS), (taps,)),
        (lambda a, b: F.allpass_response(a, b, freqs, FS), (r, t)),
        (lambda c: F.first_order_lowpass(c, freqs, FS), (torch.tensor([300.0, 9000.0]),)),
        (lambda d: F.fractional_delay_fir(d, 40), (torch.tensor([16.3, 20.7]),)),
        (lambda d: F.fractional_delay_response(d, freqs), (torch.tensor([1e-4, 2e-3]),)),
    ]
    for fn, args in cases:
        cpu = fn(*args)
        gpu = fn(*(a.cuda() for a in args))
        assert gpu.device.type == "cuda" and gpu.dtype == cpu.dtype
        torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-4)
    module = F.AllPass(3, shape=(2,)).cuda()
    out = module(freqs)  # CPU grid, CUDA parameters
    assert out.device.type == "cuda" and out.dtype == torch.complex64
    out.abs().sum().backward()
    assert module.raw_radius.grad is not None
