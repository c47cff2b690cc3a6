"""The paper-style plot (issue 12, item 6): error bars never pass 100%, the legend stays off
the data."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from hmmtune.experiments.plots import build_figure, clipped_error_bars, plot_summary  # noqa: E402

MOD = SimpleNamespace(
    METHODS={"prompt": "prompt tuning", "head": "head tuning"}, X_LABEL="m", TITLE="accuracy against m"
)


def _rows():
    R = lambda method, x, mean, std, pub: SimpleNamespace(method=method, x=x, mean=mean, std=std, published=pub)  # noqa: E731
    return [
        R("prompt", 4, 99.8, 0.9, 99.7), R("prompt", 10, 99.0, 3.0, 93.0), R("prompt", 30, 95.0, 4.0, 75.1),
        R("head", 4, 99.9, 0.4, 94.0), R("head", 10, 97.0, 5.0, 79.7), R("head", 30, 78.0, 7.0, 66.2),
    ]


def test_error_bars_are_clipped_to_the_percent_range():
    lower, upper = clipped_error_bars([99.5, 50.0, 1.0, 100.0], [2.0, 3.0, 2.0, 0.0])
    assert lower == [2.0, 3.0, 1.0, 0.0]
    assert upper == [0.5, 3.0, 2.0, 0.0]


def test_no_bar_above_100_and_legend_off_the_axes(tmp_path):
    fig = build_figure(_rows(), MOD, vocab_size=10)
    try:
        ax = fig.axes[0]
        tops = []
        for container in ax.containers:  # errorbar containers: (line, caps, bar collections)
            for coll in container[2]:
                for seg in coll.get_segments():
                    tops.append(np.max(seg[:, 1]))
        assert tops and max(tops) <= 100.0 + 1e-9
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        legend = ax.get_legend().get_window_extent(renderer)
        axes = ax.get_window_extent(renderer)
        assert legend.x0 >= axes.x1  # entirely to the right of the plotting area
    finally:
        plt.close(fig)
    out = plot_summary(_rows(), tmp_path / "p.png", MOD, vocab_size=10)
    assert (tmp_path / "p.png").stat().st_size > 1000 and out.endswith("p.png")
