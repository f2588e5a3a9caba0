"""``latency-profile``: profile a search space's blocks on a device into a LUT, and work with
LUTs (export, compare, show).

Thin front end: option parsing here, work in :mod:`latency.profile`; torch and TensorFlow are
imported only when a command runs, so ``--help`` is instant.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from latency.host import MeasureConfig
from nas.errors import DonnaError

_D = MeasureConfig()  # the one place measurement defaults live


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
        if os.environ.get("DONNA_DEBUG"):
            raise
        click.echo(f"error: {exc}", err=True)
        return 1
    return 0


def _default_out(device: str, space: str, resolution: int | None, threads: int) -> Path:
    res = f"-r{resolution}" if resolution else ""
    thr = f"-t{threads}" if threads != 1 else ""
    return Path("lut") / f"{device}-{space}{res}{thr}.json"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--device",
    default="host",
    show_default=True,
    help="'host' (this machine's CPU) or an adb serial.",
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
@click.pass_context
def cli(
    ctx: click.Context,
    device: str,
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
    from latency.convert import ConvertConfig, default_cache_dir
    from latency.devices import get_device
    from latency.profile import open_table, profile_specs
    from nas.spaces import get_space

    try:
        config = MeasureConfig(threads=threads, repeats=repeats, invokes=invokes, seed=seed)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    sp = get_space(space, resolution)
    dev = get_device(device, config)
    out = out or _default_out(device, space, resolution, threads)
    table = open_table(out, dev, resume=resume)
    specs = sp.block_specs()
    click.echo(
        f"space {sp.name} @{sp.resolution}px: {len(specs)} blocks; device {device} "
        f"({dev.runtime()}, {threads} thread(s)); LUT {out} has {len(table)} entries",
        err=True,
    )
    report = profile_specs(
        specs,
        dev,
        table,
        ConvertConfig(cache_dir or default_cache_dir(), seed=seed),
        workers=workers,
        limit=limit,
        remeasure=not resume,
    )
    click.echo(report.summary(), err=True)
    click.echo(str(out))


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
