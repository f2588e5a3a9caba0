"""Profiling throughput on this machine: conversion and measurement rates, against the onnx2tf
command-line path, and the wall time of profiling a 200-variant space from an empty cache.

    python bench/profile_throughput.py

Writes bench/results/profile_throughput.json. Every figure is measured in this run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def cli_baseline(specs: list, workdir: Path) -> list[float]:
    """Seconds per block through `onnx2tf -i model.onnx` (default settings), as a user of the
    command line would run it. Blocks with non-image inputs only (no sample-data download)."""
    import torch

    from nas.core.modules import build_block, randomize_bn

    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    onnx2tf = shutil.which("onnx2tf", path=env["PATH"])
    assert onnx2tf, "onnx2tf command not found next to this python"
    times = []
    for i, spec in enumerate(specs):
        t0 = time.perf_counter()
        m = randomize_bn(build_block(spec), 0).eval()
        path = workdir / f"b{i}.onnx"
        torch.onnx.export(
            m,
            (torch.randn(1, spec.in_chs, spec.in_h, spec.in_w),),
            str(path),
            dynamo=False,
            opset_version=17,
        )
        subprocess.run(
            [onnx2tf, "-i", str(path), "-o", str(workdir / f"o{i}"), "-n"],
            check=True,
            env=env,
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=600,
        )
        assert list((workdir / f"o{i}").glob("*float32.tflite"))
        times.append(time.perf_counter() - t0)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--blocks", type=int, default=40, help="blocks for the conversion rate")
    ap.add_argument("--cli-blocks", type=int, default=4, help="blocks for the CLI baseline")
    ap.add_argument("--space-limit", type=int, default=200)
    ap.add_argument("--resolution", type=int, default=112)
    ap.add_argument("--out", type=Path, default=Path("bench/results"))
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from latency.convert import ConvertConfig, convert_many
    from latency.host import HostDevice, MeasureConfig, cpu_model
    from nas.core.spaces import get_space

    space = get_space("default", args.resolution)
    specs = space.block_specs()
    sample = specs[1 : 1 + args.blocks]  # skip the stem (image input) for a like-for-like CLI run
    res: dict = {"cpu": cpu_model(), "cores": os.cpu_count(), "space": f"default@{args.resolution}"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for workers in (1, 2):
            t0 = time.perf_counter()
            done, failed = convert_many(sample, ConvertConfig(tmp / f"cache{workers}"), workers)
            dt = time.perf_counter() - t0
            assert not failed and len(done) == len(sample)
            res[f"convert_blocks_per_min_{workers}w"] = len(sample) / dt * 60
        cli = cli_baseline(sample[: args.cli_blocks], tmp)
        res["cli_seconds_per_block"] = sum(cli) / len(cli)
        res["cli_blocks_per_min"] = 60 / res["cli_seconds_per_block"]
        res["speedup_vs_cli_1w"] = res["convert_blocks_per_min_1w"] / res["cli_blocks_per_min"]
        res["speedup_vs_cli_2w"] = res["convert_blocks_per_min_2w"] / res["cli_blocks_per_min"]

        # measurement alone, on the converted models
        conv = dict(done)
        from latency.convert import Converter
        from latency.host import REFERENCE_SPEC

        ref = Converter(ConvertConfig(tmp / "cache2")).convert_block(REFERENCE_SPEC).path
        t0 = time.perf_counter()
        HostDevice(MeasureConfig()).measure([(s, conv[s].path) for s in sample], ref)
        res["measure_blocks_per_min"] = len(sample) / (time.perf_counter() - t0) * 60

        # the whole job: a 200-variant space from an empty cache, through the CLI
        paths = [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "DONNA_CACHE_DIR": str(tmp / "fresh"), "DONNA_NO_PROGRESS": "1",
               "PYTHONPATH": os.pathsep.join(paths)}
        cmd = [
            sys.executable,
            "-c",
            "import sys; from nas.cli.latency_profile import main; sys.exit(main())",
            "--space",
            "default",
            "--resolution",
            str(args.resolution),
            "--limit",
            str(args.space_limit),
            "--out",
            str(tmp / "lut.json"),
        ]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL, timeout=3600)
        res["profile_200_seconds"] = time.perf_counter() - t0
        res["profile_200_entries"] = len(json.loads((tmp / "lut.json").read_text())["entries"])
    res["command"] = "python bench/profile_throughput.py " + shlex.join(
        argv if argv is not None else sys.argv[1:]
    )
    from nas.core.files import atomic_write_text

    atomic_write_text(args.out / "profile_throughput.json", json.dumps(res, indent=1))
    _print_summary(res)
    return 0


def _print_summary(res: dict) -> None:
    print(f"profiling throughput on {res['cpu']} ({res['cores']} cores), {res['space']}")
    print(
        f"  conversion, in-process: {res['convert_blocks_per_min_1w']:.0f} blocks/min (1 worker),"
        f" {res['convert_blocks_per_min_2w']:.0f} blocks/min (2 workers)"
    )
    print(
        f"  conversion, onnx2tf CLI baseline: {res['cli_blocks_per_min']:.1f} blocks/min "
        f"({res['cli_seconds_per_block']:.1f} s/block) -> speedup "
        f"{res['speedup_vs_cli_1w']:.1f}x (1w), {res['speedup_vs_cli_2w']:.1f}x (2w)"
    )
    print(f"  measurement: {res['measure_blocks_per_min']:.0f} blocks/min")
    print(
        f"  {res['profile_200_entries']}-variant space, empty cache, end to end: "
        f"{res['profile_200_seconds']:.0f} s"
    )
    print(f"reproduce: {res['command']}")


if __name__ == "__main__":
    sys.exit(main())
