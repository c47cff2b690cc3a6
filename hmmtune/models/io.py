"""Deprecated alias of :mod:`hmmtune.io` (model file formats moved there); removed in the
next release. Importing it, or reading a name from it, warns with a DeprecationWarning.

Nothing in :mod:`hmmtune.models` imports this module: models never import io.
"""

from __future__ import annotations

from typing import Any

from ._deprecated import io_name, warn_moved

warn_moved("hmmtune.models.io", "hmmtune.io", stacklevel=2)

#: old name -> name in hmmtune.io
_RENAMED = {"LOADERS": "KINDS"}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):
        raise AttributeError(name)
    new = _RENAMED.get(name, name)
    try:
        value = io_name(new)
    except AttributeError:
        raise AttributeError(f"module 'hmmtune.models.io' has no attribute {name!r}") from None
    warn_moved(f"hmmtune.models.io.{name}", f"hmmtune.io.{new}")
    return value
