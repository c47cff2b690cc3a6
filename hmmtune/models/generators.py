"""Random HMM generators: the paper's near-deterministic HMMs, Dirichlet HMMs, and the
memory-augmented HMMs of the paper's experiment 2 with their vanilla controls."""

from __future__ import annotations

import numpy as np

from . import arguments, limits
from .hmm import HMM
from .memory import MemoryHMM

__all__ = ["paper_hmm", "authors_hmm_arrays", "authors_task_weights", "dirichlet_hmm", "permutation_mixture", "paper_memory_hmm", "paper_vanilla_control"]


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def _positive_real(label: str, v) -> float:
    if arguments.real(label, v, 0.0) <= 0:
        raise ValueError(f"{label} must be a positive finite number, got {v!r}")
    return float(v)


def _check_size(what: str, num_states: int, num_tokens: int) -> None:
    # transition, its row sums and the HMM's own copies; emission likewise (float64)
    limits.check_memory(what, 8.0 * num_states * (4 * num_states + 3 * num_tokens))


def _rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def permutation_mixture(num_states: int, temp: float, rng: np.random.Generator) -> np.ndarray:
    """``sum_k w_k P_k`` over ``num_states`` random permutation matrices ``P_k`` with weights
    ``w = softmax((U - 0.5) / temp)`` (docs/theory.md, "The paper's experiments"). Doubly stochastic and
    peaked. An entry (i, j) that none of the independent permutations maps is exactly 0: on
    average a fraction ``(1 - 1/m)^m`` (about 1/e) of the entries (docs/theory.md, "Tolerance
    mode"), so not every entry is positive; covered entries are positive (down to about 1e-44)."""
    w = _softmax((rng.random(num_states) - 0.5) / temp)
    A = np.zeros((num_states, num_states))
    rows = np.arange(num_states)
    for k in range(num_states):
        A[rows, rng.permutation(num_states)] += w[k]
    return A / A.sum(axis=1, keepdims=True)


def paper_hmm(
    num_states: int,
    num_tokens: int = 10,
    transition_temp: float = 0.01,
    emission_temp: float = 0.01,
    start_temp: float = 10.0,
    seed=None,
    source: str = "hmmtune",
    **kwargs,
) -> HMM:
    """The random HMM of the paper's experiments (docs/theory.md, "The paper's experiments").

    ``source="authors"`` reproduces the authors' own draws (their public
    ``src/generate_data.py``): numpy's legacy ``RandomState(seed)`` (the same stream as
    ``np.random.seed(seed)``), ``startprob``, the mixing weights, ``m`` permutation matrices
    ``eye(m)[permutation(m)]`` in turn, ``transmat = sum_k w_k P_k`` (not renormalised), then
    the emission rows, with the authors' order of floating-point operations, so the arrays are
    equal to theirs bit for bit. Their experiment 1 used seeds 1..20. ``source="hmmtune"``
    (default) draws from a ``numpy.random.Generator`` (the same law, other numbers).

    - ``initial = softmax((U - 0.5) / start_temp)`` over the states (nearly uniform);
    - ``transition`` = a mixture of ``num_states`` random permutation matrices with
      weights ``softmax((U - 0.5) / transition_temp)`` (doubly stochastic, peaked);
    - each emission row ``softmax((U - 0.5) / emission_temp)`` over the tokens
      (nearly one-hot).

    Args:
        seed: int, None or a ``numpy.random.Generator``.
        kwargs: passed to :class:`HMM` (``dtype``, ``device``).
    """
    for label, v in (("num_states", num_states), ("num_tokens", num_tokens)):
        arguments.integer(label, v, 1)
    for label, v in (("transition_temp", transition_temp), ("emission_temp", emission_temp), ("start_temp", start_temp)):
        _positive_real(label, v)
    _check_size(f"paper_hmm(num_states={num_states}, num_tokens={num_tokens})", num_states, num_tokens)
    if source == "authors":
        initial, transition, emission = authors_hmm_arrays(num_states, num_tokens, seed, transition_temp, emission_temp, start_temp)
        kwargs.setdefault("name", f"paper_hmm(m={num_states}, n={num_tokens}, seed={seed}, source='authors')")
        return HMM(initial, transition, emission, **kwargs)
    if source != "hmmtune":
        raise ValueError(f"source must be 'hmmtune' or 'authors', got {source!r}")
    rng = _rng(seed)
    initial = _softmax((rng.random(num_states) - 0.5) / start_temp)
    transition = permutation_mixture(num_states, transition_temp, rng)
    emission = _softmax((rng.random((num_states, num_tokens)) - 0.5) / emission_temp)
    kwargs.setdefault("name", f"paper_hmm(m={num_states}, n={num_tokens}, seed={seed if not isinstance(seed, np.random.Generator) else 'rng'})")
    return HMM(initial, transition, emission, **kwargs)


def _authors_softmax(x: np.ndarray, temp: float, axis=None) -> np.ndarray:
    """The authors' softmax, with their order of operations (divide, subtract the max)."""
    x = x / temp
    if axis is None:
        x = x - np.amax(x)
        return np.exp(x) / np.sum(np.exp(x))
    x = x - np.expand_dims(np.amax(x, axis=axis), axis=axis)
    return np.exp(x) / np.expand_dims(np.sum(np.exp(x), axis=axis), axis=axis)


def _legacy_seed(seed, what: str) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**32:
        raise ValueError(f"{what}: the authors' draws need an integer seed in [0, 2**32) for numpy's legacy RandomState, got {seed!r}")
    return int(seed)


def authors_hmm_arrays(
    num_states: int,
    num_tokens: int = 10,
    seed: int = 1,
    transition_temp: float = 0.01,
    emission_temp: float = 0.01,
    start_temp: float = 10.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(startprob (m,), transmat (m, m), emissionprob (m, n))`` as the authors draw them
    (see :func:`paper_hmm` with ``source="authors"``), float64 numpy arrays."""
    rs = np.random.RandomState(_legacy_seed(seed, "paper_hmm(source='authors')"))
    m = int(num_states)
    startprob = _authors_softmax(rs.rand(m) - 0.5, start_temp)
    mixing = _authors_softmax(rs.rand(m) - 0.5, transition_temp)[:, np.newaxis, np.newaxis]
    perms = [np.eye(m)[rs.permutation(m)] for _ in range(m)]
    transmat = np.sum(mixing * perms, axis=0)
    emission = _authors_softmax(rs.rand(m, num_tokens) - 0.5, emission_temp, axis=1)
    return startprob, transmat, emission


def authors_task_weights(num_states: int, seed: int, attempt: int = 0, num_classes: int = 2, num_nonzero: int = 6) -> np.ndarray:
    """The authors' downstream task weights ``(num_classes, num_states)``.

    Their script reseeds numpy's legacy global generator with the downstream seed, draws
    ``idx = choice(C * m, size=6)`` (with replacement) and ``weights[idx] = randn(6)``, and
    reshapes to (C, m). The downstream seed is the HMM's seed on the first attempt
    (``attempt=0``) and the attempt number ``1, 2, ...`` on the retries of their runner
    (``scripts/run_exps_seed.sh``), which re-draws the task when fine-tuning fails.
    """
    if not isinstance(attempt, (int, np.integer)) or attempt < 0:
        raise ValueError(f"attempt must be a nonnegative integer, got {attempt!r}")
    downstream_seed = _legacy_seed(seed, "authors_task_weights") if attempt == 0 else int(attempt)
    rs = np.random.RandomState(downstream_seed)
    w = np.zeros(num_classes * num_states)
    idx = rs.choice(len(w), size=num_nonzero)
    w[idx] = rs.randn(len(idx))
    return w.reshape((num_classes, num_states))


def dirichlet_hmm(
    num_states: int,
    num_tokens: int,
    initial_concentration: float = 1.0,
    transition_concentration: float = 1.0,
    emission_concentration: float = 1.0,
    seed=None,
    **kwargs,
) -> HMM:
    """An HMM whose initial law and rows are independent symmetric Dirichlet draws.

    Smaller concentrations give sparser, more peaked rows (very small ones may round
    entries to exactly 0 in float64, which the model accepts).
    """
    for label, v in (("num_states", num_states), ("num_tokens", num_tokens)):
        arguments.integer(label, v, 1)
    for label, v in (
        ("initial_concentration", initial_concentration),
        ("transition_concentration", transition_concentration),
        ("emission_concentration", emission_concentration),
    ):
        _positive_real(label, v)
    _check_size(f"dirichlet_hmm(num_states={num_states}, num_tokens={num_tokens})", num_states, num_tokens)
    rng = _rng(seed)
    initial = rng.dirichlet(np.full(num_states, initial_concentration))
    transition = rng.dirichlet(np.full(num_states, transition_concentration), size=num_states)
    emission = rng.dirichlet(np.full(num_tokens, emission_concentration), size=num_states)
    kwargs.setdefault("name", f"dirichlet_hmm(m={num_states}, n={num_tokens}, seed={seed if not isinstance(seed, np.random.Generator) else 'rng'})")
    return HMM(initial, transition, emission, **kwargs)


def paper_memory_hmm(
    num_values: int,
    num_local_states: int = 4,
    num_tokens: int = 10,
    transition_temp: float = 0.01,
    emission_temp: float = 0.01,
    start_temp: float = 10.0,
    seed=None,
    **kwargs,
) -> MemoryHMM:
    """The memory-augmented HMM of the paper's experiment 2 (docs/theory.md, "The paper's experiments").

    A single memory cell (N = 1) with ``V = num_values`` values and
    ``S = num_local_states`` local states:

    - ``memory_prior = softmax((U - 0.5) / start_temp)`` over the V values and
      ``initial = softmax((U - 0.5) / start_temp)`` over the S local states (both
      nearly uniform);
    - ``transition``: one random S x S permutation-mixture block
      (:func:`permutation_mixture` at ``transition_temp``), the same for every memory
      value because the memory never changes;
    - ``emission``: an independent row ``softmax((U - 0.5) / emission_temp)`` over the
      tokens for each pair (v, s).

    The authors build the flattened HMM directly: ``V * S`` states, the block replicated
    on the block diagonal, and an initial law drawn over all ``V * S`` pairs. Our
    :meth:`MemoryHMM.to_hmm` gives the same block-diagonal transition, but its initial
    law is the product ``memory_prior[v] * initial[s]`` (memory independent of the
    first local state), a subset of the authors' initial laws; both are nearly uniform
    at the default ``start_temp``. See ``docs/memory.md``.

    Args:
        seed: int, None or a ``numpy.random.Generator``.
        kwargs: passed to :class:`MemoryHMM` (``dtype``, ``device``, ``name``).
    """
    for label, v in (("num_values", num_values), ("num_local_states", num_local_states), ("num_tokens", num_tokens)):
        arguments.integer(label, v, 1)
    for label, v in (("transition_temp", transition_temp), ("emission_temp", emission_temp), ("start_temp", start_temp)):
        _positive_real(label, v)
    rng = _rng(seed)
    V, S = int(num_values), int(num_local_states)
    memory_prior = _softmax((rng.random(V) - 0.5) / start_temp)
    initial = _softmax((rng.random(S) - 0.5) / start_temp)
    transition = permutation_mixture(S, transition_temp, rng)
    emission = _softmax((rng.random((V * S, num_tokens)) - 0.5) / emission_temp)
    seed_label = seed if not isinstance(seed, np.random.Generator) else "rng"
    kwargs.setdefault("name", f"paper_memory_hmm(V={V}, S={S}, n={num_tokens}, seed={seed_label})")
    return MemoryHMM(memory_prior, initial, transition, emission, 1, **kwargs)


def paper_vanilla_control(
    num_values: int,
    num_local_states: int = 4,
    num_tokens: int = 10,
    transition_temp: float = 0.01,
    emission_temp: float = 0.01,
    start_temp: float = 10.0,
    seed=None,
    **kwargs,
) -> HMM:
    """The vanilla control of experiment 2 (docs/theory.md, "The paper's experiments"): :func:`paper_hmm` with
    ``m = num_values * num_local_states`` states (a full random permutation-mixture
    transition instead of the block-diagonal one), same vocabulary and temperatures."""
    for label, v in (("num_values", num_values), ("num_local_states", num_local_states)):
        arguments.integer(label, v, 1)
    m = int(num_values) * int(num_local_states)
    seed_label = seed if not isinstance(seed, np.random.Generator) else "rng"
    kwargs.setdefault("name", f"paper_vanilla_control(m={m} = {num_values}x{num_local_states}, n={num_tokens}, seed={seed_label})")
    return paper_hmm(m, num_tokens, transition_temp, emission_temp, start_temp, seed=seed, **kwargs)
