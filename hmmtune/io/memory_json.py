"""The memory-augmented HMM's JSON format (``"kind": "memory_hmm"``, documented in
``docs/memory.md``): the HMM format's entries, exact rows and parameters
(:mod:`hmmtune.io.entries`) for the fields ``memory_prior``, ``initial``, ``transition`` and
``emission``."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import sympy

from ..common import torch, write_text_atomic
from ..models.memory import MemoryHMM
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

__all__ = ["memory_hmm_to_json", "memory_hmm_from_json"]


def memory_hmm_to_json(model: MemoryHMM, path=None, *, exact: bool | None = None, indent: int | None = 1) -> str:
    """Serialise a :class:`MemoryHMM`; if ``path`` is given also write the file.

    The emission is written as (V, S, n) nested lists; the memory prior as (V,) when
    every cell shares it, else (N, V). Args as :func:`hmmtune.io.hmm_to_json`.
    """
    use_exact = model.exact is not None if exact is None else exact
    if use_exact and model.exact is None:
        raise ValueError("this model has no exact entries to write; load it from exact JSON or pass exact=False")
    V, S, n = model.num_values, model.num_local_states, model.num_tokens
    data: dict[str, Any] = {"kind": "memory_hmm", "format_version": FORMAT_VERSION}
    if model.name:
        data["name"] = model.name
    if model.description:
        data["description"] = model.description
    data["num_cells"] = model.num_cells
    if use_exact:
        ex = model.exact
        rows = lambda M: [[format_entry(M[i, j]) for j in range(M.cols)] for i in range(M.rows)]
        prior = rows(ex["memory_prior"])
        data["memory_prior"] = prior[0] if model.shared_prior else prior
        data["initial"] = [format_entry(v) for v in ex["initial"]]
        data["transition"] = rows(ex["transition"])
        em = rows(ex["emission"])
        data["emission"] = [em[v * S : (v + 1) * S] for v in range(V)]
    else:
        if model.dtype != torch.float64:
            data["dtype"] = "float32"  # rows sum to 1 at float32 resolution only
        prior = model.memory_prior.double().cpu().tolist()
        data["memory_prior"] = prior[0] if model.shared_prior else prior
        data["initial"] = model.initial.double().cpu().tolist()
        data["transition"] = model.transition.double().cpu().tolist()
        data["emission"] = model.emission.double().cpu().view(V, S, n).tolist()
    text = json.dumps(data, indent=indent)
    if path is not None:
        write_text_atomic(path, text + "\n")
    return text


def _depth(value: Any) -> int:
    d = 0
    while isinstance(value, list) and value:
        value, d = value[0], d + 1
    return d


def memory_hmm_from_json(source: Any, *, dtype=None, device=None) -> MemoryHMM:
    """Load a :class:`MemoryHMM` from a path, JSON text or dict (``"kind": "memory_hmm"``).

    Fields: ``memory_prior`` (V,) or (N, V); ``initial`` (N*S,); ``transition``
    (N*S, N*S); ``emission`` (V, S, n) or (V*S, n); optional ``num_cells``, ``name``,
    ``description``, ``dtype`` (``"float32"``, written for float32 models: rows are
    then checked at float32 resolution and the model loads as float32) and ``parameters``
    (as for an HMM, :func:`hmmtune.io.parse_parameters`: every entry must then be
    exact, rows sum to 1 for every parameter value, the model is taken at the declared
    values and keeps the expressions in ``symbolic``). Entries follow the HMM rules (JSON
    numbers, or strings with exact rationals such as ``"1/3"``); when every entry is exact
    the model keeps sympy matrices in ``exact`` and exact rows must sum to exactly 1.

    Raises:
        ModelFileError: naming the file and the field.
    """
    data, label = load_json_source(source)
    check_format_version(data, label)
    kind = data.get("kind")
    if kind != "memory_hmm":
        raise ModelFileError(f"{label}: field 'kind' is {kind!r}, expected 'memory_hmm' (use hmmtune.load_model to dispatch)")
    num_cells = data.get("num_cells")
    if num_cells is not None and (not isinstance(num_cells, int) or isinstance(num_cells, bool) or num_cells < 1):
        raise ModelFileError(f"{label}: field 'num_cells' must be a positive integer, got {_json_repr(num_cells)}")
    params = parse_parameters(data, label)  # the HMM format's "parameters" (docs/formats.md)
    symbols = {name: p["symbol"] for name, p in params.items()} or None
    parsed = {}
    for field, dims in (("memory_prior", (1, 2)), ("initial", (1,)), ("transition", (2,)), ("emission", (2, 3))):
        if field not in data:
            raise ModelFileError(f"{label}: missing field {field!r}")
        d = _depth(data[field])
        ndim = d if d in dims else dims[-1]
        parsed[field] = (ndim, parse_entries(data, field, ndim, label, symbols))
    if params:
        require_exact_entries(label, {k: ex for k, (_, (_, ex)) in parsed.items()})
    vectors = tuple(k for k, (ndim, _) in parsed.items() if ndim == 1)

    def matrices() -> dict:
        """The exact entries as sympy matrices (emission (V * S, n), vectors as columns)."""
        out = {}
        for k, (ndim, (_, ex)) in parsed.items():
            try:
                out[k] = sympy.Matrix([row for block in ex for row in block] if ndim == 3 else ex)
            except ValueError:
                raise ModelFileError(f"{label}: field {k!r} has rows of different lengths") from None
        return out

    floats = {k: f for k, (_, (f, _)) in parsed.items()}
    symbolic = None
    if params:  # symbolic entries: exact values and floats are taken at the parameter values
        symbolic = matrices()
        at_values = exact_at_parameters(label, symbolic, params, vectors=vectors)
        floats = {k: [float(v) for v in M] if k in vectors else [[float(v) for v in row] for row in M.tolist()] for k, M in at_values.items()}
    precision = data.get("dtype")
    if precision is not None:
        if precision not in ("float32", "float64"):
            raise ModelFileError(f"{label}: field 'dtype' must be \"float32\" or \"float64\", got {precision!r}")
        if precision == "float32" and not all(ex is not None for _, (_, ex) in parsed.values()):
            # numbers written from float32: validate them at float32 resolution
            floats = {k: np.asarray(f, dtype=np.float32) for k, f in floats.items()}
            dtype = torch.float32 if dtype is None else dtype
    model = wrap_value_error(
        label,
        MemoryHMM,
        floats["memory_prior"],
        floats["initial"],
        floats["transition"],
        floats["emission"],
        num_cells,
        dtype=dtype,
        device=device,
        name=data.get("name"),
        description=data.get("description"),
    )
    if all(ex is not None for _, (_, ex) in parsed.values()):
        exact = at_values if params else matrices()
        for k, ex in exact.items():
            check_exact_rows(label, k, ex.T if k in vectors else ex, ndim=1 if k in vectors else 2)
        if parsed["memory_prior"][0] == 1:
            exact["memory_prior"] = sympy.Matrix([list(exact["memory_prior"])] * model.num_cells)
            if symbolic is not None:
                symbolic["memory_prior"] = sympy.Matrix([list(symbolic["memory_prior"])] * model.num_cells)
        model.exact = exact
    if params:
        model.parameters = params
        model.symbolic = symbolic
    return model


def _json_repr(v: Any) -> str:
    try:
        return json.dumps(v)
    except TypeError:
        return repr(v)
