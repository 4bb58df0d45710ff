"""``spatialopt-render``: apply a filter set to an audio file (driver feeds), optionally binaural.

    spatialopt-render input=IN.wav filterset=DIR output=OUT.wav
                      [upmix=auto|true|false] [block_size=4096] [device=auto]
                      [subtype=FLOAT|PCM_24|PCM_16] [gain_db=0] [limiter=auto|true|false]
                      [ceiling_db=-1] [binaural=false] [progress=true] [drivers=D]
                      [trust_config_paths=false]

Input: any file libsndfile reads (WAV, FLAC, AIFF, OGG…). It is read and converted block by block,
so memory stays bounded whatever the file length (or its header's claim). Documented conversions: a rate other
than the filter set's is resampled (torchaudio's band-limited resampler); mono is duplicated to
stereo. Stereo is upmixed to L', R', C (``upmix=auto``); a 3-channel file is taken as L, R, C.
Anything else, an unreadable file, an empty one, or NaN/Inf samples (the error names channel,
frame and time of the first): one clear error, no output file; so is a filter set whose driver
count differs from ``drivers=D`` (the outputs the playback expects). Subnormal samples
(|x| < 1.2e-38, below −758 dBFS) are read as 0 (they would slow the FFTs several-fold); a
float64 sample beyond float32's range, or a level so far above full scale that the rendering
overflows float32, is an error too, never an Inf/NaN file.

Output: D channels, one per driver in the filter set's order, at the filter set's rate; the full
convolution (input length + T − 1 samples, plus the upmixer's n_fft − 1 when it runs: no tail is
cut), with the upmixer's look-ahead latency removed so the output is aligned with the input
exactly as the filters define it.
Peaks: the output peak is reported. ``gain_db`` is applied first; then, when the result would
exceed ``ceiling_db`` dBFS in a fixed-point file (``limiter=auto``) or whenever asked
(``limiter=true``), a linked look-ahead limiter (:mod:`spatialopt.dsp.limiter`) holds every
channel under the ceiling with one shared gain, keeping the inter-driver relations CTC needs.
``limiter=false`` with a fixed-point file that would overflow hard-clips at full scale and says
so: a file never wraps around. Float files (the default) keep their peaks.

``binaural=true`` also writes ``OUT.binaural.wav`` — what a listener at the design's nominal
point hears through the device (for headphones) — and ``OUT.reference.wav``, the same stereo on a
real ±30° loudspeaker pair through the same head, for A/B listening (:mod:`spatialopt.preview`).
A design whose stored config names files (a SOFA listener, measured drivers) is previewed only
with ``trust_config_paths=true``: paths inside a filter set are not opened otherwise.

Every file is written to a temporary sibling and renamed when complete: a full disk, a file too
large or an unwritable directory is one error naming the output, and a file already at that path
is left as it was. Temporaries left by a render that was killed (``.OUT.render.PID.tmp.wav``,
``.OUT.final.PID.tmp.wav``, PID no longer running) are deleted by the next render to that output.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from spatialopt.cli._common import one_line_errors
from spatialopt.errors import ConfigError, DataError
from spatialopt.fileio import os_error_reason, sound_file_errors

KEYS = {
    "input": None, "filterset": None, "output": None, "upmix": "auto", "block_size": "4096",
    "device": "auto", "subtype": "FLOAT", "gain_db": "0", "limiter": "auto", "ceiling_db": "-1",
    "binaural": "false", "progress": "true", "drivers": "", "trust_config_paths": "false",
}
SUBTYPES = ("FLOAT", "PCM_24", "PCM_16")
MAX_BLOCK_SIZE = 1 << 20  # samples per renderer call (21.8 s at 48 kHz): beyond it only memory grows
MAX_GAIN_DB = 200.0  # |gain_db|: ±200 dB covers any level change a WAV can express
CHUNK_SECONDS = 1.0
LIMITER_HALF_WIDTH_S = 0.005  # 5 ms look-ahead/hold and release
RESAMPLE_CONTEXT = 256  # input samples of context each side of a resampled block
RATE_RANGE_HZ = (1000, 768000)  # input rates accepted
MAX_RATIO_TERM = 1000  # largest term of the reduced rate ratio (44.1k→48k is 147:160; 11.025k→48k 147:640)
FLOAT32_MAX = float(np.finfo(np.float32).max)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)  # smallest normal float32; below it samples are read as 0


def _bool(key: str, value: str) -> bool:
    text = value.strip().lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ConfigError(key, value, "must be true or false")


def _number(key: str, value: str, kind=float):
    try:
        number = kind(value)
    except ValueError:
        raise ConfigError(key, value, f"must be {'an integer' if kind is int else 'a number'}") from None
    if not math.isfinite(number):
        raise ConfigError(key, value, "must be finite")
    return number


def parse_args(argv: list[str]) -> dict:
    """``key=value`` arguments → validated options (one :class:`ConfigError` per problem)."""
    raw: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError("argument", arg, "expected key=value, e.g. input=IN.wav filterset=DIR output=OUT.wav")
        if key not in KEYS:
            raise ConfigError(key, value, f"unknown option; known: {', '.join(KEYS)}")
        raw[key] = value
    for key in ("input", "filterset", "output"):
        if not raw.get(key):
            raise ConfigError(key, None, "is required: spatialopt-render input=IN.wav filterset=DIR output=OUT.wav")
    opts = {**KEYS, **raw}
    upmix = opts["upmix"].strip().lower()
    if upmix not in ("auto", "true", "false"):
        raise ConfigError("upmix", opts["upmix"], "must be auto, true or false")
    limiter = opts["limiter"].strip().lower()
    if limiter not in ("auto", "true", "false"):
        raise ConfigError("limiter", opts["limiter"], "must be auto, true or false")
    subtype = opts["subtype"].strip().upper()
    if subtype not in SUBTYPES:
        raise ConfigError("subtype", opts["subtype"], f"must be one of {', '.join(SUBTYPES)}")
    block = _number("block_size", opts["block_size"], int)
    if not 1 <= block <= MAX_BLOCK_SIZE:
        raise ConfigError("block_size", block, f"must be an integer in [1, {MAX_BLOCK_SIZE}] (samples)")
    ceiling = _number("ceiling_db", opts["ceiling_db"])
    if not -100 <= ceiling <= 0:
        raise ConfigError("ceiling_db", ceiling, "must be in [-100, 0] dBFS")
    gain_db = _number("gain_db", opts["gain_db"])
    if abs(gain_db) > MAX_GAIN_DB:  # (10 ** (gain_db / 20) overflows a float near 6000 dB)
        raise ConfigError("gain_db", gain_db, f"must be in [-{MAX_GAIN_DB:g}, {MAX_GAIN_DB:g}] dB")
    output = Path(os.path.expanduser(opts["output"]))
    if output.suffix.lower() != ".wav":
        raise ConfigError("output", opts["output"], "must be a .wav file")
    if not output.parent.is_dir():
        what = "is not a directory" if os.path.lexists(output.parent) else "does not exist"
        raise ConfigError("output", opts["output"], f"its directory {output.parent} {what}")
    return {
        "input": Path(os.path.expanduser(opts["input"])), "filterset": opts["filterset"], "output": output,
        "upmix": upmix, "block_size": block, "device": opts["device"], "subtype": subtype,
        "gain_db": gain_db, "limiter": limiter, "ceiling_db": ceiling,
        "binaural": _bool("binaural", opts["binaural"]), "progress": _bool("progress", opts["progress"]),
        "drivers": _drivers(opts["drivers"]),
        "trust_config_paths": _bool("trust_config_paths", opts["trust_config_paths"]),
    }


def _drivers(value: str) -> int | None:
    if value == "":
        return None
    n = _number("drivers", value, int)
    if n < 1:
        raise ConfigError("drivers", n, "must be a positive integer (output channels expected)")
    return n


class AudioInput:
    """An audio file opened for block-wise reading at a target rate (memory bounded by the block
    size, whatever the file's length or its header's claims).

    Conversions (documented, reported in :attr:`notes`): mono is duplicated to stereo; another
    rate is resampled with torchaudio's band-limited sinc resampler, block by block with
    :data:`RESAMPLE_CONTEXT` input samples of context on each side, which reproduces the
    whole-signal ``torchaudio.functional.resample`` exactly (the kernel reaches ≈ 6 input samples
    at ratios up to 40:1). Non-finite samples (and float64 ones beyond float32's range) raise
    :class:`DataError` naming channel, frame and time; subnormal samples are read as 0.

    Args:
        path: the audio file. sample_rate: target rate, Hz. block_seconds: block length.
    """

    def __init__(self, path: Path, sample_rate: float, block_seconds: float = CHUNK_SECONDS):
        import soundfile as sf

        if not path.is_file():
            raise DataError(f"input {path}: no such file")
        try:
            self._file = sf.SoundFile(str(path))
        except Exception as exc:  # libsndfile's messages are one line
            raise DataError(f"input {path}: cannot read it as audio ({exc})") from None
        self.path = path
        self.rate = int(self._file.samplerate)
        self.file_channels = int(self._file.channels)
        self.channels = 2 if self.file_channels == 1 else self.file_channels
        self.target_rate = int(round(sample_rate))
        lo, hi = RATE_RANGE_HZ
        if not lo <= self.rate <= hi:
            self._file.close()
            raise DataError(f"input {path}: sample rate {self.rate} Hz is outside {lo}–{hi} Hz")
        g = math.gcd(self.rate, self.target_rate)
        self._step_in, self._step_out = self.rate // g, self.target_rate // g  # a input ↔ b output samples
        if max(self._step_in, self._step_out) > MAX_RATIO_TERM:
            self._file.close()
            raise DataError(f"input {path}: cannot resample {self.rate} Hz to {self.target_rate} Hz exactly (ratio "
                            f"{self._step_in}:{self._step_out}); convert the file to a common rate first")
        self.notes = []
        if self.file_channels == 1:
            self.notes.append("mono input duplicated to stereo")
        if self.rate != self.target_rate:
            self.notes.append(f"resampled {self.rate} Hz → {self.target_rate} Hz")
        a = self._step_in
        self._chunk = a * max(1, round(block_seconds * self.rate / a))
        self._context = a * math.ceil(RESAMPLE_CONTEXT / a) if self.rate != self.target_rate else 0
        self._frames_read = 0

    @property
    def frames_hint(self) -> int:
        """Frames the header announces, at the target rate (progress only; never allocated)."""
        return math.ceil(max(0, self._file.frames) * self._step_out / self._step_in)

    def close(self) -> None:
        self._file.close()

    def _where(self, ch: int, k: int) -> str:
        frame = self._frames_read + int(k)
        return f"channel {int(ch)}, frame {frame} ({frame / self.rate:.6f} s)"

    def _read(self, n: int) -> np.ndarray:
        double = self._file.subtype == "DOUBLE"  # read as float64 first: values beyond float32 are named, not made Inf
        try:
            data = self._file.read(n, dtype="float64" if double else "float32", always_2d=True)
        except Exception as exc:
            raise DataError(f"input {self.path}: unreadable audio data near frame {self._frames_read} ({exc})") from None
        x = data.T
        bad = ~np.isfinite(x)
        if bad.any():
            k, ch = np.argwhere(bad.T)[0]  # the earliest frame (then the lowest channel)
            raise DataError(f"input {self.path}: non-finite sample ({x[ch, k]}; NaN/Inf are refused) at {self._where(ch, k)}")
        if double:
            big = np.abs(x) > FLOAT32_MAX
            if big.any():
                k, ch = np.argwhere(big.T)[0]
                raise DataError(f"input {self.path}: sample {x[ch, k]:.3g} at {self._where(ch, k)} is beyond the "
                                "float32 range the renderer computes in (±3.4e38)")
        x = np.ascontiguousarray(x, dtype=np.float32)
        x[np.abs(x) < FLOAT32_TINY] = 0.0  # subnormals (< −758 dBFS) → 0: they cost the FFTs up to 6× the time
        self._frames_read += x.shape[1]
        return np.repeat(x, 2, axis=0) if self.file_channels == 1 else x

    def blocks(self):
        """Yield (channels, n) float32 blocks at the target rate until the file ends."""
        if self.rate == self.target_rate:
            while True:
                x = self._read(self._chunk)
                if x.shape[1] == 0:
                    return
                yield x
        import torchaudio.functional as AF

        a, b, ctx, chunk = self._step_in, self._step_out, self._context, self._chunk
        buf = np.zeros((self.channels, ctx), dtype=np.float32)  # input samples from index −ctx on
        buf_start, start, eof = -ctx, 0, False
        while True:
            while not eof and buf_start + buf.shape[1] < start + chunk + ctx:
                more = self._read(chunk)
                eof = more.shape[1] == 0
                buf = np.concatenate([buf, more], axis=1)
            available = buf_start + buf.shape[1] - start  # input samples of this chunk (≤ chunk + ctx)
            n_in = min(chunk, available)
            if n_in <= 0:
                return
            seg = buf[:, start - ctx - buf_start:]
            seg = seg[:, : chunk + 2 * ctx]
            if seg.shape[1] < chunk + 2 * ctx:  # the file's end: zeros, as the whole-signal resampler pads
                seg = np.pad(seg, ((0, 0), (0, chunk + 2 * ctx - seg.shape[1])))
            y = AF.resample(torch.from_numpy(seg), a, b).numpy()
            first = ctx * b // a
            yield np.ascontiguousarray(y[:, first: first + math.ceil(n_in * b / a)])
            start += n_in
            drop = start - ctx - buf_start  # keep ctx samples of history
            buf, buf_start = buf[:, drop:], buf_start + drop


def read_input(path: Path, sample_rate: float) -> tuple[np.ndarray, list[str]]:
    """Whole file as (channels, S) float32 at ``sample_rate`` and the conversion notes (for
    callers that want it in memory; :class:`AudioInput` streams)."""
    audio = AudioInput(path, sample_rate)
    try:
        blocks = list(audio.blocks())
    finally:
        audio.close()
    x = np.concatenate(blocks, axis=1) if blocks else np.zeros((audio.channels, 0), dtype=np.float32)
    if x.shape[1] == 0:
        raise DataError(f"input {path}: the file holds no samples")
    return x, audio.notes


def _temp_sibling(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.stem}.{tag}.{os.getpid()}.tmp.wav")


def _remove_stale_temps(output: Path) -> None:
    """Delete the temporaries (:func:`_temp_sibling`) of ``output`` and its ``.binaural``/
    ``.reference`` siblings that renders killed mid-way left behind (their process is gone)."""
    import re

    pattern = re.compile(rf"\.{re.escape(output.stem)}(?:\.binaural|\.reference)?\.(?:render|final)\.(\d+)\.tmp\.wav")
    try:
        names = os.listdir(output.parent)
    except OSError:
        return
    for name in names:
        match = pattern.fullmatch(name)
        if match is None or int(match[1]) == os.getpid():
            continue
        try:
            os.kill(int(match[1]), 0)
            continue  # still running (or another user's: not ours to delete)
        except ProcessLookupError:
            pass
        except (PermissionError, OverflowError):
            continue
        try:
            os.unlink(output.parent / name)
        except OSError:
            pass


class _Stream:
    """One renderer writing into a temporary float32 WAV, tracking the peak."""

    def __init__(self, renderer, path: Path, sample_rate: float, skip: int, source: Path | None = None):
        import soundfile as sf

        self.renderer, self.path, self.skip, self.source = renderer, path, skip, source
        self.tmp = _temp_sibling(path, "render")
        try:
            self.file = sf.SoundFile(str(self.tmp), "w", int(sample_rate), renderer.n_drivers, "FLOAT")
        except Exception:
            self.tmp.unlink(missing_ok=True)  # created before its header failed (a full disk)
            raise
        self.peak = 0.0
        self.frames = 0

    def feed(self, chunk: torch.Tensor) -> None:
        y = self.renderer.process(chunk)[0].cpu().numpy()  # (D, n)
        if self.skip:
            cut = min(self.skip, y.shape[1])
            y, self.skip = y[:, cut:], self.skip - cut
        if y.shape[1]:
            peak = float(np.abs(y).max())
            if not math.isfinite(peak):  # float32 overflow (finite input far above full scale): never write it
                k = self.frames + int(np.argwhere(~np.isfinite(y.T))[0][0])
                raise DataError(f"input {self.source}: rendering it overflows float32 ({self.path.name}, output frame {k}, "
                                f"{k / self.file.samplerate:.6f} s): its level is far beyond full scale (±1); scale it down")
            self.peak = max(self.peak, peak)
            self.file.write(y.T)
            self.frames += y.shape[1]

    def close(self) -> None:
        self.file.close()


def _finish(stream: _Stream, opts: dict, label: str) -> str:
    """Gain, limiter or clip, final subtype; atomic rename. Returns the report line."""
    import soundfile as sf

    gain = 10 ** (opts["gain_db"] / 20)
    ceiling = 10 ** (opts["ceiling_db"] / 20)
    peak = stream.peak * gain
    fixed_point = opts["subtype"] != "FLOAT"
    use_limiter = opts["limiter"] == "true" or (opts["limiter"] == "auto" and fixed_point and peak > ceiling)
    clip = fixed_point and not use_limiter and peak > 1.0
    final = _temp_sibling(stream.path, "final")
    reduction = 0.0
    try:
        if gain == 1.0 and not use_limiter and not fixed_point:
            os.replace(stream.tmp, final)
        else:
            reduction = _rewrite(stream.tmp, final, gain, ceiling if use_limiter else None, clip, opts["subtype"])
            stream.tmp.unlink()
        os.replace(final, stream.path)
    finally:
        for leftover in (stream.tmp, final):
            if leftover.exists():
                leftover.unlink()
    rate = sf.info(str(stream.path)).samplerate
    line = (f"wrote {stream.path} ({label}): {stream.renderer.n_drivers} channels × {stream.frames} frames at "
            f"{rate} Hz, {opts['subtype']}; peak {_dbfs(peak)} dBFS")
    if use_limiter:
        line += f", limiter at {opts['ceiling_db']:g} dBFS (up to {reduction:.1f} dB of gain reduction)"
    elif clip:
        line += " — CLIPPED at full scale (limiter=false); use limiter=auto or a negative gain_db"
    elif peak > 1.0:
        line += " (above full scale; a float file keeps it — lower gain_db before converting)"
    return line


def _dbfs(value: float) -> str:
    return f"{20 * math.log10(value):+.1f}" if value > 0 else "-inf"


def _rewrite(src: Path, dst: Path, gain: float, ceiling: float | None, clip: bool, subtype: str) -> float:
    """Second pass, chunked: gain, then the limiter (with 2W samples of context each side, the
    reach of its gain) or a hard clip; written as ``subtype``. Returns the largest reduction, dB."""
    import soundfile as sf

    from spatialopt.dsp.limiter import limiter_gain

    with sf.SoundFile(str(src)) as fin:
        rate, n_frames = fin.samplerate, fin.frames
        w = int(round(LIMITER_HALF_WIDTH_S * rate))
        margin = 2 * w
        chunk = max(int(CHUNK_SECONDS * rate), 4 * margin)
        worst = 1.0
        with sf.SoundFile(str(dst), "w", rate, fin.channels, subtype) as fout:
            for start in range(0, n_frames, chunk):
                lo, hi = max(0, start - margin), min(n_frames, start + chunk + margin)
                fin.seek(lo)
                y = fin.read(hi - lo, dtype="float64", always_2d=True).T * gain
                if ceiling is not None:
                    g = limiter_gain(torch.from_numpy(y), ceiling, w).numpy()
                    y = y * g
                    worst = min(worst, float(g[start - lo: start - lo + chunk].min()))
                elif clip:
                    y = np.clip(y, -1.0, 1.0)
                fout.write(y[:, start - lo: start - lo + min(chunk, n_frames - start)].T)
    return -20 * math.log10(worst)


def render_file(opts: dict, log=print) -> list[str]:
    """Render ``opts['input']`` through the filter set, block by block (memory bounded);
    returns the report lines."""
    from spatialopt.filterset import FilterSet

    fset = FilterSet.load(opts["filterset"])
    if opts.get("drivers") is not None and opts["drivers"] != fset.n_drivers:
        raise DataError(f"filter set {opts['filterset']} feeds {fset.n_drivers} drivers ({', '.join(fset.driver_names)}), "
                        f"but drivers={opts['drivers']} output channels were requested")
    audio = AudioInput(opts["input"], fset.sample_rate)
    _remove_stale_temps(opts["output"])
    try:
        with sound_file_errors(opts["output"]):  # libsndfile's "System error." → the OSError behind it
            return _render_stream(audio, fset, opts, log)
    except OSError as exc:  # disk full, file too large, an unwritable directory
        raise DataError(f"cannot write {opts['output']}: {os_error_reason(exc)}") from None
    finally:
        audio.close()


def _render_stream(audio: AudioInput, fset, opts: dict, log) -> list[str]:
    from tqdm import tqdm

    from spatialopt.render import Renderer

    channels = audio.channels
    if opts["upmix"] == "auto":
        upmix = channels == 2
    else:
        upmix = opts["upmix"] == "true"
    expected = 2 if upmix else 3
    if channels != expected:
        hint = "stereo input needs upmix=auto/true" if channels == 2 else "a 3-channel input is L, R, C: upmix=false/auto"
        raise DataError(f"input {opts['input']}: {channels} channels, but {'the upmix takes 2' if upmix else 'the filter matrix takes 3 (L, R, C)'}"
                        f" ({hint}; mono is duplicated, other channel counts are not supported)")
    device = opts["device"]
    renderer = Renderer(fset, block_size=opts["block_size"], device=device, upmix=upmix)
    skip = renderer.latency_samples - fset.latency_samples  # the upmixer's look-ahead
    # The full convolution (T − 1 samples of tail) plus, with the upmix, its frames' spread past
    # the input's end (as long as its look-ahead), after that look-ahead is removed.
    tail = fset.n_taps - 1 + 2 * skip
    streams = [_Stream(renderer, opts["output"], fset.sample_rate, skip, opts["input"])]
    try:
        if opts["binaural"]:
            from spatialopt.preview import binaural_filters

            filters = binaural_filters(fset, trust_config_paths=opts.get("trust_config_paths", False))
            for tag, fir, up in (("binaural", filters.system, upmix), ("reference", filters.reference, False)):
                path = opts["output"].with_name(f"{opts['output'].stem}.{tag}.wav")
                view = SimpleNamespace(fir=fir.to(torch.float32), sample_rate=fset.sample_rate, upmix=fset.upmix,
                                       latency_samples=fset.latency_samples)
                r = Renderer(view, block_size=opts["block_size"], device=device, upmix=up)
                streams.append(_Stream(r, path, fset.sample_rate, r.latency_samples - fset.latency_samples,
                                       opts["input"]))
            tail = max(tail, filters.system.shape[-1] - 1 + 2 * skip, filters.reference.shape[-1] - 1)

        def feed(block: np.ndarray) -> None:
            main = torch.from_numpy(block)[None]
            for s in streams:
                if s.renderer.n_inputs == channels:
                    s.feed(main)
                else:  # the reference pair takes plain L, R (no upmix): (L, R, 0)
                    pair = np.zeros((3, block.shape[1]), dtype=np.float32)
                    pair[:2] = block[:2]
                    s.feed(torch.from_numpy(pair)[None])

        frames = 0
        with tqdm(total=audio.frames_hint + tail, unit="frame", unit_scale=True, desc="render",
                  disable=not opts["progress"], file=sys.stderr) as bar:
            for block in audio.blocks():
                feed(block)
                frames += block.shape[1]
                bar.update(block.shape[1])
            if frames == 0:
                raise DataError(f"input {opts['input']}: the file holds no samples")
            chunk = int(CHUNK_SECONDS * fset.sample_rate)
            for start in range(0, tail, chunk):  # flush: the filters' (and upmix's) tail
                n = min(chunk, tail - start)
                feed(np.zeros((channels, n), dtype=np.float32))
                bar.update(n)
        for s in streams:
            s.close()
        for s in streams:  # before any file is finished: all or nothing
            peak_db = 20 * math.log10(s.peak) + opts["gain_db"] if s.peak > 0 else -math.inf
            if opts["subtype"] == "FLOAT" and peak_db > 20 * math.log10(FLOAT32_MAX):
                raise DataError(f"gain_db={opts['gain_db']:g} takes the peak of {s.path.name} to {peak_db:+.1f} dBFS, "
                                "beyond a float WAV's range; lower gain_db")
        lines = audio.notes + [_finish(s, opts, tag) for s, tag in zip(streams, ("drivers", "binaural", "reference"))]
    finally:
        for s in streams:
            try:
                if not s.file.closed:  # only after an error; on a full disk closing fails too
                    s.file.close()
            except Exception:  # noqa: BLE001 - the first error is the one reported
                pass
            if s.tmp.exists():
                s.tmp.unlink()
    for line in lines:
        log(line)
    return lines


@one_line_errors("spatialopt-render")
def run(argv: list[str] | None = None) -> int:
    opts = parse_args(sys.argv[1:] if argv is None else argv)
    render_file(opts)
    return 0


def main(argv: list[str] | None = None) -> None:
    raise SystemExit(run(argv))


if __name__ == "__main__":
    main()
