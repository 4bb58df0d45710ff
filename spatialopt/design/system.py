"""The composed spatial system (DESIGN.md §1): virtualizer + CTC + beamformer + delay alignment.

Per frequency, with ``A``/``X`` the virtualizer's ipsi/contra filters, ``C_l``/``C_r`` the CTC
filter vectors over the D drivers and ``B`` the beamformer::

    W_L = z^{−d_LR}(C_l·A + C_r·X)     W_R = z^{−d_LR}(C_r·A + C_l·X)     W_C = z^{−d_C} B

Everything is an FIR filter: the CTC stage ``ctc`` (2, D, T_ctc) and the beamformer ``beam``
(D, T_beam) are free FIR taps (the optimised parameters), the virtualizer is realised as FIR
taps (2, T_v) from its physical parameters, and the alignment delays ``d_LR``, ``d_C`` are whole
samples. The composite (3, D, T) is their exact time-domain composition, so the filter set that
is exported is exactly the one that was optimised (and "composite = composition of the stages"
holds to rounding).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from spatialopt.design.symmetry import mirror_beam, mirror_ctc
from spatialopt.design.virtualizer import Virtualizer
from spatialopt.dsp.filters import fir_response

__all__ = ["SystemShape", "SpatialSystem", "compose_fir"]

CHANNELS = ("L", "R", "C")


MAX_TAPS = 2**16
"""Longest filter of any stage (1.4 s at 48 kHz); a longer one is refused before anything is allocated."""
MAX_ALLPASS_SECTIONS = 64


@dataclass(frozen=True)
class SystemShape:
    """Sizes of the system's filters.

    Attributes:
        n_drivers: D.
        n_taps: length T of the exported composite filters.
        ctc_taps: T_ctc. beam_taps: T_beam. virtualizer_taps: T_v.
        allpass_sections: K (virtualizer).
    """

    n_drivers: int
    n_taps: int = 1024
    ctc_taps: int = 768
    beam_taps: int = 512
    virtualizer_taps: int = 128
    allpass_sections: int = 2

    def validate(self) -> None:
        from spatialopt.errors import ConfigError

        for key in ("n_taps", "ctc_taps", "beam_taps", "virtualizer_taps"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_TAPS:
                raise ConfigError(f"system.{key}", value, f"must be an integer in [1, {MAX_TAPS}] (taps)")
        value = self.allpass_sections
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ALLPASS_SECTIONS:
            raise ConfigError("system.allpass_sections", value, f"must be an integer in [0, {MAX_ALLPASS_SECTIONS}]")
        if self.ctc_taps + self.virtualizer_taps - 1 > self.n_taps:
            raise ConfigError("system.n_taps", self.n_taps,
                              f"must be >= ctc_taps + virtualizer_taps − 1 = {self.ctc_taps + self.virtualizer_taps - 1}")
        if self.beam_taps > self.n_taps:
            raise ConfigError("system.beam_taps", self.beam_taps, f"must be <= n_taps = {self.n_taps}")


def _fft_conv(a: Tensor, b: Tensor) -> Tensor:
    """Linear convolution along the last axis (broadcast over leading axes), via the FFT."""
    n = a.shape[-1] + b.shape[-1] - 1
    n_fft = 1 << (n - 1).bit_length()
    out = torch.fft.irfft(torch.fft.rfft(a, n_fft) * torch.fft.rfft(b, n_fft), n_fft)
    return out[..., :n]


def _place(taps: Tensor, delay: int, length: int) -> Tensor:
    """Delay taps (..., T) by ``delay`` whole samples inside a (..., length) buffer."""
    out = taps.new_zeros(taps.shape[:-1] + (length,))
    end = min(length, delay + taps.shape[-1])
    if end > delay:  # a delay at or past the buffer's end leaves it all zeros
        out[..., delay:end] = taps[..., : end - delay]
    return out


def compose_fir(ctc: Tensor, virtualizer: Tensor, beam: Tensor, lr_delay: int, c_delay: int, n_taps: int) -> Tensor:
    """Composite FIR filters from the stages (DESIGN.md §1).

    Args:
        ctc: (2, D, T_ctc) — C_l, C_r per driver.
        virtualizer: (2, T_v) — A, X.
        beam: (D, T_beam).
        lr_delay, c_delay: whole-sample alignment delays of the L/R and C paths.
        n_taps: composite length T (must hold every path, else the tail is cut).

    Returns:
        (3, D, T) taps, channels (L, R, C).
    """
    a, x = virtualizer[0], virtualizer[1]
    c_l, c_r = ctc[0], ctc[1]
    w_l = _fft_conv(c_l, a) + _fft_conv(c_r, x)
    w_r = _fft_conv(c_r, a) + _fft_conv(c_l, x)
    return torch.stack([_place(w_l, lr_delay, n_taps), _place(w_r, lr_delay, n_taps), _place(beam, c_delay, n_taps)])


class SpatialSystem(nn.Module):
    """Differentiable spatial system: the optimiser's parameters and their composition.

    Args:
        shape: :class:`SystemShape`.
        sample_rate: Hz.
        lr_delay, c_delay: whole-sample alignment delays (set by the initialiser).
    """

    def __init__(self, shape: SystemShape, sample_rate: float, lr_delay: int = 0, c_delay: int = 0):
        super().__init__()
        shape.validate()
        self.shape = shape
        self.sample_rate = float(sample_rate)
        d = shape.n_drivers
        self.ctc = nn.Parameter(torch.zeros(2, d, shape.ctc_taps))
        self.beam = nn.Parameter(torch.zeros(d, shape.beam_taps))
        self.virtualizer = Virtualizer(sample_rate, shape.virtualizer_taps, shape.allpass_sections)
        self.mirror: list[int] | None = None
        self.set_delays(lr_delay, c_delay)

    def set_mirror(self, perm: list[int] | None) -> None:
        """Enforce left–right mirror symmetry with the driver permutation ``perm``
        (:func:`~spatialopt.design.symmetry.mirror_permutation`), or lift it (None). The
        parameters keep their shapes; :meth:`stages` projects them onto the symmetric ones, so
        the gradient reaches both halves alike and every exported stage is exactly symmetric."""
        if perm is not None:
            d = self.shape.n_drivers
            if sorted(perm) != list(range(d)) or any(perm[perm[i]] != i for i in range(d)):
                raise ValueError(f"mirror permutation {perm} is not an involution of {d} drivers")
            perm = [int(i) for i in perm]
        self.mirror = perm

    def set_delays(self, lr_delay: int, c_delay: int) -> None:
        """Set the alignment delays (samples, >= 0); both paths must still fit in ``n_taps``."""
        from spatialopt.errors import ConfigError

        s = self.shape
        for key, value in (("lr_delay", lr_delay), ("c_delay", c_delay)):
            if value < 0:
                raise ConfigError(f"system.{key}", value, "alignment delays must be >= 0 samples")
        if lr_delay + s.ctc_taps + s.virtualizer_taps - 1 > s.n_taps or c_delay + s.beam_taps > s.n_taps:
            raise ConfigError("system.n_taps", s.n_taps, f"too short for the alignment delays ({lr_delay}, {c_delay} samples)")
        self.lr_delay, self.c_delay = int(lr_delay), int(c_delay)

    def stages(self) -> dict[str, Tensor]:
        """FIR stages: ``ctc`` (2, D, T_ctc), ``virtualizer`` (2, T_v), ``beam`` (D, T_beam)
        (mirror-symmetric projections of the parameters when :meth:`set_mirror` is set)."""
        ctc, beam = self.ctc, self.beam
        if self.mirror is not None:
            ctc, beam = mirror_ctc(ctc, self.mirror), mirror_beam(beam, self.mirror)
        return {"ctc": ctc, "virtualizer": self.virtualizer.taps().to(self.ctc.dtype), "beam": beam}

    def composite(self) -> Tensor:
        """(3, D, n_taps) composite FIR, channels (L, R, C)."""
        st = self.stages()
        return compose_fir(st["ctc"], st["virtualizer"], st["beam"], self.lr_delay, self.c_delay, self.shape.n_taps)

    def responses(self, freqs: Tensor) -> dict[str, Tensor]:
        """Frequency responses on a grid.

        Args:
            freqs: (F,) Hz.

        Returns:
            ``W`` (F, D, 3) composite; ``C`` (F, D, 2) CTC stage (C_l, C_r); ``B`` (F, D) beam;
            ``AX`` (F, 2) virtualizer (A, X). Complex, dtype following the parameters.
            Also the taps: ``fir`` (3, D, n_taps) composite, ``ctc_taps`` (2, D, T_ctc).
        """
        st = self.stages()
        fir = compose_fir(st["ctc"], st["virtualizer"], st["beam"], self.lr_delay, self.c_delay, self.shape.n_taps)
        w = fir_response(fir, freqs, self.sample_rate)  # (3, D, F)
        c = fir_response(st["ctc"], freqs, self.sample_rate)  # (2, D, F)
        b = fir_response(st["beam"], freqs, self.sample_rate)  # (D, F)
        ax = fir_response(st["virtualizer"], freqs, self.sample_rate)  # (2, F)
        return {"W": w.permute(2, 1, 0), "C": c.permute(2, 1, 0), "B": b.T, "AX": ax.T, "fir": fir, "ctc_taps": st["ctc"]}
