"""OracleMLM on a MemoryHMM (docs/theory.md, "The perfect masked LM", "Prompts", "Memory-augmented HMMs"): the mask prediction, the
leave-one-out token predictions and the memory task's target, against brute force over
memory values and hidden paths and against the oracle of the flattened HMM."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from memory_reference import brute_force, random_memory_arrays, token_factors  # noqa: E402

import hmmtune  # noqa: E402
from hmmtune import MemoryHMM, OracleMLM  # noqa: E402
from hmmtune.oracle import MaskMessages  # noqa: E402

SIZES = {"N1": (1, 3, 2, 3, 4), "N2": (2, 2, 2, 3, 3), "N3": (3, 2, 2, 3, 3)}


def setup(name, seed=0, zeros=True):
    N, V, S, n, T = SIZES[name]
    arrays = random_memory_arrays(N, V, S, n, seed, zeros)
    model = MemoryHMM(*arrays)
    # Downstream inputs x_1..x_T: sampled sequences of length T + 1 without their first
    # token (the masked position), so every input has positive probability.
    x = model.sample(5, T + 1, seed=seed + 1).tokens[:, 1:]
    return model, arrays, x


@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("zeros", [False, True])
def test_mask_and_token_outputs_match_brute_force(name, zeros):
    model, (prior, initial, transition, emission), x = setup(name, seed=2, zeros=zeros)
    N, V, S, n, T = SIZES[name]
    ref = brute_force(prior, initial, transition, emission, token_factors(emission, x.numpy(), mask_first=True))
    W = emission.reshape(V * S, n)  # row v*S + s, i.e. W = emission.T
    oracle = OracleMLM(model)
    np.testing.assert_allclose(oracle.mask_posterior(x).numpy(), ref["z"][:, 0], atol=1e-12)
    np.testing.assert_allclose(oracle.mask_emission_posterior(x).numpy(), ref["row"][:, 0], atol=1e-12)
    np.testing.assert_allclose(oracle.mask_prediction(x).numpy(), ref["row"][:, 0] @ W, atol=1e-12)
    np.testing.assert_allclose(oracle.token_posteriors(x).numpy(), ref["loo_z"][:, 1:], atol=1e-12)
    np.testing.assert_allclose(oracle.token_emission_posteriors(x).numpy(), ref["loo_row"][:, 1:], atol=1e-12)
    np.testing.assert_allclose(oracle.token_predictions(x).numpy(), ref["loo_row"][:, 1:] @ W, atol=1e-12)
    # The memory task's target P(M_j | x_1..x_T): the mask is unobserved.
    np.testing.assert_allclose(oracle.memory_posterior(x).numpy(), ref["memory"], atol=1e-12)
    for j in range(N):
        np.testing.assert_allclose(oracle.memory_posterior(x, cell=j).numpy(), ref["memory"][:, j], atol=1e-12)


@pytest.mark.parametrize("name", list(SIZES))
def test_outputs_match_the_flattened_oracle(name):
    model, _, x = setup(name, seed=4)
    N, V, S, n, T = SIZES[name]
    K = N * S
    configs = np.array(list(itertools.product(range(V), repeat=N)))
    flat_c = np.repeat(np.arange(len(configs)), K)
    flat_z = np.tile(np.arange(K), len(configs))
    flat_row = configs[flat_c, flat_z // S] * S + flat_z % S

    def agg(p, index, size):
        out = np.zeros(p.shape[:-1] + (size,))
        for i, k in enumerate(index):
            out[..., k] += p[..., i]
        return out

    ours, flat = OracleMLM(model), OracleMLM(model.to_hmm())
    p0 = flat.mask_posterior(x).numpy()
    np.testing.assert_allclose(ours.mask_posterior(x).numpy(), agg(p0, flat_z, K), atol=1e-12)
    np.testing.assert_allclose(ours.mask_emission_posterior(x).numpy(), agg(p0, flat_row, V * S), atol=1e-12)
    np.testing.assert_allclose(ours.mask_prediction(x).numpy(), flat.mask_prediction(x).numpy(), atol=1e-12)
    np.testing.assert_allclose(ours.token_predictions(x).numpy(), flat.token_predictions(x).numpy(), atol=1e-12)
    pt = flat.token_posteriors(x).numpy()
    np.testing.assert_allclose(ours.token_posteriors(x).numpy(), agg(pt, flat_z, K), atol=1e-12)
    pc = agg(p0, flat_c, len(configs))
    mem = np.stack([agg(pc, configs[:, j], V) for j in range(N)], 1)
    np.testing.assert_allclose(ours.memory_posterior(x).numpy(), mem, atol=1e-12)


@pytest.mark.parametrize("name", ["N1", "N2"])
@pytest.mark.parametrize("zeros", [False, True])
def test_prompted_mask_outputs_match_brute_force(name, zeros):
    model, (prior, initial, transition, emission), x = setup(name, seed=6, zeros=zeros)
    N, V, S, n, T = SIZES[name]
    rng = np.random.default_rng(0)
    prompt = rng.random((2, V * S))
    prompt[0, 1] = 0.0
    ref = brute_force(
        prior, initial, transition, emission, token_factors(emission, x.numpy(), mask_first=True, prompt=prompt)
    )
    oracle = OracleMLM(model)
    u = torch.tensor(prompt, requires_grad=True)
    post = oracle.mask_emission_posterior(x, prompt=u)
    np.testing.assert_allclose(post.detach().numpy(), ref["row"][:, 2], atol=1e-12)
    np.testing.assert_allclose(oracle.mask_posterior(x, prompt=u).detach().numpy(), ref["z"][:, 2], atol=1e-12)
    pred = oracle.mask_prediction(x, prompt=u)
    np.testing.assert_allclose(pred.detach().numpy(), ref["row"][:, 2] @ emission.reshape(V * S, n), atol=1e-12)
    # Differentiable in the prompt, and encode() can be reused across prompts.
    pred[:, 0].sum().backward()
    assert u.grad is not None and torch.isfinite(u.grad).all() and u.grad.abs().sum() > 0
    msgs = oracle.encode(x)
    assert isinstance(msgs, MaskMessages)
    torch.testing.assert_close(oracle.mask_prediction(msgs, prompt=u).detach(), pred.detach())
    # The prompted prior is a joint law over (configuration, Z_0).
    r = oracle.prompt_prior(u)
    assert r.shape == (V**N, N * S)
    torch.testing.assert_close(r.sum().detach(), torch.tensor(1.0, dtype=torch.float64))


def test_memory_posterior_differs_from_the_plain_sequence_posterior():
    """After a mask the chain over x starts from initial @ transition, not initial."""
    model, _, x = setup("N2", seed=8)
    after = OracleMLM(model).memory_posterior(x)
    plain = model.memory_posterior(x)
    torch.testing.assert_close(after, model.memory_posterior(x, after_mask=True))
    assert (after - plain).abs().max() > 1e-6


def test_errors():
    model, (prior, initial, transition, emission), x = setup("N2")
    oracle = OracleMLM(model)
    with pytest.raises(ValueError, match=r"cell must be an integer in \[0, 2\)"):
        oracle.memory_posterior(x, cell=2)
    with pytest.raises(ValueError, match=r"prompt must have shape \(k, V \* S\)"):
        oracle.mask_prediction(x, prompt=torch.ones(1, 3))
    with pytest.raises(ValueError, match="negative"):
        oracle.mask_prediction(x, prompt=-torch.ones(1, 4))
    hmm_oracle = OracleMLM(hmmtune.load_example("full_rank"))
    with pytest.raises(TypeError, match="MemoryHMM"):
        hmm_oracle.memory_posterior([[0, 1]])
    with pytest.raises(TypeError, match="HMM oracle"):
        oracle.mask_prediction(MaskMessages(torch.ones(1, 4)))
    with pytest.raises(TypeError, match="HMM or hmmtune.MemoryHMM"):
        OracleMLM("model")
    # The size limit reaches inference through the oracle.
    with pytest.raises(hmmtune.models.InferenceTooLargeError):
        OracleMLM(model, max_elements=10).memory_posterior(x)
    # An input no memory and state can generate.
    impossible = MemoryHMM([0.5, 0.5], [1.0], [[1.0]], [[[1.0, 0.0, 0.0]], [[0.5, 0.5, 0.0]]])
    with pytest.raises(hmmtune.ZeroProbabilityError):
        OracleMLM(impossible).mask_prediction([[0, 2]])


def test_hmm_oracle_generic_helpers_return_the_state_posteriors():
    hmm = hmmtune.load_example("full_rank")
    oracle = OracleMLM(hmm)
    x = hmm.sample(3, 5, seed=0)[0]
    assert torch.equal(oracle.mask_emission_posterior(x), oracle.mask_posterior(x))
    assert torch.equal(oracle.token_emission_posteriors(x), oracle.token_posteriors(x))
