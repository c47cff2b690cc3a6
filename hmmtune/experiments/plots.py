"""Paper-style plots of a sweep's summary (matplotlib, Agg backend).

Test accuracy (%) against the number of hidden states, one line per method (mean over
seeds, error bars one standard deviation), the published means as dashed lines of the
same colour, and a vertical line at the vocabulary size n: the paper's point is that head
tuning degrades once m exceeds n while prompt tuning (or memory + attention) does not.
"""

from __future__ import annotations

import math
import os

__all__ = ["plot_summary", "build_figure", "clipped_error_bars"]

_COLORS = ["tab:red", "tab:blue", "tab:green", "tab:orange"]


def clipped_error_bars(means: list[float], stds: list[float]) -> tuple[list[float], list[float]]:
    """Lower and upper error-bar lengths: one standard deviation, clipped so that a bar
    never goes below 0% or above 100% (an accuracy cannot)."""
    lower = [max(0.0, min(e, m)) for m, e in zip(means, stds)]
    upper = [max(0.0, min(e, 100.0 - m)) for m, e in zip(means, stds)]
    return lower, upper


def plot_summary(rows: list, path: str | os.PathLike, mod, *, vocab_size: int = 10, subtitle: str | None = None) -> str:
    """Write the plot of ``rows`` (:class:`~hmmtune.experiments.sweep.SummaryRow`) to ``path``.

    Args:
        mod: the experiment module (its ``METHODS``, ``X_LABEL`` and ``TITLE``).
        vocab_size: n, where the vertical line goes.
    """
    import matplotlib.pyplot as plt

    fig = build_figure(rows, mod, vocab_size=vocab_size, subtitle=subtitle)
    try:
        fig.savefig(path, bbox_inches="tight")
    finally:
        plt.close(fig)
    return str(path)


def build_figure(rows: list, mod, *, vocab_size: int = 10, subtitle: str | None = None):
    """The figure of :func:`plot_summary`, not yet saved (the caller closes it). Error bars
    are clipped to [0, 100] and the legend sits to the right of the axes, off the data."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8.4, 4.4), dpi=120)
    try:
        for i, (method, label) in enumerate(mod.METHODS.items()):
            rs = sorted((r for r in rows if r.method == method), key=lambda r: r.x)
            xs = [r.x for r in rs]
            ys = [r.mean for r in rs]
            es = [0.0 if math.isnan(r.std) else r.std for r in rs]
            color = _COLORS[i % len(_COLORS)]
            ax.errorbar(xs, ys, yerr=clipped_error_bars(ys, es), marker="o", color=color, capsize=3, label=f"{label} (oracle)")
            pub = [(r.x, r.published) for r in rs if r.published is not None]
            if pub:
                ax.plot(*zip(*pub), linestyle="--", marker="x", color=color, alpha=0.7, label=f"{label} (paper)")
        ax.axvline(vocab_size, color="gray", linestyle=":", label=f"vocabulary size n = {vocab_size}")
        ax.set_xlabel(mod.X_LABEL)
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(mod.TITLE, fontsize=10)
        if subtitle:
            fig.text(0.5, 0.005, subtitle, ha="center", va="bottom", fontsize=7, color="dimgray")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)
        fig.tight_layout(rect=(0, 0.03, 1, 1))
    except BaseException:
        plt.close(fig)
        raise
    return fig
