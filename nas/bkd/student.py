"""One BKD student: an option's blocks for one slot, its adapter, its seed and its weights file.

The student is the slot's blocks for the option (``space.slot_blocks(slot, option,
teacher_in_chs)``), initialised with a seed derived from ``(config.seed, slot, option)``
(:func:`option_seed`) so a result never depends on the worker count, the group or the order.
When the option's width gives other output channels than the teacher's, a 1x1 conv *adapter*
maps the student's output to the teacher's channels for the loss only; it is saved beside the
student (:func:`save_student`) but the finetuned network does not use it. Training and scoring
are in :mod:`nas.bkd.shared`.

This module imports torch: import it lazily from CLIs.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from nas.bkd.library import option_key
from nas.core.files import atomic_write
from nas.core.spaces import SearchSpace, SlotOption
from nas.core.specs import spec_key
from nas.training.networks import build_slot


def option_seed(seed: int, slot: int, option: SlotOption) -> int:
    """The student's seed: a function of the run seed, the slot and the option only."""
    h = hashlib.sha256(f"{seed}|{option_key(slot, option)}".encode()).hexdigest()
    return int(h[:8], 16)


def weights_name(slot: int, option: SlotOption) -> str:
    """The file name of one option's student weights in the library's weights folder."""
    h = hashlib.sha256(option_key(slot, option).encode()).hexdigest()[:12]
    return f"slot{slot}-{h}.pt"


def build_student(
    space: SearchSpace, slot: int, option: SlotOption, in_chs: int, out_chs: int, seed: int
) -> tuple[nn.Sequential, nn.Module]:
    """The slot's blocks for the option at the teacher's ``in_chs`` input channels and the
    adapter to the teacher's ``out_chs`` output channels (an ``nn.Identity`` when the channels
    agree), initialised from ``seed`` (the global RNG is left untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        student = build_slot(space, slot, option, in_chs)
        s_out = space.stage_chs(slot, option.width)
        adapter: nn.Module = (
            nn.Conv2d(s_out, out_chs, 1, bias=True) if s_out != out_chs else nn.Identity()
        )
    return student, adapter


def save_student(
    path: Path,
    space: SearchSpace,
    slot: int,
    option: SlotOption,
    in_chs: int,
    student: nn.Module,
    adapter: nn.Module,
) -> None:
    """``{"blocks", "adapter", "specs", "slot", "in_chs"}`` to ``path``, atomically (state
    dicts on the CPU, whatever device trained them)."""
    blob = {
        "blocks": _cpu_state(student),
        "adapter": _cpu_state(adapter),
        "specs": [spec_key(b) for b in space.slot_blocks(slot, option, in_chs)],
        "slot": slot,
        "in_chs": in_chs,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: torch.save(blob, f))


def _cpu_state(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}
