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

For small ``m`` the step ``(B, m) x (m, m)`` is written as loops; from :data:`BLAS_FROM`
states on it is one BLAS product over the whole batch.

This module imports numba at its top: :mod:`hmmtune.models.inference` imports it only when
a call takes the compiled path, so ``import hmmtune`` stays light. Compiled code is cached
on disk (numba's ``cache=True``): only the first process on a machine compiles (seconds);
later processes load it (the one-off cost per process is measured in docs/benchmarks.md).
"""

from __future__ import annotations

import numba
import numpy as np

__all__ = ["BLAS_FROM", "smooth", "log_prob", "start_backward"]

#: From this many states on, the step is one BLAS product over the batch.
BLAS_FROM = 16

_njit = numba.njit(cache=True, nogil=True)



@_njit
def _propagate(src, mat, dst, small):
    # dst = src @ mat for (B, m) x (m, m)
    if small:
        B, m = src.shape
        for b in range(B):
            for j in range(m):
                acc = src[b, 0] * mat[0, j]
                for i in range(1, m):
                    acc += src[b, i] * mat[i, j]
                dst[b, j] = acc
    else:
        np.dot(src, mat, dst)

@_njit
def _forward_rows(tokens, table, t, pred, filt, logs, carry, first_zero):
    # filt[b] = pred[b] * table[tokens[b, t]] normalised; returns nothing
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


@_njit
def _backward_step(tokens, table, t, beta, tmp, at, small, first_zero):
    # beta <- transition @ (L_t * beta), normalised (the message to position t - 1)
    B, m = beta.shape
    for b in range(B):
        row = table[tokens[b, t]]
        for j in range(m):
            tmp[b, j] = row[j] * beta[b, j]
    _propagate(tmp, at, beta, small)
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


@_njit
def _smooth(tokens, initial, transition, table, masked):
    B, T = tokens.shape
    m = initial.shape[0]
    small = m < BLAS_FROM
    dt = table.dtype
    out = np.empty((T, B, m), dt)
    pred = np.empty((B, m), dt)
    filt = np.empty((B, m), dt)
    logs = np.zeros(B, np.float64)
    carry = np.zeros(B, np.float64)
    fzero = np.full(B, -1, np.int64)
    bzero = np.full(B, -1, np.int64)
    for b in range(B):
        pred[b] = initial
    for t in range(T):
        if masked:
            out[t] = pred
        _forward_rows(tokens, table, t, pred, filt, logs, carry, fzero)
        if not masked:
            out[t] = filt
        if t + 1 < T:
            _propagate(filt, transition, pred, small)
    at = np.ascontiguousarray(transition.T)
    beta = np.full((B, m), 1.0 / m, dt)
    tmp = np.empty((B, m), dt)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            s = 0.0
            for j in range(m):
                v = out[t, b, j] * beta[b, j]
                out[t, b, j] = v
                s += v
            if s > 0:
                inv = 1.0 / s
                for j in range(m):
                    out[t, b, j] *= inv
        if t > 0:
            _backward_step(tokens, table, t, beta, tmp, at, small, bzero)
    return out, fzero, bzero

@_njit
def _log_prob(tokens, initial, transition, table):
    B, T = tokens.shape
    m = initial.shape[0]
    small = m < BLAS_FROM
    dt = table.dtype
    pred = np.empty((B, m), dt)
    filt = np.empty((B, m), dt)
    logs = np.zeros(B, np.float64)
    carry = np.zeros(B, np.float64)
    fzero = np.full(B, -1, np.int64)
    for b in range(B):
        pred[b] = initial
    for t in range(T):
        _forward_rows(tokens, table, t, pred, filt, logs, carry, fzero)
        if t + 1 < T:
            _propagate(filt, transition, pred, small)
    return logs, fzero

@_njit
def _start_backward(tokens, transition, table):
    B, T = tokens.shape
    m = transition.shape[0]
    small = m < BLAS_FROM
    dt = table.dtype
    at = np.ascontiguousarray(transition.T)
    beta = np.full((B, m), 1.0 / m, dt)
    tmp = np.empty((B, m), dt)
    bzero = np.full(B, -1, np.int64)
    for t in range(T - 1, -1, -1):
        # t > 0: the message to position t - 1; t == 0: the message to the mask before it
        _backward_step(tokens, table, t, beta, tmp, at, small, bzero)
    return beta, bzero


def smooth(tokens, initial, transition, table, masked: bool):
    """Smoothed (``masked=False``) or leave-one-out (``masked=True``) posteriors.

    Returns ``(out, forward_zero, backward_zero)``: ``out`` (T, B, m) with rows on the
    simplex (zero rows for an impossible sequence); ``forward_zero`` (B,) the first
    position whose forward normaliser vanished, or -1; ``backward_zero`` (B,) the position
    ``t >= 1`` whose likelihood column made the backward message to ``t - 1`` vanish, or -1.
    """
    return _smooth(tokens, initial, transition, table, bool(masked))


def log_prob(tokens, initial, transition, table):
    """``log P(x)`` (B,) float64 (``-inf`` for an impossible sequence) and the first
    impossible position (B,) (-1 for a possible sequence)."""
    return _log_prob(tokens, initial, transition, table)


def start_backward(tokens, transition, table):
    """The normalised backward message to a mask placed before the tokens, (B, m)
    (:func:`hmmtune.models.inference.hmm_start_backward`), and per sequence the position
    ``t`` whose likelihood column made the message to ``t - 1`` vanish (``t = 0``: the
    message to the mask itself), or -1."""
    return _start_backward(tokens, transition, table)
