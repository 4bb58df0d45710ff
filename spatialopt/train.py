"""Optimisation loop: Adam or L-BFGS on the spatial system, with checkpoints, TensorBoard and a
non-finite guard.

A step whose loss or gradient is not finite is rejected: the last good parameters and optimiser
state are restored, the learning rate is halved, and the event is logged (console and
TensorBoard). Checkpoints are written atomically (temporary file + rename) and loaded with
``torch.load(..., weights_only=True)``; ``resume`` continues from the last one.
"""

from __future__ import annotations

import copy
import io
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from spatialopt.fileio import atomic_path

__all__ = ["OptimConfig", "SceneTensors", "Trainer", "LazySummaryWriter", "resolve_device"]


MAX_STEPS = 10_000_000
"""Most optimisation steps (and any interval in steps): 10^7 steps are days of work; more is a typo."""
MAX_LR = 1000.0


@dataclass
class OptimConfig:
    """``optim:`` config group.

    Attributes:
        optimizer: "adam" | "lbfgs". steps: optimisation steps. lr: learning rate.
        schedule: "cosine" | "constant" (Adam). warmup_steps: linear warm-up (Adam).
        checkpoint_every: steps between checkpoints. log_every: steps between scalar logs
            (``loss/total``, ``loss/<term>``, ``optim/lr``, ``optim/grad_norm``).
        grad_clip: max gradient norm (0 = off).
        eval_every: steps between ``eval/<metric>`` logs — the evaluation metrics of the current
            taps on the design scene (:class:`~spatialopt.monitor.RunMonitor`; also at the start
            and the end); 0 = none at all.
        image_every: steps between the ``images/*`` figures (also at the start and the end);
            0 = none at all.
        audio_seconds: length of the synthetic test mix of the ``audio/*`` binaural previews
            (reference, before, after); 0 = no audio.
    """

    optimizer: str = "adam"
    steps: int = 2000
    lr: float = 2e-4
    schedule: str = "cosine"
    warmup_steps: int = 50
    checkpoint_every: int = 100
    log_every: int = 10
    grad_clip: float = 0.0
    eval_every: int = 500
    image_every: int = 1000
    audio_seconds: float = 3.0

    def validate(self) -> None:
        from spatialopt.errors import ConfigError

        if not isinstance(self.optimizer, str) or self.optimizer not in ("adam", "lbfgs"):
            raise ConfigError("optim.optimizer", self.optimizer, "must be 'adam' or 'lbfgs'")
        if not isinstance(self.schedule, str) or self.schedule not in ("cosine", "constant"):
            raise ConfigError("optim.schedule", self.schedule, "must be 'cosine' or 'constant'")
        for key in ("steps", "warmup_steps", "checkpoint_every", "log_every"):
            value = getattr(self, key)
            lo = 1 if key in ("checkpoint_every", "log_every") else 0
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= MAX_STEPS:
                raise ConfigError(f"optim.{key}", value, f"must be an integer in [{lo}, {MAX_STEPS}]")
        lr = self.lr
        if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or not 0 < lr <= MAX_LR:
            raise ConfigError("optim.lr", lr, f"must be a positive number <= {MAX_LR:g}")
        clip = self.grad_clip
        if isinstance(clip, bool) or not isinstance(clip, (int, float)) or not math.isfinite(clip) or not 0 <= clip <= 1e6:
            raise ConfigError("optim.grad_clip", clip, "must be a number in [0, 1e+06] (0 = off)")
        for key in ("eval_every", "image_every"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_STEPS:
                raise ConfigError(f"optim.{key}", value, f"must be an integer in [0, {MAX_STEPS}] (0 = off)")
        value = self.audio_seconds
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (0 <= value <= 60):
            raise ConfigError("optim.audio_seconds", value, "must be a number of seconds in [0, 60] (0 = no audio)")


def resolve_device(name: str) -> torch.device:
    """``auto`` → cuda when available, else cpu; or an explicit torch device string."""
    from spatialopt.errors import ConfigError

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError("compute.device", name, "must be auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("compute.device", name, "CUDA is not available on this machine; use auto or cpu")
    return device


class SceneTensors:
    """The scene's tensors the losses need, on the compute device in the compute dtype."""

    KEYS = ("freqs", "H", "H_ref", "G_ring", "ring_az", "point_weights")

    def __init__(self, scene, device: torch.device, dtype: torch.dtype, H_direct=None, H_ref_direct=None):
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        for key in self.KEYS:
            value = getattr(scene, key)
            setattr(self, key, value.to(device=device, dtype=complex_dtype if value.is_complex() else dtype))
        self.nominal_index = scene.nominal_index
        # Free-field (direct-path) ear transfer of the drivers and of the ±30° pair, only when the
        # scene has a room (the DRR term; the ear terms with loss.room_ears=direct).
        self.H_direct = None if H_direct is None else H_direct.to(device=device, dtype=complex_dtype)
        self.H_ref_direct = None if H_ref_direct is None else H_ref_direct.to(device=device, dtype=complex_dtype)
        if (self.H_direct is None) != (self.H_ref_direct is None):
            raise ValueError("H_direct and H_ref_direct go together (both from the free-field scene)")


def _atomic_torch_save(obj, path: Path) -> None:
    # Serialised into memory (a few MB), then written: a write error (disk full) is an OSError
    # naming the file, not torch's "[enforce fail at inline_container.cc] unexpected pos". A buffer,
    # not a name: torch derives its archive name from a path's stem, and ".last-…" is not a valid one.
    buf = io.BytesIO()
    torch.save(obj, buf)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(buf.getbuffer())


class LazySummaryWriter:
    """A TensorBoard ``SummaryWriter`` on ``self.tb_dir``, opened on first use (a run that logs
    nothing writes no event file); :meth:`close` flushes and closes it (it reopens if used again)."""

    tb_dir: Path
    _writer = None

    @property
    def writer(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.tb_dir))
        return self._writer

    def close(self) -> None:
        if self._writer is not None:
            self._writer.flush()
            self._writer.close()
            self._writer = None


class Trainer(LazySummaryWriter):
    """Runs the optimisation of ``system`` under ``loss`` (a :class:`~spatialopt.objectives.losses.SystemLoss`).

    Args:
        system: the :class:`~spatialopt.design.system.SpatialSystem` (already on the device).
        loss: its loss on the scene tensors.
        cfg: :class:`OptimConfig`.
        run_dir: where ``checkpoints/`` and ``tb/`` go.
        seed: RNG seed (the optimisation itself is deterministic; seeds any stochastic part).
        progress: show a progress bar.
        monitor: optional :class:`~spatialopt.monitor.RunMonitor`: called every
            ``cfg.eval_every`` steps (``log_eval``) and every ``cfg.image_every`` steps
            (``log_images``) before the last step ``cfg.steps`` (the caller logs the exported
            state at the end).
    """

    def __init__(self, system, loss, cfg: OptimConfig, run_dir: Path, seed: int = 0, progress: bool = True,
                 monitor=None):
        cfg.validate()
        self.system, self.loss, self.cfg = system, loss, cfg
        self.monitor = monitor
        self.run_dir = Path(run_dir)
        self.progress = progress
        torch.manual_seed(seed)
        params = [p for p in system.parameters() if p.requires_grad]
        if cfg.optimizer == "adam":
            self.optimizer = torch.optim.Adam(params, lr=cfg.lr)
        else:
            self.optimizer = torch.optim.LBFGS(params, lr=cfg.lr, max_iter=1, history_size=20, line_search_fn="strong_wolfe")
        self.step = 0
        self.history: list[dict] = []
        self.rejected_steps = 0
        self.max_rejected_steps = 20
        self.stopped_reason: str | None = None
        self.best = (math.inf, None)
        self.lr_scale = 1.0  # halved after each rejected (non-finite) step
        self.tb_dir = self.run_dir / "tb"

    # -- checkpoints -------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoints" / "last.pt"

    def save_checkpoint(self) -> None:
        """Atomically write ``checkpoints/last.pt``: parameters, optimiser state, delays, step, the
        best state so far (what a resumed run exports if nothing better comes), the learning-rate
        scale and the rejected-step count — everything an uninterrupted run would carry on with."""
        state = {
            "step": self.step,
            "system": self.system.state_dict(),
            "delays": torch.tensor([self.system.lr_delay, self.system.c_delay]),
            "optimizer": self.optimizer.state_dict(),
            "best_loss": torch.tensor(self.best[0]),
            "best_system": self.best[1] if self.best[1] is not None else self.system.state_dict(),
            "lr_scale": torch.tensor(self.lr_scale),
            "rejected_steps": torch.tensor(self.rejected_steps),
        }
        _atomic_torch_save(state, self.checkpoint_path)

    def load_checkpoint(self) -> bool:
        """Resume from ``checkpoints/last.pt`` if present. Returns True if it was loaded.

        Everything is read and checked before anything is changed, so a bad checkpoint leaves the
        trainer as it was and raises one :class:`~spatialopt.errors.DataError` line."""
        from spatialopt.errors import DataError, SpatialoptError

        path = self.checkpoint_path
        if not path.exists():
            return False

        def fail(problem) -> DataError:
            first = str(problem).strip().splitlines()[0] if str(problem).strip() else type(problem).__name__
            return DataError(f"cannot resume from checkpoint {path}: {first}")

        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict):
                raise ValueError("not a spatialopt checkpoint")
            delays = [int(v) for v in torch.as_tensor(state["delays"]).reshape(-1).tolist()]
            if len(delays) != 2:
                raise ValueError(f"delays must hold 2 values, got {len(delays)}")
            step, best_loss = int(state["step"]), float(state["best_loss"])
            if not 0 <= step <= self.cfg.steps:
                raise ValueError(f"step {step} is outside 0..optim.steps={self.cfg.steps}")
            lr_scale = float(state.get("lr_scale", 1.0))
            rejected = int(state.get("rejected_steps", 0))
            best_system = state.get("best_system")
        except (SpatialoptError, KeyError) as exc:
            raise fail(f"missing or bad field {exc}") from None
        except Exception as exc:  # a corrupt or foreign file (torch's pickle refusal included)
            raise fail(exc) from None
        previous = (copy.deepcopy(self.system.state_dict()), copy.deepcopy(self.optimizer.state_dict()),
                    self.system.lr_delay, self.system.c_delay)
        try:
            self.system.set_delays(*delays)
            self.system.load_state_dict(state["system"])
            self.optimizer.load_state_dict(state["optimizer"])
            if best_system is not None:
                self.system.load_state_dict(best_system)  # validates it; the live state goes back next
                best_system = copy.deepcopy(self.system.state_dict())
                self.system.load_state_dict(state["system"])
        except Exception as exc:
            self.system.set_delays(previous[2], previous[3])
            self.system.load_state_dict(previous[0])
            self.optimizer.load_state_dict(previous[1])
            raise fail(exc) from None
        self.step = step
        self.best = (best_loss, best_system)
        self.lr_scale, self.rejected_steps = lr_scale, rejected
        return True

    # -- optimisation --------------------------------------------------------------------------
    def _lr_at(self, step: int) -> float:
        cfg = self.cfg
        if cfg.optimizer != "adam":
            return cfg.lr
        warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
        if cfg.schedule == "constant":
            return cfg.lr * warm
        progress = step / max(cfg.steps, 1)
        return cfg.lr * warm * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))

    def evaluate(self) -> tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]:
        """Loss, its terms, and the responses at the current parameters."""
        responses = self.system.responses(self.loss.scene.freqs)
        terms = self.loss.terms(responses, responses["ctc_taps"])
        return self.loss.total(terms), terms, responses

    def _closure(self):
        self.optimizer.zero_grad(set_to_none=True)
        total, terms, _ = self.evaluate()
        total.backward()
        self._last = (total.detach(), {k: v.detach() for k, v in terms.items()})
        return total

    def run(self, on_log=None, until: int | None = None) -> list[dict]:
        """Optimise until step ``until`` (default ``cfg.steps``; the schedule always spans
        ``cfg.steps``, so stopping early and resuming gives the same result as one run).
        ``on_log(step, total, terms)`` is called every log_every steps.

        Returns the logged history (list of dicts of floats).
        """
        from tqdm import tqdm

        cfg = self.cfg
        stop = cfg.steps if until is None else min(until, cfg.steps)
        params = [p for p in self.system.parameters() if p.requires_grad]
        good_state = copy.deepcopy((self.system.state_dict(), self.optimizer.state_dict()))
        bar = tqdm(total=cfg.steps, initial=self.step, desc="optimize", disable=not self.progress, dynamic_ncols=True)
        try:
            while self.step < stop and self.stopped_reason is None:
                lr = self._lr_at(self.step) * self.lr_scale
                for group in self.optimizer.param_groups:
                    group["lr"] = lr
                if cfg.optimizer == "lbfgs":
                    self.optimizer.step(self._closure)
                    total, terms = self._last
                    grad_norm = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params if p.grad is not None]))
                else:
                    total = self._closure()
                    total, terms = self._last
                    grads = [p.grad for p in params if p.grad is not None]
                    grad_norm = torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))
                    if not (torch.isfinite(total) and torch.isfinite(grad_norm)):
                        self._reject(good_state, total, grad_norm)
                        self.lr_scale *= 0.5
                        continue
                    if cfg.grad_clip > 0:
                        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                    self.optimizer.step()
                if not all(torch.isfinite(p).all() for p in params):
                    self._reject(good_state, total, grad_norm)
                    self.lr_scale *= 0.5
                    continue
                # Adam's loss was computed at the parameters before its step (the previous good
                # state); L-BFGS's last evaluation is at the point its line search accepted.
                before_step = good_state[0]
                good_state = copy.deepcopy((self.system.state_dict(), self.optimizer.state_dict()))
                value = float(total)
                if value < self.best[0]:
                    self.best = (value, good_state[0] if cfg.optimizer == "lbfgs" else before_step)
                self.step += 1
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    record = {"step": self.step, "loss": value, "lr": lr, "grad_norm": float(grad_norm)}
                    record.update({f"loss/{k}": float(v) for k, v in terms.items()})
                    self.history.append(record)
                    bar.set_postfix(loss=f"{value:.4g}")
                    self.writer.add_scalar("loss/total", value, self.step)
                    for k, v in terms.items():
                        self.writer.add_scalar(f"loss/{k}", float(v), self.step)
                    self.writer.add_scalar("optim/lr", lr, self.step)
                    self.writer.add_scalar("optim/grad_norm", float(grad_norm), self.step)
                    if on_log is not None:
                        on_log(self.step, value, terms)
                if self.monitor is not None and self.step < cfg.steps:  # the caller logs the final state
                    if cfg.eval_every and self.step % cfg.eval_every == 0:
                        self.monitor.log_eval(self.step)
                    if cfg.image_every and self.step % cfg.image_every == 0:
                        self.monitor.log_images(self.step)
                if self.step % cfg.checkpoint_every == 0 or self.step == stop:
                    self.save_checkpoint()
        finally:
            bar.close()
        return self.history

    def _reject(self, good_state, total, grad_norm) -> None:
        self.system.load_state_dict(good_state[0])
        self.optimizer.load_state_dict(good_state[1])
        self.rejected_steps += 1
        message = (f"step {self.step + 1}: non-finite loss or gradient (loss={float(total)}, "
                   f"grad_norm={float(grad_norm)}); restored the last good state and halved the learning rate")
        print(f"spatialopt-optimize: warning: {message}")
        self.writer.add_text("events", message, self.step)
        if self.rejected_steps >= self.max_rejected_steps:
            # Stop, but keep the work: the caller exports the best state reached so far.
            self.stopped_reason = (f"stopped at step {self.step}: {self.rejected_steps} non-finite steps; "
                                   "lower optim.lr or check the loss weights")
            print(f"spatialopt-optimize: warning: {self.stopped_reason}")
