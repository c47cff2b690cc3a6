"""The perfect pretrained masked language model (THEORY.md sections 2 and 5).

Pretraining is idealised as learning the generative model exactly, so the masked LM
outputs true conditionals. A downstream input ``x = (x_1..x_T)`` is fed as
``[MASK] x_1 .. x_T``; the mask sits at position 0, whose hidden state is
``H_0 ~ initial``. With a soft prompt of k tokens the input is
``z_1..z_k [MASK] x_1..x_T`` and the chain starts at ``H_{-k} ~ initial``.

Shapes: ``B`` inputs, ``T`` tokens per input, ``m`` states, ``n`` tokens, ``k`` prompt
tokens. Arrays are stored as in :class:`hmmtune.HMM` (``emission`` is (m, n)); the
paper's ``W`` is ``emission.T``, so ``G = W p`` is ``p @ emission`` here.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor

from .models import inference
from .models._checks import as_tokens
from .models.hmm import HMM, _chunked

__all__ = ["OracleMLM", "MaskMessages"]


class MaskMessages(NamedTuple):
    """Backward messages of downstream inputs to the mask, computed once and reused.

    Attributes:
        backward: (B, m) normalised ``beta_0``, proportional to ``P(x_1..x_T | H_0 = h)``.
    """

    backward: Tensor


class OracleMLM:
    """The perfect pretrained masked LM of an HMM.

    Args:
        model: an :class:`hmmtune.HMM`.
    """

    def __init__(self, model: HMM):
        if not isinstance(model, HMM):
            raise TypeError(f"OracleMLM needs an hmmtune.HMM, got {type(model).__name__}")
        self.model = model

    def __repr__(self) -> str:
        return f"OracleMLM({self.model!r})"

    # ------------------------------------------------------------ helpers
    def encode(self, x: Any, chunk_size: int | None = None) -> MaskMessages:
        """Backward messages ``beta_0`` of downstream inputs ``x`` (B, T) to the mask.

        They do not depend on the prompt: pass the result instead of ``x`` to
        :meth:`mask_posterior` / :meth:`mask_prediction` to evaluate many prompts on
        the same inputs without another backward pass.
        """
        if isinstance(x, MaskMessages):
            return x
        hmm = self.model
        tokens, _ = as_tokens(x, hmm.num_tokens, device=hmm.device)
        fn = lambda tok: inference.hmm_start_backward(hmm.transition, hmm.likelihoods(tok))
        return MaskMessages(_chunked(fn, tokens, tokens.shape[1] * hmm.num_states, chunk_size))

    def prompt_prior(self, prompt: Tensor) -> Tensor:
        """Prior of the mask state after a soft prompt, ``r(u)`` (THEORY.md 5), normalised.

        Args:
            prompt: (k, m) nonnegative likelihood rows ``u_1..u_k`` of the soft tokens
                over the states. Differentiable.

        Returns:
            (m,) the law of ``H_0`` given the prompt tokens.
        """
        hmm = self.model
        u = self._check_prompt(prompt)
        a = hmm.initial * u[0]
        a = a / self._positive_total(a, 0)
        for j in range(1, u.shape[0]):
            a = (a @ hmm.transition) * u[j]
            a = a / self._positive_total(a, j)
        return a @ hmm.transition

    def _check_prompt(self, prompt: Any) -> Tensor:
        hmm = self.model
        u = prompt if isinstance(prompt, Tensor) else torch.as_tensor(prompt, dtype=hmm.dtype)
        if u.dim() == 1:
            u = u[None, :]
        if u.dim() != 2 or u.shape[1] != hmm.num_states or u.shape[0] < 1:
            raise ValueError(
                f"prompt must have shape (k, m) with k >= 1 and m = {hmm.num_states}, got {tuple(u.shape)}"
            )
        d = u.detach()
        if not bool(torch.isfinite(d).all()):
            j, h = torch.nonzero(~torch.isfinite(d))[0].tolist()
            raise ValueError(f"prompt[{j}, {h}] is not finite ({d[j, h].item()})")
        if bool((d < 0).any()):
            j, h = torch.nonzero(d < 0)[0].tolist()
            raise ValueError(f"prompt[{j}, {h}] = {d[j, h].item()!r} is negative; prompt rows are likelihoods")
        return u.to(dtype=hmm.dtype, device=hmm.device)

    @staticmethod
    def _positive_total(a: Tensor, j: int) -> Tensor:
        total = a.sum()
        if not bool(total.detach() > 0):
            raise ValueError(
                f"prompt row {j} gives zero probability to every reachable state: "
                "no hidden path is consistent with the prompt"
            )
        return total

    # ------------------------------------------------------------- outputs
    def mask_posterior(self, x: Any, prompt: Tensor | None = None, chunk_size: int | None = None) -> Tensor:
        """``P(H_0 | x_1..x_T)`` (or ``P_u(H_0 | z, x)`` with a prompt), shape (B, m).

        Args:
            x: (B, T) downstream tokens, or :class:`MaskMessages` from :meth:`encode`.
            prompt: optional (k, m) soft-token likelihood rows (differentiable).
        """
        hmm = self.model
        beta0 = self.encode(x, chunk_size).backward
        prior = hmm.initial if prompt is None else self.prompt_prior(prompt)
        w = prior * beta0
        total = w.sum(-1, keepdim=True)
        bad = ~(total.detach().squeeze(-1) > 0)
        if bool(bad.any()):
            b = int(torch.nonzero(bad)[0, 0])
            what = "after this prompt" if prompt is not None else "after the mask"
            raise inference.ZeroProbabilityError(
                f"input {b} has probability zero {what}: no state the mask can take generates it", b
            )
        return w / total

    def mask_prediction(self, x: Any, prompt: Tensor | None = None, chunk_size: int | None = None) -> Tensor:
        """The oracle's output at the mask, ``G_0(x) = W p_0(x)`` (or ``G_0^u``), shape (B, n).

        Differentiable with respect to ``prompt``.
        """
        return self.mask_posterior(x, prompt, chunk_size) @ self.model.emission

    def token_posteriors(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """``P(H_t | x_{-t})`` at every position of a downstream input, shape (B, T, m).

        The mask at position 0 stays unobserved, so the chain over ``x_1..x_T`` starts
        from ``P(H_1) = initial @ transition`` (THEORY.md 2).
        """
        hmm = self.model
        tokens, single = as_tokens(x, hmm.num_tokens, device=hmm.device)
        start = hmm.initial @ hmm.transition
        fn = lambda tok: inference.hmm_masked_posterior(start, hmm.transition, hmm.likelihoods(tok))
        out = _chunked(fn, tokens, tokens.shape[1] * hmm.num_states, chunk_size)
        return out[0] if single else out

    def token_predictions(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """``G_t(x) = P(X_t | x_{-t})`` at every position of a downstream input, (B, T, n)."""
        return self.token_posteriors(x, chunk_size) @ self.model.emission
