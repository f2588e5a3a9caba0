"""The single steps of the pipeline as library functions: what each ``donna`` subcommand runs
and what the ``donna run`` stages call, so each step is put together in one place only."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.core.files import check_writable
from nas.core.spaces import SearchSpace
from nas.pipeline.picks import Echo, checkpoint_data, mothernet_point


def train_mothernet_checkpoint(
    space: SearchSpace,
    data: Any,
    out: Path,
    *,
    seed: int = 0,
    echo: Echo = print,
    **train: Any,
) -> dict[str, Any]:
    """Build the space's default mothernet, train it on ``data`` (``train``: the keyword
    arguments of :func:`~nas.training.mothernet.train_mothernet` to change, e.g. ``epochs``)
    and save the checkpoint at ``out`` (checked before training). Returns the metrics."""
    check_writable(out, "mothernet checkpoint")
    import torch

    from nas.training.checkpoint import save_checkpoint
    from nas.training.mothernet import MothernetConfig, build_mothernet, train_mothernet

    torch.manual_seed(seed)
    mcfg = MothernetConfig.default(space, seed=seed)
    net = build_mothernet(mcfg)
    echo(f"training the mothernet ({', '.join(o.label() for o in mcfg.choices)}) on {data.source}")
    metrics = train_mothernet(
        net, data, seed=seed, **{k: v for k, v in train.items() if v is not None}
    )
    save_checkpoint(out, net, mcfg, metrics, data.describe())
    return metrics


def bkd_from_checkpoint(
    mothernet: Path,
    out: Path,
    *,
    space_name: str | None = None,
    data: str | None = None,
    seed: int = 0,
    limit: int | None = None,
    **settings: Any,
) -> Any:
    """BKD of every option of the mothernet's space (or ``space_name`` at the mothernet's
    resolution) on the mothernet's own training data (or ``data``); ``settings``: fields of
    :class:`~nas.bkd.config.BkdConfig` to change (``None`` keeps the default)."""
    check_writable(out, "BKD library")
    from nas.bkd.config import BkdConfig
    from nas.bkd.run import run_bkd
    from nas.core.spaces import get_space
    from nas.data import load_task_data
    from nas.training.checkpoint import load_checkpoint

    _, mcfg, meta = load_checkpoint(mothernet)
    sp = get_space(space_name, mcfg.space.resolution) if space_name else mcfg.space
    if data is None:  # the mothernet's own training data, as recorded in its checkpoint
        d = checkpoint_data(meta, sp.task, sp.resolution)
    else:
        d = load_task_data(sp.task, data, resolution=sp.resolution, seed=seed)
    cfg = BkdConfig(seed=seed, **{k: v for k, v in settings.items() if v is not None})
    return sp, run_bkd(mothernet, sp, d, out, cfg, limit=limit)


def filter_library(
    library: Path,
    out: Path,
    *,
    space: SearchSpace | None = None,
    lut: Any = None,
    mothernet: Path | None = None,
    threshold: float | None = None,
) -> Any:
    """Filter ``space`` (default: the library's) with the BKD library at ``library``, priced
    by ``lut`` (a LUT or its path; ``None``: MACs); write the filtered space to ``out``."""
    check_writable(out, "filtered space")
    from lut.table import LatencyTable
    from nas.bkd.library import BkdLibrary
    from nas.core.files import file_sha256
    from nas.filter import FilterConfig, filter_space

    lib = BkdLibrary.load(library)
    if mothernet is not None:
        lib.check_mothernet(file_sha256(mothernet))
    if lut is not None and not isinstance(lut, LatencyTable):
        lut = LatencyTable.load(lut)
    cfg = FilterConfig() if threshold is None else FilterConfig(threshold=threshold)
    report = filter_space(space or lib.space, lib, lut, cfg)
    report.save(out)
    return report


def search_front(
    space_file: Path,
    library: Path,
    estimator: Any,
    out: Path,
    *,
    mothernet: Path | None = None,
    provenance: Mapping[str, Any] | None = None,
    **search: Any,
) -> Any:
    """NSGA-II over the filtered space in ``space_file`` with the BKD library and a latency
    estimator (:func:`latency.estimator.build_estimator`); ``search``: fields of
    :class:`~nas.search.run.SearchConfig` (``None`` keeps the default). The mothernet (given,
    else the library's) is marked on the plot and recorded for finetuning. Writes
    ``out/pareto.json`` and ``out/pareto.png``; returns the result."""
    check_writable(out, "search output folder", folder=True)
    from nas.bkd.library import BkdLibrary
    from nas.filter import load_filtered_space
    from nas.search.run import SearchConfig, run_search
    from nas.training.checkpoint import load_checkpoint

    lib = BkdLibrary.load(library)
    space = load_filtered_space(space_file, lib)
    cfg = SearchConfig(**{k: v for k, v in search.items() if v is not None})
    recorded = lib.provenance.get("mothernet")
    mpath = mothernet or (Path(recorded) if recorded else None)
    point = None
    if mpath is not None and mpath.exists():
        _, mcfg, _ = load_checkpoint(mpath, space)
        point = mothernet_point(space, lib, mcfg.choices, estimator.estimate)
    result = run_search(space, lib, estimator, cfg, point)
    if mpath is not None:
        result.provenance["mothernet"] = str(mpath)
    result.provenance.update(provenance or {})
    result.save(out)
    return result
