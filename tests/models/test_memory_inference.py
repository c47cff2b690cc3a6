"""The memory HMM's pure inference functions (hmmtune.models.inference.memory_*) against
brute-force enumeration over (memory configuration, hidden path) on tiny models
(docs/theory.md, "Memory-augmented HMMs")."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from memory_reference import random_memory_arrays  # noqa: E402

from hmmtune.models import inference  # noqa: E402
from hmmtune.models.memory import MemoryHMM  # noqa: E402


def _arrays(N, V, S, n, seed, zeros):
    prior, initial, transition, emission = random_memory_arrays(N, V, S, n, seed, zeros)
    configs = np.array(list(itertools.product(range(V), repeat=N)))  # (C, N), cell 0 most significant
    K = N * S
    rho = np.prod(prior[np.arange(N), configs], axis=1)  # (C,)
    # per-configuration emission table, built independently of MemoryHMM: (n, C, K)
    table = np.empty((n, len(configs), K))
    for c, cfg in enumerate(configs):
        for z in range(K):
            j, s = divmod(z, S)
            table[:, c, z] = emission[cfg[j], s]
    return prior, rho, initial, transition, emission, configs, table


def _enumerate(rho, initial, transition, table, x, start=None):
    """Joint weights w[c, path] = rho(c) P(path) prod_t P(x_t | c, z_t), and per-(c, t, z)
    sums for the smoothed, leave-one-out and prefix/suffix quantities."""
    C, K, T = len(rho), len(initial), len(x)
    init = initial if start is None else start
    out = {
        "px_c": np.zeros(C),  # P(x | c)
        "joint": np.zeros((T, C, K)),  # rho(c) P(x, Z_t = z | c)
        "loo": np.zeros((T, C, K)),  # rho(c) P(x_{-t}, Z_t = z | c)
        "prefix": np.zeros((T, C, K)),  # P(x_{0:t}, Z_t = z | c)
        "suffix": np.zeros((T, C, K)),  # P(x_{t+1:}, | Z_t = z, c) (sum over suffix paths, per z)
        "start": np.zeros((C, K)),  # P(x | Z_{-1} = z, c)
    }
    for path in itertools.product(range(K), repeat=T):
        p = init[path[0]] * np.prod([transition[path[t], path[t + 1]] for t in range(T - 1)])
        for c in range(C):
            f = np.array([table[x[t], c, path[t]] for t in range(T)])
            w = p * f.prod()
            out["px_c"][c] += w
            for t in range(T):
                out["joint"][t, c, path[t]] += rho[c] * w
                out["loo"][t, c, path[t]] += rho[c] * p * np.prod(np.delete(f, t))
    for c in range(C):
        for t in range(T):
            for z in range(K):
                # prefix: paths over 0..t ending in z
                tot = 0.0
                for pre in itertools.product(range(K), repeat=t):
                    path = pre + (z,)
                    q = init[path[0]] * np.prod([transition[path[i], path[i + 1]] for i in range(t)])
                    tot += q * np.prod([table[x[i], c, path[i]] for i in range(t + 1)])
                out["prefix"][t, c, z] = tot
                tot = 0.0
                for suf in itertools.product(range(K), repeat=T - 1 - t):
                    path = (z,) + suf
                    q = np.prod([transition[path[i], path[i + 1]] for i in range(len(suf))])
                    tot += q * np.prod([table[x[t + 1 + i], c, path[1 + i]] for i in range(len(suf))])
                out["suffix"][t, c, z] = tot
        for z in range(K):
            out["start"][c, z] = sum(transition[z, z0] * out["suffix"][0, c, z0] * table[x[0], c, z0] for z0 in range(K))
    return out


CASES = [(1, 3, 2, 3, 4), (2, 2, 2, 3, 3)]  # (N, V, S, n, T)


@pytest.mark.parametrize("N, V, S, n, T", CASES)
@pytest.mark.parametrize("zeros", [False, True])
@pytest.mark.parametrize("after_mask", [False, True])
def test_memory_functions_match_enumeration(N, V, S, n, T, zeros, after_mask):
    prior, rho, initial, transition, emission, configs, table = _arrays(N, V, S, n, seed=5, zeros=zeros)
    model = MemoryHMM(prior, initial, transition, emission, N)
    x = model.sample(3, T, seed=2).tokens.numpy()
    start = initial @ transition if after_mask else initial
    tab = torch.as_tensor(table)
    tok = torch.as_tensor(x)
    lazy = inference.ConfigLikelihoods(tab, tok)
    dense = lazy.dense()
    assert dense.shape == (3, T, len(rho), N * S) == lazy.shape
    log_prior, st, A = torch.as_tensor(np.log(rho)), torch.as_tensor(start), torch.as_tensor(transition)
    refs = [_enumerate(rho, initial, transition, table, s, start) for s in x]
    px_c = np.stack([r["px_c"] for r in refs])  # (B, C)
    px = px_c @ rho
    with np.errstate(divide="ignore"):
        for L in (lazy, dense):
            np.testing.assert_allclose(inference.memory_log_likelihood(st, A, L).exp().numpy(), px_c, rtol=1e-10, atol=1e-300)
            lp, w = inference.memory_log_prob(log_prior, st, A, L)
            np.testing.assert_allclose(lp.numpy(), np.log(px), rtol=1e-11)
            np.testing.assert_allclose(w.numpy(), rho * px_c / px[:, None], atol=1e-12)
    fwd = inference.memory_forward(log_prior, st, A, dense)
    np.testing.assert_allclose(fwd.log_prob.numpy(), np.log(px), rtol=1e-11)
    prefix = np.stack([r["prefix"] for r in refs])  # (B, T, C, K)
    tot = prefix.sum(-1, keepdims=True)
    np.testing.assert_allclose(fwd.filtered.numpy(), np.divide(prefix, tot, out=np.zeros_like(prefix), where=tot > 0), atol=1e-12)
    bwd = inference.memory_backward(A, dense)
    suffix = np.stack([r["suffix"] for r in refs])
    got = (bwd.log_scale.exp()[..., None] * bwd.beta).numpy()
    np.testing.assert_allclose(got, suffix, rtol=1e-10, atol=1e-14)
    post = inference.memory_posteriors(log_prior, st, A, dense, smoothed=True, loo=True, start=True)
    joint = np.stack([r["joint"] for r in refs]) / px[:, None, None, None]
    np.testing.assert_allclose(post.posterior.numpy(), joint, atol=1e-12)
    loo = np.stack([r["loo"] for r in refs])
    loo = loo / loo.sum((-1, -2), keepdims=True)
    np.testing.assert_allclose(post.loo_posterior.numpy(), loo, atol=1e-12)
    np.testing.assert_allclose(post.loo_config_posterior.numpy(), loo.sum(-1), atol=1e-12)
    startm = np.stack([r["start"] for r in refs])  # (B, C, K)
    got = (post.start_log_scale.exp()[..., None] * post.start_backward).numpy()
    np.testing.assert_allclose(got, startm, rtol=1e-10, atol=1e-14)
    # the marginals over this model's indices
    onehot_mem = np.zeros((len(rho), N, V))
    onehot_mem[np.arange(len(rho))[:, None], np.arange(N)[None, :], configs] = 1.0
    np.testing.assert_allclose(
        inference.memory_cell_marginals(post.loo_config_posterior, N, V).numpy(),
        np.einsum("btc,cjv->btjv", loo.sum(-1), onehot_mem),
        atol=1e-12,
    )
    read = model.read_index().numpy()  # (C, K) -> emission row
    onehot_row = np.eye(V * S)[read]  # (C, K, R)
    np.testing.assert_allclose(
        inference.memory_emission_marginals(post.posterior, N, V, S).numpy(),
        np.einsum("btck,ckr->btr", joint, onehot_row),
        atol=1e-12,
    )


def test_memory_functions_name_the_impossible_sequence():
    # one cell, two values; value 1 never emits token 2 and value 0 never token 0
    prior, initial, transition = [0.5, 0.5], [1.0], [[1.0]]
    emission = [[[0.0, 0.5, 0.5]], [[0.5, 0.5, 0.0]]]
    model = MemoryHMM(prior, initial, transition, emission)
    x = torch.tensor([[1, 1], [0, 1], [0, 2], [1, 1]])
    args = (model.log_config_prior(), model.initial, model.transition)
    for fn in (
        lambda: inference.memory_log_prob(*args, model.config_likelihoods(x)),
        lambda: inference.memory_forward(*args, model.config_likelihoods(x).dense()),
        lambda: inference.memory_posteriors(*args, model.config_likelihoods(x).dense(), loo=True),
    ):
        with pytest.raises(inference.ZeroProbabilityError, match=r"sequence 2 .*tokens 0\.\.1") as info:
            fn()
        assert info.value.index == 2 and info.value.position == 1


def test_zero_probability_error_reindexed():
    err = inference.ZeroProbabilityError("sequence 1 has probability zero (forward pass)", 1, 4)
    moved = err.reindexed(10)
    assert isinstance(moved, inference.ZeroProbabilityError)
    assert (moved.index, moved.position, str(moved)) == (11, 4, "sequence 11 has probability zero (forward pass)")
