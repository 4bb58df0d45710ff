"""Listener ears: rigid-sphere head (exact series), omnidirectional microphones, SOFA HRTF sets.

Every listener answers one question (:meth:`Listener.monopole_response`): *what pressure do the
two ears receive from a unit monopole* (``p = e^{−jkr}/(4πr)`` in free field) at given positions
relative to the head centre, for given head yaws? The scene combines that with driver directivity
and room reflections.

Ear order is (left, right) — the listener's own ears. The head frame at yaw ψ is
:func:`spatialopt.geometry.head_rotation` (facing the device at ψ = 0, so the left ear is on the
scene's −y side); an ear at ``±ear_azimuth`` sits on the head sphere at that azimuth of the head
frame (left ear at +ear_azimuth), elevation ``ear_elevation``.

Rigid sphere (Duda & Martens 1998, derived here in the ``e^{+jωt}`` convention): a unit monopole at
distance ``r_s`` from the centre of a rigid sphere of radius ``a`` gives, at a surface point at
angle γ from the source direction::

    p(a, γ) = −1/(4π k a²) Σ_n (2n+1) P_n(cos γ) h_n^(2)(k r_s) / h_n^(2)'(ka)

(the Wronskian ``j_n h_n' − j_n' h_n = −i/x²`` turns the incident + scattered sum into this form);
it is reciprocal to a point source on the sphere (see :mod:`spatialopt.acoustics.drivers`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from spatialopt.acoustics import sh
from spatialopt.geometry import head_rotation, unit_vector

__all__ = ["sphere_head_response", "Listener", "SphereHead", "OmniPair", "ear_directions"]


def sphere_head_response(
    k: Tensor, radius: float, source_distance: Tensor, cos_angle: Tensor, order: int | None = None,
    freq_chunk: int = 64,
) -> Tensor:
    """Pressure on a rigid sphere from a unit monopole at finite distance (exact series).

    Args:
        k: (F,) wavenumbers, rad/m (> 0).
        radius: sphere radius a, metres.
        source_distance: (M,) distance from the sphere centre to the source, metres (> a).
        cos_angle: (M, E) cosine of the angle between each ear direction and the source direction.
        order: truncation order; default: converged for each chunk of frequencies
            (``order_for_ka(ka_max, margin=10)``, raised for sources close to the sphere so that
            ``(a/r_s)^N < 1e-10``).
        freq_chunk: frequencies per chunk (bounds memory; the result does not depend on it).

    Returns:
        (F, M, E) complex128 pressure, Pa.
    """
    k = k.to(torch.float64)
    dist = source_distance.to(torch.float64)
    # Terms decay like (a/r_s)^n once n > ka, so a close source needs extra orders for 1e-10.
    near = float(dist.min()) if dist.numel() else math.inf
    near_order = math.ceil(math.log(1e-10) / math.log(radius / near)) if near > radius else 0

    def default_order(k_max: float) -> int:
        return max(sh.order_for_ka(k_max * radius, margin=10), near_order)

    top_order = order if order is not None else default_order(float(k.max()))
    legendre_all = sh.legendre(top_order, cos_angle.to(torch.float64))  # (M, E, N+1), real, computed once
    chunks = []
    for start in range(0, k.shape[0], freq_chunk):
        kc = k[start : start + freq_chunk]
        n_order = order if order is not None else default_order(float(kc.max()))
        chunks.append(_sphere_series(kc, radius, dist, legendre_all[..., : n_order + 1]))
    return torch.cat(chunks, 0)


def _sphere_series(k: Tensor, radius: float, dist: Tensor, legendre: Tensor) -> Tensor:
    """``−1/(4πka²) Σ (2n+1) P_n h_n(k r_s)/h_n'(ka)`` for k (F,), dist (M,), legendre (M, E, N+1) → (F, M, E)."""
    order = legendre.shape[-1] - 1
    n = torch.arange(order + 1, dtype=torch.float64, device=k.device)
    weight = (2 * n + 1) / sh.spherical_bessel(order, k * radius, "h2", derivative=True)  # (F, N+1)
    x = dist[:, None] * k[None, :]  # (M, F)
    radial = sh.hankel2_by_degree(order, x)  # (N+1, M, F)
    radial *= weight.T[:, None, :]
    # Complex × real contraction as one batched real matmul over sources m, on strided views
    # (no copy of the big radial tensor): (M, 2F, N+1) @ (M, N+1, E) → (M, 2F, E).
    n_m, n_f = x.shape
    radial_real = torch.view_as_real(radial).reshape(order + 1, n_m, 2 * n_f).permute(1, 2, 0)
    total = torch.bmm(radial_real, legendre.transpose(1, 2))  # (M, 2F, E)
    total = torch.view_as_complex(total.reshape(n_m, n_f, 2, -1).permute(1, 0, 3, 2).contiguous())  # (F, M, E)
    return -total / (4 * math.pi * radius**2 * k.to(torch.complex128)[:, None, None])


def ear_directions(yaw: Tensor, ear_azimuth: float, ear_elevation: float = 0.0) -> Tensor:
    """Unit vectors from the head centre to the (left, right) ears, scene frame.

    Args:
        yaw: (Y,) head yaw, radians.
        ear_azimuth: ear azimuth in the head frame, radians (left ear at +, right at −).
        ear_elevation: ear elevation in the head frame, radians.

    Returns:
        (Y, 2, 3).
    """
    az = torch.tensor([ear_azimuth, -ear_azimuth], dtype=torch.float64)
    local = unit_vector(az, torch.full_like(az, ear_elevation))  # (2, 3)
    rot = head_rotation(yaw.to(torch.float64))  # (Y, 3, 3)
    return torch.einsum("yij,ej->yei", rot, local)


@dataclass
class Listener:
    """Base class: two ears around a head centre.

    Attributes:
        head_radius: metres (also the ear distance from the head centre).
        ear_azimuth: radians, ears at ±ear_azimuth in the head frame.
        ear_elevation: radians.
    """

    head_radius: float = 0.0875
    ear_azimuth: float = math.pi / 2
    ear_elevation: float = 0.0

    def monopole_response(self, k: Tensor, source_rel: Tensor, yaw: Tensor) -> Tensor:
        """Ear pressures from unit monopoles.

        Args:
            k: (F,) wavenumbers, rad/m.
            source_rel: (M, 3) source positions minus head centre, scene frame, metres.
            yaw: (Y,) head yaws, radians.

        Returns:
            (F, M, Y, 2) complex128, Pa.
        """
        raise NotImplementedError

    def ear_directions(self, yaw: Tensor) -> Tensor:
        """(Y, 2, 3) unit vectors head centre → ears (scene frame)."""
        return ear_directions(yaw, self.ear_azimuth, self.ear_elevation)


@dataclass
class SphereHead(Listener):
    """Rigid spherical head, exact series (Duda & Martens 1998); ``order=None`` picks a converged one."""

    order: int | None = None

    def monopole_response(self, k: Tensor, source_rel: Tensor, yaw: Tensor) -> Tensor:
        dist = torch.linalg.vector_norm(source_rel, dim=-1)  # (M,)
        src_dir = source_rel / dist[:, None]
        ears = self.ear_directions(yaw)  # (Y, 2, 3)
        cos_angle = torch.einsum("mi,yei->mye", src_dir, ears).reshape(dist.shape[0], -1)
        p = sphere_head_response(k, self.head_radius, dist, cos_angle, self.order)
        return p.reshape(k.shape[0], dist.shape[0], yaw.shape[0], 2)


@dataclass
class OmniPair(Listener):
    """Two free-field omnidirectional microphones where the ears would be (the head removed).

    A measurement rig for validation: every transfer is ``e^{−jkd}/(4πd)`` with ``d`` the
    source–microphone distance, checkable by hand.
    """

    def monopole_response(self, k: Tensor, source_rel: Tensor, yaw: Tensor) -> Tensor:
        mics = self.head_radius * self.ear_directions(yaw)  # (Y, 2, 3)
        d = torch.linalg.vector_norm(source_rel[:, None, None, :] - mics[None], dim=-1)  # (M, Y, 2)
        kd = k.to(torch.float64)[:, None, None, None] * d[None]
        return torch.exp(-1j * kd) / (4 * math.pi * d[None])
