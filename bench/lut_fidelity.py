"""LUT fidelity on the host: does the sum of block latencies predict whole networks?

Random architectures of the default (EfficientNet-B0-like) space are converted whole and timed
end to end on this machine; their LUT estimates are compared with what was measured. Reported
for the raw warm sum, the raw cold sum, and the cache-context model (default alpha and alpha
calibrated on *other* random networks: see latency/context.py).

    python bench/lut_fidelity.py --nets 30 --resolution 112

Writes bench/results/lut_fidelity.json and lut_fidelity.png; the LUT and converted models are
cached, so a rerun only measures.
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


def metrics(est: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    from scipy.stats import kendalltau

    err = est / meas - 1.0
    return {
        "median_abs_err": float(np.median(np.abs(err))),
        "max_abs_err": float(np.max(np.abs(err))),
        "within_10pct": float(np.mean(np.abs(err) <= 0.10)),
        "bias": float(np.mean(err)),
        "kendall_tau": float(kendalltau(est, meas)[0]),
        "per_net_err": [float(e) for e in err],
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--nets", type=int, default=30)
    ap.add_argument("--resolution", type=int, default=112)
    ap.add_argument("--calibration-nets", type=int, default=6)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    ap.add_argument("--cache-dir", type=Path, default=None)
    args = ap.parse_args(argv)

    from latency.context import DEFAULT_ALPHA, calibrate, sums
    from latency.convert import ConvertConfig, default_cache_dir
    from latency.host import HostDevice, MeasureConfig
    from latency.profiler import measure_architectures, open_table, profile_specs
    from nas.core.files import atomic_write_text
    from nas.core.spaces import get_space, random_genomes

    t0 = time.perf_counter()
    args.out.mkdir(parents=True, exist_ok=True)
    space = get_space("default", args.resolution)
    device = HostDevice(MeasureConfig())
    cc = ConvertConfig(args.cache_dir or default_cache_dir())
    table = open_table(args.out / f"host-default-r{args.resolution}.json", device)
    archs = [space.decode(g) for g in random_genomes(space, args.nets, args.seed)]

    profile_specs([b for a in archs for b in a.blocks], device, table, cc)
    cal = calibrate(space, device, table, cc, n_nets=args.calibration_nets, exclude=archs)
    measured = np.array([m.warm.median_us for m in measure_architectures(archs, device, table, cc)])
    warm, cold = sums(table, archs)
    variants = {
        "raw_warm_sum": warm,
        "raw_cold_sum": cold,
        f"context_alpha_{DEFAULT_ALPHA}": warm + DEFAULT_ALPHA * (cold - warm),
        "context_calibrated": warm + cal.alpha * (cold - warm),
    }
    results = {k: metrics(v, measured) for k, v in variants.items()}
    command = "python bench/lut_fidelity.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    report = {
        "command": command.strip(),
        "device": device.fingerprint(),
        "runtime": device.runtime(),
        "space": f"default@{args.resolution}",
        "nets": len(archs),
        "blocks_per_net": [len(a) for a in archs],
        "calibration": {
            "alpha": cal.alpha,
            "nets": cal.nets,
            "seed": cal.seed,
            "mape_default_alpha": cal.mape_before,
            "mape_calibrated": cal.mape_after,
        },
        "measured_us": measured.tolist(),
        "estimates_us": {k: v.tolist() for k, v in variants.items()},
        "results": {
            k: {m: v for m, v in r.items() if m != "per_net_err"}
            | {"per_net_err": r["per_net_err"]}
            for k, r in results.items()
        },
        "seconds": time.perf_counter() - t0,
    }
    atomic_write_text(args.out / "lut_fidelity.json", json.dumps(report, indent=1))
    _plot(variants, measured, args.out / "lut_fidelity.png", cal.alpha)
    _print_summary(report, results, args.out)
    return 0


def _print_summary(report: dict, results: dict[str, dict], out: Path) -> None:
    cal = report["calibration"]
    print(
        f"LUT fidelity on {report['device']['cpu']} ({report['runtime']}), "
        f"{report['nets']} random nets of {report['space']}, "
        f"calibration alpha={cal['alpha']:.3f} on {cal['nets']} other nets"
    )
    print(
        f"{'estimate':28s} {'median|err|':>11s} {'max|err|':>9s} {'in ±10%':>8s} "
        f"{'bias':>7s} {'tau':>6s}"
    )
    for k, r in results.items():
        print(
            f"{k:28s} {r['median_abs_err'] * 100:10.1f}% {r['max_abs_err'] * 100:8.1f}% "
            f"{r['within_10pct'] * 100:7.0f}% {r['bias'] * 100:+6.1f}% {r['kendall_tau']:6.3f}"
        )
    print(
        f"wrote {out / 'lut_fidelity.json'} and {out / 'lut_fidelity.png'} "
        f"in {report['seconds']:.0f} s"
    )
    print(f"reproduce: {report['command']}")


def _plot(variants: dict[str, np.ndarray], measured: np.ndarray, path: Path, alpha: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 6))
    m = measured / 1000
    lo, hi = m.min() * 0.8, m.max() * 1.25
    xs = np.linspace(lo, hi, 10)
    ax.plot(xs, xs, "k-", lw=1, label="estimate = measured")
    ax.fill_between(xs, xs * 0.9, xs * 1.1, color="0.9", label="±10%")
    styles = {"raw_warm_sum": "v", "raw_cold_sum": "^", "context_calibrated": "o"}
    for k, mk in styles.items():
        label = k if k != "context_calibrated" else f"context model (alpha={alpha:.2f})"
        ax.scatter(m, variants[k] / 1000, marker=mk, s=22, label=label)
    ax.set_xlabel("measured whole network (ms)")
    ax.set_ylabel("LUT estimate (ms)")
    ax.set_title("LUT estimate vs whole-network latency (host CPU)")
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
