"""The one builder from block specs to ``torch.nn.Module``.

This module imports torch: import it lazily (inside functions) from anything a CLI loads.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.core.specs import (
    Architecture,
    BlockSpec,
    ClassifierHeadSpec,
    ConvBnActSpec,
    ImageHeadSpec,
    MBConvSpec,
    has_skip,
    mid_chs,
    se_chs,
)

_ACT_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "silu": nn.SiLU,
    "hswish": nn.Hardswish,
}


def act_layer(name: str) -> nn.Module:
    return _ACT_LAYERS[name]()


class ConvBnAct(nn.Module):
    def __init__(self, spec: ConvBnActSpec) -> None:
        super().__init__()
        self.conv = nn.Conv2d(
            spec.in_chs, spec.out_chs, spec.kernel, spec.stride, spec.kernel // 2, bias=False
        )
        self.bn = nn.BatchNorm2d(spec.out_chs)
        self.act = act_layer(spec.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class SqueezeExcite(nn.Module):
    def __init__(self, chs: int, rd_chs: int, act: str) -> None:
        super().__init__()
        self.conv_reduce = nn.Conv2d(chs, rd_chs, 1, bias=True)
        self.act = act_layer(act)
        self.conv_expand = nn.Conv2d(rd_chs, chs, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * torch.sigmoid(s)


class MBConv(nn.Module):
    """Inverted residual: [expand 1x1] -> depthwise kxk -> [SE] -> project 1x1 (+ skip)."""

    def __init__(self, spec: MBConvSpec) -> None:
        super().__init__()
        mid = mid_chs(spec)
        if spec.exp_ratio != 1.0:
            self.conv_pw = nn.Conv2d(spec.in_chs, mid, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(mid)
            self.act1 = act_layer(spec.act)
        else:
            self.conv_pw = self.bn1 = self.act1 = None  # type: ignore[assignment]
        self.conv_dw = nn.Conv2d(
            mid, mid, spec.kernel, spec.stride, spec.kernel // 2, groups=mid, bias=False
        )
        self.bn2 = nn.BatchNorm2d(mid)
        self.act2 = act_layer(spec.act)
        rd = se_chs(spec)
        self.se = SqueezeExcite(mid, rd, spec.act) if rd else None
        self.conv_pwl = nn.Conv2d(mid, spec.out_chs, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(spec.out_chs)
        self.skip = has_skip(spec)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        if self.conv_pw is not None:
            x = self.act1(self.bn1(self.conv_pw(x)))
        x = self.act2(self.bn2(self.conv_dw(x)))
        if self.se is not None:
            x = self.se(x)
        x = self.bn3(self.conv_pwl(x))
        if self.skip:
            x = x + shortcut
        return x


class ClassifierHead(nn.Module):
    def __init__(self, spec: ClassifierHeadSpec) -> None:
        super().__init__()
        self.conv = nn.Conv2d(spec.in_chs, spec.head_chs, 1, bias=False)
        self.bn = nn.BatchNorm2d(spec.head_chs)
        self.act = act_layer(spec.act)
        self.fc = nn.Linear(spec.head_chs, spec.num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn(self.conv(x)))
        return self.fc(x.mean((2, 3)))


class ImageHead(nn.Module):
    def __init__(self, spec: ImageHeadSpec) -> None:
        super().__init__()
        n_out = spec.out_chs * spec.scale**2
        self.conv = nn.Conv2d(spec.in_chs, n_out, spec.kernel, 1, spec.kernel // 2, bias=True)
        self.shuffle = nn.PixelShuffle(spec.scale) if spec.scale > 1 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        return self.shuffle(x) if self.shuffle is not None else x


_BUILDERS: dict[type, type[nn.Module]] = {
    ConvBnActSpec: ConvBnAct,
    MBConvSpec: MBConv,
    ClassifierHeadSpec: ClassifierHead,
    ImageHeadSpec: ImageHead,
}


def build_block(spec: BlockSpec) -> nn.Module:
    """Build the module a spec describes (weights freshly initialised)."""
    return _BUILDERS[type(spec)](spec)


def build_architecture(arch: Architecture) -> nn.Sequential:
    return nn.Sequential(*(build_block(s) for s in arch.blocks))


def randomize_bn(module: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm non-trivial statistics, so a numerical check after BN folding
    tests something. Deterministic for a seed."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(n, generator=gen) * 0.5 + 0.75)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    return module
