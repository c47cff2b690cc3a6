"""Sweeps: resume after a kill, parallel = serial, the CLI, the experiments' records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hmmtune.cli import main
from hmmtune.experiments import exp1, exp2, run_sweep

TINY1 = dict(length=24, num_train=150, num_val=50, num_test=100, max_iter=60)
TINY2 = dict(length=24, num_train=150, num_val=50, num_test=100, max_iter=60)


def tiny_exp1():
    return exp1.configs(states=(4, 15), **TINY1)


def _comparable(rec: dict) -> dict:
    return {"key": rec["key"], "config": rec["config"], "seed": rec["seed"], "results": rec["results"]}


def _records(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.exists() else []


KILLED_SWEEP = textwrap.dedent(
    """
    import sys, time
    from hmmtune.experiments import exp1, run_sweep
    cfgs = exp1.configs(states=(4, 15), **{tiny})
    def progress(p):
        if not p.resumed:
            time.sleep(600)   # the next run "takes forever": we get killed here
    run_sweep("exp1", configs=cfgs, seeds=3, out=sys.argv[1], progress=progress, plot=False)
    """
)


def test_resume_after_a_killed_sweep_gives_the_uninterrupted_table(tmp_path):
    # the uninterrupted sweep, in two worker processes
    ref = run_sweep("exp1", configs=tiny_exp1(), seeds=3, out=tmp_path / "ref", jobs=2, plot=False)
    assert ref.ran == 6 and ref.resumed == 0

    # a sweep killed with SIGKILL after its first record
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_SWEEP.format(tiny=repr(TINY1)), str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.time() + 120
        while not _records(out / "exp1") and time.time() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode()
            time.sleep(0.2)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    kept = _records(out / "exp1")
    assert len(kept) == 1
    mtime = kept[0].stat().st_mtime_ns
    # a write cut short by the kill leaves at most a temporary file
    (out / "exp1" / (kept[0].name.replace("seed0", "seed1") + ".x1y2.tmp")).write_text('{"results": ')

    resumed = run_sweep("exp1", configs=tiny_exp1(), seeds=3, out=out, plot=False)
    assert resumed.resumed == 1 and resumed.ran == 5
    assert kept[0].stat().st_mtime_ns == mtime  # not recomputed
    assert resumed.table == ref.table
    assert [_comparable(r) for r in resumed.records] == [_comparable(r) for r in ref.records]
    # and a third call has nothing left to do
    again = run_sweep("exp1", configs=tiny_exp1(), seeds=3, out=out, plot=False)
    assert again.ran == 0 and again.table == ref.table


def test_records_hold_config_seed_versions_and_revision(tmp_path):
    res = run_sweep("exp1", configs=exp1.configs(states=(4,), **TINY1), seeds=1, out=tmp_path, plot=True)
    (path,) = _records(tmp_path / "exp1")
    rec = json.loads(path.read_text())
    assert rec == res.records[0]
    assert rec["config"]["num_states"] == 4 and rec["config"]["prompt_tokens"] == 20
    assert rec["seed"] == 0 and rec["experiment"] == "exp1"
    assert "torch" in rec["environment"]["versions"] and "git" in rec["environment"]
    for method in ("head", "prompt"):
        assert 0.0 <= rec["results"][method]["test"] <= 1.0
    assert rec["results"]["task"]["minority_fraction"] >= 0.1
    summary = json.loads(Path(res.paths["summary"]).read_text())
    assert summary["rows"][0]["count"] == 1
    assert Path(res.paths["plot"]).stat().st_size > 1000


def test_truncation_keeps_labels_from_the_full_input():
    full = exp1.Exp1Config(4, **TINY1)
    cut = exp1.Exp1Config(4, truncate=True, head_input_length=5, prompt_input_length=3, **TINY1)
    a, b = exp1.build(full, 0), exp1.build(cut, 0)
    assert (a.labels == b.labels).all() and (a.tokens == b.tokens).all()
    res = exp1.run(cut, 0)
    assert res["head"]["test"] <= 1.0 and res["prompt"]["test"] <= 1.0


def test_cli_reproduce_writes_the_table_and_resumes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(exp1, "configs", lambda quick=False, truncate=False: [exp1.Exp1Config(4, truncate=truncate, **TINY1)])
    monkeypatch.setattr(exp2, "configs", lambda quick=False, truncate=False: [exp2.Exp2Config(2, **TINY2)])
    out = tmp_path / "res"
    assert main(["reproduce", "exp1", "--quick", "--seeds", "2", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "| m |" in text and "2 runs computed, 0 resumed" in text
    assert (out / "exp1-quick.md").exists() and (out / "exp1-quick.png").exists()
    assert main(["reproduce", "exp1", "--quick", "--seeds", "2", "--out", str(out), "--no-progress"]) == 0
    assert "0 runs computed, 2 resumed" in capsys.readouterr().out
    assert main(["reproduce", "exp2", "--quick", "--seeds", "1", "--out", str(out), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "memory HMM + attention head" in text and "| 8 |" in text
    assert main(["reproduce", "exp2", "--truncate", "--out", str(out)]) == 2
    assert "truncat" in capsys.readouterr().err


def test_unknown_experiment_and_bad_seeds_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown experiment"):
        run_sweep("exp3", out=tmp_path)
    with pytest.raises(ValueError, match="seed"):
        run_sweep("exp1", configs=tiny_exp1(), seeds=[], out=tmp_path)


def test_executor_ray_without_ray_exits_2_with_the_install_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    assert main(["reproduce", "exp1", "--quick", "--executor", "ray", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert 'pip install "hmmtune[ray]"' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "exp1").exists()
    with pytest.raises(ValueError, match="hmmtune\\[ray\\]"):
        run_sweep("exp1", configs=tiny_exp1(), seeds=1, out=tmp_path, executor="ray")
    with pytest.raises(ValueError, match="unknown executor"):
        run_sweep("exp1", configs=tiny_exp1(), seeds=1, out=tmp_path, executor="dask")


def test_summary_reports_wall_time_and_the_sum_of_run_times(tmp_path):
    res = run_sweep("exp1", configs=exp1.configs(states=(4,), **TINY1), seeds=2, out=tmp_path, plot=False)
    assert res.run_time_s == pytest.approx(sum(r["elapsed_s"] for r in res.records))
    assert 0 < res.run_time_s <= res.elapsed_s
    cost = json.loads(Path(res.paths["summary"]).read_text())["cost"]
    assert cost["executor"] == "local" and cost["ran"] == 2 and cost["run_time_s"] > 0
    assert "s wall; the runs took" in res.cost_line()


def test_one_engine_runs_every_recipe():
    from hmmtune.experiments import get_recipe
    from hmmtune.learned import experiment as learned

    assert get_recipe("exp1").build is exp1.build and get_recipe("exp2").build is exp2.build
    for name in ("exp1", "exp2"):
        rec = get_recipe(f"{name}-learned")
        assert rec.mode == "learned" and rec.experiment == name
        assert rec.methods is get_recipe(name).methods  # one table of methods per experiment
    cfg = learned.LearnedConfig("exp2", 3, learned.CPU_SCALE)
    assert cfg.x == 12 and cfg.label == "V3" and learned.config_from_dict(cfg.to_dict()) == cfg
    # a learned run on CUDA asks Ray for one GPU, on the CPU for none
    assert learned.learned_resources(cfg, "cuda") == {"num_cpus": 1, "num_gpus": 1}
    assert learned.learned_resources(cfg, None) == {"num_cpus": 1, "num_gpus": 0}
    with pytest.raises(ValueError, match="unknown experiment"):
        get_recipe("exp9")


def test_exp2_build_is_the_recipe_run_reads():
    cfg = exp2.Exp2Config(2, **TINY2)
    s = exp2.build(cfg, 0)
    res = exp2.run(cfg, 0)
    assert res["task"]["memory"]["weights"] == s.memory.task.weights.tolist()
    assert res["task"]["vanilla"]["weights"] == s.vanilla.task.weights.tolist()
    assert s.memory.tokens.shape == (cfg.num_train + cfg.num_val + cfg.num_test, cfg.length)
