"""The small public protocol that :class:`hmmtune.OracleMLM` is written over.

Both :class:`hmmtune.HMM` and :class:`hmmtune.MemoryHMM` implement it, so the perfect
masked LM (docs/theory.md, "The perfect masked LM", "Prompts", "Memory-augmented HMMs")
is one class with no branch per model kind. A downstream input ``x_1..x_T`` follows a mask
whose hidden state ``s`` has shape ``mask_state_shape`` (``(m,)`` for an HMM; ``(C, K)``,
memory configuration and chain state, for a memory HMM); the chain's ``transition`` acts
on the last axis of that state; the mask's token is emitted from a row of ``emission``
(``R`` rows: ``m`` states, or the ``V * S`` columns of W of a memory HMM).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .inference import MaskMessages

if TYPE_CHECKING:  # annotations only: torch is imported on first use (common.torch)
    from torch import Tensor

__all__ = ["OracleModel"]


@runtime_checkable
class OracleModel(Protocol):
    """What the perfect masked LM needs from a generative model.

    Attributes:
        transition: (K, K) row-stochastic; acts on the last axis of a mask state.
        emission: (R, n): row r is the token law of emission row r.
        row_symbol: the name of R in messages (``"m"`` or ``"V * S"``).
        mask_state_shape: ``S``, the shape of the mask's hidden state.
    """

    transition: Tensor
    emission: Tensor
    row_symbol: str

    @property
    def mask_state_shape(self) -> tuple[int, ...]: ...

    @property
    def dtype(self): ...

    @property
    def device(self): ...

    def mask_prior(self) -> Tensor:
        """(*S) the law of the mask's state with no prompt."""

    def prompt_likelihoods(self, prompt: Tensor) -> Tensor:
        """(k, R) soft-token likelihood rows over emission rows -> (k, *S) over mask states."""

    def mask_messages(self, x: Any, *, chunk_size: int | None = None, max_elements: int | None = None) -> MaskMessages:
        """Backward messages of inputs (B, T) to the mask: ``backward`` (B, *S)."""

    def state_marginals(self, joint: Tensor) -> Tensor:
        """(B, *S) law of the mask's state -> (B, K) law of its chain state."""

    def emission_marginals(self, joint: Tensor) -> Tensor:
        """(B, *S) law of the mask's state -> (B, R) law of the emission row read."""

    def loo_posterior(self, x: Any, **kwargs) -> Tensor:
        """(B, T, K) leave-one-out chain posteriors; ``after_mask=True`` for a downstream input."""

    def loo_emission_posterior(self, x: Any, **kwargs) -> Tensor:
        """(B, T, R) leave-one-out posteriors over emission rows."""
