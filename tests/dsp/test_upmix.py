"""LRC upmix: downmix identity, streaming == offline, centre/side behaviour, gradients, errors."""

from __future__ import annotations

import math

import pytest
import torch

from spatialopt.dsp.upmix import DEFAULTS, Upmixer, _ema_scan, centre_weights, upmix
from spatialopt.errors import ConfigError, DataError

pytestmark = pytest.mark.usefixtures("single_thread")

FS = 48000
G = DEFAULTS["centre_gain"]
SMALL = dict(n_fft=256, hop=64)  # small frames for the many-call streaming tests


def _noise(*shape, seed=0, dtype=torch.float64, lo_hz=None):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=gen, dtype=torch.float64)
    if lo_hz is not None:  # high-pass by FFT masking (keeps the test sources above the bass bypass)
        spec = torch.fft.rfft(x, dim=-1)
        f = torch.fft.rfftfreq(x.shape[-1], 1 / FS, dtype=torch.float64)
        x = torch.fft.irfft(spec * (f >= lo_hz), n=x.shape[-1], dim=-1)
    return x.to(dtype)


def _mix(s=FS // 2, seed=0, dtype=torch.float64, batch=1):
    """A stereo test mix: a common (centre) source, one hard-left, one 70/30 source, ambience."""
    c, h, p, a = (_noise(batch, s, seed=seed + k, dtype=dtype, lo_hz=150) for k in range(4))
    amb = _noise(batch, 2, s, seed=seed + 9, dtype=dtype)
    left = c + h + math.sqrt(0.7) * p + 0.1 * amb[:, 0]
    right = c + math.sqrt(0.3) * p + 0.1 * amb[:, 1]
    return 0.1 * torch.stack([left, right], dim=1)


def _stream(up: Upmixer, x: torch.Tensor, sizes) -> torch.Tensor:
    """Feed x (B, 2, S) followed by latency zeros in chunks of the given sizes (cycled)."""
    x = torch.nn.functional.pad(x, (0, up.latency_samples))
    out, i, k = [], 0, 0
    while i < x.shape[-1]:
        n = sizes[k % len(sizes)]
        out.append(up.process(x[..., i:i + n]))
        i, k = i + n, k + 1
    return torch.cat(out, dim=-1)


# ----------------------------------------------------------------------------------------------
# downmix identity


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_downmix_identity_offline(dtype):
    x = _mix(dtype=dtype, batch=2)
    for g in (G, 0.5, 1.0):
        y = upmix(x, FS, centre_gain=g)
        assert y.shape == (2, 3, x.shape[-1]) and y.dtype == dtype
        # L' + g·C = L exactly up to the rounding of one subtraction and one addition:
        # tolerance 4 ulp of the largest magnitude involved.
        scale = max(x.abs().max().item(), (g * y[:, 2]).abs().max().item())
        tol = 4 * torch.finfo(dtype).eps * scale
        assert (y[:, 0] + g * y[:, 2] - x[:, 0]).abs().max() <= tol
        assert (y[:, 1] + g * y[:, 2] - x[:, 1]).abs().max() <= tol


# ----------------------------------------------------------------------------------------------
# streaming == offline delayed


@pytest.mark.parametrize("sizes", [[1], [7], [256], [4096], "random"])
def test_streaming_equals_offline_delayed(sizes):
    x = _mix(s=2000, batch=2)
    if sizes == "random":
        gen = torch.Generator().manual_seed(3)
        sizes = torch.randint(0, 700, (50,), generator=gen).tolist()  # includes empty chunks
    ref = upmix(x, FS, **SMALL)
    up = Upmixer(FS, **SMALL)
    assert up.latency_samples == SMALL["n_fft"] - 1
    out = _stream(up, x, sizes)
    lat = up.latency_samples
    assert out.shape == (2, 3, x.shape[-1] + lat)
    # the first `latency` samples are the delay (the dry path is zero there, C too)
    assert out[..., :lat].abs().max() == 0
    torch.testing.assert_close(out[..., lat:], ref, rtol=0, atol=1e-12)
    # downmix identity for the stream against the delayed input
    xd = torch.nn.functional.pad(x, (lat, 0))
    torch.testing.assert_close(out[:, :2] + G * out[:, 2:], xd, rtol=0, atol=1e-14)


def test_streaming_default_params_float32():
    x = _mix(s=FS // 4, dtype=torch.float32)
    ref = upmix(x, FS)
    for sizes in ([4096], [1000, 1, 3333, 0, 17]):
        up = Upmixer(FS)
        out = _stream(up, x, sizes)[..., up.latency_samples:]
        # blocked scan vs different frame grouping: float32 rounding only
        torch.testing.assert_close(out, ref, rtol=0, atol=1e-6 * x.abs().max().item())


def test_reset_and_zero_length():
    x = _mix(s=1500)
    up = Upmixer(FS, **SMALL)
    assert up.process(x[..., :0]).shape == (1, 3, 0)
    first = up.process(x)
    up.process(x)  # advances the state
    up.reset()
    assert up.process(x[..., :0]).shape == (1, 3, 0)
    torch.testing.assert_close(up.process(x), first, rtol=0, atol=0)
    assert upmix(x[..., :0], FS).shape == (1, 3, 0)
    assert upmix(x[..., :1], FS, **SMALL).shape == (1, 3, 1)


def test_ema_scan_matches_recurrence():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 201, 5, generator=gen, dtype=torch.float32)
    init = torch.rand(2, 3, 5, generator=gen, dtype=torch.float32)
    for alpha in (0.0, 0.5, 0.95):
        y, ref = _ema_scan(x, alpha, init), []
        state = init
        for m in range(x.shape[-2]):
            state = alpha * state + (1 - alpha) * x[..., m, :]
            ref.append(state)
        torch.testing.assert_close(y, torch.stack(ref, dim=-2), rtol=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------------------------
# behaviour


def test_batch_consistency():
    x = torch.cat([_mix(s=6000, seed=0), _mix(s=6000, seed=5)], dim=0)
    y = upmix(x, FS, **SMALL)
    for b in range(2):
        torch.testing.assert_close(y[b:b + 1], upmix(x[b:b + 1], FS, **SMALL), rtol=0, atol=1e-12)


def test_centre_source_goes_to_centre():
    s = _noise(1, FS // 2, seed=1)
    y = upmix(torch.stack([s, s], dim=1), FS)
    e_in = s.pow(2).sum()
    # g·C carries the source at its input level (C = s/g), L' and R' keep almost nothing
    assert (G * y[:, 2]).pow(2).sum() / e_in > 0.99
    assert y[:, 0].pow(2).sum() / e_in < 1e-3 and y[:, 1].pow(2).sum() / e_in < 1e-3


def test_hard_panned_source_stays_out_of_centre():
    s = _noise(1, FS // 2, seed=2, lo_hz=150)  # above the bass bypass (low_hz = 80 Hz, half an octave up)
    x = torch.stack([s, torch.zeros_like(s)], dim=1)
    y = upmix(x, FS)
    leak_db = 10 * torch.log10((G * y[:, 2]).pow(2).sum() / s.pow(2).sum())
    assert leak_db < -20
    # with R exactly 0 the cross-spectrum is exactly 0: no leakage at all once the bypass is off
    assert upmix(x, FS, low_hz=0).abs()[:, 2].max() == 0


def test_hard_panned_source_in_a_mix():
    # centre + hard-left (equal power, fully overlapping noise) + ambience: the least-squares share
    # of each source in g·C — the passive mid would give 1 for the centre and 0.5 for the hard-left
    c, h = _noise(1, FS, seed=3, lo_hz=150), _noise(1, FS, seed=4, lo_hz=150)
    amb = 0.1 * _noise(1, 2, FS, seed=5)
    y = upmix(torch.stack([c + h, c], dim=1) + amb, FS)
    gc = G * y[:, 2]
    share_c = (gc * c).sum() / c.pow(2).sum()
    share_h = (gc * h).sum() / h.pow(2).sum()
    # Worst case for the estimator: both sources are dense noise overlapping in every bin, so the
    # short-time spectra are noisy and the partial-panning test fires at random: the centre is
    # shrunk to about half (a mask on the mid would keep 0.8 of it and 0.4 of h) ...
    assert share_c > 0.35
    # ... but the hard-panned source is nulled: amplitude share < 0.03, i.e. < −30 dB
    assert share_h.abs() < 0.03


def test_partly_panned_source_is_rejected():
    s = _noise(1, FS // 2, seed=6, lo_hz=150)
    x = torch.stack([math.sqrt(0.7) * s, math.sqrt(0.3) * s], dim=1)  # 70/30 power: 3.7 dB to the left
    mid = 0.5 * x.sum(1)
    leak = (G * upmix(x, FS)[:, 2]).pow(2).sum() / mid.pow(2).sum()
    assert leak < 0.03  # < −15 dB of what the passive mid would put in C
    leak0 = (G * upmix(x, FS, panning_rejection=0.0)[:, 2]).pow(2).sum() / mid.pow(2).sum()
    assert leak0 > 0.3  # the plain common-component estimate keeps min(a, b)·s


def test_bass_goes_to_centre_below_low_hz():
    t = torch.arange(FS // 2, dtype=torch.float64) / FS
    bass = torch.sin(2 * math.pi * 40 * t)[None]
    x = torch.stack([bass, torch.zeros_like(bass)], dim=1)  # hard-left 40 Hz
    y = upmix(x, FS)
    mid = 0.5 * bass
    mid_c = G * y[:, 2]
    sl = slice(FS // 10, -FS // 10)
    torch.testing.assert_close(mid_c[..., sl], mid[..., sl], rtol=0, atol=1e-3)  # all of the mid to C
    assert upmix(x, FS, bass_to_centre=0.0)[:, 2].abs().max() < 1e-3


def test_silence_gives_zeros():
    y = upmix(torch.zeros(2, 2, 5000), FS)
    assert y.shape == (2, 3, 5000) and torch.equal(y, torch.zeros_like(y))


def test_centre_weights_cases():
    one = torch.tensor([1.0], dtype=torch.float64)

    def w(pl, pr, x, **kw):
        args = dict(panning_rejection=4.0, mask_exponent=1.0, residual_floor=0.1) | kw
        return tuple(round(v.item(), 4) for v in centre_weights(pl * one, pr * one, x * one, **args))

    assert w(1, 1, 1) == (0.5, 0.5)  # L = R: the mid
    assert w(1, 0, 0) == (0.0, 0.0)  # hard left
    assert w(1, 1, -1) == (0.0, 0.0)  # anti-phase
    assert w(0, 0, 0) == (0.0, 0.0)  # silence, no NaN
    assert w(0.7, 0.3, math.sqrt(0.21)) == (0.0, 0.0)  # 70/30 partly panned: rejected
    # centre (power 1) + uncorrelated hard left (power 4): lean on the clean right channel ...
    w_l, w_r = w(5, 1, 1)
    assert w_l < 0.07 and w_r > 0.9
    # ... where a mask on the mid gives the Wiener gain 1 / (1 + 4/4) = 0.5 to both halves of the mid
    assert w(5, 1, 1, residual_floor=1e12) == (0.25, 0.25)


def test_gradient_flows_gradcheck():
    # float64 gradcheck on a tiny input: the mask is piecewise smooth (max/min/clamp kinks only
    # where two spectral estimates coincide), which random inputs avoid almost surely.
    x = (0.5 * _noise(1, 2, 48, seed=7)).requires_grad_(True)
    w = _noise(1, 3, 48, seed=8)

    def loss(inp):
        return (upmix(inp, FS, n_fft=16, hop=4, smoothing_ms=0.2) * w).sum(-1)

    assert torch.autograd.gradcheck(loss, (x,), eps=1e-6, atol=1e-6)


def test_gradient_finite_at_silence_and_pure_centre():
    # the kinks of the estimator sit exactly here (all spectra equal, or all zero): no NaN/Inf
    s = _noise(1, 1, 2000, seed=9)
    for x in (torch.zeros(1, 2, 2000, dtype=torch.float64), torch.cat([s, s], dim=1)):
        x = x.clone().requires_grad_(True)
        upmix(x, FS, **SMALL)[:, 2].pow(2).sum().backward()
        assert torch.isfinite(x.grad).all()


def test_float32_matches_float64():
    x = _mix(s=8000)
    y64 = upmix(x, FS, **SMALL)
    y32 = upmix(x.float(), FS, **SMALL)
    torch.testing.assert_close(y32.double(), y64, rtol=0, atol=2e-5 * x.abs().max().item())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_matches_cpu():
    x = _mix(s=FS // 4, dtype=torch.float32)
    torch.testing.assert_close(upmix(x.cuda(), FS).cpu(), upmix(x, FS), rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# errors


@pytest.mark.parametrize("bad, message", [
    (torch.zeros(2, 100), "shape (batch, 2, samples)"),
    (torch.zeros(1, 3, 100), "got (1, 3, 100)"),
    (torch.zeros(1, 2, 100, dtype=torch.int16), "float32 or float64"),
    (torch.zeros(1, 2, 100, dtype=torch.complex64), "float32 or float64"),
    (torch.tensor([[[0.0, math.nan], [0.0, 0.0]]]), "NaN or Inf"),
    (torch.tensor([[[0.0, math.inf], [0.0, 0.0]]]), "NaN or Inf"),
    ([[0.0], [0.0]], "torch.Tensor"),
])
def test_bad_input(bad, message):
    with pytest.raises(DataError, match=None) as err:
        upmix(bad, FS)
    assert message in str(err.value)
    with pytest.raises(DataError):
        Upmixer(FS).process(bad)


def test_stream_format_change_is_an_error():
    up = Upmixer(FS, **SMALL)
    up.process(torch.zeros(2, 2, 10))
    with pytest.raises(DataError, match="reset"):
        up.process(torch.zeros(1, 2, 10))
    with pytest.raises(DataError, match="float64"):
        up.process(torch.zeros(2, 2, 10, dtype=torch.float64))


@pytest.mark.parametrize("key, value", [
    ("n_fft", 255), ("n_fft", 8), ("n_fft", 256.0), ("hop", 100), ("hop", 256), ("hop", 0),
    ("centre_gain", 0.0), ("centre_gain", math.inf), ("smoothing_ms", -1.0), ("panning_rejection", -0.1),
    ("mask_exponent", 0.0), ("residual_floor", -1.0), ("low_hz", 24000.0), ("low_hz", -1.0), ("bass_to_centre", 1.5),
    ("centre_gain", "1"), ("wet", 1.0),
    # bounded (issue 6: parameters come from filter-set manifests; memory grows with n_fft and n_fft/hop)
    ("n_fft", 2**17), ("n_fft", 2**40), ("hop", 8),
])
def test_bad_params(key, value):
    params = dict(SMALL) if key not in ("n_fft",) else {}
    params[key] = value
    with pytest.raises(ConfigError) as err:
        Upmixer(FS, **params)
    assert err.value.key == key and f"{key}=" in str(err.value)


def test_largest_frame_and_overlap_are_accepted():
    up = Upmixer(FS, n_fft=2**16, hop=2**12)
    assert up.latency_samples == 2**16 - 1
    y = upmix(torch.zeros(1, 2, 100), FS, n_fft=256, hop=16)
    assert y.shape == (1, 3, 100)


def test_bad_sample_rate():
    with pytest.raises(ConfigError, match="sample_rate"):
        upmix(torch.zeros(1, 2, 10), 0)
