"""``hmmtune check`` (issue 4, item 9): exit codes 0 / 1 / 2, one readable error line, no
traceback, options reaching the library, task files."""

from __future__ import annotations

import json

import pytest

import hmmtune
from hmmtune.analysis import Report, check, load_task
from hmmtune.cli import main

pytestmark = pytest.mark.usefixtures("torch_single_thread")

FAST = ["--num-inputs", "150", "--length", "4"]


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hmmtune: error: ")
    return lines[0]


@pytest.mark.parametrize("name,code", [("full_rank", 0), ("prompt", 1), ("memory", 0), ("parametric", 0)])
def test_examples_exit_codes(capsys, name, code):
    assert main(["check", "--example", name] + FAST) == code
    out, err = capsys.readouterr()
    assert err == ""
    assert out.startswith(f"hmmtune check: {name}")
    assert ("verdict: holds (--require all)" in out) == (code == 0)


def test_json_output_is_the_library_report_with_the_same_options(capsys, tmp_path):
    out_file = tmp_path / "r.json"
    argv = ["check", "--example", "prompt", "--json", "-o", str(out_file), "--max-prompt-length", "2", "--seed", "3"] + FAST
    assert main(argv) == 1
    printed = Report.from_json(capsys.readouterr().out)
    model = hmmtune.load_example("prompt")
    lib = check(model, load_task(hmmtune.example_path("prompt")), max_prompt_length=2, seed=3, num_inputs=150, length=4)
    assert printed == lib
    assert Report.from_json(out_file) == lib
    assert printed.settings["max_prompt_length"] == 2 and printed.settings["seed"] == 3


def test_model_file_with_its_task_and_task_override(capsys, tmp_path):
    data = json.loads(hmmtune.example_path("prompt").read_text())
    model_file = tmp_path / "m.json"
    model_file.write_text(json.dumps(data))
    assert main(["check", str(model_file)] + FAST) == 1  # the file's own task: head fails
    assert "mu = [1, -1, 0, 0, 0]" in capsys.readouterr().out
    # a task the head can do: mu in the row space of W (W^T b for b = (1, 0))
    task_file = tmp_path / "t.json"
    task_file.write_text(json.dumps({"kind": "task", "mu": ["3/4", "1/4", 1, 0, "1/2"]}))
    code = main(["check", str(model_file), "--task", str(task_file), "--json"] + FAST)
    rep = Report.from_json(capsys.readouterr().out)
    assert rep.condition("head: task in row space of W").holds is True
    assert rep.condition("head: rank W = m").holds is False  # m = 5 > n = 2
    assert code == 1
    # without any task: only the task-free conditions
    del data["task"]
    model_file.write_text(json.dumps(data))
    assert main(["check", str(model_file)] + FAST) == 1
    assert "task: none given" in capsys.readouterr().out


def test_memory_task_file(capsys, tmp_path):
    task_file = tmp_path / "t.json"
    task_file.write_text(json.dumps({"kind": "task", "mu": [1, -1], "target": {"memory_cell": 1}}))
    assert main(["check", "--example", "memory", "--task", str(task_file), "--json"] + FAST) == 0
    rep = Report.from_json(capsys.readouterr().out)
    names = [c.name for c in rep.conditions]
    assert "memory: anchors and leave-one-out stability (empirical)" in names
    assert rep.task["target"] == {"memory_cell": 1}


BAD_MODELS = {
    "missing": None,
    "not_json": "{ this is not json",
    "rows": {"kind": "hmm", "initial": [0.5, 0.6], "transition": [[1, 0], [0, 1]], "emission": [[1], [1]]},
    "shape": {"kind": "hmm", "initial": [1], "transition": [[1, 0]], "emission": [[1]]},
    "kind": {"kind": "nonsense", "initial": [1], "transition": [[1]], "emission": [[1]]},
    "symbol": {"kind": "hmm", "initial": ["1"], "transition": [["1"]], "emission": [["q", "1 - q"]]},
}


@pytest.mark.parametrize("which", sorted(BAD_MODELS))
def test_bad_model_file_exit_2(capsys, tmp_path, which):
    path = tmp_path / f"{which}.json"
    content = BAD_MODELS[which]
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    assert main(["check", str(path)] + FAST) == 2
    out, err = capsys.readouterr()
    line = _one_error_line(err)
    assert str(path) in line or path.name in line
    assert out == ""


BAD_TASKS = {
    "missing": None,
    "not_json": "[1, 2",
    "both": {"kind": "task", "mu": [1, -1, 0], "weights": [[1, 0, 0], [0, 1, 0]]},
    "neither": {"kind": "task"},
    "dimension": {"kind": "task", "mu": [1, -1]},
    "memory_target_on_hmm": {"kind": "task", "mu": [1, -1, 0], "target": {"memory_cell": 0}},
    "bad_target": {"kind": "task", "mu": [1, -1, 0], "target": "last_state"},
    "one_class": {"kind": "task", "weights": [[1, 0, 0]]},
    "nonfinite": {"kind": "task", "mu": [1, "-1", 1e999]},
}


@pytest.mark.parametrize("which", sorted(BAD_TASKS))
def test_bad_task_file_exit_2(capsys, tmp_path, which):
    path = tmp_path / f"{which}.json"
    content = BAD_TASKS[which]
    if content is not None:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    assert main(["check", "--example", "full_rank", "--task", str(path)] + FAST) == 2
    out, err = capsys.readouterr()
    _one_error_line(err)
    assert out == ""


@pytest.mark.parametrize(
    "task",
    [
        {"kind": "task", "mu": [1, -1, 0], "target": {"memory_cell": 0}},  # V = 2 values
        {"kind": "task", "mu": [1, -1], "target": {"memory_cell": 5}},  # N = 2 cells
        {"kind": "task", "mu": [1, -1], "target": "first_state"},  # a memory model needs a cell
        {"kind": "task", "weights": [[1, 0], [0, 1], [1, 1]], "target": {"memory_cell": 0}},
    ],
)
def test_bad_memory_task_exit_2(capsys, tmp_path, task):
    path = tmp_path / "t.json"
    path.write_text(json.dumps(task))
    assert main(["check", "--example", "memory", "--task", str(path)] + FAST) == 2
    _one_error_line(capsys.readouterr().err)


def test_unknown_example_and_conflicting_sources(capsys, tmp_path):
    assert main(["check", "--example", "no_such_model"]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "no_such_model" in line and "prompt" in line  # lists the known examples
    assert main(["check"]) == 2
    _one_error_line(capsys.readouterr().err)
    path = hmmtune.example_path("full_rank")
    assert main(["check", str(path), "--example", "full_rank"]) == 2
    assert "not both" in _one_error_line(capsys.readouterr().err)
    assert main(["check", "--example", "full_rank", "-o", str(tmp_path / "nodir" / "r.json")] + FAST) == 2
    assert "does not exist" in _one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    "argv",
    [
        ["--max-prompt-length", "0"],
        ["--max-prompt-length", "two"],
        ["--tau", "-1"],
        ["--tau", "nan"],
        ["--num-inputs", "0"],
        ["--length", "-2"],
        ["--frobnicate"],
    ],
)
def test_bad_options_exit_2_without_traceback(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(["check", "--example", "full_rank"] + argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    errors = [ln for ln in err.splitlines() if "error:" in ln]
    assert len(errors) == 1 and errors[0] == err.strip().splitlines()[-1]
    assert errors[0].startswith("hmmtune")


def test_json_output_survives_a_solver_that_prints_to_fd1(capfd, monkeypatch):
    import os

    import hmmtune.analysis.certificates as certificates

    real_milp = certificates.milp

    def noisy_milp(*args, **kwargs):
        os.write(1, b"HighsMipSolverData::transformNewIntegerFeasibleSolution tmpSolver.run();\n")
        return real_milp(*args, **kwargs)

    monkeypatch.setattr(certificates, "milp", noisy_milp)
    assert main(["check", "--example", "prompt", "--json"] + FAST) == 1
    out = capfd.readouterr().out
    assert Report.from_json(json.loads(out)).condition("head: LP certificate on concrete inputs").holds is False
