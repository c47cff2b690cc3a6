"""How the compiled kernels (:mod:`hmmtune.models.kernels`) run one call: the form of the
step ``(B, m) x (m, m)`` and the chunks of sequences handed to threads.

Plain Python, no numba or numpy: :mod:`hmmtune.models.inference`'s cost rule reads it
without loading the kernels, and the kernels follow the same plan (docs/inference.md,
"Compiled kernels").
"""

from __future__ import annotations

__all__ = ["BLAS_FROM", "BLAS_MIN_ROWS", "SPARSE_FROM", "SPARSE_DENSITY", "THREADS_MIN_ENTRIES", "step_form", "split"]

#: From this many states on, the step may be one BLAS product over the batch ...
BLAS_FROM = 32
#: ... when the batch has at least this many sequences: for one sequence the loops are
#: cheaper (a BLAS call's overhead per step dominates; ``bench/calibrate_paths.py``).
BLAS_MIN_ROWS = 2
#: A transition with at least this many states ...
SPARSE_FROM = 64
#: ... and at most this fraction of nonzero entries is used in compressed (CSR) form: the
#: step costs ``B * nnz`` multiply-adds instead of ``B * m^2`` (e.g. 5 successors per state).
SPARSE_DENSITY = 1 / 32
#: Calls with fewer than this many (sequence, position, state) entries stay on one thread
#: (handing work to a thread costs tens of microseconds).
THREADS_MIN_ENTRIES = 100_000


def step_form(B: int, m: int, nnz: int | None = None) -> str:
    """``"sparse"`` (``m >= SPARSE_FROM`` and ``nnz``, the transition's nonzero entries, at
    most ``SPARSE_DENSITY m^2``), ``"blas"`` (``m >= BLAS_FROM`` and ``B >= BLAS_MIN_ROWS``)
    or ``"loops"``."""
    if nnz is not None and m >= SPARSE_FROM and nnz <= SPARSE_DENSITY * m * m:
        return "sparse"
    return "blas" if m >= BLAS_FROM and B >= BLAS_MIN_ROWS else "loops"


def split(B: int, T: int, m: int, threads: int, form: str = "loops") -> list[tuple[int, int]]:
    """Chunks ``(b0, b1)`` of the ``B`` sequences, one a thread. A BLAS product is not split:
    BLAS threads it already (holding it to one thread inside our threads and releasing it
    after each call was measured slower: its threads spin meanwhile)."""
    n = max(1, min(int(threads), B))
    if n == 1 or form == "blas" or B * T * m < THREADS_MIN_ENTRIES:
        return [(0, B)]
    cuts = [round(i * B / n) for i in range(n + 1)]
    return [(cuts[i], cuts[i + 1]) for i in range(n)]
