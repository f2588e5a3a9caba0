"""BKD wall time per option and the teacher-forward share (quick space, CIFAR-10 subset).

Trains a quick-space mothernet briefly on a CIFAR-10 subset, then runs BKD over every option
of the quick space (72: 24 per slot) and reports: the teacher-feature pass (computed once per
run and shared by every option), the wall time per option (overall and per slot), the share of
the BKD wall time spent in the teacher forward, and what recomputing the teacher for every
option would have cost. Writes ``bench/results/bkd_time.json``.

    python bench/bkd_time.py                       # 2000 train / 500 val, 1 worker
    python bench/bkd_time.py --workers 2 --limit 24
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=f"cifar10:{DEFAULT_DATA}", help="data spec (nas.data)")
    ap.add_argument("--train", type=int, default=2000, help="training images")
    ap.add_argument("--val", type=int, default=500, help="validation images")
    ap.add_argument("--mothernet-epochs", type=float, default=3.0)
    ap.add_argument("--bkd-epochs", type=float, default=1.0)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    ap.add_argument("--limit", type=int, default=None, help="only the first N options")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep files here")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bkd_time.json")
    cli_args = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(cli_args)

    import torch

    from nas.bkd import BkdConfig, run_bkd
    from nas.core.errors import DataError
    from nas.core.spaces import get_space
    from nas.data import load_task_data
    from nas.mothernet import MothernetConfig, build_mothernet, save_checkpoint, train_mothernet

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bkd-time-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        data = load_task_data(
            "classification",
            args.data,
            resolution=32,
            train_limit=args.train,
            val_limit=args.val,
            cache_dir=work / "data-cache",
        )
    except DataError as exc:
        print(f"cannot load {args.data}: {exc}", file=sys.stderr)
        return 2
    t_data = time.perf_counter() - t0

    space = get_space("quick", 32)
    mcfg = MothernetConfig.default(space)
    net = build_mothernet(mcfg)
    t0 = time.perf_counter()
    metrics = train_mothernet(net, data, epochs=args.mothernet_epochs, seed=0)
    t_mothernet = time.perf_counter() - t0
    ckpt = save_checkpoint(work / "mothernet.pt", net, mcfg, metrics, data.describe())

    cfg = BkdConfig(
        epochs=args.bkd_epochs,
        train_samples=args.train,
        val_samples=args.val,
        workers=args.workers,
        threads=args.threads,
    )
    out = work / "bkd.json"
    for stale in (out,):
        stale.unlink(missing_ok=True)
    arrivals: list[float] = []
    t0 = time.perf_counter()
    lib = run_bkd(
        ckpt,
        space,
        data,
        out,
        cfg,
        limit=args.limit,
        on_option=lambda e, done, total: arrivals.append(time.perf_counter() - t0),
    )
    t_bkd = time.perf_counter() - t0

    entries = lib.entries()
    secs = [e.seconds for e in entries]
    teacher_s = float(lib.provenance["teacher_features"]["seconds"])
    per_slot = {}
    for i in range(space.n_slots):
        es = [e for e in entries if e.slot == i]
        if es:
            best = min(es, key=lambda e: e.nmse)
            worst = max(es, key=lambda e: e.nmse)
            per_slot[str(i)] = {
                "options": len(es),
                "mean_s": round(statistics.mean(e.seconds for e in es), 3),
                "min_s": round(min(e.seconds for e in es), 3),
                "max_s": round(max(e.seconds for e in es), 3),
                "best": [best.option.label(), round(best.nmse, 4)],
                "worst": [worst.option.label(), round(worst.nmse, 4)],
            }
    n = len(entries)
    result = {
        "bench": "bkd_time",
        "command": " ".join(["python bench/bkd_time.py", *cli_args]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": str(torch.__version__),
            "torch_threads": torch.get_num_threads(),
            "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        },
        "data": data.describe(),
        "mothernet": {
            "choices": [c.label() for c in mcfg.choices],
            "epochs": args.mothernet_epochs,
            "val_top1": metrics["value"],
            "train_seconds": round(t_mothernet, 2),
        },
        "bkd": {
            "settings": cfg.result_settings(),
            "workers": args.workers,
            "threads_per_worker": cfg.threads_per_worker(),
            "options": n,
            "steps_per_option": entries[0].steps if entries else 0,
            "wall_seconds": round(t_bkd, 2),
            "wall_seconds_per_option": round(t_bkd / max(n, 1), 3),
            "train_seconds_per_option": {
                "mean": round(statistics.mean(secs), 3),
                "median": round(statistics.median(secs), 3),
                "min": round(min(secs), 3),
                "max": round(max(secs), 3),
            },
            "teacher_forward_seconds": round(teacher_s, 3),
            "teacher_forward_share": round(teacher_s / t_bkd, 4),
            "teacher_forward_share_if_recomputed_per_option": round(
                teacher_s * n / (teacher_s * n + sum(secs)), 4
            ),
            "per_slot": per_slot,
        },
        "data_load_seconds": round(t_data, 2),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")

    b = result["bkd"]
    print(
        f"mothernet {', '.join(result['mothernet']['choices'][:1])} x3, "
        f"{args.mothernet_epochs:g} epochs in {t_mothernet:.1f} s: val top1 {metrics['value']:.3f}"
    )
    print(
        f"BKD: {n} options, {b['steps_per_option']} steps each ({args.bkd_epochs:g} epoch of "
        f"{args.train} images), {args.workers} worker(s) x {b['threads_per_worker']} thread(s)"
    )
    print(
        f"  wall {t_bkd:.1f} s = {b['wall_seconds_per_option']:.2f} s per option; training per "
        f"option mean {b['train_seconds_per_option']['mean']:.2f} s, median "
        f"{b['train_seconds_per_option']['median']:.2f} s "
        f"({b['train_seconds_per_option']['min']:.2f}-{b['train_seconds_per_option']['max']:.2f})"
    )
    print(
        f"  teacher forward (once, {data.describe()['train']}+{data.describe()['val']} images): "
        f"{teacher_s:.2f} s = {100 * b['teacher_forward_share']:.1f}% of the BKD wall time "
        f"(recomputed per option it would be "
        f"{100 * b['teacher_forward_share_if_recomputed_per_option']:.1f}%)"
    )
    for i, row in per_slot.items():
        print(
            f"  slot {i}: {row['mean_s']:.2f} s/option; best {row['best'][0]} nmse "
            f"{row['best'][1]:.3f}, worst {row['worst'][0]} nmse {row['worst'][1]:.3f}"
        )
    print(f"load average at the end: {result['machine']['load_avg_1m_at_end']} (shared machine)")
    print(f"wrote {args.out}\nreproduce: {result['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
