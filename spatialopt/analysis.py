"""Preset analyses: the figures and numbers behind each named experiment (``experiments/*.md``).

A run selects analyses with the config key ``analysis: [name, ...]`` (default empty) and may tune
them with ``analysis_options: {name: {key: value}}``. :func:`validate_analyses` checks both before
any work; :func:`run_analyses`, called once at the end of
:func:`spatialopt.experiment.run_experiment`, runs each selected analysis on what the finished
run has — the config, the optimisation and evaluation scenes, the exported
:class:`~spatialopt.filterset.FilterSet`, the trained system, the closed-form baselines — writes
PNG figures and ``analysis.json`` (``{name: numbers}``) into the run directory and returns a
Markdown section that the run appends to ``report.md``.

Evaluation stays honest: every response of a design comes from FIR taps — the exported filter
set (``fir`` and its stages), the closed-form baselines realised as FIR taps, the point design's
exported filter set — evaluated with :func:`~spatialopt.dsp.filters.fir_response` on the
evaluation grid (at least 4× denser than the optimiser's) or on a grid of the analysis' own;
never the optimiser's internal responses. The one reference that is not a filter set, the
"matrix mix" (the centre sent to every driver with equal gain through its crossover), is a
frequency-domain gain by definition.

Analyses (one function each; the options and their defaults are in :data:`ANALYSES`):

* ``crosstalk_simulation`` — the virtualizer's all-pass ``A`` and delayed low-pass ``X`` against
  the relative HRTF ``R = H_contra/H_ipsi`` of the real ±30° source through the head model:
  magnitude and group delay vs frequency, fit errors, and what the listener's ears actually get.
* ``ctc_zone`` — separation maps (lateral offset × frequency) of the CTC designed over the zone
  (this run), designed at one point (a second optimisation with ``zone=point``), and the
  closed-form point (Kirkeby) and zone least-squares designs.
* ``beamformer`` — centre-channel response over frequency × azimuth and polar plots, matrix mix
  vs the optimised beam.
* ``room_depth`` — direct-to-reverberant ratio vs distance in the shoebox, critical distance
  measured vs ``r_c ≈ 0.057·√(Q·V/T60)`` with the measured directivity factor Q.
* ``listening_zone`` — CTC separation and ILD error of the full system over a wide grid of head
  positions (lateral × distance).
* ``device_summary`` — one device's headline figures (for the ``devices`` multirun).

Units: Hz, s, m, dB; angles in degrees in options and figures, radians in the library calls.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from spatialopt.design import baselines
from spatialopt.dsp.filters import fir_response
from spatialopt.errors import ConfigError

__all__ = [
    "ANALYSES",
    "RunContext",
    "validate_analyses",
    "run_analyses",
    "group_delay_s",
    "phase_delay_s",
    "relative_response_errors",
    "matrix_mix",
    "beamwidth_deg",
    "contiguous_extent",
    "critical_distance_formula",
    "critical_distance_from_drr",
    "eyring_t60",
    "directivity_factor",
    "ild_error_db_rms",
    "ild_shift_db",
]

CTC_BAND_HZ = (1500.0, 8000.0)     # the metric's CTC band (objectives.metrics.MetricBands.ctc)
CTC_LOW_BAND_HZ = (500.0, 1500.0)
ILD_BAND_HZ = (500.0, 8000.0)
METRIC_BEAM_BAND_HZ = (800.0, 4000.0)


# ------------------------------------------------------------------------------ numerics (pure)


def _db_power(power: Tensor | np.ndarray) -> Tensor | np.ndarray:
    if isinstance(power, Tensor):
        return 10 * torch.log10(power.clamp_min(1e-30))
    return 10 * np.log10(np.maximum(power, 1e-30))


def _band(freqs: Tensor, band: Sequence[float]) -> Tensor:
    return (freqs >= band[0]) & (freqs <= band[1])


def _unwrapped_phase(response: Tensor) -> Tensor:
    return torch.from_numpy(np.unwrap(torch.angle(response).cpu().numpy()))


def group_delay_s(response: Tensor, freqs: Tensor) -> Tensor:
    """Group delay ``τ_g = −dφ/dω`` of a response on a grid (unwrapped phase, central differences).

    Args:
        response: (F,) complex. freqs: (F,) Hz, increasing.

    Returns:
        (F,) seconds (float64).
    """
    phase = _unwrapped_phase(response.to(torch.complex128))
    omega = 2 * math.pi * freqs.to(torch.float64).cpu()
    return -torch.gradient(phase, spacing=(omega,))[0]


def phase_delay_s(response: Tensor, freqs: Tensor) -> Tensor:
    """Phase delay ``τ_p = −φ/ω`` with the phase unwrapped from the lowest frequency (F,) → (F,) s;
    NaN at f = 0. Meaningful where the phase starts near 0 at low frequency (delays, low-passes)."""
    phase = _unwrapped_phase(response.to(torch.complex128))
    omega = 2 * math.pi * freqs.to(torch.float64).cpu()
    return torch.where(omega > 0, -phase / omega.clamp_min(1e-300), torch.full_like(omega, math.nan))


def relative_response_errors(freqs: Tensor, target: Tensor, model: Tensor, magnitude_band_hz=(300.0, 8000.0),
                             delay_band_hz=(150.0, 1500.0), itd_band_hz=(150.0, 700.0)) -> dict[str, float]:
    """How well a relative response ``model`` (e.g. the virtualizer's ``X/A``) reproduces a target
    relative HRTF ``target`` (``H_contra/H_ipsi``).

    Returns (plain floats):
        ``magnitude_err_db_rms``: rms of ``20·log10|model| − 20·log10|target|`` over the bins in
        ``magnitude_band_hz``; ``magnitude_err_db_max``: its largest absolute value;
        ``group_delay_err_us_rms``: rms of the group-delay difference over ``delay_band_hz`` (µs);
        ``itd_target_us`` / ``itd_model_us``: mean phase delay over ``itd_band_hz`` (µs) — the
        low-frequency interaural time difference.
    """
    f = freqs.to(torch.float64).cpu()
    target = target.to(torch.complex128).cpu()
    model = model.to(torch.complex128).cpu()
    mag = _band(f, magnitude_band_hz)
    err_db = (_db_power(model.abs() ** 2) - _db_power(target.abs() ** 2))[mag]
    gd = _band(f, delay_band_hz)
    gd_err = (group_delay_s(model, f) - group_delay_s(target, f))[gd] * 1e6
    itd = _band(f, itd_band_hz) & (f > 0)
    return {
        "magnitude_err_db_rms": float(err_db.square().mean().sqrt()),
        "magnitude_err_db_max": float(err_db.abs().max()),
        "group_delay_err_us_rms": float(gd_err.square().mean().sqrt()),
        "itd_target_us": float(phase_delay_s(target, f)[itd].mean() * 1e6),
        "itd_model_us": float(phase_delay_s(model, f)[itd].mean() * 1e6),
    }


def matrix_mix(freqs: Tensor, driver_bands: Tensor, crossover_octaves: float = 1.0 / 3.0) -> Tensor:
    """Simple matrix mixing of the centre channel: every driver gets the same signal, through
    its own crossover (:func:`~spatialopt.design.baselines.band_mask`), no delays or phase.

    Args:
        freqs: (F,) Hz. driver_bands: (D, 2) Hz. crossover_octaves: ramp width inside each band.

    Returns:
        (F, D) complex128 driver gains.
    """
    return baselines.band_mask(freqs.to(torch.float64), driver_bands, crossover_octaves).to(torch.complex128)


def beamwidth_deg(pattern_db: np.ndarray, az_deg: np.ndarray, level_db: float = -6.0) -> float:
    """Width (degrees) of the main lobe around 0°: from the first azimuth on each side where the
    pattern (dB re on-axis) falls below ``level_db``, interpolated linearly; 360 when it never does.

    Args:
        pattern_db: (A,) dB re on-axis. az_deg: (A,) degrees in [−180, 180), any order.
    """
    order = np.argsort(az_deg)
    az, p = np.asarray(az_deg, dtype=float)[order], np.asarray(pattern_db, dtype=float)[order]
    i0 = int(np.argmin(np.abs(az)))
    edges = []
    for step in (1, -1):
        prev_az, prev_p = az[i0], p[i0]
        edge = None
        for k in range(1, len(az)):
            j = (i0 + step * k) % len(az)
            a = az[j] + (360.0 if step == 1 and az[j] < az[i0] else 0.0) - (360.0 if step == -1 and az[j] > az[i0] else 0.0)
            if p[j] < level_db:
                t = (prev_p - level_db) / (prev_p - p[j]) if prev_p != p[j] else 0.0
                edge = prev_az + t * (a - prev_az)
                break
            prev_az, prev_p = a, p[j]
        if edge is None:
            return 360.0
        edges.append(edge)
    return float(min(edges[0] - edges[1], 360.0))


def contiguous_extent(x: Sequence[float], values: Sequence[float], threshold: float, centre: float = 0.0) -> tuple[float, float] | None:
    """The interval around ``centre`` over which ``values(x) >= threshold`` holds without a break,
    edges interpolated linearly between samples (clipped to the sampled range).

    Args:
        x: (N,) increasing sample positions. values: (N,). threshold: level. centre: a position
            (the sample nearest to it starts the interval).

    Returns:
        ``(lo, hi)`` or None when the value at the centre is already below the threshold.
    """
    x = np.asarray(x, dtype=float)
    v = np.asarray(values, dtype=float)
    i0 = int(np.argmin(np.abs(x - centre)))
    if not v[i0] >= threshold:
        return None

    def walk(step: int) -> float:
        i = i0
        while 0 <= i + step < len(x) and v[i + step] >= threshold:
            i += step
        j = i + step
        if not 0 <= j < len(x):
            return float(x[i])
        t = (v[i] - threshold) / (v[i] - v[j]) if v[i] != v[j] else 0.0
        return float(x[i] + t * (x[j] - x[i]))

    return walk(-1), walk(1)


def critical_distance_formula(q: float, volume_m3: float, t60_s: float) -> float:
    """Critical distance ``r_c ≈ 0.057·√(Q·V/T60)`` (metres; Sabine diffuse field, REFERENCES.md):
    where the direct sound of a source of directivity factor Q equals the reverberant field."""
    return 0.057 * math.sqrt(q * volume_m3 / t60_s)


def critical_distance_from_drr(distances_m: Sequence[float], drr_db: Sequence[float]) -> dict[str, float | None]:
    """Critical distance from a measured DRR(r).

    ``fit_m``: least squares of the free-field law ``DRR(r) = 20·log10(r_c/r)`` (slope fixed:
    direct ∝ 1/r², reverberant constant), i.e. ``20·log10 r_c = mean(DRR_i + 20·log10 r_i)``;
    ``fit_residual_db_rms`` its residual; ``crossing_m``: the first distance where DRR falls
    through 0 dB (interpolated in log r; None if it never does in the sampled range).
    """
    r = np.asarray(distances_m, dtype=float)
    d = np.asarray(drr_db, dtype=float)
    level = d + 20 * np.log10(r)
    fit = 10 ** (level.mean() / 20)
    residual = float(np.sqrt(np.mean((d - 20 * np.log10(fit / r)) ** 2)))
    crossing = None
    for i in range(len(r) - 1):
        if d[i] >= 0 > d[i + 1]:
            t = d[i] / (d[i] - d[i + 1])
            crossing = float(10 ** (np.log10(r[i]) + t * (np.log10(r[i + 1]) - np.log10(r[i]))))
            break
    return {"fit_m": float(fit), "fit_residual_db_rms": residual, "crossing_m": crossing}


def eyring_t60(room, speed_of_sound: float = 343.0) -> float:
    """Eyring reverberation time (s) at 1 kHz: ``24·ln10·V / (−c·S·ln(1 − ᾱ))`` with ᾱ the
    area-weighted mean absorption (Sabine: :meth:`~spatialopt.acoustics.room.Shoebox.sabine_t60`)."""
    from spatialopt.acoustics.room import wall_reflection_gains

    alpha = 1.0 - wall_reflection_gains(room.absorption, torch.tensor([1000.0]))[0] ** 2
    lx, ly, lz = (float(v) for v in room.dims)
    areas = torch.tensor([ly * lz, ly * lz, lx * lz, lx * lz, lx * ly, lx * ly], dtype=torch.float64)
    mean_alpha = float((areas * alpha).sum() / areas.sum())
    return 24 * math.log(10) * lx * ly * lz / (-speed_of_sound * float(areas.sum()) * math.log(1 - mean_alpha))


def directivity_factor(G_look: Tensor, G_sphere: Tensor, sphere_weights: Tensor, B: Tensor) -> tuple[float, Tensor]:
    """Directivity factor of a beam, band-integrated and per frequency.

    ``Q(f) = |G_look B|² / (Σ_s w_s |G_s B|² / Σ_s w_s)``; the band value is the ratio of the
    power sums over the given frequencies (on-axis energy over sphere-mean energy), the Q that
    a band-energy DRR sees.

    Args:
        G_look: (F, D). G_sphere: (F, S, D). sphere_weights: (S,) sr. B: (F, D).

    Returns:
        (Q_band, (F,) Q per frequency).
    """
    w = sphere_weights.to(G_sphere.real.dtype)
    mean = ((G_sphere @ B[..., None])[..., 0].abs().square() * w).sum(-1) / w.sum()
    axis = (G_look * B).sum(-1).abs().square()
    return float(axis.sum() / mean.sum()), axis / mean.clamp_min(1e-300)


def _ild_deviation(H: Tensor, H_ref: Tensor, W: Tensor, freqs: Tensor, band_hz) -> Tensor:
    """(F_band, P, 2) ILD of the L path (left − right) and of the R path (right − left) minus the real pair's."""
    e = torch.einsum("fped,fdc->fpec", H, W[..., :2])
    p, pr = e.abs() ** 2, H_ref.abs() ** 2
    ild = torch.stack([_db_power(p[:, :, 0, 0]) - _db_power(p[:, :, 1, 0]), _db_power(p[:, :, 1, 1]) - _db_power(p[:, :, 0, 1])], -1)
    ild_ref = torch.stack([_db_power(pr[:, :, 0, 0]) - _db_power(pr[:, :, 1, 0]), _db_power(pr[:, :, 1, 1]) - _db_power(pr[:, :, 0, 1])], -1)
    return (ild - ild_ref)[_band(freqs.to(H.device), band_hz)]


def ild_shift_db(H: Tensor, H_ref: Tensor, W: Tensor, freqs: Tensor, band_hz=ILD_BAND_HZ) -> Tensor:
    """Signed image shift per point: the band mean of (ΔILD_L − ΔILD_R)/2, dB, with ΔILD the ILD
    deviation of each path from the real pair (L path: left − right ear; R path: right − left).
    Positive: both images pulled toward the listener's left ear (L wider, R narrower). (P,)."""
    dev = _ild_deviation(H, H_ref, W, freqs, band_hz).mean(0)
    return 0.5 * (dev[:, 0] - dev[:, 1])


def ild_error_db_rms(H: Tensor, H_ref: Tensor, W: Tensor, freqs: Tensor, band_hz=ILD_BAND_HZ) -> Tensor:
    """ILD error of the full L and R paths vs the real ±30° pair heard at the same head position,
    per point: rms over both sides and the bins of ``band_hz`` (the metric
    ``virtual.ild_err_db_rms``, at every point instead of the nominal one).

    Args:
        H: (F, P, 2, D) ear transfer. H_ref: (F, P, 2, 2) the real pair. W: (F, D, 3) composite.
        freqs: (F,) Hz.

    Returns:
        (P,) dB.
    """
    return _ild_deviation(H, H_ref, W, freqs, band_hz).square().mean(dim=(0, 2)).sqrt()


# ---------------------------------------------------------------------------- plumbing


@dataclass
class RunContext:
    """What a finished run hands to the analyses.

    Attributes:
        cfg: the resolved config (plain mapping). run_dir: where figures and ``analysis.json`` go.
        scene: the optimisation scene. eval_scene: the evaluation scene (dense grid, held-out zone).
        filterset: the exported :class:`~spatialopt.filterset.FilterSet`.
        system: the trained :class:`~spatialopt.design.system.SpatialSystem` (for its physical
            virtualizer parameters; responses always come from the filter set's taps).
        info: :func:`~spatialopt.design.initialize.initialize_system`'s info (``baselines`` FIR
            stages, ``virtualizer_fit``, ``ctc_delay``).
        baseline_firs: baseline name → composite FIR (3, D, T).
        metrics: the run's metrics (``ours`` and the baselines).
        options: this analysis' options (defaults filled in). log: progress messages.
    """

    cfg: Mapping
    run_dir: Path
    scene: Any
    eval_scene: Any
    filterset: Any
    system: Any = None
    info: dict = field(default_factory=dict)
    baseline_firs: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)
    log: Callable = print

    @property
    def fs(self) -> float:
        return float(self.filterset.sample_rate)

    @property
    def eval_cfg(self) -> dict:
        from spatialopt.experiment import evaluation_config

        return evaluation_config(self.cfg)

    def fir_response(self, taps: Tensor, freqs: Tensor) -> Tensor:
        """Response of FIR taps (..., T) at ``freqs`` (float64 → complex128)."""
        return fir_response(taps.detach().to("cpu", torch.float64), freqs.to(torch.float64), self.fs)


def _with_zone(cfg: Mapping, lateral: Sequence[float], depth: Sequence[float]) -> dict:
    """The config with its zone replaced by a lateral × depth grid at yaw 0 (uniform weights)."""
    out = copy.deepcopy(dict(cfg))
    out["zone"] = {"lateral": [float(v) for v in lateral], "depth": [float(v) for v in depth], "height": [0.0],
                   "yaw": [0.0], "sigma": None}
    return out


def _save(fig, path: Path) -> str:
    """Write a figure as PNG atomically, close it; returns the file name."""
    import matplotlib.pyplot as plt

    from spatialopt.fileio import atomic_path

    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        plt.close(fig)
    return Path(path).name


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _f(value, digits: int = 1) -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{value:.{digits}f}"


def _clean(obj):
    """JSON-safe copy: tensors/arrays to lists, non-finite floats to None."""
    if isinstance(obj, Mapping):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (Tensor, np.ndarray)):
        return _clean(np.asarray(obj.detach().cpu() if isinstance(obj, Tensor) else obj).tolist())
    if isinstance(obj, (np.floating, np.integer)):
        obj = obj.item()
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    return obj


def _nearest(values: Sequence[float], target: float) -> int:
    return int(np.argmin(np.abs(np.asarray(values, dtype=float) - target)))


def _log_axis_freq(ax, lo=100.0, hi=20000.0):
    ax.set_xscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("frequency (Hz)")
    ax.grid(True, which="both", alpha=0.3)


# ------------------------------------------------------------------------------- analyses


def crosstalk_simulation(ctx: RunContext) -> tuple[dict, str]:
    """The virtualizer (exported taps of ``A`` and ``X``) against the relative HRTF of the real
    ±30° source through the head model, at the nominal point on the evaluation grid."""
    opt = ctx.options
    sc = ctx.eval_scene
    f = sc.freqs.to(torch.float64)
    i = sc.nominal_index
    ref = sc.H_ref[:, i].to(torch.complex128)  # (F, ear, channel L/R)
    target = ref[:, 1, 0] / ref[:, 0, 0]  # right (contra) / left (ipsi) ear for the L speaker
    ax_resp = ctx.fir_response(ctx.filterset.stages["virtualizer"], f)  # (2, F)
    a, x = ax_resp[0], ax_resp[1]
    model = x / a
    W = ctx.fir_response(ctx.filterset.fir, f).permute(2, 1, 0)  # (F, D, 3)
    e = torch.einsum("fed,fdc->fec", sc.H[:, i].to(torch.complex128), W)
    delivered = e[:, 1, 0] / e[:, 0, 0]  # what the ears get from the device's L channel
    bands = dict(magnitude_band_hz=opt["magnitude_band_hz"], delay_band_hz=opt["delay_band_hz"], itd_band_hz=opt["itd_band_hz"])
    err_model = relative_response_errors(f, target, model, **bands)
    err_delivered = relative_response_errors(f, target, delivered, **bands)
    wide = {**bands, "magnitude_band_hz": opt["wide_band_hz"]}
    for err, resp in ((err_model, model), (err_delivered, delivered)):
        w = relative_response_errors(f, target, resp, **wide)
        err["wide_magnitude_err_db_rms"], err["wide_magnitude_err_db_max"] = w["magnitude_err_db_rms"], w["magnitude_err_db_max"]
    audible = _band(f, (100.0, 16000.0))
    allpass_dev = float(_db_power(a.abs() ** 2)[audible].abs().max())
    spot = {}
    for hz in opt["spot_hz"]:
        j = _nearest(f.numpy(), hz)
        spot[f"{hz:g}"] = {"target_db": float(_db_power(target[j].abs() ** 2)), "model_db": float(_db_power(model[j].abs() ** 2)),
                           "delivered_db": float(_db_power(delivered[j].abs() ** 2))}
    params = None
    if ctx.system is not None:
        with torch.no_grad():
            p = ctx.system.virtualizer.physical()
        params = {"delay_us": float(p["delay_s"]) * 1e6, "corner_hz": float(p["corner_hz"]), "gain_db": float(p["gain_db"]),
                  "pole_radius": [float(v) for v in p["pole_radius"]],
                  "pole_angle_hz": [float(v) * ctx.fs / (2 * math.pi) for v in p["pole_angle"]]}
    fit = ctx.info.get("virtualizer_fit") or {}
    numbers = {
        "virtualizer_vs_hrtf": err_model,
        "at_the_ears_vs_hrtf": err_delivered,
        "allpass_max_dev_db": allpass_dev,
        "at_hz": spot,
        "trained_parameters": params,
        "initial_fit": {"delay_us": fit.get("delay_s", math.nan) * 1e6, "corner_hz": fit.get("corner_hz"),
                        "gain_db": fit.get("gain_db"), "fit_err_db_rms": fit.get("fit_err_db_rms")},
        "bands_hz": bands,
    }

    plt = _plt()
    lo, hi = opt["magnitude_band_hz"]
    wlo, whi = opt["wide_band_hz"]
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    fn = f.numpy()
    sel = (fn >= 50) & (fn <= 20000)
    curves = (("relative HRTF, real ±30° source", target, "k", "-"), ("virtualizer X/A (exported taps)", model, "C0", "-"),
              ("at the ears through the device (L channel)", delivered, "C3", "--"))
    for label, resp, color, style in curves:
        axes[0, 0].plot(fn[sel], _db_power(resp.abs() ** 2).numpy()[sel], style, color=color, label=label)
        axes[0, 1].plot(fn[sel], group_delay_s(resp, f).numpy()[sel] * 1e6, style, color=color, label=label)
    axes[0, 0].plot(fn[sel], _db_power(a.abs() ** 2).numpy()[sel], ":", color="C2", label="all-pass |A|")
    axes[0, 0].set_ylabel("contra / ipsi (dB)")
    axes[0, 0].set_ylim(-30, 5)
    axes[0, 0].legend(fontsize=8)
    axes[0, 1].set_ylabel("group delay of contra / ipsi (µs)")
    axes[0, 1].set_ylim(-200, 1000)
    for label, resp, color, style in curves[1:]:
        axes[1, 0].plot(fn[sel], (_db_power(resp.abs() ** 2) - _db_power(target.abs() ** 2)).numpy()[sel], style, color=color, label=label)
    axes[1, 0].axvspan(lo, hi, color="0.9", zorder=0)
    axes[1, 0].set_ylabel("magnitude error (dB)")
    axes[1, 0].set_ylim(-12, 12)
    axes[1, 0].legend(fontsize=8)
    for ax in (axes[0, 0], axes[0, 1], axes[1, 0]):
        _log_axis_freq(ax, 50, 20000)
    taps = ctx.filterset.stages["virtualizer"].double().numpy()
    t_ms = np.arange(taps.shape[-1]) / ctx.fs * 1e3
    axes[1, 1].plot(t_ms, taps[0], label="A (all-pass)")
    axes[1, 1].plot(t_ms, taps[1], label="X (delayed low-pass)")
    axes[1, 1].set_xlabel("time (ms)")
    axes[1, 1].set_ylabel("tap value")
    axes[1, 1].grid(True, alpha=0.3)
    axes[1, 1].legend(fontsize=8)
    fig.suptitle("crosstalk simulation: virtualizer vs the head model's relative HRTF (±30°, nominal point)")
    fig.tight_layout()
    png = _save(fig, ctx.run_dir / "crosstalk_simulation.png")

    md = [
        "### crosstalk_simulation",
        "",
        f"Virtualizer (exported taps) vs the relative HRTF `H_contra/H_ipsi` of a real ±30° source at the nominal point "
        f"(magnitude error over {lo:g}–{hi:g} Hz, group delay over {bands['delay_band_hz'][0]:g}–{bands['delay_band_hz'][1]:g} Hz, "
        f"ITD = mean phase delay {bands['itd_band_hz'][0]:g}–{bands['itd_band_hz'][1]:g} Hz). ![]({png})",
        "",
        f"| | magnitude error rms / max, {lo:g}–{hi:g} Hz (dB) | … {wlo:g}–{whi:g} Hz (dB) | group-delay error rms (µs) | ITD (µs) |",
        "|---|---|---|---|---|",
        f"| real ±30° source (target) | — | — | — | {_f(err_model['itd_target_us'], 0)} |",
        f"| virtualizer X/A | {_f(err_model['magnitude_err_db_rms'], 2)} / {_f(err_model['magnitude_err_db_max'])} | "
        f"{_f(err_model['wide_magnitude_err_db_rms'], 2)} / {_f(err_model['wide_magnitude_err_db_max'])} | "
        f"{_f(err_model['group_delay_err_us_rms'], 0)} | {_f(err_model['itd_model_us'], 0)} |",
        f"| at the ears through the device | {_f(err_delivered['magnitude_err_db_rms'], 2)} / {_f(err_delivered['magnitude_err_db_max'])} | "
        f"{_f(err_delivered['wide_magnitude_err_db_rms'], 2)} / {_f(err_delivered['wide_magnitude_err_db_max'])} | "
        f"{_f(err_delivered['group_delay_err_us_rms'], 0)} | {_f(err_delivered['itd_model_us'], 0)} |",
        "",
        "contra/ipsi level (dB) at " + ", ".join(
            f"{k} Hz: {_f(v['target_db'])} target / {_f(v['model_db'])} X/A / {_f(v['delivered_db'])} ears" for k, v in spot.items()) + ".",
        f"All-pass |A| within ±{allpass_dev:.2f} dB over 100 Hz–16 kHz.",
    ]
    if params:
        md.append(f"Trained crosstalk path: delay {params['delay_us']:.0f} µs, corner {params['corner_hz']:.0f} Hz, "
                  f"gain {params['gain_db']:.1f} dB (initial fit: {numbers['initial_fit']['delay_us']:.0f} µs, "
                  f"{_f(fit.get('corner_hz'), 0)} Hz, {_f(fit.get('gain_db'))} dB).")
    return numbers, "\n".join(md) + "\n"


def _separation_map(H: Tensor, ctc_taps: Tensor, ctx: RunContext, freqs: Tensor) -> Tensor:
    """(F, P) separation (dB, mean of the two sides) of CTC taps (2, D, T) on ear transfer H."""
    C = ctx.fir_response(ctc_taps, freqs).permute(2, 1, 0)  # (F, D, 2)
    return baselines.separation_db(H.to(torch.complex128), C)


def _point_design(ctx: RunContext) -> tuple[Tensor, dict]:
    """Optimise the same system at the nominal point only (a second run in ``point_design/``);
    returns its exported CTC taps and its metrics."""
    from spatialopt.experiment import run_experiment
    from spatialopt.filterset import FilterSet

    sub = copy.deepcopy(dict(ctx.cfg))
    sub["zone"] = {"lateral": [0.0], "depth": [0.0], "height": [0.0], "yaw": [0.0], "sigma": None}
    sub["analysis"] = []
    sub["analysis_options"] = {}
    sub["plots"] = False
    out = ctx.run_dir / "point_design"
    ctx.log("ctc_zone: optimising the same system at the nominal point only (point_design/) ...")
    metrics = run_experiment(sub, out, progress=False, log=lambda *a: None)
    fset = FilterSet.load(out / str((sub.get("export") or {}).get("dir", "filterset")))
    return fset.stages["ctc"], metrics


def ctc_zone(ctx: RunContext) -> tuple[dict, str]:
    """Separation vs lateral offset × frequency for the zone design, a point design and the
    closed-form baselines (all from FIR taps, on the evaluation grid)."""
    from spatialopt.config import scene_from_config

    opt = ctx.options
    lateral = [float(v) for v in opt["lateral_m"]]
    line = scene_from_config(_with_zone(ctx.eval_cfg, lateral, [0.0]))
    f = line.freqs.to(torch.float64)
    designs = {"ours, zone design": ctx.filterset.stages["ctc"]}
    point_metrics = None
    if opt["point_design"]:
        designs["ours, point design"], point_metrics = _point_design(ctx)
    designs["kirkeby (closed-form, point)"] = ctx.info["baselines"]["kirkeby"]["ctc"]
    designs["ls_zone (closed-form, zone)"] = ctx.info["baselines"]["ls_zone"]["ctc"]
    maps = {name: _separation_map(line.H, taps, ctx, f) for name, taps in designs.items()}  # (F, P)
    numbers: dict[str, Any] = {"lateral_m": lateral, "band_hz": list(CTC_BAND_HZ), "designs": {}}
    for name, sep in maps.items():
        band = baselines.band_average(sep, f, CTC_BAND_HZ).numpy()
        low = baselines.band_average(sep, f, CTC_LOW_BAND_HZ).numpy()
        entry = {"band_mean_db": band.tolist(), "low_band_mean_db": low.tolist(),
                 "at_m": {f"{v:+g}": float(np.interp(v, lateral, band)) for v in opt["report_at_m"] if lateral[0] <= v <= lateral[-1]}}
        for thr in opt["thresholds_db"]:
            ext = contiguous_extent(lateral, band, thr)
            entry[f"extent_m_at_{thr:g}db"] = None if ext is None else list(ext)
        numbers["designs"][name] = entry
    if point_metrics is not None:
        numbers["point_design_metrics"] = {k: point_metrics["ours"]["ctc"]["separation_db"][k] for k in ("sweet_mean", "zone_mean", "zone_p10")}
    numbers["zone_design_metrics"] = dict(ctx.metrics.get("ours", {}).get("ctc", {}).get("separation_db", {}))

    plt = _plt()
    n = len(maps)
    cols = (n + 1) // 2 + 1
    fig = plt.figure(figsize=(4.8 * cols, 8.0), layout="constrained")
    grid = fig.add_gridspec(2, cols)
    fn = f.numpy()
    sel = (fn >= 200) & (fn <= 16000)
    y_cm = np.asarray(lateral) * 100
    mesh, map_axes = None, []
    for k, (name, sep) in enumerate(maps.items()):
        ax = fig.add_subplot(grid[k // (cols - 1), k % (cols - 1)])
        map_axes.append(ax)
        mesh = ax.pcolormesh(y_cm, fn[sel], sep.numpy()[sel], vmin=0, vmax=40, cmap="viridis", shading="nearest")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        for edge in CTC_BAND_HZ:
            ax.axhline(edge, color="w", lw=0.6, ls="--")
        ax.set_xlabel("lateral offset (cm)")
        ax.set_ylabel("frequency (Hz)")
    fig.colorbar(mesh, ax=map_axes, label="separation (dB)", shrink=0.8)
    ax = fig.add_subplot(grid[:, cols - 1])
    for name, entry in numbers["designs"].items():
        ax.plot(y_cm, entry["band_mean_db"], marker=".", label=name)
    for thr in opt["thresholds_db"]:
        ax.axhline(thr, color="0.5", lw=0.6, ls=":")
    ax.set_xlabel("lateral offset (cm)")
    ax.set_ylabel(f"separation {CTC_BAND_HZ[0] / 1e3:g}–{CTC_BAND_HZ[1] / 1e3:g} kHz (dB)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.suptitle("CTC separation vs lateral head offset (depth 0, yaw 0), from the FIR taps; dashed: the metric band")
    png = _save(fig, ctx.run_dir / "ctc_zone.png")

    cols = [k for k in numbers["designs"][next(iter(maps))]["at_m"]]
    thr_keys = [f"extent_m_at_{thr:g}db" for thr in opt["thresholds_db"]]
    md = ["### ctc_zone", "",
          f"CTC separation (mean of both sides) vs lateral offset, band-averaged {CTC_BAND_HZ[0]:g}–{CTC_BAND_HZ[1]:g} Hz, "
          f"evaluation grid, from the FIR taps. ![]({png})", "",
          "| design | " + " | ".join(f"{float(c) * 100:+.1f} cm" for c in cols) + " | "
          + " | ".join(f"range ≥ {thr:g} dB (cm)" for thr in opt["thresholds_db"]) + " |",
          "|---|" + "---|" * (len(cols) + len(thr_keys))]
    for name, entry in numbers["designs"].items():
        ranges = []
        for key in thr_keys:
            ext = entry[key]
            ranges.append("—" if ext is None else f"{ext[0] * 100:+.1f} … {ext[1] * 100:+.1f}")
        md.append(f"| {name} | " + " | ".join(_f(entry["at_m"][c]) for c in cols) + " | " + " | ".join(ranges) + " |")
    if point_metrics is not None:
        pm, zm = numbers["point_design_metrics"], numbers["zone_design_metrics"]
        md += ["", f"Held-out evaluation zone (metrics.json): zone design sweet / zone mean / p10 "
                   f"{_f(zm.get('sweet_mean'))} / {_f(zm.get('zone_mean'))} / {_f(zm.get('zone_p10'))} dB; point design "
                   f"{_f(pm['sweet_mean'])} / {_f(pm['zone_mean'])} / {_f(pm['zone_p10'])} dB."]
    return numbers, "\n".join(md) + "\n"


def _beam_designs(ctx: RunContext, freqs: Tensor) -> dict[str, Tensor]:
    """Centre-channel driver gains (F, D): matrix mix, and the C column of the exported composite."""
    octaves = float((ctx.cfg.get("system") or {}).get("crossover_octaves", 1.0 / 3.0))
    out = {"matrix mix (all drivers equal)": matrix_mix(freqs, ctx.eval_scene.driver_bands, octaves),
           "ours": ctx.fir_response(ctx.filterset.fir[2], freqs).T}
    return out


def _beam_heatmap(ax, fn, az_deg, pattern, title):
    sel = (fn >= 100) & (fn <= 20000)
    mesh = ax.pcolormesh(az_deg, fn[sel], pattern[sel], vmin=-40, vmax=6, cmap="magma", shading="nearest")
    ax.set_yscale("log")
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("azimuth (deg, + = device left)")
    ax.set_ylabel("frequency (Hz)")
    for x in (-90, -45, 45, 90):
        ax.axvline(x, color="w", lw=0.5, alpha=0.5)
    return mesh


def _beam_numbers(G: Tensor, az: Tensor, B: Tensor, f: Tensor, sc, opt: Mapping) -> dict:
    pattern = baselines.beam_pattern_db(G, B, az).numpy()  # (F, A)
    az_deg = np.degrees(az.numpy())
    look = baselines.look_response(G, az)
    null = baselines.null_depth_db(G, B, f, ring_az=az, per_frequency=True).numpy()
    dev = baselines.mainlobe_deviation_db(G, B, f, ring_az=az, per_frequency=True).numpy()
    di = baselines.directivity_index_db(sc.G_sphere.to(torch.complex128), sc.sphere_weights.to(torch.float64), look, B).numpy()
    wng = baselines.white_noise_gain_db(look, B).numpy()
    rear = pattern[:, _nearest(az_deg, -180.0)]
    fn = f.numpy()
    out = {"at_hz": {}}
    for hz in opt["polar_hz"]:
        j = _nearest(fn, hz)
        out["at_hz"][f"{hz:g}"] = {"side_90_db": float(null[j]), "mainlobe_dev_45_db": float(dev[j]), "di_db": float(di[j]),
                                   "rear_db": float(rear[j]), "wng_db": float(wng[j]), "beamwidth_6db_deg": beamwidth_deg(pattern[j], az_deg)}
    for key, band in (("band", opt["band_hz"]), ("metric_band", METRIC_BEAM_BAND_HZ)):
        sel = (fn >= band[0]) & (fn <= band[1])
        out[key] = {"band_hz": list(band), "side_90_db": float(null[sel].mean()), "mainlobe_dev_45_db": float(dev[sel].mean()),
                    "di_db": float(di[sel].mean()), "wng_db_min": float(wng[sel].min()), "rear_db": float(rear[sel].mean())}
    return out, pattern


def beamformer(ctx: RunContext) -> tuple[dict, str]:
    """Centre-channel horizontal response, frequency × azimuth and polar, matrix mix vs ours."""
    opt = ctx.options
    sc = ctx.eval_scene
    f = sc.freqs.to(torch.float64)
    G = sc.G_ring.to(torch.complex128)
    az = sc.ring_az.to(torch.float64)
    az_deg = np.degrees(az.numpy())
    designs = _beam_designs(ctx, f)
    numbers, patterns = {}, {}
    for name, B in designs.items():
        numbers[name], patterns[name] = _beam_numbers(G, az, B, f, sc, opt)

    plt = _plt()
    fn = f.numpy()
    fig, axes = plt.subplots(1, len(designs), figsize=(6 * len(designs), 4.4))
    for ax, name in zip(axes, designs):
        mesh = _beam_heatmap(ax, fn, az_deg, patterns[name], f"centre channel: {name}")
    fig.colorbar(mesh, ax=list(axes), label="dB re on-axis")
    png_map = _save(fig, ctx.run_dir / "beamformer_heatmap.png")

    hz_list = list(opt["polar_hz"])
    fig, axes = plt.subplots(1, len(hz_list), figsize=(3.6 * len(hz_list), 3.9), subplot_kw={"projection": "polar"})
    axes = np.atleast_1d(axes)
    order = np.argsort(az_deg)
    for ax, hz in zip(axes, hz_list):
        j = _nearest(fn, hz)
        for name in designs:
            p = np.clip(patterns[name][j], -40, 6)[order]
            ax.plot(np.radians(az_deg[order]), p, label=name)
        ax.set_theta_zero_location("N")  # counter-clockwise from the front: + azimuth (device left) on the left
        ax.set_thetagrids(range(0, 360, 45), labels=["0", "45", "90", "135", "180", "−135", "−90", "−45"])
        ax.set_ylim(-40, 6)
        ax.set_yticks([-30, -20, -10, 0])
        ax.set_title(f"{fn[j]:.0f} Hz", fontsize=9)
    axes[0].legend(fontsize=7, loc="lower left", bbox_to_anchor=(-0.3, -0.25))
    fig.suptitle("centre channel, horizontal polar (dB re on-axis; 0° = toward the listener, + = device left)")
    fig.tight_layout()
    png_polar = _save(fig, ctx.run_dir / "beamformer_polar.png")

    band = opt["band_hz"]
    md = ["### beamformer", "",
          f"Centre channel over the horizontal ring: matrix mix (every driver the same signal through its crossover) vs "
          f"the optimised beam (C column of the exported composite FIR). ![]({png_map}) ![]({png_polar})", "",
          "| design | ±90° (dB) | worst ±45° dev (dB) | DI (dB) | rear (dB) | min WNG (dB) | band |",
          "|---|---|---|---|---|---|---|"]
    for name, num in numbers.items():
        for key in ("band", "metric_band"):
            b = num[key]
            md.append(f"| {name} | {_f(b['side_90_db'])} | {_f(b['mainlobe_dev_45_db'])} | {_f(b['di_db'])} | {_f(b['rear_db'])} | "
                      f"{_f(b['wng_db_min'])} | {b['band_hz'][0]:g}–{b['band_hz'][1]:g} Hz |")
    md += ["", "| design | " + " | ".join(f"{hz:g} Hz: ±90° / rear / DI / WNG (dB) / −6 dB width" for hz in hz_list) + " |",
           "|---|" + "---|" * len(hz_list)]
    for name, num in numbers.items():
        cells = []
        for hz in hz_list:
            a = num["at_hz"][f"{hz:g}"]
            cells.append(f"{_f(a['side_90_db'])} / {_f(a['rear_db'])} / {_f(a['di_db'])} / {_f(a['wng_db'])} / {a['beamwidth_6db_deg']:.0f}°")
        md.append(f"| {name} | " + " | ".join(cells) + " |")
    md.append(f"\nBand averages are arithmetic means of per-frequency dB values over the bins of the band "
              f"({band[0]:g}–{band[1]:g} Hz is the realistic centre-beam band of REFERENCES.md; 800–4000 Hz the metric's).")
    return _clean(numbers), "\n".join(md) + "\n"


def room_depth(ctx: RunContext) -> tuple[dict, str]:
    """DRR vs distance on the device axis in the shoebox, and the critical distance, for the
    centre channel with the beam, with the matrix mix, and for a unit monopole (Q = 1, a check
    of the measurement against the formula)."""
    from spatialopt.acoustics.drivers import Driver
    from spatialopt.acoustics.scene import ear_transfer, far_field_patterns
    from spatialopt.acoustics import sh
    from spatialopt.geometry import unit_vector

    opt = ctx.options
    cfg = ctx.cfg
    fs = ctx.fs
    c = float((cfg.get("scene") or {}).get("speed_of_sound", 343.0))
    device, listener, room, distances, positions, listener_cfg = _room_depth_geometry(cfg, opt, fs)
    all_f = torch.fft.rfftfreq(int(opt["n_fft"]), 1.0 / fs).to(torch.float64)
    f = all_f[_band(all_f, opt["band_hz"])]
    eye = torch.eye(3, dtype=torch.float64)
    zero = torch.zeros(3, dtype=torch.float64)
    mono = Driver(name="unit_monopole", model="monopole", position=zero, rotation=eye, origin=zero, band_hz=(0.0, fs / 2))
    drivers = [*device.drivers, mono]
    yaw = torch.zeros(1, dtype=torch.float64)
    total, direct = [], []
    chunk = int(opt["freq_chunk"])
    ctx.log(f"room_depth: {len(distances)} distances × {f.numel()} frequencies, image sources to order {room.max_order} ...")
    for start in range(0, f.numel(), chunk):
        fc = f[start:start + chunk]
        total.append(ear_transfer(drivers, listener, room, fc, positions, yaw, device.sh_order, c)[:, :, 0])
        direct.append(ear_transfer(drivers, listener, None, fc, positions, yaw, device.sh_order, c)[:, :, 0])
    H_total, H_direct = torch.cat(total), torch.cat(direct)  # (F, Q, 2, D+1)

    n_d = len(device.drivers)
    pad = lambda B: torch.cat([B, torch.zeros(B.shape[0], 1, dtype=B.dtype)], -1)  # noqa: E731
    octaves = float((cfg.get("system") or {}).get("crossover_octaves", 1.0 / 3.0))
    bands = torch.tensor([d.band_hz for d in device.drivers], dtype=torch.float64)
    designs = {
        "ours (beam)": pad(ctx.fir_response(ctx.filterset.fir[2], f).T),
        "matrix mix (no beam)": pad(matrix_mix(f, bands, octaves)),
        "unit monopole (Q = 1)": torch.cat([torch.zeros(f.numel(), n_d, dtype=torch.complex128),
                                            torch.ones(f.numel(), 1, dtype=torch.complex128)], -1),
    }
    # Directivity factor from the free-field far field of the same drivers (every 4th frequency).
    fq = f[:: max(1, int(opt["q_stride"]))]
    colat, az, weights = sh.gauss_sphere(int((cfg.get("scene") or {}).get("sphere_order", 30)))
    g_sphere = far_field_patterns(drivers, fq, unit_vector(az, math.pi / 2 - colat), device.sh_order, c)
    g_look = far_field_patterns(drivers, fq, torch.tensor([[1.0, 0.0, 0.0]], dtype=torch.float64), device.sh_order, c)[:, 0]
    volume = float(torch.prod(room.dims))
    t60 = room.sabine_t60(c)
    t60_e = eyring_t60(room, c)
    nominal = float(listener_cfg.get("distance", 2.0))
    numbers: dict[str, Any] = {"distances_m": distances, "band_hz": list(opt["band_hz"]), "max_order": room.max_order,
                               "listener": listener_cfg.get("type"), "volume_m3": volume, "t60_sabine_s": t60,
                               "t60_eyring_s": t60_e, "designs": {}}
    q_curves = {}
    for name, B in designs.items():
        d_pow = (torch.einsum("fqed,fd->fqe", H_direct, B).abs() ** 2).sum(dim=(0, 2))
        r_pow = (torch.einsum("fqed,fd->fqe", H_total - H_direct, B).abs() ** 2).sum(dim=(0, 2))
        drr = (_db_power(d_pow) - _db_power(r_pow)).numpy()
        q_band, q_f = directivity_factor(g_look, g_sphere, weights, B[:: max(1, int(opt["q_stride"]))])
        q_curves[name] = q_f
        rc = critical_distance_from_drr(distances, drr)
        numbers["designs"][name] = {
            "drr_db": drr.tolist(),
            "drr_db_at_nominal": float(np.interp(math.log(nominal), np.log(distances), drr)),
            "q": q_band, "di_db": 10 * math.log10(q_band),
            "rc_measured_fit_m": rc["fit_m"], "rc_measured_crossing_m": rc["crossing_m"],
            "rc_fit_residual_db_rms": rc["fit_residual_db_rms"],
            "rc_formula_sabine_m": critical_distance_formula(q_band, volume, t60),
            "rc_formula_eyring_m": critical_distance_formula(q_band, volume, t60_e),
        }
    ours, mix = numbers["designs"]["ours (beam)"], numbers["designs"]["matrix mix (no beam)"]
    numbers["beam_gain"] = {"drr_db_at_nominal": ours["drr_db_at_nominal"] - mix["drr_db_at_nominal"],
                            "di_db": ours["di_db"] - mix["di_db"], "rc_ratio_measured": ours["rc_measured_fit_m"] / mix["rc_measured_fit_m"]}
    numbers["design_scene_drr_db"] = {k: ((ctx.metrics.get(k) or {}).get("room") or {}).get("drr_db") for k in ("ours", "delay_and_sum", "kirkeby")}

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    r = np.asarray(distances)
    r_line = np.geomspace(r.min(), r.max(), 50)
    for k, (name, entry) in enumerate(numbers["designs"].items()):
        axes[0].semilogx(r, entry["drr_db"], "o-", color=f"C{k}", label=f"{name}: measured, r_c = {entry['rc_measured_fit_m']:.2f} m")
        axes[0].semilogx(r_line, 20 * np.log10(entry["rc_formula_sabine_m"] / r_line), "--", color=f"C{k}",
                         label=f"0.057·√(QV/T60), Q = {entry['q']:.1f}: r_c = {entry['rc_formula_sabine_m']:.2f} m")
        axes[1].semilogx(fq.numpy(), 10 * np.log10(q_curves[name].numpy()), color=f"C{k}", label=name)
    axes[0].axhline(0, color="k", lw=0.6)
    axes[0].axvline(nominal, color="0.5", lw=0.6, ls=":")
    axes[0].set_xlabel("distance on the device axis (m)")
    axes[0].set_ylabel(f"DRR {opt['band_hz'][0]:g}–{opt['band_hz'][1]:g} Hz (dB)")
    axes[0].grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[1].set_xlabel("frequency (Hz)")
    axes[1].set_ylabel("directivity index (dB)")
    axes[1].grid(True, which="both", alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(f"centre channel in the shoebox (V = {volume:.0f} m³, Sabine T60 = {t60:.2f} s, image sources to order {room.max_order})")
    fig.tight_layout()
    png = _save(fig, ctx.run_dir / "room_depth.png")

    md = ["### room_depth", "",
          f"Centre channel on the device axis in the shoebox ({volume:.0f} m³, Sabine T60 {t60:.2f} s, Eyring {t60_e:.2f} s; image "
          f"sources to order {room.max_order}; {listener_cfg.get('type')} receivers at the ears, both ears' energy; "
          f"{opt['band_hz'][0]:g}–{opt['band_hz'][1]:g} Hz). Measured r_c: fit of DRR(r) = 20·log10(r_c/r) over "
          f"{r.min():g}–{r.max():g} m (and the 0 dB crossing); formula: 0.057·√(Q·V/T60) with the measured band Q. ![]({png})", "",
          f"| source | Q (DI dB) | DRR at {nominal:g} m (dB) | r_c measured: fit / crossing (m) "
          "| r_c formula, Sabine / Eyring T60 (m) | fit residual (dB rms) |",
          "|---|---|---|---|---|---|"]
    for name, e in numbers["designs"].items():
        md.append(f"| {name} | {e['q']:.2f} ({e['di_db']:.1f}) | {e['drr_db_at_nominal']:.1f} | {e['rc_measured_fit_m']:.2f} / "
                  f"{_f(e['rc_measured_crossing_m'], 2)} | {e['rc_formula_sabine_m']:.2f} / {e['rc_formula_eyring_m']:.2f} | "
                  f"{e['rc_fit_residual_db_rms']:.1f} |")
    g = numbers["beam_gain"]
    md += ["", f"The beam raises the DRR at {nominal:g} m by {g['drr_db_at_nominal']:.1f} dB (DI +{g['di_db']:.1f} dB) and the measured "
               f"critical distance by ×{g['rc_ratio_measured']:.2f}. Design-scene metric `room.drr_db` (listener "
               f"`{(cfg.get('listener') or {}).get('type')}`, order {cfg['room'].get('max_order', 3)}): ours "
               f"{_f(numbers['design_scene_drr_db']['ours'])} dB, delay-and-sum beam {_f(numbers['design_scene_drr_db']['delay_and_sum'])} dB."]
    return _clean(numbers), "\n".join(md) + "\n"


def listening_zone(ctx: RunContext) -> tuple[dict, str]:
    """CTC separation and ILD error of the full system over a wide lateral × distance grid."""
    from spatialopt.config import scene_from_config

    opt = ctx.options
    lateral = sorted(float(v) for v in opt["lateral_m"])
    distances = sorted(float(v) for v in opt["distance_m"])
    nominal = float((ctx.cfg.get("listener") or {}).get("distance", 2.0))
    if min(abs(v) for v in lateral) > 1e-9 or min(abs(d - nominal) for d in distances) > 1e-9:
        raise ConfigError("analysis_options.listening_zone", {"lateral_m": lateral, "distance_m": distances},
                          f"the grid must contain lateral 0 and the nominal distance {nominal:g} m (the reference pair is placed from it)")
    grid = scene_from_config(_with_zone(ctx.eval_cfg, lateral, [d - nominal for d in distances]))
    f = grid.freqs.to(torch.float64)
    shape = (len(distances), len(lateral))  # points are depth-major (build_zone)
    W = ctx.fir_response(ctx.filterset.fir, f).permute(2, 1, 0)
    H = grid.H.to(torch.complex128)
    maps = {name: baselines.band_average(_separation_map(H, taps, ctx, f), f, CTC_BAND_HZ).reshape(shape).numpy()
            for name, taps in (("ours", ctx.filterset.stages["ctc"]), ("kirkeby", ctx.info["baselines"]["kirkeby"]["ctc"]))}
    ild = ild_error_db_rms(H, grid.H_ref.to(torch.complex128), W, f).reshape(shape).numpy()
    shift = ild_shift_db(H, grid.H_ref.to(torch.complex128), W, f).reshape(shape).numpy()
    thr, ild_thr = float(opt["threshold_db"]), float(opt["ild_threshold_db"])
    i_nom, j_nom = _nearest(distances, nominal), _nearest(lateral, 0.0)
    numbers: dict[str, Any] = {"lateral_m": lateral, "distance_m": distances, "band_hz": list(CTC_BAND_HZ),
                               "threshold_db": thr, "ild_threshold_db": ild_thr, "designs": {}}
    for name, m in maps.items():
        lat_ext = contiguous_extent(lateral, m[i_nom], thr)
        dep_ext = contiguous_extent(distances, m[:, j_nom], thr, centre=nominal)
        numbers["designs"][name] = {
            "separation_db": m.tolist(), "nominal_db": float(m[i_nom, j_nom]),
            "lateral_extent_m": None if lat_ext is None else list(lat_ext),
            "distance_extent_m": None if dep_ext is None else list(dep_ext),
            "fraction_above_threshold": float((m >= thr).mean()),
        }
    numbers["ild_err_db_rms"] = ild.tolist()
    numbers["ild_shift_db"] = shift.tolist()
    numbers["at_nominal_distance"] = {f"{v:+g}": {"separation_db": float(maps["ours"][i_nom, j]), "ild_err_db": float(ild[i_nom, j]),
                                                 "ild_shift_db": float(shift[i_nom, j])} for j, v in enumerate(lateral)}
    numbers["ild_fraction_within"] = float((ild <= ild_thr).mean())
    numbers["ild_lateral_extent_m"] = contiguous_extent(lateral, -ild[i_nom], -ild_thr)
    numbers["ild_distance_extent_m"] = contiguous_extent(distances, -ild[:, j_nom], -ild_thr, centre=nominal)
    numbers["image_holds_fraction"] = float(((maps["ours"] >= thr) & (ild <= ild_thr)).mean())

    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))
    x_cm = np.asarray(lateral) * 100
    for ax, (title, m, vmin, vmax, cmap, level) in zip(axes, (
            ("CTC separation, ours (dB)", maps["ours"], 0, 35, "viridis", thr),
            ("CTC separation, kirkeby (dB)", maps["kirkeby"], 0, 35, "viridis", thr),
            ("ILD error vs a real ±30° pair, ours (dB rms)", ild, 0, 8, "magma_r", ild_thr))):
        mesh = ax.pcolormesh(x_cm, distances, m, vmin=vmin, vmax=vmax, cmap=cmap, shading="nearest")
        if m.shape[0] > 1 and m.shape[1] > 1:
            ax.contour(x_cm, distances, m, levels=[level], colors="w", linewidths=1.2)
        ax.plot([0], [nominal], "r*", ms=10)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("lateral offset (cm)")
        ax.set_ylabel("distance from the device (m)")
        fig.colorbar(mesh, ax=ax)
    fig.suptitle(f"where the image holds (yaw 0): separation {CTC_BAND_HZ[0]:g}–{CTC_BAND_HZ[1]:g} Hz (contour {thr:g} dB), "
                 f"ILD error 0.5–8 kHz (contour {ild_thr:g} dB)")
    fig.tight_layout()
    png = _save(fig, ctx.run_dir / "listening_zone.png")

    def ext(e, metres=False):
        if e is None:
            return "—"
        return f"{e[0]:.2f} … {e[1]:.2f} m" if metres else f"{e[0] * 100:+.0f} … {e[1] * 100:+.0f} cm"

    show_lat = [v for v in opt["table_lateral_m"] if lateral[0] <= v <= lateral[-1]]
    md = ["### listening_zone", "",
          f"Full system (exported FIR taps) over {len(lateral)} × {len(distances)} head positions, lateral "
          f"{lateral[0] * 100:+.0f}…{lateral[-1] * 100:+.0f} cm × {distances[0]:g}–{distances[-1]:g} m, yaw 0. ![]({png})", "",
          f"| design | at the nominal point (dB) | lateral range ≥ {thr:g} dB at {nominal:g} m "
          f"| distance range ≥ {thr:g} dB on axis |",
          "|---|---|---|---|"]
    for name, e in numbers["designs"].items():
        md.append(f"| {name} | {e['nominal_db']:.1f} | {ext(e['lateral_extent_m'])} | {ext(e['distance_extent_m'], metres=True)} |")
    md += ["", f"Ours, CTC separation {CTC_BAND_HZ[0]:g}–{CTC_BAND_HZ[1]:g} Hz / ILD error 0.5–8 kHz (dB), mean of ±lateral:", "",
           "| distance | " + " | ".join(f"{v * 100:g} cm" for v in show_lat) + " |", "|---|" + "---|" * len(show_lat)]
    for i, d in enumerate(distances):
        cells = []
        for v in show_lat:
            js = [_nearest(lateral, s * v) for s in ((1,) if v == 0 else (1, -1))]
            cells.append(f"{np.mean([maps['ours'][i, j] for j in js]):.1f} / {np.mean([ild[i, j] for j in js]):.1f}")
        md.append(f"| {d:g} m | " + " | ".join(cells) + " |")
    row = numbers["at_nominal_distance"]
    md += ["", f"Image shift at {nominal:g} m (signed ILD deviation, (ΔILD_L − ΔILD_R)/2, + = toward the listener's left): "
               + ", ".join(f"{float(k) * 100:+g} cm {v['ild_shift_db']:+.1f} dB" for k, v in row.items()) + "."]
    md += ["", f"ILD error ≤ {ild_thr:g} dB rms (ours): lateral range at {nominal:g} m {ext(numbers['ild_lateral_extent_m'])}, "
               f"distance range on axis {ext(numbers['ild_distance_extent_m'], metres=True)}."]
    return _clean(numbers), "\n".join(md) + "\n"


def device_summary(ctx: RunContext) -> tuple[dict, str]:
    """One device's headline figures: separation vs frequency (nominal point and the held-out
    zone's 10th percentile), the centre beam over frequency × azimuth, and the metrics."""
    sc = ctx.eval_scene
    f = sc.freqs.to(torch.float64)
    H = sc.H.to(torch.complex128)
    curves = {}
    for name, taps in (("ours", ctx.filterset.stages["ctc"]), ("kirkeby", ctx.info["baselines"]["kirkeby"]["ctc"])):
        sep = _separation_map(H, taps, ctx, f)  # (F, P)
        curves[name] = {"nominal": sep[:, sc.nominal_index], "p10": torch.quantile(sep, 0.1, dim=1)}
    pos = sc.driver_positions.to(torch.float64)
    aperture = float(torch.cdist(pos, pos).max())
    octave_bands = [(500, 1000), (1000, 2000), (2000, 4000), (4000, 8000), (8000, 16000)]
    numbers: dict[str, Any] = {"device": (ctx.cfg.get("device") or {}).get("name"), "n_drivers": len(sc.driver_names),
                               "aperture_m": aperture, "separation_octaves_db": {}}
    for name, cur in curves.items():
        numbers["separation_octaves_db"][name] = {
            f"{lo}-{hi}": {"nominal": float(baselines.band_average(cur["nominal"], f, (lo, hi))),
                           "p10": float(baselines.band_average(cur["p10"], f, (lo, hi)))} for lo, hi in octave_bands}
    headline = {}
    for design in ("ours", "kirkeby"):
        m = ctx.metrics.get(design) or {}
        headline[design] = {
            "sweet_db": m.get("ctc", {}).get("separation_db", {}).get("sweet_mean"),
            "zone_p10_db": m.get("ctc", {}).get("separation_db", {}).get("zone_p10"),
            "low_band_sweet_db": m.get("ctc", {}).get("low_band", {}).get("separation_db", {}).get("sweet_mean"),
            "ild_err_db": m.get("virtual", {}).get("ild_err_db_rms"), "itd_err_us": m.get("virtual", {}).get("itd_err_us_rms"),
            "null_depth_db": m.get("beam", {}).get("null_depth_db"), "di_db": m.get("beam", {}).get("di_db"),
            "mainlobe_dev_db": m.get("beam", {}).get("mainlobe_dev_db"), "tonal_db": m.get("tonal", {}).get("dev_db_rms"),
            "wng_db_min": m.get("effort", {}).get("wng_db_min"), "max_gain_db": m.get("effort", {}).get("max_gain_db"),
        }
    numbers["metrics"] = headline

    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.3))
    fn = f.numpy()
    sel = (fn >= 100) & (fn <= 20000)
    for k, (name, cur) in enumerate(curves.items()):
        axes[0].plot(fn[sel], cur["nominal"].numpy()[sel], color=f"C{k}", label=f"{name}, nominal point")
        axes[0].plot(fn[sel], cur["p10"].numpy()[sel], "--", color=f"C{k}", label=f"{name}, held-out zone p10")
    _log_axis_freq(axes[0])
    axes[0].set_ylabel("CTC separation (dB)")
    axes[0].set_ylim(-5, 50)
    axes[0].legend(fontsize=8)
    B = ctx.fir_response(ctx.filterset.fir[2], f).T
    pattern = baselines.beam_pattern_db(sc.G_ring.to(torch.complex128), B, sc.ring_az).numpy()
    mesh = _beam_heatmap(axes[1], fn, np.degrees(sc.ring_az.numpy()), pattern, "centre channel (ours), dB re on-axis")
    fig.colorbar(mesh, ax=axes[1])
    fig.suptitle(f"{numbers['device']}: {numbers['n_drivers']} drivers, aperture {aperture * 100:.0f} cm")
    fig.tight_layout()
    png = _save(fig, ctx.run_dir / "device_summary.png")

    rows = (("CTC separation 1.5–8 kHz, sweet / zone p10 (dB)", "sweet_db", "zone_p10_db"),
            ("CTC separation 0.5–1.5 kHz, sweet (dB)", "low_band_sweet_db", None),
            ("ILD error (dB rms) / ITD error (µs rms)", "ild_err_db", "itd_err_us"),
            ("beam ±90° / DI (dB)", "null_depth_db", "di_db"),
            ("tonal deviation (dB rms) / min WNG (dB)", "tonal_db", "wng_db_min"))
    md = ["### device_summary", "", f"`{numbers['device']}`: {numbers['n_drivers']} drivers, aperture {aperture * 100:.0f} cm. ![]({png})", "",
          "| metric | ours | kirkeby |", "|---|---|---|"]
    for label, a, b in rows:
        cells = []
        for design in ("ours", "kirkeby"):
            h = headline[design]
            cells.append(_f(h[a]) if b is None else f"{_f(h[a])} / {_f(h[b], 0 if 'itd' in b else 1)}")
        md.append(f"| {label} | " + " | ".join(cells) + " |")
    md += ["", "Separation by octave, ours (nominal / zone p10, dB): " + ", ".join(
        f"{k} Hz {_f(v['nominal'])} / {_f(v['p10'])}" for k, v in numbers["separation_octaves_db"]["ours"].items()) + "."]
    return _clean(numbers), "\n".join(md) + "\n"


# name → (function, default options). Lists of numbers are metres, Hz or dB as the key says.
ANALYSES: dict[str, tuple[Callable[[RunContext], tuple[dict, str]], dict]] = {
    "crosstalk_simulation": (crosstalk_simulation, {
        "magnitude_band_hz": [300.0, 8000.0], "delay_band_hz": [150.0, 1500.0], "itd_band_hz": [150.0, 700.0],
        "wide_band_hz": [100.0, 16000.0], "spot_hz": [200.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0]}),
    "ctc_zone": (ctc_zone, {
        "lateral_m": [round(0.01 * i, 3) for i in range(-15, 16)], "point_design": True,
        "thresholds_db": [10.0, 15.0], "report_at_m": [-0.1, -0.05, -0.025, 0.0, 0.025, 0.05, 0.1]}),
    "beamformer": (beamformer, {"polar_hz": [500.0, 1000.0, 2000.0, 4000.0], "band_hz": [700.0, 4000.0]}),
    "room_depth": (room_depth, {
        "distances_m": [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 2.75, 3.0, 3.25, 3.5], "max_order": 10,
        "band_hz": [800.0, 4000.0], "n_fft": 16384, "listener": "omni", "freq_chunk": 32, "q_stride": 4}),
    "listening_zone": (listening_zone, {
        "lateral_m": [-0.3, -0.25, -0.2, -0.15, -0.1, -0.075, -0.05, -0.025, 0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.25, 0.3],
        "distance_m": [1.5 + 0.25 * i for i in range(9)], "threshold_db": 10.0, "ild_threshold_db": 2.0,
        "table_lateral_m": [0.0, 0.025, 0.05, 0.1, 0.2, 0.3]}),
    "device_summary": (device_summary, {}),
}


MAX_OPTION_LIST = 1000  # entries of one list option
INT_OPTION_RANGES = {  # (analysis, option): (lo, hi) of the integer options
    ("room_depth", "max_order"): (0, 30), ("room_depth", "n_fft"): (8, 2**20), ("room_depth", "freq_chunk"): (1, 65536),
    ("room_depth", "q_stride"): (1, 1000),
}
MAX_GRID_POINTS = 10_000  # lateral × distance points of an analysis grid


def _check_option(name: str, key: str, value, default, fs: float = 48000.0):
    where = f"analysis_options.{name}.{key}"
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(where, value, "must be true or false")
    elif isinstance(default, int):
        lo, hi = INT_OPTION_RANGES.get((name, key), (1, 10**6))
        if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
            raise ConfigError(where, value, f"must be an integer in [{lo}, {hi}]")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or abs(value) > 200:
            raise ConfigError(where, value, "must be a number in [-200, 200] dB")
    elif isinstance(default, str):
        if value not in ("omni", "design"):
            raise ConfigError(where, value, "must be 'omni' or 'design'")
    elif isinstance(default, list):
        hz, metres = key.endswith("_hz"), key.endswith("_m")
        top = fs / 2 if hz else 1000.0 if metres else 200.0
        if not isinstance(value, (list, tuple)) or not 1 <= len(value) <= MAX_OPTION_LIST or any(
                isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or abs(v) > top
                for v in value):
            unit = f"Hz, up to fs/2 = {top:g}" if hz else "m, |value| <= 1000" if metres else "dB, |value| <= 200"
            raise ConfigError(where, value, f"must be a non-empty list of at most {MAX_OPTION_LIST} numbers ({unit})")
        if key.endswith("band_hz") and (len(value) != 2 or not 0 <= value[0] < value[1]):
            raise ConfigError(where, value, "must be [low, high] with 0 <= low < high (Hz)")
        if hz and any(v <= 0 for v in value) and not key.endswith("band_hz"):
            raise ConfigError(where, value, "frequencies must be > 0 Hz")
        if key in ("distance_m", "distances_m") and any(v <= 0 for v in value):
            raise ConfigError(where, value, "distances must be > 0 m")
        if key in ("lateral_m", "distance_m", "distances_m") and list(value) != sorted(value):
            raise ConfigError(where, value, "must be increasing")


def validate_analyses(cfg: Mapping) -> list[tuple[str, dict]]:
    """The selected analyses with their options (defaults filled in), checked before any work.

    Raises:
        ConfigError: an unknown analysis name (key ``analysis``), an unknown or ill-typed option
            (``analysis_options.NAME.KEY``), or an analysis the scene cannot support (room_depth
            without a shoebox room).
    """
    names = cfg.get("analysis") or []
    if isinstance(names, str) or not isinstance(names, Sequence) or any(not isinstance(n, str) for n in names):
        raise ConfigError("analysis", names, f"must be a list of analysis names ({', '.join(ANALYSES)})")
    options = cfg.get("analysis_options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError("analysis_options", options, "must be a mapping analysis name → options")
    for name, opts in options.items():
        if name not in ANALYSES:
            raise ConfigError(f"analysis_options.{name}", opts, f"unknown analysis; known: {', '.join(ANALYSES)}")
        if opts is not None and not isinstance(opts, Mapping):
            raise ConfigError(f"analysis_options.{name}", opts, "must be a mapping of options")
        defaults = ANALYSES[name][1]
        fs = cfg.get("fs", 48000)
        fs = float(fs) if isinstance(fs, (int, float)) and not isinstance(fs, bool) and math.isfinite(fs) else 48000.0
        for key, value in (opts or {}).items():
            if key not in defaults:
                raise ConfigError(f"analysis_options.{name}.{key}", value,
                                  f"unknown option; known: {', '.join(defaults) or '(none)'}")
            _check_option(name, key, value, defaults[key], fs)
    selected: list[tuple[str, dict]] = []
    for name in names:
        if name not in ANALYSES:
            raise ConfigError("analysis", name, f"unknown analysis; known: {', '.join(ANALYSES)}")
        if name in (n for n, _ in selected):
            continue
        if name == "room_depth" and (cfg.get("room") or {}).get("type", "free") != "shoebox":
            raise ConfigError("analysis", name, "room_depth needs a shoebox room (room=living_room)")
        selected.append((name, {**copy.deepcopy(ANALYSES[name][1]), **dict(options.get(name) or {})}))
    return selected


def check_analyses_geometry(cfg: Mapping, selected: list[tuple[str, dict]], eval_cfg: Mapping) -> None:
    """The scenes the selected analyses will build (after the optimisation), checked now: every grid
    point clears the device and stays inside the room, grids are not absurdly large.

    Raises:
        ConfigError: naming ``analysis_options.NAME[.KEY]``.
    """
    from spatialopt.config import check_scene_config

    for name, opt in selected:
        where = f"analysis_options.{name}"
        if name == "ctc_zone":
            check_scene_config(_with_zone(eval_cfg, opt["lateral_m"], [0.0]), zone_key=f"{where}.lateral_m")
        elif name == "listening_zone":
            lateral, distances = list(opt["lateral_m"]), list(opt["distance_m"])
            if len(lateral) * len(distances) > MAX_GRID_POINTS:
                raise ConfigError(where, {"lateral_m": len(lateral), "distance_m": len(distances)},
                                  f"{len(lateral) * len(distances)} grid points; at most {MAX_GRID_POINTS}")
            nominal = float((cfg.get("listener") or {}).get("distance", 2.0))
            if min(abs(v) for v in lateral) > 1e-9 or min(abs(d - nominal) for d in distances) > 1e-9:
                raise ConfigError(where, {"lateral_m": lateral, "distance_m": distances},
                                  f"the grid must contain lateral 0 and the nominal distance {nominal:g} m (the reference pair is placed from it)")
            check_scene_config(_with_zone(eval_cfg, lateral, [d - nominal for d in distances]), zone_key=where)
        elif name == "room_depth":
            _room_depth_geometry(cfg, opt, float(cfg.get("fs", 48000)))


def _room_depth_geometry(cfg: Mapping, opt: Mapping, fs: float):
    """room_depth's device, listener, room (image sources to ``max_order``) and on-axis listening
    positions; refuses positions inside the device or outside the room."""
    from spatialopt.config import build_device, build_listener, build_room

    c = float((cfg.get("scene") or {}).get("speed_of_sound", 343.0))
    device = build_device(cfg["device"], c, fs / 2)
    listener_cfg = dict(cfg.get("listener") or {})
    if opt["listener"] == "omni":
        listener_cfg["type"] = "omni"
    listener = build_listener(listener_cfg, c)
    room_cfg = dict(cfg["room"])
    room_cfg["max_order"] = int(opt["max_order"])
    room = build_room(room_cfg)
    distances = [float(v) for v in opt["distances_m"]]
    height = float(listener_cfg.get("height", 0.0))
    positions = torch.tensor([[d, 0.0, height] for d in distances], dtype=torch.float64)
    clearance = device.bounding_radius() + listener.head_radius
    if (positions[:, 0] <= clearance).any() or not bool(room.contains(positions, margin=listener.head_radius).all()):
        raise ConfigError("analysis_options.room_depth.distances_m", distances,
                          f"every distance must clear the device ({clearance:.3f} m) and stay a head radius inside the room")
    return device, listener, room, distances, positions, listener_cfg


def run_analyses(cfg: Mapping, run_dir, *, scene, eval_scene, filterset, system=None, info=None, baseline_firs=None,
                 metrics=None, log: Callable = print) -> str:
    """Run the analyses selected by ``cfg["analysis"]`` on a finished run.

    Writes each analysis' PNG figures and ``analysis.json`` (``{name: numbers}``) into
    ``run_dir``; returns the Markdown to append to ``report.md`` ("" when none is selected).
    Arguments: see :class:`RunContext`.
    """
    selected = validate_analyses(cfg)
    if not selected:
        return ""
    from spatialopt.fileio import atomic_write_text

    run_dir = Path(run_dir)
    results, sections = {}, []
    for name, options in selected:
        log(f"analysis: {name} ...")
        ctx = RunContext(cfg=cfg, run_dir=run_dir, scene=scene, eval_scene=eval_scene, filterset=filterset, system=system,
                         info=info or {}, baseline_firs=baseline_firs or {}, metrics=metrics or {}, options=options, log=log)
        numbers, md = ANALYSES[name][0](ctx)  # (not under no_grad: ctc_zone's point design trains)
        results[name] = _clean({"options": options, **numbers})
        sections.append(md)
        atomic_write_text(run_dir / "analysis.json", json.dumps(results, indent=1, allow_nan=False))
    return "\n## Analyses\n\n" + "\n".join(sections)
