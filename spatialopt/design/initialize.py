"""Initialise the spatial system from the closed-form designs (they are also the baselines).

* CTC: multi-point least-squares over the optimisation zone (:func:`baselines.ls_zone_ctc`), with
  a modelling delay, crossover masks and Kirkeby-style frequency-dependent regularisation,
  realised as FIR taps by frequency sampling.
* Beamformer: regularised least-squares fit of the horizontal pattern to the centre-beam target
  (:func:`baselines.ls_beamformer`) with a white-noise-gain floor, delayed by the same modelling
  delay so that it is causal.
* Virtualizer: delay, corner and gain fitted to the relative HRTF of the real ±30° pair
  (:func:`virtualizer.fit_crosstalk`).
* Alignment: the C path is delayed by the all-pass's group delay so that it arrives with L/R.

The same functions produce the FIR baselines the report compares against (``kirkeby``,
``ls_zone``, ``delay_and_sum``), realised at the same lengths.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from spatialopt.design import baselines
from spatialopt.design.system import SpatialSystem, SystemShape, compose_fir
from spatialopt.design.virtualizer import fit_crosstalk

__all__ = ["DesignConfig", "realize_fir", "initialize_system", "baseline_stages"]


@dataclass
class DesignConfig:
    """Closed-form design settings (``system:`` config group, besides the tap counts).

    Attributes:
        modelling_delay_ms: main-tap position of the CTC and beam FIRs.
        ctc_band_hz: where the CTC regularisation is small.
        ctc_beta_inside / ctc_beta_outside: relative Kirkeby regularisation in / out of band.
        zone_contra_weight: weight of the crosstalk terms in the zone design (κ).
        beam_beta: relative LS-beamformer regularisation. beam_wng_min_db: WNG floor of the init.
        crossover_octaves: width of the crossover ramps inside each driver's band.
        symmetry: "none" (every filter free), "mirror" (left–right mirror-symmetric filters:
            the scene must be symmetric, :mod:`spatialopt.design.symmetry`) or "auto" (mirror
            when the scene is symmetric, else none).
    """

    modelling_delay_ms: float = 2.5
    ctc_band_hz: tuple = (150.0, 16000.0)
    ctc_beta_inside: float = 1e-3
    ctc_beta_outside: float = 1.0
    zone_contra_weight: float = 10.0
    beam_beta: float = 1e-3
    beam_wng_min_db: float = -6.0
    crossover_octaves: float = 1.0 / 3.0
    symmetry: str = "none"


def realize_fir(response: Tensor, n_taps: int, n_fft: int) -> Tensor:
    """FIR taps (..., n_taps) from a causal-by-design response (..., n_fft/2+1) on the rfft grid
    (irfft and truncation; the modelling delay already sits inside the response)."""
    return torch.fft.irfft(response, n_fft)[..., :n_taps]


def _allpass_group_delay_samples(system: SpatialSystem) -> int:
    """Energy centroid of the all-pass's realised impulse response, whole samples."""
    with torch.no_grad():
        a = system.virtualizer.taps()[0].to(torch.float64)
        energy = a**2
        return int(round(float((torch.arange(a.numel(), dtype=torch.float64) * energy).sum() / energy.sum())))


def baseline_stages(scene, shape: SystemShape, cfg: DesignConfig, n_fft: int) -> dict[str, dict[str, Tensor]]:
    """The closed-form designs as FIR stages (float64), keyed by baseline name.

    Returns:
        ``{"kirkeby": {"ctc"}, "ls_zone": {"ctc"}, "ls_beam": {"beam"}, "delay_and_sum": {"beam"}}``
        with ``ctc`` (2, D, T_ctc) and ``beam`` (D, T_beam) taps.
    """
    freqs = scene.freqs.to(torch.float64)
    # The CTC target is the ear signal delayed by the propagation time plus the modelling delay:
    # the inverse must not try to undo the acoustic travel time (it would be acausal).
    nominal = scene.points[scene.nominal_index, :3].to(torch.float64)
    propagation_s = float(torch.linalg.vector_norm(nominal)) / scene.speed_of_sound
    delay_s = propagation_s + cfg.modelling_delay_ms / 1000.0
    mask = baselines.band_mask(freqs, scene.driver_bands, cfg.crossover_octaves)
    beta = baselines.kirkeby_regularization(freqs, cfg.ctc_band_hz, cfg.ctc_beta_inside, cfg.ctc_beta_outside)
    h = scene.H.to(torch.complex128)
    kirk = baselines.kirkeby_ctc(h[:, scene.nominal_index], beta, delay_s, freqs, mask)
    zone_delays = baselines.zone_target_delays(scene.points, scene.nominal_index, delay_s, scene.speed_of_sound)
    zone = baselines.ls_zone_ctc(h, scene.point_weights.to(torch.float64), beta, zone_delays, freqs, mask,
                                 contra_weight=cfg.zone_contra_weight)
    target, weights = baselines.centre_beam_target(scene.ring_az)
    beam = baselines.ls_beamformer(scene.G_ring.to(torch.complex128), scene.ring_az, target, weights,
                                   cfg.beam_beta, mask, wng_min_db=cfg.beam_wng_min_db)
    das = baselines.delay_and_sum(scene.G_ring.to(torch.complex128), scene.ring_az, mask=mask)
    delay = torch.exp(-2j * math.pi * freqs * cfg.modelling_delay_ms / 1000.0)[:, None]

    # Ear level of the real pair's speaker (band rms at the nominal point): the CTC delivers
    # that level instead of unity, so every channel plays as loud as one real speaker would.
    ref = scene.H_ref[:, scene.nominal_index, 0, 0].abs()
    in_band = (freqs >= 200) & (freqs <= 16000)
    ear_level = float(ref[in_band].square().mean().sqrt())

    def ctc_fir(c: Tensor) -> Tensor:  # (F, D, 2) → (2, D, T)
        return realize_fir(ear_level * c.permute(2, 1, 0), shape.ctc_taps, n_fft)

    def beam_fir(b: Tensor) -> Tensor:  # (F, D) → (D, T)
        # On-axis far field equal to a unit monopole's (the baselines' normalisation), delayed.
        return realize_fir((b * delay).T, shape.beam_taps, n_fft)

    return {
        "kirkeby": {"ctc": ctc_fir(kirk)},
        "ls_zone": {"ctc": ctc_fir(zone)},
        "ls_beam": {"beam": beam_fir(beam)},
        "delay_and_sum": {"beam": beam_fir(das)},
    }


def initialize_system(scene, shape: SystemShape, cfg: DesignConfig, n_fft: int) -> tuple[SpatialSystem, dict]:
    """Build a :class:`SpatialSystem` initialised from the closed-form designs.

    Args:
        scene: a :class:`~spatialopt.acoustics.scene.Scene` (optimisation grid and zone).
        shape: filter sizes. cfg: :class:`DesignConfig`. n_fft: FFT size of the scene grid.

    Returns:
        ``(system, info)`` with info holding the baseline stages and the virtualizer fit.
    """
    stages = baseline_stages(scene, shape, cfg, n_fft)
    system = SpatialSystem(shape, scene.sample_rate)
    ref = scene.H_ref[:, scene.nominal_index].to(torch.complex128)
    fit = fit_crosstalk(ref[:, 1, 0] / ref[:, 0, 0], scene.freqs, scene.sample_rate)
    system.virtualizer.set_physical(fit["delay_s"], fit["corner_hz"], fit["gain_db"])
    with torch.no_grad():
        system.ctc.copy_(stages["ls_zone"]["ctc"].to(system.ctc.dtype))
        system.beam.copy_(stages["ls_beam"]["beam"].to(system.beam.dtype))
    system.set_delays(0, _allpass_group_delay_samples(system))
    return system, {"baselines": stages, "virtualizer_fit": fit, "ctc_delay": round(cfg.modelling_delay_ms * scene.sample_rate / 1000)}


def baseline_composite(stages: dict[str, Tensor], system: SpatialSystem, ctc_name: str, beam_name: str) -> Tensor:
    """Composite FIR (3, D, T) of a baseline: its CTC/beam stages with the system's virtualizer
    and alignment, so baselines and ours differ only in the optimised stages."""
    with torch.no_grad():
        virt = system.virtualizer.taps().to(torch.float64)
        return compose_fir(stages[ctc_name]["ctc"], virt, stages[beam_name]["beam"], system.lr_delay, system.c_delay, system.shape.n_taps)
