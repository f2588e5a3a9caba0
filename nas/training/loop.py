"""The one training loop (:func:`fit`) and the helpers around it.

Mothernet training, BKD student training and finetuning all run :func:`fit`; they differ only
in what they pass:

* the **batch order** (:class:`EpochShuffle`: a fresh permutation per epoch, batches of one
  skipped, optionally sorted indices; :class:`ContinuingShuffle`: one permutation consumed
  batch after batch, a fresh one when the next batch would run past its end);
* how a batch is **fetched** (``fetch(indices) -> (inputs, targets)``) and **augmented**
  (``augment(inputs, targets, generator)``, e.g. :func:`random_hflip`);
* the **loss** (``loss_fn(inputs, targets) -> loss``: it runs the model);
* the **optimizer** and the **learning-rate schedule** (:func:`cosine_schedule`,
  :func:`one_cycle_schedule`);
* **progress** (a progress-bar label) and **callbacks** after every step and every epoch.

Every random draw of the loop (permutations, augmentation) comes from one
``torch.Generator``, in a fixed order, so a run is reproducible bit for bit for a seed and a
thread count. BatchNorm re-estimation (:func:`recalibrate_bn`) and batched inference
(:func:`predict`) live here too.

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

Indices = torch.Tensor | np.ndarray
Fetch = Callable[[Indices], tuple[Any, Any]]
Augment = Callable[[Any, Any, torch.Generator], tuple[Any, Any]]
LossFn = Callable[[Any, Any], torch.Tensor]
Schedule = Callable[[torch.optim.Optimizer, int], Any]  # (optimizer, total steps) -> scheduler


@dataclass
class FitState:
    """Where a :func:`fit` run is: passed to the callbacks, returned at the end."""

    total: int  # steps to run
    step: int = 0  # steps done
    epoch: int = 0  # passes of the batch order finished (or cut short at the last step)
    losses: list[float] = field(default_factory=list)  # one recorded loss per step


class BatchOrder(Protocol):
    """Which examples each step trains on."""

    def epochs(self, n: int, generator: torch.Generator) -> Iterator[Iterator[Indices]]:
        """An iterator of passes, each an iterator of index batches into ``n`` examples.
        Random draws happen lazily, when a pass or a batch is requested."""
        ...


@dataclass(frozen=True)
class EpochShuffle:
    """A fresh ``torch.randperm(n)`` per pass, cut into ``batch_size`` slices; a slice of
    fewer than ``min_batch`` examples (a last batch of one: BatchNorm needs two) is skipped.
    ``sort``: the permutation as numpy and each batch's indices sorted (sequential reads of
    memory-mapped features)."""

    batch_size: int
    sort: bool = False
    min_batch: int = 2

    def epochs(self, n: int, generator: torch.Generator) -> Iterator[Iterator[Indices]]:
        while True:
            yield self._batches(n, torch.randperm(n, generator=generator))

    def _batches(self, n: int, perm: torch.Tensor) -> Iterator[Indices]:
        order: Indices = perm.numpy() if self.sort else perm
        for i in range(0, n, self.batch_size):
            idx = order[i : i + self.batch_size]
            if self.sort:
                idx = np.sort(idx)
            if len(idx) < self.min_batch:
                continue
            yield idx


@dataclass(frozen=True)
class ContinuingShuffle:
    """One endless pass: batches are consecutive ``batch_size`` slices of a permutation; a
    fresh permutation is drawn when the next slice would run past its end (so every batch
    but those of a data set smaller than ``batch_size`` is full)."""

    batch_size: int

    def epochs(self, n: int, generator: torch.Generator) -> Iterator[Iterator[Indices]]:
        yield self._stream(n, generator)

    def _stream(self, n: int, generator: torch.Generator) -> Iterator[Indices]:
        order = torch.randperm(n, generator=generator)
        pos = 0
        while True:
            if pos + self.batch_size > n and pos > 0:
                order = torch.randperm(n, generator=generator)
                pos = 0
            yield order[pos : pos + self.batch_size]
            pos += self.batch_size


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


def random_hflip(flip_targets: bool = False) -> Augment:
    """Flip each image of a batch horizontally with probability 1/2 (one draw per image from
    the loop's generator); with ``flip_targets`` the target images flip with their inputs."""

    def augment(xb: Any, yb: Any, generator: torch.Generator) -> tuple[Any, Any]:
        flip = torch.rand(len(xb), generator=generator) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        if flip_targets:
            yb = torch.where(flip[:, None, None, None], yb.flip(3), yb)
        return xb, yb

    return augment


def fit(
    model: nn.Module,
    loss_fn: LossFn,
    fetch: Fetch,
    n: int,
    *,
    batch_order: BatchOrder,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    total: int,
    generator: torch.Generator,
    augment: Augment | None = None,
    loss_norm: float = 1.0,
    progress: str | None = None,
    on_step: Callable[[FitState], None] | None = None,
    on_epoch: Callable[[FitState], None] | None = None,
) -> FitState:
    """Train ``model`` for ``total`` steps of ``optimizer`` over ``n`` examples.

    ``model`` is converted to channels-last (about 2x faster depthwise convolutions on CPU)
    and put in train mode at the start of every pass of ``batch_order``. Each step: the next
    batch of indices, ``fetch`` it, ``augment`` it (drawing from ``generator``), ``loss_fn``,
    backward, optimizer step, scheduler step; the recorded loss is ``loss.item() /
    loss_norm``. ``progress`` (a label) shows a progress bar (``DONNA_NO_PROGRESS=1``
    silences it); ``on_step`` runs after every step and ``on_epoch`` after every pass (also
    the last, cut short). The model's weights change in place; returns the final state.
    """
    from nas.core.progress import progress_bar

    scheduler = schedule(optimizer, total)
    state = FitState(total)
    bar = progress_bar(total, progress, unit="step") if progress is not None else None
    model.to(memory_format=torch.channels_last)
    passes = batch_order.epochs(n, generator)
    try:
        while state.step < total:
            batches = next(passes, None)  # draws the pass's permutation
            if batches is None:
                break
            model.train()
            while state.step < total:
                idx = next(batches, None)
                if idx is None:
                    break
                xb, yb = fetch(idx)
                if augment is not None:
                    xb, yb = augment(xb, yb, generator)
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
def recalibrate_bn(module: nn.Module, batches: Iterable[torch.Tensor]) -> None:
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
                module(xb)
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
