"""``donna``: the NAS pipeline's command line (train-mothernet, bkd, filter, search, finetune,
run arrive with their issues). Thin: parsing here, work in the library."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from latency.cli import run_cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Hardware-aware NAS for vision models (DONNAv2)."""


@cli.command("space")
@click.argument("name", default="quick")
@click.option("--resolution", type=int, default=None, help="Input resolution.")
def space(name: str, resolution: int | None) -> None:
    """Describe a search space: slots, options per slot, size and distinct blocks."""
    from nas.spaces import get_space

    sp = get_space(name, resolution)
    click.echo(f"space {sp.name} @{sp.resolution}px, {sp.n_slots} slots")
    for i, (stage, size) in enumerate(zip(sp.stages, sp.slot_input_sizes())):
        click.echo(
            f"  slot {i}: {len(sp.options[i])} options, base out {stage.out_chs} ch, "
            f"stride {stage.stride}, input {size}x{size}"
        )
    click.echo(
        f"architectures: 10^{sp.log10_size():.2f}; distinct blocks for the LUT: "
        f"{len(sp.block_specs())}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli(cli, argv)


def entry() -> None:
    sys.exit(main())
