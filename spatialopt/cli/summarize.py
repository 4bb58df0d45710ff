"""``spatialopt-summarize``: one table of every run under a directory (a sweep, or ``runs/``).

    spatialopt-summarize DIR [--sort METRIC] [--desc | --asc] [--out PREFIX]

A run is a directory holding ``metrics.json`` (searched recursively under DIR, DIR included).
Each row is one run: its path relative to DIR, its Hydra overrides (``.hydra/overrides.yaml``
when present) and its key metrics. The table is sorted by METRIC, a dotted path into
``metrics.json`` (default ``ours.ctc.separation_db.zone_p10``; a path without a design prefix,
such as ``beam.null_depth_db``, means ``ours.…``), best first (``--desc`` by default, ``--asc``
for metrics where lower is better); runs without a value sort last. It is printed as Markdown and
written, atomically, to ``PREFIX.md`` and ``PREFIX.csv`` (default PREFIX: ``DIR/summary``).

Bad input — no run under DIR, a metric no run has, an unreadable ``metrics.json`` — is one line
on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from spatialopt.cli._common import one_line_errors
from spatialopt.errors import DataError

__all__ = ["DEFAULT_SORT", "COLUMNS", "find_runs", "lookup_metric", "metric_paths", "summarize", "main"]

PROG = "spatialopt-summarize"
DEFAULT_SORT = "ours.ctc.separation_db.zone_p10"
# (column header, dotted metric path) — the headline numbers of the optimised design.
COLUMNS = [
    ("sep sweet", "ours.ctc.separation_db.sweet_mean"),
    ("sep zone mean", "ours.ctc.separation_db.zone_mean"),
    ("sep zone p10", "ours.ctc.separation_db.zone_p10"),
    ("ILD err", "ours.virtual.ild_err_db_rms"),
    ("ITD err µs", "ours.virtual.itd_err_us_rms"),
    ("null", "ours.beam.null_depth_db"),
    ("lobe dev", "ours.beam.mainlobe_dev_db"),
    ("tonal", "ours.tonal.dev_db_rms"),
    ("WNG min", "ours.effort.wng_db_min"),
    ("xover excess", "ours.effort.crossover_excess_db"),
    ("steps", "steps"),
    ("interrupted", "interrupted"),
    ("runtime s", "runtime_s"),
]
_MISSING = object()


class SummaryError(DataError):
    """Bad input to the summary (no runs, unknown metric, unreadable file)."""


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def _walk(metrics, path: list[str]):
    for key in path:
        if not isinstance(metrics, Mapping) or key not in metrics:
            return _MISSING
        metrics = metrics[key]
    return metrics


def lookup_metric(metrics: Mapping, path: str):
    """The value at a dotted ``path`` in a ``metrics.json`` mapping (``ours.ctc.separation_db.zone_p10``);
    a path that does not resolve from the top is tried under ``ours`` (``ctc.separation_db.zone_p10``).
    Raises ``KeyError`` when neither resolves."""
    parts = [p for p in str(path).split(".") if p]
    if not parts:
        raise KeyError(path)
    value = _walk(metrics, parts)
    if value is _MISSING and parts[0] not in metrics:
        value = _walk(metrics, ["ours", *parts])
    if value is _MISSING:
        raise KeyError(path)
    return value


def metric_paths(metrics: Mapping, prefix: str = "") -> list[str]:
    """Every dotted path to a number (or null) in a metrics mapping, for error messages."""
    out = []
    for key, value in metrics.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out += metric_paths(value, path + ".")
        elif value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            out.append(path)
    return out


def find_runs(root: Path) -> list[Path]:
    """Every directory under ``root`` (``root`` included) that holds a ``metrics.json``, sorted."""
    runs = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d not in ("tb", "checkpoints", "filterset"))
        if "metrics.json" in filenames:
            runs.append(Path(dirpath))
    return sorted(runs)


def _read_overrides(run: Path) -> list[str]:
    path = run / ".hydra" / "overrides.yaml"
    if not path.is_file():
        return []
    try:
        from omegaconf import OmegaConf

        values = OmegaConf.to_container(OmegaConf.load(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure is a bad input file
        raise SummaryError(f"{path}: unreadable Hydra overrides ({_one_line(exc)})") from None
    if not isinstance(values, list):
        raise SummaryError(f"{path}: expected a list of overrides")
    return [str(v) for v in values]


def _read_metrics(run: Path) -> dict:
    path = run / "metrics.json"
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SummaryError(f"{path}: unreadable metrics.json ({_one_line(exc)})") from None
    if not isinstance(metrics, dict):
        raise SummaryError(f"{path}: metrics.json is not a JSON object")
    return metrics


def _cell(value) -> str:
    if value is _MISSING or value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}" if math.isfinite(value) else str(value)
    return str(value)


def _csv_cell(value) -> str:
    if value is _MISSING or value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _sort_key(value) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    return None


def summarize(root, sort: str = DEFAULT_SORT, descending: bool = True, out_prefix=None) -> tuple[str, str, list[dict]]:
    """Collect every run under ``root`` and write ``PREFIX.md`` and ``PREFIX.csv``.

    Returns (markdown, csv text, rows); each row has ``run``, ``overrides`` (list) and
    ``metrics`` (the parsed ``metrics.json``) and ``sort_value``.
    """
    root = Path(root)
    if not root.is_dir():
        raise SummaryError(f"{root}: not a directory")
    runs = find_runs(root)
    if not runs:
        raise SummaryError(f"{root}: no runs found (no metrics.json under it)")
    rows = []
    for run in runs:
        metrics = _read_metrics(run)
        try:
            value = lookup_metric(metrics, sort)
        except KeyError:
            value = _MISSING
        rows.append({"run": run, "overrides": _read_overrides(run), "metrics": metrics, "sort_value": value})
    if all(r["sort_value"] is _MISSING for r in rows):
        first = rows[0]["metrics"]
        designs = [k for k, v in first.items() if isinstance(v, Mapping)]
        known = [p for p in metric_paths(first) if p.split(".")[0] not in designs[1:]]
        raise SummaryError(f"--sort {sort}: unknown metric (no run has it); known: {', '.join(known)} "
                           f"(and the same under {', '.join(designs[1:])})")
    if any(not isinstance(r["sort_value"], (int, float, type(None))) and r["sort_value"] is not _MISSING for r in rows):
        raise SummaryError(f"--sort {sort}: not a number (a group of metrics?); pick a leaf such as {DEFAULT_SORT}")

    present = [r for r in rows if _sort_key(r["sort_value"]) is not None]
    absent = [r for r in rows if _sort_key(r["sort_value"]) is None]
    present.sort(key=lambda r: _sort_key(r["sort_value"]), reverse=descending)
    rows = present + absent

    # The sort metric, spelt in full, is always a column (the first) unless it is one already.
    parts = [p for p in sort.split(".") if p]
    from_top = any(_walk(r["metrics"], parts) is not _MISSING for r in rows)
    full_sort = ".".join(parts) if from_top else ".".join(["ours", *parts])
    columns = [(c, p) for c, p in COLUMNS]
    if full_sort not in {p for _, p in columns}:
        columns.insert(0, (full_sort, full_sort))

    common: list[str] = []
    if len(rows) > 1:
        common = [o for o in rows[0]["overrides"] if all(o in r["overrides"] for r in rows[1:])]

    def rel(run: Path) -> str:
        return "." if run == root else str(run.relative_to(root))

    def values(row):
        out = []
        for _, path in columns:
            try:
                out.append(lookup_metric(row["metrics"], path))
            except KeyError:
                out.append(_MISSING)
        return out

    order = "descending" if descending else "ascending"
    md = [f"# spatialopt runs under `{root}`", "",
          f"{len(rows)} run(s), sorted by `{full_sort}` ({order}; runs without it last)."]
    if common:
        md.append("Overrides common to every run: " + " ".join(f"`{o}`".replace("|", "\\|") for o in common) + ".")
    md += ["", "| run | overrides | " + " | ".join(c for c, _ in columns) + " |",
           "|---|---|" + "---:|" * len(columns)]
    for row in rows:
        own = [o for o in row["overrides"] if o not in common]
        over = " ".join(f"`{o}`".replace("|", "\\|") for o in own) or "—"
        md.append(f"| {rel(row['run'])} | {over} | " + " | ".join(_cell(v) for v in values(row)) + " |")
    markdown = "\n".join(md) + "\n"

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["run", "overrides", *(p for _, p in columns)])
    for row in rows:
        writer.writerow([rel(row["run"]), " ".join(row["overrides"]), *(_csv_cell(v) for v in values(row))])
    csv_text = buf.getvalue()

    from spatialopt.fileio import atomic_path

    prefix = Path(out_prefix) if out_prefix is not None else root / "summary"
    try:  # both temporaries are written before either is renamed: a full disk changes neither file
        with atomic_path(prefix.with_name(prefix.name + ".md")) as md_tmp, \
                atomic_path(prefix.with_name(prefix.name + ".csv")) as csv_tmp:
            md_tmp.write_text(markdown, encoding="utf-8")
            csv_tmp.write_text(csv_text, encoding="utf-8")
    except OSError as exc:
        raise SummaryError(f"--out {prefix}: cannot write ({_one_line(exc)})") from None
    return markdown, csv_text, rows


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse prints usage + error otherwise)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        raise SystemExit(2)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Summarise every run (a directory with metrics.json) under DIR "
                "into one table, printed and written as PREFIX.md and PREFIX.csv.")
    p.add_argument("dir", metavar="DIR", help="a sweep directory (hydra.sweep.dir), runs/, or one run")
    p.add_argument("--sort", default=DEFAULT_SORT, metavar="METRIC",
                   help=f"dotted path into metrics.json to sort by (default {DEFAULT_SORT}; "
                        "a path without a design prefix means ours.…)")
    order = p.add_mutually_exclusive_group()
    order.add_argument("--desc", dest="descending", action="store_true", default=True, help="largest first (default)")
    order.add_argument("--asc", dest="descending", action="store_false", help="smallest first")
    p.add_argument("--out", metavar="PREFIX", default=None, help="write PREFIX.md and PREFIX.csv (default DIR/summary)")
    return p


@one_line_errors(PROG)
def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    markdown, _, _ = summarize(Path(args.dir), args.sort, args.descending, args.out)
    prefix = Path(args.out) if args.out else Path(args.dir) / "summary"
    print(markdown, end="")
    print(f"\nwritten: {prefix}.md, {prefix}.csv")
    return 0


def main(argv: list[str] | None = None) -> None:
    raise SystemExit(run(argv))


if __name__ == "__main__":
    main()
