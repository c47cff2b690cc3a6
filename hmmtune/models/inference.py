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

Both models' inference lives here as pure functions of arrays: the HMM's (``hmm_*``) and
the memory-augmented HMM's, batched over memory configurations (``memory_*``,
docs/theory.md, "Memory-augmented HMMs"); :class:`hmmtune.HMM` and
:class:`hmmtune.MemoryHMM` validate, hold parameters and delegate. :func:`chunked` evaluates
a batch in chunks. Platform tuning (huge pages, the default chunk size) is in
:mod:`hmmtune.models.settings`, off the math path.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

from ..common import is_tensor, torch
from . import kernel_plan, settings

if TYPE_CHECKING:  # annotations only: torch is imported on first use (common.torch)
    from torch import Tensor

__all__ = [
    "ZeroProbabilityError",
    "ForwardResult",
    "BackwardResult",
    "MaskMessages",
    "TokenLikelihoods",
    "emission_likelihoods",
    "hmm_forward",
    "hmm_backward",
    "hmm_backward_scaled",
    "hmm_posterior",
    "hmm_loo_posterior",
    "hmm_start_backward",
    "hmm_log_prob",
    "use_time_parallel",
    "use_compiled",
    "prepare_compiled",
    "compiled_ready",
    "chunked",
    "ConfigLikelihoods",
    "MemoryForwardResult",
    "MemoryPosteriors",
    "memory_log_likelihood",
    "memory_log_prob",
    "memory_forward",
    "memory_backward",
    "memory_posteriors",
    "memory_cell_marginals",
    "memory_emission_marginals",
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

    def reindexed(self, offset: int) -> "ZeroProbabilityError":
        """The same error for a batch in which this one's batch starts at ``offset``.

        The index (and the ``sequence i`` of the message) is shifted by ``offset``: used
        wherever a batch is evaluated in chunks, or one sequence is re-run alone.
        """
        idx = self.index + offset
        msg = str(self).replace(f"sequence {self.index} ", f"sequence {idx} ", 1)
        return type(self)(msg, idx, self.position)


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
    initial: Tensor,
    transition: Tensor,
    likelihoods: Tensor,
    *,
    allow_zero: bool = False,
    parallel: bool | None = None,
) -> ForwardResult:
    """Scaled forward pass (filtering), docs/theory.md, "Conventions".

    Args:
        initial: (m,) law of the first state.
        transition: (m, m) row-stochastic transition matrix.
        likelihoods: (B, T, m) emission likelihoods of the observed tokens.
        allow_zero: keyword only. If True, a sequence of probability zero does not
            raise: its ``log_prob`` is ``-inf`` and its ``filtered`` (from the first
            impossible position on) and ``predicted`` (after it) rows are zero vectors.
        parallel: keyword only. ``None`` (default): the cost rule
            :func:`use_time_parallel` chooses between the sequential and the
            time-parallel path; ``True`` / ``False`` force one. Same results either way.

    Returns:
        :class:`ForwardResult` with ``log_prob`` (B,), ``predicted`` and ``filtered``
        (B, T, m).

    Raises:
        ZeroProbabilityError: a sequence has probability zero (unless ``allow_zero``).
    """
    B, T, m = likelihoods.shape
    if T > 1 and _parallel(parallel, likelihoods.shape):
        res = _forward_parallel(initial, transition, likelihoods, allow_zero)
        if res is not None:
            return res
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


class MaskMessages(NamedTuple):
    """Backward messages of downstream inputs to a mask placed before them, computed once
    per input and reused for every prompt (docs/theory.md, "The perfect masked LM").

    ``S`` is the shape of the mask's hidden state: ``(m,)`` for an HMM, ``(C, K)`` (memory
    configuration, chain state) for a memory HMM.

    Attributes:
        backward: (B, *S), normalised over the last axis, proportional to
            ``P(x_1..x_T | mask state)``.
        log_scale: (B, *S[:-1]) with ``P(x_1..x_T | mask state) = exp(log_scale) *
            backward`` up to a factor per input; None (an HMM) means zeros.
    """

    backward: Tensor
    log_scale: Tensor | None = None


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


def _backward_loop(
    transition: Tensor, likelihoods: Tensor, allow_zero: bool, parallel: bool | None = None
) -> tuple[Tensor, Tensor]:
    """Shared loop of :func:`hmm_backward` and :func:`hmm_backward_scaled`.

    Returns ``beta`` (T, B, m) and ``norms`` (T, B, 1) with ``norms[t]`` the factor that
    normalised ``beta[t]`` (1 at ``T - 1``).
    """
    B, T, m = likelihoods.shape
    if T > 1 and _parallel(parallel, likelihoods.shape):
        bl = _Blocks(likelihoods)
        X, ls = _block_products(bl, None, transition)
        ends = _stitch_backward(X, ls)
        del X
        beta = bl.empty()
        norms = _backward_rerun(bl, transition, ends, beta, None, allow_zero)
        norms = bl.positions(norms)
        if allow_zero or not _any_zero(norms):
            return bl.positions(beta), norms
        # an impossible sequence: the sequential loop below produces the reference error
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


def hmm_backward(transition: Tensor, likelihoods: Tensor, *, parallel: bool | None = None) -> Tensor:
    """Scaled backward messages, docs/theory.md, "Conventions".

    ``beta_{T-1} = 1`` and ``beta_{t-1} = transition @ (L_t * beta_t)``, each renormalised
    to sum to one (a positive rescaling per (sequence, position), which cancels in
    every posterior).

    Args:
        transition: (m, m) row-stochastic transition matrix.
        likelihoods: (B, T, m) emission likelihoods.
        parallel: keyword only; see :func:`hmm_forward`.

    Returns:
        (B, T, m) tensor proportional (along the last axis) to ``P(x_{t+1:T-1} | H_t)``.

    Raises:
        ZeroProbabilityError: no state can generate the rest of some sequence.
    """
    beta, norms = _backward_loop(transition, likelihoods, False, parallel)
    _raise_zero(norms.squeeze(-1), "backward pass")
    return beta.transpose(0, 1)


def hmm_backward_scaled(
    transition: Tensor, likelihoods: Tensor, *, allow_zero: bool = False, parallel: bool | None = None
) -> BackwardResult:
    """Backward messages with the scale factors that :func:`hmm_backward` discards.

    Args:
        transition: (m, m) row-stochastic transition matrix.
        likelihoods: (B, T, m) emission likelihoods.
        allow_zero: keyword only. If True, an impossible suffix does not raise: its
            messages are zero vectors and its ``log_scale`` is ``-inf``.
        parallel: keyword only; see :func:`hmm_forward`.

    Returns:
        :class:`BackwardResult` ``(beta, log_scale)``; ``beta`` equals
        :func:`hmm_backward`'s output, and
        ``P(x_{t+1:T-1} | H_t = h) = exp(log_scale[b, t]) * beta[b, t, h]``.

    Raises:
        ZeroProbabilityError: no state can generate the rest of some sequence (unless
            ``allow_zero``).
    """
    B, T, m = likelihoods.shape
    beta, norms = _backward_loop(transition, likelihoods, allow_zero, parallel)
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

    Accepted as ``likelihoods`` by :func:`hmm_posterior`, :func:`hmm_loo_posterior`
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


# ------------------------------------------------------------------ compiled path
#: The compiled path (numba machine code, :mod:`hmmtune.models.kernels`) for posteriors,
#: leave-one-out posteriors, ``log_prob`` and the backward message to a mask: ``None``
#: (default) lets :func:`use_compiled` decide; ``True`` takes it wherever it applies (CPU,
#: float32 / float64, no gradient asked); ``False`` never. Same results to float rounding.
COMPILED: bool | None = None

#: Cost-rule constants of the compiled path (seconds; measured by
#: ``bench/calibrate_paths.py`` on a 2-core x86 machine, docs/inference.md, "Compiled
#: kernels"). ``COST_KERNEL_STEP``: fixed cost of one step of a pass; ``COST_KERNEL_MAC``:
#: one multiply-add of the step's product written as loops (``m < kernel_plan.BLAS_FROM`` or one
#: sequence),
#: ``COST_KERNEL_LOOP_ELEM`` the rest of their work per (sequence, position, state);
#: ``COST_KERNEL_BLAS_MAC``: the same as one BLAS product; ``COST_KERNEL_ELEM``: the
#: elementwise work per (sequence, position, state); ``COST_KERNEL_SPARSE_MAC``: one
#: multiply-add of the CSR form's step (measured on the large checks' models, 5 successors
#: per state, docs/benchmarks-check.md); ``COST_KERNEL_SETUP``: the one-off cost
#: per process of importing numba and loading the machine code from numba's disk cache;
#: ``COST_KERNEL_MIN``: calls whose torch estimate is below this stay on torch (nothing a
#: user would notice to gain).
COST_KERNEL_STEP = 0.034e-6
COST_KERNEL_MAC = 0.031e-9
COST_KERNEL_LOOP_ELEM = 6.1e-9
COST_KERNEL_BLAS_MAC = 0.029e-9
COST_KERNEL_ELEM = 2.2e-9
COST_KERNEL_SPARSE_MAC = 2e-9
COST_KERNEL_SETUP = 0.47
COST_KERNEL_MIN = 2e-3

_kernels = None  # the loaded module
_kernels_missing = False
_saved_so_far = 0.0  # estimated seconds the compiled path would have saved in this process


def compiled_ready() -> bool:
    """Whether the compiled kernels are loaded in this process (so they cost no setup)."""
    return _kernels is not None


def prepare_compiled() -> bool:
    """Import numba and load (or, the first time on a machine, compile) the kernels now,
    so that the cost rule no longer charges their one-off setup. Returns False where numba
    is not installed. Long-running processes (benchmarks, sweeps) may call it once."""
    global _kernels, _kernels_missing
    if _kernels is None and not _kernels_missing:
        try:
            from . import kernels
        except ImportError:
            _kernels_missing = True
            return False
        _kernels = kernels
    return _kernels is not None


def kernel_sparse(m: int, nnz: int | None) -> bool:
    """Whether the kernels keep a transition with ``nnz`` nonzero entries in CSR form."""
    return kernel_plan.step_form(2, m, nnz) == "sparse"


def kernel_split(B: int, T: int, m: int, nnz: int | None = None) -> int:
    """How many threads the compiled kernels split ``B`` sequences over
    (:func:`hmmtune.models.kernel_plan.split` with torch's thread count)."""
    return len(kernel_plan.split(B, T, m, torch.get_num_threads(), kernel_plan.step_form(B, m, nnz)))


def _estimates(B: int, T: int, m: int, nnz: int | None = None) -> tuple[float, float, float]:
    """Estimated seconds of one forward-backward on the (sequential, time-parallel,
    compiled) paths (the compiled estimate without its setup); ``nnz``: the transition's
    nonzero entries, where known."""
    seq = 2 * T * (COST_STEP + B * (COST_SEQ_MAC * m * m + COST_SEQ_ELEM * m))
    par = math.inf if T < 64 else 10 * math.sqrt(T) * COST_STEP + B * T * (COST_PAR_MAC * m**3 + (2 * COST_SEQ_MAC + COST_PAR_ELEM) * m * m)
    if kernel_sparse(m, nnz):  # CSR: B nnz multiply-adds per step, threads over sequences
        comp = 2 * T * B * (COST_KERNEL_SPARSE_MAC * nnz + COST_KERNEL_LOOP_ELEM * m) / kernel_split(B, T, m, nnz)
    elif kernel_plan.step_form(B, m) == "loops":
        comp = 2 * T * B * (COST_KERNEL_MAC * m * m + COST_KERNEL_LOOP_ELEM * m) / kernel_split(B, T, m)
    else:  # one BLAS product per step
        comp = 2 * T * (COST_KERNEL_STEP + B * (COST_KERNEL_BLAS_MAC * m * m + COST_KERNEL_ELEM * m))
    return seq, par, comp


def use_compiled(B: int, T: int, m: int, nnz: int | None = None) -> bool:
    """The cost rule of the compiled path: whether a call on ``B`` sequences of ``T``
    tokens with ``m`` states (on the CPU, no gradient) takes it.

    It compares the estimates of :func:`_estimates`: the torch paths (see
    :func:`use_time_parallel`) against ``2 B T (COST_KERNEL_MAC m^2 + COST_KERNEL_LOOP_ELEM m) / P``
    (loops, ``m < 32`` or ``B = 1``; ``P`` threads, :func:`kernel_split`), ``2 B T
    (COST_KERNEL_SPARSE_MAC nnz + COST_KERNEL_LOOP_ELEM m) / P`` (a sparse transition,
    :func:`kernel_sparse`, when ``nnz`` is given) or ``2 T (COST_KERNEL_STEP + B (COST_KERNEL_BLAS_MAC m^2 +
    COST_KERNEL_ELEM m))`` (BLAS), and takes the compiled path when its estimate is below
    the best torch estimate and that one exceeds ``COST_KERNEL_MIN``. Until the kernels are loaded in the
    process, the compiled path also owes ``COST_KERNEL_SETUP``: it is taken once the time it
    would have saved over this process's calls adds up to that (or at once, for a call
    that saves that much alone); after that, whenever it is cheaper. :data:`COMPILED`
    overrides the rule.
    """
    global _saved_so_far
    if COMPILED is not None:
        return bool(COMPILED) and prepare_compiled()
    if _kernels_missing:
        return False
    seq, par, comp = _estimates(B, T, m, nnz)
    if TIME_PARALLEL is not None:
        best = par if TIME_PARALLEL else seq
    else:
        best = min(seq, par)
    if best < COST_KERNEL_MIN or comp >= best:  # nothing to notice, or not cheaper
        return False
    if _kernels is None:
        _saved_so_far += best - comp
        if _saved_so_far < COST_KERNEL_SETUP:
            return False
        return prepare_compiled()
    return True


def _compiled_inputs(likelihoods, *params: Tensor):
    """numpy views for the kernels: (tokens (B, T) int64, table (K, m), *params), all in
    the likelihoods' dtype; None where the compiled path does not apply (a device other
    than the CPU, a dtype other than float32 / float64, a gradient asked, mixed dtypes)."""
    t = likelihoods.emission if isinstance(likelihoods, TokenLikelihoods) else likelihoods
    if t.device.type != "cpu" or t.dtype not in (torch.float32, torch.float64):
        return None
    if any(p.device.type != "cpu" or p.dtype != t.dtype for p in params):
        return None
    if torch.is_grad_enabled() and any(x.requires_grad for x in (t, *params)):
        return None
    import numpy as np

    if isinstance(likelihoods, TokenLikelihoods):
        table = likelihoods.emission.detach().T.contiguous().numpy()
        tokens = likelihoods.tokens.detach().to(torch.int64).contiguous().numpy()
    else:
        B, T, m = likelihoods.shape
        table = likelihoods.detach().reshape(B * T, m).contiguous().numpy()
        tokens = np.arange(B * T, dtype=np.int64).reshape(B, T)
    return (tokens, table, *(p.detach().contiguous().numpy() for p in params))


def _compiled(parallel: bool | None, likelihoods, *params: Tensor):
    """Kernel inputs when this call takes the compiled path, else None."""
    if parallel is True or COMPILED is False:
        return None
    B, T, m = likelihoods.shape
    if B * T == 0:
        return None
    if COMPILED is None and (TIME_PARALLEL is True and parallel is None):
        return None
    args = _compiled_inputs(likelihoods, *params)
    if args is None:
        return None
    # the transition is the last parameter at every call site; its nonzeros count (numpy:
    # single-threaded) only where the kernels could keep it sparse
    import numpy as np

    nnz = int(np.count_nonzero(args[-1])) if m >= kernel_plan.SPARSE_FROM else None
    if not use_compiled(B, T, m, nnz):
        return None
    return args


def _raise_first_zero(first: Tensor, T: int, what: str) -> None:
    """Raise as :func:`_raise_zero` would on normalisers that vanish from ``first[b]`` on."""
    if bool((first >= 0).any()):
        norms = torch.ones(T, first.shape[0], dtype=torch.float64)
        for b in torch.nonzero(first >= 0)[:, 0].tolist():
            norms[int(first[b]) :, b] = 0.0
        _raise_zero(norms, what)


# ------------------------------------------------------------------ time-parallel path
#: Force the inference path: ``None`` (default) lets :func:`use_time_parallel` decide from
#: (B, T, m); ``True`` / ``False`` force the time-parallel / sequential path everywhere.
#: Results agree to float64 rounding either way.
TIME_PARALLEL: bool | None = None

#: Cost-rule constants (seconds), rough measurements on a 2-core x86 machine with torch
#: 2.13 on one thread (see docs/inference.md, "Long sequences: the time-parallel path").
#: ``COST_STEP``: fixed cost of one eager step of a pass (a few torch calls on small
#: tensors); ``COST_SEQ_MAC``: one multiply-add of a step's ``(B, m) x (m, m)`` product
#: (small: torch's threaded BLAS); ``COST_SEQ_ELEM``: the elementwise work of a step per
#: (sequence, state) (fitted by ``bench/calibrate_paths.py``);
#: ``COST_PAR_MAC``: one multiply-add of the block products ``(K B m, m) x (m, m)``;
#: ``COST_PAR_ELEM``: the elementwise work (scaling, normalising) per entry of those products.
COST_STEP = 14e-6
COST_SEQ_MAC = 0.019e-9
COST_SEQ_ELEM = 3.8e-9
COST_PAR_MAC = 0.5e-9
COST_PAR_ELEM = 5e-9


def use_time_parallel(B: int, T: int, m: int) -> bool:
    """The cost rule: whether inference on ``B`` sequences of ``T`` tokens with ``m``
    states takes the time-parallel path.

    The sequential path makes ``T`` eager steps per pass, each a ``(B, m) x (m, m)``
    product plus elementwise work, so two passes cost about
    ``2 T (COST_STEP + B (COST_SEQ_MAC m^2 + COST_SEQ_ELEM m))``. The
    time-parallel path cuts the positions into about ``sqrt(T)`` blocks of ``sqrt(T)``:
    the block transfer matrices (level one, ``sqrt(T)`` steps, ``B T m^3`` multiply-adds),
    the stitching across blocks (``sqrt(T)`` steps per direction) and the recursions
    inside every block from its now-known start (level two, ``sqrt(T)`` steps per pass,
    the same ``B T m^2`` work as the sequential path) cost about
    ``10 sqrt(T) COST_STEP + B T (COST_PAR_MAC m^3 + (2 COST_SEQ_MAC + COST_PAR_ELEM) m^2)``.
    The path with the smaller estimate is taken; sequences shorter than 64 positions always
    take the sequential path. In practice: long sequences, few of them, few states
    (``B m`` small); never ``m >= 128``. :data:`TIME_PARALLEL` overrides the rule, and
    every inference function takes ``parallel=`` to override it per call.
    """
    if TIME_PARALLEL is not None:
        return bool(TIME_PARALLEL)
    if T < 64:
        return False
    seq = 2 * T * (COST_STEP + B * (COST_SEQ_MAC * m * m + COST_SEQ_ELEM * m))
    par = 10 * math.sqrt(T) * COST_STEP + B * T * (COST_PAR_MAC * m**3 + (2 * COST_SEQ_MAC + COST_PAR_ELEM) * m * m)
    return par < seq


def _parallel(parallel: bool | None, shape) -> bool:
    if parallel is not None:
        return bool(parallel)
    B, T, m = shape
    return use_time_parallel(B, T, m)


class _Blocks:
    """Positions ``0..T-1`` cut into ``K`` blocks of ``S`` (the last holds ``r``, 1..S).

    Position ``t = k * S + j`` is entry ``(k, j)``. ``cols(j, n)`` gives the likelihoods at
    in-block index ``j`` of the first ``n`` blocks, shape ``(n, B, m)``, from a (B, T, m)
    tensor or a :class:`TokenLikelihoods`; padded positions of the last block are never read
    (every loop stops the last block at ``r``).
    """

    def __init__(self, likelihoods, block: int | None = None):
        if isinstance(likelihoods, TokenLikelihoods):
            emission, tokens = likelihoods
            B, T = tokens.shape
            m = emission.shape[0]
            dtype, device = emission.dtype, emission.device
        else:
            B, T, m = likelihoods.shape
            dtype, device = likelihoods.dtype, likelihoods.device
        S = block if block is not None else max(1, math.isqrt(T - 1) + 1 if T > 1 else 1)
        S = min(S, T)
        K = -(-T // S)
        self.B, self.T, self.m, self.S, self.K = B, T, m, S, K
        self.r = T - (K - 1) * S
        self.dtype, self.device = dtype, device
        self.opts = dict(dtype=dtype, device=device)
        if isinstance(likelihoods, TokenLikelihoods):
            tok = torch.zeros(K * S, B, dtype=tokens.dtype, device=tokens.device)
            tok[:T] = tokens.T
            self._tok = tok.view(K, S, B).transpose(0, 1).contiguous()  # (S, K, B)
            self._table = emission.T.contiguous()
            self._L = None
        else:
            pad = torch.empty(K * S, B, m, **self.opts)
            pad[:T] = likelihoods.transpose(0, 1)
            self._L = pad.view(K, S, B, m).transpose(0, 1).contiguous()  # (S, K, B, m)

    def active(self, j: int) -> int:
        """Number of leading blocks that hold position ``j``."""
        return self.K if j < self.r else self.K - 1

    def cols(self, j: int, n: int) -> Tensor:
        if self._L is not None:
            return self._L[j, :n]
        return self._table[self._tok[j, :n].reshape(-1)].view(n, self.B, self.m)

    def empty(self) -> Tensor:
        """A (K, S, B, m) buffer whose (T, B, m) view (:meth:`positions`) is position-major."""
        return settings.empty_large((self.K, self.S, self.B, self.m), **self.opts)

    def positions(self, buf: Tensor) -> Tensor:
        """(K, S, ...) -> (T, ...) view."""
        return buf.view((self.K * self.S,) + tuple(buf.shape[2:]))[: self.T]


def _block_products(bl: _Blocks, initial: Tensor | None, transition: Tensor) -> tuple[Tensor, Tensor]:
    """Level one: each block's transfer matrix ``R_k = prod_{t in block k} A D(L_t)``.

    Returned row-normalised, ``X`` (K, B, m, m), with the log row scales ``ls`` (K, B, m):
    ``R_k[i, :] = exp(ls[k, i]) * X[k, i, :]`` (a zero row has ``ls = -inf``). With
    ``initial`` given, block 0's first transition is replaced by the rank-one matrix whose
    rows all equal ``initial`` (so every row of ``R_0`` is ``initial``'s forward message).
    One batched ``(K B m, m) x (m, m)`` product per in-block position: ``S`` eager steps.
    """
    K, B, m = bl.K, bl.B, bl.m
    X = torch.empty(K, B, m, m, **bl.opts)
    tmp = torch.empty(K, B, m, m, **bl.opts)
    ls = torch.zeros(K, B, m, **bl.opts)
    s = torch.empty(K, B, m, 1, **bl.opts)
    tiny = torch.finfo(bl.dtype).tiny  # dividing a zero row by it leaves it zero
    L0 = bl.cols(0, K)
    torch.mul(transition, L0[:, :, None, :], out=X)
    if initial is not None:
        X[0] = initial.unsqueeze(-2) * L0[0][:, None, :]
    views = {}
    for j in range(bl.S):
        n = bl.active(j)
        if n == 0:
            break
        if n not in views:
            views[n] = (X[:n], X[:n].view(-1, m), tmp[:n], tmp[:n].view(-1, m), ls[:n], s[:n], s[:n].squeeze(-1))
        Xn, X2, Tn, T2, lsn, sn, sn1 = views[n]
        if j > 0:
            torch.mm(X2, transition, out=T2)
            torch.mul(Tn, bl.cols(j, n).unsqueeze(-2), out=Xn)
        torch.sum(Xn, -1, keepdim=True, out=sn)
        lsn.add_(sn1.log())
        Xn.div_(sn.clamp_min_(tiny))
    return X, ls


def _combine(Xl: Tensor, al: Tensor, Xr: Tensor, br: Tensor) -> tuple[Tensor, Tensor]:
    """Product of two row-scaled matrices, row-scaled: ``(exp(al) Xl) @ (exp(br) Xr)``.

    Each row of the result is shifted by its own largest term (``max_j log Xl[i, j] +
    br[j]``), so no row underflows however different the scales are; the m^3 work is one
    batched product in linear space, the logarithms are m^2 per matrix.
    """
    lw = Xl.log() + br.unsqueeze(-2)  # log Xl[i, j] + br[j]
    M = lw.amax(-1, keepdim=True)
    M = torch.where(torch.isfinite(M), M, torch.zeros((), dtype=M.dtype, device=M.device))
    P = torch.matmul(torch.exp(lw - M), Xr)
    s = P.sum(-1, keepdim=True)
    scale = al + (M + s.log()).squeeze(-1)
    return P.div_(s.clamp_min_(torch.finfo(P.dtype).tiny)), scale


def _scan(X: Tensor, ls: Tensor, reverse: bool) -> tuple[Tensor, Tensor]:
    """Inclusive prefix (``R_0 ... R_k``) or, with ``reverse``, suffix (``R_k ... R_{K-1}``)
    products of the row-scaled block matrices, by recursive doubling: ``ceil(log2 K)``
    batched steps instead of K sequential ones."""
    K = X.shape[0]
    d = 1
    while d < K:
        if reverse:
            Xn, ln = _combine(X[:-d], ls[:-d], X[d:], ls[d:])
            X = torch.cat([Xn, X[-d:]])
            ls = torch.cat([ln, ls[-d:]])
        else:
            Xn, ln = _combine(X[:-d], ls[:-d], X[d:], ls[d:])
            X = torch.cat([X[:d], Xn])
            ls = torch.cat([ls[:d], ln])
        d *= 2
    return X, ls


def _softmax0(v: Tensor) -> Tensor:
    """softmax over the last axis, with a zero vector where every entry is -inf."""
    M = v.amax(-1, keepdim=True)
    e = torch.exp(v - torch.where(torch.isfinite(M), M, torch.zeros((), dtype=v.dtype, device=v.device)))
    s = e.sum(-1, keepdim=True)
    return e / torch.where(s > 0, s, torch.ones((), dtype=v.dtype, device=v.device))


def _stitch_forward(X: Tensor, ls: Tensor) -> tuple[Tensor, Tensor]:
    """Level two, forward: the filtered law at the end of every block (K, B, m) and
    ``log P(x)`` (B,) (``X``, ``ls`` from :func:`_block_products` with ``initial``, whose
    block 0 has equal rows, so every prefix product has equal rows). Impossible
    sequences give zero rows and ``-inf``."""
    P, lp = _scan(X, ls, reverse=False)
    return P[:, :, 0].contiguous(), lp[-1][:, 0]


def _stitch_backward(X: Tensor, ls: Tensor, through_first: bool = False):
    """Level two, backward: the normalised backward message at the last position of
    every block (K, B, m), or with ``through_first`` the message one position before the
    sequence, ``beta_{-1}`` (B, m). Zero rows for impossible suffixes. (A row-normalised
    suffix product ``R_{k+1} ... R_{K-1}`` applied to ones is its row scales.)"""
    K, B, m = ls.shape
    if through_first:
        _, q = _scan(X, ls, reverse=True)
        return _softmax0(q[0]), None
    ends = torch.empty(K, B, m, dtype=ls.dtype, device=ls.device)
    ends[K - 1] = 1.0 / m
    if K > 1:
        _, q = _scan(X[1:], ls[1:], reverse=True)
        ends[: K - 1] = _softmax0(q)
    return ends


def _forward_rerun(bl: _Blocks, initial, transition, ends, pred_buf, filt_buf, allow_zero) -> Tensor:
    """Second level, forward: every block's scaled forward recursion from its (now known)
    start law, all blocks as one batch; fills (K, S, B, m) buffers and returns the
    normalisers (K, S, B, 1) (ones at padded positions)."""
    K, B, m = bl.K, bl.B, bl.m
    cur = torch.empty(K, B, m, **bl.opts)
    cur[0] = initial
    if K > 1:
        torch.matmul(ends[:-1], transition, out=cur[1:])
    norms = torch.ones(K, bl.S, B, 1, **bl.opts)
    tmp = torch.empty(K, B, m, **bl.opts)
    one = torch.ones((), **bl.opts)
    for j in range(bl.S):
        n = bl.active(j)
        if pred_buf is not None:
            pred_buf[:n, j] = cur[:n]
        ft = tmp[:n]
        torch.mul(cur[:n], bl.cols(j, n), out=ft)
        nj = norms[:n, j]
        torch.sum(ft, -1, keepdim=True, out=nj)
        ft.div_(torch.where(nj > 0, nj, one) if allow_zero else nj)
        if filt_buf is not None:
            filt_buf[:n, j] = ft
        if j + 1 < bl.S:
            torch.matmul(ft, transition, out=cur[:n])
    return norms


def _backward_rerun(bl: _Blocks, transition, ends, beta_buf, post_buf, allow_zero) -> Tensor:
    """Second level, backward: every block's scaled backward recursion from the message
    at its last position (``ends`` from :func:`_stitch_backward`), all blocks as one
    batch. Stores the messages in ``beta_buf`` and/or multiplies them into ``post_buf``
    (normalising each row: the posterior), both (K, S, B, m). Returns the normalisers in
    position order (K, S, B, 1): entry ``t`` normalised ``beta_t`` (1 at ``T - 1``)."""
    K, B, m, S = bl.K, bl.B, bl.m, bl.S
    cur = ends.clone()
    norms = torch.ones(K, S, B, 1, **bl.opts)
    tmp = torch.empty(K, B, m, **bl.opts)
    pn = torch.empty(K, B, 1, **bl.opts)
    one = torch.ones((), **bl.opts)
    At = transition.T
    for j in range(S - 1, -1, -1):
        n = bl.active(j)
        if beta_buf is not None:
            beta_buf[:n, j] = cur[:n]
        if post_buf is not None:
            ot = post_buf[:n, j]
            ot.mul_(cur[:n])
            torch.sum(ot, -1, keepdim=True, out=pn[:n])
            ot.div_(pn[:n])
        if j == 0 and (beta_buf is None or K == 1):
            break
        lo = 1 if j == 0 else 0  # at j = 0 only the blocks after the first have a predecessor
        torch.mul(bl.cols(j, n)[lo:], cur[lo:n], out=tmp[lo:n])
        torch.matmul(tmp[lo:n], At, out=cur[lo:n])
        dst = norms[lo:n, j - 1] if j > 0 else norms[: n - 1, S - 1]
        torch.sum(cur[lo:n], -1, keepdim=True, out=dst)
        cur[lo:n].div_(torch.where(dst > 0, dst, one) if allow_zero else dst)
    return norms


def _any_zero(norms: Tensor) -> bool:
    return bool((~(norms > 0)).any())


def _smooth_parallel(initial: Tensor, transition: Tensor, likelihoods, loo: bool) -> Tensor | None:
    """The time-parallel :func:`_smooth`; ``None`` for a batch with an impossible sequence
    (the sequential path then raises the reference error)."""
    bl = _Blocks(likelihoods)
    X, ls = _block_products(bl, initial, transition)
    ends_f, _ = _stitch_forward(X, ls)
    ends_b = _stitch_backward(X, ls)  # uses blocks 1..K-1 only: block 0's change is irrelevant
    del X, ls
    out = bl.empty()
    norms = _forward_rerun(bl, initial, transition, ends_f, out if loo else None, None if loo else out, False)
    if _any_zero(bl.positions(norms)):
        return None
    bnorms = _backward_rerun(bl, transition, ends_b, None, out, False)
    if _any_zero(bnorms):
        return None
    return bl.positions(out).transpose(0, 1)


def _forward_parallel(initial, transition, likelihoods, allow_zero: bool) -> ForwardResult | None:
    """The time-parallel :func:`hmm_forward` (``None``: an impossible sequence, not allowed)."""
    bl = _Blocks(likelihoods)
    X, ls = _block_products(bl, initial, transition)
    ends, _ = _stitch_forward(X, ls)
    del X, ls
    pred, filt = bl.empty(), bl.empty()
    norms = bl.positions(_forward_rerun(bl, initial, transition, ends, pred, filt, allow_zero)).squeeze(-1)
    if not allow_zero and _any_zero(norms):
        return None
    return ForwardResult(
        norms.log().sum(0), bl.positions(pred).transpose(0, 1), bl.positions(filt).transpose(0, 1)
    )


def hmm_log_prob(
    initial: Tensor, transition: Tensor, likelihoods, *, allow_zero: bool = False, parallel: bool | None = None
) -> Tensor:
    """``log P(x)`` alone, without storing messages: (B,).

    Equal to ``hmm_forward(...).log_prob``, in memory (B, m) on the sequential path and
    (K, B, m, m) (``K`` about ``sqrt(T)`` blocks) on the time-parallel one.

    Args:
        initial: (m,); transition: (m, m); likelihoods: (B, T, m) tensor or
            :class:`TokenLikelihoods`.
        allow_zero: keyword only: ``-inf`` for an impossible sequence instead of raising.
        parallel: keyword only; see :func:`hmm_forward`.

    Raises:
        ZeroProbabilityError: a sequence has probability zero (unless ``allow_zero``).
    """
    B, T, m = likelihoods.shape
    args = _compiled(parallel, likelihoods, initial, transition)
    if args is not None:
        tokens, table, init, trans = args
        ll, first = _kernels.log_prob(tokens, init, trans, table, threads=torch.get_num_threads())
        if not allow_zero:
            _raise_first_zero(torch.from_numpy(first), T, "forward pass")
        return torch.from_numpy(ll).to(initial.dtype)
    if T > 1 and _parallel(parallel, likelihoods.shape):
        bl = _Blocks(likelihoods)
        X, ls = _block_products(bl, initial, transition)
        _, ll = _stitch_forward(X, ls)
        if allow_zero or bool(torch.isfinite(ll).all()):
            return ll
    col = _Columns(likelihoods)
    opts = dict(dtype=col.dtype, device=col.device)
    norms = torch.empty(T, B, 1, **opts)
    pred = torch.empty(B, m, **opts)
    pred.copy_(initial)
    tmp = torch.empty(B, m, **opts)
    one = torch.ones((), **opts)
    for t in range(T):
        torch.mul(pred, col(t), out=tmp)
        torch.sum(tmp, -1, keepdim=True, out=norms[t])
        tmp.div_(torch.where(norms[t] > 0, norms[t], one))
        if t + 1 < T:
            torch.matmul(tmp, transition, out=pred)
    norms = norms.squeeze(-1)
    if not allow_zero:
        _raise_zero(norms, "forward pass")
    return norms.log().sum(0)


def _smooth(initial: Tensor, transition: Tensor, likelihoods, loo: bool, parallel: bool | None = None) -> Tensor:
    """Fused forward-backward for :func:`hmm_posterior` / :func:`hmm_loo_posterior`.

    Performs exactly the arithmetic of :func:`hmm_forward`, :func:`hmm_backward` and
    the final normalisation, but keeps one (T, B, m) buffer instead of five: the forward
    pass writes the filtered (or predicted) rows into the output, the backward pass
    keeps only the current message and multiplies it in place. Reads each likelihood
    column directly (no transposed copy), so peak memory is about one output tensor.
    """
    B, T, m = likelihoods.shape
    args = _compiled(parallel, likelihoods, initial, transition)
    if args is not None:
        tokens, table, init, trans = args
        out, fzero, bzero = _kernels.smooth(tokens, init, trans, table, loo, threads=torch.get_num_threads())
        _raise_first_zero(torch.from_numpy(fzero), T, "forward pass")
        _raise_first_zero(torch.from_numpy(bzero).clamp(max=0), T, "backward pass")  # torch's loop reports position 0
        return torch.from_numpy(out).transpose(0, 1)
    if T > 1 and _parallel(parallel, likelihoods.shape):
        res = _smooth_parallel(initial, transition, likelihoods, loo)
        if res is not None:
            return res
    col = _Columns(likelihoods)
    opts = dict(dtype=col.dtype, device=col.device)
    out = settings.empty_large((T, B, m), **opts)
    norms = torch.empty(T, B, 1, **opts)
    pred = torch.empty(B, m, **opts)  # a fresh buffer: it is overwritten in place
    pred.copy_(initial)
    tmp = torch.empty(B, m, **opts)
    for t in range(T):
        lt = col(t)
        if loo:
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


def hmm_posterior(initial: Tensor, transition: Tensor, likelihoods, *, parallel: bool | None = None) -> Tensor:
    """Smoothed posteriors ``P(H_t | x_{0:T-1})``.

    Proportional to ``filtered_t * beta_t`` (:func:`hmm_forward`, :func:`hmm_backward`),
    computed in one fused pass that holds a single (B, T, m) buffer.

    Args:
        initial: (m,); transition: (m, m); likelihoods: (B, T, m) tensor or
            :class:`TokenLikelihoods`.
        parallel: keyword only; see :func:`hmm_forward`.

    Returns:
        (B, T, m), each row on the simplex.

    Raises:
        ZeroProbabilityError: a sequence has probability zero.
    """
    return _smooth(initial, transition, likelihoods, False, parallel)


def hmm_loo_posterior(initial: Tensor, transition: Tensor, likelihoods, *, parallel: bool | None = None) -> Tensor:
    """Leave-one-out posteriors ``P(H_t | x with position t left out)`` (docs/theory.md, "The perfect masked LM").

    Proportional to ``predicted_t * beta_t``: the forward prediction from
    ``x_{0:t-1}`` times the backward message from ``x_{t+1:T-1}``; the emission at t is
    left out.

    Args:
        initial: (m,) law of the first state (use ``initial @ transition`` for a
            downstream input whose position 0 is a mask, see :class:`hmmtune.OracleMLM`).
        transition: (m, m); likelihoods: (B, T, m) tensor or :class:`TokenLikelihoods`.
        parallel: keyword only; see :func:`hmm_forward`.

    Returns:
        (B, T, m), each row on the simplex.

    Raises:
        ZeroProbabilityError: a sequence has probability zero.
    """
    return _smooth(initial, transition, likelihoods, True, parallel)


def hmm_start_backward(transition: Tensor, likelihoods, *, parallel: bool | None = None) -> Tensor:
    """Backward message to a mask placed before the observed tokens (docs/theory.md, "The perfect masked LM").

    For observed ``x_1..x_T`` (stored at indices 0..T-1 of ``likelihoods``) this is
    ``beta_0 = transition @ (L_1 * beta_1)``, normalised: ``beta_0[h]`` is proportional to
    ``P(x_1..x_T | H_0 = h)``. It does not depend on the law of ``H_0``, so it is
    computed once per input and reused for every prompt. Only the current message is
    kept (memory (B, m), not (B, T, m)).

    Args:
        transition: (m, m); likelihoods: (B, T, m) tensor or :class:`TokenLikelihoods`.
        parallel: keyword only; see :func:`hmm_forward` (the time-parallel path needs
            no second level here: the stitched message is the answer).

    Returns:
        (B, m) normalised ``beta_0``.
    """
    B, T, m = likelihoods.shape
    args = _compiled(parallel, likelihoods, transition)
    if args is not None:
        tokens, table, trans = args
        b0, first = _kernels.start_backward(tokens, trans, table, threads=torch.get_num_threads())
        first = torch.from_numpy(first)
        _raise_first_zero(torch.where(first >= 1, 0, -1), T, "backward pass")  # torch's loop reports position 0
        _raise_first_zero(torch.where(first == 0, 0, -1), 1, "backward pass to the mask")
        return torch.from_numpy(b0)
    if T > 1 and _parallel(parallel, likelihoods.shape):
        bl = _Blocks(likelihoods)
        X, ls = _block_products(bl, None, transition)
        b0, _ = _stitch_backward(X, ls, through_first=True)
        if not _any_zero(b0.sum(-1)):
            return b0
    col = _Columns(likelihoods)
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


# ------------------------------------------------------------------ chunked evaluation
def chunked(fn: Callable[[Tensor], Any], tokens: Tensor, per_sequence: int, chunk_size: int | None = None) -> Any:
    """Apply ``fn`` to the sequences ``tokens`` (B, T) in chunks along the batch axis and
    concatenate the results along axis 0.

    ``fn`` maps a (b, T) chunk to a tensor, or to a NamedTuple of tensors (None fields
    stay None), whose axis 0 is the chunk's. A chunk holds ``chunk_size`` sequences
    (default: ``max(1, settings.current().chunk_elements // per_sequence)``, where
    ``per_sequence`` is the entries one sequence adds to a working tensor, e.g. ``T * m``).
    An empty batch is passed to ``fn`` once. A :class:`ZeroProbabilityError` raised on a
    chunk is re-raised with the sequence's index in the whole batch.

    Raises:
        ValueError: ``chunk_size`` is not a positive integer.
    """
    B = tokens.shape[0]
    if chunk_size is None:
        chunk_size = max(1, settings.current().chunk_elements // max(1, per_sequence))
    elif not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    if B <= chunk_size:
        return fn(tokens)
    outs = []
    for start in range(0, B, chunk_size):
        try:
            outs.append(fn(tokens[start : start + chunk_size]))
        except ZeroProbabilityError as exc:
            raise exc.reindexed(start) from None
    if is_tensor(outs[0]):
        return torch.cat(outs, 0)
    return type(outs[0])(*(None if f is None else torch.cat([o[i] for o in outs], 0) for i, f in enumerate(outs[0])))


# ------------------------------------------------------------- memory-augmented HMMs
# docs/theory.md, "Memory-augmented HMMs". A memory configuration c (C = V ** N of them)
# is fixed along a sequence; given c, the chain Z_t (K = N * S states) is a plain HMM whose
# emission likelihoods are L[b, t, c, z] = P(x_{b,t} | M = c, Z_t = z). Exact inference
# runs that HMM for every configuration at once: one batched recursion over B * C chains
# (no loop over configurations), then weighs configuration c by rho(c) P(x | c).


class ConfigLikelihoods(NamedTuple):
    """Tokens and the per-configuration emission table of a memory model, read lazily.

    Accepted as ``config_likelihoods`` by :func:`memory_log_likelihood` and
    :func:`memory_log_prob`, which then gather one position at a time and never hold the
    (B, T, C, K) tensor; everywhere else :meth:`dense` builds it.

    Attributes:
        table: (n, C, K) ``table[x, c, z] = P(X = x | M = c, Z = z)``
            (:meth:`hmmtune.MemoryHMM.config_emission`).
        tokens: (B, T) integer tensor with values in ``[0, n)``.
    """

    table: Tensor
    tokens: Tensor

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(B, T, C, K), the shape of the likelihood tensor this stands for."""
        return (*self.tokens.shape, *self.table.shape[1:])

    def dense(self) -> Tensor:
        """The (B, T, C, K) likelihoods, a view of time-major (T, B, C, K) storage (the
        layout the batched recursions read without a copy)."""
        return self.table[self.tokens.T.contiguous()].transpose(0, 1)


def _dense(config_likelihoods) -> Tensor:
    return config_likelihoods.dense() if isinstance(config_likelihoods, ConfigLikelihoods) else config_likelihoods


def _chains(L: Tensor) -> Tensor:
    """(B, T, C, K) -> (B * C, T, K): one chain per (sequence, configuration); a view
    when ``L`` is stored time-major (as :meth:`ConfigLikelihoods.dense` stores it)."""
    B, T, C, K = L.shape
    return L.transpose(0, 1).reshape(T, B * C, K).transpose(0, 1)


def memory_log_likelihood(initial: Tensor, transition: Tensor, config_likelihoods) -> Tensor:
    """``log P(x | M = c)`` for every sequence and configuration: (B, C), ``-inf`` where
    configuration c cannot generate x (never raises for that).

    A scaled forward pass that keeps only the current message, (B, C, K), on the
    sequential path; long sequences take the time-parallel path (:func:`use_time_parallel`).

    Args:
        initial: (K,) law of ``Z_0``. transition: (K, K) row-stochastic.
        config_likelihoods: (B, T, C, K) tensor or :class:`ConfigLikelihoods`.
    """
    B, T, C, K = config_likelihoods.shape
    if use_time_parallel(B * C, T, K):
        L = _chains(_dense(config_likelihoods))
        return hmm_log_prob(initial, transition, L, allow_zero=True).view(B, C)
    if isinstance(config_likelihoods, ConfigLikelihoods):
        table, tok = config_likelihoods.table, config_likelihoods.tokens.T.contiguous()
        column = lambda t: table[tok[t]].view(B * C, K)
    else:
        Lt = config_likelihoods.transpose(0, 1)
        column = lambda t: Lt[t].reshape(B * C, K)
    one = torch.ones((), dtype=transition.dtype, device=transition.device)
    alpha = initial.expand(B * C, K)
    log_lik = torch.zeros(B * C, dtype=transition.dtype, device=transition.device)
    for t in range(T):
        f = alpha * column(t)
        norm = f.sum(-1, keepdim=True)
        f = f / torch.where(norm > 0, norm, one)
        log_lik += norm.squeeze(-1).log()
        if t + 1 < T:
            alpha = f @ transition
    return log_lik.view(B, C)


def memory_log_prob(log_prior: Tensor, initial: Tensor, transition: Tensor, config_likelihoods) -> tuple[Tensor, Tensor]:
    """``log P(x)`` and ``P(M = c | x)`` without storing messages.

    Args:
        log_prior: (C,) ``log rho(c)`` (``-inf`` for an impossible configuration).
        initial: (K,); transition: (K, K); config_likelihoods: (B, T, C, K) tensor or
            :class:`ConfigLikelihoods`.

    Returns:
        ``(log_prob, config_posterior)``: (B,) and (B, C).

    Raises:
        ZeroProbabilityError: a sequence no configuration and path generates (its index
            and first impossible position, found by re-running it with stored messages).
    """
    logw = log_prior + memory_log_likelihood(initial, transition, config_likelihoods)
    log_prob = torch.logsumexp(logw, -1)
    bad = ~torch.isfinite(log_prob)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        if isinstance(config_likelihoods, ConfigLikelihoods):
            one = ConfigLikelihoods(config_likelihoods.table, config_likelihoods.tokens[i : i + 1]).dense()
        else:
            one = config_likelihoods[i : i + 1]
        try:
            memory_forward(log_prior, initial, transition, one)
        except ZeroProbabilityError as exc:
            raise exc.reindexed(i) from None
    return log_prob, torch.exp(logw - log_prob[:, None])


class MemoryForwardResult(NamedTuple):
    """Output of :func:`memory_forward`.

    Attributes:
        log_prob: (B,) ``log P(x)``.
        config_posterior: (B, C) ``P(M = c | x)``.
        config_log_prob: (B, C) ``log P(x | M = c)`` (``-inf`` where c cannot generate x).
        predicted: (B, T, C, K) ``P(Z_t | x_{0:t-1}, M = c)`` (zero rows after c became impossible).
        filtered: (B, T, C, K) ``P(Z_t | x_{0:t}, M = c)``.
    """

    log_prob: Tensor
    config_posterior: Tensor
    config_log_prob: Tensor
    predicted: Tensor
    filtered: Tensor


def memory_forward(log_prior: Tensor, initial: Tensor, transition: Tensor, config_likelihoods: Tensor) -> MemoryForwardResult:
    """The scaled forward pass of every (sequence, configuration) chain, weighed by the prior.

    Args:
        log_prior: (C,) ``log rho(c)``.
        initial: (K,) law of ``Z_0``. transition: (K, K) row-stochastic.
        config_likelihoods: (B, T, C, K) ``P(x_t | M = c, Z_t = z)`` (stored time-major
            for no copy, as :meth:`ConfigLikelihoods.dense` does).

    Returns:
        :class:`MemoryForwardResult`; ``predicted`` and ``filtered`` are views of
        time-major storage.

    Raises:
        ZeroProbabilityError: a sequence no configuration and path generates.
    """
    B, T, C, K = config_likelihoods.shape
    fwd = hmm_forward(initial, transition, _chains(config_likelihoods), allow_zero=True)
    config_log_prob = fwd.log_prob.view(B, C)
    logw = log_prior + config_log_prob  # (B, C) log rho(c) P(x | c)
    log_prob = torch.logsumexp(logw, -1)
    pred = fwd.predicted.transpose(0, 1).view(T, B, C, K)
    bad = ~torch.isfinite(log_prob)
    if bool(bad.any()):
        i = int(torch.nonzero(bad)[0, 0])
        logfn = (pred[:, i] * config_likelihoods[i]).sum(-1).log()  # (T, C)
        alive = torch.isfinite(log_prior + torch.cumsum(logfn, 0)).any(-1)
        t = int(torch.nonzero(~alive)[0, 0])
        raise ZeroProbabilityError(
            f"sequence {i} has probability zero under the memory model: no memory configuration "
            + (f"and hidden path generates its tokens 0..{t}" if t > 0 else "can emit its first token"),
            index=i,
            position=t,
        )
    filt = fwd.filtered.transpose(0, 1).view(T, B, C, K)
    return MemoryForwardResult(
        log_prob, torch.exp(logw - log_prob[:, None]), config_log_prob, pred.transpose(0, 1), filt.transpose(0, 1)
    )


def memory_backward(transition: Tensor, config_likelihoods: Tensor) -> BackwardResult:
    """Scaled backward messages of every (sequence, configuration) chain.

    Args:
        transition: (K, K). config_likelihoods: (B, T, C, K) (time-major storage for no copy).

    Returns:
        :class:`BackwardResult` with ``beta`` (B, T, C, K) and ``log_scale`` (B, T, C):
        ``P(x_{t+1:T-1} | Z_t = z, M = c) = exp(log_scale[b, t, c]) * beta[b, t, c, z]``;
        zero messages and ``-inf`` where configuration c cannot generate the suffix.
    """
    B, T, C, K = config_likelihoods.shape
    bwd = hmm_backward_scaled(transition, _chains(config_likelihoods), allow_zero=True)
    beta = bwd.beta.transpose(0, 1).view(T, B, C, K).transpose(0, 1)
    return BackwardResult(beta, bwd.log_scale.view(B, C, T).transpose(1, 2))


class MemoryPosteriors(NamedTuple):
    """Output of :func:`memory_posteriors`; fields not asked for are None.

    Attributes:
        log_prob: (B,) ``log P(x)``.
        config_posterior: (B, C) ``P(M = c | x)``.
        posterior: (B, T, C, K) ``P(M = c, Z_t = z | x)``.
        loo_posterior: (B, T, C, K) ``P(M = c, Z_t = z | x_{-t})`` (position t left out).
        loo_config_posterior: (B, T, C) ``P(M = c | x_{-t})``.
        start_backward: (B, C, K) normalised backward messages to a state one step before
            ``x_0``, proportional to ``P(x | Z_{-1} = z, M = c)``.
        start_log_scale: (B, C) with
            ``P(x | Z_{-1} = z, M = c) = exp(start_log_scale[b, c]) * start_backward[b, c, z]``.
    """

    log_prob: Tensor
    config_posterior: Tensor
    posterior: Tensor | None = None
    loo_posterior: Tensor | None = None
    loo_config_posterior: Tensor | None = None
    start_backward: Tensor | None = None
    start_log_scale: Tensor | None = None


def _safe_div(x: Tensor, s: Tensor) -> Tensor:
    """``x / s`` where ``s > 0``, and 0 where ``s == 0`` (then ``x`` is 0 too)."""
    return x / torch.where(s > 0, s, torch.ones_like(s))


def memory_posteriors(
    log_prior: Tensor,
    initial: Tensor,
    transition: Tensor,
    config_likelihoods: Tensor,
    *,
    smoothed: bool = True,
    loo: bool = False,
    start: bool = False,
) -> MemoryPosteriors:
    """Exact posteriors of a memory-augmented HMM by batched forward-backward over all
    configurations (docs/theory.md, "Memory-augmented HMMs").

    Configuration c gets weight ``rho(c) P(x | c)``. The leave-one-out quantities weigh c
    by ``rho(c) P(x_{-t} | c)``, computed from the scale factors of both passes, so a
    configuration that cannot emit ``x_t`` alone still counts at position t.

    Args:
        log_prior: (C,) ``log rho(c)``.
        initial: (K,) law of ``Z_0`` (``initial @ transition`` for an input after a mask).
        transition: (K, K) row-stochastic.
        config_likelihoods: (B, T, C, K) ``P(x_t | M = c, Z_t = z)`` (time-major storage
            for no copy, as :meth:`ConfigLikelihoods.dense` gives).
        smoothed: keyword only: compute ``posterior``.
        loo: keyword only: compute ``loo_posterior`` and ``loo_config_posterior``.
        start: keyword only: compute ``start_backward`` and ``start_log_scale``.

    Returns:
        :class:`MemoryPosteriors` (the (B, T, ...) fields are views of time-major storage).

    Raises:
        ZeroProbabilityError: a sequence no configuration and path generates.
    """
    L = config_likelihoods
    B, T, C, K = L.shape
    fwd = memory_forward(log_prior, initial, transition, L)
    out = MemoryPosteriors(fwd.log_prob, fwd.config_posterior)
    if not (smoothed or loo or start):
        return out
    bwd = memory_backward(transition, L)
    w = fwd.config_posterior
    if smoothed:
        # in place on the filtered messages, which are not needed afterwards
        fb = fwd.filtered.mul_(bwd.beta)
        norm = fb.sum(-1, keepdim=True)
        joint = fb.div_(torch.where(norm > 0, norm, torch.ones_like(norm))).mul_(w[:, None, :, None])
        out = out._replace(posterior=joint)
    if loo:
        # log rho(c) P(x_{-t}, Z_t = z | c) = log rho(c) + log P(x_{0:t-1} | c) + log pred + log beta + log scale.
        # Computed on (T, B, ...) views: the messages are stored time-major, and reductions
        # over the last axis run 2 to 5 times faster on the stored layout than on (B, T) views.
        pred, Lt, beta = fwd.predicted.transpose(0, 1), L.transpose(0, 1), bwd.beta.transpose(0, 1)
        logfn = (pred * Lt).sum(-1).log()  # (T, B, C) forward normalisers
        F = torch.cat([torch.zeros_like(logfn[:1]), torch.cumsum(logfn[:-1], 0)], 0)  # log P(x_{0:t-1} | c)
        pb = pred.mul_(beta)  # in place: the predictions are not needed afterwards
        s = pb.sum(-1)  # (T, B, C)
        wt = torch.softmax(log_prior + F + bwd.log_scale.transpose(0, 1) + s.log(), -1)  # P(M = c | x_{-t})
        joint = pb.div_(torch.where(s > 0, s, torch.ones_like(s))[..., None]).mul_(wt[..., None])
        out = out._replace(loo_posterior=joint.transpose(0, 1), loo_config_posterior=wt.transpose(0, 1))
    if start:
        b0 = (L[:, 0] * bwd.beta[:, 0]) @ transition.T  # (B, C, K)
        n0 = b0.sum(-1)
        out = out._replace(start_backward=_safe_div(b0, n0[..., None]), start_log_scale=bwd.log_scale[:, 0] + n0.log())
    return out


def memory_cell_marginals(config_weights: Tensor, num_cells: int, num_values: int) -> Tensor:
    """Per-cell marginals of a law over configurations.

    Args:
        config_weights: (..., C) with ``C = V ** N`` in row-major order, cell 0 the most
            significant digit (:meth:`hmmtune.MemoryHMM.configurations`).

    Returns:
        (..., N, V): entry ``[..., j, v]`` sums the weights of the configurations with
        ``c_j = v``.
    """
    N, V = num_cells, num_values
    lead = config_weights.shape[:-1]
    x = config_weights.reshape(lead + (V,) * N)
    a = len(lead)
    cells = [x.sum([a + i for i in range(N) if i != j]) if N > 1 else x for j in range(N)]
    return torch.stack(cells, -2)


def memory_emission_marginals(joint: Tensor, num_cells: int, num_values: int, num_local_states: int) -> Tensor:
    """The law of the emission row read, from a joint law over (configuration, chain state).

    Args:
        joint: (..., C, K) over configurations c and chain states ``z = j * S + s``.

    Returns:
        (..., V * S): entry ``v * S + s`` sums ``joint[..., c, j * S + s]`` over the (c, j)
        with ``c_j = v``, the law of the column ``(M_{J}, S)`` of W that emits the token.
    """
    N, V, S = num_cells, num_values, num_local_states
    if joint.dim() >= 4 and not joint.is_contiguous() and joint.transpose(0, 1).is_contiguous():
        # a (B, T, C, K) view of time-major messages: sum in their stored layout (no copy of
        # the whole joint) and transpose the small (T, B, V * S) result
        return memory_emission_marginals(joint.transpose(0, 1), N, V, S).transpose(0, 1)
    lead = joint.shape[:-2]
    a = len(lead)
    J = joint.reshape(lead + (V,) * N + (N, S))
    total = 0
    for j in range(N):
        others = [a + i for i in range(N) if i != j]
        Jj = J[..., j, :]
        total = total + (Jj.sum(others) if others else Jj)
    return total.reshape(lead + (V * S,))


# ------------------------------------------------------------- deprecated names
def hmm_masked_posterior(initial: Tensor, transition: Tensor, likelihoods, *, parallel: bool | None = None) -> Tensor:
    """Deprecated name of :func:`hmm_loo_posterior` (removed in the next release)."""
    from ._deprecated import warn_moved

    warn_moved("hmmtune.models.inference.hmm_masked_posterior", "hmm_loo_posterior")
    return hmm_loo_posterior(initial, transition, likelihoods, parallel=parallel)


def __getattr__(name: str):
    if name == "USE_HUGE_PAGES":
        from ._deprecated import warn_moved

        warn_moved("hmmtune.models.inference.USE_HUGE_PAGES", "hmmtune.models.settings.override(huge_pages=...)")
        return settings.current().huge_pages
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
