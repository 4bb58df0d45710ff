"""Differentiable filter primitives, evaluated as frequency responses on arbitrary frequency grids.

The design stage composes these responses into one jointly optimized system (DESIGN.md §1), so
every function here is a pure, batched tensor function that works on CPU or CUDA, in
float32/complex64 and float64/complex128, and is differentiable with respect to its continuous
arguments (taps, delays, corners, pole radii and angles, coefficients) through plain autograd.

Conventions (DESIGN.md §3):

* Time convention ``e^{+jωt}``, as numpy/torch FFTs: a delay ``τ`` is ``e^{−jωτ}``, and a digital
  filter's response is its z-transform at ``z = e^{jω/fs}``, i.e. ``H(f) = Σ h[n] e^{−j2πfn/fs}``.
  On the rfft grid ``f_k = k·fs/n_fft`` this is exactly ``torch.fft.rfft(h, n_fft)``.
* Frequencies ``freqs`` are in Hz, shape (F,), any values (need not be a uniform grid, may exceed
  ``fs/2``: a digital response is then periodic in ``fs``). Sample rates are in Hz, delays in
  seconds unless the argument name says ``_samples``, angles in radians, gains linear unless the
  name says ``_db``.
* Leading dimensions ``...`` of the parameters are batch dimensions; the result is (..., F).
  The result's real dtype is that of the parameter tensors (promoted when there are several);
  ``freqs`` is converted to it and moved to their device, so a float32 filter gives complex64
  even on a float64 grid.

Parameterization apart from physics (DESIGN.md §3): the modules at the end of this file hold
*unconstrained* ``nn.Parameter`` s and map them to physical values with the maps below
(:func:`pole_radius`, :func:`positive`, :func:`bounded`, :func:`corner_hz`, :func:`db_to_gain`),
so any optimizer step yields a stable, physically valid filter. Each map has an inverse used to
initialise the modules from physical values, and each module's ``physical()`` reports the
physical parameters.

Pairs in the style of julius: :func:`fir_response` / :class:`FIRFilter`,
:func:`fractional_delay_response` / :class:`FractionalDelay`, :func:`allpass_response` /
:class:`AllPass`, :func:`first_order_lowpass` / :class:`LowPass`, :func:`db_to_gain` / :class:`Gain`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = [
    # responses
    "fir_response",
    "iir_response",
    "biquad_response",
    "fir_from_response",
    "fractional_delay_response",
    "fractional_delay_fir",
    "first_order_lowpass",
    "head_shadow_response",
    "allpass_response",
    "first_order_allpass_response",
    # parameter maps
    "pole_radius",
    "pole_radius_inverse",
    "positive",
    "positive_inverse",
    "bounded",
    "bounded_inverse",
    "corner_hz",
    "corner_hz_inverse",
    "db_to_gain",
    "gain_to_db",
    # modules
    "FIRFilter",
    "FractionalDelay",
    "AllPass",
    "LowPass",
    "Gain",
]

_TWO_PI = 2.0 * math.pi


# ----------------------------------------------------------------------------------------------
# helpers


def _as_tensor(x, like: Tensor | None = None) -> Tensor:
    """``x`` as a floating tensor (the default dtype for Python numbers, or ``like``'s dtype/device)."""
    if isinstance(x, Tensor):
        return x if x.is_floating_point() else x.to(torch.get_default_dtype())
    if like is not None:
        return torch.as_tensor(x, dtype=like.dtype, device=like.device)
    return torch.as_tensor(x, dtype=torch.get_default_dtype())


def _grid(freqs, like: Tensor) -> Tensor:
    """``freqs`` (F,) in Hz as a tensor of ``like``'s real dtype on ``like``'s device."""
    freqs = torch.as_tensor(freqs)
    if freqs.dim() != 1:
        raise ValueError(f"freqs must have shape (F,), got {tuple(freqs.shape)}")
    return freqs.to(device=like.device, dtype=like.dtype)


def _common(*tensors: Tensor) -> tuple[Tensor, ...]:
    """Promote floating tensors to one real dtype (and the first tensor's device)."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        dtype = torch.promote_types(dtype, t.dtype)
    return tuple(t.to(device=tensors[0].device, dtype=dtype) for t in tensors)


def _unit_phasor(phase: Tensor) -> Tensor:
    """``e^{j·phase}`` built from cos/sin, so ``|·| = 1`` to rounding and autograd is real-valued."""
    return torch.complex(torch.cos(phase), torch.sin(phase))


# ----------------------------------------------------------------------------------------------
# FIR / IIR responses


def fir_response(taps: Tensor, freqs, sample_rate: float) -> Tensor:
    """Frequency response (DTFT) of FIR filters at arbitrary frequencies.

    ``H(f) = Σ_{n=0}^{T−1} h[n] e^{−j2πfn/fs}``, computed as one real matmul with a cos/sin
    kernel, so it is batched and differentiable in ``taps``. The kernel phase ``2π·(fn/fs mod 1)``
    is formed in float64 before it is cast to the taps' dtype, so float32 responses of long
    filters do not lose phase accuracy. On the rfft grid ``f_k = k·fs/n_fft`` (``T ≤ n_fft``) the
    result equals ``torch.fft.rfft(taps, n_fft)``.

    Args:
        taps: (..., T) real FIR coefficients ``h[n]`` (dimensionless), tap 0 first.
        freqs: (F,) frequencies in Hz.
        sample_rate: ``fs`` in Hz.

    Returns:
        (..., F) complex response (complex64 for float32 taps, complex128 for float64).
    """
    taps = _as_tensor(taps)
    f = torch.as_tensor(freqs)
    if f.dim() != 1:
        raise ValueError(f"freqs must have shape (F,), got {tuple(f.shape)}")
    f = f.to(device=taps.device, dtype=torch.float64)
    n = torch.arange(taps.shape[-1], device=taps.device, dtype=torch.float64)
    cycles = torch.outer(n, f / float(sample_rate))  # (T, F)
    phase = _TWO_PI * (cycles - torch.round(cycles))
    cos = torch.cos(phase).to(taps.dtype)
    sin = torch.sin(phase).to(taps.dtype)
    return torch.complex(taps @ cos, -(taps @ sin))


def iir_response(b: Tensor, a: Tensor, freqs, sample_rate: float) -> Tensor:
    """Frequency response of rational (IIR) digital filters ``B(z)/A(z)`` at arbitrary frequencies.

    ``H(f) = Σ_k b_k e^{−j2πfk/fs} / Σ_k a_k e^{−j2πfk/fs}`` (scipy's ``freqz(b, a)`` convention;
    ``a_0`` need not be 1). Stability is the caller's concern: the response of an unstable
    ``A`` is still evaluated, it just is not the response of a causal stable filter.

    Args:
        b: (..., Nb) numerator coefficients, ``b_0`` first.
        a: (..., Na) denominator coefficients, ``a_0`` first. Broadcast against ``b``.
        freqs: (F,) frequencies in Hz.
        sample_rate: ``fs`` in Hz.

    Returns:
        (..., F) complex response.
    """
    b, a = _common(_as_tensor(b), _as_tensor(a))
    return fir_response(b, freqs, sample_rate) / fir_response(a, freqs, sample_rate)


def biquad_response(b: Tensor, a: Tensor, freqs, sample_rate: float) -> Tensor:
    """Frequency response of second-order sections ``(b0 + b1 z⁻¹ + b2 z⁻²)/(a0 + a1 z⁻¹ + a2 z⁻²)``.

    Args:
        b: (..., 3) numerator coefficients ``(b0, b1, b2)``.
        a: (..., 3) denominator coefficients ``(a0, a1, a2)``; broadcast against ``b``.
        freqs: (F,) frequencies in Hz.
        sample_rate: ``fs`` in Hz.

    Returns:
        (..., F) complex response (one per section; multiply along a batch axis for a cascade).
    """
    if b.shape[-1] != 3 or a.shape[-1] != 3:
        raise ValueError(f"biquad coefficients must have 3 entries, got b {tuple(b.shape)}, a {tuple(a.shape)}")
    return iir_response(b, a, freqs, sample_rate)


def _taper(n_taps: int, delay_samples: int, dtype, device) -> Tensor:
    """Half-Hann taper peaking (= 1) at tap ``delay_samples`` and reaching 0 just outside ``[0, n_taps)``.

    ``w[n] = sin²(π(n+1) / (2(d+1)))`` for ``0 ≤ n ≤ d`` and ``w[n] = cos²(π(n−d) / (2(T−d)))``
    for ``d ≤ n < T``. With ``d = 0`` this is the one-sided (falling) half of a Hann window; with
    ``T = 2d + 1`` it is a symmetric Hann window centred on tap ``d``.
    """
    n = torch.arange(n_taps, dtype=torch.float64, device=device)
    d = float(delay_samples)
    rising = torch.sin(0.5 * math.pi * (n + 1.0) / (d + 1.0)) ** 2
    falling = torch.cos(0.5 * math.pi * (n - d) / (n_taps - d)) ** 2
    return torch.where(n <= d, rising, falling).to(dtype)


def fir_from_response(
    response: Tensor,
    n_taps: int,
    n_fft: int | None = None,
    window: str | None = "hann",
    delay_samples: int = 0,
) -> Tensor:
    """Realise frequency responses sampled on the rfft grid as causal FIR filters (frequency sampling).

    Steps: ``h = irfft(response, n_fft)`` (the impulse response, periodic with period ``n_fft``);
    ``h = roll(h, delay_samples)`` — a circular shift, so the acausal part of the response, which
    ``irfft`` puts at the end of the period (negative times), moves to the start: the result
    realises ``response · e^{−jω·delay_samples}``; keep taps ``[0, n_taps)``; multiply by the
    optional taper.

    Taper (``window="hann"``): 1 at tap ``d = delay_samples``, falling as a half-Hann toward
    tap ``n_taps`` and rising as a half-Hann from tap −1 (see ``_taper``):
    ``w[n] = sin²(π(n+1)/(2(d+1)))`` for ``n ≤ d`` and ``cos²(π(n−d)/(2(n_taps−d)))`` for ``n ≥ d``.
    With ``delay_samples = 0`` it is one-sided (for causal, e.g. minimum-phase, responses); with
    ``n_taps = 2d + 1`` it is a symmetric Hann window around the main tap (for zero-phase or
    acausal responses made causal by the shift). ``window=None`` truncates without a taper (a
    rectangular window), which is exact when the response is that of a FIR that fits.

    Time-aliasing caveat (as in FLAMO, Dal Santo et al., ICASSP 2025): a response sampled at
    ``n_fft/2 + 1`` bins only defines the impulse response modulo ``n_fft`` samples. Any part of
    the true impulse response longer than ``n_fft`` (a long IIR tail, a large delay, a sharp
    resonance) wraps around onto the early taps, and truncating to ``n_taps`` discards the rest.
    Between the bins the realised FIR may therefore differ from the intended response even where
    it matches exactly on the bins; choose ``n_fft`` well above the response's effective length,
    and judge the FIR on a denser grid with :func:`fir_response` (DESIGN.md §5 evaluates metrics
    on a ≥ 4× denser grid for this reason). ``irfft`` also ignores the imaginary parts of the
    DC and (for even ``n_fft``) Nyquist bins.

    Args:
        response: (..., n_fft//2 + 1) complex response on ``f_k = k·fs/n_fft``, ``k = 0 … n_fft//2``.
        n_taps: number of taps to keep, ``1 ≤ n_taps ≤ n_fft``.
        n_fft: FFT length; default ``2·(response.shape[-1] − 1)`` (even).
        window: ``"hann"`` (the taper above) or ``None`` (no taper).
        delay_samples: integer circular shift in samples, ``0 ≤ delay_samples < n_taps`` when a
            taper is applied (any integer otherwise; negative values advance).

    Returns:
        (..., n_taps) real FIR taps, dtype the real counterpart of ``response``'s dtype.
    """
    bins = response.shape[-1]
    if n_fft is None:
        n_fft = 2 * (bins - 1)
    if n_fft // 2 + 1 != bins:
        raise ValueError(f"response has {bins} bins, but n_fft={n_fft} needs {n_fft // 2 + 1}")
    if not 1 <= n_taps <= n_fft:
        raise ValueError(f"n_taps must be in [1, n_fft={n_fft}], got {n_taps}")
    if window not in (None, "hann"):
        raise ValueError(f"window must be 'hann' or None, got {window!r}")
    delay_samples = int(delay_samples)
    if window is not None and not 0 <= delay_samples < n_taps:
        raise ValueError(f"with a taper, delay_samples must be in [0, n_taps={n_taps}), got {delay_samples}")
    h = torch.fft.irfft(response, n=n_fft, dim=-1)
    if delay_samples:
        h = torch.roll(h, shifts=delay_samples, dims=-1)
    h = h[..., :n_taps]
    if window == "hann":
        h = h * _taper(n_taps, delay_samples, h.dtype, h.device)
    return h


# ----------------------------------------------------------------------------------------------
# delays


def fractional_delay_response(delay_s: Tensor, freqs) -> Tensor:
    """Ideal (fractional) delay ``e^{−j2πfτ}``, differentiable in ``τ``.

    Args:
        delay_s: (...) delay ``τ`` in seconds (any real value; negative = advance).
        freqs: (F,) frequencies in Hz.

    Returns:
        (..., F) complex response, ``|H| = 1`` to rounding and ``∠H = −2πfτ``.
    """
    delay_s = _as_tensor(delay_s)
    f = _grid(freqs, delay_s)
    return _unit_phasor(-_TWO_PI * delay_s[..., None] * f)


def fractional_delay_fir(
    delay_samples: Tensor, n_taps: int, half_width: int | None = None, beta: float = 8.0
) -> Tensor:
    """Windowed-sinc fractional-delay FIR, differentiable in the delay.

    ``h[n] = sinc(n − D) · w((n − D)/M)``, ``n = 0 … n_taps−1``, with ``sinc(x) = sin(πx)/(πx)``
    and ``w`` a Kaiser window of half-width ``M`` that moves with the delay, shifted so that it
    reaches zero at its edges: ``w(x) = (I0(β√(1−x²)) − 1)/(I0(β) − 1)`` for ``|x| < 1``, else 0.
    Taps therefore enter and leave the support continuously, and ``h`` is continuous and
    piecewise-smooth in ``D`` (smooth between integer crossings of ``D ± M``).

    Accurate band: for ``M − 1 ≤ D ≤ n_taps − M`` (the kernel fits inside the taps) and
    ``β = 8``, ``|H(f) − e^{−j2πfD/fs}| ≤ 5·10⁻⁴`` for ``|f| ≤ (0.5 − 1.3/M)·fs`` — e.g.
    ``0.42·fs`` (20 kHz at 48 kHz) for ``M = 16`` (measured: 2.8·10⁻⁴ for M = 8 … 64). Above that
    band the response rolls off toward ``fs/2``. Larger ``β`` lowers the error and narrows the
    band; delays outside the valid range are truncated by the tap window and lose accuracy.

    Args:
        delay_samples: (...) delay ``D`` in samples (real).
        n_taps: number of taps T.
        half_width: kernel half-width ``M`` in samples; default ``min(16, n_taps // 2)``.
        beta: Kaiser ``β``.

    Returns:
        (..., n_taps) real FIR taps, dtype of ``delay_samples``.
    """
    delay_samples = _as_tensor(delay_samples)
    if half_width is None:
        half_width = min(16, n_taps // 2)
    if half_width < 1:
        raise ValueError(f"half_width must be >= 1, got {half_width}")
    n = torch.arange(n_taps, dtype=delay_samples.dtype, device=delay_samples.device)
    t = n - delay_samples[..., None]
    x = t / half_width
    inside = x.abs() < 1.0
    s2 = torch.where(inside, 1.0 - x * x, torch.ones_like(x))  # safe for sqrt's gradient
    i0_beta = torch.special.i0(torch.tensor(beta, dtype=torch.float64)).item()
    w = (torch.special.i0(beta * torch.sqrt(s2)) - 1.0) / (i0_beta - 1.0)
    w = torch.where(inside, w, torch.zeros_like(w))
    return torch.sinc(t) * w


# ----------------------------------------------------------------------------------------------
# low-pass / shelving


def first_order_lowpass(corner_hz: Tensor, freqs, sample_rate: float) -> Tensor:
    """One-pole/one-zero digital low-pass from the bilinear transform with pre-warping.

    The analog prototype ``ω_c/(s + ω_c)`` is mapped with ``s = 2fs (1 − z⁻¹)/(1 + z⁻¹)`` after
    pre-warping ``ω_c = 2fs·tan(πf_c/fs)``, which gives, with ``K = tan(πf_c/fs)``,
    ``H(z) = K(1 + z⁻¹) / ((1 + K) + (K − 1) z⁻¹)``: exactly 1 at DC, exactly ``1/√2``
    (−3.01 dB) at ``f_c``, 0 at ``fs/2``; pole ``(1 − K)/(1 + K)`` inside the unit circle for
    ``0 < f_c < fs/2``.

    Args:
        corner_hz: (...) −3 dB corner ``f_c`` in Hz, ``0 < f_c < fs/2``.
        freqs: (F,) frequencies in Hz.
        sample_rate: ``fs`` in Hz.

    Returns:
        (..., F) complex response.
    """
    corner_hz = _as_tensor(corner_hz)
    k = torch.tan(math.pi * corner_hz / float(sample_rate))
    b = torch.stack([k, k], dim=-1)
    a = torch.stack([1.0 + k, k - 1.0], dim=-1)
    return iir_response(b, a, freqs, sample_rate)


def head_shadow_response(
    incidence: Tensor,
    freqs,
    head_radius: float = 0.0875,
    speed_of_sound: float = 343.0,
    alpha_min: float = 0.1,
    theta_min: float = 5.0 * math.pi / 6.0,
) -> Tensor:
    """Brown & Duda (1998) one-pole/one-zero head-shadow model (continuous time).

    ``H(ω, θ) = (1 + jα(θ)ω/(2ω₀)) / (1 + jω/(2ω₀))`` with ``ω₀ = c/a`` and
    ``α(θ) = (1 + α_min/2) + (1 − α_min/2)·cos(πθ/θ_min)``: unity at DC, ``α`` at high frequency
    (+6 dB for a source on the ear's side, ``α(0) = 2``; ``α_min`` at ``θ = θ_min``). This is the
    analog response at ``s = j2πf``; realise it digitally with :func:`fir_from_response` or a
    bilinear transform. The model's companion interaural delay is not included (compose it with
    :func:`fractional_delay_response`).

    Args:
        incidence: (...) angle θ between the ear axis (outward) and the source direction, radians,
            in [0, π].
        freqs: (F,) frequencies in Hz.
        head_radius: sphere radius ``a`` in m.
        speed_of_sound: ``c`` in m/s.
        alpha_min: high-frequency gain at ``θ_min`` (linear).
        theta_min: angle of deepest shadow, radians (150° in the paper).

    Returns:
        (..., F) complex response.
    """
    incidence = _as_tensor(incidence)
    f = _grid(freqs, incidence)
    alpha = (1.0 + alpha_min / 2.0) + (1.0 - alpha_min / 2.0) * torch.cos(math.pi * incidence / theta_min)
    x = _TWO_PI * f * head_radius / (2.0 * speed_of_sound)  # ω/(2ω₀), (F,)
    num = torch.complex(torch.ones_like(alpha[..., None] * x), alpha[..., None] * x)
    den = torch.complex(torch.ones_like(x), x)
    return num / den


# ----------------------------------------------------------------------------------------------
# all-pass


def _denominator_phase(a1: Tensor, a2: Tensor, omega: Tensor) -> Tensor:
    """``arg(1 + a1 e^{−jω} + a2 e^{−2jω})`` for (..., K) coefficients and (F,) ω → (..., K, F)."""
    a1 = a1[..., None]
    a2 = a2[..., None]
    re = 1.0 + a1 * torch.cos(omega) + a2 * torch.cos(2.0 * omega)
    im = -(a1 * torch.sin(omega) + a2 * torch.sin(2.0 * omega))
    return torch.atan2(im, re)


def allpass_response(radius: Tensor, angle: Tensor, freqs, sample_rate: float) -> Tensor:
    """Cascade of K second-order all-pass sections with complex-conjugate poles ``r e^{±jθ}``.

    Each section is ``A_k(z) = (r² − 2r cosθ z⁻¹ + z⁻²) / (1 − 2r cosθ z⁻¹ + r² z⁻²)``. Its
    numerator is the mirrored denominator, so on the unit circle ``A_k = e^{−2jω}·D̄/D`` and
    ``∠A_k = −2ω − 2·arg D(e^{jω})``. The response is built from the summed phase as
    ``cos + j sin``, so ``|A| = 1`` holds to rounding (not just approximately), for any batch.
    The group delay of a section peaks near ``ω = θ``, higher and narrower as ``r → 1``.

    Args:
        radius: (..., K) pole radii ``r`` in [0, 1) (stable); see :func:`pole_radius`.
        angle: (..., K) pole angles ``θ`` in radians (``θ·fs/(2π)`` is the pole frequency in Hz);
            broadcast against ``radius``.
        freqs: (F,) frequencies in Hz.
        sample_rate: ``fs`` in Hz.

    Returns:
        (..., F) complex response of the cascade (K = 0 gives all ones).
    """
    radius, angle = _common(_as_tensor(radius), _as_tensor(angle))
    radius, angle = torch.broadcast_tensors(radius, angle)
    omega = _TWO_PI * _grid(freqs, radius) / float(sample_rate)
    a1 = -2.0 * radius * torch.cos(angle)
    a2 = radius * radius
    phase = (-2.0 * omega - 2.0 * _denominator_phase(a1, a2, omega)).sum(dim=-2)
    return _unit_phasor(phase)


def first_order_allpass_response(coefficient: Tensor, freqs, sample_rate: float) -> Tensor:
    """Cascade of K first-order all-pass sections ``A_k(z) = (c + z⁻¹)/(1 + c z⁻¹)``.

    Real pole at ``−c``; ``∠A_k = −ω − 2·arg(1 + c e^{−jω})`` and ``|A| = 1`` to rounding (built
    as ``cos + j sin`` of the summed phase). ``c > 0`` delays low frequencies, ``c < 0`` high ones.

    Args:
        coefficient: (..., K) section coefficients ``c`` in (−1, 1) (stable).
        freqs: (F,) frequencies in Hz.
        sample_rate: ``fs`` in Hz.

    Returns:
        (..., F) complex response of the cascade.
    """
    c = _as_tensor(coefficient)
    omega = _TWO_PI * _grid(freqs, c) / float(sample_rate)
    phase = (-omega - 2.0 * _denominator_phase(c, torch.zeros_like(c), omega)).sum(dim=-2)
    return _unit_phasor(phase)


# ----------------------------------------------------------------------------------------------
# parameter maps (unconstrained ↔ physical)


def pole_radius(raw: Tensor, max_radius: float = 0.999) -> Tensor:
    """Pole radius ``r = max_radius · sigmoid(raw)`` ∈ [0, max_radius], so ``|pole| < 1`` always.

    Saturates gracefully: ``raw = ±∞`` gives exactly ``max_radius`` / 0, never ≥ 1.

    Args:
        raw: (...) unconstrained real.
        max_radius: upper bound, 0 < max_radius < 1.
    """
    if not 0.0 < max_radius < 1.0:
        raise ValueError(f"max_radius must be in (0, 1), got {max_radius}")
    return max_radius * torch.sigmoid(raw)


def pole_radius_inverse(radius: Tensor, max_radius: float = 0.999) -> Tensor:
    """Inverse of :func:`pole_radius`: ``logit(r / max_radius)`` for ``0 < r < max_radius``."""
    return torch.logit(_as_tensor(radius) / max_radius)


def positive(raw: Tensor) -> Tensor:
    """Strictly positive value ``softplus(raw) = log(1 + e^{raw})`` (≈ raw for large raw)."""
    return torch.nn.functional.softplus(raw)


def positive_inverse(value: Tensor) -> Tensor:
    """Inverse of :func:`positive` for ``value > 0``: ``log(e^{value} − 1)``, computed stably.

    Above 20 it returns ``value`` itself, mirroring ``softplus``'s linear branch (relative
    difference < e^{−20}), so the round trip is exact there too.
    """
    value = _as_tensor(value)
    return torch.where(value > 20.0, value, value + torch.log(-torch.expm1(-value)))


def bounded(raw: Tensor, low: float, high: float) -> Tensor:
    """Linear sigmoid map ``low + (high − low)·sigmoid(raw)`` into ``[low, high]``."""
    return low + (high - low) * torch.sigmoid(raw)


def bounded_inverse(value: Tensor, low: float, high: float) -> Tensor:
    """Inverse of :func:`bounded`: ``logit((value − low)/(high − low))`` for ``low < value < high``."""
    return torch.logit((_as_tensor(value) - low) / (high - low))


def corner_hz(raw: Tensor, low: float, high: float) -> Tensor:
    """Log-frequency sigmoid map ``f = low·(high/low)^{sigmoid(raw)}`` into ``[low, high]`` Hz.

    Equal steps in ``raw`` near 0 are equal steps in octaves, which matches how corner
    frequencies are perceived and conditions the optimization evenly across the band.

    Args:
        raw: (...) unconstrained real.
        low, high: band edges in Hz, ``0 < low < high``.
    """
    if not 0.0 < low < high:
        raise ValueError(f"need 0 < low < high, got low={low}, high={high}")
    log_low = math.log(low)
    return torch.exp(log_low + (math.log(high) - log_low) * torch.sigmoid(raw))


def corner_hz_inverse(freq_hz: Tensor, low: float, high: float) -> Tensor:
    """Inverse of :func:`corner_hz`: ``logit(log(f/low)/log(high/low))`` for ``low < f < high``."""
    return torch.logit(torch.log(_as_tensor(freq_hz) / low) / math.log(high / low))


def db_to_gain(db: Tensor) -> Tensor:
    """Linear amplitude gain ``10^{dB/20}`` (> 0); dB itself is unconstrained."""
    return torch.pow(10.0, _as_tensor(db) / 20.0)


def gain_to_db(gain: Tensor) -> Tensor:
    """Inverse of :func:`db_to_gain`: ``20·log10|gain|`` in dB."""
    return 20.0 * torch.log10(_as_tensor(gain).abs())


# ----------------------------------------------------------------------------------------------
# modules


_EDGE = 1e-6  # initial values on a bound are moved this fraction of the range inside it


def _init_fraction(value, low: float, high: float, name: str, dtype, device) -> Tensor:
    """``(value − low)/(high − low)`` for a physical initial value, validated and kept off the bounds."""
    value = torch.as_tensor(value, dtype=torch.float64)
    if not bool(torch.all((value >= low) & (value <= high))):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value.tolist()}")
    frac = ((value - low) / (high - low)).clamp(_EDGE, 1.0 - _EDGE)
    return frac.to(dtype=dtype or torch.get_default_dtype(), device=device)


class FIRFilter(nn.Module):
    """Free FIR filters; the taps are the parameters themselves (identity map, dimensionless).

    Args:
        n_taps: taps per filter T.
        shape: leading (batch/channel) shape of the filter bank, e.g. ``(channel, driver)``.
        sample_rate: ``fs`` in Hz.
        delay_samples: initialisation, a unit impulse at this tap (a pure delay), in [0, T).
        dtype, device: of the parameters.

    Parameters:
        taps: (*shape, T).

    ``forward(freqs)`` with freqs (F,) Hz → (*shape, F) complex (:func:`fir_response`).
    """

    def __init__(
        self,
        n_taps: int,
        shape: Sequence[int] = (),
        sample_rate: float = 48000.0,
        delay_samples: int = 0,
        dtype=None,
        device=None,
    ):
        super().__init__()
        if not 0 <= delay_samples < n_taps:
            raise ValueError(f"delay_samples must be in [0, {n_taps}), got {delay_samples}")
        taps = torch.zeros(*shape, n_taps, dtype=dtype, device=device)
        taps[..., delay_samples] = 1.0
        self.taps = nn.Parameter(taps)
        self.sample_rate = float(sample_rate)

    @classmethod
    def from_taps(cls, taps: Tensor, sample_rate: float = 48000.0) -> FIRFilter:
        """A filter bank initialised with given taps (*shape, T) (copied)."""
        taps = _as_tensor(taps)
        module = cls(taps.shape[-1], tuple(taps.shape[:-1]), sample_rate, dtype=taps.dtype, device=taps.device)
        with torch.no_grad():
            module.taps.copy_(taps)
        return module

    def forward(self, freqs) -> Tensor:
        return fir_response(self.taps, freqs, self.sample_rate)

    def physical(self) -> dict[str, Tensor]:
        """``{"taps": (*shape, T)}``."""
        return {"taps": self.taps}

    def extra_repr(self) -> str:
        return f"shape={tuple(self.taps.shape)}, sample_rate={self.sample_rate}"


class FractionalDelay(nn.Module):
    """Delays ``τ = max_delay_s · sigmoid(raw)`` ∈ (0, max_delay_s) seconds (:func:`bounded`).

    Args:
        initial_delay_s: float or (...) tensor of initial delays in seconds, in [0, max_delay_s]
            (values on a bound start 10⁻⁶ of the range inside it).
        max_delay_s: upper bound in seconds (> 0).
        dtype, device: of the parameters.

    Parameters:
        raw_delay: (...) unconstrained.

    ``forward(freqs)`` with freqs (F,) Hz → (..., F) complex ``e^{−j2πfτ}``.
    """

    def __init__(self, initial_delay_s, max_delay_s: float, dtype=None, device=None):
        super().__init__()
        if max_delay_s <= 0:
            raise ValueError(f"max_delay_s must be > 0, got {max_delay_s}")
        self.max_delay_s = float(max_delay_s)
        frac = _init_fraction(initial_delay_s, 0.0, self.max_delay_s, "initial_delay_s", dtype, device)
        self.raw_delay = nn.Parameter(torch.logit(frac))

    def delay_s(self) -> Tensor:
        """(...) delays in seconds."""
        return bounded(self.raw_delay, 0.0, self.max_delay_s)

    def forward(self, freqs) -> Tensor:
        return fractional_delay_response(self.delay_s(), freqs)

    def fir(self, n_taps: int, sample_rate: float, half_width: int | None = None) -> Tensor:
        """(..., n_taps) windowed-sinc FIR realisation (:func:`fractional_delay_fir`) at ``sample_rate``."""
        return fractional_delay_fir(self.delay_s() * sample_rate, n_taps, half_width)

    def physical(self) -> dict[str, Tensor]:
        """``{"delay_s": (...) seconds}``."""
        return {"delay_s": self.delay_s()}

    def extra_repr(self) -> str:
        return f"shape={tuple(self.raw_delay.shape)}, max_delay_s={self.max_delay_s}"


class AllPass(nn.Module):
    """Cascade of second-order all-passes with poles ``r e^{±jθ}`` (:func:`allpass_response`).

    Maps: ``r = max_radius · sigmoid(raw_radius)`` (:func:`pole_radius`, so ``r < 1`` — always
    stable) and ``θ = π · sigmoid(raw_angle)`` ∈ (0, π) (:func:`bounded`).

    Args:
        num_sections: K.
        initial_radius: float or (*shape, K) pole radii in [0, max_radius] (bounds nudged inside).
        initial_angle: float or (*shape, K) pole angles in [0, π] radians; default spread evenly,
            ``θ_k = π(k + ½)/K``.
        shape: leading (batch/channel) shape.
        max_radius: pole-radius bound, < 1.
        sample_rate: ``fs`` in Hz.
        dtype, device: of the parameters.

    Parameters:
        raw_radius, raw_angle: (*shape, K) unconstrained.

    ``forward(freqs)`` with freqs (F,) Hz → (*shape, F) complex, ``|A| = 1``.
    """

    def __init__(
        self,
        num_sections: int,
        initial_radius=0.5,
        initial_angle=None,
        shape: Sequence[int] = (),
        max_radius: float = 0.999,
        sample_rate: float = 48000.0,
        dtype=None,
        device=None,
    ):
        super().__init__()
        if not 0.0 < max_radius < 1.0:
            raise ValueError(f"max_radius must be in (0, 1), got {max_radius}")
        self.max_radius = float(max_radius)
        self.sample_rate = float(sample_rate)
        full = (*shape, num_sections)
        if initial_angle is None:
            initial_angle = math.pi * (torch.arange(num_sections, dtype=torch.float64) + 0.5) / max(num_sections, 1)
        r = _init_fraction(initial_radius, 0.0, self.max_radius, "initial_radius", dtype, device)
        t = _init_fraction(initial_angle, 0.0, math.pi, "initial_angle", dtype, device)
        self.raw_radius = nn.Parameter(torch.logit(r).expand(full).clone())
        self.raw_angle = nn.Parameter(torch.logit(t).expand(full).clone())

    def radius(self) -> Tensor:
        """(*shape, K) pole radii in [0, max_radius]."""
        return pole_radius(self.raw_radius, self.max_radius)

    def angle(self) -> Tensor:
        """(*shape, K) pole angles in (0, π) radians."""
        return bounded(self.raw_angle, 0.0, math.pi)

    def forward(self, freqs) -> Tensor:
        return allpass_response(self.radius(), self.angle(), freqs, self.sample_rate)

    def physical(self) -> dict[str, Tensor]:
        """``{"radius": (*shape, K), "angle": (*shape, K) rad, "pole_hz": (*shape, K) Hz}``."""
        angle = self.angle()
        return {"radius": self.radius(), "angle": angle, "pole_hz": angle * self.sample_rate / _TWO_PI}

    def extra_repr(self) -> str:
        return f"shape={tuple(self.raw_radius.shape)}, max_radius={self.max_radius}, sample_rate={self.sample_rate}"


class LowPass(nn.Module):
    """First-order bilinear low-pass (:func:`first_order_lowpass`) with corner in [low, high] Hz.

    Map: ``f_c = low·(high/low)^{sigmoid(raw_corner)}`` (:func:`corner_hz`, log-frequency).

    Args:
        initial_corner_hz: float or (...) tensor, in [low, high] Hz (bounds nudged inside).
        low, high: corner range in Hz, ``0 < low < high < sample_rate/2``.
        sample_rate: ``fs`` in Hz.
        dtype, device: of the parameters.

    Parameters:
        raw_corner: (...) unconstrained.

    ``forward(freqs)`` with freqs (F,) Hz → (..., F) complex.
    """

    def __init__(
        self,
        initial_corner_hz,
        low: float = 100.0,
        high: float = 20000.0,
        sample_rate: float = 48000.0,
        dtype=None,
        device=None,
    ):
        super().__init__()
        if not 0.0 < low < high < sample_rate / 2.0:
            raise ValueError(f"need 0 < low < high < fs/2, got low={low}, high={high}, fs={sample_rate}")
        self.low, self.high, self.sample_rate = float(low), float(high), float(sample_rate)
        value = torch.as_tensor(initial_corner_hz, dtype=torch.float64)
        if not bool(torch.all((value >= low) & (value <= high))):
            raise ValueError(f"initial_corner_hz must lie in [{low}, {high}], got {value.tolist()}")
        frac = (torch.log(value / low) / math.log(high / low)).clamp(_EDGE, 1.0 - _EDGE)
        self.raw_corner = nn.Parameter(torch.logit(frac).to(dtype=dtype or torch.get_default_dtype(), device=device))

    def corner_hz(self) -> Tensor:
        """(...) corner frequencies in Hz."""
        return corner_hz(self.raw_corner, self.low, self.high)

    def forward(self, freqs) -> Tensor:
        return first_order_lowpass(self.corner_hz(), freqs, self.sample_rate)

    def physical(self) -> dict[str, Tensor]:
        """``{"corner_hz": (...) Hz}``."""
        return {"corner_hz": self.corner_hz()}

    def extra_repr(self) -> str:
        shape = tuple(self.raw_corner.shape)
        return f"shape={shape}, range=[{self.low}, {self.high}] Hz, sample_rate={self.sample_rate}"


class Gain(nn.Module):
    """Frequency-independent positive gain; the parameter is the gain in dB (unconstrained).

    Map: ``g = 10^{gain_db/20}`` (:func:`db_to_gain`).

    Args:
        initial_db: float or (...) tensor, dB.
        dtype, device: of the parameters.

    Parameters:
        gain_db: (...) dB.

    ``forward(freqs)`` with freqs (F,) Hz → (..., F) complex, constant over frequency.
    """

    def __init__(self, initial_db=0.0, dtype=None, device=None):
        super().__init__()
        initial = torch.as_tensor(initial_db, dtype=dtype or torch.get_default_dtype(), device=device)
        self.gain_db = nn.Parameter(initial.clone())

    def gain(self) -> Tensor:
        """(...) linear gain (> 0)."""
        return db_to_gain(self.gain_db)

    def forward(self, freqs) -> Tensor:
        f = _grid(freqs, self.gain_db)
        g = self.gain()[..., None] * torch.ones_like(f)
        return torch.complex(g, torch.zeros_like(g))

    def physical(self) -> dict[str, Tensor]:
        """``{"gain_db": (...) dB, "gain": (...) linear}``."""
        return {"gain_db": self.gain_db, "gain": self.gain()}

    def extra_repr(self) -> str:
        return f"shape={tuple(self.gain_db.shape)}"
