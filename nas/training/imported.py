"""Mothernets imported from torchvision or timm with their ImageNet weights file.

``torchvision:efficientnet_b0:PATH``, ``timm:efficientnet_b0:PATH`` (and the MobileNetV2s,
:data:`SUPPORTED`) name a model of a library and the weights file a user brings; nothing is
downloaded. :func:`import_mothernet` builds the library's model without weights, loads the file
into it, reads the model's structure (stem, MBConv blocks grouped into stages, head) into a
:class:`~nas.core.spaces.SearchSpace` built around it (:func:`space_around`: each slot offers
the mothernet's own option among others), copies every weight (convolutions, BatchNorm with
its running statistics, squeeze-excite, classifier) into ``build_network(space, choices)`` and
checks that both give the same logits on a seeded random batch. The source's input
normalisation (ImageNet mean and std, :func:`~nas.training.import_source.source_input_norm`)
becomes the space's ``input_norm``, so the network normalises inside (its stem) and takes the
[0, 1] RGB every donnav2 data source gives: the check compares ``source((x - mean) / std)``
with ``ours(x)`` on a [0, 1] batch. Saved with
:func:`~nas.training.checkpoint.save_checkpoint`, the result is an ordinary mothernet
checkpoint.

Both models' blocks are ours exactly: EfficientNet-B0's MBConv (SiLU, SE 0.25 of the block's
input channels: torchvision's ``max(1, in // 4)`` and timm's ``round(in * 0.25)`` equal ours
for B0's channels) and MobileNetV2's inverted residual (ReLU6, no SE; its first block has no
expansion conv); every BatchNorm of both uses eps 1e-5, as ours (another eps is refused).

The library side (supported models, the spec, reading the weights file, building the
library's model) is :mod:`nas.training.import_source`; its public names are re-exported here.
torch, torchvision and timm are imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.core.errors import MothernetError
from nas.core.spaces import InputNorm, SearchSpace, SlotOption, StageDef, product_options
from nas.core.specs import ACTIVATIONS, has_skip, mid_chs, se_chs
from nas.training.import_source import (
    IMPORT_RESOLUTION,
    LIBRARIES,
    SUPPORTED,
    MothernetSpec,
    build_source,
    parse_mothernet_spec,
    read_state_dict,
    source_input_norm,
)

if TYPE_CHECKING:
    from torch import nn

    from nas.training.mothernet import MothernetConfig
    from nas.training.networks import BlockNetwork

__all__ = [
    "IMPORT_RESOLUTION",
    "LIBRARIES",
    "SUPPORTED",
    "MothernetSpec",
    "copy_weights",
    "import_mothernet",
    "import_summary",
    "imported_data_desc",
    "max_logit_diff",
    "parse_mothernet_spec",
    "slot_options",
    "source_input_norm",
    "space_around",
]

# The space around the mothernet: its own option is always one of each slot's options.
KERNELS = (3, 5, 7)
EXPANSIONS = (3.0, 4.0, 6.0)  # beside the mothernet's own, in slots that expand
WIDTHS = (0.75, 1.0)
MAX_DEPTH = 4  # depths 1 .. own + 1, capped here (never below the own depth)
CHECK_TOLERANCE = 1e-4  # max |logit difference| / max(1, max |logit|)
CHECK_BATCH, CHECK_SEED = 2, 0


@dataclass(frozen=True)
class _Block:
    """One source block in our terms."""

    in_chs: int
    out_chs: int
    kernel: int
    stride: int
    mid: int
    rd: int  # squeeze-excite channels, 0: none
    act: str
    skip: bool | None  # the source's residual flag, when it has one

    def option_key(self) -> tuple[Any, ...]:
        return (self.kernel, self.mid / self.in_chs, self.rd / self.in_chs, self.act)


def _act_of(where: str, modules: Sequence[nn.Module]) -> str:
    from nas.core.modules import act_layer

    names = {type(act_layer(a)): a for a in ACTIVATIONS}
    found = {names[type(m)] for mod in modules for m in mod.modules() if type(m) in names}
    if len(found) != 1:
        raise MothernetError(
            f"{where} uses activations {sorted(found) or 'none'}; donnav2 blocks use one of "
            f"{sorted(names.values())} each, so this model cannot be imported"
        )
    return found.pop()


def _describe_block(i: int, block: nn.Module) -> _Block:
    from torch import nn

    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    dws = [j for j, c in enumerate(convs) if c.groups > 1]
    ok = len(dws) == 1 and dws[0] <= 1 and len(convs) - dws[0] in (2, 4)
    if ok:
        j = dws[0]
        dw = convs[j]
        ok = (
            dw.groups == dw.in_channels == dw.out_channels
            and dw.kernel_size[0] == dw.kernel_size[1]
        )
    if not ok:
        raise MothernetError(
            f"block {i} ({type(block).__name__}) is not an inverted-residual block "
            "([1x1] -> depthwise -> [SE] -> 1x1); this model cannot be imported"
        )
    skip = getattr(block, "use_res_connect", getattr(block, "has_skip", None))
    return _Block(
        in_chs=convs[0].in_channels,
        out_chs=convs[-1].out_channels,
        kernel=dw.kernel_size[0],
        stride=dw.stride[0],
        mid=dw.in_channels,
        rd=convs[j + 1].out_channels if len(convs) - j == 4 else 0,
        act=_act_of(f"block {i}", [block]),
        skip=None if skip is None else bool(skip),
    )


def _parts(spec: MothernetSpec, model: nn.Module) -> tuple[list[Any], list[Any], list[Any], Any]:
    """The source's stem, blocks (in order), head conv + BN, and classifier."""
    from torch import nn

    if spec.library == "torchvision":
        feats = list(model.features)
        blocks = [b for f in feats[1:-1] for b in (f if isinstance(f, nn.Sequential) else [f])]
        return [feats[0]], blocks, [feats[-1]], model.classifier[-1]
    blocks = [b for stage in model.blocks for b in stage]
    return [model.conv_stem, model.bn1], blocks, [model.conv_head, model.bn2], model.classifier


def _slots(blocks: Sequence[_Block]) -> list[list[_Block]]:
    """Blocks grouped into slots: a slot is a first block and the shape-keeping blocks of the
    same kernel, expansion, SE and activation that follow it."""
    groups: list[list[_Block]] = []
    for b in blocks:
        prev = groups[-1][-1] if groups else None
        if (
            prev is not None
            and b.stride == 1
            and b.in_chs == b.out_chs == prev.out_chs
            and b.option_key() == prev.option_key()
        ):
            groups[-1].append(b)
        else:
            groups.append([b])
    return groups


def _convs(modules: Sequence[nn.Module]) -> list[nn.Conv2d]:
    from torch import nn

    return [m for mod in modules for m in mod.modules() if isinstance(m, nn.Conv2d)]


def _layers(modules: Sequence[nn.Module]) -> list[nn.Module]:
    """The modules with weights (conv, BatchNorm, linear), in order."""
    from torch import nn

    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
    return [m for mod in modules for m in mod.modules() if isinstance(m, kinds)]


def _mothernet_of(
    spec: MothernetSpec, model: nn.Module, resolution: int
) -> tuple[SearchSpace, tuple[SlotOption, ...], list[nn.Module]]:
    """The space around the source model, its option per slot, and the source's weighted
    layers in the order of ``build_network``'s (stem, every block, head conv + BN, linear)."""
    stem, blocks, head, fc = _parts(spec, model)
    groups = _slots([_describe_block(i, b) for i, b in enumerate(blocks)])
    act = _act_of("the stem", stem)
    if _act_of("the head", head) != act:
        raise MothernetError(
            f"{spec.model}'s head uses another activation than its stem; donnav2's head uses "
            "the stem's, so this model cannot be imported"
        )
    sc, hc = _convs(stem)[0], _convs(head)[0]
    if sc.in_channels != 3 or sc.kernel_size != (3, 3) or hc.kernel_size != (1, 1):
        raise MothernetError(
            f"{spec.model} has no 3x3 RGB stem conv and 1x1 head conv; it cannot be imported"
        )
    choices = tuple(
        SlotOption(
            g[0].kernel, g[0].mid / g[0].in_chs, g[0].rd / g[0].in_chs, len(g), 1.0, g[0].act
        )
        for g in groups
    )
    base = SearchSpace(
        name=spec.space_name,
        resolution=resolution,
        stem_chs=sc.out_channels,
        stem_stride=sc.stride[0],
        stages=tuple(StageDef(g[0].out_chs, g[0].stride) for g in groups),
        options=tuple((c,) for c in choices),
        head_chs=hc.out_channels,
        num_classes=fc.out_features,
        stem_act=act,
        input_norm=source_input_norm(spec, model),
    )
    _check_blocks(spec, base, choices, groups)
    return space_around(base, choices), choices, _layers([*stem, *blocks, *head, fc])


def _check_blocks(
    spec: MothernetSpec,
    space: SearchSpace,
    choices: Sequence[SlotOption],
    groups: Sequence[Sequence[_Block]],
) -> None:
    """Raise unless our specs of the mothernet's option give the source's blocks exactly."""
    arch = space.architecture(choices)
    n = 0
    for slot, blocks in zip(arch.slots, groups):
        for ours, theirs in zip(slot, blocks):
            got = (ours.in_chs, ours.out_chs, ours.kernel, ours.stride, mid_chs(ours), se_chs(ours))
            want = (
                theirs.in_chs,
                theirs.out_chs,
                theirs.kernel,
                theirs.stride,
                theirs.mid,
                theirs.rd,
            )
            skip_ok = theirs.skip is None or theirs.skip == has_skip(ours)
            if got != want or not skip_ok:
                raise MothernetError(
                    f"block {n} of {spec.model} (in, out, kernel, stride, expanded, SE channels "
                    f"{want}, residual {theirs.skip}) is not a donnav2 MBConv block ({got}, "
                    f"residual {has_skip(ours)}); this model cannot be imported exactly"
                )
            n += 1


def slot_options(own: SlotOption) -> tuple[SlotOption, ...]:
    """The options of a slot around the mothernet's ``own``: kernels 3/5/7, expansions 3/4/6
    (a slot without expansion keeps 1: the depthwise-separable first stage runs at the highest
    resolution), SE off or the own ratio, depths 1 to own + 1 (at most :data:`MAX_DEPTH`, never
    below own), widths 0.75/1.0; ``own`` is always one of them."""
    exps = (own.exp_ratio,) if own.exp_ratio == 1.0 else sorted({*EXPANSIONS, own.exp_ratio})
    top = max(own.depth, min(own.depth + 1, MAX_DEPTH))
    opts = product_options(
        sorted({*KERNELS, own.kernel}),
        exps,
        sorted({0.0, own.se_ratio}),
        range(1, top + 1),
        sorted({*WIDTHS, own.width}),
        (own.act,),
    )
    return opts


def space_around(base: SearchSpace, choices: Sequence[SlotOption]) -> SearchSpace:
    """``base`` (stem, stages, head, resolution) with :func:`slot_options` around ``choices``."""
    return base.with_options([slot_options(c) for c in choices])


# ---- copying and checking ------------------------------------------------------------------


def _mismatch(src: nn.Module, ours: nn.Module) -> str | None:
    from torch import nn

    kind = next((k for k in (nn.Conv2d, nn.BatchNorm2d, nn.Linear) if isinstance(src, k)), None)
    if kind is None or not isinstance(ours, kind):
        return f"a {type(src).__name__} does not go into a {type(ours).__name__}"
    a, b = src.state_dict(), ours.state_dict()
    if {k: tuple(v.shape) for k, v in a.items()} != {k: tuple(v.shape) for k, v in b.items()}:
        return "tensor shapes differ"
    if isinstance(src, nn.Conv2d):
        attrs = ("stride", "padding", "dilation", "groups", "padding_mode")
        diff = [k for k in attrs if getattr(src, k) != getattr(ours, k)]
        return f"conv {', '.join(diff)} differ" if diff else None
    if isinstance(src, nn.BatchNorm2d) and src.eps != ours.eps:
        return (
            f"it uses BatchNorm eps {src.eps:g}, donnav2 blocks use {ours.eps:g}: a model with "
            "another eps cannot be imported exactly"
        )
    return None


def copy_weights(model: nn.Module, layers: Sequence[nn.Module], net: BlockNetwork) -> int:
    """Copy ``layers`` (the source's, in :func:`build_network` order) into ``net``'s layers of
    the same kind: weights, biases, BatchNorm running statistics. Returns the parameter count."""
    names = {id(m): n for n, m in model.named_modules()}
    ours = list(zip(_layer_names(net), _layers([net])))
    if len(ours) != len(layers):
        raise MothernetError(
            f"the source has {len(layers)} weighted layers, the donnav2 network "
            f"{len(ours)}; this model cannot be imported"
        )
    for src, (name, dst) in zip(layers, ours):
        problem = _mismatch(src, dst)
        if problem:
            raise MothernetError(f"cannot copy {names.get(id(src), '?')} into {name}: {problem}")
        dst.load_state_dict(src.state_dict())
    n_src = sum(p.numel() for p in model.parameters())
    n_net = sum(p.numel() for p in net.parameters())
    if n_src != n_net:
        raise MothernetError(
            f"the source has {n_src} parameters, the copy {n_net}; this model cannot be imported"
        )
    return n_net


def _layer_names(net: nn.Module) -> list[str]:
    from torch import nn

    kinds = (nn.Conv2d, nn.BatchNorm2d, nn.Linear)
    return [n for n, m in net.named_modules() if isinstance(m, kinds)]


def max_logit_diff(
    model: nn.Module, net: nn.Module, resolution: int, input_norm: InputNorm | None
) -> tuple[float, float]:
    """Max |logit difference| of the two networks in eval mode on a seeded random batch ``x``
    of [0, 1] pixels (what donnav2's data sources give), the source fed ``(x - mean) / std``
    with the source's ``input_norm`` (``None``: ``x``) and ``net`` fed ``x`` (it normalises
    itself); and the source's max |logit|."""
    import torch

    gen = torch.Generator().manual_seed(CHECK_SEED)
    x = torch.rand(CHECK_BATCH, 3, resolution, resolution, generator=gen)
    src = x
    if input_norm is not None:
        mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in input_norm)
        src = (x - mean) / std
    with torch.no_grad():
        want = model.eval()(src)
        got = net.eval()(x)
    return float((want - got).abs().max()), float(want.abs().max())


# ---- the import ----------------------------------------------------------------------------


def import_mothernet(
    spec: MothernetSpec, *, resolution: int = IMPORT_RESOLUTION, out: Path | None = None
) -> tuple[BlockNetwork, MothernetConfig, dict[str, Any]]:
    """The library's model with the spec's weights as a donnav2 mothernet: the network (eval
    mode; it normalises its [0, 1] input with the source's mean and std), its config (the space
    around it with that ``input_norm``, its option per slot) and a report (source, model,
    weights file and sha256, input normalisation, max logit difference, parameters, space).
    With ``out`` (checked first) also saved as a mothernet checkpoint. Raises
    :class:`MothernetError` naming the problem and the fix."""
    from nas.core.files import check_writable, file_sha256
    from nas.training.checkpoint import save_checkpoint
    from nas.training.mothernet import MothernetConfig
    from nas.training.networks import build_network

    if out is not None:
        check_writable(out, "mothernet checkpoint")
    state, how = read_state_dict(spec)
    model, version = build_source(spec, state)
    space, choices, layers = _mothernet_of(spec, model, resolution)
    net = build_network(space, choices, seed=0)
    n_params = copy_weights(model, layers, net)
    diff, scale = max_logit_diff(model, net, resolution, space.input_norm)
    tol = CHECK_TOLERANCE * max(1.0, scale)
    if not diff <= tol:
        raise MothernetError(
            f"the imported network's logits differ from {spec.library} {spec.model}'s by up to "
            f"{diff:.3g} (tolerance {tol:.3g}); this model cannot be imported exactly"
        )
    config = MothernetConfig(space, choices, seed=0)
    report = {
        "source": spec.library,
        "model": spec.model,
        "library_version": version,
        "weights": str(spec.path),
        "weights_sha256": file_sha256(spec.path),
        "read_with": how,
        "resolution": resolution,
        "num_classes": space.num_classes,
        "params": n_params,
        "max_abs_diff": diff,
        "logit_scale": scale,
        "tolerance": tol,
        "check": (
            f"batch {CHECK_BATCH} of U(0,1) pixels x, seed {CHECK_SEED}, eval mode: "
            f"{spec.library}'s model on (x - mean) / std, ours on x"
        ),
        "input_norm": _norm_dict(space.input_norm),
        "space": {
            "name": space.name,
            "slots": space.n_slots,
            "options_per_slot": space.n_options(),
            "log10_size": round(space.log10_size(), 3),
        },
        "choices": [c.label() for c in choices],
        "genome": [opts.index(c) for opts, c in zip(space.options, choices)],
    }
    net.eval()
    if out is not None:
        save_checkpoint(out, net, config, {"imported": report}, imported_data_desc(report))
    return net, config, report


def imported_data_desc(report: Mapping[str, Any]) -> dict[str, Any]:
    """The checkpoint's data description of an import: honest about where the weights were
    trained (no data donnav2 can reload: its commands then need ``--data``)."""
    return {
        "task": "classification",
        "data": "imagenet (imported weights, not trained here)",
        "imported": f"{report['source']}:{report['model']}",
        "weights": report["weights"],
        "weights_sha256": report["weights_sha256"],
        "num_classes": report["num_classes"],
        "resolution": report["resolution"],
        # applied by the network itself (the space's input_norm): it takes [0, 1] RGB
        "input_normalization": report["input_norm"],
    }


def _norm_dict(norm: InputNorm | None) -> dict[str, list[float]] | None:
    return None if norm is None else {"mean": list(norm[0]), "std": list(norm[1])}


def import_summary(report: Mapping[str, Any]) -> str:
    """One line for people."""
    sp = report["space"]
    return (
        f"{report['source']}:{report['model']} ({report['params'] / 1e6:.2f} M parameters, "
        f"{report['num_classes']} classes) @{report['resolution']}px; max |logit diff| "
        f"{report['max_abs_diff']:.2e} (tolerance {report['tolerance']:.1e}); space "
        f"{sp['name']}: {sp['slots']} slots, {sum(sp['options_per_slot'])} options, "
        f"10^{sp['log10_size']:.2f} architectures; mothernet {', '.join(report['choices'])}"
        f"{_norm_text(report.get('input_norm'))}"
    )


def _norm_text(norm: Mapping[str, Sequence[float]] | None) -> str:
    if not norm:
        return ""
    mean, std = (", ".join(f"{v:g}" for v in norm[k]) for k in ("mean", "std"))
    return f"; normalises its [0, 1] input with mean ({mean}), std ({std})"
