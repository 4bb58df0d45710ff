"""Sweeps with the real Hydra plugins (the ``sweep`` extra): ``spatialopt-optimize -m`` through the
joblib and submitit-local launchers and the Optuna sweeper, each job a real run directory, then
``spatialopt-summarize`` over the sweep. Small budgets (``+experiment=debug``, 4 steps)."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

BIN = Path(sys.executable).parent
CONF = Path(__file__).resolve().parents[2] / "conf"
# One intra-op thread per job: the jobs of a sweep run side by side on a 2-core machine, and two
# OpenMP threads per process on shared cores stall (measured 3-5x slower), see tests/conftest.py.
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
BASE = ["+experiment=debug", "optim.steps=4", "compute.device=cpu"]
# TensorBoard monitoring (images, audio, eval metrics) costs seconds per job and is not under test here.
if "eval_every" in (CONF / "optim" / "adam.yaml").read_text():
    BASE += ["optim.eval_every=0", "optim.image_every=0", "optim.audio_seconds=0"]

PLUGINS = {"joblib": "hydra_plugins.hydra_joblib_launcher", "submitit": "hydra_plugins.hydra_submitit_launcher",
           "optuna": "hydra_plugins.hydra_optuna_sweeper"}


def _need(plugin: str):
    if importlib.util.find_spec(PLUGINS[plugin]) is None:
        pytest.skip(f"{PLUGINS[plugin]} not installed: pip install -e '.[sweep]' (make install does)")


def _multirun(sweep_dir: Path, *overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(BIN / "spatialopt-optimize"), "-m", f"hydra.sweep.dir={sweep_dir}", *BASE, *overrides],
                          capture_output=True, text=True, timeout=timeout, env=ENV)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return proc


def _jobs(sweep_dir: Path, n: int) -> list[Path]:
    jobs = sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name.isdigit()), key=lambda p: int(p.name))
    assert [p.name for p in jobs] == [str(i) for i in range(n)]
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert metrics["steps"] == 4 and metrics["interrupted"] is False
        assert (job / "filterset" / "manifest.json").is_file() and (job / "report.md").is_file()
    return jobs


def _weights(job: Path) -> dict:
    return yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["loss"]["weights"]


def _summarize(sweep_dir: Path, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    proc = subprocess.run([str(BIN / "spatialopt-summarize"), str(sweep_dir), *args], capture_output=True, text=True,
                          timeout=120, env=ENV)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    return proc, rows


def test_joblib_launcher_two_point_sweep_and_summary(tmp_path):
    _need("joblib")
    sweep = tmp_path / "sweep"
    proc = _multirun(sweep, "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "loss.weights.cancellation=1,8")
    assert "Joblib.Parallel(n_jobs=2" in proc.stdout + proc.stderr
    jobs = _jobs(sweep, 2)
    assert [_weights(j)["cancellation"] for j in jobs] == [1, 8]

    out, rows = _summarize(sweep)
    assert len(rows) == 2 and {r["run"] for r in rows} == {"0", "1"}
    by_run = {r["run"]: r for r in rows}
    assert "loss.weights.cancellation=1" in by_run["0"]["overrides"].split()
    assert "+experiment=debug" in by_run["1"]["overrides"].split()
    p10 = [float(r["ours.ctc.separation_db.zone_p10"]) for r in rows]
    assert p10 == sorted(p10, reverse=True)  # default: best (largest) first
    for r in rows:
        metrics = json.loads((sweep / r["run"] / "metrics.json").read_text())
        assert float(r["ours.ctc.separation_db.zone_p10"]) == metrics["ours"]["ctc"]["separation_db"]["zone_p10"]
    md = (sweep / "summary.md").read_text()
    assert out.stdout.startswith(md)
    assert "Overrides common to every run: `+experiment=debug`" in md
    assert "| `loss.weights.cancellation=8` |" in md


def test_submitit_local_launcher(tmp_path):
    _need("submitit")
    sweep = tmp_path / "sweep"
    _multirun(sweep, "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=10", "loss.weights.tonal=1,3")
    jobs = _jobs(sweep, 2)
    assert [_weights(j)["tonal"] for j in jobs] == [1, 3]
    assert list((sweep / ".submitit").glob("*/*_result.pkl")), "submitit ran the jobs"
    _, rows = _summarize(sweep, "--sort", "ours.tonal.dev_db_rms", "--asc")
    tonal = [float(r["ours.tonal.dev_db_rms"]) for r in rows]
    assert len(rows) == 2 and tonal == sorted(tonal)


def test_optuna_sweeper_maximises_the_objective(tmp_path):
    _need("optuna")
    sweep = tmp_path / "sweep"
    proc = _multirun(sweep, "hydra/sweeper=spatialopt_optuna", "hydra.sweeper.n_trials=2", "hydra.sweeper.n_jobs=1")
    assert "Directions: ['maximize']" in proc.stdout + proc.stderr
    jobs = _jobs(sweep, 2)
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    params = yaml.safe_load((CONF / "hydra" / "sweeper" / "spatialopt_optuna.yaml").read_text())["params"]
    assert set(result["best_params"]) == set(params)
    p10 = [json.loads((j / "metrics.json").read_text())["ours"]["ctc"]["separation_db"]["zone_p10"] for j in jobs]
    assert result["best_value"] == pytest.approx(max(p10), abs=1e-9)  # maximised, and the raw metric (not negated)
    for job in jobs:  # every trial drew its weights inside the search space
        w = _weights(job)
        assert 1.0 <= w["cancellation"] <= 16.0 and 2.0 <= w["band"] <= 40.0
    _, rows = _summarize(sweep)
    assert float(rows[0]["ours.ctc.separation_db.zone_p10"]) == pytest.approx(result["best_value"], abs=1e-9)


def test_optuna_direction_must_match_the_objective(tmp_path):
    _need("optuna")
    # The plugin's own default direction is minimize; the default objective is to be maximized.
    proc = subprocess.run([str(BIN / "spatialopt-optimize"), "-m", f"hydra.sweep.dir={tmp_path}", *BASE,
                           "hydra/sweeper=optuna", "hydra.sweeper.n_trials=1"],
                          capture_output=True, text=True, timeout=300, env={**ENV, "HYDRA_FULL_ERROR": "0"})
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "spatialopt-optimize: error: hydra.sweeper.direction='minimize': must equal objective_direction=maximize")
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("metrics.json"))
