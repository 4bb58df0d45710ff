"""``spatialopt-scene``: build the acoustic scene from config, save it, summarise and plot it.

    spatialopt-scene [hydra overrides] out=PATH.npz

Relative ``out`` paths land in the run directory (``hydra.run.dir``).
"""

from __future__ import annotations

import time

import hydra
from omegaconf import DictConfig

from spatialopt.cli._common import CONF_DIR, one_line_errors, output_path, run_dir, to_plain


@one_line_errors("spatialopt-scene")
def run(cfg: DictConfig) -> None:
    from spatialopt.config import scene_from_config
    from spatialopt.fileio import atomic_write_text

    plain = to_plain(cfg)
    start = time.perf_counter()
    scene = scene_from_config(plain)
    elapsed = time.perf_counter() - start
    out = output_path(plain.get("out") or "scene.npz")
    scene.save_npz(out)
    summary = scene.summary() + f"\n  built in {elapsed:.2f} s"
    atomic_write_text(run_dir() / "summary.txt", summary + "\n")
    print(summary)
    print(f"scene written to {out}")
    if plain.get("plots", True):
        from spatialopt.plots import save_scene_plots

        for path in save_scene_plots(scene, run_dir()):
            print(f"plot: {path}")


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _hydra_main(cfg: DictConfig) -> None:
    run(cfg)


def main() -> None:
    _hydra_main()


if __name__ == "__main__":
    main()
