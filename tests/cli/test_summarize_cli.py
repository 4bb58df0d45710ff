"""``spatialopt-summarize`` on synthetic run directories, and the optimiser's objective lookup."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

from spatialopt.cli.summarize import find_runs, lookup_metric, main

BIN = Path(sys.executable).parent


def _metrics(p10: float | None, null: float = -30.0, steps: int = 100) -> dict:
    design = {"ctc": {"separation_db": {"sweet_mean": 30.0, "zone_mean": 25.0, "zone_p10": p10}, "band_hz": [1500.0, 8000.0]},
              "beam": {"null_depth_db": null}, "room": {"drr_db": None}}
    if p10 is None:
        del design["ctc"]["separation_db"]["zone_p10"]
    return {"ours": design, "kirkeby": {"ctc": {"separation_db": {"zone_p10": 1.0}}}, "runtime_s": 1.5, "steps": steps,
            "interrupted": False}


def _run(path: Path, metrics: dict, overrides: list[str] | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "metrics.json").write_text(json.dumps(metrics))
    if overrides is not None:
        (path / ".hydra").mkdir()
        (path / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    (path / "filterset").mkdir()
    (path / "filterset" / "manifest.json").write_text("{}")
    return path


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "sweep"
    _run(root / "0", _metrics(10.0, null=-20.0), ["+experiment=debug", "loss.weights.cancellation=1"])
    _run(root / "1", _metrics(14.0, null=-35.0), ["+experiment=debug", "loss.weights.cancellation=8"])
    _run(root / "2", _metrics(None, null=-25.0), ["+experiment=debug", "loss.weights.cancellation=4"])
    _run(root / "more" / "nested", _metrics(12.0, null=-30.0))  # outside Hydra: no overrides
    return root


def _summarize(capsys, *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(list(argv))
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def test_finds_every_run_recursively(sweep):
    assert [p.relative_to(sweep).as_posix() for p in find_runs(sweep)] == ["0", "1", "2", "more/nested"]
    assert find_runs(sweep / "1") == [sweep / "1"]  # a run directory is itself a run


def test_default_sort_is_zone_p10_descending_with_missing_last(sweep, capsys):
    code, out, err = _summarize(capsys, str(sweep))
    assert code == 0, err
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert [r["run"] for r in rows] == ["1", "more/nested", "0", "2"]
    assert [r["ours.ctc.separation_db.zone_p10"] for r in rows] == ["14.0", "12.0", "10.0", ""]
    assert rows[0]["overrides"] == "+experiment=debug loss.weights.cancellation=8" and rows[1]["overrides"] == ""
    md = (sweep / "summary.md").read_text()
    assert out.startswith(md) and f"written: {sweep / 'summary'}.md, {sweep / 'summary'}.csv" in out
    assert "sorted by `ours.ctc.separation_db.zone_p10` (descending" in md
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0].startswith("| run | overrides | sep sweet |")
    assert table[1].startswith("| 1 | `+experiment=debug` `loss.weights.cancellation=8` | 30.00 | 25.00 | 14.00 |")
    assert table[-1].startswith("| 2 |") and "| — |" in table[-1]
    assert not [p for p in sweep.iterdir() if p.name.startswith(".summary")]  # atomic writes leave no temporaries


def test_sort_by_another_metric_ascending_and_out_prefix(sweep, tmp_path, capsys):
    prefix = tmp_path / "out" / "table"
    code, out, err = _summarize(capsys, str(sweep), "--sort", "beam.null_depth_db", "--asc", "--out", str(prefix))
    assert code == 0, err
    rows = list(csv.DictReader(Path(f"{prefix}.csv").open()))
    # A path without a design prefix is the optimised design's, and becomes a column of its own.
    assert [r["ours.beam.null_depth_db"] for r in rows] == ["-35.0", "-30.0", "-25.0", "-20.0"]
    assert Path(f"{prefix}.md").read_text().count("\n| ") == 5  # header + 4 runs
    assert not (sweep / "summary.csv").exists()
    code, _, _ = _summarize(capsys, str(sweep), "--sort", "kirkeby.ctc.separation_db.zone_p10", "--desc", "--out", str(prefix))
    assert code == 0


def test_common_overrides_are_factored_out(sweep, capsys):
    _summarize(capsys, str(sweep / "0"))  # a single run shows all of its overrides
    assert "| . | `+experiment=debug` `loss.weights.cancellation=1` |" in (sweep / "0" / "summary.md").read_text()
    other = sweep.parent / "pair"
    _run(other / "a", _metrics(1.0), ["+experiment=debug", "seed=0"])
    _run(other / "b", _metrics(2.0), ["+experiment=debug", "seed=1"])
    _summarize(capsys, str(other))
    md = (other / "summary.md").read_text()
    assert "Overrides common to every run: `+experiment=debug`." in md and "| b | `seed=1` |" in md


@pytest.mark.parametrize("case, message", [
    ("empty", "no runs found"),
    ("missing", "not a directory"),
    ("unknown", "--sort ctc.separation_db.nope: unknown metric (no run has it); known: ours.ctc.separation_db.sweet_mean"),
    ("group", "--sort ours.ctc: not a number"),
    ("corrupt", "unreadable metrics.json"),
    ("overrides", "unreadable Hydra overrides"),
    ("noarg", "the following arguments are required: DIR"),
    ("badflag", "not allowed with argument"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, case, message):
    root = tmp_path / "root"
    root.mkdir()
    argv = [str(root)]
    if case == "missing":
        argv = [str(tmp_path / "nowhere")]
    elif case in ("unknown", "group", "badflag"):
        _run(root / "0", _metrics(1.0))
        argv += {"unknown": ["--sort", "ctc.separation_db.nope"], "group": ["--sort", "ours.ctc"],
                 "badflag": ["--asc", "--desc"]}[case]
    elif case == "corrupt":
        _run(root / "0", _metrics(1.0))
        (root / "0" / "metrics.json").write_text('{"ours": ')
    elif case == "overrides":
        _run(root / "0", _metrics(1.0), ["a=1"])
        (root / "0" / ".hydra" / "overrides.yaml").write_text("- [unclosed\n")
    elif case == "noarg":
        argv = []
    code, out, err = _summarize(capsys, *argv)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("spatialopt-summarize: error: ") and message in err, err
    assert not (root / "summary.md").exists()


def test_console_script(sweep):
    proc = subprocess.run([str(BIN / "spatialopt-summarize"), str(sweep), "--sort", "nope"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 2 and proc.stderr.startswith("spatialopt-summarize: error: --sort nope: unknown metric")
    proc = subprocess.run([str(BIN / "spatialopt-summarize"), str(sweep)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "| 1 |" in proc.stdout


def test_lookup_metric_paths():
    m = _metrics(7.0)
    assert lookup_metric(m, "ours.ctc.separation_db.zone_p10") == 7.0
    assert lookup_metric(m, "ctc.separation_db.zone_p10") == 7.0  # relative to ours
    assert lookup_metric(m, "kirkeby.ctc.separation_db.zone_p10") == 1.0
    assert lookup_metric(m, "steps") == 100
    for bad in ("", "ours.nope", "kirkeby.beam.null_depth_db"):
        with pytest.raises(KeyError):
            lookup_metric(m, bad)


def test_objective_value_and_its_checks():
    from spatialopt.cli.optimize import check_objective, objective_value
    from spatialopt.errors import ConfigError

    m = _metrics(7.0, null=-31.0)
    assert check_objective({}) == ("ctc.separation_db.zone_p10", "maximize")  # outside Hydra: no sweeper to check
    assert objective_value(m, "ctc.separation_db.zone_p10") == 7.0
    assert objective_value(m, "ours.beam.null_depth_db") == -31.0
    with pytest.raises(ConfigError, match=r"^objective='room.drr_db': is None in this run"):
        objective_value(m, "room.drr_db")
    with pytest.raises(ConfigError, match=r"^objective='beam.nope': not in metrics.json; known: ours.ctc"):
        objective_value(m, "beam.nope")
    with pytest.raises(ConfigError, match=r"^objective='sparkle.x'"):
        check_objective({"objective": "sparkle.x"})
    with pytest.raises(ConfigError, match=r"^objective_direction='up'"):
        check_objective({"objective_direction": "up"})
