"""Parametric models: where the rank conditions degenerate (docs/theory.md, "Theorem H (head tuning)", "Theorem P (prompt tuning)", "Theorem M (attention heads)").

A parametric model's entries are sympy expressions of declared parameters (each with a
range and a value). Every locus here is a fact about the family, not a verdict on the
model (``holds`` is None, ``can_decide`` False), written as search (the real zeros of a
Gram determinant or an entry, on the declared range for one parameter, else the factored
equation) -> witness (a point on the locus and a point off it, from :func:`trial_values`)
-> verify (the exact rank at both points; an internal error if they disagree with the
locus) -> explain.

sympy is imported with this module, which :func:`hmmtune.analysis.check` loads only for
parametric models.
"""

from __future__ import annotations

from typing import Any

import sympy

from ..io import format_entry
from .condition import Condition
from .linalg import exact_rank
from ..task import Task
from .task import as_task

__all__ = ["parametric_conditions", "memory_parametric_conditions", "trial_values"]


def _locus(expr, params: dict):
    """Real points of the declared ranges where ``expr = 0``: a sympy set for one
    parameter, else the factored equation."""
    expr = sympy.factor(sympy.simplify(expr))
    if expr == 0:
        return expr, sympy.S.Reals if len(params) == 1 else None, "everywhere"
    if len(params) == 1:
        (p,) = params.values()
        dom = sympy.Interval(p["min"], p["max"])
        sol = sympy.solveset(expr, p["symbol"], domain=dom)
        return expr, sol, None
    return expr, None, None


def trial_values(p: dict) -> list:
    """Rational trial values of one parameter inside its declared range, in the order they
    are tried: the declared value, then ten evenly spaced interior points of a finite
    range (``min + (max - min) k / 11``), else ``k / 7`` for ``|k| <= 14``. Every search
    for a point on or off a locus walks this one grid."""
    lo, hi = p["min"], p["max"]
    cand = [p["value"]]
    if lo.is_finite and hi.is_finite:
        cand += [lo + (hi - lo) * sympy.Rational(k, 11) for k in range(1, 11)]
    else:
        cand += [sympy.Rational(k, 7) for k in range(-14, 15)]
    return [c for c in cand if lo <= c <= hi]


def _points_on_and_off(expr, params: dict) -> tuple[dict | None, dict | None]:
    """For several parameters: a point of the ranges on the locus ``expr = 0`` (solve for
    one parameter with the others at trial values) and a point off it."""
    syms = {name: p["symbol"] for name, p in params.items()}
    base = {p["symbol"]: p["value"] for p in params.values()}
    outside = None
    for name, p in params.items():
        for c in trial_values(p):
            point = {**base, syms[name]: c}
            if sympy.simplify(expr.subs(point)) != 0:
                outside = point
                break
        if outside:
            break
    inside = None
    for p in params.values():
        others = {k: v for k, v in base.items() if k != p["symbol"]}
        for trial in [others] + [{**others, q["symbol"]: c} for q in params.values() if q is not p for c in trial_values(q)]:
            sol = sympy.solveset(expr.subs(trial), p["symbol"], domain=sympy.Interval(p["min"], p["max"]))
            if isinstance(sol, sympy.FiniteSet) and len(sol):
                inside = {**trial, p["symbol"]: sorted(sol, key=lambda v: float(v))[0]}
                break
        if inside:
            break
    return inside, outside


def _rank_at(M, point: dict) -> int:
    N = M.subs(point)
    if all(e.is_Rational for e in N):
        return exact_rank(N)
    return int(N.applyfunc(sympy.nsimplify).rank(simplify=True))


def parametric_conditions(model, support: list[int] | None = None, task: Any = None) -> list[Condition]:
    """Degeneracy loci of the rank conditions of a parametric model (docs/theory.md, "Theorem H (head tuning)", "Theorem P (prompt tuning)").

    For ``W`` (and ``W[:, S]`` for a prompt support S) the rank is below the number of
    columns exactly where the Gram determinant ``det(W^T W)`` vanishes; sympy solves it on
    the declared range (one parameter) or returns the factored equation. Each locus is
    confirmed by the exact rank at a point inside it and at a point outside.
    """
    params = model.parameters or {}
    sym = model.symbolic
    out = []
    targets = [("head: rank W = m", list(range(model.num_states)))]
    if support is not None and len(support) < model.num_states:
        targets.append((f"prompt: rank W[:, S] = |S| for S = {support}", list(support)))
    W = sym["emission"].T
    for name, cols in targets:
        out.append(_rank_locus(name, W.extract(list(range(W.rows)), cols), cols, params)[0])
    task = as_task(task)
    if task is not None and task.exact is not None and task.cell is None and task.dim == model.num_states:
        out.append(_task_locus(model, task, params, out[0].witness))
    out += _graph_loci(model, params)
    return out


def memory_parametric_conditions(model) -> list[Condition]:
    """Degeneracy loci of Theorem M's memory non-degeneracy for a parametric
    :class:`hmmtune.MemoryHMM` (docs/theory.md, "Theorem M (attention heads)").

    For each local state ``s`` the ``V`` value columns ``W[:, (v, s)]`` (emission rows
    ``v * S + s``) are dependent exactly where their Gram determinant vanishes: one row per
    local state, found and confirmed as for :func:`parametric_conditions` (the exact rank at
    a point on the locus drops below V, at a point off it it is V). The memory condition
    (some local state has V independent value columns) fails exactly on the common zeros of
    these determinants: a last row gives them (the intersection of the zero sets for one
    parameter, else the system of equations), confirmed at a point on them (every local
    state degenerate) and a point off them (some local state not).
    """
    params = model.parameters or {}
    V, S = model.num_values, model.num_local_states
    W = model.symbolic["emission"].T  # (n, V * S), column v * S + s
    rows = list(range(W.rows))
    out, exprs, sols = [], [], []
    blocks = []
    for s in range(S):
        cols = [v * S + s for v in range(V)]
        Ws = W.extract(rows, cols)
        cond, expr, sol, note = _rank_locus(f"memory: rank W[:, (., s)] = V for s = {s}", Ws, cols, params)
        cond.witness["local_state"] = s
        out.append(cond)
        exprs.append(expr)
        sols.append(sol)
        blocks.append(Ws)
    name = "memory: rank W[:, (., s)] = V for some s"
    witness: dict[str, Any] = {"gram_determinants": [str(e) for e in exprs]}
    inside = outside = None
    if len(params) == 1:
        (p,) = params.values()
        common = sympy.Intersection(sympy.Interval(p["min"], p["max"]), *sols).simplify()
        witness["locus"] = str(common)
        text = (
            f"{name} fails exactly when {p['symbol']} in {common} (every local state degenerate there)"
            if common != sympy.S.EmptySet
            else f"{name} holds on the whole range [{p['min']}, {p['max']}]: the local states never degenerate together"
        )
        if isinstance(common, sympy.FiniteSet) and len(common):
            inside = {p["symbol"]: sorted(common, key=float)[0]}
        outside = next(({p["symbol"]: c} for c in trial_values(p) if _outside_set(c, common)), None)
    else:
        text = f"{name} fails exactly where " + " and ".join(f"{e} = 0" for e in exprs)
        inside, outside = _points_on_and_off(sympy.Add(*[e**2 for e in exprs]), params)
        inside = _common_zero(exprs, params) or inside
    checks = []
    for point, on in ((inside, True), (outside, False)):
        if point is None:
            continue
        ranks = [_rank_at(Ws, point) for Ws in blocks]
        checks.append(f"ranks {ranks} at {_point_text(point)}")
        witness["ranks_inside" if on else "ranks_outside"] = {"point": _point_text(point), "ranks": ranks}
        if on and max(ranks) >= V:
            raise AssertionError("internal error: a common locus point leaves a local state non-degenerate")
        if not on and V not in ranks:
            raise AssertionError("internal error: every local state is degenerate off the common locus")
    if checks:
        text += " (confirmed: " + ", ".join(checks) + ")"
    out.append(Condition(f"parametric: locus of {name}", None, "symbolic (sympy)", text, witness, can_decide=False))
    return out


def _outside_set(value, zeros) -> bool:
    """``value`` is certainly not in the sympy set ``zeros`` (False when sympy cannot
    decide membership, e.g. for a ConditionSet)."""
    try:
        return not bool(zeros.contains(value))
    except TypeError:
        return False


def _common_zero(exprs: list, params: dict) -> dict | None:
    """A point of the declared ranges where every expression vanishes, from sympy's
    ``solve`` of the polynomial system (parameters it leaves free are set to their
    declared values); None when it finds none there."""
    syms = [p["symbol"] for p in params.values()]
    base = {p["symbol"]: p["value"] for p in params.values()}
    try:
        sols = sympy.solve([sympy.numer(sympy.together(e)) for e in exprs if e != 0], syms, dict=True)
    except (NotImplementedError, ValueError):
        return None
    for sol in sols:
        point = {x: sympy.simplify(sol[x].subs(base)) if x in sol else base[x] for x in syms}
        if all(v.is_real and p["min"] <= v <= p["max"] for v, p in zip(point.values(), params.values())):
            if all(sympy.simplify(e.subs(point)) == 0 for e in exprs):
                return point
    return None


def _rank_locus(name: str, Ws, cols: list, params: dict):
    """The locus where the columns ``Ws`` of W (symbolic) lose full column rank: the real
    zeros of the Gram determinant, solved on the declared range (one parameter) or given
    as the factored equation, confirmed by the exact rank at a point on it and one off it.
    Returns ``(Condition, factored determinant, zero set or None, note)``."""
    gram = (Ws.T * Ws).det()
    expr, sol, note = _locus(gram, params)
    witness: dict[str, Any] = {"gram_determinant": str(expr), "columns": cols}
    inside = outside = None
    if note == "everywhere":
        text = f"{name} fails for every parameter value (det(W^T W) = 0 identically)"
    elif sol is not None and len(params) == 1:
        (p,) = params.values()
        witness["locus"] = str(sol)
        text = f"{name} fails exactly when {p['symbol']} in {sol}" if sol != sympy.S.EmptySet else f"{name} holds on the whole range [{p['min']}, {p['max']}]"
        if isinstance(sol, sympy.FiniteSet) and len(sol):
            r = sorted(sol, key=lambda v: float(v))[0]
            inside = {p["symbol"]: r}
        outside = next(({p["symbol"]: c} for c in trial_values(p) if c not in sol), None)
    else:
        text = f"{name} fails exactly where {expr} = 0"
        inside, outside = _points_on_and_off(expr, params)
    checks = [_confirm_rank(Ws, point, on, witness) for point, on in ((inside, True), (outside, False)) if point is not None]
    if checks:
        text += " (confirmed: " + ", ".join(checks) + ")"
    cond = Condition(f"parametric: locus of {name}", None, "symbolic (sympy)", text, witness, can_decide=False)
    return cond, expr, sol, note


def _confirm_rank(Ws, point: dict, on: bool, witness: dict) -> str:
    """Verify one confirming point of a rank locus: the exact rank of ``Ws`` there is below
    its number of columns on the locus (``on``) and equal to it off the locus; recorded
    in ``witness``. An internal error when the point disagrees with the locus."""
    rk = _rank_at(Ws, point)
    witness["rank_inside" if on else "rank_outside"] = {"point": _point_text(point), "rank": rk}
    if on and rk >= Ws.cols:
        raise AssertionError("internal error: locus point does not lower the rank")
    if not on and rk != Ws.cols:
        raise AssertionError("internal error: point off the locus is degenerate")
    return f"rank {rk} at {_point_text(point)}"


def _in_row_space(Wn: sympy.Matrix, diffs: list, rank: int | None = None) -> bool:
    """Every task row is in the row space of ``Wn`` (n x m; numeric or symbolic):
    ``rank [W^T | mu] = rank W^T`` (``rank``: ``Wn``'s rank when already known)."""
    r = Wn.rank(simplify=True) if rank is None else rank
    return all(Wn.T.row_join(sympy.Matrix(row)).rank(simplify=True) == r for row in diffs)


def _confirm_row_space(W, diffs: list, point: dict, witness: dict) -> str:
    """Verify the task at one point: in the row space of W there or not, recorded in
    ``witness["confirmed"]``."""
    ok = _in_row_space(W.subs(point), diffs)
    witness.setdefault("confirmed", []).append({"point": _point_text(point), "in_row_space": ok})
    return f"{'in' if ok else 'NOT in'} the row space at {_point_text(point)}"


def _task_locus(model, task: Task, params: dict, head_witness: dict) -> Condition:
    """Parameter values where the task leaves the row space of W (docs/theory.md,
    "Theorem H (head tuning)").

    With ``rank W = m`` every task is in the row space, so the task condition can only fail
    on the locus of ``rank W = m``. For one parameter that locus is a finite set or an
    interval; each of its points is checked exactly. Where W is rank-deficient for every
    value, the generic rank of ``[W^T | mu]`` against ``W^T`` decides (sympy, with
    simplification), and the verdict is confirmed at two rational points.
    """
    W = model.symbolic["emission"].T
    diffs = [list(r) for r in task.differences(exact=True)]
    witness: dict[str, Any] = {"task_rows": [[format_entry(v) for v in r] for r in diffs]}
    rank = W.rank(simplify=True)
    if rank == W.cols:
        text, points = _task_locus_full_rank(W, diffs, params, head_witness, witness)
    else:
        text, points = _task_locus_deficient(W, diffs, params, rank, witness)
    checks = [_confirm_row_space(W, diffs, point, witness) for point in points]
    if checks:
        text += " (confirmed: " + ", ".join(checks) + ")"
    return Condition("parametric: locus of head: task in row space of W", None, "symbolic (sympy)", text, witness, can_decide=False)


def _task_locus_full_rank(W, diffs: list, params: dict, head_witness: dict, witness: dict) -> tuple[str, list[dict]]:
    """W has full column rank generically: the task can leave its row space only on the
    locus of ``rank W = m``. Returns the text and the points to confirm."""
    if len(params) != 1:
        inside, outside = _points_on_and_off(sympy.factor((W.T * W).det()), params)
        text = "the task is in the row space of W wherever det(W^T W) != 0 (full column rank)"
        return text, [pt for pt in (inside, outside) if pt is not None]
    (p,) = params.values()
    x = p["symbol"]
    gram = sympy.factor((W.T * W).det())
    sol = sympy.solveset(gram, x, domain=sympy.Interval(p["min"], p["max"]))
    if not isinstance(sol, sympy.FiniteSet):
        locus = head_witness.get("locus")
        return f"the task is in the row space of W wherever rank W = m; W degenerates on {locus or sol}, not checked point by point", []
    pts = sorted(sol, key=float)
    fails = [v for v in pts if not _in_row_space(W.subs({x: v}), diffs)]
    witness["locus"] = str(sympy.FiniteSet(*fails)) if fails else "EmptySet"
    text = (
        f"the task is in the row space of W for every {x} in [{p['min']}, {p['max']}]"
        + (f" except {x} in {sympy.FiniteSet(*fails)}" if fails else "")
        + " (W has full column rank off the points "
        + f"{sympy.FiniteSet(*pts) if pts else 'of no locus'}; each locus point checked exactly)"
    )
    off = next((c for c in trial_values(p) if c not in sol), None)
    return text, [{x: v} for v in ([fails[0]] if fails else []) + ([off] if off is not None else [])]


def _task_locus_deficient(W, diffs: list, params: dict, rank: int, witness: dict) -> tuple[str, list[dict]]:
    """W is rank-deficient for every value: the generic ranks decide, confirmed at the
    declared values and at the first parameter's first other trial value."""
    gen = _in_row_space(W, diffs, rank)
    witness["generic_rank"] = rank
    witness["generic_in_row_space"] = gen
    text = (
        f"W has rank {rank} < m = {W.cols} for every parameter value; generically the task is "
        + ("in its row space" if gen else "NOT in its row space")
        + " (symbolic ranks; special values where the ranks drop are not enumerated)"
    )
    base = {p["symbol"]: p["value"] for p in params.values()}
    first = next(iter(params.values()))
    other = next((c for c in trial_values(first) if c != first["value"]), None)
    return text, [base] + ([{**base, first["symbol"]: other}] if other is not None else [])


def _graph_loci(model, params: dict) -> list[Condition]:
    """Parameter values where an initial or transition entry vanishes, which changes the
    transition graph and hence the supports a prompt can reach (docs/theory.md,
    "Reachable prompt supports"). One condition listing them, or nothing when every
    such entry is constant."""
    sym = model.symbolic
    hits = []
    for key in ("initial", "transition"):
        M = sym[key]
        for idx in range(len(M)):
            e = M[idx]
            if not getattr(e, "free_symbols", None):
                continue
            expr, sol, note = _locus(e, params)
            if note == "everywhere":
                continue
            where = f"{key}[{idx // M.cols}, {idx % M.cols}]" if key == "transition" else f"initial[{idx}]"
            hits.append((where, str(expr), str(sol) if sol is not None else f"{expr} = 0"))
    if not hits:
        return []
    text = "the transition graph (and so the prompt supports of Theorem P) changes where " + "; ".join(
        f"{w} = 0 ({loc})" for w, _, loc in hits
    ) + "; off these values the graph, hence the prompt verdict's support search, is the one at the model's value"
    return [
        Condition(
            "parametric: locus of prompt: transition graph",
            None,
            "symbolic (sympy)",
            text,
            {"entries": [{"entry": w, "expression": e, "zero_set": loc} for w, e, loc in hits]},
            can_decide=False,
        )
    ]


def _point_text(point: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in point.items())
