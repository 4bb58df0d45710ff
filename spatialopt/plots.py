"""Figures shared by the CLI reports and (later) TensorBoard. Matplotlib, headless (Agg).

Each ``*_figure`` function returns a ``matplotlib.figure.Figure``; :func:`save_figure` writes it
atomically (temporary file + rename), so an interrupted run never leaves a half-written PNG.
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
]


def _db(x: torch.Tensor | np.ndarray, floor: float = 1e-12) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return 20 * np.log10(np.maximum(np.abs(x), floor))


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` as PNG to ``path`` atomically and close it. Returns the path."""
    from spatialopt.fileio import atomic_path

    try:
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, dpi=110, bbox_inches="tight")
    finally:
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
