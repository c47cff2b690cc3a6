"""Generative models and exact inference (docs/theory.md, "Conventions", "The perfect masked LM", "Memory-augmented HMMs").

The public names are loaded on first use (module ``__getattr__``, PEP 562): the light
modules of this package (``limits``, ``arguments``) are imported by the command line
without paying for torch, numpy or sympy. File formats live in :mod:`hmmtune.io`, which
imports the models; nothing here imports io.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from ..common import lazy_exports

if TYPE_CHECKING:  # the static view for type checkers and the API docs
    from .generators import authors_hmm_arrays, authors_task_weights, dirichlet_hmm, paper_hmm, paper_memory_hmm, paper_vanilla_control, permutation_mixture
    from .hmm import HMM
    from .inference import BackwardResult, ForwardResult, MaskMessages, ZeroProbabilityError, emission_likelihoods, hmm_backward, hmm_backward_scaled, hmm_forward, hmm_log_prob, hmm_loo_posterior, hmm_posterior, hmm_start_backward
    from .memory import MAX_MEMORY_ELEMENTS, InferenceTooLargeError, MemoryHMM, MemoryInference, MemorySample
    from .protocol import OracleModel

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
    "BackwardResult": ".inference",
    "ForwardResult": ".inference",
    "MaskMessages": ".inference",
    "ZeroProbabilityError": ".inference",
    "emission_likelihoods": ".inference",
    "hmm_backward": ".inference",
    "hmm_backward_scaled": ".inference",
    "hmm_forward": ".inference",
    "hmm_log_prob": ".inference",
    "hmm_loo_posterior": ".inference",
    "hmm_posterior": ".inference",
    "hmm_start_backward": ".inference",
    "MAX_MEMORY_ELEMENTS": ".memory",
    "InferenceTooLargeError": ".memory",
    "MemoryHMM": ".memory",
    "MemoryInference": ".memory",
    "MemorySample": ".memory",
    "OracleModel": ".protocol",
}

#: deprecated names kept for one release: name -> (where it went, how to get it)
_DEPRECATED = {
    "ModelFileError": "hmmtune.io.ModelFileError",
    "load_model": "hmmtune.io.load_model",
    "MAX_CHUNK_ELEMENTS": "hmmtune.models.settings.current().chunk_elements",
    "hmm_masked_posterior": "hmmtune.models.inference.hmm_loo_posterior",
}

__all__ = sorted(_EXPORTS)


def _deprecated(name: str):
    if name in _DEPRECATED:
        from ._deprecated import io_name, warn_moved
        from .settings import current

        warn_moved(f"hmmtune.models.{name}", _DEPRECATED[name])
        if name == "MAX_CHUNK_ELEMENTS":
            return current().chunk_elements
        if name == "hmm_masked_posterior":
            return importlib.import_module(".inference", __name__).hmm_loo_posterior
        return io_name(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _deprecated)
