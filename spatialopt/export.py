"""Exports of a filter set for real engines (DESIGN.md §6), and band-limited resampling.

An export is a directory that an audio engine can use without spatialopt::

    <out>/L.wav R.wav C.wav    one float32 WAV per input channel (channel_names order); WAV channel d
                               is driver d (driver_names order); T frames at the set's sample rate;
                               the taps are exactly fir[c] (bit-exact float32)
    <out>/camilladsp.yml       CamillaDSP v2 configuration: 3 inputs -> 3·D convolutions -> D outputs
    <out>/render_ffmpeg.sh     POSIX shell script: ``render_ffmpeg.sh [--upmix] INPUT OUTPUT`` (ffmpeg afir)
    <out>/ffmpeg_command.txt   the same ffmpeg command on one line, for ``input.wav`` → ``output.wav``
    <out>/README.txt           what each file is, channel/driver order, sample rate, latency
    <out>/export.json          machine-readable summary (marks the directory as a spatialopt export)

What every engine computes, for an input x (3, S) with channels (L, R, C) and the composite taps
h = ``fir`` (3, D, T)::

    y[d, n] = sum_c sum_k h[c, d, k] · x[c, n − k]        (D, S): one feed per driver

i.e. the first S samples of the linear convolution; the output has as many samples as the input.

The export is written atomically: it is built in a hidden temporary directory beside ``out`` and
renamed into place, so ``out`` holds either the complete previous export or the complete new one.

ffmpeg (verified with ffmpeg 5.1 by the tests): a single ``afir`` convolves 3·D channels at once — the
input fanned out to 3·D channels (``asplit`` + ``join``: channel c·D + d carries input channel c), the IR
the three WAVs joined to 3·D channels (channel c·D + d = h[c, d]); ``pan`` with ``+`` (no
normalisation) then sums channels d, D + d and 2D + d into driver d. Findings behind that graph
(ffmpeg 5.1):

* ``afir`` with ``gtype=none`` doubles the gain; ``irgain=0.5`` compensates (exact to float rounding);
* ``afir`` filters input channel i with IR channel i when ``irfmt=input`` and the counts match;
* ``afir`` mis-convolves IRs of 1..7 taps, and IRs whose last 8192-tap partition holds 1..7 taps, so
  the IR is zero-padded (``apad``) to a multiple of 64 taps — zeros do not change the convolution;
* several ``afir`` branches merged afterwards (``amix``, ``join``) lose the last partial partition of
  a branch at the end of the stream, hence one ``afir`` over 3·D channels and no merge after it;
* ``pan`` as a pure fan-out (each output a copy of one input) fails beyond 8 output channels, so the
  fan-out is ``asplit`` + ``join``; ``join`` needs named channel layouts, and ffmpeg 5.1 names 30
  channels: 3·D ≤ 30, i.e. D ≤ 10 drivers (:data:`FFMPEG_MAX_DRIVERS`). The WAVs of more than 8
  channels have no known layout in ffmpeg, hence the ``channelmap`` that names them.

The gain options of ``afir`` differ between ffmpeg versions (later versions replaced ``gtype`` by
``irnorm``); the script uses the verified 5.x options and refuses other versions unless
``SPATIALOPT_AFIR_GAIN`` names the options to use.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import shutil
import tempfile
import warnings
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import torch
from numpy import bool_ as np_bool
from torch import Tensor

from spatialopt.errors import ConfigError, DataError
from spatialopt.fileio import (atomic_path, atomic_write_text, make_directory, sound_file_errors,
                               swap_directory_into_place)

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_MANIFEST",
    "FFMPEG_AFIR_GAIN",
    "FFMPEG_MAX_DRIVERS",
    "RESAMPLE_OPTIONS",
    "PASSBAND_FRACTION",
    "CUT_FRACTION",
    "BandLimitWarning",
    "export_filterset",
    "export_wav",
    "export_camilladsp",
    "camilladsp_config",
    "export_ffmpeg",
    "ffmpeg_filtergraph",
    "resample_filterset",
    "resample_taps",
]

EXPORT_FORMATS = ("wav", "camilladsp", "ffmpeg")
EXPORT_MANIFEST = "export.json"
README_NAME = "README.txt"
CAMILLADSP_NAME = "camilladsp.yml"
FFMPEG_SCRIPT_NAME = "render_ffmpeg.sh"
FFMPEG_COMMAND_NAME = "ffmpeg_command.txt"
EXPORT_FORMAT_VERSION = 1

#: afir gain options that make ffmpeg 5.x compute the plain convolution (gtype=none doubles the gain).
FFMPEG_AFIR_GAIN = "gtype=none:irgain=0.5"
#: ffmpeg 5.1's named channels in channel-mask (= channel index) order; 3·D of them are needed.
_FFMPEG_CHANNELS = ("FL", "FR", "FC", "LFE", "BL", "BR", "FLC", "FRC", "BC", "SL", "SR", "TC", "TFL", "TFC",
                    "TFR", "TBL", "TBC", "TBR", "DL", "DR", "WL", "WR", "SDL", "SDR", "LFE2", "TSL", "TSR",
                    "BFC", "BFL", "BFR")
FFMPEG_MAX_DRIVERS = len(_FFMPEG_CHANNELS) // 3
_FFMPEG_IR_MULTIPLE = 64  # afir IR padding (see the module docstring)
_FFMPEG_MAX_IR_SECONDS = 60.0  # afir's maxir limit
_UPMIX_FILTER = "surround=chl_in=stereo:chl_out=3.0"

#: torchaudio.functional.resample settings: Kaiser-windowed sinc, 64 zero crossings per side, the
#: "kaiser_best" setting of resampy/librosa. Measured response (tests/test_export.py): flat within
#: 0.03 dB up to 0.9 × the lower Nyquist, −0.1 dB at 0.908, −1 dB at 0.925, −6 dB at 0.9475 and more
#: than 60 dB down at the lower Nyquist.
RESAMPLE_OPTIONS = {"lowpass_filter_width": 64, "rolloff": 0.9475, "resampling_method": "sinc_interp_kaiser",
                    "beta": 14.769656459379492}
#: the resampled filters are flat (±0.03 dB) below this fraction of the lower Nyquist frequency.
PASSBAND_FRACTION = 0.9
#: ... and 1 dB down at this fraction: a driver whose band_hz reaches above it loses part of its band.
CUT_FRACTION = 0.925
_CONTENT_THRESHOLD_DB = -40.0  # fallback test: energy above PASSBAND_FRACTION × new Nyquist
_TRIM_REL = 1e-7  # resampled stages: leading/trailing taps below this × peak are dropped


class BandLimitWarning(UserWarning):
    """Resampling to a lower rate removes part of a driver's usable band."""


# =============================================================================================
# Exports
# =============================================================================================


def _check_formats(formats) -> tuple[str, ...]:
    if isinstance(formats, str):
        formats = [formats]
    try:
        formats = [str(f).strip() for f in formats]
    except TypeError:
        raise ConfigError("formats", formats, f"must be a list drawn from {list(EXPORT_FORMATS)}") from None
    unknown = [f for f in formats if f not in EXPORT_FORMATS]
    if unknown or not formats:
        raise ConfigError("formats", formats, f"must be a non-empty list drawn from {list(EXPORT_FORMATS)}"
                                              + (f" (unknown: {', '.join(map(repr, unknown))})" if unknown else ""))
    return tuple(f for f in EXPORT_FORMATS if f in formats)  # canonical order, no duplicates


def _integer_rate(filterset, what: str) -> int:
    rate = float(filterset.sample_rate)
    if not (math.isfinite(rate) and rate == round(rate) and rate >= 1):
        raise DataError(f"{what}: sample_rate={rate!r} Hz is not a whole number of Hz (WAV files and audio engines "
                        "need one); resample the filter set first (spatialopt-export ... sample_rate=HZ)")
    return int(round(rate))


def _wav_names(filterset) -> list[str]:
    return [f"{name}.wav" for name in filterset.channel_names]


def export_wav(filterset, out_dir) -> list[Path]:
    """Write one float32 WAV per input channel: ``<out_dir>/<channel>.wav`` for channels L, R, C.

    File c holds ``fir[c]`` transposed: T frames × D WAV channels (WAV channel d = driver d in
    ``driver_names`` order) at the filter set's sample rate, subtype FLOAT — the taps bit-exactly.
    Each file is written atomically.

    Args:
        filterset: :class:`~spatialopt.filterset.FilterSet` (integer sample rate).
        out_dir: directory (created if absent).

    Returns:
        the three paths, in channel order.
    """
    import soundfile as sf

    rate = _integer_rate(filterset, "cannot write WAV filters")
    fir = filterset.fir.detach().to("cpu", torch.float32).numpy()
    out_dir = Path(out_dir)
    paths = []
    for c, name in enumerate(_wav_names(filterset)):
        path = out_dir / name
        with atomic_path(path, suffix=".wav") as tmp, sound_file_errors(path):  # disk full: an OSError
            sf.write(str(tmp), fir[c].T.copy(), rate, subtype="FLOAT", format="WAV")
        paths.append(path)
    return paths


def _filter_name(channel: str, d: int, driver: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", driver).strip("_") or "driver"
    return f"{channel}_to_{d}_{safe}"


def camilladsp_config(filterset, chunksize: int = 1024) -> dict:
    """The CamillaDSP v2 configuration (a plain dict, as written to ``camilladsp.yml``).

    Structure (D drivers, channels c = 0, 1, 2 for L, R, C; k = c·D + d):

    * ``devices``: samplerate = the set's rate, capture ``Stdin`` 3 channels FLOAT32LE, playback
      ``Stdout`` D channels FLOAT32LE (placeholders to adapt);
    * ``mixers.fan_out`` (3 → 3·D): output k ← input c at 0 dB;
    * ``filters``: one ``Conv`` filter per (c, d), parameters ``{type: Wav, filename: <channel>.wav,
      channel: d}`` — file names relative to the configuration file's directory, where CamillaDSP
      (≥ 0.5) looks first for relative coefficient paths, so the export directory can be moved;
    * ``pipeline``: ``fan_out``, then on channel k the filter (c, d), then ``sum_to_drivers``;
    * ``mixers.sum_to_drivers`` (3·D → D): output d ← inputs d, D + d, 2D + d at 0 dB (gain 1).

    Only keys that CamillaDSP v1 and v2 both accept are used (mixer sources give ``gain`` and
    ``inverted``; filter steps use v2's ``channel``; v3 renamed it ``channels``).
    """
    rate = _integer_rate(filterset, "cannot write the CamillaDSP configuration")
    n_drv = filterset.n_drivers
    channels = list(filterset.channel_names)
    names = {}
    filters = {}
    for c, ch in enumerate(channels):
        for d, drv in enumerate(filterset.driver_names):
            name = _filter_name(ch, d, drv)
            names[c, d] = name
            filters[name] = {"type": "Conv", "parameters": {"type": "Wav", "filename": f"{ch}.wav", "channel": d}}
    fan_out = {
        "channels": {"in": len(channels), "out": len(channels) * n_drv},
        "mapping": [{"dest": c * n_drv + d, "sources": [{"channel": c, "gain": 0.0, "inverted": False}]}
                    for c in range(len(channels)) for d in range(n_drv)],
    }
    summing = {
        "channels": {"in": len(channels) * n_drv, "out": n_drv},
        "mapping": [{"dest": d, "sources": [{"channel": c * n_drv + d, "gain": 0.0, "inverted": False}
                                            for c in range(len(channels))]}
                    for d in range(n_drv)],
    }
    pipeline = [{"type": "Mixer", "name": "fan_out"}]
    pipeline += [{"type": "Filter", "channel": c * n_drv + d, "names": [names[c, d]]}
                 for c in range(len(channels)) for d in range(n_drv)]
    pipeline.append({"type": "Mixer", "name": "sum_to_drivers"})
    return {
        "devices": {
            "samplerate": rate,
            "chunksize": int(chunksize),
            "capture": {"type": "Stdin", "channels": len(channels), "format": "FLOAT32LE"},
            "playback": {"type": "Stdout", "channels": n_drv, "format": "FLOAT32LE"},
        },
        "mixers": {"fan_out": fan_out, "sum_to_drivers": summing},
        "filters": filters,
        "pipeline": pipeline,
    }


def export_camilladsp(filterset, out_dir) -> list[Path]:
    """Write ``<out_dir>/camilladsp.yml`` (CamillaDSP v2), see :func:`camilladsp_config`.

    The configuration reads the WAVs written by :func:`export_wav` into the same directory (relative
    file names). Comments at the top say how to adapt the devices. Written atomically.

    Returns:
        ``[path of camilladsp.yml]``.
    """
    import yaml

    cfg = camilladsp_config(filterset)
    rate = cfg["devices"]["samplerate"]
    n_drv = filterset.n_drivers
    drivers = ", ".join(f"{d} {name}" for d, name in enumerate(filterset.driver_names))
    header = f"""\
# CamillaDSP v2 configuration written by spatialopt {_version() or ''} — spatial filter set
# {n_drv} drivers × {filterset.n_taps} taps at {rate} Hz, modelling latency {filterset.latency_samples} samples.
#
# Inputs (capture channels): 0 L, 1 R, 2 C — an LRC signal (upmix stereo first).
# Outputs (playback channels): {drivers}.
# Routing: mixer fan_out copies input c to channels c·{n_drv} + d; channel c·{n_drv} + d is convolved with
# channel d of <c>.wav (Conv/Wav filters); mixer sum_to_drivers adds channels d, {n_drv}+d, {2 * n_drv}+d
# into output d, all at 0 dB: output d = sum_c (input c * h[c, d]).
#
# The filter files are given relative to this file's directory (CamillaDSP looks there first for
# relative coefficient paths), so keep this file next to L.wav, R.wav and C.wav, or make the paths absolute.
#
# Devices are placeholders that make the file complete and runnable as a pipe:
#   camilladsp camilladsp.yml < input.f32 > output.f32
# (interleaved float32 little-endian, 3 channels in, {n_drv} out, {rate} Hz), e.g. with ffmpeg:
#   ffmpeg -i lrc.wav -f f32le -ac 3 -ar {rate} - | camilladsp camilladsp.yml \\
#     | ffmpeg -f f32le -ac {n_drv} -ar {rate} -i - -c:a pcm_f32le drivers.wav
# To play on hardware, replace capture/playback with your backend, e.g. on Linux
#   capture:  {{type: Alsa, channels: 3, device: "hw:Loopback,1", format: S32LE}}
#   playback: {{type: Alsa, channels: {n_drv}, device: "hw:0", format: S32LE}}
# keeping samplerate {rate} (the filters are only valid at this rate; re-export with
# spatialopt-export ... sample_rate=HZ for another rate) and the channel counts (3 in, {n_drv} out).
# CamillaDSP v3 renamed the filter steps' "channel: k" to "channels: [k]".
"""
    text = header + yaml.safe_dump(cfg, sort_keys=False, default_flow_style=False, allow_unicode=True, width=120)
    path = Path(out_dir) / CAMILLADSP_NAME
    atomic_write_text(path, text)
    return [path]


def _ffmpeg_layout(n: int) -> str:
    return "+".join(_FFMPEG_CHANNELS[:n])


def _ffmpeg_check(filterset) -> tuple[int, int]:
    rate = _integer_rate(filterset, "cannot write the ffmpeg export")
    n_drv = filterset.n_drivers
    if n_drv > FFMPEG_MAX_DRIVERS:
        raise DataError(f"cannot write the ffmpeg export: {n_drv} drivers, but the afir graph handles at most "
                        f"{FFMPEG_MAX_DRIVERS} (3·D channels must be named ffmpeg channels; ffmpeg 5.1 has 30)")
    padded = _ffmpeg_ir_length(filterset.n_taps)
    if padded / rate > _FFMPEG_MAX_IR_SECONDS - 0.01:
        raise DataError(f"cannot write the ffmpeg export: {filterset.n_taps} taps at {rate} Hz are longer than "
                        f"afir's {_FFMPEG_MAX_IR_SECONDS:g} s limit")
    return rate, n_drv


def _ffmpeg_ir_length(n_taps: int) -> int:
    return max(_FFMPEG_IR_MULTIPLE, -(-n_taps // _FFMPEG_IR_MULTIPLE) * _FFMPEG_IR_MULTIPLE)


def _ffmpeg_graph_parts(n_drivers: int, n_taps: int, sample_rate: int) -> tuple[str, str]:
    """(part before the afir gain options, part after); the graph reads input label ``[0:a:0]``
    followed directly by the first filter of the chain (``asplit``)."""
    d_, n_ch = n_drivers, 3 * n_drivers
    big, small = _ffmpeg_layout(n_ch), _ffmpeg_layout(d_)
    names = _FFMPEG_CHANNELS
    copies = "".join(f"[s{d}]" for d in range(d_))
    fan_map = "|".join(f"{d}.{c}-{names[c * d_ + d]}" for c in range(3) for d in range(d_))
    ir_map = "|".join(f"{c}.{d}-{names[c * d_ + d]}" for c in range(3) for d in range(d_))
    relabel = "channelmap=map=" + "|".join(str(d) for d in range(d_)) + f":channel_layout={small}"
    padded = _ffmpeg_ir_length(n_taps)
    maxir = max(0.1, math.ceil(padded / sample_rate * 100.0) / 100.0 + 0.01)
    summing = "|".join(f"c{d}=c{d}+c{d_ + d}+c{2 * d_ + d}" for d in range(d_))
    head = (f"asplit={d_}{copies};"
            f"{copies}join=inputs={d_}:channel_layout={big}:map={fan_map}[x];"
            f"[1:a:0]{relabel}[h0];[2:a:0]{relabel}[h1];[3:a:0]{relabel}[h2];"
            f"[h0][h1][h2]join=inputs=3:channel_layout={big}:map={ir_map},apad=whole_len={padded}[ir];"
            f"[x][ir]afir=")
    tail = (f":irfmt=input:length=1:dry=1:wet=1:maxir={maxir:g}[y];"
            f"[y]pan={small}|{summing}[out]")
    return head, tail


def ffmpeg_filtergraph(n_drivers: int, n_taps: int, sample_rate: int, upmix: bool = False,
                       afir_gain: str = FFMPEG_AFIR_GAIN) -> str:
    """The ``-filter_complex`` graph of the ffmpeg export.

    Inputs: ``0`` the signal (3 channels L, R, C; or stereo with ``upmix=True``, upmixed by ffmpeg's
    ``surround=chl_in=stereo:chl_out=3.0``), ``1``/``2``/``3`` the WAVs ``L.wav``/``R.wav``/``C.wav``
    (D channels each). Output label ``[out]``: D channels, driver order.

    Args:
        n_drivers: D (≤ :data:`FFMPEG_MAX_DRIVERS`). n_taps: T. sample_rate: Hz (sets afir's maxir).
        upmix: prepend ffmpeg's own surround upmix (not spatialopt's upmix).
        afir_gain: afir options that make its gain exactly 1 (ffmpeg 5.x: :data:`FFMPEG_AFIR_GAIN`).
    """
    head, tail = _ffmpeg_graph_parts(n_drivers, n_taps, sample_rate)
    source = "[0:a:0]" + (_UPMIX_FILTER + "," if upmix else "")
    return source + head + afir_gain + tail


def _sq(text: str) -> str:
    """POSIX single-quoted shell word."""
    return "'" + text.replace("'", "'\\''") + "'"


def export_ffmpeg(filterset, out_dir) -> list[Path]:
    """Write ``render_ffmpeg.sh`` (executable) and ``ffmpeg_command.txt`` into ``out_dir``.

    ``render_ffmpeg.sh [--upmix] INPUT OUTPUT`` checks with ffprobe that INPUT has 3 channels (2 with
    ``--upmix``) at the filter set's rate, then runs ffmpeg with :func:`ffmpeg_filtergraph` and the
    WAVs next to the script (written by :func:`export_wav`); OUTPUT is a float32 WAV with D channels
    and as many samples as INPUT. For 3-channel input the output is the convolution
    ``y[d] = sum_c x[c] * h[c, d]`` (float32 rounding); ``--upmix`` prepends ffmpeg's ``surround``
    upmix, which is not spatialopt's and carries no such guarantee. ``ffmpeg_command.txt`` is the
    3-channel command on one line for ``input.wav`` → ``output.wav``, run in the export directory.

    Returns:
        the paths of the script and of the command file.

    Raises:
        DataError: more than :data:`FFMPEG_MAX_DRIVERS` drivers, a non-integer sample rate, or
            filters longer than afir's 60 s limit.
    """
    rate, n_drv = _ffmpeg_check(filterset)
    head, tail = _ffmpeg_graph_parts(n_drv, filterset.n_taps, rate)
    wavs = _wav_names(filterset)
    drivers = "\n".join(f"#   {d:2d}  {name}" for d, name in enumerate(filterset.driver_names))
    script = f"""\
#!/bin/sh
# render_ffmpeg.sh — apply a spatialopt filter set with ffmpeg's afir filter.
# Written by spatialopt {_version() or ''}: {n_drv} drivers × {filterset.n_taps} taps at {rate} Hz,
# modelling latency {filterset.latency_samples} samples.
#
# Usage: render_ffmpeg.sh [--upmix] INPUT OUTPUT
#   INPUT    3-channel audio in the order L, R, C at {rate} Hz (any format ffmpeg reads).
#            With --upmix: a stereo file, upmixed to L, R, C by ffmpeg's own "surround" filter
#            (surround=chl_in=stereo:chl_out=3.0). That is ffmpeg's upmix, NOT spatialopt's
#            (spatialopt-render uses its own); the exact-match guarantee below is for 3-channel input.
#   OUTPUT   float32 WAV (overwritten), one channel per driver:
{drivers}
#            with as many samples as INPUT (the filter tail after the end of INPUT is not rendered:
#            append {filterset.n_taps - 1} samples of silence to INPUT to keep all of it).
# For 3-channel input, output channel d = sum over c of (input channel c convolved with channel d of
# <c>.wav), i.e. exactly the filter set's FIR matrix (float32 rounding, ~1e-7 of full scale).
#
# Environment: FFMPEG, FFPROBE (the tools; default: ffmpeg, ffprobe on PATH),
#   SPATIALOPT_FFMPEG_LOGLEVEL (ffmpeg -loglevel, default: error),
#   SPATIALOPT_AFIR_GAIN (afir gain options; default {FFMPEG_AFIR_GAIN} for ffmpeg 5.x, whose
#   gtype=none doubles the gain; other ffmpeg versions must set it after checking the output level).
set -eu

PROG=render_ffmpeg.sh
RATE={rate}

die() {{
    printf '%s: error: %s\\n' "$PROG" "$*" >&2
    exit 2
}}

UPMIX=0
case "${{1:-}}" in
    --upmix) UPMIX=1; shift ;;
    -h|--help) sed -n '2,@HELP_END@p' "$0"; exit 0 ;;
esac
[ "$#" -eq 2 ] || die "usage: render_ffmpeg.sh [--upmix] INPUT OUTPUT"
INPUT=$1
OUTPUT=$2

HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd -P)
FFMPEG=${{FFMPEG:-ffmpeg}}
FFPROBE=${{FFPROBE:-ffprobe}}
command -v "$FFMPEG" >/dev/null 2>&1 || die "ffmpeg not found (install it, or set FFMPEG=/path/to/ffmpeg)"
command -v "$FFPROBE" >/dev/null 2>&1 || die "ffprobe not found (install it, or set FFPROBE=/path/to/ffprobe)"
for f in {' '.join(wavs)}; do
    [ -f "$HERE/$f" ] || die "missing $HERE/$f (keep this script next to its WAV files)"
done
[ -f "$INPUT" ] || die "input file not found: $INPUT"

if [ -n "${{SPATIALOPT_AFIR_GAIN:-}}" ]; then
    AFIR_GAIN=$SPATIALOPT_AFIR_GAIN
else
    VERSION=$("$FFMPEG" -hide_banner -version 2>/dev/null | sed -n '1p')
    case "$VERSION" in
        "ffmpeg version 5."*|"ffmpeg version n5."*) AFIR_GAIN='{FFMPEG_AFIR_GAIN}' ;;
        *) die "afir's gain options are verified for ffmpeg 5.x only (found: ${{VERSION:-unknown}}); \\
check your ffmpeg's afir gain and set SPATIALOPT_AFIR_GAIN, e.g. SPATIALOPT_AFIR_GAIN='{FFMPEG_AFIR_GAIN}' \\
(ffmpeg 5.x) or 'irnorm=-1:irgain=1' (ffmpeg versions with irnorm), then compare the output level" ;;
    esac
fi

INFO=$("$FFPROBE" -v error -select_streams a:0 -show_entries stream=channels,sample_rate \\
    -of default=noprint_wrappers=1 "file:$INPUT" 2>&1) || \\
    die "cannot read $INPUT: $(printf '%s\\n' "$INFO" | sed -n '1p')"
CHANNELS=$(printf '%s\\n' "$INFO" | sed -n 's/^channels=//p')
SRATE=$(printf '%s\\n' "$INFO" | sed -n 's/^sample_rate=//p')
[ -n "$CHANNELS" ] || die "$INPUT has no audio stream"
if [ "$UPMIX" -eq 1 ]; then
    [ "$CHANNELS" = 2 ] || die "$INPUT has $CHANNELS channels; --upmix needs a stereo input (use a 3-channel L, R, C input without --upmix)"
    SOURCE='[0:a:0]{_UPMIX_FILTER},'
else
    [ "$CHANNELS" = 3 ] || die "$INPUT has $CHANNELS channels; the filters need 3 (L, R, C in that order), or a stereo input with --upmix (ffmpeg's surround upmix)"
    SOURCE='[0:a:0]'
fi
[ "$SRATE" = "$RATE" ] || die "$INPUT is sampled at $SRATE Hz, the filters at $RATE Hz: resample the input (ffmpeg -i INPUT -ar $RATE ...) or export the filters at $SRATE Hz (spatialopt-export filterset=DIR sample_rate=$SRATE)"

GRAPH_HEAD={_sq(head)}
GRAPH_TAIL={_sq(tail)}
GRAPH="$SOURCE$GRAPH_HEAD$AFIR_GAIN$GRAPH_TAIL"

exec "$FFMPEG" -nostdin -hide_banner -loglevel "${{SPATIALOPT_FFMPEG_LOGLEVEL:-error}}" -y \\
    -i "file:$INPUT" {' '.join(f'-i "file:$HERE/{w}"' for w in wavs)} \\
    -filter_complex "$GRAPH" -map '[out]' -c:a pcm_f32le -rf64 auto -f wav "file:$OUTPUT"
"""
    script = script.replace("@HELP_END@", str(script.split("\n").index("set -eu")))
    out_dir = Path(out_dir)
    script_path = out_dir / FFMPEG_SCRIPT_NAME
    with atomic_path(script_path, suffix=".sh") as tmp:
        tmp.write_text(script, encoding="utf-8")
        os.chmod(tmp, 0o777 & ~_umask())
    graph = ffmpeg_filtergraph(n_drv, filterset.n_taps, rate)
    command = ("ffmpeg -nostdin -hide_banner -y -i input.wav " + " ".join(f"-i {w}" for w in wavs)
               + f" -filter_complex {_sq(graph)} -map '[out]' -c:a pcm_f32le -rf64 auto -f wav output.wav\n")
    command_path = out_dir / FFMPEG_COMMAND_NAME
    atomic_write_text(command_path, command)
    return [script_path, command_path]


def _readme(filterset, rate: int, formats: tuple[str, ...]) -> str:
    n_drv, taps, lat = filterset.n_drivers, filterset.n_taps, filterset.latency_samples
    drivers = "\n".join(f"  {d:2d}  {name}" for d, name in enumerate(filterset.driver_names))
    lines = [
        f"spatialopt filter-set export (spatialopt {_version() or 'unknown version'})",
        "",
        f"Sample rate: {rate} Hz. Taps per filter: {taps} ({taps / rate * 1000:.2f} ms).",
        f"Latency: {lat} samples ({lat / rate * 1000:.3f} ms) — the design's modelling delay, the bulk",
        "delay the filters add to the signal path.",
        "",
        "Input channels (order everywhere): 0 L, 1 R, 2 C — an LRC signal (stereo must be upmixed first).",
        f"Output channels = drivers ({n_drv}), in this order:",
        drivers,
        "",
        "Every engine computes, for input x (channels L, R, C) and taps h (3 x D x T):",
        "  y[d] = sum over c of (x[c] convolved with h[c, d])",
        "",
        "Files:",
        "  L.wav, R.wav, C.wav   the FIR taps of input channel L, R, C: float32 WAV, one WAV channel per",
        f"                        driver (channel d = driver d above), {taps} frames at {rate} Hz.",
        "                        Bit-exact copies of the filter set's composite taps (fir).",
    ]
    if "camilladsp" in formats:
        lines += [
            "  camilladsp.yml        CamillaDSP v2 configuration: 3 inputs -> 3 x D Conv filters (Wav) -> D outputs.",
            "                        Devices are Stdin/Stdout placeholders; see the comments at its top.",
            "                        Keep it next to the WAV files (paths are relative to its directory).",
        ]
    if "ffmpeg" in formats:
        lines += [
            "  render_ffmpeg.sh      ./render_ffmpeg.sh [--upmix] INPUT OUTPUT — renders a 3-channel (L, R, C)",
            "                        file through the filters with ffmpeg's afir into a float32 WAV with one",
            "                        channel per driver. --upmix accepts stereo and upmixes it with ffmpeg's",
            "                        own surround filter (not spatialopt's upmix; no exactness guarantee).",
            "                        The afir gain options are verified for ffmpeg 5.x (gtype=none doubles the",
            "                        gain there, irgain=0.5 compensates); other versions need SPATIALOPT_AFIR_GAIN.",
            "  ffmpeg_command.txt    the same ffmpeg command on one line, for input.wav -> output.wav,",
            "                        to run in this directory.",
        ]
    lines += [
        f"  {EXPORT_MANIFEST}           machine-readable summary of this export.",
        "",
        "The output of the engines has as many samples as the input: the filter tail after the end of",
        "the input is not rendered (append T - 1 samples of silence to keep it).",
        "",
    ]
    return "\n".join(lines)


def export_filterset(filterset, out_dir, formats: Iterable[str] = EXPORT_FORMATS) -> dict[str, list[Path]]:
    """Export a filter set for audio engines into the directory ``out_dir``, atomically.

    The WAVs (:func:`export_wav`) are always written (every engine format reads them); then the
    requested engine formats (:func:`export_camilladsp`, :func:`export_ffmpeg`), ``README.txt`` and
    ``export.json``. Everything is built in a hidden temporary directory beside ``out_dir`` and
    renamed into place: an existing export at ``out_dir`` is replaced as a whole (files of formats not
    requested this time disappear), an absent or empty directory is filled; any other non-empty
    directory (e.g. the filter set itself) is refused. On any error nothing changes at ``out_dir``.

    Args:
        filterset: :class:`~spatialopt.filterset.FilterSet` (validated first; whole-Hz sample rate).
        out_dir: the export directory.
        formats: any of ``"wav"``, ``"camilladsp"``, ``"ffmpeg"`` (a string or an iterable).

    Returns:
        ``{"wav": [L.wav, R.wav, C.wav], "camilladsp": [...], "ffmpeg": [...], "readme": [README.txt],
        "manifest": [export.json]}`` — final paths, keys for the formats written.

    Raises:
        ConfigError: unknown format.
        DataError: invalid filter set, a format that cannot represent it (see the per-format
            functions), or ``out_dir`` cannot be written (the message names it).
    """
    formats = _check_formats(formats)
    filterset.validate("cannot export filter set")
    rate = _integer_rate(filterset, "cannot export filter set")
    if "ffmpeg" in formats:
        _ffmpeg_check(filterset)
    target = Path(os.path.abspath(os.fspath(out_dir)))
    where = f"cannot export to {target}"
    if os.path.lexists(target):
        if not target.is_dir():
            raise DataError(f"{where}: exists and is not a directory")
        try:
            non_empty = any(target.iterdir())
        except OSError as exc:
            raise DataError(f"{where}: {_one_line(exc)}") from None
        if non_empty and not (target / EXPORT_MANIFEST).is_file():
            raise DataError(f"{where}: a non-empty directory that is not a spatialopt export (no {EXPORT_MANIFEST}); "
                            "refusing to replace it — choose an empty or new directory")
    tmp: Path | None = None
    try:
        make_directory(target.parent)
        tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
        written = {"wav": export_wav(filterset, tmp)}
        if "camilladsp" in formats:
            written["camilladsp"] = export_camilladsp(filterset, tmp)
        if "ffmpeg" in formats:
            written["ffmpeg"] = export_ffmpeg(filterset, tmp)
        atomic_write_text(tmp / README_NAME, _readme(filterset, rate, formats))
        written["readme"] = [tmp / README_NAME]
        manifest = {
            "format": "spatialopt-export",
            "format_version": EXPORT_FORMAT_VERSION,
            "formats": list(formats),
            "files": {key: [p.name for p in paths] for key, paths in written.items()} | {"manifest": [EXPORT_MANIFEST]},
            "sample_rate": rate,
            "n_taps": filterset.n_taps,
            "channel_names": list(filterset.channel_names),
            "driver_names": list(filterset.driver_names),
            "latency_samples": int(filterset.latency_samples),
            "ffmpeg_afir_gain": FFMPEG_AFIR_GAIN if "ffmpeg" in formats else None,
            "filterset_created": (filterset.provenance or {}).get("created"),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "spatialopt_version": _version(),
        }
        atomic_write_text(tmp / EXPORT_MANIFEST, json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        written["manifest"] = [tmp / EXPORT_MANIFEST]
        mask = _umask()
        for paths in written.values():  # mkstemp/mkdtemp create 0600/0700: make the export readable
            for p in paths:
                if not os.access(p, os.X_OK):
                    os.chmod(p, 0o666 & ~mask)
        os.chmod(tmp, 0o777 & ~mask)
        swap_directory_into_place(tmp, target)
        tmp = None
    except OSError as exc:
        reason = _one_line(exc)
        if exc.strerror and exc.filename:  # a file in the hidden work directory: name it as it would be in out_dir
            name = str(exc.filename)
            name = str(target / os.path.relpath(name, tmp)) if tmp is not None and name.startswith(str(tmp)) else name
            reason = f"{exc.strerror} ({name})"
        raise DataError(f"{where}: {reason}") from None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    return {key: [target / p.name for p in paths] for key, paths in written.items()}


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _version() -> str | None:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("spatialopt")
    except (ImportError, PackageNotFoundError):  # pragma: no cover - depends on the install
        return None


# =============================================================================================
# Resampling
# =============================================================================================


def _check_rate(value, key: str, error=ConfigError) -> int:
    from spatialopt.filterset import MAX_SAMPLE_RATE

    ok = isinstance(value, numbers.Real) and not isinstance(value, (bool, np_bool)) and math.isfinite(value)
    if not ok or value != round(value) or not 1 <= value <= MAX_SAMPLE_RATE:
        if error is ConfigError:
            raise ConfigError(key, value, f"must be a whole number of Hz in 1..{MAX_SAMPLE_RATE:g}")
        raise DataError(f"{key}={value!r}: resampling needs a whole number of Hz")
    return int(round(value))


def _resample_support(x: Tensor, offset: int, old: int, new: int) -> tuple[Tensor, int]:
    """Band-limited resampling of taps over the whole support of the interpolation.

    Args:
        x: (..., L) float64 taps at old-rate sample times ``offset + [0, L)``.

    Returns:
        ``(y, start)``: y (..., L') float64 at new-rate sample times ``start + [0, L')``, covering the
        interpolation's pre- and post-ringing, scaled by old/new so that the frequency response is kept
        (y's DTFT at f equals x's below the passband edge).
    """
    import torch.nn.functional as F
    import torchaudio.functional as AF

    g = math.gcd(old, new)
    m, n = old // g, new // g
    half = math.ceil(RESAMPLE_OPTIONS["lowpass_filter_width"] / (RESAMPLE_OPTIONS["rolloff"] * min(1.0, new / old))) + 2
    first = ((offset - half) // m) * m  # a multiple of m: lands on the new grid
    xp = F.pad(x, (offset - first, half + m))
    y = AF.resample(xp, old, new, **RESAMPLE_OPTIONS) * (old / new)
    return y, first // m * n


def _trim(y: Tensor, start: int) -> tuple[Tensor, int]:
    """Drop leading/trailing taps whose magnitude (max over the leading dims) is below _TRIM_REL × peak."""
    mag = y.abs().reshape(-1, y.shape[-1]).amax(0)
    peak = float(mag.max()) if mag.numel() else 0.0
    if peak == 0.0:
        return y[..., :1].clone(), max(start, 0)
    keep = torch.nonzero(mag > _TRIM_REL * peak).flatten()
    lo, hi = int(keep[0]), int(keep[-1])
    return y[..., lo:hi + 1], start + lo


def _split_drop(a: Tensor, a_s: int, b: Tensor, b_s: int) -> tuple[int, int]:
    """Leading taps to drop from two stages whose convolution would start before time 0.

    ``a`` starts at time ``a_s``, ``b`` at ``b_s`` with ``a_s + b_s < 0``; after dropping ``i`` taps
    of ``a`` and ``j`` of ``b`` the product starts at ``a_s + i + b_s + j = 0``. The split minimises
    the energy lost, estimated as ‖a dropped‖²‖b‖² + ‖a kept‖²‖b dropped‖² (cross terms ignored).
    """
    need = -(a_s + b_s)
    ea = torch.cumsum(a.square().reshape(-1, a.shape[-1]).sum(0), 0)  # energy of a[:k+1]
    eb = torch.cumsum(b.square().reshape(-1, b.shape[-1]).sum(0), 0)
    ta, tb = float(ea[-1]), float(eb[-1])
    best, best_i = math.inf, None
    for i in range(max(0, need - (b.shape[-1] - 1)), min(need, a.shape[-1] - 1) + 1):
        j = need - i
        lost_a = float(ea[i - 1]) if i else 0.0
        lost_b = float(eb[j - 1]) if j else 0.0
        lost = lost_a * tb + (ta - lost_a) * lost_b
        if lost < best:
            best, best_i = lost, i
    if best_i is None:  # pragma: no cover - stages shorter than their own ringing cannot happen
        raise DataError("resampling: stages too short to hold their resampled support")
    return best_i, need - best_i


def resample_taps(taps: Tensor, orig_hz: int, new_hz: int) -> Tensor:
    """Resample FIR taps (..., L) from ``orig_hz`` to ``new_hz`` keeping their frequency response.

    ``torchaudio.functional.resample`` with :data:`RESAMPLE_OPTIONS`, scaled by orig/new (an
    impulse response, not a signal: the DTFT is kept below the passband edge, e.g. the sum of the
    taps — the DC gain — is unchanged). Output length ``ceil(L · new/orig)``, starting at time 0; the
    interpolation's ringing before time 0 and after the end is cut (see :func:`resample_filterset`,
    which keeps it). Computed in float64, returned in the input's dtype.
    """
    import torchaudio.functional as AF

    old, new = _check_rate(orig_hz, "orig_hz"), _check_rate(new_hz, "new_hz")
    y = AF.resample(taps.detach().to(torch.float64), old, new, **RESAMPLE_OPTIONS) * (old / new)
    return y.to(taps.dtype)


def _driver_bands(filterset) -> list[tuple[float, float] | None]:
    """band_hz of each driver from ``config["device"]["drivers"]`` (by name, else by position)."""
    cfg = filterset.config if isinstance(filterset.config, dict) else {}
    device = cfg.get("device") if isinstance(cfg.get("device"), dict) else {}
    entries = device.get("drivers") if isinstance(device.get("drivers"), list) else []
    entries = [e for e in entries if isinstance(e, dict)]
    by_name = {e.get("name"): e for e in entries if isinstance(e.get("name"), str)}
    out = []
    for d, name in enumerate(filterset.driver_names):
        entry = by_name.get(name)
        if entry is None and len(entries) == filterset.n_drivers and not by_name:
            entry = entries[d]
        band = entry.get("band_hz") if entry else None
        try:
            lo, hi = (float(b) for b in band)
            out.append((lo, hi) if math.isfinite(lo) and math.isfinite(hi) and hi > lo else None)
        except (TypeError, ValueError):
            out.append(None)
    return out


def _band_limit_losses(filterset, old: int, new: int) -> list[str]:
    """One description per driver that loses part of its band when going from ``old`` to ``new`` Hz."""
    nyq = new / 2.0
    cut, flat = CUT_FRACTION * nyq, PASSBAND_FRACTION * nyq
    bands = _driver_bands(filterset)
    fir = filterset.fir.detach().to("cpu", torch.float64)
    n_fft = 1 << max(10, (2 * fir.shape[-1] - 1).bit_length())
    power = torch.fft.rfft(fir, n_fft).abs().square().sum(0)  # (D, F): summed over input channels
    freqs = torch.fft.rfftfreq(n_fft, 1.0 / old, dtype=torch.float64)
    losses = []
    for d, name in enumerate(filterset.driver_names):
        band = bands[d]
        if band is not None:
            lo, hi = band
            if hi > cut:
                lost_lo, lost_hi = max(lo, cut), min(hi, old / 2.0)
                losses.append(f"{name} (band_hz [{lo:g}, {hi:g}]: {lost_lo:.0f}-{lost_hi:.0f} Hz lost)")
            continue
        total = float(power[d].sum())
        if total <= 0.0:
            continue
        above = float(power[d, freqs > flat].sum())
        if above > 0.0 and 10 * math.log10(above / total) > _CONTENT_THRESHOLD_DB:
            losses.append(f"{name} (no band_hz; {flat:.0f}-{old / 2:.0f} Hz lost: "
                          f"{10 * math.log10(above / total):.1f} dB of its energy)")
    return losses


def resample_filterset(filterset, sample_rate, add_latency: bool = True) -> "FilterSet":
    """The filter set at another sample rate, band-limited, recomposed from resampled stages.

    Each stage (``ctc`` (2, D, T_ctc), ``virtualizer`` (2, T_v), ``beam`` (D, T_beam)) is resampled
    with ``torchaudio.functional.resample`` (:data:`RESAMPLE_OPTIONS`: Kaiser-windowed sinc,
    ``lowpass_filter_width=64``, ``rolloff=0.9475``, β = 14.77) and scaled by old/new rate, so each
    stage keeps its frequency response (flat within 0.03 dB up to 0.9 × the lower Nyquist, −1 dB at
    0.925 ×, −6 dB at 0.9475 ×, nothing above). Then ``fir`` is recomposed from the resampled stages
    (:meth:`FilterSet.from_stages`), so the set stays self-consistent (``check_composition`` holds).
    Below 0.9 × the lower Nyquist the recomposed composite matches the directly resampled composite
    within the resampler's passband ripple (~0.03 dB, tested); above, the L/R paths (a product of two
    resampled stages) are low-passed twice (e.g. −2 dB instead of −1 dB at 0.925 × Nyquist).

    Timing is kept exactly, not rounded: each stage is resampled on the composite's time axis (the
    CTC stage together with its alignment delay ``lr_delay``, the beam with ``c_delay``), over the
    whole support of the interpolation — its ringing before and after the taps is kept (taps below
    1e-7 of a stage's peak are trimmed). The new whole-sample delays are what precedes each stage's
    first kept tap (≈ old delay × new/old; the fractional part is carried by the taps), so tap
    counts grow by the ringing (up to ~2 × 70 samples per stage) instead of being merely scaled.

    Ringing before the first tap needs room before time 0. With ``add_latency=True`` (default) both
    paths are shifted later by the few samples needed (0 when the delays leave room; at most ~2 × 70
    samples at 44.1/48 kHz, ~2 × 135 at 96 kHz), added to ``latency_samples`` and recorded as
    ``config["resample"]["added_latency_samples"]``: the set is then the band-limited resampling of
    the original up to that bulk delay. With ``add_latency=False`` the latency is only scaled and
    rounded and ringing that would fall before time 0 is cut (for an L/R path, the cut is split
    between the CTC and virtualizer stages to lose the least energy), which costs accuracy when a
    path starts within ~70 samples of time 0.

    ``n_taps`` is ``ceil(T · new/old)`` plus the added latency, extended to hold every path whole
    when the original composite held every path whole. ``latency_samples`` is scaled and rounded
    (plus the added latency).

    Downsampling removes everything above the lower Nyquist: a :class:`BandLimitWarning` names the
    drivers that lose part of their band — drivers whose ``config["device"]["drivers"][i]["band_hz"]``
    reaches above :data:`CUT_FRACTION` × the new Nyquist (the resampler's −1 dB point), or, for a
    driver without ``band_hz``, whose composite taps carry more than −40 dB of their energy above
    :data:`PASSBAND_FRACTION` × the new Nyquist — with the lost band in Hz. Upsampling warns about
    nothing, but the result is band-limited to the old Nyquist (nothing above ≈ 0.95 × old/2): it
    only changes the rate, not the content.

    Metadata: ``driver_names``, ``driver_positions``, ``upmix`` (rate-independent parameters) and
    ``channel_names`` are carried; ``config`` is copied with ``fs`` (if present) set to the new rate
    and ``resampled_from_hz`` (the old rate) and ``resample`` (method, options, added latency) added;
    ``metrics`` is None (they were measured at the old rate).

    Args:
        filterset: :class:`~spatialopt.filterset.FilterSet` with a whole-Hz sample rate.
        sample_rate: the new rate, a whole number of Hz.
        add_latency: keep the whole band-limited support by delaying the set (see above).

    Returns:
        a new :class:`FilterSet` at ``sample_rate`` (the same rate: an unchanged copy).

    Raises:
        ConfigError: ``sample_rate`` is not a whole, positive number of Hz.
        DataError: the filter set's own rate is not a whole number of Hz, or the result is too long.
    """
    import copy

    from spatialopt.filterset import MAX_TAPS, FilterSet

    new = _check_rate(sample_rate, "sample_rate")
    old = _check_rate(float(filterset.sample_rate), "filter set sample_rate", error=DataError)
    common = dict(driver_positions=None if filterset.driver_positions is None else torch.as_tensor(filterset.driver_positions).clone(),
                  upmix=dict(filterset.upmix or {}), channel_names=list(filterset.channel_names))
    lr, cd = int(filterset.delays["lr_delay"]), int(filterset.delays["c_delay"])
    st = {k: v.detach().to("cpu", torch.float64) for k, v in filterset.stages.items()}
    if new == old:
        return copy.deepcopy(filterset)
    ratio = new / old
    if new < old:
        losses = _band_limit_losses(filterset, old, new)
        if losses:
            warnings.warn(f"resampling {old} Hz -> {new} Hz cuts into the band of {len(losses)} driver(s): "
                          + "; ".join(losses) + f" (the resampled filters are flat up to {PASSBAND_FRACTION * new / 2:.0f} Hz, "
                          f"-1 dB at {CUT_FRACTION * new / 2:.0f} Hz, silent above {new / 2:.0f} Hz)",
                          BandLimitWarning, stacklevel=2)

    ctc, ctc_s = _trim(*_resample_support(st["ctc"], lr, old, new))
    virt, v_s = _trim(*_resample_support(st["virtualizer"], 0, old, new))
    beam, b_s = _trim(*_resample_support(st["beam"], cd, old, new))
    # L/R path = z^-lr' (ctc ⋆ virt) starts at ctc_s + v_s, the C path at b_s (new-rate samples)
    shift = max(0, -(ctc_s + v_s), -b_s) if add_latency else 0
    new_lr = max(0, ctc_s + v_s + shift)
    if ctc_s + v_s + shift < 0:  # only without add_latency: cut the ringing before time 0
        drop_c, drop_v = _split_drop(ctc, ctc_s + shift, virt, v_s)
        ctc, virt = ctc[..., drop_c:], virt[..., drop_v:]
    new_cd = max(0, b_s + shift)
    beam = beam[..., min(new_cd - (b_s + shift), beam.shape[-1] - 1):]

    t_old = filterset.n_taps
    held = (lr + st["ctc"].shape[-1] + st["virtualizer"].shape[-1] - 1 <= t_old
            and cd + st["beam"].shape[-1] <= t_old)
    n_taps = math.ceil(t_old * ratio) + shift
    if held:
        n_taps = max(n_taps, new_lr + ctc.shape[-1] + virt.shape[-1] - 1, new_cd + beam.shape[-1])
    if n_taps > MAX_TAPS or max(ctc.shape[-1], virt.shape[-1], beam.shape[-1]) > MAX_TAPS:
        raise DataError(f"resampling to {new} Hz: {n_taps} taps exceed the {MAX_TAPS} allowed")

    config = copy.deepcopy(filterset.config) if isinstance(filterset.config, dict) else {}
    if "fs" in config:
        config["fs"] = new
    config["resampled_from_hz"] = old
    config["resample"] = {"method": "torchaudio.functional.resample", **RESAMPLE_OPTIONS,
                          "from_hz": old, "to_hz": new, "added_latency_samples": shift}
    return FilterSet.from_stages(ctc, virt, beam, new_lr, new_cd, n_taps, new, list(filterset.driver_names),
                                 int(math.floor(filterset.latency_samples * ratio + 0.5)) + shift,
                                 config=config, metrics=None, **common)
