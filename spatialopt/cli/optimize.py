"""``spatialopt-optimize``: run one optimisation experiment (Hydra app).

    spatialopt-optimize [hydra overrides]      # run directory = hydra.run.dir

Writes ``filterset/``, ``metrics.json``, ``report.md``, ``checkpoints/`` and ``tb/`` into the run
directory and prints where they are.
"""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from spatialopt.cli._common import CONF_DIR, one_line_errors, run_dir, to_plain


@one_line_errors("spatialopt-optimize")
def run(cfg: DictConfig) -> float:
    from spatialopt.experiment import run_experiment

    plain = to_plain(cfg)
    out = run_dir()
    metrics = run_experiment(plain, out, progress=bool(plain.get("progress", True)))
    ours = metrics["ours"]
    sep = ours["ctc"]["separation_db"]
    print(f"CTC separation 1.5–8 kHz: sweet {sep['sweet_mean']:.1f} dB, zone p10 {sep['zone_p10']:.1f} dB; "
          f"beam null {ours['beam']['null_depth_db']:.1f} dB; ILD err {ours['virtual']['ild_err_db_rms']:.2f} dB")
    print(f"report:      {out / 'report.md'}")
    print(f"metrics:     {out / 'metrics.json'}")
    print(f"filter set:  {out / 'filterset'}")
    print(f"tensorboard: tensorboard --logdir {out / 'tb'}")
    # The objective a sweeper (e.g. Optuna) minimises: the negated zone p10 separation.
    return -float(sep["zone_p10"])


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    return run(cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
