"""The learned masked LM's interface: inputs, masks, prompts, per-position predictions."""

from __future__ import annotations

import pytest
import torch

from hmmtune.learned import EncoderConfig, MaskedLM


@pytest.fixture(scope="module")
def lm():
    torch.manual_seed(0)
    return MaskedLM(EncoderConfig(6, num_layers=2, hidden=16, heads=2, max_length=12)).eval()


def test_shapes_and_mask_input(lm):
    x = torch.randint(6, (3, 7))
    ids = lm.masked_input(x)
    assert ids.shape == (3, 8) and bool((ids[:, 0] == 6).all()) and torch.equal(ids[:, 1:], x)
    assert lm(ids).shape == (3, 8, 6)
    p = lm.mask_prediction(x)
    assert p.shape == (3, 6) and torch.allclose(p.sum(-1), torch.ones(3))
    assert torch.allclose(p, torch.softmax(lm(ids)[:, 0], -1), atol=1e-6)
    assert torch.allclose(lm.mask_features(x, "logits"), lm(ids)[:, 0], atol=1e-6)
    assert lm.mask_features(x, "hidden").shape == (3, 16)
    with pytest.raises(ValueError, match="kind"):
        lm.mask_features(x, "other")
    # batching does not change the result
    assert torch.allclose(lm.mask_prediction(x, batch_size=1), p, atol=1e-6)


def test_inputs_are_validated(lm):
    with pytest.raises(ValueError, match="outside the vocabulary"):
        lm.mask_prediction(torch.tensor([[0, 6]]))  # 6 is [MASK], not a token of x
    with pytest.raises(ValueError, match="max_length"):
        lm.mask_prediction(torch.zeros(1, 12, dtype=torch.long))  # 13 positions with the mask


def test_prompt_takes_no_positions_and_is_differentiable(lm):
    x = torch.randint(6, (2, 11))  # mask + 11 tokens = max_length: a prompt still fits
    prompt = lm.init_prompt(4, seed=1)
    assert prompt.shape == (4, 16) and prompt.requires_grad
    out = lm.mask_logits(x, prompt)
    assert out.shape == (2, 6)
    out.sum().backward()
    assert prompt.grad is not None and bool(prompt.grad.abs().sum() > 0)
    # the prompt changes the output, and a different prompt changes it differently
    with torch.no_grad():
        base = lm.mask_logits(x)
        other = lm.mask_logits(x, lm.init_prompt(4, seed=2))
    assert not torch.allclose(out.detach(), base) and not torch.allclose(out.detach(), other)
    # the same seed gives the same initial prompt
    assert torch.equal(lm.init_prompt(4, seed=1), prompt.detach())
    with pytest.raises(ValueError, match="prompt"):
        lm.mask_logits(x, torch.zeros(3, 5))


def test_token_predictions_mask_each_position_once(lm):
    x = torch.randint(6, (2, 9))
    T = x.shape[1]
    exact = lm.token_predictions(x, stride=T)  # one masked position per pass
    ids = lm.masked_input(x)
    with torch.no_grad():
        for t in (1, 4, 9):
            m = ids.clone()
            m[:, t] = lm.mask_id
            expected = torch.softmax(lm(m)[:, t], -1)
            assert torch.allclose(exact[:, t - 1], expected, atol=1e-6)
        # stride 3: position t is predicted with the positions t' = t (mod 3) masked together
        strided = lm.token_predictions(x, stride=3)
        m = ids.clone()
        m[:, [2, 5, 8]] = lm.mask_id
        assert torch.allclose(strided[:, [1, 4, 7]], torch.softmax(lm(m)[:, [2, 5, 8]], -1), atol=1e-6)
    assert exact.shape == (2, T, 6) and torch.allclose(exact.sum(-1), torch.ones(2, T))


def test_freeze(lm):
    other = MaskedLM(lm.config)
    other.freeze()
    assert not any(p.requires_grad for p in other.parameters()) and not other.training
    assert "parameters=" in repr(other) and other.num_parameters() == sum(p.numel() for p in other.parameters())
