"""run_experiment in-process: Ctrl-C exports the best filter set so far and finishes the run."""

from __future__ import annotations

import json

import torch

from spatialopt.cli._common import CONF_DIR

TINY = [
    "scene.n_fft=256", "system.n_taps=256", "system.ctc_taps=160", "system.beam_taps=128",
    "system.virtualizer_taps=64", "system.modelling_delay_ms=1.0", "optim.steps=50",
    "zone.lateral=[-0.05,0.05]", "zone.depth=[0.0]", "zone.yaw=[0]",
    "evaluation.zone.lateral=[0.0,0.02]", "evaluation.zone.depth=[0.0]", "evaluation.zone.yaw=[0]",
    "progress=false", "plots=false", "optim.eval_every=0", "optim.image_every=0", "optim.audio_seconds=0",
]


def tiny_config() -> dict:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return OmegaConf.to_container(compose("config", overrides=TINY), resolve=True)


def test_ctrl_c_exports_the_best_state_so_far(tmp_path, monkeypatch):
    from spatialopt.experiment import run_experiment
    from spatialopt.filterset import FilterSet
    from spatialopt.train import Trainer

    original = Trainer.run

    def interrupted(self, on_log=None, until=None):
        original(self, on_log, until=3)
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "run", interrupted)
    metrics = run_experiment(tiny_config(), tmp_path, progress=False, log=lambda *_: None)
    assert metrics["interrupted"] is True and metrics["steps"] == 3
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["interrupted"] is True
    fset = FilterSet.load(tmp_path / "filterset")
    assert torch.isfinite(fset.fir).all() and fset.check_composition() < 1e-5
    assert (tmp_path / "report.md").read_text().startswith("# spatialopt run report")
