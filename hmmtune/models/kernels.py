"""Compiled sequential recursions (numba) for the HMM's exact inference on the CPU.

The eager torch loop of :mod:`hmmtune.models.inference` pays about 12 microseconds of
dispatch per step and pass whatever the work per step, which dominates for long sequences
and small batches. These kernels run the same scaled recursions as machine code compiled by
numba (docs/inference.md, "Compiled kernels"): the per-step cost falls to the arithmetic
itself. They are pure functions of numpy arrays, with the shapes below, and make the same
choices as the torch loop:

* messages are renormalised at every step and the log normalisers summed;
* a sequence of probability zero is not an error here: its rows become zero vectors from
  the first impossible position on, and the position is returned (``-1`` for a possible
  sequence) so that the caller raises :class:`~hmmtune.models.inference.ZeroProbabilityError`
  with the torch loop's message.

Shapes: ``tokens`` (B, T) int64 indices into the rows of ``table``; ``table`` (K, m) holds
likelihood rows (``emission.T`` (n, m), so that ``table[x] = P(x | H = .)``; or a
flattened (B * T, m) likelihood tensor with ``tokens = arange(B * T).reshape(B, T)``);
``initial`` (m,); ``transition`` (m, m) row-stochastic. float64 or float32 (one compiled
version per dtype).

The step ``(B, m) x (m, m)`` is written as loops for small ``m`` or few sequences, and is
one BLAS product over the batch from ``BLAS_FROM`` states and ``BLAS_MIN_ROWS``
sequences on (:func:`uses_blas`); a large sparse transition (``SPARSE_FROM``,
``SPARSE_DENSITY``) is used in compressed form instead (:func:`step_form`). The thresholds
and the chunks of sequences are :mod:`hmmtune.models.kernel_plan`'s. Large calls
on the loops or the sparse form split their sequences over ``threads`` threads (the
kernels release the GIL); a BLAS product is threaded by BLAS.

This module imports numba at its top: :mod:`hmmtune.models.inference` imports it only when
a call takes the compiled path, so ``import hmmtune`` stays light. Compiled code is cached
on disk (numba's ``cache=True``): only the first process on a machine compiles (seconds);
later processes load it (the one-off cost per process is measured in docs/benchmarks.md).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["uses_blas", "step_form", "smooth", "log_prob", "start_backward"]

from . import kernel_plan

_njit = numba.njit(cache=True, nogil=True)
_inline = numba.njit(cache=True, nogil=True, inline="always")
# reassociation lets LLVM vectorise the dot products of the loop product; no other
# fast-math flag (infinities and zeros are handled explicitly below)
_njit_dot = numba.njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})


def uses_blas(rows: int, m: int) -> bool:
    """Whether a step ``(rows, m) x (m, m)`` of a dense transition is one BLAS product."""
    return kernel_plan.step_form(rows, m) == "blas"


@_njit_dot
def _loop_product(src, mat_t, dst):
    # dst = src @ mat_t.T as dot products of contiguous rows
    B, m = src.shape
    for b in range(B):
        for j in range(m):
            acc = 0.0
            for i in range(m):
                acc += src[b, i] * mat_t[j, i]
            dst[b, j] = acc


@_inline
def _sparse_product(src, csr, dst):
    # dst[b, j] = sum_k src[b, idx[k]] * val[k] over row j of csr = (ptr, idx, val)
    ptr, idx, val = csr
    B, m = dst.shape
    for b in range(B):
        for j in range(m):
            acc = 0.0
            for k in range(ptr[j], ptr[j + 1]):
                acc += src[b, idx[k]] * val[k]
            dst[b, j] = acc


@_inline
def _propagate(src, mat, mat_t, dst, blas, csr):
    # dst = src @ mat for (B, m) x (m, m); mat_t is mat.T, contiguous; csr: None, or mat.T's
    # nonzeros by rows (the branch is resolved when numba compiles, per argument type)
    if csr is not None:
        _sparse_product(src, csr, dst)
    elif blas:
        np.dot(src, mat, dst)
    else:
        _loop_product(src, mat_t, dst)


@_inline
def _forward_rows(tokens, table, t, pred, filt, logs, carry, first_zero):
    # filt[b] = pred[b] * table[tokens[b, t]] normalised; the log normaliser added to logs[b]
    B, m = pred.shape
    for b in range(B):
        row = table[tokens[b, t]]
        s = 0.0
        for j in range(m):
            v = pred[b, j] * row[j]
            filt[b, j] = v
            s += v
        if s > 0:
            inv = 1.0 / s
            for j in range(m):
                filt[b, j] *= inv
            # compensated (Kahan) sum of the log normalisers: a plain running sum loses
            # about 1e-11 relative over a million positions; torch's pairwise sum does not
            y = np.log(s) - carry[b]
            z = logs[b] + y
            carry[b] = (z - logs[b]) - y
            logs[b] = z
        else:
            for j in range(m):
                filt[b, j] = 0.0
            logs[b] = -np.inf
            if first_zero[b] < 0:
                first_zero[b] = t


@_inline
def _backward_step(tokens, table, t, beta, tmp, at, a, blas, csr_b, first_zero):
    # beta <- transition @ (L_t * beta), normalised (the message to position t - 1);
    # at = transition.T and a = transition, both contiguous
    B, m = beta.shape
    for b in range(B):
        row = table[tokens[b, t]]
        for j in range(m):
            tmp[b, j] = row[j] * beta[b, j]
    _propagate(tmp, at, a, beta, blas, csr_b)
    for b in range(B):
        s = 0.0
        for j in range(m):
            s += beta[b, j]
        if s > 0:
            inv = 1.0 / s
            for j in range(m):
                beta[b, j] *= inv
        else:
            for j in range(m):
                beta[b, j] = 0.0
            if first_zero[b] < 0:
                first_zero[b] = t


@_inline
def _forward(tokens, initial, transition, at, table, blas, csr_f, logs, fzero, out, b0, masked):
    # the scaled forward pass; where out (T, B_all, m) is given (not None: resolved when
    # numba compiles), the predicted (masked) or filtered rows of tokens[0:B] go to its
    # rows b0:b0 + B
    B, T = tokens.shape
    m = initial.shape[0]
    pred = np.empty((B, m), table.dtype)
    filt = np.empty((B, m), table.dtype)
    carry = np.zeros(B, np.float64)
    for b in range(B):
        pred[b] = initial
    for t in range(T):
        if out is not None:
            if masked:
                out[t, b0 : b0 + B] = pred
        _forward_rows(tokens, table, t, pred, filt, logs, carry, fzero)
        if out is not None:
            if not masked:
                out[t, b0 : b0 + B] = filt
        if t + 1 < T:
            _propagate(filt, transition, at, pred, blas, csr_f)


@_njit
def _smooth(tokens, initial, transition, table, masked, blas, csr_f, csr_b, out, b0, fzero, bzero):
    # the sequences tokens[0:B] are rows b0:b0 + B of out (T, B_all, m)
    B, T = tokens.shape
    m = initial.shape[0]
    at = np.ascontiguousarray(transition.T)
    _forward(tokens, initial, transition, at, table, blas, csr_f, np.zeros(B, np.float64), fzero, out, b0, masked)
    beta = np.full((B, m), 1.0 / m, table.dtype)
    tmp = np.empty((B, m), table.dtype)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            s = 0.0
            for j in range(m):
                v = out[t, b0 + b, j] * beta[b, j]
                out[t, b0 + b, j] = v
                s += v
            if s > 0:
                inv = 1.0 / s
                for j in range(m):
                    out[t, b0 + b, j] *= inv
        if t > 0:
            _backward_step(tokens, table, t, beta, tmp, at, transition, blas, csr_b, bzero)


@_njit
def _log_prob(tokens, initial, transition, table, blas, csr_f, logs, fzero):
    at = np.ascontiguousarray(transition.T)
    _forward(tokens, initial, transition, at, table, blas, csr_f, logs, fzero, None, 0, False)


@_njit
def _start_backward(tokens, transition, table, blas, csr_b, beta, bzero):
    B, T = tokens.shape
    m = transition.shape[0]
    dt = table.dtype
    at = np.ascontiguousarray(transition.T)
    tmp = np.empty((B, m), dt)
    for t in range(T - 1, -1, -1):
        # t > 0: the message to position t - 1; t == 0: the message to the mask before it
        _backward_step(tokens, table, t, beta, tmp, at, transition, blas, csr_b, bzero)


# ----------------------------------------------------------------- threads over sequences
_pool = None
_pool_key = None  # (threads, pid): a forked child inherits the pool object but not its threads


def _executor(threads: int):
    global _pool, _pool_key
    import os

    key = (threads, os.getpid())
    if _pool is None or _pool_key != key:
        from concurrent.futures import ThreadPoolExecutor

        if _pool is not None and _pool_key[1] == key[1]:
            _pool.shutdown(wait=True)
        _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hmmtune-kernels")
        _pool_key = key
    return _pool


def _split(B: int, T: int, m: int, threads: int, form: str = "loops") -> list[tuple[int, int]]:
    return kernel_plan.split(B, T, m, threads, form)


def _run(chunks, fn):
    """fn(b0, b1) for every chunk, on the calling thread when there is one chunk."""
    if len(chunks) == 1:
        fn(*chunks[0])
        return
    pool = _executor(len(chunks))
    for f in [pool.submit(fn, b0, b1) for b0, b1 in chunks]:
        f.result()


def _csr(mat) -> tuple:
    """(ptr, idx, val) of mat's nonzeros by rows."""
    rows, cols = np.nonzero(mat)
    ptr = np.zeros(mat.shape[0] + 1, np.int64)
    np.cumsum(np.bincount(rows, minlength=mat.shape[0]), out=ptr[1:])
    return ptr, cols.astype(np.int64), np.ascontiguousarray(mat[rows, cols])


def step_form(B: int, transition) -> str:
    """How a step ``(B, m) x (m, m)`` with this transition is computed:
    :func:`hmmtune.models.kernel_plan.step_form` (``"sparse"``, ``"blas"`` or ``"loops"``)."""
    m = transition.shape[0]
    nnz = int(np.count_nonzero(transition)) if m >= kernel_plan.SPARSE_FROM else None
    return kernel_plan.step_form(B, m, nnz)


def _plan(B: int, T: int, transition, table, threads: int):
    """(chunks, blas, csr of transition.T (forward), csr of transition (backward)); the csr
    are None unless the form is sparse."""
    m = transition.shape[0]
    form = step_form(B, transition)
    fwd = bwd = None
    if form == "sparse":
        fwd, bwd = _csr(np.ascontiguousarray(transition.T)), _csr(transition)
    return _split(B, T, m, threads, form), form == "blas", fwd, bwd


def smooth(tokens, initial, transition, table, masked: bool, threads: int = 1):
    """Smoothed (``masked=False``) or leave-one-out (``masked=True``) posteriors.

    Returns ``(out, forward_zero, backward_zero)``: ``out`` (T, B, m) with rows on the
    simplex (zero rows for an impossible sequence); ``forward_zero`` (B,) the first
    position whose forward normaliser vanished, or -1; ``backward_zero`` (B,) the position
    ``t >= 1`` whose likelihood column made the backward message to ``t - 1`` vanish, or -1.
    ``threads``: the most threads to split the sequences over.
    """
    B, T = tokens.shape
    m = initial.shape[0]
    out = np.empty((T, B, m), table.dtype)
    fzero = np.full(B, -1, np.int64)
    bzero = np.full(B, -1, np.int64)
    chunks, blas, fwd, bwd = _plan(B, T, transition, table, threads)

    def run(b0, b1):
        _smooth(tokens[b0:b1], initial, transition, table, bool(masked), blas, fwd, bwd, out, b0, fzero[b0:b1], bzero[b0:b1])

    _run(chunks, run)
    return out, fzero, bzero


def log_prob(tokens, initial, transition, table, threads: int = 1):
    """``log P(x)`` (B,) float64 (``-inf`` for an impossible sequence) and the first
    impossible position (B,) (-1 for a possible sequence). ``threads`` as in :func:`smooth`."""
    B, T = tokens.shape
    m = initial.shape[0]
    logs = np.zeros(B, np.float64)
    fzero = np.full(B, -1, np.int64)
    chunks, blas, fwd, _ = _plan(B, T, transition, table, threads)

    def run(b0, b1):
        _log_prob(tokens[b0:b1], initial, transition, table, blas, fwd, logs[b0:b1], fzero[b0:b1])

    _run(chunks, run)
    return logs, fzero


def start_backward(tokens, transition, table, threads: int = 1):
    """The normalised backward message to a mask placed before the tokens, (B, m)
    (:func:`hmmtune.models.inference.hmm_start_backward`), and per sequence the position
    ``t`` whose likelihood column made the message to ``t - 1`` vanish (``t = 0``: the
    message to the mask itself), or -1. ``threads`` as in :func:`smooth`."""
    B, T = tokens.shape
    m = transition.shape[0]
    beta = np.full((B, m), 1.0 / m, table.dtype)
    bzero = np.full(B, -1, np.int64)
    chunks, blas, _, bwd = _plan(B, T, transition, table, threads)

    def run(b0, b1):
        _start_backward(tokens[b0:b1], transition, table, blas, bwd, beta[b0:b1], bzero[b0:b1])

    _run(chunks, run)
    return beta, bzero
