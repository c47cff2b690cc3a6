"""Exact "no prompt of any length" verdicts from pruning and fixpoints (issue 12, item 8a).

A support only grows with D (S = Succ(D)), and dependent columns of W stay dependent when
columns are added. So a state whose own successor set has dependent columns (two states
with the same emission column, say) can never be in D; rank W[:, R] < |R| rules out every
prompt; and once the reachable layers repeat, longer prompts reach nothing new. The tests
build a GINC-style model with our own code (Xie et al.'s generator in spirit: 100 states,
50 tokens, one-hot emissions, sparse random transitions, a task on two states) and check
the verdicts against direct numpy facts and, on tiny models, against a brute-force
enumeration of every D in every layer.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
import pytest

from hmmtune import HMM
from hmmtune.analysis import check, prompt_condition

FEW = dict(num_inputs=100, length=4)


def ginc_style_hmm(seed: int = 0, m: int = 100, n: int = 50, out_degree: int = 10) -> HMM:
    """One-hot emissions (state h emits token h mod n, so h and h + n share a column);
    every state moves to ``out_degree`` random states, among them a pair sharing a
    column; the initial law is uniform."""
    rng = np.random.default_rng(seed)
    E = np.zeros((m, n))
    E[np.arange(m), np.arange(m) % n] = 1.0
    A = np.zeros((m, m))
    for i in range(m):
        a = int(rng.integers(n))
        others = rng.choice([h for h in range(m) if h not in (a, a + n)], out_degree - 2, replace=False)
        succ = [a, a + n, *others.tolist()]
        A[i, succ] = rng.dirichlet(np.ones(out_degree))
    return HMM(np.full(m, 1 / m), A, E, name=f"ginc_style(seed={seed})")


def test_ginc_style_model_gets_an_exact_no_for_every_prompt_length():
    model = ginc_style_hmm()
    W = model.emission.double().numpy().T
    A = model.transition.double().numpy()
    # independent facts: every successor set holds two states with identical columns of W
    for i in range(100):
        succ = np.nonzero(A[i] > 0)[0]
        cols = {tuple(W[:, j]) for j in succ}
        assert len(cols) < len(succ), i
    mu = np.zeros(100)
    mu[[3, 17]] = [1.0, -1.0]
    c = prompt_condition(model, {"mu": mu.tolist()}, **FEW)
    assert c.holds is False
    assert c.witness["definitive"] is True
    assert "heuristic" not in c.method and "greedy" not in c.explanation
    assert c.explanation.startswith("no prompt of any length")
    preds = sorted(int(i) for i in np.nonzero((A[:, [3, 17]] > 0).any(1))[0])
    assert c.witness["pruned_states"] == preds  # every state that could cover R is unusable
    # the same verdict through check(), which also reports the rest
    rep = check(model, {"mu": mu.tolist()}, **FEW)
    assert rep.condition("prompt: Theorem P support").witness["definitive"] is True


def test_rank_of_the_relevant_columns_rules_out_every_prompt():
    model = ginc_style_hmm(seed=1)
    mu = np.zeros(100)
    mu[[5, 55]] = [1.0, -1.0]  # states 5 and 55 emit the same token
    c = prompt_condition(model, {"mu": mu.tolist()}, **FEW)
    assert c.holds is False and c.witness["definitive"] is True
    assert "rank W[:, R] < |R|" in c.explanation


def _brute_any_length(A, W, pi, R):
    """Every D in every layer until the layers repeat: is there a support S >= R with
    independent columns? (No pruning, no greedy: plain enumeration.)"""
    m = len(pi)
    layer = frozenset(np.nonzero(pi > 0)[0].tolist())
    seen = []
    while layer not in seen:
        seen.append(layer)
        for r in range(1, len(layer) + 1):
            for D in itertools.combinations(sorted(layer), r):
                S = sorted({int(j) for d in D for j in np.nonzero(A[d] > 0)[0]})
                if set(R) <= set(S) and np.linalg.matrix_rank(W[:, S]) == len(S):
                    return True
        layer = frozenset(int(j) for d in layer for j in np.nonzero(A[d] > 0)[0])
    return False


def _tiny(seed):
    rng = np.random.default_rng(seed)
    m, n = 7, int(rng.integers(2, 6))
    E = np.zeros((m, n))
    E[np.arange(m), rng.integers(0, n, m)] = 1.0  # one-hot: many identical columns
    A = (rng.random((m, m)) < 0.3) * rng.random((m, m))
    A[A.sum(1) == 0, 0] = 1.0
    A /= A.sum(1, keepdims=True)
    pi = (rng.random(m) < 0.6) * 1.0
    pi[:2] = 1.0
    pi /= pi.sum()
    R = sorted(rng.choice(np.nonzero(pi > 0)[0], 2, replace=False).tolist())
    return A, E, pi, R


@pytest.mark.parametrize("exact_limit", [0, 16])
def test_definitive_verdicts_agree_with_brute_force(exact_limit):
    seen = set()
    for seed in range(40):
        A, E, pi, R = _tiny(seed)
        mu = np.zeros(len(pi))
        mu[R] = [1.0, -1.0]
        c = prompt_condition(HMM(pi, A, E), {"mu": mu.tolist()}, max_prompt_length=8, exact_limit=exact_limit, **FEW)
        truth = _brute_any_length(A, E.T, pi, R)
        if c.holds:
            assert truth, seed
        elif c.witness["definitive"]:
            assert not truth, (seed, c.explanation)
        seen.add((c.holds, c.witness.get("definitive"), "pruning" in c.method))
    # every kind of verdict occurred: found, exact no by pruning, and (with the exact
    # enumeration; a greedy search never settles a length) exact no by the fixpoint
    want = {(True, None, False), (False, True, True)} | ({(False, True, False)} if exact_limit else {(False, False, False)})
    assert want <= seen, seen


def test_ginc_style_report_says_which_inputs_each_head_verdict_covers():
    """Issue 12, item 8(b): with n = 50 the exhaustive LP certificate runs on one-token
    inputs only; the report also runs it on sampled inputs of the report's length and each
    verdict names its inputs."""
    model = ginc_style_hmm()
    mu = np.zeros(100)
    mu[[3, 17]] = [1.0, -1.0]
    rep = check(model, {"mu": mu.tolist()}, num_inputs=300, length=6)
    assert rep.condition("head: task in row space of W").holds is False  # states 3 and 53 share a token
    full = rep.condition("head: LP certificate on concrete inputs")
    samp = rep.condition("head: LP certificate on sampled inputs")
    assert full.witness["length"] == 1 and full.witness["exhaustive"] is True
    assert "[n]^T, T=1" in full.explanation
    assert samp.witness["length"] == 6 and samp.witness["exhaustive"] is False
    assert "sampled inputs of length 6" in samp.explanation
    # independent check of a "no" on the sampled inputs: the Farkas weights put the two
    # classes' convex hulls in contact (features recomputed here with the oracle)
    if samp.holds is False:
        from hmmtune import OracleMLM

        w = samp.witness["farkas"]
        X = np.array([f["input"] for f in w])
        lam = np.array([float(f["weight"]) for f in w])
        sgn = np.array([1.0 if f["label"] == samp.witness["classes"][1] else -1.0 for f in w])
        G = OracleMLM(model).mask_prediction(torch.as_tensor(X)).double().numpy()
        assert abs((lam * sgn) @ G).max() < 1e-8 and abs(lam @ sgn) < 1e-8
