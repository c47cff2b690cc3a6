"""The paper's two experiments in oracle mode, the results store, plots and summaries.

- :mod:`~hmmtune.experiments.exp1`: head vs prompt tuning on vanilla HMMs.
- :mod:`~hmmtune.experiments.exp2`: memory HMM + attention head vs vanilla HMM + linear head.
- :mod:`~hmmtune.experiments.sweep`: :func:`run_sweep` (resumable, parallel), summaries.
- :mod:`~hmmtune.experiments.store`: one atomic JSON record per (configuration, seed).
- :mod:`~hmmtune.experiments.plots`: the paper-style figure.

The command line's ``hmmtune reproduce exp1|exp2`` calls :func:`run_sweep`.
"""

from .store import environment, load_record, save_record
from .sweep import EXPERIMENTS, Progress, SummaryRow, SweepResult, format_table, run_sweep, summarize

__all__ = [
    "EXPERIMENTS",
    "Progress",
    "SummaryRow",
    "SweepResult",
    "environment",
    "format_table",
    "load_record",
    "run_sweep",
    "save_record",
    "summarize",
]
