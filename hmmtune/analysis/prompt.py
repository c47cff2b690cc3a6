"""Theorem P: prompt tuning (docs/theory.md, "Theorem P (prompt tuning)", "Reachable prompt supports", "Tolerance mode").

A prompt ``u`` of k soft tokens restricts the mask's state to a support ``S = Succ(D)``
(``D`` a set of states reachable in k - 1 steps). Prompt tuning recovers a task when some
reachable ``S`` covers the relevant states ``R`` (``initial > 0`` and a task column that
varies across classes) and ``W[:, S]`` has independent columns. :func:`prompt_condition`
is written as:

- search (:func:`search_support`): exact pruning, then the reachable layers ``L_0, L_1,
  ...`` for the smallest support, stopping when layers repeat;
- witness (:func:`prompt_witness`): the prompt rows ``u_j`` (indicators of a chain of sets
  ending in D), the prompted prior ``r(u)`` and the heads on S, exactly for exact models;
- verify (:func:`_verify_prompt`): the exact prompted oracle of the true model on sampled
  inputs, and in tolerance mode (``tau > 0``) the leak bound
  (:func:`tolerance_certificate`) on each of them;
- explain (:func:`_explain_prompt`): the report's line.

:func:`prompt_through_head` covers the case with no support but a stationary ``pi``
where the head's witness carries over.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flint
import numpy as np

from ..common import torch
from ..oracle import OracleMLM
from . import graph, matrices
from .condition import Condition, format_vector
from .evidence import Evidence, check_first_state_task, evidence, task_labels
from .linalg import exact_min_norm_preimage, exact_rank, fmpq_to_sympy, least_squares, numerical_rank, select_columns, verify_preimage
from ..task import Task
from .task import as_task
from .tolerances import LEAK_FLOOR, LEAK_ROUNDING, STATIONARY, as_text

__all__ = [
    "prompt_condition",
    "SupportSearch",
    "search_support",
    "PromptWitness",
    "prompt_witness",
    "tolerance_certificate",
    "prompt_chain",
    "prompt_prior",
    "relevant_states",
    "prompt_through_head",
    "NAME",
]

#: the row this room writes
NAME = "prompt: Theorem P support"


def prompt_condition(
    model,
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
    task = as_task(task)
    check_first_state_task(task, model.num_states)
    search = search_support(
        model, task, max_prompt_length=max_prompt_length, tau=tau, tol=tol, exact_limit=exact_limit, known_ranks=known_ranks
    )
    if search.found is None:
        return _no_support(search, max_prompt_length)
    witness = prompt_witness(model, task, search)
    ev = inputs or evidence(model, num_inputs, length, seed)
    return _explain_prompt(search, witness, _verify_prompt(model, task, witness, ev, tau), tau)


# ----------------------------------------------------------------- search
def relevant_states(task: Task, initial: np.ndarray) -> frozenset[int]:
    """``R``: states with ``initial > 0`` whose task column is not constant across classes."""
    W = task.array
    varying = np.any(W != W[0:1], axis=0)
    return frozenset(int(h) for h in np.nonzero(varying & (initial > 0))[0])


class _ColumnRanks:
    """Whether ``W[:, S]`` has independent columns, exactly for exact models, memoised
    per support (``known`` seeds it, e.g. with the head room's rank of W)."""

    def __init__(self, model, exact: bool, tol: float | None, known: dict | None):
        self.W = matrices.float_W(model)
        self.W_exact = matrices.exact_W(model) if exact else None
        self.tol = tol
        self.known = dict(known or {})

    def full(self, S: frozenset[int]) -> bool:
        cols = sorted(S)
        if S in self.known:
            return self.known[S] == len(cols)
        if self.W_exact is not None:
            return exact_rank(select_columns(self.W_exact, cols)) == len(cols)
        return numerical_rank(self.W[:, cols], self.tol)[0] == len(cols)


@dataclass
class SupportSearch:
    """The outcome of :func:`search_support`.

    Attributes:
        exact: the graph and ranks are exact (exact model, ``tau == 0``).
        mode: ``"exact"``, ``"numerical"`` or ``"tolerance tau=..."``.
        graph: the transition graph (edges above tau).
        start: ``supp(initial)``.
        initial: the initial law (FLINT rationals when exact, float64 otherwise).
        relevant: ``R``.
        pruned: reachable states that can never be in D (their successor set has
            dependent columns of W).
        usable: the reachable states not pruned.
        reason: why no prompt of any length works, when pruning settles it; else None.
        found: ``(k, D, S)`` for the first (shortest, then smallest) support, or None.
        definitive: the layers repeated, so no longer prompt reaches a new support.
        searched_exact: every layer's supports were enumerated (not the greedy cover).
        num_layers: layers searched.
    """

    exact: bool
    mode: str
    graph: Any
    start: frozenset[int]
    initial: Any
    relevant: frozenset[int]
    pruned: list[int]
    usable: frozenset[int]
    reason: str | None = None
    found: tuple[int, frozenset[int], frozenset[int]] | None = None
    definitive: bool = False
    searched_exact: bool = True
    num_layers: int = 0


def search_support(
    model,
    task: Task,
    *,
    max_prompt_length: int = 4,
    tau: float = 0.0,
    tol: float | None = None,
    exact_limit: int = 16,
    known_ranks: dict | None = None,
) -> SupportSearch:
    """The shortest prompt's smallest support ``S`` covering ``R`` with independent columns.

    Exact pruning first (docs/theory.md, "Reachable prompt supports"). A support only grows
    with D (S = Succ(D)) and a matrix with dependent columns keeps them when columns are
    added, so: (1) if W[:, R] has dependent columns no support S >= R works, for any
    prompt; (2) a state d whose own successor set has dependent columns (for example two
    states with identical emission columns) can never be in D; (3) if the usable states
    reachable at any depth cannot cover R, no prompt of any length works. Any of these
    settles the question exactly, whatever the size of the search. Then the layers
    ``L_0 = supp(initial)``, ``L_{j+1} = Succ(L_j)`` are searched in order
    (:func:`hmmtune.analysis.graph.candidate_supports`) until a support has independent
    columns, the layers repeat, or ``max_prompt_length`` is reached.
    """
    trans, initial, exact = matrices.chain_arrays(model, tau)
    R = relevant_states(task, matrices.array(model, "initial"))
    G = graph.transition_graph(trans, tau)
    start = graph.support(list(initial), 0)
    ranks = _ColumnRanks(model, exact, tol, known_ranks)
    reachable = graph.reachable(G, start)
    succ_full: dict[int, bool] = {}

    def usable(d: int) -> bool:
        if d not in succ_full:
            Sd = graph.successors(G, [d])
            succ_full[d] = bool(Sd) and ranks.full(Sd)
        return succ_full[d]

    pruned = sorted(d for d in reachable if set(G.successors(d)) & R and not usable(d))
    good = frozenset(reachable) - frozenset(pruned)
    mode = "exact" if exact else (f"tolerance tau={tau:g}" if tau > 0 else "numerical")
    out = SupportSearch(exact, mode, G, start, initial, R, pruned, good)
    covering = [d for d in good if set(G.successors(d)) & R]
    if R and not ranks.full(frozenset(R)):
        out.reason = f"rank W[:, R] < |R| = {len(R)} for R = {sorted(R)}: no support containing R has independent columns"
    elif R and not R <= graph.successors(G, covering):
        uncovered = sorted(R - graph.successors(G, covering))
        out.reason = (
            f"states {uncovered} of R are successors only of states whose own successor set has dependent columns of W "
            f"({len(pruned)} such state(s) pruned, e.g. two successors with identical emission columns) or of no reachable state"
        )
    if out.reason is not None:
        out.definitive = True
        return out
    seen: list[frozenset[int]] = []
    layer = frozenset(start)
    for k in range(1, max_prompt_length + 1):
        if layer in seen:
            out.definitive = True  # layers repeat: longer prompts reach no new supports
            break
        seen.append(layer)
        pairs, was_exact = graph.candidate_supports(G, layer & good, R, exact_limit)
        out.searched_exact &= was_exact
        out.found = next(((k, D, S) for D, S in pairs if ranks.full(S)), None)
        if out.found:
            break
        layer = graph.successors(G, layer)
    else:
        out.definitive = layer in seen
    out.num_layers = len(seen)
    return out


def _no_support(search: SupportSearch, max_prompt_length: int) -> Condition:
    """The row when the search found no support."""
    R = sorted(search.relevant)
    if search.reason is not None:
        return Condition(
            NAME,
            False,
            search.mode + " (pruning)",
            f"no prompt of any length: {search.reason}",
            {"relevant_states": R, "max_prompt_length": max_prompt_length, "definitive": True, "pruned_states": search.pruned, "reason": search.reason},
        )
    if search.definitive and search.searched_exact:
        expl = (
            f"no prompt of any length: the reachable layers repeat after {search.num_layers} step(s), so longer prompts "
            f"reach no new support, and no support reached covers R = {R} with independent columns of W"
        )
    else:
        expl = f"no prompt of length <= {max_prompt_length} found" + (
            "" if search.searched_exact else f" (greedy search over {len(search.usable)} usable states; a longer or cleverer prompt may exist)"
        )
    return Condition(
        NAME,
        False,
        search.mode + ("" if search.searched_exact else ", heuristic search"),
        expl,
        {"relevant_states": R, "max_prompt_length": max_prompt_length, "definitive": search.definitive and search.searched_exact, "pruned_states": search.pruned},
    )


# ----------------------------------------------------------------- witness
@dataclass
class PromptWitness:
    """Theorem P's witness.

    Attributes:
        length: k, the number of soft tokens.
        D: the last prompt set; ``S = Succ(D)``.
        support: sorted S.
        relevant: sorted R, the states the heads must read.
        prompt: (k, m) 0/1 rows ``u_j``.
        prior: (m,) the prompted prior ``r(u)`` (exact Rationals for an exact model).
        heads: one head on S per class difference (exact when model and task are).
    """

    length: int
    D: frozenset[int]
    support: list[int]
    relevant: list[int]
    prompt: list[list[int]]
    prior: list
    heads: list


def prompt_witness(model, task: Task, search: SupportSearch) -> PromptWitness:
    """The prompt ``u`` reaching the support found by :func:`search_support` and the heads
    ``b_c`` with ``(W^T b_c)_h = (weights[c] - weights[0])_h pi_h / r_h`` on S (zero off R),
    exactly (re-checked by multiplication) when model and task are exact."""
    m = model.num_states
    k, D, S = search.found
    u_rows = [[1 if h in Dj else 0 for h in range(m)] for Dj in prompt_chain(search.graph, search.start, D, k)]
    r = prompt_prior(model, u_rows, search.exact)
    exact_task = search.exact and task.exact is not None
    diffs = task.differences(exact=exact_task)
    Scols = sorted(S)
    if exact_task:
        pi_h, r_h = [fmpq_to_sympy(v) for v in search.initial], r
    else:  # a float task (or a float model): the witness head is computed in float64
        pi_h = [int(v.p) / int(v.q) if isinstance(v, flint.fmpq) else float(v) for v in search.initial]
        r_h = [float(v) for v in r]
    heads = []
    for row in np.atleast_2d(np.array(diffs, dtype=object)):
        target = [(row[h] * pi_h[h] / r_h[h]) if (row[h] != 0 and h in search.relevant) else 0 for h in Scols]
        if exact_task:
            WS = select_columns(matrices.exact_W(model), Scols)
            b = exact_min_norm_preimage(WS, target)
            verify_preimage(WS, b, target)
        else:
            b = least_squares(matrices.float_W(model)[:, Scols].T, np.array([float(t) for t in target]))
        heads.append(b)
    return PromptWitness(k, D, Scols, sorted(search.relevant), u_rows, r, heads)


def prompt_chain(G, start: frozenset[int], D: frozenset[int], k: int) -> list[frozenset[int]]:
    """Sets D_0 .. D_{k-1} = D with D_0 in supp(initial) and every state of D_j having a
    predecessor in D_{j-1}; u_j is the indicator of D_{j-1} (docs/theory.md, "Reachable prompt supports")."""
    chain = [frozenset(D)]
    lay = graph.layers(G, start, k - 1)
    for j in range(k - 1, 0, -1):
        prev = frozenset(p for d in chain[0] for p in G.predecessors(d)) & lay[j - 1]
        chain.insert(0, prev)
    return chain


def prompt_prior(model, u_rows, exact: bool) -> list:
    """``r(u)``, normalised: exact Rationals for exact models, floats otherwise."""
    m = model.num_states
    if exact:
        mats = matrices.exact_matrices(model)
        A = mats["transition"]
        a = flint.fmpq_mat(1, m, [mats["initial"][h, 0] * u_rows[0][h] for h in range(m)])
        for row in u_rows[1:]:
            a = a * A
            a = flint.fmpq_mat(1, m, [a[0, j] * row[j] for j in range(m)])
        r = a * A
        total = sum((r[0, j] for j in range(m)), flint.fmpq(0))
        return [fmpq_to_sympy(r[0, j] / total) for j in range(m)]
    u = torch.tensor(u_rows, dtype=model.dtype)
    return OracleMLM(model).prompt_prior(u).detach().double().cpu().numpy().tolist()


# ----------------------------------------------------------------- verify
def _verify_prompt(model, task: Task, witness: PromptWitness, ev: Evidence, tau: float) -> dict:
    """The witness on sampled inputs with the exact prompted oracle of the true model.

    Returns the witness's JSON fields (``"witness"``) and what the verdict rests on:
    ``clear`` (non-tie, possible inputs), ``certified`` (tolerance mode) and the leaks."""
    m = model.num_states
    num_inputs, length = ev.inputs.shape
    lab = task_labels(task, ev.mask_posterior)
    # Prompted posterior, unnormalised: r(u) * beta_0. An input impossible from every
    # state the prompt allows has p_0 = 0 on R, hence mu . p_0(x) = 0: a tie, left out.
    u = torch.tensor(witness.prompt, dtype=model.dtype)
    w = (OracleMLM(model).prompt_prior(u) * ev.messages.backward).detach().double().cpu().numpy()
    totals = w.sum(1)
    possible = totals > 0
    clear = lab.clear & possible
    post_u = w / np.where(possible, totals, 1.0)[:, None]
    Bh = np.array([[float(v) for v in b] for b in witness.heads])
    pred = np.hstack([np.zeros((len(post_u), 1)), (post_u @ matrices.emission(model)) @ Bh.T]).argmax(1)
    agree = float((pred == lab.labels)[clear].mean()) if clear.any() else float("nan")
    outside = sorted(set(range(m)) - set(witness.support))
    post_leak = float(post_u[possible][:, outside].sum(1).max()) if outside and possible.any() else 0.0
    fields = {
        "prompt_length": witness.length,
        "D": sorted(witness.D),
        "support": witness.support,
        "relevant_states": witness.relevant,
        "prompt": witness.prompt,
        "prior": format_vector(witness.prior),
        "head": [format_vector(b) for b in witness.heads],
        "agreement": agree,
        "num_inputs": num_inputs,
        "length": length,
        "prior_mass_outside_support": float(sum(float(witness.prior[h]) for h in outside)),
        "max_posterior_mass_outside_support": post_leak,
    }
    out = {"witness": fields, "clear": clear, "certified": None, "uniform_bound": None}
    if tau > 0:
        prior = np.asarray([float(v) for v in witness.prior])
        cert = tolerance_certificate(model, prior, witness.support, Bh, ev.messages.backward.detach().double().cpu().numpy(), lab.labels)
        certified = cert["certified"] & clear
        summary = {k: v for k, v in cert.items() if k not in ("certified", "bound")}
        summary["max_bound_on_sampled_inputs"] = float(cert["bound"][possible].max()) if possible.any() else 0.0
        summary["num_certified"] = int(certified.sum())
        summary["num_clear"] = int(clear.sum())
        fields["certificate"] = summary
        out.update(certified=certified, uniform_bound=cert["uniform_bound"])
    return out


def tolerance_certificate(model, prior, support, heads, backward, labels) -> dict:
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
    ``rho`` is inflated by a relative :data:`~hmmtune.analysis.tolerances.LEAK_ROUNDING`
    (1e-9) and the margin must also exceed that times ``sum_S p~_h |(W^T (b_y - b_c))_h|``
    (float64 recursions of ``T + k`` steps err by far less), so the certificate is rigorous
    up to that stated slack, not exact rational arithmetic.

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
    rho = rho * (1 + LEAK_ROUNDING)
    with np.errstate(invalid="ignore"):  # rho = inf (Z_S = 0): the bound is 1, taken below
        bound = np.where(np.isfinite(rho), rho / (1 + rho), 1.0)
    kappa = _kappa(matrices.array(model, "transition"), r, S, out, leak)
    uniform = None
    if np.isfinite(kappa):
        ru = leak * kappa / max(1 - leak, LEAK_FLOOR) * (1 + LEAK_ROUNDING)
        uniform = float(ru / (1 + ru))
    ok = _certified(matrices.float_W(model), heads, beta, r, S, out, rho, labels)
    return {"bound": bound, "certified": ok, "prior_leak": leak, "uniform_bound": uniform, "kappa": kappa if np.isfinite(kappa) else None}


def _kappa(A: np.ndarray, r: np.ndarray, S: list[int], out: list[int], leak: float) -> float:
    """The uniform likelihood ratio ``kappa`` of :func:`tolerance_certificate` (inf when
    some state outside S reaches a state that S does not)."""
    kappa = 0.0
    if out and leak > 0:
        mix = (r[S] / r[S].sum()) @ A[S]  # (m,) S's mixture of next-state laws
        for h in out:
            pos = A[h] > 0
            if (mix[pos] <= 0).any():
                return float("inf")
            kappa = max(kappa, float((A[h][pos] / mix[pos]).max()))
    return kappa


def _certified(W: np.ndarray, heads, beta, r, S, out, rho, labels) -> np.ndarray:
    """Per input: no posterior mass outside S below ``rho`` can flip the witness's label."""
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
        ok &= (y == c) | (margin > np.where(np.isfinite(rho), rho, 0.0) * worst + LEAK_ROUNDING * scale)
    return ok


# ----------------------------------------------------------------- explain
def _explain_prompt(search: SupportSearch, witness: PromptWitness, v: dict, tau: float) -> Condition:
    """The Theorem P row from the search, the witness and its verification."""
    fields = v["witness"]
    clear, certified = v["clear"], v["certified"]
    num_inputs, length, agree = fields["num_inputs"], fields["length"], fields["agreement"]
    if search.exact:
        holds, how = True, "exact" + ("" if search.searched_exact else "; greedy support search (a smaller support may exist)")
    elif tau > 0:
        holds = bool(clear.any() and certified.sum() == clear.sum())
        how = f"tolerance tau={tau:g}; leak bound checked on each of {num_inputs} sampled inputs of length {length}"
    else:
        holds, how = True, "numerical" + ("" if search.searched_exact else ", heuristic search")
    verified = (
        f"the witness agrees with {100 * agree:.1f}% of labels on {int(clear.sum())} of {num_inputs} inputs (ties left out)"
        if clear.any()
        else f"all {num_inputs} sampled inputs are ties (mu . p_0 = 0), nothing to verify"
    )
    where = (
        f"a {witness.length}-token prompt restricts the mask's state to S = {witness.support} "
        f"(covers R = {sorted(search.relevant)}), where W has independent columns"
    )
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
        ub = v["uniform_bound"]
        expl += (
            f"; prior mass outside S {fields['prior_mass_outside_support']:.2g}, proven bound on the prompted posterior mass outside S "
            f"at most {fields['certificate']['max_bound_on_sampled_inputs']:.2g} on these inputs "
            f"(largest actual {fields['max_posterior_mass_outside_support']:.2g})"
            + (
                f"; for EVERY input of any length it is at most {ub:.2g} (uniform bound)"
                if ub is not None and ub < 1
                else "; no uniform bound over all inputs (some state outside S reaches a state that S does not)"
            )
        )
    return Condition(NAME, holds, how, expl, fields)


# ----------------------------------------------------------------- through the head
def is_stationary(model) -> tuple[bool, str]:
    """Whether ``initial @ transition == initial`` (exactly for exact models), and how
    that was decided."""
    exact = getattr(model, "exact", None)
    if exact:
        pi = exact["initial"].reshape(1, model.num_states)
        return bool((pi * exact["transition"] - pi).is_zero_matrix), "exact"
    pi = matrices.array(model, "initial")
    A = matrices.array(model, "transition")
    tol = as_text(STATIONARY)
    return bool(np.abs(pi @ A - pi).max() <= STATIONARY), f"numerical (|pi A - pi| <= {tol})"


def prompt_through_head(model, prompt: Condition, head_task: Condition) -> Condition:
    """When the head's witness already recovers the task and ``pi`` is stationary, the
    one-token prompt ``u = 1`` leaves the mask's prior at ``pi A = pi``: the prompted model
    is the pretrained one and the same head works, so prompt tuning recovers the task too.
    Otherwise the prompt row keeps its verdict and says why the head does not carry over."""
    stationary, how = is_stationary(model)
    if not stationary:
        return prompt.replace(
            explanation=prompt.explanation + "; head tuning recovers this task (head row), but every prompt moves the mask's "
            "prior away from pi (pi A != pi), so the head's witness does not carry over"
        )
    witness = {
        "prompt_length": 1,
        "prompt": [[1] * model.num_states],
        "prior": "initial (pi A = pi)",
        "head": head_task.witness.get("head"),
        "through_head": True,
        "support_search": prompt.witness,
    }
    expl = (
        "no support S of Theorem P, but the head's witness already recovers the task and pi is stationary "
        "(pi A = pi): the one-token prompt u = 1 leaves the mask's prior at pi, so the prompted model keeps the "
        "head's exact identity b . G_0^u(x) = mu . p_0(x) and prompt tuning recovers F* too"
    )
    return prompt.replace(holds=True, method=f"{how}; through the head's witness", explanation=expl, witness=witness)
