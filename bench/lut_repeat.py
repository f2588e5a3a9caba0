"""How far a host LUT repeats between builds: the same blocks, in the same order, profiled
with latency-profile's path (latency.profiler.profile_specs) in several fresh processes.

The blocks are those bench/lut_fidelity.py profiles (its 16 evaluated nets of EVAL_SEED and the
8 calibration nets), so the figures say how much of its error one LUT build can carry. For each
pair of builds it reports, for the drift-corrected and the raw warm and cold medians, the level
(geometric mean of the ratios) and the spread without the level (5th-95th percentile), and each
build's reference-block baseline (the scale its corrected entries are on).

    python bench/lut_repeat.py --builds 4 --resolution 128

Writes bench/results/lut_repeat-rRES.json; the LUTs go to a temporary folder.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FIELDS = ("warm_median_us", "cold_median_us", "raw_warm_median_us", "raw_cold_median_us")


def compare(a: dict[str, dict], b: dict[str, dict]) -> dict[str, dict[str, float]]:
    """Level and level-free spread of ``b / a`` over the entries both LUTs hold, per field."""
    keys = sorted(set(a) & set(b))
    out = {}
    for f in FIELDS:
        ratio = np.array([b[k][f] / a[k][f] for k in keys])
        level = float(np.exp(np.mean(np.log(ratio))))
        free = ratio / level
        out[f] = {
            "level": level,
            "p5": float(np.percentile(free, 5)),
            "p95": float(np.percentile(free, 95)),
            "median_abs_diff": float(np.median(np.abs(free - 1.0))),
        }
    return out


def build(out: Path, resolution: int) -> None:
    """Profile the fidelity bench's blocks into a new LUT ``out`` (in this process)."""
    from bench.lut_fidelity import EVAL_SEED
    from latency.context import calibration_nets
    from latency.convert import ConvertConfig, default_cache_dir
    from latency.host import HostDevice, MeasureConfig
    from latency.profiler import open_table, profile_specs
    from nas.core.spaces import get_space, random_genomes

    space = get_space("default", resolution)
    archs = [space.decode(g) for g in random_genomes(space, 16, EVAL_SEED)]
    device = HostDevice(MeasureConfig())
    table = open_table(out, device)
    specs = [b for a in [*archs, *calibration_nets(space)] for b in a.blocks]
    profile_specs(specs, device, table, ConvertConfig(default_cache_dir()))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--builds", type=int, default=4)
    ap.add_argument("--resolution", type=int, default=128)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--build-one", type=Path, help=argparse.SUPPRESS)  # the child process
    args = ap.parse_args(argv)
    from nas.core.files import atomic_write_text

    if args.build_one:
        build(args.build_one, args.resolution)
        return 0
    command = "python bench/lut_repeat.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        luts = []
        for i in range(args.builds):  # one fresh process per build
            path = Path(tmp) / f"build{i}.json"
            subprocess.run([sys.executable, __file__, "--resolution", str(args.resolution),
                            "--build-one", str(path)], check=True)  # fmt: skip
            luts.append(json.loads(path.read_text()))
            print(f"build {i}: {len(luts[-1]['entries'])} entries")
    pairs = {f"{i}-{j}": compare(luts[i]["entries"], luts[j]["entries"])
             for i, j in itertools.combinations(range(len(luts)), 2)}  # fmt: skip
    report = {
        "command": command.strip(),
        "resolution": args.resolution,
        "entries": len(luts[0]["entries"]),
        "device": luts[0]["provenance"].get("device"),
        "reference_baseline_us": [lut["provenance"]["reference"]["median_us"] for lut in luts],
        "pairs": pairs,
        "seconds": time.perf_counter() - t0,
    }
    baselines = " ".join(f"{b:.1f}" for b in report["reference_baseline_us"])
    print(f"reference baselines (us): {baselines}")
    print(f"{'pair':6s} {'field':20s} {'level':>6s} {'p5':>6s} {'p95':>6s} {'med|d|':>7s}")
    for pair, fields in pairs.items():
        for f, r in fields.items():
            print(f"{pair:6s} {f:20s} {r['level']:6.3f} {r['p5']:6.3f} {r['p95']:6.3f} "
                  f"{r['median_abs_diff'] * 100:6.1f}%")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    dest = args.out / f"lut_repeat-r{args.resolution}.json"
    atomic_write_text(dest, json.dumps(report, indent=1))
    print(f"wrote {dest} in {report['seconds']:.0f} s\nreproduce: {report['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
