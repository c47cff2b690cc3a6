"""The Ray executor on a local Ray instance (num_cpus=2) started once for this module:
the same records as the local executor, resume after the driver is killed, a killed
worker retried, the learned runner at a tiny scale. Skipped when Ray is not installed
(`pip install "hmmtune[ray]"`; CI installs it)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import sweep_helpers
from sweep_helpers import SleepConfig

from hmmtune.cli import main
from hmmtune.experiments import exp1, run_sweep

ray = pytest.importorskip("ray", reason='the Ray executor needs Ray: pip install "hmmtune[ray]"')

TINY1 = dict(length=24, num_train=150, num_val=50, num_test=100, max_iter=60)


@pytest.fixture(scope="module")
def ray_instance():
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    # the toy recipe's module is not importable by Ray's workers: send it by value
    ray.cloudpickle.register_pickle_by_value(sweep_helpers)
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sweep_helpers)
    ray.shutdown()


def _comparable(rec: dict) -> dict:
    return {k: rec[k] for k in ("experiment", "key", "config", "config_hash", "seed", "x", "results")}


def test_ray_records_are_bit_identical_to_local_ones(ray_instance, tmp_path):
    cfgs = exp1.configs(states=(4, 15), **TINY1)
    seen = []
    on_ray = run_sweep("exp1", configs=cfgs, seeds=2, out=tmp_path / "ray", executor="ray", plot=False, progress=seen.append)
    assert [p.done for p in seen] == [1, 2, 3, 4] and {p.total for p in seen} == {4}  # the progress bar's feed
    local = run_sweep("exp1", configs=cfgs, seeds=2, out=tmp_path / "local", plot=False)
    assert on_ray.executor == "ray" and on_ray.ran == 4
    assert [_comparable(r) for r in on_ray.records] == [_comparable(r) for r in local.records]
    assert on_ray.table == local.table
    # the driver wrote them into the same store layout: the local executor resumes all of them
    again = run_sweep("exp1", configs=cfgs, seeds=2, out=tmp_path / "ray", plot=False)
    assert again.ran == 0 and again.resumed == 4


KILLED_DRIVER = textwrap.dedent(
    """
    import sys, time
    from hmmtune.experiments import exp1, run_sweep
    cfgs = exp1.configs(states=(4, 15), **{tiny})
    def progress(p):
        if not p.resumed:
            time.sleep(600)   # the driver hangs after its first record: we kill it here
    run_sweep("exp1", configs=cfgs, seeds=2, out=sys.argv[1], progress=progress, plot=False,
              executor="ray", ray_address="auto")
    """
)


def test_a_sweep_resumes_after_its_ray_driver_is_killed(ray_instance, tmp_path):
    out = tmp_path / "res"
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLED_DRIVER.format(tiny=repr(TINY1)), str(out)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        deadline = time.time() + 180
        while not list((out / "exp1").glob("*.json")):
            assert proc.poll() is None, proc.stderr.read()
            assert time.time() < deadline
            time.sleep(0.2)
    finally:
        proc.kill()
        proc.wait()
    kept = {p.name: p.stat().st_mtime_ns for p in (out / "exp1").glob("*.json")}
    assert 1 <= len(kept) < 4
    res = run_sweep("exp1", configs=exp1.configs(states=(4, 15), **TINY1), seeds=2, out=out, executor="ray", plot=False)
    assert res.resumed == len(kept) and res.ran == 4 - len(kept)
    assert {p: Path(out / "exp1" / p).stat().st_mtime_ns for p in kept} == kept  # not recomputed


def test_a_ray_worker_killed_mid_run_is_retried(ray_instance, tmp_path):
    marker = tmp_path / "killed-once"
    configs = [SleepConfig(1, kill_marker=str(marker)), SleepConfig(2)]
    res = run_sweep(sweep_helpers.RECIPE, configs=configs, seeds=1, out=tmp_path / "res", executor="ray", plot=False)
    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a Ray worker died
    assert res.ran == 2 and [r["results"]["a"]["test"] for r in res.records] == [0.7, 0.4]


def test_learned_runner_at_a_tiny_scale_on_ray(ray_instance, tmp_path):
    from hmmtune.learned.experiment import CPU_SCALE, run_learned, with_scale

    tiny = with_scale(
        CPU_SCALE, name="tiny", num_layers=1, hidden=16, heads=2, feedforward=32, num_sequences=8,
        sequence_length=160, block_length=32, batch_size=8, lr=1e-2, warmup_steps=2, shard_sequences=8,
        eval_every=10, eval_inputs=50, length=24, num_train=100, num_val=50, num_test=100,
        prompt_tokens=2, prompt_epochs=2, prompt_batch_size=50, stride=6,
    )
    on_ray = run_learned("exp1", scale=tiny, sizes=[4], seeds=1, out=tmp_path / "ray", executor="ray", plot=False)
    rec = on_ray.records[0]
    assert rec["mode"] == "learned" and rec["experiment"] == "exp1" and rec["size"] == 4
    assert not list((tmp_path / "ray" / "exp1-learned-tiny").glob("*.pt"))  # checkpoints dropped once saved
    local = run_learned("exp1", scale=tiny, sizes=[4], seeds=1, out=tmp_path / "local", plot=False)
    assert rec["results"]["learned"] == local.records[0]["results"]["learned"]  # same network, same numbers
    assert rec["results"]["oracle"] == local.records[0]["results"]["oracle"]


def test_cli_executor_ray_runs_and_refuses_a_stray_address(ray_instance, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(exp1, "configs", lambda quick=False, truncate=False: [exp1.Exp1Config(4, **TINY1)])
    out = tmp_path / "res"
    assert main(["reproduce", "exp1", "--seeds", "1", "--out", str(out), "--no-progress", "--executor", "ray"]) == 0
    assert "1 runs computed, 0 resumed" in capsys.readouterr().out
    assert main(["reproduce", "exp1", "--ray-address", "auto", "--out", str(out)]) == 2
    assert "--ray-address needs --executor ray" in capsys.readouterr().err


def test_robustness_study_on_ray_matches_the_local_executor(ray_instance, tmp_path):
    from hmmtune.learned.robustness import run_robustness

    kw = dict(quick=True, bases=("exp1",), sizes={"exp1": (4,)}, errors=["none", "noise=0.6"], learned=False)
    on_ray = run_robustness(out=tmp_path / "ray", executor="ray", **kw)
    local = run_robustness(out=tmp_path / "local", **kw)
    assert on_ray.sweep.executor == "ray" and on_ray.ran == 2
    assert [_comparable(r) for r in on_ray.records] == [_comparable(r) for r in local.records]
    assert [c.to_dict() for c in on_ray.curve_points] == [c.to_dict() for c in local.curve_points]
    assert run_robustness(out=tmp_path / "ray", **kw).resumed == 2  # the same store
