"""Real spherical harmonics, Legendre polynomials, spherical Bessel/Hankel functions, SH fitting.

Conventions (DESIGN.md §3):

* Real, orthonormal SH over the unit sphere, ``∫ Y_i Y_j dΩ = δ_ij``; ACN index ``i = n² + n + m``;
  **no** Condon–Shortley phase. With ``N̄_n^m P_n^m`` the fully normalised associated Legendre
  function without the ``(-1)^m`` factor::

      Y_nm = √2 N̄_n^|m| P_n^|m|(cos θ) cos(mφ)      m > 0
      Y_n0 =    N̄_n^0   P_n(cos θ)
      Y_nm = √2 N̄_n^|m| P_n^|m|(cos θ) sin(|m|φ)    m < 0

  θ is the colatitude (0 at +z), φ the azimuth from +x toward +y, both in radians.
* Time convention ``e^{+jωt}``: outgoing waves use ``h_n^(2) = j_n − i y_n``, which behaves as
  ``i^{n+1} e^{−ix}/x`` for large x.

All functions are batched over leading dimensions, work on CPU or CUDA, and are differentiable
with respect to their continuous arguments (directions, kr) through plain autograd.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = [
    "num_coeffs",
    "acn_degrees",
    "legendre",
    "real_sh",
    "spherical_jn",
    "spherical_yn",
    "spherical_hn2",
    "hankel2_by_degree",
    "spherical_bessel",
    "sh_fit",
    "sh_evaluate",
    "order_for_ka",
    "fibonacci_sphere",
    "gauss_sphere",
]


def num_coeffs(order: int) -> int:
    """Number of SH coefficients up to and including ``order``: ``(order + 1)²``."""
    if order < 0:
        raise ValueError(f"SH order must be >= 0, got {order}")
    return (order + 1) ** 2


def acn_degrees(order: int, device=None) -> tuple[Tensor, Tensor]:
    """Degree ``n`` and index ``m`` of every ACN channel up to ``order``.

    Returns:
        ``(n, m)``, two int64 tensors of shape ((order+1)²,), with ``acn = n² + n + m``.
    """
    n = torch.cat([torch.full((2 * k + 1,), k, dtype=torch.int64) for k in range(order + 1)])
    m = torch.cat([torch.arange(-k, k + 1, dtype=torch.int64) for k in range(order + 1)])
    return n.to(device), m.to(device)


def order_for_ka(ka: float, margin: int = 6) -> int:
    """Truncation order at which exterior/interior series in ``ka`` have converged.

    Uses the usual rule ``N ≈ ka + 4·(ka)^{1/3} + margin``; terms with ``n > ka`` decay
    super-exponentially, so a few extra orders buy many digits.
    """
    ka = max(float(ka), 0.0)
    return int(math.ceil(ka + 4.0 * ka ** (1.0 / 3.0) + margin))


def legendre(order: int, x: Tensor) -> Tensor:
    """Legendre polynomials ``P_0 … P_order`` by the three-term (Bonnet) recurrence.

    Args:
        order: highest degree N >= 0.
        x: (...) real tensor, usually ``cos γ`` in [-1, 1].

    Returns:
        (..., N+1) tensor, same dtype as ``x``.
    """
    p = [torch.ones_like(x)]
    if order >= 1:
        p.append(x)
    for n in range(2, order + 1):
        p.append(((2 * n - 1) * x * p[n - 1] - (n - 1) * p[n - 2]) / n)
    return torch.stack(p, dim=-1)


def _normalized_assoc_legendre(order: int, cos_theta: Tensor, sin_theta: Tensor) -> Tensor:
    """Fully normalised associated Legendre ``N̄_n^m P_n^m(cos θ)`` for 0 <= m <= n <= order.

    Normalisation ``N̄_n^m = √((2n+1)/(4π) (n−m)!/(n+m)!)``, so that ``√2 N̄ P cos(mφ)`` (m > 0)
    and ``N̄ P`` (m = 0) are orthonormal on the sphere.
    No Condon–Shortley phase. Computed with the standard stable recurrences (sectoral terms first,
    then upward in n for all m at once), so there is no factorial overflow up to high orders.

    Returns:
        (..., order+1, order+1) tensor indexed [..., n, m]; entries with m > n are zero.
    """
    shape = cos_theta.shape
    out = cos_theta.new_zeros(shape + (order + 1, order + 1))
    # Sectoral: P̄_m^m = √((2m+1)/(2m)) sinθ P̄_{m-1}^{m-1}, P̄_0^0 = 1/√(4π)
    sectoral = [torch.full_like(cos_theta, 1.0 / math.sqrt(4.0 * math.pi))]
    for m in range(1, order + 1):
        sectoral.append(math.sqrt((2 * m + 1) / (2 * m)) * sin_theta * sectoral[-1])
    ms = torch.arange(order + 1)
    out[..., ms, ms] = torch.stack(sectoral, dim=-1)
    if order >= 1:
        # P̄_{m+1}^m = √(2m+3) cosθ P̄_m^m
        m1 = torch.arange(order)
        out[..., m1 + 1, m1] = torch.sqrt(2.0 * m1.to(cos_theta.dtype) + 3.0) * (
            cos_theta[..., None] * out[..., m1, m1]
        )
    for n in range(2, order + 1):
        m = torch.arange(n - 1)  # m = 0 … n-2
        mf = m.to(cos_theta.dtype)
        a = torch.sqrt((4.0 * n * n - 1.0) / (n * n - mf * mf))
        b = torch.sqrt(((n - 1.0) ** 2 - mf * mf) / (4.0 * (n - 1.0) ** 2 - 1.0))
        out[..., n, m] = a * (cos_theta[..., None] * out[..., n - 1, m] - b * out[..., n - 2, m])
    return out


def real_sh(order: int, colatitude: Tensor, azimuth: Tensor) -> Tensor:
    """Real orthonormal spherical harmonics (ACN order, no Condon–Shortley phase).

    Args:
        order: highest degree N >= 0.
        colatitude: (...) θ in radians, 0 at +z.
        azimuth: (...) φ in radians, from +x toward +y. Broadcast against ``colatitude``.

    Returns:
        (..., (N+1)²) real tensor ``Y[..., n² + n + m]``.
    """
    colatitude, azimuth = torch.broadcast_tensors(colatitude, azimuth)
    plm = _normalized_assoc_legendre(order, torch.cos(colatitude), torch.sin(colatitude))
    n_idx, m_idx = acn_degrees(order)
    abs_m = m_idx.abs()
    legendre_part = plm[..., n_idx, abs_m]  # (..., C)
    mphi = azimuth[..., None] * abs_m.to(azimuth.dtype)
    trig = torch.where(m_idx > 0, math.sqrt(2.0) * torch.cos(mphi), math.sqrt(2.0) * torch.sin(mphi))
    trig = torch.where(m_idx == 0, torch.ones_like(mphi), trig)
    return legendre_part * trig


def _start_order(order: int, x_abs_max: float) -> int:
    """Start degree for Miller's downward recurrence: well above both ``order`` and |x|."""
    return int(order + 20 + 1.2 * x_abs_max + 10.0 * max(x_abs_max, 1.0) ** (1.0 / 3.0))


def spherical_jn(order: int, x: Tensor) -> Tensor:
    """Spherical Bessel functions of the first kind ``j_0 … j_order``.

    Where ``|x| >= order`` every requested degree is in the oscillatory region and the upward
    recurrence ``j_{n+1} = (2n+1)/x · j_n − j_{n−1}`` is stable. Elsewhere Miller's algorithm is used
    in ratio form: ``r_n = j_n / j_{n−1}`` from the continued fraction ``r_n = x / (2n + 1 − x r_{n+1})``
    run downward from far above ``order`` and ``|x|``, then ``j_n = j_0 ∏_{k≤n} r_k``. Ratios never
    overflow, the downward direction is stable (j_n is the minimal solution), and both work for
    real or complex x. At ``x → 0`` the limits ``j_0 = 1``, ``j_n = 0`` are used.

    Args:
        order: highest degree N >= 0.
        x: (...) real or complex tensor.

    Returns:
        (..., N+1) tensor of the dtype of ``x``.
    """
    large = x.abs() >= max(order, 1)
    small = x.abs() < 1e-300
    x_safe = torch.where(small, torch.ones_like(x), x)
    j0 = torch.where(small, torch.ones_like(x), torch.sin(x_safe) / x_safe)
    if order == 0:
        return j0[..., None]
    # Upward (used where |x| >= order).
    x_up = torch.where(large, x_safe, torch.full_like(x_safe, float(max(order, 1))))
    up = [torch.sin(x_up) / x_up, torch.sin(x_up) / (x_up * x_up) - torch.cos(x_up) / x_up]
    for n in range(1, order):
        up.append((2 * n + 1) / x_up * up[n] - up[n - 1])
    upward = torch.stack(up, dim=-1)
    if bool(large.all()):
        return upward
    # Downward (Miller, ratio form) where |x| < order; its start only depends on those |x|.
    x_down = torch.where(large, torch.ones_like(x_safe), x_safe)
    start = _start_order(order, float(x_down.detach().abs().max()))
    ratio = x_down / (2 * start + 3)
    ratios = [None] * (order + 1)
    for n in range(start, 0, -1):
        ratio = x_down / (2 * n + 1 - x_down * ratio)
        if n <= order:
            ratios[n] = ratio
    r = torch.stack(ratios[1:], dim=-1)
    r = torch.where(small[..., None], torch.zeros_like(r), r)
    j0_down = torch.where(large, torch.ones_like(j0), j0)
    downward = torch.cat([j0_down[..., None], j0_down[..., None] * torch.cumprod(r, dim=-1)], dim=-1)
    return torch.where(large[..., None], upward, downward)


def spherical_yn(order: int, x: Tensor) -> Tensor:
    """Spherical Bessel functions of the second kind ``y_0 … y_order`` (upward recurrence).

    ``y_n`` is the dominant solution, so ``y_{n+1} = (2n+1)/x · y_n − y_{n−1}`` is stable upward.
    Singular at x = 0 (returns -inf/nan there, as scipy does).

    Args:
        order: highest degree N >= 0.
        x: (...) real or complex tensor, ``x != 0``.

    Returns:
        (..., N+1) tensor of the dtype of ``x``.
    """
    y = [-torch.cos(x) / x]
    if order >= 1:
        y.append(-torch.cos(x) / (x * x) - torch.sin(x) / x)
    for n in range(1, order):
        y.append((2 * n + 1) / x * y[n] - y[n - 1])
    return torch.stack(y, dim=-1)


def _complex_dtype(dtype: torch.dtype) -> torch.dtype:
    if dtype.is_complex:
        return dtype
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def spherical_hn2(order: int, x: Tensor) -> Tensor:
    """Spherical Hankel functions of the second kind ``h_n^(2) = j_n − i y_n``, n = 0 … order.

    Outgoing waves under the ``e^{+jωt}`` convention. Computed by the upward recurrence from
    ``h_0 = i e^{−ix}/x`` and ``h_1 = h_0 (1/x + i)``, which is stable because ``|h_n|`` never
    decreases with n. (Accuracy is relative to ``|h_n|``; where ``j_n ≪ y_n`` use
    :func:`spherical_jn` for the real part.) Singular at x = 0.

    Args:
        order: highest degree N >= 0.
        x: (...) real or complex tensor, ``x != 0``.

    Returns:
        (..., N+1) complex tensor.
    """
    return torch.movedim(hankel2_by_degree(order, x), 0, -1)


def hankel2_by_degree(order: int, x: Tensor) -> Tensor:
    """:func:`spherical_hn2` with the degree axis **first**: (N+1, ...) complex, contiguous.

    Each recurrence step writes one contiguous slab, so large batches (frequency × source) are
    filled without a stacking copy; callers that contract over n use it directly.
    """
    xc = x.to(_complex_dtype(x.dtype))
    inv_x = 1.0 / xc
    if torch.is_grad_enabled() and xc.requires_grad:
        # Autograd path: ``out=`` and in-place writes into slabs of ``h`` are not differentiable.
        hs = [1j * torch.exp(-1j * xc) * inv_x]
        if order >= 1:
            hs.append(hs[0] * (inv_x + 1j))
        for n in range(1, order):
            hs.append((2 * n + 1) * inv_x * hs[n] - hs[n - 1])
        return torch.stack(hs, dim=0)
    h = torch.empty((order + 1,) + xc.shape, dtype=xc.dtype, device=xc.device)
    h[0] = 1j * torch.exp(-1j * xc) * inv_x
    if order >= 1:
        h[1] = h[0] * (inv_x + 1j)
    if x.is_complex():
        for n in range(1, order):
            # h_{n+1} = (2n+1)/x · h_n − h_{n−1}, in place (no temporaries on large batches).
            torch.mul(h[n], inv_x, out=h[n + 1])
            h[n + 1].mul_(2 * n + 1).sub_(h[n - 1])
    else:
        # Real x: the same recurrence on the (re, im) view with a real factor — half the flops.
        h_ri = torch.view_as_real(h)
        factor = (1.0 / x)[..., None]
        for n in range(1, order):
            torch.mul(h_ri[n], factor, out=h_ri[n + 1])
            h_ri[n + 1].mul_(2 * n + 1).sub_(h_ri[n - 1])
    return h


def _derivative(values: Tensor, x: Tensor) -> Tensor:
    """``f_n'(x)`` from ``f_0 … f_N`` (and one extra order): ``f_0' = −f_1``,
    ``f_n' = f_{n−1} − (n+1)/x · f_n``. ``values`` has N+2 orders; returns N+1."""
    order = values.shape[-1] - 2
    n = torch.arange(1, order + 1, device=x.device, dtype=x.real.dtype if x.is_complex() else x.dtype)
    first = -values[..., 1:2]
    rest = values[..., :order] - (n + 1) / x[..., None] * values[..., 1 : order + 1]
    return torch.cat([first, rest], dim=-1)


def spherical_bessel(order: int, x: Tensor, kind: str = "h2", derivative: bool = False) -> Tensor:
    """``j_n``, ``y_n`` or ``h_n^(2)`` (``kind`` = "j", "y", "h2"), or their derivative d/dx.

    Args:
        order: highest degree N.
        x: (...) real or complex argument (kr, dimensionless).
        kind: "j", "y" or "h2".
        derivative: return ``f_n'(x)`` instead of ``f_n(x)``.

    Returns:
        (..., N+1) tensor.
    """
    funcs = {"j": spherical_jn, "y": spherical_yn, "h2": spherical_hn2}
    if kind not in funcs:
        raise ValueError(f"kind must be one of {sorted(funcs)}, got {kind!r}")
    if not derivative:
        return funcs[kind](order, x)
    vals = funcs[kind](order + 1, x)
    if kind == "j":
        # j_n'(0) is 1/3 for n = 1 and 0 otherwise; the recurrence would divide by zero.
        small = x.abs() < 1e-300
        x_safe = torch.where(small, torch.ones_like(x), x)
        d = _derivative(vals, x_safe)
        at_zero = torch.zeros_like(d)
        if order >= 1:
            at_zero[..., 1] = 1.0 / 3.0
        return torch.where(small[..., None], at_zero, d)
    return _derivative(vals, x)


def sh_fit(
    samples: Tensor,
    colatitude: Tensor,
    azimuth: Tensor,
    order: int,
    weights: Tensor | None = None,
    regularization: float = 1e-6,
) -> tuple[Tensor, Tensor]:
    """Regularised least-squares SH fit of sampled directivity.

    Solves ``min_c ‖W^{1/2}(Y c − s)‖² + λ ‖D c‖²`` per frequency, with ``D = diag(1 + n(n+1))``
    (a smoothness penalty that grows with degree, so poorly sampled high orders are damped first)
    and ``λ = regularization · trace(YᵀWY)/C`` (scale-free).

    Args:
        samples: (..., S) real or complex values at S directions (leading dims: e.g. frequency).
        colatitude: (S,) radians.
        azimuth: (S,) radians.
        order: SH order N of the fit.
        weights: (S,) quadrature weights (sum ≈ 4π) or None for uniform.
        regularization: relative Tikhonov weight λ (dimensionless).

    Returns:
        ``(coeffs, rel_error)``: coeffs (..., (N+1)²) in the dtype of ``samples``; rel_error (...)
        real, ``‖Y c − s‖ / ‖s‖`` on the samples (weighted).
    """
    if samples.shape[-1] != colatitude.shape[-1]:
        raise ValueError(
            f"samples have {samples.shape[-1]} directions but {colatitude.shape[-1]} angles were given"
        )
    real_dtype = samples.real.dtype if samples.is_complex() else samples.dtype
    y = real_sh(order, colatitude.to(real_dtype), azimuth.to(real_dtype))  # (S, C)
    w = torch.ones_like(y[:, 0]) if weights is None else weights.to(real_dtype)
    ytw = y.T * w  # (C, S)
    gram = ytw @ y
    n_idx, _ = acn_degrees(order, device=y.device)
    penalty = (1.0 + n_idx * (n_idx + 1)).to(real_dtype)
    lam = regularization * torch.diagonal(gram).mean()
    system = gram + lam * torch.diag(penalty**2)
    rhs = samples @ ytw.T.to(samples.dtype)  # (..., C)
    coeffs = torch.linalg.solve(system.to(samples.dtype), rhs.unsqueeze(-1)).squeeze(-1)
    fitted = sh_evaluate(coeffs, colatitude.to(real_dtype), azimuth.to(real_dtype))
    err = torch.sqrt(((fitted - samples).abs() ** 2 * w).sum(-1) / ((samples.abs() ** 2 * w).sum(-1) + 1e-300))
    return coeffs, err


def sh_evaluate(coeffs: Tensor, colatitude: Tensor, azimuth: Tensor) -> Tensor:
    """Evaluate an SH expansion at directions (the inverse of :func:`sh_fit`).

    Args:
        coeffs: (..., (N+1)²) real or complex.
        colatitude: (S,) radians.
        azimuth: (S,) radians.

    Returns:
        (..., S) values ``Σ_i c_i Y_i(θ_s, φ_s)``.
    """
    order = int(round(math.sqrt(coeffs.shape[-1]))) - 1
    if num_coeffs(order) != coeffs.shape[-1]:
        raise ValueError(f"coefficient axis has {coeffs.shape[-1]} entries, not a square (N+1)²")
    real_dtype = coeffs.real.dtype if coeffs.is_complex() else coeffs.dtype
    y = real_sh(order, colatitude.to(real_dtype), azimuth.to(real_dtype))  # (S, C)
    return coeffs @ y.T.to(coeffs.dtype)


def fibonacci_sphere(count: int, dtype=torch.float64, device=None) -> tuple[Tensor, Tensor, Tensor]:
    """Near-uniform directions on the sphere (Fibonacci lattice) with equal quadrature weights.

    Returns:
        ``(colatitude, azimuth, weights)``, each (count,); radians; weights sum to 4π.
    """
    i = torch.arange(count, dtype=dtype, device=device) + 0.5
    colat = torch.arccos(1.0 - 2.0 * i / count)
    golden = math.pi * (3.0 - math.sqrt(5.0))
    az = torch.remainder(golden * i, 2 * math.pi)
    az = torch.where(az > math.pi, az - 2 * math.pi, az)
    weights = torch.full((count,), 4.0 * math.pi / count, dtype=dtype, device=device)
    return colat, az, weights


def gauss_sphere(order: int, dtype=torch.float64, device=None) -> tuple[Tensor, Tensor, Tensor]:
    """Gauss–Legendre × uniform-azimuth grid that integrates exactly any product of two SH of
    degree <= ``order`` (so ``Σ w Y_i Y_j = δ_ij`` to rounding).

    ``order + 1`` Gauss–Legendre nodes in ``cos θ`` times ``2·order + 2`` azimuths.

    Returns:
        ``(colatitude, azimuth, weights)``, each (S,) with S = (order+1)(2·order+2); radians;
        weights sum to 4π.
    """
    import numpy as np

    nodes, w_nodes = np.polynomial.legendre.leggauss(order + 1)
    n_az = 2 * order + 2
    colat = torch.as_tensor(np.arccos(nodes), dtype=dtype, device=device)
    az = torch.arange(n_az, dtype=dtype, device=device) * (2 * math.pi / n_az)
    az = torch.where(az > math.pi, az - 2 * math.pi, az)
    w = torch.as_tensor(w_nodes, dtype=dtype, device=device) * (2 * math.pi / n_az)
    colat_grid, az_grid = torch.meshgrid(colat, az, indexing="ij")
    weights = w[:, None].expand(-1, n_az)
    return colat_grid.reshape(-1), az_grid.reshape(-1), weights.reshape(-1).clone()
