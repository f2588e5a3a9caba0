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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"


@dataclass
class MothernetRun:
    """The trained quick-space mothernet and what the benchmark reports about it."""

    space: Any
    mcfg: Any
    metrics: dict
    seconds: float
    ckpt: Any


@dataclass
class BkdRun:
    """One timed BKD run over the quick space."""

    cfg: Any
    lib: Any
    seconds: float


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    """Parse the command line; also return the raw arguments (for the reproduce line)."""
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
    return ap.parse_args(cli_args), cli_args


def load_data(args: argparse.Namespace, work: Path) -> tuple[Any, float] | None:
    """Load the CIFAR-10 subset; return (data, seconds), or None (after saying why) on failure."""
    from nas.core.errors import DataError
    from nas.data import load_task_data

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
        return None
    return data, time.perf_counter() - t0


def train_mothernet_checkpoint(args: argparse.Namespace, data: Any, work: Path) -> MothernetRun:
    """Train the quick-space mothernet briefly and save it as ``work/mothernet.pt``."""
    from nas.core.spaces import get_space
    from nas.training.checkpoint import save_checkpoint
    from nas.training.mothernet import MothernetConfig, build_mothernet, train_mothernet

    space = get_space("quick", 32)
    mcfg = MothernetConfig.default(space)
    net = build_mothernet(mcfg)
    t0 = time.perf_counter()
    metrics = train_mothernet(net, data, epochs=args.mothernet_epochs, seed=0)
    seconds = time.perf_counter() - t0
    ckpt = save_checkpoint(work / "mothernet.pt", net, mcfg, metrics, data.describe())
    return MothernetRun(space=space, mcfg=mcfg, metrics=metrics, seconds=seconds, ckpt=ckpt)


def run_timed_bkd(
    args: argparse.Namespace, mothernet: MothernetRun, data: Any, work: Path
) -> BkdRun:
    """Run BKD over the quick space (or its first ``--limit`` options) and time it."""
    from nas.bkd.config import BkdConfig
    from nas.bkd.run import run_bkd

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
        mothernet.ckpt,
        mothernet.space,
        data,
        out,
        cfg,
        limit=args.limit,
        on_option=lambda e, done, total: arrivals.append(time.perf_counter() - t0),
    )
    return BkdRun(cfg=cfg, lib=lib, seconds=time.perf_counter() - t0)


def summarize_slots(entries: list, n_slots: int) -> dict[str, dict]:
    """Per-slot option count, training-time spread and best/worst option by NMSE."""
    per_slot = {}
    for i in range(n_slots):
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
    return per_slot


def teacher_seconds(bkd: BkdRun) -> float:
    """Seconds of the (once-per-run) teacher-feature pass of the feature-store design; 0 for
    the shared teacher (BKD's design now), whose teacher runs inside each group's steps."""
    return float((bkd.lib.provenance.get("teacher_features") or {}).get("seconds", 0.0))


def build_result(
    args: argparse.Namespace,
    cli_args: list[str],
    data: Any,
    t_data: float,
    mothernet: MothernetRun,
    bkd: BkdRun,
) -> dict:
    """The JSON document written to ``--out``."""
    import torch

    entries = bkd.lib.entries()
    secs = [e.seconds for e in entries]
    teacher_s = teacher_seconds(bkd)
    t_bkd = bkd.seconds
    per_slot = summarize_slots(entries, mothernet.space.n_slots)
    n = len(entries)
    return {
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
            "choices": [c.label() for c in mothernet.mcfg.choices],
            "epochs": args.mothernet_epochs,
            "val_top1": mothernet.metrics["value"],
            "train_seconds": round(mothernet.seconds, 2),
        },
        "bkd": {
            "settings": bkd.cfg.result_settings(),
            "workers": args.workers,
            "threads_per_worker": bkd.cfg.threads_per_worker(),
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


def write_result(result: dict, path: Path) -> None:
    """Write the result JSON (one-space indent, trailing newline)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1) + "\n")


def print_summary(
    args: argparse.Namespace, result: dict, data: Any, mothernet: MothernetRun, bkd: BkdRun
) -> None:
    """Print the human-readable summary of ``result``."""
    b = result["bkd"]
    t_bkd = bkd.seconds
    teacher_s = teacher_seconds(bkd)
    print(
        f"mothernet {', '.join(result['mothernet']['choices'][:1])} x3, "
        f"{args.mothernet_epochs:g} epochs in {mothernet.seconds:.1f} s: "
        f"val top1 {mothernet.metrics['value']:.3f}"
    )
    print(
        f"BKD: {b['options']} options, {b['steps_per_option']} steps each "
        f"({args.bkd_epochs:g} epoch of "
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
    for i, row in b["per_slot"].items():
        print(
            f"  slot {i}: {row['mean_s']:.2f} s/option; best {row['best'][0]} nmse "
            f"{row['best'][1]:.3f}, worst {row['worst'][0]} nmse {row['worst'][1]:.3f}"
        )
    print(f"load average at the end: {result['machine']['load_avg_1m_at_end']} (shared machine)")
    print(f"wrote {args.out}\nreproduce: {result['command']}")


def main(argv: list[str] | None = None) -> int:
    args, cli_args = parse_args(argv)
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bkd-time-"))
    work.mkdir(parents=True, exist_ok=True)
    loaded = load_data(args, work)
    if loaded is None:
        return 2
    data, t_data = loaded
    mothernet = train_mothernet_checkpoint(args, data, work)
    bkd = run_timed_bkd(args, mothernet, data, work)
    result = build_result(args, cli_args, data, t_data, mothernet, bkd)
    write_result(result, args.out)
    print_summary(args, result, data, mothernet, bkd)
    return 0


if __name__ == "__main__":
    sys.exit(main())
