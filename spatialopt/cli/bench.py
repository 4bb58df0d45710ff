"""``spatialopt-bench``: run the benchmarks of :mod:`spatialopt.bench` and print their tables.

    spatialopt-bench scene [--repeat N] [--json OUT] [--zone NAME] [--n-fft N] [--max-order N]
    spatialopt-bench all   [--repeat N] [--json OUT]

One subcommand per entry of :data:`spatialopt.bench.BENCHMARKS` (plus ``all``, which runs each
with its defaults). ``--json OUT`` writes ``{"environment": {...}, "<benchmark>": {...}, ...}``.
Progress lines go to stderr, the tables to stdout. Not a Hydra app: plain argparse.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from spatialopt.cli._common import one_line_errors


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1 (got {value})")
    return value


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeat", type=_positive_int, default=1, metavar="N",
                        help="timed runs per case; the best is reported (default 1)")
    parser.add_argument("--json", type=Path, default=None, metavar="OUT",
                        help="also write the results as JSON to OUT")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser: one subcommand per registered benchmark, plus ``all``."""
    from spatialopt.bench import BENCHMARKS

    parser = argparse.ArgumentParser(
        prog="spatialopt-bench",
        description="Time spatialopt against peer implementations (wall-clock seconds; no pass/fail).",
    )
    sub = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, bench in BENCHMARKS.items():
        p = sub.add_parser(name, help=bench.help, description=bench.help)
        _common(p)
        for opt, (dest, typ, default, text) in bench.options.items():
            p.add_argument(f"--{opt}", dest=dest, type=typ, default=default, help=f"{text} (default {default})")
    p = sub.add_parser("all", help=f"run every benchmark ({', '.join(BENCHMARKS)}) with its defaults",
                       description="run every benchmark with its defaults")
    _common(p)
    return parser


def _write_json(path: Path, payload: dict) -> None:
    path = Path(os.path.expanduser(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


@one_line_errors("spatialopt-bench")
def run(argv: list[str] | None = None) -> int:
    from spatialopt.bench import BENCHMARKS, environment

    args = build_parser().parse_args(argv)
    names = list(BENCHMARKS) if args.benchmark == "all" else [args.benchmark]

    def progress(line: str) -> None:
        print(f"[spatialopt-bench] {line}", file=sys.stderr, flush=True)

    payload: dict = {"environment": environment()}
    for i, name in enumerate(names):
        bench = BENCHMARKS[name]
        options = {} if args.benchmark == "all" else {dest: getattr(args, dest) for dest, *_ in bench.options.values()}
        result = bench.run(repeat=args.repeat, progress=progress, **options)
        payload[name] = result
        if i:
            print()
        print(bench.format(result), flush=True)
    if args.json is not None:
        _write_json(args.json, payload)
        progress(f"results written to {args.json}")
    return 0


def main(argv: list[str] | None = None) -> None:
    raise SystemExit(run(argv))


if __name__ == "__main__":
    main()
