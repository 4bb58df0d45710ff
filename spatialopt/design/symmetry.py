"""Left–right mirror symmetry of a design problem, and the projection that enforces it.

A device, listener, zone and room that are symmetric under the reflection ``y → −y`` (device
left ↔ right) have an optimal system that is symmetric too: the CTC filter for the right ear's
programme is the left one's with mirrored drivers, ``C_r[d] = C_l[m(d)]``, and the centre beam
feeds mirrored drivers alike, ``B[d] = B[m(d)]``, where ``m`` is the driver permutation of the
reflection (an involution: ``m(m(d)) = d``). Enforcing that halves the free parameters and rules
out asymmetric local minima of the optimiser (seen on ``soundbar_4``: one low-frequency feed left
at −6 dB while its mirror path sat below −50 dB).

The symmetry is read off the scene's transfer tensors, not its config, so it covers every driver
model, listener (a measured HRTF set is rarely exactly symmetric: then there is none) and room:
``m`` is accepted when the ear transfer ``H`` at each zone point equals, with ears swapped and
drivers permuted, ``H`` at the mirrored point (``y → −y``, yaw → −yaw), the far-field ring
``G_ring`` at each azimuth equals, drivers permuted, the ring at the mirrored azimuth, and the
reference pair's ``H_ref`` mirrors onto itself with ears and speakers swapped.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["mirror_permutation", "mirror_ctc", "mirror_beam", "MIRROR_RTOL"]

MIRROR_RTOL = 1e-6
"""Largest deviation from exact symmetry accepted, relative to the tensor's peak magnitude (the
transfer functions of an exactly symmetric geometry agree to ≈ 1e-12; a measured set to ≈ 1e-2)."""


def _mirror_index(values: Tensor, mirrored: Tensor, atol: float) -> list[int] | None:
    """For each row of ``mirrored`` (N, K), the index of the equal row of ``values`` (N, K)
    within ``atol``; None when one has no match."""
    dist = torch.cdist(mirrored.to(torch.float64), values.to(torch.float64))  # (N, N)
    best = dist.argmin(dim=1)
    if bool((dist.gather(1, best[:, None]) > atol).any()):
        return None
    return [int(i) for i in best]


def _wrapped(angle: Tensor) -> Tensor:
    """Angles (rad) as (cos, sin) pairs, so that −π and π compare equal."""
    return torch.stack([torch.cos(angle), torch.sin(angle)], dim=-1)


def mirror_permutation(scene, rtol: float = MIRROR_RTOL) -> list[int] | None:
    """The driver permutation ``m`` of the scene's ``y → −y`` symmetry, or None when the scene
    (device, listener, zone, room) is not mirror-symmetric.

    Args:
        scene: :class:`~spatialopt.acoustics.scene.Scene`.
        rtol: tolerance relative to the peak of ``H`` and of ``G_ring``.

    Returns:
        ``m`` as a list of D driver indices (``m[d]`` = the mirror image of driver ``d``;
        ``m[d] = d`` for a driver on the symmetry plane), or None.
    """
    positions = scene.driver_positions.to(torch.float64)  # (D, 3) m
    mirrored = positions * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64)
    perm = _mirror_index(positions, mirrored, atol=1e-6)
    if perm is None or sorted(perm) != list(range(len(perm))):
        return None
    if any(perm[perm[d]] != d for d in range(len(perm))):
        return None
    bands = scene.driver_bands.to(torch.float64)
    if not torch.equal(bands, bands[perm]):
        return None

    # Zone points (x, y, z, yaw) and ring azimuths under the reflection.
    points = scene.points.to(torch.float64)  # (P, 4)
    keys = torch.cat([points[:, :3], _wrapped(points[:, 3])], dim=1)
    mirrored_points = torch.cat([points[:, :3] * torch.tensor([1.0, -1.0, 1.0], dtype=torch.float64),
                                 _wrapped(-points[:, 3])], dim=1)
    point_map = _mirror_index(keys, mirrored_points, atol=1e-6)
    ring = _wrapped(scene.ring_az.to(torch.float64))
    ring_map = _mirror_index(ring, _wrapped(-scene.ring_az.to(torch.float64)), atol=1e-6)
    if point_map is None or ring_map is None:
        return None

    index = torch.tensor(perm)
    H = scene.H  # (F, P, 2, D): mirrored point, ears swapped, drivers permuted
    H_mirror = H[:, point_map].flip(2)[..., index]
    G = scene.G_ring  # (F, A, D)
    G_mirror = G[:, ring_map][..., index]
    R = scene.H_ref  # (F, P, 2 ears, 2 speakers): the ±30° pair mirrors onto itself, speakers swapped
    R_mirror = R[:, point_map].flip(2).flip(3)
    for tensor, image in ((H, H_mirror), (G, G_mirror), (R, R_mirror)):
        peak = float(tensor.abs().max())
        if not math.isfinite(peak) or peak == 0.0 or float((tensor - image).abs().max()) > rtol * peak:
            return None
    return perm


def mirror_ctc(ctc: Tensor, perm: list[int]) -> Tensor:
    """The nearest mirror-symmetric CTC stage (orthogonal projection, idempotent).

    Args:
        ctc: (2, D, T) taps ``(C_l, C_r)``. perm: the driver permutation ``m``.

    Returns:
        (2, D, T): ``(c, c[m])`` with ``c = (C_l + C_r[m]) / 2``, so ``C_r[d] = C_l[m(d)]``.
    """
    index = torch.as_tensor(perm, device=ctc.device)
    left = 0.5 * (ctc[0] + ctc[1].index_select(0, index))
    return torch.stack([left, left.index_select(0, index)])


def mirror_beam(beam: Tensor, perm: list[int]) -> Tensor:
    """The nearest mirror-symmetric beam (D, T): ``(B + B[m]) / 2``."""
    index = torch.as_tensor(perm, device=beam.device)
    return 0.5 * (beam + beam.index_select(0, index))
