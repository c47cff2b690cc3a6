"""Conditions and certificates for head, prompt and memory tuning (docs/theory.md, "Theorem H (head tuning)", "Theorem P (prompt tuning)", "Memory-augmented HMMs").

The entry point is :func:`check`, which returns a :class:`Report` of :class:`Condition`
rows. One theorem per room, each written as search -> witness -> verify -> explain:
:mod:`~hmmtune.analysis.head` (Theorem H and its LP certificate),
:mod:`~hmmtune.analysis.prompt` (Theorem P, tolerance mode),
:mod:`~hmmtune.analysis.memory` (Theorem M), :mod:`~hmmtune.analysis.parametric`
(degeneracy loci of parametric models) and :mod:`~hmmtune.analysis.chain` (chain facts).
Beneath them: the exact / numerical / structural linear algebra in
:mod:`~hmmtune.analysis.linalg`, the transition graph in :mod:`~hmmtune.analysis.graph`,
the LP certificates in :mod:`~hmmtune.analysis.certificates` and every tolerance in
:mod:`~hmmtune.analysis.tolerances`.

``parametric_conditions`` and ``memory_parametric_conditions`` load sympy's solvers on
first use; ``chain_condition`` is a deprecated alias of the chain facts (one release).
"""

from __future__ import annotations

import importlib
import warnings
from typing import TYPE_CHECKING

from .chain import chain_facts
from .check import check, default_certificate_length
from .condition import Condition
from .head import head_certificate, head_condition
from .memory import memory_condition
from .prompt import prompt_condition, tolerance_certificate
from .report import Report
from ..task import Task
from .task import TaskSpec, as_task, load_task  # TaskSpec: deprecated (warns when built), not in __all__

if TYPE_CHECKING:
    from .parametric import memory_parametric_conditions, parametric_conditions

#: loaded on first use: the parametric room imports sympy's solvers
_LAZY = {"parametric_conditions": ".parametric", "memory_parametric_conditions": ".parametric"}

__all__ = [
    "Condition",
    "Report",
    "Task",
    "as_task",
    "chain_facts",
    "check",
    "default_certificate_length",
    "head_certificate",
    "head_condition",
    "load_task",
    "memory_condition",
    "memory_parametric_conditions",
    "parametric_conditions",
    "prompt_condition",
    "tolerance_certificate",
]


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    if name == "chain_condition":
        warnings.warn(
            "hmmtune.analysis.chain_condition is deprecated: chain structure is a fact; use hmmtune.analysis.chain_facts",
            DeprecationWarning,
            stacklevel=2,
        )
        from .chain import chain_condition

        return chain_condition
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
