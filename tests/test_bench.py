"""The benchmark runs end to end on a tiny scene (no timing is asserted, only that times exist)."""

from __future__ import annotations

import json
import math

import pytest

from spatialopt.bench import BENCHMARKS, bench_scene, format_scene

TINY = dict(zone={"lateral": [-0.05, 0.0, 0.05], "depth": [0.0], "yaw": [0]}, n_fft=64, max_order=1)


def _positive_finite(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_bench_scene_tiny():
    pytest.importorskip("pyroomacoustics")
    result = bench_scene(repeat=2, **TINY)
    for key in ("ours_s", "ours_omni_s", "pra_s", "pra_default_s", "ratio", "ratio_omni"):
        assert _positive_finite(result[key]), (key, result[key])
    assert len(result["ours_times_s"]) == len(result["pra_times_s"]) == 2
    assert result["ours_s"] == min(result["ours_times_s"])
    assert math.isclose(result["ratio"], result["ours_s"] / result["pra_s"], rel_tol=1e-12)
    setup = result["setup"]
    assert (setup["zone_points"], setup["frequencies"], setup["max_order"], setup["drivers"]) == (3, 33, 1, 5)
    # smart_speaker_5: one source per driver acoustic centre (5); 3 head positions × 2 ears.
    assert (setup["pra_sources"], setup["pra_mics"]) == (5, 6)
    json.dumps(result)  # JSON-ready
    assert "pyroomacoustics" in format_scene(result)


def test_cli_lists_only_existing_benchmarks(capsys):
    from spatialopt.cli.bench import build_parser

    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["--help"])
    text = capsys.readouterr().out
    for name in BENCHMARKS:
        assert name in text
    assert "all" in text
    with pytest.raises(SystemExit):
        parser.parse_args(["no-such-benchmark"])
    args = parser.parse_args(["scene", "--repeat", "3", "--json", "out.json"])
    assert (args.benchmark, args.repeat, str(args.json), args.n_fft) == ("scene", 3, "out.json", 1024)
