"""Fast paths for large exact checks (issue 11, item 5) against independent references:
sympy's own rational arithmetic (``Matrix.solve``, ``Matrix.rank``, ``pinv``), the general
parser of model files, and networkx's matching for structural rank. Every model is tiny;
the sizes that make these paths matter are timed in bench/bench_check.py."""

from __future__ import annotations

import json
import random
from fractions import Fraction

import flint
import numpy as np
import pytest
import sympy

from hmmtune.analysis import graph, linalg
from hmmtune.analysis.linalg import exact_min_norm_preimage, exact_rank, exact_square_solve, structural_rank, to_fmpq_mat
from hmmtune.io import ModelFileError, hmm_from_json, parse_entries


def _rand_rational(rng, lo=-4, hi=4, den=6):
    return sympy.Rational(rng.randint(lo, hi), rng.randint(1, den))


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_square_solve_matches_sympy(n):
    rng = random.Random(n)
    for trial in range(15):
        A = sympy.Matrix(n, n, [_rand_rational(rng) for _ in range(n * n)])
        if trial % 3 == 0:  # rows sharing a denominator, like a model's rows
            A = sympy.Matrix(n, n, [sympy.Rational(rng.randint(0, 9), 7 + i) for i in range(n) for _ in range(n)])
        y = [_rand_rational(rng) for _ in range(n)]
        z = exact_square_solve(A, y)
        if A.rank() < n:
            assert z is None
        else:
            assert [sympy.Rational(int(v.p), int(v.q)) for v in z] == list(A.solve(sympy.Matrix(y)))


def test_square_solve_rejects_bad_shapes():
    with pytest.raises(ValueError, match="square"):
        exact_square_solve(sympy.Matrix([[1, 2]]), [1])
    with pytest.raises(ValueError, match="right-hand side"):
        exact_square_solve(sympy.eye(2), [1])


@pytest.mark.parametrize("seed", range(6))
def test_min_norm_preimage_square_path_equals_pseudo_inverse(seed):
    """Square W: the integer solve must give sympy's pinv(W^T) target (the minimum-norm
    solution), and None exactly when the target is outside the row space."""
    rng = random.Random(seed)
    n = 4
    W = sympy.Matrix(n, n, [_rand_rational(rng, 0, 5) for _ in range(n * n)])
    if seed % 2:
        W[:, 3] = W[:, 0] + W[:, 1]  # singular: the Gram path decides
    target = [_rand_rational(rng) for _ in range(n)]
    if seed % 4 == 1:
        target = list(W.T * W.T.pinv() * sympy.Matrix(target))  # put it in the range of W^T
    b = exact_min_norm_preimage(W, target)
    ref = W.T.pinv() * sympy.Matrix(target)
    if W.T * ref == sympy.Matrix(target):
        assert b is not None and sympy.Matrix(b) == ref
    else:
        assert b is None


def test_exact_rank_of_scaled_low_rank_products():
    rng = np.random.default_rng(0)
    for m, rank in [(70, 70), (80, 60), (64, 64), (90, 89)]:
        left = rng.integers(-3, 4, size=(m, rank))
        right = rng.integers(-3, 4, size=(rank, m))
        M = left @ right
        dens = rng.integers(1, 9, size=(m, 1))
        F = flint.fmpq_mat(m, m, [flint.fmpq(int(M[i, j]), int(dens[i, 0])) for i in range(m) for j in range(m)])
        assert exact_rank(F) == F.rank() == np.linalg.matrix_rank(M.astype(float))


def test_structural_rank_scipy_and_networkx_agree(monkeypatch):
    rng = np.random.default_rng(1)
    for _ in range(60):
        r, c = rng.integers(1, 15, size=2)
        P = rng.random((r, c)) < rng.random()
        small = structural_rank(P)
        monkeypatch.setattr(linalg, "LARGE_PATTERN", 0)
        large = structural_rank(P)
        monkeypatch.undo()
        assert small == large


def test_rank_facts_structural_rank_when_rank_is_full_or_not():
    A = np.array([[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])
    assert linalg.rank_facts(A).structural_rank == 2
    B = np.array([[1.0, 1.0], [1.0, 1.0]])  # rank 1, generic rank 2
    facts = linalg.rank_facts(B, sympy.Matrix([[1, 1], [1, 1]]))
    assert (facts.exact_rank, facts.structural_rank) == (1, 2)


def test_to_fmpq_mat_fast_path_matches_entrywise():
    M = sympy.Matrix([[sympy.Rational(1, 3), 0, 2], [-5, sympy.Rational(7, 9), 1]])
    F = to_fmpq_mat(M)
    assert [[sympy.Rational(int(F[i, j].p), int(F[i, j].q)) for j in range(3)] for i in range(2)] == M.tolist()
    for bad in (sympy.Matrix([[0.5]]), sympy.Matrix([[sympy.sqrt(2)]])):
        with pytest.raises(TypeError, match="rational"):
            to_fmpq_mat(bad)


@pytest.mark.parametrize(
    "value, ndim",
    [
        ([1, "1/3", " 2 ", "0", "10/4"], 1),
        ([[1, "2/4"], ["0", "7/3"]], 2),
        ([["1/2", "0.25", "1/4"]], 2),  # a decimal: the general parser
        ([[0, 0], ["1/6", "5/6"]], 2),
    ],
)
def test_fast_parse_equals_general_parse(value, ndim, monkeypatch):
    import hmmtune.io.entries as io

    fast = parse_entries({"f": value}, "f", ndim, "L")
    monkeypatch.setattr(io, "_fast_exact", lambda *a: None)
    slow = parse_entries({"f": value}, "f", ndim, "L")
    assert fast[0] == slow[0]
    assert fast[1].shape == slow[1].shape and fast[1].tolist() == slow[1].tolist()
    expect = [float(Fraction(str(v).strip())) for v in (value if ndim == 1 else sum(value, []))]
    assert (fast[0] if ndim == 1 else sum(fast[0], [])) == expect


@pytest.mark.parametrize(
    "bad, pattern",
    [
        ({"initial": ["1/0", 1]}, "cannot read '1/0'"),
        ({"initial": ["3/2", "-1/2"]}, "is negative"),
        ({"transition": [["1/2", "1/3"], [0, 1]]}, "row 0 sums to 5/6 exactly"),
    ],
)
def test_fast_parse_keeps_the_general_error_messages(bad, pattern):
    data = {"kind": "hmm", "initial": ["1/2", "1/2"], "transition": [[0, 1], [1, 0]], "emission": [["1/3", "2/3"], [1, 0]]}
    data.update(bad)
    with pytest.raises(ModelFileError, match=pattern):
        hmm_from_json(json.dumps(data))


def test_exact_graph_from_flint_matches_float_graph():
    T = sympy.Matrix([[0, sympy.Rational(1, 2), sympy.Rational(1, 2)], [1, 0, 0], [0, 0, 1]])
    G1 = graph.transition_graph(to_fmpq_mat(T))
    G2 = graph.transition_graph(np.array(T.tolist(), dtype=float))
    assert set(G1.edges()) == set(G2.edges()) == {(0, 1), (0, 2), (1, 0), (2, 2)}
    cs = graph.chain_structure(to_fmpq_mat(T), [0, 0, 1])
    assert cs.reachable == [2] and cs.unreachable == [0, 1]


def test_float_file_fast_path_equals_general_parse(monkeypatch):
    import hmmtune.io.hmm_json as io

    data = {"kind": "hmm", "initial": [0.25, 0.75], "transition": [[0.5, 0.5], [1, 0]], "emission": [[0.1, 0.9], [0.3, 0.7]]}
    fast = hmm_from_json(json.dumps(data))
    monkeypatch.setattr(io, "_fast_floats", lambda *a: None)
    slow = hmm_from_json(json.dumps(data))
    assert fast.exact is None and slow.exact is None
    for k in ("initial", "transition", "emission"):
        assert getattr(fast, k).equal(getattr(slow, k))
    monkeypatch.undo()
    for bad, pattern in (({"initial": [0.5, True]}, "initial"), ({"initial": [0.5, "0.5x"]}, "initial")):
        with pytest.raises(ModelFileError, match=pattern):
            hmm_from_json(json.dumps({**data, **bad}))


def test_singular_values_cache_is_keyed_by_content(monkeypatch):
    monkeypatch.setattr(linalg, "_SVD_CACHE_MIN_SIZE", 4)
    monkeypatch.setattr(linalg, "SMALL_FACTORISATION", 4)  # small matrices go to numpy, uncached
    monkeypatch.setattr(linalg, "_SVD_CACHE", {})
    rng = np.random.default_rng(3)
    A = rng.random((5, 4))
    r1, _, s1 = linalg.numerical_rank(A)
    s1[0] = -1.0  # callers may scribble on the result: the cache keeps its own copy
    r2, _, s2 = linalg.numerical_rank(A.copy())
    assert r1 == r2 == 4 and len(linalg._SVD_CACHE) == 1
    np.testing.assert_allclose(s2, np.linalg.svd(A, compute_uv=False), rtol=1e-12)
    B = A.copy()
    B[:, 3] = B[:, 0]  # other content: a fresh SVD, rank 3
    assert linalg.numerical_rank(B)[0] == 3 and len(linalg._SVD_CACHE) == 2


def test_least_squares_solves_a_well_conditioned_square_matrix_by_lu(monkeypatch):
    """With W's singular values kept, least_squares(W^T, y) takes an LU solve and returns
    numpy's own minimum-norm solution; an ill-conditioned W, or one whose values are not
    kept, goes to gelsd (lstsq)."""
    import torch

    monkeypatch.setattr(linalg, "_SVD_CACHE_MIN_SIZE", 4)
    monkeypatch.setattr(linalg, "SMALL_FACTORISATION", 4)  # small matrices go to numpy, uncached
    monkeypatch.setattr(linalg, "_SVD_CACHE", {})
    calls = []
    real = torch.linalg.lstsq
    monkeypatch.setattr(torch.linalg, "lstsq", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(4)
    W = rng.random((6, 6)) + np.eye(6)
    y = rng.random(6)
    ref = np.linalg.lstsq(W.T, y, rcond=None)[0]
    np.testing.assert_allclose(linalg.least_squares(W.T, y), ref, rtol=1e-12)
    assert calls == [1]  # nothing kept yet: gelsd
    linalg.numerical_rank(W)  # the rank facts keep W's singular values
    np.testing.assert_allclose(linalg.least_squares(W.T, y), ref, rtol=1e-12)
    assert calls == [1]  # LU
    V = W.copy()
    V[:, 5] = V[:, 0] + 1e-12 * V[:, 1]  # condition number ~1e12
    linalg.numerical_rank(V)
    assert np.isfinite(linalg.least_squares(V.T, y)).all()
    assert calls == [1, 1]  # ill-conditioned: gelsd
