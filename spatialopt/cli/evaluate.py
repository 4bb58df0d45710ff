"""``spatialopt-evaluate``: metrics of an exported filter set on any scene, from its FIR taps.

    spatialopt-evaluate filterset=DIR [out=FILE.json] [trust_config_paths=false] [scene overrides, e.g.
                        room=living_room listener.head_radius=0.08 evaluation.zone.lateral=[-0.1,0,0.1]]

Files named by the stored config (a SOFA listener, measured drivers) are opened only with
``trust_config_paths=true`` or when that group is overridden on the command line.

The scene starts from the config stored in the filter set (the one that designed it); every
config group or key named on the command line replaces the stored one. As in the optimiser's own
evaluation, the frequency grid is ``evaluation.n_fft_factor`` (≥ 4) times denser than the design
grid and the zone is ``evaluation.zone`` (points the optimiser never saw).
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

from spatialopt.cli._common import CONF_DIR
from spatialopt.errors import ConfigError, SpatialoptError


def _split_args(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    own, overrides = {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError("argument", arg, "expected key=value (filterset=DIR, out=FILE.json or a config override)")
        if key in ("filterset", "out", "trust_config_paths"):
            own[key] = value
        else:
            overrides.append(arg)
    if "filterset" not in own:
        raise ConfigError("filterset", None, "is required: spatialopt-evaluate filterset=DIR [out=FILE.json] [overrides]")
    return own, overrides


def _compose(stored: dict, overrides: list[str]) -> dict:
    """Stored config with the command-line groups/keys replacing the stored ones."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        fresh = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    merged = copy.deepcopy(stored)
    for override in overrides:
        top = override.lstrip("+~").split("=", 1)[0].split(".", 1)[0].split("@", 1)[0]
        if top in fresh:
            merged[top] = fresh[top]
    return merged


def evaluate(argv: list[str]) -> dict:
    from spatialopt.config import scene_from_config
    from spatialopt.experiment import free_field_config, evaluate_filterset, evaluation_config
    from spatialopt.filterset import FilterSet

    own, overrides = _split_args(argv)
    fset = FilterSet.load(own["filterset"])
    from spatialopt.config import config_file_paths

    overridden = {o.lstrip("+~").split("=", 1)[0].split(".", 1)[0].split("@", 1)[0] for o in overrides}
    stored = [(k, p) for k, p in config_file_paths(fset.config or {}) if k.split(".", 1)[0] not in overridden]
    if stored and own.get("trust_config_paths", "false").lower() not in ("true", "1", "yes"):
        named = ", ".join(f"{k}={p}" for k, p in stored)
        raise ConfigError("trust_config_paths", own.get("trust_config_paths", "false"),
                          f"the filter set's design config names files ({named}); stored paths are opened only when "
                          "you trust the set (trust_config_paths=true) — or override those groups on the command line")
    cfg = _compose(fset.config or {}, overrides)
    cfg["fs"] = fset.sample_rate
    eval_cfg = evaluation_config(cfg)
    scene = scene_from_config(eval_cfg, zone_key="evaluation.zone")  # (its keys named as the user wrote them)
    if list(scene.driver_names) != list(fset.driver_names):
        raise ConfigError("device", scene.driver_names, f"the filter set drives {fset.driver_names}; evaluate it on that device")
    direct = None
    if (cfg.get("room") or {}).get("type", "free") != "free":
        direct = scene_from_config(free_field_config(eval_cfg)).H
    metrics = {"ours": evaluate_filterset(fset.fir, fset.stages["ctc"], scene, direct)}
    from spatialopt.fileio import atomic_write_text

    atomic_write_text(Path(own.get("out", "metrics.json")), json.dumps(metrics, indent=2))
    return metrics


def main() -> None:
    import os

    try:
        metrics = evaluate(sys.argv[1:])
    except SpatialoptError as exc:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"spatialopt-evaluate: error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    sep = metrics["ours"]["ctc"]["separation_db"]
    print(f"CTC separation 1.5–8 kHz: sweet {sep['sweet_mean']:.1f} dB, zone mean {sep['zone_mean']:.1f} dB, "
          f"zone p10 {sep['zone_p10']:.1f} dB; beam null {metrics['ours']['beam']['null_depth_db']:.1f} dB")


if __name__ == "__main__":
    main()
