"""A newcomer's afternoon, end to end (issue 12, item 7): the README's command, then the
"Does my HMM satisfy the conditions?" tutorial from a fresh folder: write a model file, check
it from the command line, read the JSON report, and verify its witnesses in exact arithmetic
without trusting hmmtune (brute force over hidden paths with Fractions)."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def hmmtune_cmd() -> list[str]:
    """The installed console script when it is next to this Python, else ``python -m hmmtune``."""
    script = Path(sys.executable).with_name("hmmtune")
    if script.exists():
        return [str(script)]
    found = shutil.which("hmmtune")
    return [found] if found else [sys.executable, "-m", "hmmtune"]


def run(args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(hmmtune_cmd() + args, cwd=cwd, capture_output=True, text=True, timeout=300, env=env, check=False)


def posterior_of_mask(pi, A, B, x, prompt=()):
    """P(H_0 | [prompt] [MASK] x) by summing over every hidden path (Fractions)."""
    m = len(pi)
    k = len(prompt)
    acc = [Fraction(0)] * m
    for path in itertools.product(range(m), repeat=k + 1 + len(x)):
        w = pi[path[0]]
        for j in range(1, len(path)):
            w *= A[path[j - 1]][path[j]]
        for j, u in enumerate(prompt):
            w *= u[path[j]]
        for t, tok in enumerate(x):
            w *= B[path[k + 1 + t]][tok]
        acc[path[k]] += w
    total = sum(acc)
    return [a / total for a in acc] if total else None


class _Result:
    def __init__(self, returncode, stdout, stderr):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


def test_readme_then_the_conditions_tutorial(tmp_path, monkeypatch, capsys):
    from hmmtune.cli import main

    def cli(args):  # the later steps in-process: the same main() the console script calls
        code = main(args)
        out, err = capsys.readouterr()
        return _Result(code, out, err)

    monkeypatch.chdir(tmp_path)
    # README: the first command, through the installed console script, in a fresh folder
    # (the install is the test environment itself).
    first = run(["check", "--example", "prompt", "--num-inputs", "300"], tmp_path)
    assert first.returncode == 1, first.stderr  # head tuning fails ...
    assert "prompt: Theorem P support                yes    decides" in first.stdout  # ... the prompt works
    assert "verdict: does not hold (--require all)" in first.stdout

    # Tutorial: start from a bundled example, save it as my own model file with my own task.
    shown = cli(["examples", "prompt"])
    assert shown.returncode == 0
    data = json.loads(shown.stdout)
    data["name"] = "mine"
    data["task"] = {"kind": "task", "mu": ["1", "-1/2", 0, 0, 0]}
    (tmp_path / "mine.json").write_text(json.dumps(data, indent=1))

    argv = ["check", "mine.json", "--json", "-o", "report.json", "--num-inputs", "300", "--length", "6"]
    checked = cli(argv + ["--certificate-length", "3"])
    assert checked.returncode == 1, checked.stderr
    report = json.loads((tmp_path / "report.json").read_text())
    assert report == json.loads(checked.stdout)
    assert report["holds"] is False and report["settings"]["require"] == "all"
    conds = {c["name"]: c for c in report["conditions"]}
    assert conds["chain structure"]["counts"] is False

    # Only my task: head or prompt tuning provably recovers it.
    narrow = cli(["check", "mine.json", "--require", "task", "--num-inputs", "300", "--length", "6"])
    assert narrow.returncode == 0, narrow.stdout + narrow.stderr
    assert "verdict: holds (--require task): prompt: Theorem P support holds" in narrow.stdout

    # Verify the prompt's witness in exact arithmetic, from the file alone.
    F = Fraction
    pi = [F(v) for v in data["initial"]]
    A = [[F(v) for v in row] for row in data["transition"]]
    B = [[F(v) for v in row] for row in data["emission"]]
    mu = [F(str(v)) for v in data["task"]["mu"]]
    P = conds["prompt: Theorem P support"]
    assert P["holds"] is True and P["method"] == "exact"
    w = P["witness"]
    u = [[F(v) for v in row] for row in w["prompt"]]
    b = [F(v) for v in w["head"][0]]
    # the prompted prior r(u) = (pi * u_1) A ..., recomputed here
    a = [pi[h] * u[0][h] for h in range(5)]
    for row in u[1:]:
        a = [sum(a[i] * A[i][j] for i in range(5)) * row[j] for j in range(5)]
    r = [sum(a[i] * A[i][j] for i in range(5)) for j in range(5)]
    r = [v / sum(r) for v in r]
    assert [F(v) for v in w["prior"]] == r
    S = [h for h in range(5) if r[h] != 0]
    assert S == w["support"]
    for h in S:  # Theorem P's identity: (W^T b)_h = mu_h pi_h / r_h on the support
        assert sum(b[t] * B[h][t] for t in range(2)) == mu[h] * pi[h] / r[h]
    # ... hence the prompted head gets every label right, on every input of length 3
    for x in itertools.product(range(2), repeat=3):
        p0 = posterior_of_mask(pi, A, B, x)
        pu = posterior_of_mask(pi, A, B, x, prompt=u)
        score = sum(m * p for m, p in zip(mu, p0))
        if p0 is None or pu is None or score == 0:
            continue
        out = [sum(B[h][t] * pu[h] for h in range(5)) for t in range(2)]
        assert (sum(bt * g for bt, g in zip(b, out)) >= 0) == (score >= 0), x

    # The head's LP certificate: Farkas weights that put the two classes' hulls in contact.
    cert = conds["head: LP certificate on concrete inputs"]
    assert cert["holds"] is False and cert["witness"]["verified"] == "exact"
    total_g, total_s = [F(0), F(0)], F(0)
    for item in cert["witness"]["farkas"]:
        p0 = posterior_of_mask(pi, A, B, item["input"])
        s = 1 if sum(m * p for m, p in zip(mu, p0)) >= 0 else -1
        assert (s == 1) == (item["label"] == 1)
        lam = F(item["weight"])
        assert lam >= 0
        for t in range(2):
            total_g[t] += lam * s * sum(B[h][t] * p0[h] for h in range(5))
        total_s += lam * s
    assert total_g == [0, 0] and total_s == 0
