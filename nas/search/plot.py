"""The front plot (``pareto.png``): the front over every evaluated point (faint), the
mothernet as a star and the budget as a dashed line. matplotlib is imported when plotting."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.core.plots import finish_axes, pyplot

if TYPE_CHECKING:
    from nas.search.result import SearchResult


def _draw(ax: Any, result: SearchResult) -> None:
    ev, config = result.evaluated, result.config
    if len(ev):
        ax.scatter(
            ev[:, 1], ev[:, 0], s=4, c="0.6", alpha=0.25, lw=0, label=f"evaluated ({len(ev)})"
        )
    pts = result.points()
    ax.plot(
        pts[:, 1],
        pts[:, 0],
        "o-",
        ms=4,
        c="tab:blue",
        drawstyle="steps-post",
        label=f"Pareto front ({len(pts)})",
    )
    if result.mothernet is not None:
        ax.scatter(
            [result.mothernet[1]],
            [result.mothernet[0]],
            marker="*",
            s=220,
            c="tab:red",
            edgecolors="k",
            zorder=5,
            label="mothernet",
        )
    if config.budget_ms is not None:
        ax.axvline(
            config.budget_ms, ls="--", c="tab:orange", label=f"budget {config.budget_ms:g} ms"
        )


def plot_front(result: SearchResult, path: str | Path) -> Path:
    """Draw ``result`` into the image file ``path``; returns ``path``."""
    plt = pyplot()
    config = result.config
    fig, ax = plt.subplots(figsize=(6.4, 4.4), dpi=120)
    try:
        _draw(ax, result)
        ax.set_xlabel("estimated latency (ms)")
        ax.set_ylabel("surrogate: summed BKD normalised MSE")
        ax.set_title(
            f"{result.space.name}: {result.method}, pop {config.pop_size} x "
            f"{config.generations} gen, seed {config.seed}",
            fontsize=9,
        )
        finish_axes(fig, ax, path)
    finally:
        plt.close(fig)
    return Path(path)
