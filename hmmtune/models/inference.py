"""Pure, batched exact-inference functions for discrete hidden Markov models.

Conventions (THEORY.md section 1): ``initial`` (m,) is the law of the state at the
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

import math
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
    """Scaled forward pass (filtering), THEORY.md section 1.

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
    """Scaled backward messages, THEORY.md section 1.

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


def hmm_posterior(initial: Tensor, transition: Tensor, likelihoods: Tensor) -> Tensor:
    """Smoothed posteriors ``P(H_t | x_{0:T-1})``.

    Args:
        initial: (m,); transition: (m, m); likelihoods: (B, T, m).

    Returns:
        (B, T, m), each row on the simplex.
    """
    fwd = hmm_forward(initial, transition, likelihoods)
    beta = hmm_backward(transition, likelihoods)
    return _normalise(fwd.filtered * beta)


def hmm_masked_posterior(initial: Tensor, transition: Tensor, likelihoods: Tensor) -> Tensor:
    """Leave-one-out posteriors ``P(H_t | x with position t left out)`` (THEORY.md 2).

    Proportional to ``predicted_t * beta_t``: the forward prediction from
    ``x_{0:t-1}`` times the backward message from ``x_{t+1:T-1}``; the emission at t is
    left out.

    Args:
        initial: (m,) law of the first state (use ``initial @ transition`` for a
            downstream input whose position 0 is a mask, see :class:`hmmtune.OracleMLM`).
        transition: (m, m); likelihoods: (B, T, m).

    Returns:
        (B, T, m), each row on the simplex.
    """
    fwd = hmm_forward(initial, transition, likelihoods)
    beta = hmm_backward(transition, likelihoods)
    return _normalise(fwd.predicted * beta)


def hmm_start_backward(transition: Tensor, likelihoods: Tensor) -> Tensor:
    """Backward message to a mask placed before the observed tokens (THEORY.md 2).

    For observed ``x_1..x_T`` (stored at indices 0..T-1 of ``likelihoods``) this is
    ``beta_0 = transition @ (L_1 * beta_1)``, normalised: ``beta_0[h]`` is proportional to
    ``P(x_1..x_T | H_0 = h)``. It does not depend on the law of ``H_0``, so it is
    computed once per input and reused for every prompt.

    Args:
        transition: (m, m); likelihoods: (B, T, m).

    Returns:
        (B, m) normalised ``beta_0``.
    """
    beta = hmm_backward(transition, likelihoods)
    b0 = (likelihoods[:, 0] * beta[:, 0]) @ transition.T
    norms = b0.sum(-1)
    _raise_zero(norms[None, :], "backward pass to the mask")
    return b0 / norms[:, None]
