"""The authors' own models and tasks, re-derived here with numpy's legacy global generator
exactly as their public ``src/generate_data.py`` does (an independent reference)."""

import numpy as np
import pytest
import torch

from hmmtune import OracleMLM, paper_hmm
from hmmtune.tuning.tasks import authors_label_posterior, authors_task, sample_inputs


def _their_softmax(x, temp=1.0, axis=None):  # their function, verbatim in behaviour
    x /= temp
    if axis is None:
        x -= np.amax(x)
        return np.exp(x) / np.sum(np.exp(x))
    x -= np.expand_dims(np.amax(x, axis=axis), axis=axis)
    return np.exp(x) / np.expand_dims(np.sum(np.exp(x), axis=axis), axis=axis)


def _their_draws(m, n, seed):
    state = np.random.get_state()
    try:
        np.random.seed(seed)
        startprob = _their_softmax(np.random.rand(m) - 0.5, 10.0)
        mixing = _their_softmax(np.random.rand(m) - 0.5, 0.01)[:, np.newaxis, np.newaxis]
        perms = [np.eye(m)[np.random.permutation(m)] for i in range(m)]
        transmat = np.sum(mixing * perms, axis=0)
        emission = _their_softmax(np.random.rand(m, n) - 0.5, 0.01, axis=1)
        np.random.seed(seed)  # downstream seed = seed on the first attempt
        w = np.zeros(2 * m)
        idx = np.random.choice(len(w), size=6)
        w[idx] = np.random.randn(len(idx))
        return startprob, transmat, emission, w.reshape((2, m))
    finally:
        np.random.set_state(state)


@pytest.mark.parametrize("m,seed", [(4, 1), (8, 2), (10, 7), (15, 20), (30, 3)])
def test_authors_models_equal_their_draws(m, seed):
    start, trans, emis, w = _their_draws(m, 10, seed)
    hmm = paper_hmm(m, 10, seed=seed, source="authors")
    np.testing.assert_array_equal(hmm.initial.numpy(), start)
    np.testing.assert_array_equal(hmm.transition.numpy(), trans)
    np.testing.assert_array_equal(hmm.emission.numpy(), emis)
    np.testing.assert_array_equal(authors_task(m, seed).weights.numpy(), w)


def test_authors_retry_uses_attempt_as_downstream_seed():
    state = np.random.get_state()
    np.random.seed(3)
    w = np.zeros(16)
    idx = np.random.choice(16, size=6)
    w[idx] = np.random.randn(6)
    np.random.set_state(state)
    np.testing.assert_array_equal(authors_task(8, 11, attempt=3).weights.numpy(), w.reshape(2, 8))


def test_authors_source_needs_integer_seed():
    with pytest.raises(ValueError, match="integer seed"):
        paper_hmm(4, 10, seed=None, source="authors")
    with pytest.raises(ValueError, match="source"):
        paper_hmm(4, 10, seed=1, source="theirs")


def test_authors_label_posterior_against_hmmlearn_and_exact():
    hmmlearn = pytest.importorskip("hmmlearn.hmm")
    hmm = paper_hmm(4, 10, seed=5, source="authors")
    x = sample_inputs(hmm, 50, 12, seed=0)
    ref = hmmlearn.CategoricalHMM(n_components=4)
    ref.startprob_ = hmm.initial.numpy()
    ref.transmat_ = hmm.transition.numpy()
    ref.emissionprob_ = hmm.emission.numpy()
    ours = authors_label_posterior(hmm, x).numpy()
    for b in range(5):
        p_h1 = ref.predict_proba(x[b].numpy()[:, None])[0]
        np.testing.assert_allclose(ours[b], ref.transmat_ @ p_h1, rtol=1e-9, atol=1e-12)
    # On a uniform-initial, doubly stochastic model the convention is exact.
    from hmmtune import HMM

    A = np.full((3, 3), 0.1) + 0.7 * np.eye(3)[[1, 2, 0]]
    E = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    sym = HMM(np.full(3, 1 / 3), A, E)
    x = sample_inputs(sym, 20, 6, seed=1)
    torch.testing.assert_close(authors_label_posterior(sym, x), OracleMLM(sym).mask_posterior(x), rtol=1e-12, atol=1e-14)
