"""Linear (in)separability with Farkas certificates (docs/theory.md, "Theorem H (head tuning)").

No linear head ``(b, c)`` reproduces binary labels ``y`` on features ``G_x`` exactly when
the LP ``s_x (b . G_x + c) >= 1`` (``s_x = 2 y_x - 1``) is infeasible. Its Farkas
alternative is a vector ``lambda >= 0``, ``sum lambda = 1``, with
``sum_x lambda_x s_x G_x = 0`` and ``sum_x lambda_x s_x = 0``: a point lies in the convex
hulls of both classes. We solve the alternative with scipy's HiGHS and then check the
weights independently: in exact rational arithmetic when the model has exact entries
(the features of the few inputs the weights rest on are recomputed exactly and the
weights re-solved over the rationals), otherwise by the residual in float64.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Sequence

from typing import TYPE_CHECKING

import flint
import numpy as np

from .linalg import exact_solve, fmpq_to_sympy, to_fmpq_mat
from .tolerances import FARKAS_SUPPORT, HINGE_BOX, MERGE_DECIMALS, MILP_MARGIN, as_text

if TYPE_CHECKING:
    import sympy

__all__ = [
    "SeparabilityResult",
    "linear_separability",
    "exact_mask_posterior",
    "all_inputs",
    "best_linear_accuracy",
    "BestAccuracy",
    "best_linear_accuracy_detail",
]


_SCIPY_NAMES = ("Bounds", "LinearConstraint", "linprog", "milp")


def __getattr__(name: str):
    """scipy.optimize's solvers, imported on first use (module ``__getattr__``): a check
    that needs no LP does not pay for scipy's import."""
    if name in _SCIPY_NAMES:
        import scipy.optimize

        value = getattr(scipy.optimize, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _scipy(name: str):
    """The solver ``name`` as this module sees it (a test may have replaced it)."""
    return globals()[name] if name in globals() else __getattr__(name)


@contextlib.contextmanager
def _solver_output_silenced():
    """HiGHS can print from C straight to file descriptor 1 (for example when a MIP time
    limit strikes), which would corrupt ``hmmtune check --json``: point fd 1 at /dev/null
    while a solver runs."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def all_inputs(num_tokens: int, length: int) -> np.ndarray:
    """Every sequence in ``[n]^T`` as an (n^T, T) int64 array (lexicographic order)."""
    return np.array(list(itertools.product(range(num_tokens), repeat=length)), dtype=np.int64).reshape(-1, length)


def exact_mask_posterior(exact: dict, tokens: Sequence[int]) -> list[sympy.Rational]:
    """``P(H_0 | x_1..x_T)`` in exact rational arithmetic (docs/theory.md, "The perfect masked LM"), for checking.

    Args:
        exact: dict of sympy matrices ``initial`` (m,), ``transition`` (m, m),
            ``emission`` (m, n) with rational entries.
        tokens: x_1..x_T.
    """
    A = to_fmpq_mat(exact["transition"])
    E = to_fmpq_mat(exact["emission"])
    m = A.nrows()
    P = to_fmpq_mat(exact["initial"])
    pi = [fmpq_to_sympy(P[i, 0] if P.ncols() == 1 else P[0, i]) for i in range(m)]
    beta = flint.fmpq_mat(m, 1, [1] * m)
    for x in reversed(list(tokens)):
        v = flint.fmpq_mat(m, 1, [E[h, int(x)] * beta[h, 0] for h in range(m)])
        beta = A * v
    w = [pi[h] * fmpq_to_sympy(beta[h, 0]) for h in range(m)]
    total = sum(w)
    if total == 0:
        raise ValueError(f"input {list(tokens)} has probability zero after the mask")
    return [v / total for v in w]


@dataclass
class SeparabilityResult:
    """Outcome of :func:`linear_separability`.

    Attributes:
        separable: a linear head reproduces every label.
        head: (b, c) with ``s_x (b . G_x + c) >= 1`` when separable.
        weights: Farkas weights ``{input index: lambda}`` when not separable.
        verified: how the certificate was checked ("exact", "float64 residual r").
        residual: max-norm of ``sum lambda s G`` and ``sum lambda s`` (float check).
        num_inputs: size of the input set.
    """

    separable: bool
    head: tuple[np.ndarray, float] | None = None
    weights: dict[int, Any] = field(default_factory=dict)
    verified: str = ""
    residual: float | None = None
    num_inputs: int = 0


def linear_separability(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    exact_features=None,
) -> SeparabilityResult:
    """Decide whether a linear head reproduces binary ``labels`` on ``features``.

    Args:
        features: (N, n) float features ``G_x``.
        labels: (N,) in {0, 1}.
        exact_features: optional callable ``i -> list of sympy Rationals`` giving the exact
            feature vector of input i, used to verify a Farkas certificate exactly.
    """
    linprog = _scipy("linprog")

    G = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    N, n = G.shape
    s = 2.0 * y - 1.0
    if np.all(y == y[0]):
        return SeparabilityResult(True, (np.zeros(n), float(s[0])), num_inputs=N)
    # Farkas alternative: lambda >= 0, sum lambda = 1, sum lambda s G = 0, sum lambda s = 0.
    A_eq = np.vstack([(s[:, None] * G).T, s[None, :], np.ones((1, N))])
    b_eq = np.zeros(n + 2)
    b_eq[-1] = 1.0
    with _solver_output_silenced():
        res = linprog(np.zeros(N), A_eq=A_eq, b_eq=b_eq, bounds=(0, None), method="highs")
    if res.status == 0:
        lam = np.clip(res.x, 0, None)
        lam = lam / lam.sum()
        resid = float(np.abs(A_eq[:-1] @ lam).max())
        support = [int(i) for i in np.nonzero(lam > FARKAS_SUPPORT)[0]]
        weights: dict[int, Any] = {i: float(lam[i]) for i in support}
        verified = f"float64 residual {resid:.2e}"
        if exact_features is not None:
            exact_w = _exact_farkas(support, s, exact_features)
            if exact_w is not None:
                weights, verified = exact_w, "exact"
        return SeparabilityResult(False, weights=weights, verified=verified, residual=resid, num_inputs=N)
    # Separable: find the head (maximise nothing, constraints s (b.G + c) >= 1).
    A_ub = -s[:, None] * np.hstack([G, np.ones((N, 1))])
    with _solver_output_silenced():
        res2 = linprog(np.zeros(n + 1), A_ub=A_ub, b_ub=-np.ones(N), bounds=(None, None), method="highs")
    if res2.status != 0:
        raise RuntimeError(f"HiGHS found neither a separating head nor a Farkas certificate ({res.message}; {res2.message})")
    b, c = res2.x[:n], float(res2.x[n])
    return SeparabilityResult(True, (b, c), num_inputs=N, verified="float64")


def _exact_farkas(support: list[int], s: np.ndarray, exact_features) -> dict[int, Any] | None:
    """Re-solve the Farkas system over the rationals on the LP's support; check lambda >= 0."""
    feats = [exact_features(i) for i in support]
    n = len(feats[0])
    k = len(support)
    rows = []
    for h in range(n):
        rows.append([int(s[support[j]]) * feats[j][h] for j in range(k)])
    rows.append([int(s[support[j]]) for j in range(k)])
    rows.append([1] * k)
    rhs = [0] * (n + 1) + [1]
    lam = exact_solve(rows, rhs)
    if lam is None or any(v < 0 for v in lam):
        return None
    # Independent check of the identity by direct summation.
    for h in range(n):
        if sum(lam[j] * int(s[support[j]]) * feats[j][h] for j in range(k)) != 0:
            return None
    if sum(lam[j] * int(s[support[j]]) for j in range(k)) != 0 or sum(lam) != 1:
        return None
    return {support[j]: lam[j] for j in range(k) if lam[j] != 0}


def best_linear_accuracy(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    margin: float = MILP_MARGIN,
    node_limit: int = 200,
    time_limit: float = 60.0,
    max_milp_inputs: int = 300,
) -> tuple[float, bool]:
    """Accuracy of the best linear head ``1[b . G + c >= 0]`` found by a mixed-integer program.

    Above ``max_milp_inputs`` distinct inputs the mixed-integer program is too slow for a
    report (tens of seconds at 1000 inputs); the head then comes from the hinge-loss LP
    (minimise the total slack of ``s_x (b . G_x + c) >= 1``), a fast heuristic whose
    accuracy is still measured directly on the inputs (never proven optimal).

    HiGHS minimises the number of violated inputs subject to
    ``s_x (b . G_x + c) >= margin - 3 z_x`` with ``b, c`` in [-1, 1] and ``z_x`` binary
    (features on the simplex keep ``|b . G + c| <= 2``); identical inputs are merged with
    weights. The head it returns is then evaluated directly on the inputs, so the
    reported accuracy is one that a concrete head achieves (a lower bound on the best;
    equal to it unless a better head needs a margin below ``margin``, which the solver's
    feasibility tolerance could not tell from zero anyway).

    The search stops after ``node_limit`` branch-and-bound nodes (deterministic, so the
    reported number does not depend on the machine's speed) or, as a safety net,
    ``time_limit`` seconds.

    Returns:
        ``(accuracy, proven_optimal)``; not optimal when a limit stopped HiGHS.
    """
    acc, opt, _ = _best_binary_impl(features, labels, margin, node_limit, time_limit, max_milp_inputs)
    return acc, opt


def _best_binary_impl(G: np.ndarray, y: np.ndarray, margin: float, node_limit: int, time_limit: float, max_milp_inputs: int):
    """Implementation of :func:`best_linear_accuracy` (same arguments); also returns the
    solver result."""
    Bounds, LinearConstraint, linprog, milp = (_scipy(k) for k in ("Bounds", "LinearConstraint", "linprog", "milp"))

    G = np.asarray(G, dtype=np.float64)
    y = np.asarray(y).astype(int)
    key = np.hstack([np.round(G, MERGE_DECIMALS), y[:, None]])
    uniq, inv, counts = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    Gu, yu = uniq[:, :-1], uniq[:, -1].astype(int)
    K, n = Gu.shape
    s = 2.0 * yu - 1.0
    if K > max_milp_inputs:
        # variables (b, c, xi): minimise counts . xi  s.t.  s (b . G + c) + xi >= 1, xi >= 0
        A_ub = -np.hstack([s[:, None] * Gu, s[:, None], np.eye(K)])
        cost = np.concatenate([np.zeros(n + 1), counts.astype(float)])
        bounds = [(-HINGE_BOX, HINGE_BOX)] * (n + 1) + [(0, None)] * K  # free variables trip HiGHS on ill-conditioned G
        with _solver_output_silenced():
            res = linprog(cost, A_ub=A_ub, b_ub=-np.ones(K), bounds=bounds, method="highs")
        if res.x is None:
            return float("nan"), False, None
        b, c = res.x[:n], res.x[n]
        return float(((G @ b + c >= 0).astype(int) == y).mean()), False, None
    c_obj = np.concatenate([np.zeros(n + 1), counts.astype(float)])
    A = np.hstack([s[:, None] * Gu, s[:, None], 3.0 * np.eye(K)])
    cons = LinearConstraint(A, lb=np.full(K, margin), ub=np.full(K, np.inf))
    lb = np.concatenate([-np.ones(n + 1), np.zeros(K)])
    ub = np.concatenate([np.ones(n + 1), np.ones(K)])
    integrality = np.concatenate([np.zeros(n + 1), np.ones(K)])
    with _solver_output_silenced():
        res = milp(c_obj, constraints=[cons], bounds=Bounds(lb, ub), integrality=integrality, options={"node_limit": node_limit, "time_limit": time_limit, "disp": False})
    if res.x is None:
        return float("nan"), False, res
    b, c = res.x[:n], res.x[n]
    acc = float(((G @ b + c >= 0).astype(int) == y).mean())
    return acc, res.status == 0, res


@dataclass
class BestAccuracy:
    """The best linear head's accuracy on a finite input set, with what is proven.

    Attributes:
        accuracy: accuracy of a concrete head found (measured directly on the inputs).
        proven_optimal: the mixed-integer program finished, so no linear head does better
            (up to the margin caveat of :func:`best_linear_accuracy`).
        upper_bound: an accuracy no linear head exceeds (from the MILP's dual bound), or
            None when unknown (the hinge-loss heuristic gives none).
        method: ``"MILP, proven optimal"``, ``"MILP stopped at its node limit: a lower
            bound"`` or ``"hinge-loss LP heuristic: a lower bound"``.
    """

    accuracy: float
    proven_optimal: bool
    upper_bound: float | None
    method: str

    def describe(self) -> str:
        """One phrase for a report's text."""
        if self.accuracy != self.accuracy:
            return "the best linear accuracy could not be computed"
        if self.proven_optimal:
            return f"the best linear head reaches {100 * self.accuracy:.1f}% (MILP, proven optimal)"
        how = "the MILP stopped at its node limit" if self.method.startswith("MILP") else "hinge-loss LP heuristic"
        up = f"; no linear head with margin >= {as_text(MILP_MARGIN)} exceeds {100 * self.upper_bound:.1f}% (MILP dual bound)" if self.upper_bound is not None else ""
        return f"a linear head found by search reaches {100 * self.accuracy:.1f}%: a LOWER BOUND on the best ({how}{up})"

    def to_dict(self) -> dict:
        return {"accuracy": self.accuracy, "proven_optimal": self.proven_optimal, "upper_bound": self.upper_bound, "method": self.method}


def best_linear_accuracy_detail(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    margin: float = MILP_MARGIN,
    node_limit: int = 200,
    time_limit: float = 60.0,
    max_milp_inputs: int = 300,
) -> BestAccuracy:
    """Best accuracy of a linear head ``argmax_c (w_c . G + c_c)`` for any number of
    classes, with what is proven (see :class:`BestAccuracy`).

    Two classes: :func:`best_linear_accuracy`'s program. ``C > 2`` classes: HiGHS
    minimises the number of violated inputs subject to
    ``(w_y - w_c) . G_x + (c_y - c_c) >= margin - 5 z_x`` for every class ``c != y_x``,
    with ``w, c`` in [-1, 1] (features on the simplex keep the left side within 4) and
    ``z_x`` binary; identical inputs are merged with weights. Above ``max_milp_inputs``
    distinct inputs, the multiclass hinge-loss LP gives a head (a lower bound). The head
    found is always evaluated directly on the inputs (ties count as errors).
    """
    Bounds, LinearConstraint, linprog, milp = (_scipy(k) for k in ("Bounds", "LinearConstraint", "linprog", "milp"))
    G = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels).astype(int)
    classes = sorted(set(y.tolist()))
    if len(classes) <= 2:
        yy = (y == classes[-1]).astype(int) if len(classes) == 2 else np.zeros_like(y)
        if len(classes) < 2:
            return BestAccuracy(1.0, True, 1.0, "one class: a constant head")
        acc, opt, up = _binary_best(G, yy, margin, node_limit, time_limit, max_milp_inputs)
        return BestAccuracy(acc, opt, up, _method(opt, up, len(np.unique(np.hstack([np.round(G, MERGE_DECIMALS), yy[:, None]]), axis=0)) > max_milp_inputs))
    idx = {c: i for i, c in enumerate(classes)}
    yi = np.array([idx[v] for v in y.tolist()])
    C = len(classes)
    key = np.hstack([np.round(G, MERGE_DECIMALS), yi[:, None]])
    uniq, counts = np.unique(key, axis=0, return_counts=True)
    Gu, yu = uniq[:, :-1], uniq[:, -1].astype(int)
    K, n = Gu.shape
    nv = C * n + C  # weights (C, n) row-major, then biases

    def diff_row(x, a, c):
        row = np.zeros(nv)
        row[a * n:(a + 1) * n] += Gu[x]
        row[c * n:(c + 1) * n] -= Gu[x]
        row[C * n + a] += 1
        row[C * n + c] -= 1
        return row

    pairs = [(x, c) for x in range(K) for c in range(C) if c != yu[x]]
    D = np.array([diff_row(x, yu[x], c) for x, c in pairs])
    xs = np.array([x for x, _ in pairs])
    if K > max_milp_inputs:
        # minimise counts . xi  s.t.  D theta + xi_x >= 1
        A = np.hstack([D, np.eye(K)[xs]])
        cost = np.concatenate([np.zeros(nv), counts.astype(float)])
        bounds = [(-HINGE_BOX, HINGE_BOX)] * nv + [(0, None)] * K
        with _solver_output_silenced():
            res = linprog(cost, A_ub=-A, b_ub=-np.ones(len(pairs)), bounds=bounds, method="highs")
        if res.x is None:
            return BestAccuracy(float("nan"), False, None, "hinge-loss LP heuristic: failed")
        return BestAccuracy(_multi_acc(G, yi, res.x, C, n), False, None, _method(False, None, True))
    A = np.hstack([D, 5.0 * np.eye(K)[xs]])
    cons = LinearConstraint(A, lb=np.full(len(pairs), margin), ub=np.full(len(pairs), np.inf))
    c_obj = np.concatenate([np.zeros(nv), counts.astype(float)])
    lb = np.concatenate([-np.ones(nv), np.zeros(K)])
    ub = np.concatenate([np.ones(nv), np.ones(K)])
    integrality = np.concatenate([np.zeros(nv), np.ones(K)])
    with _solver_output_silenced():
        res = milp(c_obj, constraints=[cons], bounds=Bounds(lb, ub), integrality=integrality, options={"node_limit": node_limit, "time_limit": time_limit, "disp": False})
    if res.x is None:
        return BestAccuracy(float("nan"), False, None, "MILP found no head")
    acc = _multi_acc(G, yi, res.x, C, n)
    opt = res.status == 0
    up = _dual_upper(res, len(y), opt, acc)
    return BestAccuracy(acc, opt, up, _method(opt, up, False))


def _multi_acc(G, yi, theta, C, n) -> float:
    Wt = theta[: C * n].reshape(C, n)
    b = theta[C * n: C * n + C]
    S = G @ Wt.T + b
    top = S.max(1, keepdims=True)
    unique_top = (S == top).sum(1) == 1
    return float(((S.argmax(1) == yi) & unique_top).mean())


def _dual_upper(res, N, opt, acc):
    if opt:
        return acc
    bound = getattr(res, "mip_dual_bound", None)
    if bound is None or not np.isfinite(bound):
        return None
    return float(min(1.0, 1.0 - max(0.0, bound) / N))


def _method(opt, up, heuristic) -> str:
    if heuristic:
        return "hinge-loss LP heuristic: a lower bound"
    return "MILP, proven optimal" if opt else "MILP stopped at its node limit: a lower bound"


def _binary_best(G, y, margin, node_limit, time_limit, max_milp_inputs):
    """(accuracy, proven, upper bound) of :func:`best_linear_accuracy`'s program."""
    acc, opt, res = _best_binary_impl(G, y, margin, node_limit, time_limit, max_milp_inputs)
    up = _dual_upper(res, len(y), opt, acc) if res is not None else None
    return acc, opt, up
