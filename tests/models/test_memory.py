"""MemoryHMM (docs/theory.md, "Memory-augmented HMMs"): exact inference against brute force, the flattened HMM
and Pyro's enumeration; sampling; validation; the size guard; JSON; generators."""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from memory_reference import brute_force, random_memory_arrays, token_factors  # noqa: E402

import hmmtune  # noqa: E402
from hmmtune.models import inference  # noqa: E402
from hmmtune.io import ModelFileError, load_model, memory_hmm_to_json  # noqa: E402
from hmmtune.models.memory import MAX_MEMORY_ELEMENTS, InferenceTooLargeError, MemoryHMM  # noqa: E402

ALL_OUTPUTS = (
    "memory",
    "posterior",
    "emission_posterior",
    "loo_posterior",
    "loo_emission_posterior",
    "loo_memory",
    "start_backward",
    "start_log_scale",
)

# (N, V, S, n, T): tiny enough for enumeration over V^N configurations and K^T paths.
SIZES = {
    "N1": (1, 3, 2, 3, 5),
    "N2": (2, 2, 2, 3, 4),
    "N3": (3, 2, 2, 3, 3),
    "N3_S1": (3, 3, 1, 4, 4),
}


def make(name, seed=0, zeros=True):
    N, V, S, n, T = SIZES[name]
    arrays = random_memory_arrays(N, V, S, n, seed, zeros)
    return MemoryHMM(*arrays, num_cells=N), arrays, T


def sampled_tokens(model, T, B=6, seed=1):
    return model.sample(B, T, seed=seed).tokens


# --------------------------------------------------------------------------- brute force
@pytest.mark.parametrize("name", list(SIZES))
@pytest.mark.parametrize("zeros", [False, True])
def test_posteriors_match_brute_force(name, zeros):
    model, (prior, initial, transition, emission), T = make(name, seed=3, zeros=zeros)
    x = sampled_tokens(model, T)
    ref = brute_force(prior, initial, transition, emission, token_factors(emission, x.numpy()))
    res = model.infer(x, ALL_OUTPUTS)
    np.testing.assert_allclose(res.log_prob.numpy(), np.log(ref["prob"]), rtol=1e-11)
    np.testing.assert_allclose(res.memory.numpy(), ref["memory"], atol=1e-12)
    np.testing.assert_allclose(res.posterior.numpy(), ref["z"], atol=1e-12)
    np.testing.assert_allclose(res.emission_posterior.numpy(), ref["row"], atol=1e-12)
    np.testing.assert_allclose(res.loo_posterior.numpy(), ref["loo_z"], atol=1e-12)
    np.testing.assert_allclose(res.loo_emission_posterior.numpy(), ref["loo_row"], atol=1e-12)
    np.testing.assert_allclose(res.loo_memory.numpy(), ref["loo_memory"], atol=1e-12)
    # The convenience methods return the same fields.
    np.testing.assert_allclose(model.log_prob(x).numpy(), np.log(ref["prob"]), rtol=1e-11)
    np.testing.assert_allclose(model.memory_posterior(x).numpy(), ref["memory"], atol=1e-12)
    np.testing.assert_allclose(model.loo_memory_posterior(x).numpy(), ref["loo_memory"], atol=1e-12)
    np.testing.assert_allclose(model.emission_posterior(x).numpy(), ref["row"], atol=1e-12)
    np.testing.assert_allclose(model.loo_emission_posterior(x).numpy(), ref["loo_row"], atol=1e-12)
    np.testing.assert_allclose(model.posterior(x).numpy(), ref["z"], atol=1e-12)
    np.testing.assert_allclose(model.loo_posterior(x).numpy(), ref["loo_z"], atol=1e-12)


@pytest.mark.parametrize("name", ["N1", "N2", "N3"])
def test_start_messages_match_brute_force(name):
    """start_backward * exp(start_log_scale) = P(x | Z_{-1} = z, M = c)."""
    model, (prior, initial, transition, emission), T = make(name, seed=5)
    N, V, S, n, _ = SIZES[name]
    K = N * S
    x = sampled_tokens(model, T, B=3)
    res = model.infer(x, ("start_backward", "start_log_scale"))
    got = res.start_backward.numpy() * np.exp(res.start_log_scale.numpy())[..., None]  # (B, C, K)
    configs = list(itertools.product(range(V), repeat=N))
    for c, cfg in enumerate(configs):
        for z in range(K):
            # Point-mass prior on the configuration and on Z_{-1} = z; the mask factor is ones.
            pr = np.zeros((N, V))
            pr[np.arange(N), cfg] = 1.0
            init = np.eye(K)[z]
            ref = brute_force(pr, init, transition, emission, token_factors(emission, x.numpy(), mask_first=True))
            np.testing.assert_allclose(got[:, c, z], ref["prob"], rtol=1e-11, atol=1e-300)


def test_leave_one_out_counts_configurations_that_cannot_emit_the_left_out_token():
    """Hand computation: value 0 only emits token 0, value 1 emits tokens 0 and 1 evenly.

    For x = 0 0 1 0, P(M = 0 | x) = 0, but with position 2 left out
    P(M = 0 | x_{-2}) = 1 / (1 + 1/8) = 8/9.
    """
    model = MemoryHMM([0.5, 0.5], [1.0], [[1.0]], [[[1.0, 0.0]], [[0.5, 0.5]]])
    x = torch.tensor([[0, 0, 1, 0]])
    res = model.infer(x, ("memory", "loo_memory"))
    np.testing.assert_allclose(res.memory[0, 0].numpy(), [0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(res.loo_memory[0, 2, 0].numpy(), [8 / 9, 1 / 9], rtol=1e-13)
    # Positions other than 2 still see token 1, so value 0 stays impossible there.
    np.testing.assert_allclose(res.loo_memory[0, [0, 1, 3], 0, 0].numpy(), 0.0, atol=1e-15)
    np.testing.assert_allclose(res.log_prob.item(), math.log(0.5 * 0.5**4), rtol=1e-13)


# --------------------------------------------------------------------------- flattened HMM
def _flat_maps(N, V, S):
    """Independent index maps of the flattened space (configuration, chain state, emission row)."""
    K = N * S
    configs = np.array(list(itertools.product(range(V), repeat=N)))
    flat_c = np.repeat(np.arange(len(configs)), K)
    flat_z = np.tile(np.arange(K), len(configs))
    flat_row = configs[flat_c, flat_z // S] * S + flat_z % S
    return configs, flat_c, flat_z, flat_row


def _aggregate(p, index, size):
    """Sum the last axis of p (numpy) into ``size`` bins given by ``index``."""
    out = np.zeros(p.shape[:-1] + (size,))
    for i, k in enumerate(index):
        out[..., k] += p[..., i]
    return out


@pytest.mark.parametrize("name", list(SIZES))
def test_posteriors_match_flattened_hmm(name):
    model, _, T = make(name, seed=7)
    N, V, S, n, _ = SIZES[name]
    K, C = N * S, V**N
    configs, flat_c, flat_z, flat_row = _flat_maps(N, V, S)
    hmm = model.to_hmm()
    assert hmm.num_states == C * K
    x = sampled_tokens(model, T + 2, B=5, seed=11)
    res = model.infer(x, ALL_OUTPUTS)
    np.testing.assert_allclose(res.log_prob.numpy(), hmm.log_prob(x).numpy(), rtol=1e-11)
    post = hmm.posterior(x).numpy()
    loo = hmm.loo_posterior(x).numpy()
    np.testing.assert_allclose(res.posterior.numpy(), _aggregate(post, flat_z, K), atol=1e-12)
    np.testing.assert_allclose(res.emission_posterior.numpy(), _aggregate(post, flat_row, V * S), atol=1e-12)
    np.testing.assert_allclose(res.loo_posterior.numpy(), _aggregate(loo, flat_z, K), atol=1e-12)
    np.testing.assert_allclose(res.loo_emission_posterior.numpy(), _aggregate(loo, flat_row, V * S), atol=1e-12)
    pc = _aggregate(post[:, 0], flat_c, C)  # P(M = c | x): the memory is fixed, read it at t = 0
    mem = np.stack([_aggregate(pc, configs[:, j], V) for j in range(N)], 1)
    np.testing.assert_allclose(res.memory.numpy(), mem, atol=1e-12)
    for t in range(x.shape[1]):
        lc = _aggregate(loo[:, t], flat_c, C)
        np.testing.assert_allclose(
            res.loo_memory[:, t].numpy(), np.stack([_aggregate(lc, configs[:, j], V) for j in range(N)], 1), atol=1e-12
        )


def test_to_hmm_structure_and_exact_entries():
    model = hmmtune.load_example("memory")
    hmm = model.to_hmm()
    N, V, S, K = 2, 2, 2, 4
    configs, flat_c, flat_z, flat_row = _flat_maps(N, V, S)
    prior = np.array([[1 / 2, 1 / 2], [1 / 3, 2 / 3]])
    rho = prior[0, configs[:, 0]] * prior[1, configs[:, 1]]
    np.testing.assert_allclose(hmm.initial.numpy(), rho[flat_c] * 0.25, rtol=1e-15)
    A = hmm.transition.numpy()
    for a in range(V**N):
        for b in range(V**N):
            block = A[a * K : (a + 1) * K, b * K : (b + 1) * K]
            if a == b:
                np.testing.assert_array_equal(block, model.transition.numpy())
            else:
                assert not block.any()
    emission = np.array([[[1 / 2, 1 / 4, 1 / 4], [1 / 4, 1 / 4, 1 / 2]], [[1 / 4, 1 / 2, 1 / 4], [1 / 3, 1 / 3, 1 / 3]]])
    np.testing.assert_allclose(hmm.emission.numpy(), emission.reshape(4, 3)[flat_row], rtol=1e-15)
    # Exact entries come along: 1/2 * 1/3 * 1/4 = 1/24 for configuration (0, 0).
    import sympy

    assert hmm.exact["initial"][0] == sympy.Rational(1, 24)
    assert sum(hmm.exact["initial"]) == 1
    assert hmm.exact["emission"][flat_row.tolist().index(3), 0] == sympy.Rational(1, 3)


def test_paper_memory_hmm_flattens_to_block_diagonal():
    for V in (2, 3, 5, 7):
        model = hmmtune.paper_memory_hmm(V, seed=V)
        assert (model.num_cells, model.num_values, model.num_local_states, model.num_tokens) == (1, V, 4, 10)
        hmm = model.to_hmm()
        assert hmm.num_states == 4 * V
        A = hmm.transition.numpy()
        block = model.transition.numpy()
        for a in range(V):
            for b in range(V):
                sub = A[4 * a : 4 * a + 4, 4 * b : 4 * b + 4]
                if a == b:
                    np.testing.assert_array_equal(sub, block)
                else:
                    assert not sub.any(), f"block ({a}, {b}) of the flattened transition is not zero"
        # The block is a doubly stochastic permutation mixture, peaked at temperature 0.01.
        np.testing.assert_allclose(block.sum(0), 1.0, rtol=1e-12)
        assert block.max() > 0.5
        # Our initial law is the product of memory prior and local initial law.
        np.testing.assert_allclose(
            hmm.initial.numpy(), np.outer(model.memory_prior[0].numpy(), model.initial.numpy()).ravel(), rtol=1e-15
        )
        # Emission rows are drawn per (v, s): nearly one-hot and not all equal.
        assert model.emission.shape == (4 * V, 10)
        assert (model.emission.max(1).values > 0.5).all()


def test_paper_generators_are_seeded_and_the_control_is_a_full_paper_hmm():
    a = hmmtune.paper_memory_hmm(3, seed=42)
    b = hmmtune.paper_memory_hmm(3, seed=42)
    c = hmmtune.paper_memory_hmm(3, seed=43)
    assert torch.equal(a.emission, b.emission) and torch.equal(a.transition, b.transition)
    assert not torch.equal(a.emission, c.emission)
    control = hmmtune.paper_vanilla_control(3, seed=42)
    assert isinstance(control, hmmtune.HMM)
    assert (control.num_states, control.num_tokens) == (12, 10)
    # A full permutation mixture over 12 states: not confined to 4 x 4 diagonal blocks.
    A = control.transition.numpy()
    off = A.copy()
    for a_ in range(3):
        off[4 * a_ : 4 * a_ + 4, 4 * a_ : 4 * a_ + 4] = 0
    assert off.sum() > 0.5
    with pytest.raises(ValueError, match="num_values"):
        hmmtune.paper_memory_hmm(0)
    with pytest.raises(ValueError, match="transition_temp"):
        hmmtune.paper_memory_hmm(2, transition_temp=0.0)


# --------------------------------------------------------------------------- Pyro
@pytest.mark.parametrize("name", ["N1", "N2", "N3"])
def test_pyro_enumeration_agrees(name):
    import pyro
    from pyro.infer import TraceEnum_ELBO

    model, _, T = make(name, seed=13)
    N = model.num_cells
    x = sampled_tokens(model, T, B=4, seed=2)
    guide = lambda tokens: None  # noqa: E731 - every latent is enumerated
    pyro.clear_param_store()
    elbo = TraceEnum_ELBO(max_plate_nesting=1)
    loss = elbo.loss(model.model, guide, x)
    np.testing.assert_allclose(-loss, model.log_prob(x).sum().item(), rtol=1e-9)
    marg = elbo.compute_marginals(model.model, guide, x)
    res = model.infer(x, ("memory", "posterior"))
    for j in range(N):
        probs = torch.exp(marg[f"m_{j}"].log_prob(torch.arange(model.num_values)[:, None])).T  # (B, V)
        np.testing.assert_allclose(probs.numpy(), res.memory[:, j].numpy(), atol=1e-9)
    for t in range(T):
        probs = torch.exp(marg[f"z_{t}"].log_prob(torch.arange(model.num_states)[:, None])).T
        np.testing.assert_allclose(probs.numpy(), res.posterior[:, t].numpy(), atol=1e-9)


def test_pyro_model_samples_with_the_right_shapes():
    model, _, _ = make("N2")
    x = model.model(num_sequences=3, length=5)
    assert x.shape == (3, 5)
    assert model.model(x).shape == (3, 5)


# --------------------------------------------------------------------------- sampling
def test_sample_shapes_determinism_and_support():
    model, (prior, initial, transition, emission), _ = make("N2", seed=21, zeros=True)
    s = model.sample(7, 9, seed=3)
    assert isinstance(s, hmmtune.models.MemorySample)
    assert set(s._asdict()) == {"tokens", "memory", "pointer", "local_state"}
    assert s.tokens.shape == (7, 9) and s.memory.shape == (7, 2)
    assert s.pointer.shape == (7, 9) and s.local_state.shape == (7, 9)
    for a, b in zip(s, model.sample(7, 9, seed=3)):
        assert torch.equal(a, b)
    # Every token has positive probability under the emitting pair (M_{J_t}, S_t).
    value = s.memory.gather(1, s.pointer).numpy()
    assert (emission[value, s.local_state.numpy(), s.tokens.numpy()] > 0).all()
    # Every transition taken has positive probability.
    z = (s.pointer * 2 + s.local_state).numpy()
    assert (transition[z[:, :-1], z[:, 1:]] > 0).all()
    with pytest.raises(ValueError, match="length"):
        model.sample(2, 0)


def test_sample_frequencies():
    prior = np.array([[0.2, 0.8], [0.6, 0.4]])
    model = MemoryHMM(prior, [0.1, 0.2, 0.3, 0.4], np.full((4, 4), 0.25), np.full((2, 2, 3), 1 / 3))
    B = 20000
    s = model.sample(B, 2, seed=0)
    for j in range(2):
        freq = np.bincount(s.memory[:, j].numpy(), minlength=2) / B
        np.testing.assert_allclose(freq, prior[j], atol=4 * np.sqrt(0.25 / B))
    z0 = (s.pointer[:, 0] * 2 + s.local_state[:, 0]).numpy()
    np.testing.assert_allclose(np.bincount(z0, minlength=4) / B, [0.1, 0.2, 0.3, 0.4], atol=4 * np.sqrt(0.25 / B))
    # The memory stays fixed: tokens of a sequence are independent given M here, and the
    # value read at t equals memory[pointer[t]] by construction of the sample record.
    assert s.memory.min() >= 0 and s.memory.max() < 2


# --------------------------------------------------------------------------- validation
def test_shapes_and_properties():
    model, _, _ = make("N2")
    assert (model.num_cells, model.num_values, model.num_local_states) == (2, 2, 2)
    assert model.num_states == 4 and model.num_configurations == 4 and model.num_flat_states == 16
    assert model.emission.shape == (4, 3) and model.emission_table.shape == (2, 2, 3)
    np.testing.assert_array_equal(model.configurations().numpy(), list(itertools.product(range(2), repeat=2)))
    m32 = model.to(dtype=torch.float32)
    assert m32.dtype == torch.float32
    x = sampled_tokens(model, 4)
    np.testing.assert_allclose(m32.memory_posterior(x).numpy(), model.memory_posterior(x).numpy(), atol=1e-5)


def test_emission_forms_agree_and_shared_prior():
    prior, initial, transition, emission = random_memory_arrays(2, 3, 2, 4, seed=9)
    a = MemoryHMM(prior[0], initial, transition, emission)
    b = MemoryHMM(np.stack([prior[0], prior[0]]), initial, transition, emission.reshape(6, 4), num_cells=2)
    assert a.shared_prior and not b.shared_prior
    assert torch.equal(a.emission, b.emission) and torch.equal(a.memory_prior, b.memory_prior)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda p: p.update(memory_prior=[0.5, 0.6]), r"memory_prior sums to"),
        (lambda p: p.update(memory_prior=[[0.5, 0.5]] * 3), r"memory_prior of shape \(N, V\) must have N = 2"),
        (lambda p: p.update(memory_prior=[[[1.0]]]), r"memory_prior must have shape"),
        (lambda p: p.update(initial=[0.2] * 5), r"initial must have N \* S entries"),
        (lambda p: p.update(initial=[-0.25, 0.75, 0.25, 0.25]), r"initial\[0\] is negative"),
        (lambda p: p.update(transition=np.full((3, 3), 1 / 3)), r"transition must have shape \(K, K\) = \(4, 4\)"),
        (lambda p: p.update(transition=np.full((4, 4), 0.3)), r"transition row 0 sums to"),
        (lambda p: p.update(emission=np.full((3, 2, 3), 1 / 3)), r"V = 2 values"),
        (lambda p: p.update(emission=np.full((5, 3), 1 / 3)), r"multiple of V = 2"),
        (lambda p: p.update(emission=np.full((2, 2, 3), np.nan)), r"emission\[0, 0, 0\] is not finite"),
        (lambda p: p.update(emission=np.full((4,), 0.25)), r"emission must have shape"),
        (lambda p: p.update(num_cells=4), r"num_cells = 4 disagrees"),
        (lambda p: p.update(num_cells=0), r"num_cells must be a positive integer"),
    ],
)
def test_validation_errors(change, match):
    params = dict(
        memory_prior=[0.5, 0.5],
        initial=[0.25] * 4,
        transition=np.full((4, 4), 0.25),
        emission=np.full((2, 2, 3), 1 / 3),
        num_cells=2,
    )
    change(params)
    with pytest.raises(ValueError, match=match):
        MemoryHMM(**params)


def test_tokens_are_validated_and_impossible_sequences_raise():
    model = MemoryHMM([0.5, 0.5], [1.0], [[1.0]], [[[1.0, 0.0, 0.0]], [[0.5, 0.5, 0.0]]])
    with pytest.raises(ValueError, match=r"outside the vocabulary"):
        model.log_prob([[0, 3]])
    x = torch.tensor([[0, 1, 0], [0, 0, 2], [1, 1, 1]])
    with pytest.raises(hmmtune.ZeroProbabilityError) as err:
        model.memory_posterior(x)
    assert err.value.index == 1 and err.value.position == 2
    # The index is that of the whole batch when inference runs in chunks.
    with pytest.raises(hmmtune.ZeroProbabilityError) as err:
        model.memory_posterior(x, chunk_size=1)
    assert err.value.index == 1 and "sequence 1 " in str(err.value)
    with pytest.raises(ValueError, match="unknown output"):
        model.infer(x[:1], ("memory", "bogus"))


# --------------------------------------------------------------------------- size guard
def test_size_guard_refuses_before_allocating():
    # V^N = 10^9 configurations: far beyond any memory. Must refuse without allocating.
    V, N, S = 10, 9, 1
    model = MemoryHMM(np.full(V, 1 / V), np.full(N * S, 1 / (N * S)), np.full((N, N), 1 / N), np.full((V, 1, 2), 0.5))
    with pytest.raises(InferenceTooLargeError) as err:
        model.memory_posterior(torch.zeros(3, 100, dtype=torch.long))
    e = err.value
    assert (e.num_configurations, e.num_states, e.length) == (10**9, 9, 100)
    # The memory posterior keeps one position's messages: V^N * N * S entries per sequence.
    assert e.required == 10**9 * 9 and e.max_elements == MAX_MEMORY_ELEMENTS
    msg = str(e)
    for piece in ("V^N x N*S = 10^9 x 9*1", "9,000,000,000", "max_elements", "B = 3"):
        assert piece in msg, piece
    assert isinstance(e, ValueError)
    # Posteriors keep every position's messages: V^N * N * S * T.
    with pytest.raises(InferenceTooLargeError) as err:
        model.loo_posterior(torch.zeros(3, 100, dtype=torch.long))
    assert err.value.required == 10**9 * 9 * 100
    assert "V^N x N*S x T = 10^9 x 9*1 x 100" in str(err.value)
    with pytest.raises(InferenceTooLargeError, match="flattened HMM"):
        model.to_hmm()


def test_max_elements_knob_and_chunking():
    model, _, T = make("N2", seed=17)
    x = sampled_tokens(model, T, B=9)
    per_seq = model.num_configurations * model.num_states * T
    with pytest.raises(InferenceTooLargeError, match=f"max_elements = {per_seq - 1:,}"):
        model.infer(x, ("memory", "posterior"), max_elements=per_seq - 1)
    # The memory posterior alone stores no messages, so it still fits, in any chunking.
    mem = model.infer(x, ("memory",)).memory
    for kwargs in ({"max_elements": per_seq - 1}, {"max_elements": 16}, {"chunk_size": 2}):
        torch.testing.assert_close(model.infer(x, ("memory",), **kwargs).memory, mem, rtol=1e-12, atol=1e-14)
    with pytest.raises(InferenceTooLargeError):
        model.infer(x, ("memory",), max_elements=15)
    full = model.infer(x, ALL_OUTPUTS)
    # Exactly one sequence per chunk fits; the results do not depend on chunking.
    for kwargs in ({"max_elements": per_seq}, {"chunk_size": 4}):
        part = model.infer(x, ALL_OUTPUTS, **kwargs)
        for a, b in zip(full, part):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="chunk_size"):
        model.infer(x, ("memory",), chunk_size=0)
    with pytest.raises(ValueError, match="max_elements"):
        model.infer(x, ("memory",), max_elements=0)
    with pytest.raises(InferenceTooLargeError):
        model.to_hmm(max_elements=255)
    assert model.to_hmm(max_elements=256).num_states == 16


def test_single_sequence_drops_the_batch_axis():
    model, _, T = make("N2")
    x = sampled_tokens(model, T, B=2)
    one = model.infer(x[1], ("memory", "posterior"))
    both = model.infer(x, ("memory", "posterior"))
    assert one.log_prob.shape == () and one.memory.shape == (2, 2)
    torch.testing.assert_close(one.posterior, both.posterior[1])


def test_long_sequences_stay_finite():
    model = hmmtune.paper_memory_hmm(3, emission_temp=1.0, seed=0)
    x = model.sample(2, 5000, seed=1).tokens
    res = model.infer(x, ("memory", "loo_memory"))
    # exp(log_prob) underflows float64 (below about -745): only scaled recursions get here.
    assert torch.isfinite(res.log_prob).all() and res.log_prob.max() < -2000
    torch.testing.assert_close(res.memory.sum(-1), torch.ones(2, 1, dtype=torch.float64))
    assert torch.isfinite(res.loo_memory).all()


# --------------------------------------------------------------------------- JSON
def test_json_round_trip_float_and_exact(tmp_path):
    model, _, T = make("N2", seed=4)
    text = memory_hmm_to_json(model, tmp_path / "m.json")
    data = json.loads(text)
    assert data["kind"] == "memory_hmm" and np.shape(data["emission"]) == (2, 2, 3)
    back = load_model(tmp_path / "m.json")
    assert isinstance(back, MemoryHMM) and back.exact is None
    for k in ("memory_prior", "initial", "transition", "emission"):
        assert torch.equal(getattr(back, k), getattr(model, k))
    ex = hmmtune.load_example("memory")
    assert ex.exact is not None and not ex.shared_prior
    again = load_model(memory_hmm_to_json(ex))
    assert again.exact == ex.exact
    with pytest.raises(ValueError, match="no exact entries"):
        memory_hmm_to_json(model, exact=True)


def test_json_shared_prior_and_flat_emission():
    data = {
        "kind": "memory_hmm",
        "memory_prior": ["1/3", "2/3"],
        "initial": ["1/2", "1/2"],
        "transition": [["1/2", "1/2"], ["1/2", "1/2"]],
        "emission": [["1", "0"], ["1/2", "1/2"], ["1/4", "3/4"], ["0", "1"]],
    }
    model = load_model(data)
    assert (model.num_cells, model.num_values, model.num_local_states) == (1, 2, 2)
    assert model.shared_prior and json.loads(memory_hmm_to_json(model))["memory_prior"] == ["1/3", "2/3"]
    import sympy

    assert model.exact["memory_prior"][0, 1] == sympy.Rational(2, 3)


@pytest.mark.parametrize(
    "change, match",
    [
        # Within float tolerance of 1, but not exactly 1: the exact check catches it.
        (lambda d: d.update(emission=[["1/3", "0.666666666667"]] * 4), r"field 'emission' row 0 sums to .* exactly, not 1"),
        (lambda d: d.update(memory_prior=["1/3", "0.666666666667"]), r"field 'memory_prior' sums to .* exactly, not 1"),
        (lambda d: d.update(memory_prior=["1/3", "1/3"]), r"memory_prior sums to 0\.666"),
        (lambda d: d.update(num_cells=2), r"num_cells = 2 disagrees"),
        (lambda d: d.update(num_cells="one"), r"'num_cells' must be a positive integer"),
        (lambda d: d.pop("initial"), r"missing field 'initial'"),
        (lambda d: d.update(initial=["1/2", "x"]), r"field 'initial'\[1\]"),
        (lambda d: d.update(kind="nope"), r"known kinds: .*memory_hmm"),
    ],
)
def test_json_errors_name_the_field(change, match):
    data = {
        "kind": "memory_hmm",
        "memory_prior": ["1/3", "2/3"],
        "initial": ["1/2", "1/2"],
        "transition": [["1/2", "1/2"], ["1/2", "1/2"]],
        "emission": [["1", "0"], ["1/2", "1/2"], ["1/4", "3/4"], ["0", "1"]],
    }
    change(data)
    with pytest.raises(ModelFileError, match=match):
        load_model(data)


def test_bundled_example_satisfies_memory_condition_but_not_the_flat_one():
    import sympy

    model = hmmtune.load_example("memory")
    V, S, n = model.num_values, model.num_local_states, model.num_tokens
    assert V * S > n
    W = model.exact["emission"].T  # (n, V*S), column v*S + s
    for s in range(S):
        assert W[:, [v * S + s for v in range(V)]].rank() == V
    assert W.rank() < V * S
    assert all(isinstance(e, sympy.Rational) for e in W)


def test_cli_sample_writes_every_field(tmp_path):
    from hmmtune.cli import main

    out = tmp_path / "s.npz"
    assert main(["sample", "--example", "memory", "-n", "4", "-T", "6", "--seed", "0", "-o", str(out)]) == 0
    data = np.load(out)
    assert set(data.files) == {"tokens", "memory", "pointer", "local_state"}
    assert data["tokens"].shape == (4, 6) and data["memory"].shape == (4, 2)


# --------------------------------------------------------------------------- inference additions
def _brute_backward(A, L):
    """P(x_{t+1:T-1} | H_t = h) by explicit recursion without scaling (numpy)."""
    B, T, m = L.shape
    out = np.ones((B, T, m))
    for t in range(T - 2, -1, -1):
        out[:, t] = (L[:, t + 1] * out[:, t + 1]) @ A.T
    return out


def test_hmm_backward_scaled_and_allow_zero():
    rng = np.random.default_rng(0)
    A = rng.dirichlet(np.ones(3), size=3)
    L = rng.random((2, 6, 3))
    L[1, 3] = 0.0  # sequence 1 is impossible at position 3
    ref = _brute_backward(A, L)
    res = inference.hmm_backward_scaled(torch.tensor(A), torch.tensor(L), allow_zero=True)
    got = res.beta.numpy() * np.exp(res.log_scale.numpy())[..., None]
    np.testing.assert_allclose(got, ref, rtol=1e-12, atol=0)
    assert np.isneginf(res.log_scale[1, :3].numpy()).all() and np.isfinite(res.log_scale[1, 3:].numpy()).all()
    with pytest.raises(hmmtune.ZeroProbabilityError):
        inference.hmm_backward_scaled(torch.tensor(A), torch.tensor(L))
    ok = torch.tensor(L[:1])
    assert torch.equal(inference.hmm_backward_scaled(torch.tensor(A), ok).beta, inference.hmm_backward(torch.tensor(A), ok))
    init = torch.tensor(rng.dirichlet(np.ones(3)))
    fwd = inference.hmm_forward(init, torch.tensor(A), torch.tensor(L), allow_zero=True)
    assert fwd.log_prob[1].item() == -math.inf and torch.isfinite(fwd.log_prob[0])
    assert not torch.isnan(fwd.filtered).any() and (fwd.filtered[1, 3:] == 0).all()
    np.testing.assert_allclose(fwd.log_prob[0].item(), math.log((init.numpy() * L[0, 0] * ref[0, 0]).sum()), rtol=1e-12)
    with pytest.raises(hmmtune.ZeroProbabilityError):
        inference.hmm_forward(init, torch.tensor(A), torch.tensor(L))


# --------------------------------------------------------------------------- properties
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(
    N=st.integers(1, 3),
    V=st.integers(1, 3),
    S=st.integers(1, 2),
    n=st.integers(1, 4),
    T=st.integers(1, 5),
    seed=st.integers(0, 2**16),
    zeros=st.booleans(),
)
def test_property_agrees_with_flattened_hmm_on_any_shape(N, V, S, n, T, seed, zeros):
    arrays = random_memory_arrays(N, V, S, n, seed, zeros)
    model = MemoryHMM(*arrays)
    x = model.sample(3, T, seed=seed).tokens
    hmm = model.to_hmm()
    res = model.infer(x, ("memory", "posterior", "loo_emission_posterior", "loo_memory"))
    np.testing.assert_allclose(res.log_prob.numpy(), hmm.log_prob(x).numpy(), rtol=1e-10, atol=1e-12)
    configs, flat_c, flat_z, flat_row = _flat_maps(N, V, S)
    loo = hmm.loo_posterior(x).numpy()
    np.testing.assert_allclose(res.loo_emission_posterior.numpy(), _aggregate(loo, flat_row, V * S), atol=1e-10)
    np.testing.assert_allclose(res.posterior.numpy(), _aggregate(hmm.posterior(x).numpy(), flat_z, N * S), atol=1e-10)
    # Posteriors are distributions.
    np.testing.assert_allclose(res.memory.sum(-1).numpy(), 1.0, rtol=1e-12)
    np.testing.assert_allclose(res.loo_memory.sum(-1).numpy(), 1.0, rtol=1e-12)


def test_empty_batch_gives_empty_results():
    model = hmmtune.load_example("memory")
    x = torch.zeros(0, 5, dtype=torch.long)
    res = model.infer(x, ALL_OUTPUTS)
    assert res.memory.shape == (0, 2, 2) and res.loo_emission_posterior.shape == (0, 5, 4)
    assert hmmtune.OracleMLM(model).mask_prediction(x).shape == (0, 3)


def test_float32_models_validate_at_their_resolution_and_round_trip_through_json():
    prior, initial, transition, emission = random_memory_arrays(2, 2, 2, 3, seed=1, zeros=False)
    f32 = [np.asarray(a, dtype=np.float32) for a in (prior, initial, transition, emission)]
    model = MemoryHMM(*f32, dtype=torch.float32)
    assert model.dtype == torch.float32
    text = memory_hmm_to_json(model)
    assert json.loads(text)["dtype"] == "float32"
    back = load_model(text)
    assert back.dtype == torch.float32 and torch.equal(back.emission, model.emission)
    with pytest.raises(ModelFileError, match="'dtype'"):
        load_model(dict(json.loads(text), dtype="float16"))
