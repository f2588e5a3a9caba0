"""NSGA-II search speed and quality on the quick space.

Measures the wall time of ``run_search`` (pop 100 x 50 generations by default: the latency
tables, the pymoo run and the front extraction; the one-off pymoo import is reported apart),
and the hypervolume of the found front relative to the exact front obtained by enumerating
all 24^3 = 13,824 architectures, for several seeds. Also for the BKD-filtered space (its front
is compared with the *unfiltered* space's exact front), and the time the search's own problem
(``nas.search.problem.SearchProblem``) takes to evaluate both objectives of every genome at once.

    python bench/search_speed.py                                   # synthetic library and LUT
    python bench/search_speed.py --library runs/x/bkd.json --lut lut/host-quick.json

Without ``--library`` the BKD losses are SYNTHETIC (seeded: loss falls with an option's MACs,
times log-normal noise); without ``--lut`` the latencies are SYNTHETIC (5 µs + MACs / 2e4 +
20 µs per SE block). The output says which. Writes bench/results/search_speed.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SYNTHETIC_LOSS = "SYNTHETIC BKD losses: 0.3 * (1e6 / option MACs)^0.3 * lognormal(0, 0.1), seeded"
SYNTHETIC_LUT = "SYNTHETIC latencies: 5 us + MACs / 2e4 + 20 us per SE block"


def synthetic_library(space: Any, seed: int = 0) -> Any:
    from nas.synthetic import synthetic_library as make

    return make(space, seed)


def synthetic_table(space: Any) -> Any:
    from nas.synthetic import synthetic_table as make

    return make(space.block_specs())


def load_inputs(args: argparse.Namespace) -> tuple[Any, Any, Any, str, str]:
    """(space, library, table, loss label, latency label) from the flags."""
    from lut.table import LatencyTable
    from nas.bkd.library import BkdLibrary
    from nas.core.spaces import get_space

    if args.library:
        library = BkdLibrary.load(args.library)
        space, loss_label = library.space, f"BKD library {args.library}"
    else:
        space = get_space(args.space)
        library, loss_label = synthetic_library(space, args.library_seed), SYNTHETIC_LOSS
    if args.lut:
        table, lat_label = LatencyTable.load(args.lut), f"LUT {args.lut}"
    else:
        table, lat_label = synthetic_table(space), SYNTHETIC_LUT
    return space, library, table, loss_label, lat_label


def time_objectives(space: Any, losses: Any, table: Any, repeats: int = 5) -> tuple[float, int]:
    """Best-of-``repeats`` seconds for the search's own problem to evaluate both objectives
    of every genome of ``space`` in one call, and the number of genomes."""
    import numpy as np

    from nas.search.objectives import latency_model, loss_arrays
    from nas.search.problem import SearchProblem

    n_options = space.n_options()
    problem = SearchProblem(loss_arrays(losses), latency_model(space, table), n_options)
    genomes = np.indices(tuple(n_options)).reshape(len(n_options), -1).T
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        problem.evaluate_genomes(genomes)
        best = min(best, time.perf_counter() - t)
    return best, len(genomes)


def add_input_flags(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--library", type=Path, default=None, help="a BKD library JSON (real losses)")
    ap.add_argument("--lut", type=Path, default=None, help="a latency LUT JSON (real latencies)")
    ap.add_argument("--space", default="quick", help="space when no --library is given")
    ap.add_argument("--library-seed", type=int, default=0, help="seed of the synthetic library")
    ap.add_argument("--out", type=Path, default=Path("bench/results"))


def run_seeds(
    space: Any, library: Any, table: Any, config: Any, exact: Any, seeds: int
) -> list[dict[str, Any]]:
    """One timed search per seed 0..seeds-1, with its hypervolume relative to ``exact``."""
    from nas.search.config import SearchConfig
    from nas.search.run import hypervolume_ratio, run_search

    runs = []
    for seed in range(seeds):
        cfg = SearchConfig(config.pop_size, config.generations, seed)
        t = time.perf_counter()
        res = run_search(space, library, table, cfg)
        wall = time.perf_counter() - t
        hv = hypervolume_ratio(res.front, exact)
        runs.append(
            {
                "seed": seed,
                "seconds": wall,
                "hv_ratio": hv,
                "front": len(res.front),
                "evaluated_distinct": len(res.evaluated),
            }
        )
        print(
            f"  seed {seed}: {wall:.2f} s, {len(res.evaluated)} distinct architectures "
            f"evaluated, front {len(res.front)} points, hypervolume {hv * 100:.2f}% of exact"
        )
    return runs


def filtered_run(space: Any, library: Any, table: Any, config: Any, exact: Any) -> dict[str, Any]:
    """Search the BKD-filtered space; its front and its own exact front against the
    unfiltered space's exact front."""
    from nas.filter import filter_space
    from nas.search.objectives import latency_model
    from nas.search.run import exact_front, hypervolume_ratio, run_search

    rep = filter_space(space, library, table)
    frun = run_search(rep.space, library, table, config)
    filtered_exact = exact_front(
        rep.space, library.losses(rep.space), latency_model(rep.space, table)
    )
    filtered = {
        "log10_before": rep.log10_before,
        "log10_after": rep.log10_after,
        "search_seconds": frun.seconds,
        "method": frun.method,
        "hv_ratio_search_vs_full_exact": hypervolume_ratio(frun.front, exact),
        "hv_ratio_filtered_exact_vs_full_exact": hypervolume_ratio(filtered_exact, exact),
    }
    hv_search = filtered["hv_ratio_search_vs_full_exact"] * 100
    hv_exact = filtered["hv_ratio_filtered_exact_vs_full_exact"] * 100
    print(
        f"BKD-filtered space 10^{rep.log10_before:.2f} -> 10^{rep.log10_after:.2f}: "
        f"{frun.method} {frun.seconds:.2f} s, hypervolume {hv_search:.2f}% of the unfiltered "
        f"exact front (the filtered space's own exact front: {hv_exact:.2f}%)"
    )
    return filtered


def summarise(runs: list[dict[str, Any]], import_s: float) -> dict[str, Any]:
    """Median/max wall time and min/median hypervolume of the seeded runs, with the targets."""
    secs = [r["seconds"] for r in runs]
    hvs = [r["hv_ratio"] for r in runs]
    summary = {
        "median_seconds": statistics.median(secs),
        "max_seconds": max(secs),
        "min_hv_ratio": min(hvs),
        "median_hv_ratio": statistics.median(hvs),
        "target_seconds": 2.0,
        "target_hv_ratio": 0.99,
    }
    print(
        f"search wall time: median {summary['median_seconds']:.2f} s, max "
        f"{summary['max_seconds']:.2f} s (target <= 2 s; pymoo import {import_s:.2f} s once); "
        f"hypervolume vs exact: min {summary['min_hv_ratio'] * 100:.2f}%, median "
        f"{summary['median_hv_ratio'] * 100:.2f}% (target >= 99%)"
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_input_flags(ap)
    ap.add_argument("--pop", type=int, default=None, help="population (default: SearchConfig's)")
    ap.add_argument("--generations", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=5, help="search seeds 0..N-1")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    # pymoo's import is a one-off cost, timed apart
    import pymoo.algorithms.moo.nsga2
    import pymoo.indicators.hv  # noqa: F401

    import_s = time.perf_counter() - t0

    from nas.search.config import SearchConfig
    from nas.search.objectives import latency_model
    from nas.search.run import exact_front

    space, library, table, loss_label, lat_label = load_inputs(args)
    base = SearchConfig()
    config = SearchConfig(
        pop_size=args.pop or base.pop_size, generations=args.generations or base.generations
    )
    print(f"losses:    {loss_label}")
    print(f"latencies: {lat_label}")
    print(
        f"space {space.name!r}: 10^{space.log10_size():.2f} architectures; NSGA-II pop "
        f"{config.pop_size} x {config.generations} generations, seeds 0..{args.seeds - 1}"
    )

    t = time.perf_counter()
    losses = library.losses(space)
    exact = exact_front(space, losses, latency_model(space, table))
    exact_s = time.perf_counter() - t
    print(f"exact front by enumeration: {len(exact)} points in {exact_s:.2f} s")
    eval_s, n_genomes = time_objectives(space, losses, table)
    print(
        f"objectives (SearchProblem.evaluate_genomes) of all {n_genomes:,} genomes at once: "
        f"{eval_s * 1000:.2f} ms ({n_genomes / eval_s / 1e6:.1f} M genomes/s)"
    )

    runs = run_seeds(space, library, table, config, exact, args.seeds)
    filtered = filtered_run(space, library, table, config, exact)
    summary = summarise(runs, import_s)
    cmd = "python bench/search_speed.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    print(f"reproduce: {cmd.strip()}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "search_speed.json"
    data = {
        "command": cmd.strip(),
        "losses": loss_label,
        "latencies": lat_label,
        "space": space.name,
        "log10_size": space.log10_size(),
        "config": {"pop_size": config.pop_size, "generations": config.generations},
        "pymoo_import_seconds": import_s,
        "exact_front_points": len(exact),
        "exact_front_seconds": exact_s,
        "objectives_all_genomes_seconds": eval_s,
        "runs": runs,
        "summary": summary,
        "filtered": filtered,
    }
    out.write_text(json.dumps(data, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
