"""The learned model under an enclosing autocast region (bench/paper_scale_gpu.py --bf16
wraps pretraining, head and prompt tuning and the test evaluation in one
``torch.autocast``).

Autocast caches the low-precision cast of every leaf weight that requires a gradient
and reuses it until the outermost region exits, keyed by the tensor and blind to
in-place updates. Without a guard the optimiser's steps never reached the forward pass
(stale casts), casts made under ``no_grad`` cut the gradient off, and a frozen model
(``requires_grad`` off: no cache) computed other features than the same model with
gradients on: ``tune_prompt`` reported train/val accuracies of one network and the
test accuracy came from another (H200: 95/96% vs 38%).
"""

from __future__ import annotations

import torch

from hmmtune.learned import EncoderConfig, MaskedLM
from hmmtune.learned.tune import tune_prompt
from hmmtune.tuning import TrainConfig

AMP = dict(device_type="cpu", dtype=torch.bfloat16)


def _model():
    torch.manual_seed(0)
    return MaskedLM(EncoderConfig(5, num_layers=2, hidden=32, heads=2, max_length=16))


def test_training_inside_one_autocast_region_reaches_the_forward_pass():
    lm = _model()
    x = torch.randint(5, (32, 15), generator=torch.Generator().manual_seed(1))
    ids = lm.masked_input(x)
    with torch.autocast(**AMP):
        lm.mask_features(x)  # an evaluation (eval mode, no grad) before training, as pretrain does
        lm.train()
        opt = torch.optim.SGD(lm.parameters(), lr=0.5)
        for _ in range(2):
            opt.zero_grad()
            lm(ids).float().logsumexp(-1).mean().backward()
            # every weight gets its gradient (a cast cached under no_grad would cut it off)
            assert [n for n, p in lm.named_parameters() if p.grad is None] == []
            opt.step()
        inside = lm.mask_features(x, "logits")
        for p in lm.parameters():  # frozen, as tune_prompt does: the same features
            p.requires_grad_(False)
        frozen = lm.mask_features(x, "logits")
        for p in lm.parameters():
            p.requires_grad_(True)
    with torch.autocast(**AMP):  # a fresh region casts the current weights
        fresh = lm.mask_features(x, "logits")
    assert torch.equal(inside, fresh)
    assert torch.equal(frozen, fresh)


def test_prompt_accuracies_agree_before_and_after_tune_prompt_returns_under_autocast():
    lm = _model()
    gen = torch.Generator().manual_seed(2)
    x = torch.randint(5, (96, 15), generator=gen)
    y = (x[:, 0] >= 2).long()
    with torch.autocast(**AMP):
        lm.mask_features(x)  # weights cast and cached before the model changes
        with torch.no_grad():
            for p in lm.parameters():  # the model changes (as in pretraining)
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
        fit = tune_prompt(lm, x[:64], y[:64], x[64:], y[64:], num_prompt_tokens=4, config=TrainConfig.paper(epochs=2, batch_size=32))
        # the model's parameters require gradients again here, as after pretraining
        assert fit.accuracy(lm, x[:64], y[:64]) == fit.train_accuracy
        assert fit.accuracy(lm, x[64:], y[64:]) == fit.val_accuracy
        after = fit.features_of(lm, x)
    with torch.autocast(**AMP):
        assert torch.equal(after, fit.features_of(lm, x))
