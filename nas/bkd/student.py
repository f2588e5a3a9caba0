"""One BKD student: train one option of one slot to imitate the teacher's slot, and score it.

The student is the slot's blocks for the option (``space.slot_blocks(slot, option,
teacher_in_chs)``), initialised with a seed derived from ``(config.seed, slot, option)``
(:func:`option_seed`) so a result never depends on the worker count or the order. It trains
with the one training loop (:func:`nas.training.loop.fit`) for ``config.epochs`` passes over
the teacher's features (a fresh shuffle per pass, sorted indices within a batch), AdamW and a
cosine learning rate, to reproduce the teacher slot's output (MSE). When the option's width
gives other output channels than the teacher's, a 1x1 conv *adapter* maps the student's output
to the teacher's channels for the loss only; it is saved beside the student but the finetuned
network does not use it.

Score: after training, BatchNorm statistics are re-estimated on training features and the
held-out MSE on the validation features is divided by the variance of the teacher's
validation output: ``nmse`` (0 = perfect, 1 = no better than the mean).

A :class:`BkdTask` is picklable (specs, numbers, paths) and :func:`train_option` a module-level
function: what an :class:`~nas.bkd.executor.Executor` ships to a worker.

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from nas.bkd.config import BkdConfig
from nas.bkd.features import TeacherFeatures
from nas.bkd.library import BkdEntry, option_key
from nas.core.files import atomic_write
from nas.core.spaces import SearchSpace, SlotOption
from nas.core.specs import spec_key
from nas.training.loop import (
    EpochShuffle,
    FitState,
    cosine_schedule,
    first_last_tenth,
    fit,
    recalibrate_bn,
    total_steps,
)
from nas.training.networks import build_slot


def option_seed(seed: int, slot: int, option: SlotOption) -> int:
    """The student's seed: a function of the run seed, the slot and the option only."""
    h = hashlib.sha256(f"{seed}|{option_key(slot, option)}".encode()).hexdigest()
    return int(h[:8], 16)


def weights_name(slot: int, option: SlotOption) -> str:
    """The file name of one option's student weights in the library's weights folder."""
    h = hashlib.sha256(option_key(slot, option).encode()).hexdigest()[:12]
    return f"slot{slot}-{h}.pt"


@dataclass(frozen=True)
class BkdTask:
    """Everything a worker needs to train one option (picklable: specs, numbers, paths)."""

    slot: int
    option: SlotOption
    space: SearchSpace
    in_chs: int  # the teacher's input channels of the slot
    out_chs: int  # the teacher's output channels of the slot
    features: TeacherFeatures
    config: BkdConfig
    weights_file: Path
    weights_rel: str  # the weights path as recorded in the library (relative to it)


def _batch(mm: np.ndarray, idx: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(np.ascontiguousarray(mm[idx], dtype=np.float32))
    return x.contiguous(memory_format=torch.channels_last)  # ~2x faster convs on CPU


def _np_mean(xs: list[float]) -> float:
    return float(np.mean(xs))


def train_option(task: BkdTask) -> BkdEntry:
    """Train one option's student on the teacher features and score it (run by workers)."""
    cfg = task.config
    seed = option_seed(cfg.seed, task.slot, task.option)
    t0 = time.perf_counter()
    student, adapter = _build_student(task, seed)
    state = _train(task, student, adapter, seed)
    mse = _held_out_mse(task, student, adapter)
    _save_weights(task, student, adapter)
    first, last = first_last_tenth(state.losses, _np_mean)
    return BkdEntry(
        slot=task.slot,
        option=task.option,
        nmse=mse / max(task.features.var_val[task.slot + 1], 1e-12),
        mse=mse,
        train_loss_first=first,
        train_loss_last=last,
        steps=state.step,
        seconds=round(time.perf_counter() - t0, 3),
        weights=task.weights_rel,
        extra={
            "seed": seed,
            "adapter": not isinstance(adapter, nn.Identity),
            "params": sum(p.numel() for p in student.parameters()),
            "threads": torch.get_num_threads(),
        },
    )


def _build_student(task: BkdTask, seed: int) -> tuple[nn.Sequential, nn.Module]:
    """The slot's blocks for the option and the adapter to the teacher's channels (an
    ``nn.Identity`` when the channels agree), initialised from ``seed`` (the global RNG is
    left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = build_slot(task.space, task.slot, task.option, task.in_chs)
        s_out = task.space.stage_chs(task.slot, task.option.width)
        adapter: nn.Module = (
            nn.Conv2d(s_out, task.out_chs, 1, bias=True) if s_out != task.out_chs else nn.Identity()
        )
    return student, adapter


def _train(task: BkdTask, student: nn.Module, adapter: nn.Module, seed: int) -> FitState:
    """Fit ``adapter(student(teacher input))`` to the teacher's output (MSE; the recorded
    losses are divided by the variance of the teacher's training output), then re-estimate
    the student's BatchNorm statistics on training features."""
    cfg, feats, k = task.config, task.features, task.slot
    x_tr, y_tr = feats.open(k, "train"), feats.open(k + 1, "train")
    n = feats.n_train
    bs = min(cfg.batch_size, n)
    model = nn.Sequential(student, adapter)
    params = [*student.parameters(), *adapter.parameters()]
    state = fit(
        model,
        lambda xb, yb: F.mse_loss(model(xb), yb),
        lambda idx: (_batch(x_tr, idx), _batch(y_tr, idx)),
        n,
        batch_order=EpochShuffle(bs, sort=True),
        optimizer=torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
        schedule=cosine_schedule,
        total=total_steps(cfg.epochs, n, bs),
        generator=torch.Generator().manual_seed(seed),
        loss_norm=max(feats.var_train[k + 1], 1e-12),
    )
    n_cal = min(cfg.bn_calib_samples, n)
    recalibrate_bn(
        student,
        (
            _batch(x_tr, np.arange(c, min(c + cfg.chunk_size, n_cal)))
            for c in range(0, n_cal, cfg.chunk_size)
        ),
    )
    return state


def _held_out_mse(task: BkdTask, student: nn.Module, adapter: nn.Module) -> float:
    """The mean squared error of the (eval-mode) student on the validation features."""
    feats, k, chunk = task.features, task.slot, task.config.chunk_size
    x_va, y_va = feats.open(k, "val"), feats.open(k + 1, "val")
    student.eval()
    adapter.eval()
    sq = 0.0
    count = 0
    with torch.no_grad():
        for c in range(0, feats.n_val, chunk):
            idx = np.arange(c, min(c + chunk, feats.n_val))
            diff = adapter(student(_batch(x_va, idx))) - _batch(y_va, idx)
            sq += float(diff.double().pow(2).sum())
            count += diff.numel()
    return sq / max(count, 1)


def _save_weights(task: BkdTask, student: nn.Module, adapter: nn.Module) -> None:
    """``{"blocks", "adapter", "specs", "slot", "in_chs"}`` to ``task.weights_file``,
    atomically."""
    blob = {
        "blocks": student.state_dict(),
        "adapter": adapter.state_dict(),
        "specs": [spec_key(b) for b in task.space.slot_blocks(task.slot, task.option, task.in_chs)],
        "slot": task.slot,
        "in_chs": task.in_chs,
    }
    task.weights_file.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(task.weights_file, lambda f: torch.save(blob, f))
