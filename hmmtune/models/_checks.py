"""Validation helpers shared by the model classes (private)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor

ROW_SUM_RTOL = 1e-9


def as_float_tensor(name: str, value: Any, dtype: torch.dtype | None, device) -> Tensor:
    """Convert nested lists / numpy / torch to a floating tensor, naming ``name`` on error."""
    if isinstance(value, Tensor):
        t = value.detach()
        if torch.is_complex(t) or t.dtype == torch.bool:
            raise ValueError(f"{name} must hold real numbers (floating or integer dtype), got dtype {t.dtype}")
        if not torch.is_floating_point(t):
            t = t.to(torch.float64)
    else:
        try:
            raw = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: cannot read as an array of numbers ({exc})") from None
        if raw.dtype.kind not in "fiu":
            what = {"c": "complex", "b": "boolean", "U": "text", "S": "bytes", "O": "mixed or ragged"}.get(raw.dtype.kind, str(raw.dtype))
            raise ValueError(f"{name}: cannot read as an array of real numbers (floating or integer dtype), got {what} values")
        t = torch.from_numpy(raw.astype(np.float64))
    if dtype is None:
        dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float64
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    # copy: the model owns its parameters (the caller's array may change later)
    return t.to(dtype=dtype, device=device, copy=True)


def input_resolution(value: Any) -> torch.dtype | None:
    """``torch.float32`` when ``value`` holds numbers of at most single precision
    (their rows cannot sum to 1 within 1e-9, even once widened), else None."""
    dt = getattr(value, "dtype", None)
    if dt in (torch.float32, torch.float16, torch.bfloat16):
        return torch.float32
    if isinstance(value, np.ndarray) and dt in (np.float32, np.float16):
        return torch.float32
    return None


def _index_str(idx: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def check_probabilities(
    name: str, t: Tensor, ndim: int, row_name: str = "row", resolution: torch.dtype | None = None
) -> None:
    """Finite, nonnegative, last axis sums to 1 (relative tolerance 1e-9).

    ``resolution``: the precision the numbers came in at (default ``t.dtype``); float32
    inputs are checked at float32 resolution even when stored in float64.
    """
    if t.dim() != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(t.shape)}")
    if t.numel() == 0 or t.shape[-1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    finite = torch.isfinite(t)
    if not bool(finite.all()):
        idx = torch.nonzero(~finite)[0].tolist()
        raise ValueError(f"{name}{_index_str(idx)} is not finite ({t[tuple(idx)].item()})")
    neg = t < 0
    if bool(neg.any()):
        idx = torch.nonzero(neg)[0].tolist()
        raise ValueError(f"{name}{_index_str(idx)} is negative ({t[tuple(idx)].item()!r})")
    sums = t.to(torch.float64).sum(-1)
    # float32 storage cannot hold sums to 1e-9: widen to its own resolution.
    res = t.dtype if resolution is None else resolution
    rtol = max(ROW_SUM_RTOL, 8 * torch.finfo(res).eps * t.shape[-1]) if res != torch.float64 else ROW_SUM_RTOL
    bad = (sums - 1).abs() > rtol
    if bool(bad.any()):
        idx = torch.nonzero(bad)[0].tolist() if bad.dim() else []
        where = f" {row_name} {_index_str(idx)[1:-1]}" if idx else ""
        value = sums[tuple(idx)].item() if idx else sums.item()
        raise ValueError(f"{name}{where} sums to {value!r}, not 1 (relative tolerance {rtol:g})")


def as_tokens(tokens: Any, num_tokens: int, device=None, name: str = "tokens") -> tuple[Tensor, bool]:
    """Convert tokens to a LongTensor (B, T).

    Returns the tensor and whether the input was a single 1-D sequence.
    """
    single = False
    if isinstance(tokens, Tensor):
        t = tokens.detach()
        if torch.is_floating_point(t) or t.dtype == torch.bool or torch.is_complex(t):
            raise ValueError(f"{name} must be an integer tensor, got dtype {t.dtype}")
        t = t.to(torch.long)
    else:
        if isinstance(tokens, (list, tuple)) and tokens and isinstance(tokens[0], (list, tuple, np.ndarray, Tensor)):
            lengths = [len(row) for row in tokens]
            if len(set(lengths)) > 1:
                first = lengths[0]
                r = next(i for i, n in enumerate(lengths) if n != first)
                raise ValueError(
                    f"{name}: sequences must have equal lengths; row {r} has {lengths[r]} tokens, row 0 has {first}"
                )
        arr = np.asarray(tokens)
        if arr.dtype == object:
            raise ValueError(f"{name}: cannot read as an integer array")
        if arr.size and not np.issubdtype(arr.dtype, np.integer):
            if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
                arr = arr.astype(np.int64)
            else:
                raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}")
        t = torch.as_tensor(arr.astype(np.int64) if arr.size else np.zeros(arr.shape, dtype=np.int64))
    if t.dim() == 1:
        single = True
        t = t[None, :]
    if t.dim() != 2:
        raise ValueError(f"{name} must have shape (B, T) or (T,), got {tuple(t.shape)}")
    if t.shape[1] == 0:
        raise ValueError(f"{name} has length 0: at least one token per sequence is needed")
    if t.numel():
        if t.device.type == "cpu":
            # numpy's single-threaded min / max: torch's threaded reductions leave its OpenMP
            # threads spinning, which halved the speed of the compiled kernels (BLAS threads)
            # that run next (docs/benchmarks.md, "What changed since the first compiled run")
            a = t.numpy()
            out_of_range = bool(a.min() < 0 or a.max() >= num_tokens)
        else:
            out_of_range = bool(((t < 0) | (t >= num_tokens)).any())
        if out_of_range:
            bad = (t < 0) | (t >= num_tokens)
            b, pos = torch.nonzero(bad)[0].tolist()
            raise ValueError(
                f"{name}[{b}, {pos}] = {int(t[b, pos])} is outside the vocabulary [0, {num_tokens})"
            )
    if device is not None:
        t = t.to(device)
    return t, single
