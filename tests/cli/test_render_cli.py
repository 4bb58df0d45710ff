"""``spatialopt-render``: files in, driver feeds out — exact against an independent convolution,
documented conversions (rate, mono), peak handling that never wraps, the binaural preview, and
one clear error (and no output file) for bad input."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch
from scipy import signal

from conftest import make_config
from spatialopt.cli.render import run
from spatialopt.filterset import FilterSet

FS = 48000
T = 200


@pytest.fixture(scope="module")
def saved_set(tmp_path_factory):
    """A random filter set for the smart_speaker_5 design scene (its config is stored, so the
    binaural preview can rebuild the scene)."""
    cfg = make_config(zone="point", n_fft=256)
    names = [d["name"] for d in cfg["device"]["drivers"]]
    g = torch.Generator().manual_seed(3)
    fset = FilterSet.from_stages(
        ctc=0.1 * torch.randn(2, len(names), 120, generator=g), virtualizer=torch.randn(2, 16, generator=g) / 4,
        beam=0.1 * torch.randn(len(names), 100, generator=g), lr_delay=5, c_delay=30, n_taps=T, sample_rate=FS,
        driver_names=names, latency_samples=60, upmix={"centre_gain": math.sqrt(0.5)}, config=cfg)
    return fset, fset.save(tmp_path_factory.mktemp("set") / "filterset")


def _write(path, x, rate=FS, subtype="FLOAT"):
    sf.write(str(path), np.asarray(x, dtype=np.float32).T, rate, subtype=subtype)
    return path


def _reference(fir: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Full linear convolution Σ_c x_c ⊛ h[c, d] (scipy, float64): (D, S + T − 1)."""
    return np.stack([sum(signal.fftconvolve(x[c].astype(np.float64), fir[c, d].astype(np.float64))
                         for c in range(fir.shape[0])) for d in range(fir.shape[1])])


def _render(tmp_path, set_path, x=None, rate=FS, **opts):
    inp = tmp_path / "in.wav"
    if x is not None:
        _write(inp, x, rate)
    out = tmp_path / "out.wav"
    argv = [f"input={inp}", f"filterset={set_path}", f"output={out}", "progress=false"]
    argv += [f"{k}={v}" for k, v in opts.items()]
    assert run(argv) == 0
    y, out_rate = sf.read(str(out), always_2d=True, dtype="float64")
    return y.T, out_rate


def test_three_channel_file_equals_scipy_convolution(saved_set, tmp_path):
    fset, path = saved_set
    x = np.random.default_rng(0).uniform(-0.5, 0.5, (3, 3000))
    y, rate = _render(tmp_path, path, x, block_size=64)
    ref = _reference(fset.fir.numpy(), x.astype(np.float32))
    assert rate == FS and y.shape == ref.shape == (5, 3000 + T - 1)  # the whole tail, nothing cut
    assert np.abs(y - ref).max() <= 1e-5 * np.abs(ref).max()  # float32 rendering, rel. 1e-5


def test_stereo_file_is_upmixed_and_aligned(saved_set, tmp_path):
    """Stereo goes through the streaming upmix; the upmixer's look-ahead is removed, so the file
    equals the offline upmix (aligned with the input) followed by the filter matrix."""
    from spatialopt.dsp.upmix import upmix

    fset, path = saved_set
    x = np.random.default_rng(1).uniform(-0.5, 0.5, (2, 4000)).astype(np.float32)
    y, _ = _render(tmp_path, path, x)
    spread = 4095  # the default upmixer's frames reach n_fft − 1 samples past the input's end
    padded = np.pad(x, ((0, 0), (0, spread)))
    lrc = upmix(torch.from_numpy(padded)[None], FS, **fset.upmix)[0].numpy()
    ref = _reference(fset.fir.numpy(), lrc)[:, : 4000 + spread + T - 1]
    assert y.shape == ref.shape
    assert np.abs(y - ref).max() <= 1e-4 * np.abs(ref).max()


def test_mono_is_duplicated_and_rate_is_converted(saved_set, tmp_path, capsys):
    fset, path = saved_set
    mono = np.random.default_rng(2).uniform(-0.5, 0.5, (1, 2000)).astype(np.float32)
    y_mono, _ = _render(tmp_path, path, mono)
    y_stereo, _ = _render(tmp_path, path, np.repeat(mono, 2, axis=0))
    np.testing.assert_array_equal(y_mono, y_stereo)
    y, rate = _render(tmp_path, path, np.repeat(mono, 2, axis=0), rate=44100)
    out = capsys.readouterr().out
    assert "mono input duplicated" in out and "resampled 44100 Hz → 48000 Hz" in out
    assert rate == FS and y.shape[1] == math.ceil(2000 * FS / 44100) + T - 1 + 4095  # + the upmix spread


def test_fixed_point_output_is_limited_never_wrapped(saved_set, tmp_path, capsys):
    fset, path = saved_set
    x = np.random.default_rng(3).uniform(-0.9, 0.9, (3, 6000))
    y_float, _ = _render(tmp_path, path, x, upmix="false")
    peak = np.abs(y_float).max()
    gain_db = 20 * math.log10(2.0 / peak)  # drive the peak to +6 dBFS
    y, _ = _render(tmp_path, path, x, upmix="false", subtype="PCM_16", gain_db=f"{gain_db:.6f}")
    ceiling = 10 ** (-1 / 20)
    assert np.abs(y).max() <= ceiling + 1 / 32768  # the limiter's ceiling, to one LSB
    assert "limiter at -1 dBFS" in capsys.readouterr().out
    # Only the peaks are touched: where the unlimited signal is quiet the file is the scaled input.
    scaled = y_float * 10 ** (gain_db / 20)
    quiet = np.abs(scaled).max(0) < 0.25
    assert np.abs(y[:, quiet] - scaled[:, quiet]).max() < 0.6 * (1 - ceiling / 2.0) + 2 / 32768
    assert np.all(np.sign(y[np.abs(scaled) > 0.1]) == np.sign(scaled[np.abs(scaled) > 0.1]))  # no wrap-around
    # limiter=false: a hard clip at full scale, said loudly, still no wrap-around.
    y, _ = _render(tmp_path, path, x, upmix="false", subtype="PCM_16", gain_db=f"{gain_db:.6f}", limiter="false")
    assert np.abs(y).max() <= 1.0 and "CLIPPED" in capsys.readouterr().out
    assert np.all(np.sign(y[np.abs(scaled) > 0.1]) == np.sign(scaled[np.abs(scaled) > 0.1]))


def test_binaural_preview_reference_pair_has_the_head_ild(saved_set, tmp_path):
    """An impulse on L through the reference ±30° pair: the ears' level difference at 4 kHz is the
    rigid-sphere value of REFERENCES.md (6.6 dB at 2 m; tolerance 0.5 dB), the left ear leads,
    and the two preview files have two channels."""
    _, path = saved_set
    x = np.zeros((3, 4000))
    x[0, 0] = 0.5
    _render(tmp_path, path, x, upmix="false", binaural="true")
    ref, rate = sf.read(str(tmp_path / "out.reference.wav"), always_2d=True, dtype="float64")
    sysb, _ = sf.read(str(tmp_path / "out.binaural.wav"), always_2d=True, dtype="float64")
    assert ref.shape[1] == sysb.shape[1] == 2
    spec = np.fft.rfft(ref.T, 1 << 15)
    f = np.fft.rfftfreq(1 << 15, 1 / rate)
    band = (f > 3800) & (f < 4200)
    ild = 10 * np.log10((np.abs(spec[0, band]) ** 2).mean() / (np.abs(spec[1, band]) ** 2).mean())
    assert ild == pytest.approx(6.6, abs=0.5)
    onset = [int(np.argmax(np.abs(ch) > 0.05 * np.abs(ch).max())) for ch in ref.T]
    assert onset[0] < onset[1]


@pytest.mark.parametrize("setup, message", [
    ("four_channels", "4 channels"),
    ("nan", "non-finite sample"),
    ("garbage", "cannot read it as audio"),
    ("no_filterset", "filter set"),
    ("bad_subtype", "subtype"),
    ("stereo_no_upmix", "2 channels"),
    ("driver_count", "feeds 5 drivers"),
    ("huge_gain", "gain_db=7000.0: must be in [-200, 200] dB"),
    ("huge_block", "block_size=1000000000000: must be an integer in [1, 1048576]"),
    ("ceiling", "ceiling_db=-1000.0: must be in [-100, 0] dBFS"),
])
def test_bad_input_one_line_no_output(saved_set, tmp_path, capsys, setup, message):
    _, path = saved_set
    inp, out = tmp_path / "in.wav", tmp_path / "out.wav"
    argv = [f"input={inp}", f"filterset={path}", f"output={out}", "progress=false"]
    x = np.zeros((3, 100), dtype=np.float32)
    if setup == "four_channels":
        x = np.zeros((4, 100), dtype=np.float32)
    if setup == "nan":
        x[1, 50] = np.nan
    _write(inp, x)
    if setup == "garbage":
        inp.write_bytes(b"RIFF\x00\x00garbage" * 10)
    if setup == "no_filterset":
        argv[1] = f"filterset={tmp_path / 'missing'}"
    if setup == "bad_subtype":
        argv.append("subtype=MP3")
    if setup == "driver_count":
        argv.append("drivers=4")
    extra = {"huge_gain": "gain_db=7000", "huge_block": "block_size=1000000000000", "ceiling": "ceiling_db=-1000"}
    if setup in extra:
        argv.append(extra[setup])
    if setup == "stereo_no_upmix":
        _write(inp, np.zeros((2, 100)))
        argv.append("upmix=false")
    with pytest.raises(SystemExit) as exc:
        run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and message in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".out*"))  # no partial or temporary file


def test_console_script(saved_set, tmp_path):
    _, path = saved_set
    inp = _write(tmp_path / "in.wav", np.zeros((3, 500)))
    out = tmp_path / "o.wav"
    done = subprocess.run([sys.executable, "-m", "spatialopt.cli.render", f"input={inp}", f"filterset={path}",
                           f"output={out}", "progress=false"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert sf.info(str(out)).channels == 5 and "wrote" in done.stdout


@pytest.mark.parametrize("rate", [44100, 32000, 96000])
def test_block_wise_resampling_equals_whole_signal(tmp_path, rate):
    """The file is read and resampled in blocks (memory bounded); with its context the result is
    the whole-signal torchaudio resampling (tolerance 1e-6 of the peak)."""
    import torchaudio.functional as AF

    from spatialopt.cli.render import AudioInput

    x = np.random.default_rng(4).uniform(-0.5, 0.5, (2, int(2.3 * rate))).astype(np.float32)
    path = _write(tmp_path / "in.wav", x, rate)
    audio = AudioInput(path, FS, block_seconds=0.25)
    blocks = list(audio.blocks())
    audio.close()
    assert len(blocks) > 5
    got = np.concatenate(blocks, axis=1)
    ref = AF.resample(torch.from_numpy(x), rate, FS).numpy()
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= 1e-6 * np.abs(ref).max()


def test_header_claiming_huge_length_is_read_as_far_as_it_goes(tmp_path):
    """A WAV whose header claims ~2^31 frames but holds 1000: blocks stop at the data, nothing of
    the claimed size is allocated (the progress total is a hint only)."""
    from spatialopt.cli.render import AudioInput

    path = _write(tmp_path / "in.wav", np.zeros((3, 1000)), FS, subtype="PCM_16")
    raw = bytearray(path.read_bytes())
    data_at = raw.index(b"data")
    raw[data_at + 4: data_at + 8] = (0x7FFFFFF0).to_bytes(4, "little")  # data chunk size: ~2 GiB
    path.write_bytes(bytes(raw))
    audio = AudioInput(path, FS, block_seconds=0.01)
    total = sum(b.shape[1] for b in audio.blocks())
    audio.close()
    assert total == 1000
