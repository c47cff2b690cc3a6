"""One-release bridges for names that moved out of :mod:`hmmtune.models` (issue 10).

File formats moved to :mod:`hmmtune.io`, which imports the models; the models never import
io. The deprecated aliases kept for one release (``HMM.to_json``, ``hmmtune.models.io``,
``hmmtune.models.load_model`` ...) reach io only here, by name and only when called, and
warn with a :class:`DeprecationWarning` saying what to use instead. Delete this module, and
the aliases that use it, in the next release.
"""

from __future__ import annotations

import importlib
import warnings
from typing import Any

__all__ = ["warn_moved", "io_name"]


def warn_moved(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that ``old`` is deprecated in favour of ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed in the next release; use {new}",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def io_name(name: str) -> Any:
    """The object ``hmmtune.io.<name>``, looked up when a deprecated alias is used."""
    return getattr(importlib.import_module("hmmtune.io"), name)
