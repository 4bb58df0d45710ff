"""Driver directivity as exterior spherical-harmonic expansions.

A driver radiates, in its **local frame** (local +x = the driver's on-axis direction, +y left,
+z up) about its **expansion origin** ``o``::

    p(r, θ, φ; k) = Σ_{n≤N} Σ_m c_nm(k) h_n^(2)(kr) Y_nm(θ, φ)          [Pa, unit source strength]

A scene point ``x`` is taken into that frame as ``x' = Rᵀ(x − o)``. Scale: a unit-strength
monopole radiates ``p = e^{−jkr}/(4πr)``; every analytic model here is normalised so that it
tends to exactly that at low frequency (its volume velocity Q satisfies ``jωρQ = 1``).

The far-field pattern is ``G(u) = lim_{r→∞} r e^{jkr} p(r u) = Σ c_nm i^{n+1}/k · Y_nm(u)``, so a
unit monopole has ``G = 1/(4π)``.

Analytic models (functions return coefficients for a source on the local +x axis):

* :func:`monopole_coeffs` — a point source in free space (``c_00 = −jk/√(4π)``).
* :func:`rigid_sphere_point_coeffs` — a point (volume-velocity) source on a rigid sphere of radius
  ``a``, exact series ``c_nm = −Y_nm(x̂) / (k a² h_n'(ka))``; expansion origin = sphere centre.
* :func:`rigid_sphere_piston_coeffs` — a spherical-cap piston of half-angle α on that sphere,
  ``A_n = −b_n / (2π a²(1−cos α) k h_n'(ka))`` with the cap's Legendre coefficients
  ``b_n = [P_{n−1}(cos α) − P_{n+1}(cos α)]/2``; it tends to the point source as α → 0.

Measured directivity (:func:`fit_far_field`) is a regularised least-squares SH fit of sampled
far-field patterns, with samples in *monopole units* (1 = the unit monopole's far field).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from spatialopt.acoustics import sh
from spatialopt.geometry import cartesian_to_spherical

__all__ = [
    "monopole_coeffs",
    "rigid_sphere_point_coeffs",
    "rigid_sphere_piston_coeffs",
    "axisymmetric_to_sh",
    "radiated_pressure",
    "far_field",
    "fit_far_field",
    "truncation_error",
    "Driver",
]


def _outgoing_phase(coeffs: Tensor) -> Tensor:
    """``i^{n+1}`` for every ACN channel of ``coeffs`` (..., (N+1)²): the far-field limit
    ``h_n^(2)(x) → i^{n+1} e^{−ix}/x``. Returns ((N+1)²,) complex128 on coeffs' device."""
    order = int(round(math.sqrt(coeffs.shape[-1]))) - 1
    n_idx, _ = sh.acn_degrees(order)
    powers = [1, 1j, -1, -1j]  # i^{n+1} for n mod 4 = 3, 0, 1, 2 → index (n+1) mod 4
    phase = torch.tensor([powers[(int(n) + 1) % 4] for n in n_idx], dtype=torch.complex128)
    return phase.to(coeffs.device)


def _n_range(order: int, dtype=torch.float64, device=None) -> Tensor:
    return torch.arange(order + 1, dtype=dtype, device=device)


def axisymmetric_to_sh(legendre_coeffs: Tensor, axis: Tensor) -> Tensor:
    """SH coefficients of ``Σ_n A_n P_n(u·axis)`` (the addition theorem).

    ``P_n(u·a) = 4π/(2n+1) Σ_m Y_nm(a) Y_nm(u)``.

    Args:
        legendre_coeffs: (..., N+1) complex ``A_n``.
        axis: (3,) unit vector of the symmetry axis.

    Returns:
        (..., (N+1)²) complex SH coefficients.
    """
    order = legendre_coeffs.shape[-1] - 1
    _, colat, az = cartesian_to_spherical(axis.to(torch.float64))
    y_axis = sh.real_sh(order, colat, az)  # ((N+1)²,)
    n_idx, _ = sh.acn_degrees(order, device=legendre_coeffs.device)
    scale = 4 * math.pi / (2 * n_idx + 1).to(torch.float64)  # float64: int / float would give float32
    return legendre_coeffs[..., n_idx] * (scale * y_axis).to(legendre_coeffs.dtype)


_LOCAL_AXIS = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)


def monopole_legendre(k: Tensor, order: int = 0) -> Tensor:
    """Axisymmetric form of the unit monopole: ``A_0 = −jk/(4π)``, others 0. (F,) → (F, N+1)."""
    k = k.to(torch.float64)
    out = torch.zeros(k.shape + (order + 1,), dtype=torch.complex128, device=k.device)
    out[..., 0] = -1j * k / (4 * math.pi)
    return out


def rigid_sphere_point_legendre(k: Tensor, radius: float, order: int) -> Tensor:
    """Axisymmetric form ``p = Σ A_n h_n(kr) P_n(cos γ)`` of the point source on a rigid sphere.

    ``A_n = −(2n+1) / (4π a² k h_n'(ka))``. k: (F,) rad/m; returns (F, N+1) complex128.
    """
    k = k.to(torch.float64)
    n = _n_range(order, device=k.device)
    dh = sh.spherical_bessel(order, k * radius, "h2", derivative=True)  # (F, N+1)
    return -(2 * n + 1) / (4 * math.pi * radius**2 * k[:, None] * dh)


def rigid_sphere_piston_legendre(k: Tensor, radius: float, cap_angle: float, order: int) -> Tensor:
    """Axisymmetric form of the spherical-cap piston (see :func:`rigid_sphere_piston_coeffs`).

    k: (F,) rad/m; returns (F, N+1) complex128.
    """
    k = k.to(torch.float64)
    x0 = torch.tensor(math.cos(cap_angle), dtype=torch.float64, device=k.device)
    p = sh.legendre(order + 1, x0)  # (N+2,)
    p_minus = torch.cat([torch.ones(1, dtype=torch.float64, device=k.device), p[:order]])  # P_{n-1}, P_{-1} := 1
    b_n = (p_minus - p[1 : order + 2]) / 2.0
    dh = sh.spherical_bessel(order, k * radius, "h2", derivative=True)
    area = 2 * math.pi * radius**2 * (1 - math.cos(cap_angle))
    return -b_n / (area * k[:, None] * dh)


def monopole_coeffs(k: Tensor, order: int = 0) -> Tensor:
    """Unit monopole at the expansion origin: ``p = e^{−jkr}/(4πr) = −jk/(4π) h_0^(2)(kr)``.

    Args:
        k: (F,) wavenumbers, rad/m.
        order: SH order of the returned tensor (higher coefficients are zero).

    Returns:
        (F, (order+1)²) complex128.
    """
    k = k.to(torch.float64)
    out = torch.zeros(k.shape + (sh.num_coeffs(order),), dtype=torch.complex128, device=k.device)
    out[..., 0] = -1j * k / math.sqrt(4 * math.pi)
    return out


def rigid_sphere_point_coeffs(k: Tensor, radius: float, order: int) -> Tensor:
    """Point source on a rigid sphere, at the sphere's +x pole (exact series).

    Args:
        k: (F,) wavenumbers, rad/m (> 0).
        radius: sphere radius a, metres.
        order: truncation order N.

    Returns:
        (F, (N+1)²) complex128, expansion origin = sphere centre.
    """
    return axisymmetric_to_sh(rigid_sphere_point_legendre(k, radius, order), _LOCAL_AXIS.to(k.device))


def rigid_sphere_piston_coeffs(k: Tensor, radius: float, cap_angle: float, order: int) -> Tensor:
    """Spherical-cap piston (uniform radial velocity) of half-angle ``cap_angle`` on a rigid sphere.

    Args:
        k: (F,) wavenumbers, rad/m (> 0).
        radius: sphere radius a, metres.
        cap_angle: cap half-angle α, radians, 0 < α < π.
        order: truncation order N.

    Returns:
        (F, (N+1)²) complex128, expansion origin = sphere centre; unit strength (jωρQ = 1).
    """
    legendre = rigid_sphere_piston_legendre(k, radius, cap_angle, order)
    return axisymmetric_to_sh(legendre, _LOCAL_AXIS.to(k.device))


def radiated_pressure(coeffs: Tensor, k: Tensor, points_local: Tensor) -> Tensor:
    """Exterior field ``Σ c_nm h_n^(2)(kr) Y_nm`` at points given in the driver's local frame.

    Args:
        coeffs: (F, (N+1)²) complex.
        k: (F,) wavenumbers, rad/m.
        points_local: (P, 3) metres, relative to the expansion origin, local axes.

    Returns:
        (F, P) complex pressure, Pa (unit source strength).
    """
    order = int(round(math.sqrt(coeffs.shape[-1]))) - 1
    r, colat, az = cartesian_to_spherical(points_local.to(torch.float64))
    y = sh.real_sh(order, colat, az).to(coeffs.dtype)  # (P, C)
    hn = sh.spherical_hn2(order, k.to(torch.float64)[:, None] * r[None, :])  # (F, P, N+1)
    n_idx, _ = sh.acn_degrees(order, device=coeffs.device)
    # Σ_n h_n Σ_m c_nm Y_nm: contract per degree without materialising (F, P, C).
    per_degree = torch.zeros(coeffs.shape[0], r.shape[0], order + 1, dtype=coeffs.dtype, device=coeffs.device)
    for n in range(order + 1):
        sl = slice(n * n, (n + 1) * (n + 1))
        per_degree[..., n] = coeffs[:, sl] @ y[:, sl].T
    return (per_degree * hn.to(coeffs.dtype)).sum(-1)


def far_field(coeffs: Tensor, k: Tensor, colatitude: Tensor, azimuth: Tensor) -> Tensor:
    """Far-field pattern ``G(u) = Σ c_nm i^{n+1}/k Y_nm(u)`` in the local frame.

    Phase is referenced to the expansion origin. A unit monopole gives 1/(4π).

    Args:
        coeffs: (F, (N+1)²) complex.
        k: (F,) wavenumbers, rad/m (> 0).
        colatitude, azimuth: (S,) local-frame directions, radians.

    Returns:
        (F, S) complex, metres·Pa (pressure × distance).
    """
    return sh.sh_evaluate(far_field_coeffs(coeffs, k), colatitude, azimuth)


def axisymmetric_pressure(legendre_coeffs: Tensor, k: Tensor, points_local: Tensor) -> Tensor:
    """Exterior field ``Σ A_n h_n^(2)(kr) P_n(cos γ)`` of a source symmetric about local +x.

    Args:
        legendre_coeffs: (F, N+1) complex ``A_n``.
        k: (F,) rad/m.
        points_local: (P, 3) metres, local frame, relative to the expansion origin.

    Returns:
        (F, P) complex pressure, Pa.
    """
    order = legendre_coeffs.shape[-1] - 1
    pts = points_local.to(torch.float64)
    r = torch.linalg.vector_norm(pts, dim=-1)
    legendre = sh.legendre(order, pts[:, 0] / r).to(torch.complex128)  # (P, N+1)
    hn = sh.hankel2_by_degree(order, k.to(torch.float64)[:, None] * r[None, :])  # (N+1, F, P)
    return torch.einsum("fn,nfp,pn->fp", legendre_coeffs.to(torch.complex128), hn, legendre)


def axisymmetric_far_field(legendre_coeffs: Tensor, k: Tensor, cos_angle: Tensor) -> Tensor:
    """Far-field pattern ``Σ A_n i^{n+1}/k P_n(cos γ)`` of a source symmetric about local +x.

    Args:
        legendre_coeffs: (F, N+1). k: (F,) rad/m. cos_angle: (M,) cosine of the angle to local +x.

    Returns:
        (F, M) complex, metres·Pa.
    """
    order = legendre_coeffs.shape[-1] - 1
    powers = torch.tensor([[1j, -1, -1j, 1][n % 4] for n in range(order + 1)], dtype=torch.complex128)
    g = legendre_coeffs.to(torch.complex128) * powers.to(legendre_coeffs.device) / k.to(torch.complex128)[:, None]
    return g @ sh.legendre(order, cos_angle.to(torch.float64)).to(torch.complex128).T


def far_field_coeffs(coeffs: Tensor, k: Tensor) -> Tensor:
    """SH coefficients of the far-field pattern: ``g_nm = c_nm i^{n+1}/k``. Shapes as coeffs."""
    return coeffs * _outgoing_phase(coeffs).to(coeffs.dtype) / k.to(coeffs.dtype)[:, None]


def fit_far_field(
    pattern: Tensor,
    k: Tensor,
    colatitude: Tensor,
    azimuth: Tensor,
    order: int,
    weights: Tensor | None = None,
    regularization: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Exterior SH coefficients from sampled far-field directivity (measured drivers).

    Args:
        pattern: (F, S) complex far-field samples in **monopole units** (1 = the far field of the
            unit monopole, i.e. ``G = pattern/(4π)``), phase referenced to the expansion origin.
        k: (F,) wavenumbers, rad/m (> 0).
        colatitude, azimuth: (S,) local-frame directions, radians.
        order: SH order of the fit.
        weights: (S,) quadrature weights or None.
        regularization: relative Tikhonov weight (see :func:`spatialopt.acoustics.sh.sh_fit`).

    Returns:
        ``(coeffs, rel_error)``: (F, (N+1)²) complex128 exterior coefficients and (F,) relative
        fit error on the samples.
    """
    g, err = sh.sh_fit(pattern.to(torch.complex128) / (4 * math.pi), colatitude, azimuth, order, weights, regularization)
    return g / _outgoing_phase(g) * k.to(torch.complex128)[:, None], err


def truncation_error(coeffs: Tensor, k: Tensor, tail_orders: int = 2) -> Tensor:
    """Relative far-field energy in the top ``tail_orders`` degrees of the series (per frequency).

    A converged expansion puts (almost) no energy in its last degrees; this is the estimate the
    scene uses to refuse an SH order that is too low for the band.

    Args:
        coeffs: (F, (N+1)²). k: (F,).

    Returns:
        (F,) real, ``‖g_tail‖² / ‖g‖²`` with ``g`` the far-field coefficients.
    """
    order = int(round(math.sqrt(coeffs.shape[-1]))) - 1
    g = far_field_coeffs(coeffs, k).abs() ** 2
    first_tail = max(order + 1 - tail_orders, 1)
    tail = g[:, first_tail**2 :].sum(-1)
    return tail / g.sum(-1).clamp_min(1e-300)


@dataclass
class Driver:
    """One loudspeaker driver: pose + SH radiation model.

    Attributes:
        name: unique driver name.
        model: "monopole" | "rigid_sphere_point" | "rigid_sphere_piston" | "measured".
        position: (3,) physical position in the scene frame, metres.
        rotation: (3, 3) local-to-scene rotation (columns: on-axis, left, up).
        origin: (3,) expansion origin in the scene frame, metres (sphere centre for
            sphere-mounted drivers, the driver position otherwise).
        band_hz: (low, high) usable band, Hz.
        enclosure_radius: rigid sphere radius a (metres) for sphere-mounted models, else None.
        cap_angle: piston half-angle, radians (piston only).
        measured: for "measured": dict with ``freqs`` (M,) Hz, ``colatitude``/``azimuth`` (S,)
            radians (local frame) and ``pattern`` (M, S) complex in monopole units.
    """

    name: str
    model: str
    position: Tensor
    rotation: Tensor
    origin: Tensor
    band_hz: tuple[float, float]
    enclosure_radius: float | None = None
    cap_angle: float | None = None
    measured: dict | None = None
    fit_error: Tensor | None = field(default=None, repr=False)

    def radius_of_expansion(self) -> float:
        """Radius (m) of the smallest sphere about the origin that holds the source."""
        if self.enclosure_radius is not None:
            return self.enclosure_radius
        if self.model == "measured":
            return float(self.measured.get("radius", 0.1))
        return 0.0

    def auto_order(self, k_max: float) -> int:
        """SH order that has converged up to wavenumber ``k_max`` (rad/m)."""
        if self.model == "monopole":
            return 0
        return sh.order_for_ka(k_max * self.radius_of_expansion())

    def coefficients(self, k: Tensor, order: int) -> Tensor:
        """SH coefficients in the local frame.

        Args:
            k: (F,) wavenumbers, rad/m (> 0).
            order: truncation order N.

        Returns:
            (F, (N+1)²) complex128.
        """
        if self.model == "monopole":
            return monopole_coeffs(k, order)
        if self.model == "rigid_sphere_point":
            return rigid_sphere_point_coeffs(k, self.enclosure_radius, order)
        if self.model == "rigid_sphere_piston":
            return rigid_sphere_piston_coeffs(k, self.enclosure_radius, self.cap_angle, order)
        if self.model == "measured":
            return self._measured_coefficients(k, order)
        raise ValueError(f"unknown driver model {self.model!r}")

    def _measured_coefficients(self, k: Tensor, order: int) -> Tensor:
        data = self.measured
        c = data["speed_of_sound"]
        k_meas = 2 * math.pi * data["freqs"].to(torch.float64) / c
        coeffs_meas, err = fit_far_field(
            data["pattern"], k_meas.clamp_min(1e-6), data["colatitude"], data["azimuth"], order,
            data.get("weights"), data.get("regularization", 1e-6),
        )
        self.fit_error = err
        # Far-field coefficients vary smoothly with frequency; interpolate them linearly (real and
        # imaginary parts), holding the end values outside the measured range.
        g_meas = far_field_coeffs(coeffs_meas, k_meas.clamp_min(1e-6))
        g = _interp_complex(k.to(torch.float64), k_meas, g_meas)
        return g / _outgoing_phase(g) * k.to(torch.complex128)[:, None]

    def to_local(self, points: Tensor) -> Tensor:
        """Scene points (P, 3) metres → local-frame points relative to the origin (P, 3)."""
        return (points.to(torch.float64) - self.origin) @ self.rotation

    @property
    def axisymmetric(self) -> bool:
        """True for the analytic models, which are symmetric about the local +x axis."""
        return self.model != "measured"

    def legendre_coefficients(self, k: Tensor, order: int) -> Tensor:
        """``A_n`` of ``p = Σ A_n h_n(kr) P_n(cos γ)`` for axisymmetric models. (F,) → (F, N+1)."""
        if self.model == "monopole":
            return monopole_legendre(k, order)
        if self.model == "rigid_sphere_point":
            return rigid_sphere_point_legendre(k, self.enclosure_radius, order)
        if self.model == "rigid_sphere_piston":
            return rigid_sphere_piston_legendre(k, self.enclosure_radius, self.cap_angle, order)
        raise ValueError(f"driver model {self.model!r} is not axisymmetric")

    def pressure(self, k: Tensor, points: Tensor, order: int) -> Tensor:
        """Exact radiated pressure at scene points.

        Args:
            k: (F,) rad/m (> 0). points: (P, 3) scene frame, metres. order: truncation order.

        Returns:
            (F, P) complex128, Pa.
        """
        local = self.to_local(points)
        if self.axisymmetric:
            return axisymmetric_pressure(self.legendre_coefficients(k, order), k, local)
        return radiated_pressure(self.coefficients(k, order), k, local)

    def far_field(self, k: Tensor, directions: Tensor, order: int) -> Tensor:
        """Far-field pattern toward scene-frame unit vectors, phase referenced to the expansion origin.

        Args:
            k: (F,) rad/m (> 0). directions: (M, 3) unit vectors, scene frame. order: truncation order.

        Returns:
            (F, M) complex128, metres·Pa (``1/(4π)`` for a unit monopole).
        """
        local = directions.to(torch.float64) @ self.rotation
        if self.axisymmetric:
            return axisymmetric_far_field(self.legendre_coefficients(k, order), k, local[:, 0].clamp(-1, 1))
        _, colat, az = cartesian_to_spherical(local)
        return far_field(self.coefficients(k, order), k, colat, az)


def _interp_complex(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """Piecewise-linear interpolation along axis 0 of ``fp`` (M, C) from ``xp`` (M,) to ``x`` (F,)."""
    if xp.numel() == 1:
        return fp.expand(x.shape[0], -1).clone()
    order = torch.argsort(xp)
    xp, fp = xp[order], fp[order]
    xc = x.clamp(xp[0], xp[-1])
    idx = torch.searchsorted(xp, xc).clamp(1, xp.numel() - 1)
    x0, x1 = xp[idx - 1], xp[idx]
    t = ((xc - x0) / (x1 - x0)).to(fp.dtype)[:, None]
    return fp[idx - 1] * (1 - t) + fp[idx] * t
