"""Shared-teacher BKD: a group of options trained on one stream of training batches.

Per batch of the training stream (``data.train_batches(batch_size, limit=train_samples,
limit_seed=seed)``, pass ``p`` shuffled by :func:`~nas.bkd.group.pass_seed`) the teacher runs
once, up to the deepest slot of the group, and gives every slot's input and target; every
option of the group then takes one optimizer step on that batch. Each option keeps the
per-option recipe: its own student and adapter initialised from
:func:`~nas.bkd.student.option_seed`, MSE to the teacher slot's output, AdamW (one parameter
group per option in one optimizer: AdamW's update is per parameter, so this is one AdamW per
option) and a cosine learning rate over its total steps. The group trains through the one
training loop (:func:`nas.training.loop.fit`): the "model" is the list of the group's
(student, adapter) pairs and the loss the sum of the options' losses, whose gradients do not
mix (every option has its own parameters).

After training, one pass over ``data.calib_batches`` gives the variance of the teacher's slot
outputs on ``norm_samples`` training images (the recorded training losses are divided by it)
and re-estimates the students' BatchNorm statistics on the teacher's features of
``bn_calib_samples`` training images; one pass over ``data.val_batches(limit=val_samples,
limit_seed=seed + 1)`` gives every option's held-out MSE and the variance of the teacher's
validation output it is divided by (``nmse``).

All on a :class:`~nas.training.device.TrainDevice`: the teacher and students moved there, the
forward passes under its autocast (bfloat16 when asked); on the CPU at precision 32 nothing
moves and nothing is cast.

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from nas.bkd.config import DESIGN
from nas.bkd.group import (
    GroupTask,
    Member,
    SeededPasses,
    load_group_state,
    save_group_state,
)
from nas.bkd.library import BkdEntry, option_key
from nas.bkd.student import build_student, option_seed, save_student
from nas.training.checkpoint import load_checkpoint
from nas.training.loop import FitState, first_last_tenth, fit, recalibrate_bn, total_steps


@dataclass
class GroupResult:
    """A trained group: one entry per option and what the library's provenance records."""

    entries: list[BkdEntry]
    record: dict[str, Any]
    var_train: dict[int, float]  # feature index -> variance (the training-loss normaliser)
    var_val: dict[int, float]  # feature index -> variance of the teacher's val output


@dataclass
class _Progress:
    """Where the group's training is (what a checkpoint holds besides the weights)."""

    total: int
    step: int = 0
    pass_index: int = 0
    batch: int = 0
    images: int = 0
    seconds: float = 0.0  # spent in earlier runs (resumed groups)
    losses: list[list[float]] = field(default_factory=list)  # per step, raw MSE per option
    resumed_at: int | None = None


def teacher_features(teacher: nn.Module, x: torch.Tensor, n_slots: int) -> list[torch.Tensor]:
    """The input of the first ``n_slots`` slots and the output of the last of them
    (``teacher.slot_features`` without the deeper slots); ``x`` is made channels-last (about
    2x faster depthwise convolutions on the CPU)."""
    return teacher.slot_features(x.contiguous(memory_format=torch.channels_last), n_slots)


class _Students(nn.Module):
    """The group's students and adapters; ``forward(features)`` runs every student on its
    slot's input (BatchNorm re-estimation)."""

    def __init__(self, pairs: Sequence[tuple[nn.Module, nn.Module]], slots: Sequence[int]):
        super().__init__()
        self.pairs = nn.ModuleList(nn.Sequential(s, a) for s, a in pairs)
        self.slots = list(slots)

    def forward(self, feats: Sequence[torch.Tensor]) -> None:
        for pair, k in zip(self.pairs, self.slots):
            pair[0](feats[k])


def train_group(task: GroupTask, teacher: nn.Module | None = None) -> GroupResult:
    """Train, score and save every option of ``task`` (what a worker runs); resumes from the
    group's checkpoint when there is one. ``teacher``: the mothernet as a network object with
    ``stem`` and ``slots`` (put in eval mode and moved to the task's device); default: loaded
    from ``task.mothernet``."""
    t0 = time.perf_counter()
    cfg, dev = task.config, task.device
    teacher = _teacher(task, teacher)
    seeds = [option_seed(cfg.seed, m.slot, m.option) for m in task.members]
    pairs = [
        build_student(task.space, m.slot, m.option, m.in_chs, m.out_chs, seed)
        for m, seed in zip(task.members, seeds)
    ]
    model = _Students(pairs, [m.slot for m in task.members])
    model.to(dev.torch_device(), memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(
        [{"params": list(p.parameters())} for p in model.pairs],
        lr=cfg.lr,
        weight_decay=cfg.weight_decay,
    )
    n = min(task.data.n_train, cfg.train_samples or task.data.n_train)
    bs = min(cfg.batch_size, n)
    prog = _Progress(total_steps(cfg.epochs, n, bs))
    saved = load_group_state(task)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        prog = _restore(saved)
    _train(task, teacher, model, optimizer, prog, saved, bs)
    var_train = _calibrate(task, teacher, model, bs)
    mse, var_val = _held_out(task, teacher, model, bs)
    seconds = prog.seconds + time.perf_counter() - t0
    entries = [
        _entry(task, m, seed, pair, prog, i, mse[i], var_train, var_val, seconds)
        for i, (m, seed, pair) in enumerate(zip(task.members, seeds, model.pairs))
        if option_key(m.slot, m.option) not in task.saved
    ]
    record = {
        "id": task.gid,
        "options": len(task.members),
        "steps": prog.total,
        "train_passes": math.ceil(prog.total / max(1, math.ceil(n / bs))),
        "images_per_option": prog.images,
        "seconds": round(seconds, 3),
        "resumed_at_step": prog.resumed_at,
        **task.device.describe(),
    }
    return GroupResult(entries, record, var_train, var_val)


def _teacher(task: GroupTask, net: nn.Module | None) -> nn.Module:
    if net is None:
        net, _, _ = load_checkpoint(task.mothernet, task.space)
    net.eval()
    net.to(task.device.torch_device(), memory_format=torch.channels_last)
    return net


def _restore(saved: dict[str, Any]) -> _Progress:
    return _Progress(
        total=int(saved["total"]),
        step=int(saved["step"]),
        pass_index=int(saved["pass"]),
        batch=int(saved["batch"]),
        images=int(saved["images"]),
        seconds=float(saved["seconds"]),
        losses=[list(map(float, row)) for row in saved["losses"]],
        resumed_at=int(saved["step"]),
    )


def _depth(task: GroupTask) -> int:
    return max(m.slot for m in task.members) + 1


def _train(
    task: GroupTask,
    teacher: nn.Module,
    model: _Students,
    optimizer: torch.optim.Optimizer,
    prog: _Progress,
    saved: dict[str, Any] | None,
    bs: int,
) -> None:
    """Run the remaining steps through :func:`~nas.training.loop.fit`, checkpointing every
    ``checkpoint_every`` steps or ``checkpoint_minutes``, and once more at the end."""
    if prog.step >= prog.total:
        return
    cfg, dev, depth = task.config, task.device, _depth(task)
    source = SeededPasses(
        task.data.train_batches(
            bs, limit=cfg.train_samples, limit_seed=cfg.seed, workers=task.data_workers
        ),
        cfg.seed,
        prog.pass_index,
        prog.batch,
    )
    pending: list[torch.Tensor] = []
    schedulers: list[Any] = []
    t_run, last_save = time.perf_counter(), time.monotonic()
    start = prog.step

    def schedule(opt: torch.optim.Optimizer, _remaining: int) -> Any:
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=prog.total)
        if saved is not None:
            sched.load_state_dict(saved["scheduler"])
        schedulers.append(sched)
        return sched

    def loss_fn(xb: torch.Tensor, _yb: Any) -> torch.Tensor:
        with torch.no_grad():
            feats = teacher_features(teacher, xb, depth)
        losses = torch.stack(
            [F.mse_loss(pair(feats[k]), feats[k + 1]) for pair, k in zip(model.pairs, model.slots)]
        )
        pending.append(losses.detach())
        prog.images += len(xb)
        return losses.sum()

    def on_step(state: FitState) -> None:
        nonlocal last_save
        prog.losses.append(pending.pop().float().cpu().tolist())
        prog.step = start + state.step
        prog.pass_index, prog.batch = source.position
        due = prog.step % cfg.checkpoint_every == 0
        due = due or time.monotonic() - last_save >= 60 * cfg.checkpoint_minutes
        if due or prog.step == prog.total:
            t_now = time.perf_counter()
            _save(task, model, optimizer, schedulers[0], prog, prog.seconds + t_now - t_run)
            last_save = time.monotonic()

    fit(
        model,
        loss_fn,
        source,
        optimizer=optimizer,
        schedule=schedule,
        total=prog.total - start,
        generator=torch.Generator(),
        device=dev,
        progress=task.progress,
        on_step=on_step,
    )


def _save(
    task: GroupTask,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    prog: _Progress,
    seconds: float,
) -> None:
    save_group_state(
        task,
        {
            "step": prog.step,
            "total": prog.total,
            "pass": prog.pass_index,
            "batch": prog.batch,
            "images": prog.images,
            "losses": prog.losses,
            "seconds": seconds,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
        },
    )


def _moments(acc: dict[int, torch.Tensor], k: int, f: torch.Tensor) -> None:
    """Add the count, sum and sum of squares of ``f``'s values (float64) to ``acc[k]``."""
    v = f.detach().double()
    count = torch.full((), float(v.numel()), dtype=torch.float64, device=v.device)
    row = torch.stack([count, v.sum(), v.pow(2).sum()])
    acc[k] = acc[k] + row if k in acc else row


def _variances(acc: dict[int, torch.Tensor]) -> dict[int, float]:
    out = {}
    for k, row in acc.items():
        cnt, s1, s2 = (float(x) for x in row.cpu())
        out[k] = s2 / cnt - (s1 / cnt) ** 2
    return out


def _calibrate(task: GroupTask, teacher: nn.Module, model: _Students, bs: int) -> dict[int, float]:
    """One pass over the calibration images: the variance of the teacher's slot outputs on
    the first ``norm_samples`` (returned), and the students' BatchNorm statistics on the
    teacher's features of the first ``bn_calib_samples``."""
    cfg, dev, depth = task.config, task.device, _depth(task)
    outputs = sorted({m.slot + 1 for m in task.members})
    n = max(cfg.norm_samples, cfg.bn_calib_samples)
    acc: dict[int, torch.Tensor] = {}

    def features() -> Iterator[list[torch.Tensor]]:
        seen = 0
        for xb in task.data.calib_batches(n, bs, workers=task.data_workers):
            xb = dev.put(xb)
            with torch.no_grad(), dev.autocast():
                feats = teacher_features(teacher, xb, depth)
            m = max(0, min(len(xb), cfg.norm_samples - seen))
            for k in outputs:
                if m:
                    _moments(acc, k, feats[k][:m])
            m = max(0, min(len(xb), cfg.bn_calib_samples - seen))
            seen += len(xb)
            if m >= 2:
                yield [f[:m] for f in feats]

    if cfg.bn_calib_samples >= 2:
        recalibrate_bn(model, features(), dev)
    else:
        for _ in features():
            pass
    return _variances(acc)


@torch.no_grad()
def _held_out(
    task: GroupTask, teacher: nn.Module, model: _Students, bs: int
) -> tuple[list[float], dict[int, float]]:
    """Every option's mean squared error (eval mode) on the validation images, and the
    variance of the teacher's output of each slot there."""
    cfg, dev, depth = task.config, task.device, _depth(task)
    model.eval()
    outputs = sorted({m.slot + 1 for m in task.members})
    acc: dict[int, torch.Tensor] = {}
    sq = [torch.zeros((), dtype=torch.float64, device=dev.torch_device()) for _ in model.pairs]
    count = [0] * len(sq)
    batches = task.data.val_batches(
        bs, limit=cfg.val_samples, limit_seed=cfg.seed + 1, workers=task.data_workers
    )
    for xb, _ in batches:
        xb = dev.put(xb)
        with dev.autocast():
            feats = teacher_features(teacher, xb, depth)
            outs = [pair(feats[k]) for pair, k in zip(model.pairs, model.slots)]
        for k in outputs:
            _moments(acc, k, feats[k])
        for i, (out, k) in enumerate(zip(outs, model.slots)):
            diff = out.double() - feats[k + 1].double()
            sq[i] += diff.pow(2).sum()
            count[i] += diff.numel()
    return [float(s) / max(c, 1) for s, c in zip(sq, count)], _variances(acc)


def _entry(
    task: GroupTask,
    m: Member,
    seed: int,
    pair: nn.Module,
    prog: _Progress,
    i: int,
    mse: float,
    var_train: dict[int, float],
    var_val: dict[int, float],
    seconds: float,
) -> BkdEntry:
    """Save option ``i``'s weights and make its library entry; ``seconds``: its share of the
    group's time."""
    student, adapter = pair[0], pair[1]
    save_student(m.weights_file, task.space, m.slot, m.option, m.in_chs, student, adapter)
    norm = max(var_train[m.slot + 1], 1e-12)
    first, last = first_last_tenth([row[i] / norm for row in prog.losses])
    return BkdEntry(
        slot=m.slot,
        option=m.option,
        nmse=mse / max(var_val[m.slot + 1], 1e-12),
        mse=mse,
        train_loss_first=first,
        train_loss_last=last,
        steps=prog.total,
        seconds=round(seconds / len(task.members), 3),
        weights=m.weights_rel,
        extra={
            "seed": seed,
            "adapter": not isinstance(adapter, nn.Identity),
            "params": sum(p.numel() for p in student.parameters()),
            "threads": torch.get_num_threads(),
            "design": DESIGN,
            "group": task.gid,
            "group_size": len(task.members),
            "images": prog.images,
            "device": task.device.describe(),
        },
    )
