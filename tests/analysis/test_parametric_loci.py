"""Loci of the task condition and of the transition graph for parametric models (issue 15,
item 4), each confirmed independently: the task's membership in the row space of W and
the graph are recomputed with sympy at many grid points of the declared range, on and
off the reported locus."""

from __future__ import annotations

import sympy

from hmmtune.analysis import check
from hmmtune.io import hmm_from_json

from test_parametric import W_at, grid, locus_points, one_param


def _in_row_space(W: sympy.Matrix, mu) -> bool:
    return W.T.row_join(sympy.Matrix(mu)).rank(simplify=True) == W.rank(simplify=True)


def _task_locus(report):
    (c,) = [c for c in report.conditions if c.name == "parametric: locus of head: task in row space of W"]
    return c


def test_task_leaves_the_row_space_exactly_on_the_reported_points():
    data = one_param(["a", "1 - a"], 0, 1, value="1/4")
    model = hmm_from_json(data)
    c = _task_locus(check(model, {"mu": [1, -1]}, num_inputs=50, length=3))
    pts = locus_points(c.witness)
    assert pts == [sympy.Rational(1, 2)]
    for q in grid(0, 1):
        assert _in_row_space(W_at(data, {"a": q}), [1, -1]) == (q not in pts), q
    assert {d["in_row_space"] for d in c.witness["confirmed"]} == {True, False}  # on and off


def test_task_stays_in_the_row_space_on_the_rank_locus_when_it_can():
    # at a = 1/2 both columns of W are equal; mu = (1, 1) is in their span
    data = one_param(["a", "1 - a"], 0, 1, value="1/4")
    c = _task_locus(check(hmm_from_json(data), {"weights": [[0, 0], [1, 1]]}, num_inputs=50, length=3))
    assert c.witness["locus"] == "EmptySet"
    assert "for every a in [0, 1]" in c.explanation and "except" not in c.explanation
    for q in grid(0, 1):
        assert _in_row_space(W_at(data, {"a": q}), [1, 1]), q


def test_task_locus_for_a_model_that_is_degenerate_everywhere():
    data = {
        "kind": "hmm",
        "parameters": {"a": {"min": 0, "max": 1, "value": "1/3"}},
        "initial": ["1/3", "1/3", "1/3"],
        "transition": [["1/3", "1/3", "1/3"]] * 3,
        "emission": [["a", "1 - a"], ["1 - a", "a"], ["1/2", "1/2"]],
    }
    model = hmm_from_json(data)
    c = _task_locus(check(model, {"mu": [1, -1, 0]}, num_inputs=50, length=3))
    assert c.witness["generic_rank"] == 2 and c.witness["generic_in_row_space"] is True
    hits = [_in_row_space(W_at(data, {"a": q}), [1, -1, 0]) for q in grid(0, 1)]
    assert sum(hits) >= len(hits) - 1  # generic: at most the special value a = 1/2 differs


def test_transition_graph_locus_lists_where_entries_vanish():
    data = one_param(["1/3", "2/3"], 0, 1, value="1/4")
    data["transition"] = [["a", "1 - a"], ["1/2", "1/2"]]
    model = hmm_from_json(data)
    rep = check(model, {"mu": [1, -1]}, num_inputs=50, length=3)
    (c,) = [c for c in rep.conditions if c.name == "parametric: locus of prompt: transition graph"]
    zeros = {e["entry"]: sympy.sympify(e["zero_set"]) for e in c.witness["entries"]}
    assert zeros == {"transition[0, 0]": sympy.FiniteSet(0), "transition[0, 1]": sympy.FiniteSet(1)}
    a = sympy.Symbol("a", real=True)
    for q in grid(0, 1):  # independently: the entries vanish exactly there
        assert (a.subs(a, q) == 0) == (q == 0) and ((1 - a).subs(a, q) == 0) == (q == 1)
