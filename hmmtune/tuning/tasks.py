"""Downstream tasks whose labels are linear functions of exact posteriors (docs/theory.md, "Downstream tasks", "Memory-augmented HMMs").

A task reads a posterior ``p`` (the first-state posterior ``P(H_0 | x)`` of a vanilla HMM,
or the posterior ``P(M_j | x)`` of one memory cell of a memory HMM) and labels it

- ``y = 1[mu . p >= 0]`` for two classes, with ``mu = weights[1] - weights[0]``
  (a tie ``mu . p = 0`` gets label 1, as in docs/theory.md, "Downstream tasks");
- ``y = argmax_c (weights @ p)_c`` for more classes (a tie goes to the smallest class).

Labels come from exact posteriors computed by :class:`hmmtune.OracleMLM`, never from
samples of the hidden states.

**Minority-class rejection.** A random task can label almost every input the same way,
which makes accuracy meaningless. :func:`check_balance` rejects a labelling whose
smallest class holds less than :data:`MIN_CLASS_FRACTION` (10%) of the sample and says
how to re-draw; :func:`balanced_paper_task` re-draws deterministically (``redraw = 0, 1,
2, ...`` of :func:`paper_task`, the same sequence for the same seed) instead of the
authors' blind retries (they retried up to 20 times).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "MIN_CLASS_FRACTION",
    "ImbalancedTaskError",
    "LinearTask",
    "LabelledInputs",
    "paper_task",
    "balanced_paper_task",
    "authors_task",
    "balanced_authors_task",
    "authors_label_posterior",
    "check_balance",
    "sample_inputs",
    "label_inputs",
]

#: Default rejection threshold: a labelling whose smallest class holds less than this
#: fraction of the sample is rejected (:func:`check_balance`).
MIN_CLASS_FRACTION = 0.1


class ImbalancedTaskError(ValueError):
    """A task labels too few inputs with its minority class.

    Attributes:
        fraction: the minority class's share of the sample.
        counts: number of inputs per class.
        redraw: the ``redraw`` index of the rejected task, if known.
    """

    def __init__(self, message: str, fraction: float, counts: list[int], redraw: int | None = None):
        super().__init__(message)
        self.fraction = fraction
        self.counts = counts
        self.redraw = redraw


@dataclass(frozen=True)
class LinearTask:
    """A linear task ``y = argmax_c (weights @ p)_c`` on a posterior ``p`` (docs/theory.md, "Downstream tasks").

    Attributes:
        weights: (C, d) class weights; ``d`` is the number of states ``m`` (target
            ``"state"``) or of memory values ``V`` (target a memory cell).
        cell: ``None`` for the first-state posterior ``P(H_0 | x)``; an integer ``j`` for
            the posterior of memory cell ``j`` (docs/theory.md, "Memory-augmented HMMs").
        name: free text (the recipe that drew the task).
        redraw: which deterministic re-draw produced the task (see :func:`paper_task`).
    """

    weights: Tensor
    cell: int | None = None
    name: str | None = None
    redraw: int = 0

    def __post_init__(self):
        w = torch.as_tensor(self.weights, dtype=torch.float64)
        if w.dim() == 1:  # a binary task vector mu
            w = torch.stack([torch.zeros_like(w), w])
        if w.dim() != 2 or w.shape[0] < 2 or w.shape[1] < 1:
            raise ValueError(f"task weights must have shape (C, d) with C >= 2 classes, got {tuple(w.shape)}")
        if not bool(torch.isfinite(w).all()):
            raise ValueError("task weights must be finite")
        object.__setattr__(self, "weights", w)

    @classmethod
    def binary(cls, mu: Any, cell: int | None = None, name: str | None = None) -> "LinearTask":
        """The binary task ``y = 1[mu . p >= 0]``; ``mu`` has shape (d,)."""
        mu = torch.as_tensor(mu, dtype=torch.float64)
        if mu.dim() != 1:
            raise ValueError(f"mu must be a vector, got shape {tuple(mu.shape)}")
        return cls(torch.stack([torch.zeros_like(mu), mu]), cell=cell, name=name)

    @property
    def num_classes(self) -> int:
        return self.weights.shape[0]

    @property
    def dim(self) -> int:
        """Length ``d`` of the posterior the task reads."""
        return self.weights.shape[1]

    @property
    def mu(self) -> Tensor:
        """``weights[1] - weights[0]`` for a binary task (docs/theory.md, "Downstream tasks")."""
        if self.num_classes != 2:
            raise ValueError(f"mu is defined for binary tasks; this task has {self.num_classes} classes")
        return self.weights[1] - self.weights[0]

    def scores(self, posterior: Tensor) -> Tensor:
        """``weights @ p`` for posteriors ``p`` of shape (B, d): (B, C)."""
        p = self._check(posterior)
        return p @ self.weights.to(p.dtype).T

    def labels(self, posterior: Tensor) -> Tensor:
        """Class of each posterior, (B,) LongTensor."""
        p = self._check(posterior)
        if self.num_classes == 2:
            return (p @ self.mu.to(p.dtype) >= 0).long()
        return self.scores(p).argmax(-1)

    def margin(self, posterior: Tensor) -> Tensor:
        """``|mu . p|`` (binary) or the gap between the two best scores, (B,)."""
        p = self._check(posterior)
        if self.num_classes == 2:
            return (p @ self.mu.to(p.dtype)).abs()
        top = self.scores(p).topk(2, -1).values
        return top[:, 0] - top[:, 1]

    def relevant_states(self, initial: Any) -> list[int]:
        """``R = supp(nu)`` with ``nu = mu * initial`` (binary tasks, docs/theory.md, "Downstream tasks").

        For more classes: the states where some pairwise difference of weights, times
        ``initial``, is nonzero.
        """
        pi = torch.as_tensor(initial, dtype=torch.float64)
        w = self.weights
        spread = (w.max(0).values - w.min(0).values) * pi
        return [int(h) for h in torch.nonzero(spread != 0).flatten()]

    def _check(self, posterior: Tensor) -> Tensor:
        p = posterior if isinstance(posterior, Tensor) else torch.as_tensor(posterior, dtype=torch.float64)
        if p.dim() == 1:
            p = p[None]
        if p.dim() != 2 or p.shape[1] != self.dim:
            raise ValueError(f"posteriors must have shape (B, {self.dim}) for this task, got {tuple(p.shape)}")
        return p


def _task_rng(seed: int, redraw: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0x7A5C, int(redraw)])


def paper_task(
    num_states: int,
    seed: int,
    *,
    num_classes: int = 2,
    num_nonzero: int = 6,
    redraw: int = 0,
    cell: int | None = None,
) -> LinearTask:
    """The paper's random task (docs/theory.md, "Downstream tasks", "The paper's experiments").

    ``M`` in R^{C x d}: ``num_nonzero`` positions drawn uniformly *with replacement* among
    the ``C * d`` entries receive independent N(0, 1) values (a position drawn twice keeps
    its last value), all other entries are 0.

    Args:
        num_states: ``d``, the length of the posterior the task reads (``m`` states, or
            ``V`` values of a memory cell).
        seed: integer seed; the draw is a deterministic function of ``(seed, redraw)``.
        redraw: index of a deterministic re-draw (0 = first draw).
        cell: ``None`` (first-state posterior) or the memory cell the task reads.
    """
    if num_states < 1 or num_classes < 2 or num_nonzero < 1:
        raise ValueError("paper_task needs num_states >= 1, num_classes >= 2 and num_nonzero >= 1")
    rng = _task_rng(seed, redraw)
    M = np.zeros(num_classes * num_states)
    pos = rng.integers(0, num_classes * num_states, size=num_nonzero)
    val = rng.standard_normal(num_nonzero)
    M[pos] = val
    name = f"paper_task(d={num_states}, seed={seed}, redraw={redraw}" + (f", cell={cell})" if cell is not None else ")")
    return LinearTask(torch.from_numpy(M.reshape(num_classes, num_states)), cell=cell, name=name, redraw=redraw)


def check_balance(labels: Tensor, num_classes: int, min_fraction: float = MIN_CLASS_FRACTION, redraw: int | None = None) -> float:
    """Reject a labelling whose smallest class is under ``min_fraction`` of the sample.

    Returns:
        the minority fraction (for the record).

    Raises:
        ImbalancedTaskError: with the counts and how to re-draw.
    """
    labels = torch.as_tensor(labels)
    counts = torch.bincount(labels.flatten().long(), minlength=num_classes).tolist()
    total = max(1, sum(counts))
    fraction = min(counts) / total
    if fraction < min_fraction:
        nxt = "" if redraw is None else f" (this was redraw={redraw}; try redraw={redraw + 1})"
        raise ImbalancedTaskError(
            f"the task's minority class holds {fraction:.1%} of {total} inputs (class counts {counts}), "
            f"under the threshold {min_fraction:.0%}: re-draw the task deterministically with "
            f"paper_task(..., redraw=r+1) or balanced_paper_task(...){nxt}",
            fraction,
            counts,
            redraw,
        )
    return fraction


def balanced_paper_task(
    num_states: int,
    seed: int,
    posterior: Tensor,
    *,
    min_fraction: float = MIN_CLASS_FRACTION,
    max_redraws: int = 20,
    **kwargs,
) -> tuple[LinearTask, float]:
    """The first of ``paper_task(..., redraw=r)``, r = 0, 1, ..., whose labels on
    ``posterior`` pass :func:`check_balance`.

    Deterministic: the same seed and posteriors give the same task.

    Returns:
        ``(task, minority_fraction)``; ``task.redraw`` says how many draws were rejected.

    Raises:
        ImbalancedTaskError: no draw among ``max_redraws + 1`` passes.
    """
    last = None
    for r in range(max_redraws + 1):
        task = paper_task(num_states, seed, redraw=r, **kwargs)
        try:
            frac = check_balance(task.labels(posterior), task.num_classes, min_fraction, redraw=r)
        except ImbalancedTaskError as exc:
            last = exc
            continue
        return task, frac
    raise ImbalancedTaskError(
        f"none of {max_redraws + 1} deterministic task draws for seed {seed} has a minority class of at least "
        f"{min_fraction:.0%} (last one: {last.fraction:.1%}); the model's posteriors barely vary on this sample",
        last.fraction,
        last.counts,
        max_redraws,
    )


def authors_task(num_states: int, seed: int, attempt: int = 0) -> LinearTask:
    """The authors' own task for their HMM seed ``seed`` (binary, 6 random entries).

    Equal to their draws (:func:`hmmtune.models.authors_task_weights`): numpy's legacy
    generator reseeded with the downstream seed, which is ``seed`` on the first attempt and
    ``attempt`` (1, 2, ...) on their runner's retries. ``task.redraw`` is ``attempt``.
    """
    from ..models.generators import authors_task_weights

    w = authors_task_weights(num_states, seed, attempt)
    name = f"authors_task(m={num_states}, seed={seed}, attempt={attempt})"
    return LinearTask(torch.from_numpy(w), name=name, redraw=int(attempt))


def balanced_authors_task(
    num_states: int,
    seed: int,
    posterior: Tensor,
    *,
    min_fraction: float = MIN_CLASS_FRACTION,
    max_redraws: int = 20,
) -> tuple[LinearTask, float]:
    """The first of ``authors_task(..., attempt=a)``, a = 0, 1, ..., ``max_redraws``
    whose labels on ``posterior`` pass :func:`check_balance` (the authors retried up to 20
    times when fine-tuning failed; this uses the minority-class rule instead)."""
    last = None
    for a in range(max_redraws + 1):
        task = authors_task(num_states, seed, a)
        try:
            return task, check_balance(task.labels(posterior), task.num_classes, min_fraction, redraw=a)
        except ImbalancedTaskError as exc:
            last = exc
    raise ImbalancedTaskError(
        f"none of {max_redraws + 1} authors' task draws for seed {seed} has a minority class of at least {min_fraction:.0%}",
        last.fraction,
        last.counts,
        max_redraws,
    )


def authors_label_posterior(model: Any, tokens: Tensor) -> Tensor:
    """The authors' stand-in for ``P(H_0 | x)``: ``transmat @ P(H_1 | x_1..x_T)``, where
    ``P(H_1 | x)`` is hmmlearn's smoothed posterior of the first token's state with prior
    ``initial`` (their ``predict_proba(x)[0]``). (B, m).

    It equals the exact mask posterior (:meth:`hmmtune.OracleMLM.mask_posterior`, prior
    ``initial`` on ``H_0``, ``initial @ transition`` on ``H_1``) when ``initial`` is uniform
    and ``transition`` doubly stochastic (docs/theory.md, "The paper's experiments");
    the authors' models are only nearly so, and labels near the threshold can differ.
    """
    p1 = model.posterior(tokens)[:, 0, :]
    return p1 @ model.transition.T


class LabelledInputs(NamedTuple):
    """Downstream inputs with their exact posterior and label.

    Attributes:
        tokens: (B, T) LongTensor ``x_1..x_T`` (the mask at position 0 is not stored).
        posterior: (B, d) the posterior the task reads.
        labels: (B,) LongTensor.
    """

    tokens: Tensor
    posterior: Tensor
    labels: Tensor

    def __len__(self) -> int:  # number of inputs
        return self.tokens.shape[0]

    def subset(self, index) -> "LabelledInputs":
        return LabelledInputs(self.tokens[index], self.posterior[index], self.labels[index])


def sample_inputs(model: Any, num_inputs: int, length: int, seed: int) -> Tensor:
    """Downstream inputs ``x_1..x_T`` of a model: sample ``T + 1`` positions from the
    model and drop position 0, where the mask sits (docs/theory.md, "The perfect masked LM"). (B, T) LongTensor."""
    result = model.sample(num_inputs, length + 1, seed=seed)
    tokens = result[0] if isinstance(result, tuple) else result.tokens
    return tokens[:, 1:].contiguous()


def label_inputs(tokens: Tensor, posterior_fn: Callable[[Tensor], Tensor], task: LinearTask) -> LabelledInputs:
    """Attach exact posteriors (from ``posterior_fn(tokens)``) and the task's labels."""
    post = posterior_fn(tokens).detach()
    return LabelledInputs(tokens, post, task.labels(post))
