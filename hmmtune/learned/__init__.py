"""Learned mode: a real transformer masked LM pretrained on HMM text (docs/theory.md, "The paper's experiments").

:class:`MaskedLM` is a small BERT-style encoder; :func:`pretrain` trains it with the
masked-LM objective on sequences streamed from a model's sampler and tracks the
total-variation distance to the perfect model (:class:`hmmtune.OracleMLM`);
:func:`tune_head`, :func:`tune_prompt` and :func:`tune_attention` fit heads and soft
prompts on the frozen network; :func:`run_learned` repeats the paper's experiments with
it, beside the oracle's and the published numbers.
"""

from .experiment import CPU_SCALE, PAPER_SCALE, SCALES, LearnedResult, LearnedRow, LearnedScale, run_learned, with_scale
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
from .tune import (
    LearnedAttentionFit,
    LearnedHeadFit,
    LearnedPromptFit,
    mask_features,
    token_features,
    tune_attention,
    tune_head,
    tune_prompt,
)

__all__ = [
    "CPU_SCALE",
    "EncoderConfig",
    "LearnedAttentionFit",
    "LearnedHeadFit",
    "LearnedPromptFit",
    "LearnedResult",
    "LearnedRow",
    "LearnedScale",
    "MaskedLM",
    "PAPER_SCALE",
    "PretrainConfig",
    "PretrainResult",
    "SCALES",
    "TrainingRecord",
    "downstream_inputs",
    "load_pretrained",
    "mask_features",
    "mask_tv_distance",
    "pretrain",
    "run_learned",
    "sample_tokens",
    "token_features",
    "tune_attention",
    "tune_head",
    "tune_prompt",
    "with_scale",
]
