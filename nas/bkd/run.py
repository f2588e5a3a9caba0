"""A whole BKD run: every option of a space against one mothernet, resumable.

1. **Groups.** The options the library lacks are packed into groups that fit the memory
   budget (:mod:`nas.bkd.plan`, :mod:`nas.bkd.memory`); a group checkpointed by an earlier,
   interrupted run is resumed first, as it was.
2. **Shared teacher** (:mod:`nas.bkd.shared`): each group is one pass over the stream of
   training batches with one teacher forward per batch for the whole group, checkpointed
   every ``checkpoint_every`` steps (:mod:`nas.bkd.group`). Groups run through an
   :class:`~nas.bkd.executor.Executor` (in this process on a GPU or with one worker, else
   ``workers`` spawned processes, a group each).

**Library.** Each result (nmse, raw mse, first/last train-loss means, steps, seconds) is added
to the :class:`~nas.bkd.library.BkdLibrary` JSON, saved atomically as soon as its group's
results arrive, with the student's weights in ``<library stem>.weights/``. Rerunning skips
finished options and resumes checkpointed groups; a library from another mothernet, data
set or setting is refused (:func:`check_resume`).

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from nas.bkd.config import BkdConfig
from nas.bkd.executor import Executor, InlineExecutor, ProcessExecutor
from nas.bkd.group import remove_group_state
from nas.bkd.library import BkdEntry, BkdLibrary, LibraryError
from nas.bkd.plan import groups_folder, plan_groups
from nas.bkd.shared import GroupResult, train_group
from nas.core.errors import BkdError
from nas.core.files import file_sha256
from nas.core.locks import writer_lock
from nas.core.progress import progress_bar
from nas.core.spaces import SearchSpace
from nas.training.checkpoint import load_checkpoint
from nas.training.device import CPU, TrainDevice

if TYPE_CHECKING:
    from nas.data.batches import TrainingData
    from nas.training.mothernet import MothernetConfig

OnOption = Callable[[BkdEntry, int, int], None]

RESUME_KEYS = ("mothernet_sha256", "task", "data", "bkd")


def jsonable(x: Any) -> Any:
    """A JSON-like copy of ``x`` (what a JSON file holding it reads back)."""
    return json.loads(json.dumps(x, sort_keys=True, default=str))


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
    data: TrainingData,
    out: Path,
    config: BkdConfig | None = None,
    executor: Executor | None = None,
    progress: bool = True,
    on_option: OnOption | None = None,
    limit: int | None = None,
    *,
    device: TrainDevice = CPU,
    data_workers: int = 0,
) -> BkdLibrary:
    """Train every option of ``space`` (that ``out`` lacks) against the mothernet and save
    the library at ``out`` after each one. Returns the library.

    ``executor`` defaults to :class:`~nas.bkd.executor.InlineExecutor` for ``config.workers
    == 1`` or a GPU ``device``, else a :class:`~nas.bkd.executor.ProcessExecutor`; its tasks
    are groups of options (:class:`~nas.bkd.group.GroupTask`, run by
    :func:`~nas.bkd.shared.train_group`).
    ``on_option(entry, done, total)`` is called after each saved option (progress; raising
    from it stops the run, and rerunning resumes). ``limit`` trains at most that many options
    in this run (plus the rest of a checkpointed group it resumes). ``device``: where the
    students and the teacher train (:func:`~nas.training.device.resolve_train_device`);
    ``data_workers``: DataLoader processes for streamed data. One writer per library: another
    run on ``out`` is refused (:class:`nas.core.locks.LockedError`).
    """
    config = config or BkdConfig()
    mothernet_path, out = Path(mothernet_path), Path(out)
    if out.suffix != ".json":
        raise BkdError(f"the BKD library must be a .json file, got {out}")
    if limit is not None and limit < 0:
        raise BkdError(f"limit must be >= 0, got {limit}")
    if data_workers < 0:
        raise BkdError(f"data workers must be >= 0, got {data_workers}")
    with writer_lock(out, "BKD library"):  # one writer per library; readers need none
        _, mcfg, _ = load_checkpoint(mothernet_path, space)
        _check_data(space, data)
        provenance: dict[str, Any] = {
            "mothernet_sha256": file_sha256(mothernet_path),
            "mothernet": str(mothernet_path),
            "teacher": [asdict(c) for c in mcfg.choices],
            "task": space.task,
            "data": jsonable(data.describe()),
            "bkd": config.result_settings(),
        }
        library = _open_library(out, space, provenance)
        run = _Run(library, config, _executor(config, device, executor), progress, on_option)
        _run_groups(run, mothernet_path, mcfg, space, data, limit, device, data_workers)
        return library


class _Run:
    """One run: the library, the settings, the executor and the callbacks."""

    def __init__(
        self,
        library: BkdLibrary,
        config: BkdConfig,
        executor: Executor,
        progress: bool,
        on_option: OnOption | None,
    ) -> None:
        self.library = library
        self.config = config
        self.executor = executor
        self.progress = progress
        self.on_option = on_option
        self.inline = isinstance(executor, InlineExecutor)
        cores = os.cpu_count() or 1
        self.threads = config.threads or (cores if self.inline else config.threads_per_worker())

    def key(self) -> dict[str, Any]:
        """What a group checkpoint must have been made from."""
        return {k: self.library.provenance.get(k) for k in RESUME_KEYS}

    @contextlib.contextmanager
    def running(self, total: int, label: str) -> Iterator[Callable[[BkdEntry], None]]:
        """The executor's context (torch threads in process, worker deaths as
        :class:`BkdError`) and ``add(entry)``: save one entry, then progress and
        ``on_option``."""
        bar = progress_bar(total, label, unit="option") if self.progress else None
        ctx = _torch_threads(self.threads) if self.inline else contextlib.nullcontext()
        done = 0

        def add(entry: BkdEntry) -> None:
            nonlocal done
            self.library.add(entry)
            self.library.save()
            done += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(slot=entry.slot, nmse=f"{entry.nmse:.3f}")
            if self.on_option is not None:
                self.on_option(entry, done, total)

        try:
            with ctx, _worker_death_is_bkd_error():
                yield add
        finally:
            if bar is not None:
                bar.close()


def _executor(config: BkdConfig, device: TrainDevice, executor: Executor | None) -> Executor:
    if executor is not None:
        return executor
    if config.workers == 1 or not device.is_cpu:  # one GPU: its groups one after another
        return InlineExecutor()
    return ProcessExecutor(config.workers, config.threads_per_worker())


def _run_groups(
    run: _Run,
    mothernet_path: Path,
    mcfg: MothernetConfig,
    space: SearchSpace,
    data: TrainingData,
    limit: int | None,
    device: TrainDevice,
    data_workers: int,
) -> None:
    """Plan the groups, train them through the executor, save every entry as its group's
    results arrive, then drop the group's checkpoint."""
    lib = run.library
    assert lib.path is not None
    plan = plan_groups(
        lib,
        space,
        mcfg.space.architecture(mcfg.choices),
        lib.missing(space),
        limit,
        mothernet=mothernet_path.resolve(),
        data=data,
        config=run.config,
        key=run.key(),
        device=device,
        data_workers=data_workers,
        groups_at_once=run.executor.workers,
    )
    if not plan.tasks:
        return
    n = len(plan.tasks)
    tasks = [
        replace(t, progress=f"BKD group {i}/{n} ({len(t.members)} options)")
        if run.progress and run.inline
        else t
        for i, t in enumerate(plan.tasks, 1)
    ]
    st = lib.provenance.setdefault("shared_teacher", {"groups": 0, "train_passes": 0})
    st.update(
        memory_budget=plan.budget.bytes,
        budget_from=plan.budget.source,
        device=device.describe(),
        workers=run.executor.workers,
        planned=[{"id": t.gid, "options": len(t.members)} for t in tasks],
    )
    lib.save()
    total = sum(len(t.members) - len(t.saved) for t in tasks)
    with run.running(total, f"BKD {space.name} ({n} groups)") as add:
        for task, result in run.executor.map_unordered(train_group, tasks):
            for entry in result.entries:
                add(entry)
            _record_group(lib, result)
            lib.save()
            remove_group_state(groups_folder(lib.path), task.gid)


def _record_group(library: BkdLibrary, result: GroupResult) -> None:
    """Count the group and its passes in the provenance; keep the teacher variances."""
    st = library.provenance["shared_teacher"]
    st["groups"] = int(st.get("groups", 0)) + 1
    st["train_passes"] = int(st.get("train_passes", 0)) + int(result.record["train_passes"])
    st.setdefault("group_runs", []).append(result.record)
    cfg = library.provenance["bkd"]
    tv = library.provenance.setdefault(
        "teacher_variance",
        {
            "train": {
                "how": "the teacher's slot outputs on the first norm_samples training images "
                "(data.calib_batches); the recorded training losses are divided by it",
                "norm_samples": cfg.get("norm_samples"),
                "var": {},
            },
            "val": {
                "how": "the teacher's slot outputs on the validation images "
                "(data.val_batches, limit val_samples, seed + 1); nmse = mse / it",
                "var": {},
            },
        },
    )
    tv["train"]["var"].update({str(k): v for k, v in sorted(result.var_train.items())})
    tv["val"]["var"].update({str(k): v for k, v in sorted(result.var_val.items())})


def _check_data(space: SearchSpace, data: TrainingData) -> None:
    if data.task != space.task:
        raise BkdError(
            f"space {space.name!r} is for {space.task} but the data is for {data.task}; load "
            "the data of the space's task"
        )
    if data.n_train < 2 or data.n_val < 1:
        raise BkdError(
            "BKD needs at least 2 training and 1 validation images; got "
            f"{data.n_train} and {data.n_val}"
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
