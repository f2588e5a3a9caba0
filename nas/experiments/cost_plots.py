"""What the cost experiment (:mod:`nas.experiments.cost`) shows a reader: ``fronts.png`` (both
fronts' measured models in measured latency, matched pairs joined), ``cost_vs_measured.png``
(MACs and LUT latency against the measured latency) and ``summary.md``. matplotlib is imported
when plotting."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nas.core.plots import finish_axes, pyplot
from nas.experiments.cost import COST_LABEL, CostExperiment, CostModel, MatchedPair
from nas.experiments.defaults import COST_PICKS

FRONT_STYLE = {
    "macs": ("tab:orange", "s", "FLOPs-chosen: MACs front"),
    "lut": ("tab:blue", "o", "latency-chosen: LUT front"),
}


def _front_models(exp: CostExperiment, cost: str) -> list[CostModel]:
    """The measured models of one front, in front order (by that front's own cost)."""
    at: dict[int, CostModel] = {}
    for m in exp.models:
        for r in m.roles:
            if r.startswith(f"{cost}-front["):
                at[int(r[len(cost) + 7 : -1])] = m
    return [at[i] for i in sorted(at)]


def _mothernet(exp: CostExperiment) -> CostModel | None:
    return next((m for m in exp.models if "mothernet" in m.roles), None)


def plot_fronts(exp: CostExperiment, path: Path) -> Path:
    """Both fronts' measured models at (measured ms, surrogate), each a connected series in
    its front's order; matched pairs joined by thin lines; the mothernet as a star."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.6), dpi=120)
    try:
        for p in exp.pairs:
            a, b = p.flops_chosen, p.latency_chosen
            if a.surrogate is not None and b.surrogate is not None:
                ax.plot(
                    [a.measured_ms, b.measured_ms], [a.surrogate, b.surrogate],
                    c="0.35", lw=0.9, ls="--", zorder=2,
                )  # fmt: skip
        for cost, (color, marker, label) in FRONT_STYLE.items():
            ms = [m for m in _front_models(exp, cost) if m.surrogate is not None]
            ax.plot(
                [m.measured_ms for m in ms], [m.surrogate for m in ms], marker=marker,
                ls="-", c=color, ms=5, lw=1.2, label=f"{label} ({len(ms)} measured)", zorder=3,
            )  # fmt: skip
        mother = _mothernet(exp)
        if mother is not None and mother.surrogate is not None:
            ax.scatter(
                [mother.measured_ms], [mother.surrogate], marker="*", s=220, c="tab:red",
                edgecolors="k", zorder=5, label="mothernet",
            )  # fmt: skip
        ax.plot([], [], c="0.35", lw=0.9, ls="--", label="matched pair (equal or lower loss)")
        ax.set_xlabel(f"measured latency on {exp.settings['device']} (ms)")
        ax.set_ylabel("surrogate: summed BKD normalised MSE")
        ax.set_title(
            "the same search priced by MACs and by the LUT, picks measured\n"
            f"FLOPs-chosen / latency-chosen: median {exp.median_ratio:.2f}x; latency-chosen "
            f"faster in {exp.faster_count}/{len(exp.pairs)}",
            fontsize=9,
        )
        finish_axes(fig, ax, path)
    finally:
        plt.close(fig)
    return Path(path)


def _color(m: CostModel) -> str:
    if "mothernet" in m.roles:
        return "tab:red"
    fronts = {r.split("-front[")[0] for r in m.roles}
    if fronts == {"macs", "lut"}:
        return "tab:purple"
    return FRONT_STYLE["macs" if "macs" in fronts else "lut"][0]


def plot_cost_vs_measured(exp: CostExperiment, path: Path) -> Path:
    """MMACs vs measured ms and LUT ms vs measured ms of every measured model, τ in titles."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 4.2), dpi=120)
    try:
        measured = [m.measured_ms for m in exp.models]
        colors = [_color(m) for m in exp.models]
        for ax, field, tau, xlabel in (
            (axes[0], "mmacs", exp.tau_macs, "MACs (millions)"),
            (axes[1], "lut_ms", exp.tau_lut, "LUT latency (ms)"),
        ):
            xs = [getattr(m, field) for m in exp.models]
            ax.scatter(xs, measured, c=colors, s=30, edgecolors="k", lw=0.4, zorder=3)
            if field == "lut_ms":
                lo, hi = min(xs + measured) * 0.9, max(xs + measured) * 1.1
                ax.plot([lo, hi], [lo, hi], c="0.5", lw=1, label="y = x")
                ax.legend(fontsize=8)
            ax.set_xlabel(xlabel)
            ax.set_ylabel(f"measured latency on {exp.settings['device']} (ms)")
            ax.set_title(
                f"{xlabel.split(' (')[0]}: Kendall τ = {tau[0]:+.3f} (p={tau[1]:.2g}), n={len(xs)}",
                fontsize=9,
            )
            ax.grid(alpha=0.3)
        handles = [
            plt.Line2D([], [], ls="", marker="o", c=c, label=lbl)
            for c, lbl in (
                ("tab:orange", "MACs front"), ("tab:blue", "LUT front"),
                ("tab:purple", "both fronts"), ("tab:red", "mothernet"),
            )
        ]  # fmt: skip
        axes[0].legend(handles=handles, fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return Path(path)


# ---- summary.md --------------------------------------------------------------------------------


def _f(v: float | None, nd: int = 3) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def _pairs_table(pairs: Sequence[MatchedPair]) -> list[str]:
    lines = [
        "| MACs-front pick | surrogate | MMACs | LUT ms | measured ms | latency-chosen (LUT "
        "front) | surrogate | MMACs | LUT ms | measured ms | ratio FLOPs / latency |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for p in pairs:
        a, b = p.flops_chosen, p.latency_chosen
        flag = " (fallback: no LUT entry as good)" if p.fallback else ""
        flag += " (same model)" if p.same_model else ""
        lines.append(
            f"| [{p.macs_index}] | {_f(a.surrogate, 4)} | {a.mmacs:.2f} | {a.lut_ms:.3f} | "
            f"{a.measured_ms:.3f} | [{p.lut_index}]{flag} | {_f(b.surrogate, 4)} | "
            f"{b.mmacs:.2f} | {b.lut_ms:.3f} | {b.measured_ms:.3f} | **{p.ratio:.2f}x** |"
        )
    return lines


def _models_table(models: Sequence[CostModel]) -> list[str]:
    lines = [
        "| model | options | surrogate | MMACs | LUT ms | measured ms | LUT error |",
        "|---|---|---|---|---|---|---|",
    ]
    for m in sorted(models, key=lambda m: m.measured_ms):
        lines.append(
            f"| {', '.join(m.roles)} | {' '.join(m.options)} | {_f(m.surrogate, 4)} | "
            f"{m.mmacs:.2f} | {m.lut_ms:.3f} | {m.measured_ms:.3f} | {m.error_pct:+.1f}% |"
        )
    return lines


def summary_markdown(exp: CostExperiment) -> str:
    """The experiment's ``summary.md``: the claim, the command, the tables, the plots, notes."""
    s, ratios = exp.settings, exp.ratios
    command = "donna experiment cost RUN_DIR"
    if s["picks"] != COST_PICKS:
        command += f" --picks {s['picks']}"
    search_rows = [
        f"| {COST_LABEL[c]} | {d['method']} | {d['evaluated']} | {len(d['front'])} | "
        f"{d['seconds']:.1f} | "
        + ("–" if d["budget_ms"] is None else f"{d['budget_ms']:g} ms")
        + " |"
        for c, d in exp.searches.items()
    ]
    same = f" ({exp.same_count} pair(s) are the same model)" if exp.same_count else ""
    lines = [
        "# Cost experiment: FLOPs (MACs) vs device latency as the search's cost",
        "",
        f"At matched surrogate loss, the FLOPs-chosen model measured **{exp.median_ratio:.2f}x**"
        f" the latency of the latency-chosen one (median; range {min(ratios):.2f}x to "
        f"{max(ratios):.2f}x over {len(ratios)} pairs) and the latency-chosen model was faster "
        f"in **{exp.faster_count} of {len(ratios)}** pairs{same}; Kendall τ against the measured"
        f" latency: MACs {exp.tau_macs[0]:+.2f}, LUT {exp.tau_lut[0]:+.2f} "
        f"({len(exp.models)} models, device {s['device']}).",
        "",
        f"Reproduce: `{command}` (RUN_DIR: the run folder, here {exp.folder}; task "
        f"{s['task']}, device {s['device']}, space {s['space']} with "
        f"10^{s['log10_size']:.2f} architectures, seed {s['seed']}, pop {s['pop_size']} x "
        f"{s['generations']} generations; this call took {exp.seconds:.0f} s).",
        "",
        "## Method",
        "",
        "DONNAv2 claims that optimising measured device latency beats optimising FLOPs. The "
        "run's search is repeated on its unfiltered space, priced once by MACs and once by its "
        "LUT; architectures spread over each front (by its own cost) are measured whole, and "
        "each MACs-front pick is paired with the LUT-front architecture fastest by the LUT at "
        "an equal or lower surrogate loss (its latency-chosen counterpart). Ratio = measured "
        "latency of the FLOPs-chosen model / that of the latency-chosen one: above 1, "
        "optimising latency won.",
        "",
        "## Matched pairs",
        "",
        *_pairs_table(exp.pairs),
        "",
        f"## How well each cost ranks the {len(exp.models)} measured models",
        "",
        "| cost | Kendall τ vs measured latency | p-value |",
        "|---|---|---|",
        f"| MACs | {exp.tau_macs[0]:+.3f} | {exp.tau_macs[1]:.3g} |",
        f"| LUT latency | {exp.tau_lut[0]:+.3f} | {exp.tau_lut[1]:.3g} |",
        "",
        "![fronts](fronts.png)",
        "",
        "![cost vs measured](cost_vs_measured.png)",
        "",
        "## The searches",
        "",
        "| priced by | method | evaluated | on the front | seconds | budget |",
        "|---|---|---|---|---|---|",
        *search_rows,
        "",
        "## Every measured model",
        "",
        *_models_table(exp.models),
        "",
        "## Notes",
        "",
        *(f"- {n}" for n in exp.notes),
        "- Figures: cost.json (both fronts in full, with MMACs and LUT ms of every entry).",
        "",
    ]
    return "\n".join(lines)
