"""The report of a ``donna run`` folder: ``report.md`` plus plots, from the stage outputs.

Everything in it is read from files the stages wrote (run.json, bkd.json, space.json,
search/pareto.json, hil.json, final/results.json), so it can be rebuilt at any time.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from nas.core.files import atomic_write_text


def _read(path: Path) -> Any:
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(v: Any, nd: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.{nd}f}"
    return str(v)


def plot_hil(rows: list[dict[str, Any]], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.2), dpi=120)
    xs = [r["measured_ms"] for r in rows]
    ys = [r["lut_ms"] for r in rows]
    lo, hi = min(xs + ys) * 0.9, max(xs + ys) * 1.1
    ax.plot([lo, hi], [lo, hi], color="grey", lw=1, label="y = x")
    ax.fill_between(
        [lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="grey", alpha=0.15, label="±10%"
    )
    for r in rows:
        star = r["model"] == "mothernet"
        ax.scatter(
            r["measured_ms"],
            r["lut_ms"],
            marker="*" if star else "o",
            s=120 if star else 30,
            color="C3" if star else "C0",
        )
        ax.annotate(
            r["model"],
            (r["measured_ms"], r["lut_ms"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    ax.set_xlabel("measured whole model (ms)")
    ax.set_ylabel("LUT estimate (ms)")
    ax.set_title("Hardware in the loop: LUT vs measured")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_tradeoff(
    finals: list[dict[str, Any]],
    hil: dict[str, dict[str, Any]],
    mothernet: dict[str, Any],
    metric: str,
    out: Path,
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 4), dpi=120)
    for f in finals:
        lat = hil.get(f"front[{f['index']}]", {}).get("measured_ms", f.get("latency_ms"))
        ax.scatter(lat, f["metric"], color="C0")
        ax.annotate(
            f"front[{f['index']}]",
            (lat, f["metric"]),
            fontsize=7,
            xytext=(3, 3),
            textcoords="offset points",
        )
    m_lat = hil.get("mothernet", {}).get("measured_ms")
    if m_lat is not None and mothernet.get("metric") is not None:
        ax.scatter(m_lat, mothernet["metric"], marker="*", s=160, color="C3", label="mothernet")
        ax.legend(fontsize=8)
    ax.set_xlabel("measured latency (ms)")
    ax.set_ylabel(metric)
    ax.set_title("Finetuned models vs the mothernet")
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def plot_filter(filt: dict[str, Any], out: Path) -> Path:
    """Per slot: every option's BKD nMSE against its cost, kept vs dropped by the filter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slots = filt["slots"]
    unit = "µs" if filt.get("cost_unit") == "us" else filt.get("cost_unit", "")
    fig, axes = plt.subplots(1, len(slots), figsize=(3.6 * len(slots), 3.4), dpi=110, squeeze=False)
    for ax, sl in zip(axes[0], slots):
        kept = set(sl["kept"])
        for j, (loss, cost) in enumerate(zip(sl["nmse"], sl["cost"])):
            ax.scatter(
                cost,
                loss,
                s=18,
                color="C0" if j in kept else "C3",
                marker="o" if j in kept else "x",
            )
        ax.set_title(f"slot {sl['slot']}: {len(kept)}/{len(sl['nmse'])} kept", fontsize=9)
        ax.set_xlabel(f"option cost ({unit})", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("BKD nMSE (lower is better)", fontsize=8)
    axes[0][0].scatter([], [], color="C0", label="kept")
    axes[0][0].scatter([], [], color="C3", marker="x", label="dropped")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out)
    plt.close(fig)
    return out


def _final_row(f: dict[str, Any], hil_by: dict[str, dict[str, Any]]) -> str:
    name = f"front[{f['index']}]"
    lat = hil_by.get(name, {}).get("measured_ms")
    return (
        f"| {name} ({'; '.join(f['options'])}) | {_fmt(f['metric_before'], 4)} | "
        f"{_fmt(f['metric'], 4)} | {_fmt(lat)} |"
    )


def _header(settings: dict[str, Any], stages: dict[str, Any], metric: str) -> list[str]:
    m = stages.get("mothernet", {})
    lines = [
        f"# donnav2 run: {settings.get('task', '?')} on `{settings.get('device')}`",
        "",
        "| setting | value |",
        "|---|---|",
        *(f"| {k} | `{v}` |" for k, v in settings.items() if k != "sizes"),
        f"| sizes | `{json.dumps(settings.get('sizes'))}` |",
        "",
        "## Stages",
        "",
        "| stage | wall time (s) |",
        "|---|---|",
        *(f"| {k} | {v.get('seconds')} |" for k, v in stages.items()),
        f"| **total** | {sum(v.get('seconds', 0) for v in stages.values()):.1f} |",
        "",
        "## Mothernet",
        "",
        f"{metric} on the validation split: {_fmt(m.get('metric'), 4)}",
        "",
    ]
    lut = stages.get("lut", {})
    if lut:
        lines += ["## Latency LUT", "", f"`{lut.get('lut')}`: {lut.get('summary')}", ""]
    return lines


def _filter_section(folder: Path, filt: dict[str, Any], stages: dict[str, Any]) -> list[str]:
    rep = filt.get("filter", filt)
    before, after = rep.get("log10_before"), rep.get("log10_after")
    dropped = rep.get("dropped", [])
    if rep.get("slots"):
        plot_filter(rep, folder / "bkd_filter.png")
    return [
        "## BKD and filter",
        "",
        "![BKD loss vs cost per slot](bkd_filter.png)",
        "",
        f"BKD library: `bkd.json` ({stages.get('bkd', {}).get('options')} options). "
        f"Filter: search space 10^{_fmt(before, 2)} → 10^{_fmt(after, 2)} architectures, "
        f"{len(dropped)} options dropped (reasons in `space.json`).",
        "",
    ]


def _search_section(pareto: dict[str, Any]) -> list[str]:
    front = pareto.get("front", [])
    return [
        "## Search (NSGA-II: summed BKD MSE vs LUT latency)",
        "",
        "![Pareto front](search/pareto.png)",
        "",
        f"{len(front)} architectures on the front.",
        "",
        "| # | options | surrogate (Σ nMSE) | LUT latency (ms) |",
        "|---|---|---|---|",
        *(
            f"| {e['index']} | {'; '.join(e.get('options', []))} | {_fmt(e['surrogate'], 4)}"
            f" | {_fmt(e['latency_ms'])} |"
            for e in front
        ),
        "",
    ]


def _hil_section(folder: Path, rows: list[dict[str, Any]]) -> list[str]:
    plot_hil(rows, folder / "hil.png")
    errs = [abs(r["error_pct"]) for r in rows]
    return [
        "## Hardware in the loop: LUT estimate vs measured whole model",
        "",
        "![LUT vs measured](hil.png)",
        "",
        "| model | LUT (ms) | measured (ms) | error |",
        "|---|---|---|---|",
        *(
            f"| {r['model']} | {_fmt(r['lut_ms'])} | {_fmt(r['measured_ms'])} | "
            f"{r['error_pct']:+.1f}% |"
            for r in rows
        ),
        "",
        f"Median absolute error {statistics.median(errs):.1f}%, max {max(errs):.1f}%.",
        "",
    ]


def _finals_section(
    folder: Path,
    finals: list[dict[str, Any]],
    hil_by: dict[str, dict[str, Any]],
    mothernet: dict[str, Any],
    metric: str,
) -> list[str]:
    plot_tradeoff(finals, hil_by, mothernet, metric, folder / "tradeoff.png")
    mm = hil_by.get("mothernet", {})
    return [
        "## Finetuned models",
        "",
        "![metric vs latency](tradeoff.png)",
        "",
        f"| model | {metric} after BKD init | after finetune | measured latency (ms) |",
        "|---|---|---|---|",
        f"| mothernet | – | {_fmt(mothernet.get('metric'), 4)} | {_fmt(mm.get('measured_ms'))} |",
        *(_final_row(f, hil_by) for f in finals),
        "",
        "Weights: `final/<index>/model.pt` (loadable with "
        "`nas.training.checkpoint.load_checkpoint`).",
        "",
    ]


def _headline(summary: Path) -> tuple[str, str]:
    """The title (first ``# `` line) and the first paragraph after it of a summary.md."""
    lines = summary.read_text().splitlines()
    title = next((ln[2:].strip() for ln in lines if ln.startswith("# ")), summary.parent.name)
    para: list[str] = []
    started = False
    for ln in lines[1:]:
        if ln.strip() and not ln.startswith(("#", "!", "|", "```")):
            para.append(ln.strip())
            started = True
        elif started:
            break
    return title, " ".join(para)


def _experiments_section(folder: Path) -> list[str]:
    """Links to what ``donna validate-surrogate`` and ``donna experiment`` wrote, if anything."""
    lines: list[str] = []
    val = _read(folder / "search" / "surrogate_validation.json")
    if val:
        lo, hi = val.get("tau_surrogate_ci") or (None, None)
        exact = val.get("compute_ratio_exact")
        ratio = f"{'' if exact else '> '}{_fmt(val.get('compute_ratio'), 1)}x"
        lines += [
            f"- [Surrogate at strength](search/surrogate_validation.json) "
            f"(`donna validate-surrogate`): {len(val.get('archs', []))} architectures, Kendall "
            f"τ {_fmt(val.get('tau_surrogate'))} [95% {_fmt(lo, 2)}, {_fmt(hi, 2)}]; the "
            f"DONNA predictor's compute to match it: {ratio} "
            "([plot](search/surrogate_validation.png))",
        ]
    for summary in sorted((folder / "experiments").glob("*/summary.md")):
        title, para = _headline(summary)
        rel = summary.relative_to(folder).as_posix()
        lines.append(f"- [{title}]({rel}){': ' + para if para else ''}")
    return ["## Experiments", "", *lines, ""] if lines else []


def write_report(folder: Path, state: dict[str, Any]) -> Path:
    """Write ``folder/report.md`` (and its plots) from the stage outputs and ``run.json``'s
    ``state``; a section whose stage has not run is left out."""
    folder = Path(folder)
    settings = state.get("settings", {})
    stages = state.get("stages", {})
    metric = "top-1 accuracy" if settings.get("task") == "classification" else "PSNR (dB)"
    lines = _header(settings, stages, metric)
    filt = _read(folder / "space.json")
    if filt:
        lines += _filter_section(folder, filt, stages)
    pareto = _read(folder / "search" / "pareto.json")
    if pareto:
        lines += _search_section(pareto)
    hil = _read(folder / "hil.json")
    hil_by: dict[str, dict[str, Any]] = {}
    if hil:
        hil_by = {r["model"]: r for r in hil["rows"]}
        lines += _hil_section(folder, hil["rows"])
    finals = _read(folder / "final" / "results.json")
    if finals:
        lines += _finals_section(folder, finals, hil_by, stages.get("mothernet", {}), metric)
    lines += _experiments_section(folder)
    out = folder / "report.md"
    atomic_write_text(out, "\n".join(lines))
    return out
