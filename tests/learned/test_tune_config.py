"""tune_prompt takes the Adam schedule as a TrainConfig; the old keywords still work
(deprecated) and give the same fit."""

from __future__ import annotations

import pytest
import torch

from hmmtune.learned import EncoderConfig, MaskedLM
from hmmtune.learned.experiment import CPU_SCALE
from hmmtune.learned.tune import tune_prompt
from hmmtune.tuning import TrainConfig


def _setup():
    torch.manual_seed(0)
    lm = MaskedLM(EncoderConfig(5, num_layers=1, hidden=16, heads=2, max_length=12))
    x = torch.randint(5, (80, 10), generator=torch.Generator().manual_seed(1))
    return lm, x, (x[:, 0] >= 2).long()


def test_tune_prompt_config_equals_the_old_keywords():
    lm, x, y = _setup()
    new = tune_prompt(lm, x[:60], y[:60], x[60:], y[60:], num_prompt_tokens=2, config=TrainConfig.paper(epochs=2, batch_size=30, seed=4))
    with pytest.warns(DeprecationWarning, match=r"tune_prompt\(\.\.\., batch_size, epochs, seed=\.\.\.\) is deprecated"):
        old = tune_prompt(lm, x[:60], y[:60], x[60:], y[60:], num_prompt_tokens=2, epochs=2, batch_size=30, seed=4)
    assert torch.equal(new.prompt, old.prompt) and torch.equal(new.head.weight, old.head.weight)
    assert new.log.history == old.log.history and len(new.log.history) == 2


def test_tune_prompt_needs_adam_and_checks_its_settings():
    lm, x, y = _setup()
    with pytest.raises(ValueError, match="config.method must be 'adam'"):
        tune_prompt(lm, x, y, config=TrainConfig(epochs=1))
    with pytest.raises(ValueError, match="epochs must be a positive integer, got 0"):
        tune_prompt(lm, x, y, config=TrainConfig.paper(epochs=0))


def test_the_scales_prompt_schedule():
    c = CPU_SCALE.prompt_config(3)
    assert (c.method, c.lr, c.epochs, c.batch_size, c.patience, c.seed) == ("adam", 0.01, 15, 64, None, 3)
