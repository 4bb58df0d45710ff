"""``spatialopt-scene`` end to end, as a user runs it (a real subprocess)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

BIN = Path(sys.executable).parent


def run_scene(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess:
    cmd = [str(BIN / "spatialopt-scene"), f"hydra.run.dir={tmp_path / 'run'}", "scene.n_fft=64", *overrides]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def test_writes_the_scene_file_summary_and_plots(tmp_path):
    out = tmp_path / "scene.npz"
    proc = run_scene(tmp_path, f"out={out}", "zone=point")
    assert proc.returncode == 0, proc.stderr
    assert "scene: 5 drivers" in proc.stdout
    with np.load(out, allow_pickle=False) as data:
        assert data["H"].shape == (33, 1, 2, 5)
        assert data["H_ref"].shape == (33, 1, 2, 2)
        assert np.isfinite(data["H"]).all()
    run_dir = tmp_path / "run"
    assert (run_dir / "summary.txt").read_text().startswith("scene: 5 drivers")
    for name in ("scene_ear_responses", "scene_directivity", "scene_reference_cues", "scene_layout"):
        png = run_dir / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_relative_out_lands_in_the_run_directory(tmp_path):
    proc = run_scene(tmp_path, "out=nested/s.npz", "zone=point", "plots=false", "device=soundbar_4")
    assert proc.returncode == 0, proc.stderr
    with np.load(tmp_path / "run" / "nested" / "s.npz", allow_pickle=False) as data:
        assert list(data["driver_names"]) == ["outer_left", "inner_left", "inner_right", "outer_right"]


def test_bad_input_is_one_line_and_exit_status_2(tmp_path):
    proc = run_scene(tmp_path, "zone=point", "device.enclosure_radius=-1")
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines == ["spatialopt-scene: error: device.enclosure_radius=-1: must be > 0 and <= 10 m (or null: none)"]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_missing_sofa_path_is_reported(tmp_path):
    proc = run_scene(tmp_path, "zone=point", "listener=sofa")
    assert proc.returncode == 2
    assert "sofa_file" in proc.stderr and "Traceback" not in proc.stderr
