"""The attention head over per-position predictions (docs/theory.md, "Theorem M (attention heads)")."""

from __future__ import annotations

import pytest
import torch

from hmmtune import OracleMLM
from hmmtune.models.generators import paper_memory_hmm
from hmmtune.tuning import AttentionHead, Task, fit_attention, fit_head, sample_inputs
from hmmtune.tuning import TrainConfig


def _anchor_data(B: int, T: int, seed: int):
    """Features (B, T, 3): one anchor per input, marked by a large coordinate 2, carries
    the label in coordinates 0/1; the other positions carry label-free noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (B,), generator=g)
    noise = torch.rand(B, T, generator=g, dtype=torch.float64)
    X = torch.stack([0.1 * noise, 0.1 * (1 - noise), torch.zeros(B, T, dtype=torch.float64)], -1)
    anchor = torch.randint(0, T, (B,), generator=g)
    a = 0.05 + 0.02 * torch.rand(B, generator=g, dtype=torch.float64)
    row = torch.stack([torch.where(y == 1, a, 0.1 - a), torch.where(y == 1, 0.1 - a, a), torch.full((B,), 0.9, dtype=torch.float64)], -1)
    X[torch.arange(B), anchor] = row
    return X, y


def test_attention_finds_the_anchor_where_pooling_fails():
    X, y = _anchor_data(800, 12, 0)
    tr, va, te = slice(0, 500), slice(500, 600), slice(600, 800)
    fit = fit_attention(X[tr], y[tr], X[va], y[va])
    assert fit.head.accuracy(X[te], y[te]) >= 0.99
    alpha = fit.head.weights(X[te])
    anchors = X[te][..., 2].argmax(-1)
    assert float(alpha[torch.arange(200), anchors].mean()) > 0.9
    pooled = X.mean(1)  # uniform attention + linear head
    lin = fit_head(pooled[tr], y[tr], pooled[va], y[va])
    assert lin.head.accuracy(pooled[te], y[te]) < 0.8


def test_attention_head_from_explicit_parameters_and_round_trip():
    X, y = _anchor_data(300, 5, 1)
    q = torch.tensor([0.0, 0.0, 50.0], dtype=torch.float64)
    head = AttentionHead(q, torch.tensor([[0.0, 0.0, 0.0], [1.0, -1.0, 0.0]], dtype=torch.float64), torch.zeros(2, dtype=torch.float64))
    assert head.accuracy(X, y) == 1.0
    fit = fit_attention(X, y, init=head, config=TrainConfig(method="adam", lr=0.0, epochs=1))
    assert torch.allclose(fit.head.query, q, atol=1e-9)
    assert torch.allclose(fit.head.value[1] - fit.head.value[0], head.value[1], atol=1e-9)


@pytest.mark.parametrize("V", [3])
def test_attention_on_a_paper_memory_hmm_reaches_the_memory_task(V):
    model = paper_memory_hmm(V, seed=5)
    oracle = OracleMLM(model)
    tokens = sample_inputs(model, 900, 48, seed=5)
    task = Task.binary([1.0, -1.0, 0.5][:V], cell=0)
    y = task.labels(oracle.memory_posterior(tokens, cell=0))
    assert 0.1 < y.double().mean() < 0.9
    G = oracle.token_predictions(tokens)
    fit = fit_attention(G[:600], y[:600], G[600:700], y[600:700], config=TrainConfig(max_iter=200))
    assert fit.head.accuracy(G[700:], y[700:]) >= 0.97
