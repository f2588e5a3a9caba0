"""Architectures picked from a Pareto file, finetuned: one front entry (``donna finetune``, the
``finetune`` stage, :func:`finetune_pick`) or any architecture of a space
(:func:`finetune_choices`, what ``donna validate-surrogate`` and the experiments use)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.core.errors import DonnaError, PipelineError
from nas.core.files import atomic_write_text, check_writable
from nas.core.spaces import SearchSpace

Echo = Callable[[str], None]


def choices_key(choices: Sequence[Any]) -> str:
    """A short stable name of an architecture (its options), for the folders that cache its
    finetuning."""
    import hashlib

    return hashlib.sha256(json.dumps([repr(o) for o in choices]).encode()).hexdigest()[:12]


def chosen(result: Any, n: int) -> list[int]:
    """Front indices of ``n`` architectures spread over the front (by latency)."""
    from nas.validate import spread_indices

    lats = [e.latency_ms for e in result.front]
    return spread_indices(lats, max(2, n))[:n] if lats else []


def mothernet_point(
    space: SearchSpace, library: Any, choices: Sequence[Any], latency_us: Callable[[Any], float]
) -> tuple[float, float] | None:
    """(summed BKD nMSE, latency in ms) of the mothernet's own architecture, the marker on the
    Pareto plot; None when its options are not all in the library or the latency is unknown."""
    try:
        loss = sum(library.entry(i, o).nmse for i, o in enumerate(choices))
        return (loss, latency_us(space.architecture(choices)) / 1000.0)
    except DonnaError:
        return None


def checkpoint_data(meta: Any, task: str, resolution: int, library: Any = None) -> Any:
    """The data a checkpoint was trained on (source, split sizes, seed), loaded again. An
    imported mothernet (ImageNet weights, not trained here) records none: then the data its
    BKD ``library`` was distilled on, else refused."""
    d = meta.data or {}
    if d.get("imported"):
        recorded = (library.provenance.get("data") if library is not None else None) or {}
        if recorded.get("data"):
            return described_data(recorded, task, resolution)
        raise PipelineError(
            f"the mothernet was imported from {d['imported']} (weights trained on ImageNet, not "
            "here), so it names no data to load again; pass the task data with --data (e.g. "
            "--data cifar10:PATH, see docs/data.md)"
        )
    return described_data(d, task, resolution)


def described_data(d: dict[str, Any], task: str, resolution: int) -> Any:
    """Load again the data a ``describe()`` dictionary names (spec, split sizes, seed)."""
    from nas.data import load_task_data

    return load_task_data(
        task,
        d.get("data"),
        resolution=resolution,
        seed=int(d.get("seed", 0)),
        train_limit=d.get("train"),
        val_limit=d.get("val"),
    )


def _pick_inputs(
    pareto: Path, index: int, mothernet: Path | None, library: Path | None
) -> tuple[Any, Any, Any, Any, Any]:
    """The front entry, its space, the BKD library, the mothernet and its checkpoint meta."""
    from nas.bkd.library import BkdLibrary
    from nas.core.files import file_sha256
    from nas.search.result import load_pareto
    from nas.training.checkpoint import load_checkpoint

    result = load_pareto(pareto)
    entry = result.at(index, pareto)
    prov = result.provenance
    mpath = Path(mothernet or prov.get("mothernet") or "")
    if not str(mpath) or not mpath.exists():
        raise PipelineError(
            f"the mothernet of {pareto} ({mpath or 'not recorded'}) is not there; pass --mothernet"
        )
    lib = BkdLibrary.load(Path(library or prov.get("library") or ""))
    lib.check_mothernet(file_sha256(mpath))
    teacher, _, meta = load_checkpoint(mpath)
    return entry, result.space, lib, teacher, meta


def finetune_pick(
    pareto: Path,
    index: int,
    out: Path,
    *,
    data: Any = None,
    mothernet: Path | None = None,
    library: Path | None = None,
    epochs: float | None = None,
    seed: int = 0,
    echo: Echo = print,
    device: Any = None,
    data_workers: int = 0,
) -> dict[str, Any]:
    """Finetune front entry ``index`` of ``pareto``: initialise from BKD, distil from the
    mothernet, save ``out/model.pt`` and ``out/result.json``. The mothernet, library and data
    default to those recorded in the Pareto file's provenance and the mothernet checkpoint.
    ``device``: a :class:`~nas.training.device.TrainDevice` (default the CPU)."""
    check_writable(out, "finetune output folder", folder=True)
    entry, space, lib, teacher, meta = _pick_inputs(Path(pareto), index, mothernet, library)
    inputs = FinetuneInputs(space, lib, teacher, meta, _pick_data(data, meta, space, lib, seed))
    choices = space.choices(entry.genome)
    row = finetune_choices(
        inputs, choices, out, label=f"front[{index}]", epochs=epochs, seed=seed, echo=echo,
        device=device, data_workers=data_workers,
    )  # fmt: skip
    row = {"index": index, "genome": list(entry.genome), **row}
    row["surrogate"], row["lut_latency_ms"] = entry.surrogate, entry.latency_ms
    atomic_write_text(out / "result.json", json.dumps(row, indent=1))
    return row


def _pick_data(data: Any, meta: Any, space: SearchSpace, lib: Any, seed: int) -> Any:
    """``data`` as task data: ``None`` is the mothernet's own, a string a data spec."""
    if data is None:
        return checkpoint_data(meta, space.task, space.resolution, lib)
    if isinstance(data, str):
        from nas.data import load_task_data

        return load_task_data(space.task, data, resolution=space.resolution, seed=seed)
    return data


@dataclass
class FinetuneInputs:
    """What finetuning any architecture of ``space`` reads: the BKD library (initialisation),
    the mothernet (teacher) with its checkpoint meta, and the task data."""

    space: SearchSpace
    library: Any
    teacher: Any
    meta: Any
    data: Any

    @classmethod
    def of_pareto(cls, pareto: Path, data: Any = None, seed: int = 0) -> FinetuneInputs:
        """The inputs recorded in a Pareto file's provenance (``data``: as for
        :func:`finetune_pick`)."""
        _, space, lib, teacher, meta = _pick_inputs(Path(pareto), 0, None, None)
        return cls(space, lib, teacher, meta, _pick_data(data, meta, space, lib, seed))


def finetune_choices(
    inputs: FinetuneInputs,
    choices: Sequence[Any],
    out: Path,
    *,
    label: str = "architecture",
    epochs: float | None = None,
    seed: int = 0,
    echo: Echo = print,
    device: Any = None,
    data_workers: int = 0,
) -> dict[str, Any]:
    """Finetune the architecture of ``choices`` (one option per slot of ``inputs.space``):
    BKD initialisation, distillation from the mothernet; saves ``out/model.pt`` and
    ``out/result.json`` (the row returned: options, summed BKD nMSE, metrics, seconds)."""
    check_writable(out, "finetune output folder", folder=True)
    import torch

    from nas.finetune import FinetuneConfig, finetune, init_from_bkd
    from nas.training.checkpoint import save_checkpoint
    from nas.training.mothernet import MothernetConfig
    from nas.training.networks import build_network

    space, lib, teacher, meta = inputs.space, inputs.library, inputs.teacher, inputs.meta
    torch.manual_seed(seed)
    student = build_network(space, choices, seed=seed)
    init = init_from_bkd(student, teacher, lib, choices)
    cfg = FinetuneConfig(seed=seed, **({"epochs": epochs} if epochs else {}))
    echo(f"finetuning {label} ({', '.join(o.label() for o in choices)}): {init.summary()}")
    extra = {} if device is None else {"device": device}
    res = finetune(student, teacher, inputs.data, cfg, data_workers=data_workers, **extra)
    student.cpu()
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out / "model.pt",
        student,
        MothernetConfig(space, tuple(choices), seed),
        res.to_dict(),
        inputs.data.describe(),
    )
    row = {
        "options": [o.label() for o in choices],
        "surrogate": sum(lib.entry(i, o).nmse for i, o in enumerate(choices)),
        **res.to_dict(),
        "mothernet_metric": meta.metrics.get("value"),
        "init": init.summary(),
    }
    atomic_write_text(out / "result.json", json.dumps(row, indent=1))
    echo(
        f"{label}: {res.metric_name} {res.metric_before:.4f} -> {res.metric:.4f} after "
        f"{res.steps} steps ({res.seconds:.0f} s); mothernet {meta.metrics.get('value')}"
    )
    return row
