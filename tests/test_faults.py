"""Fault injection (issue 6): SIGKILL during export and rendering, a full disk or a file too large
for every writer, and output directories that cannot be written.

What must hold whatever the fault: a good file (or directory) already at the target path is left
byte for byte as it was, or replaced by the complete new one, never by a partial one; the tools
end with one ``prog: error: ...`` line naming the path and the system's reason (exit status 2, no
traceback); leftover temporaries are hidden siblings that the next run ignores (render deletes
its own) and the next run succeeds.

How the faults are made:

* SIGKILL: the real console scripts (``spatialopt-export``, ``spatialopt-render``) killed at
  random delays after their temporary file or directory appears, plus fixed kill points (inside a
  WAV or text write, before the rename or the directory exchange, after the exchange) made by a
  helper process that forks one child per point; the child patches the point to SIGKILL itself.
* File too large: ``RLIMIT_FSIZE`` (writes past N bytes fail with EFBIG, SIGXFSZ ignored), set
  in this process around in-process calls, or in a console script's process (``preexec_fn``).
* Disk full and read-only file system: a tiny tmpfs (ENOSPC) and a read-only one (EROFS) mounted
  in a user and mount namespace (``unshare -rm``); skipped where that is not allowed.
* Unwritable directory: a path whose parent is a regular file (ENOTDIR, denies root too), paths
  under ``/sys`` and ``/proc/self`` (EACCES/EPERM/ENOENT for root too), and a chmod 0o500
  directory when not running as root.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch

from spatialopt.cli import export as export_cli
from spatialopt.cli import render as render_cli
from spatialopt.cli import summarize as summarize_cli
from spatialopt.cli._common import one_line_errors
from spatialopt.errors import DataError
from spatialopt.export import export_filterset
from spatialopt.fileio import atomic_write_text
from spatialopt.filterset import FilterSet

BIN = Path(sys.executable).parent
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}
FS = 48000
SEED = int(os.environ.get("SPATIALOPT_FAULT_SEED", time.time_ns() % 2**31))  # kill delays; printed on failure

pytestmark = pytest.mark.usefixtures("single_thread")


# ---------------------------------------------------------------------------------------------
# Helpers and shared inputs
# ---------------------------------------------------------------------------------------------


def digest(path: Path) -> dict[str, str]:
    """SHA-256 of a file, or of every file under a directory by relative name (hidden ones too)."""
    path = Path(path)
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def hidden(parent: Path) -> list[str]:
    """Hidden entries (temporaries) in ``parent``."""
    return sorted(p.name for p in Path(parent).iterdir() if p.name.startswith("."))


def make_set(seed: int, n_drivers: int = 2, n_taps: int = 200) -> FilterSet:
    g = torch.Generator().manual_seed(seed)
    return FilterSet.from_stages(0.1 * torch.randn(2, n_drivers, n_taps * 3 // 5, generator=g),
                                 torch.randn(2, n_taps // 5, generator=g) / 4,
                                 0.1 * torch.randn(n_drivers, n_taps * 2 // 5, generator=g), 10, 30, n_taps, FS,
                                 [f"d{i}" for i in range(n_drivers)], 50, config={"fs": FS})


def write_wav(path: Path, seconds: float, seed: int, channels: int = 3) -> Path:
    x = np.random.default_rng(seed).uniform(-0.3, 0.3, (int(seconds * FS), channels)).astype(np.float32)
    sf.write(str(path), x, FS, subtype="FLOAT")
    return path


@contextmanager
def file_size_limit(n_bytes: int):
    """Writes past ``n_bytes`` in any file fail with EFBIG (RLIMIT_FSIZE) in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def _limit_child(n_bytes: int):
    def pre():
        resource.setrlimit(resource.RLIMIT_FSIZE, (n_bytes, n_bytes))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    return pre


def cli_error(capsys, prog: str, func, *args) -> str:
    """Call a CLI entry point that must fail: status 2, one ``prog: error:`` line, no traceback."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        func(*args)
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert info.value.code == 2, (info.value.code, err)
    assert "Traceback" not in out + err, err
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: error: "), err
    return lines[0]


def console_error(proc: subprocess.CompletedProcess, prog: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert lines and lines[-1].startswith(f"{prog}: error: "), proc.stderr[-3000:]
    assert all(line.startswith(f"{prog}: ") for line in lines), proc.stderr[-3000:]  # warnings at most
    return lines[-1]


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """Filter sets (saved), inputs, and the previous good outputs every test copies from."""
    root = tmp_path_factory.mktemp("assets")
    a = SimpleNamespace(root=root)
    a.old_set, a.new_set = make_set(1), make_set(2)
    a.old_set_dir, a.new_set_dir = a.old_set.save(root / "old_set"), a.new_set.save(root / "new_set")
    a.old_export, a.new_export = root / "old_export", root / "new_export"
    export_filterset(a.old_set, a.old_export)
    export_filterset(a.new_set, a.new_export)
    a.short_in, a.other_in = write_wav(root / "short.wav", 1.0, 1), write_wav(root / "other.wav", 2.0, 2)
    a.old_out = root / "old_out.wav"
    assert render_cli.run([f"input={a.short_in}", f"filterset={a.old_set_dir}", f"output={a.old_out}",
                           "progress=false"]) == 0
    a.sweep = root / "sweep"
    for i, p10 in enumerate((10.0, 14.0)):
        run = a.sweep / str(i)
        run.mkdir(parents=True)
        (run / "metrics.json").write_text(json.dumps({"ours": {"ctc": {"separation_db": {"zone_p10": p10}}}}))
    return a


def copy_old(src: Path, dst: Path) -> dict[str, str]:
    """Put a previous good output at ``dst``; returns its digest."""
    (shutil.copytree if src.is_dir() else shutil.copyfile)(src, dst)
    return digest(dst)


def assert_export_is(target: Path, reference: Path) -> None:
    """``target`` is a complete export equal to ``reference``: the same files, the same taps in
    the WAVs (their PEAK chunk holds a time stamp), the same text files (export.json aside)."""
    manifest = json.loads((target / "export.json").read_text())
    names = sorted(n for files in manifest["files"].values() for n in files)
    assert sorted(p.name for p in target.iterdir()) == names == sorted(p.name for p in reference.iterdir())
    for name in names:
        if name.endswith(".wav"):
            (a, rate_a), (b, rate_b) = sf.read(str(target / name)), sf.read(str(reference / name))
            assert rate_a == rate_b and a.shape == b.shape and np.array_equal(a, b), name
        elif name != "export.json":
            assert (target / name).read_bytes() == (reference / name).read_bytes(), name


# ---------------------------------------------------------------------------------------------
# SIGKILL: real console scripts at random delays
# ---------------------------------------------------------------------------------------------


def _start(argv: list[str], log: Path) -> subprocess.Popen:
    with open(log, "w") as fh:
        return subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT, env=ENV)


def kill_when(victims: list[dict], timeout: float = 240.0) -> None:
    """SIGKILL each victim ``delay`` seconds after its ``ready()`` first holds (polled every 2 ms);
    records in ``v["mid_write"]`` whether its temporary still existed at the kill."""
    deadline = time.monotonic() + timeout
    pending = list(victims)
    while pending:
        now = time.monotonic()
        for v in list(pending):
            if v["proc"].poll() is not None:
                pending.remove(v)
                continue
            if "at" not in v and v["ready"]():
                v["at"] = now + v["delay"]
            if "at" in v and now >= v["at"]:
                v["mid_write"] = v["ready"]()
                v["proc"].send_signal(signal.SIGKILL)
                pending.remove(v)
        if now > deadline:
            for v in pending:
                v["proc"].kill()
            pytest.fail(f"victims did not reach their kill points in {timeout} s (seed {SEED})")
        time.sleep(0.002)
    for v in victims:
        v["proc"].wait()


def test_sigkill_export_console_script_at_random_points(assets, tmp_path):
    """``spatialopt-export`` of an 8-driver, 65536-tap set (≈ 6 MB of WAVs) killed 0 s, a random
    0–60 ms and a random 0–150 ms after its hidden work directory appears."""
    rng = random.Random(SEED)
    big = make_set(5, n_drivers=8, n_taps=65536)
    big_dir = big.save(tmp_path / "big")
    reference = tmp_path / "reference"
    export_filterset(big, reference)
    victims = []
    for k, delay in enumerate((0.0, rng.uniform(0, 0.06), rng.uniform(0, 0.15))):
        parent = tmp_path / f"v{k}"
        parent.mkdir()
        target = parent / "exp"
        before = copy_old(assets.old_export, target)
        proc = _start([str(BIN / "spatialopt-export"), f"filterset={big_dir}", f"out={target}"], parent / "log")
        victims.append(dict(proc=proc, target=target, before=before, delay=delay,
                            ready=lambda parent=parent: any(n.startswith(".exp.tmp-") for n in os.listdir(parent))))
    kill_when(victims)
    for v in victims:
        what = f"delay {v['delay']:.3f} s, status {v['proc'].returncode}, seed {SEED}"
        print(f"export killed: {what}, mid-write: {v.get('mid_write')}")  # shown with -s
        assert v["proc"].returncode in (-signal.SIGKILL, 0), what
        if digest(v["target"]) != v["before"]:  # the kill came after the exchange: the complete new export
            assert_export_is(v["target"], reference)
        assert not any(n.startswith(".exp.") and not n.startswith((".exp.tmp-", ".exp.old-"))
                       for n in os.listdir(v["target"].parent)), what
        # The next run succeeds, whatever the kill left behind (hidden work directories are ignored).
        assert export_cli.run([f"filterset={big_dir}", f"out={v['target']}"])
        assert_export_is(v["target"], reference)
    assert victims[0]["mid_write"] or victims[0]["proc"].returncode == 0


def test_sigkill_render_console_script_at_random_points(assets, tmp_path):
    """``spatialopt-render`` of 12 s of 3-channel audio through 8 drivers × 4096 taps (64-sample
    blocks) killed a random 0–0.4 s into writing its temporary WAV (≈ 1.3 s of writing here), and
    (PCM_24 with the limiter) a random 0–0.5 s into its second pass, writing the final temporary."""
    rng = random.Random(SEED + 1)
    long_in = write_wav(tmp_path / "long.wav", 12.0, 3)
    set_dir = make_set(6, n_drivers=8, n_taps=4096).save(tmp_path / "set")
    victims = []
    for k, (subtype, tag, delay) in enumerate((("FLOAT", "render", rng.uniform(0, 0.4)),
                                               ("PCM_24", "final", rng.uniform(0, 0.5)))):
        parent = tmp_path / f"v{k}"
        parent.mkdir()
        target = parent / "out.wav"
        before = copy_old(assets.old_out, target)
        argv = [str(BIN / "spatialopt-render"), f"input={long_in}", f"filterset={set_dir}", f"output={target}",
                "progress=false", "block_size=64", f"subtype={subtype}",
                f"limiter={'true' if subtype == 'PCM_24' else 'false'}"]
        proc = _start(argv, tmp_path / f"log{k}")
        victims.append(dict(proc=proc, target=target, before=before, delay=delay, subtype=subtype,
                            ready=lambda parent=parent, tag=tag: any(f".{tag}." in n for n in os.listdir(parent))))
    kill_when(victims)
    for v in victims:
        what = f"{v['subtype']}, delay {v['delay']:.3f} s, status {v['proc'].returncode}, seed {SEED}"
        assert v["proc"].returncode == -signal.SIGKILL and v["mid_write"], f"the kill missed the write: {what}"
        assert digest(v["target"]) == v["before"], what  # the old file, byte for byte
        assert [n for n in hidden(v["target"].parent)], what  # the killed render's temporary is there...
        argv = [f"input={assets.short_in}", f"filterset={set_dir}", f"output={v['target']}",
                "progress=false", f"subtype={v['subtype']}"]
        assert render_cli.run(argv) == 0
        assert hidden(v["target"].parent) == [], what  # ...and the next render to that output deletes it
        info = sf.info(str(v["target"]))
        assert info.frames == FS + 4095 and info.channels == 8 and info.subtype == v["subtype"]


# ---------------------------------------------------------------------------------------------
# SIGKILL: fixed points (one helper process, one forked child per point)
# ---------------------------------------------------------------------------------------------

KILLER = r'''
import json, os, signal, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
import soundfile as sf
import spatialopt.export as export_mod
import spatialopt.fileio as fileio
import spatialopt.train as train
from spatialopt.cli import export as export_cli, render as render_cli
from spatialopt.filterset import FilterSet


def die(*args, **kwargs):
    os.kill(os.getpid(), signal.SIGKILL)


def wrap(owner, name, before=None, after=None):
    real = getattr(owner, name)
    def patched(*args, **kwargs):
        if before is not None and before(*args, **kwargs):
            die()
        result = real(*args, **kwargs)
        if after is not None and after(*args, **kwargs):
            die()
        return result
    setattr(owner, name, patched)


def nth(n):
    count = [0]
    def hit(*args, **kwargs):
        count[0] += 1
        return count[0] == n
    return hit


def half_then_die(self, text, *args, **kwargs):
    with open(self, "w", encoding="utf-8") as fh:
        fh.write(text[: len(text) // 2])
    die()


def setup(case):
    point, target = case["point"], case["target"]
    if point == "export: inside the first WAV write":
        wrap(sf.SoundFile, "write", after=nth(1))
    elif point == "export: inside the CamillaDSP file write":
        Path.write_text = half_then_die
    elif point == "export: complete, before the exchange":
        wrap(export_mod, "swap_directory_into_place", before=lambda *a: True)
    elif point in ("export: after the exchange", "filterset: after the exchange"):
        wrap(fileio, "_exchange", after=lambda *a: True)
    elif point == "render: inside the stream write":
        wrap(sf.SoundFile, "write", after=nth(2))
    elif point == "render: inside the second pass (PCM_24)":
        wrap(sf.SoundFile, "write", after=lambda self, *a: ".final." in str(self.name))
    elif point in ("render: complete, before the rename", "checkpoint: complete, before the rename"):
        wrap(os, "replace", before=lambda src, dst: str(dst) == target)
    elif point == "filterset: tensors written, manifest not":
        wrap(os, "fsync", after=nth(1))
    else:
        raise SystemExit(f"unknown point {point}")


def work(case):
    if case["tool"] == "export":
        export_cli.run(case["argv"])
    elif case["tool"] == "render":
        render_cli.run(case["argv"])
    elif case["tool"] == "filterset":
        case["set"].save(case["target"])
    elif case["tool"] == "checkpoint":
        train._atomic_torch_save({"step": torch.tensor(7), "w": torch.ones(4096)}, Path(case["target"]))


results = []
for case in json.loads(sys.argv[1]):
    if case["tool"] == "filterset":
        case["set"] = FilterSet.load(case["source"])
    pid = os.fork()
    if pid == 0:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        try:
            setup(case)
            work(case)
        finally:
            os._exit(0)  # only when the point was never reached
    _, status = os.waitpid(pid, 0)
    results.append({"point": case["point"],
                    "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None})
print(json.dumps(results))
'''

# point → (tool, what the target must hold afterwards: the old output or the complete new one)
KILL_POINTS = {
    "export: inside the first WAV write": ("export", "old"),
    "export: inside the CamillaDSP file write": ("export", "old"),
    "export: complete, before the exchange": ("export", "old"),
    "export: after the exchange": ("export", "new"),
    "render: inside the stream write": ("render", "old"),
    "render: inside the second pass (PCM_24)": ("render", "old"),
    "render: complete, before the rename": ("render", "old"),
    "filterset: tensors written, manifest not": ("filterset", "old"),
    "filterset: after the exchange": ("filterset", "new"),
    "checkpoint: complete, before the rename": ("checkpoint", "old"),
}


@pytest.fixture(scope="module")
def killed(assets, tmp_path_factory):
    """Runs every fixed kill point; returns point → (result, target, digest before)."""
    root = tmp_path_factory.mktemp("killed")
    cases, prepared = [], {}
    old_ckpt = root / "old.pt"
    torch.save({"step": torch.tensor(3), "w": torch.zeros(4096)}, old_ckpt)
    for k, (point, (tool, _)) in enumerate(KILL_POINTS.items()):
        parent = root / f"p{k}"
        parent.mkdir()
        if tool == "export":
            target = parent / "exp"
            before = copy_old(assets.old_export, target)
            case = {"argv": [f"filterset={assets.new_set_dir}", f"out={target}"]}
        elif tool == "render":
            target = parent / "out.wav"
            before = copy_old(assets.old_out, target)
            subtype = "PCM_24" if "PCM_24" in point else "FLOAT"
            case = {"argv": [f"input={assets.other_in}", f"filterset={assets.new_set_dir}", f"output={target}",
                             "progress=false", f"subtype={subtype}", "limiter=false"]}
        elif tool == "filterset":
            target = parent / "filterset"
            before = copy_old(assets.old_set_dir, target)
            case = {"source": str(assets.new_set_dir)}
        else:
            target = parent / "last.pt"
            before = copy_old(old_ckpt, target)
            case = {}
        cases.append({"point": point, "tool": tool, "target": str(target), **case})
        prepared[point] = (target, before)
    proc = subprocess.run([sys.executable, "-c", KILLER, json.dumps(cases)], capture_output=True, text=True,
                          env=ENV, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = {r["point"]: r for r in json.loads(proc.stdout.strip().splitlines()[-1])}
    return {point: (results[point], *prepared[point]) for point in KILL_POINTS}


@pytest.mark.parametrize("point", list(KILL_POINTS))
def test_sigkill_at_a_fixed_point(killed, assets, point):
    tool, expected = KILL_POINTS[point]
    result, target, before = killed[point]
    assert result["signal"] == signal.SIGKILL, f"{point}: the kill point was not reached ({result})"
    if expected == "old":
        assert digest(target) == before, point  # byte for byte
    elif tool == "export":
        assert_export_is(target, assets.new_export)
    else:
        assert torch.equal(FilterSet.load(target).fir, assets.new_set.fir)
    left = hidden(target.parent)
    assert left, f"{point}: a kill mid-write leaves its temporary"  # (checked to be ignored below)
    # The next run succeeds and the result is complete.
    if tool == "export":
        assert export_cli.run([f"filterset={assets.new_set_dir}", f"out={target}"])
        assert_export_is(target, assets.new_export)
    elif tool == "render":
        subtype = "PCM_24" if "PCM_24" in point else "FLOAT"
        assert render_cli.run([f"input={assets.other_in}", f"filterset={assets.new_set_dir}", f"output={target}",
                               "progress=false", f"subtype={subtype}", "limiter=false"]) == 0
        assert sf.info(str(target)).frames == 2 * FS + 199
        assert hidden(target.parent) == []  # the dead render's temporaries are deleted
    elif tool == "filterset":
        assets.new_set.save(target)
        assert torch.equal(FilterSet.load(target).fir, assets.new_set.fir)
        assert FilterSet.load(target).n_taps == 200
    else:
        state = torch.load(target, map_location="cpu", weights_only=True)
        assert int(state["step"]) == 3  # the old checkpoint still loads


# ---------------------------------------------------------------------------------------------
# File too large (RLIMIT_FSIZE → EFBIG) for every writer
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, formats", [("L.wav", "wav"), ("camilladsp.yml", "[wav,camilladsp]"),
                                           ("render_ffmpeg.sh", "[wav,ffmpeg]")])
def test_file_too_large_export(assets, tmp_path, capsys, name, formats):
    """Each export format's file fails in turn: the limit is one byte short of it, and every file
    written before it is smaller than the limit."""
    sizes = {p.name: p.stat().st_size for p in assets.new_export.iterdir()}
    limit = sizes[name] - 1
    earlier = {"L.wav": [], "camilladsp.yml": ["L.wav", "R.wav", "C.wav"],
               "render_ffmpeg.sh": ["L.wav", "R.wav", "C.wav"]}[name]
    assert all(sizes[e] < limit for e in earlier), sizes  # else the limit would hit another file first
    target = tmp_path / "exp"
    before = copy_old(assets.old_export, target)
    with file_size_limit(limit):
        line = cli_error(capsys, "spatialopt-export", export_cli.run,
                         [f"filterset={assets.new_set_dir}", f"formats={formats}", f"out={target}"])
    assert line == f"spatialopt-export: error: cannot export to {target}: File too large ({target / name})"
    assert digest(target) == before and hidden(tmp_path) == []


def test_file_too_large_render(assets, tmp_path, capsys):
    target = tmp_path / "out.wav"
    before = copy_old(assets.old_out, target)
    with file_size_limit(20000):
        line = cli_error(capsys, "spatialopt-render", render_cli.run,
                         [f"input={assets.other_in}", f"filterset={assets.new_set_dir}", f"output={target}",
                          "progress=false"])
    assert line == f"spatialopt-render: error: cannot write {target}: File too large"
    assert digest(target) == before and hidden(tmp_path) == []


def test_file_too_large_filterset_save(assets, tmp_path):
    target = tmp_path / "filterset"
    before = copy_old(assets.old_set_dir, target)
    with file_size_limit(4000), pytest.raises(DataError) as info:
        assets.new_set.save(target)
    assert str(info.value).startswith(f"cannot save filter set to {target}: ") and "File too large" in str(info.value)
    assert digest(target) == before and hidden(tmp_path) == []


def test_file_too_large_checkpoint(tmp_path, capsys):
    """``Trainer.save_checkpoint`` (a real Trainer around a tiny system): the error names
    checkpoints/last.pt; the previous checkpoint still loads."""
    from spatialopt.train import OptimConfig, Trainer

    system = torch.nn.Linear(64, 64)
    system.lr_delay, system.c_delay = 3, 5
    trainer = Trainer(system, None, OptimConfig(steps=10), tmp_path, progress=False)
    trainer.step = 4
    trainer.save_checkpoint()
    path = trainer.checkpoint_path
    before = digest(path)
    trainer.step = 8
    with file_size_limit(path.stat().st_size // 2):
        line = cli_error(capsys, "spatialopt-optimize", one_line_errors("spatialopt-optimize")(trainer.save_checkpoint))
    assert line == f"spatialopt-optimize: error: {path}: File too large"
    assert digest(path) == before and hidden(path.parent) == []
    assert int(torch.load(path, weights_only=True)["step"]) == 4


def test_file_too_large_run_directory_files(tmp_path, capsys):
    """metrics.json / report.md / summary.txt / analysis.json (``atomic_write_text``) and the
    report's figures (``save_figure``), as ``spatialopt-optimize`` reports them."""
    import matplotlib.pyplot as plt

    from spatialopt.plots import save_figure

    metrics, figure = tmp_path / "metrics.json", tmp_path / "figures" / "beam_heatmap.png"
    atomic_write_text(metrics, json.dumps({"old": True}))
    fig = plt.figure()
    plt.plot([0, 1], [1, 0])
    save_figure(fig, figure)
    before = digest(tmp_path)
    optimize_error = one_line_errors("spatialopt-optimize")
    with file_size_limit(1000):
        line = cli_error(capsys, "spatialopt-optimize", optimize_error(atomic_write_text), metrics,
                         json.dumps({"x": list(range(1000))}))
        assert line == f"spatialopt-optimize: error: {metrics}: File too large"
        fig = plt.figure()
        plt.plot(np.arange(100), np.random.default_rng(0).normal(size=100))
        line = cli_error(capsys, "spatialopt-optimize", optimize_error(save_figure), fig, figure)
        assert line == f"spatialopt-optimize: error: {figure}: File too large"
    assert digest(tmp_path) == before and hidden(tmp_path) == [] and hidden(figure.parent) == []


def test_file_too_large_tensorboard_writer_thread(tmp_path, capsys):
    """A full disk under TensorBoard's writer thread: one warning line for the thread and one
    error line when the main thread writes next, no traceback."""
    from torch.utils.tensorboard import SummaryWriter

    def log_a_lot():
        writer = SummaryWriter(str(tmp_path / "tb"))
        try:
            for step in range(5000):
                writer.add_scalar("loss/total", float(step), step)
            writer.flush()
            time.sleep(0.2)
            writer.add_scalar("loss/total", 0.0, 5001)
            writer.flush()
        finally:
            try:
                writer.close()
            except OSError:
                pass

    with file_size_limit(2000):
        capsys.readouterr()
        with pytest.raises(SystemExit) as info:
            one_line_errors("spatialopt-optimize")(log_a_lot)()
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert info.value.code == 2 and "Traceback" not in out + err, err
    errors = [line for line in lines if line.startswith("spatialopt-optimize: error: ")]
    warnings = [line for line in lines if line.startswith("spatialopt-optimize: warning: TensorBoard writer: ")]
    assert len(errors) == 1 and "File too large" in errors[0], err
    assert len(warnings) == 1 and "File too large" in warnings[0] and len(lines) == 2, err  # the thread's, any order


def test_file_too_large_summarize_changes_neither_file(assets, tmp_path, capsys):
    """The limit lies between the sizes of summary.md and summary.csv: one of them could be
    written, but neither is changed (both temporaries are written before either rename)."""
    prefix = tmp_path / "summary"
    summarize_cli.summarize(assets.sweep, out_prefix=prefix)
    sizes = sorted((prefix.with_suffix(ext).stat().st_size for ext in (".md", ".csv")))
    assert sizes[0] + 1 < sizes[1]
    for p in (prefix.with_suffix(".md"), prefix.with_suffix(".csv")):
        p.write_text("old " + p.name)  # distinguishable previous outputs
    before = digest(tmp_path)
    with file_size_limit(sizes[0] + 1):
        line = cli_error(capsys, "spatialopt-summarize", summarize_cli.main, [str(assets.sweep), "--out", str(prefix)])
    assert line.startswith(f"spatialopt-summarize: error: --out {prefix}: cannot write") and "File too large" in line
    assert digest(tmp_path) == before and hidden(tmp_path) == []


def test_file_too_large_console_scripts(assets, tmp_path):
    """The real processes (render; scene, a Hydra app), RLIMIT_FSIZE set in the child: exit
    status 2, one error line, no traceback, the previous output untouched."""
    out = tmp_path / "out.wav"
    npz = tmp_path / "scene.npz"
    before_out = copy_old(assets.old_out, out)
    npz.write_bytes(b"previous scene")
    before_npz = digest(npz)
    render = subprocess.Popen([str(BIN / "spatialopt-render"), f"input={assets.other_in}",
                               f"filterset={assets.new_set_dir}", f"output={out}", "progress=false"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                              preexec_fn=_limit_child(50000))
    scene = subprocess.Popen([str(BIN / "spatialopt-scene"), f"hydra.run.dir={tmp_path / 'run'}", "hydra.output_subdir=null",
                              "scene.n_fft=64", "zone=point", "plots=false", f"out={npz}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                             preexec_fn=_limit_child(2000))
    results = []
    for proc in (render, scene):
        stdout, stderr = proc.communicate(timeout=300)
        results.append(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
    assert console_error(results[0], "spatialopt-render") == f"spatialopt-render: error: cannot write {out}: File too large"
    assert console_error(results[1], "spatialopt-scene") == f"spatialopt-scene: error: {npz}: File too large"
    assert digest(out) == before_out and digest(npz) == before_npz and hidden(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# Unwritable output directories
# ---------------------------------------------------------------------------------------------


def _writers(assets, capsys):
    """name → (output file name, call(target) → the error text). Each call must fail."""
    import matplotlib.pyplot as plt

    from spatialopt.plots import save_figure
    from spatialopt.train import _atomic_torch_save

    def export(target):
        return cli_error(capsys, "spatialopt-export", export_cli.run, [f"filterset={assets.new_set_dir}", f"out={target}"])

    def render(target):
        return cli_error(capsys, "spatialopt-render", render_cli.run,
                         [f"input={assets.short_in}", f"filterset={assets.new_set_dir}", f"output={target}", "progress=false"])

    def filterset(target):
        with pytest.raises(DataError) as info:
            assets.new_set.save(target)
        return str(info.value)

    def summarize(target):
        return cli_error(capsys, "spatialopt-summarize", summarize_cli.main, [str(assets.sweep), "--out", str(target)])

    def text(target):
        return cli_error(capsys, "spatialopt-optimize", one_line_errors("spatialopt-optimize")(atomic_write_text),
                         target, "{}")

    def checkpoint(target):
        return cli_error(capsys, "spatialopt-optimize", one_line_errors("spatialopt-optimize")(_atomic_torch_save),
                         {"step": 1}, target)

    def figure(target):
        return cli_error(capsys, "spatialopt-optimize", one_line_errors("spatialopt-optimize")(save_figure),
                         plt.figure(), target)

    return {"export": ("exp", export), "render": ("out.wav", render), "filterset": ("filterset", filterset),
            "summarize": ("summary", summarize), "metrics.json": ("metrics.json", text),
            "checkpoint": ("last.pt", checkpoint), "figure": ("figure.png", figure)}


WRITERS = ["export", "render", "filterset", "summarize", "metrics.json", "checkpoint", "figure"]


@pytest.mark.parametrize("writer", WRITERS)
def test_parent_is_a_regular_file(assets, tmp_path, capsys, writer):
    plain = tmp_path / "plain"
    plain.write_text("a file, not a directory")
    name, call = _writers(assets, capsys)[writer]
    for target in (plain / name, plain / "sub" / name):
        message = call(target)
        nested_render = writer == "render" and target.parent != plain  # "its directory …/plain/sub does not exist"
        assert str(plain) in message and ("does not exist" if nested_render else "not a directory") in message.lower(), message
    assert plain.read_text() == "a file, not a directory" and sorted(p.name for p in tmp_path.iterdir()) == ["plain"]


def _refuses(place: str) -> bool:
    """Whether ``place`` is a directory in which even this process cannot create anything."""
    if not os.path.isdir(place):
        return False
    probe = Path(place) / f".spatialopt-probe-{os.getpid()}"
    try:
        probe.mkdir()
    except OSError:
        return True
    probe.rmdir()
    return False


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("place", ["/sys", "/proc/self"])
def test_system_directories_refuse_even_root(assets, capsys, writer, place):
    """An existing directory that refuses new entries to root too (sysfs: EACCES/EPERM; a
    process's /proc directory: ENOENT)."""
    if not _refuses(place):
        pytest.skip(f"{place} accepts new entries here")
    name, call = _writers(assets, capsys)[writer]
    target = Path(place) / name
    message = call(target)
    reasons = ("Permission denied", "Operation not permitted", "No such file or directory")
    assert any(r in message for r in reasons) and str(target) in message, message
    assert not os.path.lexists(target)


def _permissions_bind(tmp_path: Path) -> bool:
    """Whether directory permissions stop this process (not root, or root without
    CAP_DAC_OVERRIDE, e.g. under ``setpriv --bounding-set=-dac_override``)."""
    probe = tmp_path / "probe"
    probe.mkdir(mode=0o500)
    try:
        (probe / "x").touch()
    except PermissionError:
        return True
    finally:
        probe.chmod(0o700)
        shutil.rmtree(probe)
    return False


@pytest.mark.parametrize("writer", WRITERS)
def test_read_only_directory(assets, tmp_path, capsys, writer):
    """A chmod 0o500 directory (runs where permissions bind: not as root)."""
    if not _permissions_bind(tmp_path):
        pytest.skip("this process ignores directory permissions (root)")
    name, call = _writers(assets, capsys)[writer]
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "keep.txt").write_text("previous")
    locked.chmod(0o500)
    try:
        message = call(locked / name)
        assert "Permission denied" in message, message
        assert sorted(p.name for p in locked.iterdir()) == ["keep.txt"]
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------------------------------
# A full disk (ENOSPC) and a read-only file system (EROFS): tmpfs in a user + mount namespace
# ---------------------------------------------------------------------------------------------

NAMESPACE = r'''
import contextlib, hashlib, io, json, os, subprocess, sys
from pathlib import Path
spec = json.loads(sys.argv[1])
full, ro = Path(spec["full"]), Path(spec["ro"])
for where, size in ((full, "4m"), (ro, "4m")):
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True, text=True)
    if proc.returncode:
        print(json.dumps({"skip": f"cannot mount a tmpfs: {proc.stderr.strip()}"}))
        raise SystemExit(0)
import torch
torch.set_num_threads(1)
from spatialopt.cli import export as export_cli, render as render_cli, summarize as summarize_cli
from spatialopt.cli._common import one_line_errors
from spatialopt.errors import DataError
from spatialopt.fileio import atomic_write_text
from spatialopt.filterset import FilterSet
from spatialopt.train import _atomic_torch_save

old_set, new_set = FilterSet.load(spec["old_set"]), FilterSet.load(spec["new_set"])


def digest(path):
    path = Path(path)
    if path.is_file():
        return {".": hashlib.sha256(path.read_bytes()).hexdigest()}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.rglob("*")) if p.is_file()}


def render_argv(target, subtype="PCM_16"):
    return [f"input={spec['input']}", f"filterset={spec['new_set']}", f"output={target}", "progress=false",
            f"subtype={subtype}", "limiter=false"]


def previous(root):
    """The previous good outputs."""
    from spatialopt.export import export_filterset
    export_filterset(old_set, root / "exp")
    old_set.save(root / "filterset")
    with contextlib.redirect_stdout(io.StringIO()):
        render_cli.run([f"input={spec['input']}", f"filterset={spec['old_set']}", f"output={root / 'out.wav'}",
                        "progress=false", "subtype=PCM_16", "limiter=false"])
    (root / "summary.md").write_text("old md")
    (root / "summary.csv").write_text("old csv")
    atomic_write_text(root / "metrics.json", "{}")
    _atomic_torch_save({"step": torch.tensor(1)}, root / "last.pt")


def attempt(name, call):
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            call()
        return {"code": 0, "err": err.getvalue()}
    except SystemExit as exc:
        return {"code": exc.code, "err": err.getvalue()}
    except DataError as exc:
        return {"code": "DataError", "err": str(exc)}


def attempts(root):
    optimize = one_line_errors("spatialopt-optimize")
    return {
        "export": lambda: export_cli.run([f"filterset={spec['new_set']}", f"out={root / 'exp'}"]),
        "filterset": lambda: new_set.save(root / "filterset"),
        "render": lambda: render_cli.run(render_argv(root / "out.wav")),
        "summarize": lambda: summarize_cli.main([spec["sweep"], "--out", str(root / "summary")]),
        "metrics.json": lambda: optimize(atomic_write_text)(root / "metrics.json", json.dumps(list(range(3000)))),
        "checkpoint": lambda: optimize(_atomic_torch_save)({"step": torch.tensor(2), "w": torch.zeros(100000)}, root / "last.pt"),
    }


def fill(root, leave=0):
    """Fill the file system, leaving about ``leave`` bytes free (leave=0: to the last byte)."""
    fd = os.open(root / "filler", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    try:
        st = os.statvfs(root)
        todo = st.f_bavail * st.f_frsize - leave if leave else None
        for chunk in (65536, 4096, 1):
            while todo is None or todo >= chunk:
                try:
                    n = os.write(fd, b"\0" * chunk)
                except OSError:
                    break
                todo = None if todo is None else todo - n
                if n < chunk:
                    break
    finally:
        os.close(fd)


results = {}
previous(full)
fill(full)
before = digest(full)
for name, call in attempts(full).items():
    results[f"disk full: {name}"] = attempt(name, call)
after = digest(full)
results["disk full: changed"] = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
results["disk full: leftovers"] = sorted(p.name for p in full.iterdir() if p.name.startswith("."))

# Room for the render's float temporary but not for the PCM_16 file of its second pass.
os.unlink(full / "filler")
import soundfile as sf
frames = sf.info(spec["input"]).frames + new_set.n_taps - 1
temp_bytes = frames * new_set.n_drivers * 4
fill(full, leave=temp_bytes + 64 * 1024 + frames * new_set.n_drivers)  # the float file and half the PCM_16 one
before = digest(full / "out.wav")
results["second pass: render"] = attempt("render", lambda: render_cli.run(render_argv(full / "out.wav")))
results["second pass: changed"] = [] if digest(full / "out.wav") == before else ["out.wav"]
results["second pass: leftovers"] = sorted(p.name for p in full.iterdir() if p.name.startswith("."))

previous(ro)
subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
before = digest(ro)
for name, call in attempts(ro).items():
    results[f"read-only: {name}"] = attempt(name, call)
after = digest(ro)
results["read-only: changed"] = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
print(json.dumps(results))
'''


@pytest.fixture(scope="module")
def namespace_results(assets, tmp_path_factory):
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1)")
    root = tmp_path_factory.mktemp("ns")
    (root / "full").mkdir()
    (root / "ro").mkdir()
    spec = {"full": str(root / "full"), "ro": str(root / "ro"), "old_set": str(assets.old_set_dir),
            "new_set": str(assets.new_set_dir), "input": str(assets.other_in), "sweep": str(assets.sweep)}
    proc = subprocess.run(["unshare", "-rm", sys.executable, "-c", NAMESPACE, json.dumps(spec)], capture_output=True,
                          text=True, env=ENV, timeout=300)
    if proc.returncode and "unshare" in proc.stderr and "Traceback" not in proc.stderr:
        pytest.skip(f"no user/mount namespaces here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    if "skip" in results:
        pytest.skip(results["skip"])
    return results


NS_WRITERS = ["export", "filterset", "render", "summarize", "metrics.json", "checkpoint"]
PROGS = {"export": "spatialopt-export", "render": "spatialopt-render", "summarize": "spatialopt-summarize",
         "metrics.json": "spatialopt-optimize", "checkpoint": "spatialopt-optimize"}


def _check_attempt(result: dict, writer: str, reason: str) -> str:
    """The attempt failed with the project's error naming ``reason``: one ``prog: error:`` line and
    exit status 2 for the command-line writers, a DataError for the filter-set save. Returns the
    error text."""
    if writer == "filterset":
        assert result["code"] == "DataError" and reason in result["err"], result
        return result["err"]
    lines = [line for line in result["err"].splitlines() if line.strip()]
    assert result["code"] == 2 and "Traceback" not in result["err"], result
    assert len(lines) == 1 and lines[0].startswith(f"{PROGS[writer]}: error: ") and reason in lines[0], result
    return lines[0]


@pytest.mark.parametrize("writer", NS_WRITERS)
def test_disk_full(namespace_results, writer):
    assert "No space left on device" in _check_attempt(namespace_results[f"disk full: {writer}"], writer,
                                                       "No space left on device")


@pytest.mark.parametrize("writer", NS_WRITERS)
def test_read_only_file_system(namespace_results, writer):
    assert "Read-only file system" in _check_attempt(namespace_results[f"read-only: {writer}"], writer,
                                                     "Read-only file system")


def test_full_disk_and_read_only_leave_previous_outputs(namespace_results):
    assert namespace_results["disk full: changed"] == []
    assert namespace_results["read-only: changed"] == []
    assert namespace_results["disk full: leftovers"] == []


def test_disk_full_in_the_render_second_pass(namespace_results):
    """Room for the float temporary but not for the PCM_16 file written from it."""
    _check_attempt(namespace_results["second pass: render"], "render", "No space left on device")
    assert namespace_results["second pass: changed"] == []
    assert namespace_results["second pass: leftovers"] == []
