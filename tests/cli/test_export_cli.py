"""``spatialopt-export``: in-process through ``spatialopt.cli.export.run`` (fast), plus one real
subprocess of the console script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import torch

from spatialopt.cli.export import parse_args, run
from spatialopt.filterset import FilterSet

BIN = Path(sys.executable).parent
DEVICE = {"drivers": [{"name": "tweeter", "band_hz": [2000, 20000]}, {"name": "woofer", "band_hz": [40, 500]}]}


@pytest.fixture
def fset_dir(tmp_path) -> Path:
    """A saved random filter set: 2 drivers (tweeter, woofer), 200 taps at 48 kHz."""
    g = torch.Generator().manual_seed(0)
    fset = FilterSet.from_stages(torch.randn(2, 2, 120, generator=g), torch.randn(2, 40, generator=g),
                                 torch.randn(2, 80, generator=g), 10, 30, 200, 48000, ["tweeter", "woofer"], 50,
                                 config={"fs": 48000, "device": DEVICE})
    return fset.save(tmp_path / "fset")


def one_error_line(capsys, argv) -> str:
    with pytest.raises(SystemExit) as info:
        run(argv)
    assert info.value.code == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("spatialopt-export: error: "), captured.err
    assert "Traceback" not in captured.err + captured.out
    return lines[0]


def test_happy_path_writes_all_formats_into_the_default_directory(fset_dir, capsys):
    written = run([f"filterset={fset_dir}"])
    out = fset_dir / "exports"
    assert set(written) == {"wav", "camilladsp", "ffmpeg", "readme", "manifest"}
    for name in ("L.wav", "R.wav", "C.wav", "camilladsp.yml", "render_ffmpeg.sh", "ffmpeg_command.txt", "README.txt"):
        assert (out / name).is_file()
    stdout = capsys.readouterr().out
    assert f"wrote {out} (2 drivers × 200 taps, 48000 Hz, latency 50 samples)" in stdout
    assert "camilladsp.yml" in stdout and "render_ffmpeg.sh" in stdout
    FilterSet.load(fset_dir)  # the export inside the filter set does not disturb it
    run([f"filterset={fset_dir}"])  # re-export replaces the previous export


@pytest.mark.parametrize("spec, expected", [("[wav,ffmpeg]", ["wav", "ffmpeg"]), ("wav", ["wav"]),
                                            ("[ffmpeg, camilladsp]", ["camilladsp", "ffmpeg"]), ("['wav']", ["wav"])])
def test_formats_syntax(fset_dir, tmp_path, spec, expected):
    written = run([f"filterset={fset_dir}", f"formats={spec}", f"out={tmp_path / 'x'}"])
    assert [k for k in written if k not in ("readme", "manifest")] == ["wav"] + [f for f in expected if f != "wav"]
    assert json.loads((tmp_path / "x" / "export.json").read_text())["formats"] == \
        [f for f in ("wav", "camilladsp", "ffmpeg") if f in expected]


def test_sample_rate_resamples_first_and_reports_band_loss_on_one_line(fset_dir, tmp_path, capsys):
    run([f"filterset={fset_dir}", "sample_rate=44100", f"out={tmp_path / 'e44'}"])
    assert sf.info(str(tmp_path / "e44" / "L.wav")).samplerate == 44100
    captured = capsys.readouterr()
    assert captured.err == ""  # 20 kHz survives 44.1 kHz
    assert "resampled 48000 Hz -> 44100 Hz" in captured.out
    run([f"filterset={fset_dir}", "sample_rate=32000", f"out={tmp_path / 'e32'}", "formats=wav"])
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("spatialopt-export: warning: resampling 48000 Hz -> 32000 Hz")
    assert "tweeter (band_hz [2000, 20000]: 14800-20000 Hz lost)" in err[0] and "woofer" not in err[0]
    assert json.loads((tmp_path / "e32" / "export.json").read_text())["sample_rate"] == 32000


def test_errors_are_one_line_with_status_2(fset_dir, tmp_path, capsys):
    assert "filter set directory not found" in one_error_line(capsys, [f"filterset={tmp_path / 'nope'}"])
    line = one_error_line(capsys, [f"filterset={fset_dir}", "formats=[wav,mp3]"])
    assert "unknown format mp3" in line
    assert "formats" in one_error_line(capsys, [f"filterset={fset_dir}", "formats=[]"])
    assert "sample_rate='44.1k'" in one_error_line(capsys, [f"filterset={fset_dir}", "sample_rate=44.1k"])
    assert "sample_rate='-8000'" in one_error_line(capsys, [f"filterset={fset_dir}", "sample_rate=-8000"])
    assert "unknown key" in one_error_line(capsys, [f"filterset={fset_dir}", "output=x"])
    assert "filterset=None: is required" in one_error_line(capsys, ["formats=wav"])
    assert "expected key=value" in one_error_line(capsys, [str(fset_dir)])
    (tmp_path / "a_file").write_text("x")
    assert "exists and is not a directory" in one_error_line(capsys, [f"filterset={fset_dir}", f"out={tmp_path / 'a_file'}"])
    assert "not a spatialopt export" in one_error_line(capsys, [f"filterset={fset_dir}", f"out={fset_dir}"])
    (fset_dir / "manifest.json").write_text("{ not json")
    assert "manifest.json: not valid JSON" in one_error_line(capsys, [f"filterset={fset_dir}"])


def test_parse_args_defaults():
    args = parse_args(["filterset=some/dir"])
    assert args == {"filterset": Path("some/dir"), "formats": ("wav", "camilladsp", "ffmpeg"), "out": None,
                    "sample_rate": None}
    assert parse_args(["filterset=d", "sample_rate=96000.0"])["sample_rate"] == 96000


def test_console_script(fset_dir, tmp_path):
    out = tmp_path / "console export"
    proc = subprocess.run([str(BIN / "spatialopt-export"), f"filterset={fset_dir}", "formats=[wav,camilladsp]",
                           f"out={out}"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"spatialopt-export: wrote {out}" in proc.stdout
    assert sorted(p.name for p in out.iterdir()) == ["C.wav", "L.wav", "R.wav", "README.txt", "camilladsp.yml", "export.json"]
