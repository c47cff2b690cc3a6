"""Head-impossibility certificates (issue 4, item 3) re-checked independently.

* The Farkas weights of :func:`head_certificate` are re-checked in exact rational
  arithmetic: ``p_0`` of every input they rest on is recomputed by brute-force enumeration
  over hidden paths with :class:`fractions.Fraction`, then ``sum lambda s G = 0``,
  ``sum lambda s = 0``, ``lambda >= 0``, ``lambda != 0`` and the labels are checked.
* Verdicts on two-token models (features ``(g, 1 - g)``: a linear head is a threshold on
  g) against a brute-force scan over thresholds, and the best linear accuracy likewise.
* :func:`linear_separability` on constructed separable / inseparable point sets: a
  separable verdict must come with a head that separates.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import sympy

import hmmtune
from hmmtune.analysis import head_certificate
from hmmtune.analysis.certificates import all_inputs as lib_all_inputs
from hmmtune.analysis.certificates import best_linear_accuracy, exact_mask_posterior, linear_separability

from analysis_helpers import all_inputs, backward_p0, brute_p0, dot, exact_model, frac, mat_T_vec, to_fracs
from conftest import TINY_MODELS, np_params

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def example_fracs(name):
    model = hmmtune.load_example(name)
    ex = model.exact
    m = model.num_states
    pi = [frac(v) for v in ex["initial"]]
    A = [[frac(v) for v in ex["transition"].row(i)] for i in range(m)]
    B = [[frac(v) for v in ex["emission"].row(i)] for i in range(m)]
    return model, pi, A, B


def recheck_farkas(pi, A, B, weights_matrix, witness, posterior=brute_p0):
    """Exact re-check of a Farkas certificate from its witness dict."""
    ca, cb = witness["classes"]
    n = len(B[0])
    total_G = [Fraction(0)] * n
    total_s = Fraction(0)
    lam_sum = Fraction(0)
    for entry in witness["farkas"]:
        lam = frac(entry["weight"])  # exact rationals when verified exactly
        assert lam >= 0
        p, Z = posterior(pi, A, B, entry["input"])
        assert Z > 0, "the certificate rests on an impossible input"
        scores = [dot(row, p) for row in weights_matrix]
        best = max(scores)
        assert scores.count(best) == 1, "the certificate rests on a tie"
        label = scores.index(best)
        assert label == entry["label"] and label in (ca, cb)
        s = 1 if label == cb else -1
        G = mat_T_vec(B, p)
        total_G = [a + lam * s * g for a, g in zip(total_G, G)]
        total_s += lam * s
        lam_sum += lam
    assert lam_sum > 0
    assert total_G == [0] * n
    assert total_s == 0


# ----------------------------------------------------------------------------- Farkas, exact
@pytest.mark.parametrize("T", [3, 4, 6])
def test_prompt_example_farkas_certificate_is_exact(T):
    model, pi, A, B = example_fracs("prompt")
    mu = [1, -1, 0, 0, 0]
    c = head_certificate(model, {"mu": mu}, length=T)
    assert c.holds is False and c.witness["verified"] == "exact"
    assert all(isinstance(e["weight"], (str, int)) for e in c.witness["farkas"])
    recheck_farkas(pi, A, B, [[0] * 5, mu], c.witness)


def test_backward_reference_agrees_with_path_enumeration():
    _, pi, A, B = example_fracs("prompt")
    for x in all_inputs(2, 4):
        assert backward_p0(pi, A, B, x) == brute_p0(pi, A, B, x)


def test_certificate_on_sampled_inputs_is_exact():
    # 2^10 inputs > max_inputs: the LP runs on a sample, the weights are still exact
    model, pi, A, B = example_fracs("prompt")
    mu = [1, -1, 0, 0, 0]
    c = head_certificate(model, {"mu": mu}, length=10, max_inputs=100, num_samples=100, seed=1)
    assert c.holds is False and c.witness["verified"] == "exact"
    assert "sampled" in c.explanation and c.witness["num_inputs"] <= 100
    assert all(len(e["input"]) == 10 for e in c.witness["farkas"])
    recheck_farkas(pi, A, B, [[0] * 5, mu], c.witness, posterior=backward_p0)


def test_multiclass_certificate_rests_on_one_pair_of_classes():
    model, pi, A, B = example_fracs("prompt")
    M = [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 0, 0, 1]]
    c = head_certificate(model, {"weights": M}, length=4)
    assert c.holds is False
    recheck_farkas(pi, A, B, M, c.witness)


# ----------------------------------------------------------------------------- two-token models
def threshold_facts(g: np.ndarray, y: np.ndarray) -> tuple[bool, float]:
    """(separable, best accuracy) of 1-D threshold classifiers ``1[g >= t]`` / ``1[g <= t]``
    (every linear head on features (g, 1 - g) is one of these or a constant)."""
    vals = np.unique(g)
    best = max(y.mean(), 1 - y.mean())
    for t in vals:
        best = max(best, ((g >= t) == y).mean(), ((g <= t) == y).mean())
    return bool(best == 1.0), float(best)


def two_token_case(seed):
    """A random exact model with n = 2 tokens and exact zeros (transition, emission)."""
    rng = np.random.default_rng(seed)
    m = int(rng.integers(3, 6))

    def rows(k, c, zero):
        out = []
        for r in rng.integers(1, 6, size=(k, c)) * (rng.uniform(size=(k, c)) > zero):
            if r.sum() == 0:
                r[rng.integers(c)] = 1
            out.append([Fraction(int(v), int(r.sum())) for v in r])
        return out

    pi, A, B = rows(1, m, 0)[0], rows(m, m, 0.4), rows(m, 2, 0.3)
    mu = [int(v) for v in rng.integers(-3, 4, size=m)]
    if not any(mu):
        mu[0] = 1
    return pi, A, B, mu


# seeds 1, 7, 13, 16, 20 are inseparable at T = 4, the others separable
@pytest.mark.parametrize("seed", [0, 1, 2, 7, 13, 16, 20])
@pytest.mark.parametrize("T", [2, 4])
def test_two_token_verdict_and_best_accuracy_against_threshold_scan(seed, T):
    pi, A, B, mu = two_token_case(seed)
    model = exact_model(pi, A, B)
    g, y = [], []
    for x in all_inputs(2, T):
        p, Z = brute_p0(pi, A, B, x)
        score = dot(mu, p)
        if Z == 0 or score == 0:
            continue
        g.append(float(mat_T_vec(B, p)[0]))
        y.append(int(score > 0))
    g, y = np.array(g), np.array(y)
    c = head_certificate(model, {"mu": mu}, length=T)
    sep, acc = threshold_facts(g, y)
    assert c.holds is sep
    assert c.witness["num_inputs"] == len(g)
    if not sep:
        recheck_farkas(pi, A, B, [[0] * len(mu), mu], c.witness)
        gaps = np.diff(np.unique(g))
        if gaps.size == 0 or gaps.min() > 1e-3:  # the MILP's margin cannot split closer points
            assert c.witness["best_accuracy"] == pytest.approx(acc)


@pytest.mark.parametrize("T", [2, 3, 5])
def test_prompt_example_verdict_against_threshold_scan(T):
    model, pi, A, B = example_fracs("prompt")
    mu = [1, -1, 0, 0, 0]
    g, y = [], []
    for x in all_inputs(2, T):
        p, Z = brute_p0(pi, A, B, x)
        if Z == 0 or dot(mu, p) == 0:
            continue
        g.append(float(mat_T_vec(B, p)[0]))
        y.append(int(dot(mu, p) > 0))
    sep, acc = threshold_facts(np.array(g), np.array(y))
    c = head_certificate(model, {"mu": mu}, length=T)
    assert c.holds is sep
    if not sep:
        assert c.witness["best_accuracy"] == pytest.approx(acc)


def test_exact_mask_posterior_matches_path_enumeration():
    for name in sorted(TINY_MODELS):
        pi, A, B = np_params(name)
        model = exact_model(pi, A, B)
        piF, AF, BF = to_fracs(pi.tolist()), to_fracs(A.tolist()), to_fracs(B.tolist())
        for x in all_inputs(B.shape[1], 3)[:12]:
            p, Z = brute_p0(piF, AF, BF, x)
            if Z == 0:
                with pytest.raises(ValueError):
                    exact_mask_posterior(model.exact, x)
                continue
            assert [frac(v) for v in exact_mask_posterior(model.exact, x)] == p


def test_all_inputs_is_the_lexicographic_product():
    got = lib_all_inputs(3, 2)
    assert got.shape == (9, 2) and got.tolist() == [list(t) for t in itertools.product(range(3), repeat=2)]


# ----------------------------------------------------------------------------- LP directly
@pytest.mark.parametrize("seed", range(5))
def test_linear_separability_separable_sets_come_with_a_separating_head(seed):
    rng = np.random.default_rng(seed)
    n, N = 4, 60
    G = rng.dirichlet(np.ones(n), size=N)
    w = rng.normal(size=n)
    score = G @ w - np.median(G @ w)
    keep = np.abs(score) > 0.05
    G, y = G[keep], (score[keep] > 0).astype(int)
    res = linear_separability(G, y)
    assert res.separable
    b, c = res.head
    s = 2 * y - 1
    assert np.all(s * (G @ b + c) >= 1 - 1e-7)
    assert best_linear_accuracy(G, y)[0] == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_linear_separability_certificate_on_intersecting_hulls(seed):
    rng = np.random.default_rng(seed)
    n = 3
    P = rng.dirichlet(np.ones(n), size=6)
    # class 0: P; class 1: two convex combinations of P (inside class 0's hull) and a far point
    lam = rng.dirichlet(np.ones(6), size=2)
    Q = lam @ P
    G = np.vstack([P, Q, np.eye(n)[0]])
    y = np.array([0] * 6 + [1] * 3)
    res = linear_separability(G, y)
    assert not res.separable and res.weights
    s = 2 * y - 1
    wts = np.zeros(len(y))
    for i, v in res.weights.items():
        wts[i] = float(v)
    assert np.all(wts >= 0) and wts.sum() > 0
    assert np.abs((wts * s) @ G).max() < 1e-9 and abs((wts * s).sum()) < 1e-9


def test_linear_separability_exact_verification_with_rational_features():
    # class 0 at the vertices (1,0,0), (0,1,0); class 1 at their midpoint (1/2,1/2,0) and at (0,0,1)
    G = np.array([[1, 0, 0], [0, 1, 0], [0.5, 0.5, 0], [0, 0, 1]], dtype=float)
    y = np.array([0, 0, 1, 1])
    exactG = [[1, 0, 0], [0, 1, 0], [sympy.Rational(1, 2), sympy.Rational(1, 2), 0], [0, 0, 1]]
    res = linear_separability(G, y, exact_features=lambda i: exactG[i])
    assert not res.separable and res.verified == "exact"
    lam = {i: frac(v) for i, v in res.weights.items()}
    s = {i: 2 * int(y[i]) - 1 for i in lam}
    assert all(v > 0 for v in lam.values())
    for h in range(3):
        assert sum(lam[i] * s[i] * frac(exactG[i][h]) for i in lam) == 0
    assert sum(lam[i] * s[i] for i in lam) == 0
    assert lam == {0: Fraction(1, 4), 1: Fraction(1, 4), 2: Fraction(1, 2)}


def test_linear_separability_one_class_is_trivially_separable():
    G = np.random.default_rng(0).dirichlet(np.ones(3), size=5)
    res = linear_separability(G, np.ones(5, dtype=int))
    b, c = res.head
    assert res.separable and np.all(G @ b + c >= 1 - 1e-12)


def test_certificate_explanation_counts_the_inputs_it_used():
    from hmmtune import HMM

    # two identical states: p_0 = pi for every input, so mu . p_0 = 0 everywhere
    model = HMM([0.5, 0.5], [[0.5, 0.5], [0.5, 0.5]], [[0.5, 0.5], [0.5, 0.5]])
    c = head_certificate(model, [1.0, -1.0], length=3)
    assert c.witness["num_inputs"] == 0
    assert "all 8 possible inputs" not in c.explanation


def _multiclass_feasible(G, y, C) -> bool:
    """Independent reference: an LP feasibility test that some (w, c) puts every input's
    own class strictly on top (margin 1 after scaling)."""
    from scipy.optimize import linprog

    N, n = G.shape
    rows = []
    for x in range(N):
        for c in range(C):
            if c == y[x]:
                continue
            r = np.zeros(C * n + C)
            r[y[x] * n:(y[x] + 1) * n] -= G[x]
            r[c * n:(c + 1) * n] += G[x]
            r[C * n + y[x]] -= 1
            r[C * n + c] += 1
            rows.append(r)
    res = linprog(np.zeros(C * n + C), A_ub=np.array(rows), b_ub=-np.ones(len(rows)), bounds=(None, None), method="highs")
    return res.status == 0


@pytest.mark.parametrize("seed", range(6))
def test_multiclass_best_accuracy_matches_subset_enumeration(seed):
    from hmmtune.analysis.certificates import best_linear_accuracy_detail

    rng = np.random.default_rng(seed)
    N, C = 8, 3
    G = rng.dirichlet(np.ones(3), N)
    y = rng.integers(0, C, N)
    y[:C] = np.arange(C)
    best = 0
    for r in range(N, 0, -1):  # the largest subset a linear head fits exactly
        if any(_multiclass_feasible(G[list(S)], y[list(S)], C) for S in itertools.combinations(range(N), r)):
            best = r
            break
    got = best_linear_accuracy_detail(G, y, node_limit=10_000)
    assert got.proven_optimal and got.method == "MILP, proven optimal"
    assert got.accuracy == pytest.approx(best / N)
    assert "proven optimal" in got.describe()


def test_best_accuracy_is_labelled_a_bound_when_the_milp_stops():
    from hmmtune.analysis.certificates import best_linear_accuracy_detail

    rng = np.random.default_rng(0)
    G = rng.dirichlet(np.ones(4), 60)
    y = rng.integers(0, 3, 60)
    got = best_linear_accuracy_detail(G, y, node_limit=1)
    assert not got.proven_optimal and "LOWER BOUND" in got.describe()
    if got.upper_bound is not None:
        assert got.accuracy <= got.upper_bound + 1e-12
    heur = best_linear_accuracy_detail(G, y, max_milp_inputs=10)
    assert heur.method.startswith("hinge-loss LP heuristic") and "LOWER BOUND" in heur.describe()


def test_multiclass_report_states_whether_the_best_accuracy_is_proven():
    model = hmmtune.load_example("prompt")
    task = {"weights": [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], ["1/2", "1/2", 0, 0, 0]]}
    c = head_certificate(model, task, length=4)
    assert c.holds is False
    d = c.witness["best_accuracy_detail"]
    assert d is not None and d["accuracy"] == c.witness["best_accuracy"]
    if d["proven_optimal"]:
        assert "proven optimal" in c.explanation
    else:
        assert "LOWER BOUND" in c.explanation
