"""Virtualizer: re-create the crosstalk of a real ±30° stereo pair (DESIGN.md §1).

For the L channel, the left ear should get ``A`` (an all-pass: the ipsilateral path, which leaves
tonal balance alone) and the right ear ``X`` (a delayed, head-shadowed low-pass copy: the
contralateral path). The R channel is the mirror image. Parameters are physical and bounded:

* all-pass: K second-order sections, pole radius ``r = 0.95·sigmoid(raw)`` (< 1 by construction)
  and pole angle ``θ = π·sigmoid(raw)``;
* contralateral delay ``τ ∈ [0, 1.5] ms`` (linear sigmoid map);
* low-pass corner ``f_c ∈ [200, 12000] Hz`` (log-frequency sigmoid map), first order (bilinear);
* contralateral gain ``g ∈ [−30, 0] dB`` (linear sigmoid map).

The filters are realised as FIR impulse responses of ``n_taps`` taps (frequency sampling on a
grid 8× longer, then truncation), and the system uses exactly those taps, so what is optimised
is what is exported.

Initialisation (:func:`fit_crosstalk`): the relative HRTF ``R(f) = H_contra / H_ipsi`` of the real
pair's L speaker at the nominal point, through the scene's own head model; ``g`` and ``f_c`` by
least squares on its magnitude in dB, then τ from its low-frequency interaural phase delay less
the fitted low-pass's own phase delay.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor, nn

from spatialopt.dsp.filters import (
    allpass_response,
    bounded,
    bounded_inverse,
    corner_hz,
    corner_hz_inverse,
    first_order_lowpass,
    fractional_delay_response,
    pole_radius,
    pole_radius_inverse,
)

__all__ = ["Virtualizer", "fit_crosstalk", "crosstalk_response"]

DELAY_MAX_S = 1.5e-3
CORNER_RANGE_HZ = (200.0, 12000.0)
GAIN_RANGE_DB = (-30.0, 0.0)
MAX_POLE_RADIUS = 0.95


def crosstalk_response(delay_s: Tensor, corner: Tensor, gain_db: Tensor, freqs: Tensor, sample_rate: float) -> Tensor:
    """Contralateral path ``X(f) = g · LP_{f_c}(f) · e^{−j2πfτ}``.

    Args:
        delay_s: () seconds. corner: () Hz. gain_db: () dB. freqs: (F,) Hz. sample_rate: Hz.

    Returns:
        (F,) complex.
    """
    gain = 10.0 ** (gain_db / 20.0)
    return gain * first_order_lowpass(corner, freqs, sample_rate) * fractional_delay_response(delay_s, freqs)


def fit_crosstalk(relative: Tensor, freqs: Tensor, sample_rate: float, band_hz=(300.0, 8000.0)) -> dict[str, float]:
    """Fit delay, corner and gain of :func:`crosstalk_response` to a relative HRTF.

    Args:
        relative: (F,) complex ``H_contra / H_ipsi`` of a real ±30° speaker.
        freqs: (F,) Hz. sample_rate: Hz. band_hz: band of the magnitude fit.

    Returns:
        ``{"delay_s", "corner_hz", "gain_db", "fit_err_db_rms"}``.
    """
    freqs = freqs.to(torch.float64)
    rel = relative.to(torch.complex128)
    low = (freqs > 80) & (freqs < 700)
    band = (freqs >= band_hz[0]) & (freqs <= band_hz[1])
    target_db = 20 * torch.log10(rel[band].abs())
    best = (math.inf, 1000.0, 0.0)
    # A coarse grid over the corner is robust (the dB error is not convex in f_c); the gain is
    # then the mean residual, the closed-form least-squares solution.
    for fc in torch.logspace(math.log10(CORNER_RANGE_HZ[0] * 1.01), math.log10(CORNER_RANGE_HZ[1] * 0.99), 200, dtype=torch.float64):
        lp_db = 20 * torch.log10(first_order_lowpass(fc, freqs[band], sample_rate).abs())
        gain = float((target_db - lp_db).mean())
        gain = min(max(gain, GAIN_RANGE_DB[0] * 0.99), GAIN_RANGE_DB[1] - 0.01)
        err = float(((target_db - lp_db - gain) ** 2).mean().sqrt())
        if err < best[0]:
            best = (err, float(fc), gain)
    # Phase delay −∠(R/LP)/ω, averaged over the low band (where the sphere ITD is ~constant). The
    # fitted low-pass's own phase is removed first: τ is the model's pure delay, and τ plus the
    # low-pass's phase delay (≈ 1/(2πf_c) at low frequency) must reproduce the measured one.
    lp_low = first_order_lowpass(torch.tensor(best[1], dtype=torch.float64), freqs[low], sample_rate)
    ang = np.unwrap(torch.angle(rel[low] / lp_low).cpu().numpy())
    delay = float(np.clip(np.mean(-ang / (2 * math.pi * freqs[low].cpu().numpy())), 0.0, DELAY_MAX_S * 0.99))
    return {"delay_s": delay, "corner_hz": best[1], "gain_db": best[2], "fit_err_db_rms": best[0]}


class Virtualizer(nn.Module):
    """Ipsilateral all-pass ``A`` and contralateral delayed low-pass ``X`` (shared by L and R: the
    R channel uses the mirror image, i.e. the same filters with the ears swapped).

    Args:
        sample_rate: Hz.
        n_taps: FIR length of the realised filters.
        num_sections: all-pass sections K (0 = A is a pure unit impulse).
        delay_s, corner_hz, gain_db: initial physical parameters.
    """

    def __init__(self, sample_rate: float, n_taps: int = 128, num_sections: int = 2,
                 delay_s: float = 2.5e-4, corner_hz: float = 1500.0, gain_db: float = -6.0):
        super().__init__()
        self.sample_rate = float(sample_rate)
        self.n_taps = int(n_taps)
        self.raw_delay = nn.Parameter(bounded_inverse(torch.tensor(delay_s, dtype=torch.float64), 0.0, DELAY_MAX_S))
        self.raw_corner = nn.Parameter(corner_hz_inverse(torch.tensor(corner_hz, dtype=torch.float64), *CORNER_RANGE_HZ))
        self.raw_gain = nn.Parameter(bounded_inverse(torch.tensor(gain_db, dtype=torch.float64), *GAIN_RANGE_DB))
        # Poles start near the origin (A ≈ a pure delay of 2K samples) spread over the band.
        angles = torch.linspace(0.15, 0.85, max(num_sections, 1), dtype=torch.float64)[:num_sections] * math.pi
        self.raw_radius = nn.Parameter(pole_radius_inverse(torch.full((num_sections,), 0.05, dtype=torch.float64), MAX_POLE_RADIUS))
        self.raw_angle = nn.Parameter(torch.logit(angles / math.pi))

    def physical(self) -> dict[str, Tensor]:
        """Physical parameters: delay (s), corner (Hz), gain (dB), pole radius and angle (rad)."""
        return {
            "delay_s": bounded(self.raw_delay, 0.0, DELAY_MAX_S),
            "corner_hz": corner_hz(self.raw_corner, *CORNER_RANGE_HZ),
            "gain_db": bounded(self.raw_gain, *GAIN_RANGE_DB),
            "pole_radius": pole_radius(self.raw_radius, MAX_POLE_RADIUS),
            "pole_angle": math.pi * torch.sigmoid(self.raw_angle),
        }

    def taps(self) -> Tensor:
        """FIR realisation of (A, X): (2, n_taps) real, float of the module's parameters."""
        n_fft = 8 * self.n_taps
        freqs = torch.fft.rfftfreq(n_fft, 1.0 / self.sample_rate).to(self.raw_delay.dtype).to(self.raw_delay.device)
        p = self.physical()
        if p["pole_radius"].numel():
            a = allpass_response(p["pole_radius"], p["pole_angle"], freqs, self.sample_rate)
        else:
            a = torch.ones_like(freqs, dtype=torch.complex128 if freqs.dtype == torch.float64 else torch.complex64)
        x = crosstalk_response(p["delay_s"], p["corner_hz"], p["gain_db"], freqs, self.sample_rate)
        responses = torch.stack([a.to(x.dtype), x])
        return torch.fft.irfft(responses, n_fft)[:, : self.n_taps]

    @torch.no_grad()
    def set_physical(self, delay_s: float, corner_hz_value: float, gain_db: float) -> None:
        """Set the contralateral parameters from physical values (inverse maps, in float64)."""
        f64 = torch.float64
        self.raw_delay.copy_(bounded_inverse(torch.tensor(min(max(delay_s, 1e-7), DELAY_MAX_S * 0.999), dtype=f64), 0.0, DELAY_MAX_S))
        self.raw_corner.copy_(corner_hz_inverse(torch.tensor(corner_hz_value, dtype=f64), *CORNER_RANGE_HZ))
        self.raw_gain.copy_(bounded_inverse(torch.tensor(gain_db, dtype=f64), *GAIN_RANGE_DB))
