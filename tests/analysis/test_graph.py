"""Transition-graph facts (issue 4, items 4 and 6) against independent references.

* The prompt-reachable supports (docs/theory.md, "Reachable prompt supports": exactly ``Succ(D)`` for nonempty
  ``D <= L_{k-1}``) are checked by brute force over every 0/1 prompt matrix ``u`` (k x m),
  computing the support of ``r(u)`` with the oracle's ``prompt_prior``; the reference
  layers and successor sets are computed with numpy boolean matrix products.
* Chain structure is checked against networkx called directly, periods against the gcd of
  closed-walk lengths read off boolean matrix powers, and hand-made periodic chains.
* The support search is checked against brute force over every subset D of a layer.
"""

from __future__ import annotations

import itertools
import math

import networkx as nx
import numpy as np
import pytest
import sympy
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmmtune import HMM, OracleMLM
from hmmtune.analysis import graph

from conftest import TINY_MODELS, np_params

pytestmark = pytest.mark.usefixtures("torch_single_thread")

HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- references
def ref_succ(A: np.ndarray, D) -> frozenset:
    D = list(D)
    if not D:
        return frozenset()
    return frozenset(int(j) for j in np.nonzero(A[D].sum(0) > 0)[0])


def ref_layers(pi: np.ndarray, A: np.ndarray, k: int) -> list[frozenset]:
    """L_0..L_k with boolean vector-matrix products."""
    v = pi > 0
    out = [frozenset(np.nonzero(v)[0].tolist())]
    Ab = (A > 0).astype(int)
    for _ in range(k):
        v = (v.astype(int) @ Ab) > 0
        out.append(frozenset(np.nonzero(v)[0].tolist()))
    return out


def random_sparse_model(rng, m, n=2, density=0.45):
    """A random HMM with exact zeros in initial and transition (every row keeps one entry)."""
    A = rng.uniform(0.1, 1, size=(m, m)) * (rng.uniform(size=(m, m)) < density)
    for i in range(m):
        if A[i].sum() == 0:
            A[i, rng.integers(m)] = 1.0
    A /= A.sum(1, keepdims=True)
    pi = rng.uniform(0.1, 1, size=m) * (rng.uniform(size=m) < 0.6)
    if pi.sum() == 0:
        pi[rng.integers(m)] = 1.0
    pi /= pi.sum()
    B = rng.dirichlet(np.ones(n), size=m)
    return pi, A, B


def brute_prompt_supports(pi, A, B, k) -> set[frozenset]:
    """Supports of r(u) over every 0/1 prompt u (k x m) that some hidden path can follow."""
    m = len(pi)
    oracle = OracleMLM(HMM(pi, A, B))
    found = set()
    for bits in itertools.product((0.0, 1.0), repeat=k * m):
        u = torch.tensor(bits, dtype=torch.float64).reshape(k, m)
        try:
            r = oracle.prompt_prior(u)
        except ValueError:  # no hidden path is consistent with this prompt
            continue
        found.add(frozenset(int(j) for j in torch.nonzero(r > 0).ravel().tolist()))
    return found


def theory_supports(pi, A, k) -> set[frozenset]:
    L = ref_layers(pi, A, k - 1)[k - 1]
    return {
        ref_succ(A, D)
        for r in range(1, len(L) + 1)
        for D in itertools.combinations(sorted(L), r)
    }


# ----------------------------------------------------------------------------- supports
CASES = [(name, k) for name in sorted(TINY_MODELS) for k in (1, 2, 3) if len(TINY_MODELS[name][0]) * k <= 12]


@pytest.mark.parametrize("name,k", CASES)
def test_prompt_supports_are_exactly_succ_of_layer_subsets_tiny(name, k):
    pi, A, B = np_params(name)
    brute = brute_prompt_supports(pi, A, B, k)
    assert brute == theory_supports(pi, A, k)
    # and the library's graph functions give the same sets
    G = graph.transition_graph(A)
    lay = graph.layers(G, graph.support(pi.tolist()), k - 1)
    assert lay == ref_layers(pi, A, k - 1)
    lib = {graph.successors(G, D) for r in range(1, len(lay[-1]) + 1) for D in itertools.combinations(sorted(lay[-1]), r)}
    assert lib == brute


@pytest.mark.parametrize("seed", range(6))
def test_prompt_supports_on_random_sparse_models(seed):
    rng = np.random.default_rng(seed)
    m = 4 if seed % 2 else 3
    pi, A, B = random_sparse_model(rng, m)
    for k in (1, 2, 3):
        if k * m > 12:
            continue
        assert brute_prompt_supports(pi, A, B, k) == theory_supports(pi, A, k), (seed, k)


def test_layers_of_a_hand_made_cycle():
    # 0 -> 1 -> 2 -> 0, start at 0: layers rotate
    A = np.array([[0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=float)
    G = graph.transition_graph(A)
    assert graph.layers(G, [0], 4) == [frozenset({0}), frozenset({1}), frozenset({2}), frozenset({0}), frozenset({1})]


def test_transition_graph_threshold_and_exact_entries():
    A = np.array([[0.98, 0.01, 0.01], [1e-30, 1 - 1e-30, 0.0], [0.5, 0.25, 0.25]])
    G0 = graph.transition_graph(A)
    Gt = graph.transition_graph(A, tau=1e-3)
    assert set(G0.edges()) == {(i, j) for i in range(3) for j in range(3) if A[i, j] > 0}
    assert set(Gt.edges()) == {(i, j) for i in range(3) for j in range(3) if A[i, j] > 1e-3}
    # sympy rationals compare exactly: 1/10^40 is an edge at tau = 0
    S = sympy.Matrix([[1 - sympy.Rational(1, 10**40), sympy.Rational(1, 10**40)], [0, 1]])
    assert set(graph.transition_graph(S).edges()) == {(0, 0), (0, 1), (1, 1)}
    assert graph.support([sympy.Rational(1, 10**40), 0, sympy.Rational(1, 2)]) == frozenset({0, 2})


# ----------------------------------------------------------------------------- support search
def brute_covers(A, layer, R):
    """Every (D, Succ(D)) with nonempty D <= layer and R <= Succ(D)."""
    out = []
    for r in range(1, len(layer) + 1):
        for D in itertools.combinations(sorted(layer), r):
            S = ref_succ(A, D)
            if R <= S:
                out.append((frozenset(D), S))
    return out


@st.composite
def search_instances(draw):
    m = draw(st.integers(2, 6))
    A = np.array([[draw(st.booleans()) for _ in range(m)] for _ in range(m)], dtype=float)
    layer = frozenset(draw(st.sets(st.integers(0, m - 1), min_size=1)))
    R = frozenset(draw(st.sets(st.integers(0, m - 1), min_size=1, max_size=3)))
    return A, layer, R


@HYP
@given(search_instances())
def test_candidate_supports_exact_search_against_brute_force(inst):
    A, layer, R = inst
    G = graph.transition_graph(A)
    pairs, exact = graph.candidate_supports(G, layer, R)
    assert exact
    covers = brute_covers(A, layer, R)
    if not covers:
        assert pairs == []
        return
    for D, S in pairs:
        assert D and D <= layer and S == ref_succ(A, D) and R <= S
    sizes = [len(S) for _, S in pairs]
    assert sizes == sorted(sizes)
    assert sizes[0] == min(len(S) for _, S in covers)
    # every inclusion-minimal support is offered (the rank test may reject the smaller ones)
    all_S = {S for _, S in covers}
    minimal = {S for S in all_S if not any(T < S for T in all_S)}
    assert minimal <= {S for _, S in pairs}


@HYP
@given(search_instances())
def test_candidate_supports_greedy_returns_a_valid_cover(inst):
    A, layer, R = inst
    G = graph.transition_graph(A)
    pairs, exact = graph.candidate_supports(G, layer, R, exact_limit=0)
    covers = brute_covers(A, layer, R)
    if not covers:
        assert pairs == []
        return
    assert not exact and len(pairs) == 1
    D, S = pairs[0]
    assert D <= layer and S == ref_succ(A, D) and R <= S


# ----------------------------------------------------------------------------- chain structure
def ref_period(A: np.ndarray, comp: list[int]) -> int | None:
    """gcd of the lengths t <= 2 m^2 of closed walks from comp[0] inside comp."""
    sub = (A[np.ix_(comp, comp)] > 0).astype(int)
    m = len(comp)
    g = 0
    P = np.eye(m, dtype=int)
    for t in range(1, 2 * m * m + 2):
        P = ((P @ sub) > 0).astype(int)
        if P[0, 0]:
            g = math.gcd(g, t)
    return g or None


def ref_reachable(pi, A) -> set[int]:
    m = len(pi)
    v = pi > 0
    seen = v.copy()
    for _ in range(m):
        v = (v.astype(int) @ (A > 0).astype(int)) > 0
        seen |= v
    return set(np.nonzero(seen)[0].tolist())


@st.composite
def chains(draw):
    m = draw(st.integers(1, 7))
    A = np.array([[draw(st.booleans()) for _ in range(m)] for _ in range(m)], dtype=float)
    pi = np.array([draw(st.booleans()) for _ in range(m)], dtype=float)
    if not pi.any():
        pi[0] = 1.0
    return pi, A


@HYP
@given(chains())
def test_chain_structure_against_networkx_and_walk_counts(pa):
    pi, A = pa
    m = len(pi)
    cs = graph.chain_structure(A, pi)
    Gref = nx.DiGraph()
    Gref.add_nodes_from(range(m))
    Gref.add_edges_from((i, j) for i in range(m) for j in range(m) if A[i, j] > 0)
    comps = sorted(sorted(c) for c in nx.strongly_connected_components(Gref))
    assert sorted(cs.components) == comps
    attracting = sorted(sorted(c) for c in nx.attracting_components(Gref))
    assert sorted(cs.components[i] for i in cs.attracting) == attracting
    for comp, period in zip(cs.components, cs.periods):
        assert period == ref_period(A, comp), comp
        if period is not None:  # networkx's test is valid on a strongly connected subgraph
            assert nx.is_aperiodic(Gref.subgraph(comp)) == (period == 1)
    reach = ref_reachable(pi, A)
    assert set(cs.reachable) == reach
    assert set(cs.unreachable) == set(range(m)) - reach
    assert cs.irreducible == nx.is_strongly_connected(Gref)
    assert cs.aperiodic == (cs.irreducible and nx.is_aperiodic(Gref))


def _cycle_edges(nodes):
    return [(nodes[i], nodes[(i + 1) % len(nodes)]) for i in range(len(nodes))]


def _adj(m, edges):
    A = np.zeros((m, m))
    for i, j in edges:
        A[i, j] = 1.0
    return A / np.maximum(A.sum(1, keepdims=True), 1)


@pytest.mark.parametrize(
    "m,edges,period",
    [
        (3, _cycle_edges([0, 1, 2]), 3),
        (4, _cycle_edges([0, 1, 2, 3]) + [(1, 0)], 2),  # cycles of lengths 4 and 2
        (4, _cycle_edges([0, 1, 2, 3]) + [(0, 2), (2, 0)], 1),  # lengths 4, 2 and 3 (0->2->3->0)
        (5, _cycle_edges([0, 1, 2]) + [(0, 3), (3, 0)], 1),  # cycles 3 and 2 through 0
        (6, _cycle_edges([0, 1, 2, 3, 4, 5]) + [(2, 0)], 3),  # cycles of lengths 6 and 3 (0->1->2->0)
        (4, [(0, 1), (1, 0), (2, 3), (3, 2), (0, 2), (2, 0)], 2),  # bipartite
        (1, [(0, 0)], 1),
    ],
)
def test_hand_made_periodic_chains(m, edges, period):
    A = _adj(m, edges)
    cs = graph.chain_structure(A, np.ones(m) / m)
    comp = [c for c in cs.components if 0 in c][0]
    got = cs.periods[cs.components.index(comp)]
    assert got == ref_period(A, comp)
    if m == 5:  # state 4 is isolated: its own transient component without a cycle
        assert cs.periods[cs.components.index([4])] is None
    else:
        assert got == period


def test_period_of_six_cycle_with_chord_is_gcd_of_cycle_lengths():
    # 0->1->2->3->4->5->0 (length 6) and chord 0->3 giving 0->3->4->5->0 (length 4): gcd 2
    A = _adj(6, _cycle_edges(list(range(6))) + [(0, 3)])
    cs = graph.chain_structure(A, np.eye(6)[0])
    assert cs.periods == [2] and cs.irreducible and not cs.aperiodic


def test_reducible_chain_does_not_crash_networkx_and_reports_unreachable():
    # 0 <-> 1 periodic closed class, 2 -> {0, 2} transient with self-loop, 3 absorbing,
    # start only at 2: state 3 unreachable.
    A = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0.5, 0, 0.5, 0], [0, 0, 0, 1]])
    cs = graph.chain_structure(A, np.array([0, 0, 1.0, 0]))
    assert cs.components == [[0, 1], [2], [3]]
    assert cs.periods == [2, 1, 1]
    assert sorted(cs.components[i] for i in cs.attracting) == [[0, 1], [3]]
    assert cs.unreachable == [3] and cs.reachable == [0, 1, 2]
    assert not cs.irreducible and not cs.aperiodic
