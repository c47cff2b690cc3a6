"""Learned mode: a real transformer masked LM pretrained on HMM text (THEORY.md 7).

:class:`MaskedLM` is a small BERT-style encoder; :func:`pretrain` trains it with the
masked-LM objective on sequences streamed from a model's sampler and tracks the
total-variation distance to the perfect model (:class:`hmmtune.OracleMLM`); the tuning
functions fit heads and soft prompts on the frozen network; :mod:`.experiment` repeats
the paper's experiments with it.
"""

from .model import EncoderConfig, MaskedLM
from .pretrain import (
    PretrainConfig,
    PretrainResult,
    TrainingRecord,
    downstream_inputs,
    load_pretrained,
    mask_tv_distance,
    pretrain,
    sample_tokens,
)

__all__ = [
    "EncoderConfig",
    "MaskedLM",
    "PretrainConfig",
    "PretrainResult",
    "TrainingRecord",
    "downstream_inputs",
    "load_pretrained",
    "mask_tv_distance",
    "pretrain",
    "sample_tokens",
]
