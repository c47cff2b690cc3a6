"""Learned-mode experiments at a tiny scale: records, resume, the side-by-side table."""

from __future__ import annotations

import json

import pytest

from hmmtune.experiments import exp1, exp2
from hmmtune.learned.experiment import CPU_SCALE, PAPER_SCALE, LearnedScale, run_learned, with_scale

TINY = with_scale(
    CPU_SCALE,
    name="tiny",
    num_layers=1,
    hidden=32,
    heads=2,
    feedforward=64,
    num_sequences=16,
    sequence_length=320,
    block_length=32,
    batch_size=16,
    lr=1e-2,
    warmup_steps=5,
    shard_sequences=16,
    eval_every=10,
    eval_inputs=100,
    length=24,
    num_train=150,
    num_val=50,
    num_test=100,
    prompt_tokens=4,
    prompt_epochs=3,
    prompt_batch_size=50,
    stride=6,
)


def test_scales():
    assert PAPER_SCALE.encoder(10).num_layers == 12 and PAPER_SCALE.encoder(10).hidden == 768
    c = PAPER_SCALE.pretrain_config(0)
    assert (c.num_sequences, c.sequence_length, c.block_length, c.epochs, c.lr, c.mask_rate) == (5000, 10240, 512, 3, 1e-5, 0.05)
    assert PAPER_SCALE.length == 128 and PAPER_SCALE.prompt_tokens == 20
    assert CPU_SCALE.length + 1 <= CPU_SCALE.block_length
    with pytest.raises(ValueError, match="block_length"):
        with_scale(CPU_SCALE, length=64)
    assert "mask rate" in CPU_SCALE.describe()


def test_exp1_learned_end_to_end(tmp_path):
    seen = []
    res = run_learned("exp1", scale=TINY, sizes=[4, 12], seeds=1, out=tmp_path, progress=seen.append)
    assert res.ran == 2 and res.resumed == 0 and [p.done for p in seen] == [1, 2]
    rec = res.records[0]
    r = rec["results"]
    for method in ("head", "prompt"):
        for split in ("train", "val", "test"):
            assert 0.0 <= r["learned"][method][split] <= 1.0
    # the oracle column is the oracle-mode run on the same configuration and seed
    cfg = exp1.Exp1Config(4, length=24, num_train=150, num_val=50, num_test=100, prompt_tokens=4)
    assert r["oracle"]["head"]["test"] == exp1.run(cfg, 0)["head"]["test"]
    hist = r["pretrain"]["history"]
    assert TINY.pretrain_config(0).total_steps == 10
    assert hist[0]["step"] == 0 and hist[-1]["step"] == r["pretrain"]["steps"] == 10
    assert 0.0 <= r["tv_test"] <= 1.0
    # the table: learned, oracle and published side by side
    lines = res.table.splitlines()
    assert "prompt tuning: learned" in lines[0] and "oracle" in lines[0] and "paper" in lines[0]
    row4 = [c.strip() for c in next(l for l in lines if l.startswith("| 4 |")).split("|")]
    assert "99.7" in row4 and "94.0" in row4  # the published numbers for m = 4
    row12 = next(l for l in lines if l.startswith("| 12 |")).split("|")
    assert "–" in [c.strip() for c in row12]  # m = 12: no published number
    summary = json.loads(open(res.paths["summary"]).read())
    assert summary["mode"] == "learned" and len(summary["rows"]) == 4
    assert open(res.paths["plot"], "rb").read(4) == b"\x89PNG"
    # no checkpoint is left once a record is saved
    assert not list((tmp_path / "exp1-learned-tiny").glob("*.pt"))
    # resume: nothing is recomputed
    again = run_learned("exp1", scale=TINY, sizes=[4, 12], seeds=1, out=tmp_path, plot=False)
    assert again.ran == 0 and again.resumed == 2 and again.table == res.table


def test_exp2_learned_end_to_end(tmp_path):
    res = run_learned("exp2", scale=TINY, sizes=[2], seeds=[0], out=tmp_path, plot=False)
    r = res.records[0]["results"]
    assert set(r["learned"]) == {"memory_attention", "memory_linear", "vanilla_linear"}
    assert set(r["tv_test"]) == {"memory", "vanilla"}
    cfg = exp2.Exp2Config(2, length=24, num_train=150, num_val=50, num_test=100)
    assert r["oracle"]["vanilla_linear"]["test"] == exp2.run(cfg, 0)["vanilla_linear"]["test"]
    assert res.records[0]["x"] == 8
    line = next(l for l in res.table.splitlines() if l.startswith("| 8 |"))
    assert "99.8" in line and "83.2" in line


def test_run_learned_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="experiment"):
        run_learned("exp3", scale=TINY, out=tmp_path)
    with pytest.raises(ValueError, match="scale"):
        run_learned("exp1", scale="huge", out=tmp_path)
    assert isinstance(TINY, LearnedScale)
