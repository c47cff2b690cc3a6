"""The paper's two experiments in oracle mode, the one sweep engine, the results store,
plots and summaries.

- :mod:`~hmmtune.experiments.sweep`: the engine: :class:`Recipe` (an experiment as the
  engine runs it), :func:`register`, :func:`run_sweep` (plan, resume, execute, store,
  summarise).
- :mod:`~hmmtune.experiments.executors`: ``local`` (spawned workers) and ``ray``.
- :mod:`~hmmtune.experiments.exp1`: head vs prompt tuning on vanilla HMMs.
- :mod:`~hmmtune.experiments.exp2`: memory HMM + attention head vs vanilla HMM + linear head.
- :mod:`~hmmtune.experiments.store`: one atomic JSON record per (configuration, seed),
  validated on read.
- :mod:`~hmmtune.experiments.plots`: the paper-style figure.

The command line's ``hmmtune reproduce exp1|exp2`` calls :func:`run_sweep`; learned mode
(:mod:`hmmtune.learned.experiment`) registers its runners as ``exp1-learned`` and
``exp2-learned``.
"""

from .store import environment, load_record, save_record
from .sweep import (
    RECIPES,
    Progress,
    Recipe,
    SummaryRow,
    SweepInterrupted,
    SweepResult,
    format_table,
    get_recipe,
    register,
    run_sweep,
    summarize,
)

__all__ = [
    "Progress",
    "RECIPES",
    "Recipe",
    "SummaryRow",
    "SweepInterrupted",
    "SweepResult",
    "environment",
    "format_table",
    "get_recipe",
    "load_record",
    "register",
    "run_sweep",
    "save_record",
    "summarize",
]


def __getattr__(name: str):
    if name == "EXPERIMENTS":  # deprecated (a DeprecationWarning from the sweep module)
        from . import sweep

        return sweep.__getattr__(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
