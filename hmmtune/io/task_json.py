"""The task file format (docs/formats.md; docs/theory.md, "Downstream tasks", "Memory-augmented HMMs").

A task file (or the ``"task"`` field of a model file)::

    {"kind": "task", "mu": ["1", "-1", 0]}                    # binary: y = 1[mu . p >= 0]
    {"kind": "task", "weights": [[0, 1, 0], [1, 0, "1/2"]]}   # multiclass: argmax_c (M p)_c
    {"kind": "task", "mu": [1, -1], "target": {"memory_cell": 0}}

``target`` is ``"first_state"`` (default: ``p = P(H_0 | x)``, the mask's state) or
``{"memory_cell": j}`` (``p = P(M_j | x)`` of a memory HMM). Entries follow the model
format: numbers, or strings holding exact rationals ("1/3"); a JSON float makes the task
numerical. A binary ``mu`` is stored as ``weights = [0, mu]``.

:func:`load_task` and :func:`task_from_dict` return the one task type,
:class:`hmmtune.Task` (:mod:`hmmtune.task`); :func:`task_to_dict` writes one back.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..task import Task
from .entries import ModelFileError, check_format_version, format_entry, load_json_source, parse_entries

__all__ = ["task_from_dict", "load_task", "task_to_dict"]


def task_from_dict(data: dict, label: str = "<task>") -> Task:
    """Parse the task format above; errors name the file (``label``) and the field."""
    import sympy  # task files may hold exact rationals; a float model's check never reads one

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
    data, label = load_json_source(source)
    check_format_version(data, label)
    kind = data.get("kind", "task")
    if kind != "task":
        if "task" in data:
            return task_from_dict(data["task"], f"{label}: field 'task'")
        raise ModelFileError(f"{label}: not a task file (field 'kind' is {kind!r}) and it carries no 'task' field")
    return task_from_dict(data, label)


def task_to_dict(task: Task) -> dict:
    """The task-file form of ``task`` (exact rationals as strings when it has them)."""
    if task.exact is not None:
        rows = [[format_entry(task.exact[c, h]) for h in range(task.dim)] for c in range(task.num_classes)]
    else:
        rows = task.array.tolist()
    return {"kind": "task", "weights": rows, "target": "first_state" if task.cell is None else {"memory_cell": task.cell}}
