"""Validation helpers shared by the model classes (private)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..common import is_tensor, torch

if TYPE_CHECKING:  # annotations only: torch is imported on first use (common.torch)
    from torch import Tensor

ROW_SUM_RTOL = 1e-9


def as_float_array(name: str, value: Any) -> np.ndarray:
    """A float64 copy of nested lists or a numpy array of real numbers, naming ``name`` on
    error (the model owns its copy: the caller's array may change later)."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name}: cannot read as an array of numbers ({exc})") from None
    if raw.dtype.kind not in "fiu":
        what = {"c": "complex", "b": "boolean", "U": "text", "S": "bytes", "O": "mixed or ragged"}.get(raw.dtype.kind, str(raw.dtype))
        raise ValueError(f"{name}: cannot read as an array of real numbers (floating or integer dtype), got {what} values")
    return raw.astype(np.float64)


def as_float_tensor(name: str, value: Any, dtype: torch.dtype | None, device) -> Tensor:
    """Convert nested lists / numpy / torch to a floating tensor, naming ``name`` on error."""
    if is_tensor(value):
        t = value.detach()
        if torch.is_complex(t) or t.dtype == torch.bool:
            raise ValueError(f"{name} must hold real numbers (floating or integer dtype), got dtype {t.dtype}")
        if not torch.is_floating_point(t):
            t = t.to(torch.float64)
    else:
        t = torch.from_numpy(as_float_array(name, value))
    if dtype is None:
        dtype = t.dtype if t.dtype in (torch.float32, torch.float64) else torch.float64
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    # copy: the model owns its parameters (the caller's array may change later)
    return t.to(dtype=dtype, device=device, copy=True)


def is_single_precision(value: Any) -> bool:
    """True when ``value`` holds numbers of at most single precision (their rows cannot sum
    to 1 within 1e-9, even once widened): a float32 / float16 / bfloat16 tensor or a
    float32 / float16 numpy array."""
    if is_tensor(value):
        return value.dtype in (torch.float32, torch.float16, torch.bfloat16)
    return isinstance(value, np.ndarray) and value.dtype in (np.float32, np.float16)


def _index_str(idx: Sequence[int]) -> str:
    return "[" + ", ".join(str(int(i)) for i in idx) + "]"


def check_probabilities(name: str, values: Any, ndim: int, row_name: str = "row", single_input: bool = False) -> None:
    """Finite, nonnegative, last axis sums to 1 (relative tolerance 1e-9).

    ``values``: a float tensor or a float numpy array (checked in numpy, on the CPU).
    Numbers stored in float32, or that came in at single precision (``single_input``, see
    :func:`is_single_precision`), are checked at float32 resolution even when stored in
    float64.
    """
    if is_tensor(values):
        stored_single = values.dtype != torch.float64
        a = values.detach().to("cpu", torch.float64).numpy()
    else:
        a = np.asarray(values)
        stored_single = a.dtype != np.float64
        a = a.astype(np.float64, copy=False)
    if a.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {a.shape}")
    if a.size == 0 or a.shape[-1] == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    finite = np.isfinite(a)
    if not finite.all():
        idx = tuple(np.argwhere(~finite)[0])
        raise ValueError(f"{name}{_index_str(idx)} is not finite ({a[idx].item()})")
    neg = a < 0
    if neg.any():
        idx = tuple(np.argwhere(neg)[0])
        raise ValueError(f"{name}{_index_str(idx)} is negative ({a[idx].item()!r})")
    sums = a.sum(-1)
    # float32 storage cannot hold sums to 1e-9: widen to its own resolution.
    single = stored_single or single_input
    rtol = max(ROW_SUM_RTOL, 8 * float(np.finfo(np.float32).eps) * a.shape[-1]) if single else ROW_SUM_RTOL
    bad = np.abs(sums - 1) > rtol
    if bad.any():
        idx = tuple(np.argwhere(bad)[0]) if bad.ndim else ()
        where = f" {row_name} {_index_str(idx)[1:-1]}" if idx else ""
        raise ValueError(f"{name}{where} sums to {sums[idx].item()!r}, not 1 (relative tolerance {rtol:g})")


def as_tokens(tokens: Any, num_tokens: int, device=None, name: str = "tokens") -> tuple[Tensor, bool]:
    """Convert tokens to a LongTensor (B, T).

    Returns the tensor and whether the input was a single 1-D sequence.
    """
    single = False
    if is_tensor(tokens):
        t = tokens.detach()
        if torch.is_floating_point(t) or t.dtype == torch.bool or torch.is_complex(t):
            raise ValueError(f"{name} must be an integer tensor, got dtype {t.dtype}")
        t = t.to(torch.long)
    else:
        if isinstance(tokens, (list, tuple)) and tokens and (isinstance(tokens[0], (list, tuple, np.ndarray)) or is_tensor(tokens[0])):
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
