"""The training loop shared by heads, prompts and attention heads (private).

Two optimisers:

- ``"lbfgs"`` (default): full-batch L-BFGS with a strong-Wolfe line search, run in rounds
  of ``check_every`` iterations; after every round the validation split is scored.
- ``"adam"``: mini-batch Adam (the paper's schedule: lr 0.01, 100 epochs, batch 128),
  scored on the validation split after every epoch.

Early stopping: the parameters with the best validation accuracy (ties: lower validation
loss) are kept; training stops after ``patience`` checks without improvement, when the
optimiser converges, or at the iteration / epoch budget.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor


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
    *,
    method: str = "lbfgs",
    max_iter: int = 500,
    check_every: int = 25,
    patience: int = 4,
    lr: float = 0.01,
    epochs: int = 100,
    batch_size: int = 128,
    seed: int = 0,
    tolerance_grad: float = 1e-10,
    max_restarts: int = 10,
) -> TrainLog:
    """Minimise ``loss_fn(index)`` (``index`` None: the whole training split) over ``params``.

    ``evaluate()`` returns ``(val_accuracy, val_loss)``. Parameters are updated in place
    and end at the best checked values.
    """
    if method not in ("lbfgs", "adam"):
        raise ValueError(f"method must be 'lbfgs' or 'adam', got {method!r}")
    for label, v in (("max_iter", max_iter), ("check_every", check_every), ("patience", patience), ("epochs", epochs), ("batch_size", batch_size)):
        if int(v) < 1:
            raise ValueError(f"{label} must be a positive integer, got {v!r}")
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
        return bad >= patience or not finite

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

        while log.iterations < max_iter:
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
                if grad <= tolerance_grad or restarts >= max_restarts:
                    log.stopped = "converged"
                    break
                restarts += 1
                log.restarts = restarts
                opt = make()
    else:
        opt = torch.optim.Adam(params, lr=lr)
        gen = torch.Generator().manual_seed(int(seed))
        for _ in range(epochs):
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
