"""Parametric models (issue 4, item 7): the degeneracy loci are confirmed by substitution.

Each reported locus is checked independently: at its points, the rank of ``W`` (computed
here by substituting into the model file's expressions with sympy, and by numpy at float
points) drops; at a grid of rational points of the declared range off the locus it is full.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy

import hmmtune
from hmmtune.analysis import check, parametric_conditions
from hmmtune.io import hmm_from_json

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def one_param(row0, lo=0, hi=1, value="1/4"):
    return {
        "kind": "hmm",
        "format_version": 1,
        "parameters": {"a": {"min": lo, "max": hi, "value": value}},
        "initial": ["1/2", "1/2"],
        "transition": [["1/2", "1/2"], ["1/2", "1/2"]],
        "emission": [row0, ["1/2", "1/2"]],
    }


def W_at(data: dict, point: dict) -> sympy.Matrix:
    """W = emission^T with the parameters substituted, parsed from the file's strings."""
    syms = {k: sympy.Symbol(k, real=True) for k in data["parameters"]}
    E = sympy.Matrix([[sympy.sympify(str(v), locals=syms) for v in row] for row in data["emission"]])
    return E.T.subs({syms[k]: v for k, v in point.items()})


def locus_points(witness) -> list:
    return sorted(sympy.sympify(witness["locus"]), key=float)


def grid(lo, hi, k=24):
    lo, hi = sympy.Rational(lo), sympy.Rational(hi)
    return [lo + (hi - lo) * sympy.Rational(i, k) for i in range(k + 1)]


@pytest.mark.parametrize(
    "row0,lo,hi,expected",
    [
        (["a", "1 - a"], 0, 1, [sympy.Rational(1, 2)]),  # det = a - 1/2
        (["a**2", "1 - a**2"], 0, 1, [sympy.sqrt(2) / 2]),  # det = a^2 - 1/2: irrational point
        (["a*(1 - a) + 1/4", "3/4 - a*(1 - a)"], 0, 1, [sympy.Rational(1, 2)]),  # double root -(a - 1/2)^2
        (["a**2", "1 - a**2"], "3/4", 1, []),  # the root sqrt(2)/2 ~ 0.707 lies outside the range
    ],
)
def test_one_parameter_locus_confirmed_by_substitution(row0, lo, hi, expected):
    data = one_param(row0, lo, hi, value=str(hi))
    model = hmm_from_json(data)
    (c,) = parametric_conditions(model)
    assert c.holds is None and c.can_decide is False
    got = locus_points(c.witness)
    assert len(got) == len(expected)
    assert all(sympy.simplify(g - e) == 0 for g, e in zip(got, expected))
    for p in got:
        assert W_at(data, {"a": p}).rank(simplify=True) < 2
        assert np.linalg.matrix_rank(np.array(W_at(data, {"a": p}).evalf(), dtype=float), tol=1e-9) < 2
    for q in grid(lo, hi):
        if all(abs(float(q) - float(p)) > 1e-12 for p in got):
            assert W_at(data, {"a": q}).rank() == 2, q
    if not expected:
        assert "holds on the whole range" in c.explanation


def test_parametric_example_locus_and_check_report():
    model = hmmtune.load_example("parametric")
    report = check(model, num_inputs=100, length=4)
    (c,) = [c for c in report.conditions if c.name.startswith("parametric")]
    assert locus_points(c.witness) == [sympy.Rational(1, 2)]
    E = model.symbolic["emission"]
    (a,) = E.free_symbols
    assert E.T.subs(a, sympy.Rational(1, 2)).rank() == 1
    assert E.T.subs(a, sympy.Rational(3, 4)).rank() == 2
    # the model itself sits at a = 3/4, off the locus: the rank condition holds there
    assert report.condition("head: rank W = m").holds is True


def test_model_at_a_degenerate_value_fails_the_rank_condition():
    data = one_param(["a", "1 - a"], 0, 1, value="1/2")
    model = hmm_from_json(data)
    report = check(model, num_inputs=50, length=3)
    assert report.condition("head: rank W = m").holds is False
    (c,) = [c for c in report.conditions if c.name.startswith("parametric")]
    assert locus_points(c.witness) == [sympy.Rational(1, 2)]
    # the confirmation point off the locus is not the model's own value
    assert c.witness["rank_outside"]["rank"] == 2


def test_two_parameter_locus_is_the_zero_set_of_the_reported_equation():
    data = {
        "kind": "hmm",
        "format_version": 1,
        "parameters": {"a": {"min": 0, "max": 1, "value": "1/3"}, "b": {"min": 0, "max": 1, "value": "2/3"}},
        "initial": ["1/2", "1/2"],
        "transition": [["1/2", "1/2"], ["1/2", "1/2"]],
        "emission": [["a", "1 - a", "0"], ["b*(1 - b)", "b**2", "1 - b"]],
    }
    model = hmm_from_json(data)
    (c,) = parametric_conditions(model)
    a, b = sympy.symbols("a b", real=True)
    expr = sympy.sympify(c.witness["gram_determinant"], locals={"a": a, "b": b})
    rng = np.random.default_rng(0)
    pts = [(sympy.Rational(int(i), 12), sympy.Rational(int(j), 12)) for i, j in rng.integers(0, 13, size=(40, 2))]
    # the columns are parallel only at (a, b) = (0, 1): (0, 1, 0) twice
    pts += [(sympy.Integer(0), sympy.Integer(1)), (sympy.Integer(0), sympy.Integer(0)), (sympy.Rational(1, 2), sympy.Integer(1))]
    seen = set()
    for pa, pb in pts:
        degenerate = W_at(data, {"a": pa, "b": pb}).rank() < 2
        seen.add(degenerate)
        assert (expr.subs({a: pa, b: pb}) == 0) == degenerate, (pa, pb)
    assert seen == {True, False}


def test_two_parameter_locus_is_confirmed_at_points():
    data = {
        "kind": "hmm",
        "format_version": 1,
        "parameters": {"a": {"min": 0, "max": 1, "value": "1/3"}, "b": {"min": 0, "max": 1, "value": "2/3"}},
        "initial": ["1/2", "1/2"],
        "transition": [["1/2", "1/2"], ["1/2", "1/2"]],
        "emission": [["a", "1 - a"], ["b", "1 - b"]],
    }
    (c,) = parametric_conditions(hmm_from_json(data))
    assert "rank_inside" in c.witness and "rank_outside" in c.witness
    # the confirmation points really are on (a = b) and off the locus: rank by substitution here
    for key, on in (("rank_inside", True), ("rank_outside", False)):
        point = {
            k.strip(): sympy.Rational(v.strip()) for k, v in (kv.split("=") for kv in c.witness[key]["point"].split(","))
        }
        assert set(point) == {"a", "b"} and all(0 <= v <= 1 for v in point.values())
        assert (point["a"] == point["b"]) == on
        assert W_at(data, point).rank() == c.witness[key]["rank"] == (1 if on else 2)


def test_prompt_support_locus_and_everywhere_degenerate_head():
    # states 0, 1 mirror each other with parameter a; state 2 emits uniformly and leads
    # only to {0, 1}: rank W < 3 for every a, but the support {0, 1} of a one-token
    # prompt on state 2 is degenerate exactly at a = 1/2.
    data = {
        "kind": "hmm",
        "format_version": 1,
        "parameters": {"a": {"min": 0, "max": 1, "value": "4/5"}},
        "initial": ["1/3", "1/3", "1/3"],
        "transition": [["1/3", "1/3", "1/3"], ["1/3", "1/3", "1/3"], ["1/2", "1/2", "0"]],
        "emission": [["a", "1 - a"], ["1 - a", "a"], ["1/2", "1/2"]],
        "task": {"kind": "task", "mu": [1, -1, 0]},
    }
    model = hmm_from_json(data)
    report = check(model, {"mu": [1, -1, 0]}, num_inputs=100, length=4)
    prompt = report.condition("prompt: Theorem P support")
    assert prompt.holds is True and prompt.witness["support"] == [0, 1]
    loci = [c for c in report.conditions if c.name.startswith("parametric")]
    head_locus = [c for c in loci if "head" in c.name][0]
    prompt_locus = [c for c in loci if "prompt" in c.name][0]
    assert "every parameter value" in head_locus.explanation
    for q in grid(0, 1, 10):
        assert W_at(data, {"a": q}).rank() < 3  # independently: never full rank
    assert locus_points(prompt_locus.witness) == [sympy.Rational(1, 2)]
    assert W_at(data, {"a": sympy.Rational(1, 2)})[:, [0, 1]].rank() == 1
    assert W_at(data, {"a": sympy.Rational(1, 5)})[:, [0, 1]].rank() == 2
