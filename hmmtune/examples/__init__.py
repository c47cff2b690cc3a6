"""Bundled example models (JSON files shipped as package data)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

__all__ = ["list_examples", "example_path", "load_example"]


def _files():
    return resources.files(__name__)


def list_examples() -> dict[str, str]:
    """Names of the bundled examples mapped to their one-line descriptions."""
    out = {}
    for entry in sorted(_files().iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".json"):
            data = json.loads(entry.read_text())
            out[entry.name[:-5]] = data.get("description", "")
    return out


def example_path(name: str) -> Path:
    """Path of a bundled example file.

    Raises:
        ValueError: unknown name (the message lists the known ones).
    """
    names = list_examples()
    if name not in names:
        raise ValueError(f"unknown example {name!r}; bundled examples: {', '.join(names)}")
    return Path(str(_files().joinpath(name + ".json")))


def load_example(name: str, **kwargs):
    """Load a bundled example as a model object (see :func:`hmmtune.load_model`)."""
    from ..io import load_model

    return load_model(example_path(name), **kwargs)
