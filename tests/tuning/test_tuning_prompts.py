"""Prompt tuning through the exact prompted oracle (docs/theory.md, "Theorem P (prompt tuning)")."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hmmtune import OracleMLM, load_example
from hmmtune.oracle import MaskMessages
from hmmtune.examples import example_path
from hmmtune.tuning import Task, fit_head, fit_prompt, prompt_from_logits, sample_inputs
from hmmtune.tuning import TrainConfig


def _best_threshold_accuracy(g: np.ndarray, y: np.ndarray) -> float:
    """Best accuracy of any rule 1[s * g + c >= 0] on a scalar feature (both signs, every
    cut), by brute force over the sorted values. With two tokens, G_0 = (1 - g, g), so
    this bounds every linear head."""
    best = 0.0
    cuts = np.concatenate([[-np.inf], np.unique(g), [np.inf]])
    for c in cuts:
        for pred in (g >= c, g < c):
            best = max(best, float(np.mean(pred.astype(int) == y)))
    return best


@pytest.fixture(scope="module")
def prompt_example():
    model = load_example("prompt")
    mu = [float(v) for v in json.loads(example_path("prompt").read_text())["task"]["mu"]]
    oracle = OracleMLM(model)
    tokens = sample_inputs(model, 2000, 8, seed=3)
    post = oracle.mask_posterior(tokens)
    y = Task.binary(mu).labels(post)
    return model, oracle, tokens, y


def test_prompt_tuning_reaches_100_percent_where_head_tuning_cannot(prompt_example):
    model, oracle, tokens, y = prompt_example
    assert model.num_tokens == 2
    tr, va, te = slice(0, 1200), slice(1200, 1500), slice(1500, 2000)
    G = oracle.mask_prediction(tokens)
    g = G[:, 1].numpy()
    # no linear head can get close on these inputs (independent brute force) ...
    bound_train = _best_threshold_accuracy(g[tr], y[tr].numpy())
    bound_test = _best_threshold_accuracy(g[te], y[te].numpy())
    assert bound_train < 0.9 and bound_test < 0.9
    head = fit_head(G[tr], y[tr], G[va], y[va])
    assert head.train_accuracy <= bound_train + 1e-12
    assert head.head.accuracy(G[te], y[te]) <= bound_test + 1e-12
    # ... while one soft token (the shortest prompt of Theorem P here) gets every input right
    fit = fit_prompt(oracle, tokens[tr], y[tr], tokens[va], y[va], num_prompt_tokens=1, init_head=head.head)
    assert fit.prompt.shape == (1, model.num_states)
    assert bool((fit.prompt >= 0).all())
    assert fit.train_accuracy == 1.0
    assert fit.accuracy(oracle, tokens[te], y[te]) == 1.0


def test_prompt_tuning_with_twenty_tokens_from_scratch(prompt_example):
    model, oracle, tokens, y = prompt_example
    msgs = oracle.encode(tokens)  # cached backward messages, reused by every step
    fit = fit_prompt(oracle, MaskMessages(msgs.backward[:1200]), y[:1200], config=TrainConfig(max_iter=300))
    assert fit.prompt.shape == (20, model.num_states)
    assert fit.train_accuracy == 1.0


def test_theorem_p_witness_prompt_as_a_start(prompt_example):
    model, oracle, tokens, y = prompt_example
    # State 4 is in supp(initial) and its successors are exactly the relevant states
    # {0, 1}, whose emission columns are independent: the one-token witness u = e_4
    # puts the mask's prior on {0, 1} (docs/theory.md, "Theorem P (prompt tuning)").
    u = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    prior = oracle.prompt_prior(u)
    assert torch.allclose(prior, model.transition[4])
    assert set(torch.nonzero(prior).flatten().tolist()) == {0, 1}
    fit = fit_prompt(oracle, tokens[:1200], y[:1200], tokens[1200:1500], y[1200:1500], init_prompt=u, config=TrainConfig(max_iter=100))
    assert fit.accuracy(oracle, tokens[1500:], y[1500:]) == 1.0
    assert float(fit.prompt[0, :4].max()) < 1e-6  # the start's support is kept


def test_prompt_rows_are_nonnegative_and_scale_free():
    theta = torch.tensor([[0.0, -1000.0, 3.0], [5.0, 5.0, 5.0]], dtype=torch.float64)
    u = prompt_from_logits(theta)
    assert bool((u > 0).all()) and torch.allclose(u.max(-1).values, torch.ones(2, dtype=torch.float64))
    assert torch.allclose(prompt_from_logits(theta + 7.0), u)


def test_prompt_tuning_on_a_memory_model_uses_rows_over_the_columns_of_w():
    model = load_example("memory")  # 2 values x 2 local states: prompt rows of length 4
    oracle = OracleMLM(model)
    tokens = sample_inputs(model, 500, 10, seed=0)
    y = Task.binary([1.0, -1.0], cell=0).labels(oracle.memory_posterior(tokens, cell=0))
    fit = fit_prompt(oracle, tokens[:400], y[:400], tokens[400:], y[400:], num_prompt_tokens=2, config=TrainConfig(max_iter=50))
    assert fit.prompt.shape == (2, model.num_values * model.num_local_states)
    assert bool((fit.prompt >= 0).all())
    direct = fit.head.predict(oracle.mask_prediction(tokens[400:], fit.prompt))
    assert torch.equal(fit.predict(oracle, tokens[400:]), direct)
