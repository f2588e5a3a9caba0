"""matplotlib for the plotting functions, headless: imported when a plot is made, never at
import time, so ``--help`` stays instant."""

from __future__ import annotations

from typing import Any


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the non-interactive Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish_axes(fig: Any, ax: Any, path: Any, legend_fontsize: int = 8) -> None:
    """The closing of a one-axes plot: light grid, legend, tight layout, saved to ``path``
    (the caller still closes ``fig``)."""
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_fontsize)
    fig.tight_layout()
    fig.savefig(path)
