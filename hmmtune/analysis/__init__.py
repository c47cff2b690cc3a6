"""Conditions and certificates for head, prompt and memory tuning (docs/theory.md, "Theorem H (head tuning)", "Theorem P (prompt tuning)", "Memory-augmented HMMs").

The entry point is :func:`check`, which returns a :class:`Report`; the individual
checks live in :mod:`hmmtune.analysis.conditions`, the exact / numerical / structural
linear algebra in :mod:`hmmtune.analysis.linalg`, the transition-graph facts in
:mod:`hmmtune.analysis.graph` and the LP certificates in
:mod:`hmmtune.analysis.certificates`.
"""

from .check import check, default_certificate_length
from .conditions import (
    Condition,
    chain_condition,
    head_certificate,
    head_condition,
    memory_condition,
    memory_parametric_conditions,
    parametric_conditions,
    prompt_condition,
)
from .report import Report
from .task import TaskSpec, load_task

__all__ = [
    "Condition",
    "Report",
    "TaskSpec",
    "chain_condition",
    "check",
    "default_certificate_length",
    "head_certificate",
    "head_condition",
    "load_task",
    "memory_condition",
    "memory_parametric_conditions",
    "parametric_conditions",
    "prompt_condition",
]
