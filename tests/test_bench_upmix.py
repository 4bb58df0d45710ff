"""The upmix benchmark: its metric functions on known cases, and a tiny end-to-end run."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from spatialopt.bench import BENCHMARKS
from spatialopt.bench.upmix import (
    HARD, PAN, Projector, align, bench_upmix, centre_metrics, format_upmix, make_stems, mix_stems,
    si_sdr_db, solo_leakage_db,
)

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture(scope="module")
def stems():
    return make_stems(1.0, seed=3, variant="ambient")


def test_stems_and_mix(stems):
    assert set(stems) == {"voice", "pluck", "shaker", "pad", "keys", "amb_l", "amb_r"}
    n = 48000
    assert all(x.shape == (n,) and np.isfinite(x).all() for x in stems.values())
    mix = mix_stems(stems)
    np.testing.assert_allclose(mix[0], sum(PAN[k][0] * x for k, x in stems.items()))
    solo = mix_stems(stems, HARD)
    np.testing.assert_allclose(solo, np.stack([stems["pluck"], stems["shaker"]]))


def test_sdr_of_the_true_stem_is_very_high(stems):
    sdr, alpha = si_sdr_db(0.7 * stems["voice"], stems["voice"])
    assert sdr > 100 and alpha == pytest.approx(0.7)
    sdr, _ = si_sdr_db(stems["voice"] + stems["voice"].std() * np.random.default_rng(0).standard_normal(48000),
                       stems["voice"])
    assert sdr == pytest.approx(0.0, abs=0.2)  # noise at the voice's power: 0 dB


def test_align_finds_the_lag(stems):
    v = stems["voice"]
    delayed = np.concatenate([np.zeros(300), v[:-300]])
    out, lag = align(delayed, v)
    assert lag == 300
    np.testing.assert_allclose(out[: -300], v[: -300])


def test_projection_recovers_filtered_stems(stems):
    names = list(stems)
    proj = Projector(np.stack([stems[k] for k in names]), taps=32)
    h = np.array([0.0] * 14 + [0.5, 1.0, -0.3] + [0.0] * 15)  # lags −16…15: taps around lag 0
    filtered = np.convolve(stems["pluck"], h)[16:16 + 48000]
    comps = proj(filtered + 0.5 * stems["pad"])
    k = names.index("pluck")
    err = comps[k] - filtered
    assert err @ err < 1e-6 * (filtered @ filtered)
    assert np.abs(comps[names.index("pad")] - 0.5 * stems["pad"]).max() < 1e-3 * np.abs(stems["pad"]).max()


def test_metrics_known_cases(stems):
    # the true centre: very high SDR and SIR, no leakage
    m = centre_metrics(stems["voice"], stems)
    assert m["sdr_db"] > 60 and m["sir_db"] > 60 and m["leak_db"] < -60 and m["lag_samples"] == 0
    # half voice, half pad (normalised to equal energy): SIR ≈ 0 dB
    pad = stems["pad"] * np.linalg.norm(stems["voice"]) / np.linalg.norm(stems["pad"])
    m = centre_metrics(0.5 * stems["voice"] + 0.5 * pad, stems)
    assert m["sir_db"] == pytest.approx(0.0, abs=0.5)
    assert m["sdr_db"] == pytest.approx(0.0, abs=0.5)
    # the passive mid: hard-panned sources at −6 dB, in the mix (projection) and solo (energy)
    mix = mix_stems(stems)
    m = centre_metrics(0.5 * (mix[0] + mix[1]), stems)
    assert m["leak_db"] == pytest.approx(-6.02, abs=0.5) and m["scale"] == pytest.approx(1.0, abs=0.05)
    solo = mix_stems(stems, HARD)
    assert solo_leakage_db(0.5 * (solo[0] + solo[1]), stems) == pytest.approx(-6.02, abs=0.5)


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def test_bench_upmix_tiny():
    result = bench_upmix(progress=None, seconds=0.5)
    json.dumps(result)  # JSON-ready
    assert result["systems"] == ["ours", "passive_mid", "ffmpeg_surround", "ffmpeg_tuned"]
    assert [m["name"] for m in result["mixes"]] == ["dry", "ambient", "dense"]
    have_ffmpeg = shutil.which("ffmpeg") is not None
    for m in result["mixes"]:
        for name in result["systems"]:
            r = m["results"][name]
            if name.startswith("ffmpeg") and not have_ffmpeg:
                assert "unavailable" in r
                continue
            for key in ("sdr_db", "sir_db", "leak_db", "leak_pluck_db", "leak_shaker_db", "solo_leak_db",
                        "scale", "time_s"):
                assert _finite(r[key]), (m["name"], name, key, r[key])
        assert m["results"]["passive_mid"]["leak_db"] == pytest.approx(-6.0, abs=0.5)
        assert m["results"]["ours"]["lag_samples"] == 0
    s = result["summary"]["ours"]
    assert s["rtf"] == pytest.approx(s["time_s"] / 1.5)
    t = result["targets"]
    assert isinstance(t["leak_pass"], bool)
    if have_ffmpeg:
        assert result["setup"]["ffmpeg_check"]["order_ok"]
        assert isinstance(t["sir_pass"], bool) and len(t["sir_margins_db"]) == 3
        assert isinstance(t["sir_pass_tuned"], bool) and len(t["sdr_margins_tuned_db"]) == 3
    text = format_upmix(result)
    assert "passive_mid" in text and "target:" in text and "ffmpeg_tuned" in text


def test_bench_upmix_without_ffmpeg():
    result = bench_upmix(progress=None, seconds=0.5, variants=("dry",), ffmpeg="no-such-ffmpeg-binary")
    assert "unavailable" in result["mixes"][0]["results"]["ffmpeg_surround"]
    assert "unavailable" in result["summary"]["ffmpeg_surround"]
    assert "unavailable" in result["mixes"][0]["results"]["ffmpeg_tuned"]
    assert result["targets"]["sir_pass"] is None and result["targets"]["sir_pass_tuned"] is None
    text = format_upmix(result)
    assert "ffmpeg_surround" in text and "unavailable" in text


def test_registered_in_cli():
    from spatialopt.cli.bench import build_parser

    assert BENCHMARKS["upmix"].run is bench_upmix
    args = build_parser().parse_args(["upmix", "--seconds", "2.5", "--seed", "4"])
    assert (args.benchmark, args.seconds, args.seed) == ("upmix", 2.5, 4)
