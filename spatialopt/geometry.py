"""Coordinates, angles and rotations.

Frame (DESIGN.md §3): x forward (device front, toward the listener), y left, z up; right-handed.
Azimuth φ is measured from +x toward +y (left positive), elevation from the horizontal plane, and
SH functions take the colatitude θ = π/2 − elevation. Radians inside the library.

The listener faces the device: at head yaw 0 the head's own forward axis is −x, so the
listener's **left ear is on the −y side** of the scene. Head yaw ψ > 0 turns the head to its own
left (counter-clockwise seen from above, a rotation about +z).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "unit_vector",
    "cartesian_to_spherical",
    "rotation_z",
    "rotation_from_az_el",
    "head_rotation",
]


def unit_vector(azimuth: Tensor, elevation: Tensor) -> Tensor:
    """Unit vectors from azimuth and elevation.

    Args:
        azimuth: (...) radians, from +x toward +y.
        elevation: (...) radians, from the horizontal plane toward +z.

    Returns:
        (..., 3) unit vectors (x, y, z).
    """
    azimuth, elevation = torch.broadcast_tensors(azimuth, elevation)
    ce = torch.cos(elevation)
    return torch.stack([ce * torch.cos(azimuth), ce * torch.sin(azimuth), torch.sin(elevation)], dim=-1)


def cartesian_to_spherical(xyz: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Radius, colatitude and azimuth of points.

    Args:
        xyz: (..., 3) metres.

    Returns:
        ``(r, colatitude, azimuth)``, each (...): metres, radians (0 at +z), radians (atan2(y, x)).
        At the origin the angles are 0.
    """
    r = torch.linalg.vector_norm(xyz, dim=-1)
    safe_r = torch.where(r > 0, r, torch.ones_like(r))
    colat = torch.arccos(torch.clamp(xyz[..., 2] / safe_r, -1.0, 1.0))
    az = torch.atan2(xyz[..., 1], xyz[..., 0])
    return r, colat, az


def rotation_z(angle: Tensor) -> Tensor:
    """Rotation matrices about +z (counter-clockwise seen from above).

    Args:
        angle: (...) radians.

    Returns:
        (..., 3, 3) matrices R with ``R @ v`` rotating v by ``angle``.
    """
    c, s = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    rows = [torch.stack([c, -s, zero], -1), torch.stack([s, c, zero], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, dim=-2)


def rotation_from_az_el(azimuth: float, elevation: float, dtype=torch.float64) -> Tensor:
    """Local-to-scene rotation of a body whose forward axis (+x local) points at (azimuth,
    elevation), with no roll (local +y stays horizontal).

    Args:
        azimuth: radians. elevation: radians.

    Returns:
        (3, 3) matrix R with columns (forward, left, up) of the body in scene coordinates, so
        ``x_scene = R @ x_local`` and ``x_local = Rᵀ @ x_scene``.
    """
    ca, sa, ce, se = math.cos(azimuth), math.sin(azimuth), math.cos(elevation), math.sin(elevation)
    forward = [ce * ca, ce * sa, se]
    left = [-sa, ca, 0.0]
    up = [-se * ca, -se * sa, ce]
    return torch.tensor([forward, left, up], dtype=dtype).T


def head_rotation(yaw: Tensor) -> Tensor:
    """Head-to-scene rotation for a listener facing the device (−x) turned by ``yaw``.

    Args:
        yaw: (...) radians, positive = head turns to its own left.

    Returns:
        (..., 3, 3) matrices; column 0 is the head's forward axis, column 1 its left axis.
    """
    return rotation_z(yaw + math.pi)
