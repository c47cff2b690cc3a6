"""The analysis' view of tasks: :func:`as_task` reads any task the check accepts as a
:class:`hmmtune.Task` (docs/theory.md, "Downstream tasks", "Memory-augmented HMMs").

The task file format lives in :mod:`hmmtune.io.task_json` (:func:`load_task`,
:func:`task_from_dict`, re-exported here); any object with ``weights`` ((C, d)
array-like) and ``cell`` (None or int) attributes is accepted where a task is expected.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..models import arguments
from ..io.task_json import load_task, task_from_dict
from ..task import Task

__all__ = ["Task", "load_task", "task_from_dict", "as_task", "TaskSpec", "as_task_spec"]


class TaskSpec(Task):
    """Deprecated: the analysis' old task type, now :class:`hmmtune.Task` with its weights
    shown as a (C, d) numpy array (``Task.array``), as the analysis reads them.

    Constructing one, ``TaskSpec(weights, exact, cell, source, weights_field)``, or calling
    :func:`as_task_spec` warns: use :class:`hmmtune.Task` and :func:`as_task` (this class
    goes in the next release).
    """

    def __init__(self, weights, exact=None, cell=None, source=None, weights_field="weights", redraw=0, *, _warn=True):
        if _warn:
            warnings.warn("hmmtune.analysis.TaskSpec is deprecated; use hmmtune.Task", DeprecationWarning, stacklevel=2)
        super().__init__(weights, cell, source, redraw, exact, weights_field)
        object.__setattr__(self, "weights", self.weights.numpy())


def as_task_spec(task: Any) -> TaskSpec:
    """Deprecated: the old analysis view of a task; use :func:`as_task` (a :class:`hmmtune.Task`)."""
    warnings.warn("hmmtune.analysis.task.as_task_spec is deprecated; use as_task (it returns a hmmtune.Task)", DeprecationWarning, stacklevel=2)
    t = as_task(task)
    if t is None:
        return None
    return TaskSpec(t.weights, t.exact, t.cell, t.source, t.weights_field, t.redraw, _warn=False)


def as_task(task: Any) -> Task | None:
    """Any task the check accepts, as a :class:`hmmtune.Task`.

    Accepts a :class:`hmmtune.Task` (what :func:`load_task` returns), any object with
    ``weights``/``cell``, a dict in the task-file format, or a 1-D ``mu`` (binary task on
    the first state); None stays None.
    """
    if task is None:
        return None
    if isinstance(task, TaskSpec):  # the deprecated view holds numpy weights
        return Task(task.weights, task.cell, task.source, task.redraw, task.exact, task.weights_field)
    if isinstance(task, Task):
        return task
    if isinstance(task, dict):
        return task_from_dict(task)
    if hasattr(task, "weights"):
        w = arguments.real_tensor("task weights", task.weights.detach().cpu() if hasattr(task.weights, "detach") else task.weights)
        if w.dim() != 2 or w.shape[0] < 2:
            raise ValueError(f"task weights must have shape (C, d) with C >= 2 classes, got {tuple(w.shape)}")
        cell = getattr(task, "cell", None)
        if cell is not None:
            cell = arguments.integer("task cell", cell, 0)
        return Task(w, cell)
    mu = arguments.real_tensor("task", task).numpy()
    if mu.ndim == 1:
        return Task(np.stack([np.zeros_like(mu), mu]))
    if mu.ndim == 2 and mu.shape[0] >= 2:
        return Task(mu)
    raise ValueError(f"cannot read a task from {type(task).__name__} of shape {mu.shape}")
