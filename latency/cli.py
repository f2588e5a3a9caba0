"""``latency-profile``: profile a search space's blocks on a device into a LUT, and work with
LUTs (export, compare, show).

Thin front end: option parsing here, work in :mod:`latency.profiler`; torch and TensorFlow are
imported only when a command runs, so ``--help`` is instant.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from latency.android.device import AdbConfig
from latency.host import MeasureConfig
from nas.core.errors import DonnaError
from nas.core.settings import debug

_D = MeasureConfig()  # the one place measurement defaults live
_A = AdbConfig()  # ... and phone (adb) defaults


def run_cli(command: click.Command, argv: Sequence[str] | None) -> int:
    """Run a click command, turning donnav2 errors into one-line messages (set DONNA_DEBUG=1
    for tracebacks) and Ctrl-C into a note that the work is resumable."""
    try:
        command.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):  # click turns Ctrl-C into Abort
        click.echo(
            "\ninterrupted: every finished measurement is saved; run the same command again "
            "to resume",
            err=True,
        )
        return 130
    except DonnaError as exc:
        if debug():
            raise
        click.echo(f"error: {exc}", err=True)
        return 1
    return 0


def _default_out(device: str, space: str, resolution: int | None, threads: int) -> Path:
    from latency.android.run import safe_name

    res = f"-r{resolution}" if resolution else ""
    thr = f"-t{threads}" if threads != 1 else ""
    return Path("lut") / f"{safe_name(device)}-{space}{res}{thr}.json"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--device",
    "devices",
    multiple=True,
    default=("host",),
    is_flag=False,
    flag_value="adb",
    show_default=True,
    help="'host' (this machine's CPU), an adb serial, or 'adb' / no value for the one attached "
    "phone. Repeat for several phones: profiled in parallel, one LUT each.",
)
@click.option("--space", default="quick", show_default=True, help="Search space: quick or default.")
@click.option(
    "--resolution",
    type=int,
    default=None,
    help="Input resolution of the space (default: the space's own).",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="LUT file [default: lut/DEVICE-SPACE.json].",
)
@click.option("--threads", type=int, default=_D.threads, show_default=True)
@click.option(
    "--repeats",
    type=int,
    default=_D.repeats,
    show_default=True,
    help="Interleaved rounds per block.",
)
@click.option(
    "--invokes",
    type=int,
    default=_D.invokes,
    show_default=True,
    help="Timed invokes per block per round.",
)
@click.option(
    "--limit", type=int, default=None, help="Profile only the first N blocks of the space."
)
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip blocks already in --out (--no-resume re-measures; old file kept as .bak).",
)
@click.option("--workers", type=int, default=None, help="Conversion processes [default: 2].")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Converted-model cache [default: $DONNA_CACHE_DIR or ~/.cache/donnav2].",
)
@click.option("--seed", type=int, default=_D.seed, show_default=True)
@click.option("--list-devices", is_flag=True, help="List devices and exit.")
@click.option(
    "--benchmark-binary",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Phones: TFLite's benchmark_model (android_aarch64 prebuilt) [default: from the "
    "cache folder, see docs/phone.md].",
)
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Measure a whole model end to end instead of profiling blocks: FILE.tflite, an "
    "architecture .json, or a genome of --space (e.g. 0,3,5). Repeatable.",
)
@click.option(
    "--adb-timeout",
    type=float,
    default=_A.io_timeout_s,
    show_default=True,
    help="Phones: seconds without any answer before the phone counts as frozen.",
)
@click.option(
    "--run-timeout",
    type=float,
    default=_A.run_timeout_s,
    show_default=True,
    help="Phones: longest single benchmark_model run.",
)
@click.option(
    "--min-secs",
    type=float,
    default=_A.min_secs,
    show_default=True,
    help="Phones: benchmark_model --min_secs/--warmup_min_secs (shortest warmup and timed phase).",
)
@click.option(
    "--cooldown",
    type=float,
    default=_A.cooldown_s,
    show_default=True,
    help="Phones: seconds of rest between models (besides the thermal gate).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    devices: tuple[str, ...],
    space: str,
    resolution: int | None,
    out: Path | None,
    threads: int,
    repeats: int,
    invokes: int,
    limit: int | None,
    resume: bool,
    workers: int | None,
    cache_dir: Path | None,
    seed: int,
    list_devices: bool,
    benchmark_binary: Path | None,
    models: tuple[str, ...],
    adb_timeout: float,
    run_timeout: float,
    min_secs: float,
    cooldown: float,
) -> None:
    """Profile every block of a search space on a device into a latency LUT.

    \b
    latency-profile --device host --space quick --out lut/host-quick.json
    latency-profile show lut/host-quick.json
    latency-profile compare lut/a.json lut/b.json
    """
    if ctx.invoked_subcommand is not None:
        return
    if list_devices:
        from latency.devices import list_devices as _list

        for name, what in _list():
            click.echo(f"{name:24s} {what}")
        return
    from latency.android.run import lut_path, profile_in_parallel
    from latency.convert import ConvertConfig, convert_many, default_cache_dir
    from latency.devices import ANY_PHONE, get_device
    from latency.profiler import open_table, profile_specs
    from nas.core.spaces import get_space

    try:
        config = MeasureConfig(threads=threads, repeats=repeats, invokes=invokes, seed=seed)
        adb = AdbConfig(
            io_timeout_s=adb_timeout, run_timeout_s=run_timeout, cooldown_s=cooldown,
            min_secs=min_secs, binary=benchmark_binary,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    sp = get_space(space, resolution)
    names = list(dict.fromkeys(devices))
    if ANY_PHONE in names:  # the one attached phone, by serial (names its LUT)
        from latency.android.device import select_serial

        names = [select_serial(None) if n == ANY_PHONE else n for n in names]
    convert_config = ConvertConfig(cache_dir or default_cache_dir(), seed=seed)
    if models:
        if len(names) != 1:
            raise click.UsageError("--model measures on one device: give one --device")
        _measure_models(names[0], models, sp, config, adb, convert_config, out, resolution)
        return
    specs = sp.block_specs()
    several = len(names) > 1
    if several:  # convert once, before the workers (each then finds every model cached)
        from latency.host import REFERENCE_SPEC

        convert_many([REFERENCE_SPEC, *list(dict.fromkeys(specs))[:limit]], convert_config,
                     workers or 2)

    def work(name: str, lut: Path) -> str:
        dev = get_device(name, config, adb)
        try:
            table = open_table(lut, dev, resume=resume)
            click.echo(
                f"space {sp.name} @{sp.resolution}px: {len(specs)} blocks; device {name} "
                f"({dev.runtime()}, {threads} thread(s)); LUT {lut} has {len(table)} entries",
                err=True,
            )
            report = profile_specs(
                specs, dev, table, convert_config, workers=workers, limit=limit,
                remeasure=not resume,
            )
        finally:
            close = getattr(dev, "close", None)
            if close is not None:
                close()
        return report.summary()

    jobs = [
        (n, lut_path(out, _default_out(n, space, resolution, threads), n, several))
        for n in names
    ]
    if not several:
        name, lut = jobs[0]
        click.echo(work(name, lut), err=True)
        click.echo(str(lut))
        return
    runs = profile_in_parallel(jobs, work)
    for r in runs:
        click.echo(f"[{r.device}] " + (f"error: {r.error}" if r.error else r.summary), err=True)
        if r.error is None:
            click.echo(str(r.out))
    failed = [r for r in runs if r.error is not None]
    if failed:
        raise DonnaError(
            f"{len(failed)} of {len(runs)} devices failed ({', '.join(r.device for r in failed)})"
            "; the others' LUTs are complete. Run the same command again to resume"
        )


def _measure_models(
    name: str,
    models: tuple[str, ...],
    sp: object,
    config: MeasureConfig,
    adb: AdbConfig,
    convert_config: object,
    out: Path | None,
    resolution: int | None,
) -> None:
    """--model: time whole models on the device, next to the LUT's estimate when it has one."""
    from latency.android.run import measure_end_to_end
    from latency.devices import get_device
    from latency.profiler import provenance_for
    from lut.table import LatencyTable, identity

    dev = get_device(name, config, adb)
    try:
        table = None
        lut = out or _default_out(name, sp.name, resolution, config.threads)  # type: ignore[attr-defined]
        if lut.exists():
            table = LatencyTable.load(lut)
            table.require(identity(provenance_for(dev)))
        rows = measure_end_to_end(dev, models, sp, convert_config, table)
    finally:
        close = getattr(dev, "close", None)
        if close is not None:
            close()
    click.echo(f"device {name}; LUT {lut if table is not None else '(none)'}", err=True)
    for r in rows:
        line = f"{r.label}\tmeasured {r.measured_us:.1f} us"
        if r.lut_us is not None:
            line += f"\tLUT {r.lut_us:.1f} us\tLUT/measured {r.ratio:.3f}"
        if r.throttled:
            line += "\tTHROTTLED"
        if not r.stable:
            line += "\tunstable"
        click.echo(line)


@cli.command("show")
@click.argument("lut_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def show(lut_path: Path) -> None:
    """Summarise a LUT: provenance and entry statistics."""
    from lut.table import LatencyTable

    t = LatencyTable.load(lut_path)
    p = t.provenance
    lat = sorted(e["median_us"] for e in t.entries.values())
    dev = p.get("device", {})
    click.echo(f"LUT {lut_path}: {len(t)} entries")
    click.echo(f"  device   {dev.get('id')} ({dev.get('cpu') or dev.get('model')})")
    click.echo(f"  runtime  {p.get('runtime')}, threads {p.get('threads')}")
    click.echo(f"  converter {json.dumps(p.get('converter'))}")
    if lat:
        click.echo(
            f"  latency  min {lat[0]:.1f} us, median {lat[len(lat) // 2]:.1f} us, "
            f"max {lat[-1]:.1f} us"
        )
    unstable = sum(1 for e in t.entries.values() if e.get("stable") is False)
    if unstable:
        click.echo(f"  {unstable} entries stayed noisy after re-measuring (stable=false)")


@cli.command("export-csv")
@click.argument("lut_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("csv_path", type=click.Path(dir_okay=False, path_type=Path))
def export_csv(lut_path: Path, csv_path: Path) -> None:
    """Export a LUT's entries to CSV (one row per block, numbers as columns)."""
    from lut.table import LatencyTable

    LatencyTable.load(lut_path).export_csv(csv_path)
    click.echo(str(csv_path))


@cli.command("compare")
@click.argument("lut_a", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("lut_b", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--csv",
    "csv_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the per-entry ratios here.",
)
def compare(lut_a: Path, lut_b: Path, csv_path: Path | None) -> None:
    """Compare two LUTs (e.g. two devices): per-entry ratio B/A over common blocks."""
    import csv

    from lut.table import LatencyTable, compare_tables

    res = compare_tables(LatencyTable.load(lut_a), LatencyTable.load(lut_b))
    s = res["summary"]
    click.echo(f"{s['common']} common blocks ({s['only_a']} only in A, {s['only_b']} only in B)")
    if s["common"]:
        click.echo(
            f"ratio B/A: median {s['median_ratio']:.3f}, min {s['min_ratio']:.3f}, "
            f"max {s['max_ratio']:.3f}"
        )
    if csv_path:
        with open(csv_path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=["key", "block", "a_us", "b_us", "ratio"])
            w.writeheader()
            w.writerows(res["rows"])


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(cli, argv)


def entry() -> None:
    sys.exit(main())
