"""The compiled path (numba kernels) through the public inference functions: the same
numbers as brute-force enumeration and as the torch path, the same errors for impossible
sequences, float32, both likelihood forms, the oracle, and the cost rule's choices."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from hmmtune import HMM, OracleMLM, ZeroProbabilityError
from hmmtune.models import inference

from conftest import TINY_MODELS, brute_log_prob, brute_posterior, brute_prob, np_params

pytest.importorskip("numba")


@pytest.fixture
def path(monkeypatch):
    """Set the path for the test: 'compiled' or 'torch' (sequential torch loop)."""

    def set_path(name: str):
        monkeypatch.setattr(inference, "COMPILED", name == "compiled")
        monkeypatch.setattr(inference, "TIME_PARALLEL", False)

    return set_path


@pytest.mark.parametrize("name", sorted(TINY_MODELS))
@pytest.mark.parametrize("T", [1, 3, 6])
def test_compiled_path_matches_brute_force(path, name, T):
    path("compiled")
    pi, A, B = np_params(name)
    hmm = HMM(pi, A, B)
    rng = np.random.default_rng(T)
    cand = [tuple(rng.integers(0, B.shape[1], T)) for _ in range(60)]
    seqs = list(dict.fromkeys(s for s in cand if brute_prob(pi, A, B, s) > 0))[:6]
    x = torch.tensor(seqs)
    np.testing.assert_allclose(hmm.log_prob(x).numpy(), [brute_log_prob(pi, A, B, s) for s in seqs], rtol=1e-12)
    post = hmm.posterior(x).numpy()
    for b, s in enumerate(seqs):
        np.testing.assert_allclose(post[b], brute_posterior(pi, A, B, s), atol=1e-13)


@pytest.mark.parametrize("m", [3, 40])  # loops and BLAS
@pytest.mark.parametrize("lazy", [False, True])
def test_compiled_and_torch_paths_agree(path, m, lazy):
    g = torch.Generator().manual_seed(m)
    A = torch.rand(m, m, generator=g, dtype=torch.float64) + 0.05
    E = torch.rand(m, 5, generator=g, dtype=torch.float64) + 0.05
    pi = torch.rand(m, generator=g, dtype=torch.float64)
    pi, A, E = pi / pi.sum(), A / A.sum(1, keepdim=True), E / E.sum(1, keepdim=True)
    x = torch.randint(0, 5, (7, 300), generator=g)
    L = inference.TokenLikelihoods(E, x) if lazy else inference.emission_likelihoods(E, x)
    fns = {
        "posterior": lambda: inference.hmm_posterior(pi, A, L),
        "loo": lambda: inference.hmm_loo_posterior(pi, A, L),
        "log_prob": lambda: inference.hmm_log_prob(pi, A, L),
        "start": lambda: inference.hmm_start_backward(A, L),
    }
    out = {}
    for p in ("torch", "compiled"):
        path(p)
        out[p] = {k: f() for k, f in fns.items()}
    for k in fns:
        torch.testing.assert_close(out["compiled"][k], out["torch"][k], rtol=1e-11, atol=1e-13)
        assert out["compiled"][k].shape == out["torch"][k].shape and out["compiled"][k].dtype == torch.float64


def test_float32_on_the_compiled_path(path):
    pi, A, B = (torch.as_tensor(a, dtype=torch.float32) for a in np_params("m3n4"))
    x = torch.randint(0, 4, (4, 50), generator=torch.Generator().manual_seed(0))
    L = inference.TokenLikelihoods(B, x)
    path("torch")
    ref = inference.hmm_posterior(pi, A, L)
    path("compiled")
    got = inference.hmm_posterior(pi, A, L)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("T", [1, 5])
def test_impossible_sequences_same_errors_on_both_paths(path, T):
    pi, A, B = (torch.as_tensor(a) for a in np_params("m2n2"))
    seqs = torch.tensor(list(itertools.product(range(2), repeat=T)))
    L = inference.emission_likelihoods(B, seqs)
    for k in range(0, len(seqs), 3):
        Lk = L[k : k + 3]
        for fn in (
            lambda: inference.hmm_posterior(pi, A, Lk),
            lambda: inference.hmm_loo_posterior(pi, A, Lk),
            lambda: inference.hmm_log_prob(pi, A, Lk),
            lambda: inference.hmm_start_backward(A, Lk),
        ):
            outcome = []
            for p in ("torch", "compiled"):
                path(p)
                try:
                    outcome.append(("ok", fn()))
                except ZeroProbabilityError as exc:
                    outcome.append(("err", (str(exc), exc.index, exc.position)))
            assert outcome[0][0] == outcome[1][0]
            if outcome[0][0] == "err":
                assert outcome[0][1] == outcome[1][1]
            else:
                torch.testing.assert_close(outcome[0][1], outcome[1][1], rtol=1e-12, atol=1e-13)
        path("compiled")
        lz = inference.hmm_log_prob(pi, A, Lk, allow_zero=True)
        path("torch")
        torch.testing.assert_close(lz, inference.hmm_log_prob(pi, A, Lk, allow_zero=True))


def test_oracle_on_the_compiled_path(path):
    pi, A, B = np_params("m3n4")
    hmm = HMM(pi, A, B)
    x, _ = hmm.sample(20, 12, seed=0)
    path("torch")
    ref = OracleMLM(hmm).mask_prediction(x)
    path("compiled")
    torch.testing.assert_close(OracleMLM(hmm).mask_prediction(x), ref, rtol=1e-12, atol=1e-14)


def test_the_compiled_path_applies_only_on_the_cpu_without_gradients(path):
    pi, A, B = (torch.as_tensor(a) for a in np_params("m3n4"))
    x = torch.randint(0, 4, (2, 6), generator=torch.Generator().manual_seed(0))
    L = inference.emission_likelihoods(B, x)
    assert inference._compiled_inputs(L, pi, A) is not None
    assert inference._compiled_inputs(L, pi, A.clone().requires_grad_(True)) is None
    assert inference._compiled_inputs(L.to(torch.bfloat16), pi.to(torch.bfloat16), A.to(torch.bfloat16)) is None
    assert inference._compiled_inputs(L, pi.float(), A) is None  # mixed dtypes stay on torch
    with torch.no_grad():
        assert inference._compiled_inputs(L, pi, A.clone().requires_grad_(True)) is not None


def test_cost_rule_choices(monkeypatch):
    monkeypatch.setattr(inference, "COMPILED", None)
    monkeypatch.setattr(inference, "TIME_PARALLEL", None)
    inference.prepare_compiled()  # no setup owed: the rule compares running costs only
    assert inference.use_compiled(1, 100_000, 4)  # one long sequence: the eager steps dominate
    assert inference.use_compiled(4, 20_000, 32)
    assert not inference.use_compiled(2, 5, 3)  # tiny: not clearly cheaper, the torch path stays
    # the large checks' evidence: 2000 inputs, m = 2000 with 5 successors per state; dense,
    # torch's batched loop is estimated cheaper; in CSR form the kernels are
    assert inference.use_compiled(2000, 17, 2000, nnz=5 * 2000)
    assert not inference.use_compiled(2000, 17, 2000)
    monkeypatch.setattr(inference, "COMPILED", False)
    assert not inference.use_compiled(1, 100_000, 4)


def test_setup_is_owed_until_the_savings_pay_for_it(monkeypatch):
    monkeypatch.setattr(inference, "COMPILED", None)
    monkeypatch.setattr(inference, "TIME_PARALLEL", None)
    monkeypatch.setattr(inference, "_kernels", None)
    monkeypatch.setattr(inference, "_saved_so_far", 0.0)
    seq, par, comp = inference._estimates(16, 2000, 32)
    saving = min(seq, par) - comp
    assert 0 < saving < inference.COST_KERNEL_SETUP
    calls = 0
    while not inference.use_compiled(16, 2000, 32):
        calls += 1
        assert calls < 10_000
    assert calls == int(np.ceil(inference.COST_KERNEL_SETUP / saving)) - 1
    assert inference.compiled_ready()


def test_million_positions_on_the_compiled_path(path):
    """T = 10^6: with state-independent emissions log P(x) = sum_t log e[x_t] (math.fsum as
    the reference) and every posterior is the stationary law."""
    import math

    path("compiled")
    T = 1_000_000
    A = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.8, 0.2], [0.3, 0.0, 0.7]], dtype=torch.float64)
    w, v = np.linalg.eig(A.numpy().T)
    pi = torch.as_tensor(np.real(v[:, np.argmin(abs(w - 1))]))
    pi = pi / pi.sum()
    e = torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64)
    x = torch.randint(0, 3, (1, T), generator=torch.Generator().manual_seed(0))
    X = inference.TokenLikelihoods(e.expand(3, 3).contiguous(), x)
    lp = inference.hmm_log_prob(pi, A, X)
    assert float(lp[0]) == pytest.approx(math.fsum(e.log().numpy()[x.numpy()[0]]), rel=1e-13)
    post = inference.hmm_posterior(pi, A, X)
    assert float((post[0] - pi).abs().max()) < 1e-12
