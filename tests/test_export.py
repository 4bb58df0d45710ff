"""Exports for real engines (WAV, CamillaDSP, ffmpeg) and band-limited resampling (spatialopt.export).

The ffmpeg tests run the exported script on a random 3-channel signal and compare its output with the
reference linear convolution y[d] = sum_c x[c] * h[c, d] (first S samples), tolerance 1e-4 of the
reference's peak (measured: ~3e-7, float32 rounding). Without ffmpeg/ffprobe they are skipped, unless
SPATIALOPT_REQUIRE_FFMPEG=1 (CI), which turns the skip into a failure.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import stat
import subprocess
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F
import yaml
from scipy.signal import fftconvolve

from spatialopt.errors import ConfigError, DataError
from spatialopt.export import (
    CUT_FRACTION,
    FFMPEG_MAX_DRIVERS,
    PASSBAND_FRACTION,
    RESAMPLE_OPTIONS,
    BandLimitWarning,
    export_filterset,
    ffmpeg_filtergraph,
    resample_filterset,
    resample_taps,
)
from spatialopt.filterset import FilterSet

pytestmark = pytest.mark.usefixtures("single_thread")

FFMPEG_TOL = 1e-4  # max |ffmpeg − reference| / max |reference|


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def make_set(n_drivers=3, ctc_taps=128, virt_taps=48, beam_taps=96, lr=4, cd=10, slack=16, rate=48000, seed=0,
             config=None, latency=40) -> FilterSet:
    """A valid random filter set (Hann-tapered random stages, composite holding every path)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        w = torch.hann_window(shape[-1] + 2, periodic=False, dtype=torch.float64)[1:-1]
        return torch.randn(*shape, generator=g, dtype=torch.float64) * w

    n_taps = max(lr + ctc_taps + virt_taps - 1, cd + beam_taps) + slack
    return FilterSet.from_stages(rand(2, n_drivers, ctc_taps), rand(2, virt_taps), rand(n_drivers, beam_taps), lr, cd,
                                 n_taps, rate, [f"drv {d}" for d in range(n_drivers)], latency, config=config or {})


def reference_output(x: np.ndarray, fir: np.ndarray) -> np.ndarray:
    """(3, S) input, (3, D, T) taps → (D, S): first S samples of sum_c x[c] * h[c, d], float64."""
    s = x.shape[1]
    return np.stack([sum(fftconvolve(x[c].astype(np.float64), fir[c, d].astype(np.float64))[:s] for c in range(3))
                     for d in range(fir.shape[1])])


def write_wav(path, x: np.ndarray, rate: int) -> None:
    """(channels, S) float32 → WAV."""
    sf.write(str(path), np.ascontiguousarray(x.T), rate, subtype="FLOAT")


def read_wav(path) -> tuple[np.ndarray, int]:
    data, rate = sf.read(str(path), dtype="float64", always_2d=True)
    return data.T, rate


@pytest.fixture
def ffmpeg():
    """Skip (or fail under SPATIALOPT_REQUIRE_FFMPEG=1) without ffmpeg 5.x and ffprobe."""
    missing = [tool for tool in ("ffmpeg", "ffprobe") if shutil.which(tool) is None]
    problem = f"{' and '.join(missing)} not found on PATH" if missing else None
    if problem is None:
        first = subprocess.run(["ffmpeg", "-hide_banner", "-version"], capture_output=True, text=True).stdout.split("\n")[0]
        if not (first.startswith("ffmpeg version 5.") or first.startswith("ffmpeg version n5.")):
            problem = f"the afir gain options are verified for ffmpeg 5.x, found {first!r}"
    if problem:
        if os.environ.get("SPATIALOPT_REQUIRE_FFMPEG") == "1":
            pytest.fail(f"{problem} (SPATIALOPT_REQUIRE_FFMPEG=1)")
        pytest.skip(f"{problem}; set SPATIALOPT_REQUIRE_FFMPEG=1 to make this a failure")
    return shutil.which("ffmpeg")


def run_script(export_dir, *args, env=None):
    return subprocess.run([str(export_dir / "render_ffmpeg.sh"), *map(str, args)], capture_output=True, text=True,
                          timeout=120, env=env)


# ---------------------------------------------------------------------------------------------
# WAV and the export directory
# ---------------------------------------------------------------------------------------------


def test_wav_round_trip_is_bit_exact(tmp_path):
    fset = make_set(n_drivers=4)
    written = export_filterset(fset, tmp_path / "exp", formats=["wav"])
    assert [p.name for p in written["wav"]] == ["L.wav", "R.wav", "C.wav"]
    fir = fset.fir.numpy()
    for c, path in enumerate(written["wav"]):
        info = sf.info(str(path))
        assert (info.samplerate, info.channels, info.frames, info.subtype, info.format) == (48000, 4, fset.n_taps, "FLOAT", "WAV")
        data, _ = sf.read(str(path), dtype="float32", always_2d=True)
        assert data.dtype == np.float32 and np.array_equal(data.T, fir[c])  # bit-exact, driver order


def test_export_writes_every_format_readme_and_manifest(tmp_path):
    fset = make_set(n_drivers=3, latency=57)
    written = export_filterset(fset, tmp_path / "out", formats="wav camilladsp ffmpeg".split())
    out = tmp_path / "out"
    assert set(written) == {"wav", "camilladsp", "ffmpeg", "readme", "manifest"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["L.wav", "R.wav", "C.wav", "camilladsp.yml", "render_ffmpeg.sh", "ffmpeg_command.txt", "README.txt", "export.json"])
    assert all(p.parent == out and p.is_file() for paths in written.values() for p in paths)
    assert os.stat(out / "render_ffmpeg.sh").st_mode & stat.S_IXUSR
    assert os.stat(out / "L.wav").st_mode & stat.S_IRGRP  # readable by an engine running as another user
    readme = (out / "README.txt").read_text()
    for text in ("48000 Hz", "57 samples", "0 L, 1 R, 2 C", " 0  drv 0", " 2  drv 2", "camilladsp.yml", "render_ffmpeg.sh"):
        assert text in readme
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["sample_rate"] == 48000 and manifest["n_taps"] == fset.n_taps
    assert manifest["driver_names"] == fset.driver_names and manifest["latency_samples"] == 57
    command = (out / "ffmpeg_command.txt").read_text()
    assert command.count("\n") == 1 and "input.wav" in command and "gtype=none:irgain=0.5" in command


def test_export_replaces_a_previous_export_atomically(tmp_path, monkeypatch):
    import spatialopt.export as ex

    out = tmp_path / "out"
    export_filterset(make_set(seed=1), out)
    export_filterset(make_set(seed=2), out, formats="wav")  # replaces the whole previous export
    assert sorted(p.name for p in out.iterdir()) == ["C.wav", "L.wav", "R.wav", "README.txt", "export.json"]
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ex, "export_camilladsp", broken)
    with pytest.raises(DataError, match="No space left"):
        export_filterset(make_set(seed=3), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary left behind


def test_export_refuses_foreign_directories_and_bad_input(tmp_path):
    fset = make_set()
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="not a spatialopt export"):
        export_filterset(fset, foreign)
    assert (foreign / "notes.txt").read_text() == "mine"
    fset_dir = fset.save(tmp_path / "fset")
    with pytest.raises(DataError, match="not a spatialopt export"):
        export_filterset(fset, fset_dir)
    FilterSet.load(fset_dir)  # still intact
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="not a directory"):
        export_filterset(fset, tmp_path / "file")
    with pytest.raises(ConfigError, match="formats"):
        export_filterset(fset, tmp_path / "e", formats=["wav", "mp3"])
    odd = make_set(rate=44100.5)
    with pytest.raises(DataError, match="whole number of Hz"):
        export_filterset(odd, tmp_path / "e")
    big = make_set(n_drivers=FFMPEG_MAX_DRIVERS + 1, ctc_taps=8, virt_taps=4, beam_taps=8)
    with pytest.raises(DataError, match="at most 10"):
        export_filterset(big, tmp_path / "e")
    assert not (tmp_path / "e").exists()
    export_filterset(big, tmp_path / "e", formats=["wav", "camilladsp"])  # those have no driver limit


# ---------------------------------------------------------------------------------------------
# ffmpeg
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("n_drivers, n_taps", [(3, 300), (5, 1024), (FFMPEG_MAX_DRIVERS, 300), (2, 7)])
def test_ffmpeg_script_equals_the_convolution(tmp_path, ffmpeg, n_drivers, n_taps):
    if n_taps == 7:  # afir mis-convolves IRs of < 8 taps unless padded: covers the padding
        fset = make_set(n_drivers=n_drivers, ctc_taps=4, virt_taps=2, beam_taps=5, lr=1, cd=2, slack=0)
    else:
        virt = 48 if n_taps == 300 else 128
        ctc = n_taps - virt - 30
        fset = make_set(n_drivers=n_drivers, ctc_taps=ctc, virt_taps=virt, beam_taps=n_taps // 2, lr=20, cd=40,
                        slack=n_taps - (20 + ctc + virt - 1))
    assert fset.n_taps == n_taps
    export_dir = tmp_path / "my export"  # spaces in every path
    export_filterset(fset, export_dir, formats=["ffmpeg"])
    x = (np.random.default_rng(n_drivers).standard_normal((3, 24000)) * 0.3).astype(np.float32)  # 0.5 s
    write_wav(tmp_path / "in put.wav", x, 48000)
    proc = run_script(export_dir, tmp_path / "in put.wav", tmp_path / "out put.wav")
    assert proc.returncode == 0, proc.stderr
    y, rate = read_wav(tmp_path / "out put.wav")
    assert rate == 48000 and y.shape == (n_drivers, x.shape[1])
    assert sf.info(str(tmp_path / "out put.wav")).subtype == "FLOAT"
    ref = reference_output(x, fset.fir.numpy())
    assert np.abs(y - ref).max() <= FFMPEG_TOL * np.abs(ref).max()
    # ... and equals spatialopt's own renderer on the same file (the criterion).
    from spatialopt.render import render_offline

    ours = render_offline(fset, torch.from_numpy(x)[None], upmix=False)[0].double().numpy()
    assert np.abs(y - ours).max() <= FFMPEG_TOL * np.abs(ours).max()


def test_ffmpeg_command_file_runs_in_the_export_directory(tmp_path, ffmpeg):
    fset = make_set(n_drivers=4)
    export_filterset(fset, tmp_path / "exp", formats=["ffmpeg"])
    x = (np.random.default_rng(7).standard_normal((3, 12000)) * 0.3).astype(np.float32)
    write_wav(tmp_path / "exp" / "input.wav", x, 48000)
    command = (tmp_path / "exp" / "ffmpeg_command.txt").read_text()
    proc = subprocess.run(["sh", "-c", command.replace("ffmpeg -nostdin", "ffmpeg -loglevel error -nostdin", 1)],
                          cwd=tmp_path / "exp", capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    y, _ = read_wav(tmp_path / "exp" / "output.wav")
    ref = reference_output(x, fset.fir.numpy())
    assert np.abs(y - ref).max() <= FFMPEG_TOL * np.abs(ref).max()
    assert command.split(" -filter_complex ")[1].startswith("'" + ffmpeg_filtergraph(4, fset.n_taps, 48000))


def test_ffmpeg_script_upmix_and_input_checks(tmp_path, ffmpeg):
    fset = make_set(n_drivers=3)
    export_dir = tmp_path / "exp"
    export_filterset(fset, export_dir, formats=["ffmpeg"])
    rng = np.random.default_rng(3)
    stereo, four = tmp_path / "stereo.wav", tmp_path / "four.wav"
    write_wav(stereo, (rng.standard_normal((2, 9600)) * 0.3).astype(np.float32), 48000)
    write_wav(four, (rng.standard_normal((4, 4800)) * 0.3).astype(np.float32), 48000)

    proc = run_script(export_dir, "--upmix", stereo, tmp_path / "up.wav")  # ffmpeg's surround upmix
    assert proc.returncode == 0, proc.stderr
    y, rate = read_wav(tmp_path / "up.wav")
    assert rate == 48000 and y.shape[0] == 3 and abs(y.shape[1] - 9600) <= 2048 and np.abs(y).max() > 0

    proc = run_script(export_dir, four, tmp_path / "bad.wav")
    assert proc.returncode == 2 and not (tmp_path / "bad.wav").exists()
    assert proc.stderr.strip().splitlines() == [
        f"render_ffmpeg.sh: error: {four} has 4 channels; the filters need 3 (L, R, C in that order), "
        "or a stereo input with --upmix (ffmpeg's surround upmix)"]
    proc = run_script(export_dir, stereo, tmp_path / "bad.wav")  # stereo without --upmix
    assert proc.returncode == 2 and "has 2 channels" in proc.stderr
    proc = run_script(export_dir, "--upmix", four, tmp_path / "bad.wav")
    assert proc.returncode == 2 and "--upmix needs a stereo input" in proc.stderr
    write_wav(tmp_path / "r44.wav", np.zeros((3, 441), np.float32), 44100)
    proc = run_script(export_dir, tmp_path / "r44.wav", tmp_path / "bad.wav")
    assert proc.returncode == 2 and "sampled at 44100 Hz, the filters at 48000 Hz" in proc.stderr
    proc = run_script(export_dir, tmp_path / "missing.wav", tmp_path / "bad.wav")
    assert proc.returncode == 2 and "input file not found" in proc.stderr
    proc = run_script(export_dir, stereo)
    assert proc.returncode == 2 and "usage" in proc.stderr
    env = dict(os.environ, FFMPEG=str(tmp_path / "fake-ffmpeg"))
    (tmp_path / "fake-ffmpeg").write_text("#!/bin/sh\necho 'ffmpeg version 7.1 Copyright'\n")
    os.chmod(tmp_path / "fake-ffmpeg", 0o755)
    proc = run_script(export_dir, four, tmp_path / "bad.wav", env=env)  # unverified version: refuse
    assert proc.returncode == 2 and "verified for ffmpeg 5.x only" in proc.stderr
    assert not (tmp_path / "bad.wav").exists()


# ---------------------------------------------------------------------------------------------
# CamillaDSP
# ---------------------------------------------------------------------------------------------


def camilladsp_routing(cfg: dict) -> list[dict]:
    """Symbolic run of the pipeline: per output channel {(input channel, filters applied): gain}."""
    n_in = cfg["devices"]["capture"]["channels"]
    chans = [{(c, ()): 1.0} for c in range(n_in)]
    for step in cfg["pipeline"]:
        if step["type"] == "Mixer":
            mixer = cfg["mixers"][step["name"]]
            assert mixer["channels"]["in"] == len(chans)
            out = [dict() for _ in range(mixer["channels"]["out"])]
            for mapping in mixer["mapping"]:
                for src in mapping["sources"]:
                    gain = 10 ** (src.get("gain", 0.0) / 20) * (-1 if src.get("inverted", False) else 1)
                    for key, value in chans[src["channel"]].items():
                        out[mapping["dest"]][key] = out[mapping["dest"]].get(key, 0.0) + gain * value
            chans = out
        else:
            assert step["type"] == "Filter" and set(step) <= {"type", "channel", "names"}
            for name in step["names"]:
                params = cfg["filters"][name]["parameters"]
                assert cfg["filters"][name]["type"] == "Conv" and params["type"] == "Wav"
                ident = (params["filename"], params.get("channel", 0))
                chans[step["channel"]] = {(c, f + (ident,)): g for (c, f), g in chans[step["channel"]].items()}
    assert len(chans) == cfg["devices"]["playback"]["channels"]
    return chans


def apply_camilladsp(cfg: dict, base, x: np.ndarray) -> np.ndarray:
    """Apply the config by hand: mixers as matrices, Conv/Wav filters read from ``base``."""
    s = x.shape[1]
    sig = x.astype(np.float64)
    for step in cfg["pipeline"]:
        if step["type"] == "Mixer":
            mixer = cfg["mixers"][step["name"]]
            out = np.zeros((mixer["channels"]["out"], s))
            for mapping in mixer["mapping"]:
                for src in mapping["sources"]:
                    gain = 10 ** (src.get("gain", 0.0) / 20) * (-1 if src.get("inverted", False) else 1)
                    out[mapping["dest"]] += gain * sig[src["channel"]]
            sig = out
        else:
            for name in step["names"]:
                params = cfg["filters"][name]["parameters"]
                data, rate = sf.read(str(base / params["filename"]), dtype="float32", always_2d=True)
                assert rate == cfg["devices"]["samplerate"]
                sig[step["channel"]] = fftconvolve(sig[step["channel"]], data[:, params.get("channel", 0)].astype(np.float64))[:s]
    return sig


def test_camilladsp_config_routes_and_reproduces_the_filters(tmp_path):
    fset = make_set(n_drivers=4)
    written = export_filterset(fset, tmp_path / "exp", formats=["camilladsp"])
    path = written["camilladsp"][0]
    text = path.read_text()
    assert text.startswith("# CamillaDSP v2 configuration") and "capture:" in text
    cfg = yaml.safe_load(text)
    dev = cfg["devices"]
    assert dev["samplerate"] == 48000 and dev["chunksize"] > 0
    assert (dev["capture"]["channels"], dev["playback"]["channels"]) == (3, 4)
    assert {dev["capture"]["type"], dev["playback"]["type"]} == {"Stdin", "Stdout"}
    assert dev["capture"]["format"] == dev["playback"]["format"] == "FLOAT32LE"
    for name, flt in cfg["filters"].items():  # every referenced WAV exists and has the channel
        params = flt["parameters"]
        assert set(params) == {"type", "filename", "channel"} and not os.path.isabs(params["filename"])
        assert sf.info(str(path.parent / params["filename"])).channels > params["channel"]
    # the routing rebuilt from mixers and pipeline: input c -> filter (c.wav, d) -> output d, gain 1
    routing = camilladsp_routing(cfg)
    for d in range(4):
        assert routing[d] == pytest.approx({(c, ((f"{ch}.wav", d),)): 1.0 for c, ch in enumerate("LRC")})
    x = (np.random.default_rng(5).standard_normal((3, 4000)) * 0.3).astype(np.float32)
    y = apply_camilladsp(cfg, path.parent, x)
    ref = reference_output(x, fset.fir.numpy())
    assert y.shape == ref.shape and np.abs(y - ref).max() <= 1e-9 * np.abs(ref).max()


# ---------------------------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------------------------


def bandlimited_reference(fir: torch.Tensor, old: int, new: int) -> tuple[np.ndarray, int]:
    """The composite resampled directly over its whole support: (taps, new-rate time of tap 0)."""
    import torchaudio.functional as AF

    m = old // math.gcd(old, new)
    pad = math.ceil(200 / m) * m
    y = AF.resample(F.pad(fir.double(), (pad, pad)), old, new, **RESAMPLE_OPTIONS) * (old / new)
    return y.numpy(), -pad * new // old


def response_error(a: np.ndarray, a_start: int, b: np.ndarray, b_start: int, rate: int, top: float):
    """Per-path frequency-response deviation of a from b (both (3, D, L) on their own time origins),
    below ``top`` Hz: (max |dB difference| where |B| > peak − 60 dB, max |A − B| / peak)."""
    start = min(a_start, b_start)
    n = max(a_start + a.shape[-1], b_start + b.shape[-1]) - start
    n_fft = 1 << (4 * n - 1).bit_length()
    spec = []
    for taps, s in ((a, a_start), (b, b_start)):
        buf = np.zeros(taps.shape[:-1] + (n,))
        buf[..., s - start:s - start + taps.shape[-1]] = taps
        spec.append(np.fft.rfft(buf, n_fft))
    freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)
    band = freqs < top
    ha, hb = spec[0][..., band], spec[1][..., band]
    peak = np.abs(hb).max(-1, keepdims=True)
    ok = np.abs(hb) > 1e-3 * peak
    db = np.abs(20 * np.log10(np.abs(ha[ok]) / np.abs(hb[ok]))).max()
    return db, (np.abs(ha - hb) / peak).max()


@pytest.mark.filterwarnings("ignore::spatialopt.export.BandLimitWarning")
@pytest.mark.parametrize("new", [44100, 96000])
def test_resampled_set_is_consistent(tmp_path, new):
    fset = make_set(n_drivers=3, config={"fs": 48000, "seed": 1})
    fset.metrics = {"score": 1.0}
    out = resample_filterset(fset, new)
    ratio = new / 48000
    added = out.config["resample"]["added_latency_samples"]
    assert out.sample_rate == new and out.driver_names == fset.driver_names and out.metrics is None
    assert out.config["fs"] == new and out.config["resampled_from_hz"] == 48000 and out.config["seed"] == 1
    assert out.fir.dtype == torch.float32 and out.fir.shape[:2] == (3, 3)
    assert out.n_taps >= math.ceil(fset.n_taps * ratio) + added
    assert out.stages["ctc"].shape[:2] == (2, 3) and out.stages["beam"].shape[0] == 3
    assert out.latency_samples == round(fset.latency_samples * ratio) + added and 0 <= added <= 2 * 70 * ratio + 4
    out.check_composition()
    loaded = FilterSet.load(out.save(tmp_path / "resampled"))  # passes the loader's validation
    loaded.check_composition()
    assert loaded.config["resample"]["to_hz"] == new
    same = resample_filterset(fset, 48000)
    assert same is not fset and torch.equal(same.fir, fset.fir) and same.metrics == fset.metrics


@pytest.mark.filterwarnings("ignore::spatialopt.export.BandLimitWarning")
@pytest.mark.parametrize("new", [44100, 96000, 32000])
def test_resampled_composite_matches_direct_resampling(new):
    """Recomposed from resampled stages vs the composite resampled directly: below 0.9 × the lower
    Nyquist (the top 10 %, where the L/R paths are low-passed twice, excluded) within 0.05 dB (the
    resampler's passband ripple is 0.03 dB) and 5e-3 of each path's peak (complex)."""
    fset = make_set(n_drivers=3)  # paths start within 10 samples of time 0: latency gets added
    top = PASSBAND_FRACTION * min(48000, new) / 2
    out = resample_filterset(fset, new)
    ref, ref_start = bandlimited_reference(fset.fir, 48000, new)
    added = out.config["resample"]["added_latency_samples"]
    assert added > 0
    db, rel = response_error(out.fir.double().numpy(), -added, ref, ref_start, new, top)
    assert db <= 0.05 and rel <= 5e-3, (db, rel)

    late = make_set(n_drivers=2, lr=160, cd=170, slack=160, seed=4)  # room for the ringing: no added latency
    out = resample_filterset(late, new, add_latency=False)
    assert out.config["resample"]["added_latency_samples"] == 0
    assert out.latency_samples == round(late.latency_samples * new / 48000)
    direct = resample_taps(late.fir.double(), 48000, new).numpy()  # plain torchaudio on the composite
    db, rel = response_error(out.fir.double().numpy(), 0, direct, 0, new, top)
    assert db <= 0.05 and rel <= 5e-3, (db, rel)


def test_resampler_response_backs_the_documented_band_edges():
    x = torch.zeros(1, 8192, dtype=torch.float64)
    x[0, 4096] = 1.0
    y = resample_taps(x, 48000, 96000)[0].numpy()
    assert abs(y.sum() - 1.0) < 1e-6  # DC gain kept (taps scaled by old/new)
    spec = 20 * np.log10(np.abs(np.fft.rfft(y, 1 << 16)) + 1e-300)
    freqs = np.fft.rfftfreq(1 << 16, 1 / 96000)
    nyq = 24000
    at = lambda frac: spec[np.argmin(np.abs(freqs - frac * nyq))]  # noqa: E731
    assert np.abs(spec[freqs < PASSBAND_FRACTION * nyq]).max() < 0.03
    assert -1.2 < at(CUT_FRACTION) < -0.8
    assert at(0.9475) < -5.0 and at(1.0) < -60.0


DEVICE = {"drivers": [{"name": "drv 0", "band_hz": [2000, 20000]}, {"name": "drv 1", "band_hz": [40, 500]},
                      {"name": "drv 2", "band_hz": [200, 10000]}]}


def no_warning(func, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = func(*args, **kwargs)
    assert not [w for w in caught if issubclass(w.category, BandLimitWarning)], [str(w.message) for w in caught]
    return result


def test_band_limit_warning_exactly_when_a_driver_band_is_cut():
    fset = make_set(n_drivers=3, config={"device": DEVICE})
    no_warning(resample_filterset, fset, 44100)  # 20 kHz < −1 dB point 20.4 kHz
    no_warning(resample_filterset, fset, 96000)  # upsampling never warns
    with pytest.warns(BandLimitWarning, match=r"1 driver\(s\): drv 0 \(band_hz \[2000, 20000\]: 14800-20000 Hz lost\)"):
        resample_filterset(fset, 32000)
    wide = make_set(n_drivers=3, config={"device": {"drivers": [dict(d, band_hz=[20, 21000]) for d in DEVICE["drivers"]]}})
    with pytest.warns(BandLimitWarning, match=r"3 driver\(s\): drv 0 .*20396-21000 Hz lost"):
        resample_filterset(wide, 44100)


def lowpass_set(cutoff_hz: float, n_drivers=2) -> FilterSet:
    """Stages built from one windowed-sinc low-pass (no content above ~cutoff)."""
    n = np.arange(129) - 64
    lp = np.sinc(2 * cutoff_hz / 48000 * n) * 2 * cutoff_hz / 48000 * np.blackman(129)
    lp = torch.tensor(lp)
    gains = torch.linspace(0.5, 1.5, 2 * n_drivers, dtype=torch.float64).reshape(2, n_drivers, 1)
    return FilterSet.from_stages(gains * lp, torch.stack([lp, 0.5 * lp]), gains[0] * lp, 8, 8, 300, 48000,
                                 [f"d{i}" for i in range(n_drivers)], 64)


def test_band_limit_warning_from_content_without_band_hz():
    no_warning(resample_filterset, lowpass_set(8000.0), 44100)  # nothing above 0.9 × 22.05 kHz
    with pytest.warns(BandLimitWarning, match=r"2 driver\(s\): drv 0 \(no band_hz; 19845-24000 Hz lost: -\d+\.\d dB"):
        resample_filterset(make_set(n_drivers=2), 44100)  # random taps: broadband content


def test_resample_rejects_bad_rates():
    fset = make_set()
    for bad in (0, -48000, 44100.5, float("nan"), "44100", True):
        with pytest.raises(ConfigError, match="sample_rate"):
            resample_filterset(fset, bad)
    with pytest.raises(DataError, match="whole number of Hz"):
        resample_filterset(make_set(rate=44100.5), 48000)
