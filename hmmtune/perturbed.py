"""Imperfect pretrained masked LMs with a controlled error (docs/robustness.md).

The perfect masked LM (:class:`hmmtune.OracleMLM`) idealises pretraining. A real
pretrained model makes an error; this module builds two kinds with a chosen size:

- **a misspecified model** (:func:`perturb_hmm`): the oracle of an HMM whose named parts
  (``initial`` = pi, ``transition`` = A, ``emission`` = the rows of W) are each moved to a
  chosen total-variation distance, row by row, from the true ones. Its predictions are the
  exact conditionals of the wrong model, as a pretrained model that learned the wrong
  parameters would give;
- **bounded additive noise on G** (:class:`NoisyOracle`): ``G'(x) = G(x) + e(x)`` with
  ``e(x) = t (q(x) - G(x))``, a deterministic function of the input (the same input always
  gets the same error, as a network's would) with ``||e(x)||_1 <= 2 t``; ``G'(x)`` stays a
  distribution. ``q(x)`` is a fixed random smooth map of the oracle's posterior, so the
  error is not a linear function of ``G`` that a head could undo;
- **a short context** (:class:`ContextOracle`, not a perturbation of W, A or pi): the
  perfect prediction given only the first ``K`` tokens ``x_1..x_K``. Unlike the two above,
  this error destroys information about the input, as an under-trained network does.

Both answer the oracle's public methods used by head, prompt and attention tuning
(``encode``, ``mask_prediction`` with an optional prompt, ``token_predictions``, ``model``),
so they drop into :func:`hmmtune.tuning.fit_head`, :func:`~hmmtune.tuning.fit_prompt` and
:func:`~hmmtune.tuning.fit_attention` in place of the oracle. :func:`tv_to_oracle` measures
the mean and worst total variation of the predictions to the perfect oracle on given inputs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from .models.hmm import HMM
from .models.memory import MemoryHMM
from .oracle import OracleMLM

__all__ = [
    "PARTS",
    "PretrainingError",
    "perturb_rows",
    "perturb_hmm",
    "NoisyOracle",
    "ContextOracle",
    "imperfect_oracle",
    "TVStats",
    "tv_to_oracle",
]

#: The parts of a model :func:`perturb_hmm` can move, by name.
PARTS = ("initial", "transition", "emission")


class PerturbationError(ValueError):
    """A perturbation that cannot be built (a distance out of range, an unknown part)."""


def perturb_rows(rows: np.ndarray, distance: float, rng: np.random.Generator, what: str = "rows") -> np.ndarray:
    """Move every row of ``rows`` (k, d), each a distribution, to total-variation distance
    exactly ``distance`` from itself.

    Row ``r`` becomes ``r + s (q - r)`` with ``q`` a uniform random distribution
    (Dirichlet(1)) and ``s = distance / TV(q, r)``; where ``TV(q, r) < distance`` the point
    mass on the row's smallest entry is used instead (``TV = 1 - min r``). The result is a
    distribution; zeros of ``r`` generally become positive (the support changes).

    Raises:
        PerturbationError: ``distance`` outside ``[0, 1)`` or larger than a row allows.
    """
    rows = np.atleast_2d(np.asarray(rows, dtype=np.float64))
    if not (np.isfinite(distance) and 0.0 <= distance < 1.0):
        raise PerturbationError(f"{what}: the distance must be a total variation in [0, 1), got {distance!r}")
    if distance == 0.0:
        return rows.copy()
    k, d = rows.shape
    q = rng.dirichlet(np.ones(d), size=k)
    tv = 0.5 * np.abs(q - rows).sum(1)
    far = tv < distance
    if far.any():
        j = rows.argmin(1)
        point = np.zeros_like(rows)
        point[np.arange(k), j] = 1.0
        q[far] = point[far]
        tv[far] = 1.0 - rows[far, j[far]]
    if bool((tv < distance).any()):
        r = int(np.nonzero(tv < distance)[0][0])
        raise PerturbationError(
            f"{what}: row {r} cannot be moved to total variation {distance:g} (at most {tv[r]:.3g} for this row)"
        )
    s = (distance / tv)[:, None]  # in (0, 1]: a convex combination, so no entry is negative
    out = (1.0 - s) * rows + s * q
    return out / out.sum(1, keepdims=True)


@dataclass(frozen=True)
class PretrainingError:
    """A pretraining error: distances for the named parts of the model and a noise level.

    Attributes:
        initial, transition, emission: total-variation distance of every row of that part
            of the misspecified model from the true one (0: the part is kept).
        noise: mixing weight ``t`` of the additive noise on G (``TV(G', G) <= t``).
        context: the model reads only ``x_1..x_context`` (0: the whole input).
    """

    initial: float = 0.0
    transition: float = 0.0
    emission: float = 0.0
    noise: float = 0.0
    context: int = 0

    def __post_init__(self):
        for name in PARTS + ("noise",):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (np.isfinite(v) and 0.0 <= v < 1.0):
                raise PerturbationError(f"pretraining error {name}={v!r}: must be a number in [0, 1)")
        c = self.context
        if isinstance(c, bool) or not float(c).is_integer() or c < 0:
            raise PerturbationError(f"pretraining error context={c!r}: must be a nonnegative integer (0: the whole input)")
        object.__setattr__(self, "context", int(c))

    @property
    def is_zero(self) -> bool:
        return all(getattr(self, n) == 0 for n in _NAMES)

    @property
    def label(self) -> str:
        parts = [f"{n}={getattr(self, n):g}" for n in _NAMES if getattr(self, n)]
        return ",".join(parts) or "none"

    def to_dict(self) -> dict:
        return {n: (int if n == "context" else float)(getattr(self, n)) for n in _NAMES}

    @classmethod
    def parse(cls, text: str) -> "PretrainingError":
        """``"emission=0.05,transition=0.01"``, ``"noise=0.1"``, ``"all=0.02"`` (the three
        model parts) or ``"none"``."""
        text = str(text).strip()
        if text in ("", "none", "0"):
            return cls()
        values: dict[str, float] = {}
        for item in text.split(","):
            m = re.fullmatch(r"\s*([a-z]+)\s*=\s*([0-9.eE+-]+)\s*", item)
            if not m:
                raise PerturbationError(
                    f"pretraining error {item!r}: expected NAME=VALUE with NAME one of {', '.join(PARTS)}, all, noise, context"
                )
            name, raw = m.group(1), m.group(2)
            try:
                v = float(raw)
            except ValueError:
                raise PerturbationError(f"pretraining error {item!r}: {raw!r} is not a number") from None
            names = PARTS if name == "all" else (name,)
            for n in names:
                if n not in _NAMES:
                    raise PerturbationError(f"pretraining error {item!r}: unknown part {name!r} (choose {', '.join(PARTS)}, all, noise, context)")
                values[n] = v
        return cls(**values)


_NAMES = PARTS + ("noise", "context")


def _seed_rng(seed: Any, tag: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), 0xB0B, tag])


def perturb_hmm(model: HMM | MemoryHMM, error: PretrainingError | None = None, *, seed: int = 0, **distances) -> HMM | MemoryHMM:
    """The misspecified model: every row of each named part moved to its distance.

    Args:
        model: an :class:`hmmtune.HMM` or :class:`hmmtune.MemoryHMM`.
        error: a :class:`PretrainingError` (its ``noise`` is ignored here), or pass the
            distances as keywords ``initial=``, ``transition=``, ``emission=``.
        seed: integer seed of the random directions.
    """
    if error is None:
        error = PretrainingError(**distances)
    elif distances:
        raise TypeError("pass either a PretrainingError or distances as keywords, not both")
    if not isinstance(model, (HMM, MemoryHMM)):
        raise TypeError(f"perturb_hmm needs an hmmtune.HMM or MemoryHMM, got {type(model).__name__}")
    arrays = {n: getattr(model, n).detach().double().cpu().numpy() for n in PARTS}
    new = {}
    for i, n in enumerate(PARTS):
        new[n] = perturb_rows(arrays[n], getattr(error, n), _seed_rng(seed, i), what=n)
    new["initial"] = new["initial"].reshape(arrays["initial"].shape)
    name = f"perturbed({model.name or 'model'}; {error.label}; seed={seed})" if hasattr(model, "name") else None
    if isinstance(model, MemoryHMM):
        return MemoryHMM(model.memory_prior, new["initial"], new["transition"], new["emission"], model.num_cells, dtype=model.dtype, name=name)
    return HMM(new["initial"], new["transition"], new["emission"], dtype=model.dtype, name=name)


class NoisyOracle:
    """An oracle whose predictions carry bounded additive noise (see the module docstring).

    ``G'(x) = (1 - t) G(x) + t q(x)``, ``q(x) = softmax(scale * p(x) @ R)``, where ``p(x)``
    is the base oracle's posterior over the rows of ``emission`` at that position and ``R``
    a fixed (rows, n) Gaussian matrix drawn from ``seed``. So ``TV(G'(x), G(x)) = t TV(q, G)
    <= t``, the same input always gets the same noise, and prompts change ``p`` and hence
    the noise, as they would a network's output.

    Args:
        oracle: the base :class:`hmmtune.OracleMLM` (perfect or of a perturbed model).
        noise: ``t`` in [0, 1).
        seed: integer seed of ``R``. scale: the sharpness of ``q``.
    """

    def __init__(self, oracle: OracleMLM, noise: float, *, seed: int = 0, scale: float = 5.0):
        if not isinstance(oracle, OracleMLM):
            raise TypeError(f"NoisyOracle wraps an hmmtune.OracleMLM, got {type(oracle).__name__}")
        if isinstance(noise, bool) or not (np.isfinite(noise) and 0.0 <= noise < 1.0):
            raise PerturbationError(f"noise must be a number in [0, 1), got {noise!r}")
        self.oracle = oracle
        self.noise = float(noise)
        model = oracle.model
        rows = model.emission.shape[0]
        R = _seed_rng(seed, 7).standard_normal((rows, model.num_tokens))
        self._R = torch.as_tensor(scale * R, dtype=model.dtype, device=model.device)

    @property
    def model(self):
        """The base oracle's model (prompt tuning reads its shapes and dtype)."""
        return self.oracle.model

    def __repr__(self) -> str:
        return f"NoisyOracle({self.oracle!r}, noise={self.noise:g})"

    def _mix(self, G: Tensor, p: Tensor) -> Tensor:
        if self.noise == 0.0:
            return G
        q = torch.softmax(p @ self._R, dim=-1)
        return (1.0 - self.noise) * G + self.noise * q

    def encode(self, x: Any, chunk_size: int | None = None):
        return self.oracle.encode(x, chunk_size)

    def mask_prediction(self, x: Any, prompt: Tensor | None = None, chunk_size: int | None = None) -> Tensor:
        """``G'_0(x)`` (or with a prompt), shape (B, n)."""
        p = self.oracle.mask_emission_posterior(x, prompt, chunk_size)
        return self._mix(p @ self.oracle.model.emission, p)

    def token_predictions(self, x: Any, chunk_size: int | None = None) -> Tensor:
        """``G'_t(x)`` at every position, shape (B, T, n)."""
        p = self.oracle.token_emission_posteriors(x, chunk_size)
        return self._mix(p @ self.oracle.model.emission, p)


class ContextOracle:
    """The perfect prediction from a short context: ``G(x_1..x_K)`` for an input
    ``x_1..x_T`` (``K < T``); the rest of the input is ignored. At the mask only.

    Args:
        oracle: the base :class:`hmmtune.OracleMLM`. context: ``K >= 1``.
    """

    def __init__(self, oracle: Any, context: int):
        if isinstance(context, bool) or not isinstance(context, (int, np.integer)) or context < 1:
            raise PerturbationError(f"context must be a positive integer, got {context!r}")
        self.oracle = oracle
        self.context = int(context)

    @property
    def model(self):
        return self.oracle.model

    def __repr__(self) -> str:
        return f"ContextOracle({self.oracle!r}, context={self.context})"

    def _cut(self, x: Any) -> Any:
        if isinstance(x, Tensor) and x.dim() == 2:
            return x[:, : self.context]
        if isinstance(x, Tensor) or isinstance(x, np.ndarray):
            return x[..., : self.context]
        return x  # already encoded messages

    def encode(self, x: Any, chunk_size: int | None = None):
        return self.oracle.encode(self._cut(x), chunk_size)

    def mask_prediction(self, x: Any, prompt: Tensor | None = None, chunk_size: int | None = None) -> Tensor:
        return self.oracle.mask_prediction(self._cut(x), prompt, chunk_size)

    def token_predictions(self, x: Any, chunk_size: int | None = None) -> Tensor:
        raise PerturbationError(
            "a short-context error is defined at the mask (head and prompt tuning); "
            "per-position predictions (attention heads) are not supported"
        )


def imperfect_oracle(model: HMM | MemoryHMM, error: PretrainingError, *, seed: int = 0) -> Any:
    """The masked LM with this pretraining error: the oracle of :func:`perturb_hmm`'s
    model, wrapped in :class:`ContextOracle` when ``error.context > 0`` and in
    :class:`NoisyOracle` when ``error.noise > 0``."""
    base = model if all(getattr(error, n) == 0 for n in PARTS) else perturb_hmm(model, error, seed=seed)
    oracle = OracleMLM(base)
    if error.context:
        oracle = ContextOracle(oracle, error.context)
    if error.noise > 0:
        if error.context:
            raise PerturbationError("combine noise with a model perturbation, not with a short context")
        return NoisyOracle(oracle, error.noise, seed=seed)
    return oracle


class TVStats(NamedTuple):
    """Total variation of an imperfect masked LM's predictions to the perfect oracle's.

    Attributes:
        mean, worst: over the inputs (and positions, for per-position predictions).
        count: number of predictions compared.
    """

    mean: float
    worst: float
    count: int

    def to_dict(self) -> dict:
        return {"mean": self.mean, "worst": self.worst, "count": self.count}


def tv_to_oracle(imperfect: Any, oracle: OracleMLM, x: Any, positions: bool = False) -> TVStats:
    """Mean and worst ``TV(G'(x), G(x)) = ||G' - G||_1 / 2`` at the mask (or, with
    ``positions``, at every position) over the inputs ``x`` (B, T)."""
    if positions:
        a, b = imperfect.token_predictions(x), oracle.token_predictions(x)
    else:
        a, b = imperfect.mask_prediction(x), oracle.mask_prediction(x)
    tv = 0.5 * (a.to(b.dtype) - b).abs().sum(-1).flatten()
    return TVStats(float(tv.mean()), float(tv.max()), int(tv.numel()))
