"""One optimisation experiment end to end: scene → initial (closed-form) system → joint
optimisation → exported filter set → honest evaluation (ours vs baselines) → report.

:func:`run_experiment` takes the resolved config as a plain mapping (DESIGN.md §8 keys) and a
run directory; the Hydra app ``spatialopt-optimize`` is a thin wrapper around it.
"""

from __future__ import annotations

import copy
import json
import math
import platform
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import torch

from spatialopt.config import scene_from_config, validate_config
from spatialopt.design.initialize import DesignConfig, baseline_composite, initialize_system
from spatialopt.design.system import SystemShape
from spatialopt.errors import ConfigError
from spatialopt.fileio import atomic_write_text
from spatialopt.objectives.losses import LossConfig, SystemLoss, crossover_spec
from spatialopt.objectives.metrics import evaluate_filters
from spatialopt.train import OptimConfig, SceneTensors, Trainer

__all__ = ["run_experiment", "parse_configs", "evaluation_config", "free_field_config", "evaluate_filterset"]

BASELINES = {  # name → (CTC design, beam design); all share the fitted virtualizer and alignment
    "kirkeby": ("kirkeby", "ls_beam"),
    "ls_zone": ("ls_zone", "ls_beam"),
    "delay_and_sum": ("ls_zone", "delay_and_sum"),
}


def _dataclass_from(cls, cfg: Mapping | None, group: str):
    import dataclasses

    if cfg is not None and not isinstance(cfg, Mapping):
        raise ConfigError(group, cfg, f"must be a mapping of {group} settings")
    cfg = dict(cfg or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(cfg) - names, key=str)
    if unknown:
        raise ConfigError(f"{group}.{unknown[0]}", cfg[unknown[0]], f"unknown key; known keys: {', '.join(sorted(names))}")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name in cfg:
            value = cfg[f.name]
            default = getattr(cls(), f.name) if f.name not in ("weights",) else None
            if isinstance(default, tuple):
                if (not isinstance(value, (list, tuple)) or len(value) != len(default)
                        or any(isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) for v in value)):
                    raise ConfigError(f"{group}.{f.name}", value, f"must be a list of {len(default)} finite numbers")
                value = tuple(float(v) for v in value)
            values[f.name] = value
    return cls(**values)


def _check_numbers(obj, group: str, ranges: dict) -> None:
    """Each ``name: (lo, hi, lo_open, unit)`` of ``ranges``: ``getattr(obj, name)`` a finite number
    (not a bool) in [lo, hi] (``lo_open``: lo excluded)."""
    for name, (lo, hi, lo_open, unit) in ranges.items():
        value = getattr(obj, name)
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and (
            (lo < value if lo_open else lo <= value) and value <= hi)
        if not ok:
            raise ConfigError(f"{group}.{name}", value,
                              f"must be a number in {'(' if lo_open else '['}{lo:g}, {hi:g}]{' ' + unit if unit else ''}")


SYMMETRY_MODES = ("none", "mirror", "auto")  # system.symmetry (spatialopt/design/symmetry.py)
DESIGN_RANGES = {  # system.* besides the tap counts: (lo, hi, lo excluded, unit)
    "modelling_delay_ms": (0.0, 1000.0, False, "ms"),
    "ctc_beta_inside": (0.0, 1e6, True, ""),
    "ctc_beta_outside": (0.0, 1e6, True, ""),
    "zone_contra_weight": (0.0, 1e6, False, ""),
    "beam_beta": (0.0, 1e6, True, ""),
    "beam_wng_min_db": (-100.0, 100.0, False, "dB"),
    "crossover_octaves": (0.0, 10.0, True, "octaves"),
}
LOSS_RANGES = {  # loss.* scalars
    "ctc_target_db": (0.0, 100.0, False, "dB"),
    "ctc_taper_octaves": (0.0, 10.0, False, "octaves"),
    "worst_case_power": (1.0, 100.0, False, "(1 = mean, 2 = rms, larger = toward the worst point)"),
    "null_target_db": (-200.0, 0.0, False, "dB"),
    "max_gain_db": (-100.0, 100.0, False, "dB"),
    "wng_min_db": (-100.0, 100.0, False, "dB"),
    "pre_ring_ms": (0.0, 1000.0, False, "ms"),
    "post_ring_ms": (0.0, 1000.0, False, "ms"),
    "itd_weight": (0.0, 1e6, False, ""),
    "drr_target_db": (-100.0, 100.0, False, "dB"),
    "binaural_nominal_share": (0.0, 1.0, False, ""),
    "crossover_floor_db": (-200.0, 0.0, False, "dB"),
}
MAX_LOSS_WEIGHT = 1e6
UPMIX_MAX = {"centre_gain": 10.0, "smoothing_ms": 10_000.0, "panning_rejection": 1000.0, "mask_exponent": 100.0,
             "residual_floor": 1e6}  # upper bounds of the upmix group (residual_floor 1e6 already acts as ∞)
MAX_CROSSOVER_ORDER = 64


def _apply_symmetry(system, scene, mode: str, log=print) -> None:
    """``system.symmetry``: enforce the scene's left–right mirror symmetry on the system's filters
    (``mirror``: the scene must have one; ``auto``: when it has one)."""
    if mode == "none":
        return
    from spatialopt.design.symmetry import mirror_permutation

    perm = mirror_permutation(scene)
    if perm is None:
        if mode == "mirror":
            raise ConfigError("system.symmetry", mode, "the scene (device, listener, zone, room) is not left–right "
                              "mirror-symmetric; use auto or none")
        log("symmetry: the scene is not mirror-symmetric; every filter stays free")
        return
    system.set_mirror(perm)
    names = scene.driver_names
    pairs = [f"{names[d]}↔{names[m]}" for d, m in enumerate(perm) if d < m]
    on_plane = [names[d] for d, m in enumerate(perm) if d == m]
    log(f"symmetry: mirror (pairs: {', '.join(pairs) or 'none'}; on the plane: {', '.join(on_plane) or 'none'})")


def parse_configs(cfg: Mapping, n_drivers: int, sample_rate: float):
    """Typed, validated system/design/loss/optim configs from the plain config mapping."""
    sys_cfg = cfg.get("system")
    if sys_cfg is not None and not isinstance(sys_cfg, Mapping):
        raise ConfigError("system", sys_cfg, "must be a mapping of system settings")
    sys_cfg = dict(sys_cfg or {})
    shape_keys = ("n_taps", "ctc_taps", "beam_taps", "virtualizer_taps", "allpass_sections")
    shape = SystemShape(n_drivers=n_drivers, **{k: sys_cfg.pop(k) for k in shape_keys if k in sys_cfg})
    design = _dataclass_from(DesignConfig, sys_cfg, "system")  # unknown keys first: a typo is named as such
    shape.validate()
    _check_numbers(design, "system", DESIGN_RANGES)
    if not isinstance(design.symmetry, str) or design.symmetry not in SYMMETRY_MODES:
        raise ConfigError("system.symmetry", design.symmetry, f"must be one of {', '.join(SYMMETRY_MODES)}")
    if design.modelling_delay_ms * sample_rate / 1000 >= shape.ctc_taps:
        raise ConfigError("system.modelling_delay_ms", design.modelling_delay_ms, "must leave room inside ctc_taps")
    lo, hi = design.ctc_band_hz
    if not 0 <= lo < hi <= sample_rate / 2:
        raise ConfigError("system.ctc_band_hz", list(design.ctc_band_hz), f"must satisfy 0 <= low < high <= fs/2 = {sample_rate / 2:g}")
    loss_cfg = cfg.get("loss")
    if loss_cfg is not None and not isinstance(loss_cfg, Mapping):
        raise ConfigError("loss", loss_cfg, "must be a mapping of loss settings")
    loss_cfg = dict(loss_cfg or {})
    weights = loss_cfg.pop("weights", None)
    loss = _dataclass_from(LossConfig, loss_cfg, "loss")
    if weights is not None:
        known = set(LossConfig().weights)
        if not isinstance(weights, Mapping):
            raise ConfigError("loss.weights", weights, f"must be a mapping loss term → weight ({', '.join(sorted(known))})")
        for name, value in weights.items():
            if name not in known:
                raise ConfigError(f"loss.weights.{name}", value, f"unknown loss term; known: {', '.join(sorted(known))}")
            if (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)
                    or not 0 <= value <= MAX_LOSS_WEIGHT):
                raise ConfigError(f"loss.weights.{name}", value, f"must be a number in [0, {MAX_LOSS_WEIGHT:g}]")
        loss.weights = {**LossConfig().weights, **weights}
    order = loss.crossover_order
    if isinstance(order, bool) or not isinstance(order, int) or not 2 <= order <= MAX_CROSSOVER_ORDER or order % 2:
        raise ConfigError("loss.crossover_order", order,
                          f"must be an even integer in [2, {MAX_CROSSOVER_ORDER}] (Linkwitz–Riley order)")
    if not isinstance(loss.room_ears, str) or loss.room_ears not in ("direct", "full"):
        raise ConfigError("loss.room_ears", loss.room_ears, "must be direct or full")
    _check_numbers(loss, "loss", LOSS_RANGES)
    for key in ("ctc_band_hz", "beam_band_hz"):
        lo, hi = getattr(loss, key)
        if not 0 <= lo < hi <= sample_rate / 2:
            raise ConfigError(f"loss.{key}", [lo, hi], f"must satisfy 0 <= low < high <= fs/2 = {sample_rate / 2:g}")
    n_fft = int((cfg.get("scene") or {}).get("n_fft", 1024))
    if n_fft < shape.n_taps:
        raise ConfigError("scene.n_fft", n_fft, f"must be >= system.n_taps = {shape.n_taps} so the optimiser's grid resolves the filters")
    optim = _dataclass_from(OptimConfig, cfg.get("optim"), "optim")
    optim.validate()
    return shape, design, loss, optim


def upmix_config(cfg: Mapping, sample_rate: float) -> dict:
    """The LRC upmix parameters (``upmix`` group), validated now, before any work: the complete
    set (defaults filled in) that the filter set stores for its renderers."""
    from spatialopt.dsp.upmix import Upmixer

    params = cfg.get("upmix") or {}
    if not isinstance(params, Mapping):
        raise ConfigError("upmix", params, "must be a mapping of upmix parameters")
    for name, top in UPMIX_MAX.items():  # the library takes any positive value; a config this large is a typo
        value = params.get(name)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > top:
            raise ConfigError(f"upmix.{name}", value, f"must be at most {top:g}")
    try:
        return dict(Upmixer(sample_rate, **{str(k): v for k, v in params.items()}).params)
    except ConfigError as exc:  # the library names its keyword argument; the config key is upmix.<name>
        raise ConfigError(f"upmix.{exc.key}", exc.value, exc.allowed) from None


def evaluation_config(cfg: Mapping) -> dict:
    """The scene config of the honest evaluation: the evaluation zone, a denser FFT grid."""
    ev = dict(cfg.get("evaluation") or {})
    factor = ev.get("n_fft_factor", 4)
    if isinstance(factor, bool) or not isinstance(factor, int) or factor < 4:
        raise ConfigError("evaluation.n_fft_factor", factor, "must be an integer >= 4 (metrics on a grid at least 4x denser)")
    out = copy.deepcopy(dict(cfg))
    out["scene"] = dict(out.get("scene") or {})
    out["scene"]["n_fft"] = int(out["scene"].get("n_fft", 1024)) * factor
    if ev.get("zone") is not None:
        out["zone"] = ev["zone"]
    return out


def free_field_config(cfg: Mapping) -> dict:
    """The same config in free field: its scene's ``H`` is the direct-path part (for DRR)."""
    out = copy.deepcopy(dict(cfg))
    out["room"] = {"type": "free"}
    return out


def evaluate_filterset(fir: torch.Tensor, ctc: torch.Tensor, eval_scene, direct_H=None) -> dict:
    """Metrics of one FIR filter set on an evaluation scene (see :mod:`spatialopt.objectives.metrics`)."""
    return evaluate_filters(fir, ctc, eval_scene, eval_scene.sample_rate, direct_H)


def _log_metrics(run_dir: Path, metrics: dict, step: int) -> None:
    """Every numeric evaluation metric of every design as a TensorBoard scalar (``metrics/<design>/...``)."""
    from torch.utils.tensorboard import SummaryWriter

    from spatialopt.monitor import flatten_metrics

    writer = SummaryWriter(str(run_dir / "tb"))
    try:
        for name, value in flatten_metrics("metrics", metrics):
            writer.add_scalar(name, value, step)
    finally:
        writer.close()


def _git_commit() -> str | None:
    """``git rev-parse HEAD`` of the source tree this package runs from (+ ``-dirty`` with
    uncommitted changes to tracked files); None when it is not a git checkout (an installed wheel)."""
    root = Path(__file__).resolve().parents[1]
    try:
        def git(*args):
            return subprocess.run(["git", *args], capture_output=True, text=True, timeout=5, cwd=root)

        top = git("rev-parse", "--show-toplevel")
        if top.returncode or Path(top.stdout.strip()).resolve() != root:
            return None
        head = git("rev-parse", "HEAD").stdout.strip()
        if not head:
            return None
        dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
        return head + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


FIGURE_CAPTIONS = {
    "beam_heatmap": "Centre beam, exported taps: level over frequency × azimuth (dB re on-axis)",
    "polar": "Centre beam, exported taps: polar patterns",
    "zone_separation": "CTC separation over the design zone, exported taps",
    "ear_vs_target": "Ear responses at the nominal point vs the real ±30° pair",
    "filters": "Exported filters: impulse and magnitude responses per driver",
    "scene_ear_responses": "Scene: each driver at the listener's ears (nominal point)",
    "scene_directivity": "Scene: driver directivity on the far-field ring",
    "scene_reference_cues": "Scene: the ±30° reference pair's ILD and ITD",
    "scene_layout": "Scene: drivers, zone and listener",
}
"""Report captions of the run's figures (file stem → caption)."""


def _run_figures(run_dir: Path) -> list[Path]:
    """The run's own PNG figures (``scene_*.png``, ``figures/*.png``), relative to it, sorted; the
    preset analyses link theirs in their own report section."""
    return sorted(p.relative_to(run_dir) for pattern in ("scene_*.png", "figures/*.png") for p in run_dir.glob(pattern))


def _run_overrides(run_dir: Path) -> list[str] | None:
    """The Hydra overrides of the run (``.hydra/overrides.yaml``), None outside Hydra."""
    path = run_dir / ".hydra" / "overrides.yaml"
    try:
        from omegaconf import OmegaConf

        values = OmegaConf.to_container(OmegaConf.load(path)) if path.is_file() else None
    except Exception:  # noqa: BLE001 - the report never fails on a foreign file
        return None
    return [str(v) for v in values] if isinstance(values, list) else None


def run_experiment(cfg: Mapping, run_dir: Path, progress: bool = True, log=print) -> dict:
    """Run one experiment in ``run_dir``; returns the metrics dict also written to ``metrics.json``.

    Files written: ``filterset/`` (DESIGN.md §6), ``metrics.json``, ``report.md``,
    ``checkpoints/last.pt``, ``tb/`` (TensorBoard), figures.
    """
    from spatialopt.analysis import run_analyses
    from spatialopt.filterset import FilterSet

    start = time.perf_counter()
    # Every group and key, before any work (no directory, scene or filter yet): one ConfigError naming the key.
    checked = validate_config(cfg)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    fs = checked["fs"]
    device = checked["device"]
    dtype = torch.float32 if checked["dtype"] == "float32" else torch.float64
    shape, design, loss_cfg, optim_cfg = checked["shape"], checked["design"], checked["loss"], checked["optim"]
    upmix_params = checked["upmix"]
    eval_cfg = checked["eval_cfg"]

    log(f"building the scene ({(cfg.get('device') or {}).get('name', 'device')}) ...")
    scene = scene_from_config(cfg)
    summary = scene.summary()
    atomic_write_text(run_dir / "summary.txt", summary + "\n")
    log(summary)
    if cfg.get("plots", True):
        from spatialopt.plots import save_scene_plots

        save_scene_plots(scene, run_dir)
    n_fft = int((cfg.get("scene") or {}).get("n_fft", 1024))
    has_room = (cfg.get("room") or {}).get("type", "free") != "free"
    free_scene = scene_from_config(free_field_config(cfg)) if has_room else None
    h_direct = None if free_scene is None else free_scene.H
    # With loss.room_ears=direct the ear terms see the direct sound: the closed-form start (and the
    # baselines, and the virtualizer's fit to the real pair) are designed on it too.
    design_scene = free_scene if free_scene is not None and loss_cfg.room_ears == "direct" else scene
    system, info = initialize_system(design_scene, shape, design, n_fft)
    _apply_symmetry(system, scene, design.symmetry, log)
    baseline_firs = {name: baseline_composite(info["baselines"], system, ctc, beam) for name, (ctc, beam) in BASELINES.items()}
    system = system.to(device=device, dtype=dtype)
    crossover = crossover_spec(scene.driver_bands, loss_cfg.crossover_order, loss_cfg.crossover_floor_db, shape.n_taps, fs)
    loss = SystemLoss(loss_cfg, SceneTensors(scene, device, dtype, h_direct, None if free_scene is None else free_scene.H_ref),
                      crossover, info["ctc_delay"], fs,
                      beam_delay=info["ctc_delay"])
    from spatialopt.monitor import RunMonitor  # TensorBoard eval metrics, figures, audio, hparams

    monitor = RunMonitor(run_dir / "tb", scene, system, cfg, upmix_params, info["ctc_delay"], evaluate=optim_cfg.eval_every > 0,
                         images=optim_cfg.image_every > 0, audio_seconds=optim_cfg.audio_seconds, h_direct=h_direct,
                         beam_band_hz=loss_cfg.beam_band_hz, ctc_band_hz=loss_cfg.ctc_band_hz)
    trainer = Trainer(system, loss, optim_cfg, run_dir, seed=int(cfg.get("seed", 0)), progress=progress, monitor=monitor)
    if cfg.get("resume"):
        if trainer.load_checkpoint():
            log(f"resumed from {trainer.checkpoint_path} at step {trainer.step}")
        else:
            log(f"resume=true but no checkpoint at {trainer.checkpoint_path}: starting from the closed-form initialisation")
    for key, value in (("config", json.dumps(cfg, indent=1, default=str)),):
        trainer.writer.add_text(key, f"```\n{value}\n```", 0)

    interrupted = False
    try:
        monitor.start(trainer.step)
        trainer.run()
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: exporting the best filter set so far")
    finally:
        trainer.close()
    if trainer.best[1] is not None:
        system.load_state_dict(trainer.best[1])

    with torch.no_grad():
        stages = {k: v.detach().to("cpu", torch.float32) for k, v in system.stages().items()}
        fir = system.composite().detach().to("cpu", torch.float32)

    log("evaluating on the held-out zone and the dense grid ...")
    eval_scene = scene_from_config(eval_cfg)
    direct = scene_from_config(free_field_config(eval_cfg)).H if has_room else None
    metrics = {"ours": evaluate_filterset(fir, stages["ctc"], eval_scene, direct)}
    for name, (ctc_name, _) in BASELINES.items():
        metrics[name] = evaluate_filterset(baseline_firs[name].to(torch.float32), info["baselines"][ctc_name]["ctc"].to(torch.float32), eval_scene, direct)
    _log_metrics(run_dir, metrics, trainer.step)
    metrics["runtime_s"] = time.perf_counter() - start
    metrics["steps"] = trainer.step
    metrics["interrupted"] = interrupted
    metrics["rejected_steps"] = trainer.rejected_steps
    metrics["stopped_early"] = trainer.stopped_reason

    filterset = FilterSet(
        fir=fir, sample_rate=fs, driver_names=scene.driver_names, latency_samples=info["ctc_delay"],
        stages=stages, delays={"lr_delay": system.lr_delay, "c_delay": system.c_delay},
        driver_positions=scene.driver_positions.to(torch.float32), upmix=upmix_params,
        config=dict(cfg), metrics=metrics,
    )
    export_dir = run_dir / str((cfg.get("export") or {}).get("dir", "filterset"))
    filterset.save(export_dir)
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))
    try:
        # The design figures of the exported state (report.md's figures/*.png) are drawn with the monitor's last images.
        monitor.finish(trainer.step, fir, stages["ctc"], stages, filterset.delays, metrics,
                       figures_dir=run_dir / "figures" if cfg.get("plots", True) else None)
        log(f"TensorBoard evaluation metrics, figures, audio and hparams took {monitor.elapsed_s:.1f} s")
    finally:  # the report, with whatever figures exist, even if the monitoring failed
        atomic_write_text(run_dir / "report.md", render_report(metrics, cfg, info, run_dir, export_dir))
    # Preset analyses (spatialopt/analysis.py): figures and analysis.json in the run directory, appended to report.md.
    analysis_md = run_analyses(cfg, run_dir, scene=scene, eval_scene=eval_scene, filterset=filterset, system=system, info=info,
                               baseline_firs=baseline_firs, metrics=metrics, log=log)
    if analysis_md:
        atomic_write_text(run_dir / "report.md", (run_dir / "report.md").read_text(encoding="utf-8") + analysis_md)
    return metrics


def _fmt(value, digits: int = 1) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


REPORT_ROWS = [
    ("CTC separation 1.5–8 kHz, sweet spot (dB)", ("ctc", "separation_db", "sweet_mean"), "≥ 18"),
    ("CTC separation 1.5–8 kHz, zone mean (dB)", ("ctc", "separation_db", "zone_mean"), ""),
    ("CTC separation 1.5–8 kHz, zone p10 (dB)", ("ctc", "separation_db", "zone_p10"), "≥ 8"),
    ("CTC separation 0.5–1.5 kHz, sweet spot (dB)", ("ctc", "low_band", "separation_db", "sweet_mean"), "≥ 6"),
    ("ILD error, rms 0.5–8 kHz (dB)", ("virtual", "ild_err_db_rms"), "≤ 2"),
    ("ITD error, rms 150–1500 Hz (µs)", ("virtual", "itd_err_us_rms"), "≤ 60"),
    ("  … of which 150–300 Hz (µs)", ("virtual", "itd_err_us_rms_bands", "150-300"), ""),
    ("  … of which 300–1500 Hz (µs)", ("virtual", "itd_err_us_rms_bands", "300-1500"), ""),
    ("beam null depth ±90°, 0.8–4 kHz (dB)", ("beam", "null_depth_db"), "≤ −20"),
    ("beam main-lobe deviation ±45° (dB)", ("beam", "mainlobe_dev_db"), "≤ 6"),
    ("beam directivity index (dB)", ("beam", "di_db"), ""),
    ("tonal deviation, rms (dB)", ("tonal", "dev_db_rms"), "≤ 2"),
    ("beam white-noise gain, min (dB)", ("effort", "wng_db_min"), "≥ −10"),
    ("largest per-driver gain (dB)", ("effort", "max_gain_db"), ""),
    ("out-of-band level, ≥ ⅓ oct outside (dB re in-band)", ("effort", "out_of_band_db"), ""),
    ("excess over an LR8 crossover, worst bin (dB)", ("effort", "crossover_excess_db"), "≤ 0"),
    ("path skew C vs L/R (ms)", ("align", "path_skew_ms"), "≤ 0.1"),
    ("direct-to-reverberant ratio, C (dB)", ("room", "drr_db"), ""),
    ("CTC separation 1.5–8 kHz, direct + 5 ms, sweet spot (dB)", ("room", "early", "separation_db", "sweet_mean"), ""),
    ("CTC separation 1.5–8 kHz, direct + 5 ms, zone p10 (dB)", ("room", "early", "separation_db", "zone_p10"), ""),
]


def _get(metrics: dict, path: tuple):
    for key in path:
        if metrics is None:
            return None
        metrics = metrics.get(key)
    return metrics


def render_report(metrics: dict, cfg: Mapping, info: dict, run_dir: Path, export_dir: Path) -> str:
    """Markdown report: metrics table (ours vs baselines), virtualizer fit, config, versions."""
    names = ["ours", *BASELINES]
    lines = [
        "# spatialopt run report",
        "",
        f"Device `{(cfg.get('device') or {}).get('name', '?')}`, listener `{(cfg.get('listener') or {}).get('type', '?')}` "
        f"at {(cfg.get('listener') or {}).get('distance', '?')} m, room `{(cfg.get('room') or {}).get('type', 'free')}`; "
        f"{metrics.get('steps')} optimisation steps in {metrics.get('runtime_s', 0):.0f} s.",
        "",
        "Metrics come from the exported FIR taps, on a frequency grid "
        f"{(cfg.get('evaluation') or {}).get('n_fft_factor', 4)}× denser than the optimiser's and on a "
        "held-out zone (only the nominal point is shared with the optimisation zone).",
        "Baselines share the fitted virtualizer: `kirkeby` = point CTC + LS beam, `ls_zone` = zone "
        "least-squares CTC + LS beam (the optimiser's starting point), `delay_and_sum` = zone CTC + delay-and-sum beam.",
        "",
        "| metric | " + " | ".join(names) + " | target |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for label, path, target in REPORT_ROWS:
        cells = [_fmt(_get(metrics.get(n), path), 0 if "itd" in "".join(path) else 1) for n in names]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {target} |")
    fit = info.get("virtualizer_fit", {})
    lines += [
        "",
        f"Virtualizer initial fit to the real pair's relative HRTF: delay {fit.get('delay_s', 0) * 1e6:.0f} µs, "
        f"corner {fit.get('corner_hz', 0):.0f} Hz, gain {fit.get('gain_db', 0):.1f} dB "
        f"(fit error {fit.get('fit_err_db_rms', 0):.2f} dB rms).",
        "",
        f"Filter set: `{export_dir.relative_to(run_dir) if export_dir.is_relative_to(run_dir) else export_dir}`; "
        f"TensorBoard: `tensorboard --logdir {run_dir / 'tb'}`.",
        "",
        f"Versions: spatialopt {_git_commit() or 'unknown'} (git commit), torch {torch.__version__}, "
        f"python {platform.python_version()}.",
        "",
    ]
    figures = _run_figures(run_dir)
    if figures:
        lines += ["## Figures", ""]
        order = list(FIGURE_CAPTIONS)  # the design first, in its own order, then the scene
        for path in sorted(figures, key=lambda p: (order.index(p.stem) if p.stem in order else len(order), p.as_posix())):
            caption = FIGURE_CAPTIONS.get(path.stem, path.stem)
            lines += [f"**{caption}** (`{path.as_posix()}`)", "", f"![{path.stem}]({path.as_posix()})", ""]
    overrides = _run_overrides(run_dir)
    lines += [
        "## Config",
        "",
        "Overrides: " + (" ".join(f"`{o}`" for o in overrides) if overrides else "none") + ".",
        "",
        "```json",
        json.dumps(cfg, indent=1, default=str),
        "```",
        "",
    ]
    return "\n".join(lines)
