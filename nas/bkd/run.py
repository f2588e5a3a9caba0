"""A whole BKD run: every option of a space against one mothernet, resumable.

1. **Teacher features, once** (:mod:`nas.bkd.features`).
2. **One student per option** (:mod:`nas.bkd.student`), through an
   :class:`~nas.bkd.executor.Executor` (in process, or ``workers`` spawned processes).
3. **Library.** Each result (nmse, raw mse, first/last train-loss means, steps, seconds) is
   added to the :class:`~nas.bkd.library.BkdLibrary` JSON, saved atomically as soon as the
   option finishes, with the student's weights in ``<library stem>.weights/``. Rerunning
   skips finished options (resume); a library from another mothernet, data set or setting is
   refused (:func:`check_resume`).

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nas.bkd.config import BkdConfig
from nas.bkd.executor import Executor, InlineExecutor, ProcessExecutor
from nas.bkd.features import TeacherFeatures, compute_teacher_features, feature_key, jsonable
from nas.bkd.library import BkdEntry, BkdLibrary, LibraryError
from nas.bkd.student import BkdTask, train_option, weights_name
from nas.core.errors import BkdError
from nas.core.files import file_sha256
from nas.core.locks import writer_lock
from nas.core.progress import progress_bar
from nas.core.spaces import SearchSpace, SlotOption
from nas.training.checkpoint import load_checkpoint

if TYPE_CHECKING:
    from nas.data import TaskData

RESUME_KEYS = ("mothernet_sha256", "task", "data", "bkd")


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def _worker_death_is_bkd_error() -> Iterator[None]:
    from concurrent.futures.process import BrokenProcessPool

    try:
        yield
    except BrokenProcessPool as exc:
        raise BkdError(
            f"a BKD worker process died ({exc}); every finished option is saved: run again "
            "to resume, with fewer --workers if memory ran out"
        ) from None


def _merge_options(old: SearchSpace, new: SearchSpace) -> SearchSpace:
    """``old`` with each slot's options extended by those of ``new`` it lacks."""
    merged = []
    for a, b in zip(old.options, new.options):
        merged.append((*a, *(o for o in b if o not in a)))
    return old.with_options(merged)


def check_resume(library: BkdLibrary, provenance: Mapping[str, Any]) -> None:
    """Raise :class:`~nas.bkd.library.LibraryError` unless ``library`` was made with the same
    mothernet, task, data and result-changing settings."""
    old = jsonable({k: library.provenance.get(k) for k in RESUME_KEYS})
    new = jsonable({k: provenance.get(k) for k in RESUME_KEYS})
    if old == new:
        return
    details = []
    for k in (k for k in RESUME_KEYS if old[k] != new[k]):
        if isinstance(old[k], dict) and isinstance(new[k], dict):
            a, b = old[k], new[k]
            sub = sorted(j for j in set(a) | set(b) if a.get(j) != b.get(j))
            changes = ", ".join(f"{j}: {a.get(j)!r} -> {b.get(j)!r}" for j in sub)
            details.append(f"{k} ({changes})")
        elif k == "mothernet_sha256":
            details.append(f"mothernet ({str(old[k])[:12]} -> {str(new[k])[:12]})")
        else:
            details.append(f"{k} ({old[k]!r} -> {new[k]!r})")
    raise LibraryError(
        f"cannot resume BKD library {library.path}: it was made with another "
        f"{'; '.join(details)}; use a new --out, or the mothernet, data and settings it "
        "was made with"
    )


def run_bkd(
    mothernet_path: Path,
    space: SearchSpace,
    data: TaskData,
    out: Path,
    config: BkdConfig | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    on_option: Callable[[BkdEntry, int, int], None] | None = None,
    limit: int | None = None,
) -> BkdLibrary:
    """Train every option of ``space`` (that ``out`` lacks) against the mothernet and save
    the library at ``out`` after each one. Returns the library.

    ``executor`` defaults to :class:`~nas.bkd.executor.InlineExecutor` for ``config.workers
    == 1``, else a :class:`~nas.bkd.executor.ProcessExecutor`. ``on_option(entry, done,
    total)`` is called after each saved option (progress; raising from it stops the run, and
    rerunning resumes). ``limit`` trains at most that many options in this run. One writer
    per library: another run on ``out`` is refused (:class:`nas.core.locks.LockedError`).
    """
    config = config or BkdConfig()
    mothernet_path, out = Path(mothernet_path), Path(out)
    if out.suffix != ".json":
        raise BkdError(f"the BKD library must be a .json file, got {out}")
    if limit is not None and limit < 0:
        raise BkdError(f"limit must be >= 0, got {limit}")
    with writer_lock(out, "BKD library"):  # one writer per library; readers need none
        return _run_bkd_locked(
            mothernet_path, space, data, out, config, executor, progress, on_option, limit
        )


def _run_bkd_locked(
    mothernet_path: Path,
    space: SearchSpace,
    data: TaskData,
    out: Path,
    config: BkdConfig,
    executor: Executor | None,
    progress: bool,
    on_option: Callable[[BkdEntry, int, int], None] | None,
    limit: int | None,
) -> BkdLibrary:
    net, mcfg, _ = load_checkpoint(mothernet_path, space)
    _check_data(space, data)
    sha = file_sha256(mothernet_path)
    provenance: dict[str, Any] = {
        "mothernet_sha256": sha,
        "mothernet": str(mothernet_path),
        "teacher": [asdict(c) for c in mcfg.choices],
        "task": space.task,
        "data": jsonable(data.describe()),
        "bkd": config.result_settings(),
    }
    library = _open_library(out, space, provenance)
    todo = library.missing(space)
    if limit is not None:
        todo = todo[:limit]
    if not todo:
        return library
    features = compute_teacher_features(
        net,
        data,
        out.with_name(out.stem + ".features"),
        config,
        feature_key(sha, provenance["data"], config),
        progress=progress,
    )
    library.provenance["teacher_features"] = {
        "seconds": round(features.seconds, 3),
        "n_train": features.n_train,
        "n_val": features.n_val,
        "var_val": list(features.var_val),
    }
    library.save()
    chs = mcfg.slot_in_chs()
    tasks = _tasks(library, space, chs, features, config, todo)
    _train_all(
        library, tasks, config, executor, f"BKD {space.name}" if progress else None, on_option
    )
    return library


def _check_data(space: SearchSpace, data: TaskData) -> None:
    if data.task != space.task:
        raise BkdError(
            f"space {space.name!r} is for {space.task} but the data is for {data.task}; load "
            "the data of the space's task"
        )
    if len(data.train_x) < 2 or len(data.val_x) < 1:
        raise BkdError(
            "BKD needs at least 2 training and 1 validation images; got "
            f"{len(data.train_x)} and {len(data.val_x)}"
        )


def _open_library(out: Path, space: SearchSpace, provenance: dict[str, Any]) -> BkdLibrary:
    """The library at ``out`` to resume (refused when made otherwise; its space grows by the
    options of ``space`` it lacks), or a new, saved one."""
    if out.exists():
        library = BkdLibrary.load(out)
        check_resume(library, provenance)
        library.check_space(space)
        library.space = _merge_options(library.space, space)
        return library
    library = BkdLibrary(space, provenance, path=out)
    library.save()
    return library


def _tasks(
    library: BkdLibrary,
    space: SearchSpace,
    chs: Sequence[int],
    features: TeacherFeatures,
    config: BkdConfig,
    todo: Sequence[tuple[int, SlotOption]],
) -> list[BkdTask]:
    """One task per option to train; ``chs``: the teacher's slot input channels (and last
    the last slot's output channels)."""
    wdir = library.weights_dir()
    return [
        BkdTask(
            slot=i,
            option=o,
            space=space,
            in_chs=chs[i],
            out_chs=chs[i + 1],
            features=features,
            config=config,
            weights_file=(wdir / weights_name(i, o)).resolve(),
            weights_rel=f"{wdir.name}/{weights_name(i, o)}",
        )
        for i, o in todo
    ]


def _train_all(
    library: BkdLibrary,
    tasks: list[BkdTask],
    config: BkdConfig,
    executor: Executor | None,
    progress: str | None,
    on_option: Callable[[BkdEntry, int, int], None] | None,
) -> None:
    """Run ``tasks`` through ``executor`` (default: from ``config.workers``), adding and
    saving each entry as it arrives; ``progress``: the progress bar's label (``None``: no
    bar)."""
    threads = config.threads_per_worker()
    if executor is None:
        executor = (
            InlineExecutor() if config.workers == 1 else ProcessExecutor(config.workers, threads)
        )
    bar = progress_bar(len(tasks), progress, unit="option") if progress is not None else None
    inline = isinstance(executor, InlineExecutor)
    ctx = _torch_threads(threads) if inline else contextlib.nullcontext()
    done = 0
    try:
        with ctx, _worker_death_is_bkd_error():
            for _task, entry in executor.map_unordered(train_option, tasks):
                library.add(entry)
                library.save()
                done += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(slot=entry.slot, nmse=f"{entry.nmse:.3f}")
                if on_option is not None:
                    on_option(entry, done, len(tasks))
    finally:
        if bar is not None:
            bar.close()


def library_summary(library: BkdLibrary) -> list[dict[str, Any]]:
    """Per slot: options done, best and worst option by nmse, mean seconds per option."""
    rows = []
    for i in range(library.space.n_slots):
        es = sorted((e for e in library.entries() if e.slot == i), key=lambda e: e.nmse)
        if not es:
            continue
        rows.append(
            {
                "slot": i,
                "options": len(es),
                "best": (es[0].option.label(), es[0].nmse),
                "worst": (es[-1].option.label(), es[-1].nmse),
                "mean_seconds": sum(e.seconds for e in es) / len(es),
            }
        )
    return rows
