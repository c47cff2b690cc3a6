"""TrainConfig: one set of optimiser settings for every fit; the old keywords still work
(deprecated) and give identical fits."""

from __future__ import annotations

import warnings

import pytest
import torch

from hmmtune import OracleMLM, paper_hmm
from hmmtune.tuning import Task, TrainConfig, fit_attention, fit_head, fit_prompt, sample_inputs
from hmmtune.tuning.training import TrainLog


def test_defaults_are_the_fits_old_defaults_and_paper_is_the_papers_schedule():
    c = TrainConfig()
    assert (c.method, c.max_iter, c.check_every, c.patience, c.lr, c.epochs, c.batch_size, c.seed) == (
        "lbfgs", 1000, 25, 4, 0.01, 100, 128, 0
    )
    p = TrainConfig.paper()  # docs/theory.md, "The paper's experiments": lr 0.01, 100 epochs, batch 128
    assert (p.method, p.lr, p.epochs, p.batch_size, p.patience) == ("adam", 0.01, 100, 128, None)
    assert TrainConfig.paper(epochs=5, lr=0.1).epochs == 5 and TrainConfig.paper(lr=0.1).lr == 0.1
    assert c.replace(max_iter=7).max_iter == 7 and c.to_dict()["method"] == "lbfgs"


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(max_iter=0), "max_iter must be a positive integer, got 0"),
        (dict(batch_size=2.5), "batch_size must be a positive integer, got 2.5"),
        (dict(patience=0), "patience must be a positive integer, got 0"),
        (dict(method="sgd"), "method must be 'lbfgs' or 'adam', got 'sgd'"),
        (dict(lr=float("nan")), "lr must be a finite number >= 0"),
        (dict(seed=-1), "seed must be an integer in"),
    ],
)
def test_bad_settings_are_refused_with_the_name_and_value(changes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        TrainConfig(**changes)


@pytest.fixture(scope="module")
def data():
    hmm = paper_hmm(4, 10, seed=5)
    oracle = OracleMLM(hmm)
    x = sample_inputs(hmm, 300, 12, seed=1)
    y = Task.binary([1.0, -1.0, 0.5, 0.0]).labels(oracle.mask_posterior(x))
    return oracle, x, y


def _same_log(a: TrainLog, b: TrainLog):
    assert (a.iterations, a.checks, a.best_check, a.stopped, a.restarts) == (b.iterations, b.checks, b.best_check, b.stopped, b.restarts)
    assert a.history == b.history


@pytest.mark.parametrize(
    "old", [dict(max_iter=40, check_every=5, patience=2), dict(method="adam", lr=0.05, epochs=3, batch_size=64, seed=3)]
)
def test_fit_head_and_attention_with_config_equal_the_old_keywords(data, old):
    oracle, x, y = data
    G = oracle.mask_prediction(x)
    new = fit_head(G[:200], y[:200], G[200:], y[200:], config=TrainConfig(**old))
    with pytest.warns(DeprecationWarning, match=r"fit_head\(\.\.\., .*\) is deprecated; pass config=TrainConfig"):
        legacy = fit_head(G[:200], y[:200], G[200:], y[200:], **old)
    assert torch.equal(new.head.weight, legacy.head.weight) and torch.equal(new.head.bias, legacy.head.bias)
    _same_log(new.log, legacy.log)

    T = oracle.token_predictions(x[:, :6])
    new = fit_attention(T[:200], y[:200], T[200:], y[200:], config=TrainConfig(**old))
    with pytest.warns(DeprecationWarning, match="fit_attention"):
        legacy = fit_attention(T[:200], y[:200], T[200:], y[200:], **old)
    assert torch.equal(new.head.query, legacy.head.query) and torch.equal(new.head.value, legacy.head.value)
    _same_log(new.log, legacy.log)


def test_fit_prompt_with_config_equals_the_old_keywords(data):
    oracle, x, y = data
    new = fit_prompt(oracle, x[:200], y[:200], x[200:], y[200:], num_prompt_tokens=2, config=TrainConfig(max_iter=30, check_every=10))
    with pytest.warns(DeprecationWarning, match="fit_prompt"):
        legacy = fit_prompt(oracle, x[:200], y[:200], x[200:], y[200:], num_prompt_tokens=2, max_iter=30, check_every=10)
    assert torch.equal(new.prompt, legacy.prompt) and torch.equal(new.head.weight, legacy.head.weight)
    _same_log(new.log, legacy.log)


def test_a_config_without_old_keywords_does_not_warn_and_unknown_keywords_are_type_errors(data):
    oracle, x, y = data
    G = oracle.mask_prediction(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fit_head(G, y, config=TrainConfig(max_iter=5))
        fit_head(G, y)
    with pytest.raises(TypeError, match="fit_head\\(\\) got an unexpected keyword argument 'max_iters'"):
        fit_head(G, y, max_iters=5)
    with pytest.raises(TypeError, match="config must be a TrainConfig"):
        fit_head(G, y, config={"max_iter": 5})


def test_patience_none_runs_every_epoch(data):
    oracle, x, y = data
    G = oracle.mask_prediction(x)
    fit = fit_head(G[:200], y[:200], G[200:], y[200:], config=TrainConfig.paper(epochs=6, lr=0.0))
    assert fit.log.checks == 6 and fit.log.stopped == "budget"
    short = fit_head(G[:200], y[:200], G[200:], y[200:], config=TrainConfig.paper(epochs=6, lr=0.0, patience=1))
    assert short.log.checks == 1 and short.log.stopped == "patience"  # lr 0: no check improves
