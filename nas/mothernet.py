"""Mothernets: the trained networks whose blocks BKD distils, and the student networks.

A :class:`BlockNetwork` is ``stem -> slots[0] -> ... -> slots[n-1] -> head``: one
``nn.Sequential`` of blocks per slot (stage) of a :class:`~nas.core.spaces.SearchSpace`. The same
class holds the mothernet (the teacher, built from one :class:`~nas.core.spaces.SlotOption` per
slot: :func:`default_teacher_choices`) and every student architecture
(``build_network(space, chosen_options)``). For the ``quick`` space the teacher is a small
EfficientNet-like CIFAR classifier; for ``default`` it is EfficientNet-B0 (its own per-stage
kernels and depths, expansion 6, SE 0.25) at the space's resolution and width; the image spaces
(``quick-denoise``, ``quick-sr``) give small full-resolution denoising and x2 super-resolution
networks of the same block family, with a global residual (the noisy input, or the bilinearly
upsampled low-resolution input, is added to the head's output).

A checkpoint (:func:`save_checkpoint`) is one ``torch.save`` file holding the
:class:`MothernetConfig` (search space, teacher choices, seed), the state dict, training
metrics and a description of the data; :func:`load_checkpoint` rebuilds the network from the
config alone. The checkpoint file's sha256 (:func:`nas.library.file_sha256`) is the
mothernet's identity in BKD libraries.

Bring your own mothernet
------------------------
A trained network of your own can be used when it is (or can be rewritten as) an ordered list
of blocks grouped into the slots of a search space, plus a stem and a head:

1. Describe it: a :class:`~nas.core.spaces.SearchSpace` whose stages have your stage output
   channels and strides, stem and head (``SearchSpace(name=..., stages=..., options=...)``),
   and one :class:`~nas.core.spaces.SlotOption` per slot describing your blocks
   (``MothernetConfig(space, choices)``).
2. Either build ``net = build_network(space, choices)`` and copy your trained weights into it
   (``net.load_state_dict(yours)`` with keys ``stem.*``, ``slots.<slot>.<block>.*``,
   ``head.*``), or wrap your own modules: ``BlockNetwork(stem, [nn.Sequential(...), ...],
   head, task=space.task)``; each slot must take and give the feature shapes the config's
   choices would (``check_network`` verifies it).
3. ``save_checkpoint(path, net, config, metrics={}, data_desc={...})``. A checkpoint holds
   weights only, so a network of your own modules must have the same state-dict keys and
   shapes as ``build_network(config.space, config.choices)`` to reload; otherwise pass the
   network itself to the lower-level BKD functions.

This module imports torch: import it lazily (inside functions) from anything a CLI loads.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from torch.nn import functional as F

from nas.core.errors import MothernetError
from nas.core.modules import build_block
from nas.core.spaces import B0_DEPTHS, B0_KERNELS, B0_STAGES, SearchSpace, SlotOption
from nas.core.specs import spec_key

if TYPE_CHECKING:
    from nas.data import TaskData
    from nas.library import BkdLibrary

CHECKPOINT_FORMAT = "donnav2-mothernet"
CHECKPOINT_VERSION = 1


# ---- configuration ---------------------------------------------------------------------------


def _closest(options: Sequence[SlotOption], target: SlotOption) -> SlotOption:
    """``target`` if the slot offers it, else the offered option nearest to it."""
    if target in options:
        return target

    def dist(o: SlotOption) -> tuple[float, ...]:
        return (
            abs(o.kernel - target.kernel) / 2,
            abs(math.log(o.exp_ratio / target.exp_ratio)),
            abs(o.se_ratio - target.se_ratio) * 4,
            abs(o.depth - target.depth),
            abs(math.log(o.width / target.width)) * 4,
            float(o.act != target.act),
        )

    return min(options, key=lambda o: sum(dist(o)))


def default_teacher_choices(space: SearchSpace) -> tuple[SlotOption, ...]:
    """The mothernet's option per slot: a large option the space offers.

    * ``default`` (EfficientNet-B0 stages): B0's own kernel and depth per stage, expansion 6,
      SE 0.25, width 1.0;
    * other classification spaces (``quick``): kernel 5, the largest expansion, SE on,
      depth 2, width 1.0;
    * image spaces: kernel 5, the largest expansion, SE on, depth 2 (a mid-large option).

    Each target is replaced by the nearest offered option when the space lacks it.
    """
    out = []
    b0 = space.stages == B0_STAGES
    for i, opts in enumerate(space.options):
        exp = max(o.exp_ratio for o in opts)
        se = max(o.se_ratio for o in opts)
        widths = {o.width for o in opts}
        width = 1.0 if 1.0 in widths else max(widths)
        act = opts[0].act
        if b0:
            target = SlotOption(B0_KERNELS[i], 6.0, 0.25, B0_DEPTHS[i], width, act)
        else:
            target = SlotOption(5, exp, se, 2, width, act)
        out.append(_closest(opts, target))
    return tuple(out)


@dataclass(frozen=True)
class MothernetConfig:
    """What a mothernet is: a search space (which fixes stem, stages, head, resolution and
    task) and one option per slot; ``seed`` seeds the weight initialisation."""

    space: SearchSpace
    choices: tuple[SlotOption, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "choices", tuple(self.choices))
        if len(self.choices) != self.space.n_slots:
            raise MothernetError(
                f"a mothernet of space {self.space.name!r} needs {self.space.n_slots} slot "
                f"choices, got {len(self.choices)}"
            )

    @classmethod
    def default(cls, space: SearchSpace, seed: int = 0) -> MothernetConfig:
        return cls(space, default_teacher_choices(space), seed)

    @property
    def task(self) -> str:
        return self.space.task

    def slot_in_chs(self) -> list[int]:
        """Input channels of every slot, and (last) the output channels of the last slot."""
        chs = [self.space.stem_chs]
        for i, opt in enumerate(self.choices):
            chs.append(self.space.stage_chs(i, opt.width))
        return chs

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space.to_dict(),
            "choices": [asdict(c) for c in self.choices],
            "seed": self.seed,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MothernetConfig:
        try:
            space = SearchSpace.from_dict(d["space"])
            choices = tuple(SlotOption(**c) for c in d["choices"])
            return cls(space, choices, int(d.get("seed", 0)))
        except (KeyError, TypeError) as exc:
            raise MothernetError(f"not a mothernet configuration ({exc})") from None


# ---- networks ------------------------------------------------------------------------------


class BlockNetwork(nn.Module):
    """``stem -> slots -> head`` with the task's global residual.

    ``slots`` is an ``nn.ModuleList`` of ``nn.Sequential`` (one per slot). Denoising networks
    return ``x + head(...)``; super-resolution networks return
    ``bilinear_upsample(x, scale) + head(...)``; classifiers return logits.
    """

    def __init__(
        self,
        stem: nn.Module,
        slots: Sequence[nn.Module],
        head: nn.Module,
        task: str = "classification",
        scale: int = 1,
    ) -> None:
        super().__init__()
        self.stem = stem
        self.slots = nn.ModuleList(slots)
        self.head = head
        self.task = task
        self.scale = scale

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

    def slot_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The input of every slot and the last slot's output (``n_slots + 1`` tensors):
        slot ``i`` maps ``features[i]`` to ``features[i + 1]``."""
        feats = [self.stem(x)]
        for s in self.slots:
            feats.append(s(feats[-1]))
        return feats


def build_slot(space: SearchSpace, slot: int, option: SlotOption, in_chs: int) -> nn.Sequential:
    """The blocks of one slot for one option (fresh weights)."""
    return nn.Sequential(*(build_block(b) for b in space.slot_blocks(slot, option, in_chs)))


def build_network(
    space: SearchSpace, choices: Sequence[SlotOption], seed: int | None = None
) -> BlockNetwork:
    """A network of ``space`` with one option per slot (the mothernet or a student).

    With ``seed`` the initial weights are deterministic (the global RNG is left untouched).
    """
    arch = space.architecture(choices)  # validates the choices and the shapes
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        stem = build_block(arch.blocks[0])
        slots = []
        in_chs = space.stem_chs
        for i, opt in enumerate(choices):
            slots.append(build_slot(space, i, opt, in_chs))
            in_chs = space.stage_chs(i, opt.width)
        head = build_block(arch.blocks[-1])
        if space.task != "classification":
            # the residual branch starts at zero: a fresh image network returns its input (or
            # its upsampled input), the baseline it then improves on, not noise
            nn.init.zeros_(head.conv.weight)
            nn.init.zeros_(head.conv.bias)
    return BlockNetwork(stem, slots, head, task=space.task, scale=space.scale)


def build_mothernet(config: MothernetConfig) -> BlockNetwork:
    return build_network(config.space, config.choices, seed=config.seed)


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
    sizes = [*space.slot_input_sizes(), space.head_spec(1).in_h]
    chs = config.slot_in_chs()
    side = sizes[-1] * space.scale
    want_out = (2, space.num_classes) if space.task == "classification" else (2, 3, side, side)
    parts = [("the stem", net.stem), *((f"slot {i}", s) for i, s in enumerate(net.slots))]
    was = net.training
    net.eval()
    x = torch.zeros(2, 3, space.resolution, space.resolution)
    try:
        with torch.no_grad():
            for k, (where, part) in enumerate(parts):
                want = (2, chs[k], sizes[k], sizes[k])
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


# ---- training ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainConfig:
    """Mothernet training settings; the defaults are defined here only."""

    epochs: float = 10.0
    batch_size: int = 64
    lr: float = 2e-3
    weight_decay: float = 5e-4
    optimizer: str = "adamw"  # or "sgd" (momentum 0.9, nesterov)
    seed: int = 0
    augment: bool = True  # random horizontal flips

    def __post_init__(self) -> None:
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise MothernetError(f"epochs must be > 0, got {self.epochs}")
        if self.batch_size < 2:
            raise MothernetError(f"batch size must be >= 2 (BatchNorm), got {self.batch_size}")
        if not self.lr > 0:
            raise MothernetError(f"learning rate must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise MothernetError(f"weight decay must be >= 0, got {self.weight_decay}")
        if self.optimizer not in ("adamw", "sgd"):
            raise MothernetError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")


_TRAIN = TrainConfig()


def _tensor(a: Any) -> torch.Tensor:
    return a if isinstance(a, torch.Tensor) else torch.as_tensor(a)


def task_loss(task: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classification, L1 for the image tasks."""
    if task == "classification":
        return F.cross_entropy(out, target)
    return F.l1_loss(out, target)


def _check_data(net: BlockNetwork, data: TaskData) -> None:
    if data.task != net.task:
        raise MothernetError(
            f"the network is a {net.task} network but the data is for {data.task}; load the "
            "data of the mothernet's task"
        )
    if len(data.train_x) < 2 or len(data.val_x) == 0:
        raise MothernetError(
            "training needs at least 2 training and 1 validation examples; got "
            f"{len(data.train_x)} and {len(data.val_x)}"
        )


def train_mothernet(
    net: BlockNetwork,
    data: TaskData,
    *,
    epochs: float = _TRAIN.epochs,
    batch_size: int = _TRAIN.batch_size,
    lr: float = _TRAIN.lr,
    seed: int = _TRAIN.seed,
    weight_decay: float = _TRAIN.weight_decay,
    optimizer: str = _TRAIN.optimizer,
    augment: bool = _TRAIN.augment,
    progress: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train ``net`` in place on ``data.train_*`` and evaluate on ``data.val_*``.

    Cross-entropy (classification) or L1 (image tasks); AdamW or SGD with a cosine learning
    rate over all steps. Deterministic for a ``seed`` and a thread count (the batch order and
    the flips come from a generator seeded with it; the thread count is whatever
    ``torch.set_num_threads`` says). ``epochs`` may be fractional. ``on_epoch(epoch,
    metrics)`` is called after every (partial) epoch. Returns the metrics: task, metric name
    and value, first/last train-loss means (first and last tenth of the steps), steps, seconds
    and the settings.
    """
    cfg = TrainConfig(epochs, batch_size, lr, weight_decay, optimizer, seed, augment)
    _check_data(net, data)
    from nas.core.progress import progress_bar
    from nas.data import task_metric

    x_all, y_all = _tensor(data.train_x).float(), _tensor(data.train_y)
    if net.task != "classification":
        y_all = y_all.float()
    n = len(x_all)
    bs = min(cfg.batch_size, n)
    per_epoch = math.ceil(n / bs)
    total = max(1, round(cfg.epochs * per_epoch))
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(
            params, lr=cfg.lr, weight_decay=cfg.weight_decay
        )
    else:
        opt = torch.optim.SGD(
            params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
        )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    losses: list[float] = []
    name, _ = task_metric(net.task)
    history: list[dict[str, float]] = []
    t0 = time.perf_counter()
    bar = progress_bar(total, f"train mothernet ({net.task})", unit="step") if progress else None
    step = 0
    epoch = 0
    net.to(memory_format=torch.channels_last)  # ~2x faster depthwise backward on CPU
    try:
        while step < total:
            net.train()
            order = torch.randperm(n, generator=gen)
            for i in range(0, n, bs):
                if step >= total:
                    break
                idx = order[i : i + bs]
                if len(idx) < 2:  # a last batch of one: BatchNorm needs two
                    continue
                xb, yb = x_all[idx], y_all[idx]
                if cfg.augment:
                    flip = torch.rand(len(idx), generator=gen) < 0.5
                    xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
                    if net.task != "classification":
                        yb = torch.where(flip[:, None, None, None], yb.flip(3), yb)
                xb = xb.contiguous(memory_format=torch.channels_last)
                loss = task_loss(net.task, net(xb), yb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                losses.append(loss.item())
                step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{losses[-1]:.4f}")
            epoch += 1
            if on_epoch is not None or step >= total:
                recalibrate_bn(net, _calib_batches(x_all, max(bs, 2)))
                m = {
                    "epoch": float(epoch),
                    "loss": _mean(losses[-per_epoch:]),
                    name: evaluate(net, data),
                }
                history.append(m)
                if on_epoch is not None:
                    on_epoch(epoch, m)
    finally:
        if bar is not None:
            bar.close()
    tenth = max(1, len(losses) // 10)
    return {
        "task": net.task,
        "metric": name,
        "value": history[-1][name],
        "train_loss_first": _mean(losses[:tenth]),
        "train_loss_last": _mean(losses[-tenth:]),
        "steps": step,
        "seconds": round(time.perf_counter() - t0, 3),
        "threads": torch.get_num_threads(),
        "settings": asdict(cfg),
    }


@torch.no_grad()
def recalibrate_bn(module: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Re-estimate every BatchNorm's running statistics as the plain average over
    ``batches`` (forward passes in train mode, no gradients). Short trainings leave the
    exponential running averages far from the true statistics (the initial variance of 1
    decays by only 0.9 per step); this makes eval-mode outputs match the trained weights."""
    bns = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    was = module.training
    saved = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None
    module.train()
    try:
        for xb in batches:
            if len(xb) >= 2:
                module(xb)
    finally:
        for m, mom in zip(bns, saved):
            m.momentum = mom
        module.train(was)


BN_CALIB_SAMPLES = 1024


def _calib_batches(x: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    n = min(len(x), BN_CALIB_SAMPLES)
    for i in range(0, n, batch_size):
        yield x[i : i + batch_size]


def _mean(xs: Sequence[float]) -> float:
    return float(sum(xs) / len(xs)) if xs else float("nan")


@torch.no_grad()
def predict(net: nn.Module, x: Any, batch_size: int = 256) -> torch.Tensor:
    """``net(x)`` in eval mode, in batches."""
    was = net.training
    net.eval()
    x = _tensor(x).float()
    out = torch.cat([net(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
    net.train(was)
    return out


def evaluate(net: BlockNetwork, data: TaskData, batch_size: int = 256) -> float:
    """The task's metric on the validation split: top-1 accuracy (classification) or PSNR in
    dB (image tasks, outputs clamped to [0, 1])."""
    from nas.data import psnr, top1

    out = predict(net, data.val_x, batch_size)
    y = _tensor(data.val_y)
    if net.task == "classification":
        return float(top1(out, y))
    return float(psnr(out.clamp(0.0, 1.0), y.float()))


# ---- checkpoints --------------------------------------------------------------------------


@dataclass(frozen=True)
class CheckpointMeta:
    """What a checkpoint records besides the weights."""

    metrics: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    created: float = 0.0
    torch_version: str = ""


def save_checkpoint(
    path: Path,
    net: BlockNetwork,
    config: MothernetConfig,
    metrics: Mapping[str, Any] | None = None,
    data_desc: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``net`` with its config atomically (temp file, fsync, rename). ``metrics`` and
    ``data_desc`` must be JSON-like (str, numbers, lists, dicts)."""
    check_network(net, config)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "config": config.to_dict(),
        "blocks": [spec_key(b) for b in config.space.architecture(config.choices)],
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "meta": {
            "metrics": _plain(dict(metrics or {})),
            "data": _plain(dict(data_desc or {})),
            "created": time.time(),
            "torch_version": str(torch.__version__),
        },
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _plain(x: Any) -> Any:
    """JSON-like copy (what ``torch.load(weights_only=True)`` reads back)."""
    return json.loads(json.dumps(x, default=str))


def _fixed_part(space: SearchSpace) -> dict[str, Any]:
    return {k: v for k, v in space.to_dict().items() if k not in ("options", "name")}


def load_checkpoint(
    path: Path, space: SearchSpace | None = None
) -> tuple[BlockNetwork, MothernetConfig, CheckpointMeta]:
    """Rebuild a mothernet from its checkpoint alone. With ``space``, also check that the
    mothernet belongs to it (same stem, stages, head, resolution and task; the options may
    differ). Raises :class:`MothernetError` for anything that is not a donnav2 checkpoint or
    does not fit."""
    path = Path(path)
    if not path.is_file():
        raise MothernetError(
            f"mothernet checkpoint {path} does not exist; train one with "
            "`donna train-mothernet` or save yours with nas.mothernet.save_checkpoint"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign or corrupt file
        raise MothernetError(
            f"{path} is not a donnav2 mothernet checkpoint (cannot read it: "
            f"{type(exc).__name__}); pass a file written by `donna train-mothernet`"
        ) from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise MothernetError(
            f"{path} is not a donnav2 mothernet checkpoint (no {CHECKPOINT_FORMAT!r} marker); "
            "wrap your network as described in docs/nas.md (bring your own mothernet)"
        )
    if payload.get("version") != CHECKPOINT_VERSION:
        raise MothernetError(
            f"{path} is a mothernet checkpoint of version {payload.get('version')}, this "
            f"donnav2 reads version {CHECKPOINT_VERSION}; re-save it with this version"
        )
    config = MothernetConfig.from_dict(payload.get("config", {}))
    if space is not None and _fixed_part(space) != _fixed_part(config.space):
        mine, theirs = _fixed_part(config.space), _fixed_part(space)
        diff = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise MothernetError(
            f"mothernet {path} was built for space {config.space.name!r}, which differs from "
            f"space {space.name!r} in {', '.join(diff)}; use the space (and resolution) the "
            "mothernet was trained on, or train a mothernet for this space"
        )
    net = build_network(config.space, config.choices)
    state = payload.get("state_dict")
    if not isinstance(state, dict):
        raise MothernetError(f"{path} holds no weights; re-save the mothernet")
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"{len(wrong)} tensor(s) of another shape (e.g. {k}: "
                f"{tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the space)"
            )
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise MothernetError(
            f"the weights in {path} do not match its space {config.space.name!r}: "
            f"{'; '.join(parts)}; the checkpoint's weights must come from "
            "build_network(space, choices) of the same space"
        )
    net.load_state_dict(state)
    net.eval()
    m = payload.get("meta", {})
    meta = CheckpointMeta(
        metrics=dict(m.get("metrics", {})),
        data=dict(m.get("data", {})),
        created=float(m.get("created", 0.0)),
        torch_version=str(m.get("torch_version", "")),
    )
    return net, config, meta


# ---- students from BKD ------------------------------------------------------------------


@dataclass(frozen=True)
class InitReport:
    """Which tensors of a student came from where (state-dict keys)."""

    from_mothernet: tuple[str, ...]  # stem and head tensors copied from the mothernet
    from_bkd: tuple[str, ...]  # slot tensors copied from BKD student weights
    reinitialised: tuple[str, ...]  # tensors left at their fresh initialisation

    def summary(self) -> str:
        return (
            f"{len(self.from_mothernet)} tensors from the mothernet, {len(self.from_bkd)} from "
            f"BKD students, {len(self.reinitialised)} re-initialised"
        )


def init_from_bkd(
    student_net: BlockNetwork,
    mothernet: BlockNetwork,
    library: BkdLibrary,
    choices: Sequence[SlotOption],
) -> InitReport:
    """Initialise ``student_net`` (``build_network(space, choices)``) in place: stem and head
    from ``mothernet``, slot ``i`` from the BKD student weights of ``(i, choices[i])``.

    A tensor whose shape differs from its source keeps its fresh initialisation and is
    reported: e.g. the head's first conv after a narrower last slot, or a slot's first block
    when the previous slot's width differs from the mothernet's (the BKD student was trained
    on the mothernet's features). Raises :class:`~nas.library.LibraryError` when an option has
    no entry or no weights.
    """
    from nas.library import LibraryError

    if len(choices) != len(student_net.slots):
        raise MothernetError(
            f"{len(choices)} choices for a student of {len(student_net.slots)} slots"
        )
    own = student_net.state_dict()
    new: dict[str, torch.Tensor] = {}
    from_m: list[str] = []
    from_b: list[str] = []
    src = mothernet.state_dict()
    for k, v in own.items():
        if (k.startswith("stem.") or k.startswith("head.")) and k in src:
            if tuple(src[k].shape) == tuple(v.shape):
                new[k] = src[k]
                from_m.append(k)
    for i, opt in enumerate(choices):
        wpath = library.weights_path(i, opt)
        if wpath is None or not wpath.is_file():
            raise LibraryError(
                f"the BKD library has no student weights for slot {i} option {opt.label()} "
                f"({wpath}); re-run `donna bkd` with the same --out"
            )
        blob = torch.load(wpath, map_location="cpu", weights_only=True)
        for k, t in blob["blocks"].items():
            key = f"slots.{i}.{k}"
            if key in own and tuple(own[key].shape) == tuple(t.shape):
                new[key] = t
                from_b.append(key)
    student_net.load_state_dict({**own, **new})
    reinit = tuple(k for k in own if k not in new)
    return InitReport(tuple(from_m), tuple(from_b), reinit)
