"""Drawing and labelling downstream tasks (docs/theory.md, "Downstream tasks", "Memory-augmented HMMs").

The task type itself is :class:`hmmtune.Task` (:mod:`hmmtune.task`, re-exported here);
``LinearTask`` is its deprecated old name. A task reads a posterior ``p`` (the first-state posterior ``P(H_0 | x)`` of a vanilla HMM,
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

import warnings
from typing import Any, Callable, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .. import common
from ..models import arguments
from ..task import Task

__all__ = [
    "MIN_CLASS_FRACTION",
    "ImbalancedTaskError",
    "LabelledInputs",
    "Task",
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


class DeprecatedLinearTask(Task):  # what the old name LinearTask gives, for one release
    """The deprecated ``LinearTask``: a :class:`hmmtune.Task` that also takes the old
    keyword ``name`` (now ``source``)."""

    def __init__(self, weights, cell=None, name=None, redraw=0, **kwargs):
        super().__init__(weights, cell, kwargs.pop("source", name), redraw, **kwargs)

    @classmethod
    def binary(cls, mu, cell=None, name=None, **kwargs):
        return super().binary(mu, cell, kwargs.pop("source", name), **kwargs)

    @property
    def name(self):
        return self.source


#: old public names -> (their replacement, the message's hint); removed in the next release
DEPRECATED = {"LinearTask": (DeprecatedLinearTask, "hmmtune.Task (hmmtune.task.Task)")}


def __getattr__(name: str):
    if name in DEPRECATED:
        value, new = DEPRECATED[name]
        warnings.warn(f"hmmtune.tuning.{name} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _task_rng(seed: int, redraw: int) -> np.random.Generator:
    return common.derive_rng(seed, 0x7A5C, redraw)


def paper_task(
    num_states: int,
    seed: int,
    *,
    num_classes: int = 2,
    num_nonzero: int = 6,
    redraw: int = 0,
    cell: int | None = None,
) -> Task:
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
    num_states = arguments.integer("num_states", num_states)
    num_classes = arguments.integer("num_classes", num_classes, 2)
    num_nonzero = arguments.integer("num_nonzero", num_nonzero)
    rng = _task_rng(seed, redraw)
    M = np.zeros(num_classes * num_states)
    pos = rng.integers(0, num_classes * num_states, size=num_nonzero)
    val = rng.standard_normal(num_nonzero)
    M[pos] = val
    name = f"paper_task(d={num_states}, seed={seed}, redraw={redraw}" + (f", cell={cell})" if cell is not None else ")")
    return Task(torch.from_numpy(M.reshape(num_classes, num_states)), cell=cell, source=name, redraw=redraw)


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


def _first_balanced(draw: Callable[[int], Task], posterior: Tensor, min_fraction: float, max_redraws: int):
    """``((task, minority_fraction), None)`` for the first ``draw(r)``, r = 0..max_redraws,
    whose labels pass :func:`check_balance`; ``(None, last ImbalancedTaskError)`` if none does."""
    last = None
    for r in range(max_redraws + 1):
        task = draw(r)
        try:
            return (task, check_balance(task.labels(posterior), task.num_classes, min_fraction, redraw=r)), None
        except ImbalancedTaskError as exc:
            last = exc
    return None, last


def balanced_paper_task(
    num_states: int,
    seed: int,
    posterior: Tensor,
    *,
    min_fraction: float = MIN_CLASS_FRACTION,
    max_redraws: int = 20,
    **kwargs,
) -> tuple[Task, float]:
    """The first of ``paper_task(..., redraw=r)``, r = 0, 1, ..., whose labels on
    ``posterior`` pass :func:`check_balance`.

    Deterministic: the same seed and posteriors give the same task.

    Returns:
        ``(task, minority_fraction)``; ``task.redraw`` says how many draws were rejected.

    Raises:
        ImbalancedTaskError: no draw among ``max_redraws + 1`` passes.
    """
    found, last = _first_balanced(lambda r: paper_task(num_states, seed, redraw=r, **kwargs), posterior, min_fraction, max_redraws)
    if found is not None:
        return found
    raise ImbalancedTaskError(
        f"none of {max_redraws + 1} deterministic task draws for seed {seed} has a minority class of at least "
        f"{min_fraction:.0%} (last one: {last.fraction:.1%}); the model's posteriors barely vary on this sample",
        last.fraction,
        last.counts,
        max_redraws,
    )


def authors_task(num_states: int, seed: int, attempt: int = 0) -> Task:
    """The authors' own task for their HMM seed ``seed`` (binary, 6 random entries).

    Equal to their draws (:func:`hmmtune.models.authors_task_weights`): numpy's legacy
    generator reseeded with the downstream seed, which is ``seed`` on the first attempt and
    ``attempt`` (1, 2, ...) on their runner's retries. ``task.redraw`` is ``attempt``.
    """
    from ..models.generators import authors_task_weights

    w = authors_task_weights(num_states, seed, attempt)
    name = f"authors_task(m={num_states}, seed={seed}, attempt={attempt})"
    return Task(torch.from_numpy(w), source=name, redraw=int(attempt))


def balanced_authors_task(
    num_states: int,
    seed: int,
    posterior: Tensor,
    *,
    min_fraction: float = MIN_CLASS_FRACTION,
    max_redraws: int = 20,
) -> tuple[Task, float]:
    """The first of ``authors_task(..., attempt=a)``, a = 0, 1, ..., ``max_redraws``
    whose labels on ``posterior`` pass :func:`check_balance` (the authors retried up to 20
    times when fine-tuning failed; this uses the minority-class rule instead)."""
    found, last = _first_balanced(lambda a: authors_task(num_states, seed, a), posterior, min_fraction, max_redraws)
    if found is not None:
        return found
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


def label_inputs(tokens: Tensor, posterior_fn: Callable[[Tensor], Tensor], task: Task) -> LabelledInputs:
    """Attach exact posteriors (from ``posterior_fn(tokens)``) and the task's labels."""
    post = posterior_fn(tokens).detach()
    return LabelledInputs(tokens, post, task.labels(post))
