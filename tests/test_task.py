"""The one task type (hmmtune.task.Task): labels and margins against exact rational
arithmetic, the analysis' view, and the deprecated names LinearTask and TaskSpec."""

from __future__ import annotations

import itertools
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch

import hmmtune
from hmmtune.task import Task, task_margin

# a tiny multiclass task and posteriors, all exact binary fractions (so float64 holds them exactly)
W = [[Fraction(1, 2), Fraction(-1, 4), 0], [0, Fraction(3, 4), Fraction(-1, 2)], [Fraction(1, 8), 0, Fraction(1, 4)]]
P = [
    [Fraction(1, 2), Fraction(1, 4), Fraction(1, 4)],
    [Fraction(1, 8), Fraction(5, 8), Fraction(1, 4)],
    [Fraction(1, 4), Fraction(1, 4), Fraction(1, 2)],
    [0, 0, 1],
]


def _exact_scores(w, p):
    return [[sum(wc[h] * ph[h] for h in range(len(ph))) for wc in w] for ph in p]


def _exact_argmax(row):  # a tie goes to the smallest class
    best = max(row)
    return row.index(best)


def _exact_margin(row):
    s = sorted(row, reverse=True)
    return s[0] - s[1]


def test_multiclass_scores_labels_and_margins_equal_exact_rational_arithmetic():
    task = Task(torch.tensor([[float(v) for v in r] for r in W], dtype=torch.float64))
    p = torch.tensor([[float(v) for v in r] for r in P], dtype=torch.float64)
    exact = _exact_scores(W, P)
    assert task.scores(p).tolist() == [[float(v) for v in r] for r in exact]
    assert task.labels(p).tolist() == [_exact_argmax(r) for r in exact]
    assert task.predict(p).tolist() == task.labels(p).tolist()
    assert task.margin(p).tolist() == [float(_exact_margin(r)) for r in exact]
    # the scores-based margin the analysis uses: numpy in, numpy out; torch in, torch out
    assert task_margin(np.array([[float(v) for v in r] for r in exact])).tolist() == [float(_exact_margin(r)) for r in exact]
    assert task_margin(task.scores(p)).tolist() == [float(_exact_margin(r)) for r in exact]


def test_binary_labels_and_margin_equal_exact_arithmetic_over_a_grid_of_posteriors():
    mu = [Fraction(1), Fraction(-3, 4), Fraction(1, 4)]
    task = Task.from_mu([float(v) for v in mu])
    grid = [Fraction(k, 8) for k in range(9)]
    ps = [[a, b, 1 - a - b] for a, b in itertools.product(grid, grid) if a + b <= 1]
    t = torch.tensor([[float(v) for v in p] for p in ps], dtype=torch.float64)
    dots = [sum(m * v for m, v in zip(mu, p)) for p in ps]
    assert task.labels(t).tolist() == [int(d >= 0) for d in dots]  # ties (d = 0) go to class 1
    assert any(d == 0 for d in dots)
    assert task.margin(t).tolist() == [float(abs(d)) for d in dots]
    assert task.mu.tolist() == [float(v) for v in mu]


def test_exact_weights_differences_and_the_file_form():
    import sympy

    task = Task.from_weights(None, exact=[[0, 0], [sympy.Rational(1, 3), -1]], cell=1, source="t.json")
    assert task.weights.tolist() == [[0.0, 0.0], [1 / 3, -1.0]]
    assert task.differences(exact=True) == [[sympy.Rational(1, 3), -1]]
    assert task.to_dict() == {"kind": "task", "weights": [[0, 0], ["1/3", -1]], "target": {"memory_cell": 1}}
    assert task.where() == "t.json: field 'weights'"
    with pytest.raises(ValueError, match="shape"):
        Task([[0.0, 1.0], [1.0, 0.0]], exact=sympy.Matrix([[0, 1, 2], [1, 0, 0]]))
    with pytest.raises(ValueError, match="task cell must be a nonnegative integer"):
        Task([1.0, -1.0], cell=-1)
    with pytest.raises(ValueError, match="finite"):
        Task([1.0, float("nan")])


def test_load_task_returns_the_one_task_type_and_the_analysis_accepts_it():
    from hmmtune.analysis import check, load_task

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no deprecated path on the way
        task = load_task(hmmtune.example_path("prompt"))
        assert type(task) is Task and task.exact is not None
        report = check(hmmtune.load_example("prompt"), task, max_prompt_length=2, num_inputs=100, length=4)
    assert report.task == task.to_dict()


def test_top_level_exports():
    assert hmmtune.Task is Task
    from hmmtune.tuning import TrainConfig

    assert hmmtune.TrainConfig is TrainConfig


def test_linear_task_is_deprecated_and_still_works():
    with pytest.warns(DeprecationWarning, match="LinearTask is deprecated; use hmmtune.Task"):
        from hmmtune.tuning import LinearTask
    with pytest.warns(DeprecationWarning, match="LinearTask is deprecated"):
        from hmmtune.tuning.tasks import LinearTask as again
    assert again is LinearTask
    old = LinearTask.binary([1.0, -1.0], cell=0, name="mine")
    assert isinstance(old, Task) and old.name == old.source == "mine" and old.cell == 0
    assert old == Task.binary([1.0, -1.0], cell=0)
    assert LinearTask([[0.0, 1.0], [1.0, 0.0]], None, "n", 2).redraw == 2
    assert old.labels(torch.tensor([[0.7, 0.3], [0.2, 0.8]], dtype=torch.float64)).tolist() == [1, 0]


def test_task_spec_is_deprecated_and_still_works():
    from hmmtune.analysis.task import TaskSpec, as_task_spec

    with pytest.warns(DeprecationWarning, match="TaskSpec is deprecated; use hmmtune.Task"):
        spec = TaskSpec(np.array([[0.0, 0.0], [1.0, -1.0]]), None, None, "f.json", "mu")
    assert isinstance(spec, Task) and isinstance(spec.weights, np.ndarray)
    assert spec.differences().tolist() == [[1.0, -1.0]] and spec.where() == "f.json: field 'mu'"
    assert spec.labels(torch.tensor([[0.6, 0.4]], dtype=torch.float64)).tolist() == [1]
    with pytest.warns(DeprecationWarning, match="as_task_spec is deprecated"):
        view = as_task_spec(Task.binary([1.0, -1.0], cell=2))
    assert isinstance(view, TaskSpec) and isinstance(view.weights, np.ndarray) and view.cell == 2
    assert view == Task.binary([1.0, -1.0], cell=2)
    # the analysis reads tasks as hmmtune.Task (as_task), a deprecated view included, without warning
    from hmmtune.analysis.task import as_task

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        back = as_task(view)
    assert type(back) is Task and isinstance(back.weights, torch.Tensor) and back == view
