"""How much the BKD filter shrinks a search space, and what it costs the Pareto front.

Runs the filter (nas/filter.py) with LUT latencies and with the MACs fallback, prints every
dropped option with its reason and log10 of the space size before and after, sweeps the
threshold, and (when the space can be enumerated) checks that the filtered space's exact
(surrogate, latency) front is the unfiltered one's.

    python bench/filter_reduction.py                                   # synthetic library and LUT
    python bench/filter_reduction.py --library runs/x/bkd.json --lut lut/host-quick.json

Without ``--library``/``--lut`` the losses/latencies are SYNTHETIC (see bench/search_speed.py),
and the output says so. Writes bench/results/filter_reduction.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search_speed import add_input_flags, load_inputs

SWEEP = (0.0, 0.1, 0.2, 0.5, 1.0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_input_flags(ap)
    ap.add_argument("--threshold", type=float, default=None, help="default: FilterConfig's")
    ap.add_argument("--loss-tolerance", type=float, default=None, help="default: FilterConfig's")
    args = ap.parse_args(argv)

    from nas.filter import FilterConfig, filter_space
    from nas.search.objectives import latency_model
    from nas.search.run import MAX_ENUMERATE, exact_front, hypervolume_ratio

    space, library, table, loss_label, lat_label = load_inputs(args)
    base = FilterConfig()
    config = FilterConfig(
        threshold=base.threshold if args.threshold is None else args.threshold,
        loss_tolerance=base.loss_tolerance if args.loss_tolerance is None else args.loss_tolerance,
    )
    print(f"losses:    {loss_label}")
    print(f"latencies: {lat_label}")

    results = {}
    for name, cost in (("lut", table), ("macs", None)):
        rep = filter_space(space, library, cost, config)
        print(rep.summary())
        entry = {"report": rep.to_dict()}
        if 10 ** space.log10_size() <= MAX_ENUMERATE:
            full = exact_front(space, library.losses(space), latency_model(space, table))
            sub = exact_front(rep.space, library.losses(rep.space), latency_model(rep.space, table))
            same = [(e.surrogate, e.latency_ms) for e in sub] == [
                (e.surrogate, e.latency_ms) for e in full
            ]
            entry["exact_front_preserved"] = same
            entry["hv_ratio_filtered_vs_full"] = hypervolume_ratio(sub, full)
            print(
                f"  exact front (LUT latency) preserved: {same}; hypervolume "
                f"{entry['hv_ratio_filtered_vs_full'] * 100:.3f}% of the unfiltered space's"
            )
        results[name] = entry

    sweep = []
    print(f"threshold sweep (loss tolerance {config.loss_tolerance:g}, LUT costs):")
    for th in SWEEP:
        rep = filter_space(space, library, table, FilterConfig(th, config.loss_tolerance))
        sweep.append({"threshold": th, "log10_after": rep.log10_after, "dropped": len(rep.dropped)})
        print(
            f"  threshold {th:4.2f}: 10^{rep.log10_before:.2f} -> 10^{rep.log10_after:.2f} "
            f"({len(rep.dropped)} options dropped, per slot {rep.space.n_options()})"
        )
    cmd = "python bench/filter_reduction.py " + " ".join(
        shlex.quote(a) for a in (argv or sys.argv[1:])
    )
    print(f"reproduce: {cmd.strip()}")
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / "filter_reduction.json"
    data = {
        "command": cmd.strip(),
        "losses": loss_label,
        "latencies": lat_label,
        "space": space.name,
        "config": {"threshold": config.threshold, "loss_tolerance": config.loss_tolerance},
        "results": results,
        "sweep": sweep,
    }
    out.write_text(json.dumps(data, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
