"""The results store: one JSON record per (configuration, seed), written atomically.

A record is written to a temporary file in the same folder and moved into place with
``os.replace``, so a sweep killed at any moment leaves either a complete record or none
(a stray ``*.tmp`` file at worst, which the next sweep on the folder removes: it holds the
folder's lock, so no writer can own it). A failed write (a full disk, a file-size limit)
removes its temporary file before the error goes up. A sweep that starts again skips every
(configuration, seed) whose record exists and is valid (:func:`validate_record`), and
resumes where it stopped; a record that fails validation is set aside
(:func:`set_aside`: renamed, never deleted) and recomputed.

One sweep at a time per records folder: :func:`folder_lock` takes an exclusive
``flock`` on ``<folder>/.lock`` (released by the kernel when its holder dies, even by
SIGKILL), so two sweeps never compute the same run twice.

Layout: ``OUT/<experiment>/<run key>.json`` with run key
``<label>-seed<seed>-<hash>``, where ``hash`` is a digest of the resolved configuration:
records of another configuration (``--quick``, ``--truncate``...) never mix with these.

A record holds::

    {"experiment": "exp1", "key": ..., "config": {...resolved...}, "config_hash": ...,
     "seed": 3, "results": {...}, "environment": {"versions": {...}, "git": "<rev>" | null},
     "elapsed_s": 2.1, "created": "2021-...Z"}
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import platform
import stat
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from .. import common

__all__ = [
    "config_hash",
    "run_key",
    "record_path",
    "save_record",
    "load_record",
    "load_records",
    "read_record",
    "validate_record",
    "set_aside",
    "RecordError",
    "SweepBusyError",
    "folder_lock",
    "remove_stale_temporaries",
    "write_text_atomic",
    "environment",
    "git_revision",
]


def config_hash(config: dict) -> str:
    """A short stable digest of a resolved configuration (sorted-key JSON, SHA-256)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def run_key(label: str, seed: int, config: dict) -> str:
    """File stem of the record of ``(config, seed)``: ``<label>-seed<seed>-<hash>``."""
    return f"{label}-seed{int(seed)}-{config_hash(config)}"


def record_path(out: str | os.PathLike, experiment: str, key: str) -> Path:
    return Path(out) / experiment / f"{key}.json"


class RecordError(ValueError):
    """A record file that is unreadable or wrong inside; the message names the file and field."""


class SweepBusyError(ValueError):
    """Another sweep holds the records folder's lock."""


def save_record(path: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` as JSON atomically (temporary file + ``os.replace``); on any
    failure (a full disk, a file-size limit, an interrupt) the temporary file is removed
    and the previous record, if any, is untouched."""

    def write(fh):
        json.dump(record, fh, indent=1, sort_keys=True)
        fh.write("\n")

    return common.write_atomic(path, write)


#: :func:`hmmtune.common.write_text_atomic` (kept here for the store's callers)
write_text_atomic = common.write_text_atomic


#: Largest record file read (bytes); a learned record at paper scale is about 20 kB.
MAX_RECORD_BYTES = 16 * 1024 * 1024


def read_record(path: str | os.PathLike) -> dict:
    """The record at ``path`` (a JSON object), or :class:`RecordError` naming the file.

    ``FileNotFoundError`` if it does not exist."""
    path = Path(path)
    st = path.stat()
    if not stat.S_ISREG(st.st_mode):
        raise RecordError(f"record {path}: not a regular file")
    if st.st_size > MAX_RECORD_BYTES:
        raise RecordError(f"record {path}: {st.st_size} bytes, over the limit of {MAX_RECORD_BYTES}")
    try:
        with open(path, encoding="utf-8") as fh:
            rec = json.load(fh)
    except (ValueError, RecursionError) as exc:
        raise RecordError(f"record {path}: not valid JSON ({exc})") from None
    if not isinstance(rec, dict):
        raise RecordError(f"record {path}: expected a JSON object, got {type(rec).__name__}")
    return rec


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def validate_record(rec: dict, path: str | os.PathLike, *, config: dict | None = None, seed: int | None = None) -> dict:
    """Check a record against the store's schema (and, if given, the expected
    configuration and seed); :class:`RecordError` names the file and the field.

    Fields: ``experiment`` (str), ``key`` (the file's stem), ``config`` (object),
    ``config_hash`` (its digest), ``seed`` (int), ``x`` (number), ``results`` (object),
    ``elapsed_s`` (number >= 0). The results themselves are checked by the recipe.
    """
    path = Path(path)

    def bad(field, why):
        raise RecordError(f"record {path}: field {field!r} {why}")

    for field, kind in (("experiment", str), ("key", str), ("config", dict), ("config_hash", str), ("results", dict)):
        if field not in rec:
            bad(field, "is missing")
        if not isinstance(rec[field], kind):
            bad(field, f"must be {'an object' if kind is dict else 'a string'}, got {type(rec[field]).__name__}")
    for field in ("seed", "x", "elapsed_s"):
        if field not in rec:
            bad(field, "is missing")
        if not _is_number(rec[field]):
            bad(field, f"must be a finite number, got {rec[field]!r}")
    if not isinstance(rec["seed"], int):
        bad("seed", f"must be an integer, got {rec['seed']!r}")
    if rec["elapsed_s"] < 0:
        bad("elapsed_s", f"must be >= 0, got {rec['elapsed_s']!r}")
    if rec["key"] != path.stem:
        bad("key", f"is {rec['key']!r}, but the file is {path.name}")
    if rec["config_hash"] != config_hash(rec["config"]):
        bad("config_hash", "does not match the record's config")
    if config is not None and rec["config"] != config:
        bad("config", "differs from the planned configuration")
    if seed is not None and rec["seed"] != int(seed):
        bad("seed", f"is {rec['seed']}, expected {int(seed)}")
    return rec


def set_aside(path: str | os.PathLike) -> Path:
    """Rename a bad record to ``<name>.bad-<UTC time>`` (never deleted) and return the new path."""
    path = Path(path)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.bad-{stamp}")
    n = 1
    while target.exists():
        target = path.with_name(f"{path.name}.bad-{stamp}-{n}")
        n += 1
    os.replace(path, target)
    return target


@contextmanager
def folder_lock(folder: str | os.PathLike) -> Iterator[Path]:
    """Hold an exclusive lock on a records folder (``<folder>/.lock``, ``flock``).

    Raises :class:`SweepBusyError` at once if another process holds it. The kernel
    releases the lock when the holder exits, however it dies."""
    import fcntl

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / ".lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
            except OSError:
                holder = "?"
            raise SweepBusyError(
                f"another sweep (pid {holder}) is writing to {folder}; wait for it to finish or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        yield lock
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete ``*.tmp`` files left in a folder by a writer that was killed (call it only
    while holding :func:`folder_lock`). Returns how many were removed."""
    n = 0
    for tmp in Path(folder).glob("*.tmp"):
        try:
            tmp.unlink()
            n += 1
        except FileNotFoundError:
            pass
    return n


def load_record(path: str | os.PathLike) -> dict | None:
    """The record at ``path``, or None if it is missing, unreadable or not a record
    (lenient; a sweep uses :func:`read_record` and :func:`validate_record`)."""
    try:
        rec = read_record(path)
    except (OSError, RecordError):
        return None
    return rec if "results" in rec else None


def load_records(paths: Iterable[str | os.PathLike]) -> list[dict]:
    """The records of ``paths`` that :func:`load_record` can read (the others skipped)."""
    return [r for r in (load_record(p) for p in paths) if r is not None]


_GIT: dict[str, str | None] = {}


def git_revision(path: str | os.PathLike | None = None) -> str | None:
    """The git revision of the source tree holding this package (``+dirty`` if it has
    uncommitted changes), or None outside a git checkout."""
    root = str(Path(path) if path else Path(__file__).resolve().parents[2])
    if root in _GIT:
        return _GIT[root]
    rev = None
    try:
        out = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10)
        if out.returncode == 0:
            rev = out.stdout.strip()
            st = subprocess.run(
                ["git", "-C", root, "status", "--porcelain", "--untracked-files=no", "--", "hmmtune"],
                capture_output=True,
                text=True,
                timeout=10,
            )
            if st.returncode == 0 and st.stdout.strip():
                rev += "+dirty"
    except (OSError, subprocess.SubprocessError):
        rev = None
    _GIT[root] = rev
    return rev


def environment() -> dict[str, Any]:
    """Package versions and the git revision, for a record."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for pkg in ("hmmtune", "torch", "numpy", "scipy", "pyro-ppl"):
        try:
            versions[pkg] = version(pkg)
        except PackageNotFoundError:
            versions[pkg] = None
    return {"versions": versions, "git": git_revision(), "platform": platform.platform()}


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
