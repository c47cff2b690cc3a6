"""Pure, batched exact-inference functions for discrete hidden Markov models.

Conventions (docs/theory.md, "Conventions"): ``initial`` (m,) is the law of the state at the
FIRST position, ``transition`` (m, m) is row-stochastic with
``transition[i, j] = P(H_{t+1}=j | H_t=i)``, and ``likelihoods`` (B, T, m) holds
``P(x_t | H_t = h)`` for every sequence, position and state (see
:func:`emission_likelihoods`).

All recursions are *scaled*: every message is renormalised at every step and the
log normalisers are accumulated, so sequences of 100,000 tokens stay finite in
float64 and float32. No Python loop runs over sequences: the only loop is over
time, and each step is a batched ``(B, m) x (m, m)`` product plus elementwise work.

A sequence that has probability zero under the model raises
:class:`ZeroProbabilityError` naming its index and the first impossible position;
no function here returns NaN. :func:`hmm_forward` and :func:`hmm_backward_scaled`
accept ``allow_zero=True`` instead (used by the memory-augmented HMM, where one memory
configuration may be unable to generate a sequence that others generate): such a
sequence gets ``log_prob = -inf`` and zero messages from the first impossible
position on.
"""

from __future__ import annotations

import ctypes
import math
import sys
from typing import NamedTuple

import torch
from torch import Tensor

__all__ = [
    "ZeroProbabilityError",
    "ForwardResult",
    "BackwardResult",
    "emission_likelihoods",
    "hmm_forward",
    "hmm_backward",
    "hmm_backward_scaled",
    "hmm_posterior",
    "hmm_masked_posterior",
    "hmm_start_backward",
    "TokenLikelihoods",
]


class ZeroProbabilityError(ValueError):
    """A sequence has probability zero under the model.

    Attributes:
        index: position of the offending sequence in the batch.
        position: first time step at which the sequence became impossible.
    """

    def __init__(self, message: str, index: int, position: int | None = None):
        super().__init__(message)
        self.index = index
        self.position = position


class ForwardResult(NamedTuple):
    """Output of :func:`hmm_forward`.

    Attributes:
        log_prob: (B,) ``log P(x_{0:T-1})``.
        predicted: (B, T, m) ``P(H_t | x_{0:t-1})`` (``predicted[:, 0] = initial``).
        filtered: (B, T, m) ``P(H_t | x_{0:t})``.
    """

    log_prob: Tensor
    predicted: Tensor
    filtered: Tensor


def emission_likelihoods(emission: Tensor, tokens: Tensor) -> Tensor:
    """Likelihood of each observed token under each state.

    Args:
        emission: (m, n) row-stochastic emission matrix, ``emission[h, x] = P(x | h)``.
        tokens: (B, T) integer tensor with values in ``[0, n)``.

    Returns:
        (B, T, m) tensor ``L[b, t, h] = emission[h, tokens[b, t]]``.
    """
    return emission.T[tokens]


def _raise_zero(norms: Tensor, what: str) -> None:
    """Raise on the first sequence whose normaliser vanished (norms: (T, B))."""
    bad = ~(norms > 0)  # catches 0 and NaN
    if bool(bad.any()):
        seq_bad = bad.any(0)
        b = int(torch.nonzero(seq_bad)[0, 0])
        t = int(torch.nonzero(bad[:, b])[0, 0])
        raise ZeroProbabilityError(
            f"sequence {b} has probability zero under the model ({what}): "
            f"the token at position {t} cannot follow positions 0..{t - 1}"
            if t > 0
            else f"sequence {b} has probability zero under the model ({what}): "
            f"its first token cannot be emitted",
            index=b,
            position=t,
        )


def hmm_forward(
    initial: Tensor, transition: Tensor, likelihoods: Tensor, *, allow_zero: bool = False
) -> ForwardResult:
    """Scaled forward pass (filtering), docs/theory.md, "Conventions".

    Args:
        initial: (m,) law of the first state.
        transition: (m, m) row-stochastic transition matrix.
        likelihoods: (B, T, m) emission likelihoods of the observed tokens.
        allow_zero: keyword only. If True, a sequence of probability zero does not
            raise: its ``log_prob`` is ``-inf`` and its ``filtered`` (from the first
            impossible position on) and ``predicted`` (after it) rows are zero vectors.

    Returns:
        :class:`ForwardResult` with ``log_prob`` (B,), ``predicted`` and ``filtered``
        (B, T, m).

    Raises:
        ZeroProbabilityError: a sequence has probability zero (unless ``allow_zero``).
    """
    B, T, m = likelihoods.shape
    L = likelihoods.transpose(0, 1).contiguous()  # (T, B, m)
    pred = torch.empty_like(L)
    filt = torch.empty_like(L)
    norms = torch.empty(T, B, 1, dtype=L.dtype, device=L.device)
    one = torch.ones((), dtype=L.dtype, device=L.device)
    pred[0] = initial
    for t in range(T):
        ft = filt[t]
        torch.mul(pred[t], L[t], out=ft)
        torch.sum(ft, -1, keepdim=True, out=norms[t])
        if allow_zero:
            ft.div_(torch.where(norms[t] > 0, norms[t], one))
        else:
            ft.div_(norms[t])
        if t + 1 < T:
            torch.matmul(ft, transition, out=pred[t + 1])
    norms = norms.squeeze(-1)
    if not allow_zero:
        _raise_zero(norms, "forward pass")
    log_prob = norms.log().sum(0)
    return ForwardResult(log_prob, pred.transpose(0, 1), filt.transpose(0, 1))


class BackwardResult(NamedTuple):
    """Output of :func:`hmm_backward_scaled`.

    Attributes:
        beta: (B, T, m) normalised backward messages (rows sum to one, or are zero
            for an impossible suffix when ``allow_zero``).
        log_scale: (B, T) the log factors that undo the normalisation:
            ``P(x_{t+1:T-1} | H_t = h) = exp(log_scale[b, t]) * beta[b, t, h]``
            (``-inf`` where the suffix is impossible).
    """

    beta: Tensor
    log_scale: Tensor


def _backward_loop(transition: Tensor, likelihoods: Tensor, allow_zero: bool) -> tuple[Tensor, Tensor]:
    """Shared loop of :func:`hmm_backward` and :func:`hmm_backward_scaled`.

    Returns ``beta`` (T, B, m) and ``norms`` (T, B, 1) with ``norms[t]`` the factor that
    normalised ``beta[t]`` (1 at ``T - 1``).
    """
    B, T, m = likelihoods.shape
    L = likelihoods.transpose(0, 1).contiguous()
    beta = torch.empty_like(L)
    norms = torch.ones(T, B, 1, dtype=L.dtype, device=L.device)
    one = torch.ones((), dtype=L.dtype, device=L.device)
    beta[T - 1] = 1.0 / m
    At = transition.T
    tmp = torch.empty_like(L[0])
    for t in range(T - 1, 0, -1):
        torch.mul(L[t], beta[t], out=tmp)
        bt = beta[t - 1]
        torch.matmul(tmp, At, out=bt)
        torch.sum(bt, -1, keepdim=True, out=norms[t - 1])
        if allow_zero:
            bt.div_(torch.where(norms[t - 1] > 0, norms[t - 1], one))
        else:
            bt.div_(norms[t - 1])
    return beta, norms


def hmm_backward(transition: Tensor, likelihoods: Tensor) -> Tensor:
    """Scaled backward messages, docs/theory.md, "Conventions".

    ``beta_{T-1} = 1`` and ``beta_{t-1} = transition @ (L_t * beta_t)``, each renormalised
    to sum to one (a positive rescaling per (sequence, position), which cancels in
    every posterior).

    Args:
        transition: (m, m) row-stochastic transition matrix.
        likelihoods: (B, T, m) emission likelihoods.

    Returns:
        (B, T, m) tensor proportional (along the last axis) to ``P(x_{t+1:T-1} | H_t)``.

    Raises:
        ZeroProbabilityError: no state can generate the rest of some sequence.
    """
    beta, norms = _backward_loop(transition, likelihoods, False)
    _raise_zero(norms.squeeze(-1), "backward pass")
    return beta.transpose(0, 1)


def hmm_backward_scaled(transition: Tensor, likelihoods: Tensor, *, allow_zero: bool = False) -> BackwardResult:
    """Backward messages with the scale factors that :func:`hmm_backward` discards.

    Args:
        transition: (m, m) row-stochastic transition matrix.
        likelihoods: (B, T, m) emission likelihoods.
        allow_zero: keyword only. If True, an impossible suffix does not raise: its
            messages are zero vectors and its ``log_scale`` is ``-inf``.

    Returns:
        :class:`BackwardResult` ``(beta, log_scale)``; ``beta`` equals
        :func:`hmm_backward`'s output, and
        ``P(x_{t+1:T-1} | H_t = h) = exp(log_scale[b, t]) * beta[b, t, h]``.

    Raises:
        ZeroProbabilityError: no state can generate the rest of some sequence (unless
            ``allow_zero``).
    """
    B, T, m = likelihoods.shape
    beta, norms = _backward_loop(transition, likelihoods, allow_zero)
    norms = norms.squeeze(-1)
    if not allow_zero:
        _raise_zero(norms, "backward pass")
    # beta_true[t] = m * beta[t] * prod_{t' >= t} norms[t'] (norms[T-1] = 1).
    log_scale = torch.flip(torch.cumsum(torch.flip(norms.log(), (0,)), 0), (0,)) + math.log(m)
    return BackwardResult(beta.transpose(0, 1), log_scale.transpose(0, 1))


def _normalise(x: Tensor) -> Tensor:
    return x / x.sum(-1, keepdim=True)


class TokenLikelihoods(NamedTuple):
    """Observed tokens together with the emission matrix, read lazily.

    Accepted as ``likelihoods`` by :func:`hmm_posterior`, :func:`hmm_masked_posterior`
    and :func:`hmm_start_backward`: they then gather ``emission[:, tokens[:, t]]`` one
    position at a time instead of reading a (B, T, m) tensor, which saves building
    that tensor (time and memory). The results are the same as with
    ``emission_likelihoods(emission, tokens)``.

    Attributes:
        emission: (m, n) emission matrix.
        tokens: (B, T) integer tensor with values in ``[0, n)``.
    """

    emission: Tensor
    tokens: Tensor

    @property
    def shape(self) -> tuple[int, int, int]:
        """(B, T, m), the shape of the likelihood tensor this stands for."""
        return (*self.tokens.shape, self.emission.shape[0])


class _Columns:
    """Per-position likelihoods ``L[:, t]`` (B, m) from a (B, T, m) tensor or a
    :class:`TokenLikelihoods`. A returned column may be overwritten by the next call."""

    def __init__(self, likelihoods):
        if isinstance(likelihoods, TokenLikelihoods):
            emission, tokens = likelihoods
            B, T = tokens.shape
            m = emission.shape[0]
            self._table = emission.T.contiguous()  # (n, m)
            self._tokens = tokens.T.contiguous()  # (T, B)
            self._buf = torch.empty(B, m, dtype=emission.dtype, device=emission.device)
            self._tensor = None
            self.dtype, self.device = emission.dtype, emission.device
        else:
            B, T, m = likelihoods.shape
            self._tensor = likelihoods
            self.dtype, self.device = likelihoods.dtype, likelihoods.device
        self.shape = (B, T, m)

    def __call__(self, t: int) -> Tensor:
        if self._tensor is not None:
            return self._tensor[:, t]
        return torch.index_select(self._table, 0, self._tokens[t], out=self._buf)


#: Ask Linux for transparent huge pages on the large output buffer of the fused passes
#: (see :func:`_empty_large`). Set to False to turn it off; results do not depend on it.
USE_HUGE_PAGES = True
_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14  # linux/mman.h
_madvise = None


def _empty_large(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.empty`` for a large buffer that is about to be filled position by position.

    A fresh buffer of many MiB is mapped lazily by the kernel, one 4 KiB page fault at a
    time as the time loop first writes it; for a (2000, 256, 32) float64 posterior those
    faults cost about as much as the whole backward pass. On Linux, where transparent huge
    pages are enabled for ``madvise`` regions, this marks the buffer's 2 MiB-aligned part
    with ``MADV_HUGEPAGE`` before it is touched, which makes the faults 512 times fewer.
    It changes no value, and silently does nothing where it does not apply (other systems,
    GPUs, small buffers, ``USE_HUGE_PAGES = False``).
    """
    global _madvise
    out = torch.empty(shape, dtype=dtype, device=device)
    nbytes = out.numel() * out.element_size()
    if _madvise is False or not (
        USE_HUGE_PAGES and out.device.type == "cpu" and nbytes >= 4 * _HUGE_PAGE and sys.platform.startswith("linux")
    ):
        return out
    try:
        if _madvise is None:
            fn = ctypes.CDLL(None, use_errno=True).madvise
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            fn.restype = ctypes.c_int
            _madvise = fn
        start = -(-out.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
        end = (out.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
        if end > start:
            _madvise(start, end - start, _MADV_HUGEPAGE)  # advisory: the result is ignored
    except (OSError, AttributeError, TypeError):
        _madvise = False  # not available here: never try again
    return out


def _smooth(initial: Tensor, transition: Tensor, likelihoods, masked: bool) -> Tensor:
    """Fused forward-backward for :func:`hmm_posterior` / :func:`hmm_masked_posterior`.

    Performs exactly the arithmetic of :func:`hmm_forward`, :func:`hmm_backward` and
    the final normalisation, but keeps one (T, B, m) buffer instead of five: the forward
    pass writes the filtered (or predicted) rows into the output, the backward pass
    keeps only the current message and multiplies it in place. Reads each likelihood
    column directly (no transposed copy), so peak memory is about one output tensor.
    """
    col = _Columns(likelihoods)
    B, T, m = col.shape
    opts = dict(dtype=col.dtype, device=col.device)
    out = _empty_large((T, B, m), **opts)
    norms = torch.empty(T, B, 1, **opts)
    pred = torch.empty(B, m, **opts)  # a fresh buffer: it is overwritten in place
    pred.copy_(initial)
    tmp = torch.empty(B, m, **opts)
    for t in range(T):
        lt = col(t)
        if masked:
            out[t].copy_(pred)
            torch.mul(pred, lt, out=tmp)
            torch.sum(tmp, -1, keepdim=True, out=norms[t])
            if t + 1 < T:
                tmp.div_(norms[t])
                torch.matmul(tmp, transition, out=pred)
        else:
            ft = out[t]
            torch.mul(pred, lt, out=ft)
            torch.sum(ft, -1, keepdim=True, out=norms[t])
            ft.div_(norms[t])
            if t + 1 < T:
                torch.matmul(ft, transition, out=pred)
    _raise_zero(norms.squeeze(-1), "forward pass")

    bnorms = torch.ones(T, B, 1, **opts)
    beta = torch.full((B, m), 1.0 / m, **opts)
    pnorm = torch.empty(B, 1, **opts)
    At = transition.T
    for t in range(T - 1, -1, -1):
        ot = out[t]
        ot.mul_(beta)
        torch.sum(ot, -1, keepdim=True, out=pnorm)
        ot.div_(pnorm)
        if t > 0:
            torch.mul(col(t), beta, out=tmp)
            torch.matmul(tmp, At, out=beta)
            torch.sum(beta, -1, keepdim=True, out=bnorms[t - 1])
            beta.div_(bnorms[t - 1])
    _raise_zero(bnorms.squeeze(-1), "backward pass")
    return out.transpose(0, 1)


def hmm_posterior(initial: Tensor, transition: Tensor, likelihoods) -> Tensor:
    """Smoothed posteriors ``P(H_t | x_{0:T-1})``.

    Proportional to ``filtered_t * beta_t`` (:func:`hmm_forward`, :func:`hmm_backward`),
    computed in one fused pass that holds a single (B, T, m) buffer.

    Args:
        initial: (m,); transition: (m, m); likelihoods: (B, T, m) tensor or
            :class:`TokenLikelihoods`.

    Returns:
        (B, T, m), each row on the simplex.

    Raises:
        ZeroProbabilityError: a sequence has probability zero.
    """
    return _smooth(initial, transition, likelihoods, masked=False)


def hmm_masked_posterior(initial: Tensor, transition: Tensor, likelihoods) -> Tensor:
    """Leave-one-out posteriors ``P(H_t | x with position t left out)`` (docs/theory.md, "The perfect masked LM").

    Proportional to ``predicted_t * beta_t``: the forward prediction from
    ``x_{0:t-1}`` times the backward message from ``x_{t+1:T-1}``; the emission at t is
    left out.

    Args:
        initial: (m,) law of the first state (use ``initial @ transition`` for a
            downstream input whose position 0 is a mask, see :class:`hmmtune.OracleMLM`).
        transition: (m, m); likelihoods: (B, T, m) tensor or :class:`TokenLikelihoods`.

    Returns:
        (B, T, m), each row on the simplex.

    Raises:
        ZeroProbabilityError: a sequence has probability zero.
    """
    return _smooth(initial, transition, likelihoods, masked=True)


def hmm_start_backward(transition: Tensor, likelihoods) -> Tensor:
    """Backward message to a mask placed before the observed tokens (docs/theory.md, "The perfect masked LM").

    For observed ``x_1..x_T`` (stored at indices 0..T-1 of ``likelihoods``) this is
    ``beta_0 = transition @ (L_1 * beta_1)``, normalised: ``beta_0[h]`` is proportional to
    ``P(x_1..x_T | H_0 = h)``. It does not depend on the law of ``H_0``, so it is
    computed once per input and reused for every prompt. Only the current message is
    kept (memory (B, m), not (B, T, m)).

    Args:
        transition: (m, m); likelihoods: (B, T, m) tensor or :class:`TokenLikelihoods`.

    Returns:
        (B, m) normalised ``beta_0``.
    """
    col = _Columns(likelihoods)
    B, T, m = col.shape
    opts = dict(dtype=col.dtype, device=col.device)
    norms = torch.ones(T, B, 1, **opts)
    beta = torch.full((B, m), 1.0 / m, **opts)
    tmp = torch.empty(B, m, **opts)
    At = transition.T
    for t in range(T - 1, 0, -1):
        torch.mul(col(t), beta, out=tmp)
        torch.matmul(tmp, At, out=beta)
        torch.sum(beta, -1, keepdim=True, out=norms[t - 1])
        beta.div_(norms[t - 1])
    _raise_zero(norms.squeeze(-1), "backward pass")
    b0 = (col(0) * beta) @ At
    total = b0.sum(-1)
    _raise_zero(total[None, :], "backward pass to the mask")
    return b0 / total[:, None]
