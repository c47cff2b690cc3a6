"""Transition-graph facts and prompt-reachable supports (docs/theory.md, "Reachable prompt supports"), with networkx.

Edges are the transitions ``i -> j`` with ``transition[i, j] > tau``; ``tau = 0`` gives
the exact graph (on exact entries when the model has them). For the paper's dense but
peaked transitions use a positive ``tau`` (tolerance mode).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import networkx as nx
import numpy as np

from .tolerances import GREEDY_EPS

__all__ = [
    "transition_graph",
    "support",
    "successors",
    "reachable",
    "layers",
    "ChainStructure",
    "chain_structure",
    "component_period",
    "candidate_supports",
]


def support(vec: Sequence, tau: float = 0.0) -> frozenset[int]:
    """Indices whose entries exceed ``tau`` (exact sympy entries compare exactly)."""
    thr = 0 if tau == 0 else tau  # exact entries (sympy, FLINT) compare with the integer 0
    return frozenset(i for i, v in enumerate(vec) if v > thr)


def transition_graph(transition, tau: float = 0.0) -> nx.DiGraph:
    """Directed graph on the states with an edge ``i -> j`` when ``transition[i, j] > tau``.

    Args:
        transition: (m, m) array-like, or a sympy Matrix of exact entries.
    """
    G = nx.DiGraph()
    thr = 0 if tau == 0 else tau
    if isinstance(transition, np.ndarray):
        G.add_nodes_from(range(transition.shape[0]))
        G.add_edges_from(zip(*(idx.tolist() for idx in np.nonzero(transition > thr))))
        return G
    if hasattr(transition, "entries") and hasattr(transition, "nrows"):  # a FLINT matrix
        m = transition.nrows()
        entries = transition.entries()
        zero = type(entries[0])(0) if entries else 0  # compare FLINT with FLINT: no conversion
        if thr == 0:
            # bool() of a FLINT rational is a C test, 10x faster than a comparison: test the
            # sign only of the nonzero entries (a model's transition is mostly zeros)
            flags = [bool(e) and e > zero for e in entries]
        else:  # tau as the exact rational of its float value
            thr_q = type(zero)(*float(thr).as_integer_ratio()) if entries else thr
            flags = [e > thr_q for e in entries]
        mask = np.array(flags, dtype=bool).reshape(m, transition.ncols())
        G.add_nodes_from(range(m))
        G.add_edges_from(zip(*(idx.tolist() for idx in np.nonzero(mask))))
        return G
    rows = transition.tolist() if hasattr(transition, "tolist") else transition
    m = len(rows)
    G.add_nodes_from(range(m))
    for i, row in enumerate(rows):
        for j, a in enumerate(row):
            if a > thr:
                G.add_edge(i, j)
    return G


def successors(G: nx.DiGraph, states: Iterable[int]) -> frozenset[int]:
    """``Succ(D)``: the union of the successors of the states in D."""
    out: set[int] = set()
    for d in states:
        out.update(G.successors(d))
    return frozenset(out)


def reachable(G, start: Iterable[int]) -> frozenset[int]:
    """The states reachable from ``start`` in zero or more steps (one breadth-first search
    from every start state at once)."""
    reach: set[int] = set(start)
    frontier = list(reach)
    while frontier:
        nxt = []
        for u in frontier:
            for v in G.successors(u):
                if v not in reach:
                    reach.add(v)
                    nxt.append(v)
        frontier = nxt
    return frozenset(reach)


def layers(G: nx.DiGraph, start: Iterable[int], max_length: int) -> list[frozenset[int]]:
    """``L_0 = start`` and ``L_{j+1} = Succ(L_j)`` for j < max_length (docs/theory.md, "Reachable prompt supports")."""
    out = [frozenset(start)]
    for _ in range(max_length):
        out.append(successors(G, out[-1]))
    return out


def component_period(G: nx.DiGraph, comp: Iterable[int]) -> int | None:
    """Period of a strongly connected component (gcd of its cycle lengths); None for a
    single state without a self-loop (no cycle). ``networkx.is_aperiodic`` raises on
    graphs that are not strongly connected, so the period is computed per component
    from BFS levels: gcd over edges (u, v) of ``level[u] + 1 - level[v]``."""
    comp = list(comp)
    H = G.subgraph(comp)
    if H.number_of_edges() == 0:
        return None
    root = comp[0]
    level = nx.single_source_shortest_path_length(H, root)
    g = 0
    for u, v in H.edges():
        g = math.gcd(g, level[u] + 1 - level[v])
    return abs(g) if g else None


@dataclass
class ChainStructure:
    """Markov-chain facts of the transition graph.

    Attributes:
        components: strongly connected components (sorted lists of states).
        periods: period of each component (None: a transient single state, no cycle).
        attracting: indices into ``components`` of the closed (attracting) ones.
        reachable: states reachable from ``supp(initial)`` (including it).
        unreachable: states never visited from the initial distribution.
        irreducible: one component holds every state.
        aperiodic: irreducible with period 1.
    """

    components: list[list[int]]
    periods: list[int | None]
    attracting: list[int]
    reachable: list[int]
    unreachable: list[int]
    irreducible: bool
    aperiodic: bool
    threshold: float = 0.0
    notes: list[str] = field(default_factory=list)


def chain_structure(transition, initial, tau: float = 0.0) -> ChainStructure:
    """Strongly connected and attracting components, periods, reachability."""
    G = transition_graph(transition, tau)
    comps = sorted((sorted(c) for c in nx.strongly_connected_components(G)), key=lambda c: c[0])
    periods = [component_period(G, c) for c in comps]
    attracting_sets = [set(c) for c in nx.attracting_components(G)]
    attracting = [i for i, c in enumerate(comps) if set(c) in attracting_sets]
    start = support(np.asarray(initial).ravel().tolist() if isinstance(initial, np.ndarray) else list(initial), 0)
    reach = reachable(G, start)
    m = G.number_of_nodes()
    irreducible = len(comps) == 1
    return ChainStructure(
        components=comps,
        periods=periods,
        attracting=attracting,
        reachable=sorted(reach),
        unreachable=sorted(set(range(m)) - reach),
        irreducible=irreducible,
        aperiodic=irreducible and periods[0] == 1,
        threshold=tau,
    )


def candidate_supports(
    G: nx.DiGraph,
    layer: frozenset[int],
    relevant: frozenset[int],
    exact_limit: int = 16,
) -> tuple[list[tuple[frozenset[int], frozenset[int]]], bool]:
    """Supports ``S = Succ(D)`` with ``D`` in ``layer`` and ``relevant <= S``, smallest first.

    Only states whose successors meet ``relevant`` can help cover it, and adding any
    other state only enlarges S (which never helps the rank condition), so D ranges over
    subsets of those candidates. With at most ``exact_limit`` candidates every minimal
    cover is enumerated (exact search, pruned by inclusion); beyond, a greedy cover is
    returned (documented heuristic: it may miss a smaller support).

    Returns:
        ``(list of (D, S) sorted by |S| then |D|, exact_flag)``.
    """
    cands = sorted(d for d in layer if set(G.successors(d)) & relevant)
    if not relevant:
        # Nothing to cover: the smallest single-state successor set is enough.
        best = sorted(((frozenset([d]), successors(G, [d])) for d in layer if G.out_degree(d)), key=lambda p: (len(p[1]), min(p[0])))
        return best[:1], True
    union_all = successors(G, cands)
    if not relevant <= union_all:
        return [], True
    succ = {d: frozenset(G.successors(d)) for d in cands}
    if len(cands) <= exact_limit:
        found: dict[frozenset[int], frozenset[int]] = {}
        minimal: list[frozenset[int]] = []
        for r in range(1, len(cands) + 1):
            for D in itertools.combinations(cands, r):
                Dset = frozenset(D)
                if any(mset <= Dset for mset in minimal):
                    continue  # a subset already covers: this D is not minimal
                S = successors(G, D)
                if relevant <= S:
                    minimal.append(Dset)
                    if S not in found or len(Dset) < len(found[S]):
                        found[S] = Dset
        pairs = sorted(((D, S) for S, D in found.items()), key=lambda p: (len(p[1]), len(p[0]), sorted(p[0])))
        return pairs, True
    # Greedy: repeatedly add the candidate that covers the most uncovered relevant
    # states per newly added support state.
    chosen: list[int] = []
    S: set[int] = set()
    uncovered = set(relevant)
    while uncovered:
        # best gain per newly added support state, then fewest new states, then lowest index
        d = min(
            (d for d in cands if succ[d] & uncovered),
            key=lambda d: (-len(succ[d] & uncovered) / (len(succ[d] - S) + GREEDY_EPS), len(succ[d] - S), d),
        )
        chosen.append(d)
        S |= succ[d]
        uncovered -= succ[d]
    return [(frozenset(chosen), frozenset(S))], False
