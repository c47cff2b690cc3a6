"""Every numerical tolerance of the checks, named once with what it bounds.

Exact models are decided in rational arithmetic and need none of these; they bound the
float64 paths (numerical ranks use numpy's rule, see :func:`hmmtune.analysis.linalg.numerical_rank`).
Method strings and docstrings quote the values through :func:`as_text`, so the text a
report prints always matches the constant used (docs/theory.md, "Tolerance mode").
"""

from __future__ import annotations

__all__ = [
    "TIE_MARGIN",
    "PREIMAGE_RESIDUAL",
    "LEAK_ROUNDING",
    "LEAK_FLOOR",
    "STATIONARY",
    "BEST_ACCURACY_MAX_INPUTS",
    "FARKAS_SUPPORT",
    "MERGE_DECIMALS",
    "MILP_MARGIN",
    "HINGE_BOX",
    "ADVERSARIAL_STEP",
    "GREEDY_EPS",
    "as_text",
]

#: A sampled input whose task margin (top class score minus the runner-up,
#: :func:`hmmtune.analysis.evidence.task_margin`) is at most this is a tie: it lies on the
#: decision boundary, where no head can be wrong or right, and is left out of agreements
#: and LP certificates (head and prompt rooms).
TIE_MARGIN = 1e-12

#: A numerical head witness ``b`` solves ``W_K^T b = mu`` when the largest residual is at
#: most ``PREIMAGE_RESIDUAL * max(1, |mu|_inf) * max(1, |b|_inf)`` (relative to the
#: target and to the head, so scaled tasks and large heads are judged alike).
PREIMAGE_RESIDUAL = 1e-9

#: Relative slack for float64 rounding in the tolerance-mode leak bound: ``rho`` is inflated
#: by this factor and a certified margin must also exceed this times its own scale
#: (float64 recursions of ``T + k`` steps err by far less).
LEAK_ROUNDING = 1e-9

#: Floor of ``1 - leak`` in the uniform leak bound (the whole prior outside S would divide
#: by zero; the bound is then >= 1 and certifies nothing).
LEAK_FLOOR = 1e-300

#: A float initial law is stationary when ``max |pi A - pi|`` is at most this.
STATIONARY = 1e-12

#: The best-accuracy program (MILP) beside an infeasible LP certificate runs only on input
#: sets of at most this many inputs (it takes tens of seconds beyond).
BEST_ACCURACY_MAX_INPUTS = 1000

#: LP Farkas weights above this are the certificate's support (the inputs it rests on).
FARKAS_SUPPORT = 1e-12

#: Features are rounded to this many decimals when identical inputs are merged before the
#: best-accuracy program.
MERGE_DECIMALS = 12

#: Smallest score margin the best-accuracy MILP asks of a correctly classified input.
MILP_MARGIN = 1e-4

#: Box on the head variables of the hinge-loss LP (free variables trip HiGHS on
#: ill-conditioned features).
HINGE_BOX = 1e6

#: Theorem H's worst-case perturbation is taken at ``(1 -/+ ADVERSARIAL_STEP) eps*``.
ADVERSARIAL_STEP = 1e-6

#: Added to the number of new support states in the greedy prompt-support search, so a
#: candidate that adds none ranks first instead of dividing by zero.
GREEDY_EPS = 1e-9


def as_text(value: float) -> str:
    """A tolerance as reports print it: ``1e-9``, ``1e-12``, ``1e-4`` (scientific notation,
    no trailing zeros, no zero-padded exponent)."""
    mantissa, exponent = f"{value:e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
