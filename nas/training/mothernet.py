"""Mothernets: the trained networks whose blocks BKD distils.

A mothernet is a :class:`~nas.training.networks.BlockNetwork` built from one
:class:`~nas.core.spaces.SlotOption` per slot of a :class:`~nas.core.spaces.SearchSpace`
(:class:`MothernetConfig`; :func:`default_teacher_choices`). For the ``quick`` space the
teacher is a small EfficientNet-like CIFAR classifier; for ``default`` it is EfficientNet-B0
(its own per-stage kernels and depths, expansion 6, SE 0.25) at the space's resolution and
width; the image spaces (``quick-denoise``, ``quick-sr``) give small full-resolution denoising
and x2 super-resolution networks of the same block family, with a global residual.
:func:`train_mothernet` trains one with the one training loop
(:func:`nas.training.loop.fit`); :mod:`nas.training.checkpoint` saves and reloads it.

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
   choices would (:func:`~nas.training.networks.check_network` verifies it).
3. ``save_checkpoint(path, net, config, metrics={}, data_desc={...})``
   (:mod:`nas.training.checkpoint`). A checkpoint holds weights only, so a network of your
   own modules must have the same state-dict keys and shapes as
   ``build_network(config.space, config.choices)`` to reload; otherwise pass the network
   itself to the lower-level BKD functions.

This module imports torch: import it lazily (inside functions) from anything a CLI loads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch.nn import functional as F

from nas.core.errors import MothernetError
from nas.core.spaces import B0_DEPTHS, B0_KERNELS, B0_STAGES, SearchSpace, SlotOption
from nas.training.device import CPU, TrainDevice
from nas.training.loop import (
    FitState,
    cosine_schedule,
    evaluate_metric,
    first_last_tenth,
    fit,
    mean,
    recalibrate_bn,
    total_steps,
)
from nas.training.networks import BlockNetwork, build_network

if TYPE_CHECKING:
    from nas.data.batches import TrainingData


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
        width = space.reference_width(i)
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
        return self.space.architecture(self.choices).slot_out_chs()

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


def build_mothernet(config: MothernetConfig) -> BlockNetwork:
    return build_network(config.space, config.choices, seed=config.seed)


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

BN_CALIB_SAMPLES = 1024


def task_loss(task: str, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy for classification, L1 for the image tasks."""
    if task == "classification":
        return F.cross_entropy(out, target)
    return F.l1_loss(out, target)


def _check_data(net: BlockNetwork, data: TrainingData) -> None:
    if data.task != net.task:
        raise MothernetError(
            f"the network is a {net.task} network but the data is for {data.task}; load the "
            "data of the mothernet's task"
        )
    if data.n_train < 2 or data.n_val == 0:
        raise MothernetError(
            "training needs at least 2 training and 1 validation examples; got "
            f"{data.n_train} and {data.n_val}"
        )


def _optimizer(net: BlockNetwork, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in net.parameters() if p.requires_grad]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(
        params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay
    )


def train_mothernet(
    net: BlockNetwork,
    data: TrainingData,
    *,
    epochs: float = _TRAIN.epochs,
    batch_size: int = _TRAIN.batch_size,
    lr: float = _TRAIN.lr,
    seed: int = _TRAIN.seed,
    weight_decay: float = _TRAIN.weight_decay,
    optimizer: str = _TRAIN.optimizer,
    augment: bool = _TRAIN.augment,
    device: TrainDevice = CPU,
    data_workers: int = 0,
    progress: bool = True,
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
) -> dict[str, Any]:
    """Train ``net`` in place on ``data``'s training split and evaluate on its validation
    split.

    Cross-entropy (classification) or L1 (image tasks); AdamW or SGD with a cosine learning
    rate over all steps; a fresh shuffle per epoch (a last batch of one is skipped) and random
    horizontal flips (plus random resized crops for streamed images). Deterministic for a
    ``seed`` and a thread count (the batch order and the flips come from a generator seeded
    with it; the thread count is whatever ``torch.set_num_threads`` says). ``epochs`` may be
    fractional. ``device``: where to train (the network is left there); ``data_workers``:
    DataLoader processes for streamed data. ``on_epoch(epoch, metrics)`` is called after every
    (partial) epoch. Returns the metrics: task, metric name and value, first/last train-loss
    means (first and last tenth of the steps), steps, seconds and the settings.
    """
    cfg = TrainConfig(epochs, batch_size, lr, weight_decay, optimizer, seed, augment)
    _check_data(net, data)
    from nas.data import task_metric

    n = data.n_train
    bs = min(cfg.batch_size, n)
    per_epoch = math.ceil(n / bs)
    total = total_steps(cfg.epochs, n, bs)
    torch.manual_seed(cfg.seed)
    name, _ = task_metric(net.task)
    history: list[dict[str, float]] = []
    net.to(device.torch_device())

    def end_of_epoch(state: FitState) -> None:
        if on_epoch is None and state.step < total:
            return
        calib = data.calib_batches(BN_CALIB_SAMPLES, max(bs, 2), workers=data_workers)
        recalibrate_bn(net, calib, device)
        m = {
            "epoch": float(state.epoch),
            "loss": mean(state.losses[-per_epoch:]),
            name: evaluate(net, data, device=device, workers=data_workers),
        }
        history.append(m)
        if on_epoch is not None:
            on_epoch(state.epoch, m)

    def loss_fn(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        return task_loss(net.task, net(xb.contiguous(memory_format=torch.channels_last)), yb)

    t0 = time.perf_counter()
    state = fit(
        net,
        loss_fn,
        data.train_batches(bs, augment=cfg.augment, workers=data_workers),
        optimizer=_optimizer(net, cfg),
        schedule=cosine_schedule,
        total=total,
        generator=torch.Generator().manual_seed(cfg.seed),
        device=device,
        progress=f"train mothernet ({net.task})" if progress else None,
        on_epoch=end_of_epoch,
    )
    first, last = first_last_tenth(state.losses)
    return {
        "task": net.task,
        "metric": name,
        "value": history[-1][name],
        "train_loss_first": first,
        "train_loss_last": last,
        "steps": state.step,
        "seconds": round(time.perf_counter() - t0, 3),
        "threads": torch.get_num_threads(),
        "settings": asdict(cfg),
        **({} if device.is_cpu else {"train_device": device.describe()}),
    }


def evaluate(
    net: BlockNetwork,
    data: TrainingData,
    batch_size: int = 256,
    *,
    device: TrainDevice = CPU,
    workers: int = 0,
) -> float:
    """The task's metric on the validation split: top-1 accuracy (classification) or PSNR in
    dB (image tasks, outputs clamped to [0, 1]); ``net`` must be on ``device``."""
    return evaluate_metric(net, net.task, data.val_batches(batch_size, workers=workers), device)
