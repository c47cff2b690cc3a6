"""Theorems H, P and M as checks that return witnesses (docs/theory.md, "Theorem H (head tuning)", "Theorem P (prompt tuning)", "Theorem M (attention heads)").

Each check returns :class:`Condition` records: whether the condition holds (True, False,
or None when undetermined), how that was decided (exact, numerical with a tolerance,
empirical on N inputs), the witness or certificate, and a one-line explanation.

Conventions: the model stores ``emission`` (m, n); the paper's ``W = emission.T`` is
(n, m), and a head ``b`` (n,) acts on ``G = W p``. A task is a (C, m) weight matrix; its
difference rows ``weights[c] - weights[0]`` (``mu`` for a binary task) are what a head
must reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flint
import networkx as nx
import numpy as np
import sympy
import torch

from ..models.hmm import HMM
from ..io import format_entry
from ..oracle import OracleMLM
from . import graph as _graph
from .adversarial import adversarial_head_check
from .certificates import all_inputs, best_linear_accuracy_detail, exact_mask_posterior, linear_separability
from .linalg import _fmpq_to_sympy, exact_min_norm_preimage, exact_rank, least_squares, numerical_rank, rank_facts, to_fmpq_mat
from .task import TaskSpec, as_task_spec

__all__ = [
    "Condition",
    "head_condition",
    "head_certificate",
    "prompt_condition",
    "chain_condition",
    "memory_condition",
    "parametric_conditions",
    "memory_parametric_conditions",
    "sample_downstream",
    "Evidence",
    "evidence",
    "task_margin",
    "tolerance_certificate",
]


@dataclass
class Condition:
    """One checked condition.

    Attributes:
        name: short identifier (``"head: rank W = m"`` ...).
        holds: True, False, or None (undetermined).
        method: how it was decided: ``"exact"``, ``"numerical (tol=...)"``,
            ``"empirical on N inputs"``, ``"LP on N inputs, certificate verified exactly"``...
        explanation: one line in the paper's terms.
        witness: JSON-serialisable witness or certificate (exact rationals as strings).
        counts: whether this condition decides the exit code of ``hmmtune check``
            (facts such as chain structure do not).
    """

    name: str
    holds: bool | None
    method: str
    explanation: str
    witness: dict = field(default_factory=dict)
    counts: bool = True

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "holds": self.holds,
            "method": self.method,
            "explanation": self.explanation,
            "witness": self.witness,
            "counts": self.counts,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Condition":
        return cls(d["name"], d["holds"], d["method"], d["explanation"], d.get("witness", {}), d.get("counts", True))


def _fmt(v: Any) -> Any:
    if isinstance(v, flint.fmpq):
        v = _fmpq_to_sympy(v)
    if isinstance(v, sympy.Basic):
        return format_entry(v)
    return float(v)


def _fmt_vec(v) -> list:
    return [_fmt(x) for x in v]


def _W(model: HMM) -> np.ndarray:
    return model.emission.detach().double().cpu().numpy().T


def _is_exact(model: HMM) -> bool:
    """The model carries exact rational entries (parametric models are taken at their value)."""
    return bool(getattr(model, "exact", None))


def _exact_mats(model) -> dict | None:
    """FLINT copies of the exact matrices, cached on the model: ``initial`` (m x 1),
    ``transition`` (m x m), ``emission`` (m x n), ``W`` = emission^T (n x m)."""
    if not _is_exact(model):
        return None
    cache = getattr(model, "_flint_cache", None)
    if cache is None or cache[0] is not model.exact:
        mats = {k: to_fmpq_mat(model.exact[k]) for k in ("initial", "transition", "emission")}
        mats["W"] = mats["emission"].transpose()
        cache = (model.exact, mats)
        model._flint_cache = cache
    return cache[1]


def _W_exact(model: HMM):
    mats = _exact_mats(model)
    return mats["W"] if mats else None


def _cols(M: flint.fmpq_mat, cols: list[int]) -> flint.fmpq_mat:
    """Columns ``cols`` of a FLINT matrix."""
    if list(cols) == list(range(M.ncols())):
        return M  # every column: no copy (FLINT matrices are not modified in place here)
    r = M.nrows()
    return flint.fmpq_mat(r, len(cols), [M[i, j] for i in range(r) for j in cols])


def _check_preimage(Wk: flint.fmpq_mat, b: list, target: list) -> None:
    """Independent exact check that ``Wk^T b = target`` (by multiplication)."""
    bf = flint.fmpq_mat(1, len(b), [to_fmpq_mat([[v]])[0, 0] for v in b])
    prod = bf * Wk
    tf = to_fmpq_mat([list(target)])
    if any(prod[0, i] != tf[0, i] for i in range(len(target))):
        raise AssertionError("internal error: exact head witness failed its check")


# ----------------------------------------------------------------- sampling
def sample_downstream(model: HMM, num_inputs: int, length: int, seed: int = 0) -> torch.Tensor:
    """Downstream inputs ``x_1..x_T`` as the model generates them after a mask: sample
    ``T + 1`` tokens and drop the first (the masked position 0). Returns (N, T)."""
    tokens, _ = model.sample(num_inputs, length + 1, seed=seed)
    return tokens[:, 1:]


@dataclass
class Evidence:
    """Sampled downstream inputs with their cached backward messages and ``P(H_0 | x)``.

    Built once by :func:`evidence` and shared by the head and prompt checks.
    """

    inputs: torch.Tensor
    messages: Any
    mask_posterior: np.ndarray


def evidence(model: HMM, num_inputs: int, length: int, seed: int = 0) -> Evidence:
    """Sample ``num_inputs`` downstream inputs of ``length`` tokens and compute their
    backward messages and mask posteriors once."""
    oracle = OracleMLM(model)
    x = sample_downstream(model, num_inputs, length, seed)
    msgs = oracle.encode(x)
    return Evidence(x, msgs, oracle.mask_posterior(msgs).double().cpu().numpy())


def task_margin(scores: np.ndarray) -> np.ndarray:
    """Per-input margin of ``scores`` (N, C) = ``weights @ p``: top score minus the
    runner-up (for two classes ``|mu . p|``)."""
    srt = np.sort(scores, axis=1)
    return srt[:, -1] - srt[:, -2]


# ------------------------------------------------------------------ Theorem H
def _relevant_states(task: TaskSpec, initial: np.ndarray) -> frozenset[int]:
    """``R``: states with ``initial > 0`` whose task column is not constant across classes."""
    W = task.weights
    varying = np.any(W != W[0:1], axis=0)
    return frozenset(int(h) for h in np.nonzero(varying & (initial > 0))[0])


def head_condition(
    model: HMM,
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
    task = as_task_spec(task)
    m, n = model.num_states, model.num_tokens
    W = _W(model)
    exact = _is_exact(model)
    facts = rank_facts(W, _W_exact(model), tol)
    rank = facts.rank
    out = [
        Condition(
            "head: rank W = m",
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
    ]
    if task is None:
        return out
    _check_task_shape(task, m)
    init = model.initial.detach().double().cpu().numpy()
    keep = np.nonzero(init > 0)[0]  # states with pi_h = 0 never carry mass at the mask
    use_exact = exact and task.exact is not None
    diffs = task.differences(exact=use_exact)
    heads = []
    ok = True
    if use_exact:
        Wk = _cols(_W_exact(model), [int(h) for h in keep])
        for row in diffs:
            target = [row[h] for h in keep]
            b = exact_min_norm_preimage(Wk, target)
            if b is None:
                ok = False
                break
            _check_preimage(Wk, b, target)
            heads.append(b)
        method = "exact"
    else:
        Wk = W[:, keep]
        _, used_tol, s = numerical_rank(Wk, tol)
        for row in np.atleast_2d(diffs):
            target = row[keep]
            b = least_squares(Wk.T, target)
            resid = float(np.abs(Wk.T @ b - target).max())
            scale = max(1.0, float(np.abs(target).max()))
            if resid > 1e-9 * scale * max(1.0, float(np.abs(b).max())):
                ok = False
                break
            heads.append(b)
        method = "numerical (least-squares residual <= 1e-9 relative)"
    if not ok:
        out.append(
            Condition(
                "head: task in row space of W",
                False,
                method,
                "the task vector is not W^T b for any b: no head reproduces F* for every posterior "
                "(see the LP certificate for concrete inputs)",
                {},
            )
        )
        return out
    Bh = np.array([[float(v) for v in b] for b in heads])  # (C-1, n)
    ev = inputs or evidence(model, num_inputs, length, seed)
    num_inputs, length = ev.inputs.shape
    p0 = ev.mask_posterior
    scores = p0 @ task.weights.T
    labels = scores.argmax(1)
    margins = task_margin(scores)
    G = p0 @ model.emission.detach().double().cpu().numpy()
    head_scores = np.hstack([np.zeros((len(G), 1)), G @ Bh.T])
    clear = margins > 1e-12
    agree = float((head_scores.argmax(1) == labels)[clear].mean()) if clear.any() else float("nan")
    gamma = float(margins.min())
    all_rows = np.vstack([np.zeros(n), Bh])
    spread = max(float(np.abs(all_rows[i] - all_rows[j]).max()) for i in range(len(all_rows)) for j in range(len(all_rows)) if i != j)
    eps_star = gamma / spread if spread > 0 else float("inf")
    ties = int((~clear).sum())
    gamma_clear = float(margins[clear].min()) if clear.any() else float("nan")
    eps_clear = gamma_clear / spread if spread > 0 else float("inf")
    tie_note = (
        f"; gamma = 0 because {ties} sampled input(s) are ties (mu . p_0(x) = 0, on the decision boundary), "
        f"where no error is tolerated; without ties gamma = {gamma_clear:.3g}, eps* = {eps_clear:.3g}"
        if ties
        else ""
    )
    adversarial = adversarial_head_check(scores, Bh, G, eps_star)
    out.append(
        Condition(
            "head: task in row space of W",
            True,
            method,
            f"W^T b = mu has a solution: the head b reproduces F* with the same margins; "
            f"it tolerates a pretraining error eps* = gamma/||b||_inf = {eps_star:.3g} (gamma = {gamma:.3g} on {num_inputs} inputs)"
            + tie_note
            + _adversarial_phrase(adversarial),
            {
                "head": [_fmt_vec(b) for b in heads],
                "gamma": gamma,
                "eps_star": eps_star,
                "num_ties": ties,
                "gamma_without_ties": gamma_clear,
                "eps_star_without_ties": eps_clear,
                "agreement": agree,
                "num_inputs": num_inputs,
                "length": length,
                "adversarial": adversarial,
            },
        )
    )
    return out


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


def _check_task_shape(task: TaskSpec, m: int) -> None:
    if task.cell is not None:
        raise ValueError(f"{task.where('target')}: the task targets memory cell {task.cell}, but the model is a vanilla HMM")
    if task.dim != m:
        raise ValueError(f"{task.where()}: the task has {task.dim} weights per class, the model has m = {m} states")


def head_certificate(
    model: HMM,
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
    task = as_task_spec(task)
    _check_task_shape(task, model.num_states)
    n, T = model.num_tokens, length
    oracle = OracleMLM(model)
    if n**T <= max_inputs and not sampled:
        X = _possible_inputs(model, all_inputs(n, T))  # drop inputs of probability zero
        how, pool = f"all {len(X)} possible inputs in [n]^T, T={T}", f"the {len(X)} possible inputs in [n]^T, T={T}"
    else:
        X = sample_downstream(model, num_samples, T, seed).numpy()
        how, pool = f"{len(X)} sampled inputs of length {T}", f"{len(X)} sampled inputs of length {T}"
    p0 = oracle.mask_posterior(torch.as_tensor(X)).double().cpu().numpy()
    scores = p0 @ task.weights.T
    margins = task_margin(scores)
    keep = margins > 1e-12
    ties = int((~keep).sum())
    X, p0, scores = X[keep], p0[keep], scores[keep]
    if ties:
        how = f"{len(X)} of {pool} ({ties} tie(s) with mu . p_0 = 0 left out)"
    labels = scores.argmax(1)
    G = p0 @ model.emission.detach().double().cpu().numpy()
    exact = _is_exact(model)
    classes = sorted(set(labels.tolist()))
    mats = _exact_mats(model)
    E = model.exact["emission"] if exact else None

    for a_i in range(len(classes)):
        for b_i in range(a_i + 1, len(classes)):
            ca, cb = classes[a_i], classes[b_i]
            idx = np.nonzero((labels == ca) | (labels == cb))[0]
            feats = G[idx]
            y = (labels[idx] == cb).astype(int)

            def exact_feature(i, idx=idx):
                p = exact_mask_posterior(mats, X[idx[i]].tolist())
                return [sum(E[h, t] * p[h] for h in range(model.num_states)) for t in range(n)]

            res = linear_separability(feats, y, exact_features=exact_feature if exact else None)
            if not res.separable:
                acc, best = None, None
                if best_accuracy and len(X) <= 1000:
                    best = best_linear_accuracy_detail(G, labels)
                    acc = best.accuracy
                weights = [
                    {"input": X[idx[i]].tolist(), "label": int(labels[idx[i]]), "weight": _fmt(w)}
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
                        "classes": [int(ca), int(cb)],
                        "farkas": weights,
                        "verified": res.verified,
                        "residual": res.residual,
                        "best_accuracy": acc,
                        "best_accuracy_detail": best.to_dict() if best is not None else None,
                        "num_inputs": int(len(X)),
                        "length": T,
                        "exhaustive": not sampled and n**T <= max_inputs,
                    },
                )
    return Condition(
        cname,
        True,
        f"LP (HiGHS) on {len(X)} inputs",
        f"a linear head separates the labels on {how} (every pair of classes); this covers these inputs only",
        {"num_inputs": int(len(X)), "length": T, "exhaustive": not sampled and n**T <= max_inputs},
    )


def _possible_inputs(model: HMM, X: np.ndarray) -> np.ndarray:
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


# ------------------------------------------------------------------ Theorem P
def prompt_condition(
    model: HMM,
    task: Any,
    *,
    max_prompt_length: int = 4,
    tau: float = 0.0,
    num_inputs: int = 2000,
    length: int = 16,
    seed: int = 0,
    tol: float | None = None,
    exact_limit: int = 16,
    inputs: Evidence | None = None,
    known_ranks: dict | None = None,
) -> Condition:
    """Theorem P: a prompt of length k <= K whose support S = Succ(D) covers the relevant
    states R with W[:, S] of full column rank; builds and verifies (u, b).

    With ``tau > 0`` transitions at or below tau are treated as zero (tolerance mode for
    dense but peaked transitions); the witness is then checked against the true model
    and the posterior mass it leaves outside S is reported.
    """
    task = as_task_spec(task)
    m = model.num_states
    _check_task_shape(task, m)
    exact = _is_exact(model) and tau == 0
    init = model.initial.detach().double().cpu().numpy()
    R = _relevant_states(task, init)
    mats = _exact_mats(model) if exact else None
    trans = mats["transition"] if exact else model.transition.detach().double().cpu().numpy()
    initial = [mats["initial"][h, 0] for h in range(m)] if exact else init
    G = _graph.transition_graph(trans, tau)
    start = _graph.support(list(initial), 0)
    W = _W(model)
    Wex = _W_exact(model) if exact else None

    ranks = dict(known_ranks or {})

    def full_rank(S: frozenset[int]) -> bool:
        cols = sorted(S)
        if S in ranks:
            return ranks[S] == len(cols)
        if Wex is not None:
            return exact_rank(_cols(Wex, cols)) == len(cols)
        return numerical_rank(W[:, cols], tol)[0] == len(cols)

    # Exact pruning (docs/theory.md, "Reachable prompt supports"). A support only grows
    # with D (S = Succ(D)) and a matrix with dependent columns keeps them when columns are
    # added, so: (1) if W[:, R] has dependent columns no support S >= R works, for any
    # prompt; (2) a state d whose own successor set has dependent columns (for example two
    # states with identical emission columns) can never be in D; (3) if the usable states
    # reachable at any depth cannot cover R, no prompt of any length works. Any of these
    # settles the question exactly, whatever the size of the search.
    reachable = frozenset(start).union(*(nx.descendants(G, s) for s in start))
    succ_rank_ok: dict[int, bool] = {}

    def usable(d: int) -> bool:
        if d not in succ_rank_ok:
            Sd = _graph.successors(G, [d])
            succ_rank_ok[d] = bool(Sd) and full_rank(Sd)
        return succ_rank_ok[d]

    pruned = sorted(d for d in reachable if set(G.successors(d)) & R and not usable(d))
    good = frozenset(reachable) - frozenset(pruned)
    mode = "exact" if exact else (f"tolerance tau={tau:g}" if tau > 0 else "numerical")
    reason = None
    if R and not full_rank(frozenset(R)):
        reason = f"rank W[:, R] < |R| = {len(R)} for R = {sorted(R)}: no support containing R has independent columns"
    elif R and not R <= _graph.successors(G, [d for d in good if set(G.successors(d)) & R]):
        uncovered = sorted(R - _graph.successors(G, [d for d in good if set(G.successors(d)) & R]))
        reason = (
            f"states {uncovered} of R are successors only of states whose own successor set has dependent columns of W "
            f"({len(pruned)} such state(s) pruned, e.g. two successors with identical emission columns) or of no reachable state"
        )
    if reason is not None:
        return Condition(
            "prompt: Theorem P support",
            False,
            mode + " (pruning)",
            f"no prompt of any length: {reason}",
            {"relevant_states": sorted(R), "max_prompt_length": max_prompt_length, "definitive": True, "pruned_states": pruned, "reason": reason},
        )

    seen_layers: list[frozenset[int]] = []
    layer = frozenset(start)
    searched_exact = True
    found = None
    definitive = False
    for k in range(1, max_prompt_length + 1):
        if layer in seen_layers:
            definitive = True  # layers repeat: longer prompts reach no new supports
            break
        seen_layers.append(layer)
        pairs, was_exact = _graph.candidate_supports(G, layer & good, R, exact_limit)
        searched_exact &= was_exact
        for D, S in pairs:
            if full_rank(S):
                found = (k, D, S)
                break
        if found:
            break
        layer = _graph.successors(G, layer)
    else:
        definitive = layer in seen_layers
    if found is None:
        if definitive and searched_exact:
            expl = (
                f"no prompt of any length: the reachable layers repeat after {len(seen_layers)} step(s), so longer prompts "
                f"reach no new support, and no support reached covers R = {sorted(R)} with independent columns of W"
            )
        else:
            expl = f"no prompt of length <= {max_prompt_length} found" + (
                "" if searched_exact else f" (greedy search over {len(good)} usable states; a longer or cleverer prompt may exist)"
            )
        return Condition(
            "prompt: Theorem P support",
            False,
            mode + ("" if searched_exact else ", heuristic search"),
            expl,
            {"relevant_states": sorted(R), "max_prompt_length": max_prompt_length, "definitive": definitive and searched_exact, "pruned_states": pruned},
        )
    k, D, S = found
    chain = _prompt_chain(G, start, D, k)
    u_rows = [[1 if h in Dj else 0 for h in range(m)] for Dj in chain]
    r = _prompt_prior(model, u_rows, exact)
    exact_task = exact and task.exact is not None
    diffs = task.differences(exact=exact_task)
    Scols = sorted(S)
    heads = []
    if exact_task:
        pi_h, r_h = [_fmpq_to_sympy(v) for v in initial], r
    else:  # a float task (or a float model): the witness head is computed in float64
        pi_h, r_h = [float(v) if not isinstance(v, flint.fmpq) else int(v.p) / int(v.q) for v in initial], [float(v) for v in r]
    for row in np.atleast_2d(np.array(diffs, dtype=object)):
        target = [(row[h] * pi_h[h] / r_h[h]) if (row[h] != 0 and h in R) else 0 for h in Scols]
        if exact_task:
            WS = _cols(Wex, Scols)
            b = exact_min_norm_preimage(WS, target)
            _check_preimage(WS, b, target)
        else:
            tgt = np.array([float(t) for t in target])
            b = least_squares(W[:, Scols].T, tgt)
        heads.append(b)
    # Verify on sampled inputs with the exact prompted oracle of the true model.
    oracle = OracleMLM(model)
    ev = inputs or evidence(model, num_inputs, length, seed)
    num_inputs, length = ev.inputs.shape
    msgs, p0 = ev.messages, ev.mask_posterior
    scores = p0 @ task.weights.T
    labels = scores.argmax(1)
    clear = task_margin(scores) > 1e-12
    u = torch.tensor(u_rows, dtype=model.dtype)
    # Prompted posterior, unnormalised: r(u) * beta_0. An input impossible from every
    # state the prompt allows has p_0 = 0 on R, hence mu . p_0(x) = 0: a tie, left out.
    w = (oracle.prompt_prior(u) * msgs.backward).detach().double().cpu().numpy()
    totals = w.sum(1)
    possible = totals > 0
    clear &= possible
    post_u = w / np.where(possible, totals, 1.0)[:, None]
    Gu = post_u @ model.emission.detach().double().cpu().numpy()
    Bh = np.array([[float(v) for v in b] for b in heads])
    pred = np.hstack([np.zeros((len(Gu), 1)), Gu @ Bh.T]).argmax(1)
    agree = float((pred == labels)[clear].mean()) if clear.any() else float("nan")
    outside = sorted(set(range(m)) - S)
    prior_leak = float(sum(float(r[h]) for h in outside))
    post_leak = float(post_u[possible][:, outside].sum(1).max()) if outside and possible.any() else 0.0
    witness = {
        "prompt_length": k,
        "D": sorted(D),
        "support": Scols,
        "relevant_states": sorted(R),
        "prompt": u_rows,
        "prior": _fmt_vec(r),
        "head": [_fmt_vec(b) for b in heads],
        "agreement": agree,
        "num_inputs": num_inputs,
        "length": length,
        "prior_mass_outside_support": prior_leak,
        "max_posterior_mass_outside_support": post_leak,
    }
    cert = None
    if tau > 0:
        cert = tolerance_certificate(model, np.asarray([float(v) for v in r]), Scols, Bh, msgs.backward.detach().double().cpu().numpy(), labels)
        certified = cert["certified"] & clear
        witness["certificate"] = {k_: v for k_, v in cert.items() if k_ not in ("certified", "bound")}
        witness["certificate"]["max_bound_on_sampled_inputs"] = float(cert["bound"][possible].max()) if possible.any() else 0.0
        witness["certificate"]["num_certified"] = int(certified.sum())
        witness["certificate"]["num_clear"] = int(clear.sum())
    if exact:
        holds, how = True, "exact" + ("" if searched_exact else "; greedy support search (a smaller support may exist)")
    elif tau > 0:
        holds = bool(clear.any() and certified.sum() == clear.sum())
        how = f"tolerance tau={tau:g}; leak bound checked on each of {num_inputs} sampled inputs of length {length}"
    else:
        holds, how = True, "numerical" + ("" if searched_exact else ", heuristic search")
    verified = (
        f"the witness agrees with {100 * agree:.1f}% of labels on {int(clear.sum())} of {num_inputs} inputs (ties left out)"
        if clear.any()
        else f"all {num_inputs} sampled inputs are ties (mu . p_0 = 0), nothing to verify"
    )
    where = f"a {k}-token prompt restricts the mask's state to S = {Scols} (covers R = {sorted(R)}), where W has independent columns"
    if holds and tau > 0:
        expl = f"{where} at tau={tau:g}: prompt tuning recovers F* on every one of the {int(clear.sum())} non-tie sampled inputs of length {length}, each certified by the leak bound; {verified}"
    elif holds:
        expl = f"{where}: prompt tuning recovers F*; {verified}"
    else:
        expl = (
            f"{where} at tau={tau:g}, but the true model leaks: the leak bound certifies the witness on "
            f"{int(certified.sum())} of {int(clear.sum())} non-tie sampled inputs; {verified}"
        )
    if tau > 0:
        ub = cert["uniform_bound"]
        expl += (
            f"; prior mass outside S {prior_leak:.2g}, proven bound on the prompted posterior mass outside S "
            f"at most {witness['certificate']['max_bound_on_sampled_inputs']:.2g} on these inputs (largest actual {post_leak:.2g})"
            + (
                f"; for EVERY input of any length it is at most {ub:.2g} (uniform bound)"
                if ub is not None and ub < 1
                else "; no uniform bound over all inputs (some state outside S reaches a state that S does not)"
            )
        )
    return Condition("prompt: Theorem P support", holds, how, expl, witness)


#: relative safety factor for float64 rounding in the leak bound (docs/theorems.md, "Theorem P")
_ROUNDING = 1e-9


def tolerance_certificate(model: HMM, prior, support, heads, backward, labels) -> dict:
    """Bounds on the prompted posterior mass outside ``S`` in tolerance mode (docs/theory.md,
    "Tolerance mode"), and which inputs they certify.

    With the true prompted prior ``r`` (mass ``l = sum_{h not in S} r_h`` outside S) and the
    backward messages ``beta_h(x) = P(x | H_0 = h)``, the prompted posterior mass outside S
    satisfies ``q/(1-q) = sum_out r_h beta_h / sum_S r_h beta_h <= l max_out beta_h(x) / Z_S(x) = rho(x)``
    (the leak times the input's likelihood ratio). Uniformly: with ``kappa`` the largest
    ``A[h, j] / sum_{h' in S} (r_h'/(1-l)) A[h', j]`` over ``h`` outside S and ``A[h, j] > 0``,
    ``beta_h <= kappa sum_S (r_h'/(1-l)) beta_h'`` for every input of every length, so
    ``q/(1-q) <= l kappa / (1-l)`` (None when some denominator is 0: no uniform bound).

    An input is certified when, for its label ``y`` and every other class ``c``, the
    margin of the witness head restricted to S, ``sum_S p~_h (W^T (b_y - b_c))_h`` with
    ``p~`` the posterior renormalised on S, exceeds ``rho(x) max_{h not in S} |(W^T (b_y - b_c))_h|``:
    then no posterior mass outside S below the bound can flip the prediction. Rounding:
    ``rho`` is inflated by a relative ``1e-9`` and the margin must also exceed ``1e-9``
    times ``sum_S p~_h |(W^T (b_y - b_c))_h|`` (float64 recursions of ``T + k`` steps
    err by far less), so the certificate is rigorous up to that stated slack, not exact
    rational arithmetic.

    Args:
        prior: (m,) the true prompted prior ``r(u)``.
        support: S.
        heads: (C-1, n) witness head rows (class c's weights minus class 0's).
        backward: (B, m) backward messages (any positive scale per row).
        labels: (B,) the task's labels.

    Returns:
        dict with ``bound`` (B,) upper bounds on q(x), ``certified`` (B,) bool,
        ``prior_leak``, ``uniform_bound`` (bound on q for every input, or None), ``kappa``.
    """
    r = np.asarray(prior, dtype=float)
    m = r.shape[0]
    S = sorted(int(h) for h in support)
    out = sorted(set(range(m)) - set(S))
    beta = np.asarray(backward, dtype=float)
    leak = float(r[out].sum()) if out else 0.0
    ZS = beta[:, S] @ r[S]
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = np.where(ZS > 0, leak * (beta[:, out].max(1) if out else 0.0) / np.where(ZS > 0, ZS, 1.0), np.inf)
    rho = rho * (1 + _ROUNDING)
    with np.errstate(invalid="ignore"):  # rho = inf (Z_S = 0): the bound is 1, taken below
        bound = np.where(np.isfinite(rho), rho / (1 + rho), 1.0)
    # uniform bound from the transition rows
    A = model.transition.detach().double().cpu().numpy()
    kappa = 0.0
    if out and leak > 0:
        mix = (r[S] / r[S].sum()) @ A[S]  # (m,) S's mixture of next-state laws
        for h in out:
            pos = A[h] > 0
            if (mix[pos] <= 0).any():
                kappa = float("inf")
                break
            kappa = max(kappa, float((A[h][pos] / mix[pos]).max()))
    uniform = None
    if np.isfinite(kappa):
        ru = leak * kappa / max(1 - leak, 1e-300) * (1 + _ROUNDING)
        uniform = float(ru / (1 + ru))
    # certification per input
    W = model.emission.detach().double().cpu().numpy().T  # (n, m)
    Bfull = np.vstack([np.zeros((1, W.shape[0])), np.asarray(heads, dtype=float)])  # (C, n)
    Cst = Bfull @ W  # (C, m): W^T b_c as rows
    y = np.asarray(labels)
    pS = beta[:, S] * r[S]
    pS = pS / np.where(pS.sum(1, keepdims=True) > 0, pS.sum(1, keepdims=True), 1.0)
    ok = np.isfinite(rho)
    for c in range(Cst.shape[0]):
        d = Cst[y] - Cst[c]  # (B, m): label's row minus class c's
        margin = (pS * d[:, S]).sum(1)
        worst = np.abs(d[:, out]).max(1) if out else np.zeros(len(y))
        scale = (pS * np.abs(d[:, S])).sum(1)  # rounding in the margin is relative to this sum
        this = (y == c) | (margin > np.where(np.isfinite(rho), rho, 0.0) * worst + _ROUNDING * scale)
        ok &= this
    return {"bound": bound, "certified": ok, "prior_leak": leak, "uniform_bound": uniform, "kappa": kappa if np.isfinite(kappa) else None}


def _prompt_chain(G, start: frozenset[int], D: frozenset[int], k: int) -> list[frozenset[int]]:
    """Sets D_0 .. D_{k-1} = D with D_0 in supp(initial) and every state of D_j having a
    predecessor in D_{j-1}; u_j is the indicator of D_{j-1} (docs/theory.md, "Reachable prompt supports")."""
    chain = [frozenset(D)]
    lay = _graph.layers(G, start, k - 1)
    for j in range(k - 1, 0, -1):
        prev = frozenset(p for d in chain[0] for p in G.predecessors(d)) & lay[j - 1]
        chain.insert(0, prev)
    return chain


def _prompt_prior(model: HMM, u_rows, exact: bool) -> list:
    """``r(u)``: exact rationals for exact models, floats otherwise (not normalised)."""
    m = model.num_states
    if exact:
        mats = _exact_mats(model)
        A = mats["transition"]
        a = flint.fmpq_mat(1, m, [mats["initial"][h, 0] * u_rows[0][h] for h in range(m)])
        for row in u_rows[1:]:
            a = a * A
            a = flint.fmpq_mat(1, m, [a[0, j] * row[j] for j in range(m)])
        r = a * A
        total = sum((r[0, j] for j in range(m)), flint.fmpq(0))
        return [_fmpq_to_sympy(r[0, j] / total) for j in range(m)]
    u = torch.tensor(u_rows, dtype=model.dtype)
    return OracleMLM(model).prompt_prior(u).detach().double().cpu().numpy().tolist()


# ----------------------------------------------------------- chain structure
def chain_condition(model: HMM, tau: float = 0.0) -> Condition:
    """Markov-chain facts (a report section, not a condition of the theorems)."""
    exact = _is_exact(model) and tau == 0
    mats = _exact_mats(model) if exact else None
    trans = mats["transition"] if exact else model.transition.detach().double().cpu().numpy()
    init = [mats["initial"][h, 0] for h in range(model.num_states)] if exact else model.initial.detach().double().cpu().numpy()
    cs = _graph.chain_structure(trans, init, tau)
    parts = [f"{len(cs.components)} strongly connected component(s)"]
    if cs.irreducible:
        parts.append("irreducible and aperiodic" if cs.aperiodic else f"irreducible with period {cs.periods[0]}")
    else:
        parts.append(f"{len(cs.attracting)} attracting")
    if cs.unreachable:
        parts.append(f"states {cs.unreachable} unreachable from the initial distribution")
    return Condition(
        "chain structure",
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
        counts=False,
    )


# ------------------------------------------------------------------ Theorem M
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
    V, S, n, N = model.num_values, model.num_local_states, model.num_tokens, model.num_cells
    E = model.emission.detach().double().cpu().numpy()  # (V*S, n), row v*S + s
    ex = model.exact["emission"] if getattr(model, "exact", None) else None
    per_s = []
    for s in range(S):
        rows = [v * S + s for v in range(V)]
        facts = rank_facts(E[rows].T, ex.extract(rows, list(range(n))).T if ex is not None else None, tol)
        per_s.append(facts)
    good = [s for s in range(S) if per_s[s].rank == V]
    method = per_s[0].method
    flat = rank_facts(E.T, ex.T if ex is not None else None, tol)
    out = [
        Condition(
            "memory: rank W[:, (., s)] = V for some s",
            bool(good),
            method,
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
            counts=False,
        ),
    ]
    task = as_task_spec(task)
    if task is None or not good:
        return out
    if task.cell is None or not 0 <= task.cell < N:
        raise ValueError(f"{task.where('target')}: a memory task needs target {{\"memory_cell\": j}} with 0 <= j < {N}, got {task.cell!r}")
    if task.dim != V:
        raise ValueError(f"{task.where()}: the task has {task.dim} weights per class, the memory has V = {V} values")
    if task.num_classes != 2:
        raise ValueError(f"{task.where()}: the memory check supports binary tasks (mu); got a multiclass task")
    mu = task.differences()[0]
    s_star = max(good, key=lambda s: per_s[s].sigma_min)
    rows = [v * S + s_star for v in range(V)]
    b = least_squares(E[rows], mu)
    j = task.cell
    tokens = model.sample(num_inputs, length, seed=seed).tokens
    inf = model.infer(tokens, ("memory", "loo_posterior", "loo_memory"))
    label = (inf.memory[:, j, :].double().cpu().numpy() @ mu) >= 0  # (B,)
    loo = inf.loo_memory[:, :, j, :].double().cpu().numpy() @ mu  # (B, T)
    anchor_p = inf.loo_posterior[:, :, j * S + s_star].double().cpu().numpy()  # (B, T)
    anchors = anchor_p >= anchor_threshold
    stable = float(((loo >= 0) == label[:, None]).mean())
    G = model.emission.detach().double().cpu().numpy()
    Gt = model.loo_emission_posterior(tokens).double().cpu().numpy() @ G  # (B, T, n)
    gap = float(np.abs(Gt @ b - loo)[anchors].max()) if anchors.any() else None
    out.append(
        Condition(
            "memory: anchors and leave-one-out stability (empirical)",
            None,
            f"empirical on {num_inputs} sequences of length {length}",
            f"local state s*={s_star}: {100 * anchors.mean():.1f}% of positions are anchors (P >= {anchor_threshold}); "
            f"the leave-one-out memory posterior keeps the label's sign at {100 * stable:.1f}% of positions",
            {
                "s_star": s_star,
                "head": [float(v) for v in b],
                "anchor_rate": float(anchors.mean()),
                "anchor_threshold": anchor_threshold,
                "loo_stability": stable,
                "max_gap_at_anchors": gap,
                "num_inputs": num_inputs,
                "length": length,
            },
            counts=False,
        )
    )
    return out


# --------------------------------------------------------- parametric models
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


def _candidates(p: dict) -> list:
    """Rational trial values of one parameter inside its declared range."""
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
        for c in _candidates(p):
            point = {**base, syms[name]: c}
            if sympy.simplify(expr.subs(point)) != 0:
                outside = point
                break
        if outside:
            break
    inside = None
    for p in params.values():
        others = {k: v for k, v in base.items() if k != p["symbol"]}
        for trial in [others] + [{**others, q["symbol"]: c} for q in params.values() if q is not p for c in _candidates(q)]:
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


def parametric_conditions(model: HMM, support: list[int] | None = None, task: Any = None) -> list[Condition]:
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
    task = as_task_spec(task)
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
        outside = next(({p["symbol"]: c} for c in _candidates(p) if _outside_set(c, common)), None)
    else:
        text = f"{name} fails exactly where " + " and ".join(f"{e} = 0" for e in exprs)
        inside, outside = _points_on_and_off(sympy.Add(*[e**2 for e in exprs]), params)
        inside = _common_zero(exprs, params) or inside
    checks = []
    for point, on in ((inside, True), (outside, False)):
        if point is None:
            continue
        ranks = [_rank_at(Ws, point) for Ws in blocks]
        checks.append(f"ranks {ranks} at {_pt(point)}")
        witness["ranks_inside" if on else "ranks_outside"] = {"point": _pt(point), "ranks": ranks}
        if on and max(ranks) >= V:
            raise AssertionError("internal error: a common locus point leaves a local state non-degenerate")
        if not on and V not in ranks:
            raise AssertionError("internal error: every local state is degenerate off the common locus")
    if checks:
        text += " (confirmed: " + ", ".join(checks) + ")"
    out.append(Condition(f"parametric: locus of {name}", None, "symbolic (sympy)", text, witness, counts=False))
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
        cand = [p["value"], (p["min"] + p["max"]) / 2 if p["min"].is_finite and p["max"].is_finite else sympy.Rational(1, 3)]
        cand += [sympy.Rational(k, 7) for k in range(-7, 8)]
        for c in cand:
            if (c not in sol) and p["min"] <= c <= p["max"]:
                outside = {p["symbol"]: c}
                break
    else:
        text = f"{name} fails exactly where {expr} = 0"
        inside, outside = _points_on_and_off(expr, params)
    checks = []
    if inside is not None:
        rk = _rank_at(Ws, inside)
        checks.append(f"rank {rk} at {_pt(inside)}")
        witness["rank_inside"] = {"point": _pt(inside), "rank": rk}
        if rk >= len(cols):
            raise AssertionError("internal error: locus point does not lower the rank")
    if outside is not None:
        rk = _rank_at(Ws, outside)
        checks.append(f"rank {rk} at {_pt(outside)}")
        witness["rank_outside"] = {"point": _pt(outside), "rank": rk}
        if rk != len(cols):
            raise AssertionError("internal error: point off the locus is degenerate")
    if checks:
        text += " (confirmed: " + ", ".join(checks) + ")"
    cond = Condition(f"parametric: locus of {name}", None, "symbolic (sympy)", text, witness, counts=False)
    return cond, expr, sol, note


def _in_row_space(Wn: sympy.Matrix, diffs: list) -> bool:
    """Every task row is in the row space of the (numeric, exact) ``Wn`` (n x m):
    ``rank [W^T | mu] = rank W^T``."""
    r = Wn.rank(simplify=True)
    return all(Wn.T.row_join(sympy.Matrix(row)).rank(simplify=True) == r for row in diffs)


def _task_locus(model: HMM, task: TaskSpec, params: dict, head_witness: dict) -> Condition:
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
    name = "parametric: locus of head: task in row space of W"
    witness: dict[str, Any] = {"task_rows": [[format_entry(v) for v in r] for r in diffs]}
    checks = []

    def at(point):
        return _in_row_space(W.subs(point), diffs)

    generic_full = W.rank(simplify=True) == W.cols
    if generic_full:
        pts = []
        locus = head_witness.get("locus")
        if len(params) == 1:
            (p,) = params.values()
            gram = sympy.factor((W.T * W).det())
            sol = sympy.solveset(gram, p["symbol"], domain=sympy.Interval(p["min"], p["max"]))
            if isinstance(sol, sympy.FiniteSet):
                pts = sorted(sol, key=float)
                fails = [v for v in pts if not at({p["symbol"]: v})]
                witness["locus"] = str(sympy.FiniteSet(*fails)) if fails else "EmptySet"
                text = (
                    f"the task is in the row space of W for every {p['symbol']} in [{p['min']}, {p['max']}]"
                    + (f" except {p['symbol']} in {sympy.FiniteSet(*fails)}" if fails else "")
                    + " (W has full column rank off the points "
                    + f"{sympy.FiniteSet(*pts) if pts else 'of no locus'}; each locus point checked exactly)"
                )
                off = next((c for c in _candidates(p) if c not in sol), None)
                for v in ([fails[0]] if fails else []) + ([off] if off is not None else []):
                    ok = at({p["symbol"]: v})
                    checks.append(f"{'in' if ok else 'NOT in'} the row space at {p['symbol']} = {v}")
                    witness.setdefault("confirmed", []).append({"point": f"{p['symbol']} = {v}", "in_row_space": ok})
            else:
                text = f"the task is in the row space of W wherever rank W = m; W degenerates on {locus or sol}, not checked point by point"
        else:
            inside, outside = _points_on_and_off(sympy.factor((W.T * W).det()), params)
            text = "the task is in the row space of W wherever det(W^T W) != 0 (full column rank)"
            for pt in (inside, outside):
                if pt is not None:
                    ok = at(pt)
                    checks.append(f"{'in' if ok else 'NOT in'} the row space at {_pt(pt)}")
                    witness.setdefault("confirmed", []).append({"point": _pt(pt), "in_row_space": ok})
    else:
        r = W.rank(simplify=True)
        gen = all(W.T.row_join(sympy.Matrix(row)).rank(simplify=True) == r for row in diffs)
        witness["generic_rank"] = r
        witness["generic_in_row_space"] = gen
        text = (
            f"W has rank {r} < m = {W.cols} for every parameter value; generically the task is "
            + ("in its row space" if gen else "NOT in its row space")
            + " (symbolic ranks; special values where the ranks drop are not enumerated)"
        )
        base = {p["symbol"]: p["value"] for p in params.values()}
        pts = [base]
        for q in params.values():
            for c in _candidates(q):
                if c != q["value"]:
                    pts.append({**base, q["symbol"]: c})
                    break
            break
        for pt in pts:
            ok = at(pt)
            checks.append(f"{'in' if ok else 'NOT in'} the row space at {_pt(pt)}")
            witness.setdefault("confirmed", []).append({"point": _pt(pt), "in_row_space": ok})
    if checks:
        text += " (confirmed: " + ", ".join(checks) + ")"
    return Condition(name, None, "symbolic (sympy)", text, witness, counts=False)


def _graph_loci(model: HMM, params: dict) -> list[Condition]:
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
            counts=False,
        )
    ]


def _pt(point: dict) -> str:
    return ", ".join(f"{k} = {v}" for k, v in point.items())
