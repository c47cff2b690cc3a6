"""Exact, numerical and structural rank (issue 4, item 1) against independent references.

References: sympy's ``Matrix.rank`` on small matrices (<= 6 x 6, where it is fast),
numpy's ``matrix_rank`` and ``pinv``, ranks known by construction (a product of a full
column-rank and a full row-rank integer factor), exact multiplication with
:class:`fractions.Fraction`, and a brute-force maximum matching over injective maps for
structural rank.
"""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import sympy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmmtune.analysis.linalg import (
    exact_min_norm_preimage,
    exact_nullspace,
    exact_rank,
    exact_solve,
    numerical_rank,
    rank_facts,
    structural_rank,
)

HYP = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------------------------- helpers
def F(x) -> Fraction:
    """A Fraction from a sympy Rational / int / Fraction (independent of hmmtune)."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, int):
        return Fraction(x)
    r = sympy.Rational(x)
    return Fraction(int(r.p), int(r.q))


def fmatmul(A, B):
    """Exact product of nested lists of Fractions."""
    return [[sum((A[i][k] * B[k][j] for k in range(len(B))), Fraction(0)) for j in range(len(B[0]))] for i in range(len(A))]


@st.composite
def rational_matrices(draw, max_dim=6, zero_weight=0.4):
    """Small matrices of small rationals, often with zero rows / repeated structure."""
    r = draw(st.integers(1, max_dim))
    c = draw(st.integers(1, max_dim))
    ent = st.one_of(
        st.just(Fraction(0)),
        st.builds(Fraction, st.integers(-4, 4), st.integers(1, 3)),
    )
    rows = [[draw(ent) if draw(st.floats(0, 1)) > zero_weight else Fraction(0) for _ in range(c)] for _ in range(r)]
    # sometimes make a row a combination of two others (rank deficiency that is not a zero row)
    if r >= 3 and draw(st.booleans()):
        a, b = draw(st.builds(Fraction, st.integers(-3, 3), st.integers(1, 2))), draw(st.integers(-2, 2))
        rows[-1] = [a * x + b * y for x, y in zip(rows[0], rows[1])]
    return rows


def to_sympy(rows) -> sympy.Matrix:
    return sympy.Matrix([[sympy.Rational(x.numerator, x.denominator) for x in row] for row in rows])


@st.composite
def known_rank_products(draw, max_dim=9):
    """``(M, k)`` with ``M = L R`` of rank exactly k: L = P1 [I_k; X] (full column rank),
    R = [I_k | Y] P2 (full row rank), integer entries."""
    r = draw(st.integers(1, max_dim))
    c = draw(st.integers(1, max_dim))
    k = draw(st.integers(0, min(r, c)))
    ints = st.integers(-5, 5)
    X = [[draw(ints) for _ in range(k)] for _ in range(r - k)]
    Y = [[draw(ints) for _ in range(c - k)] for _ in range(k)]
    L = [[int(i == j) for j in range(k)] for i in range(k)] + X
    R = [[int(i == j) for j in range(k)] + Y[i] for i in range(k)]
    rp = draw(st.permutations(range(r)))
    cp = draw(st.permutations(range(c)))
    L = [L[i] for i in rp]
    if k == 0:
        M = [[0] * c for _ in range(r)]
    else:
        M = (np.array(L, dtype=object) @ np.array(R, dtype=object))[:, cp].tolist()
    # scramble with a random unimodular left factor (rank-preserving): add row multiples
    for _ in range(draw(st.integers(0, 4))):
        if r < 2:
            break
        i, j = draw(st.integers(0, r - 1)), draw(st.integers(0, r - 1))
        if i != j:
            t = draw(st.integers(-2, 2))
            M[i] = [a + t * b for a, b in zip(M[i], M[j])]
    return M, k


# ----------------------------------------------------------------------------- exact rank
@HYP
@given(rational_matrices())
def test_exact_rank_matches_sympy_on_small_matrices(rows):
    assert exact_rank(to_sympy(rows)) == to_sympy(rows).rank()
    # nested lists of Fractions and of ints are accepted too
    assert exact_rank(rows) == to_sympy(rows).rank()


@HYP
@given(known_rank_products())
def test_exact_rank_of_known_rank_product(Mk):
    M, k = Mk
    assert exact_rank(M) == k
    assert exact_rank(sympy.Matrix(M)) == k
    # transposition does not change the rank
    assert exact_rank([list(col) for col in zip(*M)]) == k


def test_exact_rank_sees_a_tiny_rational_perturbation_that_floats_lose():
    # [[1, 1], [1, 1 + 1e-20]] is singular in float64 but not over Q.
    eps = sympy.Rational(1, 10**20)
    M = sympy.Matrix([[1, 1], [1, 1 + eps]])
    assert exact_rank(M) == 2
    assert np.linalg.matrix_rank(np.array(M, dtype=float)) == 1


@pytest.mark.parametrize("bad", [[[0.5, 1]], [[sympy.Float(0.5), 1]], [[sympy.sqrt(2), 1]], [[np.float64(1.0)]]])
def test_exact_functions_refuse_floats_and_irrationals(bad):
    with pytest.raises(TypeError):
        exact_rank(bad)


def test_exact_rank_of_a_dense_integer_matrix_beyond_sympy_reach():
    # 40 x 40 integer matrix with a planted rank: exact rank must agree with the plant.
    rng = np.random.default_rng(0)
    L = rng.integers(-3, 4, size=(40, 25))
    R = rng.integers(-3, 4, size=(25, 40))
    M = (L.astype(object) @ R.astype(object)).tolist()
    # rank(L R) = 25 iff L, R have full rank 25; check those with numpy (well conditioned ints)
    assert np.linalg.matrix_rank(L) == 25 and np.linalg.matrix_rank(R) == 25
    assert exact_rank(M) == 25


# ----------------------------------------------------------------------------- numerical rank
@pytest.mark.parametrize("seed", range(5))
def test_numerical_rank_matches_numpy_on_well_conditioned_matrices(seed):
    rng = np.random.default_rng(seed)
    r, c = rng.integers(2, 12, size=2)
    k = int(rng.integers(1, min(r, c) + 1))
    # orthonormal factors and singular values in [1, 2]: condition number <= 2 on the range
    U, _ = np.linalg.qr(rng.normal(size=(r, k)))
    V, _ = np.linalg.qr(rng.normal(size=(c, k)))
    M = U @ np.diag(rng.uniform(1, 2, size=k)) @ V.T
    rank, tol, s = numerical_rank(M)
    assert rank == k == np.linalg.matrix_rank(M)
    np.testing.assert_allclose(s, np.linalg.svd(M, compute_uv=False), rtol=1e-12, atol=1e-12)
    assert 0 < tol < 1e-10


def test_numerical_rank_states_and_uses_its_tolerance():
    M = np.diag([1.0, 1e-3, 1e-9])
    assert numerical_rank(M)[0] == 3
    rank, tol, _ = numerical_rank(M, tol=1e-6)
    assert (rank, tol) == (2, 1e-6)
    assert numerical_rank(M, tol=1e-2)[0] == 1


# ----------------------------------------------------------------------------- structural rank
def brute_structural_rank(P: np.ndarray) -> int:
    """Largest number of nonzero positions with distinct rows and columns, by trying every
    injective map from the shorter side to the longer one."""
    P = np.asarray(P) != 0
    if P.shape[0] > P.shape[1]:
        P = P.T
    r, c = P.shape
    best = 0
    for cols in itertools.permutations(range(c), r):
        best = max(best, sum(int(P[i, cols[i]]) for i in range(r)))
    return best


patterns = st.integers(1, 5).flatmap(
    lambda r: st.integers(1, 5).flatmap(
        lambda c: st.lists(st.lists(st.booleans(), min_size=c, max_size=c), min_size=r, max_size=r)
    )
)


@HYP
@given(patterns)
def test_structural_rank_is_a_maximum_matching(P):
    P = np.array(P, dtype=bool)
    assert structural_rank(P) == brute_structural_rank(P)


@HYP
@given(patterns, st.integers(0, 2**31 - 1))
def test_structural_rank_bounds_exact_rank_and_is_generic(P, seed):
    P = np.array(P, dtype=bool)
    sr = structural_rank(P)
    rng = np.random.default_rng(seed)
    # arbitrary small values on the pattern: structural rank is an upper bound
    small = np.where(P, rng.integers(1, 3, size=P.shape), 0)
    assert exact_rank(small.tolist()) <= sr
    # generic (huge random) values reach it; the chance of a coincidence is ~1e-12
    generic = np.where(P, rng.integers(1, 10**12, size=P.shape), 0).astype(object)
    assert exact_rank(generic.tolist()) == sr


def test_structural_rank_detects_a_pattern_that_fails_for_every_value():
    # two rows whose support lies in one column: no values give rank 3
    P = np.array([[1, 0, 0], [1, 0, 0], [1, 1, 1]])
    assert structural_rank(P) == 2
    assert brute_structural_rank(P) == 2


# ----------------------------------------------------------------------------- solving
@HYP
@given(rational_matrices(), st.data())
def test_exact_solve_consistent_and_inconsistent(rows, data):
    A = to_sympy(rows)
    r, c = A.shape
    z0 = [Fraction(data.draw(st.integers(-3, 3)), data.draw(st.integers(1, 3))) for _ in range(c)]
    y = [row[0] for row in fmatmul(rows, [[v] for v in z0])]
    z = exact_solve(A, y)
    assert z is not None and len(z) == c
    assert all(isinstance(v, sympy.Rational) for v in z)
    back = [row[0] for row in fmatmul(rows, [[F(v)] for v in z])]
    assert back == y
    # a right-hand side outside the column space (when there is one) has no solution
    if to_sympy(rows).rank() < r:
        ns = sympy.Matrix(rows).T.nullspace()  # left null vector w: w^T A = 0
        w = [F(v) for v in ns[0]]
        y_bad = list(y)
        # w . y_bad != 0 makes A z = y_bad inconsistent
        i = next(i for i, v in enumerate(w) if v != 0)
        y_bad[i] += 1
        assert exact_solve(A, y_bad) is None


def test_exact_solve_checks_the_right_hand_side_length():
    with pytest.raises(ValueError):
        exact_solve([[1, 2], [3, 4]], [1])


@HYP
@given(rational_matrices())
def test_exact_nullspace_is_a_basis_of_the_kernel(rows):
    A = to_sympy(rows)
    basis = exact_nullspace(A)
    r, c = A.shape
    assert len(basis) == c - A.rank()
    for v in basis:
        assert all(e == 0 for e in (A * sympy.Matrix(v)))
    if basis:
        assert sympy.Matrix([list(v) for v in basis]).rank() == len(basis)


@HYP
@given(rational_matrices(max_dim=6))
def test_exact_min_norm_preimage_against_pinv(rows):
    W = to_sympy(rows)  # (n, k)
    n, k = W.shape
    Wf = np.array(W, dtype=float)
    # a target in the row space: W^T c for a random c
    rng = np.random.default_rng(n * 7 + k)
    c0 = [Fraction(int(v)) for v in rng.integers(-3, 4, size=n)]
    target = [row[0] for row in fmatmul([list(col) for col in zip(*[[F(x) for x in r] for r in rows])], [[v] for v in c0])]
    b = exact_min_norm_preimage(W, target)
    assert b is not None and len(b) == n
    # W^T b = target, exactly
    WT = [[F(W[i, j]) for i in range(n)] for j in range(k)]
    assert [row[0] for row in fmatmul(WT, [[F(v)] for v in b])] == target
    # minimum norm: numpy's pseudo-inverse gives the same vector
    ref = np.linalg.pinv(Wf.T) @ np.array([float(t) for t in target])
    np.testing.assert_allclose([float(v) for v in b], ref, atol=1e-9)


def test_exact_min_norm_preimage_none_outside_row_space():
    W = sympy.Matrix([[1, 1], [2, 2], [0, 0]])  # row space spanned by (1, 1)
    assert exact_min_norm_preimage(W, [1, -1]) is None
    b = exact_min_norm_preimage(W, [3, 3])
    assert [F(v) for v in b] == [Fraction(3, 5), Fraction(6, 5), Fraction(0)]


# ----------------------------------------------------------------------------- rank facts
def test_rank_facts_against_numpy_and_sympy():
    ex = sympy.Matrix([[1, 0, 0], [0, sympy.Rational(1, 3), 0], [0, 0, 0], [1, 1, 0]])
    vals = np.array(ex, dtype=float)
    f = rank_facts(vals, ex)
    s = np.linalg.svd(vals, compute_uv=False)
    assert f.shape == (4, 3)
    assert f.exact_rank == ex.rank() == 2 and f.rank == 2 and f.method == "exact"
    assert f.numerical_rank == np.linalg.matrix_rank(vals) == 2
    assert f.structural_rank == 2  # third column is all zero
    assert f.sigma_max == pytest.approx(s[0]) and f.sigma_min == pytest.approx(s[-1], abs=1e-15)
    # float-only facts never claim exactness
    g = rank_facts(vals)
    assert g.exact_rank is None and g.rank == 2 and g.method.startswith("numerical")
    h = rank_facts(np.eye(3) * 2.0)
    assert h.condition_number == pytest.approx(1.0) and h.sigma_min == pytest.approx(2.0)
