"""Against hmmlearn's CategoricalHMM, an implementation we did not write (items 6, 9)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

hmmlearn_hmm = pytest.importorskip("hmmlearn.hmm")

from hmmtune import HMM, dirichlet_hmm, paper_hmm
from hmmtune.io import hmm_from_hmmlearn, hmm_to_hmmlearn

from conftest import np_params, positive_sequences

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _reference(pi, A, B):
    """A CategoricalHMM built directly, not through our adapter."""
    ref = hmmlearn_hmm.CategoricalHMM(n_components=len(pi), n_features=B.shape[1], init_params="", params="")
    ref.startprob_ = np.asarray(pi, float)
    ref.transmat_ = np.asarray(A, float)
    ref.emissionprob_ = np.asarray(B, float)
    return ref


def _stacked(x):
    x = np.asarray(x)
    return x.reshape(-1, 1), [x.shape[1]] * x.shape[0]


@pytest.mark.parametrize("T", [1, 4, 9])
def test_predict_proba_and_score_tiny(tiny, T):
    name, (pi, A, B) = tiny
    x = positive_sequences(pi, A, B, T, 5, np.random.default_rng(T))
    ref = _reference(pi, A, B)
    X, lengths = _stacked(x)
    hmm = HMM(pi, A, B)
    np.testing.assert_allclose(
        hmm.posterior(x).numpy().reshape(-1, len(pi)), ref.predict_proba(X, lengths), atol=1e-10
    )
    # score sums log-likelihoods over the sequences
    assert float(hmm.log_prob(x).sum()) == pytest.approx(ref.score(X, lengths), rel=1e-10)
    for s in x:
        assert float(hmm.log_prob(s)) == pytest.approx(ref.score(s.reshape(-1, 1)), rel=1e-10)


@pytest.mark.parametrize("make", [lambda: paper_hmm(12, seed=0), lambda: dirichlet_hmm(7, 5, 0.5, 0.5, 0.5, seed=1)])
def test_predict_proba_and_score_random_models(make):
    hmm = make()
    x, _ = hmm.sample(40, 64, seed=2)
    ref = _reference(*(a.numpy() for a in (hmm.initial, hmm.transition, hmm.emission)))
    X, lengths = _stacked(x.numpy())
    np.testing.assert_allclose(
        hmm.posterior(x).numpy().reshape(-1, hmm.num_states), ref.predict_proba(X, lengths), atol=1e-8
    )
    assert float(hmm.log_prob(x).sum()) == pytest.approx(ref.score(X, lengths), rel=1e-10)


def test_long_sequence_against_hmmlearn(long_run):
    """T = 100,000: our float64 results agree with hmmlearn's (log-space) forward-backward."""
    hmm, x = long_run["hmm"], long_run["x"].numpy()
    ref = _reference(*(a.numpy() for a in (hmm.initial, hmm.transition, hmm.emission)))
    for b in range(x.shape[0]):
        X = x[b].reshape(-1, 1)
        assert float(long_run["lp64"][b]) == pytest.approx(ref.score(X), rel=1e-9)
        np.testing.assert_allclose(long_run["post64"][b].numpy(), ref.predict_proba(X), atol=1e-7)


def test_to_hmmlearn_and_back():
    pi, A, B = np_params("m3n4")
    hmm = HMM(pi, A, B)
    ref = hmm_to_hmmlearn(hmm)
    assert isinstance(ref, hmmlearn_hmm.CategoricalHMM)
    assert ref.n_components == 3 and ref.n_features == 4
    np.testing.assert_array_equal(ref.startprob_, pi)
    np.testing.assert_array_equal(ref.transmat_, A)
    np.testing.assert_array_equal(ref.emissionprob_, B)
    back = hmm_from_hmmlearn(ref)
    for ours, theirs in ((back.initial, pi), (back.transition, A), (back.emission, B)):
        np.testing.assert_array_equal(ours.numpy(), theirs)
    # the exported model computes the same things in hmmlearn
    x = positive_sequences(pi, A, B, 6, 4, np.random.default_rng(0))
    X, lengths = _stacked(x)
    np.testing.assert_allclose(ref.predict_proba(X, lengths), hmm.posterior(x).numpy().reshape(-1, 3), atol=1e-10)


def test_from_fitted_hmmlearn_model():
    """A model hmmlearn fitted itself (its own parameter layout) gives the same posteriors."""
    truth = paper_hmm(3, num_tokens=4, emission_temp=0.5, transition_temp=0.5, seed=4)
    x, _ = truth.sample(30, 50, seed=5)
    X, lengths = _stacked(x.numpy())
    fitted = hmmlearn_hmm.CategoricalHMM(n_components=3, n_iter=5, random_state=0).fit(X, lengths)
    ours = hmm_from_hmmlearn(fitted)
    assert ours.dtype == torch.float64
    np.testing.assert_allclose(ours.posterior(x).numpy().reshape(-1, 3), fitted.predict_proba(X, lengths), atol=1e-8)
    assert float(ours.log_prob(x).sum()) == pytest.approx(fitted.score(X, lengths), rel=1e-10)
    f32 = hmm_from_hmmlearn(fitted, dtype=torch.float32)
    assert f32.dtype == torch.float32


def test_from_unfitted_hmmlearn_model():
    with pytest.raises(ValueError, match="startprob_"):
        hmm_from_hmmlearn(hmmlearn_hmm.CategoricalHMM(n_components=2))
