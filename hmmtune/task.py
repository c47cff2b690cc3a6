"""The one task type: a linear task on a posterior (docs/theory.md, "Downstream tasks", "Memory-augmented HMMs").

A :class:`Task` reads a posterior ``p`` (the first-state posterior ``P(H_0 | x)`` of a
vanilla HMM, or the posterior ``P(M_j | x)`` of memory cell ``j`` of a memory HMM) and
labels it

- ``y = 1[mu . p >= 0]`` for two classes, with ``mu = weights[1] - weights[0]`` (a tie
  ``mu . p = 0`` gets label 1);
- ``y = argmax_c (weights @ p)_c`` for more classes (a tie goes to the smallest class).

The same object serves the analysis (:func:`hmmtune.analysis.check` reads its optional
exact weights) and the tuning (:mod:`hmmtune.tuning` draws, labels and fits it). This
module sits low in the house: it imports numpy and torch only (sympy when exact weights
are given), so both rooms may use it. Task files are read by
:func:`hmmtune.analysis.load_task`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .common import is_tensor, torch

if TYPE_CHECKING:  # annotations only: torch is imported on first use (common.torch)
    from torch import Tensor

__all__ = ["Task", "task_margin"]


def task_margin(scores: Any) -> Any:
    """Per-input margin of task scores ``weights @ p``, (N, C) -> (N,): the top score
    minus the runner-up (for two classes ``|mu . p|``, docs/theory.md, "Downstream tasks").

    ``scores`` may be a numpy array (the result is a numpy array) or a torch tensor (a
    tensor).
    """
    if is_tensor(scores):
        top = scores.topk(2, -1).values
        return top[..., 0] - top[..., 1]
    srt = np.sort(np.asarray(scores), axis=-1)
    return srt[..., -1] - srt[..., -2]


@dataclass(frozen=True, eq=False)
class Task:
    """A linear task ``y = argmax_c (weights @ p)_c`` on a posterior ``p`` (docs/theory.md, "Downstream tasks").

    Attributes:
        weights: (C, d) float64 tensor of class weights; ``d`` is the number of states
            ``m`` (first-state task) or of memory values ``V`` (a memory-cell task). A
            1-D ``mu`` given here is the binary task ``[0, mu]``.
        cell: ``None`` for the first-state posterior ``P(H_0 | x)``; ``j`` for the posterior
            of memory cell ``j`` (docs/theory.md, "Memory-augmented HMMs").
        source: where the task came from (a file and field, or the recipe that drew it),
            used in error messages.
        redraw: which deterministic re-draw produced a random task
            (:func:`hmmtune.tuning.paper_task`).
        exact: (C, d) sympy Matrix of exact weights, or None (a numerical task).
        weights_field: the file field that held the weights (``"mu"`` or ``"weights"``).
    """

    weights: Tensor
    cell: int | None = None
    source: str | None = None
    redraw: int = 0
    exact: Any = None
    weights_field: str = field(default="weights", repr=False)

    def __post_init__(self):
        w = self.weights
        if is_tensor(w):
            w = w.detach().cpu().to(torch.float64)
        else:
            try:
                w = torch.as_tensor(np.asarray(w, dtype=np.float64))
            except (TypeError, ValueError) as exc:
                raise ValueError(f"task weights must be numbers, got {type(self.weights).__name__} ({exc})") from None
        if w.dim() == 1:  # a binary task vector mu
            w = torch.stack([torch.zeros_like(w), w])
        if w.dim() != 2 or w.shape[0] < 2 or w.shape[1] < 1:
            raise ValueError(f"task weights must have shape (C, d) with C >= 2 classes, got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()):
            raise ValueError("task weights must be finite")
        object.__setattr__(self, "weights", w)
        if self.cell is not None:
            from .models import arguments

            object.__setattr__(self, "cell", arguments.integer("task cell", self.cell, 0))
        if self.exact is not None and tuple(self.exact.shape) != tuple(w.shape):
            raise ValueError(f"exact task weights have shape {tuple(self.exact.shape)}, the weights {tuple(w.shape)}")

    # ------------------------------------------------------------------ constructors
    @classmethod
    def binary(cls, mu: Any, cell: int | None = None, source: str | None = None, **kwargs) -> "Task":
        """The binary task ``y = 1[mu . p >= 0]``; ``mu`` has shape (d,)."""
        mu = torch.as_tensor(mu, dtype=torch.float64)
        if mu.dim() != 1:
            raise ValueError(f"mu must be a vector, got shape {tuple(mu.shape)}")
        return cls(torch.stack([torch.zeros_like(mu), mu]), cell=cell, source=source, **kwargs)

    @classmethod
    def from_mu(cls, mu: Any, cell: int | None = None, source: str | None = None) -> "Task":
        """The binary task ``y = 1[mu . p >= 0]`` (the same as :meth:`binary`)."""
        return cls.binary(mu, cell, source)

    @classmethod
    def from_weights(cls, weights: Any, cell: int | None = None, source: str | None = None, *, exact: Any = None) -> "Task":
        """The task with (C, d) ``weights``; ``exact``: the same weights as a sympy Matrix
        (or nested exact numbers), kept for exact checks."""
        if exact is not None and not hasattr(exact, "shape"):
            import sympy

            exact = sympy.Matrix(exact)
        if weights is None:
            if exact is None:
                raise ValueError("from_weights needs weights or exact weights")
            weights = np.array(exact.tolist(), dtype=np.float64)
        return cls(weights, cell=cell, source=source, exact=exact)

    # ------------------------------------------------------------------ shape
    @property
    def num_classes(self) -> int:
        return int(self.weights.shape[0])

    @property
    def dim(self) -> int:
        """Length ``d`` of the posterior the task reads."""
        return int(self.weights.shape[1])

    @property
    def array(self) -> np.ndarray:
        """The weights as a (C, d) float64 numpy array (the analysis' numerical view)."""
        return np.asarray(self.weights.numpy() if is_tensor(self.weights) else self.weights, dtype=np.float64)

    def _tensor(self) -> Tensor:
        w = self.weights
        return w if is_tensor(w) else torch.from_numpy(np.asarray(w, dtype=np.float64))

    @property
    def mu(self) -> Tensor:
        """``weights[1] - weights[0]`` for a binary task (docs/theory.md, "Downstream tasks")."""
        if self.num_classes != 2:
            raise ValueError(f"mu is defined for binary tasks; this task has {self.num_classes} classes")
        w = self._tensor()
        return w[1] - w[0]

    def differences(self, exact: bool = False):
        """Rows ``weights[c] - weights[0]`` for c = 1..C-1, (C-1, d) (numpy; with
        ``exact``, lists of sympy numbers); for a binary task the single row is ``mu``."""
        if exact:
            if self.exact is None:
                raise ValueError(f"{self.source or 'the task'} has no exact weights")
            return [[self.exact[c, h] - self.exact[0, h] for h in range(self.dim)] for c in range(1, self.num_classes)]
        a = self.array
        return a[1:] - a[0]

    def where(self, name: str | None = None) -> str:
        """``"<source>: field '<name>'"`` for error messages (the weights' field by default)."""
        return f"{self.source or 'task'}: field '{name or self.weights_field}'"

    # ------------------------------------------------------------------ labels
    def _posteriors(self, posterior: Any) -> Tensor:
        """(B, d) posteriors as a tensor (numbers and numpy arrays become float64)."""
        p = posterior if is_tensor(posterior) else torch.as_tensor(posterior, dtype=torch.float64)
        if p.dim() == 1:
            p = p[None]
        if p.dim() != 2 or p.shape[1] != self.dim:
            raise ValueError(f"posteriors must have shape (B, {self.dim}) for this task, got {tuple(p.shape)}")
        return p

    def scores(self, posterior: Any) -> Tensor:
        """``weights @ p`` for posteriors ``p`` of shape (B, d): (B, C)."""
        p = self._posteriors(posterior)
        return p @ self._tensor().to(p.dtype).T

    def labels(self, posterior: Any) -> Tensor:
        """Class of each posterior, (B,) LongTensor."""
        p = self._posteriors(posterior)
        if self.num_classes == 2:
            return (p @ self.mu.to(p.dtype) >= 0).long()
        return self.scores(p).argmax(-1)

    #: the task as a predictor: :meth:`labels`
    predict = labels

    def margin(self, posterior: Any) -> Tensor:
        """``|mu . p|`` (binary) or the gap between the two best scores (:func:`task_margin`), (B,)."""
        p = self._posteriors(posterior)
        if self.num_classes == 2:
            return (p @ self.mu.to(p.dtype)).abs()
        return task_margin(self.scores(p))

    def relevant_states(self, initial: Any) -> list[int]:
        """``R = supp(nu)`` with ``nu = mu * initial`` (binary tasks, docs/theory.md, "Downstream tasks").

        For more classes: the states where some pairwise difference of weights, times
        ``initial``, is nonzero.
        """
        pi = torch.as_tensor(initial, dtype=torch.float64)
        w = self._tensor()
        spread = (w.max(0).values - w.min(0).values) * pi
        return [int(h) for h in torch.nonzero(spread != 0).flatten()]

    # ------------------------------------------------------------------ identity
    def __eq__(self, other) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        return (
            self.cell == other.cell
            and self.redraw == other.redraw
            and np.array_equal(self.array, other.array)
            and (self.exact is None) == (other.exact is None)
            and (self.exact is None or self.exact == other.exact)
        )

    def __hash__(self) -> int:
        return hash((self.cell, self.redraw, self.array.tobytes(), self.array.shape))

    def to_dict(self) -> dict:
        """The task-file form (exact rationals as strings when the task has them); the
        format is :mod:`hmmtune.io.task_json`'s (:func:`hmmtune.io.task_to_dict`)."""
        from .io.task_json import task_to_dict  # io owns the format; imported on use

        return task_to_dict(self)
