"""``hmm.model`` and ``to_pyro_discrete_hmm`` against Pyro's own exact enumeration (items 4, 9)."""

from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import TraceEnum_ELBO

from hmmtune import HMM
from hmmtune.io import hmm_to_pyro_discrete_hmm

from conftest import brute_log_prob, brute_posterior, brute_prob, np_params, positive_sequences

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _empty_guide(*args, **kwargs):
    pass


def _batch(name, T, count=3, seed=5):
    pi, A, B = np_params(name)
    return torch.as_tensor(positive_sequences(pi, A, B, T, count, np.random.default_rng(seed + T)))


@pytest.fixture(autouse=True)
def _clear_param_store():
    pyro.clear_param_store()
    yield


@pytest.mark.parametrize("T", [1, 2, 5])
def test_trace_enum_elbo_evidence_is_log_prob(tiny, T):
    """With an empty guide every latent is enumerated exactly: loss = -sum_b log p(x_b)."""
    name, (pi, A, B) = tiny
    hmm = HMM(pi, A, B)
    x = _batch(name, T)
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(hmm.model, _empty_guide, x)
    ours = hmm.log_prob(x)
    brute = sum(brute_log_prob(pi, A, B, s) for s in x.numpy())
    assert -loss == pytest.approx(brute, rel=1e-10, abs=1e-10)
    assert float(ours.sum()) == pytest.approx(-loss, rel=1e-10, abs=1e-10)


@pytest.mark.parametrize("T", [1, 3, 5])
def test_compute_marginals_is_posterior(tiny, T):
    name, (pi, A, B) = tiny
    if len(pi) == 1:
        pytest.skip("Pyro's compute_marginals asserts on a latent with a single value (Pyro 1.9)")
    hmm = HMM(pi, A, B)
    x = _batch(name, T)
    marginals = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(hmm.model, _empty_guide, x)
    assert set(marginals) == {f"h_{t}" for t in range(T)}
    pyro_post = torch.stack([marginals[f"h_{t}"].probs for t in range(T)], dim=1)  # (B, T, m)
    ours = hmm.posterior(x)
    np.testing.assert_allclose(ours.numpy(), pyro_post.detach().numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.numpy(), np.stack([brute_posterior(pi, A, B, s) for s in x.numpy()]), atol=1e-12)


def test_pyro_enumeration_float32():
    pi, A, B = np_params("m4n3")
    hmm = HMM(pi, A, B, dtype=torch.float32)
    x = _batch("m4n3", 4)
    loss = TraceEnum_ELBO(max_plate_nesting=1).loss(hmm.model, _empty_guide, x)
    assert float(hmm.log_prob(x).sum()) == pytest.approx(-loss, rel=1e-5)


def test_model_sites_are_enumerated_in_a_plate():
    hmm = HMM(*np_params("m3n2"))
    x = _batch("m3n2", 3)
    tr = poutine.trace(hmm.model).get_trace(x)
    for t in range(3):
        site = tr.nodes[f"h_{t}"]
        assert site["infer"].get("enumerate") == "parallel"
        assert not site["is_observed"]
        assert tr.nodes[f"x_{t}"]["is_observed"]
        assert torch.equal(tr.nodes[f"x_{t}"]["value"], x[:, t])
        assert [f.name for f in site["cond_indep_stack"]] == ["sequences"]


def test_model_samples_when_tokens_is_none():
    pi, A, B = np_params("m3n4")
    hmm = HMM(pi, A, B)
    pyro.set_rng_seed(0)
    out = hmm.model(None, num_sequences=6, length=4)
    assert out.shape == (6, 4)
    assert out.dtype == torch.long or not torch.is_floating_point(out)
    for s in out.long().numpy():
        assert brute_prob(pi, A, B, s) > 0


@pytest.mark.parametrize("T", [1, 2, 6])
def test_discrete_hmm_log_prob(tiny, T):
    """Pyro's DiscreteHMM puts its initial law one step before the first token; the
    adapter must still give log P(x) with the first state drawn from ``initial``."""
    name, (pi, A, B) = tiny
    hmm = HMM(pi, A, B)
    x = _batch(name, T, count=4)
    d = hmm_to_pyro_discrete_hmm(hmm, T)
    assert isinstance(d, pyro.distributions.DiscreteHMM)
    got = d.log_prob(x)
    np.testing.assert_allclose(got.numpy(), hmm.log_prob(x).numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.numpy(), [brute_log_prob(pi, A, B, s) for s in x.numpy()], rtol=1e-12)


def test_discrete_hmm_singular_transition():
    """pi_pyro @ A = pi has no solution in the simplex here (A maps everything to state 1,
    but pi puts mass on state 0): the adapter must not rely on inverting A."""
    pi = np.array([0.7, 0.3])
    A = np.array([[0.0, 1.0], [0.0, 1.0]])
    B = np.array([[0.9, 0.1], [0.2, 0.8]])
    hmm = HMM(pi, A, B)
    x = torch.tensor([[0, 1, 1], [1, 1, 0]])
    np.testing.assert_allclose(
        hmm_to_pyro_discrete_hmm(hmm, 3).log_prob(x).numpy(), [brute_log_prob(pi, A, B, s) for s in x.numpy()], rtol=1e-12
    )


def test_discrete_hmm_bad_length():
    hmm = HMM(*np_params("m2n2"))
    with pytest.raises(ValueError, match="length"):
        hmm_to_pyro_discrete_hmm(hmm, 0)
