"""``spatialopt-export``: write a filter set's exports for audio engines.

    spatialopt-export filterset=DIR [formats=[wav,camilladsp,ffmpeg]] [out=DIR] [sample_rate=HZ]

* ``formats``: any of ``wav``, ``camilladsp``, ``ffmpeg`` — ``formats=[wav,ffmpeg]`` or
  ``formats=wav``; default: all three. The WAVs are always written (the engines read them).
* ``out``: the export directory, default ``<filterset>/exports``; relative paths are relative to the
  current directory. An existing export there is replaced as a whole; any other non-empty
  directory is refused.
* ``sample_rate``: resample the filter set first (:func:`spatialopt.export.resample_filterset`,
  band-limited; a driver band lost by downsampling is reported as a one-line warning).

See :mod:`spatialopt.export` for the files. Errors (missing or corrupt filter set, unknown format,
bad path or rate) are reported on one line with exit status 2 (``HYDRA_FULL_ERROR=1`` for a
traceback).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from spatialopt.cli._common import one_line_errors
from spatialopt.errors import ConfigError

PROG = "spatialopt-export"
USAGE = "spatialopt-export filterset=DIR [formats=[wav,camilladsp,ffmpeg]] [out=DIR] [sample_rate=HZ]"
KEYS = ("filterset", "formats", "out", "sample_rate")


def parse_args(argv: list[str]) -> dict:
    """``key=value`` arguments → ``{"filterset": Path, "formats": tuple, "out": Path | None,
    "sample_rate": int | None}``; raises :class:`ConfigError` naming the bad argument."""
    from spatialopt.export import EXPORT_FORMATS, _check_formats, _check_rate

    raw: dict[str, str] = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        key = key.strip().lstrip("+")
        if not sep:
            raise ConfigError("argument", arg, f"expected key=value; usage: {USAGE}")
        if key not in KEYS:
            raise ConfigError(key, value, f"unknown key; usage: {USAGE}")
        if key in raw:
            raise ConfigError(key, value, f"given twice (first {key}={raw[key]})")
        raw[key] = value
    if not raw.get("filterset", "").strip():
        raise ConfigError("filterset", raw.get("filterset"), f"is required; usage: {USAGE}")
    formats = EXPORT_FORMATS
    if "formats" in raw:
        text = raw["formats"].strip()
        if text.startswith("[") and text.endswith("]"):
            text = text[1:-1]
        items = [item.strip().strip("'\"").strip() for item in text.split(",")]
        items = [item for item in items if item]
        unknown = [item for item in items if item not in EXPORT_FORMATS]
        if unknown or not items:
            what = f"unknown format {', '.join(unknown)}; " if unknown else ""
            raise ConfigError("formats", raw["formats"], f"{what}must be a non-empty list drawn from {list(EXPORT_FORMATS)}, "
                                                         "e.g. formats=[wav,ffmpeg] or formats=wav")
        formats = _check_formats(items)
    sample_rate = None
    if "sample_rate" in raw:
        try:
            value = float(raw["sample_rate"])
        except ValueError:
            raise ConfigError("sample_rate", raw["sample_rate"], "must be a whole number of Hz, e.g. sample_rate=44100") from None
        try:
            sample_rate = _check_rate(value, "sample_rate")
        except ConfigError:
            raise ConfigError("sample_rate", raw["sample_rate"], "must be a whole, positive number of Hz, "
                                                                 "e.g. sample_rate=44100") from None
    filterset = Path(raw["filterset"]).expanduser()
    out = Path(raw["out"]).expanduser() if raw.get("out", "").strip() else None
    if "out" in raw and out is None:
        raise ConfigError("out", raw["out"], "must be a directory path")
    return {"filterset": filterset, "formats": formats, "out": out, "sample_rate": sample_rate}


@one_line_errors(PROG)
def run(argv: list[str]) -> dict[str, list[Path]]:
    """Parse ``argv``, load (and resample) the filter set, export it, print what was written.

    Returns:
        :func:`spatialopt.export.export_filterset`'s ``{kind: [paths]}``. Errors exit with status 2
        after one line on stderr.
    """
    from spatialopt.export import BandLimitWarning, export_filterset, resample_filterset
    from spatialopt.filterset import FilterSet

    args = parse_args(argv)
    fset = FilterSet.load(args["filterset"])
    if args["sample_rate"] is not None and args["sample_rate"] != fset.sample_rate:
        old = fset.sample_rate
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fset = resample_filterset(fset, args["sample_rate"])
        for w in caught:
            if issubclass(w.category, BandLimitWarning):
                print(f"{PROG}: warning: {' '.join(str(w.message).split())}", file=sys.stderr)
            else:  # not ours: the usual warning display
                warnings.showwarning(w.message, w.category, w.filename, w.lineno)
        added = (fset.config.get("resample") or {}).get("added_latency_samples", 0)
        print(f"{PROG}: resampled {old:g} Hz -> {fset.sample_rate:g} Hz: {fset.n_taps} taps, "
              f"latency {fset.latency_samples} samples" + (f" ({added} added to keep the band-limited ringing)" if added else ""))
    out = args["out"] if args["out"] is not None else args["filterset"] / "exports"
    written = export_filterset(fset, out, args["formats"])
    root = next(iter(written.values()))[0].parent
    print(f"{PROG}: wrote {root} ({fset.n_drivers} drivers × {fset.n_taps} taps, {fset.sample_rate:g} Hz, "
          f"latency {fset.latency_samples} samples)")
    for kind, paths in written.items():
        print(f"  {kind:<10} {' '.join(p.name for p in paths)}")
    return written


def main() -> None:
    run(sys.argv[1:])


if __name__ == "__main__":
    main()
