"""The one training loop (:func:`fit`) and the helpers around it.

Mothernet training, BKD student training and finetuning all run :func:`fit`; they differ only
in what they pass:

* the **batches**: a :class:`~nas.data.batches.BatchSource`, passes of ``(inputs, targets)``
  (:meth:`TrainingData.train_batches <nas.data.batches.TrainingData.train_batches>`, or
  :class:`~nas.data.batches.TensorBatches` over tensors with a batch order,
  :class:`EpochShuffle` or :class:`ContinuingShuffle`, and an augmentation such as
  :func:`random_hflip`);
* the **device** and precision (:class:`~nas.training.device.TrainDevice`: the model and each
  batch are moved there, the loss runs under its autocast);
* the **loss** (``loss_fn(inputs, targets) -> loss``: it runs the model);
* the **optimizer** and the **learning-rate schedule** (:func:`cosine_schedule`,
  :func:`one_cycle_schedule`);
* **progress** (a progress-bar label) and **callbacks** after every step and every epoch.

Every random draw of the loop (permutations, augmentation) comes from one
``torch.Generator`` (on the CPU), in a fixed order, so a run is reproducible bit for bit for a
seed and a thread count. BatchNorm re-estimation (:func:`recalibrate_bn`) and batched inference
(:func:`predict`) live here too.

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from nas.data.batches import (
    BatchOrder,
    BatchSource,
    ContinuingShuffle,
    EpochShuffle,
    TensorBatches,
    random_hflip,
)
from nas.training.device import CPU, TrainDevice

__all__ = [
    "BatchOrder",
    "BatchSource",
    "ContinuingShuffle",
    "EpochShuffle",
    "FitState",
    "TensorBatches",
    "fit",
    "random_hflip",
]

LossFn = Callable[[Any, Any], torch.Tensor]
Schedule = Callable[[torch.optim.Optimizer, int], Any]  # (optimizer, total steps) -> scheduler


@dataclass
class FitState:
    """Where a :func:`fit` run is: passed to the callbacks, returned at the end."""

    total: int  # steps to run
    step: int = 0  # steps done
    epoch: int = 0  # passes of the batch order finished (or cut short at the last step)
    losses: list[float] = field(default_factory=list)  # one recorded loss per step


def total_steps(epochs: float, n: int, batch_size: int) -> int:
    """Steps of ``epochs`` passes over ``n`` examples in batches of ``batch_size`` (at least
    one; ``epochs`` may be fractional)."""
    per_epoch = max(1, math.ceil(n / batch_size))
    return max(1, round(epochs * per_epoch))


def cosine_schedule(optimizer: torch.optim.Optimizer, total: int) -> Any:
    """Cosine decay of the learning rate over all ``total`` steps."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)


def one_cycle_schedule(max_lr: float, pct_start: float) -> Schedule:
    """A one-cycle schedule (warm-up over ``pct_start`` of the steps to ``max_lr``, then
    cosine annealing)."""

    def make(optimizer: torch.optim.Optimizer, total: int) -> Any:
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=max_lr, total_steps=total, pct_start=pct_start
        )

    return make


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    source: BatchSource,
    *,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    total: int,
    generator: torch.Generator,
    device: TrainDevice = CPU,
    loss_norm: float = 1.0,
    progress: str | None = None,
    on_step: Callable[[FitState], None] | None = None,
    on_epoch: Callable[[FitState], None] | None = None,
) -> FitState:
    """Train ``model`` for ``total`` steps of ``optimizer`` on the batches of ``source``.

    ``model`` is moved to ``device`` in channels-last layout (about 2x faster depthwise
    convolutions on CPU) and put in train mode at the start of every pass of ``source``. Each
    step: the next batch (drawing from ``generator``), moved to ``device``, ``loss_fn`` under
    the device's autocast, backward, optimizer step, scheduler step; the recorded loss is
    ``loss.item() / loss_norm``. Build ``optimizer`` after moving the model (or on CPU: it
    does not move). ``progress`` (a label) shows a progress bar (``DONNA_NO_PROGRESS=1``
    silences it); ``on_step`` runs after every step and ``on_epoch`` after every pass (also
    the last, cut short). The model's weights change in place; returns the final state.
    """
    from nas.core.progress import progress_bar

    scheduler = schedule(optimizer, total)
    state = FitState(total)
    bar = progress_bar(total, progress, unit="step") if progress is not None else None
    model.to(device.torch_device(), memory_format=torch.channels_last)
    passes = source.passes(generator)
    try:
        while state.step < total:
            batches = next(passes, None)  # draws the pass's permutation
            if batches is None:
                break
            model.train()
            while state.step < total:
                batch = next(batches, None)
                if batch is None:
                    break
                xb, yb = device.put(batch)
                with device.autocast():
                    loss = loss_fn(xb, yb)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                state.losses.append(loss.item() / loss_norm)
                state.step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{state.losses[-1]:.4f}")
                if on_step is not None:
                    on_step(state)
            state.epoch += 1
            if on_epoch is not None:
                on_epoch(state)
    finally:
        if bar is not None:
            bar.close()
    return state


def mean(xs: Sequence[float]) -> float:
    """The plain (left-to-right) mean; NaN for no values."""
    return float(sum(xs) / len(xs)) if xs else float("nan")


def first_last_tenth(
    losses: Sequence[float], mean_fn: Callable[[Sequence[float]], float] = mean
) -> tuple[float, float]:
    """Mean loss over the first and over the last tenth of the steps (at least one step)."""
    tenth = max(1, len(losses) // 10)
    return mean_fn(losses[:tenth]), mean_fn(losses[-tenth:])


# ---- BatchNorm and inference -----------------------------------------------------------


@torch.no_grad()
def recalibrate_bn(
    module: nn.Module, batches: Iterable[torch.Tensor], device: TrainDevice = CPU
) -> None:
    """Re-estimate every BatchNorm's running statistics as the plain average over
    ``batches`` (forward passes in train mode, no gradients). Short trainings leave the
    exponential running averages far from the true statistics (the initial variance of 1
    decays by only 0.9 per step); this makes eval-mode outputs match the trained weights."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    was = module.training
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    try:
        for xb in batches:
            if len(xb) >= 2:
                with device.autocast():
                    module(device.put(xb))
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        module.train(was)


def as_tensor(a: Any) -> torch.Tensor:
    """``a`` itself when it is a tensor, else ``torch.as_tensor(a)``."""
    return a if isinstance(a, torch.Tensor) else torch.as_tensor(a)


@torch.no_grad()
def predict(net: nn.Module, x: Any, batch_size: int = 256) -> torch.Tensor:
    """``net(x)`` in eval mode, in batches."""
    was = net.training
    net.eval()
    x = as_tensor(x).float()
    out = torch.cat([net(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    net.train(was)
    return out


@torch.no_grad()
def evaluate_metric(
    net: nn.Module,
    task: str,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    device: TrainDevice = CPU,
) -> float:
    """The task's validation metric of ``net`` (eval mode) over ``batches`` of ``(inputs,
    targets)``: top-1 accuracy for classification, else the mean PSNR in dB of the outputs
    clamped to [0, 1]. Per-example values are gathered (one number per example, on the CPU)
    and averaged once, so any batch size gives the same figure."""
    from nas.data.metrics import psnr_values

    was = net.training
    net.eval()
    values = []
    try:
        for xb, yb in batches:
            xb, yb = device.put((xb, yb))
            with device.autocast():
                out = net(xb)
            out = out.float()
            if task == "classification":
                values.append((out.argmax(dim=1) == yb).double().cpu())
            else:
                values.append(psnr_values(out.clamp(0.0, 1.0), yb.float()).cpu())
    finally:
        net.train(was)
    if not values:
        from nas.core.errors import DataError

        raise DataError("no validation examples to evaluate on")
    return float(torch.cat(values).mean())
