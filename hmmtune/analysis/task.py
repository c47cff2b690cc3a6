"""The task a condition is checked for (docs/theory.md, "Downstream tasks", "Memory-augmented HMMs"), and its JSON file format.

A task file (or the ``"task"`` field of a model file)::

    {"kind": "task", "mu": ["1", "-1", 0]}                    # binary: y = 1[mu . p >= 0]
    {"kind": "task", "weights": [[0, 1, 0], [1, 0, "1/2"]]}   # multiclass: argmax_c (M p)_c
    {"kind": "task", "mu": [1, -1], "target": {"memory_cell": 0}}

``target`` is ``"first_state"`` (default: ``p = P(H_0 | x)``, the mask's state) or
``{"memory_cell": j}`` (``p = P(M_j | x)`` of a memory HMM). Entries follow the model
format: numbers, or strings holding exact rationals ("1/3"); a JSON float makes the task
numerical. A binary ``mu`` is stored as ``weights = [0, mu]``.

:func:`load_task` returns the one task type, :class:`hmmtune.Task` (:mod:`hmmtune.task`);
any object with ``weights`` ((C, d) array-like) and ``cell`` (None or int) attributes is
accepted where a task is expected.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..models import arguments
from ..task import Task

__all__ = ["Task", "load_task", "task_from_dict", "as_task", "TaskSpec", "as_task_spec"]


class TaskSpec(Task):
    """Deprecated: the analysis' old task type, now :class:`hmmtune.Task` with its weights
    shown as a (C, d) numpy array (``Task.array``), as the analysis reads them.

    :func:`as_task_spec` makes one from any task without a warning; constructing one
    directly, ``TaskSpec(weights, exact, cell, source, weights_field)``, warns: use
    :class:`hmmtune.Task` (this class goes in the next release).
    """

    def __init__(self, weights, exact=None, cell=None, source=None, weights_field="weights", redraw=0, *, _warn=True):
        if _warn:
            warnings.warn("hmmtune.analysis.TaskSpec is deprecated; use hmmtune.Task", DeprecationWarning, stacklevel=2)
        super().__init__(weights, cell, source, redraw, exact, weights_field)
        object.__setattr__(self, "weights", self.weights.numpy())


def task_from_dict(data: dict, label: str = "<task>") -> Task:
    """Parse the task format above; errors name the file (``label``) and the field."""
    import sympy  # task files may hold exact rationals; a float model's check never reads one

    from ..io import ModelFileError, parse_entries

    if not isinstance(data, dict):
        raise ModelFileError(f"{label}: a task must be a JSON object")
    if ("mu" in data) == ("weights" in data):
        raise ModelFileError(f"{label}: a task needs exactly one of the fields 'mu' (binary) or 'weights' (multiclass)")
    if "mu" in data:
        floats, exact = parse_entries(data, "mu", 1, label)
        w = np.array([np.zeros(len(floats)), floats], dtype=np.float64)
        ex = sympy.Matrix([[0] * len(floats), list(exact)]) if exact is not None else None
    else:
        floats, exact = parse_entries(data, "weights", 2, label)
        w = np.array(floats, dtype=np.float64)
        if w.ndim != 2 or w.shape[0] < 2:
            raise ModelFileError(f"{label}: field 'weights' must have at least 2 rows (classes), got shape {w.shape}")
        ex = exact
    if not np.all(np.isfinite(w)):
        raise ModelFileError(f"{label}: task weights must be finite")
    target = data.get("target", "first_state")
    if target == "first_state":
        cell = None
    elif isinstance(target, dict) and set(target) == {"memory_cell"} and isinstance(target["memory_cell"], int) and target["memory_cell"] >= 0:
        cell = target["memory_cell"]
    else:
        raise ModelFileError(
            f"{label}: field 'target' must be \"first_state\" or {{\"memory_cell\": j}} with j >= 0, got {target!r}"
        )
    return Task(w, cell, label, exact=ex, weights_field="mu" if "mu" in data else "weights")


def load_task(source: Any) -> Task:
    """Load a task from a path, JSON text or dict."""
    from ..io import ModelFileError, check_format_version, load_json_source

    data, label = load_json_source(source)
    check_format_version(data, label)
    kind = data.get("kind", "task")
    if kind != "task":
        if "task" in data:
            return task_from_dict(data["task"], f"{label}: field 'task'")
        raise ModelFileError(f"{label}: not a task file (field 'kind' is {kind!r}) and it carries no 'task' field")
    return task_from_dict(data, label)


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
