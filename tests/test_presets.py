"""Experiment presets (conf/experiment/*.yaml) and their analyses (spatialopt/analysis.py).

Every preset runs end to end in-process with a reduced budget (2 steps, tiny filters and grids),
so presets never rot; the analyses' numerics are checked against closed forms.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from spatialopt import analysis as an
from spatialopt.cli._common import CONF_DIR
from spatialopt.errors import ConfigError
from spatialopt.plots import DESIGN_FIGURES

pytestmark = pytest.mark.usefixtures("single_thread")

PRESETS = sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml"))

REDUCED = [
    "scene.n_fft=256", "scene.ring_count=72", "scene.sphere_order=10", "system.n_taps=256", "system.ctc_taps=160",
    "system.beam_taps=128", "system.virtualizer_taps=64", "system.modelling_delay_ms=1.0", "optim.steps=2",
    "optim.checkpoint_every=1", "zone.lateral=[-0.05,0.0,0.05]", "zone.depth=[0.0]", "zone.yaw=[0]",
    "evaluation.zone.lateral=[0.0,0.02]", "evaluation.zone.depth=[0.0]", "evaluation.zone.yaw=[0]",
    "progress=false", "plots=false",
]
PER_PRESET = {
    "ctc_zone": ["+analysis_options.ctc_zone.lateral_m=[-0.05,0.0,0.05]"],
    "room_depth": ["+analysis_options.room_depth={distances_m: [1.0, 2.0, 3.0], max_order: 2, n_fft: 2048, freq_chunk: 64}"],
    "listening_zone": ["+analysis_options.listening_zone={lateral_m: [-0.1, 0.0, 0.1], distance_m: [1.5, 2.0, 2.5]}"],
    "devices": ["device=stereo_pair", "plots=true"],  # also the report figures without TensorBoard images
}
EXPECTED = {  # preset → (analysis name, figures)
    "crosstalk_simulation": ("crosstalk_simulation", ["crosstalk_simulation.png"]),
    "ctc_zone": ("ctc_zone", ["ctc_zone.png", "point_design/filterset/manifest.json"]),
    "beamformer": ("beamformer", ["beamformer_heatmap.png", "beamformer_polar.png"]),
    "room_depth": ("room_depth", ["room_depth.png"]),
    "listening_zone": ("listening_zone", ["listening_zone.png"]),
    "devices": ("device_summary", ["device_summary.png", *(f"figures/{n}.png" for n in DESIGN_FIGURES),
                                   "scene_layout.png"]),
}


def compose(overrides: list[str], hydra_config: bool = False) -> dict:
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = hydra_compose("config", overrides=overrides, return_hydra_config=hydra_config)
        return OmegaConf.to_container(cfg, resolve=not hydra_config)


def reduced_config(preset: str) -> dict:
    cfg = compose([f"+experiment={preset}", *REDUCED, *PER_PRESET.get(preset, [])])
    for key in ("eval_every", "image_every", "audio_seconds"):  # TensorBoard extras, not what is tested here
        if key in cfg["optim"]:
            cfg["optim"][key] = 0
    return cfg


def _finite(*values) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)


# ------------------------------------------------------------------------------------ presets


def test_every_analysis_has_a_preset_and_a_write_up():
    root = Path(CONF_DIR).parent
    assert set(EXPECTED) | {"debug"} == set(PRESETS)
    assert {name for name, _ in EXPECTED.values()} == set(an.ANALYSES)
    index = (root / "experiments" / "README.md").read_text()
    for preset in EXPECTED:
        assert (root / "experiments" / f"{preset}.md").is_file(), preset
        assert f"{preset}.md" in index


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_runs_end_to_end(preset, tmp_path):
    from spatialopt.experiment import run_experiment

    cfg = reduced_config(preset)
    name, files = EXPECTED[preset]
    assert cfg["analysis"] == [name]
    metrics = run_experiment(cfg, tmp_path, progress=False, log=lambda *_: None)
    for file in files:
        assert (tmp_path / file).is_file(), file
    report = (tmp_path / "report.md").read_text()
    assert "## Analyses" in report and f"### {name}" in report
    for file in files:
        if file.endswith(".png"):
            assert f"]({file})" in report, file  # every figure is linked from the report
    result = json.loads((tmp_path / "analysis.json").read_text())[name]
    ours = metrics["ours"]
    if name == "crosstalk_simulation":
        v = result["virtualizer_vs_hrtf"]
        assert _finite(v["magnitude_err_db_rms"], v["group_delay_err_us_rms"], v["itd_target_us"], result["allpass_max_dev_db"])
        assert 300 < v["itd_target_us"] < 500  # a ±30° source on a rigid sphere: ≈390 µs (REFERENCES.md)
    elif name == "ctc_zone":
        zone = result["designs"]["ours, zone design"]
        # The nominal point of the lateral line is the metric's sweet spot: the same taps, grid and band.
        assert zone["at_m"]["+0"] == pytest.approx(ours["ctc"]["separation_db"]["sweet_mean"], abs=1e-6)
        assert _finite(*result["designs"]["ours, point design"]["band_mean_db"], *result["point_design_metrics"].values())
    elif name == "beamformer":
        b = result["ours"]["metric_band"]
        assert b["side_90_db"] == pytest.approx(ours["beam"]["null_depth_db"], abs=1e-6)
        assert b["mainlobe_dev_45_db"] == pytest.approx(ours["beam"]["mainlobe_dev_db"], abs=1e-6)
        assert _finite(*(result["matrix mix (all drivers equal)"]["at_hz"][k]["side_90_db"] for k in ("500", "1000", "2000", "4000")))
    elif name == "room_depth":
        mono = result["designs"]["unit monopole (Q = 1)"]
        assert mono["q"] == pytest.approx(1.0, abs=1e-9)
        for entry in result["designs"].values():
            assert _finite(*entry["drr_db"], entry["rc_measured_fit_m"], entry["rc_formula_sabine_m"]) and entry["rc_measured_fit_m"] > 0
    elif name == "listening_zone":
        assert result["designs"]["ours"]["nominal_db"] == pytest.approx(ours["ctc"]["separation_db"]["sweet_mean"], abs=1e-6)
        assert np.isfinite(np.asarray(result["ild_err_db_rms"], dtype=float)).all()
    elif name == "device_summary":
        assert result["device"] == "stereo_pair" and result["aperture_m"] == pytest.approx(2.0, rel=1e-6)
        assert result["metrics"]["ours"]["sweet_db"] == ours["ctc"]["separation_db"]["sweet_mean"]


def test_presets_compose_what_they_claim():
    assert compose(["+experiment=room_depth"])["room"]["type"] == "shoebox"
    hydra_cfg = compose(["+experiment=devices"], hydra_config=True)
    assert hydra_cfg["hydra"]["sweeper"]["params"]["device"] == "smart_speaker_5,soundbar_4,stereo_pair"
    full_budget = compose([])["optim"]["steps"]
    for preset in ("crosstalk_simulation", "ctc_zone"):
        assert compose([f"+experiment={preset}"])["optim"]["steps"] == full_budget


def test_bad_analysis_names_and_options_fail_before_any_work(tmp_path):
    from spatialopt.experiment import run_experiment

    cfg = reduced_config("beamformer")
    cfg["analysis"] = ["beamformer", "polar_bear"]
    with pytest.raises(ConfigError, match=r"^analysis='polar_bear': unknown analysis"):
        run_experiment(cfg, tmp_path / "run", progress=False, log=lambda *_: None)
    assert not (tmp_path / "run").exists()  # refused before even the run directory is made
    with pytest.raises(ConfigError, match=r"analysis_options\.beamformer\.polar_khz"):
        an.validate_analyses({"analysis": ["beamformer"], "analysis_options": {"beamformer": {"polar_khz": [1]}}})
    with pytest.raises(ConfigError, match=r"analysis_options\.ctc_zone\.lateral_m"):
        an.validate_analyses({"analysis": [], "analysis_options": {"ctc_zone": {"lateral_m": [0.1, 0.0]}}})
    with pytest.raises(ConfigError, match="shoebox"):
        an.validate_analyses({"analysis": ["room_depth"], "room": {"type": "free"}})
    assert an.validate_analyses({"analysis": []}) == []


# ------------------------------------------------------------------------------ numerics


def test_critical_distance_formula_matches_references():
    # REFERENCES.md: 60 m³, T60 = 0.5 s → 0.62 m omni, 1.25 m at 6 dB directivity.
    assert an.critical_distance_formula(1.0, 60.0, 0.5) == pytest.approx(0.62, abs=0.005)
    assert an.critical_distance_formula(10 ** 0.6, 60.0, 0.5) == pytest.approx(1.25, abs=0.01)
    # It is √(Q·A/(16π)) with Sabine's absorption area A = 0.161·V/T60.
    assert an.critical_distance_formula(2.0, 54.0, 0.33) == pytest.approx(math.sqrt(2.0 * 0.161 * 54 / 0.33 / (16 * math.pi)), rel=0.01)


def test_critical_distance_from_a_free_field_law_drr():
    r = np.geomspace(0.5, 4.0, 9)
    out = an.critical_distance_from_drr(r, 20 * np.log10(1.3 / r))
    assert out["fit_m"] == pytest.approx(1.3, rel=1e-9) and out["crossing_m"] == pytest.approx(1.3, rel=1e-9)
    assert out["fit_residual_db_rms"] < 1e-9
    assert an.critical_distance_from_drr([1.0, 2.0], [5.0, 3.0])["crossing_m"] is None


def test_eyring_reverberation_time_closed_form_and_sabine_limit():
    from spatialopt.acoustics.room import Shoebox

    def room(alpha):
        return Shoebox(dims=torch.tensor([5.0, 4.0, 2.7], dtype=torch.float64), device_position=torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64),
                       absorption=torch.tensor(alpha, dtype=torch.float64), max_order=1)

    s, v = 2 * (20 + 13.5 + 10.8), 54.0
    assert an.eyring_t60(room(0.3)) == pytest.approx(0.161 * v / (-s * math.log(0.7)), rel=2e-3)
    assert an.eyring_t60(room(0.01)) == pytest.approx(room(0.01).sabine_t60(), rel=0.01)


def _ring_and_sphere(drivers, freqs, sphere_order=12, ring_count=72):
    from spatialopt.acoustics import sh
    from spatialopt.acoustics.scene import far_field_patterns, ring_directions
    from spatialopt.geometry import unit_vector

    az, ring = ring_directions(ring_count)
    colat, s_az, w = sh.gauss_sphere(sphere_order)
    g_ring = far_field_patterns(drivers, freqs, ring, 0)
    g_sphere = far_field_patterns(drivers, freqs, unit_vector(s_az, math.pi / 2 - colat), 0)
    return az, g_ring, g_sphere, w


def _monopole(name, position):
    from spatialopt.acoustics.drivers import Driver

    p = torch.tensor(position, dtype=torch.float64)
    return Driver(name=name, model="monopole", position=p, rotation=torch.eye(3, dtype=torch.float64), origin=p, band_hz=(0.0, 24000.0))


def test_single_monopole_polar_is_flat_and_omni():
    freqs = torch.tensor([500.0, 1000.0, 2000.0, 4000.0], dtype=torch.float64)
    for position in ([0.0, 0.0, 0.0], [0.05, 0.03, -0.02]):  # off-centre: only the phase varies
        az, g_ring, g_sphere, w = _ring_and_sphere([_monopole("m", position)], freqs)
        B = torch.ones(4, 1, dtype=torch.complex128)
        pattern = an.baselines.beam_pattern_db(g_ring, B, az)
        assert pattern.abs().max() < 1e-9
        assert an.beamwidth_deg(pattern[0].numpy(), np.degrees(az.numpy())) == 360.0
        look = an.baselines.look_response(g_ring, az)
        q_band, q_f = an.directivity_factor(look, g_sphere, w, B)
        assert q_band == pytest.approx(1.0, abs=1e-9) and torch.allclose(q_f, torch.ones(4, dtype=torch.float64))


def test_two_monopoles_with_equal_feeds_follow_the_closed_form():
    # Matrix mixing of a pair at y = ±d: |p(φ)| ∝ |cos(k·d·sin φ)|.
    d, c = 0.06, 343.0
    freqs = torch.tensor([1000.0, 2000.0], dtype=torch.float64)
    az, g_ring, _, _ = _ring_and_sphere([_monopole("a", [0.0, d, 0.0]), _monopole("b", [0.0, -d, 0.0])], freqs)
    B = an.matrix_mix(freqs, torch.tensor([[0.0, 24000.0], [0.0, 24000.0]], dtype=torch.float64))
    assert torch.allclose(B, torch.ones_like(B))
    pattern = an.baselines.beam_pattern_db(g_ring, B, az)
    k = 2 * math.pi * freqs[:, None] / c
    expected = 20 * torch.log10(torch.cos(k * d * torch.sin(az)[None]).abs())
    ok = expected > -40
    assert torch.allclose(pattern[ok], expected[ok], atol=1e-6)


def test_beamwidth_of_a_cardioid():
    az = np.arange(-180.0, 180.0, 1.0)
    cardioid = 20 * np.log10(np.maximum((1 + np.cos(np.radians(az))) / 2, 1e-12))
    exact = 2 * math.degrees(math.acos(2 * 10 ** (-6 / 20) - 1))  # (1 + cos φ)/2 = −6 dB at φ = ±89.86°
    assert an.beamwidth_deg(cardioid, az) == pytest.approx(exact, abs=0.01)


def test_relative_response_errors_of_delayed_gains():
    freqs = torch.linspace(0.0, 20000.0, 4001, dtype=torch.float64)
    w = 2 * math.pi * freqs
    target = 0.5 * torch.exp(-1j * w * 390e-6)
    model = 0.25 * torch.exp(-1j * w * 300e-6)
    e = an.relative_response_errors(freqs, target, model)
    assert e["magnitude_err_db_rms"] == pytest.approx(-20 * math.log10(0.5), abs=1e-9)  # a constant −6.02 dB
    assert e["magnitude_err_db_max"] == pytest.approx(-20 * math.log10(0.5), abs=1e-9)
    assert e["group_delay_err_us_rms"] == pytest.approx(90.0, abs=1e-6)
    assert e["itd_target_us"] == pytest.approx(390.0, abs=1e-6) and e["itd_model_us"] == pytest.approx(300.0, abs=1e-6)


def test_relative_hrtf_fit_error_agrees_with_the_virtualizer_fit():
    """The sphere head's relative HRTF of a ±30° source at 2 m; the virtualizer fit's own error
    (computed on dB magnitudes over its band) equals the analysis' error computed from the complex
    responses, and the head's ILD matches REFERENCES.md."""
    from spatialopt.acoustics.head import SphereHead
    from spatialopt.acoustics.scene import reference_pair
    from spatialopt.design.virtualizer import crosstalk_response, fit_crosstalk

    fs = 48000.0
    freqs = torch.fft.rfftfreq(2048, 1 / fs).to(torch.float64)[1:]
    listener = torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64)
    speaker_l = reference_pair(listener, 2.0)[0]
    k = 2 * math.pi * freqs / 343.0
    ears = SphereHead().monopole_response(k, (speaker_l - listener)[None], torch.zeros(1, dtype=torch.float64))[:, 0, 0]  # (F, 2)
    relative = ears[:, 1] / ears[:, 0]
    fit = fit_crosstalk(relative, freqs, fs)
    model = crosstalk_response(torch.tensor(fit["delay_s"]), torch.tensor(fit["corner_hz"]), torch.tensor(fit["gain_db"]), freqs, fs)
    errors = an.relative_response_errors(freqs, relative, model, magnitude_band_hz=(300.0, 8000.0))
    assert errors["magnitude_err_db_rms"] == pytest.approx(fit["fit_err_db_rms"], rel=1e-6)
    ild = -20 * torch.log10(relative.abs())
    for hz, ref in ((1000.0, 5.3), (4000.0, 6.6)):
        assert float(ild[int(torch.argmin((freqs - hz).abs()))]) == pytest.approx(ref, abs=0.3)
    assert errors["itd_target_us"] == pytest.approx(390.0, abs=25.0)


def test_contiguous_extent_interpolates_the_edges():
    x = [-0.2, -0.1, 0.0, 0.1, 0.2]
    assert an.contiguous_extent(x, [0.0, 20.0, 30.0, 20.0, 0.0], 10.0) == pytest.approx((-0.15, 0.15))
    assert an.contiguous_extent(x, [30.0, 30.0, 30.0, 30.0, 30.0], 10.0) == (-0.2, 0.2)
    assert an.contiguous_extent(x, [30.0, 30.0, 5.0, 30.0, 30.0], 10.0) is None
    assert an.contiguous_extent([1.5, 2.0, 2.5], [19.0, 31.0, 5.0], 10.0, centre=2.0) == pytest.approx((1.5, 2.0 + 0.5 * 21 / 26))


def test_ild_error_vanishes_when_the_device_is_the_reference_pair():
    gen = torch.Generator().manual_seed(0)
    shape = (40, 3, 2, 2)
    h_ref = torch.complex(torch.randn(shape, generator=gen, dtype=torch.float64), torch.randn(shape, generator=gen, dtype=torch.float64))
    W = torch.zeros(40, 2, 3, dtype=torch.complex128)
    W[:, 0, 0] = W[:, 1, 1] = 2.0  # L → the left speaker, R → the right one (a common gain changes no ILD)
    freqs = torch.linspace(400.0, 9000.0, 40, dtype=torch.float64)
    assert an.ild_error_db_rms(h_ref, h_ref, W, freqs).abs().max() < 1e-9
    W[:, 0, 0] = 4.0  # L path 6 dB louder at both ears: ILD unchanged; R unchanged
    assert an.ild_error_db_rms(h_ref, h_ref, W, freqs).abs().max() < 1e-9
