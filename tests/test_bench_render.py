"""The render benchmark runs end to end on a tiny config, and every peer computes the same thing as
ours (which is what makes its timings comparable). No timing is asserted."""

from __future__ import annotations

import json
import math
import shutil

import numpy as np
import pytest

from spatialopt.bench import BENCHMARKS
from spatialopt.bench.render import bench_render, ffmpeg_afir_graph, format_render, peer_outputs

pytestmark = pytest.mark.usefixtures("single_thread")

TINY = dict(seconds=0.2, batches="1,2", blocks="64,256", max_batch_audio=1.0)


def _positive_finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


@pytest.fixture(scope="module")
def tiny_result(single_thread):
    pytest.importorskip("scipy")
    return bench_render(repeat=2, **TINY)


def test_bench_render_structure(tiny_result):
    r = tiny_result
    assert r["benchmark"] == "render" and r["repeat"] == 2
    s = r["setup"]
    assert (s["inputs"], s["drivers"], s["taps"], s["fs"], s["upmix"]) == (3, 5, 1024, 48000, False)
    assert s["batches"] == [1, 2] and s["blocks"] == [64, 256] and s["samples_multiple_of"] == 256
    cases = {(row["case"], row["batch"], row["block"]) for row in r["rows"]}
    for b in (1, 2):
        for n in (64, 256):
            assert ("ours stream", b, n) in cases
        assert ("ours offline", b, 1024) in cases
        assert ("scipy oaconvolve", b, None) in cases
    for row in r["rows"]:
        assert len(row["times_s"]) == 2 and row["wall_s"] == min(row["times_s"])
        for key in ("wall_s", "rtf", "rtf_per_stream", "streams_per_s", "vs_scipy"):
            assert _positive_finite(row[key]), (row["case"], key, row[key])
        assert math.isclose(row["rtf"], row["batch"] * row["audio_s"] / row["wall_s"], rel_tol=1e-12)
        assert math.isclose(row["rtf_per_stream"], row["audio_s"] / row["wall_s"], rel_tol=1e-12)
        assert row["audio_s"] * 48000 % 256 == 0  # whole blocks (ffmpeg's last-partition quirk)
    a = r["targets"]["a_stream_b64_n1024_vs_scipy"]
    assert a["value"] is None and a["met"] is None and a["target"] == 3.0  # batch 64 / block 1024 not run
    b = r["targets"]["b_stream_n256_vs_ffmpeg"]
    if shutil.which("ffmpeg"):
        assert _positive_finite(b["value"]) and b["met"] == (b["value"] > 1.0)
    json.dumps(r)  # JSON-ready
    text = format_render(r)
    assert "ours stream" in text and "scipy oaconvolve" in text and "target b_stream_n256_vs_ffmpeg" in text


def test_bench_render_peers_do_the_same_work(tiny_result):
    """Every peer's output (batch item 0) equals ours within 1e-4 of the peak."""
    peers = [row for row in tiny_result["rows"] if not row["case"].startswith("ours")]
    names = {row["case"] for row in peers}
    assert "scipy oaconvolve" in names
    if shutil.which("ffmpeg"):
        assert {("ffmpeg afir", 64), ("ffmpeg afir", 256)} <= {(row["case"], row["block"]) for row in peers}
    else:
        assert "ffmpeg afir" in tiny_result["unavailable"]
    for row in peers:
        assert row["agreement"] < 1e-4, (row["case"], row["block"], row["agreement"])


def test_peer_outputs_agree_with_ours():
    pytest.importorskip("scipy")
    out = peer_outputs(seconds=0.1, block=128)
    ours = out["ours"]
    assert ours.shape == (5, 4864)
    expected = {"ours_stream", "scipy", "torchaudio"} | ({"ffmpeg"} if shutil.which("ffmpeg") else set())
    assert expected <= set(out)
    for name in expected:
        y = out[name]
        assert y.shape == ours.shape, name
        assert np.abs(y - ours).max() / np.abs(ours).max() < 1e-4, name


def test_ffmpeg_missing_is_reported_not_raised():
    pytest.importorskip("scipy")
    r = bench_render(seconds=0.05, batches="1", blocks="256", ffmpeg="/nonexistent/ffmpeg", torchaudio_batches="1")
    assert "not found" in r["unavailable"]["ffmpeg afir"]
    assert r["targets"]["b_stream_n256_vs_ffmpeg"]["value"] is None
    assert "ffmpeg afir" in format_render(r) and "unavailable" in format_render(r)


def test_ffmpeg_graph_is_the_three_to_d_matrix():
    g = ffmpeg_afir_graph(5, 256)
    assert g.count("afir=") == 3 and "minp=256:maxp=256" in g and "amix=inputs=3:normalize=0[out]" in g
    assert "[a2]pan=5c|c0=c2|c1=c2|c2=c2|c3=c2|c4=c2[p2]" in g and "[p2][3:a]" in g


def test_registered_in_cli():
    from spatialopt.cli.bench import build_parser

    assert "render" in BENCHMARKS
    args = build_parser().parse_args(["render", "--seconds", "0.5", "--batches", "1,8", "--threads", "0"])
    assert (args.seconds, args.batches, args.blocks, args.threads, args.n_taps) == (0.5, "1,8", "64,256,1024", 0, 1024)
