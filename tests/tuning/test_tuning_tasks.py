"""Tasks: the paper's random task, labels from posteriors, minority-class rejection."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmmtune.tuning import (
    ImbalancedTaskError,
    Task,
    balanced_paper_task,
    check_balance,
    paper_task,
    sample_inputs,
)


def test_paper_task_has_at_most_six_nonzero_entries_drawn_with_replacement():
    counts = []
    for seed in range(400):
        t = paper_task(4, seed)
        assert t.weights.shape == (2, 4)
        counts.append(int((t.weights != 0).sum()))
    counts = np.array(counts)
    assert counts.max() <= 6 and counts.min() >= 1
    # 6 draws among 8 positions with replacement: P(all distinct) = 8!/2!/8^6 ~ 7.7%,
    # so most tasks have fewer than 6 nonzero entries.
    assert 0.03 < np.mean(counts == 6) < 0.15
    # expected number of distinct positions: 8 * (1 - (7/8)^6) ~ 4.39
    assert abs(counts.mean() - 8 * (1 - (7 / 8) ** 6)) < 0.15


def test_paper_task_positions_are_uniform_and_values_standard_normal():
    m, hits, values = 10, np.zeros((2, 10)), []
    for seed in range(1500):
        w = paper_task(m, seed).weights.numpy()
        hits += w != 0
        values.extend(w[w != 0].tolist())
    freq = hits / 1500
    expected = 1 - (1 - 1 / 20) ** 6  # a given position is drawn at least once
    assert np.all(np.abs(freq - expected) < 0.05)
    values = np.array(values)
    assert abs(values.mean()) < 0.05 and abs(values.std() - 1) < 0.05


def test_paper_task_is_deterministic_and_redraws_differ():
    a, b = paper_task(8, 3), paper_task(8, 3)
    assert torch.equal(a.weights, b.weights)
    c = paper_task(8, 3, redraw=1)
    assert not torch.equal(a.weights, c.weights)
    assert c.redraw == 1


def test_binary_labels_follow_the_sign_of_mu_dot_p_with_ties_to_class_one():
    task = Task.binary([1.0, -1.0, 0.0])
    p = torch.tensor([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.4, 0.4, 0.2], [0.0, 0.0, 1.0]], dtype=torch.float64)
    assert task.labels(p).tolist() == [1, 0, 1, 1]
    assert torch.allclose(task.margin(p), torch.tensor([0.3, 0.3, 0.0, 0.0], dtype=torch.float64))
    # the (C, m) form with the same difference gives the same labels
    task2 = Task(torch.tensor([[0.5, 1.0, 2.0], [1.5, 0.0, 2.0]]))
    assert task2.labels(p).tolist() == [1, 0, 1, 1]


def test_multiclass_labels_are_the_argmax():
    M = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    task = Task(M)
    p = torch.tensor([[0.2, 0.5, 0.3], [0.7, 0.1, 0.2], [0.1, 0.1, 0.8]])
    assert task.labels(p).tolist() == [1, 0, 2]


def test_relevant_states_are_the_support_of_mu_times_initial():
    task = Task.binary([1.0, 0.0, -2.0, 3.0])
    assert task.relevant_states([0.5, 0.2, 0.3, 0.0]) == [0, 2]


def test_check_balance_rejects_a_small_minority_with_a_clear_message():
    labels = torch.tensor([0] * 95 + [1] * 5)
    with pytest.raises(ImbalancedTaskError) as info:
        check_balance(labels, 2, 0.1, redraw=0)
    assert info.value.counts == [95, 5]
    assert "5.0%" in str(info.value) and "redraw=1" in str(info.value)
    assert check_balance(labels, 2, 0.05) == pytest.approx(0.05)


def test_balanced_paper_task_takes_the_first_passing_redraw():
    rng = np.random.default_rng(0)
    post = torch.from_numpy(rng.dirichlet(np.full(6, 0.3), size=400))
    for seed in range(30):
        task, frac = balanced_paper_task(6, seed, post, min_fraction=0.25)
        for r in range(task.redraw):  # every earlier draw was rejected
            y = paper_task(6, seed, redraw=r).labels(post)
            assert min(torch.bincount(y, minlength=2).tolist()) / 400 < 0.25
        y = paper_task(6, seed, redraw=task.redraw).labels(post)
        assert min(torch.bincount(y, minlength=2).tolist()) / 400 == pytest.approx(frac)
        assert frac >= 0.25


def test_balanced_paper_task_gives_up_when_posteriors_do_not_vary():
    post = torch.full((50, 5), 0.2, dtype=torch.float64)
    with pytest.raises(ImbalancedTaskError, match="none of 4"):
        balanced_paper_task(5, 0, post, max_redraws=3)


def test_sample_inputs_drops_the_masked_position():
    from hmmtune import load_example

    model = load_example("full_rank")
    tokens = sample_inputs(model, 7, 5, seed=0)
    full, _ = model.sample(7, 6, seed=0)
    assert tokens.shape == (7, 5)
    assert torch.equal(tokens, full[:, 1:])
