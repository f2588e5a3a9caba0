"""``donna``: the NAS pipeline's command line.

Thin: options here, work in the library (:mod:`nas.pipeline` and the modules it names). Heavy
libraries are imported inside the commands, so ``donna --help`` is instant.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import click

from nas.cli.common import (
    CONTEXT,
    FileArg,
    PathArg,
    benchmark_binary_option,
    budget_option,
    cooldown_option,
    data_option,
    device_option,
    echo_err,
    entry_point,
    resolution_option,
    run_cli,
    seed_option,
    space_option,
    task_option,
    train_device_options,
    workers_option,
)
from nas.cli.experiment import experiment_cli
from nas.pipeline.surrogate import DEFAULT_ARCHS, DEFAULT_EPOCHS, DEFAULT_REPEATS


@click.group(context_settings=CONTEXT)
def cli() -> None:
    """Hardware-aware NAS for vision models (DONNAv2).

    \b
    donna run --task classification --device host        # the whole pipeline
    donna train-mothernet --task classification --out runs/cls/mothernet.pt
    donna bkd --mothernet runs/cls/mothernet.pt --space quick --out runs/cls/bkd.json
    donna filter --bkd runs/cls/bkd.json --lut lut/host-quick.json --out runs/cls/space.json
    donna search --space runs/cls/space.json --bkd runs/cls/bkd.json \\
                 --lut lut/host-quick.json --out runs/cls/search
    donna finetune --pick runs/cls/search/pareto.json:3 --out runs/cls/final
    donna validate-surrogate --pareto runs/cls/search/pareto.json --k 16
    donna experiment filter runs/cls       # the paper's claims on a finished run
    """


cli.add_command(experiment_cli)


@cli.command("space")
@click.argument("name", default="quick")
@resolution_option
def space_cmd(name: str, resolution: int | None) -> None:
    """Describe a search space: slots, options per slot, size and distinct blocks."""
    from nas.core.spaces import get_space

    click.echo(get_space(name, resolution).describe())


@cli.command("train-mothernet")
@task_option
@data_option
@space_option(None, "Search space the mothernet belongs to [default: the task's quick space].")
@resolution_option
@click.option("--epochs", type=float, default=None, help="[default: TrainConfig's, 10]")
@click.option("--batch-size", type=int, default=None, help="[default: TrainConfig's, 64]")
@click.option("--lr", type=float, default=None, help="[default: TrainConfig's, 2e-3]")
@click.option("--train-limit", type=int, default=None, help="Use at most N training images.")
@click.option("--val-limit", type=int, default=None, help="Use at most N validation images.")
@train_device_options
@seed_option
@click.option("--out", type=FileArg, required=True, help="Checkpoint to write (.pt).")
def train_mothernet_cmd(
    task: str,
    data: str | None,
    space_name: str | None,
    resolution: int | None,
    epochs: float | None,
    batch_size: int | None,
    lr: float | None,
    train_limit: int | None,
    val_limit: int | None,
    train_device: str,
    precision: str,
    data_workers: int,
    seed: int,
    out: Path,
) -> None:
    """Train a mothernet (the teacher) on a task and save it with its config."""
    from nas.core.files import check_writable
    from nas.core.spaces import task_space
    from nas.data import load_task_data
    from nas.pipeline.steps import train_mothernet_checkpoint
    from nas.training.device import resolve_train_device

    check_writable(out, "mothernet checkpoint")  # before the data is loaded
    dev = resolve_train_device(train_device, precision)
    sp = task_space(task, space_name, resolution)
    d = load_task_data(
        task, data, resolution=sp.resolution, seed=seed, train_limit=train_limit,
        val_limit=val_limit,
    )  # fmt: skip
    metrics = train_mothernet_checkpoint(
        sp, d, out, seed=seed, echo=echo_err, epochs=epochs, batch_size=batch_size, lr=lr,
        device=dev, data_workers=data_workers,
    )  # fmt: skip
    click.echo(f"{out}: {metrics.get('metric')} = {metrics.get('value')}")


@cli.command("import-mothernet")
@click.argument("spec", metavar="LIBRARY:MODEL:WEIGHTS")
@click.option("--out", type=FileArg, required=True, help="Checkpoint to write (.pt).")
@resolution_option
def import_mothernet_cmd(spec: str, out: Path, resolution: int | None) -> None:
    """Import torchvision's or timm's ImageNet model with its weights file as a mothernet
    (nothing is downloaded): every weight copied into our blocks, the logits checked equal.

    \b
    LIBRARY:MODEL:WEIGHTS is one of
      torchvision:efficientnet_b0:PATH   torchvision:mobilenet_v2:PATH
      timm:efficientnet_b0:PATH          timm:mobilenetv2_100:PATH
    torchvision keeps its weights in ~/.cache/torch/hub/checkpoints/ (e.g.
    efficientnet_b0_rwightman-7f5810bc.pth), timm in ~/.cache/huggingface/hub/
    (models--timm--efficientnet_b0.ra_in1k/snapshots/*/model.safetensors).
    """
    from nas.pipeline.steps import import_mothernet_checkpoint
    from nas.training.imported import import_summary

    report = import_mothernet_checkpoint(spec, out, resolution)
    click.echo(f"{out}: {import_summary(report)}")


@cli.command("bkd")
@click.option(
    "--mothernet", type=FileArg, required=True,
    help="Checkpoint from train-mothernet, or LIBRARY:MODEL:WEIGHTS (see import-mothernet; "
    "imported once next to --out).",
)  # fmt: skip
@space_option(None, "Search space [default: the mothernet's own].")
@data_option
@click.option("--out", type=FileArg, required=True, help="BKD library JSON (resumable).")
@click.option("--epochs", type=float, default=None, help="[default: BkdConfig's, 1]")
@click.option("--train-samples", type=int, default=None, help="[default: BkdConfig's]")
@click.option("--val-samples", type=int, default=None, help="[default: BkdConfig's]")
@workers_option
@train_device_options
@click.option("--limit", type=int, default=None, help="Train at most N options in this run.")
@seed_option
def bkd_cmd(
    mothernet: Path,
    space_name: str | None,
    data: str | None,
    out: Path,
    epochs: float | None,
    train_samples: int | None,
    val_samples: int | None,
    workers: int,
    train_device: str,
    precision: str,
    data_workers: int,
    limit: int | None,
    seed: int,
) -> None:
    """Blockwise knowledge distillation: train every option of every slot to mimic the
    mothernet's slot; record its normalised MSE in a library."""
    from nas.bkd.run import library_summary
    from nas.pipeline.steps import bkd_from_checkpoint
    from nas.training.device import resolve_train_device

    dev = resolve_train_device(train_device, precision)
    sp, lib = bkd_from_checkpoint(
        mothernet, out, space_name=space_name, data=data, seed=seed, limit=limit,
        epochs=epochs, train_samples=train_samples, val_samples=val_samples, workers=workers,
        device=dev, data_workers=data_workers,
    )  # fmt: skip
    click.echo(f"{out}: {len(lib)} options; {len(lib.missing(sp))} still missing")
    for r in library_summary(lib):
        click.echo(
            f"  slot {r['slot']}: {r['options']} options, best {r['best'][0]} "
            f"(nMSE {r['best'][1]:.4f}), worst {r['worst'][0]} (nMSE {r['worst'][1]:.4f}), "
            f"{r['mean_seconds']:.1f} s/option"
        )


@cli.command("filter")
@click.option("--bkd", "bkd_path", type=FileArg, required=True, help="BKD library JSON.")
@click.option(
    "--lut", type=FileArg, default=None, help="Latency LUT for the costs [default: MACs]."
)
@click.option("--mothernet", type=FileArg, default=None, help="Check the library was made from it.")
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Drop options costing more than (1+threshold) x the cheapest of their loss level "
    "[default: FilterConfig's, 0.2].",
)
@click.option(
    "--keep-pareto", type=click.IntRange(min=2), default=None, metavar="K",
    help="Beyond the paper: keep only K of each slot's Pareto options, spread by cost (10 "
    "shrank the quick space 13.8x at 0.40% hypervolume lost; `donna experiment filter` "
    "measures it on your run) [default: off].",
)  # fmt: skip
@click.option("--out", type=FileArg, required=True, help="Filtered space JSON.")
def filter_cmd(
    bkd_path: Path,
    lut: Path | None,
    mothernet: Path | None,
    threshold: float | None,
    keep_pareto: int | None,
    out: Path,
) -> None:
    """Drop options whose cost is high for their BKD loss level."""
    from nas.pipeline.steps import filter_library

    report = filter_library(
        bkd_path, out, lut=lut, mothernet=mothernet, threshold=threshold, keep_pareto=keep_pareto
    )
    click.echo(report.summary())


@cli.command("search")
@click.option("--space", "space_path", type=FileArg, required=True, help="Filtered space JSON.")
@click.option("--bkd", "bkd_path", type=FileArg, required=True, help="BKD library JSON.")
@click.option("--lut", type=FileArg, required=True, help="Latency LUT of the target device.")
@click.option("--out", type=PathArg, required=True, help="Output folder.")
@click.option(
    "--mode",
    type=click.Choice(("lut", "measure", "predict")),
    default="lut",
    show_default=True,
    help="Blocks missing from the LUT: an error, measured on --device, or predicted.",
)
@device_option
@budget_option
@click.option("--pop", type=int, default=None, help="Population [default: SearchConfig's, 100].")
@click.option("--generations", type=int, default=None, help="[default: SearchConfig's, 50]")
@click.option(
    "--mothernet", type=FileArg, default=None, help="Mark it on the plot, record it for finetune."
)
@seed_option
def search_cmd(
    space_path: Path,
    bkd_path: Path,
    lut: Path,
    out: Path,
    mode: str,
    device: str,
    budget_ms: float | None,
    pop: int | None,
    generations: int | None,
    mothernet: Path | None,
    seed: int,
) -> None:
    """NSGA-II over the filtered space: summed BKD MSE vs estimated latency."""
    import contextlib

    from latency.estimator import build_estimator
    from nas.core.files import check_writable
    from nas.pipeline.steps import search_front

    check_writable(out, "search output folder", folder=True)  # before a device is opened
    with contextlib.ExitStack() as stack:
        dev = None
        if mode == "measure":
            from latency.devices import open_device
            from latency.host import MeasureConfig

            dev = stack.enter_context(open_device(device, MeasureConfig(seed=seed)))
        result = search_front(
            space_path, bkd_path, build_estimator(lut, mode, dev, seed=seed), out,
            mothernet=mothernet, pop_size=pop, generations=generations, seed=seed,
            budget_ms=budget_ms,
        )  # fmt: skip
    click.echo(result.summary())
    click.echo(f"wrote {out / 'pareto.json'} and {out / 'pareto.png'}")


@cli.command("finetune")
@click.option("--pick", required=True, help="PARETO.json:INDEX, e.g. runs/cls/search/pareto.json:3")
@click.option("--out", type=PathArg, required=True, help="Output folder.")
@click.option(
    "--mothernet", type=FileArg, default=None, help="[default: the one the Pareto file records]"
)
@click.option(
    "--bkd", "bkd_path", type=FileArg, default=None,
    help="[default: the library the Pareto file records]",
)  # fmt: skip
@click.option("--epochs", type=float, default=None, help="[default: FinetuneConfig's, 2]")
@data_option
@train_device_options
@seed_option
def finetune_cmd(
    pick: str,
    out: Path,
    mothernet: Path | None,
    bkd_path: Path | None,
    epochs: float | None,
    data: str | None,
    train_device: str,
    precision: str,
    data_workers: int,
    seed: int,
) -> None:
    """Finetune one architecture of the Pareto front with distillation from the mothernet."""
    from nas.pipeline.picks import finetune_pick
    from nas.search.result import parse_pick
    from nas.training.device import resolve_train_device

    path, index = parse_pick(pick)
    dev = resolve_train_device(train_device, precision)
    row = finetune_pick(
        path, index, out, mothernet=mothernet, library=bkd_path, epochs=epochs, seed=seed,
        echo=echo_err, device=dev, data_workers=data_workers, data=data,
    )  # fmt: skip
    click.echo(json.dumps(row, indent=1))


@cli.command("run")
@task_option
@device_option
@data_option
@click.option("--out", type=PathArg, default=None, help="Run folder [default: runs/TASK].")
@space_option(None, "[default: the task's quick space]")
@resolution_option
@click.option(
    "--lut",
    type=FileArg,
    default=None,
    help="LUT to use or complete [default: lut/DEVICE-SPACE.json].",
)
@click.option(
    "--mothernet", type=FileArg, default=None,
    help="Your own trained mothernet (skips training), or LIBRARY:MODEL:WEIGHTS (see "
    "import-mothernet; imported into the run folder, its space the run's).",
)  # fmt: skip
@budget_option
@click.option(
    "--preset",
    type=click.Choice(("quick", "full")),
    default="quick",
    show_default=True,
    help="Sizes of every stage (quick: ≤10 min on 2 cores).",
)
@workers_option
@train_device_options
@seed_option
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change one size of the preset, e.g. --set finetune_epochs=4 (keys: "
    "train_limit, val_limit, mothernet_epochs, bkd_epochs, bkd_train_samples, "
    "bkd_val_samples, finetune_epochs, finals, hil_models, pop_size, generations).",
)
@benchmark_binary_option
@cooldown_option
@click.option("--restart", is_flag=True, help="Forget finished stages of this folder.")
def run_cmd(
    task: str,
    device: str,
    data: str | None,
    out: Path | None,
    space_name: str | None,
    resolution: int | None,
    lut: Path | None,
    mothernet: Path | None,
    budget_ms: float | None,
    preset: str,
    workers: int,
    train_device: str,
    precision: str,
    data_workers: int,
    seed: int,
    settings: tuple[str, ...],
    benchmark_binary: Path | None,
    cooldown: float,
    restart: bool,
) -> None:
    """The whole pipeline: mothernet -> LUT -> BKD -> filter -> search -> hardware check ->
    finetune -> report, resumable stage by stage."""
    from nas.pipeline.config import RunConfig, parse_overrides
    from nas.pipeline.run import run_pipeline

    cfg = RunConfig(
        task=task, device=device, data=data, out=out, space=space_name, resolution=resolution,
        lut=lut, mothernet=mothernet, budget_ms=budget_ms, seed=seed, preset=preset,
        workers=workers, overrides=parse_overrides(settings), benchmark_binary=benchmark_binary,
        cooldown_s=cooldown, train_device=train_device, precision=precision,
        data_workers=data_workers,
    )  # fmt: skip
    cfg.check_outputs()
    cfg.train_device_resolved()  # a GPU asked for and absent: refused before any stage
    run_pipeline(cfg, echo=echo_err, restart=restart)
    click.echo(f"done: {cfg.folder / 'report.md'}")


@cli.command("validate-surrogate")
@click.option("--pareto", type=FileArg, required=True, help="pareto.json from `donna search`.")
@click.option(
    "--k", "k", type=click.IntRange(min=3), default=DEFAULT_ARCHS, show_default=True,
    help="Architectures to finetune: half spread over the front, half at random from the space.",
)  # fmt: skip
@click.option(
    "--epochs", type=float, default=DEFAULT_EPOCHS, show_default=True,
    help="Finetuning of each (docs/nas.md says why this default).",
)  # fmt: skip
@click.option(
    "--repeats", type=click.IntRange(min=0), default=DEFAULT_REPEATS, show_default=True,
    help="Architectures finetuned again with seed + 1, to measure seed noise.",
)  # fmt: skip
@click.option(
    "--out", type=FileArg, default=None, help="Report JSON [default: next to the Pareto file]."
)
@data_option
@train_device_options
@seed_option
def validate_cmd(
    pareto: Path,
    k: int,
    epochs: float,
    repeats: int,
    out: Path | None,
    data: str | None,
    train_device: str,
    precision: str,
    data_workers: int,
    seed: int,
) -> None:
    """Kendall τ (bootstrap 95%) of summed BKD MSE against the finetuned metric, and the
    learning curve of a DONNA-style predictor: the compute it needs to match the surrogate."""
    from nas.core.files import check_writable
    from nas.pipeline.surrogate import validate_surrogate, write_validation
    from nas.training.device import resolve_train_device

    target = out or pareto.with_name("surrogate_validation.json")
    check_writable(target, "surrogate report")
    dev = resolve_train_device(train_device, precision)
    res = validate_surrogate(
        pareto, k, epochs, seed, repeats=repeats, echo=echo_err, device=dev,
        data_workers=data_workers, data=data,
    )  # fmt: skip
    paths = write_validation(res, target)
    click.echo(res.summary())
    click.echo(f"wrote {paths[0]} and {paths[1]}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(cli, argv)


entry = entry_point(cli)


if __name__ == "__main__":  # python -m nas.cli.donna
    entry()
