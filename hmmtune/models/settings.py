"""Platform tuning of exact inference, kept off the math path (docs/inference.md).

Two knobs change how much memory inference uses and how it asks the operating system for
it; neither changes a single value of any result:

- ``chunk_elements`` (default ``2**24``, 128 MiB in float64): HMM inference processes
  sequences in chunks so that one ``(chunk, T, m)`` working tensor holds at most this many
  entries (:func:`hmmtune.models.inference.chunked`). ``chunk_size=`` on a method
  overrides it for one call.
- ``huge_pages`` (default True): on Linux, mark the large output buffer of the fused
  posterior passes with ``madvise(MADV_HUGEPAGE)`` before it is first written, so the
  kernel maps it in 2 MiB pages instead of 4 KiB ones. On by default because it was
  measured to help: ``HMM.posterior`` on (2000, 256) tokens with 32 states took 0.74 times
  as long with it (``python bench/bench_refactor.py --huge-pages``, docs/inference.md,
  "What one call costs"). Where it does not apply it does nothing.

Read them with :func:`current`; change them for a block with :func:`override` (like
:func:`hmmtune.models.limits.override`, per thread / asyncio context)::

    from hmmtune.models import settings
    with settings.override(chunk_elements=2**20, huge_pages=True):
        post = hmm.posterior(tokens)
"""

from __future__ import annotations

import contextlib
import contextvars
import ctypes
import dataclasses
import sys
from typing import TYPE_CHECKING, Iterator

from ..common import torch

if TYPE_CHECKING:  # annotations only: torch is imported on first use (common.torch)
    from torch import Tensor

__all__ = ["Settings", "current", "override", "empty_large"]


@dataclasses.dataclass(frozen=True)
class Settings:
    """The inference settings in force (see the module docstring)."""

    chunk_elements: int = 2**24
    huge_pages: bool = True


_SETTINGS: contextvars.ContextVar[Settings] = contextvars.ContextVar("hmmtune_inference_settings", default=Settings())


def current() -> Settings:
    """The settings in force in this context."""
    return _SETTINGS.get()


@contextlib.contextmanager
def override(**changes) -> Iterator[Settings]:
    """Change settings inside a ``with`` block, e.g. ``override(huge_pages=True)``.

    Raises:
        TypeError: an unknown setting.
        ValueError: ``chunk_elements`` not a positive integer, ``huge_pages`` not a bool.
    """
    for key, value in changes.items():
        if key not in Settings.__dataclass_fields__:
            raise TypeError(f"unknown inference setting {key!r}; known: {', '.join(Settings.__dataclass_fields__)}")
        if key == "huge_pages" and not isinstance(value, bool):
            raise ValueError(f"setting huge_pages must be True or False, got {value!r}")
        if key == "chunk_elements" and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise ValueError(f"setting chunk_elements must be a positive integer, got {value!r}")
    token = _SETTINGS.set(dataclasses.replace(_SETTINGS.get(), **changes))
    try:
        yield _SETTINGS.get()
    finally:
        _SETTINGS.reset(token)


_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14  # linux/mman.h
_madvise = None  # None: not looked up yet; False: unavailable here


def empty_large(shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """``torch.empty`` for a large buffer about to be filled position by position.

    With ``huge_pages`` on (Linux, CPU tensors of at least 8 MiB, transparent huge pages
    enabled for ``madvise`` regions) the buffer's 2 MiB-aligned part is marked
    ``MADV_HUGEPAGE`` before it is touched, which makes the page faults of its first write
    512 times fewer. It changes no value, and silently does nothing where it does not apply.
    """
    out = torch.empty(shape, dtype=dtype, device=device)
    if not _SETTINGS.get().huge_pages:
        return out
    _advise_huge_pages(out)
    return out


def _advise_huge_pages(out: Tensor) -> None:
    global _madvise
    nbytes = out.numel() * out.element_size()
    if _madvise is False or out.device.type != "cpu" or nbytes < 4 * _HUGE_PAGE or not sys.platform.startswith("linux"):
        return
    try:
        if _madvise is None:
            fn = ctypes.CDLL(None, use_errno=True).madvise
            fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
            fn.restype = ctypes.c_int
            _madvise = fn
        start = -(-out.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
        end = (out.data_ptr() + nbytes) // _HUGE_PAGE * _HUGE_PAGE
        if end > start:
            _madvise(start, end - start, _MADV_HUGEPAGE)  # advisory: the result is ignored
    except (OSError, AttributeError, TypeError):
        _madvise = False  # not available here: never try again
