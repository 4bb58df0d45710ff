"""Linked look-ahead peak limiter for offline rendering: a rendered file never exceeds its ceiling.

The gain is computed from the loudest channel and applied to all channels alike (linked), so
the inter-channel relations that crosstalk cancellation and the beamformer depend on are kept;
only the overall level moves, briefly, around the peaks.

Construction (zero-phase, vectorised, no per-sample loop):

1. required gain ``g[n] = min(1, c / max_ch |x_ch[n]|)`` (c = ceiling, linear);
2. windowed minimum ``m[n] = min_{|k| ≤ W} g[n + k]`` (look-ahead and hold of W samples);
3. smoothing ``s = m ⊛ w`` with a normalised Hann window w of half-width W.

Then ``s[n] ≤ g[n]`` for every n: each ``m[n − k]`` with ``|k| ≤ W`` is a minimum over a window
that contains n, so the weighted mean s[n] of such values is ≤ g[n], and ``|s[n]·x[n]| ≤ c``.
The gain ramps smoothly over 2W samples around each peak instead of clipping it.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["limiter_gain", "limit"]


def limiter_gain(x: Tensor, ceiling: float, half_width: int) -> Tensor:
    """Linked limiter gain for a block of audio.

    Args:
        x: (C, S) float samples (full scale 1.0).
        ceiling: largest allowed |sample| after the gain (linear, > 0).
        half_width: W, look-ahead/hold and smoothing half-width in samples (>= 0).

    Returns:
        (S,) gain in (0, 1], same dtype/device as ``x``; ``gain · x`` stays within ±ceiling.
    """
    if ceiling <= 0 or not math.isfinite(ceiling):
        raise ValueError("ceiling must be a positive finite number")
    peak = x.abs().amax(dim=0)  # (S,)
    required = torch.where(peak > ceiling, ceiling / peak.clamp_min(1e-30), torch.ones_like(peak))
    if half_width <= 0:
        return required
    w = int(half_width)
    held = -torch.nn.functional.max_pool1d(-required[None, None], 2 * w + 1, stride=1, padding=w)[0, 0]
    window = torch.hann_window(2 * w + 3, periodic=False, dtype=x.dtype, device=x.device)[1:-1]  # 2W+1 taps, no zeros
    window = window / window.sum()
    # Pad with 1 (no reduction) beyond the block; the caller supplies W samples of context.
    padded = torch.nn.functional.pad(held[None, None], (w, w), value=1.0)
    smooth = torch.nn.functional.conv1d(padded, window[None, None])[0, 0]
    return torch.minimum(smooth, required)  # guards the last ulp of the convolution's rounding


def limit(x: Tensor, ceiling: float, half_width: int) -> tuple[Tensor, float]:
    """Apply :func:`limiter_gain` to a whole signal (C, S); returns (limited, largest gain
    reduction in dB, ≥ 0)."""
    gain = limiter_gain(x, ceiling, half_width)
    return x * gain, float(-20 * torch.log10(gain.min().clamp_min(1e-30))) if gain.numel() else 0.0
