"""Rooms: free field, or a shoebox image-source model in the frequency domain.

The shoebox spans ``[0, Lx] × [0, Ly] × [0, Lz]`` in *room* coordinates, axes parallel to the
scene's; the scene origin (the device centre) sits at ``device_position`` in the room, so a scene
point ``x`` is at ``x + device_position``. Walls are ordered ``[x0, x1, y0, y1, z0, z1]`` (x0 the
wall at x = 0, behind the device when it faces +x).

Image sources (Allen & Berkley 1979): along each axis, image index ``t ∈ ℤ`` puts the image at
``t·L + s`` for even t and ``t·L + (L − s)`` for odd t; it has met ``|t|`` walls of that axis —
``⌈|t|/2⌉`` times the first wall the path hits (x1 for t > 0, x0 for t < 0) and ``⌊|t|/2⌋`` times the
other — and is mirrored along the axis when t is odd. The reflection order is ``|tx|+|ty|+|tz|``.
Each reflection multiplies the pressure by ``β = √(1 − α)`` with α the energy absorption
coefficient (as pyroomacoustics does); α may be one number, one per wall, or per octave band
per wall (interpolated over log-frequency between octave centres, held outside).

What an image contributes is the original source's field evaluated at the receiver **mirrored
back** through the image's reflections — so source directivity is taken in the mirrored emission
direction, exactly as the image method prescribes — times the wall gains.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["OCTAVE_CENTRES_HZ", "Shoebox", "ImageSources", "image_sources", "wall_reflection_gains"]

OCTAVE_CENTRES_HZ = (125.0, 250.0, 500.0, 1000.0, 2000.0, 4000.0, 8000.0)


@dataclass
class ImageSources:
    """Image sources of one source position in a shoebox.

    Attributes:
        positions: (I, 3) image positions, room coordinates, metres (image 0 = the source).
        mirror: (I, 3) ±1 per axis: −1 where the image is mirrored along that axis.
        hits: (I, 6) number of reflections on each wall [x0, x1, y0, y1, z0, z1].
        order: (I,) reflection order.
    """

    positions: Tensor
    mirror: Tensor
    hits: Tensor
    order: Tensor


def _axis_images(max_order: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """All ``t`` in [−max_order, max_order] with their hits on (low wall, high wall) and mirror."""
    t = torch.arange(-max_order, max_order + 1)
    first = (t.abs() + 1) // 2
    second = t.abs() // 2
    hits_low = torch.where(t < 0, first, second)
    hits_high = torch.where(t > 0, first, second)
    mirror = torch.where(t % 2 == 1, -1, 1)
    return t, hits_low, hits_high, mirror


def image_sources(source: Tensor, dims: Tensor, max_order: int) -> ImageSources:
    """Enumerate the image sources up to ``max_order`` reflections (vectorised, no Python loop over images).

    Args:
        source: (3,) source position, room coordinates, metres.
        dims: (3,) room size (Lx, Ly, Lz), metres.
        max_order: highest reflection order (0 = direct path only).

    Returns:
        :class:`ImageSources` with I images, sorted by order (the direct path first).
    """
    t, lo, hi, mir = _axis_images(max_order)
    grid = torch.stack(torch.meshgrid(t, t, t, indexing="ij"), -1).reshape(-1, 3)  # (T³, 3)
    order = grid.abs().sum(-1)
    keep = order <= max_order
    grid, order = grid[keep], order[keep]
    idx = grid + max_order
    sort = torch.argsort(order, stable=True)
    grid, order, idx = grid[sort], order[sort], idx[sort]
    dims = dims.to(torch.float64)
    source = source.to(torch.float64)
    odd = (grid % 2 == 1)
    positions = grid.to(torch.float64) * dims + torch.where(odd, dims - source, source)
    hits = torch.stack([lo[idx[:, 0]], hi[idx[:, 0]], lo[idx[:, 1]], hi[idx[:, 1]], lo[idx[:, 2]], hi[idx[:, 2]]], -1)
    return ImageSources(positions=positions, mirror=mir[idx].to(torch.float64), hits=hits, order=order)


def wall_reflection_gains(absorption: Tensor, freqs: Tensor) -> Tensor:
    """Pressure reflection factor ``β = √(1 − α)`` of each wall at each frequency.

    Args:
        absorption: energy absorption α in [0, 1): shape (), (6,) per wall, or (6, B) per wall and
            octave band with B = 7 bands centred at :data:`OCTAVE_CENTRES_HZ`.
        freqs: (F,) Hz.

    Returns:
        (F, 6) real.
    """
    freqs = freqs.to(torch.float64)
    a = absorption.to(torch.float64)
    if a.dim() == 0:
        a = a.expand(6)
    if a.dim() == 1:
        return torch.sqrt(1.0 - a)[None, :].expand(freqs.shape[0], 6)
    centres = torch.log2(torch.tensor(OCTAVE_CENTRES_HZ, dtype=torch.float64))
    lf = torch.log2(freqs.clamp_min(1.0)).clamp(centres[0], centres[-1])
    idx = torch.searchsorted(centres, lf).clamp(1, len(OCTAVE_CENTRES_HZ) - 1)
    w = (lf - centres[idx - 1]) / (centres[idx] - centres[idx - 1])  # (F,)
    alpha = a[:, idx - 1] * (1 - w) + a[:, idx] * w  # (6, F)
    return torch.sqrt(1.0 - alpha).T


@dataclass
class Shoebox:
    """A rectangular room.

    Attributes:
        dims: (3,) (Lx, Ly, Lz), metres.
        device_position: (3,) where the scene origin sits in the room, metres.
        absorption: energy absorption, shape (), (6,) or (6, 7) (see :func:`wall_reflection_gains`).
        max_order: highest reflection order.
    """

    dims: Tensor
    device_position: Tensor
    absorption: Tensor
    max_order: int

    def contains(self, points_scene: Tensor, margin: float = 0.0) -> Tensor:
        """(P,) bool: scene points (P, 3) lie inside the room, at least ``margin`` metres from every wall."""
        p = points_scene.to(torch.float64) + self.device_position
        return ((p >= margin) & (p <= self.dims - margin)).all(-1)

    def images(self, source_scene: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Images of a source given in scene coordinates.

        Args:
            source_scene: (3,) metres.

        Returns:
            ``(positions, mirror, hits)``: (I, 3) image positions in **scene** coordinates, (I, 3)
            ±1 mirror signs, (I, 6) wall hit counts.
        """
        img = image_sources(source_scene.to(torch.float64) + self.device_position, self.dims, self.max_order)
        return img.positions - self.device_position, img.mirror, img.hits

    def image_gains(self, hits: Tensor, freqs: Tensor) -> Tensor:
        """(F, I) product of wall reflection factors ``Π_w β_w(f)^{hits_w}`` for images (I, 6)."""
        beta = wall_reflection_gains(self.absorption, freqs)  # (F, 6)
        log_beta = torch.log(beta.clamp_min(1e-300))
        return torch.exp(log_beta @ hits.to(torch.float64).T)

    def sabine_t60(self, speed_of_sound: float = 343.0) -> float:
        """Sabine reverberation time (s) from the mean absorption at 1 kHz (for reports)."""
        alpha = 1.0 - wall_reflection_gains(self.absorption, torch.tensor([1000.0]))[0] ** 2  # (6,)
        lx, ly, lz = (float(v) for v in self.dims)
        areas = torch.tensor([ly * lz, ly * lz, lx * lz, lx * lz, lx * ly, lx * ly], dtype=torch.float64)
        volume = lx * ly * lz
        return float(24 * math.log(10) * volume / (speed_of_sound * (areas * alpha).sum()))

