"""Tasks, heads, prompts and training loops on exact features (docs/theory.md, "Downstream tasks", "Theorem H (head tuning)", "Theorem P (prompt tuning)", "Memory-augmented HMMs").

- :mod:`~hmmtune.tuning.tasks`: linear tasks on exact posteriors, the paper's random task,
  minority-class rejection with a deterministic re-draw.
- :mod:`~hmmtune.tuning.heads`: head tuning, a logistic-regression probe on frozen features.
- :mod:`~hmmtune.tuning.prompts`: prompt tuning through the exact prompted oracle.
- :mod:`~hmmtune.tuning.attention`: an attention head over per-position predictions.
"""

from ._train import TrainLog
from .attention import AttentionFit, AttentionHead, fit_attention
from .heads import HeadFit, LinearHead, accuracy, as_float_tensor, fit_head, witness_dict
from .prompts import DEFAULT_PROMPT_TOKENS, PromptFit, fit_prompt, prompt_features, prompt_from_logits
from .tasks import (
    MIN_CLASS_FRACTION,
    ImbalancedTaskError,
    LabelledInputs,
    LinearTask,
    balanced_paper_task,
    check_balance,
    label_inputs,
    paper_task,
    sample_inputs,
)

__all__ = [
    "AttentionFit",
    "AttentionHead",
    "DEFAULT_PROMPT_TOKENS",
    "HeadFit",
    "ImbalancedTaskError",
    "LabelledInputs",
    "LinearHead",
    "LinearTask",
    "MIN_CLASS_FRACTION",
    "PromptFit",
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
