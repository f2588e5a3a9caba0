"""BKD throughput: the shared-teacher design against the feature store, on this CPU.

Trains a quick-space mothernet briefly on the built-in data at the README demo's sizes
(``Preset quick``: 4000 train / 1000 val images, BKD on 3000 / 500 of them, one epoch), then
runs BKD over a spread subset of the quick space's options (``--per-slot`` of each slot's 24,
every k-th) twice from an empty library:

* ``features``: the design BKD had before, the teacher's features once into float16 files,
  then each option trained alone on them (``--workers`` processes, one option each); kept
  as a baseline in ``bench/feature_store.py``;
* ``shared``: ``nas.bkd.run.run_bkd``, the shared teacher: options packed into (at least
  ``--workers``) groups, one teacher forward per batch per group (``--workers`` processes,
  one group each).

Reports per design the wall time and the **images per second per option** (options x images
each option trained on / wall seconds: the rate at which option-images are trained), the
teacher's share where it is separate, and how close the two designs' nmse are (they use other
batch orders, so they agree only statistically). Writes ``bench/results/bkd_throughput.json``.

    python bench/bkd_throughput.py                  # 8 options per slot, 2 workers
    python bench/bkd_throughput.py --per-slot 24    # every option (about 4x longer)
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # feature_store.py: the baseline design
DESIGNS = ("features", "shared")


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    from nas.pipeline.config import PRESETS

    q = PRESETS["quick"]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=q.train_limit, help="training images loaded")
    ap.add_argument("--val", type=int, default=q.val_limit, help="validation images loaded")
    ap.add_argument("--bkd-train", type=int, default=q.bkd_train_samples)
    ap.add_argument("--bkd-val", type=int, default=q.bkd_val_samples)
    ap.add_argument("--bkd-epochs", type=float, default=q.bkd_epochs)
    ap.add_argument("--mothernet-epochs", type=float, default=1.0)
    ap.add_argument("--per-slot", type=int, default=8, help="options per slot (of 24)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--designs", default=",".join(DESIGNS), help="comma-separated, in order")
    ap.add_argument("--work-dir", type=Path, default=None, help="keep files here")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bkd_throughput.json")
    cli_args = list(sys.argv[1:] if argv is None else argv)
    return ap.parse_args(cli_args), cli_args


def subset_space(per_slot: int) -> Any:
    """The quick space at 32 px with ``per_slot`` options of each slot, spread evenly."""
    from nas.core.spaces import get_space

    space = get_space("quick", 32)
    opts = []
    for row in space.options:
        step = max(1, len(row) // per_slot)
        opts.append(tuple(row[::step][:per_slot]))
    return space.with_options(opts)


def train_teacher(args: argparse.Namespace, data: Any, space: Any, work: Path) -> tuple[Path, dict]:
    from nas.training.checkpoint import save_checkpoint
    from nas.training.mothernet import MothernetConfig, build_mothernet, train_mothernet

    mcfg = MothernetConfig.default(space)
    net = build_mothernet(mcfg)
    metrics = train_mothernet(net, data, epochs=args.mothernet_epochs, seed=0, progress=False)
    return save_checkpoint(work / "mothernet.pt", net, mcfg, metrics, data.describe()), metrics


def run_design(
    args: argparse.Namespace, design: str, ckpt: Path, space: Any, data: Any, work: Path
) -> dict:
    """One BKD run of ``design`` from nothing; its figures. ``shared``: :func:`run_bkd`;
    ``features``: the baseline in ``bench/feature_store.py``."""
    from nas.bkd.config import BkdConfig
    from nas.bkd.run import run_bkd

    cfg = BkdConfig(
        epochs=args.bkd_epochs,
        train_samples=args.bkd_train,
        val_samples=args.bkd_val,
        workers=args.workers,
    )
    row: dict[str, Any] = {}
    t0 = time.perf_counter()
    if design == "features":
        from feature_store import run_feature_store

        entries, t_teacher = run_feature_store(ckpt, space, data, work / "features", cfg)
        wall = time.perf_counter() - t0
        row = {"teacher_seconds": round(t_teacher, 2), "teacher_share": round(t_teacher / wall, 4)}
    else:
        lib = run_bkd(ckpt, space, data, work / f"bkd-{design}.json", cfg, progress=False)
        wall = time.perf_counter() - t0
        entries = lib.entries()
        st = lib.provenance["shared_teacher"]
        row = {
            "groups": st["groups"],
            "group_sizes": [g["options"] for g in st["group_runs"]],
            "group_seconds": [g["seconds"] for g in st["group_runs"]],
        }
    images = entries[0].extra["images"]
    return {
        "options": len(entries),
        "steps_per_option": entries[0].steps,
        "images_per_option": images,
        "wall_seconds": round(wall, 2),
        "images_per_second_per_option": round(len(entries) * images / wall, 1),
        "load_avg_1m_at_end": round(os.getloadavg()[0], 2),
        **row,
        "nmse": {f"{e.slot}:{e.option.label()}": e.nmse for e in entries},
    }


def compare(rows: dict[str, dict]) -> dict[str, Any]:
    """Speed ratio and nmse agreement of the two designs (when both ran)."""
    if not all(d in rows for d in DESIGNS):
        return {}
    f, s = rows["features"], rows["shared"]
    diffs = [abs(f["nmse"][k] - s["nmse"][k]) for k in f["nmse"] if k in s["nmse"]]
    return {
        "shared_over_features_throughput": round(
            s["images_per_second_per_option"] / f["images_per_second_per_option"], 3
        ),
        "nmse_abs_diff_mean": round(statistics.mean(diffs), 4),
        "nmse_abs_diff_max": round(max(diffs), 4),
        "nmse_mean": {d: round(statistics.mean(rows[d]["nmse"].values()), 4) for d in DESIGNS},
    }


def main(argv: list[str] | None = None) -> int:
    args, cli_args = parse_args(argv)
    os.environ.setdefault("DONNA_NO_PROGRESS", "1")
    import torch

    from nas.data import load_task_data

    work = args.work_dir or Path(tempfile.mkdtemp(prefix="bkd-throughput-"))
    work.mkdir(parents=True, exist_ok=True)
    data = load_task_data(
        "classification", resolution=32, train_limit=args.train, val_limit=args.val
    )
    space = subset_space(args.per_slot)
    t0 = time.perf_counter()
    ckpt, metrics = train_teacher(args, data, space, work)
    t_teacher = time.perf_counter() - t0
    rows = {}
    for design in args.designs.split(","):
        rows[design] = run_design(args, design, ckpt, space, data, work)
        r = rows[design]
        print(
            f"{design:>8}: {r['options']} options x {r['images_per_option']} images in "
            f"{r['wall_seconds']:.1f} s = {r['images_per_second_per_option']:.0f} images/s per "
            f"option (load {r['load_avg_1m_at_end']})",
            flush=True,
        )
    result = {
        "bench": "bkd_throughput",
        "command": " ".join(["python bench/bkd_throughput.py", *cli_args]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "torch": str(torch.__version__),
            "note": "shared machine: other jobs ran at the same time (see load averages)",
        },
        "data": data.describe(),
        "mothernet": {"val_top1": metrics["value"], "train_seconds": round(t_teacher, 1)},
        "settings": {
            k: getattr(args, k)
            for k in ("bkd_train", "bkd_val", "bkd_epochs", "per_slot", "workers")
        },
        "designs": rows,
        "comparison": compare(rows),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    c = result["comparison"]
    if c:
        print(
            f"shared / features throughput: {c['shared_over_features_throughput']:.2f}; nmse "
            f"mean {c['nmse_mean']['features']:.3f} (features) vs {c['nmse_mean']['shared']:.3f} "
            f"(shared), |diff| mean {c['nmse_abs_diff_mean']:.3f} max {c['nmse_abs_diff_max']:.3f}"
        )
    print(f"wrote {args.out}\nreproduce: {result['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
