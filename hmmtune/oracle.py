"""The perfect pretrained masked language model (docs/theory.md, "The perfect masked LM", "Prompts").

Pretraining is idealised as learning the generative model exactly, so the masked LM
outputs true conditionals. A downstream input ``x = (x_1..x_T)`` is fed as
``[MASK] x_1 .. x_T``; the mask sits at position 0, whose hidden state is
``H_0 ~ initial``. With a soft prompt of k tokens the input is
``z_1..z_k [MASK] x_1..x_T`` and the chain starts at ``H_{-k} ~ initial``.

Shapes: ``B`` inputs, ``T`` tokens per input, ``m`` states, ``n`` tokens, ``k`` prompt
tokens. Arrays are stored as in :class:`hmmtune.HMM` (``emission`` is (m, n)); the
paper's ``W`` is ``emission.T``, so ``G = W p`` is ``p @ emission`` here.

The oracle also accepts a :class:`hmmtune.MemoryHMM` (docs/theory.md, "Memory-augmented HMMs"). Then the
hidden state at a position is ``(M, Z_t)``; "state" results are over the chain states
``Z_t`` (``K = N * S`` of them, index ``j * S + s``), "emission" results over the
columns ``(v, s)`` of W (``V * S`` of them, index ``v * S + s``), and
:meth:`OracleMLM.memory_posterior` gives the memory task's target
``P(M_j | x_1..x_T)``. Soft prompts are likelihood rows over the ``V * S`` columns of W.

The oracle is written once over the public protocol
:class:`hmmtune.models.protocol.OracleModel`, which both models implement: the law of
the mask's state (:meth:`~hmmtune.models.protocol.OracleModel.mask_prior`), how a prompt
row weighs it (``prompt_likelihoods``), the backward message of an input
(``mask_messages``) and the marginals of the mask's state.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

from .common import is_tensor, torch
from .models import arguments
from .models.inference import MaskMessages, ZeroProbabilityError
from .models.protocol import OracleModel

if TYPE_CHECKING:  # annotations only: torch is imported on first use (common.torch)
    from torch import Tensor

__all__ = ["OracleMLM", "MaskMessages"]


def _log_positive(x: Tensor) -> Tensor:
    """``log x`` with ``-inf`` where ``x == 0`` and finite gradients everywhere."""
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).log(), torch.full_like(x, -math.inf))


class OracleMLM:
    """The perfect pretrained masked LM of an HMM or a memory-augmented HMM.

    Args:
        model: an :class:`hmmtune.HMM` or a :class:`hmmtune.MemoryHMM` (any
            :class:`hmmtune.models.protocol.OracleModel`).
        max_elements: the size limit of one working tensor of inference: for a memory
            model the limit of exact inference (see :meth:`hmmtune.MemoryHMM.infer`;
            default :data:`hmmtune.models.memory.MAX_MEMORY_ELEMENTS`); for an HMM the
            budget of a chunk (default: ``hmmtune.models.settings`` ``chunk_elements``).
    """

    def __init__(self, model: OracleModel, *, max_elements: int | None = None):
        if not isinstance(model, OracleModel):
            raise TypeError(f"OracleMLM needs an hmmtune.HMM or hmmtune.MemoryHMM, got {type(model).__name__}")
        if max_elements is not None:
            max_elements = arguments.integer("max_elements", max_elements, 1)
        self.model = model
        self.max_elements = max_elements

    def __repr__(self) -> str:
        return f"OracleMLM({self.model!r})"

    # ------------------------------------------------------------ helpers
    def encode(self, x: Any, chunk_size: int | None = None) -> MaskMessages:
        """Backward messages of downstream inputs ``x`` (B, T) to the mask.

        They do not depend on the prompt: pass the result instead of ``x`` to
        :meth:`mask_posterior` / :meth:`mask_prediction` to evaluate many prompts on
        the same inputs without another backward pass. For an HMM ``backward`` is
        ``beta_0`` (B, m); for a memory model (B, C, K) with ``log_scale`` (B, C).
        """
        if isinstance(x, MaskMessages):
            if tuple(x.backward.shape[1:]) != tuple(self.model.mask_state_shape):
                raise TypeError(
                    f"these MaskMessages have mask states of shape {tuple(x.backward.shape[1:])}, this oracle's model "
                    f"{tuple(self.model.mask_state_shape)} (an HMM oracle's messages are (B, m), a memory HMM "
                    "oracle's (B, C, K)); encode the inputs with this oracle"
                )
            return x
        return self.model.mask_messages(x, chunk_size=chunk_size, max_elements=self.max_elements)

    def prompt_prior(self, prompt: Tensor) -> Tensor:
        """Prior of the mask state after a soft prompt, ``r(u)`` (docs/theory.md, "Prompts"), normalised.

        Args:
            prompt: (k, m) nonnegative likelihood rows ``u_1..u_k`` of the soft tokens
                over the states. Differentiable.

        Returns:
            (m,) the law of ``H_0`` given the prompt tokens.

        For a memory model ``prompt`` is (k, V * S), rows over the columns of W, and the
        result is (C, K): the joint law of the memory configuration and ``Z_0``.
        """
        model = self.model
        U = model.prompt_likelihoods(self._check_prompt(prompt))  # (k, *S)
        a = model.mask_prior() * U[0]
        a = a / self._positive_total(a, 0)
        for j in range(1, U.shape[0]):
            a = (a @ model.transition) * U[j]
            a = a / self._positive_total(a, j)
        return a @ model.transition

    def _check_prompt(self, prompt: Any) -> Tensor:
        model = self.model
        u = prompt if is_tensor(prompt) else torch.as_tensor(prompt, dtype=model.dtype)
        if u.dim() == 1:
            u = u[None, :]
        R, sym = model.emission.shape[0], model.row_symbol
        if u.dim() != 2 or u.shape[1] != R or u.shape[0] < 1:
            raise ValueError(
                f"prompt must have shape (k, {sym}) with k >= 1 and {sym} = {R} (rows over the rows of emission, "
                f"the columns of W), got {tuple(u.shape)}"
            )
        d = u.detach()
        if not bool(torch.isfinite(d).all()):
            j, h = torch.nonzero(~torch.isfinite(d))[0].tolist()
            raise ValueError(f"prompt[{j}, {h}] is not finite ({d[j, h].item()})")
        if bool((d < 0).any()):
            j, h = torch.nonzero(d < 0)[0].tolist()
            raise ValueError(f"prompt[{j}, {h}] = {d[j, h].item()!r} is negative; prompt rows are likelihoods")
        return u.to(dtype=model.dtype, device=model.device)

    @staticmethod
    def _positive_total(a: Tensor, j: int) -> Tensor:
        total = a.sum()
        if not bool(total.detach() > 0):
            raise ValueError(
                f"prompt row {j} gives zero probability to every reachable state: "
                "no hidden path is consistent with the prompt"
            )
        return total

    def mask_state_posterior(self, x: Any, prompt: Tensor | None = None, chunk_size: int | None = None) -> Tensor:
        """The law of the mask's whole hidden state given the input (and prompt), (B, *S):
        (B, m) for an HMM, ``P(M = c, Z_0 = z | x_1..x_T)`` (B, C, K) for a memory model.

        ``P(s | x) = P(s) P(x | s) / P(x)``, with the prior of the mask state ``P(s)``
        (or ``r(u)`` after a prompt) and the backward message of the input (:meth:`encode`).
        """
        model = self.model
        msg = self.encode(x, chunk_size)
        prior = model.mask_prior() if prompt is None else self.prompt_prior(prompt)
        pb = prior * msg.backward  # (B, *S)
        s = pb.sum(-1)  # (B, *S[:-1])
        lw = _log_positive(s) if msg.log_scale is None else msg.log_scale + _log_positive(s)
        flat = lw.reshape(lw.shape[0], math.prod(lw.shape[1:]))  # (B, configurations)
        bad = ~torch.isfinite(flat.detach()).any(-1)
        if bool(bad.any()):
            b = int(torch.nonzero(bad)[0, 0])
            what = "after this prompt" if prompt is not None else "after the mask"
            raise ZeroProbabilityError(f"input {b} has probability zero {what}: no state the mask can take generates it", b)
        weight = torch.softmax(flat, -1).view_as(lw)  # P(configuration | x); 1 for an HMM
        return pb / torch.where(s > 0, s, torch.ones_like(s))[..., None] * weight[..., None]

    # ------------------------------------------------------------- outputs
    def mask_posterior(self, x: Any, prompt: Tensor | None = None, chunk_size: int | None = None) -> Tensor:
        """``P(H_0 | x_1..x_T)`` (or ``P_u(H_0 | z, x)`` with a prompt), shape (B, m).

        Args:
            x: (B, T) downstream tokens, or :class:`MaskMessages` from :meth:`encode`.
            prompt: optional (k, m) soft-token likelihood rows (differentiable).

        For a memory model: ``P(Z_0 | x_1..x_T)``, shape (B, K) (the prompt is
        (k, V * S)); see :meth:`mask_emission_posterior` for the posterior over W's columns.
        """
        return self.model.state_marginals(self.mask_state_posterior(x, prompt, chunk_size))

    def mask_prediction(self, x: Any, prompt: Tensor | None = None, chunk_size: int | None = None) -> Tensor:
        """The oracle's output at the mask, ``G_0(x) = W p_0(x)`` (or ``G_0^u``), shape (B, n).

        Differentiable with respect to ``prompt``. For a memory model,
        ``G_0(x) = W P((M_{J_0}, S_0) | x_1..x_T)`` (docs/theory.md, "Memory-augmented HMMs").
        """
        return self.mask_emission_posterior(x, prompt, chunk_size) @ self.model.emission

    def mask_emission_posterior(self, x: Any, prompt: Tensor | None = None, chunk_size: int | None = None) -> Tensor:
        """Posterior over the rows of ``emission`` (columns of W) that emit the mask's token.

        For an HMM this is :meth:`mask_posterior` (B, m). For a memory model it is
        ``P((M_{J_0}, S_0) = (v, s) | x_1..x_T)``, shape (B, V * S), column ``v * S + s``.
        """
        return self.model.emission_marginals(self.mask_state_posterior(x, prompt, chunk_size))

    def token_posteriors(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """``P(H_t | x_{-t})`` at every position of a downstream input, shape (B, T, m).

        The mask at position 0 stays unobserved, so the chain over ``x_1..x_T`` starts
        from ``P(H_1) = initial @ transition`` (docs/theory.md, "The perfect masked LM").

        For a memory model: ``P(Z_t | x_{-t})``, shape (B, T, K).
        """
        return self.model.loo_posterior(x, after_mask=True, chunk_size=chunk_size, max_elements=self.max_elements)

    def token_predictions(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """``G_t(x) = P(X_t | x_{-t})`` at every position of a downstream input, (B, T, n).

        For a memory model ``G_t(x) = W P((M_{J_t}, S_t) | x_{-t})`` (docs/theory.md, "Memory-augmented HMMs").
        """
        return self.token_emission_posteriors(x, chunk_size) @ self.model.emission

    def token_emission_posteriors(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """Leave-one-out posterior over the rows of ``emission`` at every position.

        For an HMM this is :meth:`token_posteriors`. For a memory model it is
        ``P((M_{J_t}, S_t) | x_{-t})``, shape (B, T, V * S), for a downstream input (the
        mask at position 0 unobserved).
        """
        return self.model.loo_emission_posterior(x, after_mask=True, chunk_size=chunk_size, max_elements=self.max_elements)

    # ------------------------------------------------------- memory models
    def memory_posterior(self, x: Any, cell: int | None = None, chunk_size: int | None = None) -> Tensor:
        """The memory task's target ``P(M_{cell} | x_1..x_T)`` for a downstream input (docs/theory.md, "Memory-augmented HMMs").

        The input follows the mask at position 0, so the chain over ``x_1..x_T`` starts
        from ``initial @ transition``.

        Args:
            x: (B, T) downstream tokens.
            cell: the task's cell ``j*`` in ``[0, N)``; None for every cell.

        Returns:
            (B, V) for one cell, (B, N, V) for all.

        Raises:
            TypeError: the model has no memory (it is not a :class:`hmmtune.MemoryHMM`).
        """
        posterior = getattr(self.model, "memory_posterior", None)
        if posterior is None:
            raise TypeError("memory_posterior needs an OracleMLM of a hmmtune.MemoryHMM")
        N = self.model.num_cells
        if cell is not None and (not isinstance(cell, int) or isinstance(cell, bool) or not 0 <= cell < N):
            raise ValueError(f"cell must be an integer in [0, {N}), got {cell!r}")
        post = posterior(x, after_mask=True, chunk_size=chunk_size, max_elements=self.max_elements)
        return post if cell is None else post[..., cell, :]


def __getattr__(name: str):
    if name == "MemoryMaskMessages":
        warnings.warn(
            "hmmtune.oracle.MemoryMaskMessages is deprecated and will be removed in the next release; use "
            "hmmtune.oracle.MaskMessages (one type for both models)",
            DeprecationWarning,
            stacklevel=2,
        )
        return MaskMessages
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
