"""Peak memory of ``donna bkd`` on streamed ``imagefolder:`` data: does it grow with the data set?

Builds (once; cached under ``--work``) ImageNet-layout folders from the CIFAR-10 JPEG tarball:
for each size N, N train images and N/10 val images (class-balanced, the first files of each
class by name), upscaled with PIL (bicubic) to ``--px``×``--px`` JPEGs (quality 90). Trains
(once, cached) a short mothernet at ``--resolution`` on the smallest folder unless
``--mothernet`` is given. Then runs ``donna bkd --data imagefolder:FOLDER`` on every folder as a
subprocess and polls the memory of its whole process tree (the process and every descendant,
DataLoader and BKD workers included) every ``--interval`` seconds: the sum of RSS (counts pages
shared by forked workers once per process) and of PSS (shares them out; Linux). Reports the
peak per size and the ratio of the largest size's peak to the smallest's, prints the command
that reproduces the run and writes ``bench/results/imagefolder_memory.json``.

    python bench/imagefolder_memory.py                           # 2000 and 20000 images
    python bench/imagefolder_memory.py --sizes 200 2000 -- --limit 1 --epochs 0.05 --workers 1

Arguments after ``--`` replace the default extra arguments of ``donna bkd``
(:data:`DEFAULT_BKD_ARGS`).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DEFAULT_TAR = ROOT.parent / "shared" / "data" / "cifar10-jpg.tar.gz"
DEFAULT_WORK = ROOT / "bench" / ".work" / "imagefolder"
DEFAULT_OUT = ROOT / "bench" / "results" / "imagefolder_memory.json"
DEFAULT_BKD_ARGS = ("--limit", "1", "--epochs", "0.05")
MOTHERNET_ARGS = ("--epochs", "0.05", "--train-limit", "256", "--val-limit", "64")
MB = 1024 * 1024


# ---- the folders -------------------------------------------------------------------------------


def build_folder(tar: Path, out: Path, n_train: int, n_val: int, px: int) -> Path:
    """An ImageFolder ``out/train|val/<class>/*.jpg`` of ``n_train``/``n_val`` images (the first
    of each CIFAR-10 class by name, class-balanced) upscaled to px×px; reused when ``out``
    already holds one built with the same settings (``out/BUILT.json``)."""
    from PIL import Image

    want = {"tar": str(tar), "train": n_train, "val": n_val, "px": px}
    marker = out / "BUILT.json"
    if marker.is_file() and json.loads(marker.read_text()) == want:
        return out
    picks = _pick(tar, {"train": n_train, "test": n_val})
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    with tarfile.open(tar) as archive:
        for member in archive:
            split, cls, name = _parts(member.name)
            if member.isfile() and (split, cls, name) in picks:
                folder = tmp / ("val" if split == "test" else "train") / cls
                folder.mkdir(parents=True, exist_ok=True)
                data = archive.extractfile(member).read()  # type: ignore[union-attr]
                with Image.open(io.BytesIO(data)) as img:
                    big = img.convert("RGB").resize((px, px), Image.Resampling.BICUBIC)
                big.save(folder / (Path(name).stem + ".jpg"), quality=90)
    (tmp / "BUILT.json").write_text(json.dumps(want))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def _parts(name: str) -> tuple[str, str, str]:
    parts = name.split("/")
    return (parts[-3], parts[-2], parts[-1]) if len(parts) >= 3 else ("", "", "")


def _pick(tar: Path, sizes: dict[str, int]) -> set[tuple[str, str, str]]:
    """(split, class, name) of the first ``sizes[split] / classes`` images of every class."""
    found: dict[tuple[str, str], list[str]] = {}
    with tarfile.open(tar) as archive:
        for member in archive:
            split, cls, name = _parts(member.name)
            if member.isfile() and split in sizes and name.lower().endswith((".jpg", ".png")):
                found.setdefault((split, cls), []).append(name)
    picks = set()
    for split, n in sizes.items():
        classes = sorted(c for s, c in found if s == split)
        if not classes:
            raise SystemExit(f"{tar} has no {split}/<class>/*.jpg images")
        for i, cls in enumerate(classes):
            share = n // len(classes) + (1 if i < n % len(classes) else 0)
            picks |= {(split, cls, name) for name in sorted(found[(split, cls)])[:share]}
    return picks


# ---- memory of a process tree ------------------------------------------------------------------


@dataclass
class TreeMemory:
    """Peak memory of a process tree, sampled while it ran."""

    peak_rss_mb: float = 0.0  # sum over the tree
    peak_pss_mb: float | None = None  # sum over the tree (None where PSS is not available)
    peak_main_rss_mb: float = 0.0
    peak_processes: int = 0
    samples: int = 0


def tree_sample(pid: int, pss: bool = True) -> tuple[int, int | None, int, int]:
    """(RSS sum, PSS sum or None, main RSS, processes) of ``pid`` and all its descendants, in
    bytes; processes that end while sampled are skipped; PSS is None where it cannot be read
    (not Linux, or another user's process)."""
    import psutil

    try:
        main = psutil.Process(pid)
        procs = [main, *main.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, None, 0, 0
    rss = main_rss = alive = 0
    pss_sum: int | None = 0 if pss else None
    for p in procs:
        try:
            try:
                info = p.memory_full_info() if pss_sum is not None else p.memory_info()
            except psutil.AccessDenied:
                pss_sum, info = None, p.memory_info()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        rss += info.rss
        main_rss = info.rss if p.pid == pid else main_rss
        if pss_sum is not None:
            pss_sum = pss_sum + info.pss if hasattr(info, "pss") else None
        alive += 1
    return rss, pss_sum, main_rss, alive


def run_measured(
    cmd: list[str], *, interval: float = 0.2, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``cmd`` to its end, polling its process tree's memory every ``interval`` seconds.
    Returns the exit code, seconds, the :class:`TreeMemory` fields and the output's tail."""
    mem = TreeMemory()
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.extend(proc.stdout or []), daemon=True)
    reader.start()
    while True:
        rss, pss, main_rss, n = tree_sample(proc.pid)
        if n:
            mem.samples += 1
            mem.peak_rss_mb = max(mem.peak_rss_mb, rss / MB)
            mem.peak_main_rss_mb = max(mem.peak_main_rss_mb, main_rss / MB)
            mem.peak_processes = max(mem.peak_processes, n)
            if pss is not None:
                mem.peak_pss_mb = max(mem.peak_pss_mb or 0.0, pss / MB)
        if proc.poll() is not None:
            break
        time.sleep(interval)
    reader.join(timeout=10)
    text = b"".join(out).decode(errors="replace")
    return {
        "rc": proc.returncode,
        "seconds": round(time.perf_counter() - t0, 2),
        **{k: (round(v, 1) if isinstance(v, float) else v) for k, v in asdict(mem).items()},
        "output_tail": text[-2000:],
    }


# ---- the benchmark -----------------------------------------------------------------------------


def donna(*args: str) -> list[str]:
    return [sys.executable, "-m", "nas.cli.donna", *args]


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = list(DEFAULT_BKD_ARGS)
    if "--" in argv:
        cut = argv.index("--")
        argv, extra = argv[:cut], argv[cut + 1 :]
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000], help="train images")
    ap.add_argument("--px", type=int, default=256, help="side of the stored JPEGs")
    ap.add_argument("--resolution", type=int, default=224, help="network input size")
    ap.add_argument("--tar", type=Path, default=DEFAULT_TAR, help="CIFAR-10 JPEG tarball")
    ap.add_argument("--work", type=Path, default=DEFAULT_WORK, help="folders, mothernet, BKD")
    ap.add_argument("--mothernet", type=Path, default=None, help="[default: train one, cached]")
    ap.add_argument("--interval", type=float, default=0.2, help="memory poll interval (s)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    return ap.parse_args(argv), extra


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    raw = list(sys.argv[1:] if argv is None else argv)
    env = {**os.environ, "DONNA_NO_PROGRESS": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    sizes = sorted(set(args.sizes))
    folders = {}
    for n in sizes:
        t0 = time.perf_counter()
        folder = args.work / f"imagefolder-{n}-{args.px}px"
        folders[n] = build_folder(args.tar, folder, n, max(10, n // 10), args.px)
        print(f"folder {folders[n]} ready ({time.perf_counter() - t0:.1f} s)", flush=True)
    mothernet, trained = args.mothernet, None
    if mothernet is None:
        mothernet = args.work / f"mothernet-{sizes[0]}-r{args.resolution}.pt"
        if not mothernet.is_file():
            cmd = donna("train-mothernet", "--data", f"imagefolder:{folders[sizes[0]]}",
                        "--resolution", str(args.resolution), *MOTHERNET_ARGS,
                        "--out", str(mothernet))  # fmt: skip
            trained = run_measured(cmd, interval=args.interval, env=env)
            print(f"mothernet: rc {trained['rc']}, {trained['seconds']} s", flush=True)
            if trained["rc"] != 0:
                print(trained["output_tail"], file=sys.stderr)
                return 1
    runs = []
    for n in sizes:
        out = args.work / f"bkd-{n}.json"
        stale_files = [p for p in args.work.glob("bkd-*") if p.name.split(".")[0] == out.stem]
        for stale in stale_files:  # a fresh library each time: nothing resumed
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
        cmd = donna("bkd", "--mothernet", str(mothernet), "--data", f"imagefolder:{folders[n]}",
                    "--out", str(out), *extra)  # fmt: skip
        res = run_measured(cmd, interval=args.interval, env=env)
        runs.append({"train_images": n, "command": shlex.join(cmd), **res})
        pss = res["peak_pss_mb"]
        print(f"{n:>7} images: rc {res['rc']}, {res['seconds']} s, peak RSS {res['peak_rss_mb']} MB"
              f" (PSS {pss} MB, {res['peak_processes']} processes)", flush=True)  # fmt: skip
        if res["rc"] != 0:
            print(res["output_tail"], file=sys.stderr)
    ok = [r for r in runs if r["rc"] == 0]
    ratio = {}
    if len(ok) >= 2:
        for key in ("peak_rss_mb", "peak_pss_mb", "peak_main_rss_mb"):
            if ok[0][key] and ok[-1][key]:
                ratio[key] = round(ok[-1][key] / ok[0][key], 3)
    reproduce = shlex.join([sys.executable, str(Path(__file__).resolve()), *raw])
    result = {
        "what": "peak memory of donna bkd on imagefolder data of two sizes (process tree)",
        "sizes": sizes,
        "px": args.px,
        "resolution": args.resolution,
        "bkd_args": extra,
        "mothernet": str(mothernet),
        "mothernet_training": trained,
        "runs": runs,
        "ratio_largest_to_smallest": ratio,
        "reproduce": reproduce,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "date": time.strftime("%Y-%m-%d"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"ratio {sizes[-1]}/{sizes[0]} images: {ratio}")
    print(f"reproduce: {reproduce}")
    print(f"wrote {args.out}")
    return 0 if len(ok) == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main())
