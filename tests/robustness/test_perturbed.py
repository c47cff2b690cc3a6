"""The imperfect oracle: named perturbations at an exact distance, bounded noise on G."""

import numpy as np
import pytest
import torch

from hmmtune import OracleMLM, paper_hmm
from hmmtune.models.generators import paper_memory_hmm
from hmmtune.perturbed import (
    NoisyOracle,
    PretrainingError,
    imperfect_oracle,
    perturb_hmm,
    perturb_rows,
    tv_to_oracle,
)
from hmmtune.tuning import fit_head, fit_prompt
from hmmtune.tuning.tasks import paper_task, sample_inputs
from hmmtune.tuning import TrainConfig


def _tv(a, b):
    return 0.5 * np.abs(np.asarray(a) - np.asarray(b)).sum(-1)


@pytest.mark.parametrize("d", [0.0, 1e-3, 0.1, 0.45])
def test_rows_move_exactly_to_the_distance(d):
    rng = np.random.default_rng(0)
    rows = rng.dirichlet(np.full(7, 0.05), size=30)  # peaked rows, some near one-hot
    out = perturb_rows(rows, d, np.random.default_rng(1))
    np.testing.assert_allclose(_tv(out, rows), d, atol=1e-12)
    assert (out >= 0).all()
    np.testing.assert_allclose(out.sum(1), 1.0, rtol=1e-14)


def test_distance_out_of_range_is_an_error():
    with pytest.raises(ValueError, match="emission"):
        perturb_rows(np.eye(3), 1.5, np.random.default_rng(0), what="emission")
    with pytest.raises(ValueError, match="row 0"):
        perturb_rows(np.array([[1.0]]), 0.5, np.random.default_rng(0))  # a one-entry row cannot move


def test_named_parts_move_and_only_they():
    hmm = paper_hmm(6, 10, seed=3)
    for part in ("initial", "transition", "emission"):
        pert = perturb_hmm(hmm, **{part: 0.05}, seed=1)
        for other in ("initial", "transition", "emission"):
            a = getattr(pert, other).numpy()
            b = getattr(hmm, other).numpy()
            if other == part:
                np.testing.assert_allclose(_tv(np.atleast_2d(a), np.atleast_2d(b)), 0.05, atol=1e-12)
            else:
                np.testing.assert_array_equal(a, b)


def test_memory_model_can_be_perturbed():
    mem = paper_memory_hmm(3, seed=0)
    pert = perturb_hmm(mem, emission=0.1, transition=0.02, seed=0)
    np.testing.assert_allclose(_tv(pert.emission.numpy(), mem.emission.numpy()), 0.1, atol=1e-12)
    x = sample_inputs(mem, 5, 8, seed=0)
    stats = tv_to_oracle(OracleMLM(pert), OracleMLM(mem), x, positions=True)
    assert 0 < stats.mean <= stats.worst < 1 and stats.count == 40


def test_parse_pretraining_error():
    e = PretrainingError.parse("all=0.01, noise=0.2")
    assert (e.initial, e.transition, e.emission, e.noise) == (0.01, 0.01, 0.01, 0.2)
    assert PretrainingError.parse("none").is_zero
    for bad, what in (("emision=0.1", "emision"), ("noise=2", "noise"), ("emission", "NAME=VALUE")):
        with pytest.raises(ValueError, match=what):
            PretrainingError.parse(bad)


def test_noise_is_bounded_deterministic_and_differentiable():
    hmm = paper_hmm(5, 10, seed=2)
    oracle = OracleMLM(hmm)
    noisy = NoisyOracle(oracle, 0.2, seed=4)
    x = sample_inputs(hmm, 40, 10, seed=1)
    G, Gn = oracle.mask_prediction(x), noisy.mask_prediction(x)
    # an independent recomputation of the definition
    p = oracle.mask_posterior(x).numpy()
    q = torch.softmax(torch.as_tensor(p) @ noisy._R, -1).numpy()
    np.testing.assert_allclose(Gn.numpy(), 0.8 * G.numpy() + 0.2 * q, rtol=1e-12)
    tv = _tv(Gn.numpy(), G.numpy())
    assert tv.max() <= 0.2 + 1e-12 and tv.min() > 0
    np.testing.assert_allclose(Gn.sum(-1).numpy(), 1.0)
    # the same input gets the same noise in another batch
    torch.testing.assert_close(noisy.mask_prediction(x[7:9]), Gn[7:9])
    stats = tv_to_oracle(noisy, oracle, x)
    assert stats.mean == pytest.approx(tv.mean()) and stats.worst == pytest.approx(tv.max())
    # prompts flow through (prompt tuning differentiates G' with respect to u)
    u = torch.rand(2, 5, dtype=torch.float64, requires_grad=True)
    noisy.mask_prediction(noisy.encode(x), u).sum(0)[0].backward()
    assert u.grad is not None and torch.isfinite(u.grad).all()
    assert noisy.token_predictions(x).shape == (40, 10, 10)
    torch.testing.assert_close(NoisyOracle(oracle, 0.0).mask_prediction(x), G)


def test_imperfect_oracle_plugs_into_head_and_prompt_tuning():
    hmm = paper_hmm(4, 10, seed=0)
    x = sample_inputs(hmm, 300, 16, seed=0)
    task = paper_task(4, 1)
    y = task.labels(OracleMLM(hmm).mask_posterior(x))
    imp = imperfect_oracle(hmm, PretrainingError(emission=0.05, noise=0.05), seed=0)
    G = imp.mask_prediction(x)
    hf = fit_head(G[:200], y[:200], G[200:], y[200:], config=TrainConfig(max_iter=100))
    assert 0.5 <= hf.head.accuracy(G[200:], y[200:]) <= 1.0
    msgs = imp.encode(x)
    pf = fit_prompt(imp, msgs.__class__(msgs.backward[:200]), y[:200], msgs.__class__(msgs.backward[200:]), y[200:],
                    num_prompt_tokens=2, init_head=hf.head, config=TrainConfig(max_iter=20))
    assert 0.5 <= pf.val_accuracy <= 1.0
