"""Markov-chain facts of the transition graph: a report section, not a condition of the
theorems (docs/theory.md, "Reachable prompt supports").

:func:`chain_facts` reads the arrays it needs, ``transition`` and ``initial``, so the
Z-chain of a memory HMM and the chain of an HMM go through the same function. Facts never
decide the exit code (``holds`` is None, ``can_decide`` False).
"""

from __future__ import annotations

import warnings
from typing import Any

from . import graph, matrices
from .condition import Condition

__all__ = ["chain_facts", "model_chain_facts", "chain_condition", "NAME"]

#: the row this room writes
NAME = "chain structure"


def chain_facts(transition: Any, initial: Any, tau: float = 0.0, *, exact: bool = False) -> Condition:
    """Strongly connected and attracting components, periods and unreachable states.

    Args:
        transition: (m, m) float64 array, or exact entries (a FLINT or sympy matrix) when
            ``exact``.
        initial: (m,) the initial law (exact entries when ``exact``).
        tau: transition entries at or below tau are not edges (tolerance mode); 0 is exact.
        exact: the entries are exact rationals (the method then reads "exact graph").

    Returns:
        A fact: a :class:`Condition` with ``holds=None`` and ``can_decide=False``.
    """
    cs = graph.chain_structure(transition, initial, tau)
    parts = [f"{len(cs.components)} strongly connected component(s)"]
    if cs.irreducible:
        parts.append("irreducible and aperiodic" if cs.aperiodic else f"irreducible with period {cs.periods[0]}")
    else:
        parts.append(f"{len(cs.attracting)} attracting")
    if cs.unreachable:
        parts.append(f"states {cs.unreachable} unreachable from the initial distribution")
    return Condition(
        NAME,
        None,
        "exact graph" if exact else (f"graph at tau={tau:g}" if tau > 0 else "graph of positive entries"),
        ", ".join(parts),
        {
            "components": cs.components,
            "periods": cs.periods,
            "attracting": cs.attracting,
            "unreachable": cs.unreachable,
            "irreducible": cs.irreducible,
            "aperiodic": cs.aperiodic,
        },
        can_decide=False,
    )


def model_chain_facts(model, tau: float = 0.0) -> Condition:
    """:func:`chain_facts` of an :class:`hmmtune.HMM` (its exact entries when it has them
    and ``tau == 0``)."""
    transition, initial, exact = matrices.chain_arrays(model, tau)
    return chain_facts(transition, initial, tau, exact=exact)


def chain_condition(model, tau: float = 0.0) -> Condition:
    """Deprecated (one release): the chain structure is a fact, not a condition; use
    :func:`chain_facts` on the arrays (or :func:`model_chain_facts` on an HMM)."""
    warnings.warn(
        "chain_condition is deprecated: chain structure is a fact, not a condition; use "
        "hmmtune.analysis.chain_facts(transition, initial, tau) or chain.model_chain_facts(model, tau)",
        DeprecationWarning,
        stacklevel=2,
    )
    return model_chain_facts(model, tau)
