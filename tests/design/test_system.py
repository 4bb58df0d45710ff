"""The composed spatial system (``spatialopt.design.system``) and its closed-form initialisation
(``spatialopt.design.initialize``).

References: a direct ``numpy.convolve`` implementation of DESIGN.md §1
(W_L = z^{−d_LR}(C_l * A + C_r * X), W_R = z^{−d_LR}(C_r * A + C_l * X), W_C = z^{−d_C} B) and the
same formulas in the frequency domain. Numbers measured on the real default scene are printed
(``pytest -s``); tolerances are stated next to each assert.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from conftest import make_config
from spatialopt.config import scene_from_config
from spatialopt.design import baselines as bl
from spatialopt.design.initialize import DesignConfig, baseline_composite, initialize_system
from spatialopt.design.system import SpatialSystem, SystemShape, compose_fir
from spatialopt.dsp.filters import fir_response
from spatialopt.errors import ConfigError
from spatialopt.objectives import losses

FS = 48000.0
F64 = torch.float64


pytestmark = pytest.mark.usefixtures("single_thread")


def _randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _numpy_compose(ctc, virt, beam, lr_delay, c_delay, n_taps):
    """DESIGN.md §1 by direct time-domain convolution, one driver at a time."""
    ctc, virt, beam = ctc.numpy(), virt.numpy(), beam.numpy()
    a, x = virt
    n_d = ctc.shape[1]
    out = np.zeros((3, n_d, n_taps))
    for d in range(n_d):
        w_l = np.convolve(ctc[0, d], a) + np.convolve(ctc[1, d], x)
        w_r = np.convolve(ctc[1, d], a) + np.convolve(ctc[0, d], x)
        for ch, w, delay in ((0, w_l, lr_delay), (1, w_r, lr_delay), (2, beam[d], c_delay)):
            full = np.concatenate([np.zeros(delay), w])[:n_taps]
            out[ch, d, : full.size] = full
    return out


def _random_system(shape: SystemShape, lr_delay: int, c_delay: int, seed: int = 0) -> SpatialSystem:
    system = SpatialSystem(shape, FS, lr_delay, c_delay).double()
    with torch.no_grad():
        system.ctc.copy_(_randn(*system.ctc.shape, seed=seed))
        system.beam.copy_(_randn(*system.beam.shape, seed=seed + 1))
        v = system.virtualizer
        v.set_physical(3.3e-4, 2500.0, -5.0)
        v.raw_radius.copy_(_randn(*v.raw_radius.shape, seed=seed + 2))
        v.raw_angle.copy_(_randn(*v.raw_angle.shape, seed=seed + 3))
    return system


# ------------------------------------------------------------------------------------- composition


@pytest.mark.parametrize("lr_delay, c_delay, n_taps", [(0, 0, 64), (7, 21, 64), (3, 5, 40)])
def test_compose_fir_equals_direct_convolution(lr_delay, c_delay, n_taps):
    ctc, virt, beam = _randn(2, 3, 24, seed=1), _randn(2, 17, seed=2), _randn(3, 19, seed=3)
    got = compose_fir(ctc, virt, beam, lr_delay, c_delay, n_taps)
    assert got.shape == (3, 3, n_taps) and got.dtype == F64
    ref = _numpy_compose(ctc, virt, beam, lr_delay, c_delay, n_taps)
    # FFT convolution vs direct sums, float64 (measured ≤ 4.5e-15; taps O(1), sums of ≤ 40 products).
    # (3, 5, 40) cuts the L/R tail (3 + 24 + 17 − 1 > 40): the documented truncation.
    np.testing.assert_allclose(got.numpy(), ref, rtol=0, atol=1e-12)


def test_responses_equal_frequency_domain_composition():
    shape = SystemShape(n_drivers=3, n_taps=96, ctc_taps=40, beam_taps=30, virtualizer_taps=24, allpass_sections=2)
    system = _random_system(shape, lr_delay=9, c_delay=31)
    freqs = torch.sort(torch.rand(200, generator=torch.Generator().manual_seed(5), dtype=F64) * FS / 2).values
    r = system.responses(freqs)
    n_f, n_d = freqs.numel(), 3
    assert r["W"].shape == (n_f, n_d, 3) and r["C"].shape == (n_f, n_d, 2)
    assert r["B"].shape == (n_f, n_d) and r["AX"].shape == (n_f, 2) and r["fir"].shape == (3, n_d, 96)
    assert r["W"].dtype == torch.complex128
    st = {k: v.detach() for k, v in system.stages().items()}
    c = fir_response(st["ctc"], freqs, FS)  # (2, D, F)
    a, x = fir_response(st["virtualizer"], freqs, FS)  # (F,) each
    b = fir_response(st["beam"], freqs, FS)  # (D, F)
    z_lr = torch.exp(-2j * math.pi * freqs * 9 / FS)
    z_c = torch.exp(-2j * math.pi * freqs * 31 / FS)
    w_l = z_lr * (c[0] * a + c[1] * x)
    w_r = z_lr * (c[1] * a + c[0] * x)
    w_c = z_c * b
    expected = torch.stack([w_l, w_r, w_c]).permute(2, 1, 0)  # (F, D, 3)
    # Exact identity (no truncation, set_delays guarantees the paths fit); measured 9e-14 for
    # |W| up to ~17 (rounding of the FFT convolution and of 96-term DTFT sums).
    assert float((r["W"].detach() - expected).abs().max()) <= 1e-12
    assert float((r["C"].detach() - c.permute(2, 1, 0)).abs().max()) <= 1e-12
    assert float((r["B"].detach() - b.T).abs().max()) <= 1e-12
    assert float((r["AX"].detach() - torch.stack([a, x], -1)).abs().max()) <= 1e-12
    # The composite FIR is the one returned by composite() (what is exported).
    assert torch.equal(r["fir"].detach(), system.composite().detach())


# ------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize("kwargs, key", [
    (dict(ctc_taps=-4), "system.ctc_taps"),
    (dict(beam_taps=0), "system.beam_taps"),
    (dict(virtualizer_taps=-1), "system.virtualizer_taps"),
    (dict(n_taps=2.5), "system.n_taps"),
    (dict(ctc_taps=True), "system.ctc_taps"),
    (dict(allpass_sections=-1), "system.allpass_sections"),
    (dict(n_taps=100, ctc_taps=64, virtualizer_taps=38), "system.n_taps"),  # needs 101
    (dict(n_taps=100, ctc_taps=32, virtualizer_taps=16, beam_taps=101), "system.beam_taps"),
])
def test_shape_validate_rejects(kwargs, key):
    base = dict(n_drivers=2, n_taps=128, ctc_taps=64, beam_taps=64, virtualizer_taps=32)
    shape = SystemShape(**{**base, **kwargs})
    with pytest.raises(ConfigError) as err:
        shape.validate()
    assert err.value.key == key and key in str(err.value)
    with pytest.raises(ConfigError):
        SpatialSystem(shape, FS)


def test_shape_validate_accepts_exact_fit():
    shape = SystemShape(n_drivers=2, n_taps=101, ctc_taps=64, beam_taps=101, virtualizer_taps=38)
    shape.validate()  # 64 + 38 − 1 = 101 and 101 ≤ 101: both paths fit exactly
    assert SpatialSystem(shape, FS).composite().shape == (3, 2, 101)


def test_set_delays_rejects_what_does_not_fit():
    shape = SystemShape(n_drivers=2, n_taps=100, ctc_taps=60, beam_taps=50, virtualizer_taps=21)
    system = SpatialSystem(shape, FS)
    system.set_delays(20, 50)  # 20 + 60 + 21 − 1 = 100, 50 + 50 = 100: exactly fits
    assert (system.lr_delay, system.c_delay) == (20, 50)
    for lr, c, key in ((21, 0, "system.n_taps"), (0, 51, "system.n_taps"), (-1, 0, "system.lr_delay"), (0, -3, "system.c_delay")):
        with pytest.raises(ConfigError) as err:
            system.set_delays(lr, c)
        assert err.value.key == key
        assert (system.lr_delay, system.c_delay) == (20, 50)  # unchanged after a rejection
    with pytest.raises(ConfigError):
        SpatialSystem(shape, FS, lr_delay=-2)


# --------------------------------------------------------------------------------------- gradients


def test_gradients_reach_every_parameter():
    shape = SystemShape(n_drivers=3, n_taps=96, ctc_taps=40, beam_taps=30, virtualizer_taps=24)
    system = SpatialSystem(shape, FS, 2, 4)  # float32 CTC/beam (default), float64 virtualizer
    with torch.no_grad():
        system.ctc.copy_(_randn(*system.ctc.shape, seed=7).float())
        system.beam.copy_(_randn(*system.beam.shape, seed=8).float())
    freqs = torch.linspace(20.0, 20000.0, 64, dtype=F64)
    r = system.responses(freqs)
    assert r["W"].dtype == torch.complex64
    loss = sum(r[k].abs().square().mean() for k in ("W", "C", "B", "AX"))
    loss.backward()
    names = dict(system.named_parameters())
    assert set(names) == {"ctc", "beam", "virtualizer.raw_delay", "virtualizer.raw_corner", "virtualizer.raw_gain",
                          "virtualizer.raw_radius", "virtualizer.raw_angle"}
    for name, p in names.items():
        assert p.grad is not None and bool(p.grad.isfinite().all()), name
        assert float(p.grad.abs().max()) > 0, name


class _ScalarOfResponses(torch.nn.Module):
    def __init__(self, system, freqs, weights):
        super().__init__()
        self.system, self.freqs, self.weights = system, freqs, weights

    def forward(self):
        r = self.system.responses(self.freqs)
        w = self.weights
        return ((r["W"].abs().square() * w[:, None, None]).sum() + (r["C"] * w[:, None, None]).real.sum()
                + r["B"].imag.square().sum() + (r["AX"][:, 1] * r["AX"][:, 0].conj()).real.sum())


def test_gradcheck_tiny_system_float64():
    shape = SystemShape(n_drivers=2, n_taps=16, ctc_taps=4, beam_taps=3, virtualizer_taps=8, allpass_sections=1)
    system = _random_system(shape, lr_delay=2, c_delay=5, seed=11)
    freqs = torch.tensor([0.0, 700.0, 3100.0, 9000.0, 17000.0], dtype=F64)
    module = _ScalarOfResponses(system, freqs, torch.tensor([0.5, 1.0, 0.7, 1.3, 0.2], dtype=F64))
    names = [n for n, _ in module.named_parameters()]
    assert len(names) == 7
    inputs = tuple(p.detach().clone().requires_grad_(True) for _, p in module.named_parameters())

    def fn(*params):
        return torch.func.functional_call(module, dict(zip(names, params)), ())

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


# ------------------------------------------------------------------------------ initialisation


@pytest.fixture(scope="module")
def initialised():
    """smart_speaker_5, rigid-sphere head at 2 m, default 27-point zone, free field, n_fft 256."""
    scene = scene_from_config(make_config(zone="default", n_fft=256))
    shape = SystemShape(n_drivers=5, n_taps=512, ctc_taps=256, beam_taps=256, virtualizer_taps=128)
    system, info = initialize_system(scene, shape, DesignConfig(), 256)
    return scene, system, info


def test_initialized_ctc_separation(initialised):
    scene, system, _ = initialised
    with torch.no_grad():
        r = system.double().responses(scene.freqs)
    sep = losses.ctc_separation_db(scene.H, r["C"])  # (F, P, 2)
    band = (scene.freqs >= 1500) & (scene.freqs <= 8000)
    sweet = float(sep[band, scene.nominal_index].mean())
    zone = float(sep[band].mean())
    print(f"initial CTC separation 1.5–8 kHz: sweet {sweet:.1f} dB, zone mean {zone:.1f} dB")
    # Measured: sweet 25.8 dB, zone mean 18.7 dB (both sides, scene grid; 23.2 / 17.3 dB with the
    # earlier 300 Hz–8 kHz midranges).
    assert sweet >= 18.0
    # The loss's separation is the per-side version of the baselines' metric (their mean); they
    # differ only in the power floor (1e-20 added vs clamped), which matters where the filters
    # are masked off, not in the band (measured 1.4e-13 dB there).
    np.testing.assert_allclose(sep[band].mean(-1).numpy(), bl.separation_db(scene.H, r["C"])[band].numpy(), rtol=0, atol=1e-9)


def test_initialized_beam_null_and_delays(initialised):
    scene, system, info = initialised
    with torch.no_grad():
        r = system.double().responses(scene.freqs)
    depth = float(bl.null_depth_db(scene.G_ring, r["B"], scene.freqs, (800.0, 4000.0), ring_az=scene.ring_az))
    print(f"initial beam null depth 0.8–4 kHz: {depth:.1f} dB; delays {system.lr_delay}, {system.c_delay}")
    assert depth <= -20.0  # measured −33.2 dB
    assert system.lr_delay >= 0 and system.c_delay >= 0
    # The alignment delays and the CTC main tap fit the composite (set_delays accepted them).
    s = system.shape
    assert system.lr_delay + s.ctc_taps + s.virtualizer_taps - 1 <= s.n_taps
    assert system.c_delay + s.beam_taps <= s.n_taps
    assert info["ctc_delay"] == round(DesignConfig().modelling_delay_ms * FS / 1000)
    # The virtualizer carries the fitted crosstalk parameters.
    p = {k: float(v.detach()) for k, v in system.virtualizer.physical().items() if v.dim() == 0}
    fit = info["virtualizer_fit"]
    assert p["delay_s"] == pytest.approx(fit["delay_s"], rel=1e-9)
    assert p["corner_hz"] == pytest.approx(fit["corner_hz"], rel=1e-9)
    assert p["gain_db"] == pytest.approx(fit["gain_db"], rel=1e-9)


@pytest.mark.parametrize("ctc_name, beam_name", [("kirkeby", "ls_beam"), ("ls_zone", "delay_and_sum")])
def test_baseline_composite_equals_compose_fir(initialised, ctc_name, beam_name):
    _, system, info = initialised
    stages = info["baselines"]
    got = baseline_composite(stages, system, ctc_name, beam_name)
    with torch.no_grad():
        virt = system.virtualizer.taps().to(F64)
    ref = compose_fir(stages[ctc_name]["ctc"], virt, stages[beam_name]["beam"], system.lr_delay, system.c_delay, system.shape.n_taps)
    assert got.shape == (3, 5, 512) and got.dtype == F64
    assert torch.equal(got, ref)
    # ... and to the direct convolution of DESIGN.md §1 (float64; measured 2.2e-16 on taps ≲ 0.75).
    direct = _numpy_compose(stages[ctc_name]["ctc"], virt, stages[beam_name]["beam"], system.lr_delay, system.c_delay, 512)
    np.testing.assert_allclose(got.numpy(), direct, rtol=0, atol=1e-12)


def test_compose_with_a_delay_past_the_composite_is_all_zeros():
    from spatialopt.design.system import compose_fir

    out = compose_fir(torch.ones(2, 1, 1), torch.ones(2, 3), torch.ones(1, 1), lr_delay=2, c_delay=5, n_taps=1)
    assert out.shape == (3, 1, 1) and float(out.abs().sum()) == 0.0
