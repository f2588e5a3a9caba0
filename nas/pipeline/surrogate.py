"""``donna validate-surrogate``: the surrogate at strength.

Half the architectures are spread over the Pareto front, half drawn uniformly from the searched
space (the front alone flatters any ranking: there loss falls as latency rises). Each is
finetuned with the same recipe (cached per architecture and epochs in ``validation/``, so a
killed or repeated validation redoes nothing); a few are finetuned again with another seed, so
the report says whether the metrics separate by more than seed noise. The statistics are in
:mod:`nas.validate`: Kendall τ with bootstrap intervals, and the DONNA-style predictor's
learning curve, which prices the predictor against the surrogate.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from nas.core.errors import PipelineError
from nas.core.files import atomic_write_text, check_writable
from nas.pipeline.picks import Echo, FinetuneInputs, choices_key, finetune_choices

DEFAULT_ARCHS = 16  # at least 16: half on the front, half at random
DEFAULT_EPOCHS = 2.0  # see docs/nas.md: where the built-in data's metrics separate
DEFAULT_REPEATS = 2  # architectures finetuned again with seed + 1 (the noise floor)


def _estimator(provenance: dict[str, Any]) -> Any:
    """The search's latency estimator (its LUT), or ``None`` when the LUT is not there."""
    lut = provenance.get("lut")
    if not lut or not Path(lut).is_file():
        return None
    from latency.estimator import build_estimator
    from lut.table import LatencyTable

    return build_estimator(LatencyTable.load(Path(lut)), "lut")


def _sample(result: Any, k: int, seed: int) -> tuple[list[tuple[int, ...]], list[str], list[str]]:
    """``k`` genomes: ceil(k/2) spread over the front, the rest uniform from the space."""
    from nas.validate import random_genomes, spread_indices

    notes = []
    front = result.front
    n_front = min(len(front), math.ceil(k / 2))
    picks = spread_indices([e.latency_ms for e in front], max(2, n_front))[:n_front]
    genomes = [tuple(front[i].genome) for i in picks]
    rand = random_genomes(result.space.n_options(), k - len(genomes), seed, exclude=genomes)
    if len(genomes) + len(rand) < k:
        notes.append(f"the space holds only {len(genomes) + len(rand)} architectures")
    return genomes + rand, ["front"] * len(genomes) + ["random"] * len(rand), notes


def validate_surrogate(
    pareto: Path,
    k: int = DEFAULT_ARCHS,
    epochs: float = DEFAULT_EPOCHS,
    seed: int = 0,
    *,
    repeats: int = DEFAULT_REPEATS,
    echo: Echo = print,
    device: Any = None,
    data_workers: int = 0,
    data: Any = None,
) -> Any:
    """Finetune ``k`` architectures of the search in ``pareto`` (half front, half random) for
    ``epochs``; return :class:`~nas.validate.SurrogateValidation`. The models go to
    ``validation/`` next to the Pareto file (checked first)."""
    from nas.search.result import load_pareto
    from nas.validate import ValidatedArch, summarise

    folder = Path(pareto).parent / "validation"
    check_writable(folder, "validation folder", folder=True)
    if k < 3:
        raise PipelineError(f"--k {k}: the ranking check needs at least 3 architectures")
    if not epochs > 0:
        raise PipelineError(f"--epochs {epochs}: finetuning needs a number of epochs > 0")
    res = load_pareto(pareto)
    if len(res.front) < 2:
        raise PipelineError(
            f"the front of {pareto} has {len(res.front)} architecture(s); the check needs at "
            "least 2 on it (search a larger space or with a looser budget)"
        )
    inputs = FinetuneInputs.of_pareto(Path(pareto), data, seed)
    estimator = _estimator(res.provenance)
    genomes, origins, notes = _sample(res, k, seed)
    lib, space = inputs.library, res.space
    if estimator is None:
        notes.append("the search's LUT is not there: latencies of random architectures unknown")

    def run(n: int, genome: tuple[int, ...], run_seed: int) -> dict[str, Any]:
        choices = space.choices(genome)
        key = "-".join(map(str, genome))
        out = folder / f"{choices_key(choices)}-e{epochs:g}-s{run_seed}"
        if (out / "result.json").is_file() and (out / "model.pt").is_file():
            return json.loads((out / "result.json").read_text())
        return finetune_choices(
            inputs, choices, out, label=f"[{n}/{len(genomes)}] {origins[n - 1]} {key}",
            epochs=epochs, seed=run_seed, echo=echo, device=device, data_workers=data_workers,
        )  # fmt: skip

    archs, metric_name = [], "metric"
    for n, (genome, origin) in enumerate(zip(genomes, origins), 1):
        row = run(n, genome, seed)
        metric_name = row["metric_name"]
        choices = space.choices(genome)
        lat = estimator.estimate(space.decode(genome)) / 1000.0 if estimator else float("nan")
        archs.append(
            ValidatedArch(
                genome=genome,
                surrogate=float(row["surrogate"]),
                slot_losses=tuple(lib.entry(s, o).nmse for s, o in enumerate(choices)),
                latency_ms=lat,
                metric=float(row["metric"]),
                finetune_seconds=float(row["seconds"]),
                origin=origin,
            )
        )
    gaps = []
    for n in _repeat_indices(len(genomes), repeats):
        echo(f"again with seed {seed + 1} (seed noise): architecture {n + 1}")
        gaps.append(abs(run(n + 1, genomes[n], seed + 1)["metric"] - archs[n].metric))
    bkd_seconds, how = bkd_wall_seconds(Path(pareto), lib)
    notes.append(how)
    v = summarise(metric_name, archs, bkd_seconds, repeat_gaps=gaps, seed=seed)
    if notes:
        from dataclasses import replace

        v = replace(v, notes=v.notes + tuple(notes))
    return v


def bkd_wall_seconds(pareto: Path, library: Any) -> tuple[float, str]:
    """The BKD library's cost in wall seconds, comparable with the finetunes' (both use every
    core): the ``bkd`` stage's wall time when the Pareto file is in the run folder that made
    the library, else the options' summed seconds (process-seconds: an upper bound of the
    wall time with several BKD processes). With how it was obtained."""
    folder = Path(pareto).resolve().parent.parent
    run_file = folder / "run.json"
    if run_file.is_file() and library.path and Path(library.path).resolve() == folder / "bkd.json":
        stage = (json.loads(run_file.read_text()).get("stages") or {}).get("bkd") or {}
        wall = stage.get("train_seconds", stage.get("seconds"))
        if wall:
            return float(wall), f"BKD compute: the run's bkd stage, {float(wall):.0f} s wall"
    total = sum(e.seconds for e in library.entries())
    return total, (
        f"BKD compute: {total:.0f} s summed over the options (process-seconds; with several BKD "
        "processes the wall time was lower, so the compute ratio is understated)"
    )


def _repeat_indices(n: int, repeats: int) -> list[int]:
    """Which architectures to finetune again: spread over the list (front and random)."""
    if repeats <= 0 or n == 0:
        return []
    return sorted({round(j * (n - 1) / max(1, repeats - 1)) for j in range(min(repeats, n))})


def write_validation(v: Any, target: Path) -> tuple[Path, Path]:
    """``target`` (JSON, every figure) and its plot (``.png`` next to it). When ``target`` is
    in a run folder's ``search/``, that run's ``report.md`` is written again to link it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(target, json.dumps(v.to_dict(), indent=1))
    plot = plot_validation(v, target.with_suffix(".png"))
    run_file = target.parent.parent / "run.json"
    if target.parent.name == "search" and run_file.is_file():
        from nas.pipeline.report import write_report

        write_report(run_file.parent, json.loads(run_file.read_text()))
    return target, plot


def plot_validation(v: Any, out: Path) -> Path:
    """Two panels: the finetuned metric against the surrogate (front and random marked), and
    the predictor's learning curve against the surrogate's τ."""
    from nas.core.plots import pyplot

    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4.2), dpi=120)
    for origin, marker in (("front", "o"), ("random", "^")):
        pts = [a for a in v.archs if a.origin == origin]
        if pts:
            ax1.errorbar([a.surrogate for a in pts], [a.metric for a in pts], yerr=v.noise_sd,
                         fmt=marker, capsize=2, label=f"{origin} ({len(pts)})")  # fmt: skip
    lo, hi = v.tau_surrogate_ci
    noise = "" if v.noise_sd is None else f"; bars: seed noise σ {v.noise_sd:.3g}"
    ax1.set_title(f"τ = {v.tau_surrogate:+.3f} [95% {lo:+.2f}, {hi:+.2f}]{noise}", fontsize=9)
    ax1.set_xlabel("summed BKD nMSE (surrogate)")
    ax1.set_ylabel(f"finetuned {v.metric_name}")
    ax1.legend(fontsize=7)
    if v.curve:
        ns = [p.n for p in v.curve]
        ax2.plot(ns, [p.tau_predictor for p in v.curve], "o-", label="DONNA predictor")
        ax2.fill_between(ns, [p.tau_predictor_lo for p in v.curve],
                         [p.tau_predictor_hi for p in v.curve], alpha=0.2)  # fmt: skip
        ax2.plot(ns, [p.tau_surrogate for p in v.curve], "s--", label="surrogate (no training)")
        if v.match_archs is not None:
            ax2.axvline(v.match_archs, color="grey", lw=1)
        ratio, exact = v.compute_ratio
        ax2.set_title(
            f"predictor compute at {'match' if exact else 'largest n'}: "
            f"{'' if exact else '>'}{ratio:.1f}x the surrogate's", fontsize=9,
        )  # fmt: skip
        ax2.set_xlabel("finetuned architectures the predictor is trained on")
        ax2.set_ylabel("Kendall τ on held-out architectures")
        ax2.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out
