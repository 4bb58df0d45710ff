"""The design figures of :mod:`spatialopt.plots` (TensorBoard images): axes and plotted data."""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from spatialopt import plots

FS = 48000.0
FREQS = torch.linspace(0.0, FS / 2, 257, dtype=torch.float64)
AZ = torch.deg2rad(torch.arange(-180.0, 180.0, 5.0, dtype=torch.float64))  # includes 0


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def cardioid(freqs=FREQS, az=AZ):
    """A frequency-independent cardioid (on-axis 1, 0 at 180°), (F, A) complex."""
    return (0.5 * (1 + torch.cos(az)))[None].expand(len(freqs), -1).to(torch.complex128) * (1 + 0j)


def test_relative_pattern_is_db_re_on_axis_with_a_floor():
    level = plots.relative_pattern_db(AZ, cardioid() * 3.0)
    az = AZ.numpy()
    expected = np.maximum(20 * np.log10(np.maximum(0.5 * (1 + np.cos(az)), 1e-30)), -60.0)
    np.testing.assert_allclose(level, np.broadcast_to(expected, level.shape), atol=1e-9)
    assert level[:, np.argmin(np.abs(az))].max() == 0.0 and level.min() == -60.0


def test_beam_heatmap_shows_the_pattern_re_on_axis():
    fig = plots.beam_heatmap_figure(FREQS, AZ, cardioid(), band_hz=(800.0, 4000.0))
    assert len(fig.axes) == 2  # heatmap + colour bar
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    (mesh,) = ax.collections
    data = np.asarray(mesh.get_array()).reshape(256, len(AZ))  # DC dropped (log axis)
    assert data.max() == pytest.approx(0.0, abs=1e-9) and data.min() == -60.0
    assert data[:, len(AZ) // 2 + 18] == pytest.approx(20 * math.log10(0.5), abs=1e-9)  # +90°: half amplitude
    assert mesh.get_clim() == (-40.0, 10.0)


def test_polar_pattern_draws_one_closed_curve_per_band_on_the_grid():
    fig = plots.polar_pattern_figure(FREQS, AZ, cardioid(), centres_hz=(1000.0, 4000.0, 30000.0))
    assert len(fig.axes) == 1 and fig.axes[0].name == "polar"
    lines = fig.axes[0].get_lines()
    assert len(lines) == 2  # 30 kHz is above the grid's Nyquist: skipped
    for line in lines:
        theta, r = (np.asarray(v) for v in line.get_data())
        assert len(r) == len(AZ) + 1 and r[0] == r[-1]  # closed
        assert r.max() == pytest.approx(0.0, abs=1e-9) and r.min() == -40.0  # clipped at the floor (180°)
        assert r[np.argmin(np.abs(theta - math.pi / 2))] == pytest.approx(20 * math.log10(0.5), abs=1e-6)


def test_zone_separation_curves_and_map_hold_the_per_point_values():
    points = torch.tensor([[2.0, 0.0, 0.0, 0.0], [2.0, 0.05, 0.0, 0.0], [2.0, 0.05, 0.0, 0.2], [2.5, 0.0, 0.0, 0.0]])
    base = torch.tensor([20.0, 10.0, 14.0, 6.0], dtype=torch.float64)
    sep = base[None, :, None].expand(len(FREQS), 4, 2).clone()
    sep[..., 1] += 2.0  # the two sides differ: the figure shows their mean
    fig = plots.zone_separation_figure(FREQS, sep, points, nominal_index=0)
    assert len(fig.axes) == 3  # curves, map, colour bar
    curves = {line.get_label(): np.asarray(line.get_ydata()) for line in fig.axes[0].get_lines()}
    np.testing.assert_allclose(curves["nominal point"], 21.0)
    np.testing.assert_allclose(curves["zone mean"], 13.5)
    np.testing.assert_allclose(curves["zone p10"], np.quantile([21.0, 11.0, 15.0, 7.0], 0.1))
    colours = np.sort(np.asarray(fig.axes[1].collections[0].get_array()))
    np.testing.assert_allclose(colours, [7.0, 13.0, 21.0])  # 3 positions; the two yaws at y = 0.05 averaged


def test_ear_target_figure_plots_levels_ild_and_phase_delay_of_ours_and_the_pair():
    f = FREQS
    delay = 300e-6
    ipsi = torch.full((len(f),), 0.1, dtype=torch.complex128)
    contra = 0.05 * torch.exp(-2j * math.pi * f * delay)
    e = torch.stack([torch.stack([ipsi, ipsi], -1), torch.stack([contra, contra], -1), ], 1)  # (F, ear, channel)
    ref = torch.stack([torch.stack([ipsi, contra], -1), torch.stack([contra * 0.5, ipsi], -1)], 1)
    fig = plots.ear_target_figure(f, e, ref)
    assert len(fig.axes) == 3
    levels, ild, itd = fig.axes
    ours_ipsi = np.asarray(levels.get_lines()[0].get_ydata())
    np.testing.assert_allclose(ours_ipsi, 20 * np.log10(4 * math.pi * 0.1))
    np.testing.assert_allclose(np.asarray(ild.get_lines()[0].get_ydata()), 20 * np.log10(2))  # ours: 6 dB
    np.testing.assert_allclose(np.asarray(ild.get_lines()[1].get_ydata()), 20 * np.log10(4))  # pair: 12 dB
    x, y = (np.asarray(v) for v in itd.get_lines()[0].get_data())
    assert x.max() <= 1500.0
    np.testing.assert_allclose(y, delay * 1e6, rtol=1e-6)  # the contra ear lags by 300 µs


def test_filter_figure_has_impulse_and_magnitude_per_channel_with_one_line_per_driver():
    fir = torch.zeros(3, 2, 64)
    fir[:, 0, 0] = 1.0  # driver 0: unit impulse → 0 dB flat
    fir[:, 1, 10] = 0.1  # driver 1: −20 dB, delayed
    fig = plots.filter_response_figure(fir, FS, ["a", "b"], driver_bands=torch.tensor([[100.0, 2000.0], [2000.0, 20000.0]]))
    assert len(fig.axes) == 6
    for c in range(3):
        impulse, magnitude = fig.axes[c], fig.axes[3 + c]
        assert len(impulse.get_lines()) == 2
        np.testing.assert_allclose(np.asarray(impulse.get_lines()[1].get_ydata()), fir[c, 1].numpy())
        mags = [np.asarray(line.get_ydata()) for line in magnitude.get_lines() if len(np.atleast_1d(line.get_xdata())) > 2]
        assert len(mags) == 2
        np.testing.assert_allclose(mags[0], 0.0, atol=1e-9)
        np.testing.assert_allclose(mags[1], -20.0, atol=1e-6)
        assert magnitude.get_xscale() == "log"
