"""The time-parallel inference path (issue 11, item 1): the same results as the sequential
path and as brute-force enumeration, the same errors for impossible sequences, T = 1 and
T = 10^6, the cost rule, the memory HMM and the oracle, and CUDA where there is one."""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from hmmtune import HMM, MemoryHMM, OracleMLM, ZeroProbabilityError
from hmmtune.models import inference

from conftest import TINY_MODELS, brute_log_prob, brute_masked_posterior, brute_posterior, brute_prob, np_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from memory_reference import brute_force, random_memory_arrays, token_factors  # noqa: E402

PATHS = [False, True]  # sequential, time-parallel


@pytest.fixture
def force(monkeypatch):
    def set_path(parallel: bool):
        monkeypatch.setattr(inference, "TIME_PARALLEL", parallel)

    return set_path


def _random_model(m, n, seed, zeros=0.0):
    g = torch.Generator().manual_seed(seed)
    A = torch.rand(m, m, generator=g, dtype=torch.float64)
    if zeros:
        A = A * (torch.rand(m, m, generator=g, dtype=torch.float64) > zeros)
        A[torch.arange(m), (torch.arange(m) + 1) % m] += 0.1  # every row keeps mass
    E = torch.rand(m, n, generator=g, dtype=torch.float64) + 0.05
    pi = torch.rand(m, generator=g, dtype=torch.float64)
    return pi / pi.sum(), A / A.sum(1, keepdim=True), E / E.sum(1, keepdim=True)


# ------------------------------------------------------------------ brute force, both paths
@pytest.mark.parametrize("parallel", PATHS)
@pytest.mark.parametrize("name", sorted(TINY_MODELS))
@pytest.mark.parametrize("T", [1, 2, 5, 7])
def test_both_paths_match_brute_force(force, parallel, name, T):
    force(parallel)
    pi, A, B = np_params(name)
    hmm = HMM(pi, A, B)
    rng = np.random.default_rng(T)
    cand = [tuple(rng.integers(0, B.shape[1], T)) for _ in range(60)]
    seqs = list(dict.fromkeys(s for s in cand if brute_prob(pi, A, B, s) > 0))[:6]
    x = torch.tensor(seqs)
    np.testing.assert_allclose(hmm.log_prob(x).numpy(), [brute_log_prob(pi, A, B, s) for s in seqs], rtol=1e-12)
    post, mpost = hmm.posterior(x).numpy(), hmm.loo_posterior(x).numpy()
    for b, s in enumerate(seqs):
        np.testing.assert_allclose(post[b], brute_posterior(pi, A, B, s), atol=1e-12)
        np.testing.assert_allclose(mpost[b], brute_masked_posterior(pi, A, B, s), atol=1e-12)
    # the pure functions, including hmm_forward / hmm_backward_scaled / hmm_start_backward
    L = torch.as_tensor(B.T[x.numpy()])
    fwd = inference.hmm_forward(torch.as_tensor(pi), torch.as_tensor(A), L)
    np.testing.assert_allclose(fwd.log_prob.numpy(), [brute_log_prob(pi, A, B, s) for s in seqs], rtol=1e-12)
    bwd = inference.hmm_backward_scaled(torch.as_tensor(A), L)
    start = inference.hmm_start_backward(torch.as_tensor(A), L)
    for b, s in enumerate(seqs[:3]):
        for t in range(T):  # P(x_{t+1:} | H_t = h) by enumeration
            want = [brute_prob(np.eye(len(pi))[h], A, B, s[t:]) / B[h, s[t]] if B[h, s[t]] > 0 else None for h in range(len(pi))]
            got = np.exp(bwd.log_scale[b, t].item()) * bwd.beta[b, t].numpy()
            for h, w in enumerate(want):
                if w is not None:
                    assert got[h] == pytest.approx(w, rel=1e-11, abs=1e-14)
        w0 = np.array([sum(A[h, g] * brute_prob(np.eye(len(pi))[g], A, B, s) for g in range(len(pi))) for h in range(len(pi))])
        np.testing.assert_allclose(start[b].numpy(), w0 / w0.sum(), atol=1e-12)


# ------------------------------------------------------------------ the two paths agree
CASES = [(1, 2, 3), (3, 7, 2), (2, 50, 4), (5, 101, 3), (1, 1000, 5), (2, 37, 6), (3, 64, 1), (2, 300, 8)]


@pytest.mark.parametrize("B,T,m", CASES)
@pytest.mark.parametrize("lazy", [False, True])
def test_paths_agree_at_float64_tolerance(B, T, m, lazy):
    pi, A, E = _random_model(m, 5, seed=B * 1000 + T, zeros=0.3)
    tok = torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(T))
    L = inference.emission_likelihoods(E, tok)
    X = inference.TokenLikelihoods(E, tok) if lazy else L
    calls = [
        lambda p: inference.hmm_posterior(pi, A, X, parallel=p),
        lambda p: inference.hmm_loo_posterior(pi, A, X, parallel=p),
        lambda p: inference.hmm_log_prob(pi, A, X, parallel=p),
        lambda p: inference.hmm_start_backward(A, X, parallel=p),
        lambda p: inference.hmm_backward(A, L, parallel=p),
        lambda p: torch.stack(list(inference.hmm_forward(pi, A, L, parallel=p)[1:])),
        lambda p: inference.hmm_forward(pi, A, L, parallel=p).log_prob,
        lambda p: inference.hmm_backward_scaled(A, L, parallel=p).beta,
        lambda p: inference.hmm_backward_scaled(A, L, parallel=p).log_scale,
    ]
    for i, f in enumerate(calls):
        seq, par = f(False), f(True)
        assert seq.shape == par.shape, i
        scale = max(1.0, float(seq.abs().max()))
        assert float((seq - par).abs().max()) <= 1e-12 * scale, (i, float((seq - par).abs().max()))


# ------------------------------------------------------------ impossible sequences
@pytest.mark.parametrize("T", [5, 9])
def test_zero_probability_same_errors_and_allow_zero_results(T):
    """Every sequence of a model with structural zeros: the time-parallel path raises the
    same error (index, position, message) as the sequential one, and with ``allow_zero``
    gives the same -inf log-probabilities and zero messages."""
    pi, A, B = (torch.as_tensor(a) for a in np_params("m2n2"))
    seqs = torch.tensor(list(itertools.product(range(2), repeat=T)))
    assert len(seqs) >= 32
    L = inference.emission_likelihoods(B, seqs)
    for k in range(0, len(seqs), 7):  # batches that mix possible and impossible sequences
        Lk, Tk = L[k : k + 7], inference.TokenLikelihoods(B, seqs[k : k + 7])
        for fn in (
            lambda p: inference.hmm_posterior(pi, A, Tk, parallel=p),
            lambda p: inference.hmm_loo_posterior(pi, A, Tk, parallel=p),
            lambda p: inference.hmm_log_prob(pi, A, Tk, parallel=p),
            lambda p: inference.hmm_forward(pi, A, Lk, parallel=p),
            lambda p: inference.hmm_backward(A, Lk, parallel=p),
            lambda p: inference.hmm_start_backward(A, Tk, parallel=p),
        ):
            outcome = []
            for p in PATHS:
                try:
                    res = fn(p)
                    outcome.append(("ok", res if isinstance(res, Tensor_) else torch.stack([res.log_prob.expand(res.filtered.shape[:2])[..., None].expand_as(res.filtered), res.filtered])))
                except ZeroProbabilityError as exc:
                    outcome.append(("err", (str(exc), exc.index, exc.position)))
            assert outcome[0][0] == outcome[1][0]
            if outcome[0][0] == "err":
                assert outcome[0][1] == outcome[1][1]
            else:
                torch.testing.assert_close(outcome[0][1], outcome[1][1], rtol=1e-12, atol=1e-13)
        fs = inference.hmm_forward(pi, A, Lk, allow_zero=True, parallel=False)
        fp = inference.hmm_forward(pi, A, Lk, allow_zero=True, parallel=True)
        bs = inference.hmm_backward_scaled(A, Lk, allow_zero=True, parallel=False)
        bp = inference.hmm_backward_scaled(A, Lk, allow_zero=True, parallel=True)
        for a, b in [*zip(fs, fp), *zip(bs, bp)]:
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)  # -inf and zeros in the same places
        lz = inference.hmm_log_prob(pi, A, Lk, allow_zero=True, parallel=True)
        torch.testing.assert_close(lz, fs.log_prob, rtol=1e-12, atol=1e-13)
        assert not bool(torch.isnan(lz).any())


Tensor_ = torch.Tensor


def test_impossible_sequence_error_through_the_model(force):
    # only state 1 has initial mass, and it never emits token 0
    hmm = HMM([0.0, 1.0], [[0.5, 0.5], [0.5, 0.5]], [[1.0, 0.0], [0.0, 1.0]])
    x = torch.ones(3, 200, dtype=torch.long)
    x[2, 150] = 0
    x[1, 0] = 0
    for p in PATHS:
        force(p)
        for fn in (hmm.log_prob, hmm.posterior, hmm.loo_posterior):
            with pytest.raises(ZeroProbabilityError) as info:
                fn(x)
            assert info.value.index == 1 and info.value.position == 0


# ------------------------------------------------------------------------- T = 10^6
def test_million_positions_parallel_is_stable_and_exact():
    """T = 10^6 on the time-parallel path. With state-independent emissions the answer is
    known in closed form: log P(x) = sum_t log e[x_t], and the posterior at t is the law of
    H_t (stationary initial law: the stationary law everywhere)."""
    T = 1_000_000
    A = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.3, 0.0, 0.7]], dtype=torch.float64)
    w, v = np.linalg.eig(A.numpy().T)
    pi = torch.as_tensor(np.real(v[:, np.argmin(abs(w - 1))]))
    pi = pi / pi.sum()
    e = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    E = e.expand(3, 3).contiguous()
    x = torch.randint(0, 3, (1, T), generator=torch.Generator().manual_seed(0))
    X = inference.TokenLikelihoods(E, x)
    assert inference.use_time_parallel(1, T, 3)
    lp = inference.hmm_log_prob(pi, A, X, parallel=True)
    assert float(lp[0]) == pytest.approx(float(e.log()[x].sum()), rel=1e-11)
    post = inference.hmm_posterior(pi, A, X, parallel=True)
    assert float((post[0] - pi).abs().max()) < 1e-12
    # a model whose emissions do depend on the state: finite, on the simplex
    E2 = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]], dtype=torch.float64)
    mp = inference.hmm_loo_posterior(pi, A, inference.TokenLikelihoods(E2, x), parallel=True)
    assert bool(torch.isfinite(mp).all()) and float(mp.min()) >= 0
    assert float((mp.sum(-1) - 1).abs().max()) < 1e-12


# ------------------------------------------------------------------------- the cost rule
def test_cost_rule(monkeypatch):
    rule = inference.use_time_parallel
    assert rule(1, 100_000, 4) and rule(1, 100_000, 8) and rule(4, 20_000, 4)
    assert not rule(1, 100_000, 256)  # the block products cost m^3 per position
    assert not rule(4000, 64, 32) and not rule(400, 256, 32)  # the batch already fills each step
    assert not rule(1, 63, 2)  # short sequences: always sequential
    monkeypatch.setattr(inference, "TIME_PARALLEL", True)
    assert rule(4000, 64, 256)
    monkeypatch.setattr(inference, "TIME_PARALLEL", False)
    assert not rule(1, 100_000, 4)


# ------------------------------------------------------------------------- memory HMM, oracle
MEMORY_OUTPUTS = (
    "memory",
    "posterior",
    "emission_posterior",
    "loo_posterior",
    "loo_emission_posterior",
    "loo_memory",
    "start_backward",
    "start_log_scale",
)


@pytest.mark.parametrize("zeros", [False, True])
def test_memory_hmm_and_oracle_paths_agree_and_match_brute_force(force, zeros):
    N, V, S, n, T = 2, 2, 2, 3, 5
    arrays = random_memory_arrays(N, V, S, n, seed=4, zeros=zeros)
    model = MemoryHMM(*arrays)
    x = model.sample(4, T + 1, seed=5).tokens[:, 1:]
    results = []
    for p in PATHS:
        force(p)
        inf = model.infer(x, MEMORY_OUTPUTS)
        oracle = OracleMLM(model)
        results.append(
            {
                **{k: getattr(inf, k) for k in ("log_prob",) + MEMORY_OUTPUTS},
                "mask": oracle.mask_posterior(x),
                "tok": oracle.token_posteriors(x),
                "lp": model.log_prob(x),  # the streaming log-likelihood
                "mem": model.memory_posterior(x),
            }
        )
    for k in results[0]:
        torch.testing.assert_close(results[0][k], results[1][k], rtol=1e-12, atol=1e-13, msg=k)
    prior, initial, transition, emission = arrays
    ref = brute_force(prior, initial, transition, emission, token_factors(emission, x.numpy(), mask_first=True))
    np.testing.assert_allclose(results[1]["mask"].numpy(), ref["z"][:, 0], atol=1e-12)
    np.testing.assert_allclose(results[1]["tok"].numpy(), ref["loo_z"][:, 1:], atol=1e-12)
    torch.testing.assert_close(results[1]["lp"], results[0]["log_prob"], rtol=1e-12, atol=1e-13)


def test_hmm_oracle_paths_agree(force):
    pi, A, E = _random_model(5, 4, seed=9, zeros=0.2)
    hmm = HMM(pi, A, E)
    x, _ = hmm.sample(3, 90, seed=1)
    out = []
    for p in PATHS:
        force(p)
        o = OracleMLM(hmm)
        out.append((o.mask_posterior(x), o.token_posteriors(x), o.token_predictions(x)))
    for a, b in zip(*out):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-13)


# ------------------------------------------------------------------------- GPU
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.parametrize("parallel", PATHS)
def test_cuda_matches_cpu(parallel):
    pi, A, E = _random_model(6, 5, seed=3)
    hmm = HMM(pi, A, E)
    x, _ = hmm.sample(4, 500, seed=2)
    cuda = hmm.to(device="cuda")
    for name in ("log_prob", "posterior", "loo_posterior"):
        want = getattr(hmm, name)(x)
        got = getattr(cuda, name)(x.cuda())
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), want, rtol=1e-10, atol=1e-12)
    for p in PATHS:
        X = inference.TokenLikelihoods(cuda.emission, x.cuda())
        got = inference.hmm_posterior(cuda.initial, cuda.transition, X, parallel=p)
        torch.testing.assert_close(got.cpu(), hmm.posterior(x), rtol=1e-10, atol=1e-12)
    o = OracleMLM(cuda)
    torch.testing.assert_close(o.token_posteriors(x.cuda()).cpu(), OracleMLM(hmm).token_posteriors(x), rtol=1e-10, atol=1e-12)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_memory_hmm_and_its_oracle_run_where_the_tensors_are(device, force):
    """Every output of the memory HMM's inference, its streaming log-likelihood and its
    oracle stay on the model's device and match the brute force (CPU always; CUDA where a
    device exists), on both paths."""
    N, V, S, n, T = 2, 2, 2, 3, 4
    arrays = random_memory_arrays(N, V, S, n, seed=8, zeros=True)
    model = MemoryHMM(*arrays).to(device=device)
    assert model.device.type == device
    x = model.sample(3, T + 1, seed=2).tokens[:, 1:].cpu()
    prior, initial, transition, emission = arrays
    ref = brute_force(prior, initial, transition, emission, token_factors(emission, x.numpy(), mask_first=True))
    plain = brute_force(prior, initial, transition, emission, token_factors(emission, x.numpy()))
    for p in PATHS:
        force(p)
        inf = model.infer(x.to(device), MEMORY_OUTPUTS)
        for k in ("log_prob",) + MEMORY_OUTPUTS:
            assert getattr(inf, k).device.type == device, k
        np.testing.assert_allclose(inf.log_prob.cpu().numpy(), np.log(plain["prob"]), rtol=1e-10)
        np.testing.assert_allclose(inf.memory.cpu().numpy(), plain["memory"], atol=1e-12)
        np.testing.assert_allclose(inf.posterior.cpu().numpy(), plain["z"], atol=1e-12)
        lp = model.log_prob(x.to(device))
        assert lp.device.type == device
        np.testing.assert_allclose(lp.cpu().numpy(), np.log(plain["prob"]), rtol=1e-10)
        oracle = OracleMLM(model)
        mask, tok = oracle.mask_posterior(x.to(device)), oracle.token_posteriors(x.to(device))
        assert mask.device.type == tok.device.type == device
        np.testing.assert_allclose(mask.cpu().numpy(), ref["z"][:, 0], atol=1e-12)
        np.testing.assert_allclose(tok.cpu().numpy(), ref["loo_z"][:, 1:], atol=1e-12)
