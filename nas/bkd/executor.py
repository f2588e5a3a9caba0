"""Executors: where independent, picklable tasks run.

An :class:`Executor` takes a module-level function and many picklable tasks and yields the
results as they finish (in any order). BKD uses it to train the options of a search space;
the caller (not the executor) saves each result as it arrives, so an executor never needs
to know about files or resuming.

This is the seam for a distributed engine: anything with the same two methods works, e.g. a
Ray or Dask wrapper that ships ``(fn, task)`` to remote workers that can read the task's
paths (BKD tasks carry file paths and frozen specs, never modules or tensors).

* :class:`InlineExecutor` runs tasks one after another in this process;
* :class:`ProcessExecutor` runs them in ``workers`` spawned processes, each limited to
  ``threads`` torch threads; the workers end when the parent dies, by any signal
  (:func:`nas.core.processes.die_with_parent`).

Nothing here imports torch at module level.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Any, Protocol, TypeVar, runtime_checkable

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class Executor(Protocol):
    """Runs ``fn(task)`` for every task and yields ``(task, result)`` as each finishes.

    ``fn`` must be a module-level function and the tasks picklable. An exception in one task
    is raised from the iterator (finished results already yielded stay valid); closing the
    iterator early (``break``, an exception in the caller) cancels the tasks not yet started.
    """

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]: ...

    @property
    def workers(self) -> int: ...


def set_torch_threads(threads: int) -> None:
    """Limit this process's torch intra-op threads (worker initialiser)."""
    import torch

    torch.set_num_threads(threads)


def _init_worker(threads: int) -> None:
    """A worker's first act: end with the parent (any signal, kill -9 included), then limit
    its torch threads."""
    from nas.core.processes import die_with_parent

    die_with_parent()
    set_torch_threads(threads)


class InlineExecutor:
    """Runs every task in this process, in order."""

    @property
    def workers(self) -> int:
        return 1

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        for task in tasks:
            yield task, fn(task)


class ProcessExecutor:
    """Runs tasks in ``workers`` fresh (spawned) processes with ``threads`` torch threads
    each. At most ``2 * workers`` tasks are queued at once, so a long task list is not
    pickled up front."""

    def __init__(self, workers: int, threads: int = 1) -> None:
        if workers < 1:
            raise ValueError(f"workers must be >= 1, got {workers}")
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self._workers = workers
        self.threads = threads

    @property
    def workers(self) -> int:
        return self._workers

    def map_unordered(self, fn: Callable[[T], R], tasks: Iterable[T]) -> Iterator[tuple[T, R]]:
        ctx = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(
            max_workers=self._workers,
            mp_context=ctx,
            initializer=_init_worker,
            initargs=(self.threads,),
        )
        pending: dict[Future[Any], T] = {}
        it = iter(tasks)
        exhausted = False
        try:
            while True:
                while not exhausted and len(pending) < 2 * self._workers:
                    try:
                        task = next(it)
                    except StopIteration:
                        exhausted = True
                        break
                    pending[pool.submit(fn, task)] = task
                if not pending:
                    break
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    task = pending.pop(fut)
                    yield task, fut.result()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
