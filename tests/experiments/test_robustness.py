"""The robustness study at quick scale: records, curves, located points, plots, resume, CLI."""

import json
import math

import numpy as np
import pytest

from hmmtune.cli import main
from hmmtune.experiments import exp1
from hmmtune.experiments import robustness as R
from hmmtune.learned.robustness import run_robustness


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("rob")
    return out, run_robustness(quick=True, out=out)


def test_quick_study_writes_curves_plots_and_locates_published_points(quick_study):
    out, res = quick_study
    summary = json.loads((out / "robustness-quick.json").read_text())
    assert (out / "robustness-quick-exp1.png").stat().st_size > 0
    assert (out / "robustness-quick-exp2.png").stat().st_size > 0
    kinds = {c["kind"] for c in summary["curve_points"]}
    assert {"none", "emission", "noise", "context", "learned"} <= kinds
    for c in summary["curve_points"]:
        assert 0.0 <= c["tv_mean"] <= c["tv_worst"] <= 1.0 + 1e-12
        assert 0.0 <= c["accuracy"] <= 100.0
        if c["kind"] == "none":
            assert c["tv_worst"] == 0.0
    # emission perturbations at row TV d: the measured TV of G grows with d
    e = {c["error"]: c["tv_mean"] for c in summary["curve_points"] if c["base"] == "exp1" and c["size"] == 10 and c["method"] == "head"}
    assert 0 < e["emission=0.03"] < e["emission=0.3"]
    learned = [c for c in summary["curve_points"] if c["source"] == "learned"]
    steps = len(summary["settings"]["learned_steps"])
    assert summary["settings"]["learned_sizes"] == {"exp1": [4], "exp2": [2]}
    # exp1: head and prompt at each stop; exp2: memory + attention and vanilla + linear
    assert len([c for c in learned if c["base"] == "exp1"]) == 2 * steps
    assert {c["method"] for c in learned if c["base"] == "exp2"} == {"memory_attention", "vanilla_linear"}
    assert len([c for c in learned if c["base"] == "exp2"]) == 2 * steps
    assert summary["located"] and all(r["published"] is not None for r in summary["located"])
    last = lambda cs: max(cs, key=lambda c: int(c["error"].split("=")[1]))["tv_mean"]
    row = next(r for r in summary["located"] if r["base"] == "exp1" and r["size"] == 4 and r["method"] == "head")
    assert row["learned_tv"] == pytest.approx(last([c for c in learned if c["base"] == "exp1"]))
    for method in ("memory_attention", "vanilla_linear"):  # two networks: each method its own TV
        row = next(r for r in summary["located"] if r["base"] == "exp2" and r["size"] == 2 and r["method"] == method)
        assert row["learned_tv"] == pytest.approx(last([c for c in learned if c["method"] == method]))
        assert "learned" in row["crossing_tv"] or row["perfect"] is not None


def test_resume_runs_nothing(quick_study):
    out, first = quick_study
    again = run_robustness(quick=True, out=out)
    assert again.ran == 0 and again.resumed == len(first.records)


def test_cli_robustness_quick_reaches_the_learned_points_of_both_experiments(quick_study, capsys):
    """``hmmtune reproduce robustness --quick`` is the study above (it resumes its records)
    and prints the located points with the learned networks' TVs of experiments 1 and 2."""
    out, first = quick_study
    assert main(["reproduce", "robustness", "--quick", "--no-progress", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "robustness-quick.json").read_text())
    assert summary["resumed"] == len(first.records) and summary["ran"] == 0
    assert "exp2 size 2 memory_attention: paper 99.8" in text and "learned TV" in text.split("exp2 size 2 memory_attention")[1].split("\n")[0]


def test_error_free_point_equals_experiment_1():
    cfg = R.RobustnessConfig("exp1", 8, "none", length=24, num_train=200, num_val=50, num_test=200, max_iter=40, prompt_tokens=3)
    ours = R.run(cfg, 1)
    ref = exp1.run(exp1.Exp1Config(8, length=24, num_train=200, num_val=50, num_test=200, max_iter=40, prompt_tokens=3), 1)
    assert ours["head"]["test"] == ref["head"]["test"]
    assert ours["head"]["tv_mean"] == 0.0


def test_crossing_interpolates_in_log_tv():
    tvs = np.array([1e-3, 1e-2, 1e-1])
    accs = np.array([100.0, 90.0, 70.0])
    assert R._crossing(tvs, accs, 80.0) == pytest.approx(math.sqrt(1e-2 * 1e-1))
    assert R._crossing(tvs, accs, 60.0) is None
    assert R._crossing(tvs, accs, 100.0) == pytest.approx(1e-3)


def test_cli_pretraining_error_and_models(tmp_path, capsys):
    assert main(["reproduce", "exp1", "--pretraining-error", "noise=0.6", "--quick", "--no-progress", "--out", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "exp1 size 10 head: paper 79.7" in text
    assert (tmp_path / "exp1-pretraining-error-quick.json").exists()
    assert main(["reproduce", "exp1", "--pretraining-error", "emision=0.1", "--quick", "--out", str(tmp_path)]) == 2
    assert "unknown part 'emision'" in capsys.readouterr().err
    assert main(["reproduce", "exp2", "--models", "authors", "--quick", "--out", str(tmp_path)]) == 2
    assert main(["reproduce", "exp1", "--models", "authors", "--quick", "--seeds", "1", "--no-progress", "--out", str(tmp_path)]) == 0
    rec = json.loads(next((tmp_path / "authors" / "exp1").glob("m4-authors-seed0-*.json")).read_text())
    assert rec["config"]["models"] == "authors" and "authors_convention_flips" in rec["results"]["task"]


def test_study_runs_through_the_sweep_engine_lock_validation_and_learned_records(tmp_path):
    """The study is the engine's recipe: its folder lock, record validation (a bad record
    is set aside, never deleted, and recomputed) and cost line; a learned network is one
    record with every stop, its checkpoint dropped once saved."""
    from hmmtune.experiments import store
    from hmmtune.experiments.sweep import get_recipe

    kw = dict(quick=True, bases=("exp1",), sizes={"exp1": (4,)}, errors=["none", "noise=0.6"], out=tmp_path)
    with store.folder_lock(tmp_path / "robustness"):
        with pytest.raises(store.SweepBusyError, match="another sweep"):
            run_robustness(**kw)
    res = run_robustness(**kw)
    assert get_recipe("robustness-learned").run_one.__module__ == "hmmtune.learned.robustness"
    assert res.ran == 3 and res.sweep.ran == 3 and "3 runs computed" in res.sweep.cost_line()
    learned = [r for r in res.records if r["config"].get("runner") == "learned"]
    assert len(learned) == 1 and len(learned[0]["results"]["steps"]) == 2  # one network, both stops
    assert not list((tmp_path / "robustness").glob("*.pt"))
    imp = next(r for r in res.records if r["config"].get("error") == "noise=0.6")
    path = tmp_path / "robustness" / (imp["key"] + ".json")
    rec = json.loads(path.read_text())
    rec["results"]["head"]["tv_mean"] = "0.1"  # valid JSON, wrong inside
    path.write_text(json.dumps(rec))
    again = run_robustness(**kw)
    assert again.ran == 1 and again.resumed == 2 and len(again.sweep.set_aside) == 1
    assert again.records[2]["results"] == imp["results"]  # recomputed, bit-identical
    assert json.loads(open(again.sweep.set_aside[0]).read())["results"]["head"]["tv_mean"] == "0.1"


def test_cli_study_ctrl_c_says_what_is_saved_and_checks_executor_options(tmp_path, capsys, monkeypatch):
    calls = []
    real = R.run

    def run(config, seed):
        calls.append(config.error)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(config, seed)

    monkeypatch.setattr(R, "run", run)
    args = ["reproduce", "exp1", "--pretraining-error", "noise=0.6", "--quick", "--no-progress", "--out", str(tmp_path)]
    assert main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted: 1 of 4 runs are saved" in err and "Traceback" not in err
    assert main(args + ["--ray-address", "auto"]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err
