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
    device: Any = None,
    data_workers: int = 0,
    **settings: Any,
) -> Any:
    """BKD of every option of the mothernet's space (or ``space_name`` at the mothernet's
    resolution) on the mothernet's own training data (or ``data``; an imported mothernet needs
    it). ``mothernet``: a checkpoint, or ``LIBRARY:MODEL:WEIGHTS`` imported once into
    ``<out stem>.mothernet.pt`` next to ``out`` (:func:`imported_next_to`); ``settings``: fields of
    :class:`~nas.bkd.config.BkdConfig` to change (``None`` keeps the default); ``device``: a
    :class:`~nas.training.device.TrainDevice` (default the CPU)."""
    check_writable(out, "BKD library")
    from nas.bkd.config import BkdConfig
    from nas.bkd.run import run_bkd
    from nas.core.spaces import get_space
    from nas.data import load_task_data
    from nas.training.checkpoint import load_checkpoint

    mothernet = imported_next_to(mothernet, Path(out))  # LIBRARY:MODEL:WEIGHTS: imported once
    _, mcfg, meta = load_checkpoint(mothernet)
    sp = mcfg.space
    if space_name:  # a named space, with the mothernet's input normalisation (imported ones')
        sp = get_space(space_name, sp.resolution).with_input_norm(sp.input_norm)
    if data is None:  # the mothernet's own training data, as recorded in its checkpoint
        d = checkpoint_data(meta, sp.task, sp.resolution)
    else:
        d = load_task_data(sp.task, data, resolution=sp.resolution, seed=seed)
    cfg = BkdConfig(seed=seed, **{k: v for k, v in settings.items() if v is not None})
    extra = {} if device is None else {"device": device}
    return sp, run_bkd(mothernet, sp, d, out, cfg, limit=limit, data_workers=data_workers, **extra)


def filter_library(
    library: Path,
    out: Path,
    *,
    space: SearchSpace | None = None,
    lut: Any = None,
    mothernet: Path | None = None,
    threshold: float | None = None,
    keep_pareto: int | None = None,
) -> Any:
    """Filter ``space`` (default: the library's) with the BKD library at ``library``, priced
    by ``lut`` (a LUT or its path; ``None``: MACs); write the filtered space to ``out``.
    ``threshold`` / ``keep_pareto``: :class:`~nas.filter.FilterConfig`'s (``None``: default)."""
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
    given = {"threshold": threshold, "keep_pareto": keep_pareto}
    cfg = FilterConfig(**{k: v for k, v in given.items() if v is not None})
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


def import_mothernet_checkpoint(
    spec_text: str, out: Path, resolution: int | None = None
) -> dict[str, Any]:
    """Import ``LIBRARY:MODEL:WEIGHTS`` (torchvision's or timm's model with the user's weights
    file, :mod:`nas.training.imported`) as a mothernet checkpoint at ``out`` (checked first),
    at ``resolution`` (default 224). Returns the import report."""
    check_writable(out, "mothernet checkpoint")
    from nas.core.errors import MothernetError
    from nas.training.imported import (
        IMPORT_RESOLUTION,
        SUPPORTED,
        import_mothernet,
        parse_mothernet_spec,
    )

    spec = parse_mothernet_spec(spec_text)
    if spec is None:
        raise MothernetError(
            f"{spec_text!r} is not LIBRARY:MODEL:WEIGHTS_FILE; supported models: "
            f"{', '.join(f'{lib}:{m}' for lib, m in SUPPORTED)}"
        )
    _, _, report = import_mothernet(spec, resolution=resolution or IMPORT_RESOLUTION, out=out)
    return report


def imported_mothernet(
    spec_text: str, out: Path, resolution: int | None = None, echo: Echo = print
) -> Path:
    """The import of ``spec_text`` at ``out``: made once, then reused while ``out`` holds the
    import of the same model, weights file (sha256) and resolution, so a BKD library or run
    made with it stays valid (its identity is the checkpoint's hash). Returns ``out``."""
    from nas.core.errors import MothernetError
    from nas.core.files import file_sha256
    from nas.training.checkpoint import load_checkpoint
    from nas.training.imported import IMPORT_RESOLUTION, import_summary, parse_mothernet_spec

    spec = parse_mothernet_spec(spec_text)
    if spec is not None and out.is_file() and spec.path.is_file():
        want = {
            "source": spec.library,
            "model": spec.model,
            "resolution": resolution or IMPORT_RESOLUTION,
            "weights_sha256": file_sha256(spec.path),
        }
        try:
            rec = load_checkpoint(out)[2].metrics.get("imported") or {}
        except MothernetError:  # not a checkpoint (any more): import again
            rec = {}
        if all(rec.get(k) == v for k, v in want.items()):
            return out
    report = import_mothernet_checkpoint(spec_text, out, resolution)
    echo(f"imported {import_summary(report)} -> {out}")
    return out


def imported_next_to(mothernet: Path | str, out: Path) -> Path:
    """``mothernet`` itself when it is a checkpoint's path; for ``LIBRARY:MODEL:WEIGHTS`` its
    import (:func:`imported_mothernet`) at ``<out stem>.mothernet.pt`` next to ``out``."""
    from nas.training.imported import parse_mothernet_spec

    if parse_mothernet_spec(str(mothernet)) is None:
        return Path(mothernet)
    return imported_mothernet(str(mothernet), out.with_name(f"{out.stem}.mothernet.pt"))
