"""The vanilla hidden Markov model (docs/theory.md, "Conventions")."""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from . import inference, limits
from ._checks import as_float_tensor, as_tokens, check_probabilities, input_resolution

__all__ = ["HMM", "MAX_CHUNK_ELEMENTS"]

#: Default memory knob: inference processes sequences in chunks so that one
#: (chunk, T, m) intermediate tensor holds at most this many entries (four such
#: tensors live at once). Pass ``chunk_size=`` to any inference method to override.
MAX_CHUNK_ELEMENTS = 2**24


def _chunked(fn: Callable[[Tensor], Tensor], tokens: Tensor, per_seq: int, chunk_size: int | None) -> Tensor:
    B = tokens.shape[0]
    if chunk_size is None:
        chunk_size = max(1, MAX_CHUNK_ELEMENTS // max(1, per_seq))
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size}")
    if B <= chunk_size:
        return fn(tokens)
    outs = []
    for start in range(0, B, chunk_size):
        try:
            outs.append(fn(tokens[start : start + chunk_size]))
        except inference.ZeroProbabilityError as exc:
            idx = start + exc.index
            msg = str(exc).replace(f"sequence {exc.index} ", f"sequence {idx} ", 1)
            raise inference.ZeroProbabilityError(msg, idx, exc.position) from None
    return torch.cat(outs, 0)


def _sample_categorical(cum: Tensor, u: Tensor) -> Tensor:
    """Inverse-CDF sampling: ``cum`` (..., k) normalised cumulative sums, ``u`` (...)."""
    return torch.searchsorted(cum, u.unsqueeze(-1), right=True).squeeze(-1)


def _cumulative(p: Tensor) -> Tensor:
    c = torch.cumsum(p.to(torch.float64), -1)
    c = c / c[..., -1:]
    c[..., -1] = 1.0  # exact: u < 1 never runs past the last state
    return c


class HMM:
    """A discrete hidden Markov model with ``m`` states and ``n`` tokens.

    Args:
        initial: (m,) law of the state at the FIRST position (Rabiner / hmmlearn
            convention; Pyro's ``DiscreteHMM`` differs, see :meth:`to_pyro_discrete_hmm`).
        transition: (m, m) row-stochastic, ``transition[i, j] = P(H_{t+1}=j | H_t=i)``.
        emission: (m, n) row-stochastic, ``emission[h, x] = P(X_t=x | H_t=h)``. The
            paper's ``W`` is ``emission.T``.
        dtype: ``torch.float64`` (default, unless tensors of float32 are passed) or
            ``torch.float32``.
        device: any torch device.
        exact: optional dict with sympy matrices ``initial``, ``transition``, ``emission``
            holding exact rational entries (set by :meth:`from_json`); used by the analysis.
        name: free text carried through JSON.
        description: free text carried through JSON.

    Accepts nested lists, numpy arrays or torch tensors.

    Raises:
        ValueError: naming the array, row and value when an entry is non-finite or
            negative, a row does not sum to 1 (relative tolerance 1e-9), or the shapes
            disagree.
    """

    def __init__(
        self,
        initial: Any,
        transition: Any,
        emission: Any,
        *,
        dtype: torch.dtype | None = None,
        device: Any = None,
        exact: dict | None = None,
        name: str | None = None,
        description: str | None = None,
    ):
        if dtype is None:
            types = {x.dtype for x in (initial, transition, emission) if isinstance(x, Tensor)}
            dtype = torch.float32 if types == {torch.float32} else torch.float64
        self.initial = as_float_tensor("initial", initial, dtype, device)
        self.transition = as_float_tensor("transition", transition, dtype, device)
        self.emission = as_float_tensor("emission", emission, dtype, device)
        check_probabilities("initial", self.initial, 1, resolution=input_resolution(initial))
        check_probabilities("transition", self.transition, 2, resolution=input_resolution(transition))
        check_probabilities("emission", self.emission, 2, resolution=input_resolution(emission))
        m = self.initial.shape[0]
        if self.transition.shape != (m, m):
            raise ValueError(
                f"transition must have shape (m, m) = ({m}, {m}) to match initial, got {tuple(self.transition.shape)}"
            )
        if self.emission.shape[0] != m:
            raise ValueError(
                f"emission must have shape (m, n) with m = {m} rows to match initial, got {tuple(self.emission.shape)}"
            )
        self.exact = exact
        self.name = name
        self.description = description
        #: For parametric models (see :func:`hmmtune.models.io.parse_parameters`): the
        #: declared parameters and the symbolic matrices; ``exact`` is taken at their values.
        self.parameters: dict | None = None
        self.symbolic: dict | None = None

    # ------------------------------------------------------------------ basics
    @property
    def num_states(self) -> int:
        """Number of hidden states ``m``."""
        return self.initial.shape[0]

    @property
    def num_tokens(self) -> int:
        """Vocabulary size ``n``."""
        return self.emission.shape[1]

    @property
    def dtype(self) -> torch.dtype:
        return self.initial.dtype

    @property
    def device(self) -> torch.device:
        return self.initial.device

    def to(self, dtype: torch.dtype | None = None, device: Any = None) -> "HMM":
        """A copy with another dtype and/or device (exact entries are kept)."""
        return HMM(
            self.initial,
            self.transition,
            self.emission,
            dtype=dtype or self.dtype,
            device=device or self.device,
            exact=self.exact,
            name=self.name,
            description=self.description,
        )

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"HMM{label}(num_states={self.num_states}, num_tokens={self.num_tokens}, dtype={self.dtype})"

    def _tokens(self, x: Any) -> tuple[Tensor, bool]:
        return as_tokens(x, self.num_tokens, device=self.device)

    # -------------------------------------------------------------- Pyro model
    def model(self, tokens: Tensor | None = None, num_sequences: int = 1, length: int = 1) -> Tensor:
        """The generative process as a Pyro model with enumerated hidden states.

        Every hidden state ``h_t`` is a discrete latent site with
        ``infer={"enumerate": "parallel"}`` inside ``pyro.markov``; sequences live in
        ``pyro.plate("sequences", B, dim=-1)``. Observed sites are ``x_t``.

        Args:
            tokens: (B, T) observed tokens, or None to sample ``num_sequences`` sequences
                of ``length`` tokens.

        Returns:
            (B, T) LongTensor of tokens (the observed ones, or the sampled ones).
        """
        import pyro
        import pyro.distributions as dist
        from pyro.ops.indexing import Vindex

        if tokens is not None:
            tokens, _ = self._tokens(tokens)
            num_sequences, length = tokens.shape
        out = []
        with pyro.plate("sequences", num_sequences, dim=-1):
            h = None
            for t in pyro.markov(range(length)):
                probs = self.initial if h is None else Vindex(self.transition)[h, :]
                h = pyro.sample(f"h_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
                x = pyro.sample(
                    f"x_{t}",
                    dist.Categorical(Vindex(self.emission)[h, :]),
                    obs=None if tokens is None else tokens[:, t],
                )
                out.append(x)
        return tokens if tokens is not None else torch.stack(out, -1)

    # ----------------------------------------------------------------- sampling
    def sample(self, num_sequences: int, length: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
        """Draw sequences from the model, vectorised over sequences.

        Args:
            num_sequences: B >= 1.
            length: T >= 1.
            seed: integer seed for a private ``torch.Generator`` (None: fresh entropy).

        Returns:
            ``(tokens, states)``, two LongTensors of shape (B, T) on the CPU.
        """
        for label, v in (("num_sequences", num_sequences), ("length", length)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{label} must be a positive integer, got {v!r}")
        # states, two uniforms, tokens (8 bytes each) and the gathered emission rows (8 n)
        limits.check_memory(
            f"sampling {num_sequences} sequences of length {length}",
            float(num_sequences) * length * (32 + 8 * self.num_tokens),
        )
        gen = torch.Generator()
        gen.manual_seed(seed if seed is not None else int(torch.seed()))
        cum_init = _cumulative(self.initial.cpu())
        cum_trans = _cumulative(self.transition.cpu())
        cum_emit = _cumulative(self.emission.cpu())
        states = torch.empty(num_sequences, length, dtype=torch.long)
        u = torch.rand(length, num_sequences, generator=gen, dtype=torch.float64)
        h = _sample_categorical(cum_init.expand(num_sequences, -1).contiguous(), u[0])
        states[:, 0] = h
        for t in range(1, length):
            h = _sample_categorical(cum_trans[h], u[t])
            states[:, t] = h
        v = torch.rand(num_sequences, length, generator=gen, dtype=torch.float64)
        tokens = _sample_categorical(cum_emit[states], v)
        return tokens, states

    # ---------------------------------------------------------------- inference
    def likelihoods(self, tokens: Tensor) -> Tensor:
        """(B, T, m) emission likelihoods of validated tokens."""
        return inference.emission_likelihoods(self.emission, tokens)

    def _lazy_likelihoods(self, tokens: Tensor) -> inference.TokenLikelihoods:
        """The same likelihoods, gathered one position at a time by the fused passes."""
        return inference.TokenLikelihoods(self.emission, tokens)

    def _run(self, x: Any, fn: Callable[[Tensor], Tensor], per_seq: int, chunk_size: int | None) -> Tensor:
        tokens, single = self._tokens(x)
        out = _chunked(fn, tokens, tokens.shape[1] * per_seq, chunk_size)
        return out[0] if single else out

    def log_prob(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """``log P(x)`` with the first token's state drawn from ``initial``.

        Args:
            x: (B, T) tokens (LongTensor, numpy array, or list of equal-length lists);
                a 1-D sequence gives a 0-d result.
            chunk_size: sequences per chunk (default: see :data:`MAX_CHUNK_ELEMENTS`).

        Returns:
            (B,) tensor.
        """
        f = lambda tok: inference.hmm_log_prob(self.initial, self.transition, self._lazy_likelihoods(tok))
        return self._run(x, f, self.num_states, chunk_size)

    def posterior(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """Smoothed posteriors ``P(H_t | x)``, shape (B, T, m)."""
        f = lambda tok: inference.hmm_posterior(self.initial, self.transition, self._lazy_likelihoods(tok))
        return self._run(x, f, self.num_states, chunk_size)

    def masked_posterior(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """Leave-one-out posteriors ``P(H_t | x with position t left out)``, (B, T, m).

        ``x`` is a plain sequence: its first token's state is drawn from ``initial``
        (docs/theory.md, "The perfect masked LM"). For downstream inputs after a mask use
        :meth:`hmmtune.OracleMLM.token_predictions`.
        """
        f = lambda tok: inference.hmm_masked_posterior(self.initial, self.transition, self._lazy_likelihoods(tok))
        return self._run(x, f, self.num_states, chunk_size)

    # ----------------------------------------------------------------- adapters
    def to_json(self, path=None, **kwargs):
        """Serialise (see :mod:`hmmtune.models.io`); returns the JSON text."""
        from .io import hmm_to_json

        return hmm_to_json(self, path, **kwargs)

    @classmethod
    def from_json(cls, source, **kwargs) -> "HMM":
        """Load from a JSON file path, JSON text, or a dict (see :mod:`hmmtune.models.io`)."""
        from .io import hmm_from_json

        return hmm_from_json(source, **kwargs)

    @classmethod
    def from_hmmlearn(cls, model, **kwargs) -> "HMM":
        """From a fitted ``hmmlearn.hmm.CategoricalHMM`` (same initial convention)."""
        from .io import hmm_from_hmmlearn

        return hmm_from_hmmlearn(model, **kwargs)

    def to_hmmlearn(self):
        """An ``hmmlearn.hmm.CategoricalHMM`` with the same parameters."""
        from .io import hmm_to_hmmlearn

        return hmm_to_hmmlearn(self)

    def to_pyro_discrete_hmm(self, length: int):
        """A ``pyro.distributions.DiscreteHMM`` over sequences of ``length`` tokens.

        Pyro's ``initial_logits`` is the law of a state one transition *before* the
        first observation. We make the first transition time-dependent with every row
        equal to ``initial``, which represents our convention exactly for any
        transition matrix (solving ``pi_pyro @ A = pi`` needs A invertible and may leave
        the simplex). Its ``log_prob`` equals :meth:`log_prob`.
        """
        from .io import hmm_to_pyro_discrete_hmm

        return hmm_to_pyro_discrete_hmm(self, length)
