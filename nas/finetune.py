"""Finetune a chosen architecture with distillation from the mothernet.

The student starts from its BKD weights (stem and head from the mothernet, each slot from the
student block trained to mimic the mothernet's slot), then trains end to end on the task with
a loss mixing the ground truth and the teacher's outputs:

* classification: ``(1 - alpha) * CE(student, label) + alpha * T^2 * KL(teacher_T || student_T)``
  with temperature ``T`` (Hinton et al.);
* denoising / super-resolution: ``(1 - alpha) * L1(student, clean) + alpha * L1(student,
  teacher)``.

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from nas.core.errors import DonnaError


class FinetuneError(DonnaError, ValueError):
    """A finetuning configuration is invalid."""


@dataclass(frozen=True)
class FinetuneConfig:
    epochs: float = 2.0
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 1e-4
    alpha: float = 0.5  # weight of the teacher term
    temperature: float = 2.0  # classification only
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.epochs > 0:
            raise FinetuneError(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 1:
            raise FinetuneError(f"batch size must be >= 1, got {self.batch_size}")
        if not self.lr > 0:
            raise FinetuneError(f"learning rate must be > 0, got {self.lr}")
        if not 0.0 <= self.alpha <= 1.0:
            raise FinetuneError(f"alpha (teacher weight) must be in [0, 1], got {self.alpha}")
        if not self.temperature > 0:
            raise FinetuneError(f"temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class FinetuneResult:
    metric_name: str
    metric: float  # on the validation split, after finetuning
    metric_before: float  # the BKD-initialised student, before finetuning
    loss_first: float  # mean training loss over the first tenth of the steps
    loss_last: float  # ... and over the last tenth
    steps: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def distillation_loss(
    task: str,
    student_out: torch.Tensor,
    teacher_out: torch.Tensor,
    target: torch.Tensor,
    config: FinetuneConfig,
) -> torch.Tensor:
    a = config.alpha
    if task == "classification":
        t = config.temperature
        hard = F.cross_entropy(student_out, target)
        soft = F.kl_div(
            F.log_softmax(student_out / t, dim=1),
            F.log_softmax(teacher_out / t, dim=1),
            reduction="batchmean",
            log_target=True,
        ) * (t * t)
        return (1 - a) * hard + a * soft
    return (1 - a) * F.l1_loss(student_out, target) + a * F.l1_loss(student_out, teacher_out)


def evaluate(net: nn.Module, task: str, x: torch.Tensor, y: torch.Tensor) -> float:
    """The task's metric on ``(x, y)``: top-1 accuracy or PSNR in dB (outputs clamped)."""
    from nas.data import psnr, top1
    from nas.mothernet import predict

    out = predict(net, x)
    return float(top1(out, y) if task == "classification" else psnr(out.clamp(0.0, 1.0), y))


def metric_name(task: str) -> str:
    from nas.data import task_metric

    return task_metric(task)[0]


def finetune(
    student: nn.Module,
    teacher: nn.Module,
    task: str,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    config: FinetuneConfig = FinetuneConfig(),
    on_step: Callable[[int, int, float], None] | None = None,
) -> FinetuneResult:
    """Train ``student`` in place with distillation from ``teacher`` (frozen, eval mode).

    Deterministic for a seed: the batch order comes from a generator seeded with
    ``config.seed``. ``on_step(step, total, loss)`` is called after every step (progress bars).
    """
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    before = evaluate(student, task, val_x, val_y)
    n = len(train_x)
    per_epoch = max(1, math.ceil(n / config.batch_size))
    total = max(1, round(config.epochs * per_epoch))
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=config.lr, total_steps=total, pct_start=0.15
    )
    student.to(memory_format=torch.channels_last)  # ~2x faster depthwise backward on CPU
    teacher.to(memory_format=torch.channels_last)
    student.train()
    losses: list[float] = []
    t0 = time.perf_counter()
    order = torch.randperm(n, generator=gen)
    pos = 0
    for step in range(total):
        if pos + config.batch_size > n and pos > 0:
            order = torch.randperm(n, generator=gen)
            pos = 0
        idx = order[pos : pos + config.batch_size]
        pos += config.batch_size
        xb, yb = train_x[idx].contiguous(memory_format=torch.channels_last), train_y[idx]
        with torch.no_grad():
            tb = teacher(xb)
        loss = distillation_loss(task, student(xb), tb, yb, config)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step + 1, total, losses[-1])
    seconds = time.perf_counter() - t0
    tenth = max(1, len(losses) // 10)
    return FinetuneResult(
        metric_name=metric_name(task),
        metric=evaluate(student, task, val_x, val_y),
        metric_before=before,
        loss_first=sum(losses[:tenth]) / tenth,
        loss_last=sum(losses[-tenth:]) / tenth,
        steps=total,
        seconds=seconds,
    )
