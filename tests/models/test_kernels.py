"""The compiled recursions (hmmtune.models.kernels) against brute-force enumeration over
hidden paths, in float64 and float32, with impossible sequences, small m (loops) and
large m (BLAS)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

kernels = pytest.importorskip("hmmtune.models.kernels")

from hmmtune.models import kernel_plan  # noqa: E402

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
    """m >= BLAS_FROM and at least BLAS_MIN_ROWS sequences: the step is one BLAS product."""
    rng = np.random.default_rng(0)
    m, n, T = 33, 3, 4
    A = rng.random((m, m)) + 0.1
    A /= A.sum(1, keepdims=True)
    E = rng.random((m, n)) + 0.1
    E /= E.sum(1, keepdims=True)
    pi = rng.random(m)
    pi /= pi.sum()
    Bn = kernel_plan.BLAS_MIN_ROWS
    assert kernels.uses_blas(Bn, m) and not kernels.uses_blas(Bn - 1, m) and not kernels.uses_blas(Bn, kernel_plan.BLAS_FROM - 1)
    x = rng.integers(0, n, (Bn, T)).astype(np.int64)
    for dtype, tol in [(np.float64, 1e-13), (np.float32, 2e-6)]:
        out, _, _ = kernels.smooth(x, pi.astype(dtype), A.astype(dtype), _table(E).astype(dtype), False)
        assert out.dtype == dtype
        lp, _ = kernels.log_prob(x, pi.astype(dtype), A.astype(dtype), _table(E).astype(dtype))
        for b in range(Bn):
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


@pytest.mark.parametrize("m", [3, 9])
@pytest.mark.parametrize("threads", [2, 3])
def test_sequences_split_over_threads_give_the_same_numbers(m, threads, monkeypatch):
    """Chunks of sequences on several threads (each writing its rows of one output) against
    one thread, and a few sequences of every chunk against brute-force enumeration."""
    monkeypatch.setattr(kernel_plan, "THREADS_MIN_ENTRIES", 0)
    rng = np.random.default_rng(m)
    A = rng.random((m, m)) + 0.05
    A /= A.sum(1, keepdims=True)
    E = rng.random((m, 4)) + 0.05
    E /= E.sum(1, keepdims=True)
    pi = np.full(m, 1.0 / m)
    B, T = 40, 4
    x = rng.integers(0, 4, (B, T)).astype(np.int64)
    assert len(kernels._split(B, T, m, threads)) == threads
    for masked in (False, True):
        one = kernels.smooth(x, pi, A, _table(E), masked, threads=1)
        many = kernels.smooth(x, pi, A, _table(E), masked, threads=threads)
        for a, b in zip(one, many):
            np.testing.assert_allclose(b, a, rtol=0, atol=1e-15)
    np.testing.assert_allclose(kernels.log_prob(x, pi, A, _table(E), threads=threads)[0], kernels.log_prob(x, pi, A, _table(E))[0], rtol=1e-15)
    np.testing.assert_allclose(kernels.start_backward(x, A, _table(E), threads=threads)[0], kernels.start_backward(x, A, _table(E))[0], atol=1e-15)
    out, _, _ = kernels.smooth(x, pi, A, _table(E), False, threads=threads)
    lp, _ = kernels.log_prob(x, pi, A, _table(E), threads=threads)
    for b in (0, B // 2, B - 1):  # the first, a middle and the last chunk
        s = tuple(x[b])
        np.testing.assert_allclose(out[:, b], brute_posterior(pi, A, E, s), atol=1e-13)
        np.testing.assert_allclose(lp[b], brute_log_prob(pi, A, E, s), rtol=1e-12)


def test_impossible_sequences_in_every_chunk(monkeypatch):
    monkeypatch.setattr(kernel_plan, "THREADS_MIN_ENTRIES", 0)
    pi, A, B = np_params("m2n2")
    seqs = np.array(list(itertools.product(range(2), repeat=5)), dtype=np.int64)
    ref = kernels.smooth(seqs, pi, A, _table(B), False)
    got = kernels.smooth(seqs, pi, A, _table(B), False, threads=2)
    for a, b in zip(ref, got):
        np.testing.assert_array_equal(b, a)
    np.testing.assert_array_equal(kernels.log_prob(seqs, pi, A, _table(B), threads=2)[1], kernels.log_prob(seqs, pi, A, _table(B))[1])


def test_small_calls_stay_on_one_thread():
    assert kernels._split(1, 100_000, 4, 2) == [(0, 1)]  # one sequence
    assert kernels._split(8, 10, 4, 2) == [(0, 8)]  # too little work to hand over
    assert kernels._split(4000, 64, 4, 2) == [(0, 2000), (2000, 4000)]
    assert kernels._split(4000, 64, 32, 2, "blas") == [(0, 4000)]  # one BLAS product: BLAS threads it
    assert kernels._split(4000, 64, 32, 2, "sparse") == [(0, 2000), (2000, 4000)]


def _sparse_model(m, n, successors, seed):
    rng = np.random.default_rng(seed)
    A = np.zeros((m, m))
    for i in range(m):
        A[i, rng.choice(m, successors, replace=False)] = rng.random(successors) + 0.1
    A /= A.sum(1, keepdims=True)
    E = rng.random((m, n)) + 0.1
    E /= E.sum(1, keepdims=True)
    return np.full(m, 1.0 / m), A, E


def test_sparse_transition_against_brute_force():
    """A transition with 2 successors per state (density 2/70 <= SPARSE_DENSITY) runs in
    CSR form; every quantity against brute-force enumeration over the 70^2 hidden paths."""
    pi, A, E = _sparse_model(70, 4, 2, seed=0)
    assert kernels.step_form(5, A) == "sparse" and kernels.step_form(1, A) == "sparse"
    x = np.array([[0, 1], [2, 3], [1, 1], [3, 0], [2, 2]], dtype=np.int64)
    seqs = [tuple(r) for r in x]
    assert all(brute_prob(pi, A, E, s) > 0 for s in seqs)
    out, fz, bz = kernels.smooth(x, pi, A, _table(E), False)
    mout, _, _ = kernels.smooth(x, pi, A, _table(E), True)
    lp, _ = kernels.log_prob(x, pi, A, _table(E))
    b0, _ = kernels.start_backward(x, A, _table(E))
    assert (fz == -1).all() and (bz == -1).all()
    for b, s in enumerate(seqs):
        np.testing.assert_allclose(out[:, b], brute_posterior(pi, A, E, s), atol=1e-13)
        np.testing.assert_allclose(mout[:, b], brute_masked_posterior(pi, A, E, s), atol=1e-13)
        np.testing.assert_allclose(lp[b], brute_log_prob(pi, A, E, s), rtol=1e-12)
        ref = np.array([brute_prob(np.eye(70)[h] @ A, A, E, s) for h in range(70)])
        np.testing.assert_allclose(b0[b], ref / ref.sum(), atol=1e-13)


@pytest.mark.parametrize("threads", [1, 2])
def test_sparse_and_dense_forms_agree(threads, monkeypatch):
    monkeypatch.setattr(kernel_plan, "THREADS_MIN_ENTRIES", 0)
    pi, A, E = _sparse_model(80, 5, 2, seed=1)
    x = np.random.default_rng(2).integers(0, 5, (6, 40)).astype(np.int64)
    sparse = (kernels.smooth(x, pi, A, _table(E), False, threads=threads)[0], kernels.log_prob(x, pi, A, _table(E), threads=threads)[0],
              kernels.start_backward(x, A, _table(E), threads=threads)[0])
    monkeypatch.setattr(kernel_plan, "SPARSE_FROM", 10**9)
    assert kernels.step_form(6, A) == "blas"
    dense = (kernels.smooth(x, pi, A, _table(E), False)[0], kernels.log_prob(x, pi, A, _table(E))[0], kernels.start_backward(x, A, _table(E))[0])
    for a, b in zip(sparse, dense):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def test_inference_knows_the_kernels_thresholds():
    import torch

    from hmmtune.models import inference

    for B, T, m in [(1, 10**5, 4), (4000, 64, 4), (4000, 64, 40), (3, 10, 4), (2, 10**5, 31)]:
        form = "blas" if kernels.uses_blas(B, m) else "loops"
        assert inference.kernel_split(B, T, m) == len(kernels._split(B, T, m, torch.get_num_threads(), form))


def test_inference_knows_when_the_kernels_go_sparse():
    from hmmtune.models import inference

    for m, successors in [(70, 2), (70, 3), (40, 1), (200, 6), (200, 7)]:
        _, A, _ = _sparse_model(m, 3, successors, seed=0)
        assert inference.kernel_sparse(m, int(np.count_nonzero(A))) == (kernels.step_form(5, A) == "sparse")


def test_threads_work_in_a_forked_child(monkeypatch):
    """A child forked after the kernels' thread pool exists gets a pool of its own (the
    inherited one has no threads: work handed to it would never run)."""
    import multiprocessing as mp

    monkeypatch.setattr(kernel_plan, "THREADS_MIN_ENTRIES", 0)
    pi, A, B = np_params("m3n4")
    x = np.random.default_rng(0).integers(0, 4, (8, 5)).astype(np.int64)
    ref = kernels.log_prob(x, pi, A, _table(B), threads=2)[0]  # the parent's pool now exists
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        got = pool.apply_async(_child_log_prob, (x, pi, A, _table(B))).get(timeout=60)
    np.testing.assert_array_equal(got, ref)


def _child_log_prob(x, pi, A, table):
    kernel_plan.THREADS_MIN_ENTRIES = 0
    return kernels.log_prob(x, pi, A, table, threads=2)[0]
