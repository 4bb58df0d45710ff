"""Binaural preview: what a listener at the nominal zone point hears, as filters for headphones.

The ear impulse responses come from the scene the filter set was designed with (its stored
config: device, listener, room), rebuilt at the nominal point only with an FFT long enough that
the responses do not wrap in time (direct path plus room reflections). Two filter matrices come
out, both shaped like a filter set's ``fir`` so the streaming :class:`~spatialopt.render.Renderer`
applies them:

* ``system`` (3, 2, T'): input channels (L, R, C) → ears (left, right) through the designed
  filters, the drivers and the acoustic paths: ``Σ_d fir[c, d] ⊛ h[ear, d]``;
* ``reference`` (3, 2, T_h): a real ±30° loudspeaker pair playing L and R (the C row is zero),
  through the same head — the image the design imitates, for A/B listening.

Both share one scale: the reference pair's ipsilateral ear response has unit rms gain over
200 Hz–16 kHz, so levels compare directly and a full-scale input stays near full scale.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from spatialopt.errors import DataError

__all__ = ["BinauralFilters", "binaural_filters"]


@dataclass
class BinauralFilters:
    """Filter matrices of the binaural preview (see the module docstring).

    Attributes:
        system: (3, 2, T') float64 taps, inputs (L, R, C) → ears (left, right).
        reference: (3, 2, T_h) float64 taps, the ±30° pair (C row zero).
        sample_rate: Hz. scale: the linear gain applied to both (1 / reference ipsi rms).
    """

    system: Tensor
    reference: Tensor
    sample_rate: float
    scale: float


def _preview_config(config: dict, n_fft: int) -> dict:
    cfg = copy.deepcopy(config)
    cfg["zone"] = {"lateral": [0.0], "depth": [0.0], "height": [0.0], "yaw": [0], "sigma": None}
    scene = dict(cfg.get("scene") or {})
    # Only the ear transfers are needed: the far-field grids can be tiny.
    scene.update(n_fft=n_fft, ring_count=4, sphere_order=1)
    cfg["scene"] = scene
    return cfg


def _longest_path_s(config: dict) -> float:
    """Upper bound of the longest acoustic path the preview must hold, seconds."""
    c = float((config.get("scene") or {}).get("speed_of_sound", 343.0))
    distance = float((config.get("listener") or {}).get("distance", 2.0))
    room = config.get("room") or {}
    if room.get("type", "free") == "free":
        return (distance + 1.0) / c
    dims = [float(v) for v in room.get("dims", [5.0, 4.0, 2.7])]
    order = int(room.get("max_order", 3))
    # An image of order n lies at most (n + 1) room diagonals away.
    return (order + 1) * math.sqrt(sum(d * d for d in dims)) / c


def binaural_filters(filterset, n_fft: int | None = None, trust_config_paths: bool = False) -> BinauralFilters:
    """Binaural preview filters of a filter set at its design's nominal listening point.

    Args:
        filterset: a :class:`~spatialopt.filterset.FilterSet` whose ``config`` holds the design
            scene (``device``, ``listener``, ``room``, ``scene``, ``fs``).
        n_fft: FFT size of the ear responses (samples); default: the next power of two that
            holds the longest acoustic path plus 50 ms of decay.
        trust_config_paths: open the files the stored config names (a SOFA listener, measured
            drivers). Off by default: a filter set from elsewhere must not make us open paths.

    Returns:
        :class:`BinauralFilters`.
    """
    from spatialopt.config import config_file_paths, scene_from_config

    config = filterset.config or {}
    paths = config_file_paths(config)
    if paths and not trust_config_paths:
        named = ", ".join(f"{key}={path}" for key, path in paths)
        raise DataError(f"the filter set's design config names files ({named}); stored paths are not opened "
                        "unless you trust the set (trust_config_paths=true)")
    if not isinstance(config.get("device"), dict) or not isinstance(config.get("listener"), dict):
        raise DataError("the filter set does not record the scene it was designed with (config.device/listener); "
                        "a binaural preview needs it")
    fs = float(filterset.sample_rate)
    if float(config.get("fs", fs)) != fs:
        raise DataError(f"the filter set's rate ({fs:g} Hz) differs from its design scene's fs "
                        f"({config.get('fs')} Hz): preview the set at its design rate")
    if n_fft is None:
        n_fft = 1 << math.ceil(math.log2((_longest_path_s(config) + 0.05) * fs))
    scene = scene_from_config(_preview_config(config, int(n_fft)))
    if list(scene.driver_names) != list(filterset.driver_names):
        raise DataError(f"the design scene's drivers {scene.driver_names} differ from the filter set's "
                        f"{filterset.driver_names}")
    H = scene.H[:, scene.nominal_index].to(torch.complex128)  # (F, 2, D)
    H_ref = scene.H_ref[:, scene.nominal_index].to(torch.complex128)  # (F, 2 ears, 2 speakers)

    band = (scene.freqs >= 200.0) & (scene.freqs <= 16000.0)
    ipsi = torch.cat([H_ref[band, 0, 0], H_ref[band, 1, 1]])
    scale = float(1.0 / ipsi.abs().pow(2).mean().sqrt())

    h = torch.fft.irfft(H * scale, n_fft, dim=0)  # (n_fft, 2, D) ear impulse responses
    h_ref = torch.fft.irfft(H_ref * scale, n_fft, dim=0)  # (n_fft, 2, 2)

    fir = filterset.fir.to(torch.float64)  # (3, D, T)
    length = fir.shape[-1] + n_fft - 1
    n = 1 << (length - 1).bit_length()
    spec = torch.einsum("cdk,edk->cek", torch.fft.rfft(fir, n), torch.fft.rfft(h.permute(1, 2, 0), n))
    system = torch.fft.irfft(spec, n)[..., :length]  # (3, 2, T')
    reference = torch.zeros(3, 2, n_fft, dtype=torch.float64)
    reference[:2] = h_ref.permute(2, 1, 0)  # speaker (L, R) → ear
    return BinauralFilters(system=system, reference=reference, sample_rate=fs, scale=scale)
