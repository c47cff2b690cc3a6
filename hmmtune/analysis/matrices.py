"""The model's matrices as the checks read them (docs/theory.md, "Conventions").

The model stores ``emission`` (m, n); the paper's ``W = emission.T`` is (n, m). Float
copies are float64 numpy arrays (read-only: :meth:`hmmtune.HMM.as_numpy`, which never
imports torch for a model read from a file). For a model with exact rational entries (``model.exact``,
parametric models taken at their value) FLINT copies are built once per model and kept in
a module-level :class:`weakref.WeakKeyDictionary` keyed by the model, never on the user's
object; an entry is rebuilt when ``model.exact`` is replaced and dropped with the model.
"""

from __future__ import annotations

import weakref
from typing import Any

import numpy as np

from .linalg import to_fmpq_mat

__all__ = ["array", "emission", "float_W", "is_exact", "exact_matrices", "exact_W", "chain_arrays"]

#: model -> (the ``model.exact`` dict the copies were made from, the FLINT copies)
_EXACT_CACHE: "weakref.WeakKeyDictionary[Any, tuple[dict, dict]]" = weakref.WeakKeyDictionary()


def array(model, name: str) -> np.ndarray:
    """The model's ``initial``, ``transition`` or ``emission`` as float64 numpy (read-only
    for an HMM; any model with these tensors is read through torch)."""
    read = getattr(model, "as_numpy", None)
    if read is not None:
        return read(name)
    return getattr(model, name).detach().double().cpu().numpy()


def emission(model) -> np.ndarray:
    """``emission`` (m, n) as float64 numpy."""
    return array(model, "emission")


def float_W(model) -> np.ndarray:
    """``W = emission^T`` (n, m) as float64 numpy."""
    return emission(model).T


def is_exact(model) -> bool:
    """The model carries exact rational entries (parametric models are taken at their value)."""
    return bool(getattr(model, "exact", None))


def exact_matrices(model) -> dict | None:
    """FLINT copies of the exact matrices: ``initial`` (m x 1), ``transition`` (m x m),
    ``emission`` (m x n), ``W`` = emission^T (n x m); None for a float model."""
    if not is_exact(model):
        return None
    try:
        cached = _EXACT_CACHE.get(model)
    except TypeError:  # neither weakly referenceable nor hashable: build, do not keep
        return _build(model.exact)
    if cached is None or cached[0] is not model.exact:
        cached = (model.exact, _build(model.exact))
        _EXACT_CACHE[model] = cached
    return cached[1]


def _build(exact: dict) -> dict:
    mats = {k: to_fmpq_mat(exact[k]) for k in ("initial", "transition", "emission")}
    mats["W"] = mats["emission"].transpose()
    return mats


def exact_W(model):
    """FLINT ``W`` (n x m) of an exact model, else None."""
    mats = exact_matrices(model)
    return mats["W"] if mats else None


def chain_arrays(model, tau: float = 0.0) -> tuple[Any, list | np.ndarray, bool]:
    """``(transition, initial, exact)`` for the transition graph: FLINT entries when the
    model is exact and ``tau == 0`` (the exact graph), float64 numpy otherwise."""
    if is_exact(model) and tau == 0:
        mats = exact_matrices(model)
        m = mats["initial"].nrows()
        return mats["transition"], [mats["initial"][h, 0] for h in range(m)], True
    return array(model, "transition"), array(model, "initial"), False
