"""The vanilla hidden Markov model (docs/theory.md, "Conventions")."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..common import is_tensor, torch
from . import arguments, inference, limits, settings
from ._checks import as_float_array, as_float_tensor, as_tokens, check_probabilities, is_single_precision
from ._deprecated import io_name, warn_moved
from .inference import MaskMessages
from .sampling import cumulative, sample_categorical

if TYPE_CHECKING:  # annotations only: torch is imported on first use (common.torch)
    from torch import Tensor

__all__ = ["HMM"]


def _parameter(name: str, doc: str) -> property:
    """A model parameter: its tensor, made on first read (:meth:`HMM._tensor`); assigning
    a tensor replaces it."""
    return property(lambda self: self._tensor(name), lambda self, value: self._set_tensor(name, value), doc=doc)


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

    Accepts nested lists, numpy arrays or torch tensors. A model built from lists or numpy
    arrays with neither ``dtype`` nor ``device`` is validated in numpy and makes its
    float64 tensors on first use (sharing the model's own copy of the numbers), so that
    reading a model file and checking its ranks and graph (:meth:`as_numpy`) never
    imports torch; ``initial``, ``transition`` and ``emission`` are torch tensors either
    way.

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
        given = {"initial": initial, "transition": transition, "emission": emission}
        if dtype is None and device is None and not any(is_tensor(v) for v in given.values()):
            # lists / numpy: validated in numpy, float64 tensors made on first use, so that
            # reading a model file and checking its ranks and graph never imports torch
            self._arrays = {k: as_float_array(k, v) for k, v in given.items()}
            self._tensors = {}
        else:
            if dtype is None:
                types = {v.dtype for v in given.values() if is_tensor(v)}
                dtype = torch.float32 if types == {torch.float32} else torch.float64
            self._arrays = {}
            self._tensors = {k: as_float_tensor(k, v, dtype, device) for k, v in given.items()}
        stored = {k: self._stored(k) for k in given}
        for k, ndim in (("initial", 1), ("transition", 2), ("emission", 2)):
            check_probabilities(k, stored[k], ndim, single_input=is_single_precision(given[k]))
        m = stored["initial"].shape[0]
        if tuple(stored["transition"].shape) != (m, m):
            raise ValueError(
                f"transition must have shape (m, m) = ({m}, {m}) to match initial, got {tuple(stored['transition'].shape)}"
            )
        if stored["emission"].shape[0] != m:
            raise ValueError(
                f"emission must have shape (m, n) with m = {m} rows to match initial, got {tuple(stored['emission'].shape)}"
            )
        self.exact = exact
        self.name = name
        self.description = description
        #: For parametric models (see :func:`hmmtune.io.parse_parameters`): the
        #: declared parameters and the symbolic matrices; ``exact`` is taken at their values.
        self.parameters: dict | None = None
        self.symbolic: dict | None = None

    # ------------------------------------------------------------------ basics
    def _stored(self, name: str) -> Any:
        """The tensor ``name`` when it exists, else its validated float64 numpy array."""
        t = self._tensors.get(name)
        return t if t is not None else self._arrays[name]

    def _tensor(self, name: str) -> Tensor:
        t = self._tensors.get(name)
        if t is None:  # a model read from lists / numpy: float64 on the CPU, sharing the array
            t = self._tensors[name] = torch.from_numpy(self._arrays[name])
        return t

    def _set_tensor(self, name: str, value: Tensor) -> None:
        self._tensors[name] = value
        self._arrays.pop(name, None)

    initial = _parameter("initial", "(m,) tensor: the law of the state at the first position.")
    transition = _parameter("transition", "(m, m) tensor: ``transition[i, j] = P(H_{t+1}=j | H_t=i)``.")
    emission = _parameter("emission", "(m, n) tensor: ``emission[h, x] = P(X_t=x | H_t=h)``; the paper's W is its transpose.")

    def __copy__(self) -> "HMM":
        """A shallow copy whose tensors can be replaced without touching this model's."""
        new = object.__new__(type(self))
        new.__dict__.update(self.__dict__)
        new._arrays, new._tensors = dict(self._arrays), dict(self._tensors)
        return new

    def as_numpy(self, name: str) -> np.ndarray:
        """``initial``, ``transition`` or ``emission`` as a read-only float64 numpy array.

        A view of the model's own numbers where they are float64 on the CPU (no copy), a
        float64 copy otherwise. Reading it never imports torch for a model built from
        lists or numpy arrays (what the analysis reads).
        """
        if name not in ("initial", "transition", "emission"):
            raise ValueError(f"as_numpy reads 'initial', 'transition' or 'emission', got {name!r}")
        t = self._tensors.get(name)
        a = self._arrays[name] if t is None else t.detach().to("cpu", torch.float64).numpy()
        view = a.view()
        view.flags.writeable = False
        return view

    @property
    def num_states(self) -> int:
        """Number of hidden states ``m``."""
        return self._stored("initial").shape[0]

    @property
    def num_tokens(self) -> int:
        """Vocabulary size ``n``."""
        return self._stored("emission").shape[1]

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
        arguments.integer("num_sequences", num_sequences)
        arguments.integer("length", length)
        # states, two uniforms, tokens (8 bytes each) and the gathered emission rows (8 n)
        limits.check_memory(
            f"sampling {num_sequences} sequences of length {length}",
            float(num_sequences) * length * (32 + 8 * self.num_tokens),
        )
        gen = torch.Generator()
        gen.manual_seed(seed if seed is not None else int(torch.seed()))
        cum_init = cumulative(self.initial.cpu())
        cum_trans = cumulative(self.transition.cpu())
        cum_emit = cumulative(self.emission.cpu())
        states = torch.empty(num_sequences, length, dtype=torch.long)
        u = torch.rand(length, num_sequences, generator=gen, dtype=torch.float64)
        h = sample_categorical(cum_init.expand(num_sequences, -1).contiguous(), u[0])
        states[:, 0] = h
        for t in range(1, length):
            h = sample_categorical(cum_trans[h], u[t])
            states[:, t] = h
        v = torch.rand(num_sequences, length, generator=gen, dtype=torch.float64)
        tokens = sample_categorical(cum_emit[states], v)
        return tokens, states

    # ---------------------------------------------------------------- inference
    def likelihoods(self, tokens: Tensor) -> Tensor:
        """(B, T, m) emission likelihoods of validated tokens."""
        return inference.emission_likelihoods(self.emission, tokens)

    def _lazy_likelihoods(self, tokens: Tensor) -> inference.TokenLikelihoods:
        """The same likelihoods, gathered one position at a time by the fused passes."""
        return inference.TokenLikelihoods(self.emission, tokens)

    def _run(self, x: Any, fn: Callable[[Tensor], Tensor], chunk_size: int | None, max_elements: int | None = None) -> Tensor:
        tokens, single = self._tokens(x)
        out = self._chunked(fn, tokens, chunk_size, max_elements)
        return out[0] if single else out

    def _chunked(self, fn: Callable[[Tensor], Tensor], tokens: Tensor, chunk_size: int | None, max_elements: int | None):
        per_seq = tokens.shape[1] * self.num_states
        if chunk_size is None and max_elements is not None:
            chunk_size = max(1, arguments.integer("max_elements", max_elements) // max(1, per_seq))
        return inference.chunked(fn, tokens, per_seq, chunk_size)

    def log_prob(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """``log P(x)`` with the first token's state drawn from ``initial``.

        Args:
            x: (B, T) tokens (LongTensor, numpy array, or list of equal-length lists);
                a 1-D sequence gives a 0-d result.
            chunk_size: sequences per chunk (default: see
                :data:`hmmtune.models.settings.Settings.chunk_elements`).

        Returns:
            (B,) tensor.
        """
        f = lambda tok: inference.hmm_log_prob(self.initial, self.transition, self._lazy_likelihoods(tok))
        return self._run(x, f, chunk_size)

    def posterior(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """Smoothed posteriors ``P(H_t | x)``, shape (B, T, m)."""
        f = lambda tok: inference.hmm_posterior(self.initial, self.transition, self._lazy_likelihoods(tok))
        return self._run(x, f, chunk_size)

    def loo_posterior(
        self, x: Any, chunk_size: int | None = None, *, after_mask: bool = False, max_elements: int | None = None
    ) -> Tensor:
        """Leave-one-out posteriors ``P(H_t | x with position t left out)``, (B, T, m).

        ``x`` is a plain sequence: its first token's state is drawn from ``initial``
        (docs/theory.md, "The perfect masked LM"). With ``after_mask`` it is a downstream
        input after a mask, whose first state is drawn from ``initial @ transition`` (what
        :meth:`hmmtune.OracleMLM.token_posteriors` returns).

        Args:
            chunk_size: sequences per chunk. max_elements: keyword only: when
                ``chunk_size`` is not given, a chunk's (chunk, T, m) working tensor holds
                at most this many entries (default: the settings' ``chunk_elements``).
        """
        start = self.initial @ self.transition if after_mask else self.initial
        f = lambda tok: inference.hmm_loo_posterior(start, self.transition, self._lazy_likelihoods(tok))
        return self._run(x, f, chunk_size, max_elements)

    def masked_posterior(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """Deprecated name of :meth:`loo_posterior` (removed in the next release)."""
        warn_moved("HMM.masked_posterior", "HMM.loo_posterior")
        return self.loo_posterior(x, chunk_size)

    # ------------------------------------------------- the oracle's protocol
    # (hmmtune.models.protocol.OracleModel): the mask's hidden state is a state, shape (m,).
    row_symbol = "m"

    @property
    def mask_state_shape(self) -> tuple[int]:
        """(m,): the mask's hidden state is one of the m states."""
        return (self.num_states,)

    def mask_prior(self) -> Tensor:
        """(m,) the law of the mask's state with no prompt: ``initial``."""
        return self.initial

    def prompt_likelihoods(self, prompt: Tensor) -> Tensor:
        """(k, m) likelihood rows of soft prompt tokens over the states, unchanged."""
        return prompt

    def mask_messages(self, x: Any, *, chunk_size: int | None = None, max_elements: int | None = None) -> MaskMessages:
        """Backward messages ``beta_0`` (B, m) of inputs ``x`` (B, T) to a mask placed
        before them (:func:`hmmtune.models.inference.hmm_start_backward`)."""
        tokens, _ = self._tokens(x)
        f = lambda tok: inference.hmm_start_backward(self.transition, self.likelihoods(tok))
        return MaskMessages(self._chunked(f, tokens, chunk_size, max_elements))

    def state_marginals(self, joint: Tensor) -> Tensor:
        """(B, m) law of the mask's state -> the same (B, m)."""
        return joint

    def emission_marginals(self, joint: Tensor) -> Tensor:
        """(B, m) law of the mask's state -> the law of the emission row read: the same."""
        return joint

    def loo_emission_posterior(self, x: Any, chunk_size: int | None = None, **kwargs) -> Tensor:
        """For an HMM the emission row read at t is the state: :meth:`loo_posterior`."""
        return self.loo_posterior(x, chunk_size, **kwargs)

    # ----------------------------------------------------------------- adapters
    # Deprecated: the file formats and adapters live in hmmtune.io (io reads models;
    # models never import io). Removed in the next release.
    def to_json(self, path=None, **kwargs):
        """Deprecated: use :func:`hmmtune.io.hmm_to_json`."""
        warn_moved("HMM.to_json", "hmmtune.io.hmm_to_json")
        return io_name("hmm_to_json")(self, path, **kwargs)

    @classmethod
    def from_json(cls, source, **kwargs) -> "HMM":
        """Deprecated: use :func:`hmmtune.io.hmm_from_json` or :func:`hmmtune.io.load_model`."""
        warn_moved("HMM.from_json", "hmmtune.io.hmm_from_json")
        return io_name("hmm_from_json")(source, **kwargs)

    @classmethod
    def from_hmmlearn(cls, model, **kwargs) -> "HMM":
        """Deprecated: use :func:`hmmtune.io.hmm_from_hmmlearn`."""
        warn_moved("HMM.from_hmmlearn", "hmmtune.io.hmm_from_hmmlearn")
        return io_name("hmm_from_hmmlearn")(model, **kwargs)

    def to_hmmlearn(self):
        """Deprecated: use :func:`hmmtune.io.hmm_to_hmmlearn`."""
        warn_moved("HMM.to_hmmlearn", "hmmtune.io.hmm_to_hmmlearn")
        return io_name("hmm_to_hmmlearn")(self)

    def to_pyro_discrete_hmm(self, length: int):
        """Deprecated: use :func:`hmmtune.io.hmm_to_pyro_discrete_hmm`."""
        warn_moved("HMM.to_pyro_discrete_hmm", "hmmtune.io.hmm_to_pyro_discrete_hmm")
        return io_name("hmm_to_pyro_discrete_hmm")(self, length)


def __getattr__(name: str):
    if name == "MAX_CHUNK_ELEMENTS":
        warn_moved("hmmtune.models.hmm.MAX_CHUNK_ELEMENTS", "hmmtune.models.settings.current().chunk_elements")
        return settings.current().chunk_elements
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
