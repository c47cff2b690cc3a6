"""Training settings and the loop shared by heads, prompts and attention heads (docs/theory.md, "The paper's experiments").

:class:`TrainConfig` holds the optimiser's settings; every fit (:func:`~hmmtune.tuning.fit_head`,
:func:`~hmmtune.tuning.fit_prompt`, :func:`~hmmtune.tuning.fit_attention`, and learned
mode's :func:`~hmmtune.learned.tune_prompt`) takes one as ``config=``. Two optimisers:

- ``"lbfgs"`` (default): full-batch L-BFGS with a strong-Wolfe line search, run in rounds
  of ``check_every`` iterations; after every round the validation split is scored.
- ``"adam"``: mini-batch Adam (the paper's schedule, :meth:`TrainConfig.paper`: lr 0.01,
  100 epochs, batch 128), scored on the validation split after every epoch.

Early stopping: the parameters with the best validation accuracy (ties: lower validation
loss) are kept; training stops after ``patience`` checks without improvement (never with
``patience=None``), when the optimiser converges, or at the iteration / epoch budget.

The data checks the three fits share live here too: :func:`check_features`,
:func:`count_classes` and the :class:`Standardizer`.
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor

from ..models import arguments, limits

__all__ = [
    "TrainConfig",
    "TrainLog",
    "train",
    "train_config",
    "Standardizer",
    "check_features",
    "count_classes",
    "free_rows",
    "full_rows",
]


@dataclass(frozen=True)
class TrainConfig:
    """The optimiser's settings of a fit.

    The defaults are the fits' own (L-BFGS to convergence, at most 1000 iterations,
    validation every 25, patience 4); :meth:`paper` is the authors' schedule.

    Attributes:
        method: ``"lbfgs"`` (full batch, to convergence) or ``"adam"`` (mini-batches).
        max_iter: L-BFGS iteration budget.
        check_every: L-BFGS iterations between validation checks.
        patience: validation checks without improvement before stopping early; None:
            never stop early (the best checked parameters are still kept).
        lr: Adam's learning rate.
        epochs: Adam's epochs.
        batch_size: Adam's mini-batch size.
        seed: Adam's shuffling seed (and the seed of a fit's random start, where it has one).
        tolerance_grad: L-BFGS stops when the largest gradient entry is at most this.
        max_restarts: L-BFGS restarts from steepest descent after a stalled line search.
    """

    method: str = "lbfgs"
    max_iter: int = 1000
    check_every: int = 25
    patience: int | None = 4
    lr: float = 0.01
    epochs: int = 100
    batch_size: int = 128
    seed: int = 0
    tolerance_grad: float = 1e-10
    max_restarts: int = 10

    def __post_init__(self):
        if self.method not in ("lbfgs", "adam"):
            raise ValueError(f"method must be 'lbfgs' or 'adam', got {self.method!r}")
        for name in ("max_iter", "check_every", "epochs", "batch_size"):
            object.__setattr__(self, name, arguments.integer(name, getattr(self, name)))
        if self.patience is not None:
            object.__setattr__(self, "patience", arguments.integer("patience", self.patience))
        object.__setattr__(self, "max_restarts", arguments.integer("max_restarts", self.max_restarts, 0))
        object.__setattr__(self, "seed", arguments.seed("seed", self.seed))
        object.__setattr__(self, "lr", arguments.real("lr", self.lr, 0.0))
        object.__setattr__(self, "tolerance_grad", arguments.real("tolerance_grad", self.tolerance_grad, 0.0))

    @classmethod
    def paper(cls, **changes) -> "TrainConfig":
        """The paper's schedule (docs/theory.md, "The paper's experiments"): Adam, learning
        rate 0.01, 100 epochs, batches of 128, every epoch run (``patience=None``; the
        epoch with the best validation score is kept). ``changes`` override fields."""
        return cls(**{"method": "adam", "lr": 0.01, "epochs": 100, "batch_size": 128, "patience": None, **changes})

    def replace(self, **changes) -> "TrainConfig":
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


#: the keyword arguments fits took before :class:`TrainConfig` (deprecated)
_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def train_config(config: TrainConfig | None, legacy: dict, caller: str, default: TrainConfig | None = None) -> TrainConfig:
    """The :class:`TrainConfig` of a fit called as ``caller(..., config=config, **legacy)``.

    ``legacy`` holds the optimiser keywords of the old signature (``method``, ``max_iter``,
    ``check_every``, ``patience``, ``lr``, ``epochs``, ``batch_size``, ``seed``): they still
    work, with a ``DeprecationWarning``, and override ``config``. Any other keyword is a
    ``TypeError``, as Python's own.
    """
    unknown = sorted(set(legacy) - set(_FIELDS))
    if unknown:
        raise TypeError(f"{caller}() got an unexpected keyword argument {unknown[0]!r}")
    if config is None:
        config = default if default is not None else TrainConfig()
    elif not isinstance(config, TrainConfig):
        raise TypeError(f"{caller}(): config must be a TrainConfig, got {type(config).__name__}")
    if legacy:
        names = ", ".join(sorted(legacy))
        warnings.warn(
            f"{caller}(..., {names}=...) is deprecated; pass config=TrainConfig({names}=...) instead",
            DeprecationWarning,
            stacklevel=3,
        )
        config = dataclasses.replace(config, **legacy)
    return config


@dataclass
class TrainLog:
    """What a fit did.

    Attributes:
        method: ``"lbfgs"`` or ``"adam"``.
        iterations: optimiser iterations (L-BFGS) or steps (Adam) taken.
        checks: number of validation checks.
        best_check: index of the check whose parameters were kept (-1: the initial ones).
        stopped: why training ended: ``"converged"``, ``"patience"`` or ``"budget"``.
        restarts: L-BFGS restarts after a stalled line search.
        history: ``(iterations, train_loss, val_accuracy, val_loss)`` at every check.
    """

    method: str
    iterations: int = 0
    checks: int = 0
    best_check: int = -1
    stopped: str = "budget"
    restarts: int = 0
    history: list = field(default_factory=list)


def _better(a: tuple[float, float], b: tuple[float, float] | None) -> bool:
    if b is None:
        return True
    return a[0] > b[0] or (a[0] == b[0] and a[1] < b[1])


def train(
    params: list[Tensor],
    loss_fn: Callable[[Tensor | None], Tensor],
    num_train: int,
    evaluate: Callable[[], tuple[float, float]] | None,
    config: TrainConfig = TrainConfig(),
) -> TrainLog:
    """Minimise ``loss_fn(index)`` (``index`` None: the whole training split) over ``params``
    with the settings of ``config``.

    ``evaluate()`` returns ``(val_accuracy, val_loss)``. Parameters are updated in place
    and end at the best checked values.
    """
    method, check_every, patience, tolerance_grad = config.method, config.check_every, config.patience, config.tolerance_grad
    log = TrainLog(method)
    best_score = None
    best = [p.detach().clone() for p in params]
    if evaluate is not None:
        with torch.no_grad():
            best_score = evaluate()
    bad = 0

    def check(train_loss: float) -> bool:
        """Score the current parameters; return True to stop (patience)."""
        nonlocal best_score, best, bad
        log.checks += 1
        if evaluate is None:
            log.history.append((log.iterations, train_loss, float("nan"), float("nan")))
            best = [p.detach().clone() for p in params]
            log.best_check = log.checks - 1
            return False
        with torch.no_grad():
            score = evaluate()
        log.history.append((log.iterations, train_loss, score[0], score[1]))
        finite = all(bool(torch.isfinite(p).all()) for p in params)
        if finite and _better(score, best_score):
            best_score, best, bad = score, [p.detach().clone() for p in params], 0
            log.best_check = log.checks - 1
            return False
        bad += 1
        return (patience is not None and bad >= patience) or not finite

    if method == "lbfgs":

        def make():
            return torch.optim.LBFGS(
                params,
                lr=1.0,
                max_iter=check_every,
                history_size=20,
                line_search_fn="strong_wolfe",
                tolerance_grad=tolerance_grad,
                tolerance_change=1e-14,
            )

        opt = make()
        restarts = 0

        def closure():
            opt.zero_grad()
            loss = loss_fn(None)
            loss.backward()
            return loss

        while log.iterations < config.max_iter:
            before = opt.state[params[0]].get("n_iter", 0) if params[0] in opt.state else 0
            opt.step(closure)
            after = opt.state[params[0]]["n_iter"]
            log.iterations += after - before
            with torch.no_grad():
                loss = float(loss_fn(None))
            if check(loss):
                log.stopped = "patience"
                break
            if after - before < check_every:
                # L-BFGS stopped early: a vanishing gradient (converged), or a line search
                # that found no decrease along a poor quasi-Newton direction (nonconvex
                # objectives such as prompt tuning). Restart from steepest descent.
                grad = max(float(p.grad.abs().max()) for p in params if p.grad is not None)
                if grad <= tolerance_grad or restarts >= config.max_restarts:
                    log.stopped = "converged"
                    break
                restarts += 1
                log.restarts = restarts
                opt = make()
    else:
        opt = torch.optim.Adam(params, lr=config.lr)
        gen = torch.Generator().manual_seed(int(config.seed))
        batch_size = config.batch_size
        for _ in range(config.epochs):
            perm = torch.randperm(num_train, generator=gen)
            total = 0.0
            for start in range(0, num_train, batch_size):
                idx = perm[start : start + batch_size]
                opt.zero_grad()
                loss = loss_fn(idx)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                log.iterations += 1
            if check(total / num_train):
                log.stopped = "patience"
                break
    with torch.no_grad():
        for p, b in zip(params, best):
            p.copy_(b)
    return log


# ------------------------------------------------------------------ data shared by the fits
class Standardizer:
    """Per-coordinate affine map ``z = (f - mean) / scale`` over the last axis."""

    def __init__(self, features: Tensor, enabled: bool = True):
        flat = features.reshape(-1, features.shape[-1])
        d = flat.shape[-1]
        if enabled and flat.shape[0] > 1:
            self.mean = flat.mean(0)
            std = flat.std(0)
            self.scale = torch.where(std > 0, std, torch.ones_like(std))
        else:
            self.mean = torch.zeros(d, dtype=flat.dtype)
            self.scale = torch.ones(d, dtype=flat.dtype)

    def __call__(self, features: Tensor) -> Tensor:
        return (features - self.mean) / self.scale

    def to_z(self, head) -> tuple[Tensor, Tensor]:
        """A raw :class:`~hmmtune.tuning.LinearHead` -> ``(weight, bias)`` of the same head
        on standardised features."""
        w = head.weight * self.scale
        return w, head.bias + head.weight @ self.mean

    def to_raw(self, w: Tensor, c: Tensor):
        """``(weight, bias)`` on standardised features -> the same
        :class:`~hmmtune.tuning.LinearHead` on raw features."""
        from .heads import LinearHead

        w_raw = w / self.scale
        return LinearHead(w_raw.detach().clone(), (c - w_raw @ self.mean).detach().clone())


def count_classes(labels: Tensor, num_classes: int | None, num_features: int = 1) -> int:
    """The number of classes C of a fit: ``num_classes`` (checked against the labels) or
    the largest label + 1, at least 2. Refuses, before anything is allocated, a fit whose
    logits and L-BFGS history would exceed the memory limit (:mod:`hmmtune.models.limits`)."""
    k = int(labels.max()) + 1 if len(labels) else 2
    if num_classes is not None:
        num_classes = arguments.integer("num_classes", num_classes, 2)
    C = max(2, k) if num_classes is None else num_classes
    # logits and their gradients (B, C), and the head with L-BFGS's history (~200 copies)
    limits.check_memory(
        f"a head with {C} classes (labels up to {k - 1}) on {len(labels)} inputs",
        8.0 * C * (4 * len(labels) + 210 * num_features),
    )
    if num_classes is None:
        return C
    if k > num_classes:
        raise ValueError(f"labels go up to {k - 1} but num_classes = {num_classes}")
    return num_classes


def check_features(features: Tensor, labels: Tensor, name: str) -> tuple[Tensor, Tensor]:
    """``features`` (B, ...) as a real floating tensor and ``labels`` (B,) as class labels;
    ``ValueError`` naming ``name`` when they are not numbers, not finite or disagree."""
    f = torch.as_tensor(features)
    if torch.is_complex(f) or f.dtype == torch.bool:
        raise ValueError(f"{name}: features must hold real numbers (floating or integer dtype), got dtype {f.dtype}")
    if not torch.is_floating_point(f):
        f = f.double()
    y = arguments.class_labels(f"{name}: labels", labels)
    if f.dim() < 2 or f.shape[0] != y.shape[0] or y.dim() != 1:
        raise ValueError(f"{name}: features (B, ...) and labels (B,) disagree: {tuple(f.shape)} vs {tuple(y.shape)}")
    if not bool(torch.isfinite(f).all()):
        raise ValueError(f"{name}: features must be finite")
    return f, y


def free_rows(weight: Tensor, bias: Tensor, dtype: torch.dtype | None = None) -> tuple[Tensor, Tensor]:
    """The trainable leaves of a head with (C, n) ``weight`` and (C,) ``bias``: for two
    classes the single row ``weight[1] - weight[0]`` (and ``bias[1] - bias[0]``; logistic
    regression, row 0 stays zero), for more classes every row. (1 or C, n) and (1 or C,),
    cast to ``dtype`` when given, with ``requires_grad``. :func:`full_rows` inverts it."""
    if weight.shape[0] == 2:
        weight, bias = weight[1:] - weight[0], bias[1:] - bias[0]
    w, c = weight.detach().clone(), bias.detach().clone()
    if dtype is not None:
        w, c = w.to(dtype), c.to(dtype)
    return w.requires_grad_(True), c.requires_grad_(True)


def full_rows(w: Tensor, c: Tensor, num_classes: int) -> tuple[Tensor, Tensor]:
    """The (C, n) weight and (C,) bias of a head from its :func:`free_rows` (two classes:
    row 0 is zero)."""
    if num_classes == 2:
        return torch.cat([torch.zeros_like(w), w]), torch.cat([torch.zeros_like(c), c])
    return w, c
