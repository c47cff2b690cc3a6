"""Transition-graph facts and prompt-reachable supports (docs/theory.md, "Reachable prompt supports").

Edges are the transitions ``i -> j`` with ``transition[i, j] > tau``; ``tau = 0`` gives
the exact graph (on exact entries when the model has them). For the paper's dense but
peaked transitions use a positive ``tau`` (tolerance mode).

The graph is a small adjacency structure (:class:`TransitionGraph`) and its algorithms
(strongly connected components, attracting components, periods, reachability) are
written out here: every check needs them, and importing networkx for them cost about
0.15 s of each ``hmmtune check`` start. :meth:`TransitionGraph.to_networkx` hands the graph
to networkx for anything else; the tests check these algorithms against networkx.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Iterable, Iterator, Sequence

import numpy as np

from .tolerances import GREEDY_EPS

__all__ = [
    "TransitionGraph",
    "transition_graph",
    "support",
    "successors",
    "reachable",
    "layers",
    "ChainStructure",
    "chain_structure",
    "component_period",
    "strongly_connected_components",
    "candidate_supports",
]


def support(vec: Sequence, tau: float = 0.0) -> frozenset[int]:
    """Indices whose entries exceed ``tau`` (exact sympy entries compare exactly)."""
    thr = 0 if tau == 0 else tau  # exact entries (sympy, FLINT) compare with the integer 0
    return frozenset(i for i, v in enumerate(vec) if v > thr)


class TransitionGraph:
    """A directed graph on the states ``0..m-1``, with the part of networkx's ``DiGraph``
    interface the checks use: ``successors``, ``predecessors``, ``out_degree``,
    ``edges``, ``number_of_nodes``, ``number_of_edges``. Successors and predecessors come
    in increasing order. Built from a boolean (m, m) edge mask; not modified afterwards."""

    __slots__ = ("_succ", "_pred")

    def __init__(self, mask: np.ndarray):
        mask = np.asarray(mask, dtype=bool)
        m = mask.shape[0]
        self._succ = [np.flatnonzero(mask[i]).tolist() for i in range(m)]
        self._pred = [np.flatnonzero(mask[:, j]).tolist() for j in range(m)]

    def successors(self, i: int) -> Iterator[int]:
        return iter(self._succ[i])

    def predecessors(self, i: int) -> Iterator[int]:
        return iter(self._pred[i])

    def out_degree(self, i: int) -> int:
        return len(self._succ[i])

    def number_of_nodes(self) -> int:
        return len(self._succ)

    def number_of_edges(self) -> int:
        return sum(len(s) for s in self._succ)

    def edges(self) -> list[tuple[int, int]]:
        return [(i, j) for i, row in enumerate(self._succ) for j in row]

    def to_networkx(self):
        """The same graph as a ``networkx.DiGraph`` (imports networkx)."""
        import networkx as nx

        G = nx.DiGraph()
        G.add_nodes_from(range(self.number_of_nodes()))
        G.add_edges_from(self.edges())
        return G


def transition_graph(transition, tau: float = 0.0) -> TransitionGraph:
    """Directed graph on the states with an edge ``i -> j`` when ``transition[i, j] > tau``.

    Args:
        transition: (m, m) array-like, a FLINT matrix, or a sympy Matrix of exact entries.
    """
    thr = 0 if tau == 0 else tau
    if isinstance(transition, np.ndarray):
        return TransitionGraph(transition > thr)
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
        return TransitionGraph(np.array(flags, dtype=bool).reshape(m, transition.ncols()))
    rows = transition.tolist() if hasattr(transition, "tolist") else transition
    m = len(rows)
    return TransitionGraph(np.array([[bool(a > thr) for a in row] for row in rows], dtype=bool).reshape(m, m))


def successors(G: TransitionGraph, states: Iterable[int]) -> frozenset[int]:
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


def layers(G: TransitionGraph, start: Iterable[int], max_length: int) -> list[frozenset[int]]:
    """``L_0 = start`` and ``L_{j+1} = Succ(L_j)`` for j < max_length (docs/theory.md, "Reachable prompt supports")."""
    out = [frozenset(start)]
    for _ in range(max_length):
        out.append(successors(G, out[-1]))
    return out


def component_period(G: TransitionGraph, comp: Iterable[int]) -> int | None:
    """Period of a strongly connected component (gcd of its cycle lengths); None for a
    single state without a self-loop (no cycle). Computed from breadth-first levels inside
    the component: the gcd over its edges (u, v) of ``level[u] + 1 - level[v]``."""
    comp = list(comp)
    inside = set(comp)
    edges = [(u, v) for u in comp for v in G.successors(u) if v in inside]
    if not edges:
        return None
    level = {comp[0]: 0}
    frontier = [comp[0]]
    while frontier:
        nxt = []
        for u in frontier:
            for v in G.successors(u):
                if v in inside and v not in level:
                    level[v] = level[u] + 1
                    nxt.append(v)
        frontier = nxt
    g = 0
    for u, v in edges:
        g = math.gcd(g, level[u] + 1 - level[v])
    return abs(g) if g else None


def strongly_connected_components(G: TransitionGraph) -> list[list[int]]:
    """The strongly connected components, each sorted, in increasing order of their
    smallest state (Tarjan's algorithm, iterative)."""
    m = G.number_of_nodes()
    index = [-1] * m
    low = [0] * m
    on_stack = [False] * m
    stack: list[int] = []
    comps: list[list[int]] = []
    counter = 0
    for root in range(m):
        if index[root] >= 0:
            continue
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack[root] = True
        work = [(root, G.successors(root))]
        while work:
            v, it = work[-1]
            for w in it:
                if index[w] < 0:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack[w] = True
                    work.append((w, G.successors(w)))
                    break
                if on_stack[w]:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    u = work[-1][0]
                    low[u] = min(low[u], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack[w] = False
                        comp.append(w)
                        if w == v:
                            break
                    comps.append(sorted(comp))
    return sorted(comps, key=lambda c: c[0])


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


def _closed(G: TransitionGraph, comp: set[int]) -> bool:
    """No edge leaves ``comp`` (an attracting component)."""
    return all(v in comp for u in comp for v in G.successors(u))


def chain_structure(transition, initial, tau: float = 0.0) -> ChainStructure:
    """Strongly connected and attracting components, periods, reachability."""
    G = transition_graph(transition, tau)
    comps = strongly_connected_components(G)
    periods = [component_period(G, c) for c in comps]
    # attracting (closed): no edge leaves the component
    attracting = [i for i, c in enumerate(comps) if _closed(G, set(c))]
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
    G: TransitionGraph,
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
