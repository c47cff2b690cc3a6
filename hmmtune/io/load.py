"""Load any hmmtune model file, dispatching on its ``"kind"`` field."""

from __future__ import annotations

from typing import Any

from .entries import ModelFileError, load_json_source
from .hmm_json import hmm_from_json
from .memory_json import memory_hmm_from_json

__all__ = ["KINDS", "load_model"]

#: The loader of every model kind a file may declare (``"kind"``, default ``"hmm"``).
KINDS = {"hmm": hmm_from_json, "memory_hmm": memory_hmm_from_json}


def load_model(source: Any, **kwargs):
    """Load an :class:`hmmtune.HMM` or :class:`hmmtune.MemoryHMM` from a path, JSON text or
    dict, dispatching on the field ``kind`` (:data:`KINDS`).

    Keyword arguments (``dtype``, ``device``) go to the loader of that kind.

    Raises:
        ModelFileError: naming the file and the field.
    """
    data, label = load_json_source(source)
    kind = data.get("kind", "hmm")
    if not isinstance(kind, str):
        raise ModelFileError(f"{label}: field 'kind' must be a string such as \"hmm\", got {type(kind).__name__}")
    if kind not in KINDS:
        raise ModelFileError(f"{label}: field 'kind' is {kind!r}; known kinds: {', '.join(sorted(KINDS))}")
    return KINDS[kind](source, **kwargs)
