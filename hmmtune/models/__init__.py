"""Generative models and exact inference (THEORY.md sections 1, 2 and 6)."""

from .generators import authors_hmm_arrays, authors_task_weights, dirichlet_hmm, paper_hmm, paper_memory_hmm, paper_vanilla_control, permutation_mixture
from .hmm import HMM, MAX_CHUNK_ELEMENTS
from .inference import (
    BackwardResult,
    ForwardResult,
    ZeroProbabilityError,
    emission_likelihoods,
    hmm_backward,
    hmm_backward_scaled,
    hmm_forward,
    hmm_masked_posterior,
    hmm_posterior,
    hmm_start_backward,
)
from .io import ModelFileError, load_model
from .memory import MAX_MEMORY_ELEMENTS, InferenceTooLargeError, MemoryHMM, MemoryInference, MemorySample

__all__ = [
    "HMM",
    "InferenceTooLargeError",
    "MAX_CHUNK_ELEMENTS",
    "MAX_MEMORY_ELEMENTS",
    "MemoryHMM",
    "MemoryInference",
    "MemorySample",
    "BackwardResult",
    "ForwardResult",
    "ModelFileError",
    "ZeroProbabilityError",
    "dirichlet_hmm",
    "emission_likelihoods",
    "hmm_backward",
    "hmm_backward_scaled",
    "hmm_forward",
    "hmm_masked_posterior",
    "hmm_posterior",
    "hmm_start_backward",
    "load_model",
    "paper_hmm",
    "authors_hmm_arrays",
    "authors_task_weights",
    "paper_memory_hmm",
    "paper_vanilla_control",
    "permutation_mixture",
]
