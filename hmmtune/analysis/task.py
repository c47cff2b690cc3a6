"""The task a condition is checked for (docs/theory.md, "Downstream tasks", "Memory-augmented HMMs"), and its JSON file format.

A task file (or the ``"task"`` field of a model file)::

    {"kind": "task", "mu": ["1", "-1", 0]}                    # binary: y = 1[mu . p >= 0]
    {"kind": "task", "weights": [[0, 1, 0], [1, 0, "1/2"]]}   # multiclass: argmax_c (M p)_c
    {"kind": "task", "mu": [1, -1], "target": {"memory_cell": 0}}

``target`` is ``"first_state"`` (default: ``p = P(H_0 | x)``, the mask's state) or
``{"memory_cell": j}`` (``p = P(M_j | x)`` of a memory HMM). Entries follow the model
format: numbers, or strings holding exact rationals ("1/3"); a JSON float makes the task
numerical. A binary ``mu`` is stored as ``weights = [0, mu]``.

Any object with ``weights`` ((C, d) array-like) and ``cell`` (None or int) attributes,
such as :class:`hmmtune.tuning.LinearTask`, is accepted where a task is expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from ..models import arguments
from ..io import ModelFileError, check_format_version, load_json_source, parse_entries

__all__ = ["TaskSpec", "load_task", "task_from_dict", "as_task_spec"]


@dataclass
class TaskSpec:
    """A linear task on a posterior.

    Attributes:
        weights: (C, d) float array of class weights.
        exact: (C, d) sympy Matrix of exact weights, or None.
        cell: None for ``P(H_0 | x)``; j for memory cell j.
        source: where the task came from (a file name, ``"m.json: field 'task'"``), for errors.
        weights_field: the field that held the weights: ``"mu"`` or ``"weights"``.
    """

    weights: np.ndarray
    exact: Any = None
    cell: int | None = None
    source: str | None = field(default=None, compare=False)
    weights_field: str = field(default="weights", compare=False)

    def where(self, name: str | None = None) -> str:
        """``"<source>: field '<name>'"`` for error messages (the weights' field by default)."""
        name = name or self.weights_field
        return f"{self.source or 'task'}: field '{name}'"

    @property
    def num_classes(self) -> int:
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        return self.weights.shape[1]

    def differences(self, exact: bool = False):
        """Rows ``weights[c] - weights[0]`` for c = 1..C-1 ((C-1, d)); for a binary task
        the single row is ``mu``."""
        if exact:
            return [[self.exact[c, h] - self.exact[0, h] for h in range(self.dim)] for c in range(1, self.num_classes)]
        return self.weights[1:] - self.weights[0]

    def to_dict(self) -> dict:
        from ..io import format_entry

        d: dict[str, Any] = {"kind": "task"}
        src = self.exact if self.exact is not None else None
        rows = (
            [[format_entry(src[c, h]) for h in range(self.dim)] for c in range(self.num_classes)]
            if src is not None
            else self.weights.tolist()
        )
        d["weights"] = rows
        d["target"] = "first_state" if self.cell is None else {"memory_cell": self.cell}
        return d


def task_from_dict(data: dict, label: str = "<task>") -> TaskSpec:
    """Parse the task format above; errors name the file (``label``) and the field."""
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
    return TaskSpec(w, ex, cell, label, "mu" if "mu" in data else "weights")


def load_task(source: Any) -> TaskSpec:
    """Load a task from a path, JSON text or dict."""
    data, label = load_json_source(source)
    check_format_version(data, label)
    kind = data.get("kind", "task")
    if kind != "task":
        if "task" in data:
            return task_from_dict(data["task"], f"{label}: field 'task'")
        raise ModelFileError(f"{label}: not a task file (field 'kind' is {kind!r}) and it carries no 'task' field")
    return task_from_dict(data, label)


def as_task_spec(task: Any) -> TaskSpec:
    """Accept a :class:`TaskSpec`, any object with ``weights``/``cell``, a dict, or a
    1-D ``mu`` (binary task on the first state)."""
    if task is None or isinstance(task, TaskSpec):
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
        return TaskSpec(w.numpy(), None, cell)
    mu = arguments.real_tensor("task", task).numpy()
    if mu.ndim == 1:
        return TaskSpec(np.stack([np.zeros_like(mu), mu]), None, None)
    if mu.ndim == 2 and mu.shape[0] >= 2:
        return TaskSpec(mu, None, None)
    raise ValueError(f"cannot read a task from {type(task).__name__} of shape {mu.shape}")
