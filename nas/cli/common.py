"""What both command lines share: the one error boundary and the option declarations.

Each option that more than one command takes is declared here once, with its default taken
from the library (the dataclass or constant that owns it), so ``--help`` of every command
shows the same default the library uses.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from nas.core.errors import DonnaError
from nas.core.settings import debug

F = TypeVar("F", bound=Callable[..., Any])

PathArg = click.Path(path_type=Path)
FileArg = click.Path(dir_okay=False, path_type=Path)
ExistingFile = click.Path(exists=True, dir_okay=False, path_type=Path)
TASK_CHOICES = ("classification", "denoising", "super_resolution")
CONTEXT = {"help_option_names": ["-h", "--help"]}


def run_cli(command: click.Command, argv: Sequence[str] | None) -> int:
    """Run a click command, turning donnav2 errors into one-line messages (``DONNA_DEBUG=1``:
    tracebacks) and Ctrl-C into a note that the work is resumable. The exit status:
    0 success, 1 a donnav2 error, 2 bad usage, 130 interrupted."""
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


def entry_point(command: click.Command) -> Callable[[], None]:
    """A console-script entry: run ``command`` on ``sys.argv`` and exit with its status."""

    def entry() -> None:
        sys.exit(run_cli(command, None))

    return entry


def echo_err(msg: str) -> None:
    """Progress and notes go to stderr; results to stdout."""
    click.echo(msg, err=True)


def _defaults() -> tuple[Any, Any]:
    from latency.android.config import AdbConfig
    from latency.host import MeasureConfig

    return MeasureConfig(), AdbConfig()


# ---- shared options ---------------------------------------------------------------------------


def seed_option(f: F) -> F:
    return click.option(
        "--seed",
        type=int,
        default=_defaults()[0].seed,
        show_default=True,
        help="Seed of every random choice: the same seed gives the same result.",
    )(f)


def device_option(f: F) -> F:
    return click.option(
        "--device",
        default="host",
        show_default=True,
        help="'host' (this machine's CPU), an adb serial, or 'adb' for the one attached phone.",
    )(f)


def space_option(default: str | None, help: str) -> Callable[[F], F]:
    return click.option(
        "--space", "space_name", default=default, show_default=default is not None, help=help
    )


def resolution_option(f: F) -> F:
    return click.option(
        "--resolution", type=int, default=None, help="Input resolution [default: the space's]."
    )(f)


def task_option(f: F) -> F:
    return click.option(
        "--task", type=click.Choice(TASK_CHOICES), default="classification", show_default=True
    )(f)


def data_option(f: F) -> F:
    return click.option(
        "--data",
        default=None,
        help="builtin (default), cifar10:PATH, fashion-mnist[:PATH], mnist, photos, "
        "cbsd68:PATH, set5:PATH, set14:PATH, imagefolder:PATH (ImageNet layout, streamed; see "
        "docs/data.md).",
    )(f)


def workers_option(f: F) -> F:
    from nas.bkd.config import DEFAULT_WORKERS

    return click.option(
        "--workers",
        type=click.IntRange(min=1),
        default=DEFAULT_WORKERS,
        show_default=True,
        help="BKD training processes (1 torch thread each).",
    )(f)


def budget_option(f: F) -> F:
    return click.option(
        "--budget-ms", type=float, default=None, help="Latency budget in ms (a constraint)."
    )(f)


def benchmark_binary_option(f: F) -> F:
    return click.option(
        "--benchmark-binary",
        type=FileArg,
        default=None,
        help="Phones: TFLite's benchmark_model (android_aarch64 prebuilt) [default: the cache "
        "folder, see docs/phone.md].",
    )(f)


def cooldown_option(f: F) -> F:
    return click.option(
        "--cooldown",
        type=float,
        default=_defaults()[1].cooldown_s,
        show_default=True,
        help="Phones: seconds of rest between models (besides the thermal gate).",
    )(f)


def train_device_options(f: F) -> F:
    """``--train-device``, ``--precision`` and ``--data-workers`` (where training runs)."""
    from nas.data.batches import DEFAULT_DATA_WORKERS
    from nas.training.device import DEFAULT_PRECISION, DEFAULT_TRAIN_DEVICE, PRECISIONS

    f = click.option(
        "--data-workers",
        type=click.IntRange(min=0),
        default=DEFAULT_DATA_WORKERS,
        show_default=True,
        help="DataLoader processes decoding streamed images (imagefolder:PATH); data held in "
        "memory ignores it.",
    )(f)
    f = click.option(
        "--precision",
        type=click.Choice(PRECISIONS),
        default=DEFAULT_PRECISION,
        show_default=True,
        help="32: float32; bf16: bfloat16 autocast (CUDA; float32 weights either way).",
    )(f)
    return click.option(
        "--train-device",
        default=DEFAULT_TRAIN_DEVICE,
        show_default=True,
        help="auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N.",
    )(f)
