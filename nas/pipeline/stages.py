"""The stages of ``donna run``, one function each, in order:

1. ``mothernet``  train the mothernet on the task data (or use ``--mothernet FILE``)
2. ``lut``        profile every block of the space on the device (reuses an existing LUT)
3. ``bkd``        blockwise knowledge distillation of every option (resumable per option)
4. ``filter``     drop options that cost much for their loss level
5. ``search``     NSGA-II over the filtered space: summed BKD MSE vs LUT latency
6. ``hil``        convert chosen models whole and measure them on the device (LUT vs measured)
7. ``finetune``   finetune the chosen models with distillation from the mothernet
8. ``report``     ``report.md`` with tables and plots

Each takes the :class:`RunContext` and returns what ``run.json`` records about it; each writes
its outputs atomically. The work itself is done by the library modules they call.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.core.files import atomic_write_text
from nas.core.spaces import SearchSpace
from nas.pipeline.config import RunConfig
from nas.pipeline.picks import Echo, chosen, finetune_pick
from nas.pipeline.steps import filter_library, search_front, train_mothernet_checkpoint


@dataclass
class RunContext:
    """What every stage reads: the settings, the run folder and the inputs loaded once."""

    config: RunConfig
    echo: Echo = print
    state: dict[str, Any] = field(default_factory=dict)
    _data: Any = None
    _space: SearchSpace | None = None
    _train_device: Any = None

    @property
    def folder(self) -> Path:
        return self.config.folder

    def path(self, name: str) -> Path:
        return self.folder / name

    @property
    def mothernet_path(self) -> Path:
        if self.config.mothernet and self.config.imported_mothernet is None:
            return Path(self.config.mothernet)
        return self.path("mothernet.pt")  # trained here, or imported here

    @property
    def space(self) -> SearchSpace:
        if self._space is None:
            imported = self.imported_space()
            own = imported is not None and not self.config.space
            self._space = imported if own else self._named_space(imported)
        return self._space

    def _named_space(self, given: SearchSpace | None) -> SearchSpace:
        """The ``--space`` (or the task's) space with the input normalisation of the mothernet
        given (``given``: an imported one's space; else read from ``--mothernet FILE``), so its
        students see the input as it does (an imported one's ImageNet mean and std)."""
        space = self.config.get_space()
        if given is None and self.config.mothernet and self.mothernet_path.is_file():
            from nas.training.checkpoint import load_checkpoint

            given = load_checkpoint(self.mothernet_path)[1].space
        return space if given is None else space.with_input_norm(given.input_norm)

    def imported_space(self) -> SearchSpace | None:
        """For ``--mothernet LIBRARY:MODEL:WEIGHTS``: import it into the run folder (once;
        reused on resume) and return its space; ``None`` for other mothernets."""
        if self.config.imported_mothernet is None:
            return None
        from nas.pipeline.steps import imported_mothernet
        from nas.training.checkpoint import load_checkpoint

        path = imported_mothernet(
            str(self.config.mothernet), self.mothernet_path, self.config.resolution, self.echo
        )
        return load_checkpoint(path)[1].space

    def data(self) -> Any:
        if self._data is None:
            from nas.data import load_task_data

            s = self.config.sizes
            self._data = load_task_data(
                self.config.task,
                self.config.data,
                resolution=self.space.resolution,
                seed=self.config.seed,
                train_limit=s.train_limit,
                val_limit=s.val_limit,
            )
        return self._data

    @property
    def train_device(self) -> Any:
        """Where the training stages run (:class:`~nas.training.device.TrainDevice`)."""
        if self._train_device is None:
            self._train_device = self.config.train_device_resolved()
        return self._train_device

    @contextlib.contextmanager
    def open_device(self) -> Iterator[Any]:
        """The run's device, closed (phone sessions cleaned up) when the block ends."""
        from latency.devices import open_device

        with open_device(self.config.device, *self.config.device_configs()) as device:
            yield device

    def convert_config(self) -> Any:
        from latency.convert import ConvertConfig, default_cache_dir

        return ConvertConfig(default_cache_dir(), seed=self.config.seed)

    def table(self) -> Any:
        from lut.table import LatencyTable

        return LatencyTable.load(self.config.lut_path())

    def mothernet_choices(self) -> Any:
        from nas.training.checkpoint import load_checkpoint

        _, mcfg, _ = load_checkpoint(self.mothernet_path, self.space)
        return mcfg.choices

    def pareto(self) -> Any:
        from nas.search.result import load_pareto

        return load_pareto(self.path("search/pareto.json"))


def stage_mothernet(ctx: RunContext) -> dict[str, Any]:
    from nas.training.checkpoint import load_checkpoint
    from nas.training.mothernet import evaluate

    cfg = ctx.config
    if cfg.mothernet:
        net, _, meta = load_checkpoint(ctx.mothernet_path, ctx.space)
        metric = meta.metrics.get("value")
        if metric is None:
            net.to(ctx.train_device.torch_device())
            metric = evaluate(
                net, ctx.data(), device=ctx.train_device, workers=ctx.config.data_workers
            )
        return {"metric": metric, "source": str(ctx.mothernet_path)}
    metrics = train_mothernet_checkpoint(
        ctx.space,
        ctx.data(),
        ctx.mothernet_path,
        seed=cfg.seed,
        echo=ctx.echo,
        epochs=cfg.sizes.mothernet_epochs,
        device=ctx.train_device,
        data_workers=cfg.data_workers,
    )
    return {"metric": metrics.get("value"), "metrics": metrics}


def stage_lut(ctx: RunContext) -> dict[str, Any]:
    """What ``latency-profile`` does (one library path): profile the space's missing blocks
    into the LUT (under the LUT's own lock), then fit its context model once, unless a
    ``latency-profile`` run calibrated it already."""
    from latency.jobs import ProfileJob, profile_one

    cfg, lut = ctx.config, ctx.config.lut_path()
    measure, adb = cfg.device_configs()
    job = ProfileJob(
        space=ctx.space, devices=(cfg.device,), measure=measure, adb=adb,
        convert=ctx.convert_config(), out=lut,
    )  # fmt: skip
    summary = profile_one(job, cfg.device, lut, ctx.echo)
    ctx.echo(summary)
    return {"lut": str(lut.resolve()), "summary": summary}  # absolute: read from anywhere


def stage_bkd(ctx: RunContext) -> dict[str, Any]:
    from nas.bkd.config import BkdConfig
    from nas.bkd.run import run_bkd

    s = ctx.config.sizes
    cfg = BkdConfig(
        epochs=s.bkd_epochs,
        seed=ctx.config.seed,
        train_samples=s.bkd_train_samples,
        val_samples=s.bkd_val_samples,
        workers=ctx.config.workers,
    )
    t0 = time.perf_counter()
    lib = run_bkd(
        ctx.mothernet_path, ctx.space, ctx.data(), ctx.path("bkd.json"), cfg,
        device=ctx.train_device, data_workers=ctx.config.data_workers,
    )  # fmt: skip
    return {"options": len(lib), "train_seconds": time.perf_counter() - t0}


def stage_filter(ctx: RunContext) -> dict[str, Any]:
    report = filter_library(
        ctx.path("bkd.json"), ctx.path("space.json"), space=ctx.space, lut=ctx.table()
    )
    ctx.echo(report.summary())
    return {"log10_before": report.log10_before, "log10_after": report.log10_after}


def stage_search(ctx: RunContext) -> dict[str, Any]:
    from latency.estimator import build_estimator

    cfg, s = ctx.config, ctx.config.sizes
    result = search_front(
        ctx.path("space.json"),
        ctx.path("bkd.json"),
        build_estimator(ctx.table(), "lut"),
        ctx.path("search"),
        mothernet=ctx.mothernet_path,
        provenance={
            "space_file": str(ctx.path("space.json")),
            "lut": str(cfg.lut_path().resolve()),
            "task": cfg.task,
            "data": cfg.data or "builtin",
            "device": cfg.device,
        },
        pop_size=s.pop_size,
        generations=s.generations,
        seed=cfg.seed,
        budget_ms=cfg.budget_ms,
    )
    ctx.echo(result.summary())
    return {"front": len(result.front), "search_seconds": result.seconds}


def stage_hil(ctx: RunContext) -> dict[str, Any]:
    from latency.profiler import measure_architectures

    res = ctx.pareto()
    s = ctx.config.sizes
    picks = sorted(set(chosen(res, s.hil_models)) | set(chosen(res, s.finals)))
    archs = [res.space.decode(res.front[i].genome) for i in picks]
    indices: list[int | None] = [*picks, None]  # None: the mothernet
    archs.append(ctx.space.architecture(ctx.mothernet_choices()))
    table = ctx.table()
    with ctx.open_device() as device:
        measured = measure_architectures(archs, device, table, ctx.convert_config())
    rows = []
    for index, arch, m in zip(indices, archs, measured):
        est = table.lookup(arch) / 1000.0
        meas = m.warm.median_us / 1000.0  # whole nets run back to back, as deployed
        rows.append(
            {
                "model": "mothernet" if index is None else f"front[{index}]",
                "index": index,
                "lut_ms": est,
                "measured_ms": meas,
                "error_pct": (est - meas) / meas * 100.0,
            }
        )
    atomic_write_text(ctx.path("hil.json"), json.dumps({"rows": rows}, indent=1))
    for r in rows:
        ctx.echo(
            f"  {r['model']:>10s}: LUT {r['lut_ms']:.3f} ms, measured "
            f"{r['measured_ms']:.3f} ms ({r['error_pct']:+.1f}%)"
        )
    return {"models": len(rows)}


def stage_finetune(ctx: RunContext) -> dict[str, Any]:
    res = ctx.pareto()
    rows = []
    for i in chosen(res, ctx.config.sizes.finals):
        r = finetune_pick(
            ctx.path("search/pareto.json"),
            i,
            ctx.path(f"final/{i}"),
            data=ctx.data(),
            epochs=ctx.config.sizes.finetune_epochs,
            seed=ctx.config.seed,
            echo=ctx.echo,
            device=ctx.train_device,
            data_workers=ctx.config.data_workers,
        )
        r["latency_ms"] = res.front[i].latency_ms
        rows.append(r)
    ctx.path("final").mkdir(parents=True, exist_ok=True)
    atomic_write_text(ctx.path("final/results.json"), json.dumps(rows, indent=1))
    return {"finals": len(rows)}


def stage_report(ctx: RunContext) -> dict[str, Any]:
    from nas.pipeline.report import write_report

    path = write_report(ctx.folder, ctx.state)
    ctx.echo(f"report: {path}")
    return {"report": str(path)}


Stage = Callable[[RunContext], dict[str, Any]]
STAGES: dict[str, Stage] = {
    "mothernet": stage_mothernet,
    "lut": stage_lut,
    "bkd": stage_bkd,
    "filter": stage_filter,
    "search": stage_search,
    "hil": stage_hil,
    "finetune": stage_finetune,
    "report": stage_report,
}
