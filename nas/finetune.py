"""Finetune a chosen architecture with distillation from the mothernet.

The student starts from its BKD weights (stem and head from the mothernet, each slot from the
student block trained to mimic the mothernet's slot), then trains end to end on the task with
a loss mixing the ground truth and the teacher's outputs:

* classification: ``(1 - alpha) * CE(student, label) + alpha * T^2 * KL(teacher_T || student_T)``
  with temperature ``T`` (Hinton et al.);
* denoising / super-resolution: ``(1 - alpha) * L1(student, clean) + alpha * L1(student,
  teacher)``.

:func:`init_from_bkd` fills the student from the mothernet and the BKD library;
:func:`finetune` trains it with the one training loop (:func:`nas.training.loop.fit`).

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from nas.bkd.library import BkdLibrary, LibraryError
from nas.core.errors import DonnaError, MothernetError
from nas.core.spaces import SlotOption
from nas.training.device import CPU, TrainDevice
from nas.training.loop import (
    FitState,
    evaluate_metric,
    first_last_tenth,
    fit,
    one_cycle_schedule,
    total_steps,
)
from nas.training.networks import BlockNetwork

if TYPE_CHECKING:
    from nas.data.batches import TrainingData


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


def metric_name(task: str) -> str:
    from nas.data import task_metric

    return task_metric(task)[0]


def finetune(
    student: nn.Module,
    teacher: nn.Module,
    data: TrainingData,
    config: FinetuneConfig = FinetuneConfig(),
    on_step: Callable[[int, int, float], None] | None = None,
    *,
    device: TrainDevice = CPU,
    data_workers: int = 0,
) -> FinetuneResult:
    """Train ``student`` in place with distillation from ``teacher`` (frozen, eval mode) on
    ``data`` (``data.task``), on ``device`` (both networks are moved there).

    AdamW with a one-cycle learning rate (15% warm-up); batches are consecutive slices of a
    permutation, a fresh one when the next batch would run past its end. Deterministic for a
    seed: the batch order comes from a generator seeded with ``config.seed``. ``on_step(step,
    total, loss)`` is called after every step (progress bars).
    """
    task = data.task
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    student.to(device.torch_device())
    teacher.to(device.torch_device(), memory_format=torch.channels_last)  # ~2x faster on CPU
    before = _evaluate(student, data, device, data_workers)
    total = total_steps(config.epochs, data.n_train, config.batch_size)
    opt = torch.optim.AdamW(student.parameters(), lr=config.lr, weight_decay=config.weight_decay)

    def loss_fn(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            tb = teacher(xb)
        return distillation_loss(task, student(xb), tb, yb, config)

    def step_done(state: FitState) -> None:
        if on_step is not None:
            on_step(state.step, state.total, state.losses[-1])

    t0 = time.perf_counter()
    state = fit(
        student,
        loss_fn,
        data.train_batches(config.batch_size, continuing=True, workers=data_workers),
        optimizer=opt,
        schedule=one_cycle_schedule(config.lr, pct_start=0.15),
        total=total,
        generator=gen,
        device=device,
        on_step=step_done,
    )
    seconds = time.perf_counter() - t0
    loss_first, loss_last = first_last_tenth(state.losses)
    return FinetuneResult(
        metric_name=metric_name(task),
        metric=_evaluate(student, data, device, data_workers),
        metric_before=before,
        loss_first=loss_first,
        loss_last=loss_last,
        steps=total,
        seconds=seconds,
    )


def _evaluate(net: nn.Module, data: TrainingData, device: TrainDevice, workers: int) -> float:
    return evaluate_metric(net, data.task, data.val_batches(256, workers=workers), device)


# ---- students from BKD ------------------------------------------------------------------


@dataclass(frozen=True)
class InitReport:
    """Which tensors of a student came from where (state-dict keys)."""

    from_mothernet: tuple[str, ...]  # stem and head tensors copied from the mothernet
    from_bkd: tuple[str, ...]  # slot tensors copied from BKD student weights
    reinitialised: tuple[str, ...]  # tensors left at their fresh initialisation

    def summary(self) -> str:
        return (
            f"{len(self.from_mothernet)} tensors from the mothernet, {len(self.from_bkd)} from "
            f"BKD students, {len(self.reinitialised)} re-initialised"
        )


def init_from_bkd(
    student_net: BlockNetwork,
    mothernet: BlockNetwork,
    library: BkdLibrary,
    choices: Sequence[SlotOption],
) -> InitReport:
    """Initialise ``student_net`` (``build_network(space, choices)``) in place: stem and head
    from ``mothernet``, slot ``i`` from the BKD student weights of ``(i, choices[i])``.

    A tensor whose shape differs from its source keeps its fresh initialisation and is
    reported: e.g. the head's first conv after a narrower last slot, or a slot's first block
    when the previous slot's width differs from the mothernet's (the BKD student was trained
    on the mothernet's features). Raises :class:`~nas.bkd.library.LibraryError` when an option
    has no entry or no weights.
    """
    if len(choices) != len(student_net.slots):
        raise MothernetError(
            f"{len(choices)} choices for a student of {len(student_net.slots)} slots"
        )
    own = student_net.state_dict()
    new: dict[str, torch.Tensor] = {}
    from_m: list[str] = []
    from_b: list[str] = []
    src = mothernet.state_dict()
    for k, v in own.items():
        if (k.startswith("stem.") or k.startswith("head.")) and k in src:
            if tuple(src[k].shape) == tuple(v.shape):
                new[k] = src[k]
                from_m.append(k)
    for i, opt in enumerate(choices):
        wpath = library.weights_path(i, opt)
        if wpath is None or not wpath.is_file():
            raise LibraryError(
                f"the BKD library has no student weights for slot {i} option {opt.label()} "
                f"({wpath}); re-run `donna bkd` with the same --out"
            )
        blob = torch.load(wpath, map_location="cpu", weights_only=True)
        for k, t in blob["blocks"].items():
            key = f"slots.{i}.{k}"
            if key in own and tuple(own[key].shape) == tuple(t.shape):
                new[key] = t
                from_b.append(key)
    student_net.load_state_dict({**own, **new})
    reinit = tuple(k for k in own if k not in new)
    return InitReport(tuple(from_m), tuple(from_b), reinit)
