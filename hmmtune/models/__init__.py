"""Generative models and exact inference (docs/theory.md, "Conventions", "The perfect masked LM", "Memory-augmented HMMs").

The public names are loaded on first use (module ``__getattr__``, PEP 562): the light
modules of this package (``limits``, ``expr``) are imported by the command line without
paying for torch, numpy or sympy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the static view for type checkers and the API docs
    from .generators import authors_hmm_arrays, authors_task_weights, dirichlet_hmm, paper_hmm, paper_memory_hmm, paper_vanilla_control, permutation_mixture
    from .hmm import HMM, MAX_CHUNK_ELEMENTS
    from .inference import BackwardResult, ForwardResult, ZeroProbabilityError, emission_likelihoods, hmm_backward, hmm_backward_scaled, hmm_forward, hmm_masked_posterior, hmm_posterior, hmm_start_backward
    from .io import ModelFileError, load_model
    from .memory import MAX_MEMORY_ELEMENTS, InferenceTooLargeError, MemoryHMM, MemoryInference, MemorySample

#: public name -> the submodule that defines it (imported on first access)
_EXPORTS = {
    "authors_hmm_arrays": ".generators",
    "authors_task_weights": ".generators",
    "dirichlet_hmm": ".generators",
    "paper_hmm": ".generators",
    "paper_memory_hmm": ".generators",
    "paper_vanilla_control": ".generators",
    "permutation_mixture": ".generators",
    "HMM": ".hmm",
    "MAX_CHUNK_ELEMENTS": ".hmm",
    "BackwardResult": ".inference",
    "ForwardResult": ".inference",
    "ZeroProbabilityError": ".inference",
    "emission_likelihoods": ".inference",
    "hmm_backward": ".inference",
    "hmm_backward_scaled": ".inference",
    "hmm_forward": ".inference",
    "hmm_masked_posterior": ".inference",
    "hmm_posterior": ".inference",
    "hmm_start_backward": ".inference",
    "ModelFileError": ".io",
    "load_model": ".io",
    "MAX_MEMORY_ELEMENTS": ".memory",
    "InferenceTooLargeError": ".memory",
    "MemoryHMM": ".memory",
    "MemoryInference": ".memory",
    "MemorySample": ".memory",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value  # later accesses skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS))
