"""The error contract (docs/errors.md), fuzzed.

CLI: exit 0/1 with no error line, or 2 with exactly one ``hmmtune: error:`` line, never a
traceback, never 3 (an internal error) on any input hypothesis can make; 130 on Ctrl-C;
a closed pipe keeps the code. Library: bad arguments raise ``ValueError`` naming the
argument, nothing else escapes.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import hmmtune.cli as cli
from hmmtune import HMM, load_model
from hmmtune.analysis import check
from hmmtune.tuning import TrainConfig
from hmmtune.analysis.task import load_task
from hmmtune.examples import example_path
from hmmtune.tuning import fit_attention, fit_head

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
QUICK = ["--num-inputs", "40", "--length", "4", "--max-memory", "64M", "--max-prompt-length", "2"]
BASES = {name: json.loads(example_path(name).read_text()) for name in ("full_rank", "parametric", "memory_anchors")}


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # argparse: --help or a bad option
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def assert_contract(code, err, allowed=(0, 1, 2)):
    assert code in allowed, f"exit {code}: {err}"
    assert "Traceback" not in err
    if code == 2:
        lines = [ln for ln in err.strip().splitlines() if ln]
        assert len(lines) == 1 and "error:" in lines[0], err
    else:
        assert "error" not in err, err


# ----------------------------------------------------------------- strategies
INTERESTING_STRINGS = [
    "1/3", "0.5", "1 - a", "a", "b", "1/0", "a/(a-a)", "__import__('os').system('touch X')",
    "0*9**9**9**9", "1e99999", "nan", "inf", "-1", "", "   ", "1" * 200, "(" * 50, "a^17", "2^-1",
    "\x00", "é", "1/3 + 1/6",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(INTERESTING_STRINGS),
    st.text(max_size=8),
)
json_values = st.recursive(scalars, lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(st.text(max_size=5), kids, max_size=3)), max_leaves=10)


def _paths(value, prefix=()):
    yield prefix
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, prefix + (i,))


@st.composite
def mutated_models(draw):
    name = draw(st.sampled_from(sorted(BASES)))
    data = copy.deepcopy(BASES[name])
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        path = draw(st.sampled_from(paths))
        parent = data
        for key in path[:-1]:
            parent = parent[key]
        action = draw(st.sampled_from(["replace", "delete", "scalar"]))
        if action == "delete":
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(scalars if action == "scalar" else json_values)
    if draw(st.booleans()):
        data["format_version"] = draw(st.one_of(st.just(1), scalars))
    return data


def _write(data, tmp):
    path = Path(tmp) / "model.json"
    path.write_text(json.dumps(data))
    return path


# ------------------------------------------------------------------ the CLI
@FUZZ
@given(mutated_models())
def test_fuzzed_model_files_keep_the_contract(data):
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            code, _, err = run_cli(["check", str(_write(data, tmp))] + QUICK)
        finally:
            os.chdir(cwd)
        assert_contract(code, err)
        assert not (Path(tmp) / "X").exists()


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(mutated_models())
def test_fuzzed_model_files_load_or_raise_value_error(data):
    try:
        load_model(data)
    except ValueError as exc:
        assert str(exc).startswith("<dict>"), exc  # names the source


tasks = st.one_of(
    st.fixed_dictionaries({"kind": st.just("task"), "mu": st.lists(scalars, min_size=0, max_size=4)}),
    st.fixed_dictionaries({"kind": st.just("task"), "weights": st.lists(st.lists(scalars, max_size=3), max_size=3)}),
    st.fixed_dictionaries({"kind": st.just("task"), "mu": st.just([1, -1]), "target": json_values}),
    json_values,
)


@FUZZ
@given(tasks)
def test_fuzzed_tasks_keep_the_contract(task):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "task.json"
        path.write_text(json.dumps(task))
        code, _, err = run_cli(["check", "--example", "full_rank", "--task", str(path)] + QUICK)
        assert_contract(code, err)


OPTION_VALUES = st.one_of(
    st.integers(-5, 10).map(str),
    st.sampled_from(["0", "-1", "1e3", "nan", "inf", "", " ", "x", "99999999999999999999999", "1000000000", "100000000", "2**70", "64M", "1K", "0.5"]),
)


@st.composite
def check_argvs(draw):
    argv = ["check", "--example", draw(st.sampled_from(["full_rank", "parametric", "memory_anchors"]))]
    options = ["--num-inputs", "--length", "--max-prompt-length", "--tau", "--seed", "--certificate-length", "--max-memory", "--max-file-size", "-o"]
    for opt in draw(st.lists(st.sampled_from(options), max_size=3, unique=True)):
        argv += [opt, draw(OPTION_VALUES)]
    if "--max-memory" not in argv:
        argv += ["--max-memory", "64M"]
    if "--num-inputs" not in argv:
        argv += ["--num-inputs", "40"]
    return argv


@FUZZ
@given(check_argvs())
def test_fuzzed_check_options_keep_the_contract(argv):
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        os.chdir(tmp)
        try:
            code, _, err = run_cli(argv)
        finally:
            os.chdir(cwd)
    assert_contract(code, err)


@FUZZ
@given(st.sampled_from(["sample", "predict"]), OPTION_VALUES, OPTION_VALUES, OPTION_VALUES)
def test_fuzzed_sample_options_keep_the_contract(command, n, T, seed):
    with tempfile.TemporaryDirectory() as tmp:
        argv = [command, "--example", "full_rank", "-n", n, "-T", T, "--seed", seed, "--max-memory", "16M"]
        if command == "sample":
            argv += ["-o", str(Path(tmp) / "o.npz")]
        code, _, err = run_cli(argv)
    assert_contract(code, err, allowed=(0, 2))


@pytest.mark.parametrize(
    "argv, pattern",
    [
        (["check", "--example", "full_rank", "--num-inputs", "1000000000"], r"--num-inputs 1000000000 x --length 16 needs about .* TiB, above the limit 4\.0 GiB \(raise it with --max-memory"),
        (["check", "--example", "full_rank", "--length", "100000000"], r"--num-inputs 2000 x --length 100000000 needs about"),
        (["sample", "--example", "full_rank", "-n", "100000", "-T", "100000", "-o", "x.npz"], r"-n 100000 x -T 100000 needs about .* GiB, above the limit"),
        (["predict", "--example", "memory", "-n", "100000", "-T", "100000"], r"-n 100000 x -T 100000 needs about"),
        (["check", "--example", "full_rank", "--seed", "99999999999999999999999"], r"argument --seed: must be an integer in \[0, 2\^63 - 1\], got 99999999999999999999999"),
        (["check", "--example", "full_rank", "--seed", "-1"], r"argument --seed: must be"),
        (["reproduce", "exp1", "--out", ""], r"argument --out: expected a path, got an empty string"),
        (["sample", "--example", "full_rank", "-n", "1", "-T", "1", "-o", ""], r"argument -o/--output: expected a path"),
        (["check", "--example", "full_rank", "--tau", "nan"], r"argument --tau: must be a finite number >= 0, got nan"),
        (["check", "--example", "full_rank", "--max-memory", "lots"], r"argument --max-memory: expected a size"),
        (["reproduce", "exp1", "--seeds", "1000000000"], r"--seeds 1000000000 needs about 3\.7 TiB, above the limit 4\.0 GiB"),
        (["check", "/dev/zero"], r"/dev/zero: is a device; only regular files are read"),
    ],
)
def test_refusals_name_the_option(argv, pattern, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(argv)
    assert code == 2
    assert_contract(code, err)
    import re

    assert re.search(pattern, err), err


def test_raising_the_memory_limit_lets_the_request_through(tmp_path):
    argv = ["sample", "--example", "full_rank", "-n", "300", "-T", "300", "-o", str(tmp_path / "o.npz")]
    code, _, err = run_cli(argv + ["--max-memory", "1M"])
    assert code == 2 and "above the limit 1.0 MiB" in err
    code, out, err = run_cli(argv + ["--max-memory", "1G"])
    assert code == 0 and "wrote" in out


def test_file_size_limit_option(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(example_path("full_rank").read_text())
    code, _, err = run_cli(["check", str(path), "--max-file-size", "10"] + QUICK)
    assert code == 2 and "above the limit 10 B (raise it with --max-file-size" in err
    assert run_cli(["check", str(path)] + QUICK)[0] == 0


def test_division_by_zero_in_a_model_exits_2_naming_it(tmp_path):
    data = dict(BASES["full_rank"])
    data["initial"] = ["1/0"] + data["initial"][1:]
    code, _, err = run_cli(["check", str(_write(data, tmp_path))])
    assert code == 2
    assert "model.json: field 'initial'[0]: cannot read '1/0' as an exact number: division by zero" in err


def test_internal_errors_exit_3_and_debug_shows_the_traceback(monkeypatch):
    def broken(args):
        return 1 / 0

    monkeypatch.setattr(cli, "cmd_examples", broken)
    code, _, err = run_cli(["examples"])
    assert code == 3
    assert err.count("\n") == 1 and "internal error: ZeroDivisionError" in err and "--debug" in err
    assert "Traceback" not in err
    for argv in (["--debug", "examples"], ["examples", "--debug"]):
        code, _, err = run_cli(argv)
        assert code == 3 and "Traceback" in err and "ZeroDivisionError" in err


def test_keyboard_interrupt_in_process_is_130(monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "cmd_examples", interrupted)
    code, _, err = run_cli(["examples"])
    assert code == 130 and err == "hmmtune: interrupted\n"


class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")

    def fileno(self):
        raise io.UnsupportedOperation("no descriptor")


@pytest.mark.parametrize("example, expected", [("prompt", 1), ("full_rank", 0)])
def test_a_closed_pipe_keeps_the_exit_code(monkeypatch, example, expected):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    assert cli.main(["check", "--example", example] + QUICK) == expected


# ------------------------------------------------------- signals (real processes)
_SLOW = """
import sys, time
import hmmtune.cli as cli
def slow(args):
    print("ready", flush=True)
    time.sleep(60)
cli.cmd_examples = slow
sys.exit(cli.main(["examples"]))
"""


def test_ctrl_c_exits_130_without_a_traceback():
    proc = subprocess.Popen([sys.executable, "-c", _SLOW], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert err == "hmmtune: interrupted\n"


# ------------------------------------------------------------- the library
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    st.sampled_from(["max_prompt_length", "tau", "num_inputs", "length", "certificate_length", "seed", "max_inputs", "tol"]),
    st.one_of(st.integers(-3, 3), st.floats(), st.sampled_from([None, "2", True, 2**70, 1j, np.int64(2), np.float64(0.5)])),
)
def test_check_options_are_validated(name, value):
    model = load_model(example_path("full_rank"))
    try:
        check(model, [1.0, -1.0, 0.0], **{name: value, **({} if name == "num_inputs" else {"num_inputs": 20}), **({} if name == "length" else {"length": 3})})
    except ValueError as exc:
        assert name in str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.lists(st.one_of(st.floats(), st.integers(-2, 2), st.complex_numbers(max_magnitude=2)), min_size=0, max_size=4))
def test_check_task_arrays_are_validated(mu):
    model = load_model(example_path("full_rank"))
    try:
        report = check(model, mu, num_inputs=20, length=3)
    except ValueError:
        return
    assert report.exit_code in (0, 1)
    assert np.all(np.isfinite(np.asarray(mu, dtype=complex))) and np.all(np.imag(mu) == 0)


def test_the_issue_library_cases():
    model = load_model(example_path("full_rank"))
    with pytest.raises(ValueError, match=r"task\[0\] is not finite \(nan\)"):
        check(model, [float("nan"), 1.0, 0.0])
    with pytest.raises(ValueError, match="max_prompt_length must be a positive integer, got 0"):
        check(model, [1.0, -1.0, 0.0], max_prompt_length=0)
    with pytest.raises(ValueError, match="tau must be a finite number >= 0, got nan"):
        check(model, [1.0, -1.0, 0.0], tau=float("nan"))
    with pytest.raises(ValueError, match="task must hold real numbers .* complex"):
        check(model, np.array([1 + 1j, 0, 0]))
    X = torch.randn(6, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"fit_head: labels\[0\] = 0\.5 is not an integer class label"):
        fit_head(X, [0.5, 1.9, 0, 1, 0, 1])
    with pytest.raises(ValueError, match=r"fit_head: labels\[0\] = -1 is outside the classes"):
        fit_head(X, [-1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="l2 must be a finite number >= 0, got -1"):
        fit_head(X, [0, 1, 0, 1, 0, 1], l2=-1)
    with pytest.raises(ValueError, match="num_classes must be"):
        fit_head(X, [0, 1, 0, 1, 0, 1], num_classes=0)
    with pytest.raises(ValueError, match="labels go up to 2 but num_classes = 2"):
        fit_attention(torch.randn(3, 2, 3, dtype=torch.float64), [0, 2, 1], num_classes=2)
    with pytest.raises(ValueError, match="features must hold real numbers"):
        fit_head(torch.randn(6, 3, dtype=torch.complex128), [0, 1, 0, 1, 0, 1])
    fit = fit_head(X, np.array([0.0, 1.0, 0.0, 1.0, 0.0, 1.0]), config=TrainConfig(max_iter=5))  # whole floats are labels
    assert fit.head.weight.shape[0] == 2


def test_fit_prompt_labels_are_validated():
    from hmmtune import OracleMLM
    from hmmtune.tuning import fit_prompt

    model = load_model(example_path("full_rank"))
    oracle = OracleMLM(model)
    tokens, _ = model.sample(6, 3, seed=0)
    with pytest.raises(ValueError, match=r"fit_prompt: labels\[0\] = 0\.5 is not an integer class label"):
        fit_prompt(oracle, tokens, [0.5, 1, 0, 1, 0, 1])
    with pytest.raises(ValueError, match="l2 must be a finite number >= 0"):
        fit_prompt(oracle, tokens, [0, 1, 0, 1, 0, 1], l2=float("inf"))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(st.lists(st.one_of(st.floats(-3, 6), st.integers(-3, 5), st.sampled_from([float("nan"), float("inf"), 1e16, 10**7, 2.5])), min_size=4, max_size=4))
def test_fit_head_labels_fuzzed(labels):
    X = torch.randn(4, 2, dtype=torch.float64)
    try:
        fit = fit_head(X, labels, config=TrainConfig(max_iter=3))
    except ValueError as exc:
        assert "labels" in str(exc)
        return
    assert all(float(v).is_integer() and 0 <= v < 10**6 for v in labels)
    assert fit.head.weight.shape[0] == max(2, int(max(labels)) + 1)


@settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    st.lists(st.one_of(st.floats(), st.complex_numbers(max_magnitude=1), st.integers(-1, 2), st.booleans()), min_size=2, max_size=2),
)
def test_hmm_arrays_fuzzed(initial):
    try:
        model = HMM(initial, [[1, 0], [0, 1]], [[1, 0], [0, 1]])
    except ValueError as exc:
        assert "initial" in str(exc)
        return
    assert torch.allclose(model.initial.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert not any(isinstance(v, complex) for v in initial)


def test_generators_and_oracle_options_are_validated():
    from hmmtune import OracleMLM
    from hmmtune.models import limits
    from hmmtune.models.generators import dirichlet_hmm, paper_hmm

    with pytest.raises(limits.ResourceLimitError, match=r"paper_hmm\(num_states=1000000, num_tokens=10\) needs about .* TiB"):
        paper_hmm(10**6)
    with pytest.raises(limits.ResourceLimitError, match="dirichlet_hmm"):
        dirichlet_hmm(10**6, 2)
    with pytest.raises(ValueError, match="num_states must be a positive integer, got True"):
        paper_hmm(True)
    with pytest.raises(ValueError, match="transition_temp must be a finite number >= 0, got 'x'"):
        paper_hmm(3, transition_temp="x")
    with pytest.raises(ValueError, match="max_elements must be a positive integer, got 0"):
        OracleMLM(paper_hmm(3, seed=0), max_elements=0)


def test_ctrl_c_during_a_real_sweep_exits_130_without_a_traceback(tmp_path):
    """SIGINT while ``hmmtune reproduce`` (one job) computes: code 130, no traceback, and the
    records written so far stay (the rerun resumes from them)."""
    out = tmp_path / "results"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hmmtune", "reproduce", "exp1", "--quick", "--no-progress", "--out", str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None and not list(out.glob("exp1*/*.json")):
            time.sleep(0.05)
        if proc.poll() is not None:
            pytest.skip("the sweep ended before the signal could be sent")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("hmmtune: interrupted: ") and "runs are saved in" in last, last
    assert list(out.glob("exp1*/*.json"))
