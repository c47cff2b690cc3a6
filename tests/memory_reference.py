"""Brute-force reference for memory-augmented HMMs (docs/theory.md, "Memory-augmented HMMs"), numpy only.

It enumerates every memory configuration and every path of the chain ``Z_t = (J_t, S_t)``
and shares no code with :mod:`hmmtune`, so agreement with it is evidence. Exponential in
the length: tiny models only.

Conventions written down here from the spec (and checked against the library by the
tests): chain state ``z = j * S + s``, emission row ``v * S + s``, configurations in
``itertools.product(range(V), repeat=N)`` order.
"""

from __future__ import annotations

import itertools

import numpy as np


def random_memory_arrays(N: int, V: int, S: int, n: int, seed: int, zeros: bool = True):
    """Random parameters ``(prior (N, V), initial (K,), transition (K, K), emission (V, S, n))``.

    With ``zeros``, some emission and transition entries are exactly 0 (every row keeps
    a positive entry), so some configurations cannot emit some tokens.
    """
    rng = np.random.default_rng(seed)
    K = N * S
    prior = rng.dirichlet(np.ones(V), size=N)
    initial = rng.dirichlet(np.ones(K))
    transition = rng.dirichlet(np.ones(K), size=K)
    emission = rng.dirichlet(np.ones(n), size=(V, S))
    if zeros:
        mask = rng.random(emission.shape) < 0.3
        mask[..., 0] &= ~mask[..., 1:].all(-1)  # keep one positive entry per row
        emission = np.where(mask, 0.0, emission)
        emission /= emission.sum(-1, keepdims=True)
        if K > 1:
            cols = rng.integers(0, K, size=K)
            transition[np.arange(K), cols] = 0.0
            transition /= transition.sum(-1, keepdims=True)
    return prior, initial, transition, emission


def brute_force(prior, initial, transition, emission, factors):
    """Exact marginals by enumeration.

    Args:
        prior: (N, V); initial: (K,); transition: (K, K); emission: (V, S, n) (only its
            shape is used here: the token likelihoods come in ``factors``).
        factors: (B, P, V*S): the likelihood of what is seen at each position as a
            function of the emitting pair (row ``v * S + s``): ``emission[v, s, x]`` for
            a token x, all ones for a mask, a prompt row for a soft token.

    Returns:
        dict with ``prob`` (B,), ``memory`` (B, N, V), ``z`` (B, P, K), ``row`` (B, P, V*S),
        and the leave-one-out ``loo_z``, ``loo_row``, ``loo_memory`` (B, P, ...), where
        position t's factor is replaced by ones.
    """
    prior = np.asarray(prior, float)
    N, V = prior.shape
    K = len(initial)
    S = K // N
    factors = np.asarray(factors, float)
    B, P, R = factors.shape
    assert R == V * S
    configs = np.array(list(itertools.product(range(V), repeat=N)))  # (C, N)
    C = len(configs)
    rho = np.prod(prior[np.arange(N), configs], axis=1)  # (C,)
    paths = np.array(list(itertools.product(range(K), repeat=P)))  # (Q, P)
    path_prob = np.asarray(initial)[paths[:, 0]].copy()
    for t in range(P - 1):
        path_prob *= np.asarray(transition)[paths[:, t], paths[:, t + 1]]
    cells, local = paths // S, paths % S
    rows = configs[:, cells] * S + local  # (C, Q, P)

    def weights(F):
        # (B, C, Q) = rho(c) P(path) prod_t F[b, t, rows[c, q, t]]
        f = F[:, np.arange(P)[None, None, :], rows]  # (B, C, Q, P)
        return rho[None, :, None] * path_prob[None, None, :] * f.prod(-1)

    onehot_z = np.eye(K)[paths]  # (Q, P, K)
    onehot_row = np.eye(R)[rows]  # (C, Q, P, R)
    onehot_mem = np.zeros((C, N, V))
    onehot_mem[np.arange(C)[:, None], np.arange(N)[None, :], configs] = 1.0

    def marginals(w):
        tot = w.sum((1, 2))
        with np.errstate(invalid="ignore"):  # a point-mass prior may make every path impossible
            return (
                tot,
                np.einsum("bcq,cjv->bjv", w, onehot_mem) / tot[:, None, None],
                np.einsum("bcq,qtk->btk", w, onehot_z) / tot[:, None, None],
                np.einsum("bcq,cqtr->btr", w, onehot_row) / tot[:, None, None],
            )

    prob, memory, z, row = marginals(weights(factors))
    loo_z = np.empty_like(z)
    loo_row = np.empty_like(row)
    loo_mem = np.empty((B, P, N, V))
    for t in range(P):
        F = factors.copy()
        F[:, t, :] = 1.0
        _, m_t, z_t, r_t = marginals(weights(F))
        loo_z[:, t], loo_row[:, t], loo_mem[:, t] = z_t[:, t], r_t[:, t], m_t
    return {
        "prob": prob,
        "memory": memory,
        "z": z,
        "row": row,
        "loo_z": loo_z,
        "loo_row": loo_row,
        "loo_memory": loo_mem,
    }


def token_factors(emission, tokens, mask_first: bool = False, prompt=None):
    """Factors for :func:`brute_force`: optional prompt rows (k, V*S), an optional mask,
    then the tokens (B, T)."""
    emission = np.asarray(emission, float)
    V, S, n = emission.shape
    rows = emission.reshape(V * S, n)
    tokens = np.asarray(tokens)
    F = rows.T[tokens]  # (B, T, V*S)
    B = F.shape[0]
    pre = []
    if prompt is not None:
        pre.append(np.broadcast_to(np.asarray(prompt, float), (B,) + np.shape(prompt)))
    if mask_first:
        pre.append(np.ones((B, 1, V * S)))
    return np.concatenate(pre + [F], 1) if pre else F
