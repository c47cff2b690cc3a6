"""Tasks, heads, prompts and training loops on exact features (docs/theory.md, "Downstream tasks", "Theorem H (head tuning)", "Theorem P (prompt tuning)", "Memory-augmented HMMs").

- :class:`Task` (:mod:`hmmtune.task`): the one task type, shared with the analysis.
- :mod:`~hmmtune.tuning.tasks`: the paper's random task, minority-class rejection with a
  deterministic re-draw, labelled inputs.
- :mod:`~hmmtune.tuning.training`: :class:`TrainConfig` (every fit's ``config=``), the
  training loop and its :class:`TrainLog`.
- :mod:`~hmmtune.tuning.heads`: head tuning, a logistic-regression probe on frozen features.
- :mod:`~hmmtune.tuning.prompts`: prompt tuning through the exact prompted oracle.
- :mod:`~hmmtune.tuning.attention`: an attention head over per-position predictions.

``LinearTask`` is the deprecated old name of :class:`Task` (a ``DeprecationWarning``; it
goes in the next release).
"""

from ..task import Task
from .attention import AttentionFit, AttentionHead, fit_attention
from .heads import HeadFit, LinearHead, accuracy, as_float_tensor, fit_head, witness_dict
from .prompts import DEFAULT_PROMPT_TOKENS, PromptFit, fit_prompt, prompt_features, prompt_from_logits
from .tasks import (
    MIN_CLASS_FRACTION,
    ImbalancedTaskError,
    LabelledInputs,
    balanced_paper_task,
    check_balance,
    label_inputs,
    paper_task,
    sample_inputs,
)
from .training import TrainConfig, TrainLog

__all__ = [
    "AttentionFit",
    "AttentionHead",
    "DEFAULT_PROMPT_TOKENS",
    "HeadFit",
    "ImbalancedTaskError",
    "LabelledInputs",
    "LinearHead",
    "MIN_CLASS_FRACTION",
    "PromptFit",
    "Task",
    "TrainConfig",
    "TrainLog",
    "accuracy",
    "as_float_tensor",
    "balanced_paper_task",
    "check_balance",
    "fit_attention",
    "fit_head",
    "fit_prompt",
    "label_inputs",
    "paper_task",
    "prompt_features",
    "prompt_from_logits",
    "sample_inputs",
    "witness_dict",
]


def __getattr__(name: str):
    from . import tasks

    if name in tasks.DEPRECATED:
        value, new = tasks.DEPRECATED[name]
        import warnings

        warnings.warn(f"hmmtune.tuning.{name} is deprecated; use {new}", DeprecationWarning, stacklevel=2)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
