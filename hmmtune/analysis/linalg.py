"""Exact, numerical and structural rank (docs/theory.md, "Theorem H (head tuning)", "Theorem P (prompt tuning)", "Memory-augmented HMMs").

Exact arithmetic runs on FLINT's rational matrices (python-flint ``fmpq_mat``): the
rank of a dense 200 x 200 rational matrix takes about 0.02 s there against 30 s or more
in sympy's pure-Python ``DomainMatrix`` (and minutes in ``Matrix.rank``, which we never
call on dense matrices). Inputs and outputs are sympy objects, so exact results flow
into reports and JSON unchanged.

Float inputs are never treated as exact: the exact functions accept only sympy
Rationals / Integers (or Python ints and :class:`fractions.Fraction`).

sympy and networkx are imported where a function needs them (exact results, small
structural ranks), so a check of a float model loads neither.
"""

from __future__ import annotations

import contextlib
import math
import sys
import warnings
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Sequence

import flint
import numpy as np

from ..common import torch

if TYPE_CHECKING:
    import sympy

__all__ = [
    "RankFacts",
    "to_fmpq_mat",
    "fmpq_to_sympy",
    "select_columns",
    "verify_preimage",
    "exact_rank",
    "exact_solve",
    "exact_nullspace",
    "exact_min_norm_preimage",
    "exact_square_solve",
    "numerical_rank",
    "clear_svd_cache",
    "least_squares",
    "structural_rank",
    "rank_facts",
]


def _to_fmpq(x: Any) -> flint.fmpq:
    if isinstance(x, flint.fmpq):
        return x
    if isinstance(x, (bool, float, np.floating)):
        raise TypeError(f"exact arithmetic needs rationals, got the float {x!r}")
    if isinstance(x, (int, np.integer)):
        return flint.fmpq(int(x))
    if isinstance(x, Fraction):
        return flint.fmpq(x.numerator, x.denominator)
    if _is_sympy(x, "Basic"):
        if x.is_Rational:
            return flint.fmpq(int(x.p), int(x.q))
        raise TypeError(f"exact arithmetic needs rational entries, got {x!r}")
    raise TypeError(f"exact arithmetic needs rationals, got {type(x).__name__}")


def to_fmpq_mat(M: Any) -> flint.fmpq_mat:
    """A FLINT rational matrix from a sympy Matrix or nested lists of rationals."""
    if isinstance(M, flint.fmpq_mat):
        return M
    if _is_sympy(M, "MatrixBase"):
        fast = _rational_dm_to_fmpq(M)
        if fast is not None:
            return fast
        rows, cols = M.shape
        entries = [_to_fmpq(e) for row in M.tolist() for e in row]  # tolist: 2x faster than M[i, j]
        return flint.fmpq_mat(rows, cols, entries)
    rows_list = [list(r) for r in M]
    rows = len(rows_list)
    cols = len(rows_list[0]) if rows else 0
    return flint.fmpq_mat(rows, cols, [_to_fmpq(e) for r in rows_list for e in r])


def _is_sympy(x: Any, kind: str) -> bool:
    """``isinstance(x, sympy.<kind>)`` without importing sympy: a sympy object means
    sympy is loaded already."""
    sympy = sys.modules.get("sympy")
    return sympy is not None and isinstance(x, getattr(sympy, kind))


def _rational_dm_to_fmpq(M: sympy.MatrixBase) -> flint.fmpq_mat | None:
    """The FLINT matrix behind a sympy Matrix of rationals, without a sympy number per
    entry: sympy keeps such a matrix as a DomainMatrix over ZZ or QQ, whose elements are
    FLINT rationals when sympy runs on python-flint (its default when installed). None for
    any other matrix (floats, symbols, other ground types): the caller converts entrywise."""
    import sympy

    try:
        dm = M.to_DM()
        if dm.domain not in (sympy.ZZ, sympy.QQ):
            return None
        out = dm.convert_to(sympy.QQ).to_dfm().rep
    except Exception:  # noqa: BLE001 - no FLINT-backed form: convert entry by entry
        return None
    return out if isinstance(out, flint.fmpq_mat) else None


def fmpq_to_sympy(q: flint.fmpq) -> sympy.Rational:
    """The sympy Rational of a FLINT rational (exact results flow into reports as sympy)."""
    import sympy

    return sympy.Rational(int(q.p), int(q.q))


def _from_fmpq_mat(M: flint.fmpq_mat) -> sympy.Matrix:
    """A sympy Matrix of Rationals from a FLINT matrix."""
    import sympy

    return sympy.Matrix(M.nrows(), M.ncols(), [fmpq_to_sympy(M[i, j]) for i in range(M.nrows()) for j in range(M.ncols())])


def __getattr__(name: str):
    """``from_fmpq_mat`` is deprecated (nothing in hmmtune uses it; one release)."""
    if name == "from_fmpq_mat":
        warnings.warn(
            "hmmtune.analysis.linalg.from_fmpq_mat is deprecated and will be removed; use "
            "sympy.Matrix(M.nrows(), M.ncols(), [fmpq_to_sympy(e) for e in M.entries()])",
            DeprecationWarning,
            stacklevel=2,
        )
        return _from_fmpq_mat
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def select_columns(M: flint.fmpq_mat, cols: Sequence[int]) -> flint.fmpq_mat:
    """Columns ``cols`` of a FLINT matrix (the matrix itself when ``cols`` is every column:
    FLINT matrices are never modified in place here)."""
    if list(cols) == list(range(M.ncols())):
        return M
    r = M.nrows()
    return flint.fmpq_mat(r, len(cols), [M[i, j] for i in range(r) for j in cols])


def verify_preimage(Wk: flint.fmpq_mat, b: Sequence[Any], target: Sequence[Any]) -> None:
    """Independent exact check that ``Wk^T b = target``, by multiplication (not by the
    solve that found ``b``); raises AssertionError when it fails."""
    bf = flint.fmpq_mat(1, len(b), [_to_fmpq(v) for v in b])
    prod = bf * Wk
    tf = to_fmpq_mat([list(target)])
    if any(prod[0, i] != tf[0, i] for i in range(len(target))):
        raise AssertionError("internal error: exact head witness failed its check")


def exact_rank(M: Any) -> int:
    """Rank over the rationals (FLINT's ``fmpq_mat.rank``: fraction-free elimination in C,
    about 1 s for a dense 1000 x 1000 model matrix; a modular certificate built entry by
    entry in Python was measured slower, see docs/benchmarks-check.md)."""
    return int(to_fmpq_mat(M).rank())


def _rref_pivots(R: flint.fmpq_mat, rank: int) -> list[int]:
    pivots = []
    col = 0
    for i in range(rank):
        while R[i, col] == 0:
            col += 1
        pivots.append(col)
        col += 1
    return pivots


def exact_solve(A: Any, y: Sequence[Any]) -> list[sympy.Rational] | None:
    """A solution z of ``A z = y`` over the rationals (free variables set to 0), or None
    when the system is inconsistent."""
    Af = to_fmpq_mat(A)
    rows, cols = Af.nrows(), Af.ncols()
    if len(y) != rows:
        raise ValueError(f"right-hand side has {len(y)} entries, A has {rows} rows")
    aug = flint.fmpq_mat(rows, cols + 1, [Af[i, j] if j < cols else _to_fmpq(y[i]) for i in range(rows) for j in range(cols + 1)])
    R, rank = aug.rref()
    pivots = _rref_pivots(R, rank)
    if pivots and pivots[-1] == cols:
        return None
    z = [flint.fmpq(0)] * cols
    for i, c in enumerate(pivots):
        z[c] = R[i, cols]
    return [fmpq_to_sympy(v) for v in z]


def exact_nullspace(M: Any) -> list[list[sympy.Rational]]:
    """A basis of the right null space of ``M`` over the rationals."""
    Mf = to_fmpq_mat(M)
    cols = Mf.ncols()
    R, rank = Mf.rref()
    pivots = _rref_pivots(R, rank)
    free = [c for c in range(cols) if c not in set(pivots)]
    basis = []
    for f in free:
        v = [flint.fmpq(0)] * cols
        v[f] = flint.fmpq(1)
        for i, c in enumerate(pivots):
            v[c] = -R[i, f]
        basis.append([fmpq_to_sympy(e) for e in v])
    return basis


def exact_min_norm_preimage(W: Any, target: Sequence[Any]) -> list[sympy.Rational] | None:
    """The minimum-norm ``b`` with ``W^T b = target``, exactly, or None if none exists.

    Square ``W`` (n = k) that is nonsingular: the solution is unique, hence the minimum-norm
    one, and comes from one integer solve (:func:`exact_square_solve`, Dixon's p-adic
    lifting in FLINT) without forming ``W^T W``. Otherwise we solve ``(W^T W) c = target``
    (consistent exactly when ``target`` lies in the row space of W) and return ``b = W c``,
    which lies in the column space of W and is therefore the minimum-norm solution
    (docs/theory.md, "Theorem H (head tuning)": ``b = W (W^T W)^{-1} mu`` when W has full
    column rank).
    """
    Wf = to_fmpq_mat(W)
    if Wf.nrows() == Wf.ncols() and Wf.nrows() > 0:
        b = exact_square_solve(Wf.transpose(), target)
        if b is not None:
            return [fmpq_to_sympy(v) for v in b]
    G = Wf.transpose() * Wf
    c = exact_solve(G, list(target))
    if c is None:
        return None
    cf = flint.fmpq_mat(len(c), 1, [_to_fmpq(v) for v in c])
    b = Wf * cf
    return [fmpq_to_sympy(b[i, 0]) for i in range(b.nrows())]


def _lcm_of_denominators(values) -> int:
    return math.lcm(*(int(v.q) for v in values)) if values else 1


def exact_square_solve(A: Any, y: Sequence[Any]) -> list[flint.fmpq] | None:
    """The solution ``z`` of ``A z = y`` for a square nonsingular rational ``A``, or None
    when ``A`` is singular.

    The system is made integral by scaling either every row i of ``A`` (and ``y_i``) by the
    lcm ``r_i`` of that row's denominators, or every column j by the lcm ``d_j`` of its
    denominators (``z = D z'``), whichever gives the smaller integers (a model's rows share
    their normalising sum: rows for ``emission``, columns for ``emission^T``), and then
    ``y`` by the lcm ``L`` of its denominators: ``A_int z' = L y'``. FLINT solves that by
    p-adic lifting (``fmpz_mat.solve``), seconds for n = 1000 where rational elimination
    takes minutes. The solution is checked exactly by the integer product
    ``A_int z' = L y'`` before it is returned.
    """
    Af = to_fmpq_mat(A)
    n = Af.nrows()
    if Af.ncols() != n:
        raise ValueError(f"exact_square_solve needs a square matrix, got {n} x {Af.ncols()}")
    if len(y) != n:
        raise ValueError(f"right-hand side has {len(y)} entries, A has {n} rows")
    entries = Af.entries()  # row-major
    q = [int(e.q) for e in entries]
    r = [math.lcm(*q[i * n : (i + 1) * n]) for i in range(n)]
    by_rows = max(r).bit_length() <= 64  # rows share small denominators (a model's rows)
    if not by_rows:
        d = [math.lcm(*q[j::n]) for j in range(n)]
        by_rows = sum(v.bit_length() for v in r) <= sum(v.bit_length() for v in d)
    yq = [_to_fmpq(v) for v in y]
    if by_rows:
        A_int = flint.fmpz_mat(n, n, [int(e.p) * (r[k // n] // q[k]) for k, e in enumerate(entries)])
        yq = [v * r[i] for i, v in enumerate(yq)]
    else:
        A_int = flint.fmpz_mat(n, n, [int(e.p) * (d[k % n] // q[k]) for k, e in enumerate(entries)])
    L = _lcm_of_denominators(yq)
    rhs = flint.fmpz_mat(n, 1, [int(v.p) * (L // int(v.q)) for v in yq])
    try:
        zq = A_int.solve(rhs)  # fmpq_mat: z' = A_int^{-1} L y'
    except ZeroDivisionError:  # singular
        return None
    den = _lcm_of_denominators([zq[i, 0] for i in range(n)])
    zint = flint.fmpz_mat(n, 1, [int(zq[i, 0].p) * (den // int(zq[i, 0].q)) for i in range(n)])
    if A_int * zint != rhs * den:
        raise AssertionError("internal error: the integer solve failed its exact check")
    if by_rows:
        return [zq[i, 0] / L for i in range(n)]
    return [zq[i, 0] * d[i] / L for i in range(n)]


def _as_torch(A: Any):
    """A float64 CPU tensor of ``A``, sharing its memory where it is a writable C-ordered
    float64 array (a read-only one, e.g. :meth:`hmmtune.HMM.as_numpy`, is copied)."""
    A = np.ascontiguousarray(A, dtype=np.float64)
    return torch.from_numpy(A if A.flags.writeable else A.copy())


#: below this many entries a dense factorisation runs on one thread (:func:`_one_thread_if_small`)
SMALL_FACTORISATION = 250_000


@contextlib.contextmanager
def _one_thread_if_small(size: int):
    """Run a small torch LAPACK call (least squares) on one torch thread, then restore the
    thread count. On 2 cores shared with other work, MKL's threaded SVD of a 200 x 5
    matrix was measured at 0.1 s against 0.1 ms on one thread (400 x 400: 2.4 s against
    0.03 s): the threads wait for each other. Large matrices keep every thread."""
    threads = torch.get_num_threads()
    if size >= SMALL_FACTORISATION or threads == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


#: a square matrix whose condition number (from its kept singular values) is below this is
#: solved by LU in :func:`least_squares` (the unique solution is the minimum-norm one)
LU_MAX_CONDITION = 1e8


def least_squares(A: Any, y: Any) -> np.ndarray:
    """Minimum-norm least-squares solution of ``A z = y`` in float64.

    torch's SVD-based ``gelsd``; except for a large square matrix whose singular values are
    already kept (:func:`_singular_values`, e.g. from the rank facts of the same ``W``) and
    show it well-conditioned (condition number below :data:`LU_MAX_CONDITION`): its unique
    solution is the minimum-norm one, and an LU solve costs a fraction of an SVD
    (m = 2000: about 0.2 s against 2.5 s)."""
    A = np.asarray(A, dtype=np.float64)
    At = _as_torch(A)
    yt = _as_torch(y).reshape(-1, 1)
    if A.ndim == 2 and A.shape[0] == A.shape[1] and A.size >= _SVD_CACHE_MIN_SIZE:
        s = _kept_singular_values(A.T)  # W's own bytes: A is passed as W^T
        if s is None:
            s = _kept_singular_values(A)
        if s is not None and s[-1] > 0 and s[0] / s[-1] < LU_MAX_CONDITION:
            z, info = torch.linalg.solve_ex(At, yt)
            if int(info) == 0:
                return z.reshape(-1).numpy()
    with _one_thread_if_small(At.numel()):
        return torch.linalg.lstsq(At, yt, driver="gelsd").solution.reshape(-1).numpy()


#: large matrices whose singular values are kept (by content) for the next call
_SVD_CACHE: dict[tuple, np.ndarray] = {}
_SVD_CACHE_MIN_SIZE = 250_000
_SVD_CACHE_ENTRIES = 4


def _svd_key(A: np.ndarray) -> tuple:
    import hashlib

    B = np.ascontiguousarray(A)
    return (B.shape, hashlib.blake2b(B.tobytes(), digest_size=16).digest())


def _kept_singular_values(A: np.ndarray) -> np.ndarray | None:
    """The kept singular values of ``A`` (by content), or None: computes nothing."""
    if A.size < _SVD_CACHE_MIN_SIZE or not _SVD_CACHE:
        return None
    s = _SVD_CACHE.get(_svd_key(A))
    return None if s is None else s.copy()


def _singular_values(A: np.ndarray) -> np.ndarray:
    """Singular values: numpy's below :data:`SMALL_FACTORISATION` entries (a few ms at most,
    one thread, and no torch import for a small check), torch's SVD above (numpy's OpenBLAS
    on 2 threads beside torch's threads stalled for ~0.3 s per call). A check asks for the
    same large W up to three times (rank facts, the head witness's tolerance, the prompt
    search): from ``_SVD_CACHE_MIN_SIZE`` entries on the values are kept under a digest of
    the matrix's bytes (50 ms to hash 2000 x 2000 against seconds for its SVD), so a repeat
    costs the hash only."""
    if A.size < SMALL_FACTORISATION:
        return np.linalg.svd(A, compute_uv=False)
    key = None
    if A.size >= _SVD_CACHE_MIN_SIZE:
        key = _svd_key(A)
        if key in _SVD_CACHE:
            return _SVD_CACHE[key].copy()
    s = torch.linalg.svdvals(_as_torch(A)).numpy()
    if key is not None:
        while len(_SVD_CACHE) >= _SVD_CACHE_ENTRIES:
            _SVD_CACHE.pop(next(iter(_SVD_CACHE)))
        _SVD_CACHE[key] = s.copy()
    return s


def clear_svd_cache() -> None:
    """Forget the kept singular values (benchmarks that time a cold check call this)."""
    _SVD_CACHE.clear()


def numerical_rank(M: Any, tol: float | None = None) -> tuple[int, float, np.ndarray]:
    """Numerical rank by SVD: the number of singular values above ``tol``.

    Default ``tol = max(M.shape) * eps(float64) * sigma_max`` (numpy's ``matrix_rank`` rule).

    Returns:
        ``(rank, tol, singular_values)``.
    """
    A = np.asarray(M, dtype=np.float64)
    if A.size == 0:
        return 0, 0.0 if tol is None else tol, np.zeros(0)
    s = _singular_values(A)
    if tol is None:
        tol = float(max(A.shape) * np.finfo(np.float64).eps * (s[0] if s.size else 0.0))
    return int((s > tol).sum()), float(tol), s


def structural_rank(pattern: Any) -> int:
    """Generic rank of a sparsity pattern: a maximum bipartite matching between rows and
    columns with a nonzero entry. No choice of values on the pattern gives a larger rank.

    Small patterns use networkx's Hopcroft-Karp; from :data:`LARGE_PATTERN` entries on,
    scipy's compiled ``maximum_bipartite_matching`` (networkx needs minutes and gigabytes
    for a dense 2000 x 2000 pattern)."""
    P = np.asarray(pattern) != 0
    rows, cols = P.shape
    if P.size >= LARGE_PATTERN:
        from scipy.sparse import csr_matrix
        from scipy.sparse.csgraph import maximum_bipartite_matching

        match = maximum_bipartite_matching(csr_matrix(P), perm_type="column")
        return int((match >= 0).sum())
    import networkx as nx

    G = nx.Graph()
    left = [("r", i) for i in range(rows)]
    G.add_nodes_from(left, bipartite=0)
    G.add_nodes_from((("c", j) for j in range(cols)), bipartite=1)
    G.add_edges_from((("r", int(i)), ("c", int(j))) for i, j in zip(*np.nonzero(P)))
    matching = nx.bipartite.hopcroft_karp_matching(G, top_nodes=left)
    return len(matching) // 2


#: patterns with at least this many entries get scipy's matching in :func:`structural_rank`
LARGE_PATTERN = 40_000


def _nonzero_pattern(exact: Any) -> np.ndarray:
    """Boolean pattern of the nonzero entries of an exact matrix (FLINT or sympy)."""
    F = to_fmpq_mat(exact)
    r, c = F.nrows(), F.ncols()
    return np.array([e != 0 for e in F.entries()], dtype=bool).reshape(r, c)


@dataclass
class RankFacts:
    """Rank facts about one matrix.

    Attributes:
        shape: (rows, cols).
        exact_rank: rank over the rationals, or None when the entries are not exact.
        numerical_rank: SVD rank with tolerance ``tolerance``.
        tolerance: the singular-value threshold used.
        sigma_min: smallest singular value (of the min(shape) ones).
        sigma_max: largest singular value.
        condition_number: sigma_max / sigma_min (inf when sigma_min is 0).
        structural_rank: generic rank of the nonzero pattern.
    """

    shape: tuple[int, int]
    exact_rank: int | None
    numerical_rank: int
    tolerance: float
    sigma_min: float
    sigma_max: float
    condition_number: float
    structural_rank: int

    @property
    def rank(self) -> int:
        """The exact rank when known, else the numerical rank."""
        return self.exact_rank if self.exact_rank is not None else self.numerical_rank

    @property
    def method(self) -> str:
        return "exact" if self.exact_rank is not None else f"numerical (tol={self.tolerance:.3g})"


def rank_facts(values: np.ndarray, exact: Any | None = None, tol: float | None = None) -> RankFacts:
    """Collect :class:`RankFacts` for a float matrix and, optionally, its exact twin."""
    A = np.asarray(values, dtype=np.float64)
    nrank, used_tol, s = numerical_rank(A, tol)
    smin = float(s[-1]) if s.size else 0.0
    smax = float(s[0]) if s.size else 0.0
    erank = exact_rank(exact) if exact is not None else None
    # rank <= structural rank <= min(shape): a full rank settles the matching. The numerical
    # rank of A counts singular values above tol > 0, so it too is a lower bound of A's rank.
    lower = erank if erank is not None else nrank
    if lower == min(A.shape):
        srank = lower
    else:
        srank = structural_rank(A if exact is None else _nonzero_pattern(exact))
    return RankFacts(
        shape=tuple(A.shape),
        exact_rank=erank,
        numerical_rank=nrank,
        tolerance=used_tol,
        sigma_min=smin,
        sigma_max=smax,
        condition_number=float(smax / smin) if smin > 0 else float("inf"),
        structural_rank=srank,
    )
