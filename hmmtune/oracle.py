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
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .models import inference
from .models._checks import as_tokens
from .models.hmm import HMM, _chunked
from .models.memory import MemoryHMM

__all__ = ["OracleMLM", "MaskMessages", "MemoryMaskMessages"]


class MaskMessages(NamedTuple):
    """Backward messages of downstream inputs to the mask, computed once and reused.

    Attributes:
        backward: (B, m) normalised ``beta_0``, proportional to ``P(x_1..x_T | H_0 = h)``.
    """

    backward: Tensor


class MemoryMaskMessages(NamedTuple):
    """Backward messages of downstream inputs to the mask of a memory model.

    Attributes:
        backward: (B, C, K) normalised, proportional to
            ``P(x_1..x_T | Z_0 = z, M = c)`` for each memory configuration c.
        log_scale: (B, C) with
            ``P(x_1..x_T | Z_0 = z, M = c) = exp(log_scale[b, c]) * backward[b, c, z]``.
    """

    backward: Tensor
    log_scale: Tensor


def _log_positive(x: Tensor) -> Tensor:
    """``log x`` with ``-inf`` where ``x == 0`` and finite gradients everywhere."""
    pos = x > 0
    return torch.where(pos, torch.where(pos, x, torch.ones_like(x)).log(), torch.full_like(x, -math.inf))


class OracleMLM:
    """The perfect pretrained masked LM of an HMM or a memory-augmented HMM.

    Args:
        model: an :class:`hmmtune.HMM` or a :class:`hmmtune.MemoryHMM`.
        max_elements: memory models only: the size limit of exact inference (see
            :meth:`hmmtune.MemoryHMM.infer`; default
            :data:`hmmtune.models.memory.MAX_MEMORY_ELEMENTS`).
    """

    def __init__(self, model: HMM | MemoryHMM, *, max_elements: int | None = None):
        if not isinstance(model, (HMM, MemoryHMM)):
            raise TypeError(f"OracleMLM needs an hmmtune.HMM or hmmtune.MemoryHMM, got {type(model).__name__}")
        if max_elements is not None:
            from .models import arguments

            max_elements = arguments.integer("max_elements", max_elements, 1)
        self.model = model
        self.max_elements = max_elements
        self._memory = isinstance(model, MemoryHMM)

    def __repr__(self) -> str:
        return f"OracleMLM({self.model!r})"

    # ------------------------------------------------------------ helpers
    def encode(self, x: Any, chunk_size: int | None = None) -> MaskMessages:
        """Backward messages ``beta_0`` of downstream inputs ``x`` (B, T) to the mask.

        They do not depend on the prompt: pass the result instead of ``x`` to
        :meth:`mask_posterior` / :meth:`mask_prediction` to evaluate many prompts on
        the same inputs without another backward pass.
        """
        if self._memory:
            return self._memory_encode(x, chunk_size)
        if isinstance(x, MaskMessages):
            return x
        hmm = self.model
        tokens, _ = as_tokens(x, hmm.num_tokens, device=hmm.device)
        fn = lambda tok: inference.hmm_start_backward(hmm.transition, hmm.likelihoods(tok))
        return MaskMessages(_chunked(fn, tokens, tokens.shape[1] * hmm.num_states, chunk_size))

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
        if self._memory:
            return self._memory_prompt_prior(prompt)
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

        For a memory model: ``P(Z_0 | x_1..x_T)``, shape (B, K) (the prompt is
        (k, V * S)); see :meth:`mask_emission_posterior` for the posterior over W's columns.
        """
        if self._memory:
            return self._memory_mask_joint(x, prompt, chunk_size).sum(-2)
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

        Differentiable with respect to ``prompt``. For a memory model,
        ``G_0(x) = W P((M_{J_0}, S_0) | x_1..x_T)`` (docs/theory.md, "Memory-augmented HMMs").
        """
        if self._memory:
            return self.mask_emission_posterior(x, prompt, chunk_size) @ self.model.emission
        return self.mask_posterior(x, prompt, chunk_size) @ self.model.emission

    def mask_emission_posterior(self, x: Any, prompt: Tensor | None = None, chunk_size: int | None = None) -> Tensor:
        """Posterior over the rows of ``emission`` (columns of W) that emit the mask's token.

        For an HMM this is :meth:`mask_posterior` (B, m). For a memory model it is
        ``P((M_{J_0}, S_0) = (v, s) | x_1..x_T)``, shape (B, V * S), column ``v * S + s``.
        """
        if not self._memory:
            return self.mask_posterior(x, prompt, chunk_size)
        model = self.model
        joint = self._memory_mask_joint(x, prompt, chunk_size)  # (B, C, K)
        B = joint.shape[0]
        read = model._read_index().expand(B, -1, -1).reshape(B, model.num_flat_states)
        out = torch.zeros(B, model.num_values * model.num_local_states, dtype=joint.dtype, device=joint.device)
        return out.scatter_add(1, read, joint.reshape(B, model.num_flat_states))

    def token_posteriors(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """``P(H_t | x_{-t})`` at every position of a downstream input, shape (B, T, m).

        The mask at position 0 stays unobserved, so the chain over ``x_1..x_T`` starts
        from ``P(H_1) = initial @ transition`` (docs/theory.md, "The perfect masked LM").

        For a memory model: ``P(Z_t | x_{-t})``, shape (B, T, K).
        """
        if self._memory:
            return self._memory_infer(x, "masked_posterior", chunk_size)
        hmm = self.model
        tokens, single = as_tokens(x, hmm.num_tokens, device=hmm.device)
        start = hmm.initial @ hmm.transition
        fn = lambda tok: inference.hmm_masked_posterior(start, hmm.transition, hmm.likelihoods(tok))
        out = _chunked(fn, tokens, tokens.shape[1] * hmm.num_states, chunk_size)
        return out[0] if single else out

    def token_predictions(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """``G_t(x) = P(X_t | x_{-t})`` at every position of a downstream input, (B, T, n).

        For a memory model ``G_t(x) = W P((M_{J_t}, S_t) | x_{-t})`` (docs/theory.md, "Memory-augmented HMMs").
        """
        if self._memory:
            return self.token_emission_posteriors(x, chunk_size) @ self.model.emission
        return self.token_posteriors(x, chunk_size) @ self.model.emission

    def token_emission_posteriors(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """Leave-one-out posterior over the rows of ``emission`` at every position.

        For an HMM this is :meth:`token_posteriors`. For a memory model it is
        ``P((M_{J_t}, S_t) | x_{-t})``, shape (B, T, V * S), for a downstream input (the
        mask at position 0 unobserved).
        """
        if not self._memory:
            return self.token_posteriors(x, chunk_size)
        return self._memory_infer(x, "masked_emission_posterior", chunk_size)

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
            TypeError: the model is not a :class:`hmmtune.MemoryHMM`.
        """
        if not self._memory:
            raise TypeError("memory_posterior needs an OracleMLM of a hmmtune.MemoryHMM")
        N = self.model.num_cells
        if cell is not None and (not isinstance(cell, int) or isinstance(cell, bool) or not 0 <= cell < N):
            raise ValueError(f"cell must be an integer in [0, {N}), got {cell!r}")
        post = self._memory_infer(x, "memory", chunk_size)
        return post if cell is None else post[..., cell, :]

    def _memory_infer(self, x: Any, output: str, chunk_size: int | None) -> Tensor:
        res = self.model.infer(x, (output,), after_mask=True, chunk_size=chunk_size, max_elements=self.max_elements)
        return getattr(res, output)

    def _memory_encode(self, x: Any, chunk_size: int | None) -> MemoryMaskMessages:
        if isinstance(x, MemoryMaskMessages):
            return x
        if isinstance(x, MaskMessages):
            raise TypeError("these MaskMessages belong to an HMM oracle; encode the inputs with this oracle")
        res = self.model.infer(
            x, ("start_backward", "start_log_scale"), chunk_size=chunk_size, max_elements=self.max_elements
        )
        if res.start_backward.dim() == 2:
            return MemoryMaskMessages(res.start_backward[None], res.start_log_scale[None])
        return MemoryMaskMessages(res.start_backward, res.start_log_scale)

    def _memory_prompt_prior(self, prompt: Any) -> Tensor:
        model = self.model
        R = model.num_values * model.num_local_states
        u = prompt if isinstance(prompt, Tensor) else torch.as_tensor(prompt, dtype=model.dtype)
        if u.dim() == 1:
            u = u[None, :]
        if u.dim() != 2 or u.shape[1] != R or u.shape[0] < 1:
            raise ValueError(
                f"prompt must have shape (k, V * S) with k >= 1 and V * S = {R} (rows over the columns of W), "
                f"got {tuple(u.shape)}"
            )
        d = u.detach()
        if not bool(torch.isfinite(d).all()):
            j, h = torch.nonzero(~torch.isfinite(d))[0].tolist()
            raise ValueError(f"prompt[{j}, {h}] is not finite ({d[j, h].item()})")
        if bool((d < 0).any()):
            j, h = torch.nonzero(d < 0)[0].tolist()
            raise ValueError(f"prompt[{j}, {h}] = {d[j, h].item()!r} is negative; prompt rows are likelihoods")
        u = u.to(dtype=model.dtype, device=model.device)
        U = u[:, model._read_index()]  # (k, C, K)
        a = model._log_config_prior().exp()[:, None] * model.initial[None, :] * U[0]
        a = a / self._positive_total(a, 0)
        for j in range(1, U.shape[0]):
            a = (a @ model.transition) * U[j]
            a = a / self._positive_total(a, j)
        return a @ model.transition

    def _memory_mask_joint(self, x: Any, prompt: Any, chunk_size: int | None) -> Tensor:
        """``P(M = c, Z_0 = z | x_1..x_T)`` (or with a prompt), shape (B, C, K)."""
        model = self.model
        msg = self._memory_encode(x, chunk_size)
        if prompt is None:
            prior = model._log_config_prior().exp()[:, None] * model.initial[None, :]
        else:
            prior = self._memory_prompt_prior(prompt)
        pb = prior * msg.backward  # (B, C, K)
        s = pb.sum(-1)  # (B, C)
        lw = msg.log_scale + _log_positive(s)
        bad = ~torch.isfinite(lw.detach()).any(-1)
        if bool(bad.any()):
            b = int(torch.nonzero(bad)[0, 0])
            what = "after this prompt" if prompt is not None else "after the mask"
            raise inference.ZeroProbabilityError(
                f"input {b} has probability zero {what}: no memory and state the mask can take generates it", b
            )
        wc = torch.softmax(lw, -1)  # P(M = c | x)
        return pb / torch.where(s > 0, s, torch.ones_like(s))[..., None] * wc[..., None]
