"""The linked look-ahead limiter: never above the ceiling, one gain for all channels, smooth."""

from __future__ import annotations

import math

import pytest
import torch

from spatialopt.dsp.limiter import limit, limiter_gain


def _loud(seed=0, channels=3, n=20000):
    g = torch.Generator().manual_seed(seed)
    x = 0.12 * torch.randn(channels, n, generator=g, dtype=torch.float64)  # peaks < 1 but for the burst and spike
    x[:, 5000:5100] *= 20.0  # a burst well over full scale
    x[1, 12000] = 5.0  # a lone spike on one channel
    return x


def test_output_never_exceeds_the_ceiling():
    x = _loud()
    for ceiling in (0.5, 0.891, 1.0):
        y, reduction = limit(x, ceiling, half_width=240)
        assert float(y.abs().max()) <= ceiling * (1 + 1e-12)
        assert reduction == pytest.approx(-20 * math.log10(float(limiter_gain(x, ceiling, 240).min())), rel=1e-12)


def test_gain_is_linked_unity_away_from_peaks_and_smooth():
    x = _loud()
    w = 240
    g = limiter_gain(x, 1.0, w)
    assert g.shape == (x.shape[1],)
    # Far (> 2W) from any overshoot the signal passes untouched.
    over = (x.abs().amax(0) > 1.0).nonzero()[:, 0]
    far = torch.ones_like(g, dtype=torch.bool)
    for n in over.tolist():
        far[max(0, n - 2 * w): n + 2 * w + 1] = False
    assert bool(far.any()) and float((g[far] - 1).abs().max()) == 0.0
    # Smooth: a Hann-smoothed ramp, no step larger than a small fraction of the full reduction.
    depth = 1 - float(g.min())
    assert float(g.diff().abs().max()) < 0.05 * depth
    # Linked: the spike on channel 1 lowers channels 0 and 2 by the same factor.
    y = x * g
    torch.testing.assert_close(y[0, 12000] / x[0, 12000], y[1, 12000] / x[1, 12000])


def test_quiet_signal_is_untouched_and_bad_ceiling_rejected():
    x = 0.1 * torch.ones(2, 100, dtype=torch.float64)
    assert bool((limiter_gain(x, 1.0, 10) == 1).all())
    with pytest.raises(ValueError, match="ceiling"):
        limiter_gain(x, 0.0, 10)
