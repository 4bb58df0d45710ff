"""Evaluation metrics (DESIGN.md §5), computed from **exported FIR taps** on an evaluation scene.

Evaluation is honest by construction: the caller builds the evaluation scene on a frequency grid
at least 4× denser than the optimiser's and on zone points the optimiser never saw (the nominal
point excepted), and this module only ever sees FIR taps, never the optimiser's frequency
responses — so truncation, time aliasing and between-bin overfitting show up.

Band averages are arithmetic means over the (linearly spaced) bins of the band. ``None`` marks a
metric that does not apply (e.g. ``room.drr_db`` in free field).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from spatialopt.design import baselines
from spatialopt.dsp.filters import fir_response
from spatialopt.objectives.losses import ctc_separation_db, crossover_reference_power, third_octave_matrix, white_noise_gain_db

__all__ = ["MetricBands", "evaluate_filters", "out_of_band_db", "crossover_excess_db", "early_part"]


class MetricBands:
    """Bands of the metrics, Hz (DESIGN.md §5; issue targets)."""

    ctc = (1500.0, 8000.0)
    ctc_low = (500.0, 1500.0)
    ild = (500.0, 8000.0)
    itd = (150.0, 1500.0)
    beam = (800.0, 4000.0)
    tonal = (200.0, 16000.0)
    align = (500.0, 4000.0)
    early_ms = 5.0               # rooms: the "early" separation keeps reflections up to this long after the direct sound
    early_taper_ms = 1.0         # ... with a raised-cosine fade of this length
    crossover_order = 8          # the crossover standard the feeds are held to: Linkwitz–Riley 48 dB/octave
    crossover_floor_db = -50.0   # ... down to this level re the driver's in-band rms


def _band(freqs: Tensor, band) -> Tensor:
    return (freqs >= band[0]) & (freqs <= band[1])


def _db(power: Tensor) -> Tensor:
    return 10 * torch.log10(power.clamp_min(1e-30))


def _separation(H: Tensor, C: Tensor, freqs: Tensor, band, nominal: int) -> dict:
    sep = ctc_separation_db(H, C)  # (F, P, 2)
    per_point = sep[_band(freqs, band)].mean(dim=(0, 2))  # (P,)
    return {
        "sweet_mean": float(per_point[nominal]),
        "zone_mean": float(per_point.mean()),
        "zone_p10": float(torch.quantile(per_point, 0.1)),
    }


def early_part(H: Tensor, H_direct: Tensor, sample_rate: float, early_ms: float = MetricBands.early_ms,
               taper_ms: float = MetricBands.early_taper_ms) -> Tensor:
    """The early part of room transfer functions: each driver-to-ear impulse response kept up to
    ``early_ms`` after its direct sound (the peak of the free-field response), faded out over
    ``taper_ms`` and zero after.

    Localisation follows the first wavefront (the precedence effect): a CTC whose separation holds
    for the direct sound and the earliest reflections still places the image, even where the
    steady-state ratio, which counts every reflection, is low.

    Args:
        H: (F, ...) room transfer functions on the full rfft grid of N = 2(F − 1) points.
        H_direct: (F, ...) the same without the room (direct path only).
        sample_rate: Hz. early_ms, taper_ms: window after the direct sound, fade length (ms).

    Returns:
        (F, ...) complex, the windowed responses. The impulse responses are the grid's circular
        ones (N / fs long: 85 ms at the default evaluation grid); a room whose response is longer
        folds its tail into the window, so keep N / fs beyond the reverberation that matters.
    """
    n = 2 * (H.shape[0] - 1)
    h = torch.fft.irfft(H, n, dim=0)  # (N, ...)
    arrival = torch.fft.irfft(H_direct.to(H.dtype), n, dim=0).abs().argmax(dim=0)  # (...) samples
    t = torch.arange(n, device=H.device, dtype=h.dtype).reshape(-1, *([1] * (h.dim() - 1)))
    start = arrival.to(h.dtype) + early_ms * 1e-3 * sample_rate  # fade starts here
    fade = max(taper_ms * 1e-3 * sample_rate, 1.0)
    x = ((t - start) / fade).clamp(0.0, 1.0)
    window = 0.5 * (1.0 + torch.cos(math.pi * x))  # 1 before start, raised cosine to 0 over the fade
    return torch.fft.rfft(h * window, n, dim=0)


def _group_delay_s(e: Tensor, freqs: Tensor, band) -> float:
    """Energy-weighted mean group delay of a response (F,) over a band, seconds."""
    sel = _band(freqs, band)
    phase = torch.from_numpy(np.unwrap(torch.angle(e).cpu().numpy())).to(freqs.dtype)
    omega = 2 * math.pi * freqs
    gd = -torch.gradient(phase, spacing=(omega,))[0]
    w = (e.abs() ** 2) * sel
    return float((gd * w).sum() / w.sum().clamp_min(1e-30))


def out_of_band_db(W: Tensor, freqs: Tensor, driver_bands: Tensor, resolution_hz: float, margin_octaves: float = 1.0 / 3.0) -> float:
    """Loudest out-of-band response of any driver, dB re that driver's in-band rms, counting only
    frequencies at least ``margin_octaves`` outside its band (DC excluded). A lower band edge
    below ``resolution_hz`` (= fs/T, the finest detail a T-tap FIR can shape) is not counted:
    no filter of that length can roll off there; the driver's own mechanics must.
    W: (F, D, C)."""
    worst = -math.inf
    f = freqs.to(torch.float64)
    for d in range(W.shape[1]):
        lo, hi = (float(v) for v in driver_bands[d])
        inside = (f >= lo) & (f <= hi)
        below = (f < lo * 2 ** -margin_octaves) & (f > 0) if lo > resolution_hz else torch.zeros_like(inside)
        outside = below | (f > hi * 2**margin_octaves)
        if not outside.any() or not inside.any():
            continue
        power = W[:, d].abs() ** 2
        ref = power[inside].mean(0)  # (C,)
        worst = max(worst, float((_db(power[outside]) - _db(ref)).max()))
    return worst if math.isfinite(worst) else None


def crossover_excess_db(W: Tensor, freqs: Tensor, driver_bands: Tensor, n_taps: int, sample_rate: float,
                        order: int = MetricBands.crossover_order, floor_db: float = MetricBands.crossover_floor_db) -> float | None:
    """How far any driver's feed rises above a Linkwitz–Riley crossover of ``order`` outside its
    band (the ceiling of :func:`~spatialopt.design.baselines.crossover_ceiling_db`, lower edges
    below 2·fs/T exempt), dB re that driver's in-band rms; the worst bin of any driver and
    channel. ≤ 0 means every feed is at least as band-limited as that crossover. W: (F, D, C)."""
    from spatialopt.design.baselines import crossover_ceiling_db

    f = freqs.to(torch.float64)
    ceiling = crossover_ceiling_db(f, driver_bands, order, floor_db, min_edge_hz=2.0 * sample_rate / n_taps)
    bands = torch.as_tensor(driver_bands, dtype=torch.float64).cpu()
    inside = (f[:, None] >= bands[:, 0]) & (f[:, None] <= bands[:, 1])
    power = W.abs().to(torch.float64) ** 2
    ref = crossover_reference_power(power, inside)  # (D, C)
    excess = _db(power) - _db(ref)[None] - ceiling[..., None]
    constrained = torch.isfinite(ceiling)[..., None].expand_as(excess)
    return float(excess[constrained].max()) if constrained.any() else None


def evaluate_filters(fir: Tensor, ctc: Tensor, scene, sample_rate: float, drr_direct_H: Tensor | None = None) -> dict:
    """All metrics of one filter set on one evaluation scene.

    Args:
        fir: (3, D, T) composite taps (L, R, C).
        ctc: (2, D, T_ctc) CTC stage taps (C_l, C_r).
        scene: :class:`~spatialopt.acoustics.scene.Scene` (evaluation grid and zone).
        sample_rate: Hz of the taps (must equal the scene's).
        drr_direct_H: (F, P, 2, D) free-field (direct-path) ear transfer of the same scene when
            the scene has a room, for ``room.drr_db``; None in free field.

    Returns:
        Nested dict with DESIGN.md §5 names (plain floats, ``None`` where not applicable).
    """
    f = scene.freqs.to(torch.float64)
    nominal = scene.nominal_index
    H = scene.H.to(torch.complex128)
    W = fir_response(fir.to(torch.float64), f, sample_rate).permute(2, 1, 0)  # (F, D, 3)
    C = fir_response(ctc.to(torch.float64), f, sample_rate).permute(2, 1, 0)  # (F, D, 2)

    # Virtual image: full L and R paths at the nominal point vs the real pair, both sides.
    e = torch.einsum("fed,fdc->fec", H[:, nominal], W)  # (F, ear, channel)
    ref = scene.H_ref[:, nominal].to(torch.complex128)  # (F, ear, L/R)
    ild = torch.stack([_db(e[:, 0, 0].abs() ** 2) - _db(e[:, 1, 0].abs() ** 2), _db(e[:, 1, 1].abs() ** 2) - _db(e[:, 0, 1].abs() ** 2)], -1)
    ild_ref = torch.stack([_db(ref[:, 0, 0].abs() ** 2) - _db(ref[:, 1, 0].abs() ** 2), _db(ref[:, 1, 1].abs() ** 2) - _db(ref[:, 0, 1].abs() ** 2)], -1)
    sel = _band(f, MetricBands.ild)
    ild_err = float(((ild - ild_ref)[sel] ** 2).mean().sqrt())
    # Interaural phase delay error below 1.5 kHz: angle of (contra/ipsi) / (contra/ipsi)_ref.
    ratio = torch.stack([e[:, 1, 0] / e[:, 0, 0], e[:, 0, 1] / e[:, 1, 1]], -1)
    ratio_ref = torch.stack([ref[:, 1, 0] / ref[:, 0, 0], ref[:, 0, 1] / ref[:, 1, 1]], -1)
    sel = _band(f, MetricBands.itd)
    itd_err_us = torch.angle(ratio / ratio_ref)[sel] / (2 * math.pi * f[sel, None]) * 1e6
    itd_err = float((itd_err_us**2).mean().sqrt())
    # Where the error sits: below ~300 Hz a compact device needs large effort for any interaural
    # difference (and none at all where only one driver plays), so report the split.
    itd_bands = {}
    for lo, hi in ((MetricBands.itd[0], 300.0), (300.0, MetricBands.itd[1])):
        part = _band(f, (lo, hi))
        err = torch.angle(ratio / ratio_ref)[part] / (2 * math.pi * f[part, None]) * 1e6
        itd_bands[f"{lo:g}-{hi:g}"] = float((err**2).mean().sqrt()) if part.any() else None

    # Centre beam.
    g_ring = scene.G_ring.to(torch.complex128)
    B = W[:, :, 2]
    beam_sel = _band(f, MetricBands.beam)
    look = baselines.look_response(g_ring, scene.ring_az)
    di = baselines.directivity_index_db(scene.G_sphere.to(torch.complex128), scene.sphere_weights.to(torch.float64), look, B)
    beam = {
        "null_depth_db": float(baselines.null_depth_db(g_ring, B, f, MetricBands.beam, ring_az=scene.ring_az)),
        "mainlobe_dev_db": float(baselines.mainlobe_deviation_db(g_ring, B, f, MetricBands.beam, ring_az=scene.ring_az)),
        "di_db": float(di[beam_sel].mean()),
        "band_hz": list(MetricBands.beam),
    }

    # Tonal balance: 1/3-octave-smoothed ipsi ear response of L at the nominal point.
    smoothing = third_octave_matrix(f, *MetricBands.tonal)
    level = _db(smoothing @ (e[:, 0, 0].abs() ** 2))
    tonal = float((level - level.mean()).pow(2).mean().sqrt())

    # Effort: white-noise gain of the centre beam over its band; largest per-driver gain.
    wng = white_noise_gain_db(look, B)
    effort = {"wng_db_min": float(wng[beam_sel].min()), "max_gain_db": float(_db(W.abs().max() ** 2)),
              "out_of_band_db": out_of_band_db(W, f, scene.driver_bands, sample_rate / fir.shape[-1]),
              "crossover_excess_db": crossover_excess_db(W, f, scene.driver_bands, fir.shape[-1], sample_rate)}

    # Alignment: arrival (group delay) of the C path vs the L path at the left ear, nominal point.
    skew_s = _group_delay_s(e[:, 0, 2], f, MetricBands.align) - _group_delay_s(e[:, 0, 0], f, MetricBands.align)

    drr = early = None
    if drr_direct_H is not None:
        direct = torch.einsum("fed,fd->fe", drr_direct_H[:, nominal].to(torch.complex128), B)
        total = torch.einsum("fed,fd->fe", H[:, nominal], B)
        sel = _band(f, MetricBands.beam)
        drr = float(_db((direct[sel].abs() ** 2).sum()) - _db(((total - direct)[sel].abs() ** 2).sum()))
        # CTC separation of the direct sound and the first reflections (early_part); the steady-state
        # ctc.separation_db counts every reflection, which no device can cancel at two points.
        H_early = early_part(H, drr_direct_H.to(torch.complex128), sample_rate)
        early = {"separation_db": _separation(H_early, C, f, MetricBands.ctc, nominal), "window_ms": MetricBands.early_ms}

    return {
        "ctc": {
            "separation_db": _separation(H, C, f, MetricBands.ctc, nominal),
            "band_hz": list(MetricBands.ctc),
            "low_band": {"separation_db": _separation(H, C, f, MetricBands.ctc_low, nominal), "band_hz": list(MetricBands.ctc_low)},
        },
        "virtual": {"ild_err_db_rms": ild_err, "itd_err_us_rms": itd_err, "itd_err_us_rms_bands": itd_bands,
                    "itd_band_hz": list(MetricBands.itd), "ild_band_hz": list(MetricBands.ild)},
        "beam": beam,
        "tonal": {"dev_db_rms": tonal},
        "effort": effort,
        "align": {"path_skew_ms": skew_s * 1000.0},
        "room": {"drr_db": drr, "early": early},
    }
