"""Experiment 2's learned points in the robustness study (docs/robustness.md): networks on
the memory HMM and its vanilla control, stopped at several pretraining steps."""

import math

import pytest

from hmmtune.experiments import robustness as R
from hmmtune.learned.experiment import exp2_point
from hmmtune.learned.robustness import (
    LEARNED_EXP2_SIZES,
    QUICK_SCALE,
    LearnedPointConfig,
    config_from_dict,
    learned_configs,
    learned_points,
)


@pytest.fixture(scope="module")
def exp2_stops(tmp_path_factory):
    cfg = LearnedPointConfig(2, (5, 25), "quick", 1, base="exp2")
    return learned_points(cfg, 0, tmp_path_factory.mktemp("l2"))


def test_last_stop_is_the_learned_mode_network(exp2_stops):
    """The stop at the scale's last step is exactly ``reproduce exp2 --mode learned``'s
    pair of networks (same seeds; a run resumed from its checkpoint equals an
    uninterrupted one): the same test accuracies and TV at the mask."""
    ref = exp2_point(2, 0, QUICK_SCALE)
    last = exp2_stops[-1]
    total = last["pretrain_memory"]["total_steps"]  # 24: the quick corpus holds 24 batches
    assert last["pretrain_memory"]["step"] == total and last["pretrain_vanilla"]["step"] == total
    for method in ("memory_attention", "memory_linear", "vanilla_linear"):
        assert last[method]["test"] == ref["learned"][method]["test"], method
    assert last["memory_linear"]["tv_mean"] == pytest.approx(ref["tv_test"]["memory"], rel=1e-9)
    assert last["memory_attention"]["tv_mask_mean"] == pytest.approx(ref["tv_test"]["memory"], rel=1e-9)
    assert last["vanilla_linear"]["tv_mean"] == pytest.approx(ref["tv_test"]["vanilla"], rel=1e-9)


def test_stops_are_valid_study_points(exp2_stops):
    total = exp2_stops[-1]["pretrain_memory"]["total_steps"]
    assert [s["memory_attention"]["step"] for s in exp2_stops] == [5, total]  # a stop past the end: the end
    assert [s["vanilla_linear"]["step"] for s in exp2_stops] == [5, total]
    cfg = LearnedPointConfig(2, (5, 25), "quick", 1, base="exp2")
    R.check_results({"source": "learned", "steps": exp2_stops}, cfg.to_dict())
    for s in exp2_stops:
        for method in ("memory_attention", "memory_linear", "vanilla_linear"):
            r = s[method]
            assert 0.0 <= r["tv_mean"] <= r["tv_worst"] <= 1.0 + 1e-12 and 0.0 <= r["test"] <= 1.0
    # a 5-step network is farther from the oracle than the same one at the end
    assert exp2_stops[0]["memory_linear"]["tv_mean"] > exp2_stops[1]["memory_linear"]["tv_mean"]
    points = R.points_of([{"config": cfg.to_dict(), "seed": 0, "results": {"source": "learned", "steps": exp2_stops}}])
    assert {(p["method"], p["error"]) for p in points} == {(m, f"step={k}") for m in R.METHODS["exp2"] for k in (5, total)}
    assert all(p["source"] == "learned" and p["kind"] == "learned" for p in points)


def test_check_rejects_an_exp2_learned_record_without_the_attention_head(exp2_stops):
    cfg = LearnedPointConfig(2, (5, 25), "quick", 1, base="exp2").to_dict()
    broken = [dict(s) for s in exp2_stops]
    del broken[1]["memory_attention"]
    with pytest.raises(ValueError, match=r"steps\[1\]\['memory_attention'\]"):
        R.check_results({"source": "learned", "steps": broken}, cfg)


def test_configs_round_trip_and_exp1_record_keys_unchanged():
    c2 = LearnedPointConfig(5, (20, 3000), base="exp2")
    assert config_from_dict(c2.to_dict()) == c2 and c2.label == "learned-exp2-5-cpu"
    c1 = LearnedPointConfig(4, (20, 60))
    # exactly the dictionary (so the record key) written before exp2 had learned points
    assert c1.to_dict() == {"size": 4, "steps": [20, 60], "scale": "cpu", "prompt_epochs": 8, "runner": "learned", "base": "exp1"}
    assert config_from_dict(c1.to_dict()) == c1
    with pytest.raises(ValueError, match="base must be one of exp1, exp2"):
        LearnedPointConfig(4, (20,), base="exp3")
    full = learned_configs()
    assert [c.size for c in full if c.base == "exp2"] == list(LEARNED_EXP2_SIZES)
    assert {c.base for c in learned_configs(bases=("exp1",))} == {"exp1"}
    assert [(c.base, c.size, c.scale) for c in learned_configs(True)] == [("exp1", 4, "quick"), ("exp2", 2, "quick")]


def test_located_learned_tv_is_per_method_for_exp2():
    cps = [
        R.CurvePoint("exp2", 2, "memory_attention", "imperfect", "none", "none", 0.0, 0.0, 100.0, math.nan, 1),
        R.CurvePoint("exp2", 2, "memory_attention", "learned", "learned", "step=20", 0.5, 0.9, 99.0, math.nan, 1),
        R.CurvePoint("exp2", 2, "vanilla_linear", "learned", "learned", "step=20", 0.3, 0.9, 80.0, math.nan, 1),
    ]
    rows = R.locate_published(cps, {("exp2", 2, "memory_attention"): 0.5, ("exp2", 2, "vanilla_linear"): 0.3})
    got = {r["method"]: r["learned_tv"] for r in rows}
    assert got == {"memory_attention": 0.5, "vanilla_linear": 0.3}
    # the older key (base, size) still answers for every method
    assert {r["learned_tv"] for r in R.locate_published(cps, {("exp2", 2): 0.4})} == {0.4}


def test_the_largest_exp1_size_runs_the_longer_schedule():
    from hmmtune.learned.robustness import LEARNED_LONG_STEPS, LONG_SCALE

    by = {(c.base, c.size): c for c in learned_configs()}
    long = by[("exp1", 25)]
    assert long.scale == "cpu-long" and long.steps == LEARNED_LONG_STEPS and max(long.steps) == 9000
    assert LONG_SCALE.pretrain_config(0).total_steps == 9000 == 3 * by[("exp1", 10)].steps[-1]
    assert by[("exp1", 10)].scale == "cpu" and by[("exp2", 5)].scale == "cpu"
    # explicit steps: every size at the plain CPU scale
    assert {c.scale for c in learned_configs(steps=(20, 60))} == {"cpu"}
