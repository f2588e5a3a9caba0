"""Mothernet checkpoints: one ``torch.save`` file that rebuilds the network from itself.

A checkpoint (:func:`save_checkpoint`) holds the
:class:`~nas.training.mothernet.MothernetConfig` (search space, choices, seed), the block
specs, the state dict, training metrics and a description of the data;
:func:`load_checkpoint` rebuilds the network from the config alone (read with
``weights_only=True``: no code runs on load). The checkpoint file's sha256
(:func:`nas.core.files.file_sha256`) is the mothernet's identity in BKD libraries.

This module imports torch: import it lazily (inside functions) from anything a CLI loads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.core.errors import MothernetError
from nas.core.files import atomic_write
from nas.core.spaces import SearchSpace
from nas.core.specs import spec_key
from nas.training.mothernet import MothernetConfig
from nas.training.networks import BlockNetwork, build_network, check_network

CHECKPOINT_FORMAT = "donnav2-mothernet"
CHECKPOINT_VERSION = 1


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
    """Write ``net`` with its config atomically (:func:`nas.core.files.atomic_write`).
    ``metrics`` and ``data_desc`` must be JSON-like (str, numbers, lists, dicts)."""
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
    return atomic_write(path, lambda f: torch.save(payload, f))


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
    payload = _read_payload(path)
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
    _check_state(path, config, net.state_dict(), state)
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


def _read_payload(path: Path) -> dict[str, Any]:
    """The checkpoint's content, after checking it is a donnav2 checkpoint of this version."""
    if not path.is_file():
        raise MothernetError(
            f"mothernet checkpoint {path} does not exist; train one with "
            "`donna train-mothernet` or save yours with nas.training.checkpoint.save_checkpoint"
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
    return payload


def _check_state(
    path: Path,
    config: MothernetConfig,
    own: Mapping[str, torch.Tensor],
    state: Mapping[str, Any],
) -> None:
    """Raise unless ``state`` has exactly the keys and shapes of ``own`` (the network the
    checkpoint's config builds), naming the first mismatch."""
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if not (missing or unexpected or wrong):
        return
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
