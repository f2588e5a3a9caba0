"""Training speed on this CPU with the installed torch: mothernet steps per second.

Used to compare torch stacks (e.g. the CPU build 2.13.0 against the CUDA build 2.14.1 running
on the CPU): run it once in each venv, alternating, and compare the medians.

    python bench/train_speed.py --repeats 3 --out bench/results/train_speed-$(python -c \
        "import torch; print(torch.__version__)").json

Each repeat trains the quick space's mothernet (32 px, batch 64, built-in digits) for
``--steps`` steps, with the thread count fixed (``--threads``), and records steps/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args(argv)
    os.environ.setdefault("DONNA_NO_PROGRESS", "1")
    import torch

    from nas.core.spaces import get_space
    from nas.data import load_task_data
    from nas.training.mothernet import MothernetConfig, build_mothernet, train_mothernet

    torch.set_num_threads(args.threads)
    space = get_space("quick", 32)
    n = args.steps * 64
    data = load_task_data("classification", resolution=32, train_limit=n, val_limit=64)
    rates = []
    for r in range(args.repeats):
        net = build_mothernet(MothernetConfig.default(space, seed=r))
        t0 = time.perf_counter()
        m = train_mothernet(net, data, epochs=1, batch_size=64, seed=r, progress=False)
        dt = time.perf_counter() - t0
        rates.append(m["steps"] / dt)
        print(f"repeat {r}: {m['steps']} steps in {dt:.2f} s = {rates[-1]:.2f} steps/s")
    out = {
        "torch": torch.__version__,
        "cuda_build": torch.version.cuda,
        "threads": args.threads,
        "steps_per_s": rates,
        "median_steps_per_s": statistics.median(rates),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
    }
    print(json.dumps(out, indent=1))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
