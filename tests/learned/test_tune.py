"""Head, prompt and attention tuning on a frozen learned model, end to end."""

from __future__ import annotations

import pytest
import torch

from hmmtune import OracleMLM, paper_hmm
from hmmtune.learned import EncoderConfig, PretrainConfig, pretrain
from hmmtune.learned.tune import mask_features, token_features, tune_attention, tune_head, tune_prompt
from hmmtune.tuning import TrainConfig, balanced_paper_task, sample_inputs


@pytest.fixture(scope="module")
def setup():
    hmm = paper_hmm(3, 5, seed=1)
    cfg = PretrainConfig(
        num_sequences=96,
        sequence_length=160,
        block_length=16,
        batch_size=16,
        lr=1e-2,
        warmup_steps=10,
        mask_rate=0.15,
        shard_sequences=32,
        eval_every=0,
        eval_length=15,
        eval_inputs=100,
        eval_blocks=16,
    )
    lm = pretrain(hmm, cfg, EncoderConfig(5, num_layers=1, hidden=32, heads=2, max_length=16), progress=False).model
    oracle = OracleMLM(hmm)
    tr, va, te = (sample_inputs(hmm, n, 15, seed=s) for n, s in ((300, 1), (100, 2), (200, 3)))
    task, _ = balanced_paper_task(3, 0, oracle.mask_posterior(tr))
    y = [task.labels(oracle.mask_posterior(t)) for t in (tr, va, te)]
    return hmm, lm, (tr, va, te), y


def _weights(lm):
    return {k: v.clone() for k, v in lm.state_dict().items()}


def test_head_tuning_end_to_end(setup):
    hmm, lm, (tr, va, te), (ytr, yva, yte) = setup
    before = _weights(lm)
    fit = tune_head(lm, tr, ytr, va, yva)
    assert fit.features == "probabilities"
    assert fit.head.weight.shape == (2, 5)
    acc = fit.accuracy(lm, te, yte)
    majority = max(float(yte.float().mean()), 1 - float(yte.float().mean()))
    assert acc > majority + 0.05  # the probe reads the task off the learned features
    # the head acts on the features the docs name
    f = mask_features(lm, te)
    assert torch.allclose(f.sum(-1), torch.ones(len(te), dtype=torch.float64), atol=1e-5)
    assert torch.equal(fit.predict(lm, te), fit.head.predict(f))
    logits = tune_head(lm, tr, ytr, va, yva, features="logits")
    assert logits.features == "logits" and 0.0 <= logits.accuracy(lm, te, yte) <= 1.0
    with pytest.raises(ValueError, match="features"):
        tune_head(lm, tr, ytr, features="hidden-states")
    with pytest.raises(ValueError, match="labels"):
        tune_head(lm, tr, ytr[:-1])
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.items())


def test_prompt_tuning_end_to_end(setup):
    hmm, lm, (tr, va, te), (ytr, yva, yte) = setup
    before = _weights(lm)
    grads = [p.requires_grad for p in lm.parameters()]
    init = lm.init_prompt(20, seed=0).detach().clone()
    fit = tune_prompt(lm, tr, ytr, va, yva, config=TrainConfig.paper(epochs=8, batch_size=64, seed=0))
    assert fit.prompt.shape == (20, lm.config.hidden)
    assert fit.log.history[-1][1] < fit.log.history[0][1]  # the joint training lowers the loss
    # the kept prompt is the initial one only if no epoch beat it on validation
    assert torch.allclose(fit.prompt, init) == (fit.log.best_check == -1)
    assert all(torch.equal(v, lm.state_dict()[k]) for k, v in before.items())  # the backbone was not
    assert [p.requires_grad for p in lm.parameters()] == grads
    assert len(fit.log.history) == 8 and fit.log.iterations == 8 * 5
    # the kept epoch is the best one on validation, and the reported accuracy is its own
    assert fit.val_accuracy >= max(h[2] for h in fit.log.history) - 1e-9
    assert fit.val_accuracy == pytest.approx(fit.accuracy(lm, va, yva))
    majority = max(float(yte.float().mean()), 1 - float(yte.float().mean()))
    assert fit.accuracy(lm, te, yte) > majority + 0.05
    # prompted features differ from the unprompted ones
    assert not torch.allclose(fit.features_of(lm, te), mask_features(lm, te))
    # early stopping
    short = tune_prompt(lm, tr, ytr, va, yva, num_prompt_tokens=2, config=TrainConfig.paper(epochs=50, patience=1, batch_size=150))
    assert short.log.stopped == "patience" and len(short.log.history) < 50
    # starting from the tuned head is accepted
    warm = tune_prompt(lm, tr, ytr, va, yva, config=TrainConfig.paper(epochs=1), init_head=tune_head(lm, tr, ytr).head, features="logits")
    assert warm.features == "logits"


def test_heads_on_a_barely_trained_network_do_not_follow_rounding_noise():
    """Regression: a briefly pretrained BERT-base (bf16) gave prompt-tuned heads whose
    validation and test accuracies disagreed (0.90 vs 0.22): features that barely vary
    were divided by their tiny standard deviation and the decisions followed noise."""
    hmm = paper_hmm(10, 10, seed=0)
    cfg = PretrainConfig(
        num_sequences=16, sequence_length=320, block_length=32, batch_size=16, lr=3e-3, warmup_steps=2,
        mask_rate=0.15, eval_every=0, eval_length=31, eval_inputs=50, eval_blocks=8,
    )
    lm = pretrain(hmm, cfg, EncoderConfig(10, num_layers=1, hidden=32, heads=2, max_length=32), progress=False).model
    oracle = OracleMLM(hmm)
    tr, va, te = (sample_inputs(hmm, n, 31, seed=s) for n, s in ((400, 1), (100, 2), (400, 3)))
    task, _ = balanced_paper_task(10, 0, oracle.mask_posterior(tr))
    ytr, yva = (task.labels(oracle.mask_posterior(t)) for t in (tr, va))
    f = mask_features(lm, te)
    assert float(f.std(0).max()) < 1e-3  # the features barely vary: the hard case
    gen = torch.Generator().manual_seed(0)
    head = tune_head(lm, tr, ytr, va, yva).head
    prompt = tune_prompt(lm, tr, ytr, va, yva, config=TrainConfig.paper(epochs=3, batch_size=100))
    fp = prompt.features_of(lm, te)
    for h, feats in ((head, f), (prompt.head, fp)):
        noisy = feats + 1e-4 * torch.randn(feats.shape, generator=gen, dtype=feats.dtype)
        assert float((h.predict(noisy) == h.predict(feats)).double().mean()) >= 0.99


def test_attention_head_on_a_memory_model():
    from hmmtune.models import paper_memory_hmm

    mem = paper_memory_hmm(2, 3, num_tokens=6, seed=0)
    cfg = PretrainConfig(
        num_sequences=64,
        sequence_length=160,
        block_length=16,
        batch_size=16,
        lr=1e-2,
        mask_rate=0.15,
        eval_every=0,
        eval_length=15,
        eval_inputs=50,
        eval_blocks=8,
        warmup_steps=5,
    )
    res = pretrain(mem, cfg, EncoderConfig(6, num_layers=1, hidden=32, heads=2, max_length=16), progress=False)
    assert res.tv < res.history[0].tv  # the TV diagnostic works for memory models too
    lm = res.model
    oracle = OracleMLM(mem)
    tr, va = sample_inputs(mem, 200, 15, seed=1), sample_inputs(mem, 100, 15, seed=2)
    post = oracle.memory_posterior(tr, cell=0)
    task, _ = balanced_paper_task(2, 0, post, cell=0)
    ytr, yva = task.labels(post), task.labels(oracle.memory_posterior(va, cell=0))
    fit = tune_attention(lm, tr, ytr, va, yva, stride=5)
    feats = token_features(lm, va, stride=5)
    assert feats.shape == (100, 15, 6)
    assert torch.equal(fit.predict(lm, va), fit.fit.head.predict(feats))
    assert fit.accuracy(lm, va, yva) == pytest.approx(fit.val_accuracy)
    majority = max(float(yva.float().mean()), 1 - float(yva.float().mean()))
    assert fit.val_accuracy > majority
