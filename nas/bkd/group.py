"""A group of shared-teacher BKD options: what a worker is given (:class:`GroupTask`), the
seeded stream of training passes every group reads (:class:`SeededPasses`) and the group's
checkpoint (:func:`save_group_state`, :func:`load_group_state`, :func:`find_group_states`).

**The data order is shared.** Pass ``p`` of the training stream is drawn from a generator
seeded with :func:`pass_seed` ``(config.seed, p)``, whatever the group: every option of every
group sees the same batches in the same order, so how options are packed into groups (memory,
``max_group``, workers) never changes a result. A position in the stream is ``(pass, batch)``;
a resumed group re-creates the pass from its seed and skips the batches it had consumed (they
are read again, not trained on: the draws of the pass are the same as in an uninterrupted run).

**Checkpoints.** ``<library stem>.groups/<group id>.pt`` (``torch.save``: the students and
adapters, the optimizer and scheduler, the step and stream position, the raw losses so far)
and beside it ``<group id>.json`` (the options, the step, what the run was made from), both
written atomically, the ``.json`` last. The run removes them once every option of the group is
in the library.

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from nas.bkd.config import BkdConfig
from nas.bkd.library import option_key
from nas.core.files import atomic_write, atomic_write_text
from nas.core.spaces import SearchSpace, SlotOption
from nas.data.batches import BatchSource
from nas.training.device import CPU, TrainDevice

CHECKPOINT_FORMAT = "donnav2-bkd-group"
CHECKPOINT_VERSION = 1


def pass_seed(seed: int, index: int) -> int:
    """The seed of pass ``index`` of the training stream of a run with ``seed``."""
    h = hashlib.sha256(f"bkd-pass|{seed}|{index}".encode()).hexdigest()
    return int(h[:15], 16)


def group_id(options: Sequence[tuple[int, SlotOption]]) -> str:
    """A group's name: a hash of its options (order-free)."""
    keys = sorted(option_key(s, o) for s, o in options)
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()[:12]


class SeededPasses:
    """A :class:`~nas.data.batches.BatchSource` whose pass ``p`` is the first pass of
    ``source.passes(Generator(pass_seed(seed, p)))`` (the generator :func:`fit
    <nas.training.loop.fit>` hands in is not used), starting at pass ``start_pass`` after its
    first ``skip`` batches (the source skips them without reading them). :attr:`position` is
    ``(pass, batches consumed in it)``."""

    def __init__(self, source: BatchSource, seed: int, start_pass: int = 0, skip: int = 0):
        self.source = source
        self.seed = seed
        self.start_pass = start_pass
        self.skip = skip
        self.position = (start_pass, skip)

    @property
    def n(self) -> int:
        return self.source.n

    def passes(self, generator: torch.Generator | None = None) -> Iterator[Iterator[Any]]:
        p = self.start_pass
        while True:
            gen = torch.Generator().manual_seed(pass_seed(self.seed, p))
            skip = self.skip if p == self.start_pass else 0
            batches = next(iter(self.source.passes(gen, skip=skip)))  # skipped: not read
            yield self._pass(p, batches, skip)
            p += 1

    def _pass(self, p: int, batches: Iterator[Any], skip: int) -> Iterator[Any]:
        self.position = (p, skip)
        for i, batch in enumerate(batches, start=skip):
            self.position = (p, i + 1)
            yield batch


@dataclass(frozen=True)
class Member:
    """One option of a group: where it trains and where its weights go."""

    slot: int
    option: SlotOption
    in_chs: int  # the teacher's input channels of the slot
    out_chs: int  # the teacher's output channels of the slot
    weights_file: Path
    weights_rel: str  # the weights path as recorded in the library (relative to it)


@dataclass(frozen=True)
class GroupTask:
    """Everything a worker needs to train one group (picklable: specs, numbers, paths and the
    data object). ``key``: what the run is made from (mothernet, data, result settings); a
    checkpoint with another key is not resumed."""

    gid: str
    members: tuple[Member, ...]
    mothernet: Path
    space: SearchSpace
    data: Any  # a nas.data.batches.TrainingData
    config: BkdConfig
    checkpoint: Path
    key: Mapping[str, Any]
    device: TrainDevice = CPU
    data_workers: int = 0
    progress: str | None = None
    saved: frozenset[str] = frozenset()  # option keys already in the library: not saved again

    @property
    def options(self) -> list[tuple[int, SlotOption]]:
        return [(m.slot, m.option) for m in self.members]


def checkpoint_paths(folder: Path, gid: str) -> tuple[Path, Path]:
    """The ``.pt`` and ``.json`` files of group ``gid``'s checkpoint in ``folder``."""
    return folder / f"{gid}.pt", folder / f"{gid}.json"


def save_group_state(task: GroupTask, state: Mapping[str, Any]) -> None:
    """Write the group's checkpoint (``state``: ``step``, ``total``, ``pass``, ``batch``,
    ``images``, ``losses``, ``seconds``, ``model``, ``optimizer``, ``scheduler``), atomically:
    the ``.pt``, then the ``.json`` that names it."""
    pt, js = checkpoint_paths(task.checkpoint.parent, task.gid)
    pt.parent.mkdir(parents=True, exist_ok=True)
    blob = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "key": json.dumps(task.key, sort_keys=True, default=str),
        "options": [option_key(s, o) for s, o in task.options],
        **state,
    }
    atomic_write(pt, lambda f: torch.save(blob, f))
    meta = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "key": json.loads(blob["key"]),
        "options": [{"slot": s, **asdict(o)} for s, o in task.options],
        "step": int(state["step"]),
        "total": int(state["total"]),
    }
    atomic_write_text(js, json.dumps(meta, indent=1))


def load_group_state(task: GroupTask) -> dict[str, Any] | None:
    """The group's checkpoint when there is one for exactly these options and this key."""
    pt, js = checkpoint_paths(task.checkpoint.parent, task.gid)
    if not (pt.is_file() and js.is_file()):
        return None
    try:
        blob = torch.load(pt, map_location="cpu", weights_only=True)
    except Exception:  # a torn or foreign file: start the group afresh
        return None
    ok = (
        isinstance(blob, dict)
        and blob.get("format") == CHECKPOINT_FORMAT
        and blob.get("version") == CHECKPOINT_VERSION
        and blob.get("key") == json.dumps(task.key, sort_keys=True, default=str)
        and blob.get("options") == [option_key(s, o) for s, o in task.options]
    )
    return blob if ok else None


def find_group_states(
    folder: Path, key: Mapping[str, Any]
) -> list[tuple[str, list[tuple[int, SlotOption]], int]]:
    """The checkpointed groups in ``folder`` made with ``key``: ``(group id, options, step)``
    each, sorted by id. Checkpoints of another key, format or version, and halves of one
    (a ``.pt`` or a ``.json`` alone), are removed."""
    if not folder.is_dir():
        return []
    want = json.loads(json.dumps(key, sort_keys=True, default=str))
    found = []
    for js in sorted(folder.glob("*.json")):
        pt = js.with_suffix(".pt")
        try:
            meta = json.loads(js.read_text())
            good = (
                meta.get("format") == CHECKPOINT_FORMAT
                and meta.get("version") == CHECKPOINT_VERSION
                and meta.get("key") == want
                and pt.is_file()
            )
            options = [(int(d.pop("slot")), SlotOption(**d)) for d in meta["options"]]
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            good = False
        if not good:
            remove_group_state(folder, js.stem)
            continue
        found.append((js.stem, options, int(meta["step"])))
    for pt in folder.glob("*.pt"):
        if not pt.with_suffix(".json").exists():
            pt.unlink(missing_ok=True)
    return found


def remove_group_state(folder: Path, gid: str) -> None:
    """Remove group ``gid``'s checkpoint (the ``.json`` first: a lone ``.pt`` is ignored),
    and the folder when it is left empty."""
    pt, js = checkpoint_paths(folder, gid)
    js.unlink(missing_ok=True)
    pt.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        folder.rmdir()  # only when empty
