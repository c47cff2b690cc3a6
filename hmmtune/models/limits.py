"""Resource limits, checked before anything is read or allocated (docs: errors).

hmmtune reads model files that someone else may have written, so every read and every
large allocation is bounded:

- ``max_file_bytes``: a model, task or report file larger than this is refused from its
  size (``stat``) before it is read; only regular files are read (no devices, FIFOs,
  folders).
- ``max_json_depth``: nesting of JSON arrays/objects.
- ``max_entries``: numbers (and strings) in one file.
- ``max_memory``: the estimated memory of sampling and checking (``num_sequences x length``
  and the model's size) before it is allocated.

The defaults suit a workstation. Raise them for one block of code with
:func:`override` (``with hmmtune.models.limits.override(max_memory=64 * 2**30): ...``) or,
on the command line, with ``--max-file-size`` and ``--max-memory``.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import json
import os
import stat
from typing import Any, Iterator

__all__ = [
    "Limits",
    "ResourceLimitError",
    "current",
    "override",
    "read_text",
    "parse_json",
    "check_memory",
    "format_bytes",
    "parse_bytes",
]


class ResourceLimitError(ValueError):
    """A request above a resource limit; the message gives the figure, the limit and how
    to raise it."""


@dataclasses.dataclass(frozen=True)
class Limits:
    """The limits in force (see the module docstring)."""

    max_file_bytes: int = 32 * 2**20
    max_json_depth: int = 32
    max_entries: int = 2_000_000
    max_memory: int = 4 * 2**30


#: bytes per number that ``--max-file-size`` grants when it raises ``max_entries`` (the
#: default limits' ratio, 32 MiB for 2,000,000 numbers, rounded)
ENTRY_BYTES = 16

_LIMITS: contextvars.ContextVar[Limits] = contextvars.ContextVar("hmmtune_limits", default=Limits())

_HOW = {
    "max_file_bytes": "--max-file-size on the command line, hmmtune.models.limits.override(max_file_bytes=...) in Python",
    "max_json_depth": "hmmtune.models.limits.override(max_json_depth=...) in Python",
    "max_entries": "--max-file-size on the command line (one number per 16 bytes of it), hmmtune.models.limits.override(max_entries=...) in Python",
    "max_memory": "--max-memory on the command line, hmmtune.models.limits.override(max_memory=...) in Python",
}


def current() -> Limits:
    """The limits in force in this context."""
    return _LIMITS.get()


@contextlib.contextmanager
def override(**changes: int) -> Iterator[Limits]:
    """Raise (or lower) limits inside a ``with`` block; e.g. ``override(max_memory=2**36)``."""
    for key, value in changes.items():
        if key not in Limits.__dataclass_fields__:
            raise TypeError(f"unknown limit {key!r}; known: {', '.join(Limits.__dataclass_fields__)}")
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"limit {key} must be a positive integer, got {value!r}")
    token = _LIMITS.set(dataclasses.replace(_LIMITS.get(), **changes))
    try:
        yield _LIMITS.get()
    finally:
        _LIMITS.reset(token)


def format_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover


_UNITS = {"": 1, "b": 1, "k": 2**10, "kb": 2**10, "kib": 2**10, "m": 2**20, "mb": 2**20, "mib": 2**20,
          "g": 2**30, "gb": 2**30, "gib": 2**30, "t": 2**40, "tb": 2**40, "tib": 2**40}


def parse_bytes(text: str) -> int:
    """``'64M'``, ``'8GiB'``, ``'1000000'`` -> bytes (binary units). Raises ValueError."""
    s = str(text).strip().lower().replace(" ", "")
    num = s.rstrip("kmgtib")
    unit = s[len(num):]
    if unit not in _UNITS or not num or len(num) > 20:
        raise ValueError(f"expected a size such as 512M, 8G or 1000000, got {text!r}")
    try:
        value = float(num)
    except ValueError:
        raise ValueError(f"expected a size such as 512M, 8G or 1000000, got {text!r}") from None
    if not (value >= 1) or value * _UNITS[unit] > 2**62:
        raise ValueError(f"expected a size between 1 byte and 4 EiB, got {text!r}")
    return int(value * _UNITS[unit])


def _refuse(what: str, figure: str, key: str, limit: str) -> ResourceLimitError:
    return ResourceLimitError(f"{what} {figure}, above the limit {limit} (raise it with {_HOW[key]})")


def read_text(path: str | os.PathLike, label: str | None = None) -> str:
    """Read a regular UTF-8 text file of at most ``max_file_bytes``.

    The file's type and size are checked with ``stat`` before it is read (a symlink to
    ``/dev/zero``, a FIFO or a folder is refused without reading), and the read itself
    stops after the limit, in case the file grows meanwhile.

    Raises:
        ResourceLimitError: the file is too large.
        ValueError: not a regular file, or not UTF-8 text.
        OSError: it cannot be opened (missing, no permission).
    """
    label = label or str(path)
    limit = current().max_file_bytes
    st = os.stat(path)
    _check_regular(st, label)
    if st.st_size > limit:
        raise _refuse(f"{label}: the file has", format_bytes(st.st_size), "max_file_bytes", format_bytes(limit))
    # O_NONBLOCK: should the path have become a FIFO since the stat, open does not block
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        _check_regular(os.fstat(fd), label)
        data = f.read(limit + 1)
    if len(data) > limit:
        raise _refuse(f"{label}: the file has more than", format_bytes(limit), "max_file_bytes", format_bytes(limit))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{label}: not UTF-8 text (byte {exc.start})") from None


def _check_regular(st: os.stat_result, label: str) -> None:
    if stat.S_ISREG(st.st_mode):
        return
    kind = (
        "a folder" if stat.S_ISDIR(st.st_mode)
        else "a FIFO (named pipe)" if stat.S_ISFIFO(st.st_mode)
        else "a device" if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode)
        else "a socket" if stat.S_ISSOCK(st.st_mode)
        else "not a regular file"
    )
    raise ValueError(f"{label}: is {kind}; only regular files are read")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number hmmtune accepts")


def parse_json(text: str, label: str) -> Any:
    """``json.loads`` with the limits: no NaN/Infinity literals, nesting of at most
    ``max_json_depth``, at most ``max_entries`` scalars. Raises ``ValueError`` naming
    ``label`` (the file)."""
    lim = current()
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{label}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ResourceLimitError(
            f"{label}: JSON nested deeper than Python can parse; the limit is {lim.max_json_depth} levels"
        ) from None
    except ValueError as exc:  # NaN/Infinity literals, integers beyond Python's digit limit
        raise ValueError(f"{label}: invalid JSON: {str(exc).splitlines()[0]}") from None
    # iterative walk: depth and number of scalars
    stack = [(data, 1)]
    count = 0
    while stack:
        value, depth = stack.pop()
        if isinstance(value, (list, dict)):
            if depth > lim.max_json_depth:
                raise _refuse(f"{label}: JSON nested", f"{depth} levels deep", "max_json_depth", str(lim.max_json_depth))
            items = value.values() if isinstance(value, dict) else value
            stack.extend((v, depth + 1) for v in items if isinstance(v, (list, dict)))
            count += sum(1 for v in items if not isinstance(v, (list, dict)))
            if count > lim.max_entries:
                raise _refuse(f"{label}: the file holds more than", f"{lim.max_entries} entries", "max_entries", str(lim.max_entries))
    return data


def check_memory(what: str, nbytes: float) -> None:
    """Refuse a request whose estimated memory ``nbytes`` exceeds ``max_memory``.

    ``what`` names the request, e.g. ``"sampling 100000 sequences of length 100000"``.
    """
    limit = current().max_memory
    if nbytes > limit:
        raise _refuse(what, f"needs about {format_bytes(nbytes)}", "max_memory", format_bytes(limit))
