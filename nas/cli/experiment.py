"""``donna experiment``: the paper's claims checked on a finished ``donna run`` folder.

Thin: the work is in :mod:`nas.experiments`; every output goes to
``RUN_DIR/experiments/<name>/`` and the run's ``report.md`` links it.
"""

from __future__ import annotations

from pathlib import Path

import click

from nas.cli.common import CONTEXT, echo_err, train_device_options
from nas.experiments.defaults import COST_PICKS, FILTER_SWEEP_THRESHOLDS, FILTER_SWEEP_TOLERANCES

RunDir = click.Path(file_okay=False, path_type=Path)


def _floats(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers") from None
    if not values:
        raise click.BadParameter("give at least one number, e.g. 0,0.1,0.5")
    return values


device_check_option = click.option(
    "--device", default=None,
    help="Refuse the run unless it was measured on this device [default: the run's].",
)  # fmt: skip


@click.group("experiment", context_settings=CONTEXT)
def experiment_cli() -> None:
    """The paper's claims, checked on a finished run folder.

    \b
    donna experiment filter runs/classification   # the BKD filter: unfiltered vs filtered
    donna experiment cost runs/classification     # MACs vs LUT latency as the search's cost
    """


@experiment_cli.command("filter")
@click.argument("run_dir", type=RunDir)
@device_check_option
@click.option(
    "--thresholds", default=None, metavar="T1,T2,...",
    help="Filter thresholds to sweep [default: "
    + ",".join(f"{t:g}" for t in FILTER_SWEEP_THRESHOLDS) + "].",
)  # fmt: skip
@click.option(
    "--loss-tolerances", default=None, metavar="L1,L2,...",
    help="Loss-level widths to sweep [default: "
    + ",".join(f"{t:g}" for t in FILTER_SWEEP_TOLERANCES) + "].",
)  # fmt: skip
@click.option(
    "--finetune-epochs", type=float, default=None,
    help="Finetuning of each pick [default: the run's finetune_epochs].",
)  # fmt: skip
@train_device_options
def filter_cmd(
    run_dir: Path,
    device: str | None,
    thresholds: str | None,
    loss_tolerances: str | None,
    finetune_epochs: float | None,
    train_device: str,
    precision: str,
    data_workers: int,
) -> None:
    """Search the unfiltered and the filtered space with the run's seeds; sweep the filter."""
    from nas.experiments.filter_ablation import run_filter_experiment
    from nas.training.device import resolve_train_device

    dev = resolve_train_device(train_device, precision)
    res = run_filter_experiment(
        run_dir, device=device, thresholds=_floats(thresholds),
        loss_tolerances=_floats(loss_tolerances), finetune_epochs=finetune_epochs,
        train_device=dev, data_workers=data_workers, echo=echo_err,
    )  # fmt: skip
    click.echo(res.summary())


@experiment_cli.command("cost")
@click.argument("run_dir", type=RunDir)
@device_check_option
@click.option(
    "--picks", type=click.IntRange(min=2), default=COST_PICKS, show_default=True,
    help="Architectures measured from each front.",
)  # fmt: skip
def cost_cmd(run_dir: Path, device: str | None, picks: int) -> None:
    """The same search priced by MACs and by the LUT; both fronts' picks measured whole."""
    from nas.experiments.cost import run_cost_experiment

    res = run_cost_experiment(run_dir, device=device, picks=picks, echo=echo_err)
    click.echo(res.summary())
