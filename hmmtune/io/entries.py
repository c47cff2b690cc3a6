"""The pieces every model file format shares: reading a JSON source within the limits,
the format version, entries (JSON numbers or exact strings such as ``"1/3"``), exact rows,
parameters of parametric models, and the error that names the file and the field.

Every entry is a JSON number or a string holding an exact rational or decimal
(``"1/3"``, ``"0.25"``, ``"2"``) or, in a parametric model, an expression in the declared
parameters (:mod:`hmmtune.io.expr`). A single JSON float (``0.3``) makes a field
numerical, because a binary float is never silently taken as exact. The formats are
documented in ``docs/formats.md``.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import sympy

from ..models import limits
from .expr import MAX_DIGITS, ExpressionError, parse_expression

__all__ = [
    "FORMAT_VERSION",
    "ModelFileError",
    "check_exact_rows",
    "check_format_version",
    "exact_at_parameters",
    "format_entry",
    "load_json_source",
    "parse_entries",
    "parse_parameters",
    "require_exact_entries",
    "wrap_value_error",
]

FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file or dict is malformed; the message names the file and the field."""


def load_json_source(source: Any) -> tuple[dict, str]:
    """Read a path, JSON text or dict. Returns ``(data, label)`` for error messages.

    Files are read within the limits of :mod:`hmmtune.models.limits` (regular files only,
    size checked before reading, nesting depth and number of entries bounded).
    """
    if isinstance(source, dict):
        return source, "<dict>"
    if isinstance(source, (str, os.PathLike)):
        text = str(source)
        if isinstance(source, os.PathLike) or not text.lstrip().startswith("{"):
            path = Path(source)
            label = str(path)
            try:
                text = limits.read_text(path, label)
            except limits.ResourceLimitError:
                raise
            except OSError as exc:
                raise ModelFileError(f"{label}: cannot read file ({exc.strerror or exc})") from None
            except ValueError as exc:
                raise ModelFileError(str(exc)) from None
        else:
            label = "<json text>"
            if len(text) > limits.current().max_file_bytes:
                raise limits.ResourceLimitError(
                    f"{label}: {limits.format_bytes(len(text))} of JSON text, above the limit "
                    f"{limits.format_bytes(limits.current().max_file_bytes)} (raise it with --max-file-size on the "
                    "command line, hmmtune.models.limits.override(max_file_bytes=...) in Python)"
                )
        try:
            data = limits.parse_json(text, label)
        except limits.ResourceLimitError:
            raise
        except ValueError as exc:
            raise ModelFileError(str(exc)) from None
        if not isinstance(data, dict):
            raise ModelFileError(f"{label}: the top level must be a JSON object, got {type(data).__name__}")
        return data, label
    raise ModelFileError(f"cannot read a model from {type(source).__name__}")


def check_format_version(data: dict, label: str) -> None:
    """The optional ``format_version`` must be one this version of hmmtune reads (1)."""
    if "format_version" not in data:
        return
    v = data["format_version"]
    if isinstance(v, bool) or not isinstance(v, int) or v != FORMAT_VERSION:
        raise ModelFileError(
            f"{label}: field 'format_version' is {json.dumps(v) if isinstance(v, (int, float, str)) else type(v).__name__}; "
            f"this version of hmmtune reads format_version {FORMAT_VERSION}"
        )


def _parse_entry(value: Any, where: str, symbols: dict | None) -> tuple[float | None, Any]:
    """Return (float value or None if symbolic, exact sympy value or None if inexact)."""
    if isinstance(value, bool) or value is None:
        raise ModelFileError(f"{where}: expected a number or a string like \"1/3\", got {json.dumps(value)}")
    if isinstance(value, int):
        if abs(value) > 2**1000:
            raise ModelFileError(f"{where}: the integer {str(value)[:20]}... is too large for a float")
        return float(value), sympy.Integer(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ModelFileError(f"{where}: {value} is not a finite number")
        return value, None
    if isinstance(value, str):
        try:
            expr = parse_expression(value, symbols)
        except ExpressionError as exc:
            hint = " (declare symbols under \"parameters\")" if not symbols and "unknown name" in str(exc) else ""
            shown = value if len(value) <= 60 else value[:57] + "..."
            raise ModelFileError(f"{where}: cannot read {shown!r} as an exact number: {exc}{hint}") from None
        if expr.free_symbols:
            return None, expr
        f = float(expr)
        if not math.isfinite(f):
            raise ModelFileError(f"{where}: {value[:60]!r} is too large for a float")
        return f, expr
    raise ModelFileError(f"{where}: expected a number or a string like \"1/3\", got {type(value).__name__}")


_PLAIN_RATIONAL = re.compile(r"\s*([+-]?[0-9]+)(?:/([0-9]+))?\s*", re.ASCII)


def _fast_exact(value: Any, ndim: int):
    """The common case of a large exact file in one pass: a vector or matrix whose entries
    are all JSON integers or strings ``"p"`` / ``"p/q"`` (q > 0), none negative. Returns
    ``(floats, sympy Matrix)``, the Matrix held as a rational DomainMatrix (FLINT rationals
    when sympy runs on python-flint) so no per-entry sympy object is built; None when any
    entry needs the general parser (symbols, decimals, floats, bad input: its messages).
    The floats are ``p / q`` correctly rounded, as ``float(sympy.Rational(p, q))``."""
    from sympy import QQ
    from sympy.polys.matrices import DomainMatrix
    from sympy.polys.matrices.sdm import SDM

    if ndim == 1:
        if not isinstance(value, list):
            return None
        rows = [value]
    elif ndim == 2:
        if not isinstance(value, list) or not value or not all(isinstance(r, list) for r in value):
            return None
        rows = value
        if len({len(r) for r in rows}) != 1:
            return None
    else:
        return None
    if not rows[0]:
        return None
    match = _PLAIN_RATIONAL.fullmatch
    make = QQ.__call__
    fmpq = None
    try:  # sympy on python-flint (its default when installed): QQ's elements are fmpq
        import flint

        if QQ.dtype is flint.fmpq:
            make = fmpq = flint.fmpq
    except ImportError:  # pragma: no cover - python-flint is a dependency
        pass
    floats, sdm = [], {}
    for i, row in enumerate(rows):
        frow, qrow = [], {}
        for j, v in enumerate(row):
            if type(v) is int:
                if abs(v) > 2**1000:  # the general parser refuses it with its message
                    return None
                p, q = v, 1
            elif type(v) is str:
                if len(v) > 2 * MAX_DIGITS + 3:  # longer than any "p/q" the grammar accepts:
                    return None  # the general parser refuses it with its message
                if fmpq is not None and v.isascii() and "+" not in v:
                    try:  # FLINT's parser: "p" or "p/q", surrounding spaces allowed
                        x = fmpq(v)
                    except (ValueError, ZeroDivisionError):
                        return None
                    p, q = int(x.p), int(x.q)
                else:
                    mt = match(v)
                    if mt is None:
                        return None
                    p, q = int(mt[1]), int(mt[2] or 1)
                    if q == 0:
                        return None
            else:
                return None
            if p < 0:
                return None
            frow.append(p / q)
            if p:
                qrow[j] = make(p, q)
        floats.append(frow)
        if qrow:
            sdm[i] = qrow
    if ndim == 1:
        n = len(value)
        col = {i: {0: sdm[0][i]} for i in sdm.get(0, {})}
        return floats[0], DomainMatrix.from_rep(SDM(col, (n, 1), QQ)).to_Matrix()
    shape = (len(rows), len(rows[0]))
    return floats, DomainMatrix.from_rep(SDM(sdm, shape, QQ)).to_Matrix()


def parse_entries(data: dict, field: str, ndim: int, label: str, symbols: dict | None = None):
    """Parse a field of nested lists. Returns (nested floats or None, sympy Matrix or None).

    Floats are None when the field holds symbols; the exact matrix is None when any
    entry is a binary float.
    """
    if field not in data:
        raise ModelFileError(f"{label}: missing field {field!r}")
    value = data[field]
    if not symbols:
        fast = _fast_exact(value, ndim)
        if fast is not None:
            return fast

    def rows_of(v, depth, path):
        if depth == 0:
            return _parse_entry(v, f"{label}: field {field!r}{path}", symbols)
        if not isinstance(v, list):
            raise ModelFileError(f"{label}: field {field!r}{path} must be a list, got {type(v).__name__}")
        return [rows_of(item, depth - 1, f"{path}[{i}]") for i, item in enumerate(v)]

    parsed = rows_of(value, ndim, "")
    if ndim == 2:
        lengths = {len(r) for r in parsed}
        if len(lengths) > 1:
            first = len(parsed[0])
            r = next(i for i, row in enumerate(parsed) if len(row) != first)
            raise ModelFileError(
                f"{label}: field {field!r} row {r} has {len(parsed[r])} entries, row 0 has {first}"
            )
    flat = [e for row in parsed for e in row] if ndim == 2 else parsed
    if ndim == 3:
        flat = [e for blk in parsed for row in blk for e in row]
    floats_ok = all(f is not None for f, _ in flat)
    exact_ok = all(x is not None for _, x in flat)

    def pick(tree, k, depth):
        if depth == 0:
            return tree[k]
        return [pick(item, k, depth - 1) for item in tree]

    floats = pick(parsed, 0, ndim) if floats_ok else None
    exact = None
    if exact_ok:
        ex = pick(parsed, 1, ndim)
        exact = sympy.Matrix(ex) if ndim in (1, 2) else ex
    return floats, exact


def check_exact_rows(label: str, field: str, mat, ndim: int | None = None) -> None:
    """Exact rows must sum to exactly 1 and be nonnegative (symbol-free matrices only).

    ``ndim`` is 1 for a vector (one row) and 2 for a matrix (one row per row); by
    default it is guessed from the shape, which cannot tell an (m, 1) matrix from a
    vector of length m, so pass it.
    """
    if ndim is None:
        ndim = 2 if mat.cols > 1 and mat.rows > 1 else 1
    if _rows_sum_to_one_fast(mat, ndim):
        return
    rows = [mat.row(i) for i in range(mat.rows)] if ndim == 2 else [mat.reshape(1, len(mat))]
    for i, row in enumerate(rows):
        if any(e.free_symbols for e in row):
            return
        for j, e in enumerate(row):
            if e < 0:
                raise ModelFileError(f"{label}: field {field!r}[{i}][{j}] = {e} is negative")
        s = sum(row)
        if s != 1:
            where = f" row {i}" if len(rows) > 1 else ""
            raise ModelFileError(f"{label}: field {field!r}{where} sums to {s} exactly, not 1")


def _rows_sum_to_one_fast(mat, ndim: int) -> bool:
    """True when ``mat`` is a rational matrix whose rows (one row for ``ndim`` 1) are
    nonnegative and sum to exactly 1, decided on its rational DomainMatrix without building
    sympy numbers; False when that cannot be shown here (the caller's loop then finds the
    entry to name)."""
    from sympy import QQ, ZZ

    try:
        dm = mat.to_DM()
    except Exception:  # noqa: BLE001 - any trouble: the general loop decides
        return False
    if dm.domain not in (QQ, ZZ):
        return False
    sdm = dm.convert_to(QQ).to_sdm()
    zero, one = QQ.zero, QQ.one
    if ndim == 1:  # one row: every entry
        rows = [[v for row in sdm.values() for v in row.values()]]
    else:
        if len(sdm) != dm.shape[0]:
            return False  # an all-zero row
        rows = [list(row.values()) for row in sdm.values()]
    for row in rows:
        total = zero
        for v in row:
            if v < zero:
                return False
            total += v
        if total != one:
            return False
    return True


def format_entry(x: Any) -> Any:
    """A JSON value for an exact sympy number (int or "p/q" string) or a float."""
    if isinstance(x, sympy.Basic):
        if x.is_Integer:
            return int(x)
        return str(x)
    return float(x)


def wrap_value_error(label: str, fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except ModelFileError:
        raise
    except ValueError as exc:
        raise ModelFileError(f"{label}: {exc}") from None


def parse_parameters(data: dict, label: str) -> dict:
    """Read the optional ``parameters`` field of a parametric model::

        "parameters": {"a": {"min": 0, "max": 1, "value": "1/3"}}

    Each parameter becomes a real sympy Symbol usable in string entries ("1-a"); the
    model's floats and ``exact`` entries are taken at ``value``, and ``symbolic`` keeps
    the expressions for the analysis (degeneracy loci).
    """
    raw = data.get("parameters")
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not raw:
        raise ModelFileError(f"{label}: field 'parameters' must be an object mapping names to {{min, max, value}}")
    out = {}
    for name, spec in raw.items():
        where = f"{label}: field 'parameters'[{name!r}]"
        if not name.isidentifier():
            raise ModelFileError(f"{where}: a parameter name must be an identifier")
        if not isinstance(spec, dict) or "value" not in spec:
            raise ModelFileError(f"{where}: needs at least a 'value' (and optionally 'min', 'max')")
        vals = {}
        for key in ("min", "max", "value"):
            if key in spec:
                f, ex = _parse_entry(spec[key], f"{where}['{key}']", None)
                if ex is None:
                    raise ModelFileError(f"{where}['{key}']: must be exact (an integer or a string like \"1/3\")")
                vals[key] = ex
        lo, hi = vals.get("min", -sympy.oo), vals.get("max", sympy.oo)
        if not lo <= vals["value"] <= hi:
            raise ModelFileError(f"{where}: value {vals['value']} is outside [{lo}, {hi}]")
        out[name] = {"symbol": sympy.Symbol(name, real=True), "min": lo, "max": hi, "value": vals["value"]}
    return out


def require_exact_entries(label: str, exact: dict) -> None:
    """A model that declares ``parameters`` needs every entry exact: ``exact`` maps each
    field to its exact matrix, or None when the field holds a binary float (JSON ``0.5``).

    Raises:
        ModelFileError: naming the first such field.
    """
    for field, ex in exact.items():
        if ex is None:
            raise ModelFileError(
                f"{label}: field {field!r} holds a binary float (a JSON number such as 0.5); a model that declares "
                "'parameters' needs every entry exact: write it as a string such as \"1/2\""
            )


def exact_at_parameters(label: str, symbolic: dict, params: dict, vectors=()) -> dict:
    """The exact matrices of a parametric model at its declared values.

    ``symbolic`` maps fields to sympy matrices of expressions in the parameters (one row
    per distribution, except the fields named in ``vectors``, whose entries form one
    distribution). Every row must sum to 1 identically (for every parameter value, checked
    by ``sympy.cancel``), and every entry must be a rational number at the values (no
    division by zero there). Used by the HMM and the memory-HMM loaders alike.

    Raises:
        ModelFileError: naming the file, the field, and the row or entry.
    """
    for k, M in symbolic.items():
        vector = k in vectors
        for i in range(1 if vector else M.rows):
            row = list(M) if vector else list(M.row(i))
            if sympy.cancel(sum(row) - 1) != 0:
                where = "" if vector else f" row {i}"
                raise ModelFileError(f"{label}: field {k!r}{where} sums to {sympy.cancel(sum(row))}, not 1 for every parameter value")
    at = {p["symbol"]: p["value"] for p in params.values()}
    exact = {k: M.subs(at) for k, M in symbolic.items()}
    for k, M in exact.items():
        for idx, e in enumerate(M):
            if not e.is_Rational:
                i, j = divmod(idx, M.cols)
                where = f"[{idx}]" if k in vectors else f"[{i}][{j}]"
                values = ", ".join(f"{n} = {p['value']}" for n, p in params.items())
                raise ModelFileError(
                    f"{label}: field {k!r}{where} = {symbolic[k][idx]} is undefined at the parameter values ({values})"
                )
    return exact


