"""The filter experiment's answers and pictures, from the figures
:mod:`nas.experiments.filter_ablation` computed: the beyond-the-paper answer
(:func:`beyond_paper`), the plots (``sweep.png``, ``fronts.png``) and ``summary.md``.
matplotlib is imported when plotting."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.core.files import atomic_write_text
from nas.core.plots import finish_axes, pyplot
from nas.experiments.defaults import TARGET_HV_LOSS, TARGET_SHRINK

FRONT_STYLE = {"unfiltered": ("tab:orange", "s"), "filtered": ("tab:blue", "o")}


def beyond_paper(
    rows: Sequence[dict[str, Any]],
    target_shrink: float = TARGET_SHRINK,
    target_loss: float = TARGET_HV_LOSS,
    *,
    limit: dict[str, Any] | None = None,
    thinning: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The setting with the largest shrink >= ``target_shrink`` losing < ``target_loss`` of
    the HV, among the filter sweep's ``rows`` and the Pareto ``thinning`` rows, or the
    measured reason why there is none; ``limit``: the filter's largest possible shrink
    (``filter_limit`` of :mod:`~nas.experiments.filter_ablation`), named in the answer when it
    is below the target."""
    rows = [*rows, *thinning]

    def name(r: dict[str, Any]) -> str:
        if "keep" in r:
            return f"each slot thinned to {r['keep']} of its Pareto options"
        return f"threshold {r['threshold']:g}, loss tolerance {r['loss_tolerance']:g}"

    def fig(r: dict[str, Any]) -> str:
        return f"{r['shrink']:.1f}x smaller at {r['hv_lost'] * 100:.2f}% HV lost ({name(r)})"

    goal = f">= {target_shrink:g}x smaller and < {target_loss * 100:g}% HV lost"
    ok = [r for r in rows if r["shrink"] >= target_shrink and r["hv_lost"] < target_loss]
    low = [r for r in rows if r["hv_lost"] < target_loss]
    big = [r for r in rows if r["shrink"] >= target_shrink]
    best_low = max(low, key=lambda r: (r["shrink"], -r["hv_lost"])) if low else None
    best_big = min(big, key=lambda r: (r["hv_lost"], -r["shrink"])) if big else None
    out: dict[str, Any] = {
        "goal": goal,
        "found": bool(ok),
        "setting": None,
        "largest_shrink_under_loss": best_low,
        "least_loss_at_shrink": best_big,
    }
    if ok:
        best = max(ok, key=lambda r: (r["shrink"], -r["hv_lost"]))
        out["setting"] = best
        out["text"] = f"yes: {fig(best)}"
        if "keep" in best and limit and limit["max_shrink"] < target_shrink:
            out["text"] += (
                f"; the paper's rule alone cannot: it keeps every slot-Pareto option, at most "
                f"{limit['max_shrink']:.1f}x here"
            )
        return out
    parts = [f"no setting of the sweep reaches {goal}"]
    if best_low is not None:
        parts.append(f"the largest shrink under {target_loss * 100:g}% loss is {fig(best_low)}")
    else:
        parts.append(f"every setting loses >= {target_loss * 100:g}% HV")
    if best_big is not None:
        parts.append(f"the least loss at >= {target_shrink:g}x is {fig(best_big)}")
    else:
        top = max(rows, key=lambda r: (r["shrink"], -r["hv_lost"]))
        most = "" if top is best_low else f" (the most: {fig(top)})"
        parts.append(f"no setting shrinks the space {target_shrink:g}x{most}")
    if limit and limit["max_shrink"] < target_shrink:
        held = ", ".join(
            f"{k}/{n}" for k, n in zip(limit["slot_pareto_options"], limit["n_options"])
        )
        parts.append(
            "the filter never drops an option on its slot's (nMSE, cost) Pareto front and those "
            f"fronts hold {held} options per slot, so no setting can shrink this space more than "
            f"{limit['max_shrink']:.1f}x"
        )
    out["text"] = "; ".join(parts)
    return out


def plot_sweep(
    rows: Sequence[dict[str, Any]],
    limit: dict[str, Any],
    path: Path,
    thinning: Sequence[dict[str, Any]] = (),
) -> Path:
    """Left: shrink factor (log x) against HV lost (%), one series per loss tolerance and one
    for the Pareto thinning (beyond the paper), the target region shaded, the filter's limit
    dotted and the run's own setting starred. Right: the shrink of each threshold, so the
    settings stay apart when they lose the same HV."""
    plt = pyplot()
    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.4), dpi=120)
    try:
        tolerances = sorted({r["loss_tolerance"] for r in rows})
        for k, tol in enumerate(tolerances):
            series = [r for r in rows if r["loss_tolerance"] == tol]
            by_shrink = sorted(series, key=_by_shrink)
            ax.plot([r["shrink"] for r in by_shrink], [r["hv_lost"] * 100 for r in by_shrink],
                    "o-", ms=4, c=f"C{k}", label=f"loss tolerance {tol:g}")  # fmt: skip
            by_t = sorted(series, key=lambda r: r["threshold"])
            bx.plot([r["threshold"] for r in by_t], [r["shrink"] for r in by_t], "o-", ms=4,
                    c=f"C{k}", label=f"loss tolerance {tol:g}")  # fmt: skip
        if thinning:
            th = sorted(thinning, key=lambda r: r["shrink"])
            ax.plot([r["shrink"] for r in th], [r["hv_lost"] * 100 for r in th], "D-", ms=4,
                    c="k", label="Pareto thinning (beyond the paper)")  # fmt: skip
            for r in th:
                ax.annotate(f"{r['keep']}", (r["shrink"], r["hv_lost"] * 100), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")  # fmt: skip
        for r in (r for r in rows if r.get("run_setting")):
            label = f"the run's filter ({r['threshold']:g}, {r['loss_tolerance']:g})"
            star = {"marker": "*", "s": 220, "c": "tab:red", "edgecolors": "k", "zorder": 5}
            ax.scatter([r["shrink"]], [r["hv_lost"] * 100], label=label, **star)
            bx.scatter([r["threshold"]], [r["shrink"]], label=label, **star)
        _loss_axes(ax, [*rows, *thinning], limit)
        bx.axhline(TARGET_SHRINK, c="tab:green", ls="--", lw=1, label=f"{TARGET_SHRINK:g}x")
        if limit:
            bx.axhline(limit["max_shrink"], c="0.3", ls=":", lw=1.2,
                       label=f"the filter's limit {limit['max_shrink']:.1f}x")  # fmt: skip
        bx.set_yscale("log")
        bx.set_xlabel("filter threshold")
        bx.set_ylabel("shrink factor (log)")
        bx.set_title("shrink per setting", fontsize=9)
        bx.grid(alpha=0.3, which="both")
        bx.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return Path(path)


def _loss_axes(ax: Any, rows: Sequence[dict[str, Any]], limit: dict[str, Any]) -> None:
    from matplotlib.ticker import FuncFormatter

    ax.set_xscale("log")
    ax.set_yscale("symlog", linthresh=1.0)
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}%"))
    shrinks = [r["shrink"] for r in rows] + [TARGET_SHRINK, limit.get("max_shrink", 1.0)]
    top = max(shrinks) * 1.5
    ax.set_xlim(0.9, top)
    target = TARGET_HV_LOSS * 100
    ax.fill_between([TARGET_SHRINK, top], [-0.05, -0.05], [target, target],
                    color="tab:green", alpha=0.15,
                    label=f">= {TARGET_SHRINK:g}x and < {target:g}% lost")  # fmt: skip
    ax.axvline(TARGET_SHRINK, c="tab:green", ls="--", lw=1)
    ax.axhline(target, c="tab:green", ls="--", lw=1)
    if limit:
        ax.axvline(limit["max_shrink"], c="0.3", ls=":", lw=1.2,
                   label=f"the filter's limit {limit['max_shrink']:.1f}x")  # fmt: skip
    ax.set_ylim(bottom=-0.05)
    ax.set_xlabel("shrink factor: unfiltered / filtered architectures (log)")
    ax.set_ylabel("hypervolume lost (%)")
    ax.set_title("BKD filter sweep: what each shrink costs", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7)


def _by_shrink(r: dict[str, Any]) -> tuple[float, float]:
    return (r["shrink"], r["threshold"])


def plot_fronts(reference: Any, results: dict[str, Any], picks: Sequence[dict[str, Any]],
                path: Path) -> Path:  # fmt: skip
    """Both searched fronts over the reference (exact or best known) front, surrogate against
    LUT latency, the picks ringed."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    try:
        ref = reference.points
        ax.plot(ref[:, 1], ref[:, 0], "-", c="0.4", lw=2.5, alpha=0.5, drawstyle="steps-post",
                label=f"{reference.kind} front ({len(ref)})")  # fmt: skip
        for label, res in results.items():
            color, marker = FRONT_STYLE.get(label, ("C2", "^"))
            pts = res.points()
            ax.plot(pts[:, 1], pts[:, 0], marker + "-", ms=4, c=color, drawstyle="steps-post",
                    label=f"{label} search ({len(pts)})")  # fmt: skip
            mine = [p for p in picks if p["front"] == label]
            ax.scatter([p["lut_ms"] for p in mine], [p["surrogate"] for p in mine], s=140,
                       facecolors="none", edgecolors=color, lw=1.5, zorder=5,
                       label=f"{label} picks")  # fmt: skip
        ax.set_xlabel("LUT latency (ms)")
        ax.set_ylabel("surrogate: summed BKD normalised MSE")
        ax.set_title("Unfiltered vs filtered search", fontsize=9)
        finish_axes(fig, ax, path, legend_fontsize=7)
    finally:
        plt.close(fig)
    return Path(path)


# ---- summary.md -----------------------------------------------------------------------------


def _f(v: Any, nd: int = 3) -> str:
    return "–" if v is None else f"{v:.{nd}f}"


def _spaces_table(p: dict[str, Any]) -> list[str]:
    ref = p["reference"]["kind"]
    lines = [
        f"| space | architectures | log10 | shrink | search | search (s) | front | HV vs {ref} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for label in ("unfiltered", "filtered"):
        sp, se = p["spaces"][label], p["searches"][label]
        lines.append(
            f"| {label} | {sp['cardinality']:,} | {sp['log10']:.2f} | {sp['shrink']:.1f}x | "
            f"{se['method']} | {se['seconds']:.2f} | {len(se['front'])} | {se['hv_ratio']:.4f} |"
        )
    return lines


def _sweep_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    lines = [
        "| threshold | loss tolerance | architectures | log10 | shrink | HV lost | front by |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        star = " (the run's)" if r.get("run_setting") else ""
        lines.append(
            f"| {r['threshold']:g}{star} | {r['loss_tolerance']:g} | {r['cardinality']:,} | "
            f"{r['log10']:.2f} | {r['shrink']:.1f}x | {r['hv_lost'] * 100:.2f}% | "
            f"{r['front_by']} ({r['front_size']}) |"
        )
    return lines


def _thinning_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    lines = [
        "| Pareto options kept per slot | options per slot | architectures | shrink | HV lost "
        "| front by |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['keep']} | {', '.join(map(str, r['n_options']))} | {r['cardinality']:,} | "
            f"{r['shrink']:.1f}x | {r['hv_lost'] * 100:.2f}% | {r['front_by']} "
            f"({r['front_size']}) |"
        )
    return [
        "### Beyond the paper: thinning each slot's Pareto front",
        "",
        "The paper's rule never drops an option on its slot's (nMSE, cost) Pareto front. "
        "Thinning does (`nas.filter.thin_space`): each slot keeps at most K of its Pareto "
        "options, spread evenly by cost, its cheapest and its most accurate always among them. "
        "What that costs the whole space's front:",
        "",
        *lines,
        "",
    ]


def _picks_table(picks: Sequence[dict[str, Any]]) -> list[str]:
    metric = picks[0]["metric_name"] if picks else "metric"
    lines = [
        f"| front | options | surrogate | LUT ms | measured ms | {metric} |",
        "|---|---|---|---|---|---|",
    ]
    for r in picks:
        shared = " (both fronts)" if r.get("shared") else ""
        lines.append(
            f"| {r['front']}[{r['index']}]{shared} | {'; '.join(r['options'])} | "
            f"{r['surrogate']:.4f} | {_f(r['lut_ms'])} | {_f(r['measured_ms'])} | "
            f"{_f(r['metric'], 4)} |"
        )
    return lines


def _limit_note(limit: dict[str, Any] | None) -> list[str]:
    if not limit:
        return []
    held = ", ".join(
        f"{k} of {n}" for k, n in zip(limit["slot_pareto_options"], limit["n_options"])
    )
    return [
        "The filter never drops an option on its slot's (nMSE, cost) Pareto front; those fronts "
        f"hold {held} options per slot, so no setting can shrink this space more than "
        f"{limit['max_shrink']:.1f}x (dotted in the plot).",
        "",
    ]


def _additive_note(p: dict[str, Any]) -> list[str]:
    if not p.get("additive_latency") or p["reference"]["kind"] != "exact":
        return []
    worst = max(r["hv_lost"] for r in p["sweep"]) * 100
    return [
        "",
        "Latency is additive over the slots of this space (one input width per slot): every "
        "option the filter drops is then dominated in its slot, so the filter keeps every point "
        f"of the exact front (nas/filter.py); measured, the most HV any setting lost is "
        f"{worst:.2f}%. Here the sweep shows how far each setting shrinks the space for free.",
    ]


def write_summary(path: Path, p: dict[str, Any]) -> Path:
    """``summary.md`` from the experiment's ``filter.json`` payload ``p``."""
    ref, cfg, own = p["reference"], p["search_config"], p["run_filter"]
    budget = f", budget {cfg['budget_ms']:g} ms" if cfg.get("budget_ms") else ""
    u, f = p["spaces"]["unfiltered"], p["spaces"]["filtered"]
    hv = {k: p["searches"][k]["hv_ratio"] for k in ("unfiltered", "filtered")}
    lines = [
        "# BKD filter: unfiltered vs filtered search space",
        "",
        f"The run's filter shrank the space {f['shrink']:.1f}x ({u['cardinality']:,} -> "
        f"{f['cardinality']:,} architectures); the searched fronts hold {hv['unfiltered']:.2%} "
        f"(unfiltered) and {hv['filtered']:.2%} (filtered) of the {ref['kind']} front's "
        f"hypervolume. Beyond the paper ({p['beyond_paper']['goal']}): "
        f"{p['beyond_paper']['text']}.",
        "",
        f"Reproduce: `{p['command']}` (RUN_DIR: `{p['run']}`, device `{p['device']}`).",
        "",
        f"Both spaces searched with the run's NSGA-II settings (population {cfg['pop_size']}, "
        f"{cfg['generations']} generations, seed {cfg['seed']}{budget}) and its LUT; the run's "
        f"filter: threshold {own['threshold']:g}, loss tolerance {own['loss_tolerance']:g}.",
        "",
        *_spaces_table(p),
        "",
    ]
    if ref.get("note"):
        lines += [f"**Note:** {ref['note']}.", ""]
    lines += [
        "![fronts](fronts.png)",
        "",
        "## Threshold sweep",
        "",
        "![sweep](sweep.png)",
        "",
        *_sweep_table(p["sweep"]),
        "",
        *_limit_note(p.get("filter_limit")),
        *_thinning_table(p.get("thinning", ())),
        f"**Beyond the paper** (goal: {p['beyond_paper']['goal']}): {p['beyond_paper']['text']}.",
        *_additive_note(p),
        "",
        "## Picks of both fronts, measured whole and finetuned",
        "",
        *_picks_table(p["picks"]),
        "",
        "## Notes",
        "",
        f"- HV: hypervolume of (surrogate, LUT latency) fronts, both minimised, at one reference "
        f"point {[round(v, 4) for v in ref['ref_point']]} (the {ref['kind']} front's nadir plus "
        "10% of its range); HV lost = 1 - HV ratio.",
        "- Sweep fronts: exact by enumeration where the filtered space is small enough, else an "
        "NSGA-II search with the run's settings (column 'front by').",
        f"- Finetuning: {p['finetune_epochs']:g} epoch(s) per pick; measured ms: the whole "
        f"model on `{p['device']}`. Every figure is in `filter.json`; the searches' Pareto "
        "files in `unfiltered/` and `filtered/`.",
        f"- Wall time {p['seconds']:.0f} s.",
        "",
    ]
    atomic_write_text(Path(path), "\n".join(lines))
    return Path(path)
