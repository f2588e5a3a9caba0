"""Search spaces: per-slot options that decode to block specs.

Data flows one way: genome (one option index per slot) -> :class:`SlotOption` per slot ->
:class:`~nas.core.specs.Architecture` (block specs) -> modules or LUT look-ups.
A slot is a stage of the network (DONNA's "block"): its option sets kernel, expansion, SE,
activation, depth and width, uniform inside the stage.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from nas.core.errors import SpaceError
from nas.core.specs import (
    Architecture,
    BlockSpec,
    ClassifierHeadSpec,
    ConvBnActSpec,
    ImageHeadSpec,
    MBConvSpec,
    make_divisible,
    out_size,
)

# Output size / input size of each task's networks.
TASK_SCALES: dict[str, int] = {"classification": 1, "denoising": 1, "super_resolution": 2}

# Per-channel (mean, std) applied to the [0, 1] RGB input before the stem: ``(x - mean) / std``.
InputNorm = tuple[tuple[float, float, float], tuple[float, float, float]]


def check_input_norm(where: str, norm: Any) -> InputNorm | None:
    """``norm`` as a tuple of two 3-tuples of floats (lists from JSON become tuples), or
    ``None``; anything else raises :class:`SpaceError` (3 finite means, 3 positive stds)."""
    if norm is None:
        return None
    try:
        mean, std = (tuple(float(v) for v in part) for part in norm)
    except (TypeError, ValueError):
        mean = std = ()
    ok = (
        len(mean) == 3
        and len(std) == 3
        and all(math.isfinite(v) for v in mean)
        and all(math.isfinite(v) and v > 0 for v in std)
    )
    if not ok:
        raise SpaceError(
            f"{where}: input_norm must be (mean, std) with 3 finite means and 3 positive "
            f"stds (one per RGB channel), e.g. ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)); "
            f"got {norm!r}"
        )
    return mean, std  # type: ignore[return-value]


@dataclass(frozen=True)
class SlotOption:
    """One choice for one slot."""

    kernel: int
    exp_ratio: float
    se_ratio: float
    depth: int
    width: float
    act: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "exp_ratio", float(self.exp_ratio))
        object.__setattr__(self, "se_ratio", float(self.se_ratio))
        object.__setattr__(self, "width", float(self.width))
        if self.depth < 1:
            raise SpaceError(f"depth must be >= 1, got {self.depth}")

    def label(self) -> str:
        se = f" se{self.se_ratio:g}" if self.se_ratio else ""
        return f"k{self.kernel} e{self.exp_ratio:g}{se} d{self.depth} w{self.width:g} {self.act}"


@dataclass(frozen=True)
class StageDef:
    """The fixed part of a slot: base output channels and stride of its first block."""

    out_chs: int
    stride: int


@dataclass(frozen=True)
class SearchSpace:
    name: str
    resolution: int
    stem_chs: int
    stem_stride: int
    stages: tuple[StageDef, ...]
    options: tuple[tuple[SlotOption, ...], ...]
    head_chs: int
    num_classes: int
    stem_act: str = "silu"
    task: str = "classification"
    # (mean, std) per RGB channel applied to the [0, 1] input before the stem (an imported
    # ImageNet mothernet's normalisation); None: the network takes the [0, 1] input as is
    input_norm: InputNorm | None = None

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "input_norm", check_input_norm(f"space {self.name!r}", self.input_norm)
        )
        if self.task not in TASK_SCALES:
            raise SpaceError(
                f"space {self.name!r}: unknown task {self.task!r}; choose one of: "
                f"{', '.join(TASK_SCALES)}"
            )
        object.__setattr__(self, "stages", tuple(self.stages))
        object.__setattr__(self, "options", tuple(tuple(o) for o in self.options))
        if len(self.stages) != len(self.options):
            raise SpaceError(
                f"space {self.name!r}: {len(self.stages)} stages but options for "
                f"{len(self.options)} slots"
            )
        for i, opts in enumerate(self.options):
            if not opts:
                raise SpaceError(f"space {self.name!r}: slot {i} has no options left")
        if self.resolution < 8:
            raise SpaceError(f"resolution must be >= 8, got {self.resolution}")

    # ---- sizes -------------------------------------------------------------------------
    @property
    def n_slots(self) -> int:
        return len(self.stages)

    def n_options(self) -> list[int]:
        return [len(o) for o in self.options]

    def log10_size(self) -> float:
        """log10 of the number of architectures in the space."""
        return sum(math.log10(len(o)) for o in self.options)

    def stage_chs(self, slot: int, width: float) -> int:
        return make_divisible(self.stages[slot].out_chs * width)

    def reference_width(self, slot: int) -> float:
        """The width a mothernet-like network uses in ``slot``: 1.0 when the slot offers it,
        else the slot's widest width."""
        widths = {o.width for o in self.options[slot]}
        return 1.0 if 1.0 in widths else max(widths)

    def reference_in_chs(self) -> list[int]:
        """Input channels of each slot when every earlier slot has its
        :meth:`reference_width`: the stem's for slot 0, else the previous stage's channels."""
        chs = [self.stem_chs]
        for i in range(self.n_slots - 1):
            chs.append(self.stage_chs(i, self.reference_width(i)))
        return chs

    def slot_input_sizes(self) -> list[int]:
        """Input height (= width) of each slot; it does not depend on the choices."""
        size = out_size(self.resolution, self.stem_stride)
        sizes = []
        for st in self.stages:
            sizes.append(size)
            size = out_size(size, st.stride)
        return sizes

    # ---- decoding ------------------------------------------------------------------------
    def stem_spec(self) -> ConvBnActSpec:
        r = self.resolution
        return ConvBnActSpec(3, self.stem_chs, 3, self.stem_stride, self.stem_act, r, r)

    def slot_blocks(self, slot: int, option: SlotOption, in_chs: int) -> list[MBConvSpec]:
        """The block specs of one slot for one option, given the slot's input channels."""
        size = self.slot_input_sizes()[slot]
        out_chs = self.stage_chs(slot, option.width)
        stride = self.stages[slot].stride
        blocks = []
        for d in range(option.depth):
            blocks.append(
                MBConvSpec(
                    in_chs=in_chs if d == 0 else out_chs,
                    out_chs=out_chs,
                    kernel=option.kernel,
                    stride=stride if d == 0 else 1,
                    exp_ratio=option.exp_ratio,
                    se_ratio=option.se_ratio,
                    act=option.act,
                    in_h=size if d == 0 else out_size(size, stride),
                    in_w=size if d == 0 else out_size(size, stride),
                )
            )
        return blocks

    def option_blocks(self, in_chs: Sequence[int] | None = None) -> list[list[list[MBConvSpec]]]:
        """The blocks of every option of every slot (``[slot][option]``), each slot decoded
        with the input channels ``in_chs[slot]`` (default :meth:`reference_in_chs`)."""
        chs = self.reference_in_chs() if in_chs is None else list(in_chs)
        if len(chs) != self.n_slots:
            raise SpaceError(f"space {self.name!r} needs {self.n_slots} input channel counts")
        return [
            [self.slot_blocks(i, o, chs[i]) for o in opts] for i, opts in enumerate(self.options)
        ]

    @property
    def scale(self) -> int:
        """Output/input size ratio of image-to-image tasks (1 for denoising, 2 for x2 SR)."""
        return TASK_SCALES[self.task]

    def head_spec(self, in_chs: int) -> ClassifierHeadSpec | ImageHeadSpec:
        size = self.slot_input_sizes()[-1]
        size = out_size(size, self.stages[-1].stride)
        if self.task != "classification":
            return ImageHeadSpec(in_chs, 3, 3, self.scale, size, size)
        return ClassifierHeadSpec(
            in_chs, self.head_chs, self.num_classes, self.stem_act, size, size
        )

    def choices(self, genome: Sequence[int]) -> list[SlotOption]:
        if len(genome) != self.n_slots:
            raise SpaceError(
                f"space {self.name!r} has {self.n_slots} slots, genome has {len(genome)} genes"
            )
        out = []
        for i, g in enumerate(genome):
            g = int(g)
            if not 0 <= g < len(self.options[i]):
                raise SpaceError(
                    f"gene {i} = {g} is out of range: slot {i} has {len(self.options[i])} options"
                )
            out.append(self.options[i][g])
        return out

    def architecture(self, choices: Sequence[SlotOption]) -> Architecture:
        if len(choices) != self.n_slots:
            raise SpaceError(f"space {self.name!r} needs {self.n_slots} choices")
        slots: list[tuple[MBConvSpec, ...]] = []
        in_chs = self.stem_chs
        for i, opt in enumerate(choices):
            slots.append(tuple(self.slot_blocks(i, opt, in_chs)))
            in_chs = slots[-1][-1].out_chs
        return Architecture(self.stem_spec(), tuple(slots), self.head_spec(in_chs))

    def decode(self, genome: Sequence[int]) -> Architecture:
        return self.architecture(self.choices(genome))

    def block_specs(self) -> list[BlockSpec]:
        """Every distinct block spec any architecture of the space can contain, in a fixed order
        (stem, slot by slot, head): the rows of this space's latency LUT."""
        seen: dict[BlockSpec, None] = {self.stem_spec(): None}
        in_set = [self.stem_chs]
        for i in range(self.n_slots):
            outs: dict[int, None] = {}
            for opt in self.options[i]:
                for in_chs in in_set:
                    for spec in self.slot_blocks(i, opt, in_chs):
                        seen.setdefault(spec, None)
                outs[self.stage_chs(i, opt.width)] = None
            in_set = list(outs)
        for in_chs in in_set:
            seen.setdefault(self.head_spec(in_chs), None)
        return list(seen)

    def describe(self) -> str:
        """Slots, options per slot, size and distinct blocks, for people (``donna space``)."""
        lines = [f"space {self.name} ({self.task}) @{self.resolution}px, {self.n_slots} slots"]
        for i, (stage, size) in enumerate(zip(self.stages, self.slot_input_sizes())):
            lines.append(
                f"  slot {i}: {len(self.options[i])} options, base out {stage.out_chs} ch, "
                f"stride {stage.stride}, input {size}x{size}"
            )
        lines.append(
            f"architectures: 10^{self.log10_size():.2f}; distinct blocks for the LUT: "
            f"{len(self.block_specs())}"
        )
        if self.input_norm is not None:
            mean, std = self.input_norm
            lines.append(
                f"input: (x - mean) / std on [0, 1] RGB before the stem, mean "
                f"({', '.join(f'{v:g}' for v in mean)}), std ({', '.join(f'{v:g}' for v in std)})"
            )
        return "\n".join(lines)

    # ---- persistence --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SearchSpace:
        try:
            return cls(
                name=d["name"],
                resolution=d["resolution"],
                stem_chs=d["stem_chs"],
                stem_stride=d["stem_stride"],
                stages=tuple(StageDef(**s) for s in d["stages"]),
                options=tuple(tuple(SlotOption(**o) for o in opts) for opts in d["options"]),
                head_chs=d["head_chs"],
                num_classes=d["num_classes"],
                stem_act=d.get("stem_act", "silu"),
                task=d.get("task", "classification"),
                input_norm=d.get("input_norm"),  # absent in files written before it existed
            )
        except (KeyError, TypeError) as exc:
            raise SpaceError(f"not a search space description: {exc}") from None

    def with_options(self, options: Sequence[Sequence[SlotOption]]) -> SearchSpace:
        return replace(self, options=tuple(tuple(o) for o in options))

    def with_input_norm(self, input_norm: InputNorm | None) -> SearchSpace:
        """This space with another input normalisation (a named space paired with an imported
        mothernet takes the mothernet's: its networks must see the input as the mothernet)."""
        return replace(self, input_norm=input_norm)


def product_options(
    kernels: Sequence[int],
    exp_ratios: Sequence[float],
    se_ratios: Sequence[float],
    depths: Sequence[int],
    widths: Sequence[float],
    acts: Sequence[str],
) -> tuple[SlotOption, ...]:
    """Every combination, in a fixed order (the genome's index order)."""
    return tuple(
        SlotOption(k, e, s, d, w, a)
        for k, e, s, d, w, a in itertools.product(
            kernels, exp_ratios, se_ratios, depths, widths, acts
        )
    )


# EfficientNet-B0 stages: (out_chs, stride). Its own choices (kernel, expansion, depth) are in
# B0_CHOICES; the search space offers them among others.
B0_STAGES = (
    StageDef(16, 1),
    StageDef(24, 2),
    StageDef(40, 2),
    StageDef(80, 2),
    StageDef(112, 1),
    StageDef(192, 2),
    StageDef(320, 1),
)
B0_KERNELS = (3, 3, 5, 3, 5, 5, 3)
B0_DEPTHS = (1, 2, 2, 3, 3, 4, 1)


def default_space(
    resolution: int = 224,
    widths: Sequence[float] = (0.75, 1.0),
    num_classes: int = 1000,
) -> SearchSpace:
    """EfficientNet-B0-like: 7 slots; kernel {3,5,7}, expansion {2,3,4,6}, SE on/off,
    depth 1-4, width multipliers."""
    opts = product_options((3, 5, 7), (2, 3, 4, 6), (0.0, 0.25), (1, 2, 3, 4), widths, ("silu",))
    return SearchSpace(
        name="default",
        resolution=resolution,
        stem_chs=32,
        stem_stride=2,
        stages=B0_STAGES,
        options=(opts,) * len(B0_STAGES),
        head_chs=1280,
        num_classes=num_classes,
    )


def quick_space(resolution: int = 32, num_classes: int = 10) -> SearchSpace:
    """Small space for tests and the demo (CIFAR-sized input): 3 slots of 24 options each,
    13,824 architectures, 74 distinct blocks."""
    opts = product_options((3, 5, 7), (3, 6), (0.0, 0.25), (1, 2), (1.0,), ("silu",))
    return SearchSpace(
        name="quick",
        resolution=resolution,
        stem_chs=16,
        stem_stride=1,
        stages=(StageDef(24, 2), StageDef(40, 2), StageDef(80, 2)),
        options=(opts,) * 3,
        head_chs=256,
        num_classes=num_classes,
    )


def quick_image_space(task: str, resolution: int = 32) -> SearchSpace:
    """Small image-to-image space (denoising, x2 super-resolution): full resolution
    throughout (every stride 1), 3 slots of 24 options, an :class:`ImageHeadSpec` head."""
    opts = product_options((3, 5, 7), (2, 4), (0.0, 0.25), (1, 2), (1.0,), ("relu",))
    short = {"denoising": "denoise", "super_resolution": "sr"}[task]
    return SearchSpace(
        name=f"quick-{short}",
        resolution=resolution,
        stem_chs=16,
        stem_stride=1,
        stages=(StageDef(16, 1), StageDef(24, 1), StageDef(16, 1)),
        options=(opts,) * 3,
        head_chs=0,
        num_classes=0,
        stem_act="relu",
        task=task,
    )


def quick_denoise_space(resolution: int = 32) -> SearchSpace:
    return quick_image_space("denoising", resolution)


def quick_sr_space(resolution: int = 32) -> SearchSpace:
    return quick_image_space("super_resolution", resolution)


SPACES: dict[str, Callable[..., SearchSpace]] = {
    "quick": quick_space,
    "default": default_space,
    "quick-denoise": quick_denoise_space,
    "quick-sr": quick_sr_space,
}
# The space `donna run` uses for each task when none is named.
TASK_SPACES: dict[str, str] = {
    "classification": "quick",
    "denoising": "quick-denoise",
    "super_resolution": "quick-sr",
}


def get_space(name: str, resolution: int | None = None) -> SearchSpace:
    """A registered space by name, at its own or the given input resolution."""
    factory = SPACES.get(name)
    if factory is None:
        raise SpaceError(f"unknown search space {name!r}; choose one of: {', '.join(SPACES)}")
    return factory() if resolution is None else factory(resolution=resolution)


def task_space(task: str, name: str | None = None, resolution: int | None = None) -> SearchSpace:
    """The space ``name`` (default: the task's quick space, :data:`TASK_SPACES`) for ``task``;
    a space of another task is refused with the one to use."""
    if task not in TASK_SPACES:
        raise SpaceError(f"unknown task {task!r}; choose one of: {', '.join(TASK_SPACES)}")
    space = get_space(name or TASK_SPACES[task], resolution)
    if space.task != task:
        raise SpaceError(
            f"space {space.name!r} is for {space.task}, not {task}; use --space "
            f"{TASK_SPACES[task]} (or leave --space out)"
        )
    return space


def random_genomes(space: SearchSpace, n: int, seed: int) -> list[list[int]]:
    """``n`` distinct random genomes (fewer if the space is smaller), from one seeded RNG."""
    import numpy as np

    rng = np.random.default_rng(seed)
    seen: dict[tuple[int, ...], None] = {}
    limit = min(n, round(10 ** space.log10_size())) if space.log10_size() < 9 else n
    for _ in range(100 * n):
        if len(seen) >= limit:
            break
        g = tuple(int(rng.integers(k)) for k in space.n_options())
        seen.setdefault(g, None)
    return [list(g) for g in seen]
