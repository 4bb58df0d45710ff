"""``spatialopt-optimize``: run one optimisation experiment (Hydra app).

    spatialopt-optimize [hydra overrides]      # run directory = hydra.run.dir
    spatialopt-optimize -m [sweep overrides]   # a sweep (launchers, Optuna: README "Sweeps")

Writes ``filterset/``, ``metrics.json``, ``report.md``, ``checkpoints/`` and ``tb/`` into the run
directory and prints where they are. Returns the ``objective`` metric (default
``ctc.separation_db.zone_p10`` of the optimised design) to a sweeper; an Optuna sweeper's
``direction`` must equal ``objective_direction`` (checked before any work).

Ctrl-C stops the optimisation, exports the best filter set so far, evaluates it, writes the
report (``metrics.json`` says ``"interrupted": true``) and exits with status 130, which also
stops a sequential sweep.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from spatialopt.cli._common import CONF_DIR, one_line_errors, run_dir, to_plain
from spatialopt.errors import ConfigError

EXIT_INTERRUPTED = 130


def check_objective(cfg: dict) -> tuple[str, str]:
    """``objective`` and ``objective_direction``, validated before any work; under an Optuna
    sweeper, its ``direction`` must be ``objective_direction``."""
    from spatialopt.config import check_objective_keys

    objective, direction = check_objective_keys(cfg)
    try:
        from hydra.core.hydra_config import HydraConfig

        sweeper = HydraConfig.get().sweeper
    except ValueError:  # not under Hydra (a library call)
        return objective, direction
    if "optuna" in str(sweeper.get("_target_", "")).lower():
        theirs = sweeper.get("direction")
        name = getattr(theirs, "name", theirs)
        if not isinstance(name, str) or name.lower() != direction:
            raise ConfigError("hydra.sweeper.direction", name, f"must equal objective_direction={direction} "
                              f"(the objective {objective} is to be {direction}d); set hydra.sweeper.direction={direction} "
                              "or use hydra/sweeper=spatialopt_optuna")
    return objective, direction


def objective_value(metrics: dict, objective: str) -> float:
    """The objective's value in a run's metrics (a finite number, else a one-line error)."""
    from spatialopt.cli.summarize import lookup_metric, metric_paths

    try:
        value = lookup_metric(metrics, objective)
    except KeyError:
        known = [p for p in metric_paths(metrics) if p.split(".")[0] not in ("kirkeby", "ls_zone", "delay_and_sum")]
        raise ConfigError("objective", objective, f"not in metrics.json; known: {', '.join(known)}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError("objective", objective, f"is {value!r} in this run, not a finite number "
                          "(room.drr_db is null in free field)")
    return float(value)


def _tensorboard_command(log_dir: Path) -> str:
    exe = Path(sys.executable).parent / "tensorboard"
    if exe.exists():
        rel = os.path.relpath(exe)
        return f"{exe if rel.startswith('..') else rel} --logdir {log_dir}"
    return f"tensorboard --logdir {log_dir}"


@one_line_errors("spatialopt-optimize")
def run(cfg: DictConfig) -> float:
    from spatialopt.config import validate_config
    from spatialopt.experiment import run_experiment

    plain = to_plain(cfg)
    validate_config(plain)  # every group and key, before any work (run_experiment checks again: cheap)
    objective, _ = check_objective(plain)
    out = run_dir()
    metrics = run_experiment(plain, out, progress=bool(plain.get("progress", True)))
    ours = metrics["ours"]
    sep = ours["ctc"]["separation_db"]
    print(f"CTC separation 1.5–8 kHz: sweet {sep['sweet_mean']:.1f} dB, zone p10 {sep['zone_p10']:.1f} dB; "
          f"beam null {ours['beam']['null_depth_db']:.1f} dB; ILD err {ours['virtual']['ild_err_db_rms']:.2f} dB")
    print(f"report:      {out / 'report.md'}")
    print(f"metrics:     {out / 'metrics.json'}")
    print(f"filter set:  {out / 'filterset'}")
    print(f"tensorboard: {_tensorboard_command(out / 'tb')}")
    if metrics.get("interrupted"):
        print(f"interrupted at step {metrics.get('steps')}: the best filter set so far is exported; "
              f"continue with resume=true hydra.run.dir={out}", file=sys.stderr)
        raise SystemExit(EXIT_INTERRUPTED)
    # The value a sweeper (e.g. Optuna, direction = objective_direction) optimises.
    return objective_value(metrics, objective)


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> float:
    return run(cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
