"""The analysis package as one theorem per room (issue 10, items 4 and 7): the deprecated
names still work and warn, the exact-matrix cache stays off the user's model, chain facts
read arrays (no stand-in model), tolerances are named once, and no room reaches into
another's private names or imports sympy at module level where only some models
need them."""

from __future__ import annotations

import ast
import json
import gc
import importlib
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy

import hmmtune.analysis as analysis
from hmmtune import HMM, load_example
from hmmtune.analysis import Condition, chain_facts, check
from hmmtune.analysis import matrices, tolerances
from hmmtune.analysis.chain import model_chain_facts

from analysis_helpers import exact_model
from conftest import np_params

ANALYSIS = Path(analysis.__file__).parent

#: the names hmmtune.analysis.conditions exported before the split
OLD_NAMES = [
    "Condition", "head_condition", "head_certificate", "prompt_condition", "chain_condition", "memory_condition",
    "parametric_conditions", "memory_parametric_conditions", "sample_downstream", "Evidence", "evidence",
    "task_margin", "tolerance_certificate",
]


@pytest.mark.parametrize("name", OLD_NAMES)
def test_old_conditions_module_forwards_every_name_with_a_warning(name):
    import hmmtune.analysis.conditions as old

    with pytest.warns(DeprecationWarning, match=f"conditions.{name} is deprecated") as record:
        value = getattr(old, name)
    # the warning names the new home, and the value is that module's object
    (home,) = re.findall(r"from (hmmtune\.analysis\.\w+)", str(record[0].message))
    assert value is getattr(importlib.import_module(home), name)
    assert home.rsplit(".", 1)[1] in {"condition", "head", "prompt", "memory", "parametric", "chain", "evidence"}
    with pytest.raises(AttributeError):
        old.no_such_name  # noqa: B018


def test_old_import_statement_still_works():
    with pytest.warns(DeprecationWarning):
        from hmmtune.analysis.conditions import head_condition as old_head
    assert old_head is analysis.head_condition


def test_chain_condition_is_a_deprecated_alias_of_the_chain_facts():
    pi, A, B = np_params("m4n3")
    model = exact_model(pi, A, B)
    with pytest.warns(DeprecationWarning, match="chain_facts"):
        old = analysis.chain_condition
    with pytest.warns(DeprecationWarning, match="fact, not a condition"):
        c = old(model)
    assert c.to_dict() == model_chain_facts(model).to_dict()
    assert c.holds is None and c.can_decide is False


def test_chain_facts_read_arrays_exactly_as_the_model_path():
    pi, A, B = np_params("m3n4")
    float_model = HMM(pi, A, B)
    on_arrays = chain_facts(A, pi)
    assert on_arrays.to_dict() == model_chain_facts(float_model).to_dict()
    assert on_arrays.witness["unreachable"] == [] and on_arrays.method == "graph of positive entries"
    tol = chain_facts(A, pi, 0.3)
    assert tol.method == "graph at tau=0.3" and tol.to_dict() == model_chain_facts(float_model, 0.3).to_dict()


def test_memory_check_reads_the_z_chain_arrays():
    model = load_example("memory")
    report = check(model, num_inputs=20, length=8)
    expect = chain_facts(model.transition.double().numpy(), model.initial.double().numpy())
    assert report.conditions[0].to_dict() == expect.to_dict()
    assert not hasattr(analysis.check, "_ChainView") and "_ChainView" not in (ANALYSIS / "check.py").read_text()


def test_condition_can_decide_and_its_deprecated_alias():
    c = Condition("x", True, "exact", "e", {"a": 1}, can_decide=False)
    assert c.to_dict()["counts"] is False  # the JSON key is unchanged
    assert Condition.from_dict(c.to_dict()) == c
    with pytest.warns(DeprecationWarning, match="can_decide"):
        assert c.counts is False
    with pytest.warns(DeprecationWarning, match="can_decide"):
        old = Condition("x", True, "exact", "e", {"a": 1}, counts=False)
    assert old == c
    with pytest.warns(DeprecationWarning):
        old.counts = True
    assert old.can_decide is True
    assert Condition("y", None, "m", "e").witness == {} and Condition("y", None, "m", "e").can_decide is True


def test_exact_matrix_cache_stays_off_the_model_and_follows_it():
    pi, A, B = np_params("m3n4")
    model = exact_model(pi, A, B, task={"kind": "task", "mu": [1, -1, 0]})
    before = set(vars(model))
    check(model, {"kind": "task", "mu": [1, -1, 0]}, num_inputs=20, length=4)
    assert set(vars(model)) == before  # nothing written onto the user's object
    mats = matrices.exact_matrices(model)
    assert matrices.exact_matrices(model) is mats  # cached
    assert [mats["W"][j, i] for i in range(3) for j in range(4)] == [mats["emission"][i, j] for i in range(3) for j in range(4)]
    # replacing the exact entries rebuilds the copies
    new = dict(model.exact)
    new["emission"] = sympy.Matrix([[sympy.Rational(1, 4)] * 4] * 3)
    model.exact = new
    import flint

    assert matrices.exact_matrices(model)["emission"][0, 0] == flint.fmpq(1, 4) and matrices.exact_matrices(model) is not mats
    # the cache does not keep the model alive
    n = len(matrices._EXACT_CACHE)
    del model
    gc.collect()
    assert len(matrices._EXACT_CACHE) == n - 1


def test_float_models_have_no_exact_matrices():
    pi, A, B = np_params("m2n2")
    model = HMM(pi, A, B)
    assert matrices.exact_matrices(model) is None and matrices.exact_W(model) is None
    assert not matrices.is_exact(model)


def test_tolerances_print_as_the_reports_quote_them():
    assert [tolerances.as_text(v) for v in (1e-9, 1e-12, 1e-4, 1e6, 2.5e-3)] == ["1e-9", "1e-12", "1e-4", "1e6", "2.5e-3"]
    pi, A, B = np_params("m3n4")
    (_, task_row) = analysis.head_condition(HMM(pi, A, B), np.array([1.0, -1.0, 0.0]), num_inputs=20, length=4)
    assert task_row.method == f"numerical (least-squares residual <= {tolerances.as_text(tolerances.PREIMAGE_RESIDUAL)} relative)"
    documented = [name for name in tolerances.__all__ if name != "as_text"]
    source = (ANALYSIS / "tolerances.py").read_text()
    for name in documented:  # each constant has a comment saying what it bounds
        assert f"#: " in source.split(f"\n{name} = ")[0].rsplit("\n\n", 1)[-1], name


def _analysis_modules():
    return sorted(p for p in ANALYSIS.glob("*.py"))


@pytest.mark.parametrize("path", _analysis_modules(), ids=lambda p: p.name)
def test_no_private_name_imported_across_modules(path):
    tree = ast.parse(path.read_text())
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias in node.names:
                assert not (alias.name.startswith("_") and not alias.name.startswith("__")), f"{path.name} imports {alias.name}"
                modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                modules.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            assert not (node.attr.startswith("_") and not node.attr.startswith("__")), f"{path.name} uses {node.value.id}.{node.attr}"


@pytest.mark.parametrize("path", _analysis_modules(), ids=lambda p: p.name)
def test_sympy_is_not_a_module_level_import_outside_the_parametric_room(path):
    """sympy at module level only in the parametric room (loaded only for parametric
    models); the graph room uses networkx (the project's graph tool)."""
    tree = ast.parse(path.read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = {a.name.split(".")[0] for n in top if isinstance(n, ast.Import) for a in n.names}
    names |= {n.module.split(".")[0] for n in top if isinstance(n, ast.ImportFrom) and n.module and n.level == 0}
    if path.name != "parametric.py":
        assert "sympy" not in names


def test_public_surface():
    expected = {
        "Condition", "Report", "Task", "as_task", "chain_facts", "check", "default_certificate_length", "head_certificate",
        "head_condition", "load_task", "memory_condition", "memory_parametric_conditions", "parametric_conditions",
        "prompt_condition", "tolerance_certificate",
    }
    assert set(analysis.__all__) == expected
    for name in expected:
        assert getattr(analysis, name) is not None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from hmmtune.analysis import parametric_conditions  # lazy, and not deprecated

        assert parametric_conditions.__module__ == "hmmtune.analysis.parametric"


def test_from_fmpq_mat_is_deprecated_but_works():
    import flint

    from hmmtune.analysis import linalg

    with pytest.warns(DeprecationWarning):
        f = linalg.from_fmpq_mat
    assert f(flint.fmpq_mat(1, 2, [flint.fmpq(1, 3), 2])) == sympy.Matrix([[sympy.Rational(1, 3), 2]])
    assert "from_fmpq_mat" not in linalg.__all__


def test_one_trial_grid_confirms_a_locus_when_the_declared_value_lies_on_it():
    """The off-locus point of a rank locus comes from the same grid as every other search
    (``trial_values``): with the value on the locus it is the first grid point off it, and
    sympy's own rank there is full."""
    from hmmtune.analysis.parametric import trial_values
    from hmmtune.io import hmm_from_json

    data = json.loads((ANALYSIS.parent / "examples" / "parametric.json").read_text())
    data["parameters"]["a"]["value"] = "1/2"  # on the locus a = 1/2
    model = hmm_from_json(data)
    (c,) = [x for x in analysis.parametric_conditions(model) if x.name == "parametric: locus of head: rank W = m"]
    (p,) = model.parameters.values()
    grid = trial_values(p)
    assert grid[0] == sympy.Rational(1, 2) and all(0 <= v <= 1 for v in grid)
    off = next(v for v in grid if v != sympy.Rational(1, 2))
    assert c.witness["rank_outside"] == {"point": f"a = {off}", "rank": 2}
    assert model.symbolic["emission"].subs(p["symbol"], off).rank() == 2
    assert c.witness["rank_inside"]["rank"] == model.symbolic["emission"].subs(p["symbol"], sympy.Rational(1, 2)).rank() == 1


def test_small_factorisations_run_on_one_thread_and_restore_the_count():
    import torch

    from hmmtune.analysis import linalg

    rng = np.random.default_rng(0)
    A = rng.random((200, 5)) @ rng.random((5, 7))  # rank 5
    before = torch.get_num_threads()
    seen = []
    real_svd, real_lstsq = torch.linalg.svdvals, torch.linalg.lstsq

    def spy(name, real):
        def call(*args, **kwargs):
            seen.append((name, torch.get_num_threads()))
            return real(*args, **kwargs)

        return call

    torch.linalg.svdvals, torch.linalg.lstsq = spy("svd", real_svd), spy("lstsq", real_lstsq)
    try:
        rank, tol, s = linalg.numerical_rank(A)  # small: numpy's SVD, torch untouched
        b = linalg.least_squares(A, A @ np.ones(7))  # small: torch on one thread
    finally:
        torch.linalg.svdvals, torch.linalg.lstsq = real_svd, real_lstsq
    assert seen == [("lstsq", 1)] and torch.get_num_threads() == before
    assert rank == np.linalg.matrix_rank(A) == 5  # numpy as the independent reference
    np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False), rtol=1e-12, atol=1e-12 * s[0])
    np.testing.assert_allclose(A @ b, A @ np.ones(7), atol=1e-9)
