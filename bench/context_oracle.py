"""Can ANY single alpha meet the context-model targets? An oracle check on measured data.

The one-alpha context model estimates a network as warm_sum + alpha * (cold_sum - warm_sum)
of its blocks' LUT entries. `bench/lut_fidelity.py` fits alpha on calibration nets; here alpha
is instead swept over [0, 1] and scored on the *evaluated* nets themselves (hindsight, so an
upper bound of what any way of fitting one alpha, pooled over resolutions or not, can reach).
Targets (issue 10): median |error| <= 3%, every net within +-10%, Kendall tau >= 0.95.

    python bench/context_oracle.py bench/results/fidelity-rep15/lut_fidelity.json

Reads the raw warm and cold sums and the measured whole-net times that lut_fidelity.py wrote;
measures nothing.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np


def score(est: np.ndarray, meas: np.ndarray) -> tuple[float, float, float]:
    from scipy.stats import kendalltau

    err = est / meas - 1.0
    return (
        float(np.median(np.abs(err))),
        float(np.mean(np.abs(err) <= 0.10)),
        float(kendalltau(est, meas)[0]),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("fidelity_json", type=Path, help="lut_fidelity.json of bench/lut_fidelity.py")
    ap.add_argument("--steps", type=int, default=101, help="alphas tried in [0, 1]")
    args = ap.parse_args(argv)
    data = json.loads(args.fidelity_json.read_text())
    alphas = np.linspace(0.0, 1.0, args.steps)
    shown = shlex.join(sys.argv[1:] or [str(args.fidelity_json)])
    print(f"command: python bench/context_oracle.py {shown}")
    print(f"data: {args.fidelity_json} (measured with: {data.get('command', '?')})")
    for res, r in data["per_resolution"].items():
        meas = np.asarray(r["measured_us"], dtype=float)
        warm = np.asarray(r["estimates_us"]["raw_warm_sum"], dtype=float)
        cold = np.asarray(r["estimates_us"]["raw_cold_sum"], dtype=float)
        rows = [(a, *score(warm + a * (cold - warm), meas)) for a in alphas]
        best_med = min(rows, key=lambda t: t[1])
        best_in = max(rows, key=lambda t: (t[2], -t[1]))
        best_tau = max(rows, key=lambda t: t[3])
        ok = [t for t in rows if t[1] <= 0.03 and t[2] >= 1.0 and t[3] >= 0.95]
        print(f"\n{res} px, {len(meas)} nets (fitted alpha {r['calibration']['alpha']:.3f}):")
        for name, t in (("lowest median", best_med), ("most within 10%", best_in),
                        ("highest tau", best_tau)):  # fmt: skip
            print(f"  {name:>16}: alpha {t[0]:.2f}: median {t[1]:.1%}, within 10% {t[2]:.0%},"
                  f" tau {t[3]:.3f}")  # fmt: skip
        print(f"  alphas meeting all three targets: {len(ok)} of {len(rows)}"
              + (f" ({ok[0][0]:.2f}..{ok[-1][0]:.2f})" if ok else ""))  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
