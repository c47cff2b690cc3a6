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

from typing import Any, NamedTuple, Sequence

import torch
from torch import Tensor

from . import inference, limits
from ._checks import as_float_tensor, as_tokens, check_probabilities, input_resolution
from .hmm import HMM, _cumulative, _sample_categorical

__all__ = [
    "MemoryHMM",
    "MemorySample",
    "MemoryInference",
    "InferenceTooLargeError",
    "MAX_MEMORY_ELEMENTS",
    "memory_hmm_to_json",
    "memory_hmm_from_json",
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
        masked_posterior: (B, T, K) ``P(Z_t | x_{-t})`` (position t left out).
        masked_emission_posterior: (B, T, V * S) ``P((M_{J_t}, S_t) | x_{-t})``.
        masked_memory: (B, T, N, V) ``P(M_j = v | x_{-t})``.
        start_backward: (B, C, K) normalised backward messages to a state placed one
            step before ``x_0`` (a mask): proportional to ``P(x | Z_{-1} = z, M = c)``.
        start_log_scale: (B, C) with
            ``P(x | Z_{-1} = z, M = c) = exp(start_log_scale[b, c]) * start_backward[b, c, z]``.
    """

    log_prob: Tensor
    memory: Tensor | None = None
    posterior: Tensor | None = None
    emission_posterior: Tensor | None = None
    masked_posterior: Tensor | None = None
    masked_emission_posterior: Tensor | None = None
    masked_memory: Tensor | None = None
    start_backward: Tensor | None = None
    start_log_scale: Tensor | None = None


_OUTPUTS = MemoryInference._fields[1:]


def _positive_int(label: str, v: Any) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise ValueError(f"{label} must be a positive integer, got {v!r}")
    return v


def _cell_marginals(x: Tensor, axis: int, N: int) -> list[Tensor]:
    """``x`` has N consecutive cell axes (size V each) starting at ``axis``.

    Returns N tensors; the j-th keeps cell axis j (at position ``axis``) and sums the others.
    """
    out = []
    for j in range(N):
        others = [axis + i for i in range(N) if i != j]
        out.append(x.sum(others) if others else x)
    return out


def _safe_div(x: Tensor, s: Tensor) -> Tensor:
    """``x / s`` where ``s > 0``, and 0 where ``s == 0`` (then ``x`` is 0 too)."""
    return x / torch.where(s > 0, s, torch.ones_like(s))


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
            types = {x.dtype for x in (memory_prior, initial, transition, emission) if isinstance(x, Tensor)}
            dtype = torch.float32 if types == {torch.float32} else torch.float64
        prior = as_float_tensor("memory_prior", memory_prior, dtype, device)
        self.initial = as_float_tensor("initial", initial, dtype, device)
        self.transition = as_float_tensor("transition", transition, dtype, device)
        emission_in = emission
        emission = as_float_tensor("emission", emission, dtype, device)
        if prior.dim() not in (1, 2):
            raise ValueError(f"memory_prior must have shape (V,) or (N, V), got {tuple(prior.shape)}")
        check_probabilities("memory_prior", prior, prior.dim(), resolution=input_resolution(memory_prior))
        check_probabilities("initial", self.initial, 1, resolution=input_resolution(initial))
        check_probabilities("transition", self.transition, 2, resolution=input_resolution(transition))
        if emission.dim() not in (2, 3):
            raise ValueError(f"emission must have shape (V, S, n) or (V * S, n), got {tuple(emission.shape)}")
        check_probabilities("emission", emission, emission.dim(), resolution=input_resolution(emission_in))
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
            _positive_int("num_cells", num_cells)
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
        #: :func:`hmmtune.models.io.parse_parameters`): the declared parameters and the
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
        return MAX_MEMORY_ELEMENTS if max_elements is None else _positive_int("max_elements", max_elements)

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

    def _read_index(self) -> Tensor:
        """(C, K): the emission row ``M_j * S + s`` read by chain state ``z = j * S + s`` in configuration c."""
        if "read" not in self._cache:
            S = self.num_local_states
            configs = self.configurations()  # (C, N)
            s = torch.arange(S, device=self.device)
            self._cache["read"] = (configs[:, :, None] * S + s).reshape(self.num_configurations, -1)
        return self._cache["read"]

    def _log_config_prior(self) -> Tensor:
        """(C,) ``log rho(c) = sum_j log memory_prior[j, c_j]`` (``-inf`` for impossible c)."""
        if "logprior" not in self._cache:
            configs = self.configurations()
            logp = self.memory_prior.log()  # (N, V)
            self._cache["logprior"] = logp.gather(1, configs.T).sum(0)
        return self._cache["logprior"]

    def _config_emission_T(self) -> Tensor:
        """(n, C, K): ``emission[read[c, z], x]`` arranged for gathering by token."""
        if "emitT" not in self._cache:
            self._cache["emitT"] = self.emission.T[:, self._read_index()].contiguous()
        return self._cache["emitT"]

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
        _positive_int("num_sequences", num_sequences)
        _positive_int("length", length)
        B, T, N, S = num_sequences, length, self.num_cells, self.num_local_states
        # states, pointer, local state, rows, two uniforms, tokens and the gathered rows (8 n)
        limits.check_memory(f"sampling {B} sequences of length {T}", float(B) * (T * (56 + 8 * self.num_tokens) + 16 * N))
        gen = torch.Generator()
        gen.manual_seed(seed if seed is not None else int(torch.seed()))
        cum_prior = _cumulative(self.memory_prior.cpu())  # (N, V)
        cum_init = _cumulative(self.initial.cpu())
        cum_trans = _cumulative(self.transition.cpu())
        cum_emit = _cumulative(self.emission.cpu())
        u_mem = torch.rand(B, N, generator=gen, dtype=torch.float64)
        memory = _sample_categorical(cum_prior.expand(B, N, -1).contiguous(), u_mem)
        states = torch.empty(B, T, dtype=torch.long)
        u = torch.rand(T, B, generator=gen, dtype=torch.float64)
        z = _sample_categorical(cum_init.expand(B, -1).contiguous(), u[0])
        states[:, 0] = z
        for t in range(1, T):
            z = _sample_categorical(cum_trans[z], u[t])
            states[:, t] = z
        pointer, local = states // S, states % S
        rows = memory.gather(1, pointer) * S + local
        v = torch.rand(B, T, generator=gen, dtype=torch.float64)
        tokens = _sample_categorical(cum_emit[rows], v)
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
        outputs = tuple(outputs)
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
        elif not isinstance(chunk_size, int) or isinstance(chunk_size, bool) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        start = self.initial @ self.transition if after_mask else self.initial
        parts = []
        for lo in range(0, max(B, 1), chunk_size):  # an empty batch still runs once
            try:
                parts.append(self._infer_chunk(tokens[lo : lo + chunk_size], start, want))
            except inference.ZeroProbabilityError as exc:
                idx = lo + exc.index
                msg = str(exc).replace(f"sequence {exc.index} ", f"sequence {idx} ", 1)
                raise inference.ZeroProbabilityError(msg, idx, exc.position) from None
        fields = {}
        for name in MemoryInference._fields:
            if parts[0]._asdict()[name] is None:
                fields[name] = None
                continue
            val = parts[0]._asdict()[name] if len(parts) == 1 else torch.cat([p._asdict()[name] for p in parts], 0)
            fields[name] = val[0] if single else val
        return MemoryInference(**fields)

    def _stream_log_likelihood(self, tokens: Tensor, start: Tensor) -> Tensor:
        """(b, C) ``log P(x | c)`` by a scaled forward pass that stores no messages."""
        b, T = tokens.shape
        C, K = self.num_configurations, self.num_states
        E = self._config_emission_T()  # (n, C, K)
        A = self.transition
        if inference.use_time_parallel(b * C, T, K):  # long sequences: the time-parallel path
            L = E[tokens.T.contiguous()].view(T, b * C, K).transpose(0, 1)
            return inference.hmm_log_prob(start, A, L, allow_zero=True).view(b, C)
        one = torch.ones((), dtype=A.dtype, device=A.device)
        alpha = start.expand(b * C, K)
        log_lik = torch.zeros(b * C, dtype=A.dtype, device=A.device)
        tok = tokens.T.contiguous()
        for t in range(T):
            f = alpha * E[tok[t]].view(b * C, K)
            norm = f.sum(-1, keepdim=True)
            f = f / torch.where(norm > 0, norm, one)
            log_lik += norm.squeeze(-1).log()
            if t + 1 < T:
                alpha = f @ A
        return log_lik.view(b, C)

    def _infer_chunk(self, tokens: Tensor, start: Tensor, want: set) -> MemoryInference:
        b, T = tokens.shape
        N, V, S, K, C = self.num_cells, self.num_values, self.num_local_states, self.num_states, self.num_configurations
        A = self.transition
        logprior = self._log_config_prior()
        if not want - {"memory"}:
            logw = logprior + self._stream_log_likelihood(tokens, start)
            log_prob = torch.logsumexp(logw, -1)
            bad = ~torch.isfinite(log_prob)
            if bool(bad.any()):  # rerun the offending sequence with stored messages to locate the token
                i = int(torch.nonzero(bad)[0, 0])
                try:
                    self._infer_chunk(tokens[i : i + 1], start, {"posterior"})
                except inference.ZeroProbabilityError as exc:
                    raise inference.ZeroProbabilityError(
                        str(exc).replace("sequence 0 ", f"sequence {i} ", 1), i, exc.position
                    ) from None
            out = {"log_prob": log_prob}
            if "memory" in want:
                w = torch.exp(logw - log_prob[:, None])
                out["memory"] = torch.stack(_cell_marginals(w.view((b,) + (V,) * N), 1, N), 1)
            return MemoryInference(**out)
        # Lt[t, b, c, z] = emission[read[c, z], x_{b,t}], time-major so that the batched
        # recursions (which work time-major) need no copy.
        Lt = self._config_emission_T()[tokens.T.contiguous()].contiguous()  # (T, b, C, K)
        L = Lt.view(T, b * C, K).transpose(0, 1)  # (b*C, T, K) view
        fwd = inference.hmm_forward(start, A, L, allow_zero=True)
        logw = logprior + fwd.log_prob.view(b, C)  # (b, C) log rho(c) P(x | c)
        log_prob = torch.logsumexp(logw, -1)
        pred = fwd.predicted.transpose(0, 1).view(T, b, C, K)
        bad = ~torch.isfinite(log_prob)
        if bool(bad.any()):
            i = int(torch.nonzero(bad)[0, 0])
            logfn = (pred[:, i] * Lt[:, i]).sum(-1).log()  # (T, C)
            alive = torch.isfinite(logprior + torch.cumsum(logfn, 0)).any(-1)
            t = int(torch.nonzero(~alive)[0, 0])
            raise inference.ZeroProbabilityError(
                f"sequence {i} has probability zero under the memory model: no memory configuration "
                + (f"and hidden path generates its tokens 0..{t}" if t > 0 else "can emit its first token"),
                index=i,
                position=t,
            )
        out: dict[str, Tensor | None] = {"log_prob": log_prob}
        w = torch.exp(logw - log_prob[:, None])  # (b, C) P(M = c | x)
        if "memory" in want:
            out["memory"] = torch.stack(_cell_marginals(w.view((b,) + (V,) * N), 1, N), 1)  # (b, N, V)
        need_beta = want & {"posterior", "emission_posterior", "masked_posterior", "masked_emission_posterior", "masked_memory", "start_backward", "start_log_scale"}
        if not need_beta:
            return MemoryInference(**out)
        bwd = inference.hmm_backward_scaled(A, L, allow_zero=True)
        beta = bwd.beta.transpose(0, 1).view(T, b, C, K)

        def read(joint: Tensor) -> Tensor:
            # joint (T, b, C, K) -> (b, T, V * S): sum over c and j of joint[.., c, (j, s)] 1[c_j = v].
            J = joint.view((T, b) + (V,) * N + (N, S))
            total = sum(_cell_marginals(J[..., j, :], 2, N)[j] for j in range(N))  # (T, b, V, S)
            return total.permute(1, 0, 2, 3).reshape(b, T, V * S)

        if want & {"posterior", "emission_posterior"}:
            # In place on the filtered messages, which are not needed afterwards.
            fb = fwd.filtered.transpose(0, 1).view(T, b, C, K).mul_(beta)
            norm = fb.sum(-1, keepdim=True)
            joint = fb.div_(torch.where(norm > 0, norm, torch.ones_like(norm))).mul_(w[None, :, :, None])
            if "posterior" in want:
                out["posterior"] = joint.sum(2).transpose(0, 1)
            if "emission_posterior" in want:
                out["emission_posterior"] = read(joint)
        if want & {"masked_posterior", "masked_emission_posterior", "masked_memory"}:
            # log rho(c) P(x_{-t}, Z_t = z | c) = log rho(c) + log P(x_{0:t-1} | c) + log pred + log beta + log scale.
            logfn = (pred * Lt).sum(-1).log()  # (T, b, C) forward normalisers
            F = torch.cat([torch.zeros_like(logfn[:1]), torch.cumsum(logfn[:-1], 0)])  # log P(x_{0:t-1} | c)
            pb = pred.mul_(beta)  # in place: pred is not needed afterwards
            s = pb.sum(-1)  # (T, b, C)
            log_scale = bwd.log_scale.transpose(0, 1).view(T, b, C)
            lw = logprior + F + log_scale + s.log()  # (T, b, C)
            wt = torch.softmax(lw, -1)  # P(M = c | x_{-t})
            if want & {"masked_posterior", "masked_emission_posterior"}:
                joint = pb.div_(torch.where(s > 0, s, torch.ones_like(s))[..., None]).mul_(wt[..., None])
                if "masked_posterior" in want:
                    out["masked_posterior"] = joint.sum(2).transpose(0, 1)
                if "masked_emission_posterior" in want:
                    out["masked_emission_posterior"] = read(joint)
            if "masked_memory" in want:
                cells = _cell_marginals(wt.view((T, b) + (V,) * N), 2, N)  # N x (T, b, V)
                out["masked_memory"] = torch.stack(cells, -2).transpose(0, 1)  # (b, T, N, V)
        if want & {"start_backward", "start_log_scale"}:
            b0 = (L[:, 0] * bwd.beta[:, 0]) @ A.T  # (b*C, K)
            n0 = b0.sum(-1)
            out["start_backward"] = _safe_div(b0, n0[:, None]).view(b, C, K)
            out["start_log_scale"] = (bwd.log_scale[:, 0] + n0.log()).view(b, C)
        return MemoryInference(**out)

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

    def masked_posterior(self, x: Any, **kwargs) -> Tensor:
        """Leave-one-out ``P(Z_t | x_{-t})``: (B, T, N * S). ``x`` is a plain sequence
        (``Z_0 ~ initial``); for inputs after a mask see :class:`hmmtune.OracleMLM`."""
        return self.infer(x, ("masked_posterior",), **kwargs).masked_posterior

    def masked_emission_posterior(self, x: Any, **kwargs) -> Tensor:
        """Leave-one-out ``P((M_{J_t}, S_t) | x_{-t})``: (B, T, V * S); ``@ emission`` gives
        the masked LM's prediction ``G_t(x)`` (docs/theory.md, "Memory-augmented HMMs")."""
        return self.infer(x, ("masked_emission_posterior",), **kwargs).masked_emission_posterior

    def masked_memory_posterior(self, x: Any, **kwargs) -> Tensor:
        """Leave-one-out ``P(M_j = v | x_{-t})``: (B, T, N, V) (Theorem M's anchors read these)."""
        return self.infer(x, ("masked_memory",), **kwargs).masked_memory

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
        read = self._read_index()
        prior = self._log_config_prior().exp()
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
        """Serialise (format in ``docs/memory.md``); returns the JSON text."""
        return memory_hmm_to_json(self, path, **kwargs)

    @classmethod
    def from_json(cls, source, **kwargs) -> "MemoryHMM":
        """Load from a JSON file path, JSON text or a dict with ``"kind": "memory_hmm"``."""
        return memory_hmm_from_json(source, **kwargs)


# --------------------------------------------------------------------- JSON
def memory_hmm_to_json(model: MemoryHMM, path=None, *, exact: bool | None = None, indent: int | None = 1) -> str:
    """Serialise a :class:`MemoryHMM`; if ``path`` is given also write the file.

    The emission is written as (V, S, n) nested lists; the memory prior as (V,) when
    every cell shares it, else (N, V). Args as :func:`hmmtune.models.io.hmm_to_json`.
    """
    import json
    from pathlib import Path

    from .io import FORMAT_VERSION, format_entry

    use_exact = model.exact is not None if exact is None else exact
    if use_exact and model.exact is None:
        raise ValueError("this model has no exact entries to write; load it from exact JSON or pass exact=False")
    V, S, n = model.num_values, model.num_local_states, model.num_tokens
    data: dict[str, Any] = {"kind": "memory_hmm", "format_version": FORMAT_VERSION}
    if model.name:
        data["name"] = model.name
    if model.description:
        data["description"] = model.description
    data["num_cells"] = model.num_cells
    if use_exact:
        ex = model.exact
        rows = lambda M: [[format_entry(M[i, j]) for j in range(M.cols)] for i in range(M.rows)]
        prior = rows(ex["memory_prior"])
        data["memory_prior"] = prior[0] if model.shared_prior else prior
        data["initial"] = [format_entry(v) for v in ex["initial"]]
        data["transition"] = rows(ex["transition"])
        em = rows(ex["emission"])
        data["emission"] = [em[v * S : (v + 1) * S] for v in range(V)]
    else:
        if model.dtype != torch.float64:
            data["dtype"] = "float32"  # rows sum to 1 at float32 resolution only
        prior = model.memory_prior.double().cpu().tolist()
        data["memory_prior"] = prior[0] if model.shared_prior else prior
        data["initial"] = model.initial.double().cpu().tolist()
        data["transition"] = model.transition.double().cpu().tolist()
        data["emission"] = model.emission.double().cpu().view(V, S, n).tolist()
    text = json.dumps(data, indent=indent)
    if path is not None:
        Path(path).write_text(text + "\n")
    return text


def _depth(value: Any) -> int:
    d = 0
    while isinstance(value, list) and value:
        value, d = value[0], d + 1
    return d


def memory_hmm_from_json(source: Any, *, dtype=None, device=None) -> MemoryHMM:
    """Load a :class:`MemoryHMM` from a path, JSON text or dict (``"kind": "memory_hmm"``).

    Fields: ``memory_prior`` (V,) or (N, V); ``initial`` (N*S,); ``transition``
    (N*S, N*S); ``emission`` (V, S, n) or (V*S, n); optional ``num_cells``, ``name``,
    ``description``, ``dtype`` (``"float32"``, written for float32 models: rows are
    then checked at float32 resolution and the model loads as float32) and ``parameters``
    (as for an HMM, :func:`hmmtune.models.io.parse_parameters`: every entry must then be
    exact, rows sum to 1 for every parameter value, the model is taken at the declared
    values and keeps the expressions in ``symbolic``). Entries follow the HMM rules (JSON
    numbers, or strings with exact rationals such as ``"1/3"``); when every entry is exact
    the model keeps sympy matrices in ``exact`` and exact rows must sum to exactly 1.

    Raises:
        ModelFileError: naming the file and the field.
    """
    import numpy as np
    import sympy

    from .io import (
        ModelFileError,
        _wrap_value_error,
        check_format_version,
        exact_at_parameters,
        load_json_source,
        parse_entries,
        parse_parameters,
        require_exact_entries,
    )

    data, label = load_json_source(source)
    check_format_version(data, label)
    kind = data.get("kind")
    if kind != "memory_hmm":
        raise ModelFileError(f"{label}: field 'kind' is {kind!r}, expected 'memory_hmm' (use hmmtune.load_model to dispatch)")
    num_cells = data.get("num_cells")
    if num_cells is not None and (not isinstance(num_cells, int) or isinstance(num_cells, bool) or num_cells < 1):
        raise ModelFileError(f"{label}: field 'num_cells' must be a positive integer, got {_json_repr(num_cells)}")
    params = parse_parameters(data, label)  # the HMM format's "parameters" (docs/formats.md)
    symbols = {name: p["symbol"] for name, p in params.items()} or None
    parsed = {}
    for field, dims in (("memory_prior", (1, 2)), ("initial", (1,)), ("transition", (2,)), ("emission", (2, 3))):
        if field not in data:
            raise ModelFileError(f"{label}: missing field {field!r}")
        d = _depth(data[field])
        ndim = d if d in dims else dims[-1]
        parsed[field] = (ndim, parse_entries(data, field, ndim, label, symbols))
    if params:
        require_exact_entries(label, {k: ex for k, (_, (_, ex)) in parsed.items()})
    vectors = tuple(k for k, (ndim, _) in parsed.items() if ndim == 1)

    def matrices() -> dict:
        """The exact entries as sympy matrices (emission (V * S, n), vectors as columns)."""
        out = {}
        for k, (ndim, (_, ex)) in parsed.items():
            try:
                out[k] = sympy.Matrix([row for block in ex for row in block] if ndim == 3 else ex)
            except ValueError:
                raise ModelFileError(f"{label}: field {k!r} has rows of different lengths") from None
        return out

    floats = {k: f for k, (_, (f, _)) in parsed.items()}
    symbolic = None
    if params:  # symbolic entries: exact values and floats are taken at the parameter values
        symbolic = matrices()
        at_values = exact_at_parameters(label, symbolic, params, vectors=vectors)
        floats = {k: [float(v) for v in M] if k in vectors else [[float(v) for v in row] for row in M.tolist()] for k, M in at_values.items()}
    precision = data.get("dtype")
    if precision is not None:
        if precision not in ("float32", "float64"):
            raise ModelFileError(f"{label}: field 'dtype' must be \"float32\" or \"float64\", got {precision!r}")
        if precision == "float32" and not all(ex is not None for _, (_, ex) in parsed.values()):
            # numbers written from float32: validate them at float32 resolution
            floats = {k: np.asarray(f, dtype=np.float32) for k, f in floats.items()}
            dtype = torch.float32 if dtype is None else dtype
    model = _wrap_value_error(
        label,
        MemoryHMM,
        floats["memory_prior"],
        floats["initial"],
        floats["transition"],
        floats["emission"],
        num_cells,
        dtype=dtype,
        device=device,
        name=data.get("name"),
        description=data.get("description"),
    )
    if all(ex is not None for _, (_, ex) in parsed.values()):
        exact = at_values if params else matrices()
        for k, ex in exact.items():
            _check_exact_rows(label, k, ex.T if k in vectors else ex, 1 if k in vectors else 2)
        if parsed["memory_prior"][0] == 1:
            exact["memory_prior"] = sympy.Matrix([list(exact["memory_prior"])] * model.num_cells)
            if symbolic is not None:
                symbolic["memory_prior"] = sympy.Matrix([list(symbolic["memory_prior"])] * model.num_cells)
        model.exact = exact
    if params:
        model.parameters = params
        model.symbolic = symbolic
    return model


def _check_exact_rows(label: str, field: str, mat, ndim: int) -> None:
    """Exact rows of ``mat`` (one row per distribution) are nonnegative and sum to exactly 1."""
    from .io import ModelFileError

    for i in range(mat.rows):
        row = list(mat.row(i))
        where = f"[{i}]" if ndim > 1 else ""
        for j, e in enumerate(row):
            if e < 0:
                raise ModelFileError(f"{label}: field {field!r}{where}[{j}] = {e} is negative")
        total = sum(row)
        if total != 1:
            raise ModelFileError(f"{label}: field {field!r}{' row ' + str(i) if ndim > 1 else ''} sums to {total} exactly, not 1")


def _json_repr(v: Any) -> str:
    import json

    try:
        return json.dumps(v)
    except TypeError:
        return repr(v)


def _register() -> None:
    from .io import LOADERS

    LOADERS["memory_hmm"] = memory_hmm_from_json


_register()
