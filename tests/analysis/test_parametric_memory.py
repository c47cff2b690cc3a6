"""Parametric memory HMMs (issue 15, item 4): a memory file declares "parameters" like an
HMM file, and the analysis gives the degeneracy locus of Theorem M's memory condition per
local state and for all of them together.

Each reported locus is confirmed independently here: the file's string entries are parsed
with sympy (not hmmtune's grammar), the parameters substituted, and the rank of the V value
columns ``W[:, (v, s)]`` computed with sympy's ``Matrix.rank`` at a grid of rational points,
on and off the locus.
"""

from __future__ import annotations

import copy
import json

import pytest
import sympy

import hmmtune
from hmmtune.analysis import check, memory_parametric_conditions
from hmmtune.cli import main
from hmmtune.io import ModelFileError
from hmmtune.io import memory_hmm_from_json, memory_hmm_to_json
from hmmtune.models.memory import MemoryHMM

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAST = ["--num-inputs", "60", "--length", "4"]


def model_data(s1_value0=("0", "a", "1 - a"), s1_value1=("0", "1/3", "2/3"), params=None) -> dict:
    """V = 2 values, S = 2 local states, n = 3 tokens, N = 1 cell. Local state 0: the value
    columns (a, 1 - a, 0) and (1/2, 1/2, 0) are dependent exactly at a = 1/2."""
    return {
        "kind": "memory_hmm",
        "format_version": 1,
        "parameters": params or {"a": {"min": 0, "max": 1, "value": "1/4"}},
        "num_cells": 1,
        "memory_prior": ["1/2", "1/2"],
        "initial": ["1/2", "1/2"],
        "transition": [["1/2", "1/2"], ["1/2", "1/2"]],
        "emission": [
            [["a", "1 - a", "0"], list(s1_value0)],
            [["1/2", "1/2", "0"], list(s1_value1)],
        ],
    }


def value_columns(data: dict, s: int, point: dict) -> sympy.Matrix:
    """W[:, (., s)] (n x V) from the file's strings, parsed by sympy, at ``point``."""
    syms = {k: sympy.Symbol(k, real=True) for k in data["parameters"]}
    cols = [[sympy.sympify(str(x), locals=syms) for x in block[s]] for block in data["emission"]]
    return sympy.Matrix(cols).T.subs({syms[k]: v for k, v in point.items()})


def grid(k=24):
    return [sympy.Rational(i, k) for i in range(k + 1)]


def by_name(conds, name):
    (c,) = [c for c in conds if c.name == name]
    return c


def point_of(text: str) -> dict:
    return {k.strip(): sympy.Rational(v.strip()) for k, v in (kv.split("=") for kv in text.split(","))}


PER_S = "parametric: locus of memory: rank W[:, (., s)] = V for s = {}"
SOME_S = "parametric: locus of memory: rank W[:, (., s)] = V for some s"


def test_memory_file_declares_parameters_like_an_hmm_file():
    data = model_data()
    model = memory_hmm_from_json(data)
    a = sympy.Symbol("a", real=True)
    assert set(model.parameters) == {"a"} and model.parameters["a"]["value"] == sympy.Rational(1, 4)
    assert model.symbolic["emission"][0, 0] == a and model.symbolic["emission"][1, 2] == 1 - a
    assert model.exact["emission"][0, :].tolist() == [[sympy.Rational(1, 4), sympy.Rational(3, 4), 0]]
    assert model.symbolic["memory_prior"].shape == model.exact["memory_prior"].shape == (1, 2)
    assert abs(float(model.emission[0, 1]) - 0.75) < 1e-15  # floats taken at the value
    assert isinstance(hmmtune.load_model(json.dumps(data)), MemoryHMM)
    # the same model written without parameters, at a = 1/4, is the same model
    plain = memory_hmm_from_json(json.loads(memory_hmm_to_json(model)))
    assert plain.parameters is None and plain.exact == model.exact


def test_per_local_state_loci_confirmed_on_and_off():
    data = model_data()  # s = 0 degenerates at a = 1/2; s = 1: (0, a, 1-a) vs (0, 1/3, 2/3) at a = 1/3
    conds = memory_parametric_conditions(memory_hmm_from_json(data))
    expected = {0: [sympy.Rational(1, 2)], 1: [sympy.Rational(1, 3)]}
    for s, pts in expected.items():
        c = by_name(conds, PER_S.format(s))
        assert c.holds is None and c.can_decide is False and c.witness["local_state"] == s
        assert sorted(sympy.sympify(c.witness["locus"]), key=float) == pts
        for q in grid():  # independently: the rank drops exactly there
            assert (value_columns(data, s, {"a": q}).rank() < 2) == (q in pts), (s, q)
        for key, on in (("rank_inside", True), ("rank_outside", False)):
            pt = point_of(c.witness[key]["point"])
            assert (pt["a"] in pts) == on
            assert value_columns(data, s, pt).rank() == c.witness[key]["rank"] == (1 if on else 2)
    some = by_name(conds, SOME_S)
    assert some.witness["locus"] == "EmptySet" and "holds on the whole range" in some.explanation
    for q in grid():  # independently: some local state is always non-degenerate
        assert max(value_columns(data, s, {"a": q}).rank() for s in (0, 1)) == 2


def test_common_locus_where_every_local_state_degenerates():
    # s = 1: (0, a, 1 - a) vs (0, 1 - a, a): dependent at a = 1/2 as well (a double root)
    data = model_data(s1_value1=("0", "1 - a", "a"))
    report = check(memory_hmm_from_json(data), num_inputs=60, length=4)
    some = report.condition(SOME_S)
    assert sympy.sympify(some.witness["locus"]) == sympy.FiniteSet(sympy.Rational(1, 2))
    for q in grid():
        fails = all(value_columns(data, s, {"a": q}).rank() < 2 for s in (0, 1))
        assert fails == (q == sympy.Rational(1, 2)), q
    assert some.witness["ranks_inside"] == {"point": "a = 1/2", "ranks": [1, 1]}
    off = point_of(some.witness["ranks_outside"]["point"])
    assert off["a"] != sympy.Rational(1, 2)
    assert [value_columns(data, s, off).rank() for s in (0, 1)] == some.witness["ranks_outside"]["ranks"] == [2, 2]
    # the model at the degenerate value fails the memory condition itself
    at_half = copy.deepcopy(data)
    at_half["parameters"]["a"]["value"] = "1/2"
    rep = check(memory_hmm_from_json(at_half), num_inputs=60, length=4)
    assert rep.condition("memory: rank W[:, (., s)] = V for some s").holds is False
    assert rep.condition(SOME_S).witness["locus"] == some.witness["locus"]


def test_two_parameters_give_the_equations_confirmed_at_points():
    params = {"a": {"min": 0, "max": 1, "value": "1/4"}, "b": {"min": 0, "max": 1, "value": "1/3"}}
    data = model_data(s1_value0=("0", "b", "1 - b"), s1_value1=("0", "1 - a", "a"), params=params)
    conds = memory_parametric_conditions(memory_hmm_from_json(data))
    some = by_name(conds, SOME_S)
    a, b = sympy.symbols("a b", real=True)
    dets = [sympy.sympify(e, locals={"a": a, "b": b}) for e in some.witness["gram_determinants"]]
    for pa in grid(6):
        for pb in grid(6):
            pt = {"a": pa, "b": pb}
            for s in (0, 1):
                assert (dets[s].subs({a: pa, b: pb}) == 0) == (value_columns(data, s, pt).rank() < 2), (s, pt)
    for key, on in (("ranks_inside", True), ("ranks_outside", False)):
        pt = point_of(some.witness[key]["point"])
        ranks = [value_columns(data, s, pt).rank() for s in (0, 1)]
        assert ranks == some.witness[key]["ranks"]
        assert (max(ranks) < 2) == on
    half = sympy.Rational(1, 2)
    assert point_of(some.witness["ranks_inside"]["point"]) == {"a": half, "b": half}  # the only common zero
    for s in (0, 1):  # each local state's own locus, confirmed on and off
        c = by_name(conds, PER_S.format(s))
        for key, rank in (("rank_inside", 1), ("rank_outside", 2)):
            assert value_columns(data, s, point_of(c.witness[key]["point"])).rank() == c.witness[key]["rank"] == rank


def test_check_cli_prints_the_memory_locus(capsys, tmp_path):
    path = tmp_path / "pm.json"
    path.write_text(json.dumps(model_data()))
    assert main(["check", str(path)] + FAST) == 0
    out = " ".join(capsys.readouterr().out.split())  # the table wraps long explanations
    assert "memory: rank W[:, (., s)] = V for s = 0 fails exactly when a in {1/2}" in out
    assert "(confirmed: rank 1 at a = 1/2, rank 2 at a = 1/4)" in out
    assert "for s = 1 fails exactly when a in {1/3}" in out


def test_bundled_parametric_memory_example():
    model = hmmtune.load_example("parametric_memory")
    assert isinstance(model, MemoryHMM) and model.parameters
    conds = memory_parametric_conditions(model)
    assert sympy.sympify(by_name(conds, SOME_S).witness["locus"]) == sympy.FiniteSet(sympy.Rational(1, 2))
    E = model.symbolic["emission"]  # rows v * S + s
    (a,) = E.free_symbols
    for s in (0, 1):
        cols = E.extract([s, 2 + s], [0, 1, 2]).T
        assert cols.subs(a, sympy.Rational(1, 2)).rank() == 1 and cols.subs(a, sympy.Rational(1, 4)).rank() == 2


@pytest.mark.parametrize(
    "edit,match",
    [
        (lambda d: d.update(parameters=[1]), r"field 'parameters' must be an object"),
        (lambda d: d.update(parameters={"a b": {"value": 0}}), r"parameters'\['a b'\]: a parameter name must be an identifier"),
        (lambda d: d["parameters"]["a"].pop("value"), r"needs at least a 'value'"),
        (lambda d: d["parameters"]["a"].update(value="3/2"), r"value 3/2 is outside \[0, 1\]"),
        (lambda d: d["parameters"]["a"].update(max=0.5), r"\['max'\]: must be exact"),
        (lambda d: d["emission"][0][0].__setitem__(0, "c"), r"field 'emission'\[0\]\[0\]\[0\].*unknown name 'c' \(declared parameters: a\)"),
        (lambda d: d["emission"][0][0].__setitem__(0, "__import__('os')"), r"field 'emission'\[0\]\[0\]\[0\]: cannot read"),
        (lambda d: d.update(initial=[0.5, 0.5]), r"field 'initial' holds a binary float.*needs every entry exact"),
        (lambda d: d["emission"][0][0].__setitem__(1, "1 - 2*a"), r"field 'emission' row 0 sums to 1 - a, not 1 for every parameter value"),
        (lambda d: d["emission"][0].__setitem__(0, ["1/(4*a - 1)", "1 - 1/(4*a - 1)", "0"]), r"field 'emission'\[0\]\[0\] = .* is undefined at the parameter values \(a = 1/4\)"),
        (lambda d: d.update(memory_prior=["a/(a - 1/4)", "1 - a/(a - 1/4)"]), r"field 'memory_prior'\[0\] = .* is undefined at the parameter values \(a = 1/4\)"),
    ],
)
def test_bad_parameter_entries_are_refused_with_a_clear_error(edit, match):
    data = model_data()
    edit(data)
    with pytest.raises(ModelFileError, match=match):
        memory_hmm_from_json(data)


def test_cli_refuses_a_bad_parametric_memory_file_in_one_line(capsys, tmp_path):
    data = model_data()
    data["parameters"]["a"]["value"] = "2"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    assert main(["check", str(path)] + FAST) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert "bad.json: field 'parameters'['a']: value 2 is outside [0, 1]" in err
