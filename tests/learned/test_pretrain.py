"""Pretraining of the learned masked LM: the stream, the loss, the TV diagnostic, checkpoints."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hmmtune import OracleMLM, paper_hmm
from hmmtune.learned import EncoderConfig, MaskedLM, PretrainConfig, load_pretrained, mask_tv_distance, pretrain
from hmmtune.learned.pretrain import _Stream

TINY_ENCODER = dict(num_layers=1, hidden=32, heads=2)


def tiny_config(steps: int, **kw) -> PretrainConfig:
    base = dict(
        num_sequences=steps * 16 // 10,
        sequence_length=160,
        block_length=16,
        epochs=1,
        batch_size=16,
        lr=1e-2,
        warmup_steps=10,
        mask_rate=0.15,
        shard_sequences=16,
        eval_every=max(1, steps // 4),
        eval_length=15,
        eval_inputs=200,
        eval_blocks=32,
        seed=3,
    )
    base.update(kw)
    return PretrainConfig(**base)


@pytest.fixture(scope="module")
def hmm():
    return paper_hmm(3, 5, seed=0)


def test_configs_count_steps_and_reject_bad_values():
    c = PretrainConfig.paper()
    assert (c.num_sequences, c.sequence_length, c.block_length, c.epochs, c.lr, c.mask_rate) == (
        5000,
        10240,
        512,
        3,
        1e-5,
        0.05,
    )
    # 5000 sequences x 20 blocks / 32 per batch, shards of 250 sequences (5000 blocks, 156 batches)
    assert c.steps_per_epoch == 20 * 156 and c.total_steps == 3 * 20 * 156
    assert PretrainConfig().mask_rate == 0.05
    assert PretrainConfig(block_length=100, mask_rate=0.05).masks_per_block == 5
    with pytest.raises(ValueError, match="mask_rate"):
        PretrainConfig(mask_rate=0.0)
    with pytest.raises(ValueError, match="block_length"):
        PretrainConfig(block_length=2000, sequence_length=1000)
    with pytest.raises(ValueError, match="divisible"):
        EncoderConfig(5, hidden=30, heads=4)
    assert EncoderConfig.paper(10).num_layers == 12 and EncoderConfig.paper(10).hidden == 768


def test_stream_is_a_function_of_the_step(hmm):
    c = tiny_config(40)
    a, b = _Stream(hmm, c, 5), _Stream(hmm, c, 5)
    for step in (7, 0, 39, 7):  # out of order: no hidden state beyond the cache
        xa, ya = a.batch(step)
        xb, yb = b.batch(step)
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    x, y = a.batch(3)
    masked = x == 5
    assert x.shape == (16, 16)
    assert torch.equal(masked.sum(1), torch.full((16,), c.masks_per_block))
    assert torch.equal(masked, y != -100)  # labels exactly at the masked positions
    assert bool(((y[masked] >= 0) & (y[masked] < 5)).all())
    # different steps read different blocks and masks
    assert not torch.equal(a.batch(1)[0], a.batch(2)[0])
    # the corpus repeats over epochs (the same shard sequences), reshuffled
    c2 = tiny_config(40, epochs=2)
    s = _Stream(hmm, c2, 5)
    first = {tuple(r) for step in range(c2.steps_per_epoch) for r in s._shard(0, 0).tolist()}
    second = {tuple(r) for r in s._shard(1, 0).tolist()}
    assert second <= first


def test_tv_distance_matches_definition():
    p = torch.tensor([[0.5, 0.5, 0.0], [1.0, 0.0, 0.0]])
    q = torch.tensor([[0.25, 0.25, 0.5], [0.0, 1.0, 0.0]])
    assert torch.allclose(mask_tv_distance(p, q), torch.tensor([0.5, 1.0], dtype=torch.float64))
    with pytest.raises(ValueError):
        mask_tv_distance(p, q[:, :2])


@pytest.fixture(scope="module")
def trained(hmm, tmp_path_factory):
    path = tmp_path_factory.mktemp("pretrain") / "h.json"
    res = pretrain(hmm, tiny_config(60), EncoderConfig(5, max_length=16, **TINY_ENCODER), progress=False, history_path=path)
    return res, path


def test_loss_and_tv_distance_fall(trained):
    res, path = trained
    first, last = res.history[0], res.history[-1]
    assert first.step == 0 and last.step == res.config.total_steps == res.step
    assert [r.step for r in res.history] == [0, 15, 30, 45, 60]
    assert res.finished
    assert last.eval_loss < 0.5 * first.eval_loss
    assert last.train_loss < first.eval_loss
    # it starts above the prediction that ignores the input and ends far below it
    assert first.tv > res.tv_reference
    assert last.tv < 0.5 * res.tv_reference
    assert last.tv < 0.5 * first.tv
    saved = json.loads(path.read_text())
    assert saved["history"][-1]["tv"] == pytest.approx(last.tv)
    assert saved["pretrain"]["mask_rate"] == 0.15


def test_learned_prediction_is_close_to_the_oracle(hmm, trained):
    from hmmtune.tuning import sample_inputs

    res, _ = trained
    x = sample_inputs(hmm, 300, 15, seed=99)  # fresh inputs, not the diagnostic's
    tv = mask_tv_distance(res.model.mask_prediction(x), OracleMLM(hmm).mask_prediction(x)).mean()
    assert float(tv) < 0.5 * res.tv_reference


def _states_equal(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for k in a:
        va, vb = a[k], b[k]
        if isinstance(va, dict):
            if not _states_equal(va, vb):
                return False
        elif isinstance(va, torch.Tensor):
            if not torch.equal(va, vb):
                return False
        elif isinstance(va, (list, tuple)):
            if len(va) != len(vb):
                return False
            for x, y in zip(va, vb):
                if isinstance(x, dict):
                    if not _states_equal(x, y):
                        return False
                elif x != y:
                    return False
        elif va != vb:
            return False
    return True


def test_checkpoint_resume_reaches_the_same_state(hmm, tmp_path):
    # dropout on, so the restored torch RNG state matters too
    enc = EncoderConfig(5, max_length=16, dropout=0.1, **TINY_ENCODER)
    cfg = tiny_config(24, eval_every=5, epochs=2, num_sequences=20)
    assert cfg.total_steps == 24
    full = pretrain(hmm, cfg, enc, progress=False, checkpoint=tmp_path / "full.pt")

    ck = tmp_path / "split.pt"
    part = pretrain(hmm, cfg, enc, progress=False, checkpoint=ck, max_steps=7)
    assert part.step == 7 and not part.finished
    assert part.model.state_dict().keys() == full.model.state_dict().keys()
    assert not all(torch.equal(part.model.state_dict()[k], full.model.state_dict()[k]) for k in full.model.state_dict())
    part = pretrain(hmm, cfg, enc, progress=False, checkpoint=ck, max_steps=15)  # resumes at 7
    assert part.step == 15
    done = pretrain(hmm, cfg, enc, progress=False, checkpoint=ck)  # resumes at 15, finishes
    assert done.step == full.step == cfg.total_steps

    a = torch.load(tmp_path / "full.pt", weights_only=False)
    b = torch.load(ck, weights_only=False)
    for key in ("model", "optimizer", "scheduler"):
        assert _states_equal(a[key], b[key]), key
    assert torch.equal(a["rng"], b["rng"])
    nan_free = lambda v: None if math.isnan(v) else v
    strip = lambda h: [(r["step"], r["tokens"], nan_free(r["train_loss"]), r["eval_loss"], r["tv"]) for r in h]
    assert strip(a["history"]) == strip(b["history"])
    assert [r.tv for r in done.history] == [r.tv for r in full.history]

    # a run with no checkpoint to resume from differs from one that skips the resume
    fresh = pretrain(hmm, cfg, enc, progress=False, checkpoint=ck, resume=False, max_steps=3)
    assert fresh.step == 3

    # the checkpoint loads back as a model
    lm, hist = load_pretrained(tmp_path / "full.pt")
    x = torch.randint(5, (4, 15))
    assert torch.allclose(lm.mask_prediction(x), full.model.mask_prediction(x))
    assert len(hist) == len(full.history)


def test_resume_refuses_other_settings(hmm, tmp_path):
    enc = EncoderConfig(5, max_length=16, **TINY_ENCODER)
    ck = tmp_path / "c.pt"
    pretrain(hmm, tiny_config(10), enc, progress=False, checkpoint=ck, max_steps=4)
    with pytest.raises(ValueError, match="mask_rate"):
        pretrain(hmm, tiny_config(10, mask_rate=0.2), enc, progress=False, checkpoint=ck)
    with pytest.raises(ValueError, match="encoder"):
        pretrain(hmm, tiny_config(10), EncoderConfig(5, max_length=16, num_layers=2, hidden=32, heads=2), progress=False, checkpoint=ck)


def test_pretrain_checks_lengths_and_vocabulary(hmm):
    with pytest.raises(ValueError, match="max_length"):
        pretrain(hmm, tiny_config(10), EncoderConfig(5, max_length=8, **TINY_ENCODER), progress=False)
    with pytest.raises(ValueError, match="tokens"):
        pretrain(hmm, tiny_config(10), EncoderConfig(7, max_length=16, **TINY_ENCODER), progress=False)


def test_training_does_not_touch_the_global_rng(hmm):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    pretrain(hmm, tiny_config(5), EncoderConfig(5, max_length=16, dropout=0.1, **TINY_ENCODER), progress=False)
    assert torch.equal(torch.rand(3), expected)


def test_seed_determines_the_run(hmm):
    enc = EncoderConfig(5, max_length=16, **TINY_ENCODER)
    a = pretrain(hmm, tiny_config(6), enc, progress=False)
    b = pretrain(hmm, tiny_config(6), enc, progress=False)
    c = pretrain(hmm, tiny_config(6, seed=4), enc, progress=False)
    sa, sb, sc = (r.model.state_dict() for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert isinstance(a.model, MaskedLM)
