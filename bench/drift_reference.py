"""Which drift reference keeps whole networks on one scale? Block vs network, fresh passes.

Times bench/lut_fidelity.py's 16 evaluation nets (EVAL_SEED, default space) together with the
reference block (latency.host.REFERENCE_SPEC) and the reference network
(latency.profiler.reference_net), all in one window, 15 rounds of 20 cold and 20 warm invokes,
in ``--passes`` separate Python processes, keeping every model's raw median per round. Then,
for each correction (none; each round scaled by the block's or the network's warm or cold
median), the level of each pass (the mean log ratio of its nets to the nets' mean over passes)
and what is left per net. A reference that tracks what slows whole networks gives passes of
one level.

    python bench/drift_reference.py --resolution 96 --passes 4

Writes bench/results/drift_reference-rRES.json (conversions are cached).
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

ROUNDS, INVOKES = 15, 20
CORRECTIONS = ("none", "block-warm", "block-cold", "network-warm", "network-cold")


def one_pass(res: int, nets: int) -> dict[str, list]:
    """Raw per-round warm and cold medians (us): row 0 the block, row 1 the network, then nets."""
    from lut_fidelity import EVAL_SEED

    from latency.convert import ConvertConfig, convert_many, default_cache_dir
    from latency.host import REFERENCE_SPEC, WARM_SKIP, HostDevice
    from latency.profiler import reference_net
    from nas.core.spaces import get_space, random_genomes

    space = get_space("default", res)
    models = [REFERENCE_SPEC, reference_net(),
              *(space.decode(g) for g in random_genomes(space, nets, EVAL_SEED))]  # fmt: skip
    done, failed = convert_many(models, ConvertConfig(default_cache_dir()), 2)
    if failed:
        raise next(iter(failed.values()))
    device = HostDevice()
    slots = [device._load(i, done[m].path) for i, m in enumerate(models)]
    rng, perf = np.random.default_rng(0), time.perf_counter_ns
    warm_rounds, cold_rounds = [], []
    for _ in range(ROUNDS):
        cold = np.empty((len(slots), INVOKES))
        warm = np.empty((len(slots), INVOKES))
        for i in range(INVOKES):
            for j in rng.permutation(len(slots)):
                t0 = perf()
                slots[j].run()
                cold[j, i] = perf() - t0
        for j in rng.permutation(len(slots)):
            for i in range(WARM_SKIP + INVOKES):
                t0 = perf()
                slots[j].run()
                if i >= WARM_SKIP:
                    warm[j, i - WARM_SKIP] = perf() - t0
        warm_rounds.append((np.median(warm, 1) / 1000).tolist())
        cold_rounds.append((np.median(cold, 1) / 1000).tolist())
    return {"warm": warm_rounds, "cold": cold_rounds}


def corrected_nets(p: dict[str, list], correction: str) -> np.ndarray:
    """Each net's median over rounds of its warm round medians, scaled round by round."""
    warm, cold = np.asarray(p["warm"]), np.asarray(p["cold"])
    if correction == "none":
        scale = np.ones(len(warm))
    else:
        which, context = correction.split("-")
        table = warm if context == "warm" else cold
        scale = 1.0 / table[:, 0 if which == "block" else 1]
    return np.median(warm[:, 2:] * scale[:, None], axis=0)


def levels(passes: list[dict[str, list]], correction: str) -> dict[str, object]:
    nets = np.array([corrected_nets(p, correction) for p in passes])
    logr = np.log(nets / np.exp(np.log(nets).mean(0)))
    level = logr.mean(1)
    return {"pass_levels": [float(np.exp(v) - 1) for v in level],
            "level_sd": float(np.std(level)),
            "per_net_sd": float(np.std(logr - level[:, None]))}  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--resolution", type=int, default=96)
    ap.add_argument("--nets", type=int, default=16)
    ap.add_argument("--passes", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--one-pass", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one_pass is not None:
        args.one_pass.write_text(json.dumps(one_pass(args.resolution, args.nets)))
        return 0
    from nas.core.files import atomic_write_text

    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    passes = []
    for k in range(args.passes):
        tmp = args.out / f".drift_reference-pass{k}.json"
        cmd = [sys.executable, __file__, "--resolution", str(args.resolution),
               "--nets", str(args.nets), "--one-pass", str(tmp)]  # fmt: skip
        subprocess.run(cmd, check=True)
        passes.append(json.loads(tmp.read_text()))
        tmp.unlink()
    command = "python bench/drift_reference.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    report = {"command": command.strip(), "resolution": args.resolution, "nets": args.nets,
              "rounds": ROUNDS, "invokes": INVOKES,
              "corrections": {c: levels(passes, c) for c in CORRECTIONS},
              "passes": passes, "seconds": time.perf_counter() - t0}  # fmt: skip
    print(f"{args.passes} fresh passes of {args.nets} nets at {args.resolution} px:")
    print(f"{'correction':14s} {'level sd':>9s} {'per-net sd':>11s}  pass levels")
    for c, r in report["corrections"].items():
        lv = " ".join(f"{v * 100:+.1f}%" for v in r["pass_levels"])
        print(f"{c:14s} {r['level_sd'] * 100:8.1f}% {r['per_net_sd'] * 100:10.1f}%  {lv}")
    path = args.out / f"drift_reference-r{args.resolution}.json"
    atomic_write_text(path, json.dumps(report, indent=1))
    print(f"wrote {path} in {report['seconds']:.0f} s\nreproduce: {report['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
