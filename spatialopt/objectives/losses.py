"""Training losses over the listening zone (metrics for evaluation live in ``metrics.py``).

Every loss takes frequency responses on the optimiser's grid and returns a scalar; the total is a
weighted sum (:class:`SystemLoss`). Shapes: ``H`` (F, P, 2, D) ear transfer, ``H_ref`` (F, P, 2, 2)
the real ±30° pair, ``W`` (F, D, 3) composite filters, ``C`` (F, D, 2) CTC stage, ``B`` (F, D) beam,
``G_ring`` (F, A, D) far field. Levels are in dB; ``_db`` of power uses a floor of 1e-20 so the
logarithm never sees zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

# The CTC ratio and the white-noise gain are the baselines' definitions (one source of truth for
# losses, metrics and the closed-form designs); re-exported here under the loss-side names.
from spatialopt.design.baselines import separation_db_per_side as ctc_separation_db
from spatialopt.design.baselines import white_noise_gain_db

__all__ = [
    "LossConfig",
    "target_curve_db",
    "ctc_separation_db",
    "cancellation_loss",
    "binaural_loss",
    "tonal_loss",
    "tonal_band_hz",
    "third_octave_matrix",
    "beam_loss",
    "effort_loss",
    "drr_loss",
    "beam_axis_loss",
    "white_noise_gain_db",
    "band_loss",
    "crossover_spec",
    "crossover_reference_power",
    "compactness_loss",
    "level_loss",
    "SystemLoss",
]


def _db_power(power: Tensor) -> Tensor:
    return 10.0 * torch.log10(power + 1e-20)


def _raised_cosine_taper(freqs: Tensor, band_hz, taper_octaves: float) -> Tensor:
    """1 inside ``band_hz``, raised-cosine to 0 over ``taper_octaves`` outside (log frequency)."""
    f = freqs.clamp_min(1e-3)
    below = torch.log2(band_hz[0] / f).clamp_min(0.0)
    above = torch.log2(f / band_hz[1]).clamp_min(0.0)
    dist = torch.maximum(below, above) / max(taper_octaves, 1e-9)
    return torch.where(dist >= 1, torch.zeros_like(f), 0.5 * (1 + torch.cos(math.pi * dist.clamp(0, 1))))


def target_curve_db(freqs: Tensor, target_db: float, band_hz, taper_octaves: float) -> Tensor:
    """Target cancellation gain (ipsi/contra power ratio) over frequency, dB: flat ``target_db``
    over ``band_hz``, tapering to 0 dB over ``taper_octaves`` on each side. (F,) → (F,)."""
    return target_db * _raised_cosine_taper(freqs, band_hz, taper_octaves)


def cancellation_loss(sep_db: Tensor, target_db: Tensor, point_weights: Tensor, worst_case_power: float = 4.0) -> Tensor:
    """Shortfall of the separation below the target, with worst-case emphasis across the zone.

    ``s = relu(target − sep)`` (dB); per frequency and side the zone is summarised by the weighted
    power mean ``(Σ_p w_p s^q)^{1/q}`` (q = ``worst_case_power``: q = 2 is rms, larger q moves
    toward the worst point), then squared and averaged over frequencies weighted by the target's
    taper ``target / max(target)``: outside the band the target fades and so does the weight of a
    shortfall there (near Nyquist the separation of a lone tweeter is meaningless, and a 0/1
    weight made the optimiser boost it by 14 dB at 23.9 kHz to lift a 0.01 dB target).

    Args:
        sep_db: (F, P, 2). target_db: (F,). point_weights: (P,) summing to 1.

    Returns:
        () dB².
    """
    short = torch.relu(target_db[:, None, None] - sep_db)
    q = worst_case_power
    # Power mean scaled by the largest shortfall: exact, and no underflow of s^q to 0 (whose
    # q-th root has an infinite gradient) when every point meets the target.
    scale = short.amax(1, keepdim=True).detach().clamp_min(1e-3)
    inner = (point_weights[None, :, None] * (short / scale) ** q).sum(1)
    zone = scale[:, 0] * (inner + 1e-12) ** (1.0 / q)  # (F, 2)
    weight = (target_db / target_db.max().clamp_min(1e-12)).clamp_min(0.0).to(zone.dtype)
    return (zone**2 * weight[:, None]).sum() / (2 * weight.sum().clamp_min(1e-12))


def binaural_loss(
    H: Tensor, H_ref: Tensor, W: Tensor, freqs: Tensor, point_weights: Tensor,
    ild_band_hz=(500.0, 8000.0), itd_max_hz: float = 1500.0, phase_weight: float = 10.0,
) -> Tensor:
    """Ear cues of the full L path imitate the real pair's L speaker (the R path is its mirror).

    ILD: squared dB error of ``|E_left/E_right|`` over ``ild_band_hz``. Interaural phase below
    ``itd_max_hz``: ``|u − u_ref|²`` of the unit phasors of ``E_right/E_left`` (smooth, wrap-free).

    Args:
        H: (F, P, 2, D). H_ref: (F, P, 2, 2). W: (F, D, 3). freqs: (F,) Hz. point_weights: (P,).

    Returns:
        () loss.
    """
    e = torch.einsum("fped,fd->fpe", H, W[:, :, 0])
    ref = H_ref[..., 0]
    ild = _db_power(e[..., 0].abs() ** 2) - _db_power(e[..., 1].abs() ** 2)
    ild_ref = _db_power(ref[..., 0].abs() ** 2) - _db_power(ref[..., 1].abs() ** 2)
    band = ((freqs >= ild_band_hz[0]) & (freqs <= ild_band_hz[1])).to(ild.dtype)
    ild_term = ((ild - ild_ref) ** 2 * point_weights[None]).sum(1)
    ild_term = (ild_term * band).sum() / band.sum().clamp_min(1.0)
    ratio = e[..., 1] * e[..., 0].conj()
    ratio_ref = ref[..., 1] * ref[..., 0].conj()
    u = ratio / (ratio.abs() + 1e-20)
    u_ref = ratio_ref / (ratio_ref.abs() + 1e-20)
    low = ((freqs > 0) & (freqs <= itd_max_hz)).to(ild.dtype)
    phase_term = ((u - u_ref).abs() ** 2 * point_weights[None]).sum(1)
    phase_term = (phase_term * low).sum() / low.sum().clamp_min(1.0)
    return ild_term + phase_weight * phase_term


def third_octave_matrix(freqs: Tensor, low_hz: float = 100.0, high_hz: float = 16000.0) -> Tensor:
    """(B, F) row-normalised averaging matrix of 1/3-octave bands between ``low_hz`` and ``high_hz``
    (power averaging over the bins of each band; empty bands are dropped)."""
    centres = []
    c = 1000.0 * 2.0 ** (round(3 * math.log2(low_hz / 1000.0)) / 3)
    while c <= high_hz:
        centres.append(c)
        c *= 2 ** (1 / 3)
    rows = []
    for c in centres:
        sel = (freqs >= c * 2 ** (-1 / 6)) & (freqs < c * 2 ** (1 / 6))
        if bool(sel.any()):
            rows.append(sel.to(freqs.dtype) / sel.sum())
    return torch.stack(rows)


TONAL_BAND_HZ = (100.0, 16000.0)
"""Widest band of the tonal loss (Hz); narrowed to where the device plays by :func:`tonal_band_hz`."""


def tonal_band_hz(bottom_hz: float, top_hz: float = math.inf) -> tuple[float, float]:
    """Band of the tonal loss: :data:`TONAL_BAND_HZ` inside what the device can play — from a
    third of an octave above the lowest driver's lower band edge ``bottom_hz`` (clear of its
    crossover slope) to the top band edge ``top_hz``. Flatness asked for below every driver's
    band fights the crossover ceilings: on ``soundbar_4`` (all drivers from 150 Hz) it kept the
    outer drivers' feeds 40–45 dB over their LR8 ceiling at 75 Hz. Returns (low, high) Hz."""
    return max(TONAL_BAND_HZ[0], float(bottom_hz) * 2 ** (1 / 3)), min(TONAL_BAND_HZ[1], float(top_hz))


def tonal_loss(H: Tensor, W: Tensor, smoothing: Tensor, nominal_index: int) -> Tensor:
    """1/3-octave-smoothed ipsi ear response of the L path at the nominal point: its variance
    in dB (flat = 0). smoothing: (B, F) from :func:`third_octave_matrix`. Returns () dB²."""
    e = torch.einsum("fed,fd->fe", H[:, nominal_index], W[:, :, 0])[:, 0]
    level = _db_power(smoothing @ (e.abs() ** 2))
    return ((level - level.mean()) ** 2).mean()


def level_loss(H: Tensor, H_ref: Tensor, W: Tensor, freqs: Tensor, nominal_index: int, band_hz=(200.0, 16000.0)) -> Tensor:
    """Band-mean ipsi level of the L path equals that of the real pair's L speaker (fixes the
    overall scale, so filter gains are comparable to driving one speaker). Returns () dB²."""
    band = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    e = torch.einsum("fed,fd->fe", H[band, nominal_index], W[band, :, 0])[:, 0]
    ours = _db_power((e.abs() ** 2).mean())
    ref = _db_power((H_ref[band, nominal_index, 0, 0].abs() ** 2).mean())
    return (ours - ref) ** 2


def beam_loss(
    G_ring: Tensor, ring_az: Tensor, B: Tensor, freqs: Tensor, band_hz=(800.0, 4000.0),
    null_deg: float = 90.0, null_width_deg: float = 10.0, null_target_db: float = -25.0,
    mainlobe_deg: float = 45.0, mainlobe_tolerance_db: float = 3.0, outside_weight: float = 0.1,
    rear_target_db: float = -10.0,
) -> Tensor:
    """Centre beam: nulls at ±``null_deg``, flat main lobe within ±``mainlobe_deg``, low rear.

    The pattern ``P(az) = G_ring(az) · B`` relative to on-axis, in dB: penalties are squared
    excesses over the null target (around ±``null_deg``), over the rear target (|az| > 90° +
    width), and deviations beyond ``mainlobe_tolerance_db`` inside the main lobe. Outside
    ``band_hz`` the same terms weigh ``outside_weight``. Returns () dB².
    """
    pattern = torch.einsum("fad,fd->fa", G_ring, B)
    power = pattern.abs() ** 2
    on_axis = power[:, int(torch.argmin(ring_az.abs()))]
    rel = _db_power(power) - _db_power(on_axis)[:, None]
    az = torch.rad2deg(ring_az).abs()
    null = ((az - null_deg).abs() <= null_width_deg).to(rel.dtype)
    rear = (az > null_deg + null_width_deg).to(rel.dtype)
    main = (az <= mainlobe_deg).to(rel.dtype)
    excess_null = torch.relu(rel - null_target_db) ** 2 * null
    excess_rear = torch.relu(rel - rear_target_db) ** 2 * rear
    main_dev = torch.relu(rel.abs() - mainlobe_tolerance_db) ** 2 * main
    per_f = excess_null.sum(1) / null.sum() + 0.3 * excess_rear.sum(1) / rear.sum().clamp_min(1) + main_dev.sum(1) / main.sum()
    inside = ((freqs >= band_hz[0]) & (freqs <= band_hz[1])).to(rel.dtype)
    weight = inside + outside_weight * (1 - inside) * (freqs > 0).to(rel.dtype)
    return (per_f * weight).sum() / weight.sum()


def beam_axis_loss(G_look: Tensor, B: Tensor, freqs: Tensor, delay_s: float, band: Tensor) -> Tensor:
    """The centre beam's on-axis response is a unit monopole's, delayed by ``delay_s``: flat and
    linear-phase, so the C path keeps its timing (alignment with L/R) and its tone.

    ``|4π·G_look·B − e^{−j2πfτ}|²`` averaged over ``band`` (F,) bool. G_look, B: (F, D). Returns ()."""
    on_axis = 4 * math.pi * (G_look * B).sum(-1)
    target = torch.exp(-2j * math.pi * freqs * delay_s).to(on_axis.dtype)
    band = band.to(freqs.dtype)
    return ((on_axis - target).abs() ** 2 * band).sum() / band.sum().clamp_min(1.0)


def drr_loss(H: Tensor, H_direct: Tensor, B: Tensor, freqs: Tensor, point_weights: Tensor, band_hz, target_db: float) -> Tensor:
    """Direct-to-reverberant ratio of the centre channel at the listener's ears, pushed up to
    ``target_db``: ``relu(target − DRR_p)²`` weighted over the zone.

    DRR_p = 10·log10(Σ_f |H_direct,p B|² / Σ_f |(H_p − H_direct,p) B|²) over ``band_hz``, both ears.
    H, H_direct: (F, P, 2, D) with and without the room. B: (F, D). Returns () dB².
    """
    band = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    direct = torch.einsum("fped,fd->fpe", H_direct[band], B[band])
    total = torch.einsum("fped,fd->fpe", H[band], B[band])
    drr = _db_power((direct.abs() ** 2).sum((0, 2))) - _db_power(((total - direct).abs() ** 2).sum((0, 2)))
    return (point_weights * torch.relu(target_db - drr) ** 2).sum()


def effort_loss(W: Tensor, G_look: Tensor, band: Tensor, max_gain_db: float = 12.0, wng_min_db: float = -10.0) -> Tensor:
    """Per-driver gain ceiling (every channel, re a gain of 1) and the white-noise-gain floor of
    the centre beam (the CTC is superdirective by design; its effort is held by the gain
    ceiling). W: (F, D, 3); G_look: (F, D); band: (F,) bool/0-1 where the WNG floor applies.
    Returns () dB²."""
    gain_db = _db_power(W.abs() ** 2)  # (F, D, 3)
    over = torch.relu(gain_db - max_gain_db) ** 2
    wng_db = white_noise_gain_db(G_look, W[:, :, 2])
    band = band.to(wng_db.dtype)
    under = (torch.relu(wng_min_db - wng_db) ** 2 * band).sum() / band.sum().clamp_min(1.0)
    return over.mean() + under


def band_loss(W: Tensor, ceiling_db: Tensor, inside: Tensor) -> Tensor:
    """Crossover: outside its band every driver's feed stays under a Linkwitz–Riley-shaped
    ceiling (:func:`~spatialopt.design.baselines.crossover_ceiling_db`), dB re its in-band rms
    level, in every channel. Penalty ``relu(level − ceiling)²`` per bin, averaged — a per-bin
    ceiling, so a few bins cannot hide in an energy average, and one a T-tap FIR can meet, unlike
    a brick wall at the band edge.

    Args:
        W: (F, D, 3) composite responses. ceiling_db: (F, D), +inf where unconstrained.
        inside: (F, D) bool, the in-band bins that set each driver's reference level.

    Returns:
        () dB².
    """
    power = W.real**2 + W.imag**2  # (F, D, 3)
    ref = crossover_reference_power(power, inside)
    level = _db_power(power) - _db_power(ref)[None]
    return (torch.relu(level - ceiling_db[..., None]) ** 2).mean()


def crossover_reference_power(power: Tensor, inside: Tensor, floor_db: float = -60.0) -> Tensor:
    """Reference level of each driver's feed for the crossover ceiling: its in-band mean power,
    but at least ``floor_db`` re the channel's loudest driver — a driver a channel hardly uses
    is judged against the channel, not against its own near-zero level (which would make the
    dB penalty and its gradient explode). power: (F, D, C); inside: (F, D) bool → (D, C)."""
    inside = inside.to(power.dtype)[..., None]
    ref = (power * inside).sum(0) / inside.sum(0).clamp_min(1.0)  # (D, C) in-band mean power
    return torch.maximum(ref, ref.amax(0, keepdim=True) * 10 ** (floor_db / 10))


def crossover_spec(driver_bands: Tensor, order: int, floor_db: float, n_taps: int, sample_rate: float,
                   oversample: int = 4) -> dict[str, Tensor | int]:
    """The crossover ceiling for :func:`band_loss` on a grid ``oversample``× denser than the
    T-tap composite's own DFT: a grid of T points pins the taps but not the response between
    its bins, where an unconstrained filter peaks (seen: +4 dB at 22.4 kHz on a tweeter whose
    on-grid response met the ceiling). Lower edges below 2·fs/T stay unconstrained (no T-tap FIR
    can roll off there).

    Args:
        driver_bands: (D, 2) Hz. order, floor_db: see
            :func:`~spatialopt.design.baselines.crossover_ceiling_db`. n_taps: T. sample_rate: Hz.

    Returns:
        ``{"n_fft": N, "ceiling_db": (N/2 + 1, D) float64, "inside": (N/2 + 1, D) bool,
        "top_hz": highest band edge of any driver, "bottom_hz": lowest band edge of any driver}`` on ``rfftfreq(N, 1/fs)``, N = oversample·T
        rounded up to a power of two.
    """
    from spatialopt.design.baselines import crossover_ceiling_db

    n_fft = 1 << (oversample * n_taps - 1).bit_length()
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / sample_rate, dtype=torch.float64)
    ceiling = crossover_ceiling_db(freqs, driver_bands, order, floor_db, min_edge_hz=2.0 * sample_rate / n_taps)
    bands = torch.as_tensor(driver_bands, dtype=torch.float64).cpu()
    inside = (freqs[:, None] >= bands[:, 0]) & (freqs[:, None] <= bands[:, 1])
    return {"n_fft": n_fft, "ceiling_db": ceiling, "inside": inside, "top_hz": float(bands[:, 1].max()),
            "bottom_hz": float(bands[:, 0].min())}


def compactness_loss(ctc_taps: Tensor, main_delay: int, pre_ring: int, post_ring: int) -> Tensor:
    """Energy of CTC taps outside ``[main_delay − pre_ring, main_delay + post_ring]`` relative to
    the total, weighted by the distance from the window (limits pre-ringing and latency).
    ctc_taps: (2, D, T). Returns () dimensionless."""
    n = torch.arange(ctc_taps.shape[-1], device=ctc_taps.device, dtype=ctc_taps.dtype)
    early = torch.relu((main_delay - pre_ring) - n) / max(pre_ring, 1)
    late = torch.relu(n - (main_delay + post_ring)) / max(post_ring, 1)
    weight = (early + late) ** 2
    energy = ctc_taps**2
    return (energy * weight).sum() / energy.sum().clamp_min(1e-20)


@dataclass
class LossConfig:
    """Weights and targets of the training loss (``loss:`` config group)."""

    weights: dict = field(default_factory=lambda: {
        "cancellation": 4.0, "binaural": 1.0, "tonal": 2.0, "level": 0.1, "beam": 0.5,
        "beam_axis": 1.0, "effort": 0.5, "band": 10.0, "compactness": 1.0, "drr": 0.5,
    })
    ctc_target_db: float = 20.0
    ctc_band_hz: tuple = (1500.0, 8000.0)
    ctc_taper_octaves: float = 1.6
    worst_case_power: float = 4.0
    beam_band_hz: tuple = (800.0, 4000.0)
    null_target_db: float = -25.0
    max_gain_db: float = 12.0
    wng_min_db: float = -10.0
    pre_ring_ms: float = 2.0
    post_ring_ms: float = 8.0
    itd_weight: float = 30.0     # weight of the interaural-phase part of the binaural term
    binaural_nominal_share: float = 0.5  # share of the binaural term's zone weight put on the nominal point
    drr_target_db: float = 6.0   # centre-channel direct-to-reverberant ratio to reach (rooms only)
    crossover_order: int = 8     # Linkwitz–Riley order of the out-of-band ceiling (8 = 48 dB/octave)
    crossover_floor_db: float = -50.0  # deepest out-of-band ceiling, dB re in-band
    room_ears: str = "direct"    # rooms: ear terms on the "direct" sound (free-field paths) or the "full" room response


class SystemLoss:
    """The weighted training loss on one scene (tensors already on the compute device/dtype).

    Args:
        cfg: :class:`LossConfig`. scene: an object with ``freqs``, ``H``, ``H_ref``, ``G_ring``,
            ``ring_az``, ``point_weights``, ``nominal_index`` (tensors), and ``H_direct`` (the
            free-field part of ``H``) when there is a room — it enables the ``drr`` term.
        crossover: :func:`crossover_spec` of the composite (its own dense grid).
        ctc_delay: main tap of the CTC filters (samples). sample_rate: Hz.
        beam_delay: on-axis delay of the C path (samples; default ``ctc_delay``): its modelling
            delay plus the alignment delay.
    """

    def __init__(self, cfg: LossConfig, scene, crossover: dict, ctc_delay: int, sample_rate: float,
                 beam_delay: int | None = None):
        self.cfg = cfg
        self.scene = scene
        self.crossover_n_fft = int(crossover["n_fft"])
        self.ceiling_db = crossover["ceiling_db"].to(device=scene.freqs.device, dtype=scene.freqs.dtype)
        self.inside = crossover["inside"].to(scene.freqs.device)
        # The C path's on-axis response and beam pattern are shaped only where some driver may
        # play: above the top band edge those requests fight the crossovers (they pushed the
        # tweeter to +3 dB at 23.7 kHz, 17 dB over its ceiling).
        self.playable = scene.freqs <= crossover.get("top_hz", math.inf)
        self.axis_band = (scene.freqs > 0) & self.playable
        self.ctc_delay = ctc_delay
        self.beam_delay_s = (ctc_delay if beam_delay is None else beam_delay) / sample_rate
        self.sample_rate = sample_rate
        self.target = target_curve_db(scene.freqs, cfg.ctc_target_db, cfg.ctc_band_hz, cfg.ctc_taper_octaves)
        self.tonal_band_hz = tonal_band_hz(crossover.get("bottom_hz", 0.0), crossover.get("top_hz", math.inf))
        self.smoothing = third_octave_matrix(scene.freqs, *self.tonal_band_hz)
        self.g_look = scene.G_ring[:, int(torch.argmin(scene.ring_az.abs()))]
        nominal = torch.zeros_like(scene.point_weights)
        nominal[scene.nominal_index] = 1.0
        share = cfg.binaural_nominal_share
        self.binaural_weights = (1 - share) * scene.point_weights + share * nominal
        self.beam_band = (scene.freqs >= cfg.beam_band_hz[0]) & (scene.freqs <= cfg.beam_band_hz[1])

    def terms(self, responses: dict[str, Tensor], ctc_taps: Tensor) -> dict[str, Tensor]:
        """Every loss term (unweighted) for the system's responses on the scene grid."""
        s, cfg = self.scene, self.cfg
        # Ear terms in a room: on the direct sound by default. Localisation follows the first
        # wavefront, and against the full room response (reflections no device can cancel at two
        # points) the optimiser gave up the direct sound's separation: 2.2 dB vs 30 dB.
        direct = cfg.room_ears == "direct" and getattr(s, "H_direct", None) is not None
        H, H_ref = (s.H_direct, s.H_ref_direct) if direct else (s.H, s.H_ref)
        sep = ctc_separation_db(H, responses["C"])
        ms = self.sample_rate / 1000.0
        return {
            "cancellation": cancellation_loss(sep, self.target, s.point_weights, cfg.worst_case_power),
            "binaural": binaural_loss(H, H_ref, responses["W"], s.freqs, self.binaural_weights, phase_weight=cfg.itd_weight),
            "tonal": tonal_loss(H, responses["W"], self.smoothing, s.nominal_index),
            "level": level_loss(H, H_ref, responses["W"], s.freqs, s.nominal_index),
            "beam": beam_loss(s.G_ring[self.playable], s.ring_az, responses["B"][self.playable], s.freqs[self.playable],
                             cfg.beam_band_hz, null_target_db=cfg.null_target_db),
            "beam_axis": beam_axis_loss(self.g_look, responses["B"], s.freqs, self.beam_delay_s, self.axis_band),
            "effort": effort_loss(responses["W"], self.g_look, self.beam_band, cfg.max_gain_db, cfg.wng_min_db),
            "band": band_loss(torch.fft.rfft(responses["fir"], self.crossover_n_fft).permute(2, 1, 0), self.ceiling_db, self.inside),
            "compactness": compactness_loss(ctc_taps, self.ctc_delay, int(cfg.pre_ring_ms * ms), int(cfg.post_ring_ms * ms)),
        } | ({} if getattr(s, "H_direct", None) is None else {
            "drr": drr_loss(s.H, s.H_direct, responses["B"], s.freqs, s.point_weights, cfg.beam_band_hz, cfg.drr_target_db),
        })

    def total(self, terms: dict[str, Tensor]) -> Tensor:
        """Weighted sum of the terms."""
        return sum(self.cfg.weights.get(name, 0.0) * value for name, value in terms.items())
