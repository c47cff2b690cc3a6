"""The memory-augmented hidden Markov model (docs/theory.md, "Memory-augmented HMMs").

A sequence first draws a memory ``M = (M_1..M_N)``: ``N`` cells, each holding a value in
``[V]``, drawn independently (cell ``j`` from ``memory_prior[j]``) and fixed for the whole
sequence. A Markov chain ``Z_t = (J_t, S_t)`` then picks, at every position, the cell
``J_t`` in ``[N]`` to read and a local state ``S_t`` in ``[S]``; the token is emitted from
the value read and the local state: ``X_t ~ W[:, (M_{J_t}, S_t)]``.

Index conventions (used by every array and result here, and in ``docs/memory.md``):

- **Z-chain states**: ``z = j * S + s`` (cell major, local state minor), ``K = N * S``
  of them. ``initial`` (K,) and ``transition`` (K, K) are indexed this way.
- **Emission rows / W columns**: ``r = v * S + s`` (value major, local state minor),
  ``V * S`` of them. ``emission`` is stored as (V * S, n); ``emission[v * S + s]`` is
  the token law of value ``v`` read in local state ``s``, and the paper's ``W`` is
  ``emission.T``.
- **Memory configurations**: ``C = V ** N`` of them, in row-major order with cell 0 the
  most significant digit (:meth:`MemoryHMM.configurations`), so a (..., C) tensor
  reshaped to (..., V, ..., V) has cell ``j`` on its ``j``-th V axis.
- **Flattened states** (:meth:`MemoryHMM.to_hmm`): ``c * K + z`` over
  ``[V]^N x [N] x [S]``.

Exact inference runs the Z-chain for all ``C`` configurations at once, as one batched
forward-backward over ``B * C`` chains (no Python loop over configurations), and weights
configuration ``c`` by ``rho(c) P(x | c)``. Its working tensors hold
``V^N * N * S * T`` entries per sequence; sequences are processed in chunks that keep a
working tensor under ``max_elements`` entries (default :data:`MAX_MEMORY_ELEMENTS`), and
inference refuses, with :class:`InferenceTooLargeError`, when a single sequence exceeds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Sequence

from ..common import is_tensor, torch
from . import arguments, inference, limits
from ._checks import as_float_tensor, as_tokens, check_probabilities, is_single_precision
from ._deprecated import io_name, warn_moved
from .hmm import HMM
from .inference import MaskMessages
from .sampling import cumulative, sample_categorical

if TYPE_CHECKING:  # annotations only: torch is imported on first use (common.torch)
    from torch import Tensor

__all__ = [
    "MemoryHMM",
    "MemorySample",
    "MemoryInference",
    "InferenceTooLargeError",
    "MAX_MEMORY_ELEMENTS",
]

#: Default limit on the entries of one working tensor of exact memory inference
#: (``chunk * V^N * N * S * T``). About eight such tensors (float64: 8 bytes an entry)
#: live at once, so the default keeps the peak near 2 GiB. Override per call with
#: ``max_elements=``.
MAX_MEMORY_ELEMENTS = 2**25


class InferenceTooLargeError(ValueError):
    """Exact inference would need more memory than allowed; nothing was allocated.

    Attributes:
        num_configurations: ``V ** N``.
        num_states: Z-chain states ``N * S`` (or flattened states for :meth:`MemoryHMM.to_hmm`).
        length: ``T`` (0 for :meth:`MemoryHMM.to_hmm`).
        required: entries the smallest working tensor would hold.
        max_elements: the limit in force.
    """

    def __init__(self, message: str, *, num_configurations: int, num_states: int, length: int, required: int, max_elements: int):
        super().__init__(message)
        self.num_configurations = num_configurations
        self.num_states = num_states
        self.length = length
        self.required = required
        self.max_elements = max_elements


class MemorySample(NamedTuple):
    """Output of :meth:`MemoryHMM.sample`; all LongTensors on the CPU.

    Attributes:
        tokens: (B, T) tokens.
        memory: (B, N) memory values ``M_j`` (fixed along each sequence).
        pointer: (B, T) the cell ``J_t`` read at each position.
        local_state: (B, T) the local state ``S_t``.
    """

    tokens: Tensor
    memory: Tensor
    pointer: Tensor
    local_state: Tensor


class MemoryInference(NamedTuple):
    """Output of :meth:`MemoryHMM.infer`; fields that were not requested are None.

    Shapes: ``B`` sequences, ``T`` positions, ``N`` cells, ``V`` values, ``S`` local
    states, ``K = N * S`` chain states, ``C = V ** N`` configurations.

    Attributes:
        log_prob: (B,) ``log P(x)``.
        memory: (B, N, V) ``P(M_j = v | x)``.
        posterior: (B, T, K) ``P(Z_t | x)``.
        emission_posterior: (B, T, V * S) ``P((M_{J_t}, S_t) = (v, s) | x)``, column
            ``v * S + s``: the posterior over the columns of W that emit ``x_t``.
        loo_posterior: (B, T, K) ``P(Z_t | x_{-t})`` (leave-one-out: position t left out).
        loo_emission_posterior: (B, T, V * S) ``P((M_{J_t}, S_t) | x_{-t})``.
        loo_memory: (B, T, N, V) ``P(M_j = v | x_{-t})``.
        start_backward: (B, C, K) normalised backward messages to a state placed one
            step before ``x_0`` (a mask): proportional to ``P(x | Z_{-1} = z, M = c)``.
        start_log_scale: (B, C) with
            ``P(x | Z_{-1} = z, M = c) = exp(start_log_scale[b, c]) * start_backward[b, c, z]``.

    The fields ``masked_posterior``, ``masked_emission_posterior`` and ``masked_memory``
    are deprecated names of the ``loo_`` ones (removed in the next release).
    """

    log_prob: Tensor
    memory: Tensor | None = None
    posterior: Tensor | None = None
    emission_posterior: Tensor | None = None
    loo_posterior: Tensor | None = None
    loo_emission_posterior: Tensor | None = None
    loo_memory: Tensor | None = None
    start_backward: Tensor | None = None
    start_log_scale: Tensor | None = None

    @property
    def masked_posterior(self) -> Tensor | None:
        """Deprecated name of :attr:`loo_posterior`."""
        warn_moved("MemoryInference.masked_posterior", "loo_posterior")
        return self.loo_posterior

    @property
    def masked_emission_posterior(self) -> Tensor | None:
        """Deprecated name of :attr:`loo_emission_posterior`."""
        warn_moved("MemoryInference.masked_emission_posterior", "loo_emission_posterior")
        return self.loo_emission_posterior

    @property
    def masked_memory(self) -> Tensor | None:
        """Deprecated name of :attr:`loo_memory`."""
        warn_moved("MemoryInference.masked_memory", "loo_memory")
        return self.loo_memory


_OUTPUTS = MemoryInference._fields[1:]
#: deprecated output names accepted by :meth:`MemoryHMM.infer` for one release
_OLD_OUTPUTS = {"masked_posterior": "loo_posterior", "masked_emission_posterior": "loo_emission_posterior", "masked_memory": "loo_memory"}


class MemoryHMM:
    """A memory-augmented HMM (docs/theory.md, "Memory-augmented HMMs").

    Args:
        memory_prior: (V,) law of every memory cell, or (N, V) one law per cell (rho).
        initial: (K,) law of ``Z_0 = (J_0, S_0)`` over the ``K = N * S`` chain states,
            index ``j * S + s``.
        transition: (K, K) row-stochastic, ``transition[z, z'] = P(Z_{t+1}=z' | Z_t=z)``.
        emission: (V, S, n) with ``emission[v, s, x] = P(X_t = x | M_{J_t} = v, S_t = s)``,
            or the same as (V * S, n) with row ``v * S + s``. Stored as (V * S, n); the
            paper's ``W`` is its transpose.
        num_cells: N. Optional: it follows from the shapes (``len(initial) / S``); when
            given it must agree.
        dtype: ``torch.float64`` (default, unless all tensors passed are float32) or
            ``torch.float32``.
        device: any torch device.
        exact: optional dict of sympy matrices with the exact entries: ``memory_prior``
            (N, V), ``initial``, ``transition`` and ``emission`` (V * S, n) (set by
            :meth:`from_json`).
        name: free text carried through JSON.
        description: free text carried through JSON.

    Raises:
        ValueError: naming the array, row and value when an entry is non-finite or
            negative, a row does not sum to 1 (relative tolerance 1e-9), or the shapes
            disagree.
    """

    def __init__(
        self,
        memory_prior: Any,
        initial: Any,
        transition: Any,
        emission: Any,
        num_cells: int | None = None,
        *,
        dtype: torch.dtype | None = None,
        device: Any = None,
        exact: dict | None = None,
        name: str | None = None,
        description: str | None = None,
    ):
        if dtype is None:
            types = {x.dtype for x in (memory_prior, initial, transition, emission) if is_tensor(x)}
            dtype = torch.float32 if types == {torch.float32} else torch.float64
        prior = as_float_tensor("memory_prior", memory_prior, dtype, device)
        self.initial = as_float_tensor("initial", initial, dtype, device)
        self.transition = as_float_tensor("transition", transition, dtype, device)
        emission_in = emission
        emission = as_float_tensor("emission", emission, dtype, device)
        if prior.dim() not in (1, 2):
            raise ValueError(f"memory_prior must have shape (V,) or (N, V), got {tuple(prior.shape)}")
        check_probabilities("memory_prior", prior, prior.dim(), single_input=is_single_precision(memory_prior))
        check_probabilities("initial", self.initial, 1, single_input=is_single_precision(initial))
        check_probabilities("transition", self.transition, 2, single_input=is_single_precision(transition))
        if emission.dim() not in (2, 3):
            raise ValueError(f"emission must have shape (V, S, n) or (V * S, n), got {tuple(emission.shape)}")
        check_probabilities("emission", emission, emission.dim(), single_input=is_single_precision(emission_in))
        V = prior.shape[-1]
        K = self.initial.shape[0]
        if emission.dim() == 3:
            if emission.shape[0] != V:
                raise ValueError(
                    f"emission of shape (V, S, n) must have V = {V} values to match memory_prior, got {tuple(emission.shape)}"
                )
            S = emission.shape[1]
            emission = emission.reshape(V * S, emission.shape[2])
        else:
            if emission.shape[0] % V:
                raise ValueError(
                    f"emission of shape (V * S, n) must have a multiple of V = {V} rows to match memory_prior, "
                    f"got {tuple(emission.shape)}"
                )
            S = emission.shape[0] // V
        if K % S:
            raise ValueError(
                f"initial must have N * S entries with S = {S} local states (from emission), got {K}"
            )
        N = K // S
        if num_cells is not None:
            arguments.integer("num_cells", num_cells)
            if num_cells != N:
                raise ValueError(
                    f"num_cells = {num_cells} disagrees with the shapes: initial has {K} entries and emission "
                    f"has S = {S} local states, so N = {K} / {S} = {N}"
                )
        if prior.dim() == 2 and prior.shape[0] != N:
            raise ValueError(f"memory_prior of shape (N, V) must have N = {N} rows (one per cell), got {tuple(prior.shape)}")
        if self.transition.shape != (K, K):
            raise ValueError(
                f"transition must have shape (K, K) = ({K}, {K}) with K = N * S to match initial, "
                f"got {tuple(self.transition.shape)}"
            )
        self.shared_prior = prior.dim() == 1
        self.memory_prior = prior.expand(N, V).clone() if self.shared_prior else prior
        self.emission = emission.contiguous()
        self.exact = exact
        #: For parametric models (the file's ``"parameters"``, read by
        #: :func:`hmmtune.io.parse_parameters`): the declared parameters and the
        #: symbolic matrices, keyed as ``exact``, which is taken at their values.
        self.parameters: dict | None = None
        self.symbolic: dict | None = None
        self.name = name
        self.description = description
        self._cache: dict = {}

    # ------------------------------------------------------------------ basics
    @property
    def num_cells(self) -> int:
        """N, the number of memory cells."""
        return self.memory_prior.shape[0]

    @property
    def num_values(self) -> int:
        """V, the values a cell can hold."""
        return self.memory_prior.shape[1]

    @property
    def num_local_states(self) -> int:
        """S, the local states."""
        return self.emission.shape[0] // self.num_values

    @property
    def num_states(self) -> int:
        """K = N * S, the states of the chain ``Z_t = (J_t, S_t)`` (not the flattened space)."""
        return self.initial.shape[0]

    @property
    def num_tokens(self) -> int:
        """Vocabulary size n."""
        return self.emission.shape[1]

    @property
    def num_configurations(self) -> int:
        """C = V ** N memory configurations."""
        return self.num_values**self.num_cells

    @property
    def num_flat_states(self) -> int:
        """States of the equivalent vanilla HMM (:meth:`to_hmm`): ``V ** N * N * S``."""
        return self.num_configurations * self.num_states

    @property
    def emission_table(self) -> Tensor:
        """The emission as (V, S, n): ``emission_table[v, s] = emission[v * S + s]`` (a view)."""
        return self.emission.view(self.num_values, self.num_local_states, self.num_tokens)

    @property
    def dtype(self) -> torch.dtype:
        return self.initial.dtype

    @property
    def device(self) -> torch.device:
        return self.initial.device

    def to(self, dtype: torch.dtype | None = None, device: Any = None) -> "MemoryHMM":
        """A copy with another dtype and/or device (exact entries and parameters are kept)."""
        out = MemoryHMM(
            self.memory_prior[0] if self.shared_prior else self.memory_prior,
            self.initial,
            self.transition,
            self.emission,
            self.num_cells,
            dtype=dtype or self.dtype,
            device=device or self.device,
            exact=self.exact,
            name=self.name,
            description=self.description,
        )
        out.parameters, out.symbolic = self.parameters, self.symbolic
        return out

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return (
            f"MemoryHMM{label}(num_cells={self.num_cells}, num_values={self.num_values}, "
            f"num_local_states={self.num_local_states}, num_tokens={self.num_tokens}, dtype={self.dtype})"
        )

    def _tokens(self, x: Any) -> tuple[Tensor, bool]:
        return as_tokens(x, self.num_tokens, device=self.device)

    # ------------------------------------------------------ configuration tables
    def _limit(self, max_elements: int | None) -> int:
        return MAX_MEMORY_ELEMENTS if max_elements is None else arguments.integer("max_elements", max_elements)

    def _size_guard(self, max_elements: int | None, length: int, num_sequences: int, stored: bool = True) -> int:
        """Refuse (before allocating) when one sequence's working tensor exceeds the limit.

        ``stored``: messages are kept for every position (``V^N N S T`` entries per
        sequence); otherwise only for the current one (``V^N N S``). Returns the limit.
        """
        limit = self._limit(max_elements)
        N, V, S, K, C = self.num_cells, self.num_values, self.num_local_states, self.num_states, self.num_configurations
        per_seq = C * K * (length if stored else 1)
        if per_seq > limit:
            sizes = f"V^N x N*S x T = {V}^{N} x {N}*{S} x {length}" if stored else f"V^N x N*S = {V}^{N} x {N}*{S}"
            raise InferenceTooLargeError(
                f"exact memory inference needs {sizes} = {per_seq:,} entries "
                f"per sequence in each of its working tensors ({per_seq * num_sequences:,} for all B = "
                f"{num_sequences} sequences, which are processed in chunks), above max_elements = {limit:,}. "
                f"Pass max_elements= to raise the limit (default hmmtune.models.memory.MAX_MEMORY_ELEMENTS; "
                f"about 8 working tensors of {torch.finfo(self.dtype).bits // 8} bytes an entry live at once), "
                f"or use shorter sequences, fewer cells or fewer values.",
                num_configurations=C,
                num_states=K,
                length=length,
                required=per_seq,
                max_elements=limit,
            )
        return limit

    def configurations(self) -> Tensor:
        """(C, N) LongTensor: every memory configuration, row-major, cell 0 most significant.

        Row ``c`` holds the values ``(M_1..M_N)`` with ``c = sum_j M_j V^(N-1-j)``.
        """
        if "configs" not in self._cache:
            N, V = self.num_cells, self.num_values
            c = torch.arange(self.num_configurations, device=self.device)
            powers = torch.tensor([V ** (N - 1 - j) for j in range(N)], device=self.device)
            self._cache["configs"] = (c[:, None] // powers) % V
        return self._cache["configs"]

    def read_index(self) -> Tensor:
        """(C, K) LongTensor: the emission row ``M_j * S + s`` that chain state
        ``z = j * S + s`` reads in configuration c."""
        if "read" not in self._cache:
            S = self.num_local_states
            configs = self.configurations()  # (C, N)
            s = torch.arange(S, device=self.device)
            self._cache["read"] = (configs[:, :, None] * S + s).reshape(self.num_configurations, -1)
        return self._cache["read"]

    def log_config_prior(self) -> Tensor:
        """(C,) ``log rho(c) = sum_j log memory_prior[j, c_j]`` (``-inf`` for an impossible c)."""
        if "logprior" not in self._cache:
            configs = self.configurations()
            logp = self.memory_prior.log()  # (N, V)
            self._cache["logprior"] = logp.gather(1, configs.T).sum(0)
        return self._cache["logprior"]

    def config_emission(self) -> Tensor:
        """(n, C, K): ``P(X = x | M = c, Z = z) = emission[read_index()[c, z], x]``, arranged
        for gathering by token."""
        if "emitT" not in self._cache:
            self._cache["emitT"] = self.emission.T[:, self.read_index()].contiguous()
        return self._cache["emitT"]

    def config_likelihoods(self, tokens: Tensor) -> inference.ConfigLikelihoods:
        """The (B, T, C, K) likelihoods ``P(x_t | M = c, Z_t = z)`` of validated tokens (B, T),
        lazily (:class:`hmmtune.models.inference.ConfigLikelihoods`; ``.dense()`` builds them)."""
        return inference.ConfigLikelihoods(self.config_emission(), tokens)

    # -------------------------------------------------------------- Pyro model
    def model(self, tokens: Tensor | None = None, num_sequences: int = 1, length: int = 1) -> Tensor:
        """The generative process as a Pyro model with enumerated latents.

        Sites, all inside ``pyro.plate("sequences", B, dim=-1)``: the memory cells
        ``m_0 .. m_{N-1}`` (global to the sequence, ``infer={"enumerate": "parallel"}``),
        the chain states ``z_t`` (enumerated, inside ``pyro.markov``; ``z = j * S + s``)
        and the tokens ``x_t``, emitted from row ``m_{J_t} * S + S_t`` of ``emission``.
        Run it under ``TraceEnum_ELBO(max_plate_nesting=1)`` with an empty guide to get
        ``-log P(x)`` and ``compute_marginals`` of ``m_j`` / ``z_t``.

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
        N, S = self.num_cells, self.num_local_states
        out = []
        with pyro.plate("sequences", num_sequences, dim=-1):
            memory = [
                pyro.sample(f"m_{j}", dist.Categorical(self.memory_prior[j]), infer={"enumerate": "parallel"})
                for j in range(N)
            ]
            z = None
            for t in pyro.markov(range(length)):
                probs = self.initial if z is None else Vindex(self.transition)[z, :]
                z = pyro.sample(f"z_{t}", dist.Categorical(probs), infer={"enumerate": "parallel"})
                cell, local = z // S, z % S
                value = memory[0] if N == 1 else sum((cell == j).long() * memory[j] for j in range(N))
                x = pyro.sample(
                    f"x_{t}",
                    dist.Categorical(Vindex(self.emission)[value * S + local, :]),
                    obs=None if tokens is None else tokens[:, t],
                )
                out.append(x)
        return tokens if tokens is not None else torch.stack(out, -1)

    # ----------------------------------------------------------------- sampling
    def sample(self, num_sequences: int, length: int, seed: int | None = None) -> MemorySample:
        """Draw sequences, vectorised over sequences.

        Args:
            num_sequences: B >= 1.
            length: T >= 1.
            seed: integer seed for a private ``torch.Generator`` (None: fresh entropy).

        Returns:
            :class:`MemorySample` ``(tokens, memory, pointer, local_state)``: LongTensors
            of shapes (B, T), (B, N), (B, T), (B, T) on the CPU.
        """
        arguments.integer("num_sequences", num_sequences)
        arguments.integer("length", length)
        B, T, N, S = num_sequences, length, self.num_cells, self.num_local_states
        # states, pointer, local state, rows, two uniforms, tokens and the gathered rows (8 n)
        limits.check_memory(f"sampling {B} sequences of length {T}", float(B) * (T * (56 + 8 * self.num_tokens) + 16 * N))
        gen = torch.Generator()
        gen.manual_seed(seed if seed is not None else int(torch.seed()))
        cum_prior = cumulative(self.memory_prior.cpu())  # (N, V)
        cum_init = cumulative(self.initial.cpu())
        cum_trans = cumulative(self.transition.cpu())
        cum_emit = cumulative(self.emission.cpu())
        u_mem = torch.rand(B, N, generator=gen, dtype=torch.float64)
        memory = sample_categorical(cum_prior.expand(B, N, -1).contiguous(), u_mem)
        states = torch.empty(B, T, dtype=torch.long)
        u = torch.rand(T, B, generator=gen, dtype=torch.float64)
        z = sample_categorical(cum_init.expand(B, -1).contiguous(), u[0])
        states[:, 0] = z
        for t in range(1, T):
            z = sample_categorical(cum_trans[z], u[t])
            states[:, t] = z
        pointer, local = states // S, states % S
        rows = memory.gather(1, pointer) * S + local
        v = torch.rand(B, T, generator=gen, dtype=torch.float64)
        tokens = sample_categorical(cum_emit[rows], v)
        return MemorySample(tokens, memory, pointer, local)

    # ---------------------------------------------------------------- inference
    def infer(
        self,
        x: Any,
        outputs: Sequence[str] = ("memory",),
        *,
        after_mask: bool = False,
        chunk_size: int | None = None,
        max_elements: int | None = None,
    ) -> MemoryInference:
        """Exact inference by batched forward-backward over all memory configurations.

        For each sequence and configuration ``c`` the Z-chain is run with emission
        likelihoods ``L[c, t, (j, s)] = emission[c_j * S + s, x_t]``; configuration c gets
        weight ``rho(c) P(x | c)`` (docs/theory.md, "Memory-augmented HMMs"). Leave-one-out quantities weight c by
        ``rho(c) P(x_{-t} | c)``, computed from the scale factors of both passes, so a
        configuration that cannot emit ``x_t`` alone still counts at position t.

        Args:
            x: (B, T) tokens (or a 1-D sequence: results lose the batch axis).
            outputs: names of :class:`MemoryInference` fields to compute besides
                ``log_prob``.
            after_mask: x follows a mask at position 0 (a downstream input, docs/theory.md, "The perfect masked LM"):
                the chain over x starts from ``initial @ transition`` instead of ``initial``.
            chunk_size: sequences per chunk (default: as many as ``max_elements`` allows).
            max_elements: limit on the entries of one working tensor
                (default :data:`MAX_MEMORY_ELEMENTS`).

        Returns:
            :class:`MemoryInference`.

        Raises:
            InferenceTooLargeError: one sequence needs more than ``max_elements``
                entries in a working tensor (``V^N * N * S * T``; ``V^N * N * S`` when
                only ``log_prob`` and ``memory`` are asked for, which keep no messages);
                raised before anything is allocated.
            ZeroProbabilityError: a sequence has probability zero under the model.
        """
        outputs = tuple(self._output_name(o) for o in outputs)
        unknown = [o for o in outputs if o not in _OUTPUTS]
        if unknown:
            raise ValueError(f"unknown output(s) {', '.join(map(repr, unknown))}; known: {', '.join(_OUTPUTS)}")
        tokens, single = self._tokens(x)
        B, T = tokens.shape
        want = set(outputs)
        # log P(x) and the memory posterior need only P(x | c): a forward pass that keeps
        # the messages of the current position only (no (T, B, V^N, N*S) tensors).
        stored = bool(want - {"memory"})
        limit = self._size_guard(max_elements, T, B, stored)
        if chunk_size is None:
            chunk_size = max(1, limit // (self.num_configurations * self.num_states * (T if stored else 1)))
        start = self.initial @ self.transition if after_mask else self.initial
        res = inference.chunked(lambda tok: self._infer_chunk(tok, start, want), tokens, 1, chunk_size)
        return MemoryInference(*(None if v is None else v[0] if single else v for v in res))

    @staticmethod
    def _output_name(name: str) -> str:
        if name in _OLD_OUTPUTS:
            warn_moved(f"MemoryHMM.infer output {name!r}", repr(_OLD_OUTPUTS[name]), stacklevel=4)
            return _OLD_OUTPUTS[name]
        return name

    def _infer_chunk(self, tokens: Tensor, start: Tensor, want: set) -> MemoryInference:
        """The requested outputs for a (b, T) chunk, from the pure functions of
        :mod:`hmmtune.models.inference` and the marginals over this model's indices."""
        N, V, S = self.num_cells, self.num_values, self.num_local_states
        args = (self.log_config_prior(), start, self.transition)
        if not want - {"memory"}:
            post = inference.MemoryPosteriors(*inference.memory_log_prob(*args, self.config_likelihoods(tokens)))
        else:
            post = inference.memory_posteriors(
                *args,
                self.config_likelihoods(tokens).dense(),
                smoothed=bool(want & {"posterior", "emission_posterior"}),
                loo=bool(want & {"loo_posterior", "loo_emission_posterior", "loo_memory"}),
                start=bool(want & {"start_backward", "start_log_scale"}),
            )
        compute = {
            "memory": lambda: inference.memory_cell_marginals(post.config_posterior, N, V),
            "posterior": lambda: post.posterior.sum(2),
            "emission_posterior": lambda: inference.memory_emission_marginals(post.posterior, N, V, S),
            "loo_posterior": lambda: post.loo_posterior.sum(2),
            "loo_emission_posterior": lambda: inference.memory_emission_marginals(post.loo_posterior, N, V, S),
            "loo_memory": lambda: inference.memory_cell_marginals(post.loo_config_posterior, N, V),
            "start_backward": lambda: post.start_backward,
            "start_log_scale": lambda: post.start_log_scale,
        }
        return MemoryInference(post.log_prob, **{k: f() for k, f in compute.items() if k in want})

    def log_prob(self, x: Any, **kwargs) -> Tensor:
        """``log P(x)`` with ``Z_0 ~ initial``: (B,) (0-d for a 1-D sequence).

        Keyword arguments (``chunk_size``, ``max_elements``, ``after_mask``) as in :meth:`infer`.
        """
        return self.infer(x, (), **kwargs).log_prob

    def memory_posterior(self, x: Any, **kwargs) -> Tensor:
        """``P(M_j = v | x)``: (B, N, V). Keyword arguments as in :meth:`infer`."""
        return self.infer(x, ("memory",), **kwargs).memory

    def posterior(self, x: Any, **kwargs) -> Tensor:
        """Smoothed chain posteriors ``P(Z_t | x)``: (B, T, N * S), index ``j * S + s``."""
        return self.infer(x, ("posterior",), **kwargs).posterior

    def emission_posterior(self, x: Any, **kwargs) -> Tensor:
        """``P((M_{J_t}, S_t) | x)``: (B, T, V * S), column ``v * S + s`` of W."""
        return self.infer(x, ("emission_posterior",), **kwargs).emission_posterior

    def loo_posterior(self, x: Any, **kwargs) -> Tensor:
        """Leave-one-out ``P(Z_t | x_{-t})``: (B, T, N * S). ``x`` is a plain sequence
        (``Z_0 ~ initial``; ``after_mask=True`` for an input after a mask, as
        :class:`hmmtune.OracleMLM` passes). Keyword arguments as in :meth:`infer`."""
        return self.infer(x, ("loo_posterior",), **kwargs).loo_posterior

    def loo_emission_posterior(self, x: Any, **kwargs) -> Tensor:
        """Leave-one-out ``P((M_{J_t}, S_t) | x_{-t})``: (B, T, V * S); ``@ emission`` gives
        the masked LM's prediction ``G_t(x)`` (docs/theory.md, "Memory-augmented HMMs")."""
        return self.infer(x, ("loo_emission_posterior",), **kwargs).loo_emission_posterior

    def loo_memory_posterior(self, x: Any, **kwargs) -> Tensor:
        """Leave-one-out ``P(M_j = v | x_{-t})``: (B, T, N, V) (Theorem M's anchors read these)."""
        return self.infer(x, ("loo_memory",), **kwargs).loo_memory

    def masked_posterior(self, x: Any, **kwargs) -> Tensor:
        """Deprecated name of :meth:`loo_posterior` (removed in the next release)."""
        warn_moved("MemoryHMM.masked_posterior", "MemoryHMM.loo_posterior")
        return self.loo_posterior(x, **kwargs)

    def masked_emission_posterior(self, x: Any, **kwargs) -> Tensor:
        """Deprecated name of :meth:`loo_emission_posterior` (removed in the next release)."""
        warn_moved("MemoryHMM.masked_emission_posterior", "MemoryHMM.loo_emission_posterior")
        return self.loo_emission_posterior(x, **kwargs)

    def masked_memory_posterior(self, x: Any, **kwargs) -> Tensor:
        """Deprecated name of :meth:`loo_memory_posterior` (removed in the next release)."""
        warn_moved("MemoryHMM.masked_memory_posterior", "MemoryHMM.loo_memory_posterior")
        return self.loo_memory_posterior(x, **kwargs)

    # ------------------------------------------------- the oracle's protocol
    # (hmmtune.models.protocol.OracleModel; docs/theory.md, "Memory-augmented HMMs"). The
    # mask's hidden state is the pair (configuration c, chain state z): shape (C, K).
    row_symbol = "V * S"

    @property
    def mask_state_shape(self) -> tuple[int, int]:
        """(C, K): the mask's hidden state is (memory configuration, chain state)."""
        return (self.num_configurations, self.num_states)

    def mask_prior(self) -> Tensor:
        """(C, K) ``P(M = c, Z_0 = z) = rho(c) initial[z]``, the law of the mask's state."""
        return self.log_config_prior().exp()[:, None] * self.initial[None, :]

    def prompt_likelihoods(self, prompt: Tensor) -> Tensor:
        """(k, V * S) likelihood rows over the columns of W -> (k, C, K) over mask states."""
        return prompt[:, self.read_index()]

    def mask_messages(self, x: Any, *, chunk_size: int | None = None, max_elements: int | None = None) -> MaskMessages:
        """Backward messages of inputs ``x`` (B, T) to a mask placed before them:
        ``backward`` (B, C, K) proportional to ``P(x | Z_0 = z, M = c)``, ``log_scale`` (B, C)."""
        res = self.infer(x, ("start_backward", "start_log_scale"), chunk_size=chunk_size, max_elements=max_elements)
        if res.start_backward.dim() == 2:
            return MaskMessages(res.start_backward[None], res.start_log_scale[None])
        return MaskMessages(res.start_backward, res.start_log_scale)

    def state_marginals(self, joint: Tensor) -> Tensor:
        """(B, C, K) law of the mask's state -> (B, K), the law of ``Z_0``."""
        return joint.sum(-2)

    def emission_marginals(self, joint: Tensor) -> Tensor:
        """(B, C, K) law of the mask's state -> (B, V * S), the law of the emission row read."""
        return inference.memory_emission_marginals(joint, self.num_cells, self.num_values, self.num_local_states)

    # ----------------------------------------------------------------- flatten
    def to_hmm(self, max_elements: int | None = None) -> HMM:
        """The equivalent vanilla :class:`hmmtune.HMM` on ``[V]^N x [N] x [S]`` (docs/theory.md, "Memory-augmented HMMs").

        State ``c * K + z`` is configuration c (:meth:`configurations`) with chain state
        z; ``initial = rho(c) * initial[z]``, the transition is block diagonal with one
        copy of ``transition`` per configuration (the memory never changes), and state
        ``(c, j, s)`` emits ``emission[c_j * S + s]``. Exact entries are carried over.

        Raises:
            InferenceTooLargeError: the (V^N N S)^2 transition would exceed ``max_elements``.
        """
        K, C = self.num_states, self.num_configurations
        limit = self._limit(max_elements)
        m = C * K
        if m * m > limit:
            raise InferenceTooLargeError(
                f"the flattened HMM has V^N x N*S = {self.num_values}^{self.num_cells} x {self.num_cells}*"
                f"{self.num_local_states} = {m:,} states; its transition matrix needs {m * m:,} entries, above "
                f"max_elements = {limit:,}. Pass max_elements= to raise the limit, or use MemoryHMM's own inference, "
                f"which never builds it.",
                num_configurations=C,
                num_states=m,
                length=0,
                required=m * m,
                max_elements=limit,
            )
        read = self.read_index()
        prior = self.log_config_prior().exp()
        initial = (prior[:, None] * self.initial[None, :]).reshape(-1)
        eye = torch.eye(C, dtype=self.dtype, device=self.device)
        transition = torch.kron(eye, self.transition)
        emission = self.emission[read].reshape(C * K, self.num_tokens)
        exact = None
        if self.exact is not None:
            import sympy

            ex = self.exact
            configs = self.configurations().tolist()
            rho = [sympy.Mul(*[ex["memory_prior"][j, v] for j, v in enumerate(cfg)]) for cfg in configs]
            readl = read.tolist()
            exact = {
                "initial": sympy.Matrix([rho[c] * ex["initial"][z] for c in range(C) for z in range(K)]),
                "transition": sympy.diag(*[ex["transition"]] * C),
                "emission": sympy.Matrix([list(ex["emission"].row(readl[c][z])) for c in range(C) for z in range(K)]),
            }
        name = f"{self.name} (flattened)" if self.name else None
        return HMM(initial, transition, emission, dtype=self.dtype, device=self.device, exact=exact, name=name)

    # ----------------------------------------------------------------- adapters
    def to_json(self, path=None, **kwargs) -> str:
        """Deprecated: use :func:`hmmtune.io.memory_hmm_to_json` (removed in the next release)."""
        warn_moved("MemoryHMM.to_json", "hmmtune.io.memory_hmm_to_json")
        return io_name("memory_hmm_to_json")(self, path, **kwargs)

    @classmethod
    def from_json(cls, source, **kwargs) -> "MemoryHMM":
        """Deprecated: use :func:`hmmtune.io.memory_hmm_from_json` or
        :func:`hmmtune.io.load_model` (removed in the next release)."""
        warn_moved("MemoryHMM.from_json", "hmmtune.io.memory_hmm_from_json")
        return io_name("memory_hmm_from_json")(source, **kwargs)


#: names that moved to hmmtune.io (deprecated here, removed in the next release)
_MOVED_TO_IO = ("memory_hmm_to_json", "memory_hmm_from_json")


def __getattr__(name: str):
    if name in _MOVED_TO_IO:
        warn_moved(f"hmmtune.models.memory.{name}", f"hmmtune.io.{name}")
        return io_name(name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
