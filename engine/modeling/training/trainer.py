"""The loop both training tasks share: optimiser and schedule, the time budget, evaluation,
the best checkpoint and --resume / --init.

A task (tokenizer_task.py, mage_task.py) says what one step computes and how to score the
model; the Trainer does everything else the same way for both. Every random choice of a step is
a function of (seed, step, rank), so a resumed run replays exactly what the run would have done.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from engine.modeling import data as data_mod
from engine.modeling.training.checkpoints import load_same_model, plain_args, save_atomic
from engine.modeling.training.distributed import Dist, device_name
from engine.modeling.training.optimizer import lr_at, param_groups
from engine.modeling.training.progress import ProgressLog

log = logging.getLogger(__name__)


class Task(Protocol):
    """What the Trainer asks of a task (TokenizerTask, MageTask)."""

    total: int | None  # the run's step count, set by the Trainer once it is known

    @property
    def kind(self) -> str: ...  # "tokenizer" or "mage": checkpoint and log file names
    @property
    def betas(self) -> tuple[float, float]: ...  # AdamW's
    @property
    def model(self) -> nn.Module: ...  # what is optimised and checkpointed
    @property
    def loss(self) -> nn.Module: ...  # what DistributedDataParallel wraps
    @property
    def data(self) -> data_mod.Dataset: ...
    @property
    def class_names(self) -> list[str]: ...

    def config(self) -> dict[str, Any]: ...
    def forward(
        self, step: int, module: nn.Module
    ) -> tuple[dict[str, torch.Tensor], tuple[torch.Tensor, ...]]: ...
    def after_step(
        self, step: int, optimizer: torch.optim.Optimizer, aux: tuple[torch.Tensor, ...]
    ) -> None: ...
    def evaluate(self) -> dict[str, float]: ...
    def better(self, new: dict[str, float], best: dict[str, float] | None) -> bool: ...
    def state(self) -> dict[str, Any]: ...  # the task's own part of a resumable checkpoint
    def load_state(self, state: dict[str, Any]) -> None: ...
    def info(self) -> dict[str, Any]: ...  # more to record in every checkpoint


class Trainer:
    """Optimiser, schedule, checkpoints, progress, time budget: everything both tasks share."""

    CALIBRATION_STEPS = 20  # timed steps before a --minutes run fixes its step count
    TIME_RESERVE = 0.06  # of the budget, kept for evaluations and the final checkpoint

    def __init__(self, task: Task, args: argparse.Namespace, dist: Dist):
        self.task, self.args, self.dist = task, args, dist
        self.out = Path(args.out)
        self.ckpt_path = self.out / f"{task.kind}.pt"
        self.progress = ProgressLog(
            self.out / f"log_{task.kind}.jsonl", task.kind, args.batch, dist.main
        )
        self.module = task.loss
        if dist.world > 1:
            ids = [dist.device.index] if dist.device.type == "cuda" else None
            self.module = nn.parallel.DistributedDataParallel(task.loss, device_ids=ids)
        self.opt = torch.optim.AdamW(
            param_groups(task.model, args.wd), lr=args.lr, betas=task.betas
        )
        self.step: int = 0
        self.total: int | None = args.steps
        self.best: dict[str, float] | None = None
        self.metrics: dict[str, float] = {}
        self.elapsed_before = 0.0
        self.last_eval_step = self.saved_step = -1

    # checkpoint ---------------------------------------------------------------------------------

    def payload(self, full: bool) -> dict[str, Any]:
        ckpt = {
            "kind": self.task.kind,
            "config": self.task.config(),
            "model": {
                k: v.detach().float().cpu() if v.is_floating_point() else v.cpu()
                for k, v in self.task.model.state_dict().items()
            },
            "class_names": list(self.task.class_names),
            "step": self.step,
            "metrics": dict(self.metrics),
            "train_args": plain_args(self.args),
            "data": self.task.data.summary(),
            "device": device_name(self.dist.device),
            "world_size": self.dist.world,
            "elapsed_s": round(self.elapsed(), 1),
            **self.task.info(),
        }
        if full:
            ckpt.update(
                optimizer=self.opt.state_dict(),
                total=self.total,
                best=self.best,
                task_state=self.task.state(),
                rng=torch.get_rng_state(),
            )
        return ckpt

    def save(self) -> None:
        if self.dist.main:
            save_atomic(self.payload(full=True), self.ckpt_path)
        self.last_save, self.saved_step = time.monotonic(), self.step

    def resume(self) -> None:
        if not self.ckpt_path.exists():
            return
        if not self.args.resume:
            raise ValueError(
                f"{self.ckpt_path} exists: pass --resume to continue it, or choose another --out"
            )
        ckpt = load_same_model(self.ckpt_path, self.task.kind, self.task.config())
        self.task.model.load_state_dict(ckpt["model"])
        self.opt.load_state_dict(ckpt["optimizer"])
        self.task.load_state(ckpt["task_state"])
        torch.set_rng_state(ckpt["rng"])
        self.step, self.best, self.metrics = ckpt["step"], ckpt["best"], ckpt["metrics"]
        self.total = self.args.steps or ckpt["total"]  # --steps on resume extends the plan
        self.elapsed_before = ckpt.get("elapsed_s", 0.0)
        log.info("resumed %s at step %d", self.ckpt_path, self.step)

    def init_weights(self) -> None:
        """--init: start a new run (fresh optimiser and schedule) from another run's weights."""
        ckpt = load_same_model(self.args.init, self.task.kind, self.task.config())
        self.task.model.load_state_dict(ckpt["model"])
        log.info("initialised from %s (trained %d steps)", self.args.init, ckpt["step"])

    # schedule and budget --------------------------------------------------------------------------

    def plan(self, t_first: float) -> None:
        """--minutes: time CALIBRATION_STEPS steps, then fix the total (rank 0 decides)."""
        now = time.monotonic()
        per_step = (now - t_first) / max(1, self.step - self.calib_from)
        left = self.deadline - now - self.TIME_RESERVE * self.args.minutes * 60
        total = self.step + max(1, int(left / per_step))
        self.total = self.dist.broadcast_int(total)
        log.info(
            "%s: %.3f s/step -> %d steps in %.1f min",
            self.task.kind,
            per_step,
            self.total,
            self.args.minutes,
        )

    def calibrated(self, t_first: float) -> bool:
        """Enough steps timed, or a tenth of the budget gone (slow steps)."""
        slow = time.monotonic() - t_first > 0.1 * self.args.minutes * 60
        return self.step == self.calib_from + self.CALIBRATION_STEPS or bool(
            self.dist.broadcast_int(int(slow))
        )

    def elapsed(self) -> float:
        return self.elapsed_before + time.monotonic() - self.t_start

    # the loop -------------------------------------------------------------------------------------

    def train(self) -> dict[str, float]:
        args = self.args
        self.resume()
        if self.step == 0 and args.init:
            self.init_weights()
        self.t_start = self.last_save = self.progress.last_log = time.monotonic()
        self.deadline = self.t_start + (args.minutes or 0) * 60
        # the first steps include warm-up work: the timing for --minutes starts after them
        self.calib_from, t_first = self.step + 3, 0.0
        self.task.model.train()
        while self.total is None or self.step < self.total:
            if self.total is None and self.step == self.calib_from:
                t_first = time.monotonic()
            if self.total is None and self.step > self.calib_from and self.calibrated(t_first):
                self.plan(t_first)
                continue
            self.one_step()
            self.after(final=self.step == self.total)
            if args.stop_after and self.step >= args.stop_after:
                break
            if (
                args.minutes
                and self.step % 10 == 0
                and self.dist.broadcast_int(int(time.monotonic() > self.deadline + 30))
            ):
                log.warning("time budget exceeded: stopping at step %d", self.step)
                break
        self.flush(time.monotonic())  # stopped early: still evaluate and save
        if self.last_eval_step != self.step:
            self.evaluate()
        if self.saved_step != self.step:
            self.save()
        return self.metrics

    def one_step(self) -> None:
        args = self.args
        total = self.total or 10**9  # during calibration: warm-up only, no decay yet
        lr = lr_at(self.step, args.lr, args.warmup, total)
        for group in self.opt.param_groups:
            group["lr"] = lr
        # dropout: a function of (seed, step, rank), so resuming replays it exactly
        torch.manual_seed((args.seed * 1_000_003 + self.step) * 64 + self.dist.rank)
        self.task.total = self.total
        losses, aux = self.task.forward(self.step, self.module)
        self.opt.zero_grad(set_to_none=True)
        losses["loss"].backward()
        grad_norm = nn.utils.clip_grad_norm_(self.task.model.parameters(), args.clip)
        self.opt.step()
        self.task.after_step(self.step, self.opt, aux)
        names = [*sorted(losses), "grad_norm"]
        values = torch.stack(
            [losses[k].detach().float() for k in names[:-1]] + [grad_norm.detach().float()]
        )
        self.progress.add(self.step, lr, names, self.dist.mean(values))  # global means
        self.step += 1

    def after(self, final: bool) -> None:
        """Logging, evaluation and checkpoints after a step."""
        args, now = self.args, time.monotonic()
        eval_every = args.eval_every or max(1, (self.total or 10**9) // 8)
        do_eval = final or (self.total is not None and self.step % eval_every == 0)
        if do_eval or now - self.progress.last_log > args.log_seconds:
            self.flush(now)
        if do_eval:
            self.evaluate()
        if (
            final
            or (args.ckpt_every and self.step % args.ckpt_every == 0)
            or now - self.last_save > args.ckpt_minutes * 60
        ):
            self.save()

    def flush(self, now: float) -> None:
        self.progress.flush(now, self.step, self.total)

    def evaluate(self) -> None:
        result = self.task.evaluate()
        self.metrics = {**result, "step": self.step}
        self.last_eval_step = self.step
        self.progress.append([{"step": self.step, "eval": result}])
        log.info(
            "%s eval at step %d: %s",
            self.task.kind,
            self.step,
            ", ".join(f"{k} {v}" for k, v in result.items()),
        )
        if self.task.better(result, self.best):
            self.best = {**result, "step": self.step}
            if self.dist.main:
                save_atomic(self.payload(full=False), self.out / f"{self.task.kind}_best.pt")
