"""Deprecated facade (one release): the checks moved to one room per theorem.

``hmmtune.analysis.conditions.X`` still resolves, with a :class:`DeprecationWarning`
naming the new home: :mod:`~hmmtune.analysis.condition` (:class:`Condition`),
:mod:`~hmmtune.analysis.head`, :mod:`~hmmtune.analysis.prompt`,
:mod:`~hmmtune.analysis.memory`, :mod:`~hmmtune.analysis.parametric`,
:mod:`~hmmtune.analysis.chain` and :mod:`~hmmtune.analysis.evidence`. Import the checks
from :mod:`hmmtune.analysis` instead.
"""

from __future__ import annotations

import importlib
import warnings

#: old name -> the module that defines it now
_MOVED = {
    "Condition": "condition",
    "head_condition": "head",
    "head_certificate": "head",
    "prompt_condition": "prompt",
    "tolerance_certificate": "prompt",
    "chain_condition": "chain",
    "memory_condition": "memory",
    "parametric_conditions": "parametric",
    "memory_parametric_conditions": "parametric",
    "sample_downstream": "evidence",
    "Evidence": "evidence",
    "evidence": "evidence",
    "task_margin": "evidence",
}

__all__: list[str] = []  # nothing new lives here


def __getattr__(name: str):
    if name in _MOVED:
        where = f"hmmtune.analysis.{_MOVED[name]}"
        warnings.warn(
            f"hmmtune.analysis.conditions.{name} is deprecated; import {name} from {where}"
            + (" or hmmtune.analysis" if name not in ("sample_downstream", "Evidence", "evidence", "task_margin") else ""),
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(where), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(_MOVED)
