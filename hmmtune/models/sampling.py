"""Vectorised inverse-CDF sampling shared by :meth:`hmmtune.HMM.sample` and
:meth:`hmmtune.MemoryHMM.sample`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..common import torch

if TYPE_CHECKING:  # annotations only: torch is imported on first use (common.torch)
    from torch import Tensor

__all__ = ["cumulative", "sample_categorical"]


def cumulative(p: Tensor) -> Tensor:
    """Normalised cumulative sums of the rows of ``p`` (..., k) in float64, with the last
    entry exactly 1 (so a uniform ``u < 1`` never runs past the last category)."""
    c = torch.cumsum(p.to(torch.float64), -1)
    c = c / c[..., -1:]
    c[..., -1] = 1.0
    return c


def sample_categorical(cum: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling: ``cum`` (..., k) from :func:`cumulative`, ``u`` (...) uniforms
    in [0, 1); returns (...) category indices."""
    return torch.searchsorted(cum, u.unsqueeze(-1), right=True).squeeze(-1)
