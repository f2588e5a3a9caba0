"""Block specs: frozen, hashable descriptions of network pieces.

A spec (which includes its input height and width) is the one key of the latency LUT and
the one input of the module builder (:mod:`nas.core.modules`). Derived sizes (``mid_chs``,
``se_chs``, output size) come from the functions here and nowhere else.

Nothing in this module imports torch: specs are cheap to create, hash and serialise.
"""

from __future__ import annotations

import itertools
import json
import numbers
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from nas.core.errors import SpecError

ACTIVATIONS = ("relu", "relu6", "silu", "hswish")
KERNELS = (1, 3, 5, 7, 9)
STRIDES = (1, 2)


def make_divisible(v: float, divisor: int = 8, round_limit: float = 0.9) -> int:
    """Round ``v`` to a multiple of ``divisor`` without going more than 10% below it (timm)."""
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def out_size(size: int, stride: int) -> int:
    """Spatial size after a 'same'-padded odd-kernel conv of ``stride``."""
    return (size + stride - 1) // stride


def _check(cond: bool, spec: object, msg: str) -> None:
    if not cond:
        raise SpecError(f"invalid {type(spec).__name__}: {msg} (got {spec!r})")


def _check_common(spec: Any) -> None:
    _check(spec.in_chs > 0 and spec.in_h > 0 and spec.in_w > 0, spec, "sizes must be positive")
    _check(spec.act in ACTIVATIONS, spec, f"act must be one of {ACTIVATIONS}")


@dataclass(frozen=True)
class ConvBnActSpec:
    """A plain conv + BatchNorm + activation, e.g. the stem of an EfficientNet."""

    kind: ClassVar[str] = "conv_bn_act"
    in_chs: int
    out_chs: int
    kernel: int
    stride: int
    act: str
    in_h: int
    in_w: int

    def __post_init__(self) -> None:
        _check_common(self)
        _check(self.out_chs > 0, self, "out_chs must be positive")
        _check(self.kernel in KERNELS, self, f"kernel must be one of {KERNELS}")
        _check(self.stride in STRIDES, self, f"stride must be one of {STRIDES}")


@dataclass(frozen=True)
class MBConvSpec:
    """An inverted-residual (MBConv) block as in timm's ``InvertedResidual``.

    ``exp_ratio == 1`` gives a depthwise-separable block (no expansion conv);
    ``se_ratio == 0`` disables squeeze-excite. The residual is used when the block keeps
    its shape (stride 1 and ``in_chs == out_chs``).
    """

    kind: ClassVar[str] = "mbconv"
    in_chs: int
    out_chs: int
    kernel: int
    stride: int
    exp_ratio: float
    se_ratio: float
    act: str
    in_h: int
    in_w: int

    def __post_init__(self) -> None:
        # Canonical numeric types: 6 and 6.0 must give the same key.
        object.__setattr__(self, "exp_ratio", float(self.exp_ratio))
        object.__setattr__(self, "se_ratio", float(self.se_ratio))
        _check_common(self)
        _check(self.out_chs > 0, self, "out_chs must be positive")
        _check(self.kernel in KERNELS and self.kernel > 1, self, "kernel must be 3, 5, 7 or 9")
        _check(self.stride in STRIDES, self, f"stride must be one of {STRIDES}")
        _check(self.exp_ratio >= 1.0, self, "exp_ratio must be >= 1")
        _check(0.0 <= self.se_ratio < 1.0, self, "se_ratio must be in [0, 1)")


@dataclass(frozen=True)
class ClassifierHeadSpec:
    """Conv 1x1 to ``head_chs`` + BN + act, global average pool, linear classifier."""

    kind: ClassVar[str] = "classifier_head"
    in_chs: int
    head_chs: int
    num_classes: int
    act: str
    in_h: int
    in_w: int

    def __post_init__(self) -> None:
        _check_common(self)
        _check(self.head_chs > 0 and self.num_classes > 0, self, "sizes must be positive")


@dataclass(frozen=True)
class ImageHeadSpec:
    """Image-to-image head: conv kxk (with bias, no BN, no activation) to
    ``out_chs * scale**2`` channels, then pixel shuffle by ``scale`` (1 = none). Denoising
    (scale 1) and super-resolution (scale 2) networks end with it; the network adds the global
    residual (the noisy input, or the upsampled low-res input) outside the block."""

    kind: ClassVar[str] = "image_head"
    in_chs: int
    out_chs: int
    kernel: int
    scale: int
    in_h: int
    in_w: int

    def __post_init__(self) -> None:
        _check(self.in_chs > 0 and self.in_h > 0 and self.in_w > 0, self, "sizes must be positive")
        _check(self.out_chs > 0, self, "out_chs must be positive")
        _check(self.kernel in KERNELS, self, f"kernel must be one of {KERNELS}")
        _check(self.scale in (1, 2, 3, 4), self, "scale must be 1, 2, 3 or 4")


BlockSpec = ConvBnActSpec | MBConvSpec | ClassifierHeadSpec | ImageHeadSpec
SPEC_TYPES: dict[str, type] = {
    t.kind: t for t in (ConvBnActSpec, MBConvSpec, ClassifierHeadSpec, ImageHeadSpec)
}


# ---- derived values: the one place each is computed ---------------------------------------


def mid_chs(spec: MBConvSpec) -> int:
    """Channels after the expansion conv."""
    if spec.exp_ratio == 1.0:
        return spec.in_chs
    return make_divisible(spec.in_chs * spec.exp_ratio)


def se_chs(spec: MBConvSpec) -> int:
    """Reduced channels inside squeeze-excite (0 when SE is off); relative to ``in_chs`` as in
    EfficientNet."""
    if spec.se_ratio == 0.0:
        return 0
    return max(1, round(spec.in_chs * spec.se_ratio))


def has_skip(spec: MBConvSpec) -> bool:
    return spec.stride == 1 and spec.in_chs == spec.out_chs


def out_shape(spec: BlockSpec) -> tuple[int, ...]:
    """Output shape without batch: (C, H, W) for feature maps, (classes,) for a classifier."""
    if isinstance(spec, ClassifierHeadSpec):
        return (spec.num_classes,)
    if isinstance(spec, ImageHeadSpec):
        return (spec.out_chs, spec.in_h * spec.scale, spec.in_w * spec.scale)
    return (spec.out_chs, out_size(spec.in_h, spec.stride), out_size(spec.in_w, spec.stride))


def in_shape(spec: BlockSpec) -> tuple[int, int, int]:
    """Input shape without batch, NCHW order: (C, H, W)."""
    return (spec.in_chs, spec.in_h, spec.in_w)


def macs(spec: BlockSpec) -> int:
    """Multiply-accumulates of one forward pass (batch 1): the FLOPs proxy used when no LUT
    is given, and a feature of the latency predictor."""
    h, w = spec.in_h, spec.in_w
    if isinstance(spec, ConvBnActSpec):
        oh, ow = out_size(h, spec.stride), out_size(w, spec.stride)
        return oh * ow * spec.out_chs * spec.in_chs * spec.kernel**2
    if isinstance(spec, ClassifierHeadSpec):
        return h * w * spec.in_chs * spec.head_chs + spec.head_chs * spec.num_classes
    if isinstance(spec, ImageHeadSpec):
        return h * w * spec.in_chs * spec.out_chs * spec.scale**2 * spec.kernel**2
    mid = mid_chs(spec)
    oh, ow = out_size(h, spec.stride), out_size(w, spec.stride)
    total = 0
    if spec.exp_ratio != 1.0:
        total += h * w * spec.in_chs * mid
    total += oh * ow * mid * spec.kernel**2
    rd = se_chs(spec)
    if rd:
        total += 2 * mid * rd
    total += oh * ow * mid * spec.out_chs
    return total


def params(spec: BlockSpec) -> int:
    """Weights (convs and linears, BN excluded: it is folded at conversion)."""
    if isinstance(spec, ConvBnActSpec):
        return spec.out_chs * spec.in_chs * spec.kernel**2
    if isinstance(spec, ClassifierHeadSpec):
        return spec.in_chs * spec.head_chs + (spec.head_chs + 1) * spec.num_classes
    if isinstance(spec, ImageHeadSpec):
        n_out = spec.out_chs * spec.scale**2
        return spec.in_chs * n_out * spec.kernel**2 + n_out
    mid = mid_chs(spec)
    total = mid * spec.kernel**2 + mid * spec.out_chs
    if spec.exp_ratio != 1.0:
        total += spec.in_chs * mid
    rd = se_chs(spec)
    if rd:
        total += 2 * mid * rd + mid + rd
    return total


# ---- canonical serialisation -----------------------------------------------------------------


def spec_to_dict(spec: BlockSpec) -> dict[str, Any]:
    return {"kind": spec.kind, **asdict(spec)}


def spec_key(spec: BlockSpec) -> str:
    """The canonical serialisation: compact JSON with sorted keys. Equal specs give equal keys;
    the key of a spec never changes between runs or machines (tested)."""
    return json.dumps(spec_to_dict(spec), sort_keys=True, separators=(",", ":"))


def _field_type_error(kind: str, name: str, declared: str, value: Any) -> str | None:
    """Why ``value`` cannot be field ``name`` (declared ``int``, ``float`` or ``str``)."""
    if declared == "str":
        ok, want = isinstance(value, str), "a string"
    elif declared == "float":
        ok, want = isinstance(value, numbers.Real), "a number"
    else:
        ok, want = isinstance(value, numbers.Integral), "a whole number"
    if ok and not isinstance(value, bool):
        return None
    return f"field {name} of a {kind} spec must be {want}, got {json.dumps(value, default=str)}"


def spec_from_dict(data: Mapping[str, Any]) -> BlockSpec:
    """The spec a :func:`spec_to_dict` mapping describes; anything else (not a mapping, an
    unknown kind, missing or extra fields, a field of the wrong type) raises
    :class:`SpecError` naming the problem."""
    if not isinstance(data, Mapping):
        raise SpecError(
            f"a block spec is an object with a 'kind' and its fields, got "
            f"{json.dumps(data, default=str)[:80]}"
        )
    data = dict(data)
    kind = data.pop("kind", None)
    cls = SPEC_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise SpecError(f"unknown block kind {kind!r}; known kinds: {sorted(SPEC_TYPES)}")
    names = {f.name: str(f.type) for f in fields(cls)}
    if set(data) != set(names):
        raise SpecError(
            f"a {kind} spec needs exactly the fields {sorted(names)}; got {sorted(data)}"
        )
    for name, declared in names.items():
        problem = _field_type_error(kind, name, declared, data[name])
        if problem:
            raise SpecError(problem)
    return cls(**data)


def spec_from_key(key: str) -> BlockSpec:
    try:
        data = json.loads(key)
    except json.JSONDecodeError as exc:
        raise SpecError(f"not a block spec key: {key!r} ({exc})") from None
    return spec_from_dict(data)


def describe(spec: BlockSpec) -> str:
    """A short human label for progress bars and reports (never used as a key)."""
    size = f"{spec.in_h}x{spec.in_w}"
    if isinstance(spec, MBConvSpec):
        se = f" se{spec.se_ratio:g}" if spec.se_ratio else ""
        return (
            f"mbconv k{spec.kernel} e{spec.exp_ratio:g}{se} s{spec.stride} "
            f"{spec.in_chs}->{spec.out_chs} {spec.act} @{size}"
        )
    if isinstance(spec, ConvBnActSpec):
        return f"conv k{spec.kernel} s{spec.stride} {spec.in_chs}->{spec.out_chs} @{size}"
    if isinstance(spec, ImageHeadSpec):
        return f"image head k{spec.kernel} {spec.in_chs}->{spec.out_chs} x{spec.scale} @{size}"
    return f"head {spec.in_chs}->{spec.head_chs}->{spec.num_classes} @{size}"


# ---- architectures -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Architecture:
    """A whole network: its stem, its slots (stages; each a tuple of blocks) and its head.

    Decoded once from a genome by :meth:`nas.core.spaces.SearchSpace.decode`; builders, pricers,
    the filter and BKD read the structure from here instead of recomputing slot boundaries.
    ``blocks`` is the flat order (stem, every slot's blocks, head) that a LUT sums and a
    converter builds; :meth:`key` and :meth:`to_list` serialise that flat order.
    """

    stem: BlockSpec
    slots: tuple[tuple[BlockSpec, ...], ...]
    head: BlockSpec

    def __post_init__(self) -> None:
        object.__setattr__(self, "slots", tuple(tuple(s) for s in self.slots))
        for i, slot in enumerate(self.slots):
            if not slot:
                raise SpecError(f"slot {i} of an architecture has no blocks")
        blocks = self.blocks
        for i, (a, b) in enumerate(itertools.pairwise(blocks)):
            shape = out_shape(a)
            if len(shape) != 3 or shape != in_shape(b):
                raise SpecError(
                    f"block {i + 1} ({describe(b)}) expects input {in_shape(b)} but block {i} "
                    f"({describe(a)}) gives {shape}"
                )

    @property
    def blocks(self) -> tuple[BlockSpec, ...]:
        """Stem, the blocks of every slot in order, head."""
        return (self.stem, *(b for slot in self.slots for b in slot), self.head)

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    def slot_out_chs(self) -> list[int]:
        """Input channels of every slot and (last) the output channels of the last slot."""
        return [self.stem.out_chs, *(slot[-1].out_chs for slot in self.slots)]

    def __iter__(self) -> Iterator[BlockSpec]:
        return iter(self.blocks)

    def __len__(self) -> int:
        return len(self.blocks)

    @classmethod
    def from_blocks(cls, blocks: Sequence[BlockSpec]) -> Architecture:
        """An architecture from a flat block list (first = stem, last = head). A flat list has
        no slot boundaries: the body becomes one slot."""
        blocks = tuple(blocks)
        if len(blocks) < 2:
            raise SpecError("an architecture needs at least a stem and a head")
        body = blocks[1:-1]
        return cls(blocks[0], (body,) if body else (), blocks[-1])

    def to_list(self) -> list[dict[str, Any]]:
        """The flat block list (what ``--model ARCH.json`` reads and the LUT sums)."""
        return [spec_to_dict(b) for b in self.blocks]

    def to_dict(self) -> dict[str, Any]:
        """Stem, slots and head, with the slot structure kept."""
        return {
            "stem": spec_to_dict(self.stem),
            "slots": [[spec_to_dict(b) for b in slot] for slot in self.slots],
            "head": spec_to_dict(self.head),
        }

    @classmethod
    def from_list(cls, items: Iterable[Mapping[str, Any]]) -> Architecture:
        """The architecture of a flat block list (as :meth:`to_list` writes); anything else
        raises :class:`SpecError` naming the bad block."""
        if isinstance(items, (str, bytes, Mapping)) or not isinstance(items, Iterable):
            raise SpecError(
                "an architecture is a list of block specs (as Architecture.to_list() writes), "
                f"got {json.dumps(items, default=str)[:60]}"
            )
        blocks = []
        for i, d in enumerate(items):
            try:
                blocks.append(spec_from_dict(d))
            except SpecError as exc:
                raise SpecError(f"block {i}: {exc}") from None
        return cls.from_blocks(blocks)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Architecture:
        try:
            return cls(
                spec_from_dict(d["stem"]),
                tuple(tuple(spec_from_dict(b) for b in slot) for slot in d["slots"]),
                spec_from_dict(d["head"]),
            )
        except (KeyError, TypeError) as exc:
            raise SpecError(f"not an architecture description ({exc})") from None

    def key(self) -> str:
        """Canonical serialisation of the flat block order (the conversion cache key)."""
        return json.dumps(self.to_list(), sort_keys=True, separators=(",", ":"))
