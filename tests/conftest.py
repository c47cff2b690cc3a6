"""Shared fixtures and independent references for the test suite.

The references here are written from docs/theory.md directly, in numpy, by brute-force
enumeration over every hidden path (``itertools.product``). They share no code with
:mod:`hmmtune`, so agreement with them is evidence, not a tautology. They are
exponential in the length and only meant for tiny models (m**L paths, L <= ~9).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

# --------------------------------------------------------------------------- tiny models
# Hand-written models: exact zeros in transition (and elsewhere), non-uniform initial.
TINY_MODELS = {
    # m=1: a single state, the HMM is i.i.d. tokens.
    "m1n2": (
        [1.0],
        [[1.0]],
        [[0.3, 0.7]],
    ),
    # m=2, n=2, a zero in the transition and in the emission.
    "m2n2": (
        [0.8, 0.2],
        [[0.0, 1.0], [0.4, 0.6]],
        [[0.9, 0.1], [0.0, 1.0]],
    ),
    # m=3, n=2: more states than tokens (W cannot have full column rank).
    "m3n2": (
        [0.5, 0.3, 0.2],
        [[0.5, 0.5, 0.0], [0.0, 0.2, 0.8], [0.3, 0.0, 0.7]],
        [[0.7, 0.3], [0.1, 0.9], [0.5, 0.5]],
    ),
    # m=3, n=4, initial with a zero, a deterministic row, zeros in the emission.
    "m3n4": (
        [0.6, 0.0, 0.4],
        [[0.1, 0.9, 0.0], [0.0, 0.0, 1.0], [0.25, 0.25, 0.5]],
        [[0.4, 0.3, 0.2, 0.1], [0.0, 0.5, 0.5, 0.0], [0.1, 0.0, 0.2, 0.7]],
    ),
    # m=4, n=3: a cyclic (periodic) chain with a leak, strongly non-uniform initial.
    "m4n3": (
        [0.05, 0.15, 0.3, 0.5],
        [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.9, 0.1], [0.0, 0.0, 0.0, 1.0], [0.7, 0.0, 0.1, 0.2]],
        [[0.6, 0.2, 0.2], [0.2, 0.6, 0.2], [0.2, 0.2, 0.6], [1 / 3, 1 / 3, 1 / 3]],
    ),
}


def np_params(name):
    pi, A, B = TINY_MODELS[name]
    return np.asarray(pi, float), np.asarray(A, float), np.asarray(B, float)


@pytest.fixture(params=sorted(TINY_MODELS))
def tiny(request):
    """(name, (pi, A, B) as numpy float64 arrays)."""
    return request.param, np_params(request.param)


# --------------------------------------------------------------------------- references
def _paths(m: int, length: int) -> np.ndarray:
    """All hidden paths of ``length`` states, shape (m**length, length)."""
    return np.array(list(itertools.product(range(m), repeat=length)), dtype=np.int64).reshape(-1, length)


def _chain_weights(pi, A, paths) -> np.ndarray:
    """P(path) for a Markov chain started from ``pi`` at the first column."""
    w = pi[paths[:, 0]].copy()
    for t in range(1, paths.shape[1]):
        w *= A[paths[:, t - 1], paths[:, t]]
    return w


def brute_joint(pi, A, B, x, skip=()):
    """Weights of every hidden path for a plain sequence ``x`` (positions 0..T-1).

    Returns ``(paths, w)`` with ``w[p] = P(path p, x_t for t not in skip)``.
    """
    x = np.asarray(x)
    T = len(x)
    paths = _paths(len(pi), T)
    w = _chain_weights(pi, A, paths)
    for t in range(T):
        if t not in skip:
            w = w * B[paths[:, t], x[t]]
    return paths, w


def brute_log_prob(pi, A, B, x) -> float:
    _, w = brute_joint(pi, A, B, x)
    return float(np.log(w.sum()))


def brute_prob(pi, A, B, x) -> float:
    _, w = brute_joint(pi, A, B, x)
    return float(w.sum())


def brute_posterior(pi, A, B, x) -> np.ndarray:
    """P(H_t | x), shape (T, m)."""
    paths, w = brute_joint(pi, A, B, x)
    m, T = len(pi), len(x)
    out = np.zeros((T, m))
    for t in range(T):
        out[t] = np.bincount(paths[:, t], weights=w, minlength=m)
    return out / w.sum()


def brute_masked_posterior(pi, A, B, x) -> np.ndarray:
    """P(H_t | x_{-t}) for a plain sequence (first state from pi), shape (T, m)."""
    m, T = len(pi), len(x)
    out = np.zeros((T, m))
    for t in range(T):
        paths, w = brute_joint(pi, A, B, x, skip={t})
        out[t] = np.bincount(paths[:, t], weights=w, minlength=m) / w.sum()
    return out


def downstream_joint(pi, A, B, x, prompt=None, skip=()):
    """Paths over ``[prompt positions] [MASK at 0] x_1..x_T``.

    The chain starts at the first column from ``pi``; the prompt rows multiply as
    likelihoods at positions -k..-1; the mask contributes no emission; token ``x[i]``
    sits at position i+1. Returns ``(paths, w, mask_column)``.
    """
    x = np.asarray(x)
    k = 0 if prompt is None else len(prompt)
    L = k + 1 + len(x)
    paths = _paths(len(pi), L)
    w = _chain_weights(pi, A, paths)
    for j in range(k):
        w = w * prompt[j][paths[:, j]]
    for i in range(len(x)):
        if i not in skip:
            w = w * B[paths[:, k + 1 + i], x[i]]
    return paths, w, k


def brute_mask_posterior(pi, A, B, x, prompt=None) -> np.ndarray:
    """P(H_0 | x_1..x_T) (or with soft-token positions -k..-1), shape (m,)."""
    paths, w, col = downstream_joint(pi, A, B, x, prompt)
    return np.bincount(paths[:, col], weights=w, minlength=len(pi)) / w.sum()


def brute_mask_prediction(pi, A, B, x, prompt=None) -> np.ndarray:
    """P(X_0 = v | x_1..x_T), shape (n,): marginalise the mask's token directly."""
    paths, w, col = downstream_joint(pi, A, B, x, prompt)
    # sum over paths and over the mask's token v of w * B[h_0, v] 1[v]
    return (w[:, None] * B[paths[:, col]]).sum(0) / w.sum()


def brute_token_predictions(pi, A, B, x) -> np.ndarray:
    """P(X_t = v | x_{-t}) for every downstream position t = 1..T (mask at 0), (T, n)."""
    T = len(x)
    out = np.zeros((T, B.shape[1]))
    for i in range(T):
        paths, w, col = downstream_joint(pi, A, B, x, skip={i})
        out[i] = (w[:, None] * B[paths[:, col + 1 + i]]).sum(0) / w.sum()
    return out


def brute_token_posteriors(pi, A, B, x) -> np.ndarray:
    """P(H_t | x_{-t}) at downstream positions t = 1..T (mask at 0), shape (T, m)."""
    T = len(x)
    out = np.zeros((T, len(pi)))
    for i in range(T):
        paths, w, col = downstream_joint(pi, A, B, x, skip={i})
        out[i] = np.bincount(paths[:, col + 1 + i], weights=w, minlength=len(pi)) / w.sum()
    return out


def numpy_sample(pi, A, B, num, length, rng):
    """An independent (slow, simple) sampler used to produce test inputs."""
    m, n = B.shape
    states = np.empty((num, length), dtype=np.int64)
    tokens = np.empty((num, length), dtype=np.int64)
    for b in range(num):
        h = rng.choice(m, p=pi)
        for t in range(length):
            if t:
                h = rng.choice(m, p=A[h])
            states[b, t] = h
            tokens[b, t] = rng.choice(n, p=B[h])
    return tokens, states


def positive_sequences(pi, A, B, T, count, rng, downstream=False):
    """``count`` sequences of length T with positive probability (drawn from the model).

    With ``downstream=True`` they are drawn as ``x_1..x_T`` after an unobserved mask at 0.
    """
    if downstream:
        tok, _ = numpy_sample(pi, A, B, count, T + 1, rng)
        return tok[:, 1:]
    tok, _ = numpy_sample(pi, A, B, count, T, rng)
    return tok


def numpy_forward_log_prob(pi, A, B, x) -> float:
    """Scaled forward algorithm in numpy, float64 (reference for long sequences)."""
    alpha = pi * B[:, x[0]]
    c = alpha.sum()
    alpha /= c
    lp = np.log(c)
    for t in range(1, len(x)):
        alpha = (alpha @ A) * B[:, x[t]]
        c = alpha.sum()
        alpha /= c
        lp += np.log(c)
    return float(lp)


# --------------------------------------------------------------------------- threads
@pytest.fixture(scope="module")
def torch_single_thread():
    """Run a module's tests with one torch thread (restored afterwards).

    The recursions are long chains of tiny ops; on a loaded machine two OpenMP threads
    stall for seconds at a time, while one thread takes milliseconds. Opt in with
    ``pytestmark = pytest.mark.usefixtures("torch_single_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- long run
LONG_T = 100_000


@pytest.fixture(scope="session")
def long_run():
    """T = 100,000 on a peaked paper HMM, in float64 and float32, computed once per session.

    Keys: ``hmm`` (float64 model), ``x`` (2, T) tokens, and ``lp``/``post``/``mpost``
    suffixed with ``64`` or ``32``.
    """
    from hmmtune import paper_hmm

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the recursion is a long chain of tiny ops
    try:
        hmm64 = paper_hmm(6, num_tokens=5, seed=3)
        x, _ = hmm64.sample(2, LONG_T, seed=11)
        hmm32 = hmm64.to(dtype=torch.float32)
        out = {"hmm": hmm64, "x": x}
        for tag, h in (("64", hmm64), ("32", hmm32)):
            out["lp" + tag] = h.log_prob(x)
            out["post" + tag] = h.posterior(x)
            out["mpost" + tag] = h.loo_posterior(x)
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_for_the_suite():
    """The whole suite runs with one torch thread: the recursions are chains of tiny ops,
    for which a second thread only adds synchronisation (and stalls on a loaded machine).
    Benchmarks under bench/ keep torch's default."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
