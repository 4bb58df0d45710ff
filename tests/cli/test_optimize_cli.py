"""``spatialopt-optimize`` and ``spatialopt-evaluate`` end to end on a tiny configuration (subprocesses)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
TINY = [
    "scene.n_fft=256", "system.n_taps=256", "system.ctc_taps=160", "system.beam_taps=128",
    "system.virtualizer_taps=64", "system.modelling_delay_ms=1.0", "optim.steps=4", "optim.checkpoint_every=2",
    "zone.lateral=[-0.05,0.05]", "zone.depth=[0.0]", "zone.yaw=[0]", "evaluation.n_fft_factor=4",
    "evaluation.zone.lateral=[0.0,0.02]", "evaluation.zone.depth=[0.0]", "evaluation.zone.yaw=[0,4]",
    "progress=false", "plots=false",
]
KEYS = {
    "ctc": {"separation_db", "band_hz"}, "virtual": {"ild_err_db_rms", "itd_err_us_rms"},
    "beam": {"null_depth_db", "mainlobe_dev_db", "di_db", "band_hz"}, "tonal": {"dev_db_rms"},
    "effort": {"wng_db_min", "max_gain_db"}, "align": {"path_skew_ms"}, "room": {"drr_db"},
}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("run")
    proc = subprocess.run([str(BIN / "spatialopt-optimize"), f"hydra.run.dir={run_dir}", *TINY],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


def test_run_directory_holds_everything(tiny_run):
    run_dir, proc = tiny_run
    assert (run_dir / "summary.txt").read_text().startswith("scene: 5 drivers")
    assert "scene: 5 drivers" in proc.stdout
    for name in ("report.md", "metrics.json", "filterset/manifest.json", "filterset/filters.safetensors", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    assert any((run_dir / "tb").iterdir())
    assert f"report:      {run_dir / 'report.md'}" in proc.stdout


def test_metrics_schema_for_ours_and_every_baseline(tiny_run):
    metrics = json.loads((tiny_run[0] / "metrics.json").read_text())
    assert metrics["runtime_s"] > 0 and metrics["steps"] == 4
    for name in ("ours", "kirkeby", "ls_zone", "delay_and_sum"):
        for group, keys in KEYS.items():
            assert keys <= set(metrics[name][group]), (name, group)
        assert set(metrics[name]["ctc"]["separation_db"]) == {"sweet_mean", "zone_mean", "zone_p10"}
        assert metrics[name]["room"]["drr_db"] is None  # free field
    assert "| CTC separation 1.5–8 kHz, sweet spot (dB) |" in (tiny_run[0] / "report.md").read_text()


def test_exported_filter_set_loads_and_is_the_composition(tiny_run):
    from spatialopt.filterset import FilterSet

    fset = FilterSet.load(tiny_run[0] / "filterset")
    assert tuple(fset.fir.shape) == (3, 5, 256)
    assert fset.check_composition() < 1e-5
    assert fset.metrics["ours"]["ctc"]["band_hz"] == [1500.0, 8000.0]


def test_evaluate_reproduces_the_run_metrics_and_takes_overrides(tiny_run, tmp_path):
    run_dir = tiny_run[0]
    out = tmp_path / "m.json"
    proc = subprocess.run([str(BIN / "spatialopt-evaluate"), f"filterset={run_dir / 'filterset'}", f"out={out}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    again = json.loads(out.read_text())["ours"]
    original = json.loads((run_dir / "metrics.json").read_text())["ours"]
    assert again["ctc"]["separation_db"] == pytest.approx(original["ctc"]["separation_db"], rel=1e-9)
    out2 = tmp_path / "room.json"
    proc = subprocess.run([str(BIN / "spatialopt-evaluate"), f"filterset={run_dir / 'filterset'}", f"out={out2}",
                           "room=living_room", "listener.head_radius=0.08"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    in_room = json.loads(out2.read_text())["ours"]
    assert in_room["room"]["drr_db"] is not None and abs(in_room["room"]["drr_db"]) < 40


@pytest.mark.parametrize("override, key", [
    ("system.ctc_taps=-4", "system.ctc_taps"),
    ("+loss.weights.sparkle=1", "loss.weights.sparkle"),  # "+" gets past Hydra's own struct check
    ("loss.ctc_band_hz=[1000,30000]", "loss.ctc_band_hz"),
    ("zone.lateral=[]", "zone.lateral"),
    ("optim.optimizer=sgd", "optim.optimizer"),
])
def test_bad_configs_fail_before_any_work(override, key, tmp_path):
    proc = subprocess.run([str(BIN / "spatialopt-optimize"), f"hydra.run.dir={tmp_path}", *TINY, override],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith(f"spatialopt-optimize: error: {key}"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "filterset").exists()


def test_evaluate_names_the_evaluation_zone_keys(tiny_run, tmp_path):
    """A bad held-out zone is reported under the key the user wrote (evaluation.zone.*), before
    any scene is built."""
    from spatialopt.cli.evaluate import evaluate
    from spatialopt.errors import ConfigError

    argv = [f"filterset={tiny_run[0] / 'filterset'}", f"out={tmp_path / 'm.json'}", "evaluation.zone.lateral=[]"]
    with pytest.raises(ConfigError, match=r"^evaluation\.zone\.lateral=\[\]: must be a non-empty list"):
        evaluate(argv)
    assert not (tmp_path / "m.json").exists()
