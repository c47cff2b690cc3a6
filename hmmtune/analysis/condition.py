"""The result of one check, :class:`Condition`, and how witness entries are written.

Every room (``head``, ``prompt``, ``memory``, ``parametric``, ``chain``) returns
:class:`Condition` records: whether the condition holds (True, False, or None when
undetermined), how that was decided (exact, numerical with a tolerance, empirical on N
inputs), the witness or certificate, and a one-line explanation.
"""

from __future__ import annotations

import sys
import warnings
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Condition", "format_value", "format_vector"]


@dataclass(init=False)
class Condition:
    """One checked condition, or one fact about the model.

    Attributes:
        name: short identifier (``"head: rank W = m"`` ...).
        holds: True, False, or None (undetermined; every fact).
        method: how it was decided: ``"exact"``, ``"numerical (tol=...)"``,
            ``"empirical on N inputs"``, ``"LP on N inputs, certificate verified exactly"``...
        explanation: one line in the paper's terms.
        witness: JSON-serialisable witness or certificate (exact rationals as strings).
        can_decide: whether this row can decide the exit code of ``hmmtune check``: True
            for the conditions of the theorems, False for facts (chain structure, measured
            facts, parametric loci), which never do. ``--require`` then picks which of the
            rows that can decide actually do (:meth:`hmmtune.analysis.Report.deciding`). The
            JSON key is ``"counts"`` (unchanged); ``Condition.counts`` is a deprecated alias.
    """

    name: str
    holds: bool | None
    method: str
    explanation: str
    witness: dict = field(default_factory=dict)
    can_decide: bool = True

    def __init__(
        self,
        name: str,
        holds: bool | None,
        method: str,
        explanation: str,
        witness: dict | None = None,
        can_decide: bool = True,
        *,
        counts: bool | None = None,
    ) -> None:
        if counts is not None:
            _warn_counts()
            can_decide = counts
        self.name = name
        self.holds = holds
        self.method = method
        self.explanation = explanation
        self.witness = {} if witness is None else witness
        self.can_decide = bool(can_decide)

    @property
    def counts(self) -> bool:
        """Deprecated alias of :attr:`can_decide` (one release)."""
        _warn_counts()
        return self.can_decide

    @counts.setter
    def counts(self, value: bool) -> None:
        _warn_counts()
        self.can_decide = bool(value)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "holds": self.holds,
            "method": self.method,
            "explanation": self.explanation,
            "witness": self.witness,
            "counts": self.can_decide,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Condition":
        return cls(d["name"], d["holds"], d["method"], d["explanation"], d.get("witness", {}), d.get("counts", True))

    def replace(self, **changes: Any) -> "Condition":
        """A copy with the given fields changed (the witness is shared, not copied)."""
        fields = {k: getattr(self, k) for k in ("name", "holds", "method", "explanation", "witness", "can_decide")}
        fields.update(changes)
        return Condition(**fields)


def _warn_counts() -> None:
    warnings.warn(
        "Condition.counts is deprecated; use Condition.can_decide (the JSON key stays 'counts')",
        DeprecationWarning,
        stacklevel=3,
    )


def format_value(v: Any) -> Any:
    """A witness entry for JSON: an exact rational (FLINT or sympy) as its string
    (``"1/3"``), anything else as a float."""
    # A FLINT or sympy value means its package is loaded: look it up, never import it here.
    flint = sys.modules.get("flint")
    if flint is not None and isinstance(v, flint.fmpq):  # exact, written as sympy would
        from .linalg import fmpq_to_sympy

        v = fmpq_to_sympy(v)
    sympy = sys.modules.get("sympy")
    if sympy is not None and isinstance(v, sympy.Basic):
        from ..io import format_entry

        return format_entry(v)
    return float(v)


def format_vector(v) -> list:
    """:func:`format_value` of every entry."""
    return [format_value(x) for x in v]
