"""Kill-and-resume and Ctrl-C on real ``spatialopt-optimize`` processes.

A run SIGKILLed after its first checkpoint and continued with ``resume=true`` in the same
directory must export the same filter set as an uninterrupted run of the same config; Ctrl-C
(SIGINT) must export the best filter set so far, write metrics.json (``interrupted: true``) and the
report, and exit with status 130.

Determinism: CPU, float32, one intra-op thread per process (OMP_NUM_THREADS=1). The result was
measured bit-identical with two threads as well (the reduction order depends on the thread count,
which is the same in every run here); one thread is set because the reference and the interrupted
run execute side by side on a 2-core machine, where two OpenMP threads per process stall.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

BIN = Path(sys.executable).parent
CONF = Path(__file__).resolve().parents[2] / "conf"
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
STEPS, EVERY = 200, 20
ARGS = ["+experiment=debug", f"optim.steps={STEPS}", f"optim.checkpoint_every={EVERY}", "compute.device=cpu"]
if "eval_every" in (CONF / "optim" / "adam.yaml").read_text():  # TensorBoard monitoring: not under test, seconds
    ARGS += ["optim.eval_every=0", "optim.image_every=0", "optim.audio_seconds=0"]


def _default_sigint() -> None:
    """In the child before exec: SIGINT back to its default. A test session started in the
    background of a non-interactive shell (``make test &``, some CI runners) inherits SIGINT
    *ignored*, and Python keeps an inherited SIG_IGN instead of raising KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(run_dir: Path, *extra: str) -> subprocess.Popen:
    """The run as a subprocess; its stdout/stderr go to files beside the run directory (a pipe
    nobody reads while we poll could fill up and block it)."""
    logs = run_dir.parent / f"{run_dir.name}-{time.monotonic_ns()}"
    with open(f"{logs}.out", "w") as out, open(f"{logs}.err", "w") as err:
        proc = subprocess.Popen([str(BIN / "spatialopt-optimize"), *ARGS, f"hydra.run.dir={run_dir}", *extra],
                                stdout=out, stderr=err, text=True, env=ENV, preexec_fn=_default_sigint)
    proc.logs = logs
    return proc


def _output(proc: subprocess.Popen) -> tuple[str, str]:
    return Path(f"{proc.logs}.out").read_text(), Path(f"{proc.logs}.err").read_text()


def _finish(proc: subprocess.Popen, timeout: float = 600) -> tuple[int, str, str]:
    proc.wait(timeout=timeout)
    return (proc.returncode, *_output(proc))


def _checkpoint_step(run_dir: Path) -> int:
    return int(torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)["step"])


def _wait_for_checkpoint(proc: subprocess.Popen, run_dir: Path, timeout: float = 300) -> None:
    """Until ``checkpoints/last.pt`` exists (written atomically: once there, it is complete)."""
    path = run_dir / "checkpoints" / "last.pt"
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            pytest.fail(f"run ended (status {proc.returncode}) before its first checkpoint: {_output(proc)[1][-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("no checkpoint within the time limit")
        time.sleep(0.01)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, started at once and collected when a test needs it (it runs side by
    side with the interrupted run of the first test)."""
    run_dir = tmp_path_factory.mktemp("reference")
    proc = _start(run_dir)
    result = {}

    def fir() -> torch.Tensor:
        from spatialopt.filterset import FilterSet

        if not result:
            code, _, err = _finish(proc)
            assert code == 0, err[-3000:]
            result["fir"] = FilterSet.load(run_dir / "filterset").fir
        return result["fir"]

    yield fir
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, reference):
    from spatialopt.filterset import FilterSet

    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    _wait_for_checkpoint(proc, run_dir)
    time.sleep(0.1)  # land between checkpoints: the resumed run redoes the steps after the last one
    proc.send_signal(signal.SIGKILL)
    code, _, _ = _finish(proc)
    assert code == -signal.SIGKILL, "the run finished before the kill: raise STEPS"
    step = _checkpoint_step(run_dir)
    assert 0 < step < STEPS and step % EVERY == 0
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "filterset").exists()

    code, out, err = _finish(_start(run_dir, "resume=true"))
    assert code == 0, err[-3000:]
    assert f"resumed from {run_dir / 'checkpoints' / 'last.pt'} at step {step}" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["steps"] == STEPS and metrics["interrupted"] is False
    assert _checkpoint_step(run_dir) == STEPS
    torch.testing.assert_close(FilterSet.load(run_dir / "filterset").fir, reference(), rtol=0, atol=1e-7)


def test_ctrl_c_exports_the_best_so_far_exits_130_and_resumes(tmp_path, reference):
    from spatialopt.filterset import FilterSet

    run_dir = tmp_path / "run"
    proc = _start(run_dir)
    _wait_for_checkpoint(proc, run_dir)
    proc.send_signal(signal.SIGINT)
    code, out, err = _finish(proc)
    assert code == 130, err[-3000:]
    assert "Traceback" not in err and "interrupted at step" in err
    assert "interrupted: exporting the best filter set so far" in out
    assert f"report:      {run_dir / 'report.md'}" in out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["interrupted"] is True and EVERY <= metrics["steps"] < STEPS
    fset = FilterSet.load(run_dir / "filterset")
    assert fset.metrics["interrupted"] is True
    assert torch.isfinite(fset.fir).all() and fset.check_composition() < 1e-5
    assert (run_dir / "report.md").read_text().startswith("# spatialopt run report")

    # Ctrl-C keeps the last periodic checkpoint (the interrupted step may be half done), so
    # resuming from it still gives the uninterrupted result.
    code, out, err = _finish(_start(run_dir, "resume=true"))
    assert code == 0, err[-3000:]
    assert json.loads((run_dir / "metrics.json").read_text())["interrupted"] is False
    torch.testing.assert_close(FilterSet.load(run_dir / "filterset").fir, reference(), rtol=0, atol=1e-7)


def test_resume_exports_the_same_best_state_when_the_best_came_before_the_checkpoint(tmp_path, monkeypatch):
    """A learning rate 100x the default: the loss of the closed-form start is never beaten, so the
    best state is the first one, before the checkpoint at step 10."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from spatialopt.cli._common import CONF_DIR
    from spatialopt.experiment import run_experiment
    from spatialopt.filterset import FilterSet
    from spatialopt.train import Trainer

    overrides = [a for a in ARGS if not a.startswith(("optim.steps", "optim.checkpoint_every"))]
    overrides += ["optim.steps=30", "optim.checkpoint_every=10", "optim.lr=0.02", "optim.schedule=constant",
                  "optim.warmup_steps=1"]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        quiet = lambda *_: None  # noqa: E731
        run_experiment(cfg, tmp_path / "reference", progress=False, log=quiet)
        original = Trainer.run

        def interrupted(self, on_log=None, until=None):
            original(self, on_log, until=10)
            raise KeyboardInterrupt

        monkeypatch.setattr(Trainer, "run", interrupted)
        run_experiment(cfg, tmp_path / "resumed", progress=False, log=quiet)
        monkeypatch.setattr(Trainer, "run", original)
        run_experiment({**cfg, "resume": True}, tmp_path / "resumed", progress=False, log=quiet)
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(FilterSet.load(tmp_path / "resumed" / "filterset").fir,
                               FilterSet.load(tmp_path / "reference" / "filterset").fir, rtol=0, atol=1e-7)
