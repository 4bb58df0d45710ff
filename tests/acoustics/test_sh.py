"""Spherical harmonics, Legendre and spherical Bessel/Hankel functions vs independent references.

References: ``scipy.special`` (sph_harm_y, eval_legendre, spherical_jn/yn) and, where scipy itself
loses accuracy (h_n^(2) = j_n − i y_n in the lower half plane, where it cancels), ``mpmath``.
Every tolerance is stated next to its assert, with the error measured when the test was written.
"""

from __future__ import annotations

import math

import mpmath
import numpy as np
import pytest
import torch
from scipy import special

from spatialopt.acoustics import sh

F64 = torch.float64
ORDER = 30


def _random_directions(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Uniform random directions plus the poles and the ±x/±y equator points (edge cases)."""
    rng = np.random.default_rng(seed)
    colat = np.arccos(rng.uniform(-1.0, 1.0, count))
    az = rng.uniform(-math.pi, math.pi, count)
    colat = np.concatenate([colat, [0.0, math.pi, math.pi / 2, math.pi / 2, 1e-9]])
    az = np.concatenate([az, [0.3, -1.2, 0.0, math.pi / 2, 2.0]])
    return colat, az


def _scipy_real_sh(order: int, colat: np.ndarray, az: np.ndarray) -> np.ndarray:
    """Real SH without Condon–Shortley phase, built from scipy's complex (CS-phased) SH."""
    out = np.empty(colat.shape + ((order + 1) ** 2,))
    for n in range(order + 1):
        for m in range(-n, n + 1):
            y = special.sph_harm_y(n, abs(m), colat, az)
            if m > 0:
                val = math.sqrt(2.0) * (-1) ** m * y.real
            elif m < 0:
                val = math.sqrt(2.0) * (-1) ** abs(m) * y.imag
            else:
                val = y.real
            out[..., n * n + n + m] = val
    return out


# --------------------------------------------------------------------------------------------
# Real spherical harmonics
# --------------------------------------------------------------------------------------------


def test_real_sh_matches_scipy_up_to_order_30():
    colat, az = _random_directions(150)
    ours = sh.real_sh(ORDER, torch.tensor(colat, dtype=F64), torch.tensor(az, dtype=F64)).numpy()
    ref = _scipy_real_sh(ORDER, colat, az)
    assert ours.shape == (colat.size, (ORDER + 1) ** 2)
    # |Y| ≤ √((2n+1)/4π) ≈ 2.2 at n = 30; measured max abs error 1.6e-14.
    err = np.abs(ours - ref).max()
    assert err < 1e-12, f"max |Y_ours − Y_scipy| = {err:.2e}"


def test_real_sh_acn_layout_and_low_order_closed_forms():
    """Closed forms of the first channels fix the ACN order, the sign convention (no CS phase)
    and the azimuth direction (+x toward +y)."""
    colat, az = _random_directions(20, seed=1)
    t, p = torch.tensor(colat, dtype=F64), torch.tensor(az, dtype=F64)
    y = sh.real_sh(1, t, p)
    c1 = math.sqrt(3.0 / (4.0 * math.pi))
    x_, y_, z_ = torch.sin(t) * torch.cos(p), torch.sin(t) * torch.sin(p), torch.cos(t)
    expected = torch.stack([torch.full_like(t, 1 / math.sqrt(4 * math.pi)), c1 * y_, c1 * z_, c1 * x_], -1)
    torch.testing.assert_close(y, expected, rtol=0, atol=1e-15)
    n, m = sh.acn_degrees(3)
    assert torch.equal(n * n + n + m, torch.arange(16))
    assert sh.num_coeffs(3) == 16


def test_orthonormality_on_gauss_grid_is_exact():
    colat, az, w = sh.gauss_sphere(ORDER)
    assert colat.numel() == (ORDER + 1) * (2 * ORDER + 2)
    torch.testing.assert_close(w.sum(), torch.tensor(4 * math.pi, dtype=F64), rtol=1e-14, atol=0)
    y = sh.real_sh(ORDER, colat, az)
    gram = (y.T * w) @ y
    err = (gram - torch.eye(gram.shape[0], dtype=F64)).abs().max().item()
    # Measured 4.2e-14 (961 × 961 Gram matrix).
    assert err < 1e-12, f"max |Gram − I| = {err:.2e}"


def test_fibonacci_weights_sum_to_4pi_and_quadrature_is_close():
    for count in (1, 17, 500, 2000):
        colat, az, w = sh.fibonacci_sphere(count)
        assert colat.shape == az.shape == w.shape == (count,)
        torch.testing.assert_close(w.sum(), torch.tensor(4 * math.pi, dtype=F64), rtol=1e-14, atol=0)
        assert bool(((colat >= 0) & (colat <= math.pi) & (az >= -math.pi) & (az <= math.pi)).all())
    # Near-uniform: a low-order Gram matrix on 2000 points is close to identity (not exact).
    colat, az, w = sh.fibonacci_sphere(2000)
    y = sh.real_sh(4, colat, az)
    err = ((y.T * w) @ y - torch.eye(25, dtype=F64)).abs().max().item()
    assert err < 1e-2, f"Fibonacci Gram error {err:.2e}"  # measured 2.5e-4


def test_legendre_matches_scipy():
    x = np.concatenate([np.linspace(-1, 1, 401), [-1.0, 1.0, 0.0]])
    ours = sh.legendre(ORDER, torch.tensor(x, dtype=F64)).numpy()
    ref = np.stack([special.eval_legendre(n, x) for n in range(ORDER + 1)], -1)
    # |P_n| ≤ 1 on [-1, 1]; measured max abs error 1.7e-14.
    assert np.abs(ours - ref).max() < 1e-13
    # Batched input keeps its leading shape.
    xb = torch.tensor(x[:400].reshape(4, 10, 10), dtype=F64)
    assert sh.legendre(5, xb).shape == (4, 10, 10, 6)


# --------------------------------------------------------------------------------------------
# Spherical Bessel / Hankel functions
# --------------------------------------------------------------------------------------------

X_REAL = np.logspace(-3, math.log10(200.0), 600)
N_ALL = np.arange(ORDER + 1)


@pytest.mark.parametrize("derivative", [False, True])
def test_spherical_bessel_real_argument_matches_scipy(derivative):
    x = torch.tensor(X_REAL, dtype=F64)
    j = sh.spherical_bessel(ORDER, x, "j", derivative=derivative).numpy()
    y = sh.spherical_bessel(ORDER, x, "y", derivative=derivative).numpy()
    h = sh.spherical_bessel(ORDER, x, "h2", derivative=derivative).numpy()
    j_ref = special.spherical_jn(N_ALL[None, :], X_REAL[:, None], derivative=derivative)
    y_ref = special.spherical_yn(N_ALL[None, :], X_REAL[:, None], derivative=derivative)
    h_ref = j_ref - 1j * y_ref
    assert np.isfinite(h_ref).all()
    env = np.abs(h_ref)  # |h_n| (or |h_n'|) = √(j² + y²) never vanishes: the natural scale

    # j_n (j_n'): relative to |j_n| wherever scipy's value is representable (> 1e-280).
    # Measured worst: 3.8e-13 (values), 1.4e-11 (derivatives, next to a zero of j_n').
    mask = np.abs(j_ref) > 1e-280
    rel_j = np.abs(j - j_ref)[mask] / np.abs(j_ref)[mask]
    assert rel_j.max() < 1e-10, f"j: max relative error {rel_j.max():.2e}"
    # y_n, h_n: relative to |h_n| (y_n has zeros; |h_n| does not). Measured ≤ 2.1e-14.
    rel_y = (np.abs(y - y_ref) / env).max()
    rel_h = (np.abs(h - h_ref) / env).max()
    assert rel_y < 1e-13, f"y: max error / |h| = {rel_y:.2e}"
    assert rel_h < 1e-13, f"h2: max error / |h| = {rel_h:.2e}"
    assert h.dtype == np.complex128


def test_spherical_bessel_small_argument_limits():
    x = torch.tensor([0.0, 1e-320, 1e-200], dtype=F64)
    j = sh.spherical_jn(4, x)
    torch.testing.assert_close(j[:, 0], torch.ones(3, dtype=F64), rtol=0, atol=0)
    assert bool((j[0, 1:] == 0).all())
    dj = sh.spherical_bessel(4, torch.zeros(1, dtype=F64), "j", derivative=True)
    torch.testing.assert_close(dj[0], torch.tensor([0.0, 1 / 3, 0.0, 0.0, 0.0], dtype=F64), rtol=0, atol=0)


def _mpmath_sph(kind: str, n: int, z: complex) -> complex:
    """j_n or h_n^(2) at 50 digits (mpmath forms H = J − iY internally, which cancels for Im z < 0)."""
    with mpmath.workdps(50):
        scale = mpmath.sqrt(mpmath.pi / (2 * mpmath.mpc(z)))
        if kind == "j":
            return complex(scale * mpmath.besselj(n + 0.5, z))
        return complex(scale * mpmath.hankel2(n + 0.5, z))


def test_spherical_bessel_complex_argument():
    """Complex arguments (|arg z| ≤ 0.3 rad, |Im z| up to 15) in both half planes."""
    radius = np.logspace(-2, math.log10(50.0), 40)
    z = (radius[:, None] * np.exp(1j * np.linspace(-0.3, 0.3, 7))[None, :]).ravel()
    zt = torch.tensor(z)
    for derivative in (False, True):
        j = sh.spherical_bessel(ORDER, zt, "j", derivative=derivative).numpy()
        y = sh.spherical_bessel(ORDER, zt, "y", derivative=derivative).numpy()
        h = sh.spherical_bessel(ORDER, zt, "h2", derivative=derivative).numpy()
        j_ref = special.spherical_jn(N_ALL[None, :], z[:, None], derivative=derivative)
        y_ref = special.spherical_yn(N_ALL[None, :], z[:, None], derivative=derivative)
        # Measured: j 1.2e-11, y 2.3e-10 (upward recurrence, n = 30 at z ≈ 27 − 8i).
        rel_j = (np.abs(j - j_ref) / np.abs(j_ref)).max()
        rel_y = (np.abs(y - y_ref) / np.abs(y_ref)).max()
        assert rel_j < 1e-10, f"complex j (derivative={derivative}): {rel_j:.2e}"
        assert rel_y < 1e-9, f"complex y (derivative={derivative}): {rel_y:.2e}"
        # h2 = j − i y is accurate from scipy only where it does not cancel: Im z ≥ 0 (there h2
        # grows like e^{Im z}). Measured 6.2e-10 (values) / 1.4e-10 (derivatives) relative to
        # |h2|, worst at n = 30, z ≈ 24.8 + 7.7i: the library's upward recurrence loses ~6 digits
        # near the turning point off the real axis (confirmed with mpmath; scipy is right there).
        # The library only calls h2 with real kr, where it is accurate to 1e-14 (test above).
        upper = z.imag >= 0
        h_ref = j_ref - 1j * y_ref
        rel_h = (np.abs(h - h_ref)[upper] / np.abs(h_ref)[upper]).max()
        assert rel_h < 2e-9, f"complex h2, Im z ≥ 0 (derivative={derivative}): {rel_h:.2e}"
    # Lower half plane: h2 decays like e^{−|Im z|} while j and y grow; reference from mpmath.
    points = [47.7 - 14.7j, 10.0 - 1.0j, 3.0 - 2.0j, 0.5 - 0.1j, 0.05 - 0.01j]
    zp = torch.tensor(points, dtype=torch.complex128)
    h = sh.spherical_hn2(ORDER, zp).numpy()
    j = sh.spherical_jn(ORDER, zp).numpy()
    worst_h = worst_j = 0.0
    for i, zi in enumerate(points):
        for n in range(ORDER + 1):
            hr, jr = _mpmath_sph("h2", n, zi), _mpmath_sph("j", n, zi)
            worst_h = max(worst_h, abs(h[i, n] - hr) / abs(hr))
            worst_j = max(worst_j, abs(j[i, n] - jr) / abs(jr))
    assert worst_h < 1e-12, f"h2 vs mpmath, Im z < 0: {worst_h:.2e}"  # measured 2.7e-15
    assert worst_j < 1e-11, f"j vs mpmath, Im z < 0: {worst_j:.2e}"  # measured 4.2e-14


def test_bessel_batch_equals_per_element_calls():
    """Batched calls equal one-element calls (the Miller start order depends on the batch)."""
    x = torch.tensor(np.concatenate([np.logspace(-3, 2.3, 23), [0.0]]), dtype=F64).reshape(4, 6)
    for kind in ("j", "y", "h2"):
        for derivative in (False, True):
            if kind != "j":  # y_n and h_n are singular at 0
                xs = x.clone()
                xs[xs == 0] = 0.5
            else:
                xs = x
            batch = sh.spherical_bessel(12, xs, kind, derivative=derivative)
            assert batch.shape == (4, 6, 13)
            single = torch.stack(
                [sh.spherical_bessel(12, v.reshape(1), kind, derivative=derivative)[0] for v in xs.reshape(-1)]
            ).reshape(4, 6, 13)
            # Measured: bit-identical for j and y, ≤ 1.5e-16 relative for h2.
            torch.testing.assert_close(batch, single, rtol=1e-13, atol=1e-300)


def test_real_sh_batch_equals_per_element_calls():
    colat, az = _random_directions(12, seed=3)
    t = torch.tensor(colat[:12], dtype=F64).reshape(3, 4)
    p = torch.tensor(az[:12], dtype=F64).reshape(3, 4)
    batch = sh.real_sh(6, t, p)
    assert batch.shape == (3, 4, 49)
    single = torch.stack([sh.real_sh(6, a, b) for a, b in zip(t.reshape(-1), p.reshape(-1))]).reshape(3, 4, 49)
    torch.testing.assert_close(batch, single, rtol=0, atol=1e-15)
    # Broadcasting of a scalar azimuth against a batch of colatitudes.
    torch.testing.assert_close(sh.real_sh(3, t, p[0, 0]), sh.real_sh(3, t, p[0, 0].expand_as(t)), rtol=0, atol=0)


# --------------------------------------------------------------------------------------------
# Autograd
# --------------------------------------------------------------------------------------------


def test_gradcheck_real_sh_wrt_angles():
    colat, az = _random_directions(4, seed=5)
    t = torch.tensor(colat[:4], dtype=F64, requires_grad=True)
    p = torch.tensor(az[:4], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: sh.real_sh(5, a, b), (t, p))


def test_gradcheck_spherical_jn_and_hn2_wrt_x():
    # Both j_n branches: Miller's downward ratios (x < order) and the upward recurrence (x ≥ order).
    x = torch.tensor([0.3, 3.0, 7.0, 40.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: sh.spherical_jn(12, v), (x,))
    # h_n: finite differences of its tiny real part are noise for x ≪ n, so x ≥ 1 and n ≤ 5 here;
    # the full range is checked against the analytic derivative below.
    x = torch.tensor([1.5, 3.0, 40.0], dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: torch.view_as_real(sh.spherical_hn2(5, v)), (x,))


def test_autograd_derivative_equals_recurrence_derivative():
    """d/dx by autograd equals ``spherical_bessel(..., derivative=True)`` (j relative to |j'|
    where it is representable, h2 relative to |h'|)."""
    x = torch.tensor(np.logspace(-2, 2, 60), dtype=F64, requires_grad=True)
    order = 20
    for kind in ("j", "h2"):
        f = sh.spherical_bessel(order, x, kind)
        grads = []
        for n in range(order + 1):
            parts = [f[:, n]] if kind == "j" else [f[:, n].real, f[:, n].imag]
            g = [torch.autograd.grad(part.sum(), x, retain_graph=True)[0] for part in parts]
            grads.append(g[0] if kind == "j" else torch.complex(g[0], g[1]))
        auto = torch.stack(grads, -1)
        ref = sh.spherical_bessel(order, x.detach(), kind, derivative=True)
        scale = ref.abs()
        mask = scale > 1e-250
        rel = ((auto - ref).abs()[mask] / scale[mask]).max().item()
        assert rel < 1e-9, f"{kind}: autograd vs recurrence derivative {rel:.2e}"  # measured 3.3e-12 (j), 2.8e-15 (h2)


def test_gradcheck_sh_fit_and_evaluate_wrt_samples():
    colat, az, w = sh.fibonacci_sphere(40)
    samples = torch.randn(2, 40, dtype=F64, generator=torch.Generator().manual_seed(0), requires_grad=True)
    assert torch.autograd.gradcheck(lambda s: sh.sh_fit(s, colat, az, 3, w, 1e-3)[0], (samples,))
    assert torch.autograd.gradcheck(lambda s: sh.sh_fit(s, colat, az, 3, w, 1e-3)[1], (samples,))
    coeffs = torch.randn(2, 16, dtype=torch.complex128, generator=torch.Generator().manual_seed(1), requires_grad=True)
    assert torch.autograd.gradcheck(lambda c: sh.sh_evaluate(c, colat, az), (coeffs,))


# --------------------------------------------------------------------------------------------
# SH fitting
# --------------------------------------------------------------------------------------------


def test_sh_fit_round_trip_recovers_band_limited_coefficients():
    gen = torch.Generator().manual_seed(2)
    order = 6
    truth = torch.complex(torch.randn(3, 49, dtype=F64, generator=gen), torch.randn(3, 49, dtype=F64, generator=gen))
    # Exact quadrature grid, no regularisation: recovery to rounding.
    colat, az, w = sh.gauss_sphere(order)
    coeffs, err = sh.sh_fit(sh.sh_evaluate(truth, colat, az), colat, az, order, w, regularization=0.0)
    torch.testing.assert_close(coeffs, truth, rtol=0, atol=1e-12)
    assert float(err.max()) < 1e-13
    # Fibonacci grid, tiny regularisation: bias ≈ λ·(1 + n(n+1))² ≈ 1e-12 × 1849 (measured 1.3e-9).
    colat, az, w = sh.fibonacci_sphere(400)
    samples = sh.sh_evaluate(truth, colat, az)
    coeffs, err = sh.sh_fit(samples, colat, az, order, w, regularization=1e-12)
    assert coeffs.shape == truth.shape and coeffs.dtype == truth.dtype
    rel = ((coeffs - truth).abs().max() / truth.abs().max()).item()
    assert rel < 1e-7, f"round-trip coefficient error {rel:.2e}"
    assert float(err.max()) < 1e-7
    torch.testing.assert_close(sh.sh_evaluate(coeffs, colat, az), samples, rtol=0, atol=1e-7)
    # Real samples give real coefficients; unweighted fit equals the equal-weight fit.
    real_c, _ = sh.sh_fit(samples.real, colat, az, order, None, regularization=1e-12)
    assert real_c.dtype == F64
    torch.testing.assert_close(real_c, coeffs.real, rtol=0, atol=1e-7)


def test_sh_fit_regularization_damps_high_orders():
    """An order-10 fit to 80 noisy samples is ill-posed; more regularisation → smaller norm in
    degrees ≥ 6 (monotonic), while the low orders of a smooth pattern are kept."""
    gen = torch.Generator().manual_seed(4)
    colat, az, w = sh.fibonacci_sphere(80)
    low = torch.randn(1, 9, dtype=F64, generator=gen)  # order-2 pattern
    samples = sh.sh_evaluate(low, colat, az) + 0.05 * torch.randn(1, 80, dtype=F64, generator=gen)
    n_idx, _ = sh.acn_degrees(10)
    high = n_idx >= 6
    norms, lows, errs = [], [], []
    for reg in (1e-8, 1e-4, 1e-2, 1.0):
        c, err = sh.sh_fit(samples, colat, az, 10, w, regularization=reg)
        norms.append(float(c[0, high].norm()))
        lows.append(c[0, :9])
        errs.append(float(err[0]))
    # Measured high-order norms ≈ 0.091, 0.071, 0.0043, 0.00011.
    assert all(a > b for a, b in zip(norms, norms[1:])), norms
    assert norms[-1] < 0.01 * norms[0], norms
    # The price: a larger residual on the samples (measured 1e-6 → 0.87).
    assert all(a < b for a, b in zip(errs, errs[1:])), errs
    # Light regularisation keeps the order-2 content (noise 0.05 per sample; measured 0.029).
    torch.testing.assert_close(lows[1], low[0], rtol=0, atol=0.06)


def test_sh_fit_validates_shapes_and_order_helpers():
    colat, az, _ = sh.fibonacci_sphere(10)
    with pytest.raises(ValueError):
        sh.sh_fit(torch.zeros(11, dtype=F64), colat, az, 1)
    with pytest.raises(ValueError):
        sh.sh_evaluate(torch.zeros(5, dtype=F64), colat, az)
    with pytest.raises(ValueError):
        sh.num_coeffs(-1)
    with pytest.raises(ValueError):
        sh.spherical_bessel(2, torch.ones(1, dtype=F64), "k")
    # order_for_ka grows with ka and always exceeds it.
    orders = [sh.order_for_ka(ka) for ka in (0.0, 0.1, 1.0, 10.0, 30.0, 100.0)]
    assert orders == sorted(orders) and all(o > ka for o, ka in zip(orders, (0.0, 0.1, 1.0, 10.0, 30.0, 100.0)))
