"""Generative models and exact inference (THEORY.md sections 1, 2 and 6)."""

from .generators import dirichlet_hmm, paper_hmm, permutation_mixture
from .hmm import HMM, MAX_CHUNK_ELEMENTS
from .inference import (
    ForwardResult,
    ZeroProbabilityError,
    emission_likelihoods,
    hmm_backward,
    hmm_forward,
    hmm_masked_posterior,
    hmm_posterior,
    hmm_start_backward,
)
from .io import ModelFileError, load_model

__all__ = [
    "HMM",
    "MAX_CHUNK_ELEMENTS",
    "ForwardResult",
    "ModelFileError",
    "ZeroProbabilityError",
    "dirichlet_hmm",
    "emission_likelihoods",
    "hmm_backward",
    "hmm_forward",
    "hmm_masked_posterior",
    "hmm_posterior",
    "hmm_start_backward",
    "load_model",
    "paper_hmm",
    "permutation_mixture",
]
