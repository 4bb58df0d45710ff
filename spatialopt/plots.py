"""Figures shared by the CLI reports and TensorBoard (:mod:`spatialopt.monitor`). Matplotlib,
headless (Agg).

Each ``*_figure`` function returns a ``matplotlib.figure.Figure``; :func:`save_figure` writes it
atomically (temporary file + rename), so an interrupted run never leaves a half-written PNG.
The design figures (:func:`beam_heatmap_figure`, :func:`polar_pattern_figure`,
:func:`zone_separation_figure`, :func:`ear_target_figure`, :func:`filter_response_figure`) take
plain tensors (computed by the caller from a scene and a filter set), so the same figure serves
a report and a TensorBoard image. Levels are in dB; angles arrive in radians and are shown in
degrees (azimuth from +x toward +y, + = device left).
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

__all__ = [
    "save_figure",
    "ear_response_figure",
    "directivity_figure",
    "reference_cues_figure",
    "layout_figure",
    "save_scene_plots",
    "beam_heatmap_figure",
    "polar_pattern_figure",
    "zone_separation_figure",
    "ear_target_figure",
    "filter_response_figure",
    "relative_pattern_db",
    "design_figures",
    "DESIGN_FIGURES",
]


def _db(x: torch.Tensor | np.ndarray, floor: float = 1e-12) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return 20 * np.log10(np.maximum(np.abs(x), floor))


def save_figure(fig, path: Path, close: bool = True) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and (by default) close it. Returns the path."""
    from spatialopt.fileio import atomic_path

    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
        if close:
            plt.close(fig)
    return Path(path)


def ear_response_figure(freqs: torch.Tensor, h_point: torch.Tensor, driver_names: list[str], title: str = ""):
    """Ear responses of every driver at one zone point.

    Args:
        freqs: (F,) Hz. h_point: (F, 2, D) complex ear transfer (Pa per unit input).
        driver_names: D names.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    f = freqs.cpu().numpy()
    sel = f > 0
    for ear, ax in enumerate(axes):
        for d, name in enumerate(driver_names):
            ax.semilogx(f[sel], _db(4 * math.pi * h_point[sel, ear, d]), label=name)
        ax.set_title(f"{'left' if ear == 0 else 'right'} ear {title}".strip())
        ax.set_xlabel("frequency (Hz)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("dB re unit monopole at 1 m")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def directivity_figure(freqs: torch.Tensor, ring_az: torch.Tensor, g_ring: torch.Tensor, driver_names: list[str]):
    """Horizontal far-field directivity per driver: frequency × azimuth heatmaps, dB re the
    driver's maximum at each frequency.

    Args:
        freqs: (F,) Hz. ring_az: (A,) radians. g_ring: (F, A, D) complex. driver_names: D names.
    """
    n_d = len(driver_names)
    cols = min(n_d, 3)
    rows = math.ceil(n_d / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    f = freqs.cpu().numpy()
    sel = f > 0
    az = np.degrees(ring_az.cpu().numpy())
    for d, name in enumerate(driver_names):
        ax = axes[d // cols][d % cols]
        level = _db(g_ring[sel, :, d])
        level = level - level.max(axis=1, keepdims=True)
        mesh = ax.pcolormesh(az, f[sel], level, vmin=-30, vmax=0, shading="auto", cmap="magma")
        ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("azimuth (deg, + = device left)")
        ax.set_ylabel("frequency (Hz)")
        fig.colorbar(mesh, ax=ax, label="dB")
    for d in range(n_d, rows * cols):
        axes[d // cols][d % cols].axis("off")
    fig.tight_layout()
    return fig


def reference_cues_figure(freqs: torch.Tensor, h_ref_point: torch.Tensor):
    """ILD and ITD that the real ±30° pair's L speaker produces at one zone point.

    Args:
        freqs: (F,) Hz. h_ref_point: (F, 2 ears, 2 channels) complex.
    """
    f = freqs.cpu().numpy()
    sel = f > 0
    left, right = h_ref_point[:, 0, 0], h_ref_point[:, 1, 0]
    ild = _db(left) - _db(right)
    ratio = (right / left).cpu().numpy()
    phase = np.unwrap(np.angle(ratio[sel]))
    itd_us = -phase / (2 * np.pi * f[sel]) * 1e6
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    axes[0].semilogx(f[sel], ild[sel])
    axes[0].set_ylabel("ILD (dB, left − right)")
    axes[1].semilogx(f[sel], itd_us)
    axes[1].set_ylabel("interaural phase delay (µs)")
    for ax in axes:
        ax.set_xlabel("frequency (Hz)")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("reference ±30° pair, L speaker")
    fig.tight_layout()
    return fig


def layout_figure(points: torch.Tensor, driver_positions: torch.Tensor, driver_names: list[str], nominal_index: int):
    """Top view of the scene: zone head positions, drivers, nominal point.

    Args:
        points: (P, 4) x, y, z [m], yaw [rad]. driver_positions: (D, 3) m.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    pts = points.cpu().numpy()
    drv = driver_positions.cpu().numpy()
    for ax, scale in zip(axes, (1.0, 100.0)):
        if scale == 1.0:
            ax.scatter(pts[:, 1], pts[:, 0], s=8, label="zone head positions")
            ax.scatter(drv[:, 1], drv[:, 0], marker="s", color="k", label="drivers")
            ax.scatter([pts[nominal_index, 1]], [pts[nominal_index, 0]], marker="*", s=120, color="r", label="nominal")
            ax.set_xlabel("y (m, + = device left)")
            ax.set_ylabel("x (m, toward the listener)")
            ax.set_title("scene, top view")
            ax.invert_xaxis()
            ax.legend(fontsize=8)
        else:
            ax.scatter(drv[:, 1] * scale, drv[:, 0] * scale, marker="s", color="k")
            for (x, y, _), name in zip(drv, driver_names):
                ax.annotate(name, (y * scale, x * scale), fontsize=8, xytext=(3, 3), textcoords="offset points")
            ax.set_xlabel("y (cm)")
            ax.set_ylabel("x (cm)")
            ax.set_title("device, top view")
            ax.invert_xaxis()
        ax.set_aspect("equal", adjustable="datalim")
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


def save_scene_plots(scene, out_dir: Path) -> list[Path]:
    """Write the scene's summary figures into ``out_dir``; returns the PNG paths."""
    out_dir = Path(out_dir)
    i = scene.nominal_index
    return [
        save_figure(ear_response_figure(scene.freqs, scene.H[:, i], scene.driver_names, "(nominal point)"),
                    out_dir / "scene_ear_responses.png"),
        save_figure(directivity_figure(scene.freqs, scene.ring_az, scene.G_ring, scene.driver_names),
                    out_dir / "scene_directivity.png"),
        save_figure(reference_cues_figure(scene.freqs, scene.H_ref[:, i]), out_dir / "scene_reference_cues.png"),
        save_figure(layout_figure(scene.points, scene.driver_positions, scene.driver_names, i),
                    out_dir / "scene_layout.png"),
    ]


# ----------------------------------------------------------------------------------------------
# design figures (TensorBoard images and reports)


def relative_pattern_db(ring_az: torch.Tensor, pattern: torch.Tensor, floor_db: float = -60.0) -> np.ndarray:
    """Far-field pattern in dB re the on-axis (azimuth nearest 0) response at each frequency.

    Args:
        ring_az: (A,) radians. pattern: (F, A) complex far field of one channel.
        floor_db: lowest value returned (a vanishing on-axis response gives the floor, not inf).

    Returns:
        (F, A) float64 array, dB (0 = on-axis level; > 0 = louder than on-axis).
    """
    p = pattern.detach().cpu().to(torch.complex128).abs().numpy()
    axis = int(torch.argmin(ring_az.detach().cpu().abs()))
    ref = np.maximum(p[:, axis : axis + 1], 1e-30)
    return np.maximum(20 * np.log10(np.maximum(p, 1e-30) / ref), floor_db)


def beam_heatmap_figure(freqs: torch.Tensor, ring_az: torch.Tensor, pattern: torch.Tensor, title: str = "centre beam",
                        band_hz: tuple[float, float] | None = None, vmin: float = -40.0, vmax: float = 10.0):
    """Horizontal far-field pattern of one channel: frequency × azimuth heatmap, dB re on-axis.

    Args:
        freqs: (F,) Hz. ring_az: (A,) radians. pattern: (F, A) complex (e.g. ``G_ring @ B``).
        band_hz: optional band drawn as dashed lines (e.g. the beam band).
        vmin, vmax: colour range, dB re on-axis.

    Returns:
        Figure with one heatmap axis and its colour bar (2 axes).
    """
    f = freqs.detach().cpu().numpy()
    sel = f > 0
    az = np.degrees(ring_az.detach().cpu().numpy())
    order = np.argsort(az)
    level = relative_pattern_db(ring_az, pattern)[sel][:, order]
    fig, ax = plt.subplots(figsize=(7.0, 4.2))
    mesh = ax.pcolormesh(az[order], f[sel], level, vmin=vmin, vmax=vmax, shading="auto", cmap="magma", rasterized=True)
    ax.set_yscale("log")
    for deg in (-90, -45, 45, 90):
        ax.axvline(deg, color="w", lw=0.6, ls=":", alpha=0.7)
    if band_hz is not None:
        for edge in band_hz:
            ax.axhline(edge, color="c", lw=0.8, ls="--", alpha=0.8)
    ax.set_xlabel("azimuth (deg, + = device left)")
    ax.set_ylabel("frequency (Hz)")
    ax.set_title(f"{title}: level re on-axis")
    fig.colorbar(mesh, ax=ax, label="dB re on-axis", fraction=0.05, pad=0.03)
    fig.subplots_adjust(left=0.12, right=0.93, bottom=0.12, top=0.92)  # fixed margins: tight_layout costs a full draw
    return fig


def _band_power(freqs: np.ndarray, power: np.ndarray, centre: float, fraction: float = 1 / 3) -> np.ndarray | None:
    """Mean of ``power`` (F, ...) over the bins of the 1/``fraction``-octave band around ``centre``
    (the nearest bin when the band holds none; None when ``centre`` is off the grid)."""
    if centre <= 0 or centre > freqs.max():
        return None
    sel = (freqs >= centre * 2 ** (-fraction / 2)) & (freqs < centre * 2 ** (fraction / 2))
    if not sel.any():
        sel = np.zeros_like(freqs, dtype=bool)
        sel[int(np.argmin(np.abs(freqs - centre)))] = True
    return power[sel].mean(0)


def polar_pattern_figure(freqs: torch.Tensor, ring_az: torch.Tensor, pattern: torch.Tensor, title: str = "centre beam",
                         centres_hz=(500.0, 1000.0, 2000.0, 4000.0, 8000.0), floor_db: float = -40.0):
    """Polar patterns of one channel in the horizontal plane at a few frequencies.

    Each curve is the power mean over the 1/3-octave band around a centre frequency, dB re the
    band's on-axis power, clipped below at ``floor_db``. Centres above the grid are skipped.

    Args:
        freqs: (F,) Hz. ring_az: (A,) radians. pattern: (F, A) complex far field.

    Returns:
        Figure with one polar axis; one line per plotted centre frequency.
    """
    f = freqs.detach().cpu().numpy()
    az = ring_az.detach().cpu().numpy()
    order = np.argsort(az)
    az = np.append(az[order], az[order][0] + 2 * np.pi)  # close the curve
    power = pattern.detach().cpu().to(torch.complex128).abs().numpy()[:, order] ** 2
    axis = int(np.argmin(np.abs(az[:-1])))
    fig = plt.figure(figsize=(6.4, 5.0))
    ax = fig.add_subplot(projection="polar")
    for centre in centres_hz:
        band = _band_power(f, power, centre)
        if band is None:
            continue
        level = 10 * np.log10(np.maximum(band, 1e-30) / max(band[axis], 1e-30))
        level = np.maximum(np.append(level, level[0]), floor_db)
        ax.plot(az, level, lw=1.2, label=f"{centre / 1000:g} kHz" if centre >= 1000 else f"{centre:g} Hz")
    ax.set_theta_zero_location("N")  # on-axis (+x, toward the listener) at the top; + azimuth (left) to the left
    ax.set_thetagrids(np.arange(0, 360, 45), [f"{d if d <= 180 else d - 360:+d}°".replace("+0°", "0°") for d in range(0, 360, 45)])
    ax.set_rlim(floor_db, 6.0)
    ax.set_title(f"{title}: dB re on-axis (1/3-octave bands)", fontsize=10)
    ax.legend(fontsize=8, loc="lower left", bbox_to_anchor=(0.98, -0.05))
    fig.subplots_adjust(left=0.06, right=0.8, bottom=0.08, top=0.86)
    return fig


def zone_separation_figure(freqs: torch.Tensor, sep_db: torch.Tensor, points: torch.Tensor, nominal_index: int,
                           band_hz: tuple[float, float] = (1500.0, 8000.0)):
    """CTC separation over the listening zone.

    Left: separation (dB, mean of the two sides) over frequency at the nominal point, the zone
    mean and the zone's 10th percentile. Right: top view of the zone, each head position coloured
    by its band-mean separation over ``band_hz`` (mean over head yaws at the same position).

    Args:
        freqs: (F,) Hz. sep_db: (F, P, 2) ipsi/contra power ratio per side (dB, e.g.
            :func:`spatialopt.objectives.losses.ctc_separation_db`). points: (P, 4) x, y, z [m],
            yaw [rad]. nominal_index: the nominal point.

    Returns:
        Figure with 3 axes (curves, zone map, colour bar).
    """
    f = freqs.detach().cpu().numpy()
    sep = sep_db.detach().cpu().to(torch.float64).numpy().mean(-1)  # (F, P)
    sel = f > 0
    fig, (ax, ax_map) = plt.subplots(1, 2, figsize=(11.5, 4.0), gridspec_kw={"width_ratios": [1.6, 1.0]})
    ax.semilogx(f[sel], sep[sel, nominal_index], label="nominal point", lw=1.4)
    ax.semilogx(f[sel], sep[sel].mean(1), label="zone mean", lw=1.0)
    ax.semilogx(f[sel], np.quantile(sep[sel], 0.1, axis=1), label="zone p10", lw=1.0, ls="--")
    ax.axvspan(band_hz[0], band_hz[1], color="0.85", alpha=0.5, lw=0)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("separation (dB, ipsi/contra)")
    ax.set_title("CTC separation")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    band = (f >= band_hz[0]) & (f <= band_hz[1])
    per_point = sep[band].mean(0) if band.any() else sep.mean(0)  # (P,)
    pts = points.detach().cpu().numpy()
    xy = np.round(pts[:, :2], 6)
    positions, inverse = np.unique(xy, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    value = np.array([per_point[inverse == i].mean() for i in range(len(positions))])
    sc = ax_map.scatter(positions[:, 1], positions[:, 0], c=value, cmap="viridis", s=90, edgecolors="k", linewidths=0.4)
    ax_map.scatter([pts[nominal_index, 1]], [pts[nominal_index, 0]], marker="*", s=60, color="r", label="nominal")
    ax_map.invert_xaxis()
    ax_map.set_xlabel("y (m, + = device left)")
    ax_map.set_ylabel("x (m, toward the listener)")
    ax_map.set_title(f"band mean {band_hz[0] / 1000:g}–{band_hz[1] / 1000:g} kHz (mean over yaw)", fontsize=9)
    ax_map.legend(fontsize=8, loc="upper right")
    ax_map.margins(0.2)
    fig.colorbar(sc, ax=ax_map, label="dB")
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.13, top=0.91, wspace=0.22)
    return fig


def ear_target_figure(freqs: torch.Tensor, e: torch.Tensor, ref: torch.Tensor, itd_max_hz: float = 1500.0):
    """Ear responses of the L path against the target, the real ±30° pair's L speaker, at one point.

    Panels: ipsilateral (left ear) and contralateral (right ear) levels, ours vs the reference
    (dB re a unit monopole at 1 m); ILD (left − right, dB); interaural phase delay (µs) below
    ``itd_max_hz``.

    Args:
        freqs: (F,) Hz. e: (F, 2 ears, C >= 1) complex ear responses of the system's channels
            (channel 0 = L is plotted). ref: (F, 2 ears, 2 speakers) complex, the reference pair.

    Returns:
        Figure with 3 axes.
    """
    f = freqs.detach().cpu().numpy()
    sel = f > 0
    ours = e[:, :, 0].detach().cpu().to(torch.complex128).numpy()
    target = ref[:, :, 0].detach().cpu().to(torch.complex128).numpy()
    fig, axes = plt.subplots(1, 3, figsize=(14.0, 3.8))
    styles = (("ours", "-"), ("±30° pair", "--"))
    for (label, ls), x in zip(styles, (ours, target)):
        axes[0].semilogx(f[sel], _db(4 * math.pi * x[sel, 0]), ls=ls, color="C0", label=f"{label}, ipsi (left ear)")
        axes[0].semilogx(f[sel], _db(4 * math.pi * x[sel, 1]), ls=ls, color="C1", label=f"{label}, contra (right ear)")
        axes[1].semilogx(f[sel], _db(x[sel, 0]) - _db(x[sel, 1]), ls=ls, color="C2" if ls == "-" else "k", label=label)
        low = sel & (f <= itd_max_hz)
        phase = np.unwrap(np.angle(x[low, 1] * np.conj(x[low, 0])))
        axes[2].semilogx(f[low], -phase / (2 * np.pi * f[low]) * 1e6, ls=ls, color="C3" if ls == "-" else "k", label=label)
    axes[0].set_ylabel("dB re unit monopole at 1 m")
    axes[0].set_title("L path at the nominal point")
    axes[1].set_ylabel("ILD (dB, left − right)")
    axes[2].set_ylabel("interaural phase delay (µs)")
    for ax in axes:
        ax.set_xlabel("frequency (Hz)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.subplots_adjust(left=0.05, right=0.99, bottom=0.14, top=0.92, wspace=0.25)
    return fig


def filter_response_figure(fir: torch.Tensor, sample_rate: float, driver_names: list[str], driver_bands=None,
                           channel_names=("L", "R", "C"), floor_db: float = -80.0):
    """Impulse and magnitude responses of a FIR matrix, one line per driver, one column per channel.

    Args:
        fir: (C, D, T) taps (channel, driver, tap). sample_rate: Hz. driver_names: D names.
        driver_bands: optional (D, 2) Hz; each driver's band edges are marked on its magnitude line.
        floor_db: lowest magnitude drawn (dB re unit gain).

    Returns:
        Figure with 2 × C axes: impulse responses (top row, time in ms) and magnitude responses
        (bottom row, dB re unit gain, log frequency).
    """
    taps = fir.detach().cpu().to(torch.float64)
    n_ch, n_d, n_t = taps.shape
    n_fft = max(4096, 1 << (n_t - 1).bit_length())
    spec = torch.fft.rfft(taps, n_fft).abs().numpy()  # (C, D, K)
    f = np.fft.rfftfreq(n_fft, 1.0 / sample_rate)
    t_ms = np.arange(n_t) / sample_rate * 1000.0
    bands = None if driver_bands is None else np.asarray(torch.as_tensor(driver_bands).detach().cpu(), dtype=float)
    fig, axes = plt.subplots(2, n_ch, figsize=(4.6 * n_ch, 6.4), squeeze=False, sharex="row")
    for c in range(n_ch):
        top, bottom = axes[0][c], axes[1][c]
        for d in range(n_d):
            name = driver_names[d] if d < len(driver_names) else f"driver {d}"
            top.plot(t_ms, taps[c, d].numpy(), lw=0.8, label=name)
            level = np.maximum(_db(spec[c, d, 1:]), floor_db)
            line, = bottom.semilogx(f[1:], level, lw=0.9, label=name)
            if bands is not None:
                for edge in bands[d]:
                    if 0 < edge <= f[-1]:
                        bottom.axvline(edge, color=line.get_color(), lw=0.6, ls=":", alpha=0.8)
        name = channel_names[c] if c < len(channel_names) else str(c)
        top.set_title(f"channel {name}: impulse responses")
        top.set_xlabel("time (ms)")
        top.grid(True, alpha=0.3)
        bottom.set_title(f"channel {name}: magnitude")
        bottom.set_xlabel("frequency (Hz)")
        bottom.set_ylim(floor_db, None)
        bottom.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("amplitude")
    axes[1][0].set_ylabel("dB re unit gain")
    axes[0][-1].legend(fontsize=7)
    fig.subplots_adjust(left=0.06, right=0.99, bottom=0.08, top=0.95, wspace=0.2, hspace=0.35)
    return fig


DESIGN_FIGURES = ("beam_heatmap", "polar", "zone_separation", "ear_vs_target", "filters")
"""Names of :func:`design_figures` (TensorBoard tags ``images/<name>``, report files ``figures/<name>.png``)."""


def design_figures(scene, fir: torch.Tensor, ctc: torch.Tensor, beam_band_hz=(800.0, 4000.0),
                   ctc_band_hz=(1500.0, 8000.0)) -> dict:
    """The five design figures of a filter set on a scene, as zero-argument factories (each
    builds its figure only when called, so a caller can draw and release one at a time).

    Args:
        scene: :class:`~spatialopt.acoustics.scene.Scene` (its grid, zone and driver bands).
        fir: (3, D, T) composite taps (L, R, C inputs). ctc: (2, D, T_ctc) CTC stage taps.
        beam_band_hz: band marked on the beam heatmap (Hz). ctc_band_hz: band of the zone map (Hz).

    Returns:
        ``{name: callable() -> Figure}`` in :data:`DESIGN_FIGURES` order: the centre beam over
        frequency × azimuth and its polar patterns (far-field ring), the CTC separation over the
        scene's zone, the nominal point's ear responses against the ±30° pair, and the taps.
    """
    from spatialopt.dsp.filters import fir_response
    from spatialopt.objectives.losses import ctc_separation_db

    fs = float(scene.sample_rate)
    f = scene.freqs.to(torch.float64)
    W = fir_response(fir.detach().cpu().to(torch.float64), f, fs).permute(2, 1, 0)  # (F, D, 3)
    C = fir_response(ctc.detach().cpu().to(torch.float64), f, fs).permute(2, 1, 0)  # (F, D, 2)
    beam = torch.einsum("fad,fd->fa", scene.G_ring.to(torch.complex128), W[:, :, 2])  # centre's far field (F, A)
    H = scene.H.to(torch.complex128)
    nominal = scene.nominal_index
    ears = torch.einsum("fed,fdc->fec", H[:, nominal], W)  # (F, ear, channel)
    names = list(scene.driver_names)
    return {
        "beam_heatmap": lambda: beam_heatmap_figure(scene.freqs, scene.ring_az, beam, "centre beam (C)", beam_band_hz),
        "polar": lambda: polar_pattern_figure(scene.freqs, scene.ring_az, beam, "centre beam (C)"),
        "zone_separation": lambda: zone_separation_figure(scene.freqs, ctc_separation_db(H, C), scene.points, nominal,
                                                          ctc_band_hz),
        "ear_vs_target": lambda: ear_target_figure(scene.freqs, ears, scene.H_ref[:, nominal]),
        "filters": lambda: filter_response_figure(fir, fs, names, scene.driver_bands),
    }
