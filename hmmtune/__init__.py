"""hmmtune: head and prompt tuning on HMM-generated text, made checkable.

Implements the framework of Wei, Xie & Ma (NeurIPS 2021): exact inference for HMMs,
the perfect pretrained masked LM, and (in :mod:`hmmtune.analysis`) the conditions under
which head and prompt tuning provably work.
"""

from importlib.metadata import PackageNotFoundError, version as _version

from .examples import example_path, list_examples, load_example
from .models import HMM, ModelFileError, ZeroProbabilityError, dirichlet_hmm, load_model, paper_hmm
from .models import MemoryHMM, paper_memory_hmm, paper_vanilla_control
from .oracle import MaskMessages, OracleMLM

try:
    __version__ = _version("hmmtune")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

__all__ = [
    "HMM",
    "MaskMessages",
    "MemoryHMM",
    "ModelFileError",
    "OracleMLM",
    "ZeroProbabilityError",
    "dirichlet_hmm",
    "example_path",
    "list_examples",
    "load_example",
    "load_model",
    "paper_hmm",
    "paper_memory_hmm",
    "paper_vanilla_control",
    "__version__",
]
