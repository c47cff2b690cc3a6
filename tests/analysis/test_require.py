"""Issue 12, item 4 and 8(c): --require chooses what decides the exit code; facts never read
"NO"; the verdict names what decided it; the prompt row through the head's witness; eps*
with ties; long vectors abbreviated in the text report."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

from hmmtune.analysis import Report, check
from hmmtune.analysis import Condition
from hmmtune.analysis.report import REQUIRE_CHOICES, abbreviate
from hmmtune.cli import REQUIRE_CHOICES as CLI_CHOICES
from hmmtune.cli import main

from analysis_helpers import all_inputs, brute_p0, dot, exact_model, model_dict, to_fracs

pytestmark = pytest.mark.usefixtures("torch_single_thread")
FAST = ["--num-inputs", "150", "--length", "4"]
F = Fraction

# Rank W = 2 < m = 3 (states 0 and 2 emit alike), pi uniform and A doubly stochastic, so pi A = pi.
PI = [F(1, 3)] * 3
A_STAT = [[F(1, 2), F(1, 4), F(1, 4)], [F(1, 4), F(1, 2), F(1, 4)], [F(1, 4), F(1, 4), F(1, 2)]]
A_MOVE = [[F(1, 2), F(1, 2), 0], [0, F(1, 2), F(1, 2)], [F(1, 2), 0, F(1, 2)]]  # doubly stochastic too
PI_MOVE = [F(1, 2), F(1, 4), F(1, 4)]  # pi A != pi
B = [[F(3, 4), F(1, 4)], [F(1, 4), F(3, 4)], [F(3, 4), F(1, 4)]]
MU = [1, -1, 1]  # = W^T b for b = (1, -1): in the row space although rank W < m


def _write(tmp_path, pi, A, name="m.json"):
    path = tmp_path / name
    path.write_text(json.dumps(model_dict(to_fracs(pi), to_fracs(A), to_fracs(B), task={"kind": "task", "mu": MU})))
    return str(path)


def test_cli_choices_match_the_library():
    assert CLI_CHOICES == REQUIRE_CHOICES


@pytest.mark.parametrize("require,code", [("all", 1), ("head", 0), ("prompt", 0), ("task", 0)])
def test_require_decides_the_exit_code(capsys, tmp_path, require, code):
    assert main(["check", _write(tmp_path, PI, A_STAT), "--require", require] + FAST) == code
    out = capsys.readouterr().out
    verdict = out.split("verdict: ")[1].splitlines()[0]
    assert verdict.startswith(("holds" if code == 0 else "does not hold") + f" (--require {require})")
    rows = {ln.split("  ")[0]: ln for ln in out.splitlines() if ln.startswith(("head:", "prompt:", "chain"))}
    decides = {name for name, ln in rows.items() if " decides " in ln}
    expected = {
        "all": {"head: rank W = m", "head: task in row space of W", "prompt: Theorem P support"},
        "head": {"head: task in row space of W"},
        "prompt": {"prompt: Theorem P support"},
        "task": {"head: task in row space of W", "prompt: Theorem P support"},
    }[require]
    assert decides == expected
    assert " fact " in rows["chain structure"]
    for name, ln in rows.items():  # a row that does not decide never reads "NO"
        if name not in decides:
            assert " NO " not in ln


def test_prompt_row_through_the_head_when_pi_is_stationary(tmp_path):
    """The prompt u = 1 keeps the prior pi (pi A = pi): brute force confirms that the
    prompted posterior is the unprompted one on every input of length 3, and that the
    head's witness b = (1, -1) gets every label right with the prompt."""
    model = exact_model(PI, A_STAT, B)
    r = check(model, {"mu": MU}, num_inputs=150, length=4)
    p = r.condition("prompt: Theorem P support")
    assert p.holds is True and p.witness["through_head"] is True
    assert p.witness["prompt"] == [[1, 1, 1]]
    assert r.condition("head: rank W = m").holds is False
    b = [F(v) for v in p.witness["head"][0]]
    for x in all_inputs(2, 3):
        p0, _ = brute_p0(PI, A_STAT, B, x)
        pu, _ = brute_p0(PI, A_STAT, B, x, prompt=[[1, 1, 1]])
        assert pu == p0
        G = [sum(B[h][t] * pu[h] for h in range(3)) for t in range(2)]
        assert dot(b, G) == dot(MU, p0)  # the exact identity, hence the same label


def test_prompt_row_keeps_no_when_the_prior_moves(capsys, tmp_path):
    path = _write(tmp_path, PI_MOVE, A_MOVE)
    assert main(["check", path, "--require", "task"] + FAST) == 0  # the head recovers the task
    out = capsys.readouterr().out
    assert "does not carry over" in out
    assert main(["check", path, "--require", "prompt"] + FAST) == 1
    capsys.readouterr()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--example", "full_rank", "--require", "prompt"], "needs a task"),
        (["--example", "full_rank", "--require", "task"], "needs a task"),
        (["--example", "full_rank", "--require", "memory"], "vanilla HMM"),
        (["--example", "memory_anchors", "--require", "head"], "memory HMM"),
    ],
)
def test_require_without_what_it_needs_is_bad_input(capsys, argv, needle):
    assert main(["check"] + argv + FAST) == 2
    out, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1 and needle in err and "--require" in err


def test_unknown_require_choice_exits_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", "--example", "full_rank", "--require", "nothing"])
    assert info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_require_task_on_a_memory_model(capsys):
    assert main(["check", "--example", "memory_anchors", "--require", "task"] + FAST) == 0
    assert "verdict: holds (--require task)" in capsys.readouterr().out


def test_eps_star_explains_ties_and_gives_the_margin_without_them():
    """Symmetric 2-state model: token 2 is emitted alike by both states, so the input (2, 2)
    has p_0 = (1/2, 1/2), a tie for mu = (1, -1)."""
    pi, A = [F(1, 2)] * 2, [[F(3, 4), F(1, 4)], [F(1, 4), F(3, 4)]]
    Bs = [[F(1, 2), 0, F(1, 2)], [0, F(1, 2), F(1, 2)]]
    model = exact_model(pi, A, Bs)
    r = check(model, {"mu": [1, -1]}, num_inputs=400, length=2, seed=0)
    c = r.condition("head: task in row space of W")
    w = c.witness
    margins = [abs(dot([1, -1], brute_p0(pi, A, Bs, x)[0])) for x in all_inputs(3, 2)]
    clear = min(m for m in margins if m != 0)
    assert 0 in margins and w["num_ties"] > 0 and w["gamma"] == 0
    assert w["gamma_without_ties"] == pytest.approx(float(clear))
    b_inf = max(abs(float(v)) for v in w["head"][0])
    assert w["eps_star_without_ties"] == pytest.approx(float(clear) / b_inf)
    assert "ties" in c.explanation and "without ties" in c.explanation


def test_long_vectors_are_abbreviated_in_the_text_and_whole_in_the_json():
    """A GINC-style shape: 100 states, a task on two of them, a support of 60 states."""
    mu = [0] * 100
    mu[3], mu[71] = 1, "-1/2"
    support = list(range(60))
    cond = Condition("prompt: Theorem P support", False, "exact", f"S = {support} does not work", {"support": support})
    r = Report("ginc", "hmm", {"num_states": 100, "num_tokens": 50}, {"weights": [[0] * 100, mu]}, [cond], {})
    text = str(r)
    assert "mu = (100 entries, nonzero {3: 1, 71: -1/2})" in text
    assert "[0, 1, 2, 3, ..., 58, 59] (60 entries)" in text
    assert max(len(ln) for ln in text.splitlines()) < 200
    d = json.loads(r.to_json())
    assert d["task"]["weights"][1] == mu and d["conditions"][0]["witness"]["support"] == support
    assert abbreviate([1, 2, 3]) == "[1, 2, 3]"
    assert abbreviate(list(range(1, 21))) == "[1, 2, 3, 4, ..., 19, 20] (20 entries)"


@pytest.mark.parametrize(
    "example,task,field",
    [
        ("full_rank", {"kind": "task", "mu": [1, 2]}, "mu"),
        ("full_rank", {"kind": "task", "weights": [[1, 0], [0, 1]]}, "weights"),
        ("full_rank", {"kind": "task", "mu": [1, 0, 2], "target": {"memory_cell": 0}}, "target"),
        ("memory", {"kind": "task", "mu": [1, -1, 0], "target": {"memory_cell": 0}}, "mu"),
        ("memory", {"kind": "task", "mu": [1, -1], "target": {"memory_cell": 5}}, "target"),
    ],
)
def test_task_errors_name_the_file_and_the_field(capsys, tmp_path, example, task, field):
    path = tmp_path / "my_task.json"
    path.write_text(json.dumps(task))
    assert main(["check", "--example", example, "--task", str(path)] + FAST) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{path}: field '{field}'" in err


def test_task_inside_a_model_file_names_the_file(capsys, tmp_path):
    data = model_dict(to_fracs(PI), to_fracs(A_STAT), to_fracs(B), task={"kind": "task", "mu": [1, 2]})
    path = tmp_path / "model_with_task.json"
    path.write_text(json.dumps(data))
    assert main(["check", str(path)] + FAST) == 2
    err = capsys.readouterr().err
    assert f"{path}: field 'task': field 'mu'" in err and "m = 3" in err


def test_ginc_style_model_text_is_short_and_json_whole():
    """A model in the style of the GINC generator (Xie et al.): 100 states, 50 tokens,
    one-hot emissions (two states per token), sparse random transitions, a task on two
    states. The text report abbreviates the 100 task weights; the JSON keeps them."""
    import numpy as np

    from hmmtune import HMM

    rng = np.random.default_rng(0)
    m, n = 100, 50
    E = np.zeros((m, n))
    E[np.arange(m), np.arange(m) % n] = 1.0
    A = np.zeros((m, m))
    for i in range(m):
        A[i, rng.choice(m, size=4, replace=False)] = rng.dirichlet(np.ones(4))
    mu = np.zeros(m)
    mu[3], mu[71] = 1.0, -0.5
    r = check(HMM(np.full(m, 1.0 / m), A, E), mu, num_inputs=200, length=16)
    text = str(r)
    assert "mu = (100 entries, nonzero {3: 1, 71: -0.5})" in text
    body = [ln for ln in text.splitlines() if ln.startswith("    ")]  # the explanations
    assert body and max(len(ln) for ln in body) <= 100
    d = json.loads(r.to_json())
    assert len(d["task"]["weights"][1]) == 100 and d["task"]["weights"][1][71] == -0.5
