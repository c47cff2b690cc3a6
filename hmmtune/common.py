"""Small helpers shared by every room, written once: atomic file writes, seed derivation,
the lazy exports of a package and the lazily imported ``torch``.

This module sits at the bottom of the house (it imports only the standard library, and
numpy where a function needs it), so any module may use it. Argument checks live in :mod:`hmmtune.models.arguments`.
"""

from __future__ import annotations

import errno
import importlib
import os
import sys
import tempfile
import types
from pathlib import Path
from typing import IO, Any, Callable

__all__ = ["write_atomic", "write_text_atomic", "derive_seed", "derive_rng", "lazy_module", "torch", "is_tensor"]


def write_atomic(path: str | os.PathLike, write: Callable[[IO[Any]], Any], *, binary: bool = False) -> Path:
    """Write a file atomically: ``write(fh)`` fills a temporary file in the same folder,
    which is flushed, synced and moved into place with ``os.replace``.

    On any failure (a full disk, a file-size limit, an interrupt) the temporary file is
    removed and the previous file at ``path``, if any, is untouched. The folder is created
    when missing. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError) and exc.errno in (errno.EFBIG, errno.ENOSPC, errno.EDQUOT):
            raise OSError(exc.errno, f"cannot write {path}: {os.strerror(exc.errno)} (nothing was left behind)") from exc
        raise
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda fh: fh.write(text))


def derive_seed(*parts: int) -> int:
    """A 32-bit seed derived from integer ``parts`` (a run's seed, its size, a tag...).

    Deterministic and well mixed (numpy's ``SeedSequence``): seeds derived from different
    parts are independent for every practical purpose, so one user seed can feed several
    random streams (model, task, inputs, pretraining) without them sharing draws.
    """
    import numpy as np  # here, so that importing this module stays light (the CLI imports it)

    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint32)[0])


def derive_rng(*parts: int):
    """A numpy ``Generator`` whose stream is derived from integer ``parts`` (numpy's
    ``SeedSequence`` of the parts, as :func:`derive_seed`): for code that draws from numpy
    directly rather than seeding another library with one integer."""
    import numpy as np

    return np.random.default_rng([int(p) for p in parts])


def lazy_exports(module_name: str, exports: dict[str, str], fallback: Callable[[str], Any] | None = None):
    """The module ``__getattr__`` and ``__dir__`` (PEP 562) of a package whose public names
    are imported on first use: ``exports`` maps a name to the submodule (relative, e.g.
    ``".hmm"``) that defines it; the value is then cached on the package. ``fallback(name)``
    handles any other name (deprecated aliases, submodules) and raises ``AttributeError``
    itself. Usage, at the end of an ``__init__.py``::

        __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
    """
    import importlib
    import sys

    def __getattr__(name: str):
        if name in exports:
            value = getattr(importlib.import_module(exports[name], module_name), name)
            setattr(sys.modules[module_name], name, value)  # later accesses skip this hook
            return value
        if fallback is not None:
            return fallback(name)
        raise AttributeError(f"module {module_name!r} has no attribute {name!r}")

    def __dir__():
        return sorted(set(vars(sys.modules[module_name])) | set(exports))

    return __getattr__, __dir__


def lazy_module(name: str) -> types.ModuleType:
    """A stand-in for the module ``name`` that imports it on the first read of an attribute
    the stand-in does not hold yet (a module ``__getattr__``, PEP 562).

    Each attribute read is then kept on the stand-in, so later reads are ordinary module
    reads (as fast as reads of the real module). Nothing is put in ``sys.modules``: the
    real import is the ordinary one, by :func:`importlib.import_module`.
    """
    stand_in = types.ModuleType(name, f"stand-in for {name}, imported on first use")

    def __getattr__(attr: str):
        if attr.startswith("__") and attr.endswith("__"):  # copy / pickle / inspection probes
            raise AttributeError(attr)
        value = getattr(importlib.import_module(name), attr)
        setattr(stand_in, attr, value)
        return value

    stand_in.__getattr__ = __getattr__
    return stand_in


#: ``torch``, imported when a function first uses it. The rooms that a task-free
#: ``hmmtune check`` passes through (the HMM, the file readers, the rank and graph checks)
#: read torch through this, so that check never pays torch's import (over a second).
torch = lazy_module("torch")


def is_tensor(value: Any) -> bool:
    """``value`` is a torch tensor, found without importing torch (no tensor can exist
    before torch is imported)."""
    module = sys.modules.get("torch")
    return module is not None and isinstance(value, module.Tensor)
