"""Theorem H: head tuning (docs/theory.md, "Theorem H (head tuning)").

A linear head ``b`` (n,) on the masked LM's output ``G_0(x) = W p_0(x)`` reproduces a
task exactly when the task's difference rows ``weights[c] - weights[0]`` (``mu`` for a
binary task) are ``W^T b_c`` on the states the mask can be in. Two checks live here:

- :func:`head_condition`: ``rank W = m``, then the task in the row space of W. Written as
  search (the rank facts; the minimum-norm preimage) -> witness (the heads, re-checked by
  multiplication in rationals for exact models) -> verify (margins, agreement with the
  labels and worst-case perturbations on sampled inputs) -> explain (the report's line).
- :func:`head_certificate`: on concrete inputs, whether ANY linear head reproduces the
  labels (LP; a Farkas certificate, verified exactly for exact models, when none does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..common import torch
from ..oracle import OracleMLM
from . import matrices
from .adversarial import adversarial_head_check
from .certificates import all_inputs, best_linear_accuracy_detail, exact_mask_posterior, linear_separability
from .condition import Condition, format_value, format_vector
from .evidence import Evidence, check_first_state_task, evidence, sample_downstream, task_labels
from .linalg import exact_min_norm_preimage, least_squares, rank_facts, select_columns, verify_preimage
from ..task import Task
from .task import as_task
from .tolerances import BEST_ACCURACY_MAX_INPUTS, PREIMAGE_RESIDUAL, as_text

__all__ = ["head_condition", "head_certificate", "HeadWitness", "head_witness", "RANK", "TASK"]

#: the rows this room writes
RANK = "head: rank W = m"
TASK = "head: task in row space of W"


# ----------------------------------------------------------------- head_condition
def head_condition(
    model,
    task: Any = None,
    *,
    num_inputs: int = 2000,
    length: int = 16,
    seed: int = 0,
    tol: float | None = None,
    inputs: Evidence | None = None,
) -> list[Condition]:
    """Theorem H: ``rank W = m`` and, for a task, the task in the row space of W.

    Returns the non-degeneracy condition and, with a task, the task condition whose
    witness is the minimum-norm head ``b`` (one row per class difference), verified by
    ``W^T b = mu`` (exactly for exact models), its margin ``gamma`` on sampled inputs, the
    tolerated pretraining error ``eps* = gamma / ||b||_inf`` and the head's agreement with
    the labels on those inputs.
    """
    task = as_task(task)
    out = [_rank_condition(model, tol)]
    if task is None:
        return out
    check_first_state_task(task, model.num_states)
    witness = head_witness(model, task)
    if witness.heads is None:
        out.append(_not_in_row_space(witness.method))
        return out
    ev = inputs or evidence(model, num_inputs, length, seed)
    out.append(_explain_head(witness, _verify_head(model, task, witness.heads, ev)))
    return out


def _rank_condition(model, tol: float | None) -> Condition:
    """``rank W = m`` with its exact, numerical and structural facts."""
    m, n = model.num_states, model.num_tokens
    facts = rank_facts(matrices.float_W(model), matrices.exact_W(model), tol)
    rank = facts.rank
    return Condition(
        RANK,
        rank == m,
        facts.method,
        (
            f"W (n={n} x m={m}) has full column rank {rank}: a linear head recovers every task on P(H_0|x) (Theorem H)"
            if rank == m
            else f"rank W = {rank} < m = {m}"
            + (" (needs m <= n)" if m > n else "")
            + ": some tasks on P(H_0|x) are invisible to a linear head"
        ),
        {
            "rank": rank,
            "exact_rank": facts.exact_rank,
            "numerical_rank": facts.numerical_rank,
            "tolerance": facts.tolerance,
            "sigma_min": facts.sigma_min,
            "condition_number": facts.condition_number,
            "structural_rank": facts.structural_rank,
        },
    )


@dataclass
class HeadWitness:
    """The heads of Theorem H's witness.

    Attributes:
        heads: one head (n,) per class difference: exact Rationals (re-checked by
            multiplication) for an exact model and task, float64 otherwise; None when the
            task is not in the row space of W.
        method: ``"exact"`` or the numerical rule that accepted the heads.
    """

    heads: list | None
    method: str


def head_witness(model, task: Task) -> HeadWitness:
    """Minimum-norm heads ``b_c`` with ``W_K^T b_c = weights[c] - weights[0]`` on the
    states ``K`` with ``initial > 0`` (the only ones that carry mass at the mask)."""
    init = matrices.array(model, "initial")
    keep = np.nonzero(init > 0)[0]
    use_exact = matrices.is_exact(model) and task.exact is not None
    diffs = task.differences(exact=use_exact)
    heads = []
    if use_exact:
        Wk = select_columns(matrices.exact_W(model), [int(h) for h in keep])
        for row in diffs:
            target = [row[h] for h in keep]
            b = exact_min_norm_preimage(Wk, target)
            if b is None:
                return HeadWitness(None, "exact")
            verify_preimage(Wk, b, target)
            heads.append(b)
        return HeadWitness(heads, "exact")
    method = f"numerical (least-squares residual <= {as_text(PREIMAGE_RESIDUAL)} relative)"
    Wk = matrices.float_W(model)[:, keep]
    for row in np.atleast_2d(diffs):
        target = row[keep]
        b = least_squares(Wk.T, target)
        resid = float(np.abs(Wk.T @ b - target).max())
        scale = max(1.0, float(np.abs(target).max()))
        if resid > PREIMAGE_RESIDUAL * scale * max(1.0, float(np.abs(b).max())):
            return HeadWitness(None, method)
        heads.append(b)
    return HeadWitness(heads, method)


def _not_in_row_space(method: str) -> Condition:
    return Condition(
        TASK,
        False,
        method,
        "the task vector is not W^T b for any b: no head reproduces F* for every posterior "
        "(see the LP certificate for concrete inputs)",
        {},
    )


def _verify_head(model, task: Task, heads: list, ev: Evidence) -> dict:
    """The witness on sampled inputs: its margin ``gamma`` and tolerated error ``eps*``
    (with and without ties), its agreement with the labels and the worst-case
    perturbations at ``eps*`` (:func:`~hmmtune.analysis.adversarial.adversarial_head_check`)."""
    n = model.num_tokens
    Bh = np.array([[float(v) for v in b] for b in heads])  # (C-1, n)
    num_inputs, length = ev.inputs.shape
    lab = task_labels(task, ev.mask_posterior)
    G = ev.mask_posterior @ matrices.emission(model)
    head_scores = np.hstack([np.zeros((len(G), 1)), G @ Bh.T])
    clear, margins = lab.clear, lab.margins
    agree = float((head_scores.argmax(1) == lab.labels)[clear].mean()) if clear.any() else float("nan")
    gamma = float(margins.min())
    rows = np.vstack([np.zeros(n), Bh])
    spread = max(float(np.abs(rows[i] - rows[j]).max()) for i in range(len(rows)) for j in range(len(rows)) if i != j)
    gamma_clear = float(margins[clear].min()) if clear.any() else float("nan")
    eps_star = gamma / spread if spread > 0 else float("inf")
    return {
        "head": [format_vector(b) for b in heads],
        "gamma": gamma,
        "eps_star": eps_star,
        "num_ties": int((~clear).sum()),
        "gamma_without_ties": gamma_clear,
        "eps_star_without_ties": gamma_clear / spread if spread > 0 else float("inf"),
        "agreement": agree,
        "num_inputs": num_inputs,
        "length": length,
        "adversarial": adversarial_head_check(lab.scores, Bh, G, eps_star),
    }


def _explain_head(witness: HeadWitness, v: dict) -> Condition:
    ties = v["num_ties"]
    tie_note = (
        f"; gamma = 0 because {ties} sampled input(s) are ties (mu . p_0(x) = 0, on the decision boundary), "
        f"where no error is tolerated; without ties gamma = {v['gamma_without_ties']:.3g}, eps* = {v['eps_star_without_ties']:.3g}"
        if ties
        else ""
    )
    return Condition(
        TASK,
        True,
        witness.method,
        f"W^T b = mu has a solution: the head b reproduces F* with the same margins; "
        f"it tolerates a pretraining error eps* = gamma/||b||_inf = {v['eps_star']:.3g} (gamma = {v['gamma']:.3g} on {v['num_inputs']} inputs)"
        + tie_note
        + _adversarial_phrase(v["adversarial"]),
        v,
    )


def _adversarial_phrase(adv: dict) -> str:
    """The head row's summary of :func:`adversarial_head_check`."""
    if adv["within"]["eps"] is None:
        return ""
    tight = "tight" if adv["tight"] else f"slack x{adv['slack']:.3g}" if adv["slack"] else "not attained"
    dist = adv["distribution"]["ratio_to_eps_star"]
    return (
        f"; worst-case G' checked: {adv['within']['flips']} labels change within eps*, "
        f"{adv['above']['flips']} just above ({tight})"
        + (f"; keeping G' a distribution, labels first change at {dist:.3g} eps*" if dist else "")
    )


# ----------------------------------------------------------------- head_certificate
def head_certificate(
    model,
    task: Any,
    *,
    length: int = 4,
    max_inputs: int = 4096,
    num_samples: int = 2000,
    seed: int = 0,
    best_accuracy: bool = True,
    sampled: bool = False,
) -> Condition:
    """Decide on concrete inputs whether ANY linear head reproduces the labels (docs/theory.md, "Theorem H (head tuning)").

    The input set ``X_0`` is all of ``[n]^T`` when ``n^T <= max_inputs``, else
    ``num_samples`` sampled downstream inputs; inputs with a tie (``mu . p_0(x) = 0``) are
    left out. For a multiclass task every pair of classes is tested; one inseparable pair
    proves that no linear head works. When infeasible the Farkas weights are returned
    with the inputs they rest on, verified exactly for exact models.

    The verdict covers exactly the inputs it was computed on: "holds" means a head
    separates those inputs (not inputs of other lengths); "does not hold" is a proof that
    no head reproduces the labels on them. With ``sampled=True`` the inputs are always
    ``num_samples`` sampled inputs of length ``length`` (the condition is then named
    ``"head: LP certificate on sampled inputs"``), e.g. the length the rest of a report
    uses when the exhaustive certificate had to use shorter inputs.
    """
    cname = "head: LP certificate on sampled inputs" if sampled else "head: LP certificate on concrete inputs"
    task = as_task(task)
    check_first_state_task(task, model.num_states)
    n, T = model.num_tokens, length
    exhaustive = not sampled and n**T <= max_inputs
    X, p0, labels, how = _certificate_inputs(model, task, T, exhaustive, num_samples, seed)
    G = p0 @ matrices.emission(model)
    exact_feature = _exact_features(model, X) if matrices.is_exact(model) else None
    classes = sorted(set(labels.tolist()))
    for a_i in range(len(classes)):
        for b_i in range(a_i + 1, len(classes)):
            pair = (classes[a_i], classes[b_i])
            idx = np.nonzero((labels == pair[0]) | (labels == pair[1]))[0]
            res = linear_separability(
                G[idx],
                (labels[idx] == pair[1]).astype(int),
                exact_features=(lambda i, idx=idx: exact_feature(idx[i])) if exact_feature else None,
            )
            if not res.separable:
                best = best_linear_accuracy_detail(G, labels) if best_accuracy and len(X) <= BEST_ACCURACY_MAX_INPUTS else None
                return _inseparable(cname, how, X, labels, idx, pair, res, best, T, exhaustive)
    return Condition(
        cname,
        True,
        f"LP (HiGHS) on {len(X)} inputs",
        f"a linear head separates the labels on {how} (every pair of classes); this covers these inputs only",
        {"num_inputs": int(len(X)), "length": T, "exhaustive": exhaustive},
    )


def _certificate_inputs(model, task: Task, T: int, exhaustive: bool, num_samples: int, seed: int):
    """The certificate's inputs without ties: ``(X (N, T), p_0(X) (N, m), labels (N,),
    description)``; every possible input of ``[n]^T`` when ``exhaustive``, else sampled ones."""
    n = model.num_tokens
    if exhaustive:
        X = _possible_inputs(model, all_inputs(n, T))  # drop inputs of probability zero
        how, pool = f"all {len(X)} possible inputs in [n]^T, T={T}", f"the {len(X)} possible inputs in [n]^T, T={T}"
    else:
        X = sample_downstream(model, num_samples, T, seed).numpy()
        how, pool = f"{len(X)} sampled inputs of length {T}", f"{len(X)} sampled inputs of length {T}"
    p0 = OracleMLM(model).mask_posterior(torch.as_tensor(X)).double().cpu().numpy()
    lab = task_labels(task, p0)
    ties = int((~lab.clear).sum())
    X = X[lab.clear]
    if ties:
        how = f"{len(X)} of {pool} ({ties} tie(s) with mu . p_0 = 0 left out)"
    return X, p0[lab.clear], lab.labels[lab.clear], how


def _exact_features(model, X: np.ndarray):
    """``i -> G_0(X[i])`` in exact rationals (the Farkas weights are re-solved on them)."""
    mats = matrices.exact_matrices(model)
    E = model.exact["emission"]
    m, n = model.num_states, model.num_tokens

    def feature(i: int) -> list:
        p = exact_mask_posterior(mats, X[i].tolist())
        return [sum(E[h, t] * p[h] for h in range(m)) for t in range(n)]

    return feature


def _inseparable(cname, how, X, labels, idx, pair, res, best, T, exhaustive) -> Condition:
    """The certificate row when the classes ``pair`` cannot be separated on ``X``."""
    acc = best.accuracy if best is not None else None
    weights = [
        {"input": X[idx[i]].tolist(), "label": int(labels[idx[i]]), "weight": format_value(w)}
        for i, w in sorted(res.weights.items())
    ]
    expl = (
        f"no linear head reproduces the labels on {how}: the Farkas weights put the classes' "
        f"convex hulls in contact (certificate verified {res.verified})"
    )
    if best is not None and acc == acc:  # not NaN
        expl += "; " + best.describe()
    return Condition(
        cname,
        False,
        f"LP (HiGHS) on {len(X)} inputs, certificate verified {res.verified}",
        expl,
        {
            "classes": [int(pair[0]), int(pair[1])],
            "farkas": weights,
            "verified": res.verified,
            "residual": res.residual,
            "best_accuracy": acc,
            "best_accuracy_detail": best.to_dict() if best is not None else None,
            "num_inputs": int(len(X)),
            "length": T,
            "exhaustive": exhaustive,
        },
    )


def _possible_inputs(model, X: np.ndarray) -> np.ndarray:
    """Keep the inputs with positive probability after the mask."""
    L = model.likelihoods(torch.as_tensor(X))
    a = (model.initial @ model.transition).expand(len(X), -1)
    alive = torch.ones(len(X), dtype=torch.bool)
    for t in range(X.shape[1]):
        a = a * L[:, t]
        c = a.sum(-1)
        alive &= c > 0
        a = torch.where(alive[:, None], a / torch.where(c > 0, c, 1.0)[:, None], a) @ model.transition
    return X[alive.numpy()]
