"""Deprecated alias of :mod:`hmmtune.io.expr` (the safe expression parser moved there);
removed in the next release. Importing it, or reading a name from it, warns with a
DeprecationWarning.

Nothing in :mod:`hmmtune.models` imports this module: models never import io.
"""

from __future__ import annotations

import importlib
from typing import Any

from ._deprecated import warn_moved

warn_moved("hmmtune.models.expr", "hmmtune.io.expr", stacklevel=2)


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    target = importlib.import_module("hmmtune.io.expr")
    try:
        value = getattr(target, name)
    except AttributeError:
        raise AttributeError(f"module 'hmmtune.models.expr' has no attribute {name!r}") from None
    warn_moved(f"hmmtune.models.expr.{name}", f"hmmtune.io.expr.{name}")
    return value
