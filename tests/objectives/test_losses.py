"""Training losses (``spatialopt.objectives.losses``): hand-computed values on tiny inputs, limiting
cases (0 when the requirement is met, growth with the violation), the closed-form baselines on
the real default scene, and float64 gradchecks. Tolerances are stated next to each assert.
"""

from __future__ import annotations

import math

import pytest
import torch

from conftest import make_config
from spatialopt.config import scene_from_config
from spatialopt.design import baselines as bl
from spatialopt.design.initialize import DesignConfig, initialize_system
from spatialopt.design.system import SystemShape
from spatialopt.objectives import losses as L
from spatialopt.train import SceneTensors

F64, C128 = torch.float64, torch.complex128


pytestmark = pytest.mark.usefixtures("single_thread")


def _crandn(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(*shape, generator=g, dtype=F64), torch.randn(*shape, generator=g, dtype=F64))


# ----------------------------------------------------------------------------------- target curve


def test_target_curve_db():
    freqs = torch.linspace(0.0, 40000.0, 8001, dtype=F64)
    band, taper = (1500.0, 8000.0), 1.6
    t = L.target_curve_db(freqs, 20.0, band, taper)
    inside = (freqs >= band[0]) & (freqs <= band[1])
    below = freqs <= band[0] * 2**-taper
    above = freqs >= band[1] * 2**taper
    assert torch.equal(t[inside], torch.full_like(t[inside], 20.0))  # exact in band
    assert torch.equal(t[below | above], torch.zeros_like(t[below | above]))  # exact beyond the taper
    low = (freqs > band[0] * 2**-taper) & (freqs < band[0])
    high = (freqs > band[1]) & (freqs < band[1] * 2**taper)
    assert bool((t[low].diff() >= 0).all()) and bool((t[high].diff() <= 0).all())  # monotone tapers
    assert bool(((t[low] > 0) & (t[low] < 20)).all()) and bool(((t[high] > 0) & (t[high] < 20)).all())
    # Raised cosine in log frequency: half way (in octaves) it is half the target.
    mid = L.target_curve_db(torch.tensor([band[0] * 2**-(taper / 2), band[1] * 2 ** (taper / 2)], dtype=F64), 20.0, band, taper)
    assert torch.allclose(mid, torch.full_like(mid, 10.0), rtol=0, atol=1e-12)


# ------------------------------------------------------------------------------------ separation


def test_ctc_separation_db_hand_computation():
    h = [[1.0 + 0.0j, 0.5j], [0.25 + 0.0j, 2.0 - 1.0j]]  # (ear, driver)
    c = [[0.8 + 0.1j, -0.3 + 0.0j], [-0.2j, 0.6 + 0.0j]]  # (driver, side)
    H = torch.tensor(h, dtype=C128)[None, None]  # (1, 1, 2, 2)
    C = torch.tensor(c, dtype=C128)[None]  # (1, 2, 2)
    e = [[sum(h[ear][d] * c[d][side] for d in range(2)) for side in range(2)] for ear in range(2)]
    left = 10 * math.log10(abs(e[0][0]) ** 2 / abs(e[1][0]) ** 2)
    right = 10 * math.log10(abs(e[1][1]) ** 2 / abs(e[0][1]) ** 2)
    got = L.ctc_separation_db(H, C)
    assert got.shape == (1, 1, 2)
    assert float(got[0, 0, 0]) == pytest.approx(left, abs=1e-12)
    assert float(got[0, 0, 1]) == pytest.approx(right, abs=1e-12)


def test_cancellation_loss_limits_and_growth():
    n_f, n_p = 16, 4
    target = torch.cat([torch.zeros(4, dtype=F64), torch.full((12,), 20.0, dtype=F64)])  # 4 inactive bins
    w = torch.full((n_p,), 1.0 / n_p, dtype=F64)
    above = target[:, None, None] + 3.0 + torch.rand(n_f, n_p, 2, generator=torch.Generator().manual_seed(0), dtype=F64)
    # Met everywhere: only the 1e-6 dB smoothing constant remains, (1e-6)² = 1e-12.
    assert float(L.cancellation_loss(above, target, w)) <= 1e-10
    # A uniform shortfall s gives s² (the zone power mean of a constant is the constant).
    values = []
    for s in (0.5, 1.0, 2.0, 4.0):
        sep = (target[:, None, None] - s).expand(n_f, n_p, 2).clone()
        sep[:4] = -50.0  # shortfall where the target is 0 does not count
        values.append(float(L.cancellation_loss(sep, target, w)))
        assert values[-1] == pytest.approx(s**2, rel=1e-5)
    assert values == sorted(values)


def test_cancellation_loss_worst_case_power():
    target = torch.full((3,), 20.0, dtype=F64)
    w = torch.full((4,), 0.25, dtype=F64)
    even = (target[:, None, None] - torch.tensor([2.0, 2.0, 2.0, 2.0], dtype=F64)[None, :, None]).expand(3, 4, 2)
    spread = (target[:, None, None] - torch.tensor([8.0, 0.0, 0.0, 0.0], dtype=F64)[None, :, None]).expand(3, 4, 2)
    ratio = {}
    for q in (1.0, 2.0, 4.0, 8.0):
        a, b = float(L.cancellation_loss(even, target, w, q)), float(L.cancellation_loss(spread, target, w, q))
        assert a == pytest.approx(4.0, rel=1e-5)  # mean shortfall 2 dB, any q
        assert b == pytest.approx((0.25 * 8.0**q) ** (2 / q), rel=1e-5)  # (Σ w s^q)^{2/q}
        ratio[q] = b / a
    # Same mean shortfall: equal at q = 1, and the larger q, the more the worst point weighs.
    assert ratio[1.0] == pytest.approx(1.0, rel=1e-5)
    assert 1.0 < ratio[2.0] < ratio[4.0] < ratio[8.0]


# -------------------------------------------------------------------------------------- binaural


def test_binaural_loss_zero_for_exact_reference():
    n_f, n_p = 40, 3
    freqs = torch.linspace(100.0, 10000.0, n_f, dtype=F64)
    h_ref = _crandn(n_f, n_p, 2, 2, seed=1)
    H = h_ref.clone()  # the drivers are the reference speakers themselves
    w = torch.full((n_p,), 1.0 / n_p, dtype=F64)
    W = torch.zeros(n_f, 2, 3, dtype=C128)
    W[:, 0, 0] = 1.0  # L channel → the left speaker only
    assert float(L.binaural_loss(H, h_ref, W, freqs, w)) <= 1e-20  # measured 0
    # Any common complex gain leaves the cues alone.
    assert float(L.binaural_loss(H, h_ref, (0.3 - 2.0j) * W, freqs, w)) <= 1e-20
    # The wrong speaker (mirrored cues) and a mix of both are penalised.
    wrong = torch.zeros_like(W)
    wrong[:, 1, 0] = 1.0
    mix = W.clone()
    mix[:, 1, 0] = 0.5
    assert float(L.binaural_loss(H, h_ref, wrong, freqs, w)) > 1.0
    assert float(L.binaural_loss(H, h_ref, mix, freqs, w)) > 1e-3


# ----------------------------------------------------------------------------------------- tonal


def test_third_octave_matrix_rows():
    freqs = torch.linspace(0.0, 24000.0, 2049, dtype=F64)
    S = L.third_octave_matrix(freqs)
    assert S.shape[1] == 2049 and 20 <= S.shape[0] <= 24  # 100 Hz … 16 kHz: 22 bands
    assert torch.allclose(S.sum(1), torch.ones(S.shape[0], dtype=F64), rtol=0, atol=1e-12)
    assert bool((S >= 0).all())
    assert float((S > 0).sum(0).max()) == 1  # bands do not overlap
    support = freqs[(S > 0).any(0)]
    assert float(support.min()) >= 100.0 * 2 ** (-1 / 6) - 1e-9 and float(support.max()) < 16000.0 * 2 ** (1 / 6) * 1.01


def test_tonal_loss_flat_and_tilted():
    freqs = torch.linspace(0.0, 24000.0, 2049, dtype=F64)
    S = L.third_octave_matrix(freqs)
    H = torch.ones(2049, 1, 2, 1, dtype=C128)
    flat = torch.ones(2049, 1, 3, dtype=C128)
    assert float(L.tonal_loss(H, flat, S, 0)) <= 1e-20  # measured 0
    assert float(L.tonal_loss(H, (0.1 + 0.7j) * flat, S, 0)) <= 1e-20  # a gain is not a tilt
    tilt = torch.sqrt(freqs / 1000.0).to(C128)[:, None, None].expand(2049, 1, 3)  # +3 dB/octave
    value = float(L.tonal_loss(H, tilt, S, 0))
    # 1/3-octave bands 1 dB apart: the variance of n equally spaced levels is (n² − 1)/12 dB²
    # (40.25 for n = 22); measured 40.54 (band power means vs centres). Tolerance 5 %.
    n = S.shape[0]
    assert value == pytest.approx((n * n - 1) / 12, rel=0.05)


# ------------------------------------------------------------------------------------------- beam


@pytest.fixture(scope="module")
def scene():
    """smart_speaker_5, rigid-sphere head at 2 m, default 27-point zone, free field, n_fft 256."""
    return scene_from_config(make_config(zone="default", n_fft=256))


def test_beam_loss_ls_beats_delay_and_sum(scene):
    mask = bl.band_mask(scene.freqs, scene.driver_bands, 1 / 3)
    target, weights = bl.centre_beam_target(scene.ring_az)
    ls = bl.ls_beamformer(scene.G_ring, scene.ring_az, target, weights, 1e-3, mask, wng_min_db=-6.0)
    das = bl.delay_and_sum(scene.G_ring, scene.ring_az, mask=mask)
    loss_ls = float(L.beam_loss(scene.G_ring, scene.ring_az, ls, scene.freqs))
    loss_das = float(L.beam_loss(scene.G_ring, scene.ring_az, das, scene.freqs))
    print(f"beam loss: LS {loss_ls:.1f} dB², delay-and-sum {loss_das:.1f} dB²")
    assert math.isfinite(loss_ls) and loss_ls < loss_das  # measured 77.2 vs 304.6 dB²
    # The loss only sees the pattern relative to on-axis: a per-frequency gain changes nothing.
    gain = torch.linspace(0.5, 3.0, scene.freqs.numel(), dtype=F64)[:, None].to(C128) * (1 - 0.5j)
    assert float(L.beam_loss(scene.G_ring, scene.ring_az, gain * ls, scene.freqs)) == pytest.approx(loss_ls, rel=1e-9)


# ----------------------------------------------------------------------------------------- effort


def test_white_noise_gain_of_identical_colocated_drivers():
    for n in (1, 2, 5, 8):
        g = _crandn(7, 1, seed=n).expand(7, n)  # identical far fields (co-located drivers)
        w = ((0.3 - 0.2j) * torch.ones(7, n, dtype=C128))
        wng = L.white_noise_gain_db(g, w)
        assert torch.allclose(wng, torch.full((7,), 10 * math.log10(n), dtype=F64), rtol=0, atol=1e-12)
    # Same definition as the baselines' metric for arbitrary inputs.
    g, w = _crandn(9, 4, seed=20), _crandn(9, 4, seed=21)
    assert torch.allclose(L.white_noise_gain_db(g, w), bl.white_noise_gain_db(g, w), rtol=0, atol=1e-9)


def test_effort_loss_zero_inside_limits_and_positive_outside():
    n_f, n = 10, 4
    g = _crandn(n_f, 1, seed=3).expand(n_f, n)
    band = torch.ones(n_f, dtype=torch.bool)
    ok = torch.full((n_f, n, 3), 0.5 + 0.0j, dtype=C128)  # −6 dB per driver, WNG = 10·log10 4
    assert float(L.effort_loss(ok, g, band, max_gain_db=12.0, wng_min_db=-10.0)) == 0.0
    loud = torch.full((n_f, n, 3), 10.0 + 0.0j, dtype=C128)  # +20 dB: 8 dB over the ceiling everywhere
    assert float(L.effort_loss(loud, g, band, 12.0, -10.0)) == pytest.approx(64.0, rel=1e-12)
    fragile = ok.clone()
    fragile[:, :, 2] = torch.tensor([1.0, -0.9, 0.0, 0.0], dtype=C128)  # WNG = 10·log10(0.01/1.81)
    wng = 10 * math.log10(0.01 / 1.81)
    assert float(L.effort_loss(fragile, g, band, 12.0, -10.0)) == pytest.approx((-10.0 - wng) ** 2, rel=1e-9)
    # The WNG floor applies only in its band.
    assert float(L.effort_loss(fragile, g, torch.zeros(n_f, dtype=torch.bool), 12.0, -10.0)) == 0.0


# ------------------------------------------------------------------------------ band, compactness


def test_band_loss():
    n_f, n_d = 12, 3
    inside = torch.zeros(n_f, n_d, dtype=torch.bool)
    inside[: n_f // 2] = True
    ceiling = torch.where(inside, torch.tensor(math.inf, dtype=F64), torch.tensor(-40.0, dtype=F64))
    W = _crandn(n_f, n_d, 3, seed=5) * inside[..., None]
    assert float(L.band_loss(W, ceiling, inside)) == 0.0
    # Flat response: out-of-band bins sit at 0 dB re in band, 40 dB over the ceiling on half the bins.
    ones = torch.ones(n_f, n_d, 3, dtype=C128)
    assert float(L.band_loss(ones, ceiling, inside)) == pytest.approx(0.5 * 40.0**2, rel=1e-9)
    quiet = ones.clone()
    quiet[n_f // 2 :] *= 10 ** (-50 / 20)  # under the ceiling: no penalty
    assert float(L.band_loss(quiet, ceiling, inside)) == 0.0
    loud = ones.clone()
    loud[n_f // 2 :] *= 10 ** (-30 / 20)  # 10 dB over
    assert float(L.band_loss(loud, ceiling, inside)) == pytest.approx(0.5 * 10.0**2, rel=1e-6)
    # The reference is the in-band mean power: scaling a driver's whole feed changes nothing.
    assert float(L.band_loss(loud * 7.0, ceiling, inside)) == pytest.approx(0.5 * 10.0**2, rel=1e-6)


def test_crossover_spec_dense_grid_and_unresolvable_low_edges():
    bands = torch.tensor([[40.0, 500.0], [200.0, 10000.0]], dtype=F64)
    spec = L.crossover_spec(bands, 8, -50.0, n_taps=1000, sample_rate=48000)
    assert spec["n_fft"] == 4096  # 4 × 1000 taps, rounded up to a power of two
    f = torch.fft.rfftfreq(4096, 1 / 48000, dtype=F64)
    ceiling, inside = spec["ceiling_db"], spec["inside"]
    assert ceiling.shape == inside.shape == (2049, 2)
    # 2·fs/T = 96 Hz: the woofer's 40 Hz edge is unconstrained, the mids' 200 Hz edge is.
    assert bool(torch.isinf(ceiling[f < 40, 0]).all()) and bool(torch.isfinite(ceiling[(f > 0) & (f < 200), 1]).all())
    assert bool((inside[:, 1] == ((f >= 200) & (f <= 10000))).all())


def test_compactness_loss():
    main, pre, post = 40, 10, 20
    taps = torch.zeros(2, 3, 128, dtype=F64)
    taps[:, :, main - pre : main + post + 1] = torch.randn(2, 3, pre + post + 1, generator=torch.Generator().manual_seed(6), dtype=F64)
    assert float(L.compactness_loss(taps, main, pre, post)) == 0.0
    for k in (1, 5, 30):  # one tap k samples after the window: weight (k/post)²
        late = torch.zeros(2, 3, 128, dtype=F64)
        late[1, 2, main + post + k] = 0.7
        assert float(L.compactness_loss(late, main, pre, post)) == pytest.approx((k / post) ** 2, rel=1e-12)
    early = torch.zeros(2, 3, 128, dtype=F64)
    early[0, 0, main - pre - 4] = -2.0
    assert float(L.compactness_loss(early, main, pre, post)) == pytest.approx((4 / pre) ** 2, rel=1e-12)
    assert float(L.compactness_loss(taps + late, main, pre, post)) > 0.0


# ------------------------------------------------------------------------------------ system loss


def test_system_loss_terms_finite_for_initialised_system(scene):
    shape = SystemShape(n_drivers=5, n_taps=512, ctc_taps=256, beam_taps=256, virtualizer_taps=128)
    system, info = initialize_system(scene, shape, DesignConfig(), 256)
    system = system.double()
    cfg = L.LossConfig()
    crossover = L.crossover_spec(scene.driver_bands, cfg.crossover_order, cfg.crossover_floor_db, shape.n_taps,
                                 scene.sample_rate)
    loss = L.SystemLoss(cfg, SceneTensors(scene, torch.device("cpu"), F64), crossover, info["ctc_delay"], scene.sample_rate)
    terms = loss.terms(system.responses(scene.freqs), system.ctc)
    assert set(terms) == set(cfg.weights) - {"drr"}  # drr needs a room (H_direct); this scene is free field
    for name, value in terms.items():
        value = value.detach()
        assert value.dim() == 0 and bool(torch.isfinite(value)) and float(value) >= 0.0, name
        assert math.isfinite(cfg.weights[name] * float(value)), name
    print({k: round(float(v.detach()), 4) for k, v in terms.items()})
    total = loss.total(terms)
    assert float(total.detach()) == pytest.approx(sum(cfg.weights[k] * float(v.detach()) for k, v in terms.items()), rel=1e-12)
    total.backward()
    assert all(p.grad is not None and bool(p.grad.isfinite().all()) for p in system.parameters())


def test_room_ears_direct_equals_the_free_field_ear_terms():
    """In a room, loss.room_ears=direct computes the ear terms (cancellation, binaural, tonal,
    level) on the free-field paths — exactly the free-field scene's terms — while the beam and
    DRR terms keep the room; room_ears=full uses the room response (different values)."""
    cfg_room = make_config(zone="point", room="living_room", n_fft=256)
    cfg_room["room"]["max_order"] = 1
    free_cfg = make_config(zone="point", n_fft=256)
    room, free = scene_from_config(cfg_room), scene_from_config(free_cfg)
    shape = SystemShape(n_drivers=5, n_taps=512, ctc_taps=256, beam_taps=256, virtualizer_taps=128)
    system, info = initialize_system(free, shape, DesignConfig(), 256)
    system = system.double()
    cpu = torch.device("cpu")

    def terms(scene, tensors, room_ears):
        cfg = L.LossConfig(room_ears=room_ears)
        crossover = L.crossover_spec(scene.driver_bands, cfg.crossover_order, cfg.crossover_floor_db, shape.n_taps,
                                     scene.sample_rate)
        loss = L.SystemLoss(cfg, tensors, crossover, info["ctc_delay"], scene.sample_rate)
        with torch.no_grad():
            return {k: float(v) for k, v in loss.terms(system.responses(scene.freqs), system.ctc).items()}

    in_room = SceneTensors(room, cpu, F64, free.H, free.H_ref)
    direct, full = terms(room, in_room, "direct"), terms(room, in_room, "full")
    reference = terms(free, SceneTensors(free, cpu, F64), "direct")
    ears = ("cancellation", "binaural", "tonal", "level")
    for name in ears:
        assert direct[name] == pytest.approx(reference[name], rel=1e-12), name
        assert abs(full[name] - reference[name]) > 1e-3 * abs(reference[name]), name  # the room does change them
    for name in ("beam", "beam_axis", "effort", "band", "drr"):
        assert direct[name] == pytest.approx(full[name], rel=1e-12), name
    assert "drr" in direct and "drr" not in reference
    with pytest.raises(ValueError, match="go together"):
        SceneTensors(room, cpu, F64, free.H)


# --------------------------------------------------------------------------------------- gradients


def _gc(fn, *inputs):
    return torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradcheck_losses_float64():
    g = torch.Generator().manual_seed(9)
    n_f, n_p, n_d = 5, 3, 3
    freqs = torch.tensor([300.0, 900.0, 1400.0, 3000.0, 9000.0], dtype=F64)
    w = torch.tensor([0.2, 0.5, 0.3], dtype=F64)
    # Cancellation: shortfalls kept ≥ 1 dB from the relu kink.
    target = torch.tensor([0.0, 10.0, 20.0, 20.0, 5.0], dtype=F64)
    sep = target[:, None, None] - 1.0 - 4.0 * torch.rand(n_f, n_p, 2, generator=g, dtype=F64)
    sep[0, 0, 0] = 30.0
    assert _gc(lambda s: L.cancellation_loss(s, target, w), sep.requires_grad_(True))
    # Separation w.r.t. the (complex) CTC filters.
    H = _crandn(n_f, n_p, 2, n_d, seed=10)
    assert _gc(lambda c: L.ctc_separation_db(H, c), _crandn(n_f, n_d, 2, seed=11).requires_grad_(True))
    # Binaural cues w.r.t. the composite filters.
    h_ref = _crandn(n_f, n_p, 2, 2, seed=12)
    assert _gc(lambda W: L.binaural_loss(H, h_ref, W, freqs, w, itd_max_hz=1500.0), _crandn(n_f, n_d, 3, seed=13).requires_grad_(True))
    # Effort (gain ceiling and WNG floor both active) w.r.t. W.
    W = (4.0 * _crandn(n_f, n_d, 3, seed=14)).requires_grad_(True)
    g_look = _crandn(n_f, n_d, seed=15)
    assert _gc(lambda W: L.effort_loss(W, g_look, torch.ones(n_f, dtype=torch.bool), 12.0, 0.0), W)


def test_drr_loss_by_hand():
    """One point, one driver: DRR = 10·log10(|direct|²/|reverberant|²) summed over the band."""
    from spatialopt.objectives.losses import drr_loss

    freqs = torch.tensor([500.0, 1000.0, 2000.0], dtype=torch.float64)
    direct = torch.full((3, 1, 2, 1), 1.0 + 0j, dtype=torch.complex128)
    reverb = torch.full((3, 1, 2, 1), 0.5 + 0j, dtype=torch.complex128)  # DRR = 6.02 dB
    B = torch.ones(3, 1, dtype=torch.complex128)
    w = torch.ones(1, dtype=torch.float64)
    assert float(drr_loss(direct + reverb, direct, B, freqs, w, (800.0, 4000.0), 6.0)) == 0.0
    value = drr_loss(direct + reverb, direct, B, freqs, w, (800.0, 4000.0), 10.0)
    torch.testing.assert_close(value, torch.tensor((10.0 - 20 * math.log10(2.0)) ** 2, dtype=torch.float64))


def test_tonal_band_follows_what_the_device_plays():
    """The tonal loss asks for flatness only where some driver plays: from ⅓ octave above the
    lowest lower band edge (never below 100 Hz) to the top band edge (never above 16 kHz)."""
    from spatialopt.objectives.losses import tonal_band_hz

    woofer_device = torch.tensor([[2000.0, 20000.0], [200.0, 10000.0], [40.0, 500.0]])
    spec = L.crossover_spec(woofer_device, 8, -50.0, 256, 48000.0)
    assert (spec["bottom_hz"], spec["top_hz"]) == (40.0, 20000.0)
    assert tonal_band_hz(spec["bottom_hz"], spec["top_hz"]) == (100.0, 16000.0)
    soundbar = torch.tensor([[150.0, 20000.0]] * 4)
    low, high = tonal_band_hz(float(soundbar[:, 0].min()), 12000.0)
    assert low == pytest.approx(150.0 * 2 ** (1 / 3), rel=1e-12) and high == 12000.0
    f = torch.linspace(0, 24000, 1025, dtype=torch.float64)
    rows = L.third_octave_matrix(f, low, high)
    used = f[(rows > 0).any(0)]
    assert float(used.min()) >= 150.0 * 2 ** (1 / 3) * 2 ** (-1 / 6) * 0.99  # no band reaches under the drivers
