"""The results store: one JSON record per (configuration, seed), written atomically.

A record is written to a temporary file in the same folder and moved into place with
``os.replace``, so a sweep killed at any moment leaves either a complete record or none
(a stray ``*.tmp`` file at worst, which is ignored). A sweep that starts again skips every
(configuration, seed) whose record exists and resumes where it stopped.

Layout: ``OUT/<experiment>/<run key>.json`` with run key
``<label>-seed<seed>-<hash>``, where ``hash`` is a digest of the resolved configuration:
records of another configuration (``--quick``, ``--truncate``...) never mix with these.

A record holds::

    {"experiment": "exp1", "key": ..., "config": {...resolved...}, "config_hash": ...,
     "seed": 3, "results": {...}, "environment": {"versions": {...}, "git": "<rev>" | null},
     "elapsed_s": 2.1, "created": "2021-...Z"}
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, Iterable

__all__ = [
    "config_hash",
    "run_key",
    "record_path",
    "save_record",
    "load_record",
    "load_records",
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


def save_record(path: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` as JSON atomically (temporary file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def load_record(path: str | os.PathLike) -> dict | None:
    """The record at ``path``, or None if it is missing or unreadable (then it is re-run)."""
    try:
        with open(path) as fh:
            rec = json.load(fh)
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and "results" in rec else None


def load_records(paths: Iterable[str | os.PathLike]) -> list[dict]:
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
