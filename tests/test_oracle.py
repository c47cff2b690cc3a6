"""The perfect masked LM (issue 2, item 7) against brute-force enumeration over hidden paths.

Downstream inputs are ``[MASK] x_1 .. x_T`` with the mask at position 0 and ``H_0 ~ initial``;
with a prompt, soft tokens sit at positions -k..-1, each contributing its likelihood row
``u_j`` as an emission, and the chain starts at ``H_{-k} ~ initial`` (docs/theory.md, "The perfect masked LM", "Prompts").
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hmmtune import HMM, MaskMessages, OracleMLM, ZeroProbabilityError

from conftest import (
    TINY_MODELS,
    downstream_joint,
    brute_mask_posterior,
    brute_mask_prediction,
    brute_token_posteriors,
    brute_token_predictions,
    np_params,
    positive_sequences,
)

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _inputs(name, T, count=4, seed=0):
    pi, A, B = np_params(name)
    return positive_sequences(pi, A, B, T, count, np.random.default_rng(seed + 31 * T), downstream=True)


def _prompt(m, k, seed, zeros=True):
    rng = np.random.default_rng(seed)
    u = rng.uniform(0.0, 3.0, size=(k, m))  # likelihood rows need not sum to 1
    if zeros and m > 1:
        u[rng.random((k, m)) < 0.3] = 0.0
    return u


# ----------------------------------------------------------------------- unprompted
@pytest.mark.parametrize("T", [1, 2, 4, 6])
def test_mask_posterior_and_prediction_match_brute_force(tiny, T):
    name, (pi, A, B) = tiny
    x = _inputs(name, T)
    oracle = OracleMLM(HMM(pi, A, B))
    post = oracle.mask_posterior(torch.as_tensor(x))
    pred = oracle.mask_prediction(x.tolist())
    assert post.shape == (len(x), len(pi)) and pred.shape == (len(x), B.shape[1])
    np.testing.assert_allclose(post.numpy(), [brute_mask_posterior(pi, A, B, s) for s in x], atol=1e-12)
    np.testing.assert_allclose(pred.numpy(), [brute_mask_prediction(pi, A, B, s) for s in x], atol=1e-12)


def test_mask_is_not_the_first_token():
    """The mask's state is H_0 ~ initial and x_1 follows one transition later: this is
    NOT the masked posterior of the plain sequence (x_1..x_T) at its first position."""
    pi, A, B = np_params("m4n3")
    x = _inputs("m4n3", 3, count=1)
    hmm = HMM(pi, A, B)
    got = OracleMLM(hmm).mask_posterior(x)[0].numpy()
    np.testing.assert_allclose(got, brute_mask_posterior(pi, A, B, x[0]), atol=1e-12)
    assert np.abs(got - hmm.loo_posterior(x)[0, 0].numpy()).max() > 1e-3


@pytest.mark.parametrize("T", [1, 3, 5])
def test_token_predictions_match_brute_force(tiny, T):
    name, (pi, A, B) = tiny
    x = _inputs(name, T)
    oracle = OracleMLM(HMM(pi, A, B))
    got = oracle.token_predictions(x)
    assert got.shape == (len(x), T, B.shape[1])
    np.testing.assert_allclose(got.numpy(), np.stack([brute_token_predictions(pi, A, B, s) for s in x]), atol=1e-12)
    post = oracle.token_posteriors(x)
    np.testing.assert_allclose(post.numpy(), np.stack([brute_token_posteriors(pi, A, B, s) for s in x]), atol=1e-12)


def test_token_predictions_single_sequence_and_chunks():
    pi, A, B = np_params("m3n4")
    x = _inputs("m3n4", 4, count=5)
    oracle = OracleMLM(HMM(pi, A, B))
    want = np.stack([brute_token_predictions(pi, A, B, s) for s in x])
    np.testing.assert_allclose(oracle.token_predictions(x[2].tolist()).numpy(), want[2], atol=1e-12)
    np.testing.assert_allclose(oracle.token_predictions(x, chunk_size=2).numpy(), want, atol=1e-12)
    np.testing.assert_allclose(
        oracle.mask_prediction(x, chunk_size=2).numpy(), [brute_mask_prediction(pi, A, B, s) for s in x], atol=1e-12
    )


def test_float32_oracle():
    pi, A, B = np_params("m4n3")
    x = _inputs("m4n3", 5)
    oracle = OracleMLM(HMM(pi, A, B, dtype=torch.float32))
    pred = oracle.mask_prediction(x)
    assert pred.dtype == torch.float32
    np.testing.assert_allclose(pred.numpy(), [brute_mask_prediction(pi, A, B, s) for s in x], atol=2e-6)
    np.testing.assert_allclose(
        oracle.token_predictions(x).numpy(), np.stack([brute_token_predictions(pi, A, B, s) for s in x]), atol=2e-6
    )


# ------------------------------------------------------------------------- prompted
@pytest.mark.parametrize("k", [1, 2, 3])
@pytest.mark.parametrize("T", [1, 3])
def test_prompted_mask_prediction_matches_brute_force(tiny, k, T):
    name, (pi, A, B) = tiny
    x = _inputs(name, T, count=3)
    oracle = OracleMLM(HMM(pi, A, B))
    for seed in range(3):
        u = _prompt(len(pi), k, seed=100 * k + seed)
        totals = [downstream_joint(pi, A, B, s, prompt=u)[1].sum() for s in x]
        if min(totals) == 0:
            # the prompt (with zeros) is inconsistent with every hidden path for some input
            with pytest.raises(ValueError):
                oracle.mask_prediction(x, prompt=torch.as_tensor(u))
            continue
        got_post = oracle.mask_posterior(x, prompt=torch.as_tensor(u))
        got = oracle.mask_prediction(x, prompt=torch.as_tensor(u))
        want_post = [brute_mask_posterior(pi, A, B, s, prompt=u) for s in x]
        np.testing.assert_allclose(got_post.numpy(), want_post, atol=1e-12)
        np.testing.assert_allclose(got.numpy(), [brute_mask_prediction(pi, A, B, s, prompt=u) for s in x], atol=1e-12)


def test_prompt_all_ones_equals_k_unobserved_positions():
    """A prompt row of ones observes nothing: k such tokens just let the chain run k steps,
    so the mask's prior is initial @ A^k (not initial)."""
    pi, A, B = np_params("m4n3")
    x = _inputs("m4n3", 3)
    oracle = OracleMLM(HMM(pi, A, B))
    for k in (1, 2):
        got = oracle.mask_prediction(x, prompt=torch.ones(k, 4))
        want = [brute_mask_prediction(pi @ np.linalg.matrix_power(A, k), A, B, s) for s in x]
        np.testing.assert_allclose(got.numpy(), want, atol=1e-12)
        np.testing.assert_allclose(
            oracle.prompt_prior(torch.ones(k, 4)).numpy(), pi @ np.linalg.matrix_power(A, k), atol=1e-14
        )


def test_encode_once_reuse_for_many_prompts(monkeypatch):
    """Messages from encode() replace the inputs: no further backward pass runs."""
    from hmmtune.models import inference

    pi, A, B = np_params("m3n4")
    x = _inputs("m3n4", 4)
    oracle = OracleMLM(HMM(pi, A, B))
    msgs = oracle.encode(x)
    assert isinstance(msgs, MaskMessages) and msgs.backward.shape == (len(x), 3)

    def forbidden(*a, **k):  # pragma: no cover - failure path
        raise AssertionError("backward pass recomputed")

    monkeypatch.setattr(inference, "hmm_backward", forbidden)
    monkeypatch.setattr(inference, "hmm_start_backward", forbidden)
    for seed in range(4):
        u = _prompt(3, 2, seed, zeros=False)
        got = oracle.mask_prediction(msgs, prompt=torch.as_tensor(u))
        np.testing.assert_allclose(got.numpy(), [brute_mask_prediction(pi, A, B, s, prompt=u) for s in x], atol=1e-12)
    np.testing.assert_allclose(
        oracle.mask_posterior(msgs).numpy(), [brute_mask_posterior(pi, A, B, s) for s in x], atol=1e-12
    )


def test_mask_backward_message_is_likelihood_of_the_input():
    """beta_0[h] is proportional to P(x_1..x_T | H_0 = h) (docs/theory.md, "Conventions")."""
    pi, A, B = np_params("m4n3")
    x = _inputs("m4n3", 3)
    beta0 = OracleMLM(HMM(pi, A, B)).encode(x).backward.numpy()
    for b, s in enumerate(x):
        # P(x_1..x_T | H_0 = h): start the downstream chain from a point mass at h
        lik = np.array([downstream_joint(np.eye(4)[h], A, B, s)[1].sum() for h in range(4)])
        np.testing.assert_allclose(beta0[b], lik / lik.sum(), atol=1e-12)


def test_prompt_gradient_matches_finite_differences_of_brute_force():
    pi, A, B = np_params("m3n4")
    x = _inputs("m3n4", 3, count=2)
    oracle = OracleMLM(HMM(pi, A, B))
    u0 = _prompt(3, 2, seed=7, zeros=False)
    c = np.random.default_rng(1).normal(size=4)  # a linear head b
    u = torch.tensor(u0, requires_grad=True)
    loss = (oracle.mask_prediction(x, prompt=u) @ torch.as_tensor(c)).sum()
    loss.backward()

    def f(v):
        return sum(brute_mask_prediction(pi, A, B, s, prompt=v) @ c for s in x)

    eps = 1e-6
    fd = np.zeros_like(u0)
    for idx in np.ndindex(*u0.shape):
        up, dn = u0.copy(), u0.copy()
        up[idx] += eps
        dn[idx] -= eps
        fd[idx] = (f(up) - f(dn)) / (2 * eps)
    np.testing.assert_allclose(u.grad.numpy(), fd, rtol=1e-5, atol=1e-8)


# ------------------------------------------------------------------------ errors
def test_prompt_validation_errors():
    oracle = OracleMLM(HMM(*np_params("m3n4")))
    x = _inputs("m3n4", 2)
    with pytest.raises(ValueError, match=r"prompt\[0, 1\].*negative"):
        oracle.mask_prediction(x, prompt=torch.tensor([[1.0, -0.5, 1.0]]))
    with pytest.raises(ValueError, match=r"prompt\[1, 2\].*not finite"):
        oracle.mask_prediction(x, prompt=torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, float("nan")]]))
    with pytest.raises(ValueError, match=r"shape \(k, m\).*m = 3"):
        oracle.mask_prediction(x, prompt=torch.ones(2, 4))
    with pytest.raises(ValueError, match=r"prompt row 0"):
        oracle.mask_prediction(x, prompt=torch.zeros(1, 3))
    # state 1 has no initial mass: a first prompt row that only allows state 1 is impossible
    with pytest.raises(ValueError, match=r"prompt row 0"):
        oracle.prompt_prior(torch.tensor([[0.0, 1.0, 0.0]]))


def test_oracle_needs_an_hmm():
    with pytest.raises(TypeError):
        OracleMLM("not a model")


def test_zero_probability_input_names_its_index():
    # m2n2: state 1 never emits token 0 and state 0 must move to state 1, so the
    # downstream input "0 0" is impossible whatever the mask's state.
    hmm = HMM(*np_params("m2n2"))
    oracle = OracleMLM(hmm)
    seqs = [[0, 1], [1, 1], [1, 1], [0, 0], [0, 1]]
    for chunk in (None, 2):
        for fn in (oracle.mask_posterior, oracle.mask_prediction, oracle.token_predictions, oracle.encode):
            with pytest.raises(ZeroProbabilityError, match=r"\b3\b") as info:
                fn(seqs, chunk_size=chunk)
            assert info.value.index == 3 and isinstance(info.value, ValueError)


def test_zero_probability_after_the_mask_prior():
    """Possible from some mask state, but not from any state the initial law allows."""
    # state 0 only emits token 0 and goes to state 0; state 1 only emits 1 and goes to 1.
    hmm = HMM([1.0, 0.0], [[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]])
    oracle = OracleMLM(hmm)
    with pytest.raises(ZeroProbabilityError) as info:
        oracle.mask_prediction([[0, 0], [1, 1]])
    assert info.value.index == 1 and "1" in str(info.value)
    # ...and a prompt cannot move mass to state 1 either (initial has none)
    with pytest.raises(ValueError):
        oracle.mask_prediction([[1, 1]], prompt=torch.tensor([[0.0, 1.0]]))


# -------------------------------------------------------------------- properties
@st.composite
def _case(draw):
    name = draw(st.sampled_from(sorted(TINY_MODELS)))
    T = draw(st.integers(1, 4))
    seed = draw(st.integers(0, 2**16))
    pi, A, B = np_params(name)
    x = positive_sequences(pi, A, B, T, 2, np.random.default_rng(seed), downstream=True)
    perm = np.array(draw(st.permutations(range(len(pi)))))
    return pi, A, B, x, perm


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_case())
def test_property_relabelling_states(case):
    """Relabelling states permutes state posteriors and leaves token predictions unchanged."""
    pi, A, B, x, perm = case
    o1 = OracleMLM(HMM(pi, A, B))
    o2 = OracleMLM(HMM(pi[perm], A[np.ix_(perm, perm)], B[perm]))
    p1, p2 = o1.mask_posterior(x).numpy(), o2.mask_posterior(x).numpy()
    np.testing.assert_allclose(p1.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(p2, p1[:, perm], atol=1e-12)
    t1, t2 = o1.token_posteriors(x).numpy(), o2.token_posteriors(x).numpy()
    np.testing.assert_allclose(t1.sum(-1), 1.0, atol=1e-12)
    np.testing.assert_allclose(t2, t1[..., perm], atol=1e-12)
    np.testing.assert_allclose(o2.token_predictions(x).numpy(), o1.token_predictions(x).numpy(), atol=1e-12)
    np.testing.assert_allclose(o2.mask_prediction(x).numpy().sum(-1), 1.0, atol=1e-12)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_oracle_on_device(device):
    pi, A, B = np_params("m3n4")
    x = _inputs("m3n4", 3)
    oracle = OracleMLM(HMM(pi, A, B, device=device))
    pred = oracle.mask_prediction(torch.as_tensor(x, device=device))
    assert pred.device.type == device
    np.testing.assert_allclose(pred.cpu().numpy(), [brute_mask_prediction(pi, A, B, s) for s in x], atol=1e-12)
    tok = oracle.token_predictions(x)
    assert tok.device.type == device
    np.testing.assert_allclose(tok.cpu().numpy(), np.stack([brute_token_predictions(pi, A, B, s) for s in x]), atol=1e-12)
    u0 = _prompt(3, 2, seed=3, zeros=False)
    u = torch.tensor(u0, device=device, requires_grad=True)
    got = oracle.mask_prediction(oracle.encode(x), prompt=u)
    assert got.device.type == device
    np.testing.assert_allclose(got.detach().cpu().numpy(), [brute_mask_prediction(pi, A, B, s, prompt=u0) for s in x], atol=1e-12)
    got[:, 0].sum().backward()
    assert u.grad is not None and u.grad.device.type == device and bool(torch.isfinite(u.grad).all())
    # a prompt given as a plain list (on the CPU) is moved to the model's device
    np.testing.assert_allclose(
        oracle.mask_prediction(x, prompt=u0.tolist()).cpu().numpy(), got.detach().cpu().numpy(), atol=1e-12
    )


def test_one_oracle_over_the_public_protocol():
    """Both models implement the oracle's protocol; for an HMM, max_elements bounds a chunk."""
    from hmmtune import MemoryHMM
    from hmmtune.models.protocol import OracleModel

    hmm = HMM(*np_params("m3n4"))
    memory = MemoryHMM([0.5, 0.5], [1.0], [[1.0]], [[[0.5, 0.5, 0.0, 0.0]], [[0.0, 0.25, 0.25, 0.5]]])
    assert isinstance(hmm, OracleModel) and isinstance(memory, OracleModel)
    assert not isinstance("model", OracleModel)
    x = _inputs("m3n4", 5)
    ref, small = OracleMLM(hmm), OracleMLM(hmm, max_elements=2 * x.shape[1] * 3)  # two inputs per chunk
    torch.testing.assert_close(small.mask_prediction(x), ref.mask_prediction(x), rtol=0, atol=1e-15)
    torch.testing.assert_close(small.token_predictions(x), ref.token_predictions(x), rtol=0, atol=1e-15)
    msgs = ref.encode(x)
    assert msgs.log_scale is None and msgs.backward.shape == (len(x), 3)
    mmsgs = OracleMLM(memory).encode([[1, 3], [2, 1]])
    assert mmsgs.backward.shape == (2, 2, 1) and mmsgs.log_scale.shape == (2, 2)
