"""Head tuning: the probe recovers what Theorem H promises, and starts from a witness."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmmtune import OracleMLM, load_example
from hmmtune.tuning import LinearHead, Task, fit_head, sample_inputs
from hmmtune.tuning import TrainConfig


@pytest.fixture(scope="module")
def full_rank_data():
    model = load_example("full_rank")  # W (4 x 3) has full column rank: Theorem H holds
    oracle = OracleMLM(model)
    tokens = sample_inputs(model, 3000, 6, seed=11)
    post = oracle.mask_posterior(tokens)
    G = oracle.mask_prediction(tokens)
    W = model.emission.numpy().T
    return model, post, G, W


def _witness(W: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """Minimum-norm b with W^T b = mu (docs/theory.md, "Theorem H (head tuning)"), independently of the library."""
    return W @ np.linalg.solve(W.T @ W, mu)


def test_probe_recovers_the_witness_accuracy_when_theorem_h_holds(full_rank_data):
    model, post, G, W = full_rank_data
    mu = np.array([1.0, -2.0, 0.7])
    task = Task.binary(mu)
    y = task.labels(post)
    assert 0.2 < y.double().mean() < 0.8
    b = _witness(W, mu)
    # the witness head reproduces the task exactly (Theorem H) ...
    assert np.allclose(G.numpy() @ b, post.numpy() @ mu, rtol=0, atol=1e-12)
    witness_acc = float((((G @ torch.from_numpy(b)) >= 0).long() == y).double().mean())
    assert witness_acc == 1.0
    # ... and the fitted probe reaches it on held-out inputs
    tr, va, te = slice(0, 2000), slice(2000, 2500), slice(2500, 3000)
    fit = fit_head(G[tr], y[tr], G[va], y[va])
    assert fit.train_accuracy == 1.0
    assert fit.head.accuracy(G[te], y[te]) == 1.0


def test_multiclass_probe_reaches_100_percent_under_theorem_h(full_rank_data):
    model, post, G, W = full_rank_data
    task = Task(torch.diag(torch.tensor([2.0, 3.0, 6.0])))  # about 1 each at the mean posterior
    y = task.labels(post)
    assert torch.bincount(y, minlength=3).min() > 300
    tr, va, te = slice(0, 2000), slice(2000, 2500), slice(2500, 3000)
    fit = fit_head(G[tr], y[tr], G[va], y[va])
    assert fit.head.weight.shape == (3, 4)
    assert fit.head.accuracy(G[te], y[te]) >= 0.998


def test_probe_starts_from_the_given_witness(full_rank_data):
    model, post, G, W = full_rank_data
    mu = np.array([0.5, 1.0, -1.5])
    b = _witness(W, mu)
    y = Task.binary(mu).labels(post)
    # Adam with lr = 0 never moves: the head must come back as the witness itself
    # (checks the internal standardisation round trip against numpy).
    fit = fit_head(G, y, init=(b, 0.0), config=TrainConfig(method="adam", lr=0.0, epochs=1))
    assert np.allclose(fit.head.b.numpy(), b, atol=1e-10)
    assert abs(float(fit.head.c)) < 1e-10
    assert fit.train_accuracy == 1.0

    class Witness:  # any object with b and c, like the analysis' witness
        def __init__(self, b):
            self.b, self.c = b, None

    fit2 = fit_head(G, y, init=Witness(b), config=TrainConfig(method="adam", lr=0.0, epochs=1))
    assert np.allclose(fit2.head.b.numpy(), b, atol=1e-10)


def test_early_stopping_keeps_the_best_validation_check():
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(400, 5, generator=gen, dtype=torch.float64)
    y = ((X[:, 0] + 0.8 * torch.randn(400, generator=gen, dtype=torch.float64)) > 0).long()  # noisy labels
    fit = fit_head(X[:300], y[:300], X[300:], y[300:], config=TrainConfig(check_every=2, patience=3, max_iter=200))
    val = [h[2] for h in fit.log.history]
    assert fit.val_accuracy == pytest.approx(max(val + [0.0]) if fit.log.best_check >= 0 else fit.val_accuracy)
    assert fit.val_accuracy >= max(val) - 1e-12
    assert fit.log.stopped in ("patience", "converged", "budget")


def test_l2_shrinks_the_weights(full_rank_data):
    model, post, G, W = full_rank_data
    y = Task.binary([1.0, -2.0, 0.7]).labels(post)
    free = fit_head(G[:1000], y[:1000], config=TrainConfig(max_iter=200))
    ridge = fit_head(G[:1000], y[:1000], l2=1.0, config=TrainConfig(max_iter=200))
    assert ridge.head.b.norm() < free.head.b.norm()


def test_binary_head_from_b_and_c():
    head = LinearHead.binary([1.0, -1.0], 0.25)
    X = torch.tensor([[0.1, 0.9], [0.6, 0.4]], dtype=torch.float64)
    assert head.predict(X).tolist() == [0, 1]  # b.G + c = -0.55, 0.45
    assert torch.allclose(head.b, torch.tensor([1.0, -1.0], dtype=torch.float64))


def test_fit_head_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="disagree"):
        fit_head(torch.zeros(5, 3), torch.zeros(4, dtype=torch.long))
