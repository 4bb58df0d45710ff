"""Property-based tests (hypothesis) of the DSP core (issue 6): the properties every input must
satisfy, not examples.

* renderer: streaming == offline == a float64 direct convolution, for random filter matrices,
  block sizes, batch sizes, chunkings (and FDL wrap-around), upmix off;
* upmix: the downmix identity ``L' + g·C = L``, ``R' + g·C = R`` for random signals and random
  valid parameters, offline and streaming (delayed by the latency), and streaming == offline;
* composition (DESIGN.md §1): ``compose_fir`` is linear in each stage in the sense below, and the
  composite equals the frequency-domain formula ``W_L = e^{−jωd_LR}(C_l·A + C_r·X)``,
  ``W_R = e^{−jωd_LR}(C_r·A + C_l·X)``, ``W_C = e^{−jωd_C}·B`` (also through ``FilterSet.from_stages``);
* spherical harmonics: ``sh_fit`` ∘ ``sh_evaluate`` is the identity on band-limited coefficients
  sampled on a Gauss grid, and the regularised fit shrinks each coefficient by exactly
  ``1/(1 + λ·(1 + n(n+1))²)`` there.

Examples are derandomized (the same on every run, so CI is reproducible); set
``SPATIALOPT_HYPOTHESIS_RANDOM=1`` to explore new ones and ``SPATIALOPT_HYPOTHESIS_SCALE=10`` for
ten times as many examples. Budget: the whole file runs in about 30 s on the 2-core machine.
"""

from __future__ import annotations

import math
import os
from types import SimpleNamespace
from unittest import mock

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spatialopt.render as render_mod
from spatialopt.acoustics import sh
from spatialopt.design.system import compose_fir
from spatialopt.dsp.upmix import Upmixer, upmix
from spatialopt.filterset import FilterSet
from spatialopt.render import Renderer, render_offline

pytestmark = pytest.mark.usefixtures("single_thread")  # tiny FFTs: one thread is faster and stall-free

_SCALE = float(os.environ.get("SPATIALOPT_HYPOTHESIS_SCALE", "1"))
DEVICES = ["cpu"] + [pytest.param("cuda", id="cuda")] * torch.cuda.is_available()  # the same properties on a GPU


def _settings(n: int):
    return settings(max_examples=max(1, int(n * _SCALE)), deadline=None, print_blob=True,
                    derandomize=os.environ.get("SPATIALOPT_HYPOTHESIS_RANDOM") != "1",
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


seeds = st.integers(0, 2**32 - 1)


def _cuts(data, total: int, block: int) -> list[int]:
    """Random call lengths summing to ``total``: zeros, single samples, block ± 1, arbitrary."""
    lengths, left = [], total
    while left > 0:
        n = data.draw(st.one_of(st.sampled_from([0, 1, max(1, block - 1), block, block + 1, 2 * block + 3]),
                                st.integers(0, left)), label="call length")
        n = min(n, left)
        lengths.append(n)
        left -= n
        if len(lengths) > 60:  # bound the number of calls; the rest goes in one
            lengths.append(left)
            break
    return lengths


# ---------------------------------------------------------------------------------------------
# Renderer: streaming == offline == direct convolution
# ---------------------------------------------------------------------------------------------


def _direct(fir: np.ndarray, x: np.ndarray) -> np.ndarray:
    """float64 y[b, d, n] = Σ_c Σ_k h[c, d, k] x[b, c, n − k], first S samples."""
    b, c, s = x.shape
    _, d, _ = fir.shape
    y = np.zeros((b, d, s))
    if s == 0:
        return y
    for bi in range(b):
        for ci in range(c):
            for di in range(d):
                y[bi, di] += np.convolve(x[bi, ci].astype(np.float64), fir[ci, di].astype(np.float64))[:s]
    return y


@pytest.mark.parametrize("device", DEVICES)
@_settings(250)
@given(data=st.data(), seed=seeds, n_drivers=st.integers(1, 4), n_taps=st.integers(1, 70),
       block=st.integers(1, 80), batch=st.sampled_from([1, 1, 2, 3, 9]), length=st.integers(0, 400),
       dtype=st.sampled_from([torch.float32, torch.float32, torch.float64]),
       chunk_samples=st.sampled_from([None, None, 1, 500]), scale=st.sampled_from([1e-3, 1.0, 1e3]),
       kind=st.sampled_from(["noise", "impulses", "zeros", "dc"]))
def test_renderer_streaming_equals_offline(device, data, seed, n_drivers, n_taps, block, batch, length, dtype,
                                           chunk_samples, scale, kind):
    rng = np.random.default_rng(seed)
    fir = torch.from_numpy(rng.standard_normal((3, n_drivers, n_taps)) / math.sqrt(n_taps)).float()
    fset = SimpleNamespace(fir=fir, sample_rate=48000.0, upmix={}, latency_samples=0)
    if kind == "noise":
        x = rng.standard_normal((batch, 3, length))
    elif kind == "impulses":
        x = np.zeros((batch, 3, length))
        x[rng.random((batch, 3, length)) < 0.02] = 1.0
    elif kind == "zeros":
        x = np.zeros((batch, 3, length))
    else:
        x = np.ones((batch, 3, length))
    x = (scale * x).astype(np.float32)
    offline = render_offline(fset, torch.from_numpy(x), upmix=False, device=device, dtype=dtype)
    assert offline.shape == (batch, n_drivers, length) and offline.dtype == dtype

    lengths = _cuts(data, length, block)
    # CHUNK_SAMPLES bounds the blocks per chunk; 1 forces one block per chunk (the FDL buffer then
    # wraps around on every frame).
    patch = mock.patch.object(render_mod, "CHUNK_SAMPLES", chunk_samples) if chunk_samples else mock.patch.object(
        render_mod, "CHUNK_SAMPLES", render_mod.CHUNK_SAMPLES)
    with patch:
        r = Renderer(fset, block_size=block, device=device, upmix=False, dtype=dtype)
        parts, pos = [], 0
        for n in lengths:
            y = r.process(x[:, :, pos: pos + n])  # numpy input is accepted too
            assert y.shape == (batch, n_drivers, n) and y.device.type == device
            parts.append(y.cpu())
            pos += n
        streamed = torch.cat(parts, dim=-1) if parts else torch.zeros(batch, n_drivers, 0, dtype=dtype)
    offline = offline.cpu()

    ref = _direct(fir.double().numpy(), x)
    # "Relative" is relative to the signal level: FFT rounding scales with max|x| · Σ|h| (the
    # largest value any output sample can take), not with the size of one particular output.
    level = float(np.abs(x).max()) * float(fir.double().abs().sum((0, 2)).max()) if length else 0.0
    tol = 1e-5 * max(level, 1e-30)  # the 1e-5 relative contract (float32); float64 is far inside it
    assert float((streamed.double() - offline.double()).abs().max() if length else 0.0) <= tol
    assert float(np.abs(offline.double().numpy() - ref).max() if length else 0.0) <= tol


# ---------------------------------------------------------------------------------------------
# Upmix: downmix consistency for random signals and random valid parameters
# ---------------------------------------------------------------------------------------------


@st.composite
def upmix_params(draw):
    fs = draw(st.sampled_from([8000.0, 16000.0, 44100.0, 48000.0]))
    n_fft = draw(st.sampled_from([16, 32, 64, 128]))
    hop = n_fft // draw(st.sampled_from([2, 4, 8]))
    params = dict(
        n_fft=n_fft, hop=hop,
        centre_gain=draw(st.floats(0.05, 4.0)),
        smoothing_ms=draw(st.one_of(st.just(0.0), st.floats(0.0, 200.0))),
        panning_rejection=draw(st.floats(0.0, 10.0)),
        mask_exponent=draw(st.floats(0.1, 4.0)),
        residual_floor=draw(st.one_of(st.just(0.0), st.floats(0.0, 10.0))),
        low_hz=draw(st.one_of(st.just(0.0), st.floats(0.0, 0.49 * fs))),
        bass_to_centre=draw(st.floats(0.0, 1.0)),
    )
    return fs, params


def _stereo(rng, kind: str, batch: int, length: int, dtype) -> torch.Tensor:
    common = rng.standard_normal((batch, 1, length))
    if kind == "noise":
        x = rng.standard_normal((batch, 2, length))
    elif kind == "centre":
        x = np.repeat(common, 2, axis=1)
    elif kind == "panned":  # centre + a partly panned source + one hard-left source
        p, h = rng.standard_normal((2, batch, length))
        x = np.concatenate([common + 0.8 * p[:, None] + h[:, None], common + 0.3 * p[:, None]], axis=1)
    elif kind == "anti":  # anti-phase: no centre at all
        x = np.concatenate([common, -common], axis=1)
    elif kind == "one_side":
        x = np.concatenate([common, np.zeros_like(common)], axis=1)
    else:  # silence
        x = np.zeros((batch, 2, length))
    return torch.from_numpy(x * rng.choice([1e-4, 0.1, 10.0])).to(dtype)


def _identity_error(out: torch.Tensor, x: torch.Tensor, g: float) -> tuple[float, float]:
    """max |L' + g·C − L| over both channels, and the rounding bound it must stay under."""
    lp, rp, c = out[:, 0], out[:, 1], out[:, 2]
    err = torch.maximum((lp + g * c - x[:, 0]).abs(), (rp + g * c - x[:, 1]).abs())
    eps = torch.finfo(x.dtype).eps
    bound = 4 * eps * (x.abs().amax(1) + g * c.abs())  # two roundings of numbers of this size
    return float((err - bound).max()) if err.numel() else -1.0, float(bound.max()) if bound.numel() else 0.0


@pytest.mark.parametrize("device", DEVICES)
@_settings(150)
@given(data=st.data(), seed=seeds, fp=upmix_params(), batch=st.integers(1, 2), length=st.integers(0, 700),
       dtype=st.sampled_from([torch.float32, torch.float64]),
       kind=st.sampled_from(["noise", "centre", "panned", "anti", "one_side", "silence"]))
def test_upmix_downmix_identity(device, data, seed, fp, batch, length, dtype, kind):
    fs, params = fp
    g = params["centre_gain"]
    x = _stereo(np.random.default_rng(seed), kind, batch, length, dtype).to(device)

    # offline: aligned to the input
    out = upmix(x, fs, **params)
    assert out.shape == (batch, 3, length) and out.dtype == dtype and out.device.type == device
    assert bool(torch.isfinite(out).all())
    excess, _ = _identity_error(out, x, g)
    assert excess <= 0.0, f"L' + g·C differs from L beyond rounding by {excess:.3g}"

    # streaming, random chunks: the identity against the input delayed by the latency
    up = Upmixer(fs, **params)
    lat = up.latency_samples
    padded = torch.nn.functional.pad(x, (0, lat))
    parts, pos = [], 0
    for n in _cuts(data, padded.shape[-1], params["hop"]):
        parts.append(up.process(padded[..., pos: pos + n]))
        assert parts[-1].shape == (batch, 3, n)
        pos += n
    streamed = torch.cat(parts, dim=-1) if parts else padded.new_zeros(batch, 3, 0)
    delayed = torch.nn.functional.pad(padded, (lat, 0))[..., : padded.shape[-1]]
    excess, _ = _identity_error(streamed, delayed, g)
    assert excess <= 0.0, f"streaming L' + g·C differs from the delayed L beyond rounding by {excess:.3g}"

    # and the streamed output is the offline output, delayed (rounding: the EMA scan's grouping of
    # frames depends on the chunking)
    if length:
        peak = float(out.abs().max()) + 1e-300
        tol = (2e-5 if dtype == torch.float32 else 1e-11) * peak
        assert float((streamed[..., lat:] - out).abs().max()) <= tol


# ---------------------------------------------------------------------------------------------
# Composition of the stages (DESIGN.md §1)
# ---------------------------------------------------------------------------------------------


def _stages(rng, d, t_ctc, t_v, t_beam):
    return (torch.from_numpy(rng.standard_normal((2, d, t_ctc))), torch.from_numpy(rng.standard_normal((2, t_v))),
            torch.from_numpy(rng.standard_normal((d, t_beam))))


sizes = dict(d=st.integers(1, 4), t_ctc=st.integers(1, 40), t_v=st.integers(1, 20), t_beam=st.integers(1, 40),
             lr_delay=st.integers(0, 20), c_delay=st.integers(0, 20))
coefficient = st.one_of(st.sampled_from([0.0, 1.0, -1.0]), st.floats(-1e3, 1e3))


@_settings(250)
@given(seed=seeds, a=coefficient, b=coefficient, n_taps=st.integers(1, 120), **sizes)
def test_composition_is_linear_in_each_stage(seed, a, b, n_taps, d, t_ctc, t_v, t_beam, lr_delay, c_delay):
    """What is linear in what (float64; any n_taps >= the delays, truncation included — cutting
    is linear too; a delay beyond n_taps is outside compose_fir's domain, see the report):

    * the L/R channels ``fir[:2]`` are bilinear in (ctc, virtualizer) and do not depend on beam;
    * the C channel ``fir[2]`` is linear in beam and depends on nothing else;
    * hence, for a fixed virtualizer, ``fir`` is linear in the pair (ctc, beam):
      ``compose(a·c1 + b·c2, v, a·b1 + b·b2) = a·compose(c1, v, b1) + b·compose(c2, v, b2)``,
      and for a fixed ctc, ``fir[:2]`` is linear in the virtualizer (``fir`` itself is only affine
      in it: ``fir[2]`` stays ``B``).
    """
    n_taps = max(n_taps, lr_delay, c_delay)
    rng = np.random.default_rng(seed)
    c1, v1, b1 = _stages(rng, d, t_ctc, t_v, t_beam)
    c2, v2, b2 = _stages(rng, d, t_ctc, t_v, t_beam)

    def comp(c, v, bm):
        return compose_fir(c, v, bm, lr_delay, c_delay, n_taps)

    f11, f22 = comp(c1, v1, b1), comp(c2, v1, b2)
    assert f11.shape == (3, d, n_taps)
    scale = (abs(a) + abs(b) + 1.0) * (float(f11.abs().max()) + float(f22.abs().max()) + 1.0)
    tol = 1e-12 * scale * math.sqrt(t_ctc * t_v)

    # linear in (ctc, beam) together, virtualizer fixed
    mixed = comp(a * c1 + b * c2, v1, a * b1 + b * b2)
    assert float((mixed - (a * f11 + b * f22)).abs().max()) <= tol
    # linear in the virtualizer for the L/R channels, C unchanged
    mixed_v = comp(c1, a * v1 + b * v2, b1)
    f12 = comp(c1, v2, b1)
    assert float((mixed_v[:2] - (a * f11[:2] + b * f12[:2])).abs().max()) <= tol
    assert torch.equal(mixed_v[2], f11[2])
    # the channels depend on what they should only
    assert torch.equal(comp(c1, v1, b2)[:2], f11[:2])  # beam does not reach L/R
    assert torch.equal(comp(c2, v2, b1)[2], f11[2])  # ctc and virtualizer do not reach C
    # zero stages compose to zero
    assert not bool(comp(0 * c1, v1, 0 * b1).any())


@_settings(250)
@given(seed=seeds, pad=st.integers(0, 40), extra=st.integers(0, 10), **sizes)
def test_composite_is_the_frequency_domain_product(seed, pad, extra, d, t_ctc, t_v, t_beam, lr_delay, c_delay):
    """With ``n_taps`` long enough to hold every path (nothing cut), on any DFT of length
    ``N >= n_taps``: ``FIR_L = e^{−jωd_LR}(C_l·A + C_r·X)``, ``FIR_R = e^{−jωd_LR}(C_r·A + C_l·X)``,
    ``FIR_C = e^{−jωd_C}·B`` per driver, ω = 2πk/N. Checked on ``compose_fir`` (float64) and on
    ``FilterSet.from_stages`` (float32 stages, composed in float64, rounded to float32)."""
    rng = np.random.default_rng(seed)
    ctc, virt, beam = _stages(rng, d, t_ctc, t_v, t_beam)
    n_taps = max(lr_delay + t_ctc + t_v - 1, c_delay + t_beam) + extra
    n = n_taps + pad

    def formula(ctc, virt, beam):
        spec = lambda t: torch.fft.rfft(t, n)  # noqa: E731
        c_l, c_r, a, x, bm = spec(ctc[0]), spec(ctc[1]), spec(virt[0]), spec(virt[1]), spec(beam)
        w = 2 * math.pi * torch.arange(n // 2 + 1, dtype=torch.float64) / n
        d_lr, d_c = torch.exp(-1j * w * lr_delay), torch.exp(-1j * w * c_delay)
        return torch.stack([d_lr * (c_l * a + c_r * x), d_lr * (c_r * a + c_l * x), d_c * bm])  # (3, D, F)

    fir = compose_fir(ctc, virt, beam, lr_delay, c_delay, n_taps)
    want = formula(ctc, virt, beam)
    got = torch.fft.rfft(fir, n)
    scale = float(want.abs().max()) + 1.0
    assert float((got - want).abs().max()) <= 1e-12 * scale * math.sqrt(n)

    fset = FilterSet.from_stages(ctc, virt, beam, lr_delay, c_delay, n_taps, 48000.0,
                                 [f"d{i}" for i in range(d)], 0)
    assert fset.fir.dtype == torch.float32 and fset.fir.shape == (3, d, n_taps)
    st32 = {k: v.double() for k, v in fset.stages.items()}  # the stored (float32-rounded) stages
    want32 = formula(st32["ctc"], st32["virtualizer"], st32["beam"])
    got32 = torch.fft.rfft(fset.fir.double(), n)
    # only the final float32 rounding of each tap: |error| <= 2^-24·|tap| per tap, summed by the DFT
    bound = 2.0**-24 * float(fset.fir.double().abs().sum(-1).max()) + 1e-12 * scale * math.sqrt(n)
    assert float((got32 - want32).abs().max()) <= 1.01 * bound
    assert fset.check_composition(atol=0.0, rtol=1e-6) <= 1e-6 * float(fset.fir.abs().max()) + 1e-30


# ---------------------------------------------------------------------------------------------
# Spherical harmonics: fit/evaluate round trip on the Gauss grid
# ---------------------------------------------------------------------------------------------


@_settings(150)
@given(seed=seeds, order=st.integers(0, 8), grid_extra=st.integers(0, 3), band=st.integers(0, 8),
       lead=st.sampled_from([(), (1,), (3,), (2, 2)]), complex_=st.booleans(),
       scale=st.sampled_from([1e-6, 1.0, 1e6]))
def test_sh_fit_evaluate_round_trip(seed, order, grid_extra, band, lead, complex_, scale):
    """Coefficients band-limited to degree ``min(band, order)``, sampled with :func:`sh_evaluate`
    on the Gauss grid of order ``order + grid_extra`` (exact quadrature for degree <= order):
    the unregularised fit of order ``order`` returns them (zeros above the band), its relative
    residual is ~0, and the expansion agrees off the grid too."""
    rng = np.random.default_rng(seed)
    band = min(band, order)
    n_coef = sh.num_coeffs(order)
    truth = np.zeros((*lead, n_coef), dtype=np.complex128 if complex_ else np.float64)
    k = sh.num_coeffs(band)
    truth[..., :k] = rng.standard_normal((*lead, k))
    if complex_:
        truth[..., :k] += 1j * rng.standard_normal((*lead, k))
    truth = torch.from_numpy(scale * truth)
    colat, az, w = sh.gauss_sphere(order + grid_extra)
    samples = sh.sh_evaluate(truth, colat, az)
    assert samples.shape == (*lead, colat.shape[0]) and samples.dtype == truth.dtype

    coeffs, err = sh.sh_fit(samples, colat, az, order, w, regularization=0.0)
    assert coeffs.shape == truth.shape and coeffs.dtype == truth.dtype and err.shape == lead
    size = scale * math.sqrt(n_coef) * (order + 1)
    assert float((coeffs - truth).abs().max()) <= 1e-12 * size
    assert float(coeffs[..., k:].abs().max() if k < n_coef else 0.0) <= 1e-12 * size
    assert float(err.max()) <= 1e-11

    # the same function everywhere on the sphere, not only on the grid
    u = rng.uniform(-1.0, 1.0, 17)
    off_colat, off_az = torch.from_numpy(np.arccos(u)), torch.from_numpy(rng.uniform(-math.pi, math.pi, 17))
    off = sh.sh_evaluate(coeffs, off_colat, off_az) - sh.sh_evaluate(truth, off_colat, off_az)
    assert float(off.abs().max()) <= 1e-11 * size


@_settings(80)
@given(seed=seeds, order=st.integers(0, 6), grid_extra=st.integers(0, 2),
       reg=st.sampled_from([1e-8, 1e-4, 1e-2, 1.0]))
def test_sh_regularised_fit_is_an_exact_per_degree_shrinkage(seed, order, grid_extra, reg):
    """On an exact quadrature grid the Gram matrix is the identity, so the Tikhonov solution is
    ``c_i / (1 + λ·(1 + n_i(n_i+1))²)`` with ``λ = regularization`` (the trace normalisation is 1)."""
    rng = np.random.default_rng(seed)
    truth = torch.from_numpy(rng.standard_normal((2, sh.num_coeffs(order))))
    colat, az, w = sh.gauss_sphere(order + grid_extra)
    coeffs, _ = sh.sh_fit(sh.sh_evaluate(truth, colat, az), colat, az, order, w, regularization=reg)
    n_idx, _ = sh.acn_degrees(order)
    shrink = 1.0 / (1.0 + reg * (1.0 + n_idx * (n_idx + 1)).double() ** 2)
    torch.testing.assert_close(coeffs, truth * shrink, rtol=1e-10, atol=1e-12)
