"""Exact inference (issue 2, item 6) against brute-force enumeration over hidden paths."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmmtune.models import settings as inference_settings
from hmmtune import HMM, ZeroProbabilityError
from hmmtune.models import inference

from conftest import (
    TINY_MODELS,
    brute_joint,
    brute_log_prob,
    brute_masked_posterior,
    brute_posterior,
    brute_prob,
    np_params,
    numpy_forward_log_prob,
    positive_sequences,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

LENGTHS = [1, 2, 3, 6]


def _batch(name, T, count=4, seed=0):
    pi, A, B = np_params(name)
    return positive_sequences(pi, A, B, T, count, np.random.default_rng(seed + 17 * T))


# ------------------------------------------------------------------ brute force, float64
@pytest.mark.parametrize("T", LENGTHS)
def test_log_prob_matches_brute_force(tiny, T):
    name, (pi, A, B) = tiny
    x = _batch(name, T)
    got = HMM(pi, A, B).log_prob(torch.as_tensor(x))
    assert got.shape == (len(x),) and got.dtype == torch.float64
    want = np.array([brute_log_prob(pi, A, B, s) for s in x])
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("T", LENGTHS)
def test_posterior_matches_brute_force(tiny, T):
    name, (pi, A, B) = tiny
    x = _batch(name, T)
    got = HMM(pi, A, B).posterior(x.tolist())  # list of equal-length lists
    assert got.shape == (len(x), T, len(pi))
    want = np.stack([brute_posterior(pi, A, B, s) for s in x])
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


@pytest.mark.parametrize("T", LENGTHS)
def test_masked_posterior_matches_brute_force(tiny, T):
    name, (pi, A, B) = tiny
    x = _batch(name, T)
    got = HMM(pi, A, B).loo_posterior(np.asarray(x))
    want = np.stack([brute_masked_posterior(pi, A, B, s) for s in x])
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-12)


def test_masked_posterior_first_state_uses_initial():
    """At t = 0 the emission is left out, so P(H_0 | x_{1:}) with H_0 ~ initial.

    For T = 1 nothing is left: the masked posterior is ``initial`` itself.
    """
    pi, A, B = np_params("m3n4")
    hmm = HMM(pi, A, B)
    for tok in range(4):
        if brute_prob(pi, A, B, [tok]) > 0:
            np.testing.assert_allclose(hmm.loo_posterior([tok]).numpy(), pi[None, :], atol=1e-15)


@pytest.mark.parametrize("T", [3, 5])
def test_exhaustive_all_sequences_with_zeros(T):
    """Every sequence of length T over a model with structural zeros: positive ones
    match brute force; every zero-probability one raises."""
    pi, A, B = np_params("m2n2")
    hmm = HMM(pi, A, B)
    n_pos = n_zero = 0
    for seq in itertools.product(range(2), repeat=T):
        p = brute_prob(pi, A, B, seq)
        if p > 0:
            n_pos += 1
            assert hmm.log_prob(list(seq)).item() == pytest.approx(np.log(p), rel=1e-12)
            np.testing.assert_allclose(hmm.posterior(list(seq)).numpy(), brute_posterior(pi, A, B, seq), atol=1e-12)
            np.testing.assert_allclose(
                hmm.loo_posterior(list(seq)).numpy(), brute_masked_posterior(pi, A, B, seq), atol=1e-12
            )
        else:
            n_zero += 1
            for fn in (hmm.log_prob, hmm.posterior, hmm.loo_posterior):
                with pytest.raises(ZeroProbabilityError):
                    fn(list(seq))
    assert n_pos >= 3 and n_zero >= 3, (n_pos, n_zero)  # the model really has both kinds


def test_single_sequence_shapes():
    pi, A, B = np_params("m3n2")
    hmm = HMM(pi, A, B)
    x = [0, 1, 1]
    assert hmm.log_prob(x).shape == ()
    assert hmm.posterior(x).shape == (3, 3)
    assert hmm.loo_posterior(torch.tensor(x)).shape == (3, 3)
    assert hmm.log_prob(x).item() == pytest.approx(brute_log_prob(pi, A, B, x), rel=1e-12)


# ------------------------------------------------------------ the pure inference functions
@pytest.mark.parametrize("name", ["m3n4", "m4n3"])
def test_forward_and_backward_messages_match_brute_force(name):
    pi, A, B = np_params(name)
    T = 5
    x = _batch(name, T, count=3)
    L = torch.as_tensor(B.T[x])  # (B, T, m), built independently of emission_likelihoods
    np.testing.assert_array_equal(inference.emission_likelihoods(torch.as_tensor(B), torch.as_tensor(x)).numpy(), L)
    fwd = inference.hmm_forward(torch.as_tensor(pi), torch.as_tensor(A), L)
    beta = inference.hmm_backward(torch.as_tensor(A), L)
    for b, s in enumerate(x):
        for t in range(T):
            # predicted: P(H_t | x_{0:t-1}); filtered: P(H_t | x_{0:t})
            paths, w = brute_joint(pi, A, B, s, skip=set(range(t, T)))
            pred = np.bincount(paths[:, t], weights=w, minlength=len(pi)) / w.sum()
            paths, w = brute_joint(pi, A, B, s, skip=set(range(t + 1, T)))
            filt = np.bincount(paths[:, t], weights=w, minlength=len(pi)) / w.sum()
            np.testing.assert_allclose(fwd.predicted[b, t].numpy(), pred, atol=1e-12)
            np.testing.assert_allclose(fwd.filtered[b, t].numpy(), filt, atol=1e-12)
            # backward: proportional to P(x_{t+1:} | H_t = h), computed per start state
            # P(x_{t+1:} | H_t=h) directly: start at h, skip the emission at t
            back = np.array(
                [brute_joint(np.eye(len(pi))[h], A, B, s[t:], skip={0})[1].sum() for h in range(len(pi))]
            )
            np.testing.assert_allclose(beta[b, t].numpy(), back / back.sum(), atol=1e-12)
    want_lp = [brute_log_prob(pi, A, B, s) for s in x]
    np.testing.assert_allclose(fwd.log_prob.numpy(), want_lp, rtol=1e-12)


# ------------------------------------------------------------------------------ float32
@pytest.mark.parametrize("name", sorted(TINY_MODELS))
def test_float32_matches_brute_force(name):
    pi, A, B = np_params(name)
    hmm = HMM(pi, A, B, dtype=torch.float32)
    x = _batch(name, 6)
    lp = hmm.log_prob(x)
    post = hmm.posterior(x)
    mpost = hmm.loo_posterior(x)
    assert lp.dtype == post.dtype == mpost.dtype == torch.float32
    np.testing.assert_allclose(lp.numpy(), [brute_log_prob(pi, A, B, s) for s in x], rtol=1e-5)
    np.testing.assert_allclose(post.numpy(), np.stack([brute_posterior(pi, A, B, s) for s in x]), atol=2e-6)
    np.testing.assert_allclose(
        mpost.numpy(), np.stack([brute_masked_posterior(pi, A, B, s) for s in x]), atol=2e-6
    )


# ------------------------------------------------------------------------------ chunking
def test_chunked_results_match_brute_force():
    pi, A, B = np_params("m4n3")
    hmm = HMM(pi, A, B)
    x = _batch("m4n3", 4, count=7)
    want_lp = [brute_log_prob(pi, A, B, s) for s in x]
    want_post = np.stack([brute_posterior(pi, A, B, s) for s in x])
    want_mpost = np.stack([brute_masked_posterior(pi, A, B, s) for s in x])
    for chunk in (1, 2, 3, 7, 100):
        np.testing.assert_allclose(hmm.log_prob(x, chunk_size=chunk).numpy(), want_lp, rtol=1e-12)
        np.testing.assert_allclose(hmm.posterior(x, chunk_size=chunk).numpy(), want_post, atol=1e-12)
        np.testing.assert_allclose(hmm.loo_posterior(x, chunk_size=chunk).numpy(), want_mpost, atol=1e-12)


def test_default_chunk_knob_is_used(monkeypatch):
    """With a tiny chunk_elements setting the default path runs in many chunks and still agrees."""
    pi, A, B = np_params("m3n2")
    hmm = HMM(pi, A, B)
    x = _batch("m3n2", 5, count=6)
    calls = []
    real = inference.hmm_posterior

    def spy(*args):
        out = real(*args)
        calls.append(out.shape[0])
        return out

    monkeypatch.setattr(inference, "hmm_posterior", spy)
    with inference_settings.override(chunk_elements=2 * 5 * 3):  # two sequences per chunk
        got = hmm.posterior(x)
    assert calls == [2, 2, 2]
    np.testing.assert_allclose(got.numpy(), np.stack([brute_posterior(pi, A, B, s) for s in x]), atol=1e-12)


@pytest.mark.parametrize("batch", [1, 3])
def test_inference_does_not_modify_the_model(batch):
    """No method may write into the model's parameters (or the caller's arrays)."""
    pi, A, B = np_params("m3n4")
    arrays = [pi.copy(), A.copy(), B.copy()]
    hmm = HMM(*arrays)
    before = [t.clone() for t in (hmm.initial, hmm.transition, hmm.emission)]
    x = _batch("m3n4", 4, count=batch)
    for method in (hmm.log_prob, hmm.posterior, hmm.loo_posterior):
        method(x)
        method(x, chunk_size=1)
    for t, b in zip((hmm.initial, hmm.transition, hmm.emission), before):
        assert torch.equal(t, b)
    for a, b in zip(arrays, (pi, A, B)):
        np.testing.assert_array_equal(a, b)


def test_bad_chunk_size():
    hmm = HMM(*np_params("m2n2"))
    with pytest.raises(ValueError, match="chunk_size"):
        hmm.log_prob([[0, 1], [1, 1]], chunk_size=0)


# --------------------------------------------------------------------- zero probability
def _impossible_batch():
    """m2n2: state 0 always moves to state 1, which never emits token 0; so '0 0' is
    impossible (state 0 cannot stay), while '0 1' and '1 1' are possible."""
    pi, A, B = np_params("m2n2")
    good = [[0, 1], [1, 1], [0, 1], [1, 1], [0, 1]]
    assert brute_prob(pi, A, B, [0, 0]) == 0
    assert all(brute_prob(pi, A, B, s) > 0 for s in good)
    return HMM(pi, A, B), good


@pytest.mark.parametrize("method", ["log_prob", "posterior", "loo_posterior"])
@pytest.mark.parametrize("bad_index", [0, 3])
@pytest.mark.parametrize("chunk_size", [None, 2])
def test_zero_probability_sequence_names_its_index(method, bad_index, chunk_size):
    hmm, seqs = _impossible_batch()
    seqs[bad_index] = [0, 0]
    with pytest.raises(ZeroProbabilityError, match=rf"sequence {bad_index}\b") as info:
        getattr(hmm, method)(seqs, chunk_size=chunk_size)
    assert isinstance(info.value, ValueError)
    assert info.value.index == bad_index
    assert info.value.position == 1


def test_zero_probability_first_token():
    # only state 1 has initial mass, and it never emits token 0
    hmm = HMM([0.0, 1.0], [[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(ZeroProbabilityError) as info:
        hmm.log_prob([[1, 0], [0, 1]])
    assert info.value.index == 1 and info.value.position == 0
    assert "sequence 1" in str(info.value)


def test_no_nan_ever_returned_for_impossible_sequences():
    hmm, _ = _impossible_batch()
    for fn in (hmm.log_prob, hmm.posterior, hmm.loo_posterior):
        with pytest.raises(ZeroProbabilityError):
            fn([0, 0])


# ----------------------------------------------------------------------- long sequences
def test_long_sequence_finite(long_run):
    T = long_run["x"].shape[1]
    for tag, dtype in (("64", torch.float64), ("32", torch.float32)):
        lp, post, mpost = long_run["lp" + tag], long_run["post" + tag], long_run["mpost" + tag]
        assert lp.dtype == post.dtype == mpost.dtype == dtype
        assert post.shape == mpost.shape == (2, T, 6)
        for arr in (lp, post, mpost):
            assert bool(torch.isfinite(arr).all()), f"non-finite values in float{tag}"
        for arr in (post, mpost):
            assert float((arr.double().sum(-1) - 1).abs().max()) < (1e-12 if tag == "64" else 1e-5)
            assert float(arr.min()) >= 0


def test_long_sequence_log_prob_matches_numpy_forward(long_run):
    hmm, x = long_run["hmm"], long_run["x"].numpy()
    pi, A, B = (a.numpy() for a in (hmm.initial, hmm.transition, hmm.emission))
    want = np.array([numpy_forward_log_prob(pi, A, B, s) for s in x])
    np.testing.assert_allclose(long_run["lp64"].numpy(), want, rtol=1e-10)
    # float32 accumulates 1e5 rounded log-normalisers
    np.testing.assert_allclose(long_run["lp32"].double().numpy(), want, rtol=1e-4, atol=1e-2)


def test_long_sequence_float32_close_to_float64(long_run):
    for key in ("post", "mpost"):
        diff = (long_run[key + "32"].double() - long_run[key + "64"]).abs()
        assert float(diff.max()) < 5e-3, key
        assert float(diff.mean()) < 1e-5, key


# ------------------------------------------------------------------ hypothesis properties
@st.composite
def tiny_hmms(draw, min_m=1, max_m=3, max_n=3, positive_emission=False):
    m = draw(st.integers(min_m, max_m))
    n = draw(st.integers(1, max_n))

    def stochastic(rows, cols, low):
        mat = np.array(draw(st.lists(st.lists(st.integers(low, 4), min_size=cols, max_size=cols), min_size=rows, max_size=rows)), float)
        for r in range(rows):
            if mat[r].sum() == 0:
                mat[r, draw(st.integers(0, cols - 1))] = 1.0
        return mat / mat.sum(1, keepdims=True)

    pi = stochastic(1, m, 0)[0]
    A = stochastic(m, m, 0)
    B = stochastic(m, n, 1 if positive_emission else 0)
    return pi, A, B


@st.composite
def hmm_and_sequence(draw, max_T=4):
    pi, A, B = draw(tiny_hmms())
    T = draw(st.integers(1, max_T))
    # draw a hidden path and tokens that the model can produce (probability > 0)
    h = [draw(st.sampled_from(np.flatnonzero(pi).tolist()))]
    for _ in range(T - 1):
        h.append(draw(st.sampled_from(np.flatnonzero(A[h[-1]]).tolist())))
    x = [draw(st.sampled_from(np.flatnonzero(B[s]).tolist())) for s in h]
    return pi, A, B, x


HYP = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@HYP
@given(hmm_and_sequence())
def test_property_posteriors_sum_to_one_and_match_brute_force(case):
    pi, A, B, x = case
    hmm = HMM(pi, A, B)
    post = hmm.posterior(x).numpy()
    mpost = hmm.loo_posterior(x).numpy()
    np.testing.assert_allclose(post.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(mpost.sum(-1), 1.0, atol=1e-12)
    assert post.min() >= 0 and mpost.min() >= 0
    np.testing.assert_allclose(post, brute_posterior(pi, A, B, x), atol=1e-10)


@HYP
@given(hmm_and_sequence(), st.randoms(use_true_random=False))
def test_property_relabelling_states_permutes_posteriors(case, rnd):
    pi, A, B, x = case
    m = len(pi)
    perm = list(range(m))
    rnd.shuffle(perm)
    perm = np.array(perm)  # new state j is old state perm[j]
    orig = HMM(pi, A, B)
    relabelled = HMM(pi[perm], A[np.ix_(perm, perm)], B[perm])
    np.testing.assert_allclose(relabelled.posterior(x).numpy(), orig.posterior(x).numpy()[:, perm], atol=1e-12)
    np.testing.assert_allclose(
        relabelled.loo_posterior(x).numpy(), orig.loo_posterior(x).numpy()[:, perm], atol=1e-12
    )
    assert relabelled.log_prob(x).item() == pytest.approx(orig.log_prob(x).item(), rel=1e-12, abs=1e-12)


@HYP
@given(tiny_hmms(max_m=3, max_n=3, positive_emission=True), st.integers(1, 4))
def test_property_log_prob_sums_to_one_over_all_sequences(params, T):
    pi, A, B = params
    n = B.shape[1]
    seqs = torch.tensor(list(itertools.product(range(n), repeat=T)), dtype=torch.long)
    lp = HMM(pi, A, B).log_prob(seqs)
    assert abs(torch.logsumexp(lp, 0).item()) < 1e-12
