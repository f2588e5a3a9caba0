"""``donna experiment filter RUN_DIR``: what the BKD filter buys and what it costs, on a
finished run.

1. The cardinality of the run's unfiltered space and of its filtered one.
2. Both searched with the run's own NSGA-II settings (seed, population, generations, budget)
   and LUT pricer: each front and its search time.
3. The reference front: the unfiltered space's exact front by enumeration when it has at most
   :data:`~nas.search.run.MAX_ENUMERATE` architectures, else the best known front (the
   non-dominated union of every front this experiment found, labelled so, with a note). Every
   hypervolume (HV) is taken at one reference point, the reference front's
   :func:`~nas.search.run.default_ref_point`.
4. A sweep of the filter's (threshold, loss tolerance): per setting, the filtered space's size
   (shrink factor against the unfiltered) and the HV its front loses (its exact front when
   enumerable, else an NSGA-II search with the run's settings); ``sweep.png``.
5. Beyond the paper: the setting with the largest shrink of at least
   :data:`~nas.experiments.defaults.TARGET_SHRINK` that loses under
   :data:`~nas.experiments.defaults.TARGET_HV_LOSS` of the HV, or the measured reason why none
   does.
6. The picks of both searched fronts measured whole on the run's device and finetuned (cached:
   a pick both fronts share is done once); ``fronts.png``.

Writes ``RUN_DIR/experiments/filter/``: ``filter.json`` (every figure), ``summary.md``,
``sweep.png``, ``fronts.png``, ``unfiltered/`` and ``filtered/`` (the two searches' Pareto
files), and refreshes the run's ``report.md``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nas.core.progress import progress_bar
from nas.core.spaces import SearchSpace
from nas.experiments.defaults import (
    FILTER_SWEEP_THRESHOLDS,
    FILTER_SWEEP_TOLERANCES,
    TARGET_HV_LOSS,
    TARGET_SHRINK,
    THIN_KEEPS,
)
from nas.experiments.runs import FinishedRun
from nas.pipeline.picks import Echo, chosen

NAME = "filter"
COMMAND = "donna experiment filter RUN_DIR"
FRONTS = ("unfiltered", "filtered")


def cardinality(space: SearchSpace) -> int:
    """The number of architectures of ``space`` (exact)."""
    return math.prod(space.n_options())


def _points(entries: Sequence[Any]) -> list[list[float]]:
    return [[float(e.surrogate), float(e.latency_ms)] for e in entries]


def _entry_dict(e: Any) -> dict[str, Any]:
    return {
        "options": list(e.options),
        "surrogate": float(e.surrogate),
        "latency_ms": float(e.latency_ms),
    }


@dataclass
class Inputs:
    """What every step reads: the run, its library, LUT pricer, search settings and limits."""

    run: FinishedRun
    library: Any
    table: Any
    pricer: Any
    search: Any  # SearchConfig
    max_enumerate: int

    def enumerable(self, space: SearchSpace) -> bool:
        return cardinality(space) <= self.max_enumerate

    def exact(self, space: SearchSpace) -> tuple[Any, ...]:
        from nas.search.objectives import latency_model
        from nas.search.run import exact_front

        model = latency_model(space, self.pricer)
        return exact_front(space, self.library.losses(space), model, self.search.budget_ms)

    def additive(self, space: SearchSpace) -> bool:
        """Whether latency is a sum over slots (one input width per slot)."""
        from nas.search.objectives import latency_model

        return latency_model(space, self.pricer).additive

    def front_of(self, space: SearchSpace) -> tuple[Any, str]:
        """The space's front and how it was found: exact by enumeration when it is small
        enough, else by the run's NSGA-II search."""
        if self.enumerable(space):
            return self.exact(space), "enumeration"
        res = self.search_space(space)
        return res.front, f"search ({res.method})"

    def search_space(self, space: SearchSpace) -> Any:
        from nas.search.run import run_search

        result = run_search(space, self.library, self.pricer, self.search)
        result.provenance["mothernet"] = str(self.run.context.mothernet_path)
        return result


@dataclass
class Reference:
    """The front every HV is measured against, and the one reference point."""

    kind: str  # "exact" or "best known"
    points: np.ndarray  # (n, 2) surrogate, latency_ms
    ref_point: np.ndarray
    seconds: float
    note: str | None = None

    def ratio(self, found: Any) -> float:
        from nas.search.run import hypervolume_ratio

        return hypervolume_ratio(found, self.points, self.ref_point)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "note": self.note,
            "ref_point": [float(v) for v in self.ref_point],
            "hv_ratio_self": self.ratio(self.points),  # 1 by definition; a check of the HV
            "seconds": self.seconds,
            "front": [[float(a), float(b)] for a, b in self.points],
        }


@dataclass
class FilterExperiment:
    """The figures of one filter experiment and the files written."""

    out: Path
    spaces: dict[str, dict[str, Any]]
    searches: dict[str, dict[str, Any]]
    reference: dict[str, Any]
    sweep: list[dict[str, Any]]
    thinning: list[dict[str, Any]]  # beyond the paper: Pareto options per slot capped
    beyond: dict[str, Any]
    picks: list[dict[str, Any]]
    seconds: float
    paths: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        u, f = self.spaces["unfiltered"], self.spaces["filtered"]
        su, sf = self.searches["unfiltered"], self.searches["filtered"]
        ref = "the exact front" if self.reference["kind"] == "exact" else "the best known front"
        lines = [
            f"filter experiment: {u['cardinality']:,} -> {f['cardinality']:,} architectures "
            f"(10^{u['log10']:.2f} -> 10^{f['log10']:.2f}, {f['shrink']:.1f}x smaller)",
            f"  HV vs {ref}: unfiltered search {su['hv_ratio']:.4f}, filtered search "
            f"{sf['hv_ratio']:.4f}; search {su['seconds']:.1f} s vs {sf['seconds']:.1f} s",
        ]
        if self.reference.get("note"):
            lines.append(f"  note: {self.reference['note']}")
        lines.append(f"  beyond the paper ({self.beyond['goal']}): {self.beyond['text']}")
        lines.append(f"  wrote {self.out}/: {', '.join(p.name for p in self.paths.values())}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "spaces": self.spaces,
            "searches": self.searches,
            "reference": self.reference,
            "sweep": self.sweep,
            "thinning": self.thinning,
            "targets": {"shrink": TARGET_SHRINK, "hv_loss": TARGET_HV_LOSS},
            "beyond_paper": self.beyond,
            "picks": self.picks,
            "seconds": self.seconds,
        }


# ---- steps ----------------------------------------------------------------------------------


def _space_row(space: SearchSpace, base: int) -> dict[str, Any]:
    n = cardinality(space)
    return {
        "name": space.name,
        "cardinality": n,
        "log10": space.log10_size(),
        "n_options": space.n_options(),
        "shrink": base / n,
    }


def _search_row(result: Any) -> dict[str, Any]:
    return {
        "method": result.method,
        "seconds": result.seconds,
        "evaluated": len(result.evaluated),
        "front": [_entry_dict(e) for e in result.front],
    }


def _reference(
    inp: Inputs, space: SearchSpace, found: Sequence[np.ndarray], echo: Echo
) -> Reference:
    """The unfiltered space's exact front, else the best known (union of ``found``)."""
    from nas.search.objectives import nondominated
    from nas.search.run import default_ref_point

    t0 = time.perf_counter()
    if inp.enumerable(space):
        echo(f"enumerating the unfiltered space ({cardinality(space):,} architectures)")
        pts = np.array(_points(inp.exact(space))).reshape(-1, 2)
        kind, note = "exact", None
    else:
        allp = np.unique(np.concatenate([p.reshape(-1, 2) for p in found]), axis=0)
        pts = allp[nondominated(allp[:, 0], allp[:, 1])]
        kind = "best known"
        note = (
            f"the unfiltered space has {cardinality(space):,} architectures, more than the "
            f"{inp.max_enumerate:,} that can be enumerated, so its exact front is unknown: every "
            "HV is against the best known front (the non-dominated union of all fronts found "
            "in this experiment), which overstates each front's share"
        )
        echo(f"note: {note}")
    return Reference(kind, pts, default_ref_point(pts), time.perf_counter() - t0, note)


def _sweep_grid(
    thresholds: Sequence[float], tolerances: Sequence[float], own: tuple[float, float]
) -> list[tuple[float, float]]:
    grid = {(float(t), float(tol)) for tol in tolerances for t in thresholds}
    return sorted(set(grid) | {own}, key=lambda g: (g[1], g[0]))


def filter_limit(space: SearchSpace, report: Any) -> dict[str, Any]:
    """The most any filter setting can shrink ``space``: the filter never drops an option on
    its slot's (nMSE, cost) Pareto front, whatever the threshold and tolerance."""
    kept = [len(s.pareto) for s in report.slots]
    return {
        "slot_pareto_options": kept,
        "n_options": space.n_options(),
        "max_shrink": cardinality(space) / math.prod(kept),
    }


def _sweep(
    inp: Inputs, space: SearchSpace, grid: Sequence[tuple[float, float]], own: tuple[float, float]
) -> tuple[list[dict[str, Any]], list[np.ndarray], dict[str, Any]]:
    """Every setting's filtered space: size and front (points kept for the HV later), and
    the filter's limit (:func:`filter_limit`)."""
    from nas.filter import FilterConfig, filter_space

    base = cardinality(space)
    rows, fronts, limit = [], [], {}
    bar = progress_bar(len(grid), "filter sweep", unit="setting")
    try:
        for threshold, tolerance in grid:
            t0 = time.perf_counter()
            rep = filter_space(space, inp.library, inp.table, FilterConfig(threshold, tolerance))
            limit = limit or filter_limit(space, rep)
            front, method = inp.front_of(rep.space)
            fronts.append(np.array(_points(front)).reshape(-1, 2))
            rows.append(
                {
                    "threshold": threshold,
                    "loss_tolerance": tolerance,
                    "run_setting": (threshold, tolerance) == own,
                    **_space_row(rep.space, base),
                    "dropped": len(rep.dropped),
                    "front_by": method,
                    "front_size": len(front),
                    "seconds": time.perf_counter() - t0,
                }
            )
            bar.update(1)
    finally:
        bar.close()
    return rows, fronts, limit


def _thin_sweep(
    inp: Inputs, space: SearchSpace, keeps: Sequence[int]
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Beyond the paper: each ``keep`` of :func:`nas.filter.thin_space` (at most ``keep``
    Pareto options per slot), its size and front."""
    from nas.filter import thin_space

    base = cardinality(space)
    rows, fronts = [], []
    with progress_bar(len(keeps), "Pareto thinning", unit="setting") as bar:
        for keep in keeps:
            t0 = time.perf_counter()
            thin = thin_space(space, inp.library, inp.table, keep)
            front, method = inp.front_of(thin)
            fronts.append(np.array(_points(front)).reshape(-1, 2))
            rows.append(
                {
                    "keep": keep,
                    **_space_row(thin, base),
                    "front_by": method,
                    "front_size": len(front),
                    "seconds": time.perf_counter() - t0,
                }
            )
            bar.update(1)
    return rows, fronts


def _picks(
    inp: Inputs,
    results: dict[str, tuple[SearchSpace, Any]],
    finetune: dict[str, Any],
    echo: Echo,
) -> list[dict[str, Any]]:
    """Both fronts' picks measured whole (one device session) and finetuned (cached)."""
    run, n = inp.run, inp.run.config.sizes.finals
    todo = [(label, sp, res, i) for label, (sp, res) in results.items() for i in chosen(res, n)]
    keys = [tuple(res.front[i].options) for _, _, res, i in todo]
    measured = run.measure([sp.decode(res.front[i].genome) for _, sp, res, i in todo])
    rows = []
    for k, ((label, sp, res, i), m) in enumerate(zip(todo, measured), 1):
        e = res.front[i]
        echo(f"[{k}/{len(todo)}] {label} front[{i}] ({', '.join(e.options)})")
        ft = run.finetune(sp, sp.choices(e.genome), **finetune)
        rows.append(
            {
                "front": label,
                "index": i,
                "options": list(e.options),
                "shared": keys.count(tuple(e.options)) > 1,
                "surrogate": e.surrogate,
                "lut_ms": e.latency_ms,
                "measured_ms": m["measured_ms"],
                "error_pct": m["error_pct"],
                "metric": ft["metric"],
                "metric_name": ft["metric_name"],
                "metric_before": ft.get("metric_before"),
                "finetune_seconds": ft.get("seconds"),
            }
        )
    return rows


# ---- the experiment -------------------------------------------------------------------------


def _open(run_dir: Path, device: str | None, echo: Echo, max_enumerate: int | None) -> Inputs:
    from latency.estimator import build_estimator
    from nas.search.run import MAX_ENUMERATE

    run = FinishedRun.open(Path(run_dir), NAME, needs="search", device=device, echo=echo)
    table = run.context.table()
    _, search = run.config.stage_configs()
    limit = MAX_ENUMERATE if max_enumerate is None else max_enumerate
    return Inputs(run, run.library(), table, build_estimator(table, "lut"), search, limit)


def _run_setting(run: FinishedRun) -> tuple[float, float]:
    from nas.filter import DEFAULT_LOSS_TOLERANCE, DEFAULT_THRESHOLD, load_filtered

    cfg = (load_filtered(run.context.path("space.json")).get("filter") or {}).get("config") or {}
    threshold = float(cfg.get("threshold", DEFAULT_THRESHOLD))
    return threshold, float(cfg.get("loss_tolerance", DEFAULT_LOSS_TOLERANCE))


def _searches(inp: Inputs, spaces: dict[str, SearchSpace], echo: Echo) -> dict[str, Any]:
    results = {}
    for label, sp in spaces.items():
        echo(f"searching the {label} space ({cardinality(sp):,} architectures)")
        res = inp.search_space(sp)
        res.save(inp.run.out / label)
        echo(f"  {res.method}: {len(res.front)} on the front in {res.seconds:.1f} s")
        results[label] = res
    return results


def run_filter_experiment(
    run_dir: Path,
    *,
    device: str | None = None,
    thresholds: Sequence[float] | None = None,
    loss_tolerances: Sequence[float] | None = None,
    finetune_epochs: float | None = None,
    train_device: Any = None,
    data_workers: int = 0,
    echo: Echo = print,
    max_enumerate: int | None = None,
) -> FilterExperiment:
    """The filter experiment on the finished run in ``run_dir`` (see the module docstring);
    ``thresholds`` / ``loss_tolerances``: the sweep (default
    :data:`~nas.experiments.defaults.FILTER_SWEEP_THRESHOLDS` / ``_TOLERANCES``);
    ``max_enumerate``: the largest space enumerated (default
    :data:`~nas.search.run.MAX_ENUMERATE`)."""
    from nas.experiments.filter_plots import beyond_paper, plot_fronts, plot_sweep, write_summary

    t0 = time.perf_counter()
    inp = _open(run_dir, device, echo, max_enumerate)
    run = inp.run
    spaces = {"unfiltered": run.space, "filtered": run.filtered_space()}
    base = cardinality(run.space)
    results = _searches(inp, spaces, echo)
    own = _run_setting(run)
    grid = _sweep_grid(thresholds or FILTER_SWEEP_THRESHOLDS,
                       loss_tolerances or FILTER_SWEEP_TOLERANCES, own)  # fmt: skip
    echo(f"sweeping the filter over {len(grid)} settings")
    sweep, sweep_fronts, limit = _sweep(inp, run.space, grid, own)
    keeps = [k for k in THIN_KEEPS if k < max(run.space.n_options())]
    echo(f"beyond the paper: thinning each slot's Pareto front to {keeps} options")
    thinning, thin_fronts = _thin_sweep(inp, run.space, keeps)
    found = [np.asarray(r.points()) for r in results.values()] + sweep_fronts + thin_fronts
    ref = _reference(inp, run.space, found, echo)
    for row, pts in [*zip(sweep, sweep_fronts), *zip(thinning, thin_fronts)]:
        row["hv_ratio"] = ref.ratio(pts)
        row["hv_lost"] = 1.0 - row["hv_ratio"]
    searches = {}
    for label, res in results.items():
        searches[label] = {**_search_row(res), "hv_ratio": ref.ratio(res)}
    searches["filtered"]["same_front_as_run"] = _same_as_run(run, results["filtered"])
    finetune = {"epochs": finetune_epochs, "device": train_device, "data_workers": data_workers}
    picks = _picks(inp, {k: (spaces[k], results[k]) for k in FRONTS}, finetune, echo)
    exp = FilterExperiment(
        out=run.out,
        spaces={k: _space_row(sp, base) for k, sp in spaces.items()},
        searches=searches,
        reference=ref.to_dict(),
        sweep=sweep,
        thinning=thinning,
        beyond=beyond_paper(sweep, limit=limit, thinning=thinning),
        picks=picks,
        seconds=0.0,
    )
    exp.paths["sweep"] = plot_sweep(sweep, limit, run.out / "sweep.png", thinning)
    exp.paths["fronts"] = plot_fronts(ref, results, picks, run.out / "fronts.png")
    exp.seconds = time.perf_counter() - t0
    payload = {
        "command": _command(thresholds, loss_tolerances, finetune_epochs),
        "run": str(run.folder),
        "device": run.config.device,
        "search_config": asdict(inp.search),
        "run_filter": {"threshold": own[0], "loss_tolerance": own[1]},
        "max_enumerate": inp.max_enumerate,
        "additive_latency": inp.additive(run.space),
        "filter_limit": limit,
        "finetune_epochs": finetune_epochs or run.config.sizes.finetune_epochs,
        **exp.to_dict(),
    }
    exp.paths["json"] = run.write_json("filter.json", payload)
    exp.paths["summary"] = write_summary(run.out / "summary.md", payload)
    run.refresh_report()
    return exp


def _same_as_run(run: FinishedRun, result: Any) -> bool | None:
    """Whether the filtered space's search found the run's own front again (same seed)."""
    from nas.core.errors import DonnaError

    try:
        mine = run.context.pareto()
    except DonnaError:  # the run's Pareto file is not needed for the experiment
        return None
    same = len(mine.front) == len(result.front)
    return bool(same and np.allclose(mine.points(), result.points()))


def _command(
    thresholds: Sequence[float] | None,
    tolerances: Sequence[float] | None,
    finetune_epochs: float | None,
) -> str:
    cmd = COMMAND
    if thresholds:
        cmd += " --thresholds " + ",".join(f"{t:g}" for t in thresholds)
    if tolerances:
        cmd += " --loss-tolerances " + ",".join(f"{t:g}" for t in tolerances)
    if finetune_epochs:
        cmd += f" --finetune-epochs {finetune_epochs:g}"
    return cmd
