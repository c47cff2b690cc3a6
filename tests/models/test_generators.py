"""Random HMM generators (item 8): the paper's recipe (docs/theory.md, "The paper's experiments") and Dirichlet HMMs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmmtune import HMM, dirichlet_hmm, paper_hmm

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _np(hmm):
    return hmm.initial.numpy(), hmm.transition.numpy(), hmm.emission.numpy()


def _log_spread(p):
    """log(max / min) of each row: at most 1/temp for softmax((U - 0.5) / temp), U in [0, 1]."""
    return np.log(p.max(-1)) - np.log(p.min(-1))


@pytest.mark.parametrize("m", [1, 2, 4, 10, 30])
def test_paper_hmm_shapes_and_stochasticity(m):
    hmm = paper_hmm(m, seed=m)
    pi, A, B = _np(hmm)
    assert isinstance(hmm, HMM) and hmm.dtype == torch.float64
    assert pi.shape == (m,) and A.shape == (m, m) and B.shape == (m, 10)
    np.testing.assert_allclose(pi.sum(), 1.0, atol=1e-12)
    np.testing.assert_allclose(A.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(A.sum(0), 1.0, atol=1e-12)  # doubly stochastic
    np.testing.assert_allclose(B.sum(1), 1.0, atol=1e-12)
    assert A.min() >= 0


def test_paper_hmm_softmax_temperatures():
    """initial and emission rows are softmax((U - 0.5) / temp): spread at most 1/temp."""
    for seed in range(5):
        pi, _, B = _np(paper_hmm(8, seed=seed))
        assert pi.min() > 0 and _log_spread(pi) <= 0.1 + 1e-12  # start_temp = 10: nearly uniform
        assert B.min() > 0 and np.all(_log_spread(B) <= 100 + 1e-9)  # emission_temp = 0.01
        # nearly one-hot: the typical row puts almost all its mass on one token
        assert np.median(B.max(1)) > 0.9
    pi, _, B = _np(paper_hmm(6, start_temp=0.5, emission_temp=2.0, seed=0))
    assert _log_spread(pi) <= 2 + 1e-12 and np.all(_log_spread(B) <= 0.5 + 1e-12)
    assert _log_spread(pi) > 0.1  # a lower temperature really spreads more


def test_paper_transition_is_a_mixture_of_m_permutations():
    """At a huge temperature all m weights are ~1/m, so m * A is (nearly) the integer
    matrix counting the permutations that map i to j: row and column sums m."""
    for m in (3, 7, 12):
        _, A, _ = _np(paper_hmm(m, transition_temp=1e9, seed=m))
        counts = m * A
        np.testing.assert_allclose(counts, np.round(counts), atol=1e-6)
        np.testing.assert_array_equal(np.round(counts).sum(1), m)
        np.testing.assert_array_equal(np.round(counts).sum(0), m)


def test_paper_transition_is_nearly_deterministic():
    maxima = np.concatenate([_np(paper_hmm(10, seed=s))[1].max(1) for s in range(20)])
    assert np.median(maxima) > 0.99


def test_paper_transition_zero_fraction_matches_random_permutations():
    """A mixture of m independent random permutation matrices leaves entry (i, j) uncovered
    with probability (1 - 1/m)^m (about 1/e), so not every entry of the paper's transition is
    positive (docs/theory.md, "Tolerance mode"). We keep the authors' construction and pin the
    measured zero fraction to that probability."""
    m, seeds = 10, 60
    zeros = np.mean([(_np(paper_hmm(m, seed=seed))[1] == 0).mean() for seed in range(seeds)])
    expected = (1 - 1 / m) ** m
    # standard error of the mean over 60 * 100 weakly dependent entries is about 0.01
    assert abs(zeros - expected) < 0.04, (zeros, expected)


def test_paper_hmm_seeds():
    a, b = paper_hmm(6, seed=42), paper_hmm(6, seed=42)
    for x, y in zip(_np(a), _np(b)):
        np.testing.assert_array_equal(x, y)
    c = paper_hmm(6, seed=43)
    assert not np.array_equal(_np(a)[1], _np(c)[1])
    # a numpy Generator is accepted and advanced
    rng = np.random.default_rng(0)
    g1, g2 = paper_hmm(6, seed=rng), paper_hmm(6, seed=rng)
    assert not np.array_equal(_np(g1)[2], _np(g2)[2])
    same = [_np(paper_hmm(6, seed=np.random.default_rng(0)))[2] for _ in range(2)]
    np.testing.assert_array_equal(same[0], same[1])


def test_paper_hmm_options():
    hmm = paper_hmm(4, num_tokens=3, seed=0, dtype=torch.float32)
    assert hmm.dtype == torch.float32 and hmm.num_tokens == 3
    assert "paper_hmm" in hmm.name


@pytest.mark.parametrize(
    "kwargs, pattern",
    [
        (dict(num_states=0), "num_states"),
        (dict(num_states=2.5), "num_states"),
        (dict(num_states=3, num_tokens=0), "num_tokens"),
        (dict(num_states=3, transition_temp=0), "transition_temp"),
        (dict(num_states=3, emission_temp=-1), "emission_temp"),
        (dict(num_states=3, start_temp=float("nan")), "start_temp"),
        (dict(num_states=3, start_temp=float("inf")), "start_temp"),
    ],
)
def test_paper_hmm_bad_arguments(kwargs, pattern):
    with pytest.raises(ValueError, match=pattern):
        paper_hmm(**kwargs)


def test_dirichlet_hmm():
    hmm = dirichlet_hmm(5, 4, seed=3)
    pi, A, B = _np(hmm)
    assert pi.shape == (5,) and A.shape == (5, 5) and B.shape == (5, 4)
    np.testing.assert_allclose(A.sum(1), 1.0, atol=1e-12)
    np.testing.assert_allclose(B.sum(1), 1.0, atol=1e-12)
    for x, y in zip(_np(dirichlet_hmm(5, 4, seed=3)), _np(hmm)):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(_np(dirichlet_hmm(5, 4, seed=4))[1], A)


def test_dirichlet_concentration():
    # symmetric Dirichlet: mean 1/n; large concentration concentrates at the mean
    flat = _np(dirichlet_hmm(6, 5, 1e6, 1e6, 1e6, seed=0))
    for arr in flat:
        np.testing.assert_allclose(arr, 1 / arr.shape[-1], atol=0.01)
    peaked = _np(dirichlet_hmm(6, 5, 0.05, 0.05, 0.05, seed=0))
    assert np.median(peaked[1].max(1)) > 0.8
    means = np.mean([_np(dirichlet_hmm(3, 4, seed=s))[2] for s in range(400)], axis=0)
    np.testing.assert_allclose(means, 0.25, atol=0.03)


@pytest.mark.parametrize(
    "args, pattern",
    [((0, 3), "num_states"), ((3, 0), "num_tokens"), ((3, 3, 0.0), "initial_concentration"), ((3, 3, 1, -1), "transition_concentration"), ((3, 3, 1, 1, float("nan")), "emission_concentration")],
)
def test_dirichlet_bad_arguments(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        dirichlet_hmm(*args)
