"""Networks of blocks: the mothernet and every student architecture.

A :class:`BlockNetwork` is ``stem -> slots[0] -> ... -> slots[n-1] -> head``: one
``nn.Sequential`` of blocks per slot (stage) of a :class:`~nas.core.spaces.SearchSpace`.
:func:`build_network` builds it from the decoded
:class:`~nas.core.specs.Architecture` (``space.architecture(choices)``: stem, the blocks of
each slot, head), so the slot boundaries and channels come from one place. Image networks
(denoising, super-resolution) add a global residual: the noisy input, or the bilinearly
upsampled low-resolution input, is added to the head's output.

A space with ``input_norm`` (an imported ImageNet mothernet's mean and std) gives a network
whose stem is a :class:`NormalizedStem`: ``(x - mean) / std`` (buffers: they follow the network
to another device or dtype and are saved in its state dict) before the stem's conv, so
everything that runs the stem (``forward``, ``body``, ``slot_features``, BKD's teacher
features) takes the [0, 1] input. Networks of spaces without it are built exactly as before
(no buffers, the same state-dict keys).

This module imports torch: import it lazily (inside functions) from anything a CLI loads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from nas.core.errors import MothernetError
from nas.core.modules import build_block
from nas.core.spaces import InputNorm, SearchSpace, SlotOption, check_input_norm
from nas.core.specs import out_shape

if TYPE_CHECKING:
    from nas.training.mothernet import MothernetConfig


class NormalizedStem(nn.Module):
    """``block((x - mean) / std)``: the input normalisation (per-channel buffers ``mean`` and
    ``std`` of shape ``(1, 3, 1, 1)``) and the stem ``block``."""

    def __init__(self, block: nn.Module, input_norm: InputNorm) -> None:
        super().__init__()
        self.input_norm = input_norm  # as declared (the buffers hold it in the network's dtype)
        mean, std = input_norm
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block((x - self.mean) / self.std)


class BlockNetwork(nn.Module):
    """``stem -> slots -> head`` with the task's global residual.

    ``slots`` is an ``nn.ModuleList`` of ``nn.Sequential`` (one per slot). Denoising networks
    return ``x + head(...)``; super-resolution networks return
    ``bilinear_upsample(x, scale) + head(...)``; classifiers return logits. With
    ``input_norm`` (mean, std per RGB channel) the stem becomes a :class:`NormalizedStem`: the
    network takes [0, 1] input and normalises it first (the global residual uses the raw
    input).
    """

    def __init__(
        self,
        stem: nn.Module,
        slots: Sequence[nn.Module],
        head: nn.Module,
        task: str = "classification",
        scale: int = 1,
        input_norm: InputNorm | None = None,
    ) -> None:
        super().__init__()
        norm = check_input_norm("BlockNetwork", input_norm)
        self.stem = stem if norm is None else NormalizedStem(stem, norm)
        self.slots = nn.ModuleList(slots)
        self.head = head
        self.task = task
        self.scale = scale

    @property
    def input_norm(self) -> InputNorm | None:
        """The (mean, std) the stem applies to the input, ``None`` when it takes it as is."""
        return self.stem.input_norm if isinstance(self.stem, NormalizedStem) else None

    def body(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for s in self.slots:
            x = s(x)
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.head(self.body(x))
        if self.task == "denoising":
            return x + y
        if self.task == "super_resolution":
            up = F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
            return up + y
        return y

    def slot_features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        """The input of every slot and the last slot's output (``n_slots + 1`` tensors):
        slot ``i`` maps ``features[i]`` to ``features[i + 1]``. With ``depth`` only the first
        ``depth`` slots run (``depth + 1`` tensors; the deeper slots are not computed)."""
        feats = [self.stem(x)]
        for s in self.slots[:depth]:
            feats.append(s(feats[-1]))
        return feats


def build_slot(space: SearchSpace, slot: int, option: SlotOption, in_chs: int) -> nn.Sequential:
    """The blocks of one slot for one option at ``in_chs`` input channels (fresh weights): a
    BKD student, trained on the teacher's features of that slot."""
    return nn.Sequential(*(build_block(b) for b in space.slot_blocks(slot, option, in_chs)))


def build_network(
    space: SearchSpace, choices: Sequence[SlotOption], seed: int | None = None
) -> BlockNetwork:
    """A network of ``space`` with one option per slot (the mothernet or a student), built
    from ``space.architecture(choices)``.

    With ``seed`` the initial weights are deterministic (the global RNG is left untouched).
    """
    arch = space.architecture(choices)  # validates the choices and the shapes
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        stem = build_block(arch.stem)
        slots = [nn.Sequential(*(build_block(b) for b in blocks)) for blocks in arch.slots]
        head = build_block(arch.head)
        if space.task != "classification":
            # the residual branch starts at zero: a fresh image network returns its input (or
            # its upsampled input), the baseline it then improves on, not noise
            nn.init.zeros_(head.conv.weight)
            nn.init.zeros_(head.conv.bias)
    return BlockNetwork(
        stem, slots, head, task=space.task, scale=space.scale, input_norm=space.input_norm
    )


def check_network(net: BlockNetwork, config: MothernetConfig) -> None:
    """Raise :class:`MothernetError` unless ``net`` is a :class:`BlockNetwork` of the config's
    task whose stem, slots and head give the shapes the config implies (a dummy forward pass
    at batch 2, part by part, so the message names the first part that does not fit)."""
    space = config.space
    if not isinstance(net, BlockNetwork) or len(net.slots) != space.n_slots:
        raise MothernetError(
            f"a mothernet of space {space.name!r} must be a BlockNetwork with {space.n_slots} slots"
        )
    if net.task != space.task or net.scale != space.scale:
        raise MothernetError(
            f"the network is for {net.task} (scale {net.scale}) but space {space.name!r} is for "
            f"{space.task} (scale {space.scale}); pass task= and scale= to BlockNetwork"
        )
    if net.input_norm != space.input_norm:
        raise MothernetError(
            f"the network normalises its input with {net.input_norm} but space {space.name!r} "
            f"expects {space.input_norm}; pass input_norm=space.input_norm to BlockNetwork"
        )
    arch = space.architecture(config.choices)
    # the output shape of the stem and of every slot, then of the head
    wants = [(2, *out_shape(arch.stem)), *((2, *out_shape(s[-1])) for s in arch.slots)]
    want_out = (2, *out_shape(arch.head))
    parts = [("the stem", net.stem), *((f"slot {i}", s) for i, s in enumerate(net.slots))]
    was = net.training
    net.eval()
    param = next(net.parameters(), None)
    x = torch.zeros(2, 3, space.resolution, space.resolution)
    if param is not None:
        x = x.to(param.device)  # a network trained on a GPU is checked there
    try:
        with torch.no_grad():
            for (where, part), want in zip(parts, wants):
                x = _run_part(where, part, x)
                if tuple(x.shape) != want:
                    raise MothernetError(
                        f"the output of {where} has shape {tuple(x.shape)[1:]}, space "
                        f"{space.name!r} expects {want[1:]}; describe your network with a "
                        "space whose stages match it"
                    )
            out = _run_part("the head", net.head, x)
    finally:
        net.train(was)
    if tuple(out.shape) != want_out:
        raise MothernetError(
            f"the head gives shape {tuple(out.shape)[1:]}, space {space.name!r} expects "
            f"{want_out[1:]}"
        )


def _run_part(where: str, part: nn.Module, x: torch.Tensor) -> torch.Tensor:
    try:
        return part(x)
    except RuntimeError as exc:
        raise MothernetError(
            f"{where} cannot take input of shape {tuple(x.shape)[1:]} ({exc})"
        ) from None
