"""The ``donna run`` driver: run the stages in order, skip the finished ones, record each."""

from __future__ import annotations

import time
from typing import Any

from nas.core.locks import writer_lock
from nas.pipeline.config import RunConfig
from nas.pipeline.picks import Echo
from nas.pipeline.stages import STAGES, RunContext
from nas.pipeline.state import RunState

RUN_LOCK = "run.lock"  # in the run folder; the LUT and the BKD library have their own locks


def run_pipeline(
    config: RunConfig, echo: Echo = print, *, restart: bool = False, only: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Run every stage of ``config`` (or those in ``only``) in its folder; finished stages are
    skipped, each finished one is recorded in ``run.json`` at once. Returns ``run.json``'s
    content. A folder made with other settings is refused (``restart`` starts it over), and
    so is a folder another ``donna run`` is writing (:class:`nas.core.locks.LockedError`)."""
    folder = config.folder
    with writer_lock(folder, "run folder", lock_file=folder / RUN_LOCK):
        return _run_locked(config, echo, restart, only)


def _run_locked(
    config: RunConfig, echo: Echo, restart: bool, only: tuple[str, ...]
) -> dict[str, Any]:
    state = RunState.open(config.folder, config.result_settings(), restart)
    ctx = RunContext(config, echo, state.data)
    todo = [s for s in STAGES if not only or s in only]
    t_all = time.perf_counter()
    for i, stage in enumerate(todo, 1):
        if state.done(stage):
            echo(f"[{i}/{len(todo)}] {stage}: done earlier, skipped")
            continue
        echo(f"[{i}/{len(todo)}] {stage} ...")
        t0 = time.perf_counter()
        info = STAGES[stage](ctx)
        dt = time.perf_counter() - t0
        state.mark(stage, dt, info)
        echo(f"[{i}/{len(todo)}] {stage}: {dt:.1f} s")
    state.data["total_seconds_last_invocation"] = round(time.perf_counter() - t_all, 2)
    state.save()
    return state.data
