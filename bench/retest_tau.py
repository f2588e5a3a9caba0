"""How well do whole-network timings on this host rank against themselves? Test-retest τ.

Issue 10 asks a context model for Kendall τ >= 0.95 between LUT estimates and measured whole
networks. No model can rank better than the measurement agrees with itself, so this times the
same networks as bench/lut_fidelity.py (its EVAL_SEED nets of the default space) twice, in two
separate passes, and reports τ(pass 1, pass 2) next to τ(LUT, pass 2) for the raw warm sum,
the raw cold sum and the LUT's own one-alpha model.

    python bench/retest_tau.py --lut bench/results/host-default-r128.json --resolution 128
    python bench/retest_tau.py --lut ... --resolution 96 --fresh   # each pass its own process

``--fresh`` times each pass in a new Python process (as a deployed model runs), so a
difference between the passes is not state one long-lived process built up. Both the
drift-corrected and the raw medians are kept. The LUT must be of this machine
(bench/lut_fidelity.py makes it); conversions are cached.
Writes bench/results/retest_tau-rRES.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--lut", type=Path, required=True,
                    help="a LUT of the default space made on this host and stack (another: "
                    "the nets are timed without LUT estimates)")  # fmt: skip
    ap.add_argument("--resolution", type=int, required=True)
    ap.add_argument("--nets", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=10, help="rounds per whole net and pass")
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--fresh", action="store_true", help="each pass in a new Python process")
    ap.add_argument("--one-pass", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    from lut_fidelity import EVAL_SEED
    from scipy.stats import kendalltau

    from latency.context import sums
    from latency.convert import ConvertConfig, default_cache_dir
    from latency.host import HostDevice, MeasureConfig
    from latency.profiler import measure_architectures, open_table
    from lut.errors import LutMismatchError
    from nas.core.files import atomic_write_text
    from nas.core.spaces import get_space, random_genomes

    t0 = time.perf_counter()
    space = get_space("default", args.resolution)
    archs = [space.decode(g) for g in random_genomes(space, args.nets, EVAL_SEED)]
    device = HostDevice(MeasureConfig(repeats=args.repeats))
    try:
        table = open_table(args.lut, device)
    except LutMismatchError as exc:  # another stack: time the nets only, against no LUT
        print(f"note: {exc}; the LUT estimates are left out")
        table = open_table(args.out / f"retest-scratch-r{args.resolution}.json", device)
    cc = ConvertConfig(default_cache_dir())
    args.out.mkdir(parents=True, exist_ok=True)
    if args.one_pass is not None:  # the child of --fresh: one pass, written as JSON
        got = measure_architectures(archs, device, table, cc)
        timed = {"us": [m.warm.median_us for m in got],
                 "raw_us": [m.raw_warm_median_us for m in got]}  # fmt: skip
        atomic_write_text(args.one_pass, json.dumps(timed))
        return 0
    passes, raw = [], []
    for k in (1, 2):
        where = "a new process" if args.fresh else "this process"
        print(f"pass {k}: timing {len(archs)} whole nets, {args.repeats} rounds each, in {where}")
        if args.fresh:
            part = args.out / f"retest-pass{k}-r{args.resolution}.json"
            child = [sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])]
            subprocess.run([*child, "--one-pass", str(part)], check=True)
            timed = json.loads(part.read_text())
            part.unlink()
        else:
            got = measure_architectures(archs, device, table, cc)
            timed = {"us": [m.warm.median_us for m in got],
                     "raw_us": [m.raw_warm_median_us for m in got]}  # fmt: skip
        passes.append(np.array(timed["us"]))
        raw.append(np.array(timed["raw_us"]))
    first, second = passes
    estimates = {}
    if not table.missing([b for a in archs for b in a.blocks]):
        warm, cold = sums(table, archs)
        alpha = float((table.provenance.get("context") or {}).get("alpha", 0.5))
        estimates = {"raw warm sum": warm, "raw cold sum": cold,
                     f"one alpha ({alpha:.2f})": warm + alpha * (cold - warm)}  # fmt: skip
    rows = {"pass 1 (test-retest)": first, **estimates}
    result = {
        "command": "python bench/retest_tau.py " + shlex.join(argv or sys.argv[1:]),
        "lut": str(args.lut),
        "nets": len(archs),
        "repeats": args.repeats,
        "fresh_processes": args.fresh,
        "pass_us": [p.tolist() for p in passes],
        "raw_pass_us": [p.tolist() for p in raw],
        "retest_median_abs_diff": float(np.median(np.abs(second / first - 1.0))),
        "retest_mean_shift": float(np.mean(second / first - 1.0)),
        "raw_retest_median_abs_diff": float(np.median(np.abs(raw[1] / raw[0] - 1.0))),
        "raw_tau": float(kendalltau(raw[0], raw[1])[0]),
        "tau_vs_pass2": {k: float(kendalltau(v, second)[0]) for k, v in rows.items()},
        "seconds": time.perf_counter() - t0,
    }
    path = args.out / f"retest_tau-r{args.resolution}{'-fresh' if args.fresh else ''}.json"
    atomic_write_text(path, json.dumps(result, indent=1))
    print(f"{len(archs)} nets at {args.resolution} px, {args.repeats} rounds a pass: median "
          f"|pass 2 / pass 1 - 1| = {result['retest_median_abs_diff']:.1%} (mean shift "
          f"{result['retest_mean_shift']:+.1%}; raw: {result['raw_retest_median_abs_diff']:.1%}, "
          f"tau {result['raw_tau']:.3f})")  # fmt: skip
    for k, t in result["tau_vs_pass2"].items():
        print(f"  Kendall τ({k}, pass 2) = {t:.3f}")
    print(f"wrote {path} in {result['seconds']:.0f} s; reproduce: {result['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
