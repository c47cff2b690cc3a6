"""Sampled downstream inputs and the task's labels on them: what the head and prompt
rooms verify their witnesses on (docs/theory.md, "Downstream tasks").

A task is a (C, m) weight matrix on ``p_0(x) = P(H_0 | x)``; its label is the top class
score and its margin the top score minus the runner-up. Inputs whose margin is at most
:data:`~hmmtune.analysis.tolerances.TIE_MARGIN` are ties (on the decision boundary).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..common import torch
from ..oracle import OracleMLM
from ..task import Task, task_margin
from .tolerances import TIE_MARGIN

__all__ = ["sample_downstream", "Evidence", "evidence", "task_margin", "Labels", "task_labels", "check_first_state_task"]


def sample_downstream(model, num_inputs: int, length: int, seed: int = 0) -> torch.Tensor:
    """Downstream inputs ``x_1..x_T`` as the model generates them after a mask: sample
    ``T + 1`` tokens and drop the first (the masked position 0). Returns (N, T)."""
    tokens, _ = model.sample(num_inputs, length + 1, seed=seed)
    return tokens[:, 1:]


@dataclass
class Evidence:
    """Sampled downstream inputs with their cached backward messages and ``P(H_0 | x)``.

    Built once by :func:`evidence` and shared by the head and prompt checks.

    Attributes:
        inputs: (N, T) tokens.
        messages: the oracle's backward messages of the inputs.
        mask_posterior: (N, m) float64 ``P(H_0 | x)``.
    """

    inputs: torch.Tensor
    messages: Any
    mask_posterior: np.ndarray


def evidence(model, num_inputs: int, length: int, seed: int = 0) -> Evidence:
    """Sample ``num_inputs`` downstream inputs of ``length`` tokens and compute their
    backward messages and mask posteriors once."""
    oracle = OracleMLM(model)
    x = sample_downstream(model, num_inputs, length, seed)
    msgs = oracle.encode(x)
    return Evidence(x, msgs, oracle.mask_posterior(msgs).double().cpu().numpy())


@dataclass
class Labels:
    """The task on posteriors ``p`` (N, m).

    Attributes:
        scores: (N, C) ``weights @ p``.
        labels: (N,) the top class (ties to the smallest class).
        margins: (N,) :func:`task_margin`.
        clear: (N,) bool, the margin exceeds ``TIE_MARGIN`` (not a tie).
    """

    scores: np.ndarray
    labels: np.ndarray
    margins: np.ndarray
    clear: np.ndarray


def task_labels(task: Task, posterior: np.ndarray) -> Labels:
    """Scores, labels, margins and the non-tie mask of ``task`` on ``posterior`` (N, m)."""
    scores = posterior @ task.array.T
    margins = task_margin(scores)
    return Labels(scores, scores.argmax(1), margins, margins > TIE_MARGIN)


def check_first_state_task(task: Task, m: int) -> None:
    """A task on ``P(H_0 | x)`` of a vanilla HMM with ``m`` states (else ValueError naming
    the field)."""
    if task.cell is not None:
        raise ValueError(f"{task.where('target')}: the task targets memory cell {task.cell}, but the model is a vanilla HMM")
    if task.dim != m:
        raise ValueError(f"{task.where()}: the task has {task.dim} weights per class, the model has m = {m} states")
