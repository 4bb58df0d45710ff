"""Benchmarks: one function per benchmark, each returning a plain, JSON-ready dict.

``spatialopt-bench`` (:mod:`spatialopt.cli.bench`) runs them from the command line; the registry
:data:`BENCHMARKS` maps a subcommand name to its function, its table formatter and its options, so
a new benchmark is one function plus one entry.

Wall-clock times only; nothing here asserts on timings. Each timed case runs ``repeat`` times and
reports the best (minimum) and every individual time.

Benchmarks:

* ``scene`` (:func:`bench_scene`): build the bench scene — the ``smart_speaker_5`` device, the
  ``sphere_head`` listener, the dense evaluation zone (``conf/zone/dense.yaml``, 9 × 7 positions × 7
  yaws = 441 points), the ``living_room`` shoebox up to reflection order 3, 513 frequencies
  (n_fft 1024 at 48 kHz) — with :func:`spatialopt.config.scene_from_config`, the same scene with
  the omnidirectional listener (``omni``), and, as the peer, pyroomacoustics computing the
  matching source–receiver responses: one source per distinct driver acoustic centre (position), two omni
  microphones (the ears at head yaw 0) per distinct zone head position, image sources to the same
  order, RIRs by ``compute_rir`` at the same sample rate and speed of sound.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

import spatialopt

__all__ = ["CONF_DIR", "Benchmark", "BENCHMARKS", "load_conf", "bench_scene_config", "bench_scene",
           "format_scene", "environment"]

CONF_DIR = Path(spatialopt.__file__).resolve().parents[1] / "conf"
"""The repository's Hydra config directory (the YAML files the benchmarks load)."""


def load_conf(group: str, name: str, conf_dir: Path | None = None) -> dict[str, Any]:
    """Load ``conf/<group>/<name>.yaml`` as a plain dict (interpolations resolved)."""
    from omegaconf import OmegaConf

    path = Path(conf_dir or CONF_DIR) / group / f"{name}.yaml"
    if not path.is_file():
        from spatialopt.errors import ConfigError

        choices = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
        raise ConfigError(group, name, f"no {path}; choose one of {', '.join(choices) or '(none found)'}")
    return OmegaConf.to_container(OmegaConf.load(path), resolve=True)


def _group(value: str | Mapping, group: str, conf_dir: Path | None) -> dict[str, Any]:
    return load_conf(group, value, conf_dir) if isinstance(value, str) else dict(value)


def bench_scene_config(
    device: str | Mapping = "smart_speaker_5",
    listener: str | Mapping = "sphere_head",
    zone: str | Mapping = "dense",
    room: str | Mapping = "living_room",
    n_fft: int = 1024,
    fs: float = 48000,
    max_order: int | None = 3,
    conf_dir: Path | None = None,
) -> dict[str, Any]:
    """The top-level config mapping of the bench scene (what :func:`scene_from_config` takes).

    Each of ``device``, ``listener``, ``zone`` and ``room`` is a config name in ``conf/<group>/`` or
    a mapping; ``max_order`` (None: keep the room's) overrides the room's reflection order.
    """
    scene = load_conf("scene", "default", conf_dir)
    scene["n_fft"] = int(n_fft)
    room_cfg = _group(room, "room", conf_dir)
    if max_order is not None:
        room_cfg["max_order"] = int(max_order)
    return {
        "fs": fs,
        "device": _group(device, "device", conf_dir),
        "listener": _group(listener, "listener", conf_dir),
        "zone": _group(zone, "zone", conf_dir),
        "room": room_cfg,
        "scene": scene,
    }


def _timed(func: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Run ``func`` ``repeat`` times; (wall seconds of each run, the last result)."""
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return times, result


def _pra_peer(cfg: Mapping[str, Any], hpf: bool) -> Callable[[], list]:
    """A callable that computes the pyroomacoustics peer of the bench scene (see the module doc)."""
    import numpy as np
    import pyroomacoustics as pra

    from spatialopt.acoustics.room import OCTAVE_CENTRES_HZ
    from spatialopt.config import build_device, build_listener, build_room, build_zone

    fs = float(cfg["fs"])
    c = float(cfg["scene"].get("speed_of_sound", 343.0))
    room = build_room(cfg["room"])
    if room is None:
        raise ValueError("the scene benchmark needs a shoebox room")
    device = build_device(cfg["device"], c, fs / 2)
    listener = build_listener(cfg["listener"])
    zone = build_zone(cfg["zone"], cfg["listener"])

    centres: list[torch.Tensor] = []
    for d in device.drivers:
        if not any(torch.allclose(o, d.position, atol=1e-12) for o in centres):
            centres.append(d.position)
    sources = (torch.stack(centres) + room.device_position).numpy()  # (S, 3) room frame
    ears = listener.ear_directions(torch.zeros(1, dtype=torch.float64))[0]  # (2, 3), yaw 0
    heads = torch.unique(zone.positions, dim=0)  # (Q, 3) distinct head centres
    mics = (heads[:, None, :] + listener.head_radius * ears[None]).reshape(-1, 3) + room.device_position
    mics = mics.numpy().T  # (3, 2Q)

    alpha = room.absorption
    if alpha.dim() == 0:
        materials = pra.Material(float(alpha))
    else:
        names = ("west", "east", "south", "north", "floor", "ceiling")
        if alpha.dim() == 1:
            materials = pra.make_materials(**{n: float(a) for n, a in zip(names, alpha)})
        else:
            materials = {n: pra.Material({"coeffs": a.tolist(), "center_freqs": list(OCTAVE_CENTRES_HZ)})
                         for n, a in zip(names, alpha)}
    dims = room.dims.tolist()

    def run() -> list:
        old = pra.constants.get("rir_hpf_enable")
        pra.constants.set("rir_hpf_enable", hpf)
        try:
            proom = pra.ShoeBox(dims, fs=int(round(fs)), materials=materials, max_order=room.max_order,
                                air_absorption=False)
            proom.set_sound_speed(c)
            for s in sources:
                proom.add_source(s.tolist())
            proom.add_microphone_array(np.ascontiguousarray(mics))
            proom.compute_rir()  # runs the image-source model first
            return proom.rir
        finally:
            pra.constants.set("rir_hpf_enable", old)

    run.n_sources = sources.shape[0]  # type: ignore[attr-defined]
    run.n_mics = mics.shape[1]  # type: ignore[attr-defined]
    run.version = pra.__version__  # type: ignore[attr-defined]
    run.threads = pra.constants.get("num_threads")  # type: ignore[attr-defined]
    return run


def bench_scene(
    repeat: int = 1,
    *,
    device: str | Mapping = "smart_speaker_5",
    listener: str | Mapping = "sphere_head",
    zone: str | Mapping = "dense",
    room: str | Mapping = "living_room",
    n_fft: int = 1024,
    fs: float = 48000,
    max_order: int | None = 3,
    conf_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Time the scene build against pyroomacoustics (see the module docstring).

    Args:
        repeat: timed runs per case (best reported).
        device, listener, zone, room: config names under ``conf/`` or mappings.
        n_fft: design FFT size (F = n_fft/2 + 1 frequencies). fs: Hz.
        max_order: reflection order (None: the room config's).
        conf_dir: config directory (default :data:`CONF_DIR`).
        progress: called with a line before each timed case (e.g. print to stderr).

    Returns:
        A JSON-ready dict. Seconds: ``ours_s`` (scene with the configured listener), ``ours_omni_s``
        (same geometry, omni listener), ``pra_s`` (pyroomacoustics image sources + ``compute_rir``,
        its RIR high-pass off, i.e. the same work as ours), ``pra_default_s`` (its defaults, with the
        10 Hz RIR high-pass); each best of ``repeat``, with the lists under ``*_times_s``.
        ``ratio`` = ours_s / pra_s and ``ratio_omni`` = ours_omni_s / pra_s (how many times longer
        ours takes; None without pyroomacoustics). ``setup`` describes the scene and the peer.
    """
    from spatialopt.config import scene_from_config

    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    say = progress or (lambda line: None)
    cfg = bench_scene_config(device, listener, zone, room, n_fft, fs, max_order, conf_dir)
    omni_cfg = dict(cfg, listener=dict(cfg["listener"], type="omni"))

    say(f"scene: spatialopt, listener {cfg['listener'].get('type', 'sphere_head')} ({repeat}×)")
    ours_times, scene = _timed(lambda: scene_from_config(cfg), repeat)
    say(f"scene: spatialopt, listener omni ({repeat}×)")
    omni_times, _ = _timed(lambda: scene_from_config(omni_cfg), repeat)

    n_f, n_p, _, n_d = scene.H.shape
    n_y = int(torch.unique(scene.points[:, 3]).numel())
    setup: dict[str, Any] = {
        "device": cfg["device"].get("name", device if isinstance(device, str) else "device"),
        "drivers": n_d,
        "listener": cfg["listener"].get("type", "sphere_head"),
        "zone": zone if isinstance(zone, str) else "custom",
        "zone_points": n_p,
        "zone_positions": n_p // n_y,
        "zone_yaws": n_y,
        "room_dims_m": [float(v) for v in cfg["room"]["dims"]],
        "max_order": int(cfg["room"].get("max_order", 3)),
        "n_fft": int(n_fft),
        "frequencies": n_f,
        "fs": float(fs),
        "ear_responses": n_f * n_p * 2 * n_d,
        "torch_threads": torch.get_num_threads(),
    }

    result: dict[str, Any] = {
        "benchmark": "scene",
        "repeat": repeat,
        "setup": setup,
        "ours_s": min(ours_times),
        "ours_times_s": ours_times,
        "ours_omni_s": min(omni_times),
        "ours_omni_times_s": omni_times,
        "pra_s": None,
        "pra_times_s": [],
        "pra_default_s": None,
        "pra_default_times_s": [],
        "ratio": None,
        "ratio_omni": None,
    }
    try:
        peer = _pra_peer(cfg, hpf=False)
        peer_default = _pra_peer(cfg, hpf=True)
    except ImportError as exc:
        result["pra_error"] = f"pyroomacoustics not available ({exc}); install spatialopt[dev]"
        return result

    say(f"scene: pyroomacoustics, {peer.n_sources} source(s) × {peer.n_mics} mics ({repeat}×)")
    pra_times, rirs = _timed(peer, repeat)
    default_times, _ = _timed(peer_default, repeat)
    setup.update({
        "pra_version": peer.version,
        "pra_threads": peer.threads,
        "pra_sources": peer.n_sources,
        "pra_mics": peer.n_mics,
        "pra_rir_samples_max": max(len(r) for row in rirs for r in row),
    })
    result.update({
        "pra_s": min(pra_times),
        "pra_times_s": pra_times,
        "pra_default_s": min(default_times),
        "pra_default_times_s": default_times,
        "ratio": min(ours_times) / min(pra_times),
        "ratio_omni": min(omni_times) / min(pra_times),
    })
    return result


def format_scene(result: Mapping[str, Any]) -> str:
    """The scene benchmark as a small text table."""
    s = result["setup"]
    lines = [
        f"scene benchmark: {s['device']} ({s['drivers']} drivers), zone {s['zone']} "
        f"({s['zone_positions']} positions × {s['zone_yaws']} yaws = {s['zone_points']} points), "
        f"shoebox {'×'.join(f'{v:g}' for v in s['room_dims_m'])} m to order {s['max_order']}, "
        f"{s['frequencies']} frequencies (n_fft {s['n_fft']}, fs {s['fs']:g} Hz), "
        f"torch threads {s['torch_threads']}",
        "",
        f"{'case':<58} {'wall s':>10} {'× pra':>9}",
    ]

    def row(name: str, seconds: float | None, ratio: float | None) -> str:
        sec = "n/a" if seconds is None else f"{seconds:.3f}"
        rat = "" if ratio is None else f"{ratio:.1f}"
        return f"{name:<58} {sec:>10} {rat:>9}"

    pra_s = result.get("pra_s")
    lines.append(row(f"spatialopt scene, {s['listener']} listener", result["ours_s"], result.get("ratio")))
    lines.append(row("spatialopt scene, omni listener (apples to apples)", result["ours_omni_s"],
                     result.get("ratio_omni")))
    if pra_s is None:
        lines.append(row("pyroomacoustics", None, None))
        lines.append(f"  {result.get('pra_error', 'not run')}")
    else:
        peer = f"pyroomacoustics {s['pra_version']}: {s['pra_sources']} src × {s['pra_mics']} mics"
        lines.append(row(peer + ", ISM + compute_rir", pra_s, 1.0))
        lines.append(row("  same, with its default 10 Hz RIR high-pass", result["pra_default_s"],
                         result["pra_default_s"] / pra_s))
    lines.append("")
    lines.append(f"best of {result['repeat']}; '× pra' = wall time / pyroomacoustics' (HPF off). Ours builds the "
                 f"whole scene: {s['ear_responses']:,} complex ear responses (every zone point and yaw, "
                 f"every driver, both ears), the ±30° reference pair and the far-field patterns; "
                 f"pyroomacoustics computes omni RIRs at head yaw 0 only.")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Machine and library versions, recorded next to benchmark results."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "spatialopt": getattr(spatialopt, "__version__", None),
    }


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: ``run(repeat=..., **options) -> dict`` and ``format(dict) -> str``.

    ``options`` maps a command-line option name (without ``--``) to ``(keyword, type, default,
    help)``; the CLI turns each into an argparse option and passes it to ``run``.
    """

    run: Callable[..., dict[str, Any]]
    format: Callable[[Mapping[str, Any]], str]
    help: str
    options: dict[str, tuple[str, type, Any, str]] = field(default_factory=dict)


from spatialopt.bench.upmix import bench_upmix, format_upmix  # noqa: E402  (after Benchmark: no cycle)
from spatialopt.bench.render import bench_render, format_render  # noqa: E402  (after Benchmark: no cycle)

BENCHMARKS: dict[str, Benchmark] = {
    "scene": Benchmark(
        run=bench_scene,
        format=format_scene,
        help="build the bench scene (smart_speaker_5, sphere_head, dense zone, living_room to order 3, "
             "513 frequencies) vs pyroomacoustics RIRs",
        options={
            "zone": ("zone", str, "dense", "zone config name under conf/zone/"),
            "n-fft": ("n_fft", int, 1024, "design FFT size (n_fft/2 + 1 frequencies)"),
            "max-order": ("max_order", int, 3, "image-source reflection order"),
        },
    ),
    "upmix": Benchmark(
        run=bench_upmix,
        format=format_upmix,
        help="LRC upmix centre extraction (SDR, SIR, hard-panned leakage, speed) on synthetic 48 kHz mixes "
             "vs the passive mid (L+R)/2 and ffmpeg surround",
        options={
            "seconds": ("seconds", float, 10.0, "length of each synthetic mix in seconds"),
            "seed": ("seed", int, 0, "base random seed of the mixes"),
            "threads": ("threads", int, 0, "torch threads while it runs (0: torch's default)"),
        },
    ),
    "render": Benchmark(
        run=bench_render,
        format=format_render,
        help="batched streaming renderer (3 inputs → 5 drivers, 1024 taps, 48 kHz) vs scipy oaconvolve, "
             "ffmpeg afir and torchaudio fftconvolve: real-time factors per batch and block size",
        options={
            "seconds": ("seconds", float, 10.0, "audio per stream, seconds"),
            "batches": ("batches", str, "1,8,64", "batch sizes, comma-separated"),
            "blocks": ("blocks", str, "64,256,1024", "block sizes, comma-separated"),
            "taps": ("n_taps", int, 1024, "taps per filter"),
            "max-batch-audio": ("max_batch_audio", float, 160.0,
                                "at most this many stream-seconds per case (shorter streams for big batches)"),
            "device": ("device", str, "cpu", "our renderer's device: cpu, cuda or auto"),
            "threads": ("threads", int, 1, "torch threads and ffmpeg filter threads (0: library defaults)"),
        },
    ),
}
"""Every benchmark ``spatialopt-bench`` offers, by subcommand name."""
