"""Independent references for the analysis tests: exact rational arithmetic by brute-force
enumeration over hidden paths with :class:`fractions.Fraction`, written from docs/theory.md
sections 2-5. Nothing here calls :mod:`hmmtune.analysis` or FLINT.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import sympy


def frac(x: Any) -> Fraction:
    """A Fraction from a witness entry: an int, a string "p/q", a sympy Rational."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, bool):
        raise TypeError("bool is not a number here")
    if isinstance(x, int):
        return Fraction(x)
    if isinstance(x, str):
        return Fraction(x.replace(" ", ""))
    if isinstance(x, sympy.Basic) and x.is_Rational:
        return Fraction(int(x.p), int(x.q))
    raise TypeError(f"not an exact entry: {x!r}")


def to_fracs(M) -> list:
    """Nested lists of Fractions from floats (through limit_denominator) or exact entries."""
    if isinstance(M, (list, tuple, np.ndarray)):
        return [to_fracs(v) for v in M]
    if isinstance(M, (float, np.floating)):
        return Fraction(float(M)).limit_denominator(1000)
    return frac(M)


def model_dict(pi, A, B, **extra) -> dict:
    """A model-file dict with exact string entries (rows must sum to 1 exactly)."""
    s = lambda v: str(v)
    d = {
        "kind": "hmm",
        "format_version": 1,
        "initial": [s(v) for v in pi],
        "transition": [[s(v) for v in row] for row in A],
        "emission": [[s(v) for v in row] for row in B],
    }
    d.update(extra)
    return d


def exact_model(pi, A, B, **extra):
    """An exact HMM loaded from a dict (entries converted to Fractions first)."""
    from hmmtune.io import hmm_from_json

    return hmm_from_json(model_dict(to_fracs(pi), to_fracs(A), to_fracs(B), **extra))


def brute_p0(pi, A, B, x: Sequence[int], prompt=None) -> tuple[list[Fraction], Fraction]:
    """``P(H_0 | [prompt] [MASK] x_1..x_T)`` and the total weight, exactly, by depth-first
    enumeration of every hidden path (branches of weight zero are cut).

    The chain starts at the first position (the first prompt token, else the mask) from
    ``pi``; prompt rows multiply as likelihoods; the mask emits nothing.
    """
    m = len(pi)
    k = 0 if prompt is None else len(prompt)
    factors = [list(prompt[j]) for j in range(k)] + [None] + [[B[h][t] for h in range(m)] for t in x]
    L = len(factors)
    acc = [Fraction(0)] * m

    def rec(pos: int, h: int, w: Fraction, h0: int):
        f = factors[pos]
        if f is not None:
            w = w * f[h]
            if w == 0:
                return
        if pos == k:
            h0 = h
        if pos == L - 1:
            acc[h0] += w
            return
        for g in range(m):
            a = A[h][g]
            if a:
                rec(pos + 1, g, w * a, h0)

    for h in range(m):
        if pi[h]:
            rec(0, h, Fraction(pi[h]), -1)
    total = sum(acc, Fraction(0))
    if total == 0:
        return [Fraction(0)] * m, total
    return [a / total for a in acc], total


def mat_T_vec(B, p) -> list[Fraction]:
    """``W p`` with ``W = B^T``: the oracle output over tokens, exactly."""
    m, n = len(B), len(B[0])
    return [sum((B[h][t] * p[h] for h in range(m)), Fraction(0)) for t in range(n)]


def dot(a, b) -> Fraction:
    return sum((x * y for x, y in zip(a, b)), Fraction(0))


def all_inputs(n: int, T: int):
    return list(itertools.product(range(n), repeat=T))


def prompt_prior_exact(pi, A, u) -> list[Fraction]:
    """``r(u)`` of docs/theory.md, "Prompts" in Fractions, normalised."""
    m = len(pi)
    a = [pi[h] * u[0][h] for h in range(m)]
    for row in u[1:]:
        a = [sum((a[i] * A[i][j] for i in range(m)), Fraction(0)) * row[j] for j in range(m)]
    r = [sum((a[i] * A[i][j] for i in range(m)), Fraction(0)) for j in range(m)]
    tot = sum(r, Fraction(0))
    return [v / tot for v in r]


def backward_p0(pi, A, B, x: Sequence[int]) -> tuple[list[Fraction], Fraction]:
    """``P(H_0 | x_1..x_T)`` exactly by the backward recursion of docs/theory.md, "Conventions"
    (``beta_{t-1} = A (B[:, x_t] * beta_t)``) in Fractions: for inputs too long to
    enumerate paths. Returns (posterior, total)."""
    m = len(pi)
    beta = [Fraction(1)] * m
    for t in reversed(list(x)):
        v = [B[h][t] * beta[h] for h in range(m)]
        beta = [sum((A[i][j] * v[j] for j in range(m)), Fraction(0)) for i in range(m)]
    w = [Fraction(pi[h]) * beta[h] for h in range(m)]
    tot = sum(w, Fraction(0))
    if tot == 0:
        return [Fraction(0)] * m, tot
    return [v / tot for v in w], tot
