"""What TensorBoard shows of an optimisation run beyond the training scalars of :class:`~spatialopt.train.Trainer`.

:class:`RunMonitor` writes into the run's ``tb/`` directory (its own event file next to the
trainer's) and is driven by the trainer (``optim.eval_every``, ``optim.image_every``) and by
:func:`spatialopt.experiment.run_experiment` (start and end of the run). Tags:

* ``eval/<metric>`` — the DESIGN.md §5 metrics of the *current* composite taps, computed with
  :func:`~spatialopt.objectives.metrics.evaluate_filters` on the **design scene** (the optimiser's
  zone and frequency grid, so it is cheap: a fraction of a second): at the start, every ``optim.eval_every``
  steps and at the end (the exported state). Not held out (the optimiser's own points and bins:
  between-bin overfitting does not show) — the trend, not the verdict; the honest numbers are
  ``metrics/<design>/<metric>`` (dense grid, evaluation zone), logged once at the end.
* ``images/beam_heatmap``, ``images/polar``, ``images/zone_separation``, ``images/ear_vs_target``,
  ``images/filters`` — :mod:`spatialopt.plots` figures of the current state on the design scene:
  at the start, every ``optim.image_every`` steps and at the end (the exported state).
* ``audio/reference``, ``audio/before``, ``audio/after`` — 2-channel (left, right ear) binaural
  previews (:func:`spatialopt.preview.binaural_filters`) at the nominal point of a deterministic
  synthetic test mix (:func:`synthetic_mix`, ``optim.audio_seconds`` long): the real ±30° pair
  playing the mix, and the design before optimisation (the closed-form initial system, logged at
  step 0) and after (the exported state, at the last step), each through the LRC upmix and the
  renderer. All three are rendered at the end of the run from one preview scene and share one
  gain (the reference peaks at −6 dBFS), so their levels compare; a clip that would still
  exceed full scale is scaled down and ``audio/notes`` (text) says so. A resumed run logs
  ``audio/after`` only (the first run logged the others).
* ``hparams`` — the run's overridden parameters (:func:`run_hparams`) against the final held-out
  metrics (:data:`HPARAM_METRICS`), written into the run's own event directory so the runs of a
  sweep line up in TensorBoard's HParams tab.

``torch.utils.tensorboard``'s ``add_audio`` only writes mono, so the stereo clips are written as
``Summary.Audio`` protos directly (16-bit PCM WAV, 2 channels).
"""

from __future__ import annotations

import io
import json
import math
import time
import wave
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor

from spatialopt.plots import DESIGN_FIGURES
from spatialopt.train import LazySummaryWriter

__all__ = ["RunMonitor", "synthetic_mix", "stereo_audio_summary", "run_hparams", "flatten_metrics", "HPARAM_METRICS",
           "NOT_HPARAMS", "IMAGE_TAGS", "AUDIO_TAGS"]

IMAGE_TAGS = tuple(f"images/{name}" for name in DESIGN_FIGURES)
AUDIO_TAGS = ("audio/reference", "audio/before", "audio/after")

HPARAM_METRICS = (
    "ctc/separation_db/sweet_mean", "ctc/separation_db/zone_mean", "ctc/separation_db/zone_p10",
    "virtual/ild_err_db_rms", "virtual/itd_err_us_rms", "beam/null_depth_db", "beam/mainlobe_dev_db",
    "beam/di_db", "tonal/dev_db_rms", "effort/wng_db_min", "effort/max_gain_db", "effort/crossover_excess_db",
    "align/path_skew_ms", "room/drr_db",
)
"""Metrics of the HParams tab: ``metrics/ours/<name>`` (the held-out evaluation of the exported set)."""

NOT_HPARAMS = frozenset({"progress", "plots", "resume", "hparams", "out", "optim.log_every", "optim.checkpoint_every",
                         "optim.eval_every", "optim.image_every", "optim.audio_seconds"})
"""Overridden keys that change how a run is watched, not what it designs: left out of the HParams tab."""

REFERENCE_PEAK = 0.5
"""Peak (full scale = 1) of the ±30° reference clip; the same gain applies to the other clips."""


def flatten_metrics(prefix: str, value):
    """Yield ``(tag, float)`` for every finite number in a nested metrics dict (``prefix/a/b``)."""
    if isinstance(value, Mapping):
        for key, sub in value.items():
            yield from flatten_metrics(f"{prefix}/{key}", sub)
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        yield prefix, float(value)


# ----------------------------------------------------------------------------------------------
# test signal


def synthetic_mix(sample_rate: float, seconds: float = 3.0, seed: int = 0) -> Tensor:
    """A short deterministic stereo test mix: what the audio previews play.

    * centre (``L = R``): a voice-like harmonic source — a sung pentatonic melody (f0 ≈ 150–300
      Hz, 5.5 Hz vibrato), harmonics shaped by vowel formants, syllable envelopes;
    * hard left: plucked-string notes (decaying harmonics);
    * hard right: a shaker (2–9 kHz noise bursts on an eighth-note grid);
    * partly panned (70/30 power, left): a sustained three-note chord.

    Args:
        sample_rate: Hz. seconds: length. seed: seeds the noise only (all else is fixed).

    Returns:
        (2, S) float32 (L, R), S = round(seconds · sample_rate), peak 0.5.
    """
    fs = float(sample_rate)
    n = max(1, int(round(seconds * fs)))
    t = np.arange(n) / fs
    rng = np.random.default_rng(seed)
    nyq = 0.45 * fs

    # centre voice: notes of 0.4 s with 30 ms glides, vibrato; formants per syllable
    notes = 150.0 * 2 ** (np.array([0, 4, 7, 9, 7, 4, 2, 0, 2, 4, 7, 12]) / 12)
    idx = np.minimum((t / 0.4).astype(int), len(notes) - 1) % len(notes)
    f0 = notes[idx]
    glide = max(1, int(0.03 * fs))
    f0 = np.convolve(np.pad(f0, glide, mode="edge"), np.ones(glide) / glide, mode="same")[glide:-glide]
    f0 = f0 * (1 + 0.012 * np.sin(2 * np.pi * 5.5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / fs
    vowels = np.array([[730, 1090, 2440], [270, 2290, 3010], [530, 1840, 2480], [570, 840, 2410]], dtype=float)
    syllable = (t / 0.4).astype(int)
    formants = vowels[syllable % len(vowels)]  # (S, 3)
    env = np.sin(np.pi * ((t / 0.4) % 1.0)) ** 0.5
    voice = np.zeros(n)
    hold = 32  # harmonic amplitudes vary slowly: evaluated every 32 samples and held
    f0c, formc = f0[::hold], formants[::hold]
    for k in range(1, int(min(6000.0, nyq) / f0.min()) + 1):
        fk = k * f0c
        amp = sum((0.8**j) / (1 + ((fk - formc[:, j]) / bw) ** 2) for j, bw in enumerate((90.0, 110.0, 170.0)))
        amp = (amp + 0.02) / math.sqrt(k) * (fk < nyq)
        voice += np.repeat(amp, hold)[:n] * np.sin(k * phase)
    voice *= env

    # hard left: plucks every 0.35 s
    pluck = np.zeros(n)
    for i, start in enumerate(np.arange(0.05, seconds, 0.35)):
        s0 = int(start * fs)
        tt = t[: min(n - s0, int(1.6 * fs))]  # 4 decay times
        f = 110.0 * 2 ** ([0, 3, 5, 7, 10, 12][i % 6] / 12)
        note = sum(np.exp(-tt * k**0.7 / 0.4) / k * np.sin(2 * np.pi * k * f * tt) for k in range(1, 16) if k * f < nyq)
        pluck[s0: s0 + len(tt)] += note * np.minimum(tt / 0.002, 1.0)

    # hard right: shaker bursts (band-limited noise) every 0.25 s
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1 / fs)
    noise = np.fft.irfft(spec * ((freqs >= 2000) & (freqs <= min(9000.0, nyq))), n)
    burst = np.exp(-((t - 0.125) % 0.25) / 0.03)
    shaker = noise * burst

    # partly panned chord
    pad = sum(np.sin(2 * np.pi * k * r * 196.0 * t) / k for r in (1.0, 1.26, 1.5) for k in range(1, 8) if k * r * 196.0 < nyq)
    pad = pad * np.minimum(t / 0.3, 1.0)

    def norm(x, level):
        return x * level / (np.sqrt(np.mean(x**2)) + 1e-30)

    voice, pluck, shaker, pad = norm(voice, 1.0), norm(pluck, 0.7), norm(shaker, 0.35), norm(pad, 0.35)
    left = voice + pluck + math.sqrt(0.7) * pad
    right = voice + shaker + math.sqrt(0.3) * pad
    mix = np.stack([left, right])
    mix *= 0.5 / np.abs(mix).max()
    return torch.from_numpy(mix.astype(np.float32))


def stereo_audio_summary(tag: str, audio: Tensor | np.ndarray, sample_rate: float):
    """A TensorBoard ``Summary`` holding a multichannel clip as 16-bit PCM WAV.

    Args:
        tag: summary tag. audio: (channels, samples) float, full scale ±1 (clipped beyond).
        sample_rate: Hz (rounded to an integer for the WAV header).
    """
    from tensorboard.compat.proto.summary_pb2 import Summary

    x = np.asarray(audio.detach().cpu() if isinstance(audio, Tensor) else audio, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"audio must be (channels, samples), got shape {x.shape}")
    pcm = (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2").T  # (samples, channels), interleaved
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(x.shape[0])
        w.setsampwidth(2)
        w.setframerate(int(round(sample_rate)))
        w.writeframes(np.ascontiguousarray(pcm).tobytes())
    clip = Summary.Audio(sample_rate=float(sample_rate), num_channels=x.shape[0], length_frames=x.shape[1],
                         encoded_audio_string=buf.getvalue(), content_type="audio/wav")
    return Summary(value=[Summary.Value(tag=tag, audio=clip)])


# ----------------------------------------------------------------------------------------------
# hparams


def _hparam_value(value):
    """A value the HParams plugin takes: numbers and strings as they are, anything else as JSON."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, str)):
        return value
    return json.dumps(value, default=str, separators=(",", ":"))


def _lookup(cfg: Mapping, key: str):
    node = cfg
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None, False
        node = node[part]
    return node, True


def hydra_task_overrides() -> list[str] | None:
    """The command-line overrides of the current Hydra job (``hydra.overrides.task``), or None
    outside a Hydra app."""
    try:
        from hydra.core.hydra_config import HydraConfig
    except ImportError:  # pragma: no cover - hydra is a dependency
        return None
    if not HydraConfig.initialized():
        return None
    try:
        return [str(o) for o in HydraConfig.get().overrides.task]
    except Exception:  # a partial Hydra config (e.g. compose without the hydra node)
        return None


def run_hparams(cfg: Mapping, overrides: list[str] | None = None) -> dict:
    """The run's hyperparameters for the HParams tab: what this run changed.

    The config key ``hparams`` (a list of dotted keys, e.g. ``[optim.lr, loss.weights.band]``)
    wins when set: those values from the resolved config. Otherwise the Hydra overrides of the
    job (``overrides``, default :func:`hydra_task_overrides`): each ``key=value`` gives the key
    with its *resolved* value from ``cfg`` when that is a scalar, else the override's text (a
    config-group choice like ``device=soundbar_4`` → ``"soundbar_4"``; ``+experiment=debug`` →
    ``experiment: "debug"``). ``hydra.*`` overrides and :data:`NOT_HPARAMS` (logging, progress,
    checkpoints) are skipped. Lists and mappings become JSON.

    Returns:
        {name: number | str}.
    """
    keys = cfg.get("hparams")
    out: dict = {}
    if keys:
        if isinstance(keys, str):
            keys = [keys]
        for key in keys:
            value, found = _lookup(cfg, str(key))
            out[str(key)] = _hparam_value(value) if found else "(unset)"
        return out
    if overrides is None:
        overrides = hydra_task_overrides() or []
    for text in overrides:
        if "=" not in text:
            continue
        key, raw = text.split("=", 1)
        key = key.lstrip("+~").split("@", 1)[0]
        if not key or key.startswith("hydra.") or key in NOT_HPARAMS:
            continue
        value, found = _lookup(cfg, key)
        if found and not isinstance(value, Mapping):
            out[key] = _hparam_value(value)
        else:
            out[key] = raw
    return out


# ----------------------------------------------------------------------------------------------
# the monitor


class RunMonitor(LazySummaryWriter):
    """TensorBoard evaluation metrics, figures, audio and hparams of one run (module docstring).

    Args:
        tb_dir: the run's TensorBoard directory (``<run>/tb``).
        scene: the design :class:`~spatialopt.acoustics.scene.Scene` (CPU tensors).
        system: the :class:`~spatialopt.design.system.SpatialSystem` being optimised (any device).
        cfg: the resolved config (plain mapping: the filter set's ``config``; the preview rebuilds
            the nominal point from it).
        upmix: the upmix parameters (complete, as stored in the filter set).
        latency_samples: the design's modelling delay (samples).
        evaluate: log ``eval/*`` at the start and the end (``optim.eval_every > 0``).
        images: log ``images/*`` at the start and the end (``optim.image_every > 0``).
        audio_seconds: test-mix length (0 = no audio).
        h_direct: (F, P, 2, D) free-field part of the design scene's ``H`` (rooms; for ``room.drr_db``).
        beam_band_hz: band marked on the beam heatmap. ctc_band_hz: band of the zone map.
    """

    def __init__(self, tb_dir: Path, scene, system, cfg: Mapping, upmix: Mapping, latency_samples: int,
                 evaluate: bool = True, images: bool = True, audio_seconds: float = 3.0, h_direct: Tensor | None = None,
                 beam_band_hz=(800.0, 4000.0), ctc_band_hz=(1500.0, 8000.0)):
        self.tb_dir = Path(tb_dir)
        self.scene, self.system, self.cfg = scene, system, dict(cfg)
        self.upmix = dict(upmix)
        self.latency_samples = int(latency_samples)
        self.evaluate, self.images = bool(evaluate), bool(images)
        self.audio_seconds = float(audio_seconds)
        self.h_direct = h_direct
        self.beam_band_hz, self.ctc_band_hz = tuple(beam_band_hz), tuple(ctc_band_hz)
        self.fs = float(scene.sample_rate)
        self.elapsed_s = 0.0  # wall time spent here (reported; the cost of the monitoring)
        self._before: tuple | None = None  # (step, fir, stages, delays) of the initial state
        self._logged: dict[str, set] = {"eval": set(), "images": set()}  # steps already logged
        self._mix: tuple[Tensor, Tensor] | None = None

    # -- plumbing (the writer: LazySummaryWriter) -----------------------------------------------
    def _timed(self, func, *args):
        start = time.perf_counter()
        try:
            return func(*args)
        finally:
            self.elapsed_s += time.perf_counter() - start

    def _state(self) -> tuple[Tensor, Tensor, dict]:
        """Current composite (3, D, T) and CTC (2, D, T_ctc) taps, CPU float32, and all stages."""
        with torch.no_grad():
            stages = {k: v.detach().to("cpu", torch.float32) for k, v in self.system.stages().items()}
            fir = self.system.composite().detach().to("cpu", torch.float32)
        return fir, stages["ctc"], stages

    # -- hooks -----------------------------------------------------------------------------------
    def start(self, step: int) -> None:
        """Start of the run: eval metrics and images of the initial state, which is also kept
        for the "before" audio (rendered at the end, together with "after": one preview scene).
        Nothing when resuming (``step > 0``: that was logged by the first run)."""
        if step > 0:
            return
        if self.evaluate:
            self.log_eval(step)
        if self.images:
            self.log_images(step)
        if self.audio_seconds > 0:
            fir, _, stages = self._state()
            self._before = (step, fir, stages, {"lr_delay": self.system.lr_delay, "c_delay": self.system.c_delay})
        self.writer.flush()

    def log_eval(self, step: int, fir: Tensor | None = None, ctc: Tensor | None = None) -> dict | None:
        """``eval/<metric>`` of the current (or given) taps on the design scene; returns the
        metrics (None, and nothing logged, when this step was logged already)."""
        if step in self._logged["eval"]:
            return None
        self._logged["eval"].add(step)
        return self._timed(self._eval, step, fir, ctc)

    def log_images(self, step: int, fir: Tensor | None = None, ctc: Tensor | None = None) -> None:
        """The five ``images/*`` figures of the current (or given) taps (once per step)."""
        if step in self._logged["images"]:
            return
        self._logged["images"].add(step)
        self._timed(self._images, step, fir, ctc)

    def finish(self, step: int, fir: Tensor, ctc: Tensor, stages: Mapping, delays: Mapping, metrics: Mapping,
               figures_dir: Path | None = None) -> None:
        """End of the run, for the exported state (``fir`` (3, D, T), ``ctc`` (2, D, T_ctc), its
        ``stages`` and ``delays`` as in the filter set): eval metrics, images, the "after" audio
        and the hparams summary against ``metrics["ours"]`` (already logged as ``metrics/ours/*``).
        With ``figures_dir`` the design figures are also written there as ``<name>.png`` (the
        report's figures; drawn once for both)."""
        if self.evaluate:
            self.log_eval(step, fir, ctc)
        to_tensorboard = self.images and step not in self._logged["images"]
        if to_tensorboard:
            self._logged["images"].add(step)
        if to_tensorboard or figures_dir is not None:
            self._timed(self._images, step, fir, ctc, figures_dir, to_tensorboard)
        if self.audio_seconds > 0:
            self._timed(self._audio, step, fir, stages, delays)
        self._timed(self._hparams, metrics)
        self.close()

    # -- work ------------------------------------------------------------------------------------
    def _eval(self, step, fir, ctc) -> dict:
        from spatialopt.objectives.metrics import evaluate_filters

        if fir is None:
            fir, ctc, _ = self._state()
        metrics = evaluate_filters(fir, ctc, self.scene, self.fs, self.h_direct)
        for tag, value in flatten_metrics("eval", metrics):  # (band edges are lists: not logged)
            self.writer.add_scalar(tag, value, step)
        return metrics

    def _images(self, step, fir, ctc, figures_dir: Path | None = None, tensorboard: bool = True) -> None:
        """The design figures of the current (or given) taps: TensorBoard ``images/*`` when
        ``tensorboard``, and PNGs ``figures_dir/<name>.png`` (atomic) when ``figures_dir`` is given."""
        from spatialopt import plots

        if fir is None:
            fir, ctc, _ = self._state()
        figures = plots.design_figures(self.scene, fir, ctc, self.beam_band_hz, self.ctc_band_hz)
        for name, make in figures.items():
            fig = make()
            if figures_dir is not None:
                plots.save_figure(fig, Path(figures_dir) / f"{name}.png", close=not tensorboard)
            if tensorboard:
                self.writer.add_figure(f"images/{name}", fig, step, close=True)

    def _filterset(self, fir: Tensor, stages: Mapping, delays: Mapping):
        from spatialopt.filterset import FilterSet

        s = self.scene
        return FilterSet(fir=fir, sample_rate=self.fs, driver_names=list(s.driver_names), latency_samples=self.latency_samples,
                         stages=dict(stages), delays=dict(delays), driver_positions=s.driver_positions.to(torch.float32),
                         upmix=self.upmix, config=self.cfg)

    def _inputs(self) -> tuple[Tensor, Tensor]:
        """The test mix as the two previews take it, (1, 3, S + tail) each, computed once: the
        pair's (L, R, 0) and the upmix's (L', R', C) (offline :func:`~spatialopt.dsp.upmix.upmix`:
        the streaming upmixer's output without its look-ahead)."""
        if self._mix is None:
            from spatialopt.dsp.upmix import upmix

            mix = synthetic_mix(self.fs, self.audio_seconds)[None]  # (1, 2, S) float32
            mix = torch.nn.functional.pad(mix, (0, int(0.25 * self.fs)))  # room for the filters' tails
            pair = torch.nn.functional.pad(mix, (0, 0, 0, 1))  # (1, 3, S): C = 0
            self._mix = (pair, upmix(mix, self.fs, **self.upmix))
        return self._mix

    def _render(self, taps: Tensor, upmixed: bool = False) -> Tensor:
        """The test mix through binaural preview taps (3 inputs, 2 ears, T) with the renderer:
        the upmixed (L', R', C) when ``upmixed`` (the design), else the plain (L, R, 0) (the
        ±30° pair). Returns (2 ears, S + tail) float32."""
        from spatialopt.render import render_offline

        pair, lrc = self._inputs()
        view = SimpleNamespace(fir=taps.to(torch.float32), sample_rate=self.fs, upmix={}, latency_samples=0)
        return render_offline(view, lrc if upmixed else pair, upmix=False, device="cpu")[0]

    def _preview_filters(self, firs: list[Tensor], stages: Mapping, delays: Mapping) -> list:
        """Binaural preview filters of several composites (3, D, T) with ONE preview scene.

        :func:`~spatialopt.preview.binaural_filters` rebuilds the nominal point's ear responses
        from the config on every call (the expensive part); the composites are therefore laid
        end to end in time, ``K = T + n_fft`` samples apart, in one probe filter set: by linearity
        the probe's preview holds each composite's preview ``T + n_fft − 1`` samples long,
        without overlap, at its offset. Returns one (system (3, 2, T + n_fft − 1), reference
        (3, 2, n_fft)) pair per composite."""
        from spatialopt import preview

        # binaural_filters' default FFT size, given explicitly so that the spacing is known
        n_fft = 1 << math.ceil(math.log2((preview._longest_path_s(self.cfg) + 0.05) * self.fs))
        t = firs[0].shape[-1]
        spacing = t + n_fft
        probe = torch.zeros(3, firs[0].shape[1], spacing * (len(firs) - 1) + t)
        for i, fir in enumerate(firs):
            probe[:, :, i * spacing: i * spacing + t] = fir
        filters = preview.binaural_filters(self._filterset(probe, stages, delays), n_fft=n_fft)
        length = t + n_fft - 1
        return [(filters.system[..., i * spacing: i * spacing + length], filters.reference) for i in range(len(firs))]

    def _audio(self, step: int, fir: Tensor, stages: Mapping, delays: Mapping) -> None:
        """``audio/reference`` and ``audio/before`` (at the initial step, when this run started
        at step 0) and ``audio/after`` (at ``step``), one shared gain."""
        clips = [("after", step, fir)]
        if self._before is not None:
            clips.insert(0, ("before", self._before[0], self._before[1]))
        finite = [bool(torch.isfinite(c[2]).all()) for c in clips]  # (the renderer refuses other taps)
        for (which, at, _), ok in zip(clips, finite):
            if not ok:
                self.writer.add_text("audio/notes", f"{which}: the filters are not finite; no audio", at)
        clips = [c for c, ok in zip(clips, finite) if ok]
        if not clips:
            return
        filters = self._preview_filters([c[2] for c in clips], stages, delays)
        reference = self._render(filters[0][1])
        gain = REFERENCE_PEAK / max(float(reference.abs().max()), 1e-9)
        fw = self.writer._get_file_writer()
        if self._before is not None:
            fw.add_summary(stereo_audio_summary("audio/reference", reference * gain, self.fs), self._before[0])
        for (which, at, _), (system, _) in zip(clips, filters):
            out = self._render(system, upmixed=True) * gain
            peak = float(out.abs().max())
            if peak > 0.99:
                out = out * (0.99 / peak)
                self.writer.add_text("audio/notes", f"{which}: scaled by {20 * math.log10(0.99 / peak):.1f} dB to avoid "
                                                    f"clipping (its level no longer matches audio/reference)", at)
            fw.add_summary(stereo_audio_summary(f"audio/{which}", out, self.fs), at)

    def _hparams(self, metrics: Mapping) -> None:
        from torch.utils.tensorboard.summary import hparams

        ours = dict(flatten_metrics("metrics/ours", metrics.get("ours") or {}))
        metric_dict = {f"metrics/ours/{name}": ours[f"metrics/ours/{name}"] for name in HPARAM_METRICS
                       if f"metrics/ours/{name}" in ours}
        exp, ssi, sei = hparams(run_hparams(self.cfg), metric_dict)
        fw = self.writer._get_file_writer()
        for summary in (exp, ssi, sei):
            fw.add_summary(summary)
