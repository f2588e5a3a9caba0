"""``donna experiment cost RUN_DIR``: does optimising measured device latency beat optimising
FLOPs (the DONNAv2 paper's claim)?

The run's search is done twice on its *unfiltered* space, with its BKD library, seed,
population and generations: once priced by MACs (the FLOPs proxy), once by its LUT (device
latency, as the run's own search). Architectures spread over each front are measured whole on
the run's device, and each MACs-front pick is matched with the LUT-front architecture that is
fastest by the LUT at an equal or lower surrogate loss (the "latency-chosen" counterpart). The
measured latency ratio FLOPs-chosen / latency-chosen of the pairs answers the claim; Kendall τ
of MACs and of the LUT against the measured latency says how well each cost ranks models.

Outputs in ``RUN_DIR/experiments/cost/``: ``cost.json``; ``summary.md``, ``fronts.png`` and
``cost_vs_measured.png`` (:mod:`nas.experiments.cost_plots`); ``measured.json`` (the
measurement cache of :meth:`~nas.experiments.runs.FinishedRun.measure`).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from nas.core.files import atomic_write_text
from nas.core.specs import Architecture, macs
from nas.experiments.defaults import COST_PICKS
from nas.experiments.runs import ExperimentError, FinishedRun
from nas.pipeline.picks import Echo

NAME = "cost"
COSTS = ("macs", "lut")  # the two searches, by what prices them
COST_LABEL = {"macs": "MACs (FLOPs proxy)", "lut": "LUT latency"}

# a model to measure: its architecture, genome (None: outside the space), options, surrogate
_Candidate = tuple[Architecture, "tuple[int, ...] | None", "tuple[str, ...]", "float | None"]


@dataclass(frozen=True)
class CostModel:
    """One distinct architecture the experiment measured, priced three ways."""

    key: str  # Architecture.key(), shortened
    roles: tuple[str, ...]  # "macs-front[i]", "lut-front[j]", "mothernet"
    genome: tuple[int, ...] | None  # None: an architecture outside the space's genomes
    options: tuple[str, ...]
    surrogate: float | None  # summed BKD nMSE (None: not in the library)
    mmacs: float
    lut_ms: float
    measured_ms: float
    error_pct: float  # LUT vs measured


@dataclass(frozen=True)
class MatchedPair:
    """A MACs-front pick and its latency-chosen counterpart on the LUT front: the LUT-front
    entry with the lowest LUT latency among those whose surrogate is no higher (``fallback``:
    none was; then the LUT front's lowest-loss entry)."""

    macs_index: int
    lut_index: int
    flops_chosen: CostModel
    latency_chosen: CostModel
    fallback: bool

    @property
    def ratio(self) -> float:
        """Measured latency of the FLOPs-chosen model over the latency-chosen one's."""
        return self.flops_chosen.measured_ms / self.latency_chosen.measured_ms

    @property
    def same_model(self) -> bool:
        return self.flops_chosen.key == self.latency_chosen.key

    def to_dict(self) -> dict[str, Any]:
        return {
            "macs_index": self.macs_index,
            "lut_index": self.lut_index,
            "fallback": self.fallback,
            "same_model": self.same_model,
            "ratio": self.ratio,
            "flops_chosen": asdict(self.flops_chosen),
            "latency_chosen": asdict(self.latency_chosen),
        }


@dataclass(frozen=True)
class CostExperiment:
    """The experiment's figures and where they were written."""

    folder: Path  # the run folder
    out: Path
    models: tuple[CostModel, ...]
    pairs: tuple[MatchedPair, ...]
    tau_macs: tuple[float, float]  # Kendall τ(MACs, measured ms), p-value
    tau_lut: tuple[float, float]  # Kendall τ(LUT ms, measured ms), p-value
    searches: dict[str, dict[str, Any]]  # per cost: method, seconds, front (every entry), picks
    settings: dict[str, Any]
    notes: tuple[str, ...]
    paths: tuple[Path, ...]
    seconds: float

    @property
    def ratios(self) -> list[float]:
        return [p.ratio for p in self.pairs]

    @property
    def median_ratio(self) -> float:
        return float(statistics.median(self.ratios))

    @property
    def faster_count(self) -> int:
        """Pairs where the latency-chosen model measured faster than the FLOPs-chosen one."""
        return sum(1 for p in self.pairs if not p.same_model and p.ratio > 1.0)

    @property
    def same_count(self) -> int:
        return sum(1 for p in self.pairs if p.same_model)

    def to_dict(self) -> dict[str, Any]:
        ratios = self.ratios
        return {
            "experiment": NAME,
            "run": str(self.folder),
            "settings": self.settings,
            "seconds": self.seconds,
            "searches": self.searches,
            "models": [asdict(m) for m in self.models],
            "pairs": [p.to_dict() for p in self.pairs],
            "ratio": {
                "median": self.median_ratio,
                "min": min(ratios),
                "max": max(ratios),
                "faster": self.faster_count,
                "same_model": self.same_count,
                "pairs": len(ratios),
            },
            "kendall": {
                "models": len(self.models),
                "macs_vs_measured": {"tau": self.tau_macs[0], "p": self.tau_macs[1]},
                "lut_vs_measured": {"tau": self.tau_lut[0], "p": self.tau_lut[1]},
            },
            "notes": list(self.notes),
            "paths": [str(p) for p in self.paths],
        }

    def summary(self) -> str:
        ratios = self.ratios
        same = f", {self.same_count} the same model" if self.same_count else ""
        return "\n".join(
            [
                f"cost experiment on {self.folder} ({self.seconds:.0f} s): {len(self.pairs)} "
                "pairs matched by surrogate loss",
                f"  measured latency FLOPs-chosen / latency-chosen: median "
                f"{self.median_ratio:.2f}x (range {min(ratios):.2f}x-{max(ratios):.2f}x); the "
                f"latency-chosen model was faster in {self.faster_count} of {len(ratios)}{same}",
                f"  Kendall τ vs measured latency over {len(self.models)} models: MACs "
                f"{self.tau_macs[0]:+.3f} (p={self.tau_macs[1]:.3g}), LUT "
                f"{self.tau_lut[0]:+.3f} (p={self.tau_lut[1]:.3g})",
                f"  wrote {self.out}/: " + ", ".join(p.name for p in self.paths),
            ]
        )


# ---- the searches ------------------------------------------------------------------------------


def _search(
    run: FinishedRun, pricer: Any, config: Any, mothernet: Any, label: str, echo: Echo
) -> Any:
    from nas.core.progress import progress_bar
    from nas.search.run import run_search

    space = run.space
    echo(
        f"searching the unfiltered space {space.name!r} (10^{space.log10_size():.2f} "
        f"architectures) priced by {label}: pop {config.pop_size} x {config.generations} gen, "
        f"seed {config.seed}"
    )
    with progress_bar(config.generations, f"search ({label})", unit="gen") as bar:

        def progress(gen: int, total: int) -> None:
            bar.update(max(0, gen - bar.n))

        result = run_search(space, run.library(), pricer, config, mothernet, progress=progress)
    echo(f"  {result.method}: {len(result.front)} on the front in {result.seconds:.1f} s")
    return result


def _mmacs(arch: Architecture) -> float:
    return sum(macs(b) for b in arch.blocks) / 1e6


def _front_rows(result: Any, table: Any) -> list[dict[str, Any]]:
    """Every front entry with both costs (MMACs and LUT ms), whatever priced the search."""
    rows = []
    for i, e in enumerate(result.front):
        arch = result.space.decode(e.genome)
        rows.append(
            {
                "index": i,
                "genome": list(e.genome),
                "options": list(e.options),
                "surrogate": e.surrogate,
                "mmacs": _mmacs(arch),
                "lut_ms": table.lookup(arch) / 1000.0,
            }
        )
    return rows


def counterpart(lut_front: Sequence[Any], loss: float) -> tuple[int, bool]:
    """Index of the LUT-front entry with the lowest LUT latency among those with surrogate
    ``<= loss``, and False; if there is none, the lowest-loss entry's index and True."""
    ok = [i for i, e in enumerate(lut_front) if e.surrogate <= loss]
    if ok:
        return min(ok, key=lambda i: (lut_front[i].latency_ms, lut_front[i].surrogate)), False
    return min(range(len(lut_front)), key=lambda i: lut_front[i].surrogate), True


# ---- the experiment ----------------------------------------------------------------------------


def run_cost_experiment(
    run_dir: Path | str,
    *,
    device: str | None = None,
    picks: int = COST_PICKS,
    echo: Echo = print,
) -> CostExperiment:
    """The same search priced by MACs and by the LUT on the run's unfiltered space; ``picks``
    architectures of each front and the MACs picks' latency-chosen counterparts measured whole
    on the run's device (``device``: refuse a run made on another one). Writes the outputs to
    ``RUN_DIR/experiments/cost/`` and refreshes the run's report."""
    from nas.validate import kendall_tau, spread_indices

    if picks < 2:
        raise ExperimentError(f"--picks must be at least 2 (got {picks}): τ needs two models")
    t0 = time.perf_counter()
    run = FinishedRun.open(Path(run_dir), NAME, needs="search", device=device, echo=echo)
    table = run.context.table()
    results, mother_loss = _searches(run, table, echo)
    fronts = {c: results[c].front for c in COSTS}
    chosen = {c: spread_indices([e.latency_ms for e in fronts[c]], picks) for c in COSTS}
    matches = [counterpart(fronts["lut"], fronts["macs"][i].surrogate) for i in chosen["macs"]]
    wanted = {
        "macs": chosen["macs"],
        "lut": sorted(set(chosen["lut"]) | {j for j, _ in matches}),
    }
    models = _measure_models(run, table, fronts, wanted, mother_loss, echo)

    def model_at(c: str, i: int) -> CostModel:
        return models[run.space.decode(fronts[c][i].genome).key()]

    pairs = tuple(
        MatchedPair(i, j, model_at("macs", i), model_at("lut", j), fallback)
        for i, (j, fallback) in zip(chosen["macs"], matches)
    )
    distinct = list(models.values())
    if len(distinct) < 2:
        raise ExperimentError(
            "both fronts and the mothernet are one model: nothing to rank; make a run with a "
            "larger space or search (--set pop_size=..., --set generations=...)"
        )
    ms = [m.measured_ms for m in distinct]
    config = results["lut"].config
    exp = CostExperiment(
        folder=run.folder, out=run.out, models=tuple(distinct), pairs=pairs,
        tau_macs=kendall_tau([m.mmacs for m in distinct], ms),
        tau_lut=kendall_tau([m.lut_ms for m in distinct], ms),
        searches={c: _search_record(results[c], chosen[c], table) for c in COSTS},
        settings={
            "picks": picks, "device": run.config.device, "task": run.config.task,
            "space": run.space.name, "log10_size": run.space.log10_size(), "seed": config.seed,
            "pop_size": config.pop_size, "generations": config.generations,
            "run_budget_ms": run.config.budget_ms,
        },
        notes=tuple(_notes(run, pairs, len(distinct))), paths=(), seconds=0.0,
    )  # fmt: skip
    return _write(run, exp, t0, echo)


def _searches(run: FinishedRun, table: Any, echo: Echo) -> tuple[dict[str, Any], float | None]:
    """Both searches (the run's settings; no budget for MACs) and the mothernet's surrogate."""
    from latency.estimator import build_estimator
    from nas.core.pricing import MacsPricer
    from nas.pipeline.picks import mothernet_point

    space, library = run.space, run.library()
    _, lut_config = run.config.stage_configs()
    mchoices = run.context.mothernet_choices()
    estimator = build_estimator(table, "lut")
    lut_point = mothernet_point(space, library, mchoices, estimator.estimate)
    macs_point = mothernet_point(space, library, mchoices, lambda a: _mmacs(a) * 1e6)
    results = {
        "macs": _search(
            run, MacsPricer(), replace(lut_config, budget_ms=None), macs_point, "MACs", echo
        ),
        "lut": _search(run, estimator, lut_config, lut_point, "LUT", echo),
    }
    for c in COSTS:
        if not results[c].front:
            raise ExperimentError(
                f"the {COST_LABEL[c]} search found no architecture; check the run's budget_ms"
            )
    return results, (lut_point[0] if lut_point else None)


def _measure_models(
    run: FinishedRun,
    table: Any,
    fronts: dict[str, Sequence[Any]],
    wanted: dict[str, Sequence[int]],
    mother_loss: float | None,
    echo: Echo,
) -> dict[str, CostModel]:
    """Every distinct model (the wanted entries of both fronts and the mothernet) measured
    whole once, by ``Architecture.key()``."""
    space = run.space
    roles: dict[str, list[str]] = {}
    candidates: dict[str, _Candidate] = {}

    def add(arch: Architecture, role: str, genome: Any, labels: Any, loss: float | None) -> None:
        k = arch.key()
        roles.setdefault(k, []).append(role)
        candidates.setdefault(k, (arch, genome, tuple(labels), loss))

    for c in COSTS:
        for i in wanted[c]:
            e = fronts[c][i]
            add(space.decode(e.genome), f"{c}-front[{i}]", e.genome, e.options, e.surrogate)
    mchoices = run.context.mothernet_choices()
    add(
        space.architecture(mchoices), "mothernet", _genome_of(space, mchoices),
        [o.label() for o in mchoices], mother_loss,
    )  # fmt: skip
    keys = list(candidates)
    echo(f"{len(keys)} distinct model(s) to measure whole on {run.config.device}")
    measured = run.measure([candidates[k][0] for k in keys])
    return {k: _model(k, candidates[k], roles[k], m, table) for k, m in zip(keys, measured)}


def _search_record(result: Any, picks: Sequence[int], table: Any) -> dict[str, Any]:
    return {
        "method": result.method,
        "seconds": result.seconds,
        "evaluated": len(result.evaluated),
        "budget_ms": result.config.budget_ms,
        "picks": list(picks),
        "front": _front_rows(result, table),
    }


def _genome_of(space: Any, choices: Sequence[Any]) -> tuple[int, ...] | None:
    try:
        return tuple(opts.index(o) for opts, o in zip(space.options, choices))
    except ValueError:
        return None


def _model(
    key: str, entry: _Candidate, roles: list[str], measured: dict[str, Any], table: Any
) -> CostModel:
    import hashlib

    arch, genome, options, loss = entry
    return CostModel(
        key=hashlib.sha256(key.encode()).hexdigest()[:12],
        roles=tuple(roles),
        genome=genome,
        options=options,
        surrogate=loss,
        mmacs=_mmacs(arch),
        lut_ms=table.lookup(arch) / 1000.0,
        measured_ms=float(measured["measured_ms"]),
        error_pct=float(measured["error_pct"]),
    )


def _notes(run: FinishedRun, pairs: Sequence[MatchedPair], n_models: int) -> list[str]:
    notes = [
        "Both searches run on the run's UNFILTERED space: its filtered space (space.json) was "
        "filtered with LUT costs, which would favour the LUT-priced search.",
        "The MACs search treats its cost as its 'latency_ms' (MACs / 1000); every output here "
        "converts it back and labels it MMACs (millions of multiply-accumulates).",
        f"Measured: whole models converted to TFLite and timed on {run.config.device} (warm "
        "median, the hil stage's protocol), cached in measured.json.",
    ]
    if run.config.budget_ms is not None:
        notes.append(
            f"The run had a latency budget of {run.config.budget_ms:g} ms: the LUT search keeps "
            "it, the MACs search has none (a budget is in ms, not MACs)."
        )
    flagged = [p.macs_index for p in pairs if p.fallback]
    if flagged:
        notes.append(
            f"MACs-front pick(s) {flagged} have a lower surrogate than every LUT-front entry: "
            "matched with the LUT front's lowest-loss entry instead (flagged 'fallback')."
        )
    if n_models < 10:
        notes.append(f"Only {n_models} distinct models: τ has wide confidence (p-values shown).")
    return notes


def _write(run: FinishedRun, exp: CostExperiment, t0: float, echo: Echo) -> CostExperiment:
    from nas.experiments.cost_plots import plot_cost_vs_measured, plot_fronts, summary_markdown

    out = run.out
    out.mkdir(parents=True, exist_ok=True)
    pngs = (
        plot_fronts(exp, out / "fronts.png"),
        plot_cost_vs_measured(exp, out / "cost_vs_measured.png"),
    )
    paths = (out / "cost.json", out / "summary.md", *pngs)
    exp = replace(exp, paths=paths, seconds=time.perf_counter() - t0)
    run.write_json("cost.json", exp.to_dict())
    atomic_write_text(out / "summary.md", summary_markdown(exp))
    run.refresh_report()
    echo(f"wrote {out}/summary.md")
    return exp
