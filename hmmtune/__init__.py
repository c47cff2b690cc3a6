"""hmmtune: head and prompt tuning on HMM-generated text, made checkable.

Implements the framework of Wei, Xie & Ma (NeurIPS 2021): exact inference for HMMs,
the perfect pretrained masked LM, and (in :mod:`hmmtune.analysis`) the conditions under
which head and prompt tuning provably work.

The public names below are loaded on first use (module ``__getattr__``, PEP 562), so
``import hmmtune`` and ``hmmtune --help`` do not pay for torch, sympy, scipy, pyro or
matplotlib; ``from hmmtune import HMM`` imports what ``HMM`` needs at that moment.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version as _version
from typing import TYPE_CHECKING

from .common import lazy_exports

if TYPE_CHECKING:  # static view for type checkers and the API docs; at run time see __getattr__
    from .examples import example_path, list_examples, load_example
    from .io import ModelFileError, load_model
    from .models import HMM, MemoryHMM, ZeroProbabilityError, dirichlet_hmm, paper_hmm
    from .models import paper_memory_hmm, paper_vanilla_control
    from .oracle import MaskMessages, OracleMLM
    from .task import Task
    from .tuning import TrainConfig

try:
    __version__ = _version("hmmtune")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

#: public name -> the submodule that defines it (imported on first access)
_EXPORTS = {
    "HMM": ".models",
    "MaskMessages": ".oracle",
    "MemoryHMM": ".models",
    "ModelFileError": ".io",
    "OracleMLM": ".oracle",
    "Task": ".task",
    "TrainConfig": ".tuning",
    "ZeroProbabilityError": ".models",
    "dirichlet_hmm": ".models",
    "example_path": ".examples",
    "list_examples": ".examples",
    "load_example": ".examples",
    "load_model": ".io",
    "paper_hmm": ".models",
    "paper_memory_hmm": ".models",
    "paper_vanilla_control": ".models",
}

__all__ = sorted(_EXPORTS) + ["__version__"]

#: subpackages reachable as attributes (``hmmtune.models``) after a bare ``import hmmtune``
_SUBMODULES = {"analysis", "cli", "examples", "experiments", "io", "learned", "models", "oracle", "tuning"}


def _submodule(name: str):
    if name in _SUBMODULES:
        return importlib.import_module("." + name, __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _submodule)
