"""``hmmtune reproduce --mode learned``: options reach run_learned; oracle-only options are refused."""

from __future__ import annotations

import pytest

import hmmtune.learned.experiment as experiment
from hmmtune.cli import main
from hmmtune.learned.experiment import LearnedResult


def test_learned_mode_options_reach_run_learned(monkeypatch, tmp_path, capsys):
    seen = {}

    def fake(name, **kwargs):
        seen["name"], seen["kwargs"] = name, kwargs
        return LearnedResult(name, experiment.CPU_SCALE, [], [], "| m | table |", 0, 0, {"table": "t.md", "records": "r"}, 0.1)

    monkeypatch.setattr(experiment, "run_learned", fake)
    rc = main(["reproduce", "exp2", "--mode", "learned", "--scale", "paper", "--device", "cuda", "--seeds", "2",
               "--out", str(tmp_path), "--threads", "3", "--no-progress"])
    assert rc == 0
    assert seen["name"] == "exp2"
    kw = seen["kwargs"]
    assert (kw["scale"], kw["device"], kw["seeds"], kw["out"], kw["threads"]) == ("paper", "cuda", 2, str(tmp_path), 3)
    assert kw["show_progress"] is False
    out = capsys.readouterr().out
    assert "| m | table |" in out and "table: t.md" in out


@pytest.mark.parametrize("flag", [["--quick"], ["--truncate"], ["--jobs", "2"]])
def test_oracle_only_options_are_refused(flag, capsys):
    assert main(["reproduce", "exp1", "--mode", "learned", *flag]) == 2
    assert "oracle-mode option" in capsys.readouterr().err


def test_paper_scale_without_cuda_warns(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(
        experiment, "run_learned", lambda name, **kw: LearnedResult(name, experiment.PAPER_SCALE, [], [], "", 0, 0, {"records": "r"}, 0.0)
    )
    assert main(["reproduce", "exp1", "--mode", "learned", "--scale", "paper", "--out", str(tmp_path), "--no-progress"]) == 0
    assert "without --device cuda" in capsys.readouterr().err
