"""Theorem M: memory-augmented HMMs (docs/theory.md, "Memory-augmented HMMs", "Theorem M (attention heads)").

The emission rows of a :class:`hmmtune.MemoryHMM` are indexed ``v * S + s`` (value v,
local state s). Memory non-degeneracy asks that for SOME local state s the V value columns
``W[:, (., s)]`` be independent; the flattened vanilla condition (all ``V*S`` columns)
is reported beside it. :func:`memory_condition` is written as search (the rank facts per
local state) -> witness (the head ``b`` for the best local state ``s*``) -> verify (anchors
and leave-one-out stability on sampled sequences) -> explain.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import matrices
from .condition import Condition
from .linalg import RankFacts, least_squares, rank_facts
from ..task import Task
from .task import as_task

__all__ = ["memory_condition", "memory_rank_facts", "NAME"]

#: the row that decides (the others are facts)
NAME = "memory: rank W[:, (., s)] = V for some s"


def memory_condition(
    model,
    task: Any = None,
    *,
    num_inputs: int = 200,
    length: int = 64,
    seed: int = 0,
    tol: float | None = None,
    anchor_threshold: float = 0.99,
) -> list[Condition]:
    """Theorem M for a :class:`hmmtune.MemoryHMM` (docs/theory.md, "Theorem M (attention heads)").

    Returns: memory non-degeneracy (for some local state s the V columns ``W[:, (., s)]``
    are independent; witness: the rank per s), the flattened vanilla condition beside it
    (all ``V*S`` columns), and with a task the empirical facts on sampled sequences: the
    witness head ``b`` for the best local state ``s*``, the anchor rate (positions with
    ``P(J_t = j*, S_t = s* | x_{-t}) >= anchor_threshold``), the leave-one-out stability
    (share of positions where ``mu . P(M_{j*} | x_{-t})`` has the sign of the label) and
    the largest gap ``|b . G_t(x) - mu . P(M_{j*} | x_{-t})|`` at anchors.
    """
    per_s, flat = memory_rank_facts(model, tol)
    good = [s for s, f in enumerate(per_s) if f.rank == model.num_values]
    out = _explain_ranks(model, per_s, flat, good)
    task = as_task(task)
    if task is None or not good:
        return out
    _check_memory_task(model, task)
    s_star = max(good, key=lambda s: per_s[s].sigma_min)
    b = _memory_head(model, task, s_star)
    out.append(_explain_anchors(s_star, b, _verify_anchors(model, task, s_star, b, num_inputs, length, seed, anchor_threshold)))
    return out


# ----------------------------------------------------------------- search
def memory_rank_facts(model, tol: float | None = None) -> tuple[list[RankFacts], RankFacts]:
    """Rank facts of the V value columns ``W[:, (., s)]`` for each local state s, and of
    all ``V*S`` columns (exact when the model has exact entries)."""
    V, S, n = model.num_values, model.num_local_states, model.num_tokens
    E = matrices.emission(model)  # (V*S, n), row v*S + s
    ex = model.exact["emission"] if getattr(model, "exact", None) else None
    per_s = []
    for s in range(S):
        rows = [v * S + s for v in range(V)]
        per_s.append(rank_facts(E[rows].T, ex.extract(rows, list(range(n))).T if ex is not None else None, tol))
    return per_s, rank_facts(E.T, ex.T if ex is not None else None, tol)


def _explain_ranks(model, per_s: list[RankFacts], flat: RankFacts, good: list[int]) -> list[Condition]:
    """The memory non-degeneracy row and the flattened vanilla fact beside it."""
    V, S, n = model.num_values, model.num_local_states, model.num_tokens
    return [
        Condition(
            NAME,
            bool(good),
            per_s[0].method,
            (
                f"for local state(s) {good} the V={V} value columns of W are independent: the memory is recoverable (Theorem M)"
                if good
                else f"no local state has V={V} independent value columns (ranks {[f.rank for f in per_s]})"
            ),
            {
                "rank_per_local_state": [f.rank for f in per_s],
                "sigma_min_per_local_state": [f.sigma_min for f in per_s],
                "good_local_states": good,
            },
        ),
        Condition(
            "memory: flattened vanilla rank W = V*S",
            flat.rank == V * S,
            flat.method,
            (
                f"all V*S={V * S} columns independent: the vanilla head condition holds on the flattened model too"
                if flat.rank == V * S
                else f"rank of the V*S={V * S} columns is {flat.rank}"
                + (f" (V*S > n={n})" if V * S > n else "")
                + ": the vanilla condition fails where the memory condition "
                + ("holds" if good else "fails too")
            ),
            {"rank": flat.rank, "num_columns": V * S, "num_tokens": n},
            can_decide=False,
        ),
    ]


def _check_memory_task(model, task: Task) -> None:
    N, V = model.num_cells, model.num_values
    if task.cell is None or not 0 <= task.cell < N:
        raise ValueError(f"{task.where('target')}: a memory task needs target {{\"memory_cell\": j}} with 0 <= j < {N}, got {task.cell!r}")
    if task.dim != V:
        raise ValueError(f"{task.where()}: the task has {task.dim} weights per class, the memory has V = {V} values")
    if task.num_classes != 2:
        raise ValueError(f"{task.where()}: the memory check supports binary tasks (mu); got a multiclass task")


# ----------------------------------------------------------------- witness
def _memory_head(model, task: Task, s_star: int) -> np.ndarray:
    """The least-squares head ``b`` with ``W[:, (., s*)]^T b = mu``."""
    V, S = model.num_values, model.num_local_states
    rows = [v * S + s_star for v in range(V)]
    return least_squares(matrices.emission(model)[rows], task.differences()[0])


# ----------------------------------------------------------------- verify
def _verify_anchors(model, task: Task, s_star: int, b: np.ndarray, num_inputs: int, length: int, seed: int, threshold: float) -> dict:
    """Anchor rate, leave-one-out stability and the head's largest gap at anchors on
    ``num_inputs`` sampled sequences of ``length`` tokens."""
    S, j = model.num_local_states, task.cell
    mu = task.differences()[0]
    tokens = model.sample(num_inputs, length, seed=seed).tokens
    inf = model.infer(tokens, ("memory", "loo_posterior", "loo_memory"))
    label = (inf.memory[:, j, :].double().cpu().numpy() @ mu) >= 0  # (B,)
    loo = inf.loo_memory[:, :, j, :].double().cpu().numpy() @ mu  # (B, T)
    anchors = inf.loo_posterior[:, :, j * S + s_star].double().cpu().numpy() >= threshold  # (B, T)
    Gt = model.loo_emission_posterior(tokens).double().cpu().numpy() @ matrices.emission(model)  # (B, T, n)
    return {
        "anchor_rate": float(anchors.mean()),
        "loo_stability": float(((loo >= 0) == label[:, None]).mean()),
        "max_gap_at_anchors": float(np.abs(Gt @ b - loo)[anchors].max()) if anchors.any() else None,
        "anchor_threshold": threshold,
        "num_inputs": num_inputs,
        "length": length,
    }


# ----------------------------------------------------------------- explain
def _explain_anchors(s_star: int, b: np.ndarray, v: dict) -> Condition:
    return Condition(
        "memory: anchors and leave-one-out stability (empirical)",
        None,
        f"empirical on {v['num_inputs']} sequences of length {v['length']}",
        f"local state s*={s_star}: {100 * v['anchor_rate']:.1f}% of positions are anchors (P >= {v['anchor_threshold']}); "
        f"the leave-one-out memory posterior keeps the label's sign at {100 * v['loo_stability']:.1f}% of positions",
        {
            "s_star": s_star,
            "head": [float(x) for x in b],
            "anchor_rate": v["anchor_rate"],
            "anchor_threshold": v["anchor_threshold"],
            "loo_stability": v["loo_stability"],
            "max_gap_at_anchors": v["max_gap_at_anchors"],
            "num_inputs": v["num_inputs"],
            "length": v["length"],
        },
        can_decide=False,
    )
