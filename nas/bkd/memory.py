"""How many BKD options train together: per-option training memory from the block specs, the
memory budget of the device, and the packing of options into groups. No torch at import.

An option's training memory (:func:`option_train_bytes`) is its parameters with their
gradients and AdamW's two moments (16 bytes per parameter, float32) plus the activations its
backward pass keeps at the batch size and the slot's resolution (every conv, BatchNorm and
activation output of every block, :func:`block_activations`), times
:data:`ACTIVATION_OVERHEAD` for their gradients during the backward pass and the allocator's
slack. A group also holds the teacher (weights, and its features of one batch:
:func:`teacher_bytes`) once.

The budget (:func:`memory_budget`): ``BkdConfig.memory_budget`` when set; else on CUDA the
free memory (``torch.cuda.mem_get_info``) less :data:`CUDA_HEADROOM` of it and
:data:`CUDA_RESERVE`; on the CPU :data:`CPU_SHARE` of the available RAM (psutil), at most
:data:`CPU_CAP`. With several worker processes each group gets its share.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nas.core.specs import (
    Architecture,
    BlockSpec,
    ConvBnActSpec,
    MBConvSpec,
    mid_chs,
    out_shape,
    out_size,
    params,
    se_chs,
)

if TYPE_CHECKING:
    from nas.bkd.config import BkdConfig
    from nas.training.device import TrainDevice

ADAMW_BYTES_PER_PARAM = 16  # float32 weight, gradient, exp_avg, exp_avg_sq
ACTIVATION_OVERHEAD = 2.0  # kept activations + their gradients in the backward pass, slack
CUDA_HEADROOM = 0.2  # share of the free GPU memory left free
CUDA_RESERVE = 1 << 30  # and 1 GiB more (CUDA context, cuDNN workspaces, fragmentation)
CPU_SHARE = 0.5  # share of the available RAM a run may use
CPU_CAP = 8 << 30  # at most 8 GiB on the CPU


def activation_bytes(precision: str) -> int:
    """Bytes of one activation value: 2 under bfloat16 autocast, else 4."""
    return 2 if precision == "bf16" else 4


def block_activations(spec: BlockSpec) -> int:
    """Activation values one image keeps for the backward pass of one block: its input and
    every conv, BatchNorm, activation and squeeze-excite output."""
    c, h, w = spec.in_chs, spec.in_h, spec.in_w
    if isinstance(spec, ConvBnActSpec):
        oh, ow = out_size(h, spec.stride), out_size(w, spec.stride)
        return c * h * w + 3 * spec.out_chs * oh * ow
    if not isinstance(spec, MBConvSpec):
        return c * h * w + 2 * math.prod(out_shape(spec))
    mid = mid_chs(spec)
    oh, ow = out_size(h, spec.stride), out_size(w, spec.stride)
    total = c * h * w
    if spec.exp_ratio != 1.0:
        total += 3 * mid * h * w  # expansion conv, BatchNorm, activation
    total += 3 * mid * oh * ow  # depthwise conv, BatchNorm, activation
    if se_chs(spec):
        total += mid * oh * ow  # the rescaled features
    total += 3 * spec.out_chs * oh * ow  # projection conv, BatchNorm, residual sum
    return total


def block_params(spec: BlockSpec) -> int:
    """Trainable parameters of a block: :func:`~nas.core.specs.params` plus the BatchNorm
    scales and shifts."""
    bn = 0
    if isinstance(spec, MBConvSpec):
        bn = 2 * (mid_chs(spec) * (2 if spec.exp_ratio != 1.0 else 1) + spec.out_chs)
    elif isinstance(spec, ConvBnActSpec):
        bn = 2 * spec.out_chs
    return params(spec) + bn


def option_train_bytes(
    blocks: Sequence[BlockSpec], teacher_out_chs: int, batch_size: int, precision: str
) -> int:
    """Training memory of one option's student (its ``blocks``) and its adapter (when its
    output channels are not the teacher's ``teacher_out_chs``)."""
    last = blocks[-1]
    c, h, w = out_shape(last)
    n_params = sum(block_params(b) for b in blocks)
    acts = sum(block_activations(b) for b in blocks) + 2 * teacher_out_chs * h * w  # loss
    if c != teacher_out_chs:
        n_params += c * teacher_out_chs + teacher_out_chs
        acts += teacher_out_chs * h * w
    act = batch_size * acts * activation_bytes(precision) * ACTIVATION_OVERHEAD
    return int(ADAMW_BYTES_PER_PARAM * n_params + act)


def teacher_bytes(arch: Architecture, n_slots: int, batch_size: int, precision: str) -> int:
    """The teacher's share of a group: its weights (float32) and, for one batch, the
    features it hands the group (the input of the first ``n_slots`` slots and the output of
    the last of them) plus its largest block's activations in flight."""
    blocks = [arch.stem, *(b for s in arch.slots[:n_slots] for b in s)]
    weights = 4 * sum(block_params(b) for b in arch.blocks)
    feats = sum(math.prod(out_shape(s[-1])) for s in arch.slots[:n_slots])
    feats += math.prod(out_shape(arch.stem))
    transient = max(block_activations(b) for b in blocks)
    return int(weights + batch_size * (feats + transient) * activation_bytes(precision))


@dataclass(frozen=True)
class Budget:
    """The bytes one group may use for training and where the figure comes from."""

    bytes: int
    source: str


def memory_budget(device: TrainDevice, config: BkdConfig, groups_at_once: int = 1) -> Budget:
    """One group's memory budget on ``device`` (see the module docstring), shared by
    ``groups_at_once`` groups in training at the same time."""
    share = max(1, groups_at_once)
    if config.memory_budget is not None:
        return Budget(config.memory_budget, "BkdConfig.memory_budget")
    if not device.is_cpu:
        import torch

        free, total = torch.cuda.mem_get_info(device.torch_device())
        usable = max(0, int(free * (1 - CUDA_HEADROOM)) - CUDA_RESERVE)
        return Budget(
            max(1, usable // share),
            f"{device.name}: {free / 2**30:.1f} GiB free of {total / 2**30:.1f} GiB, less "
            f"{CUDA_HEADROOM:.0%} and {CUDA_RESERVE / 2**30:g} GiB"
            + (f", / {share} groups" if share > 1 else ""),
        )
    import psutil

    avail = int(psutil.virtual_memory().available)
    usable = min(int(avail * CPU_SHARE), CPU_CAP)
    return Budget(
        max(1, usable // share),
        f"cpu: {CPU_SHARE:.0%} of {avail / 2**30:.1f} GiB available RAM, at most "
        f"{CPU_CAP / 2**30:g} GiB" + (f", / {share} groups" if share > 1 else ""),
    )


def pack_groups(
    sizes: Sequence[int],
    costs: Sequence[float],
    budget: int,
    max_group: int | None = None,
    min_groups: int = 1,
) -> list[list[int]]:
    """Indices of the items (options) in groups: each group's summed ``sizes`` within
    ``budget`` (an item larger than the budget alone in its group), at most ``max_group``
    items a group, at least ``min_groups`` groups (when there are that many items) and a
    multiple of ``min_groups`` (the workers: no worker idles in the last round), the
    ``costs`` (compute) balanced: the costliest item first, each into the group with the
    least cost so far that has room. Deterministic; each group's indices sorted, the groups
    in the order of their first index."""
    n = len(sizes)
    if n == 0:
        return []
    by_cap = math.ceil(n / max_group) if max_group else 1
    g = max(1, min(min_groups, n), math.ceil(sum(sizes) / max(budget, 1)), by_cap)
    if min_groups > 1:  # whole rounds: every worker busy until the last round ends
        g = min(n, math.ceil(g / min_groups) * min_groups)
    groups: list[list[int]] = [[] for _ in range(min(g, n))]
    load = [0.0] * len(groups)
    mem = [0] * len(groups)
    for i in sorted(range(n), key=lambda i: (-costs[i], i)):
        room = [
            j
            for j in range(len(groups))
            if (not groups[j] or mem[j] + sizes[i] <= budget)
            and (max_group is None or len(groups[j]) < max_group)
        ]
        if not room:
            groups.append([])
            load.append(0.0)
            mem.append(0)
            room = [len(groups) - 1]
        j = min(room, key=lambda j: (load[j], j))
        groups[j].append(i)
        load[j] += costs[i]
        mem[j] += sizes[i]
    return sorted((sorted(gr) for gr in groups if gr), key=lambda gr: gr[0])
