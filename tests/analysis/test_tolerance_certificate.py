"""Tolerance mode's leak bound against brute force (issue 15, item 2).

On tiny dense-but-peaked models the prompted posterior mass outside the support S is
computed for EVERY input of a few lengths by enumerating hidden paths (tests/conftest.py);
the per-input bound and the uniform bound of
:func:`hmmtune.analysis.prompt.tolerance_certificate` must hold on every input, must be
non-vacuous, and every input the bound certifies must be classified correctly by the
witness under the true prompted posterior.
"""

from __future__ import annotations

import numpy as np
import pytest

from hmmtune import HMM, OracleMLM
from hmmtune.analysis import prompt_condition
from hmmtune.analysis.certificates import all_inputs
from hmmtune.analysis.prompt import tolerance_certificate

from conftest import brute_mask_posterior


def peaked(eps: float, seed: int):
    """4 states, 3 tokens: a deterministic-looking chain 0,1 -> {2,3} -> {0,1} with
    every other transition eps (dense, so the exact support is everything)."""
    rng = np.random.default_rng(seed)
    A = np.full((4, 4), eps)
    A[0, 2] = A[1, 3] = A[2, 0] = A[3, 1] = 1.0
    A[2, 1] = A[3, 0] = 0.5
    A /= A.sum(1, keepdims=True)
    B = rng.dirichlet(np.ones(3), 4)
    B[0] = [0.8, 0.1, 0.1]
    B[1] = [0.1, 0.8, 0.1]
    pi = np.array([0.1, 0.1, 0.4, 0.4])
    return pi, A, B


@pytest.mark.parametrize("eps,seed", [(1e-3, 0), (1e-2, 1), (1e-4, 2)])
def test_leak_bounds_hold_on_every_input_and_certify(eps, seed):
    pi, A, B = peaked(eps, seed)
    model = HMM(pi, A, B)
    mu = [1.0, -1.0, 0.0, 0.0]
    c = prompt_condition(model, {"mu": mu}, tau=0.05, num_inputs=300, length=3)
    w = c.witness
    S = w["support"]
    out = [h for h in range(4) if h not in S]
    assert out, "the tau-graph should restrict the support"
    u = np.array(w["prompt"], dtype=float)
    r = np.array(w["prior"], dtype=float)
    heads = np.array(w["head"], dtype=float)
    uniform = w["certificate"]["uniform_bound"]
    assert uniform is not None and uniform < 1  # this model allows a uniform bound
    oracle = OracleMLM(model)
    certified_total = 0
    for T in (1, 2, 3):
        X = all_inputs(3, T)
        beta = oracle.encode(X).backward.double().numpy()
        p0 = oracle.mask_posterior(X).double().numpy()
        labels = (p0 @ np.array(mu) > 0).astype(int)
        cert = tolerance_certificate(model, r, S, heads, beta, labels)
        for i, x in enumerate(X):
            pu = brute_mask_posterior(pi, A, B, x, prompt=u)  # enumeration over hidden paths
            q = pu[out].sum()
            assert q <= cert["bound"][i] + 1e-15, (x, q, cert["bound"][i])
            assert q <= uniform + 1e-15, (x, q, uniform)
            if cert["certified"][i] and abs(p0[i] @ mu) > 1e-12:
                score = heads[0] @ (B.T @ pu)
                assert (score > 0) == bool(labels[i]), x
                certified_total += 1
        assert cert["bound"].min() < 0.5  # non-vacuous
    assert certified_total > 0
    assert w["certificate"]["num_certified"] <= w["certificate"]["num_clear"]


def test_no_uniform_bound_when_an_outside_state_reaches_where_s_does_not():
    pi, A, B = peaked(1e-3, 0)
    model = HMM(pi, A, B)
    c = prompt_condition(model, {"mu": [1.0, -1.0, 0, 0]}, tau=0.05, num_inputs=100, length=3)
    S = c.witness["support"]
    out = [h for h in range(4) if h not in S]
    A2 = A.copy()  # S's states never move to state j, a state outside S does
    j = 3
    A2[S, j] = 0.0
    A2[out[0], j] = max(A2[out[0], j], 0.1)
    A2 /= A2.sum(1, keepdims=True)
    cert = tolerance_certificate(HMM(pi, A2, B), c.witness["prior"], S, np.array(c.witness["head"], dtype=float), np.ones((1, 4)), np.array([1]))
    assert cert["uniform_bound"] is None and cert["kappa"] is None
