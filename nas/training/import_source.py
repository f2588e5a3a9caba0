"""The source side of an imported mothernet: which library models can be imported
(:data:`SUPPORTED`), the ``LIBRARY:MODEL:PATH`` spec (:func:`parse_mothernet_spec`), reading a
weights file the user brings (:func:`read_state_dict`: a state dict, never code; a file of
another architecture is named by what it looks like), the library's model built without
weights and loaded with it (:func:`build_source`) and the input normalisation its ImageNet
weights expect, as the library states it (:func:`source_input_norm`). Nothing is downloaded.

torch, torchvision, timm and safetensors are imported inside the functions: parsing a spec is
cheap (the pipeline's settings do it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.core.errors import MothernetError

if TYPE_CHECKING:
    from torch import Tensor, nn

LIBRARIES = ("torchvision", "timm")
# (library, model) -> where the library keeps its ImageNet weights (a file name, a hub id)
SUPPORTED: dict[tuple[str, str], str] = {
    ("torchvision", "efficientnet_b0"): "efficientnet_b0_rwightman-7f5810bc.pth",
    ("torchvision", "mobilenet_v2"): "mobilenet_v2-b0353104.pth",
    ("timm", "efficientnet_b0"): "efficientnet_b0.ra_in1k",
    ("timm", "mobilenetv2_100"): "mobilenetv2_100.ra_in1k",
}
IMPORT_RESOLUTION = 224  # the ImageNet resolution of every supported model
# What every supported model's weights expect after scaling RGB to [0, 1] (timm's
# pretrained_cfg and torchvision's weights transforms say so: source_input_norm reads them)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_SPEC = re.compile(r"([A-Za-z][\w-]+):([\w.-]*)(?::(.*))?")
_WRAPPERS = ("state_dict", "model", "model_state_dict")  # training checkpoints around a state dict


def _supported() -> str:
    return ", ".join(f"{lib}:{model}" for lib, model in SUPPORTED)


@dataclass(frozen=True)
class MothernetSpec:
    """A library's model and the weights file to import it with."""

    library: str
    model: str  # the library's name (timm: with an optional pretrained tag, ``.ra_in1k``)
    path: Path

    @property
    def arch(self) -> str:
        """The model name without a timm pretrained tag."""
        return self.model.split(".", 1)[0]

    @property
    def text(self) -> str:
        return f"{self.library}:{self.model}:{self.path}"

    @property
    def space_name(self) -> str:
        return f"{self.library}-{self.arch}"


def parse_mothernet_spec(text: str) -> MothernetSpec | None:
    """``LIBRARY:MODEL:PATH`` as a :class:`MothernetSpec`; ``None`` for a plain path (a donnav2
    checkpoint). Something shaped like a spec that names no supported model raises
    :class:`MothernetError` listing the supported ones."""
    text = str(text)
    m = _SPEC.fullmatch(text)
    if m is None or (m.group(1) not in LIBRARIES and Path(text).exists()):
        return None
    lib, model, path = m.groups()
    if lib not in LIBRARIES and path is None:
        return None  # one colon: a file name, not a spec
    if lib not in LIBRARIES or (lib, model.split(".", 1)[0]) not in SUPPORTED:
        what = f"library {lib!r}" if lib not in LIBRARIES else f"{lib} model {model!r}"
        raise MothernetError(
            f"cannot import {what} as a mothernet; supported: {_supported()} "
            "(as LIBRARY:MODEL:WEIGHTS_FILE), or pass a donnav2 checkpoint's path"
        )
    if not path:
        raise MothernetError(
            f"{text!r} names no weights file; pass {lib}:{model}:/path/to/weights (nothing is "
            "downloaded)"
        )
    return MothernetSpec(lib, model, Path(os.path.expanduser(path)))


# ---- reading the weights -------------------------------------------------------------------


def _where_weights_live(spec: MothernetSpec) -> str:
    hint = SUPPORTED[(spec.library, spec.arch)]
    if spec.library == "torchvision":
        import torch

        return (
            f"torchvision keeps its ImageNet weights in {torch.hub.get_dir()}/checkpoints/ "
            f"(torch.hub.get_dir()), e.g. {hint}"
        )
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME", "~/.cache/huggingface"), "hub"
    )
    return (
        f"timm (huggingface_hub) keeps them in "
        f"{hub}/models--timm--{hint}/snapshots/*/model.safetensors"
    )


def read_state_dict(spec: MothernetSpec) -> tuple[dict[str, Tensor], str]:
    """The state dict in the spec's weights file (``.safetensors`` via safetensors, anything
    else via ``torch.load(weights_only=True)``; a training checkpoint's ``state_dict``/``model``
    entry and a ``module.`` prefix are unwrapped) and how it was read."""
    path = spec.path
    if not path.is_file():
        raise MothernetError(
            f"weights file {path} does not exist; {_where_weights_live(spec)}; pass the file as "
            f"{spec.library}:{spec.model}:/path/to/file (donna import-mothernet, or --mothernet "
            "of donna bkd / donna run)"
        )
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise MothernetError(
                f"reading {path} needs safetensors, which is not installed: pip install safetensors"
            ) from None
        try:
            return _as_state_dict(load_file(str(path)), path, "safetensors")
        except MothernetError:
            raise
        except Exception as exc:  # safetensors raises its own error types
            raise MothernetError(
                f"{path} is not a safetensors file ({type(exc).__name__}); pass the library's "
                "weights file"
            ) from None
    import torch

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a foreign file
        raise MothernetError(
            f"{path} is not a state dict that can be read safely ({type(exc).__name__}: a whole "
            "pickled model, or not a PyTorch file); save torch.save(model.state_dict(), FILE) "
            "or pass the library's .pth/.safetensors weights file"
        ) from None
    return _as_state_dict(obj, path, "torch.load")


def _is_tensor_dict(obj: Any) -> bool:
    import torch

    return (
        isinstance(obj, Mapping)
        and bool(obj)
        and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())
    )


def _as_state_dict(obj: Any, path: Path, how: str) -> tuple[dict[str, Tensor], str]:
    from nas.training.checkpoint import CHECKPOINT_FORMAT

    if isinstance(obj, Mapping) and obj.get("format") == CHECKPOINT_FORMAT:
        raise MothernetError(
            f"{path} is a donnav2 mothernet checkpoint already; pass its path alone "
            "(--mothernet PATH), not as an import"
        )
    if not _is_tensor_dict(obj) and isinstance(obj, Mapping):
        for key in _WRAPPERS:
            if _is_tensor_dict(obj.get(key)):
                obj, how = obj[key], f"{how}, ['{key}']"
                break
    if not _is_tensor_dict(obj):
        shown = (
            f"a dict with keys {', '.join(map(repr, list(obj)[:4]))}"
            if isinstance(obj, Mapping) and obj
            else f"a {type(obj).__name__}"
        )
        raise MothernetError(
            f"{path} holds {shown}, not a state dict (parameter names -> tensors); save "
            "torch.save(model.state_dict(), FILE)"
        )
    state = dict(obj)
    if all(k.startswith("module.") for k in state):
        state, how = {k[len("module.") :]: v for k, v in state.items()}, f"{how}, 'module.' off"
    return state, how


def _looks_like(keys: Sequence[str]) -> str:
    """What kind of network a state dict's keys suggest, for the error of a wrong file."""
    ks = set(keys)

    def count(pattern: str) -> int:
        return len({m.group(0) for k in keys if (m := re.match(pattern, k))})

    if any(k.startswith("layer1.") for k in ks) and "fc.weight" in ks:
        depth = (3 if any(".conv3." in k for k in ks) else 2) * count(r"layer\d+\.\d+\.") + 2
        return f"a resnet{depth}-like state dict"
    if "conv_stem.weight" in ks:
        n = count(r"blocks\.\d+\.\d+\.")
        return (
            f"a timm EfficientNet/MobileNet-like state dict with {n} blocks (conv_stem.*, "
            "blocks.*): is it timm:MODEL:PATH?"
        )
    if any(".block." in k and k.startswith("features.") for k in ks):
        n = count(r"features\.\d+\.\d+\.block\.")
        return f"a torchvision EfficientNet-like state dict with {n} blocks"
    if any(k.startswith("features.") and ".conv." in k for k in ks):
        n = count(r"features\.\d+\.conv\.")
        return f"a torchvision MobileNetV2-like state dict with {n} blocks"
    if any(k.startswith(("stem.", "slots.")) for k in ks):
        return "a donnav2 BlockNetwork state dict (save it with save_checkpoint instead)"
    return f"a state dict of {len(ks)} tensors starting {', '.join(list(keys)[:3])}"


def _check_keys(
    spec: MothernetSpec, own: Mapping[str, Tensor], theirs: Mapping[str, Tensor]
) -> None:
    """Raise unless ``theirs`` has ``own``'s keys and shapes (BatchNorm's
    ``num_batches_tracked`` may be absent), naming the first mismatch."""

    def skip(k: str) -> bool:
        return k.endswith("num_batches_tracked")

    problem = None
    for k, v in own.items():
        if skip(k):
            continue
        if k not in theirs:
            problem = f"it lacks {k}"
        elif tuple(theirs[k].shape) != tuple(v.shape):
            problem = f"{k} has shape {tuple(theirs[k].shape)}, {spec.model} has {tuple(v.shape)}"
        if problem:
            break
    extra = [k for k in theirs if k not in own and not skip(k)]
    if problem is None and extra:
        problem = f"it has {len(extra)} tensor(s) {spec.model} lacks, e.g. {extra[0]}"
    if problem:
        raise MothernetError(
            f"{spec.path} is not a {spec.library} {spec.model} state dict: {problem}; the file "
            f"holds {_looks_like(list(theirs))}; pass the weights of {spec.library} "
            f"{spec.model} (supported: {_supported()})"
        )


# ---- the source model --------------------------------------------------------------------------


def _library(spec: MothernetSpec) -> tuple[Any, str]:
    try:
        if spec.library == "torchvision":
            import torchvision

            return torchvision.models, str(torchvision.__version__)
        import timm

        return timm, str(timm.__version__)
    except ImportError:
        raise MothernetError(
            f"importing {spec.library}:{spec.model} needs {spec.library}, which is not "
            "installed: pip install torchvision timm"
        ) from None


def source_input_norm(spec: MothernetSpec, model: nn.Module) -> tuple[Any, Any]:
    """The per-channel (mean, std) the library's ImageNet weights of the model expect on [0, 1]
    RGB, as the library states it: timm's ``pretrained_cfg`` of the model (of its pretrained
    tag), torchvision's weights' ``transforms()`` (every weights entry of the model must agree:
    the file could be any of them)."""
    found: set[tuple[tuple[float, ...], tuple[float, ...]]] = set()
    if spec.library == "timm":
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if cfg.get("mean") is not None and cfg.get("std") is not None:
            found.add((tuple(cfg["mean"]), tuple(cfg["std"])))
    else:
        from torchvision.models import get_model_weights

        for w in get_model_weights(spec.model):
            t = w.transforms()
            found.add((tuple(t.mean), tuple(t.std)))
    if len(found) != 1:
        raise MothernetError(
            f"{spec.library} {spec.model} states {len(found)} input normalisations for its "
            "ImageNet weights, not one; donnav2 cannot tell which its weights expect"
        )
    mean, std = found.pop()
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


def build_source(spec: MothernetSpec, state: Mapping[str, Tensor]) -> tuple[nn.Module, str]:
    """The library's model with ``state`` loaded (checked first), in eval mode, and the
    library's version. Built without weights: nothing is downloaded."""
    lib, version = _library(spec)
    key = "classifier.1.weight" if spec.library == "torchvision" else "classifier.weight"
    w = state.get(key)
    num_classes = int(w.shape[0]) if w is not None and w.dim() == 2 else 1000
    if spec.library == "torchvision":
        model = getattr(lib, spec.model)(weights=None, num_classes=num_classes)
    else:
        model = lib.create_model(spec.model, pretrained=False, num_classes=num_classes)
    _check_keys(spec, model.state_dict(), state)
    model.load_state_dict(state, strict=True)
    return model.eval(), version
