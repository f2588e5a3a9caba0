"""``latency-profile``: profile a search space's blocks on a device into a LUT, and work with
LUTs (show, export, compare).

Thin: options here, work in :mod:`latency.jobs` and :mod:`lut.table`; torch and TensorFlow
are imported only when a command runs, so ``--help`` is instant.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import click

from latency.android.config import AdbConfig
from latency.android.cores import parse_cpu_list
from latency.context import CALIBRATION_NETS
from latency.host import MeasureConfig
from nas.cli.common import (
    ExistingFile,
    FileArg,
    benchmark_binary_option,
    cooldown_option,
    echo_err,
    entry_point,
    resolution_option,
    run_cli,
    seed_option,
    space_option,
)
from nas.core.errors import DonnaError
from nas.core.spaces import SPACES

_D = MeasureConfig()  # measurement defaults are defined there ...
_A = AdbConfig()  # ... and phone (adb) defaults there


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
@space_option("quick", f"Search space: {', '.join(SPACES)}.")
@resolution_option
@click.option(
    "--out", type=FileArg, default=None, help="LUT file [default: lut/DEVICE-SPACE.json]."
)
@click.option("--threads", type=int, default=_D.threads, show_default=True)
@click.option("--repeats", type=int, default=_D.repeats, show_default=True,
              help="Interleaved rounds per block.")  # fmt: skip
@click.option("--invokes", type=int, default=_D.invokes, show_default=True,
              help="Timed invokes per block per round.")  # fmt: skip
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="Profile only the first N blocks.")  # fmt: skip
@click.option(
    "--resume/--no-resume",
    default=True,
    show_default=True,
    help="Skip blocks already in --out (--no-resume re-measures; old file kept as .bak).",
)
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Conversion processes [default: 2].")  # fmt: skip
@click.option("--calibrate-nets", type=click.IntRange(min=0), default=CALIBRATION_NETS,
              show_default=True, help="Once the LUT holds every block of the space, fit its "
              "cache-context model (alpha) on this many random whole networks, timed end to "
              "end; once per LUT (0 skips).")  # fmt: skip
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Cache root, as $DONNA_CACHE_DIR: converted models in CACHE_DIR/tflite, the phone's "
    "benchmark_model in CACHE_DIR/benchmark_model [default: $DONNA_CACHE_DIR, else "
    "~/.cache/donnav2].",
)
@seed_option
@click.option("--list-devices", is_flag=True, help="List devices and exit.")
@benchmark_binary_option
@click.option(
    "--model",
    "models",
    multiple=True,
    help="Measure a whole model end to end instead of profiling blocks: FILE.tflite, an "
    "architecture .json, or a genome of --space (e.g. 0,3,5). Repeatable.",
)
@click.option("--adb-timeout", type=float, default=_A.io_timeout_s, show_default=True,
              help="Phones: seconds without any answer before the phone counts as frozen.")
@click.option("--run-timeout", type=float, default=_A.run_timeout_s, show_default=True,
              help="Phones: longest single benchmark_model run.")
@click.option("--min-secs", type=float, default=_A.min_secs, show_default=True,
              help="Phones: benchmark_model --min_secs/--warmup_min_secs.")  # fmt: skip
@click.option("--cores", "cores_text", default=None, metavar="LIST",
              help="Phones: pin to these cores (e.g. 4-7 or 6,7) instead of the profile's big "
              "cores; each must be online.")  # fmt: skip
@cooldown_option
@click.pass_context
def cli(
    ctx: click.Context,
    devices: tuple[str, ...],
    space_name: str,
    resolution: int | None,
    out: Path | None,
    threads: int,
    repeats: int,
    invokes: int,
    limit: int | None,
    resume: bool,
    workers: int | None,
    calibrate_nets: int,
    cache_dir: Path | None,
    seed: int,
    list_devices: bool,
    benchmark_binary: Path | None,
    models: tuple[str, ...],
    adb_timeout: float,
    run_timeout: float,
    min_secs: float,
    cores_text: str | None,
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
    from latency.convert import ConvertConfig, default_cache_dir
    from latency.jobs import ProfileJob, run_profile_job, time_models
    from nas.core.spaces import get_space

    try:
        measure = MeasureConfig(threads=threads, repeats=repeats, invokes=invokes, seed=seed)
        adb = AdbConfig(
            io_timeout_s=adb_timeout, run_timeout_s=run_timeout, cooldown_s=cooldown,
            min_secs=min_secs, binary=benchmark_binary,
            cores=None if cores_text is None else parse_cpu_list(cores_text, "--cores"),
            binary_dir=cache_dir / "benchmark_model" if cache_dir else None,
        )  # fmt: skip
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    models_dir = cache_dir / "tflite" if cache_dir else default_cache_dir()  # DONNA_CACHE_DIR's
    job = ProfileJob(
        space=get_space(space_name, resolution), devices=devices, measure=measure, adb=adb,
        convert=ConvertConfig(models_dir, seed=seed), out=out,
        resolution=resolution, workers=workers, limit=limit, resume=resume,
        calibrate_nets=calibrate_nets,
    )  # fmt: skip
    if models:
        _print_timings(*time_models(job, models), devices)
        return
    runs = run_profile_job(job, echo_err)
    if len(runs) == 1:
        echo_err(runs[0].summary)
        click.echo(str(runs[0].out))
        return
    for r in runs:
        echo_err(f"[{r.device}] " + (f"error: {r.error}" if r.error else r.summary))
        if r.error is None:
            click.echo(str(r.out))
    failed = [r for r in runs if r.error is not None]
    if failed:
        raise DonnaError(
            f"{len(failed)} of {len(runs)} devices failed ({', '.join(r.device for r in failed)})"
            "; the others' LUTs are complete. Run the same command again to resume"
        )


def _print_timings(lut: Path | None, rows: list, devices: tuple[str, ...]) -> None:  # type: ignore[type-arg]
    echo_err(f"device {devices[0]}; LUT {lut if lut is not None else '(none)'}")
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
@click.argument("lut_path", type=ExistingFile)
def show(lut_path: Path) -> None:
    """Summarise a LUT: provenance and entry statistics."""
    from lut.table import LatencyTable

    click.echo(LatencyTable.load(lut_path).summary())


@cli.command("export-csv")
@click.argument("lut_path", type=ExistingFile)
@click.argument("csv_path", type=FileArg)
def export_csv(lut_path: Path, csv_path: Path) -> None:
    """Export a LUT's entries to CSV (one row per block, numbers as columns)."""
    from lut.table import LatencyTable

    LatencyTable.load(lut_path).export_csv(csv_path)
    click.echo(str(csv_path))


@cli.command("compare")
@click.argument("lut_a", type=ExistingFile)
@click.argument("lut_b", type=ExistingFile)
@click.option("--csv", "csv_path", type=FileArg, default=None,
              help="Write the per-entry ratios here.")  # fmt: skip
def compare(lut_a: Path, lut_b: Path, csv_path: Path | None) -> None:
    """Compare two LUTs (e.g. two devices): per-entry ratio B/A over common blocks."""
    from lut.table import LatencyTable, compare_tables, write_comparison_csv
    from nas.core.files import check_writable

    if csv_path:
        check_writable(csv_path, "CSV file", fix="choose another --csv path")
    res = compare_tables(LatencyTable.load(lut_a), LatencyTable.load(lut_b))
    s = res["summary"]
    click.echo(f"{s['common']} common blocks ({s['only_a']} only in A, {s['only_b']} only in B)")
    if s["common"]:
        click.echo(
            f"ratio B/A: median {s['median_ratio']:.3f}, min {s['min_ratio']:.3f}, "
            f"max {s['max_ratio']:.3f}"
        )
    if csv_path:
        write_comparison_csv(res, csv_path)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(cli, argv)


entry = entry_point(cli)


if __name__ == "__main__":  # python -m nas.cli.latency_profile
    entry()
