"""Architectures picked from a Pareto file: finetune one (``donna finetune``, the ``finetune``
stage) or check the surrogate's ranking on several (``donna validate-surrogate``)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nas.core.errors import DonnaError, PipelineError
from nas.core.files import atomic_write_text, check_writable
from nas.core.spaces import SearchSpace

Echo = Callable[[str], None]


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
    import torch

    from nas.finetune import FinetuneConfig, finetune, init_from_bkd
    from nas.training.checkpoint import save_checkpoint
    from nas.training.mothernet import MothernetConfig
    from nas.training.networks import build_network

    entry, space, lib, teacher, meta = _pick_inputs(Path(pareto), index, mothernet, library)
    if data is None:
        data = checkpoint_data(meta, space.task, space.resolution, lib)
    elif isinstance(data, str):
        from nas.data import load_task_data

        data = load_task_data(space.task, data, resolution=space.resolution, seed=seed)
    choices = space.choices(entry.genome)
    torch.manual_seed(seed)
    student = build_network(space, choices, seed=seed)
    init = init_from_bkd(student, teacher, lib, choices)
    cfg = FinetuneConfig(seed=seed, **({"epochs": epochs} if epochs else {}))
    echo(f"finetuning front[{index}] ({', '.join(o.label() for o in choices)}): {init.summary()}")
    extra = {} if device is None else {"device": device}
    res = finetune(student, teacher, data, cfg, data_workers=data_workers, **extra)
    student.cpu()
    out.mkdir(parents=True, exist_ok=True)
    save_checkpoint(
        out / "model.pt",
        student,
        MothernetConfig(space, tuple(choices), seed),
        res.to_dict(),
        data.describe(),
    )
    row = {
        "index": index,
        "genome": list(entry.genome),
        "options": [o.label() for o in choices],
        "surrogate": entry.surrogate,
        "lut_latency_ms": entry.latency_ms,
        **res.to_dict(),
        "mothernet_metric": meta.metrics.get("value"),
        "init": init.summary(),
    }
    atomic_write_text(out / "result.json", json.dumps(row, indent=1))
    echo(
        f"front[{index}]: {res.metric_name} {res.metric_before:.4f} -> {res.metric:.4f} after "
        f"{res.steps} steps ({res.seconds:.0f} s); mothernet {meta.metrics.get('value')}"
    )
    return row


def validate_surrogate(
    pareto: Path,
    k: int,
    epochs: float,
    predictor_archs: int,
    seed: int = 0,
    echo: Echo = print,
    device: Any = None,
    data_workers: int = 0,
    data: Any = None,
) -> Any:
    """Finetune ``k`` architectures spread over the front briefly; Kendall τ of the summed
    BKD MSE and of a leave-one-out DONNA-style linear predictor against the metric. The
    finetuned models go to ``validation/`` next to the Pareto file (checked first)."""
    check_writable(Path(pareto).parent / "validation", "validation folder", folder=True)
    from nas.bkd.library import BkdLibrary
    from nas.search.result import load_pareto
    from nas.training.checkpoint import load_checkpoint
    from nas.validate import ValidatedArch, spread_indices, summarise

    res = load_pareto(pareto)
    lib = BkdLibrary.load(Path(res.provenance.get("library") or ""))
    _, _, meta = load_checkpoint(Path(res.provenance.get("mothernet") or ""))
    if data is None:  # once for all K
        data = checkpoint_data(meta, res.space.task, res.space.resolution, lib)
    elif isinstance(data, str):
        from nas.data import load_task_data

        data = load_task_data(res.space.task, data, resolution=res.space.resolution, seed=seed)
    picks = spread_indices([e.latency_ms for e in res.front], k)
    if len(picks) < 3:
        raise PipelineError(
            f"the front of {pareto} has {len(res.front)} architecture(s); the ranking check "
            "needs at least 3 (search a larger space or with a looser budget)"
        )
    archs = []
    metric_name = "metric"
    for n, i in enumerate(picks, 1):
        echo(f"[{n}/{len(picks)}] finetuning front[{i}] for {epochs:g} epoch(s)")
        row = finetune_pick(
            pareto,
            i,
            Path(pareto).parent / "validation" / str(i),
            data=data,
            epochs=epochs,
            seed=seed,
            echo=echo,
            device=device,
            data_workers=data_workers,
        )
        metric_name = row["metric_name"]
        e = res.front[i]
        choices = res.space.choices(e.genome)
        archs.append(
            ValidatedArch(
                genome=tuple(e.genome),
                surrogate=e.surrogate,
                slot_losses=tuple(lib.entry(s, o).nmse for s, o in enumerate(choices)),
                latency_ms=e.latency_ms,
                metric=row["metric"],
                finetune_seconds=row["seconds"],
            )
        )
    bkd_seconds = sum(e.seconds for e in lib.entries())
    bkd_seconds += float((lib.provenance.get("teacher_features") or {}).get("seconds") or 0.0)
    return summarise(metric_name, archs, bkd_seconds, predictor_archs)
