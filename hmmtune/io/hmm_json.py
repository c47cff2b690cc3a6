"""The HMM's JSON format (``"kind": "hmm"``, documented in ``docs/formats.md``)::

    {
      "kind": "hmm",
      "format_version": 1,
      "name": "optional", "description": "optional",
      "initial":    [p_0, ..., p_{m-1}],
      "transition": [[...], ...],          # m rows of m entries
      "emission":   [[...], ...]           # m rows of n entries
    }

When every entry of the three arrays is exact (integers or strings such as ``"1/3"``),
the model keeps sympy matrices of the exact values in ``HMM.exact`` next to the float
tensors; exact rows must sum to exactly 1. An optional ``"dtype": "float32"`` (written for
float32 models) says the numbers are float32 values: their rows are then checked at
float32 resolution instead of 1e-9, and the model loads as float32 unless ``dtype=`` says
otherwise. An optional ``"parameters"`` field makes the model parametric
(:func:`hmmtune.io.parse_parameters`).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..common import torch, write_text_atomic
from ..models.hmm import HMM
from .entries import (
    FORMAT_VERSION,
    ModelFileError,
    check_exact_rows,
    check_format_version,
    exact_at_parameters,
    format_entry,
    load_json_source,
    parse_entries,
    parse_parameters,
    require_exact_entries,
    wrap_value_error,
)

__all__ = ["hmm_to_json", "hmm_from_json"]


def _fast_floats(value: Any, ndim: int):
    """``(float64 array, None)`` when ``value`` is a vector / rectangular matrix of JSON
    numbers with at least one binary float (so the field is numerical, as the general
    parser would decide), in one numpy conversion; None otherwise (strings, booleans,
    ragged rows, only integers: the general parser or the exact fast path of :func:`hmmtune.io.parse_entries` decide)."""
    if not isinstance(value, list) or not value:
        return None
    flat = value if ndim == 1 else (value[0] if isinstance(value[0], list) else None)
    if flat is None or ndim not in (1, 2):
        return None
    rows = [value] if ndim == 1 else value
    seen_float = False
    for row in rows:
        if not isinstance(row, list):
            return None
        for v in row:
            t = type(v)
            if t is float:
                seen_float = True
            elif t is not int:
                return None
    if not seen_float:
        return None
    try:
        arr = np.array(value, dtype=np.float64)
    except (ValueError, OverflowError):  # ragged rows, an integer too large for a float
        return None
    if arr.ndim != ndim or not np.isfinite(arr).all():  # the general parser names the entry
        return None
    return arr, None


def hmm_to_json(hmm, path=None, *, exact: bool | None = None, indent: int | None = 1) -> str:
    """Serialise ``hmm``; if ``path`` is given also write the file.

    Args:
        exact: write the exact rationals (default: when the model has them).
    """
    use_exact = hmm.exact is not None if exact is None else exact
    if use_exact and hmm.exact is None:
        raise ValueError("this model has no exact entries to write; load it from exact JSON or pass exact=False")
    data: dict[str, Any] = {"kind": "hmm", "format_version": FORMAT_VERSION}
    if hmm.name:
        data["name"] = hmm.name
    if hmm.description:
        data["description"] = hmm.description
    if use_exact:
        data["initial"] = [format_entry(v) for v in hmm.exact["initial"]]
        for key in ("transition", "emission"):
            M = hmm.exact[key]
            data[key] = [[format_entry(M[i, j]) for j in range(M.cols)] for i in range(M.rows)]
    else:
        if hmm.dtype != torch.float64:
            # float32 rows sum to 1 only to float32 resolution: say so, or the file
            # would fail the 1e-9 check when loaded (see hmm_from_json)
            data["dtype"] = "float32"
        data["initial"] = hmm.initial.double().cpu().tolist()
        data["transition"] = hmm.transition.double().cpu().tolist()
        data["emission"] = hmm.emission.double().cpu().tolist()
    text = json.dumps(data, indent=indent)
    if path is not None:
        write_text_atomic(path, text + "\n")
    return text


def hmm_from_json(source: Any, *, dtype=None, device=None):
    """Load an :class:`hmmtune.HMM` from a path, JSON text or dict.

    Raises:
        ModelFileError: naming the file and the field.
    """
    data, label = load_json_source(source)
    check_format_version(data, label)
    kind = data.get("kind", "hmm")
    if kind != "hmm":
        raise ModelFileError(f"{label}: field 'kind' is {kind!r}; use the loader for that kind (hmmtune.load_model)")
    params = parse_parameters(data, label)
    symbols = {name: p["symbol"] for name, p in params.items()} or None
    parsed = {}
    for field, ndim in (("initial", 1), ("transition", 2), ("emission", 2)):
        fast = None if symbols else _fast_floats(data.get(field), ndim)
        parsed[field] = fast if fast is not None else parse_entries(data, field, ndim, label, symbols)
    exact = None
    symbolic = None
    if params:
        require_exact_entries(label, {k: ex for k, (_, ex) in parsed.items()})
    if all(ex is not None for _, ex in parsed.values()):
        exact = {k: ex for k, (_, ex) in parsed.items()}
        if params:
            symbolic = exact
            exact = exact_at_parameters(label, symbolic, params, vectors=("initial",))
        for k, M in exact.items():
            check_exact_rows(label, k, M, ndim=1 if k == "initial" else 2)
    floats = {k: f for k, (f, _) in parsed.items()}
    precision = data.get("dtype")
    if precision is not None:
        if precision not in ("float32", "float64"):
            raise ModelFileError(f"{label}: field 'dtype' must be \"float32\" or \"float64\", got {precision!r}")
        if precision == "float32" and exact is None:
            # numbers written from float32: validate them at float32 resolution
            floats = {k: np.asarray(f, dtype=np.float32) for k, f in floats.items()}
            dtype = torch.float32 if dtype is None else dtype
    if exact is not None and params:  # symbolic entries: their floats are taken at the parameter values
        floats = {k: ([float(v) for v in exact[k]] if k == "initial" else [[float(v) for v in row] for row in exact[k].tolist()]) for k in exact}
    model = wrap_value_error(
        label,
        HMM,
        floats["initial"],
        floats["transition"],
        floats["emission"],
        dtype=dtype,
        device=device,
        exact=exact,
        name=data.get("name"),
        description=data.get("description"),
    )
    if params:
        model.parameters = params
        model.symbolic = symbolic
    return model
