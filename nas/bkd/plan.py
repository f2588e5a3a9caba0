"""Which options train together in a shared-teacher BKD run: the checkpointed groups to
resume first, then the other options packed into groups under the memory budget
(:mod:`nas.bkd.memory`). No torch at import (the budget on CUDA imports it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from nas.bkd.config import BkdConfig
from nas.bkd.group import (
    GroupTask,
    Member,
    checkpoint_paths,
    find_group_states,
    group_id,
    remove_group_state,
)
from nas.bkd.library import BkdLibrary, option_key
from nas.bkd.memory import Budget, memory_budget, option_train_bytes, pack_groups, teacher_bytes
from nas.bkd.student import weights_name
from nas.core.spaces import SearchSpace, SlotOption
from nas.core.specs import Architecture, macs
from nas.training.device import TrainDevice


@dataclass(frozen=True)
class Plan:
    """The groups of one run, in the order they are handed to the executor."""

    tasks: list[GroupTask]
    budget: Budget
    resumed: int  # groups resumed from a checkpoint
    per_option_bytes: dict[str, int]  # option key -> estimated training bytes


def groups_folder(out: Path) -> Path:
    """Where a library's group checkpoints live: ``<library stem>.groups/``."""
    return out.with_name(out.stem + ".groups")


def plan_groups(
    library: BkdLibrary,
    space: SearchSpace,
    teacher: Architecture,
    missing: Sequence[tuple[int, SlotOption]],
    limit: int | None,
    *,
    mothernet: Path,
    data: Any,
    config: BkdConfig,
    key: Mapping[str, Any],
    device: TrainDevice,
    data_workers: int,
    groups_at_once: int,
) -> Plan:
    """The groups to train: first every checkpointed group of ``key`` that still has an
    option the library lacks (its options as they were), then at most ``limit`` options
    (all: ``None``) of the other ``missing`` ones, packed under the memory budget (at least
    ``groups_at_once`` groups, so every worker has one)."""
    assert library.path is not None
    folder = groups_folder(library.path)
    chs = teacher.slot_out_chs()
    bs = min(config.batch_size, config.train_samples or data.n_train, data.n_train)
    tasks: list[GroupTask] = []
    taken: set[str] = set()
    states = find_group_states(folder, key) if limit != 0 else []
    for gid, options, _step in states:
        if all(library.get(s, o) is not None for s, o in options):
            remove_group_state(folder, gid)  # all saved; the run stopped before removing it
            continue
        task = _task(gid, options, library, space, chs, mothernet, data, config, key)
        saved = frozenset(option_key(s, o) for s, o in options if library.get(s, o) is not None)
        tasks.append(replace(task, saved=saved))
        taken.update(option_key(s, o) for s, o in options)
    rest = [(s, o) for s, o in missing if option_key(s, o) not in taken]
    if limit is not None:
        rest = rest[: max(0, limit - sum(len(t.members) - len(t.saved) for t in tasks))]
    budget = memory_budget(device, config, groups_at_once)
    sizes = {
        option_key(s, o): option_train_bytes(
            space.slot_blocks(s, o, chs[s]), chs[s + 1], bs, device.precision
        )
        for s, o in rest
    }
    depth = max((s for s, _ in rest), default=0) + 1
    room = max(1, budget.bytes - teacher_bytes(teacher, depth, bs, device.precision))
    costs = [float(sum(macs(b) for b in space.slot_blocks(s, o, chs[s]))) for s, o in rest]
    packed = pack_groups(
        [sizes[option_key(s, o)] for s, o in rest], costs, room, config.max_group, groups_at_once
    )
    n_resumed = len(tasks)
    for idx in packed:
        options = [rest[i] for i in idx]
        gid = group_id(options)
        tasks.append(_task(gid, options, library, space, chs, mothernet, data, config, key))
    tasks = [replace(t, device=device, data_workers=data_workers) for t in tasks]
    return Plan(tasks, budget, n_resumed, sizes)


def _task(
    gid: str,
    options: Sequence[tuple[int, SlotOption]],
    library: BkdLibrary,
    space: SearchSpace,
    chs: Sequence[int],
    mothernet: Path,
    data: Any,
    config: BkdConfig,
    key: Mapping[str, Any],
) -> GroupTask:
    wdir = library.weights_dir()
    members = tuple(
        Member(
            slot=s,
            option=o,
            in_chs=chs[s],
            out_chs=chs[s + 1],
            weights_file=(wdir / weights_name(s, o)).resolve(),
            weights_rel=f"{wdir.name}/{weights_name(s, o)}",
        )
        for s, o in options
    )
    assert library.path is not None
    pt, _ = checkpoint_paths(groups_folder(library.path), gid)
    return GroupTask(
        gid=gid,
        members=members,
        mothernet=mothernet,
        space=space,
        data=data,
        config=config,
        checkpoint=pt.resolve(),
        key=dict(key),
    )
