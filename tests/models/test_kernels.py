"""The compiled recursions (hmmtune.models.kernels) against brute-force enumeration over
hidden paths, in float64 and float32, with impossible sequences, small m (loops) and
large m (BLAS)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

kernels = pytest.importorskip("hmmtune.models.kernels")

from conftest import (  # noqa: E402
    TINY_MODELS,
    brute_log_prob,
    brute_masked_posterior,
    brute_posterior,
    brute_prob,
    np_params,
)


def _table(B):
    return np.ascontiguousarray(B.T)


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
@pytest.mark.parametrize("T", [1, 2, 5])
def test_kernels_match_brute_force(name, T):
    pi, A, B = np_params(name)
    rng = np.random.default_rng(T)
    cand = [tuple(rng.integers(0, B.shape[1], T)) for _ in range(60)]
    seqs = list(dict.fromkeys(s for s in cand if brute_prob(pi, A, B, s) > 0))[:6]
    x = np.array(seqs, dtype=np.int64)
    out, fz, bz = kernels.smooth(x, pi, A, _table(B), False)
    assert (fz == -1).all() and (bz == -1).all()
    mout, _, _ = kernels.smooth(x, pi, A, _table(B), True)
    lp, z = kernels.log_prob(x, pi, A, _table(B))
    assert (z == -1).all()
    for b, s in enumerate(seqs):
        np.testing.assert_allclose(out[:, b], brute_posterior(pi, A, B, s), atol=1e-13)
        np.testing.assert_allclose(mout[:, b], brute_masked_posterior(pi, A, B, s), atol=1e-13)
        np.testing.assert_allclose(lp[b], brute_log_prob(pi, A, B, s), rtol=1e-12)
    b0, z = kernels.start_backward(x, A, _table(B))
    for b, s in enumerate(seqs):
        # beta_0[h] is proportional to P(x_1..x_T | H_0 = h): the first observed state ~ A[h]
        ref = np.array([brute_prob(np.eye(len(pi))[h] @ A, A, B, s) for h in range(len(pi))])
        if ref.sum() > 0:
            assert z[b] == -1
            np.testing.assert_allclose(b0[b], ref / ref.sum(), atol=1e-13)


def test_float32_and_blas_path_against_brute_force():
    rng = np.random.default_rng(0)
    m, n, T = 17, 3, 4  # m >= BLAS_FROM: the step is one BLAS product
    assert m >= kernels.BLAS_FROM
    A = rng.random((m, m)) + 0.1
    A /= A.sum(1, keepdims=True)
    E = rng.random((m, n)) + 0.1
    E /= E.sum(1, keepdims=True)
    pi = rng.random(m)
    pi /= pi.sum()
    x = rng.integers(0, n, (3, T)).astype(np.int64)
    for dtype, tol in [(np.float64, 1e-13), (np.float32, 2e-6)]:
        out, _, _ = kernels.smooth(x, pi.astype(dtype), A.astype(dtype), _table(E).astype(dtype), False)
        assert out.dtype == dtype
        lp, _ = kernels.log_prob(x, pi.astype(dtype), A.astype(dtype), _table(E).astype(dtype))
        for b in range(3):
            np.testing.assert_allclose(out[:, b], brute_posterior(pi, A, E, tuple(x[b])), atol=tol)
            np.testing.assert_allclose(lp[b], brute_log_prob(pi, A, E, tuple(x[b])), rtol=tol)


def test_impossible_sequences_give_zero_rows_and_their_first_position():
    pi, A, B = np_params("m2n2")
    T = 5
    seqs = np.array(list(itertools.product(range(2), repeat=T)), dtype=np.int64)
    out, fz, _ = kernels.smooth(seqs, pi, A, _table(B), False)
    lp, z = kernels.log_prob(seqs, pi, A, _table(B))
    np.testing.assert_array_equal(fz, z)
    assert not np.isnan(out).any() and not np.isnan(lp).any()
    for b, s in enumerate(seqs):
        p = brute_prob(pi, A, B, tuple(s))
        if p > 0:
            assert fz[b] == -1
            np.testing.assert_allclose(lp[b], np.log(p), rtol=1e-12)
        else:
            # the first position t at which the prefix x_0..x_t is impossible
            first = next(t for t in range(T) if brute_prob(pi, A, B, tuple(s[: t + 1])) == 0)
            assert fz[b] == first and lp[b] == -np.inf
            assert (out[first:, b] == 0).all()


def test_likelihood_rows_as_the_table():
    """A (B, T, m) likelihood tensor passed as a flat table with tokens = arange."""
    pi, A, B = np_params("m3n4")
    rng = np.random.default_rng(1)
    x = rng.integers(0, B.shape[1], (4, 6))
    L = np.ascontiguousarray(B.T[x])  # (4, 6, m)
    flat = L.reshape(-1, L.shape[-1])
    idx = np.arange(flat.shape[0], dtype=np.int64).reshape(4, 6)
    a, _, _ = kernels.smooth(idx, pi, A, flat, False)
    b, _, _ = kernels.smooth(x.astype(np.int64), pi, A, _table(B), False)
    np.testing.assert_array_equal(a, b)
