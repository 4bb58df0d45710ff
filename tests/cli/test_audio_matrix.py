"""The audio-content matrix of ``spatialopt-render`` (issue 6): every content class through the
real command-line path (``run(argv)`` in-process; one subprocess for the long file), checked
against an independent float64 convolution of the same taps (scipy) with stated tolerances.

Content classes: silence, DC, full-scale square waves (float output exact; PCM output limited,
never wrapped), subnormals (flushed to zero, not slow), NaN/Inf (one line naming file, channel,
frame and time; no output), float32 overflow (one line), 1-sample and empty inputs, a long file
(streamed: peak memory independent of length), and every WAV subtype libsndfile writes × channel
counts 1–3 (rendered) and 4–8 (refused) in the WAV, WAVEX and RF64 containers, plus the output
subtypes the CLI offers.

References: a 3-channel file is L, R, C and bypasses the upmix, so its output is exactly
``Σ_c x_c ⊛ h[c, d]`` (float32 rendering: 1e-5 of the peak). Mono and stereo go through the LRC
upmix; their reference is the offline :func:`spatialopt.dsp.upmix.upmix` of the decoded samples
followed by the same convolution (streaming vs offline upmix: 1e-4 of the peak, as in
``test_render_cli.py``).
"""

from __future__ import annotations

import json
import math
import resource
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import signal

from spatialopt.cli.render import run
from spatialopt.dsp.upmix import DEFAULTS as UPMIX_DEFAULTS
from spatialopt.dsp.upmix import upmix

pytestmark = pytest.mark.usefixtures("single_thread")

FS = 48000
T = 200  # taps of the conftest render set
CEILING = 10 ** (-1 / 20)  # the CLI's default ceiling_db = −1
FLT_TINY = float(np.finfo(np.float32).tiny)

# Largest |decoded − written| for samples within ±0.9, per input subtype (read as float32):
# one quantisation step of the format (µ/A-law: one step of the top segment, 1/32).
STEP = {"PCM_U8": 2**-7, "PCM_16": 2**-15, "PCM_24": 2**-23, "PCM_32": 2**-24, "FLOAT": 2**-24,
        "DOUBLE": 2**-24, "ULAW": 2**-5, "ALAW": 2**-5}
SUBTYPES = list(STEP)
LSB = {"PCM_16": 2**-15, "PCM_24": 2**-23}


# ------------------------------------------------------------------------------------------------
# helpers
# ------------------------------------------------------------------------------------------------

def _write(path, x, rate=FS, subtype="FLOAT", fmt="WAV"):
    """(C, S) samples → a WAV (float64 data; int16 data is written raw)."""
    x = np.asarray(x)
    sf.write(str(path), x.T if x.dtype == np.int16 else x.astype(np.float64).T, rate, subtype=subtype, format=fmt)
    return path


def _decoded(path) -> np.ndarray:
    """The file's samples as the renderer reads them: (C, S) float32."""
    y, _ = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(y.T)


def _conv(fir: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Full linear convolution Σ_c x_c ⊛ h[c, d] in float64 (scipy): (D, S + T − 1)."""
    x = np.asarray(x, dtype=np.float64)
    return signal.oaconvolve(x[:, None, :], fir.astype(np.float64), axes=-1).sum(0)


def _spread(fset) -> int:
    return int({**UPMIX_DEFAULTS, **fset.upmix}["n_fft"]) - 1  # upmix frames reach n_fft − 1 past the end


def _reference(fset, x: np.ndarray) -> np.ndarray:
    """What the CLI must write for input samples x (C, S) at FS: 3 channels → the convolution;
    1 channel → duplicated; 2 channels → the offline upmix, then the convolution."""
    fir = fset.fir.numpy()
    if x.shape[0] == 3:
        return _conv(fir, x)
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    spread = _spread(fset)
    padded = np.pad(np.asarray(x, dtype=np.float32), ((0, 0), (0, spread)))
    lrc = upmix(torch.from_numpy(padded)[None], fset.sample_rate, **fset.upmix)[0].numpy()
    return _conv(fir, lrc)[:, : x.shape[1] + spread + T - 1]


def _cli(capsys, inp, set_path, out, **opts):
    """Run the CLI in-process: (exit status, stdout lines, stderr lines)."""
    argv = [f"input={inp}", f"filterset={set_path}", f"output={out}", "progress=false"]
    argv += [f"{k}={v}" for k, v in opts.items()]
    capsys.readouterr()
    try:
        rc = run(argv)
    except SystemExit as exc:
        rc = exc.code
    cap = capsys.readouterr()
    return rc, cap.out.strip().splitlines(), cap.err.strip().splitlines()


def _render(capsys, tmp_path, set_path, inp, **opts):
    """Render ``inp``; asserts success; returns (output (D, n) float64, stdout lines)."""
    out = tmp_path / "out.wav"
    rc, lines, err = _cli(capsys, inp, set_path, out, **opts)
    assert rc == 0, err
    y, rate = sf.read(str(out), always_2d=True, dtype="float64")
    assert rate == FS
    return y.T, lines


def _refused(capsys, tmp_path, set_path, inp, *needles, **opts):
    """The CLI refuses ``inp``: exit status 2, exactly one stderr line containing every needle,
    and no output or temporary file left. Returns the line."""
    out = tmp_path / "out.wav"
    rc, _, err = _cli(capsys, inp, set_path, out, **opts)
    assert rc == 2 and len(err) == 1, err
    assert err[0].startswith("spatialopt-render: error: ") and all(n in err[0] for n in needles), err[0]
    assert not out.exists() and not list(tmp_path.glob(".out*")), list(tmp_path.iterdir())
    return err[0]


def _close(y, ref, rel, atol=0.0):
    """max |y − ref| ≤ rel · peak(ref) + atol (shapes equal)."""
    assert y.shape == ref.shape, (y.shape, ref.shape)
    err = float(np.abs(y - ref).max()) if y.size else 0.0
    bound = rel * float(np.abs(ref).max()) + atol
    assert err <= bound, f"max error {err:.3g} > {bound:.3g}"
    return err


def _square(n, period, phase=0, amplitude=1.0):
    return amplitude * np.where((np.arange(n) + phase) % period < period // 2, 1.0, -1.0)


# ------------------------------------------------------------------------------------------------
# every WAV subtype × channel count × container (inputs), and the output subtypes
# ------------------------------------------------------------------------------------------------

MATRIX = [(fmt, st, ch) for fmt in ("WAV", "WAVEX") for st in SUBTYPES for ch in (1, 2, 3)]
MATRIX += [("RF64", st, 3) for st in SUBTYPES]


@pytest.mark.parametrize("fmt, subtype, channels", MATRIX, ids=[f"{f}-{s}-{c}ch" for f, s, c in MATRIX])
def test_input_subtype_and_channel_count(render_set, tmp_path, capsys, fmt, subtype, channels):
    """Rendered; equal to the reference of the decoded samples (3 ch: 1e-5 of the peak; 1–2 ch,
    upmixed: 1e-4), and for 3 ch within the subtype's quantisation of the written signal:
    |y_d − ref_d| ≤ STEP · Σ_c,k |h[c, d, k]| + 1e-5 of the peak."""
    fset, path = render_set
    n = 1500
    x = np.random.default_rng(zlib.crc32(f"{fmt}{subtype}{channels}".encode())).uniform(-0.9, 0.9, (channels, n))
    inp = _write(tmp_path / "in.wav", x, subtype=subtype, fmt=fmt)
    y, lines = _render(capsys, tmp_path, path, inp, block_size=512)
    decoded = _decoded(inp)
    assert decoded.shape == (channels, n)
    assert np.abs(decoded - x).max() <= STEP[subtype]  # the file holds the signal (libsndfile's part)
    ref = _reference(fset, decoded)
    _close(y, ref, 1e-5 if channels == 3 else 1e-4)
    assert y.shape[1] == n + T - 1 + (0 if channels == 3 else _spread(fset))
    assert ("mono input duplicated to stereo" in lines) == (channels == 1)
    if channels == 3:
        fir = fset.fir.numpy().astype(np.float64)
        bound = STEP[subtype] * np.abs(fir).sum(axis=(0, 2))[:, None] + 1e-5 * np.abs(ref).max()
        assert np.all(np.abs(y - _conv(fir, x)) <= bound)


CODECS = [("IMA_ADPCM", 2), ("MS_ADPCM", 2), ("GSM610", 1), ("G721_32", 1), ("NMS_ADPCM_16", 1)]


@pytest.mark.parametrize("subtype, channels", CODECS, ids=[f"{s}-{c}ch" for s, c in CODECS])
def test_compressed_wav_codecs_render_their_decoded_samples(render_set, tmp_path, capsys, subtype, channels):
    """The lossy WAV codecs libsndfile writes (only for 1–2 channels): whatever it decodes is
    rendered exactly (reference of the decoded samples, 1e-4 of the peak)."""
    fset, path = render_set
    t = np.arange(2000) / FS
    x = np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 660 * t)])[:channels]
    inp = _write(tmp_path / "in.wav", x, subtype=subtype)
    y, _ = _render(capsys, tmp_path, path, inp)
    decoded = _decoded(inp)
    assert decoded.shape[1] > 0 and np.isfinite(decoded).all()
    _close(y, _reference(fset, decoded), 1e-4)


REFUSED = [(fmt, st, ch) for ch in (4, 5, 6, 8) for fmt, st in (("WAV", "PCM_16"), ("WAVEX", "FLOAT"))]


@pytest.mark.parametrize("fmt, subtype, channels", REFUSED, ids=[f"{f}-{s}-{c}ch" for f, s, c in REFUSED])
def test_unsupported_channel_count_is_one_line(render_set, tmp_path, capsys, fmt, subtype, channels):
    _, path = render_set
    inp = _write(tmp_path / "in.wav", np.zeros((channels, 300)), subtype=subtype, fmt=fmt)
    line = _refused(capsys, tmp_path, path, inp, str(inp), f"{channels} channels", "not supported")
    assert f"{channels} channels" in line


@pytest.mark.parametrize("subtype", ["FLOAT", "PCM_24", "PCM_16"])
def test_output_subtypes_below_the_ceiling_are_the_reference(render_set, tmp_path, capsys, subtype):
    """A signal whose output stays under the ceiling: no limiter, the file is the reference to
    the output format's quantisation (FLOAT: 1e-5 of the peak; PCM: 2 LSB, as libsndfile scales
    by 2^(b−1) − 1 on writing and 2^(b−1) on reading)."""
    fset, path = render_set
    x = np.random.default_rng(7).uniform(-0.1, 0.1, (3, 3000))
    inp = _write(tmp_path / "in.wav", x)
    y, lines = _render(capsys, tmp_path, path, inp, subtype=subtype)
    ref = _conv(fset.fir.numpy(), _decoded(inp))
    assert np.abs(ref).max() < 0.8 * CEILING  # the premise: no limiting needed
    assert sf.info(str(tmp_path / "out.wav")).subtype == subtype
    _close(y, ref, 1e-5, 2 * LSB.get(subtype, 0.0))
    assert len(lines) == 1 and subtype in lines[0] and "limiter" not in lines[0] and "CLIPPED" not in lines[0]


# ------------------------------------------------------------------------------------------------
# silence, DC
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subtype", SUBTYPES)
def test_silence_gives_zeros(render_set, tmp_path, capsys, subtype):
    """Digital silence renders to exact zeros (float output), the whole convolution long. A-law
    has no zero code: its "silence" decodes to +2^-12 (−72 dBFS), a DC the file then carries
    (equal to the reference, |y| ≤ 2^-12 · Σ|h|)."""
    fset, path = render_set
    inp = _write(tmp_path / "in.wav", np.zeros((3, 1000)), subtype=subtype)
    y, lines = _render(capsys, tmp_path, path, inp, block_size=256)
    assert y.shape == (5, 1000 + T - 1)
    if subtype == "ALAW":
        assert np.all(_decoded(inp) == np.float32(2**-12))
        _close(y, _conv(fset.fir.numpy(), _decoded(inp)), 1e-5)
        assert np.abs(y).max() <= 2**-12 * np.abs(fset.fir.numpy()).sum(axis=(0, 2)).max()
    else:
        assert np.all(y == 0.0) and "peak -inf dBFS" in lines[-1]


@pytest.mark.parametrize("channels, out_subtype", [(2, "FLOAT"), (1, "FLOAT"), (3, "PCM_16"), (2, "PCM_24")])
def test_silence_through_upmix_and_to_pcm_is_zero(render_set, tmp_path, capsys, channels, out_subtype):
    """The upmix of silence is silence (no 0/0 in its spectral weights), and PCM output of
    silence is all-zero samples (no limiter, no dither)."""
    fset, path = render_set
    inp = _write(tmp_path / "in.wav", np.zeros((channels, 2000)), subtype="PCM_16")
    y, lines = _render(capsys, tmp_path, path, inp, subtype=out_subtype)
    assert y.shape[1] == 2000 + T - 1 + (0 if channels == 3 else _spread(fset))
    assert np.all(y == 0.0) and "limiter" not in lines[-1]


def test_dc_is_dc_times_the_filter_sets_dc_gain(render_set, tmp_path, capsys):
    """3-channel DC: the output equals the reference (1e-5 of the peak) and, after the filters'
    transient (T − 1 samples) and before the input ends, is the constant Σ_c dc_c · Σ_k h[c, d, k]
    (to 1e-5 of it)."""
    fset, path = render_set
    dc = np.array([0.5, -0.25, 0.75])
    n = 3000
    inp = _write(tmp_path / "in.wav", np.repeat(dc[:, None], n, axis=1))
    y, _ = _render(capsys, tmp_path, path, inp, block_size=333)
    fir = fset.fir.numpy().astype(np.float64)
    _close(y, _conv(fir, _decoded(inp)), 1e-5)
    steady = np.einsum("c,cd->d", dc, fir.sum(-1))
    assert np.abs(y[:, T - 1: n] - steady[:, None]).max() <= 1e-5 * np.abs(steady).max()
    assert y.shape[1] == n + T - 1  # and the tail: Σ_c dc_c · Σ_{k > j} h[c, d, k] (in the reference)


def test_stereo_dc_goes_to_the_centre(render_set, tmp_path, capsys):
    """Stereo DC (L = R = a): the upmix sends everything below ``low_hz`` to C (bass_to_centre = 1),
    C = a / centre_gain and L' = R' = 0, so once the upmix has settled the output is the constant
    (a / g) · Σ_k h[C, d, k] (to 1e-4 of it); the reference upmix agrees everywhere (1e-4)."""
    fset, path = render_set
    a, g, n = 0.5, fset.upmix["centre_gain"], 12000
    inp = _write(tmp_path / "in.wav", np.full((2, n), a))
    y, _ = _render(capsys, tmp_path, path, inp)
    _close(y, _reference(fset, _decoded(inp)), 1e-4)
    steady = a / g * fset.fir.numpy().astype(np.float64)[2].sum(-1)
    assert np.abs(y[:, 8000:9000] - steady[:, None]).max() <= 1e-4 * np.abs(steady).max()


def test_full_scale_dc_in_pcm_is_limited(render_set, tmp_path, capsys):
    """Full-scale DC (int16 32767) in, PCM_16 out: the DC gain (up to 2.5 here) takes it over
    full scale, the limiter holds the file at the ceiling (+1 LSB)."""
    _, path = render_set
    inp = _write(tmp_path / "in.wav", np.full((3, 4000), 32767, dtype=np.int16), subtype="PCM_16")
    y, lines = _render(capsys, tmp_path, path, inp, subtype="PCM_16")
    assert np.abs(y).max() <= CEILING + LSB["PCM_16"] and np.abs(y).max() > CEILING - 0.01
    assert len(lines) == 1 and "limiter at -1 dBFS" in lines[0]


# ------------------------------------------------------------------------------------------------
# full-scale square waves
# ------------------------------------------------------------------------------------------------

def _squares(n=6000):
    return np.stack([_square(n, 480), _square(n, 128, 17), _square(n, 48, 5)])  # 100 Hz, 375 Hz, 1 kHz, ±1.0


def test_full_scale_squares_float_output_is_exact(render_set, tmp_path, capsys):
    """±1.0 squares in, float out: the reference within 1e-5 of the peak, peaks above full scale
    kept and said so."""
    fset, path = render_set
    inp = _write(tmp_path / "in.wav", _squares())
    y, lines = _render(capsys, tmp_path, path, inp)
    ref = _conv(fset.fir.numpy(), _squares())
    _close(y, ref, 1e-5)
    assert np.abs(ref).max() > 1.0 and "above full scale" in lines[-1]


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
@pytest.mark.parametrize("source", ["FLOAT", "PCM_16"])
def test_full_scale_squares_pcm_output_is_limited_never_wrapped(render_set, tmp_path, capsys, subtype, source):
    """±full-scale squares (float ±1.0, or int16 +32767/−32768) in, PCM out: the file stays under
    the ceiling (+1 LSB), the limiter is reported on one line, and every sample is g[n] · ref[d, n]
    with ONE gain 0 < g ≤ 1 per sample for all drivers (linked; to 4 LSB + 1e-5 of the peak) —
    so nothing wraps or changes sign. ``limiter=false``: hard clip at full scale, said loudly."""
    fset, path = render_set
    x = _squares()
    if source == "PCM_16":
        x = np.where(x > 0, 32767, -32768).astype(np.int16)
    inp = _write(tmp_path / "in.wav", x, subtype=source)
    ref = _conv(fset.fir.numpy(), _decoded(inp))
    y, lines = _render(capsys, tmp_path, path, inp, subtype=subtype)
    lsb = LSB[subtype]
    assert np.abs(y).max() <= CEILING + lsb
    assert len(lines) == 1 and "limiter at -1 dBFS" in lines[0] and subtype in lines[0]
    loud = np.argmax(np.abs(ref), axis=0)  # per sample, the driver with the largest reference
    cols = np.arange(ref.shape[1])
    big = np.abs(ref[loud, cols]) > 0.05
    gain = y[loud, cols][big] / ref[loud, cols][big]
    assert gain.min() > 0 and gain.max() <= 1 + 2 * lsb / 0.05 + 1e-4  # quantisation of a ≥ 0.05 sample
    tol = 4 * lsb + 1e-5 * np.abs(ref).max()  # g from one driver's quantised sample, applied to all
    assert np.abs(y[:, big] - gain * ref[:, big]).max() <= tol
    # limiter=false: clipped at full scale, no wrap-around (sign kept wherever the reference is loud)
    y, lines = _render(capsys, tmp_path, path, inp, subtype=subtype, limiter="false")
    assert np.abs(y).max() <= 1.0 and "CLIPPED" in lines[-1]
    loud = np.abs(ref) > 0.05
    assert np.all(np.sign(y[loud]) == np.sign(ref[loud]))
    assert np.all(np.abs(y - np.clip(ref, -1, 1)) <= 2 * lsb + 1e-5 * np.abs(ref).max())


def test_full_scale_stereo_squares_pcm_is_limited(render_set, tmp_path, capsys):
    """Through the upmix (anti-phase and in-phase squares): finite, under the ceiling, limited."""
    _, path = render_set
    s = _square(6000, 96)
    inp = _write(tmp_path / "in.wav", np.stack([s, np.where(np.arange(6000) < 3000, s, -s)]))
    y, lines = _render(capsys, tmp_path, path, inp, subtype="PCM_16")
    assert np.isfinite(y).all() and np.abs(y).max() <= CEILING + LSB["PCM_16"]
    assert "limiter at -1 dBFS" in lines[-1]


# ------------------------------------------------------------------------------------------------
# subnormals
# ------------------------------------------------------------------------------------------------

def _subnormal(shape, seed):
    rng = np.random.default_rng(seed)
    return (rng.choice([-1.0, 1.0], shape) * rng.uniform(1e-42, 1e-39, shape)).astype(np.float32)


@pytest.mark.parametrize("channels", [3, 2])
def test_subnormal_input_is_read_as_zero(render_set, tmp_path, capsys, channels):
    """All-subnormal float32 samples (|x| < 1.2e-38): documented to be read as 0, so the output
    is exact zeros; the float64 reference is below 1e-37 (equal to it within 1e-37)."""
    fset, path = render_set
    x = _subnormal((channels, 2000), 0)
    assert np.all((x != 0) & (np.abs(x) < FLT_TINY))
    inp = _write(tmp_path / "in.wav", x)
    assert np.array_equal(_decoded(inp), x)  # the file really holds subnormals
    y, _ = _render(capsys, tmp_path, path, inp)
    assert np.all(y == 0.0)
    if channels == 3:
        _close(y, _conv(fset.fir.numpy(), x), 0.0, 1e-37)


def test_double_subnormals_and_float32_underflow_are_zero(render_set, tmp_path, capsys):
    """A DOUBLE file with 1e-310 (float64 subnormal) and 1e-40 (float32 subnormal): zeros."""
    _, path = render_set
    x = np.full((3, 500), 1e-310)
    x[1] = -1e-40
    inp = _write(tmp_path / "in.wav", x, subtype="DOUBLE")
    y, _ = _render(capsys, tmp_path, path, inp)
    assert np.all(y == 0.0)


def test_subnormals_mixed_with_signal_equal_the_reference(render_set, tmp_path, capsys):
    """A normal signal with every third sample subnormal, and a channel decaying from 0.5 through
    the subnormal range: the reference of the unflushed samples within 1e-5 of the peak."""
    fset, path = render_set
    n = 4000
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (3, n)).astype(np.float32)
    x[0, ::3] = _subnormal(x[0, ::3].shape, 2)
    x[2] = (0.5 * np.sin(np.arange(n) * 0.05) * np.exp(-np.arange(n) / 40.0)).astype(np.float32)
    assert ((x[2] != 0) & (np.abs(x[2]) < FLT_TINY)).sum() > 50
    inp = _write(tmp_path / "in.wav", x)
    y, _ = _render(capsys, tmp_path, path, inp, block_size=256)
    _close(y, _conv(fset.fir.numpy(), _decoded(inp)), 1e-5)


def test_subnormal_time_ratio_is_reported(render_set, tmp_path, capsys, record_property):
    """Subnormal vs normal input of the same length (2 s, 3 channels), best of 3, same run: the
    ratio is reported (``record_property``, and printed with -s), not asserted — timings on a
    shared machine are not a test; the outputs are (all zeros). Before the flush it was ≈ 5.5× (both 3 channels and stereo)."""
    fset, path = render_set
    n = 2 * FS
    files = {"normal": _write(tmp_path / "normal.wav", np.random.default_rng(3).uniform(-0.5, 0.5, (3, n))),
             "subnormal": _write(tmp_path / "sub.wav", _subnormal((3, n), 4))}
    best = {}
    for _ in range(3):
        for name, inp in files.items():
            t0 = time.perf_counter()
            rc, _, err = _cli(capsys, inp, path, tmp_path / f"{name}.out.wav")
            best[name] = min(best.get(name, math.inf), time.perf_counter() - t0)
            assert rc == 0, err
    assert np.all(sf.read(str(tmp_path / "subnormal.out.wav"))[0] == 0.0)
    ratio = best["subnormal"] / best["normal"]
    record_property("subnormal_time_ratio", round(ratio, 2))
    print(f"subnormal/normal render time: {best['subnormal']:.3f} s / {best['normal']:.3f} s = {ratio:.2f}")
    assert ratio > 0


# ------------------------------------------------------------------------------------------------
# NaN / Inf, overflow
# ------------------------------------------------------------------------------------------------

BAD = [  # (case, value, channels, rate, subtype, channel, frame)
    ("nan", np.nan, 3, FS, "FLOAT", 1, 1234),
    ("+inf", np.inf, 3, FS, "FLOAT", 2, 0),
    ("-inf", -np.inf, 3, FS, "FLOAT", 0, 2999),
    ("nan-double", np.nan, 3, FS, "DOUBLE", 2, 77),
    ("nan-second-block", np.nan, 3, FS, "FLOAT", 0, 70000),  # after 1 s of output was written
    ("inf-stereo", np.inf, 2, FS, "FLOAT", 1, 500),
    ("nan-mono", np.nan, 1, FS, "FLOAT", 0, 10),
    ("nan-44k1-resampled", np.nan, 2, 44100, "FLOAT", 1, 50000),
]


@pytest.mark.parametrize("case, value, channels, rate, subtype, ch, frame", BAD, ids=[b[0] for b in BAD])
def test_non_finite_sample_is_one_line_naming_where(render_set, tmp_path, capsys, case, value, channels, rate,
                                                    subtype, ch, frame):
    """NaN/Inf in a float file: exit 2, one line naming the file, channel, frame and time of the
    first bad sample, no output or temporary file (even when a block was already rendered)."""
    _, path = render_set
    x = np.random.default_rng(5).uniform(-0.5, 0.5, (channels, max(3000, frame + 100)))
    x[ch, frame] = value
    x[0 if ch else min(1, channels - 1), frame + 50] = np.nan  # a later one (in a lower channel) is not named
    inp = _write(tmp_path / "in.wav", x, rate=rate, subtype=subtype)
    line = _refused(capsys, tmp_path, path, inp, str(inp), "non-finite sample", f"channel {ch}, frame {frame} ",
                    f"({frame / rate:.6f} s)")
    assert f"frame {frame + 50} " not in line  # the earliest bad sample is named, not the later one


def test_double_beyond_float32_is_one_line(render_set, tmp_path, capsys):
    """A finite float64 sample the float32 renderer cannot hold (1e39): named, not made Inf."""
    _, path = render_set
    x = np.zeros((3, 500))
    x[1, 123] = -1e39
    inp = _write(tmp_path / "in.wav", x, subtype="DOUBLE")
    line = _refused(capsys, tmp_path, path, inp, str(inp), "-1e+39", "channel 1, frame 123 ", "float32")
    assert "non-finite" not in line  # a finite value, named as such (it used to be called "non-finite")


@pytest.mark.parametrize("opts", [{}, {"subtype": "PCM_16"}], ids=["float", "pcm16"])
def test_float32_overflow_is_one_line_not_a_nan_file(render_set, tmp_path, capsys, opts):
    """Finite float32 samples far above full scale (3e38) overflow the rendering: one line, no
    file — before the fix this wrote an all-NaN file reporting "peak -inf dBFS"."""
    _, path = render_set
    x = np.zeros((3, 3000), dtype=np.float32)
    x[:, 1000:1100] = 3e38
    inp = _write(tmp_path / "in.wav", x)
    line = _refused(capsys, tmp_path, path, inp, str(inp), "overflows float32", "far beyond full scale", **opts)
    assert "peak" not in line  # refused before any peak report (it used to print "peak -inf dBFS")


def test_gain_beyond_float_range_is_one_line(render_set, tmp_path, capsys):
    """A float file cannot hold a peak beyond ±3.4e38 (gain_db=+200, the largest allowed, on a
    1e33 signal); PCM output of the same is simply limited."""
    _, path = render_set
    inp = _write(tmp_path / "in.wav", np.full((3, 500), 1e33, dtype=np.float32))
    _refused(capsys, tmp_path, path, inp, "gain_db=200", "float WAV's range", gain_db="200")
    y, lines = _render(capsys, tmp_path, path, inp, gain_db="200", subtype="PCM_16")
    assert np.abs(y).max() <= CEILING + LSB["PCM_16"] and "limiter" in lines[-1]


# ------------------------------------------------------------------------------------------------
# 1 sample, 0 samples
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("block_size", [1, 7, 4096])
def test_one_sample_gives_the_whole_impulse_response(render_set, tmp_path, capsys, block_size):
    """One 3-channel frame (a, b, c): the output is Σ_c x_c · h[c, d, :] — all T taps, nothing cut
    (1e-6 of the peak: a scaled copy of float32 taps)."""
    fset, path = render_set
    x = np.array([[0.5], [-0.25], [0.75]])
    inp = _write(tmp_path / "in.wav", x)
    y, lines = _render(capsys, tmp_path, path, inp, block_size=block_size)
    ref = np.einsum("c,cdk->dk", x[:, 0], fset.fir.numpy().astype(np.float64))
    _close(y, ref, 1e-6)
    assert "× 200 frames" in lines[-1]


@pytest.mark.parametrize("channels, rate, subtype", [(2, FS, "FLOAT"), (1, FS, "PCM_16"), (1, 44100, "FLOAT"),
                                                     (3, 44100, "PCM_24")])
def test_one_sample_upmixed_or_resampled(render_set, tmp_path, capsys, channels, rate, subtype):
    """One frame of stereo/mono (upmixed) or at 44.1 kHz (resampled to ⌈48000/44100⌉ = 2 frames):
    the documented length, finite, and (at the design rate) the reference to 1e-4 of the peak."""
    fset, path = render_set
    x = np.array([[0.5], [-0.25], [0.75]])[:channels]
    inp = _write(tmp_path / "in.wav", x, rate=rate, subtype=subtype)
    y, _ = _render(capsys, tmp_path, path, inp)
    frames = 1 if rate == FS else 2
    assert y.shape == (5, frames + T - 1 + (0 if channels == 3 else _spread(fset)))
    assert np.isfinite(y).all() and np.abs(y).max() > 0.01
    if rate == FS:
        _close(y, _reference(fset, _decoded(inp)), 1e-4)


@pytest.mark.parametrize("channels, rate, subtype", [(3, FS, "FLOAT"), (2, FS, "PCM_16"), (1, 44100, "PCM_24")])
def test_empty_input_is_one_line(render_set, tmp_path, capsys, channels, rate, subtype):
    """A valid WAV with no frames: an error, not an output of T − 1 zeros — an empty input is a
    broken export far more often than an intent, and a "successful" file of silence hides it."""
    _, path = render_set
    inp = _write(tmp_path / "in.wav", np.zeros((channels, 0)), rate=rate, subtype=subtype)
    assert sf.info(str(inp)).frames == 0
    _refused(capsys, tmp_path, path, inp, str(inp), "holds no samples")


# ------------------------------------------------------------------------------------------------
# a long file: streamed, memory bounded
# ------------------------------------------------------------------------------------------------

LONG_SECONDS = 600
SHORT_SECONDS = 3

_RSS_SCRIPT = r"""
import json, resource, sys, torch
torch.set_num_threads(1)
from spatialopt.cli.render import run
set_path, *pairs = sys.argv[1:]
peaks = []
for inp, out in zip(pairs[::2], pairs[1::2]):
    assert run([f"input={inp}", f"filterset={set_path}", f"output={out}", "progress=false"]) == 0
    peaks.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: KiB
print(json.dumps(peaks))
"""


def _long_file(path, seconds):
    """3-channel PCM_16, written block-wise: a 1 kHz tone (0.25) for the first 0.5 s of every
    10 s, silence otherwise."""
    period = 10 * FS
    burst = (0.25 * np.sin(2 * np.pi * 1000 * np.arange(FS // 2) / FS))[:, None].repeat(3, 1)
    block = np.zeros((period, 3))
    block[: FS // 2] = burst
    with sf.SoundFile(str(path), "w", FS, 3, "PCM_16") as f:
        for start in range(0, seconds * FS, period):
            f.write(block[: seconds * FS - start])
    return path


@pytest.mark.skipif(sys.platform != "linux", reason="ru_maxrss units (KiB) and /proc are Linux's")
def test_long_file_streams_with_bounded_memory(render_set, tmp_path, record_property):
    """A 10-minute 3-channel file (345 MB decoded as float32) and a 3-second one rendered by the
    CLI, one after the other in one fresh process: the long one raises the process's peak RSS by
    less than 25 % of its decoded size (bounded: blocks of 1 s in, 1 s out, a chunked
    limiter/format pass). The output is complete (S + T − 1 frames) with the tone's level."""
    fset, path = render_set
    short = _long_file(tmp_path / "short.wav", SHORT_SECONDS)
    long_in = _long_file(tmp_path / "long.wav", LONG_SECONDS)
    outs = [tmp_path / "short.out.wav", tmp_path / "long.out.wav"]
    try:
        done = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(path), str(short), str(outs[0]),
                               str(long_in), str(outs[1])], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        rss_short, rss_long = json.loads(done.stdout.strip().splitlines()[-1])
        decoded = LONG_SECONDS * FS * 3 * 4
        growth = rss_long - rss_short
        record_property("rss_short_MiB", round(rss_short / 2**20, 1))
        record_property("rss_long_MiB", round(rss_long / 2**20, 1))
        print(f"peak RSS: {SHORT_SECONDS} s input {rss_short / 2**20:.1f} MiB, {LONG_SECONDS} s input "
              f"{rss_long / 2**20:.1f} MiB (+{growth / 2**20:.1f} MiB; decoded long input {decoded / 2**20:.0f} MiB)")
        assert growth < 0.25 * decoded
        info = sf.info(str(outs[1]))
        assert info.frames == LONG_SECONDS * FS + T - 1 and info.channels == 5
        with sf.SoundFile(str(outs[1])) as f:  # the last tone burst, rendered: same peak as the first
            f.seek((LONG_SECONDS - 10) * FS)
            last = f.read(FS, dtype="float64")
        with sf.SoundFile(str(outs[0])) as f:
            first = f.read(FS, dtype="float64")
        assert np.abs(last).max() == pytest.approx(np.abs(first).max(), rel=1e-5) and np.abs(first).max() > 0.1
    finally:
        for p in (long_in, *outs):
            p.unlink(missing_ok=True)
