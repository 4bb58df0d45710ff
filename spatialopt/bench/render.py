"""``render`` benchmark: throughput of the batched streaming renderer against peer convolution engines.

Workload — the default filter-matrix shape: 3 inputs (L, R, C) → 5 drivers, 1024 taps at 48 kHz,
random taps from a fixed seed (scaled 1/√T), white-noise input from a fixed seed, upmix off. Every
case computes the same thing per stream: ``y_d[n] = Σ_c (h[c, d] ∗ x_c)[n]`` for the first S
samples, i.e. 15 FIR convolutions summed into 5 driver feeds.

Cases (each timed ``repeat`` times, best reported):

* ``ours stream``: :class:`spatialopt.render.Renderer` fed block by block — one ``.process``
  call per ``block`` samples, the realistic streaming use — for every batch × block size.
* ``ours offline``: :func:`spatialopt.render.render_offline` on whole signals (one call, default
  block size: the next power of two >= T).
* ``scipy oaconvolve``: per stream, 15 ``scipy.signal.oaconvolve`` calls on the whole signal
  (float32, its own block size choice), summed over the input channels.
* ``ffmpeg afir``: one ``ffmpeg`` process per stream (batch 1), timed as the wall clock of the
  subprocess (process start, WAV decode and filtering; ``ffmpeg_startup_s`` in the result is the
  wall clock of the same command on one block of input). Filtergraph: the 3-channel float WAV is
  split three ways; input channel c is copied to 5 channels (``pan``) and convolved by one
  ``afir`` with the 5-channel IR WAV of channel c (channel d = h[c, d], the layout of the
  filter-set WAV export), and the three 5-channel results are summed (``amix=normalize=0``):
  exactly the 3 → 5 matrix, 15 convolutions. ``afir`` options: ``minp=maxp=block`` (uniform
  partitions of the block size; ffmpeg requires maxp >= 8, smaller blocks are skipped),
  ``gtype=none:irgain=0.5`` (ffmpeg 5.1 doubles the gain with ``gtype=none``; 0.5 compensates —
  checked numerically, see below). Output ``-c:a pcm_f32le -f null -``.
* ``torchaudio fftconvolve``: ``torchaudio.functional.fftconvolve`` of the whole signal
  (x (3, 1, S) with h (3, D, T), summed over inputs) per stream — one huge FFT of S + T − 1
  points, which is slow (see REFERENCES.md); batch 1 only by default.

Every peer's output (batch item 0) is compared with ours (``agreement``: max abs difference /
max abs of ours), which shows that each case times the same work; ffmpeg's output for this check
comes from one extra, untimed run that writes a float WAV (read back with soundfile).

Signal length: ``seconds`` per stream, capped so that one case renders at most ``max_batch_audio``
stream-seconds (large batches get shorter streams; the real-time factors are per audio second and
stay comparable), and rounded to a whole number of the largest block (ffmpeg 5.1's ``afir``
mis-renders a final partial partition at the end of the stream).

Units (per row): ``audio_s`` seconds of audio per stream; ``wall_s`` the wall clock of the case;
``rtf`` ("× real time", aggregate) = batch · audio_s / wall_s, seconds of audio rendered per
second, i.e. how many streams could run in real time at once; ``rtf_per_stream`` = audio_s /
wall_s, how much faster than real time each of the batch's streams advances; ``streams_per_s`` =
batch / wall_s, streams of this length completed per second; ``vs_scipy`` = rtf / rtf of scipy
(scipy's best rtf over the batch sizes it ran).

Targets derived (issue): (a) ours streaming at batch 64, block 1024 vs scipy ``oaconvolve``:
throughput ratio, target >= 3; (b) ours streaming at block 256 (batch 1, one stream as ffmpeg
renders it) vs ffmpeg ``afir`` at block 256: ratio of real-time factors, target > 1.

This module does not import :mod:`spatialopt.bench` at import time (that package imports this
one); the helpers are imported inside the functions.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["bench_render", "format_render", "render_workload", "ffmpeg_afir_graph", "peer_outputs"]

FS = 48000
N_INPUTS = 3


def _ints(value: str | Sequence[int], name: str) -> list[int]:
    """"1,8,64" or a sequence → a list of positive ints."""
    from spatialopt.errors import ConfigError

    items = value.replace(" ", "").split(",") if isinstance(value, str) else list(value)
    try:
        out = [int(v) for v in items if v != ""]
    except (TypeError, ValueError):
        out = []
    if not out or any(v < 1 for v in out):
        raise ConfigError(name, value, "must be comma-separated positive integers, e.g. 1,8,64")
    return out


def render_workload(n_taps: int = 1024, n_drivers: int = 5, seed: int = 0):
    """The benchmark's filter set: fixed-seed random taps (3, D, T) / √T at 48 kHz, no upmix
    parameters, built by :meth:`FilterSet.from_stages` (stages placeholder) with ``fir`` replaced."""
    from spatialopt.filterset import FilterSet

    g = torch.Generator().manual_seed(seed)
    fir = torch.randn(N_INPUTS, n_drivers, n_taps, generator=g) / math.sqrt(n_taps)
    fs = FilterSet.from_stages(ctc=torch.zeros(2, n_drivers, 1), virtualizer=torch.zeros(2, 1),
                               beam=torch.zeros(n_drivers, 1), lr_delay=0, c_delay=0, n_taps=n_taps,
                               sample_rate=FS, driver_names=[f"driver{i}" for i in range(n_drivers)],
                               latency_samples=0)
    fs.fir = fir.contiguous()  # random composite: the renderer applies only ``fir``
    return fs


def _signal(batch: int, samples: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (0.1 * rng.standard_normal((batch, N_INPUTS, samples))).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Peers
# --------------------------------------------------------------------------------------------


def _scipy_peer(h: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    from scipy.signal import oaconvolve

    def run(x: np.ndarray) -> np.ndarray:  # x (B, 3, S) → (B, D, S)
        b, c_in, s = x.shape
        out = np.empty((b, h.shape[1], s), dtype=np.float32)
        for i in range(b):
            for d in range(h.shape[1]):
                out[i, d] = sum(oaconvolve(x[i, c], h[c, d])[:s] for c in range(c_in))
        return out

    return run


def _torchaudio_peer(h: torch.Tensor) -> Callable[[np.ndarray], np.ndarray]:
    from torchaudio.functional import fftconvolve

    def run(x: np.ndarray) -> np.ndarray:
        b, _, s = x.shape
        xt = torch.from_numpy(x)
        return np.stack([fftconvolve(xt[i][:, None, :], h).sum(0)[:, :s].numpy() for i in range(b)])

    return run


def ffmpeg_afir_graph(n_drivers: int, block: int) -> str:
    """The ``-filter_complex`` graph: input 0 is the 3-channel signal, inputs 1..3 the D-channel
    IR WAVs of L, R, C; output label ``[out]`` has D channels (see the module docstring)."""
    afir = f"afir=gtype=none:irgain=0.5:minp={block}:maxp={block}"
    parts = [f"[0:a]asplit={N_INPUTS}" + "".join(f"[a{c}]" for c in range(N_INPUTS))]
    for c in range(N_INPUTS):
        pan = "|".join(f"c{d}=c{c}" for d in range(n_drivers))
        parts.append(f"[a{c}]pan={n_drivers}c|{pan}[p{c}]")
        parts.append(f"[p{c}][{c + 1}:a]{afir}[y{c}]")
    parts.append("".join(f"[y{c}]" for c in range(N_INPUTS)) + f"amix=inputs={N_INPUTS}:normalize=0[out]")
    return ";".join(parts)


class _FFmpegPeer:
    """Writes the WAVs once; ``run(block, out)`` runs ffmpeg (to ``out`` or to the null muxer)."""

    def __init__(self, ffmpeg: str, h: np.ndarray, x: np.ndarray, threads: int, workdir: Path):
        import soundfile as sf

        self.ffmpeg, self.threads, self.dir = ffmpeg, threads, workdir
        self.n_drivers = h.shape[1]
        sf.write(workdir / "in.wav", x.T, FS, subtype="FLOAT")
        sf.write(workdir / "short.wav", x[:, :1024].T, FS, subtype="FLOAT")
        self.irs = []
        for c in range(N_INPUTS):
            path = workdir / f"ir_{c}.wav"
            sf.write(path, h[c].T, FS, subtype="FLOAT")  # (T, D): one channel per driver
            self.irs.append(path)
        version = subprocess.run([ffmpeg, "-hide_banner", "-version"], capture_output=True, text=True, timeout=30)
        self.version = (version.stdout.splitlines() or ["ffmpeg"])[0]

    def command(self, block: int, out: Path | None, short: bool = False) -> list[str]:
        cmd = [self.ffmpeg, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
        if self.threads > 0:
            cmd += ["-filter_complex_threads", str(self.threads)]
        cmd += ["-i", str(self.dir / ("short.wav" if short else "in.wav"))]
        for path in self.irs:
            cmd += ["-i", str(path)]
        cmd += ["-filter_complex", ffmpeg_afir_graph(self.n_drivers, block), "-map", "[out]", "-c:a", "pcm_f32le"]
        cmd += [str(out)] if out is not None else ["-f", "null", "-"]
        return cmd

    def run(self, block: int, out: Path | None = None, short: bool = False) -> None:
        proc = subprocess.run(self.command(block, out, short), capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg failed ({proc.returncode}): {' '.join(proc.stderr.split())[:300]}")

    def output(self, block: int) -> np.ndarray:
        import soundfile as sf

        path = self.dir / f"out_{block}.wav"
        self.run(block, path)
        y, _ = sf.read(path, dtype="float32", always_2d=True)
        return y.T  # (D, S)


def _agreement(y: np.ndarray, ours: np.ndarray) -> float:
    """max |y − ours| / max |ours| over the common length (inf when the lengths differ)."""
    if y.shape != ours.shape:
        return math.inf
    return float(np.abs(y.astype(np.float64) - ours).max() / max(np.abs(ours).max(), 1e-30))


def peer_outputs(seconds: float = 0.2, n_taps: int = 1024, n_drivers: int = 5, block: int = 256,
                 ffmpeg: str = "ffmpeg", threads: int = 1) -> dict[str, Any]:
    """Outputs of ours and of every available peer on one short stream (for tests and checks).

    Returns:
        ``{"ours": (D, S), "ours_stream": (D, S), "scipy": …, "torchaudio": …, "ffmpeg": …}``
        float arrays (a peer that is not installed is absent), plus ``"errors"``: why a peer is
        missing.
    """
    from spatialopt.render import Renderer, render_offline

    fs = render_workload(n_taps, n_drivers)
    s = max(block, int(round(seconds * FS / block)) * block)
    x = _signal(1, s)
    h = fs.fir.numpy()
    out: dict[str, Any] = {"errors": {}}
    out["ours"] = render_offline(fs, x, upmix=False, device="cpu")[0].numpy()
    ren = Renderer(fs, block_size=block, device="cpu", upmix=False)
    out["ours_stream"] = torch.cat([ren.process(x[:, :, i: i + block]) for i in range(0, s, block)], -1)[0].numpy()
    try:
        out["scipy"] = _scipy_peer(h)(x)[0]
    except ImportError as exc:
        out["errors"]["scipy"] = str(exc)
    try:
        out["torchaudio"] = _torchaudio_peer(fs.fir)(x)[0]
    except ImportError as exc:
        out["errors"]["torchaudio"] = str(exc)
    exe = shutil.which(ffmpeg)
    if exe is None:
        out["errors"]["ffmpeg"] = f"{ffmpeg} not found"
    else:
        with tempfile.TemporaryDirectory(prefix="spatialopt-bench-render-") as tmp:
            out["ffmpeg"] = _FFmpegPeer(exe, h, x[0], threads, Path(tmp)).output(block)
    return out


# --------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------


def _row(case: str, batch: int, block: int | None, audio_s: float, times: list[float], **extra) -> dict[str, Any]:
    wall = min(times)
    return {"case": case, "batch": batch, "block": block, "audio_s": audio_s, "wall_s": wall, "times_s": times,
            "rtf": batch * audio_s / wall, "rtf_per_stream": audio_s / wall, "streams_per_s": batch / wall,
            "vs_scipy": None, **extra}


def bench_render(
    repeat: int = 1,
    progress: Callable[[str], None] | None = None,
    *,
    seconds: float = 10.0,
    batches: str | Sequence[int] = "1,8,64",
    blocks: str | Sequence[int] = "64,256,1024",
    n_taps: int = 1024,
    n_drivers: int = 5,
    max_batch_audio: float = 160.0,
    device: str = "cpu",
    threads: int = 1,
    ffmpeg: str = "ffmpeg",
    torchaudio_batches: str | Sequence[int] = "1",
) -> dict[str, Any]:
    """Time the renderer against scipy, ffmpeg and torchaudio (see the module docstring).

    Args:
        repeat: timed runs per case (best reported).
        progress: called with a line before each timed case.
        seconds: audio per stream (s), before the ``max_batch_audio`` cap and block rounding.
        batches, blocks: batch sizes and block sizes ("1,8,64" or sequences).
        n_taps, n_drivers: filter-matrix shape (3 inputs always).
        max_batch_audio: at most this many stream-seconds per case (shorter streams for big batches).
        device: our renderer's device ("cpu", "cuda", "auto"); peers run on the CPU.
        threads: torch intra-op threads for ours and torchaudio, and ffmpeg ``-filter_complex_threads``
            (1 = single core, like scipy; 0 = leave the libraries' defaults). Restored afterwards.
        ffmpeg: the ffmpeg executable. torchaudio_batches: batch sizes timed for torchaudio.

    Returns:
        A JSON-ready dict: ``setup``, ``rows`` (one per case: ``case``, ``batch``, ``block``,
        ``audio_s``, ``wall_s``, ``times_s``, ``rtf``, ``rtf_per_stream``, ``streams_per_s``,
        ``vs_scipy``, and ``agreement`` for peers), ``unavailable`` (peer → reason),
        ``targets`` ((a) and (b) with value, target and ``met``), ``repeat``.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    say = progress or (lambda line: None)
    batch_list, block_list = _ints(batches, "batches"), _ints(blocks, "blocks")
    ta_batches = _ints(torchaudio_batches, "torchaudio_batches")
    old_threads = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(int(threads))
    try:
        return _bench(repeat, say, seconds, batch_list, block_list, n_taps, n_drivers, max_batch_audio, device,
                      threads, ffmpeg, ta_batches)
    finally:
        torch.set_num_threads(old_threads)


def _bench(repeat, say, seconds, batch_list, block_list, n_taps, n_drivers, max_batch_audio, device, threads,
           ffmpeg, ta_batches) -> dict[str, Any]:
    """The body of :func:`bench_render` (torch threads already set)."""
    from spatialopt.bench import _timed  # lazy: spatialopt.bench imports this module
    from spatialopt.render import Renderer, default_offline_block_size, render_offline

    fs = render_workload(n_taps, n_drivers)
    h = fs.fir.numpy()
    unit = math.lcm(*block_list)

    def samples_for(batch: int) -> int:
        per_stream = min(seconds, max_batch_audio / batch)
        return max(unit, int(round(per_stream * FS / unit)) * unit)

    rows: list[dict[str, Any]] = []
    unavailable: dict[str, str] = {}
    ref0: dict[int, np.ndarray] = {}  # our output of batch item 0, by stream length
    ren_device = None

    # --- ours: streaming, block by block, and offline -----------------------------------------
    for b in batch_list:
        s = samples_for(b)
        x_np = _signal(b, s)
        for n in block_list:
            ren = Renderer(fs, block_size=n, device=device, upmix=False)
            ren_device = str(ren.device)
            x = torch.from_numpy(x_np).to(ren.device)
            ren.process(x[:, :, :n])  # warm-up (allocation, FFT plans)

            def stream(ren=ren, x=x, n=n, s=s):
                ren.reset()
                for i in range(0, s, n):
                    ren.process(x[:, :, i: i + n])
                if ren.device.type == "cuda":
                    torch.cuda.synchronize(ren.device)

            say(f"render: ours stream, batch {b}, block {n}, {s / FS:.2f} s/stream ({repeat}×)")
            times, _ = _timed(stream, repeat)
            rows.append(_row("ours stream", b, n, s / FS, times, calls=s // n))
        x = torch.from_numpy(x_np)

        def offline(x=x):
            y = render_offline(fs, x, upmix=False, device=device)
            if y.device.type == "cuda":
                torch.cuda.synchronize(y.device)
            return y

        say(f"render: ours offline, batch {b} ({repeat}×)")
        times, y = _timed(offline, repeat)
        rows.append(_row("ours offline", b, default_offline_block_size(n_taps), s / FS, times))
        ref0.setdefault(s, y[0].double().cpu().numpy())

    def agreement_of(y0: np.ndarray, s: int) -> float:
        if s not in ref0:
            ref0[s] = render_offline(fs, _signal(1, s), upmix=False, device="cpu")[0].double().numpy()
        return _agreement(y0, ref0[s])

    # --- scipy -------------------------------------------------------------------------------
    try:
        import scipy

        scipy_run = _scipy_peer(h)
        for b in batch_list:
            s = samples_for(b)
            x_np = _signal(b, s)
            say(f"render: scipy oaconvolve, batch {b} ({repeat}×)")
            times, y = _timed(lambda x_np=x_np: scipy_run(x_np), repeat)
            rows.append(_row("scipy oaconvolve", b, None, s / FS, times, agreement=agreement_of(y[0], s),
                             version=scipy.__version__))
    except ImportError as exc:
        unavailable["scipy oaconvolve"] = f"scipy not installed ({exc})"

    # --- ffmpeg afir (one stream per process) --------------------------------------------------
    exe = shutil.which(ffmpeg)
    ffmpeg_startup = None
    if exe is None:
        unavailable["ffmpeg afir"] = f"{ffmpeg} not found"
    else:
        s = samples_for(1)
        with tempfile.TemporaryDirectory(prefix="spatialopt-bench-render-") as tmp:
            try:
                peer = _FFmpegPeer(exe, h, _signal(1, s)[0], threads, Path(tmp))
                for n in block_list:
                    if n < 8:
                        unavailable[f"ffmpeg afir block {n}"] = "afir needs maxp >= 8"
                        continue
                    say(f"render: ffmpeg afir, block {n} ({repeat}×)")
                    times, _ = _timed(lambda n=n: peer.run(n), repeat)
                    y = peer.output(n)
                    rows.append(_row("ffmpeg afir", 1, n, s / FS, times, agreement=agreement_of(y, s),
                                     version=peer.version))
                startup, _ = _timed(lambda: peer.run(max(8, block_list[0]), short=True), repeat)
                ffmpeg_startup = min(startup)
            except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
                unavailable["ffmpeg afir"] = " ".join(str(exc).split())[:300]

    # --- torchaudio fftconvolve ----------------------------------------------------------------
    try:
        import torchaudio

        ta_run = _torchaudio_peer(fs.fir)
        for b in ta_batches:
            s = samples_for(b)
            x_np = _signal(b, s)
            say(f"render: torchaudio fftconvolve, batch {b} ({repeat}×)")
            times, y = _timed(lambda x_np=x_np: ta_run(x_np), repeat)
            rows.append(_row("torchaudio fftconvolve", b, None, s / FS, times, agreement=agreement_of(y[0], s),
                             version=torchaudio.__version__))
    except ImportError as exc:
        unavailable["torchaudio fftconvolve"] = f"torchaudio not installed ({exc})"

    # --- ratios and targets ----------------------------------------------------------------------
    scipy_rows = [r for r in rows if r["case"] == "scipy oaconvolve"]
    scipy_rtf = max((r["rtf"] for r in scipy_rows), default=None)
    if scipy_rtf:
        for r in rows:
            r["vs_scipy"] = r["rtf"] / scipy_rtf

    def find(case, batch=None, block=None):
        for r in rows:
            if r["case"] == case and (batch is None or r["batch"] == batch) and (block is None or r["block"] == block):
                return r
        return None

    targets: dict[str, Any] = {}
    a = find("ours stream", 64, 1024)
    targets["a_stream_b64_n1024_vs_scipy"] = {
        "description": "ours streaming, batch 64, block 1024: throughput / scipy oaconvolve's",
        "value": a["vs_scipy"] if a else None, "target": 3.0,
        "met": None if not (a and a["vs_scipy"]) else a["vs_scipy"] >= 3.0,
    }
    ours256, ff256 = find("ours stream", 1, 256), find("ffmpeg afir", 1, 256)
    ratio = ours256["rtf"] / ff256["rtf"] if ours256 and ff256 else None
    targets["b_stream_n256_vs_ffmpeg"] = {
        "description": "ours streaming, batch 1, block 256: real-time factor / ffmpeg afir's at block 256",
        "value": ratio, "target": 1.0, "met": None if ratio is None else ratio > 1.0,
    }
    best256 = max((r for r in rows if r["case"] == "ours stream" and r["block"] == 256), key=lambda r: r["rtf"],
                  default=None)
    if best256 and ff256:
        targets["b_stream_n256_vs_ffmpeg"]["best_batch"] = best256["batch"]
        targets["b_stream_n256_vs_ffmpeg"]["best_batch_value"] = best256["rtf"] / ff256["rtf"]

    setup = {
        "inputs": N_INPUTS, "drivers": n_drivers, "taps": n_taps, "fs": FS, "upmix": False,
        "seconds": seconds, "max_batch_audio_s": max_batch_audio, "samples_multiple_of": unit,
        "batches": batch_list, "blocks": block_list, "device": ren_device or device,
        "threads": threads, "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "ffmpeg_startup_s": ffmpeg_startup, "cpu_count": os.cpu_count(),
    }
    return {"benchmark": "render", "repeat": repeat, "setup": setup, "rows": rows, "unavailable": unavailable,
            "targets": targets}


def format_render(result: Mapping[str, Any]) -> str:
    """The render benchmark as a text table plus the two derived targets."""
    s = result["setup"]
    lines = [
        f"render benchmark: {s['inputs']} inputs → {s['drivers']} drivers, {s['taps']} taps, {s['fs']} Hz, "
        f"upmix off, device {s['device']}, best of {result['repeat']}; threads: torch {s['torch_threads']}, "
        f"ffmpeg filter graph {s['threads'] if s['threads'] > 0 else 'default'}, scipy 1",
        "",
        f"{'case':<24} {'batch':>5} {'block':>6} {'audio s':>8} {'wall s':>8} {'×RT agg':>9} {'×RT/str':>8} "
        f"{'streams/s':>9} {'vs scipy':>8} {'agree':>8}",
    ]

    def num(v, fmt):
        return "" if v is None else format(v, fmt)

    for r in result["rows"]:
        lines.append(
            f"{r['case']:<24} {r['batch']:>5} {num(r['block'], 'd'):>6} {r['audio_s']:>8.2f} {r['wall_s']:>8.3f} "
            f"{r['rtf']:>9.1f} {r['rtf_per_stream']:>8.1f} {r['streams_per_s']:>9.2f} {num(r['vs_scipy'], '.2f'):>8} "
            f"{num(r.get('agreement'), '.1e'):>8}")
    for name, why in result.get("unavailable", {}).items():
        lines.append(f"{name:<24} unavailable: {why}")
    lines.append("")
    for key, t in result["targets"].items():
        if t["value"] is None:
            lines.append(f"target {key}: not measured ({t['description']})")
            continue
        verdict = "met" if t["met"] else "NOT met"
        extra = ""
        if "best_batch" in t:
            extra = f"; at batch {t['best_batch']}: {t['best_batch_value']:.2f}×"
        op = ">=" if key.startswith("a_") else ">"
        lines.append(f"target {key}: {t['value']:.2f}× (target {op} {t['target']:g}×, {verdict}) — {t['description']}{extra}")
    lines += [
        "",
        "×RT agg = batch · audio s / wall s (seconds of audio rendered per second = streams that could run in real "
        "time); ×RT/str = audio s / wall s (each stream of the batch); streams/s = batch / wall s; vs scipy = ×RT agg "
        "/ scipy's best ×RT agg; agree = max |peer − ours| / max |ours| on batch item 0 (same work).",
        "ours stream: one .process call per block (each call's output discarded); ours offline: one call, "
        "block = next power of two >= taps, including the allocation of the whole output. "
        "ffmpeg: wall clock of one process per stream, incl. start-up and WAV decode "
        f"(≈ {num(s.get('ffmpeg_startup_s'), '.3f') or '?'} s for one block of input).",
    ]
    return "\n".join(lines)
