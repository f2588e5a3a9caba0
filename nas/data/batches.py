"""How training reads data: batch orders, batch sources, and the :class:`TrainingData` protocol.

Every trainer (mothernet, BKD, finetuning) reads its data through one interface, whatever
holds it:

* :class:`TrainingData` is what a task's data offers: sizes, a description, a
  :class:`BatchSource` over the training split, the validation split in batches and a fixed
  set of training images for BatchNorm re-estimation. :class:`~nas.data.tasks.TaskData`
  (small sets held as tensors) and :class:`~nas.data.imagefolder.ImageFolderData` (an
  ImageNet-layout folder decoded lazily by DataLoader workers) both implement it.
* A :class:`BatchSource` yields *passes* (epochs), each an iterator of ``(inputs, targets)``
  batches on the CPU; every random draw it makes (order, augmentation) comes from the
  ``torch.Generator`` it is given, so a run is reproducible for a seed.
* :class:`TensorBatches` is the source over tensors in memory: a :class:`BatchOrder`
  (:class:`EpochShuffle`, :class:`ContinuingShuffle`) of indices, the rows fetched, then an
  optional augmentation drawn from the same generator.

torch is imported inside the functions: importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

# DataLoader processes that decode streamed images unless told otherwise (data held in memory
# needs none).
DEFAULT_DATA_WORKERS = 2

if TYPE_CHECKING:
    import torch

    Indices = torch.Tensor | np.ndarray
    Batch = tuple[torch.Tensor, torch.Tensor]
    Augment = Callable[[Any, Any, torch.Generator], tuple[Any, Any]]


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
        import torch

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
        import torch

        order = torch.randperm(n, generator=generator)
        pos = 0
        while True:
            if pos + self.batch_size > n and pos > 0:
                order = torch.randperm(n, generator=generator)
                pos = 0
            yield order[pos : pos + self.batch_size]
            pos += self.batch_size


class BatchSource(Protocol):
    """Training batches, pass after pass (what :func:`nas.training.loop.fit` consumes)."""

    n: int  # examples in one pass

    def passes(self, generator: torch.Generator, skip: int = 0) -> Iterator[Iterator[Batch]]:
        """An iterator of passes, each an iterator of ``(inputs, targets)`` CPU batches; random
        draws come from ``generator``, lazily, in a fixed order. ``skip``: the first pass
        starts after its first ``skip`` batches, exactly as if they had been consumed
        (resuming mid-pass; a streamed source does not even decode them)."""
        ...


@dataclass(frozen=True)
class TensorBatches:
    """Batches of examples held in memory: ``fetch(indices) -> (inputs, targets)`` over
    ``n`` examples in the order ``order`` gives, then ``augment(inputs, targets, generator)``
    (e.g. :func:`random_hflip`). The draws happen in this order: the pass's permutation when
    the pass starts, then per batch the augmentation's."""

    fetch: Callable[[Indices], Batch]
    n: int
    order: BatchOrder
    augment: Augment | None = None

    def passes(self, generator: torch.Generator, skip: int = 0) -> Iterator[Iterator[Batch]]:
        for batches in self.order.epochs(self.n, generator):
            yield self._pass(batches, generator, skip)
            skip = 0

    def _pass(
        self, batches: Iterator[Indices], generator: torch.Generator, skip: int
    ) -> Iterator[Batch]:
        for i, idx in enumerate(batches):
            if i < skip and self.augment is None:
                continue  # nothing drawn per batch: skipping needs no fetch
            xb, yb = self.fetch(idx)
            if self.augment is not None:
                xb, yb = self.augment(xb, yb, generator)  # drawn even when skipped
            if i >= skip:
                yield xb, yb


def random_hflip(flip_targets: bool = False) -> Augment:
    """Flip each image of a batch horizontally with probability 1/2 (one draw per image from
    the loop's generator); with ``flip_targets`` the target images flip with their inputs."""
    import torch

    def augment(xb: Any, yb: Any, generator: torch.Generator) -> tuple[Any, Any]:
        flip = torch.rand(len(xb), generator=generator) < 0.5
        xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
        if flip_targets:
            yb = torch.where(flip[:, None, None, None], yb.flip(3), yb)
        return xb, yb

    return augment


def subset_indices(n: int, limit: int | None, seed: int) -> np.ndarray:
    """A sorted, seeded subset of ``limit`` of ``range(n)`` (all of it when ``limit`` is
    ``None`` or at least ``n``)."""
    if limit is None or limit >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).permutation(n)[:limit])


class TrainingData(Protocol):
    """A task's data as the trainers read it (see the module docstring)."""

    task: str
    num_classes: int | None
    seed: int

    @property
    def n_train(self) -> int: ...

    @property
    def n_val(self) -> int: ...

    @property
    def resolution(self) -> int: ...

    def describe(self) -> dict[str, Any]:
        """JSON-able provenance (recorded in checkpoints, BKD libraries and reports)."""
        ...

    def train_batches(
        self,
        batch_size: int,
        *,
        continuing: bool = False,
        augment: bool = False,
        limit: int | None = None,
        limit_seed: int = 0,
        workers: int = 0,
    ) -> BatchSource:
        """The training split in batches: a fresh shuffle per pass (``continuing``: one
        endless stream), random horizontal flips with ``augment`` (random resized crops too
        for streamed images), only a seeded subset of ``limit`` examples
        (:func:`subset_indices` with ``limit_seed``) when given; ``workers`` DataLoader
        processes decode streamed images (ignored for tensors)."""
        ...

    def val_batches(
        self, batch_size: int, *, limit: int | None = None, limit_seed: int = 0, workers: int = 0
    ) -> Iterator[Batch]:
        """The validation split (or a seeded subset of ``limit``) once, in a fixed order,
        without augmentation."""
        ...

    def calib_batches(self, n: int, batch_size: int, *, workers: int = 0) -> Iterator[Any]:
        """The inputs of the first ``n`` training examples, unaugmented, in batches (BatchNorm
        re-estimation)."""
        ...
