"""``donna``: the NAS pipeline's command line.

Thin: parsing here, work in the library (:mod:`nas.pipeline` and the modules it names). Heavy
libraries are imported inside the commands, so ``donna --help`` is instant.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import click

from latency.cli import run_cli
from nas.pipeline import DEFAULT_WORKERS

PathArg = click.Path(path_type=Path)
TASK_CHOICES = ("classification", "denoising", "super_resolution")


def _echo(msg: str) -> None:
    click.echo(msg, err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    donna validate-surrogate --pareto runs/cls/search/pareto.json --k 6
    """


@cli.command("space")
@click.argument("name", default="quick")
@click.option("--resolution", type=int, default=None, help="Input resolution.")
def space(name: str, resolution: int | None) -> None:
    """Describe a search space: slots, options per slot, size and distinct blocks."""
    from nas.core.spaces import get_space

    sp = get_space(name, resolution)
    click.echo(f"space {sp.name} ({sp.task}) @{sp.resolution}px, {sp.n_slots} slots")
    for i, (stage, size) in enumerate(zip(sp.stages, sp.slot_input_sizes())):
        click.echo(
            f"  slot {i}: {len(sp.options[i])} options, base out {stage.out_chs} ch, "
            f"stride {stage.stride}, input {size}x{size}"
        )
    click.echo(
        f"architectures: 10^{sp.log10_size():.2f}; distinct blocks for the LUT: "
        f"{len(sp.block_specs())}"
    )


def _data_option(f):  # type: ignore[no-untyped-def]
    return click.option(
        "--data",
        default=None,
        help="builtin (default), cifar10:PATH, fashion-mnist[:PATH], mnist, photos, "
        "cbsd68:PATH, set5:PATH, set14:PATH (see docs/data.md).",
    )(f)


@cli.command("train-mothernet")
@click.option(
    "--task", type=click.Choice(TASK_CHOICES), default="classification", show_default=True
)
@_data_option
@click.option(
    "--space",
    "space_name",
    default=None,
    help="Search space the mothernet belongs to [default: the task's quick space].",
)
@click.option("--resolution", type=int, default=None)
@click.option("--epochs", type=float, default=None, help="[default: nas.mothernet.TrainConfig]")
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--train-limit", type=int, default=None, help="Use at most N training images.")
@click.option("--val-limit", type=int, default=None)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=PathArg, required=True, help="Checkpoint to write (.pt).")
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
    seed: int,
    out: Path,
) -> None:
    """Train a mothernet (the teacher) on a task and save it with its config."""
    import torch

    from nas.core.spaces import TASK_SPACES, get_space
    from nas.data import load_task_data
    from nas.mothernet import MothernetConfig, build_mothernet, save_checkpoint, train_mothernet

    sp = get_space(space_name or TASK_SPACES[task], resolution)
    if sp.task != task:
        raise click.BadParameter(f"space {sp.name!r} is for {sp.task}, not {task}")
    d = load_task_data(
        task,
        data,
        resolution=sp.resolution,
        seed=seed,
        train_limit=train_limit,
        val_limit=val_limit,
    )
    torch.manual_seed(seed)
    cfg = MothernetConfig.default(sp, seed=seed)
    net = build_mothernet(cfg)
    _echo(f"mothernet: {', '.join(o.label() for o in cfg.choices)}; data: {d.source}")
    kw = {
        k: v
        for k, v in (("epochs", epochs), ("batch_size", batch_size), ("lr", lr))
        if v is not None
    }
    metrics = train_mothernet(net, d, seed=seed, **kw)
    save_checkpoint(out, net, cfg, metrics, d.describe())
    click.echo(f"{out}: {metrics.get('metric')} = {metrics.get('value')}")


@cli.command("bkd")
@click.option("--mothernet", type=PathArg, required=True, help="Checkpoint from train-mothernet.")
@click.option(
    "--space", "space_name", default=None, help="Search space [default: the mothernet's own]."
)
@_data_option
@click.option("--out", type=PathArg, required=True, help="BKD library JSON (resumable).")
@click.option("--epochs", type=float, default=None, help="[default: nas.bkd.BkdConfig, 1]")
@click.option("--train-samples", type=int, default=None)
@click.option("--val-samples", type=int, default=None)
@click.option(
    "--workers", type=int, default=1, show_default=True, help="Parallel training processes."
)
@click.option("--limit", type=int, default=None, help="Train at most N options in this run.")
@click.option("--seed", type=int, default=0, show_default=True)
def bkd_cmd(
    mothernet: Path,
    space_name: str | None,
    data: str | None,
    out: Path,
    epochs: float | None,
    train_samples: int | None,
    val_samples: int | None,
    workers: int,
    limit: int | None,
    seed: int,
) -> None:
    """Blockwise knowledge distillation: train every option of every slot to mimic the
    mothernet's slot; record its normalised MSE in a library."""
    from nas.bkd import BkdConfig, library_summary, run_bkd
    from nas.core.spaces import get_space
    from nas.data import load_task_data
    from nas.mothernet import load_checkpoint
    from nas.pipeline import checkpoint_data

    _, mcfg, meta = load_checkpoint(mothernet)
    sp = get_space(space_name, mcfg.space.resolution) if space_name else mcfg.space
    if data is None:  # the mothernet's own training data, as recorded in its checkpoint
        d = checkpoint_data(meta, sp.task, sp.resolution)
    else:
        d = load_task_data(sp.task, data, resolution=sp.resolution, seed=seed)
    kw = {
        k: v
        for k, v in (
            ("epochs", epochs),
            ("train_samples", train_samples),
            ("val_samples", val_samples),
        )
        if v is not None
    }
    cfg = BkdConfig(seed=seed, workers=workers, **kw)
    lib = run_bkd(mothernet, sp, d, out, cfg, limit=limit)
    click.echo(f"{out}: {len(lib)} options; {len(lib.missing(sp))} still missing")
    for r in library_summary(lib):
        click.echo(
            f"  slot {r['slot']}: {r['options']} options, best {r['best'][0]} "
            f"(nMSE {r['best'][1]:.4f}), worst {r['worst'][0]} (nMSE {r['worst'][1]:.4f}), "
            f"{r['mean_seconds']:.1f} s/option"
        )


@cli.command("filter")
@click.option("--bkd", "bkd_path", type=PathArg, required=True, help="BKD library JSON.")
@click.option(
    "--lut",
    type=PathArg,
    default=None,
    help="Latency LUT for the costs [default: none, FLOPs are used].",
)
@click.option(
    "--mothernet",
    type=PathArg,
    default=None,
    help="Check the library was made from this mothernet.",
)
@click.option(
    "--threshold",
    type=float,
    default=None,
    help="Drop options costing more than (1+threshold) x the cheapest of their "
    "loss level [default: nas.filter.DEFAULT_THRESHOLD].",
)
@click.option("--out", type=PathArg, required=True, help="Filtered space JSON.")
def filter_cmd(
    bkd_path: Path, lut: Path | None, mothernet: Path | None, threshold: float | None, out: Path
) -> None:
    """Drop options whose cost is high for their BKD loss level."""
    from lut.table import LatencyTable
    from nas.core.files import file_sha256
    from nas.filter import FilterConfig, filter_space
    from nas.library import BkdLibrary

    lib = BkdLibrary.load(bkd_path)
    if mothernet is not None:
        lib.check_mothernet(file_sha256(mothernet))
    table = LatencyTable.load(lut) if lut else None
    cfg = FilterConfig(threshold=threshold) if threshold is not None else FilterConfig()
    report = filter_space(lib.space, lib, table, cfg)
    report.save(out)
    click.echo(report.summary())


@cli.command("search")
@click.option(
    "--space",
    "space_path",
    type=PathArg,
    required=True,
    help="Filtered space JSON (from `donna filter`).",
)
@click.option("--bkd", "bkd_path", type=PathArg, required=True, help="BKD library JSON.")
@click.option("--lut", type=PathArg, required=True, help="Latency LUT of the target device.")
@click.option("--out", type=PathArg, required=True, help="Output folder.")
@click.option(
    "--mode",
    type=click.Choice(("lut", "measure", "predict")),
    default="lut",
    show_default=True,
    help="Latency of blocks missing from the LUT: error, measure "
    "on --device, or predict from the LUT.",
)
@click.option("--device", default="host", show_default=True, help="Device for --mode measure.")
@click.option("--budget-ms", type=float, default=None, help="Latency budget (constraint).")
@click.option("--pop", type=int, default=None, help="Population [default: 100].")
@click.option("--generations", type=int, default=None, help="[default: 50]")
@click.option(
    "--mothernet",
    type=PathArg,
    default=None,
    help="Mark this mothernet on the plot and record it for finetuning.",
)
@click.option("--seed", type=int, default=0, show_default=True)
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
    from latency.estimator import LatencyEstimator
    from lut.table import LatencyTable
    from nas.filter import load_filtered_space
    from nas.library import BkdLibrary
    from nas.search import SearchConfig, run_search

    lib = BkdLibrary.load(bkd_path)
    sp = load_filtered_space(space_path, lib)
    table = LatencyTable.load(lut)
    dev = None
    if mode == "measure":
        from latency.devices import get_device
        from latency.host import MeasureConfig

        dev = get_device(device, MeasureConfig(seed=seed))
    est = LatencyEstimator(table, mode, device=dev, seed=seed)
    kw = {k: v for k, v in (("pop_size", pop), ("generations", generations)) if v is not None}
    cfg = SearchConfig(seed=seed, budget_ms=budget_ms, **kw)
    point = None
    recorded = lib.provenance.get("mothernet")
    mpath = mothernet or (Path(recorded) if recorded else None)
    if mpath is not None and mpath.exists():
        from nas.mothernet import load_checkpoint
        from nas.pipeline import mothernet_point

        _, mcfg, _ = load_checkpoint(mpath, sp)
        point = mothernet_point(sp, lib, mcfg.choices, est.estimate)
    result = run_search(sp, lib, est, cfg, point)
    if mpath is not None:
        result.provenance["mothernet"] = str(mpath)
    result.save(out)
    click.echo(result.summary())
    click.echo(f"wrote {out / 'pareto.json'} and {out / 'pareto.png'}")


@cli.command("finetune")
@click.option("--pick", required=True, help="PARETO.json:INDEX, e.g. runs/cls/search/pareto.json:3")
@click.option("--out", type=PathArg, required=True, help="Output folder.")
@click.option(
    "--mothernet", type=PathArg, default=None, help="[default: the one recorded in the Pareto file]"
)
@click.option(
    "--bkd",
    "bkd_path",
    type=PathArg,
    default=None,
    help="[default: the library recorded in the Pareto file]",
)
@click.option("--epochs", type=float, default=None, help="[default: nas.finetune.FinetuneConfig]")
@click.option("--seed", type=int, default=0, show_default=True)
def finetune_cmd(
    pick: str,
    out: Path,
    mothernet: Path | None,
    bkd_path: Path | None,
    epochs: float | None,
    seed: int,
) -> None:
    """Finetune one architecture of the Pareto front with distillation from the mothernet."""
    from nas.pipeline import finetune_pick

    path, _, idx = pick.rpartition(":")
    if not path or not idx.lstrip("-").isdigit():
        raise click.BadParameter(f"expected PARETO.json:INDEX, got {pick!r}", param_hint="--pick")
    row = finetune_pick(
        Path(path),
        int(idx),
        out,
        mothernet=mothernet,
        library=bkd_path,
        epochs=epochs,
        seed=seed,
        echo=_echo,
    )
    click.echo(json.dumps(row, indent=1))


@cli.command("run")
@click.option(
    "--task", type=click.Choice(TASK_CHOICES), default="classification", show_default=True
)
@click.option(
    "--device",
    default="host",
    show_default=True,
    help="'host' or an adb serial: where latencies are measured.",
)
@_data_option
@click.option("--out", type=PathArg, default=None, help="Run folder [default: runs/TASK].")
@click.option("--space", "space_name", default=None, help="[default: the task's quick space]")
@click.option("--resolution", type=int, default=None)
@click.option(
    "--lut",
    type=PathArg,
    default=None,
    help="LUT to use or complete [default: lut/DEVICE-SPACE.json].",
)
@click.option(
    "--mothernet",
    type=PathArg,
    default=None,
    help="Your own trained mothernet checkpoint (skips training).",
)
@click.option("--budget-ms", type=float, default=None, help="Latency budget (constraint).")
@click.option(
    "--preset",
    type=click.Choice(("quick", "full")),
    default="quick",
    show_default=True,
    help="Sizes of every stage (quick: ≤10 min on 2 cores).",
)
@click.option(
    "--workers", type=int, default=DEFAULT_WORKERS, show_default=True, help="BKD processes."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--set",
    "settings",
    multiple=True,
    metavar="KEY=VALUE",
    help="Change one size of the preset, e.g. --set finetune_epochs=4 (keys: "
    "train_limit, val_limit, mothernet_epochs, bkd_epochs, bkd_train_samples, "
    "bkd_val_samples, finetune_epochs, finals, hil_models, pop_size, generations).",
)
@click.option(
    "--benchmark-binary",
    type=PathArg,
    default=None,
    help="Phones: TFLite's benchmark_model for android_aarch64 [default: the cache "
    "folder, see docs/phone.md].",
)
@click.option(
    "--cooldown",
    type=float,
    default=None,
    help="Phones: seconds of rest between models [default: 5].",
)
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
    seed: int,
    settings: tuple[str, ...],
    benchmark_binary: Path | None,
    cooldown: float | None,
    restart: bool,
) -> None:
    """The whole pipeline: mothernet -> LUT -> BKD -> filter -> search -> hardware check ->
    finetune -> report, resumable stage by stage."""
    from nas.pipeline import Pipeline, RunConfig, parse_overrides

    cfg = RunConfig(
        task=task,
        device=device,
        data=data,
        out=out,
        space=space_name,
        resolution=resolution,
        lut=lut,
        mothernet=mothernet,
        budget_ms=budget_ms,
        seed=seed,
        preset=preset,
        workers=workers,
        overrides=parse_overrides(settings),
        benchmark_binary=benchmark_binary,
        cooldown_s=cooldown,
    )
    Pipeline(cfg, echo=_echo).run(restart=restart)
    click.echo(f"done: {cfg.folder / 'report.md'}")


@cli.command("validate-surrogate")
@click.option("--pareto", type=PathArg, required=True, help="pareto.json from `donna search`.")
@click.option(
    "--k",
    "k",
    type=int,
    default=6,
    show_default=True,
    help="Architectures spread over the front to finetune.",
)
@click.option(
    "--epochs", type=float, default=1.0, show_default=True, help="Brief finetuning of each."
)
@click.option(
    "--predictor-archs",
    type=int,
    default=40,
    show_default=True,
    help="Training-set size assumed for a DONNA predictor's compute.",
)
@click.option(
    "--out", type=PathArg, default=None, help="Report JSON [default: next to the Pareto file]."
)
@click.option("--seed", type=int, default=0, show_default=True)
def validate_cmd(
    pareto: Path, k: int, epochs: float, predictor_archs: int, out: Path | None, seed: int
) -> None:
    """Kendall τ between summed BKD MSE and the finetuned metric, vs a DONNA-style predictor."""
    from nas.pipeline import validate_surrogate

    res = validate_surrogate(pareto, k, epochs, predictor_archs, seed, echo=_echo)
    target = out or pareto.with_name("surrogate_validation.json")
    target.write_text(json.dumps(res.to_dict(), indent=1))
    click.echo(res.summary())
    click.echo(f"wrote {target}")


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(cli, argv)


def entry() -> None:
    sys.exit(main())
