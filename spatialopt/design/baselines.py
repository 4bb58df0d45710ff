"""Closed-form classic designs: the baselines every report compares against (DESIGN.md §5).

* Crosstalk cancellation (CTC): regularised least squares at the nominal point (Kirkeby,
  Nelson, Rubak, Farina, "fast deconvolution") — :func:`kirkeby_ctc` — and its multi-point
  version over a listening zone — :func:`ls_zone_ctc`. Quality: :func:`separation_db`.
* Centre-channel beamformers: :func:`delay_and_sum` and a regularised least-squares fit of the
  horizontal pattern to a target — :func:`ls_beamformer` with :func:`centre_beam_target`.
  Quality: :func:`beam_pattern_db`, :func:`null_depth_db`, :func:`mainlobe_deviation_db`,
  :func:`directivity_index_db`, :func:`white_noise_gain_db`.
* Crossovers: :func:`band_mask` — every design here accepts a ``mask`` (F, D) and gives a driver
  no energy where its mask is 0.

Conventions (DESIGN.md §3). Frequencies in Hz, delays in s, angles in radians, time convention
e^{+jωt} (a delay τ is e^{−jωτ}). Transfer tensors are complex (complex128 from the scene; the
functions keep the dtype they are given): ``H`` (freq, point, ear, driver) with ears (left,
right), Pa per unit driver input; far-field patterns ``G`` (freq, direction, driver), m·Pa per
unit driver input, phase referenced to the scene origin (a unit monopole there gives 1/(4π)).
CTC filters ``C`` (freq, driver, 2) with columns (C_l, C_r); beamformers ``B`` (freq, driver);
both dimensionless driver-input gains per unit channel input. Every function is batched over
frequency (one batched linear solve; no Python loop over frequencies) and differentiable.

Regularisation is *relative* by default, so that a β means the same on any scene scale: the
absolute Tikhonov weight is λ(f) = β(f) · s(f), with s(f) the mean, over the fitted responses
(ears for CTC, weighted directions for the beam), of Σ_d |A_{·d}(f)|² — the incoherent power sum of all
drivers at unit input (masked drivers weighted by m_d²). For CTC at one point s = tr(HᴴH)/2, the mean eigenvalue of the 2×2
HHᴴ; β = 10⁻² thus regularises the singular values below −20 dB of that mean.

Crossovers as diagonal regularisation: a mask m_d(f) ∈ [0, 1] turns the penalty λ‖x‖² into
Σ_d λ/m_d(f)² |x_d|² (infinite where m_d = 0). It is solved exactly by the change of variables
x = M x', A' = A M with M = diag(m): an ordinary Tikhonov problem in x', and a driver with
m_d = 0 gets exactly zero.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "band_mask",
    "crossover_ceiling_db",
    "kirkeby_regularization",
    "kirkeby_ctc",
    "zone_target_delays",
    "ls_zone_ctc",
    "separation_db",
    "band_average",
    "separation_summary",
    "look_response",
    "delay_and_sum",
    "centre_beam_target",
    "ls_beamformer",
    "white_noise_gain_db",
    "beam_pattern_db",
    "null_depth_db",
    "mainlobe_deviation_db",
    "directivity_index_db",
]

FOUR_PI = 4 * math.pi


# ----------------------------------------------------------------------------------- helpers


def _raised_cosine(x: Tensor) -> Tensor:
    """0 for x ≤ 0, 1 for x ≥ 1, sin²(πx/2) in between (C¹-smooth)."""
    return torch.sin(0.5 * math.pi * x.clamp(0.0, 1.0)) ** 2


def _octaves_above(freqs: Tensor, edge: float) -> Tensor:
    """log2(f / edge) with f = 0 → −inf (no warning)."""
    f = freqs.to(torch.float64)
    return torch.where(f > 0, torch.log2(f.clamp_min(1e-300) / edge), torch.full_like(f, -math.inf))


def _db10(power: Tensor) -> Tensor:
    """10·log10 of a power, floored at the smallest normal number (no −inf)."""
    return 10 * torch.log10(power.clamp_min(torch.finfo(power.dtype).tiny))


def _as_freq_vector(value, n_f: int, like: Tensor) -> Tensor:
    """A scalar or (F,) value as a real (F,) tensor on ``like``'s device (float64 or ``like``'s real dtype)."""
    real = like.real.dtype if like.is_complex() else like.dtype
    t = torch.as_tensor(value, dtype=real, device=like.device)
    if t.dim() == 0:
        return t.expand(n_f)
    if t.shape != (n_f,):
        raise ValueError(f"expected a scalar or a ({n_f},) tensor, got shape {tuple(t.shape)}")
    return t


def _delay_phase(freqs: Tensor, delay_s: float, like: Tensor) -> Tensor:
    """(F,) e^{−jωτ} in ``like``'s complex dtype."""
    omega = 2 * math.pi * freqs.to(torch.float64, copy=False).to(like.device)
    return torch.exp(-1j * omega * float(delay_s)).to(like.dtype)


def _masked(A: Tensor, mask: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """A' = A·diag(m) for A (F, M, D) and mask (F, D); returns (A', m or None)."""
    if mask is None:
        return A, None
    n_f, _, n_d = A.shape
    m = mask.to(device=A.device, dtype=A.real.dtype)
    if m.shape != (n_f, n_d):
        raise ValueError(f"mask must be ({n_f}, {n_d}), got {tuple(m.shape)}")
    return A * m[:, None, :].to(A.dtype), m


def _lambda(beta, scale: Tensor, relative: bool, like: Tensor) -> Tensor:
    """(F,) absolute Tikhonov weight: β·scale (relative) or β; 1 where a relative scale is 0.

    A zero scale means every driver is masked off (A' = 0), where X = 0 for any λ > 0.
    """
    beta_f = _as_freq_vector(beta, scale.shape[0], like)
    if not relative:
        return beta_f
    return torch.where(scale > 0, beta_f * scale, torch.ones_like(beta_f))


def _tikhonov(A: Tensor, Y: Tensor, lam: Tensor, m: Tensor | None, form: str = "auto") -> Tensor:
    """Batched Tikhonov: min_X ‖A X − Y‖²_F + λ Σ_d |X_d|²/m_d² per frequency.

    Args:
        A: (F, M, D) complex, rows already weighted (√w) and columns already masked (A' = A·diag(m)).
        Y: (F, M, K) complex targets, rows weighted the same way.
        lam: (F,) absolute λ ≥ 0.
        m: (F, D) mask or None; the solution is X = diag(m) X'.
        form: "normal" → D×D solve (A'ᴴA' + λI)⁻¹A'ᴴY; "push" → M×M solve A'ᴴ(A'A'ᴴ + λI)⁻¹Y
            (push-through identity); "auto" → the smaller one.

    Returns:
        (F, D, K), same dtype as A.
    """
    n_m, n_d = A.shape[-2:]
    lam = lam.to(A.dtype)[:, None, None]
    if form == "auto":
        form = "normal" if n_d <= n_m else "push"
    Ah = A.mH
    if form == "normal":
        X = torch.linalg.solve(Ah @ A + lam * torch.eye(n_d, dtype=A.dtype, device=A.device), Ah @ Y)
    elif form == "push":
        X = Ah @ torch.linalg.solve(A @ Ah + lam * torch.eye(n_m, dtype=A.dtype, device=A.device), Y)
    else:
        raise ValueError(f"form must be 'auto', 'normal' or 'push', got {form!r}")
    return X if m is None else X * m[:, :, None].to(X.dtype)


# ---------------------------------------------------------------------------------- crossovers


def band_mask(freqs: Tensor, driver_bands: Tensor, transition_octaves: float = 1.0 / 3.0) -> Tensor:
    """Smooth per-driver pass bands (crossovers), 0 outside each driver's band.

    The mask of driver d is 1 on [lo·2^t, hi·2^−t] and 0 outside [lo, hi] (t = transition
    octaves), with raised-cosine (sin²) ramps in log frequency between: the transition lies
    *inside* the band, so a driver gets nothing outside its ``band_hz``. A lower edge ≤ 0 means
    no lower roll-off; f = 0 is outside any band with lo > 0. A band narrower than 2t octaves
    peaks below 1.

    Args:
        freqs: (F,) Hz.
        driver_bands: (D, 2) Hz, (lo, hi) per driver.
        transition_octaves: t > 0, width of each ramp in octaves.

    Returns:
        (F, D) float64 in [0, 1].
    """
    if transition_octaves <= 0:
        raise ValueError("transition_octaves must be positive")
    bands = torch.as_tensor(driver_bands, dtype=torch.float64).cpu()
    freqs = freqs.to(torch.float64)
    cols = []
    for lo, hi in bands.tolist():  # loop over drivers only
        up = _raised_cosine(_octaves_above(freqs, lo) / transition_octaves) if lo > 0 else torch.ones_like(freqs)
        down = _raised_cosine(-_octaves_above(freqs, hi) / transition_octaves) if math.isfinite(hi) else torch.ones_like(freqs)
        cols.append(up * down)
    return torch.stack(cols, dim=-1)


def crossover_ceiling_db(freqs: Tensor, driver_bands: Tensor, order: int = 8, floor_db: float = -50.0,
                         min_edge_hz: float = 0.0) -> Tensor:
    """Out-of-band ceiling of each driver's feed: a Linkwitz–Riley crossover's magnitude.

    Outside its ``band_hz`` a driver's level (dB re its in-band rms) must stay below
    ``max(floor_db, 20·log10|H_LR(f)|)``, where ``H_LR`` is the band-pass made of an LR high-pass
    at ``lo`` and an LR low-pass at ``hi`` of the given order (|H| = 1/(1 + (f/f_c)^n) for the
    low-pass: −6 dB at the edge, 6·n dB per octave beyond it). Inside the band there is no
    ceiling (+inf), nor below a lower edge under ``min_edge_hz`` (an FIR of T taps cannot roll
    off below about 2·fs/T; the driver's own mechanics must) nor above an infinite upper edge.

    Args:
        freqs: (F,) Hz. driver_bands: (D, 2) Hz. order: even LR order n ≥ 2 (8 = 48 dB/octave).
        floor_db: deepest ceiling, dB. min_edge_hz: lower edges below this are not constrained.

    Returns:
        (F, D) float64 ceiling in dB (+inf where unconstrained).
    """
    if order < 2 or order % 2:
        raise ValueError("order must be an even integer >= 2 (Linkwitz–Riley)")
    bands = torch.as_tensor(driver_bands, dtype=torch.float64).cpu()
    f = freqs.to(torch.float64).cpu()
    cols = []
    for lo, hi in bands.tolist():  # loop over drivers only
        ceiling = torch.full_like(f, math.inf)
        if lo > 0 and lo >= min_edge_hz:
            below = (f < lo) & (f > 0)
            hp_db = -20 * torch.log10(1 + (lo / f[below]) ** order)
            ceiling[below] = hp_db.clamp_min(floor_db)
            ceiling[f == 0] = floor_db
        if math.isfinite(hi):
            above = f > hi
            ceiling[above] = (-20 * torch.log10(1 + (f[above] / hi) ** order)).clamp_min(floor_db)
        cols.append(ceiling)
    return torch.stack(cols, dim=-1)


# ------------------------------------------------------------------------------------------ CTC


def kirkeby_regularization(
    freqs: Tensor,
    band_hz: Sequence[float] = (150.0, 16000.0),
    inside: float = 1e-3,
    outside: float = 1.0,
    transition_octaves: float = 1.0,
) -> Tensor:
    """Frequency-dependent relative regularisation β(f) for :func:`kirkeby_ctc` / :func:`ls_zone_ctc`.

    β = ``inside`` on ``band_hz``, ``outside`` below lo·2^−t and above hi·2^t (t =
    ``transition_octaves``), and in between log β follows a raised-cosine ramp in log frequency
    (the transitions lie outside the band). f = 0 gets ``outside``.

    β is dimensionless: the CTC functions scale it per frequency by the mean eigenvalue of HHᴴ
    (tr(HᴴH)/2), so it is independent of the scene's level. ``inside`` = 10⁻³ keeps the filter
    effort moderate; ``outside`` = 1 makes the design a gentle "half inverse" where CTC is not
    wanted.

    Args:
        freqs: (F,) Hz.
        band_hz: (lo, hi) Hz where cancellation is wanted.
        inside, outside: positive relative β values.
        transition_octaves: ramp width in octaves (> 0).

    Returns:
        (F,) float64.
    """
    if inside <= 0 or outside <= 0 or transition_octaves <= 0:
        raise ValueError("inside, outside and transition_octaves must be positive")
    lo, hi = float(band_hz[0]), float(band_hz[1])
    freqs = freqs.to(torch.float64)
    below = _raised_cosine(1.0 + _octaves_above(freqs, lo) / transition_octaves) if lo > 0 else torch.ones_like(freqs)
    above = _raised_cosine(1.0 - _octaves_above(freqs, hi) / transition_octaves)
    in_band = below * above  # 1 in band, 0 far outside
    return torch.exp(math.log(outside) + (math.log(inside) - math.log(outside)) * in_band)


def kirkeby_ctc(
    H: Tensor,
    beta,
    delay_s: float,
    freqs: Tensor,
    mask: Tensor | None = None,
    relative: bool = True,
    form: str = "auto",
) -> Tensor:
    """Regularised least-squares CTC at one listener point (Kirkeby, Nelson, Rubak, Farina).

    C = (HᴴH + λI)⁻¹ Hᴴ · e^{−jωm}: columns (C_l, C_r), C_l delivers the input to the left ear
    only, C_r to the right ear only (target ear response: identity times the modelling delay
    m = ``delay_s``). It minimises ‖H C − e^{−jωm} I‖²_F + λ‖C‖²_F per frequency. Computed with
    the push-through identity C = Hᴴ(HHᴴ + λI)⁻¹ e^{−jωm} (a 2×2 solve) when D > 2.

    Args:
        H: (F, 2, D) complex ear transfer at the point (ears left, right), Pa per unit input.
        beta: scalar or (F,) regularisation; relative (λ = β·tr(H'ᴴH')/2 with H' the masked H,
            see :func:`kirkeby_regularization`) or, with ``relative=False``, absolute λ in (Pa/unit)².
        delay_s: modelling delay m, seconds. H includes the propagation delay to the ears, so
            for a causal FIR m should exceed it (e.g. distance/c plus a few ms of pre-ringing).
        freqs: (F,) Hz.
        mask: (F, D) crossover mask (:func:`band_mask`) or None; driver d gets the penalty λ/m_d².
        relative: see ``beta``.
        form: "auto" (push-through when D > 2), "normal" or "push" — the same result.

    Returns:
        C: (F, D, 2) complex, same dtype as H.
    """
    if H.dim() != 3 or H.shape[1] != 2:
        raise ValueError(f"H must be (F, 2, D), got {tuple(H.shape)}")
    target = _delay_phase(freqs, delay_s, H)[:, None, None] * torch.eye(2, dtype=H.dtype, device=H.device)
    A, m = _masked(H, mask)
    lam = _lambda(beta, A.abs().square().sum(dim=(-2, -1)) / 2, relative, H)
    return _tikhonov(A, target, lam, m, form)


def zone_target_delays(
    points: Tensor,
    nominal_index: int,
    delay_s: float,
    speed_of_sound: float = 343.0,
    head_radius: float = 0.0875,
    ear_azimuth: float = math.pi / 2,
) -> Tensor:
    """Per-point, per-ear target delays for :func:`ls_zone_ctc`: the modelling delay plus each
    ear's extra straight-line distance from the device centre (scene origin) compared with the
    same ear at the nominal point.

    τ_{p,e} = m + (‖x_{p,e}‖ − ‖x_{nom,e}‖)/c, with ear positions x_{p,e} = head centre +
    ``head_radius`` · ear direction (head yaw included; DESIGN.md frame). A zone point further
    away then asks for a later arrival instead of forcing the nominal point's phase.

    Args:
        points: (P, 4) zone points (x, y, z [m], yaw [rad]). nominal_index: int.
        delay_s: modelling delay m, s. speed_of_sound: m/s.
        head_radius: m. ear_azimuth: radians (ears at ±ear_azimuth in the head frame).

    Returns:
        (P, 2) seconds, ears (left, right).
    """
    from spatialopt.acoustics.head import ear_directions

    pts = points.detach().to(device="cpu", dtype=torch.float64)
    ears = pts[:, None, :3] + head_radius * ear_directions(pts[:, 3], ear_azimuth)
    dist = torch.linalg.vector_norm(ears, dim=-1)  # (P, 2)
    return (delay_s + (dist - dist[nominal_index]) / speed_of_sound).to(points.device)


def ls_zone_ctc(
    H: Tensor,
    weights: Tensor,
    beta,
    delay_s,
    freqs: Tensor,
    mask: Tensor | None = None,
    relative: bool = True,
    contra_weight: float = 1.0,
) -> Tensor:
    """Multi-point least-squares CTC over a listening zone.

    Minimises, per frequency and for each column c ∈ (l, r) of C,
    Σ_p w̃_p (|E_{p,c,c} − e^{−jωτ_{p,c}}|² + κ|E_{p,c̄,c}|²) + λ‖C_c‖², with E_p = H_p C, c̄ the other
    ear, w̃ = w/Σw (scaling the weights changes nothing), κ = ``contra_weight`` and, when relative,
    λ = β·tr(Σ_p w̃_p H'_pᴴH'_p)/2 (independent of κ). With κ = 1 and one delay this is
    Σ_p w̃_p ‖H_p C − e^{−jωm} I‖²_F + λ‖C‖²_F, and with one point it equals :func:`kirkeby_ctc`.

    κ > 1 spends the design's freedom on crosstalk (what separation measures) rather than on
    the ipsilateral response, which across a zone cannot be matched in phase everywhere.
    Per-point delays (:func:`zone_target_delays`) remove the geometric part of that mismatch.
    Solved as a stacked Tikhonov problem over the 2P weighted rows (D×D solve, or push-through
    when D > 2P); κ ≠ 1 needs one solve per column.

    Args:
        H: (F, P, 2, D) complex ear transfer of the zone points, Pa per unit input.
        weights: (P,) non-negative point weights.
        beta: scalar or (F,), relative (default) or absolute as in :func:`kirkeby_ctc`.
        delay_s: seconds; scalar m, (P,) per point or (P, 2) per point and ear (τ_{p,e}).
        freqs: (F,) Hz.
        mask: (F, D) crossover mask or None.
        relative: see ``beta``.
        contra_weight: κ > 0, weight of the crosstalk terms relative to the ipsilateral ones.

    Returns:
        C: (F, D, 2) complex.
    """
    if H.dim() != 4 or H.shape[2] != 2:
        raise ValueError(f"H must be (F, P, 2, D), got {tuple(H.shape)}")
    if contra_weight <= 0:
        raise ValueError("contra_weight must be positive")
    n_f, n_p, _, n_d = H.shape
    real = H.real.dtype
    w = torch.as_tensor(weights, dtype=real, device=H.device)
    if w.shape != (n_p,) or bool((w < 0).any()) or float(w.sum()) <= 0:
        raise ValueError(f"weights must be ({n_p},) non-negative with a positive sum")
    w = w / w.sum()
    tau = torch.as_tensor(delay_s, dtype=torch.float64, device=H.device)
    tau = tau.reshape(1, 1).expand(n_p, 2) if tau.dim() == 0 else tau
    tau = tau[:, None].expand(n_p, 2) if tau.dim() == 1 else tau
    if tau.shape != (n_p, 2):
        raise ValueError(f"delay_s must be a scalar, ({n_p},) or ({n_p}, 2), got {tuple(tau.shape)}")
    omega = 2 * math.pi * freqs.to(device=H.device, dtype=torch.float64)
    ipsi = torch.exp(-1j * omega[:, None, None] * tau[None]).to(H.dtype)  # (F, P, 2)
    target = torch.diag_embed(ipsi)  # (F, P, ear, column)

    Hm, m = _masked(H.reshape(n_f, n_p * 2, n_d), mask)
    Hm = Hm.reshape(n_f, n_p, 2, n_d)
    lam = _lambda(beta, (Hm.abs().square().sum(dim=(-2, -1)) * w).sum(-1) / 2, relative, H)
    if contra_weight == 1.0:
        sw = torch.sqrt(w).to(H.dtype)[None, :, None, None]
        return _tikhonov((Hm * sw).reshape(n_f, 2 * n_p, n_d), (target * sw).reshape(n_f, 2 * n_p, 2), lam, m)
    cols = []
    for c in range(2):  # loop over the two CTC columns only
        row_w = torch.full((n_p, 2), contra_weight, dtype=real, device=H.device)
        row_w[:, c] = 1.0
        sw = torch.sqrt(w[:, None] * row_w).to(H.dtype)[None, :, :, None]  # (1, P, 2, 1)
        A = (Hm * sw).reshape(n_f, 2 * n_p, n_d)
        Y = (target[..., c : c + 1] * sw).reshape(n_f, 2 * n_p, 1)
        cols.append(_tikhonov(A, Y, lam, m))
    return torch.cat(cols, dim=-1)


def separation_db_per_side(H: Tensor, C: Tensor) -> Tensor:
    """Ipsi/contra power ratio of each side of a CTC design, per frequency and point.

    With ear responses E = H C: side 0 is C_l, 10·log10(|E_left,l|² / |E_right,l|²); side 1 is
    C_r, 10·log10(|E_right,r|² / |E_left,r|²). Powers are floored at the smallest normal float
    (finite result; 0 dB where both vanish). Differentiable (the training loss uses it).

    Args:
        H: (F, P, 2, D) or (F, 2, D) complex ear transfer (ears left, right).
        C: (F, D, 2) complex CTC filters (C_l, C_r).

    Returns:
        (F, P, 2) or (F, 2) float, dB (positive = the intended ear is louder).
    """
    squeeze = H.dim() == 3
    if squeeze:
        H = H[:, None]
    E = H @ C[:, None]  # (F, P, ear, channel)
    p = E.real.square() + E.imag.square()
    sep_l = _db10(p[..., 0, 0]) - _db10(p[..., 1, 0])
    sep_r = _db10(p[..., 1, 1]) - _db10(p[..., 0, 1])
    out = torch.stack([sep_l, sep_r], -1)
    return out[:, 0] if squeeze else out


def separation_db(H: Tensor, C: Tensor) -> Tensor:
    """Ipsi/contra power ratio of a CTC design, per frequency and point (metric ``ctc.separation_db``):
    the mean over the two sides of :func:`separation_db_per_side`.

    Args:
        H: (F, P, 2, D) or (F, 2, D). C: (F, D, 2).

    Returns:
        (F, P) or (F,) float, dB.
    """
    return separation_db_per_side(H, C).mean(-1)


def band_average(values: Tensor, freqs: Tensor, band_hz: Sequence[float]) -> Tensor:
    """Arithmetic mean over the frequency bins with lo ≤ f ≤ hi (frequency is dim 0).

    Args:
        values: (F, ...) e.g. dB values. freqs: (F,) Hz. band_hz: (lo, hi) Hz.

    Returns:
        (...) the band average.
    """
    sel = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    if not bool(sel.any()):
        raise ValueError(f"no frequency bin in the band {tuple(band_hz)} Hz")
    return values[sel.to(values.device)].mean(dim=0)


def separation_summary(H: Tensor, C: Tensor, freqs: Tensor, band_hz: Sequence[float], nominal_index: int) -> dict[str, float]:
    """``ctc.separation_db`` figures of a design: sweet_mean, zone_mean, zone_p10 (dB).

    Per point, the separation is band-averaged (:func:`band_average`); ``sweet_mean`` is the
    nominal point's value, ``zone_mean`` the mean and ``zone_p10`` the 10th percentile (linear
    interpolation) over the points (unweighted).

    Args:
        H: (F, P, 2, D). C: (F, D, 2). freqs: (F,) Hz. band_hz: (lo, hi) Hz. nominal_index: int.
    """
    per_point = band_average(separation_db(H, C), freqs, band_hz)  # (P,)
    return {
        "sweet_mean": float(per_point[nominal_index]),
        "zone_mean": float(per_point.mean()),
        "zone_p10": float(torch.quantile(per_point.to(torch.float64), 0.1)),
    }


# ------------------------------------------------------------------------------------ beamformers


def _default_ring(n_az: int, device=None) -> Tensor:
    """The scene's ring: ``n_az`` azimuths −π + 2πi/n_az (see ``acoustics.scene.ring_directions``)."""
    return torch.arange(n_az, dtype=torch.float64, device=device) * (2 * math.pi / n_az) - math.pi


def _wrap(angle: Tensor) -> Tensor:
    """Angles wrapped to (−π, π]."""
    return torch.remainder(angle + math.pi, 2 * math.pi) - math.pi


def _nearest_index(ring_az: Tensor, az: float) -> int:
    return int(torch.argmin(_wrap(ring_az.to(torch.float64) - az).abs()))


def look_response(G_ring: Tensor, ring_az: Tensor | None = None, look_az: float = 0.0) -> Tensor:
    """Far field of every driver in the look direction: the ring azimuth nearest ``look_az``.

    Args:
        G_ring: (F, A, D) complex far-field patterns on the horizontal ring, m·Pa per unit input.
        ring_az: (A,) radians (None: the scene's default ring −π + 2πi/A).
        look_az: radians (0 = +x, toward the listener).

    Returns:
        (F, D) complex.
    """
    if ring_az is None:
        ring_az = _default_ring(G_ring.shape[1])
    return G_ring[:, _nearest_index(ring_az, look_az)]


def delay_and_sum(G_ring: Tensor, ring_az: Tensor | None = None, look_az: float = 0.0, mask: Tensor | None = None) -> Tensor:
    """Delay-and-sum beamformer: phase-aligned, equal-magnitude driver weights.

    B_d = m_d e^{−j∠G_d(look)} / (4π Σ_d' m_d' |G_d'(look)|), so every driver's contribution
    arrives in phase in the look direction and the on-axis response is that of a unit monopole
    at the origin: Σ_d G_d(look) B_d = 1/(4π) (real, zero phase). ``mask`` (crossovers) scales
    the weights; where every driver is masked off, B = 0.

    Args:
        G_ring: (F, A, D) complex far-field patterns, m·Pa per unit input.
        ring_az: (A,) radians or None (default ring). look_az: radians (nearest ring azimuth used).
        mask: (F, D) or None.

    Returns:
        B: (F, D) complex, dimensionless.
    """
    g = look_response(G_ring, ring_az, look_az)
    mag = g.abs()
    m = torch.ones_like(mag) if mask is None else mask.to(device=mag.device, dtype=mag.dtype)
    phase = torch.where(mag > 0, g.conj() / mag.clamp_min(torch.finfo(mag.dtype).tiny), torch.ones_like(g))
    norm = FOUR_PI * (m * mag).sum(-1, keepdim=True)
    gain = torch.where(norm > 0, m / norm.clamp_min(torch.finfo(mag.dtype).tiny), torch.zeros_like(m))
    return gain.to(g.dtype) * phase


def centre_beam_target(
    ring_az: Tensor,
    mainlobe_deg: float = 45.0,
    null_deg: float = 90.0,
    null_weight: float = 30.0,
    null_width_deg: float = 15.0,
    transition_weight: float = 0.05,
    look_az: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """Target horizontal pattern and fit weights of the centre-channel beam.

    Target (relative, on-axis 1, zero phase at the scene origin): 1 for |φ − look| ≤ mainlobe,
    a raised-cosine taper to 0 between mainlobe and null angle, 0 from the null angle round the
    back. Weights: 1 in the main lobe and behind, ``transition_weight`` in the taper (mostly
    "don't care"), ``null_weight`` within ±``null_width_deg``/2 of ±null angle — so the fit
    spends its freedom on the side nulls.

    Args:
        ring_az: (A,) radians. mainlobe_deg, null_deg, null_width_deg: degrees.
        null_weight, transition_weight: positive weights. look_az: radians.

    Returns:
        (target (A,) complex128, weights (A,) float64).
    """
    if not 0 < mainlobe_deg < null_deg <= 180:
        raise ValueError("need 0 < mainlobe_deg < null_deg <= 180")
    off = _wrap(ring_az.to(torch.float64) - look_az).abs()
    ml, nl = math.radians(mainlobe_deg), math.radians(null_deg)
    taper = 1.0 - _raised_cosine((off - ml) / (nl - ml))
    target = torch.where(off <= ml, torch.ones_like(off), torch.where(off >= nl, torch.zeros_like(off), taper))
    weights = torch.where((off > ml) & (off < nl), torch.full_like(off, transition_weight), torch.ones_like(off))
    weights = torch.where((off - nl).abs() <= math.radians(null_width_deg) / 2, torch.full_like(off, null_weight), weights)
    return target.to(torch.complex128), weights


def white_noise_gain_db(G_look: Tensor, B: Tensor, G_ref=None) -> Tensor:
    """White-noise gain: array gain against uncorrelated driver noise, relative to one driver.

    WNG = |Σ_d G_d B_d|² / (Σ_d |B_d|² · |G_ref|²), with G the look-direction far fields.
    G_ref defaults to the loudest single driver in the look direction, max_d |G_d| (per
    frequency): 0 dB means as robust as playing that driver alone. By Cauchy–Schwarz every B
    then has WNG ≤ 10·log10(D), with equality for delay-and-sum on D identical drivers
    (REFERENCES.md). Pass ``G_ref = 1/(4π)`` for the unit-monopole reference.

    Args:
        G_look: (F, D) complex, m·Pa per unit input. B: (F, D) complex.
        G_ref: None, scalar or (F,) magnitude (same units as G_look).

    Returns:
        (F,) dB (very negative where B = 0).
    """
    num = (G_look * B).sum(-1).abs().square()
    ref = G_look.abs().amax(-1) if G_ref is None else _as_freq_vector(G_ref, G_look.shape[0], G_look).abs()
    den = B.abs().square().sum(-1) * ref.square()
    return _db10(num) - _db10(den)


def _fit_beam(A: Tensor, Y: Tensor, beta_f: Tensor, mask: Tensor | None, relative: bool) -> Tensor:
    """Tikhonov beam fit, A (F, A, D) and Y (F, A, 1) rows weighted; λ relative to tr(A'ᴴA')."""
    A, m = _masked(A, mask)
    lam = _lambda(beta_f, A.abs().square().sum(dim=(-2, -1)), relative, A)
    return _tikhonov(A, Y, lam, m)[..., 0]


def ls_beamformer(
    G_ring: Tensor,
    ring_az: Tensor | None = None,
    target: Tensor | None = None,
    weights: Tensor | None = None,
    beta=1e-3,
    mask: Tensor | None = None,
    wng_min_db: float | None = None,
    look_az: float = 0.0,
    relative: bool = True,
    normalize: bool = True,
    bisection_steps: int = 40,
    beta_max: float = 1e3,
) -> Tensor:
    """Regularised least-squares fit of the horizontal beam pattern to a target.

    Minimises Σ_a w̃_a |Σ_d G_{a,d} B_d − t_a/(4π)|² + λ‖B‖² per frequency (w̃ = w/Σw; the target
    is relative to a unit monopole, so t = 1 on axis means the monopole's 1/(4π)); relative
    λ = β·Σ_a w̃_a Σ_d |G_{a,d}|² (β times the weighted mean array power gain).

    White-noise-gain constraint: with ``wng_min_db``, β is raised per frequency (bisection in
    log β, vectorised over frequency, up to ``beta_max``) to the smallest value with
    :func:`white_noise_gain_db` ≥ ``wng_min_db`` (never below ``beta``). WNG grows with β
    towards the matched filter, so the result meets the constraint unless even ``beta_max``
    cannot.

    With ``normalize`` the result is scaled by one complex number per frequency so that the
    on-axis response is exactly 1/(4π) (zero phase), as :func:`delay_and_sum`; pattern ratios,
    null depth and WNG are unchanged by it.

    Args:
        G_ring: (F, A, D) complex far-field patterns, m·Pa per unit input.
        ring_az: (A,) radians or None (default ring).
        target: (A,) or (F, A) complex relative pattern; None → :func:`centre_beam_target`.
        weights: (A,) or (F, A) non-negative; None → those of :func:`centre_beam_target` when
            ``target`` is None, else uniform.
        beta: scalar or (F,), relative (default) or absolute ((m·Pa)² units).
        mask: (F, D) crossover mask or None.
        wng_min_db: optional WNG floor, dB (G_ref = loudest driver on axis).
        look_az: radians. relative, normalize, bisection_steps, beta_max: see above.

    Returns:
        B: (F, D) complex.
    """
    n_f, n_a, n_d = G_ring.shape
    if ring_az is None:
        ring_az = _default_ring(n_a)
    if target is None:
        target, default_w = centre_beam_target(ring_az, look_az=look_az)
        if weights is None:
            weights = default_w
    if weights is None:
        weights = torch.ones(n_a, dtype=torch.float64)
    real = G_ring.real.dtype
    t = torch.as_tensor(target, device=G_ring.device).to(G_ring.dtype)
    w = torch.as_tensor(weights, device=G_ring.device).to(real)
    t = t.expand(n_f, n_a) if t.dim() == 1 else t
    w = w.expand(n_f, n_a) if w.dim() == 1 else w
    if t.shape != (n_f, n_a) or w.shape != (n_f, n_a):
        raise ValueError(f"target and weights must be ({n_a},) or ({n_f}, {n_a})")
    if bool((w < 0).any()) or bool((w.sum(-1) <= 0).any()):
        raise ValueError("weights must be non-negative with a positive sum")
    sw = torch.sqrt(w / w.sum(-1, keepdim=True)).to(G_ring.dtype)
    A = G_ring * sw[..., None]
    Y = (t / FOUR_PI * sw)[..., None]
    beta_f = _as_freq_vector(beta, n_f, G_ring).clone()
    B = _fit_beam(A, Y, beta_f, mask, relative)
    g_look = look_response(G_ring, ring_az, look_az)

    if wng_min_db is not None:
        ok = white_noise_gain_db(g_look, B) >= wng_min_db
        if not bool(ok.all()):
            tiny = 1e-12 if relative else torch.finfo(real).tiny
            lo = torch.log(beta_f.clamp_min(tiny))
            hi = torch.full_like(lo, math.log(beta_max)).maximum(lo)
            for _ in range(bisection_steps):  # loop over bisection steps, all frequencies at once
                mid = 0.5 * (lo + hi)
                good = white_noise_gain_db(g_look, _fit_beam(A, Y, torch.exp(mid), mask, relative)) >= wng_min_db
                hi = torch.where(good, mid, hi)
                lo = torch.where(good, lo, mid)
            beta_f = torch.where(ok, beta_f, torch.exp(hi))
            B = _fit_beam(A, Y, beta_f, mask, relative)

    if normalize:
        on_axis = (g_look * B).sum(-1, keepdim=True)
        scale = torch.where(on_axis.abs() > 0, (1 / FOUR_PI) / torch.where(on_axis.abs() > 0, on_axis, torch.ones_like(on_axis)),
                            torch.ones_like(on_axis))
        B = B * scale
    return B


# --------------------------------------------------------------------------------- beam metrics


def beam_pattern_db(G_ring: Tensor, B: Tensor, ring_az: Tensor | None = None, look_az: float = 0.0) -> Tensor:
    """Horizontal beam pattern relative to on-axis: 20·log10(|G_ring B| / |G_look B|).

    Args:
        G_ring: (F, A, D) complex. B: (F, D) complex.
        ring_az: (A,) radians or None (default ring). look_az: radians (nearest ring azimuth).

    Returns:
        (F, A) dB.
    """
    if ring_az is None:
        ring_az = _default_ring(G_ring.shape[1])
    power = (G_ring @ B[..., None])[..., 0].abs().square()
    return _db10(power) - _db10(power[:, _nearest_index(ring_az, look_az)])[:, None]


def null_depth_db(
    G_ring: Tensor,
    B: Tensor,
    freqs: Tensor,
    band_hz: Sequence[float] = (800.0, 4000.0),
    ring_az: Tensor | None = None,
    look_az: float = 0.0,
    null_deg: float = 90.0,
    per_frequency: bool = False,
) -> Tensor:
    """Side-null depth (metric ``beam.null_depth_db``): response at ±null angle rel. on-axis.

    Per frequency, 10·log10 of the mean of the two side powers (look ± null_deg, nearest ring
    azimuths) over the on-axis power; then the arithmetic mean of those dB values over the bins in
    ``band_hz`` (negative = deeper null).

    Args:
        G_ring: (F, A, D). B: (F, D). freqs: (F,) Hz. band_hz: (lo, hi) Hz.
        ring_az: (A,) or None. look_az: radians. null_deg: degrees.
        per_frequency: return the (F,) values instead of the band mean.

    Returns:
        0-d tensor (or (F,)), dB.
    """
    if ring_az is None:
        ring_az = _default_ring(G_ring.shape[1])
    idx = [_nearest_index(ring_az, look_az + s * math.radians(null_deg)) for s in (1.0, -1.0)]
    i0 = _nearest_index(ring_az, look_az)
    resp = (G_ring[:, idx + [i0]] @ B[..., None])[..., 0].abs().square()  # (F, 3)
    depth = _db10(0.5 * (resp[:, 0] + resp[:, 1])) - _db10(resp[:, 2])
    return depth if per_frequency else band_average(depth, freqs, band_hz)


def mainlobe_deviation_db(
    G_ring: Tensor,
    B: Tensor,
    freqs: Tensor,
    band_hz: Sequence[float] = (800.0, 4000.0),
    ring_az: Tensor | None = None,
    look_az: float = 0.0,
    mainlobe_deg: float = 45.0,
    per_frequency: bool = False,
) -> Tensor:
    """Main-lobe flatness (metric ``beam.mainlobe_dev_db``): per frequency the worst |dB deviation|
    from on-axis within ±``mainlobe_deg`` of the look direction, then band-averaged.

    Args: as :func:`null_depth_db`.

    Returns:
        0-d tensor (or (F,)), dB ≥ 0.
    """
    if ring_az is None:
        ring_az = _default_ring(G_ring.shape[1])
    sel = _wrap(ring_az.to(torch.float64) - look_az).abs() <= math.radians(mainlobe_deg) + 1e-9
    pattern = beam_pattern_db(G_ring, B, ring_az, look_az)[:, sel.to(G_ring.device)]
    worst = pattern.abs().amax(-1)
    return worst if per_frequency else band_average(worst, freqs, band_hz)


def directivity_index_db(G_sphere: Tensor, sphere_weights: Tensor, G_look: Tensor, B: Tensor) -> Tensor:
    """Directivity index: on-axis power over the sphere-average power, per frequency.

    DI = 10·log10(|G_look B|² / (Σ_s w_s |G_s B|² / Σ_s w_s)), with the quadrature weights w_s
    (sr; they sum to 4π on the scene's Gauss grid).

    Args:
        G_sphere: (F, S, D) complex far fields on the sphere grid. sphere_weights: (S,) sr.
        G_look: (F, D) complex look-direction far fields. B: (F, D) complex.

    Returns:
        (F,) dB.
    """
    w = sphere_weights.to(device=G_sphere.device, dtype=G_sphere.real.dtype)
    mean_power = ((G_sphere @ B[..., None])[..., 0].abs().square() * w).sum(-1) / w.sum()
    on_axis = (G_look * B).sum(-1).abs().square()
    return _db10(on_axis) - _db10(mean_power)
