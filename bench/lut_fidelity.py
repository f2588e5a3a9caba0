"""LUT fidelity on the host: does the sum of block latencies predict whole networks?

For each resolution, a LUT of the default (EfficientNet-B0-like) space is built on
latency-profile's own path (latency.profiler.profile_specs, then latency.context.calibrate with
latency-profile's default calibration: CALIBRATION_NETS nets of CALIBRATION_SEED, fitting both
the one-alpha and the size model). Random networks drawn with EVAL_SEED (used by no
calibration and not in the model's development, which used seed 2026) are converted whole and
timed end to end; their LUT estimates are compared with what was measured, for the raw warm and
cold sums, the one-alpha context model and the size model (see latency/context.py).

    python bench/lut_fidelity.py --nets 16 --resolutions 96 128

By default only the blocks the evaluated and calibration nets need are profiled (the full
space, 771 blocks per resolution, with --whole-space: latency-profile's profile_one exactly).
Writes bench/results/lut_fidelity.json and lut_fidelity-rRES.png; the LUTs and converted
models are cached, so a rerun only measures.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

EVAL_SEED = 20_261_201  # neither CALIBRATION_SEED nor the development seed (2026)


def metrics(est: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    from scipy.stats import kendalltau

    err = est / meas - 1.0
    return {
        "median_abs_err": float(np.median(np.abs(err))),
        "median_abs_err_level_free": float(np.median(np.abs(without_level(est / meas)))),
        "max_abs_err": float(np.max(np.abs(err))),
        "within_10pct": float(np.mean(np.abs(err) <= 0.10)),
        "bias": float(np.mean(err)),
        "kendall_tau": float(kendalltau(est, meas)[0]),
        "per_net_err": [float(e) for e in err],
    }


def without_level(ratio: np.ndarray) -> np.ndarray:
    """Relative errors left once the ratios' common level (their geometric mean) is divided
    out: what no single scale factor can fix."""
    return ratio / np.exp(np.mean(np.log(ratio))) - 1.0


def retest(first: np.ndarray, second: np.ndarray) -> dict[str, float]:
    """How far the two truth passes agree: their level shift, the per-net difference left
    without it, and their Kendall tau (no estimate can do better than this on the median)."""
    from scipy.stats import kendalltau

    ratio = second / first
    return {
        "level_shift": float(np.exp(np.mean(np.log(ratio))) - 1.0),
        "median_abs_diff": float(np.median(np.abs(ratio - 1.0))),
        "median_abs_diff_level_free": float(np.median(np.abs(without_level(ratio)))),
        "kendall_tau": float(kendalltau(first, second)[0]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nets", type=int, default=16)
    ap.add_argument("--resolutions", type=int, nargs="+", default=[96, 128])
    ap.add_argument("--seed", type=int, default=EVAL_SEED)
    ap.add_argument("--whole-space", action="store_true",
                    help="profile all blocks of the space (latency-profile's profile_one)")
    ap.add_argument("--eval-repeats", type=int, default=10,
                    help="measurement rounds per evaluated whole net (a LUT entry gets 5)")
    ap.add_argument("--block-repeats", type=int, default=None,
                    help="measurement rounds per LUT entry and calibration net [default: "
                    "MeasureConfig's, as latency-profile]; another value uses its own LUT file")
    ap.add_argument("--calibration-nets", type=int, default=None,
                    help="whole nets the context model is fitted on [default: latency-profile's]")
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--cache-dir", type=Path, default=None)
    args = ap.parse_args(argv)

    from latency.context import CALIBRATION_SEED
    from nas.core.files import atomic_write_text

    if args.seed == CALIBRATION_SEED:
        ap.error("--seed must differ from the calibration seed")
    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    command = "python bench/lut_fidelity.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    report = {"command": command.strip(), "eval_seed": args.seed, "per_resolution": {}}
    for res in args.resolutions:
        part, results = fidelity_at(res, args)
        report["per_resolution"][str(res)] = part
        report.update(device=part.pop("device"), runtime=part.pop("runtime"))
        _print_summary(res, part, results)
    report["seconds"] = time.perf_counter() - t0
    atomic_write_text(args.out / "lut_fidelity.json", json.dumps(report, indent=1))
    print(f"wrote {args.out / 'lut_fidelity.json'} in {report['seconds']:.0f} s")
    print(f"reproduce: {report['command']}")
    return 0


def fidelity_at(res: int, args: argparse.Namespace) -> tuple[dict, dict]:
    """Build (or resume) the LUT at ``res``, calibrate it as latency-profile does, and time
    ``args.nets`` networks of ``args.seed`` whole against it."""
    from latency.context import (
        CALIBRATION_NETS,
        block_arrays,
        calibrate,
        calibration_nets,
        size_alphas,
        sums,
    )
    from latency.convert import ConvertConfig, default_cache_dir
    from latency.host import HostDevice, MeasureConfig
    from latency.jobs import ProfileJob, profile_one
    from latency.profiler import measure_architectures, open_table, profile_specs
    from nas.core.spaces import get_space, random_genomes

    space = get_space("default", res)
    measure = MeasureConfig()
    if args.block_repeats is not None:
        measure = MeasureConfig(repeats=args.block_repeats)
    n_cal = CALIBRATION_NETS if args.calibration_nets is None else args.calibration_nets
    device = HostDevice(measure)
    cc = ConvertConfig(args.cache_dir or default_cache_dir())
    tag = "" if args.block_repeats is None else f"-rep{args.block_repeats}"
    lut = args.out / f"host-default-r{res}{tag}.json"
    archs = [space.decode(g) for g in random_genomes(space, args.nets, args.seed)]
    cal_nets = calibration_nets(space, n_cal)
    assert not set(archs) & set(cal_nets), "evaluation nets overlap the calibration nets"
    if args.whole_space:  # exactly latency-profile's path (it calibrates a new LUT itself)
        job = ProfileJob(space=space, devices=("host",), measure=MeasureConfig(), adb=None,
                         convert=cc, out=lut, resolution=res)  # fmt: skip
        profile_one(job, "host", lut, print)
    table = open_table(lut, device)
    profiled = "whole space" if args.whole_space else "blocks of the evaluated and calibration nets"
    profile_specs([b for a in [*archs, *cal_nets] for b in a.blocks], device, table, cc)
    # latency-profile's default calibration (calibrate_if_needed), fitted afresh each run
    cal = calibrate(space, device, table, cc, n_nets=n_cal)
    ctx = table.provenance["context"]
    # the truth: whole nets timed with more rounds than a LUT entry, on the calibration's
    # scale (its reference network), in two passes, so the report shows how far it repeats
    truth = HostDevice(MeasureConfig(repeats=args.eval_repeats))
    passes = [measure_architectures(archs, truth, table, cc) for _ in range(2)]
    first, second = (np.array([m.warm.median_us for m in p]) for p in passes)
    measured = np.sqrt(first * second)
    warm, cold = sums(table, archs)
    size = [float(np.sum(w + size_alphas(x, *ctx["size_params"]) * (c - w)))
            for w, c, x in (block_arrays(table, a) for a in archs)]  # fmt: skip
    variants = {
        "raw_warm_sum": warm,
        "raw_cold_sum": cold,
        "one_alpha (old)": warm + cal.alpha * (cold - warm),
        "size_model (new)": np.array(size),
    }
    results = {k: metrics(v, measured) for k, v in variants.items()}
    part = {
        "block_repeats": measure.repeats,
        "calibration_nets": n_cal,
        "device": device.fingerprint(),
        "runtime": device.runtime(),
        "space": f"default@{res}",
        "profiled": profiled,
        "lut_entries": len(table),
        "nets": len(archs),
        "blocks_per_net": [len(a) for a in archs],
        "calibration": {k: ctx.get(k) for k in ("alpha", "model", "size_params", "nets", "seed",
                                                 "mape_before", "mape_one_alpha", "mape_size")},
        "eval_repeats": args.eval_repeats,
        "measured_us": measured.tolist(),
        "measured_passes_us": [first.tolist(), second.tolist()],
        "measured_passes_raw_us": [[m.raw_warm_median_us for m in p] for p in passes],
        "truth_retest": retest(first, second),
        "estimates_us": {k: v.tolist() for k, v in variants.items()},
        "results": results,
    }
    _plot(variants, measured, args.out / f"lut_fidelity-r{res}.png", res)
    return part, results


def _print_summary(res: int, part: dict, results: dict[str, dict]) -> None:
    cal = part["calibration"]
    a, b = cal["size_params"]
    print(
        f"LUT fidelity at {res} px: {part['nets']} random nets of {part['space']} "
        f"(profiled: {part['profiled']}, {part['lut_entries']} entries); calibration on "
        f"{cal['nets']} other nets: alpha {cal['alpha']:.3f}, size model a {a:+.2f} b {b:+.2f}"
    )
    rt = part["truth_retest"]
    print(
        f"the truth against itself (two passes): level shift "
        f"{rt['level_shift'] * 100:+.1f}%, median |diff| {rt['median_abs_diff'] * 100:.1f}% "
        f"({rt['median_abs_diff_level_free'] * 100:.1f}% without the shift), "
        f"tau {rt['kendall_tau']:.3f}"
    )
    print(
        f"{'estimate':28s} {'median|err|':>11s} {'(no level)':>10s} {'max|err|':>9s} "
        f"{'in ±10%':>8s} {'bias':>7s} {'tau':>6s}"
    )
    for k, r in results.items():
        print(
            f"{k:28s} {r['median_abs_err'] * 100:10.1f}% "
            f"{r['median_abs_err_level_free'] * 100:9.1f}% {r['max_abs_err'] * 100:8.1f}% "
            f"{r['within_10pct'] * 100:7.0f}% {r['bias'] * 100:+6.1f}% {r['kendall_tau']:6.3f}"
        )


def _plot(variants: dict[str, np.ndarray], measured: np.ndarray, path: Path, res: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 6))
    m = measured / 1000
    lo, hi = m.min() * 0.8, m.max() * 1.25
    xs = np.linspace(lo, hi, 10)
    ax.plot(xs, xs, "k-", lw=1, label="estimate = measured")
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="0.9", label="±10%")
    for (k, v), mk in zip(variants.items(), "v^so"):
        ax.scatter(m, v / 1000, marker=mk, s=22, label=k)
    ax.set_xlabel("measured whole network (ms)")
    ax.set_ylabel("LUT estimate (ms)")
    ax.set_title(f"LUT estimate vs whole-network latency (host CPU, {res} px)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
