"""Checks of arguments at the public entry points, worded once for the library and the CLI.

Each function takes the argument's name as the caller knows it (``"max_prompt_length"`` in
Python, ``"--max-prompt-length"`` on the command line) and raises ``ValueError`` naming
it and the value, e.g. ``max_prompt_length must be an integer >= 1, got 0``
(docs: errors).
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np

from ..common import torch
from ._checks import as_tokens

__all__ = ["integer", "real", "seed", "class_labels", "real_tensor", "as_tokens", "SEED_MAX"]

SEED_MAX = 2**63 - 1


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def integer(name: str, value: Any, minimum: int = 1, maximum: int | None = None) -> int:
    """``value`` as an int in ``[minimum, maximum]``; bools, floats and text are refused."""
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if ok:
        ok = minimum <= int(value) and (maximum is None or int(value) <= maximum)
    if not ok:
        if maximum is not None:
            what = f"an integer in [{minimum}, {maximum}]"
        else:
            what = {1: "a positive integer", 0: "a nonnegative integer"}.get(minimum, f"an integer >= {minimum}")
        raise ValueError(f"{name} must be {what}, got {_show(value)}")
    return int(value)


def real(name: str, value: Any, minimum: float | None = None) -> float:
    """``value`` as a finite float, at least ``minimum`` when given."""
    ok = isinstance(value, (numbers.Real, np.floating, np.integer)) and not isinstance(value, (bool, np.bool_))
    if ok:
        ok = math.isfinite(float(value)) and (minimum is None or float(value) >= minimum)
    if not ok:
        bound = "a finite number" + (f" >= {minimum:g}" if minimum is not None else "")
        raise ValueError(f"{name} must be {bound}, got {_show(value)}")
    return float(value)


def seed(name: str, value: Any) -> int:
    """A seed: an integer in ``[0, 2^63 - 1]`` (what ``torch.Generator.manual_seed`` takes)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and 0 <= value <= SEED_MAX:
        return int(value)
    raise ValueError(f"{name} must be an integer in [0, 2^63 - 1], got {_show(value)}")


def real_tensor(name: str, value: Any) -> torch.Tensor:
    """``value`` as a float64 tensor of finite real numbers (integer or floating dtype)."""
    if isinstance(value, torch.Tensor):
        t = value.detach()
        kind = "c" if torch.is_complex(t) else "b" if t.dtype == torch.bool else "f"
    else:
        try:
            arr = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: cannot read as an array of numbers ({exc})") from None
        kind = arr.dtype.kind if arr.dtype.kind not in "iu" else "f"
        t = torch.from_numpy(arr.astype(np.float64)) if kind == "f" else None
    if kind != "f":
        what = {"c": "complex", "b": "boolean", "U": "text", "S": "bytes", "O": "mixed or ragged"}.get(kind, kind)
        raise ValueError(f"{name} must hold real numbers (floating or integer dtype), got {what} values")
    t = t.to(torch.float64)
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        idx = tuple(torch.nonzero(~finite)[0].tolist())
        raise ValueError(f"{name}[{', '.join(map(str, idx))}] is not finite ({t[idx].item()})")
    return t


def class_labels(name: str, labels: Any, num_classes: int | None = None) -> torch.Tensor:
    """Class labels as a LongTensor: integers (integer dtype, or floats holding whole
    numbers) in ``[0, num_classes)`` (``[0, inf)`` when ``num_classes`` is None)."""
    if isinstance(labels, torch.Tensor):
        y = labels.detach()
    else:
        try:
            arr = np.asarray(labels)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: cannot read as an array of class labels ({exc})") from None
        if arr.dtype.kind not in "iufb":
            raise ValueError(f"{name} must hold integer class labels, got {arr.dtype} values")
        y = torch.from_numpy(arr)
    if torch.is_complex(y) or y.dtype == torch.bool:
        raise ValueError(f"{name} must hold integer class labels, got dtype {y.dtype}")
    if torch.is_floating_point(y):
        bad = ~torch.isfinite(y) | (y != torch.round(y))
        if bool(bad.any()):
            i = tuple(torch.nonzero(bad)[0].tolist())
            raise ValueError(f"{name}[{', '.join(map(str, i))}] = {y[i].item()!r} is not an integer class label")
    y = y.to(torch.long) if y.numel() else y.to(torch.long)
    top = num_classes if num_classes is not None else None
    out = (y < 0) if top is None else (y < 0) | (y >= top)
    if bool(out.any()):
        i = tuple(torch.nonzero(out)[0].tolist())
        rng = "[0, num_classes)" if top is None else f"[0, {top})"
        raise ValueError(f"{name}[{', '.join(map(str, i))}] = {int(y[i])} is outside the classes {rng}")
    return y
