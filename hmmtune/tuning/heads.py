"""Head tuning: a linear probe on frozen features (docs/theory.md, "Theorem H (head tuning)").

A head is ``f(x) = argmax_c (weight @ G(x) + bias)_c``; for two classes this is
``1[b . G(x) + c >= 0]`` with ``b = weight[1] - weight[0]``, ``c = bias[1] - bias[0]``.
It is fitted by logistic regression (cross-entropy), full-batch L-BFGS by default,
optional L2 on the weights, early stopping on the validation split.

Features are standardised internally (per coordinate, with the training split's mean and
standard deviation). This is an invertible affine map, so the set of linear heads is
unchanged; it only conditions the optimisation (features of near-deterministic HMMs
vary on very different scales). The returned head acts on the raw features.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import torch
from torch import Tensor
import torch.nn.functional as F

from ..models import arguments
from .training import Standardizer, TrainConfig, TrainLog, check_features, count_classes, free_rows, full_rows, train, train_config

__all__ = ["LinearHead", "HeadFit", "fit_head", "accuracy", "as_float_tensor", "witness_dict"]


def _number(v: Any, where: str) -> float:
    if isinstance(v, bool):
        raise ValueError(f"{where}: expected a number, got {v!r}")
    if isinstance(v, str):
        try:
            return float(Fraction(v.strip()))
        except (ValueError, ZeroDivisionError):
            raise ValueError(f"{where}: {v!r} is not a number or a rational 'p/q'") from None
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: expected a number, got {type(v).__name__} {v!r}") from None


def as_float_tensor(values: Any, what: str = "values") -> Tensor:
    """A float64 tensor from numbers, nested sequences of numbers, or exact rational
    strings such as ``"3/7"`` (the form :mod:`hmmtune.analysis` writes exact witnesses in),
    e.g. ``as_float_tensor(report.condition(...).witness["head"])``.

    Raises:
        ValueError: naming ``what`` and the offending entry when an entry is not a number.
    """
    if isinstance(values, Tensor):
        return values.detach().to(torch.float64)

    def conv(v, where):
        if isinstance(v, (list, tuple)):
            return [conv(x, f"{where}[{i}]") for i, x in enumerate(v)]
        if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
            return conv(v.tolist(), where)
        return _number(v, where)

    try:
        return torch.tensor(conv(values, what), dtype=torch.float64)
    except ValueError as e:
        if "expected sequence" in str(e) or "ragged" in str(e).lower() or "length" in str(e):
            raise ValueError(f"{what}: rows of different lengths") from None
        raise


def witness_dict(init: Any) -> dict | None:
    """The witness of a checked condition as a plain dict, or None: accepts a
    :class:`hmmtune.analysis.Condition` (its ``witness``), a condition's JSON dict (with a
    ``"witness"`` field) or a witness dict itself (with a ``"head"`` field)."""
    w = getattr(init, "witness", None)
    if isinstance(w, dict):
        return w
    if isinstance(init, dict):
        if isinstance(init.get("witness"), dict):
            return init["witness"]
        return init
    return None


def accuracy(predictions: Tensor, labels: Tensor) -> float:
    """Fraction of equal entries."""
    return float((predictions == labels).double().mean()) if len(labels) else float("nan")


@dataclass
class LinearHead:
    """A linear head on features of dimension ``n``.

    Attributes:
        weight: (C, n).
        bias: (C,).
    """

    weight: Tensor
    bias: Tensor

    @classmethod
    def binary(cls, b: Any, c: Any = 0.0) -> "LinearHead":
        """The head ``1[b . G + c >= 0]``."""
        b = torch.as_tensor(b, dtype=torch.float64)
        c = torch.as_tensor(c, dtype=torch.float64).reshape(())
        return cls(torch.stack([torch.zeros_like(b), b]), torch.stack([torch.zeros_like(c), c]))

    @classmethod
    def from_init(cls, init: Any, num_classes: int) -> "LinearHead":
        """Accept a :class:`LinearHead`; a tuple ``(b, c)`` / ``(weight, bias)`` of numbers,
        nested sequences or exact rational strings (``"3/7"``); any object with attributes
        ``b`` (and optionally ``c``); or the witness of a head or prompt condition of
        :func:`hmmtune.analysis.check` -- the :class:`~hmmtune.analysis.Condition` itself,
        its JSON dict, or its ``witness`` dict. A witness's ``"head"`` holds one row
        ``weight[c] - weight[0]`` per class ``c >= 1`` (exact rationals as strings for
        exact models); the head it describes has weight rows ``[0, head...]`` and bias 0.
        """
        wd = None if isinstance(init, (LinearHead, tuple, list)) else witness_dict(init)
        if isinstance(init, LinearHead):
            head = init
        elif wd is not None:
            if "head" not in wd:
                raise ValueError(f"the witness has no 'head' field (fields: {sorted(wd)}); the condition has no witness head")
            rows = as_float_tensor(wd["head"], "witness['head']")
            rows = rows[None] if rows.dim() == 1 else rows
            if rows.dim() != 2:
                raise ValueError(f"witness['head'] must be a list of rows, got shape {tuple(rows.shape)}")
            weight = torch.cat([torch.zeros(1, rows.shape[1], dtype=torch.float64), rows])
            head = cls(weight, torch.zeros(weight.shape[0], dtype=torch.float64))
        else:
            if isinstance(init, (tuple, list)) and len(init) == 2:
                b, c = init
            elif hasattr(init, "b"):
                b, c = init.b, getattr(init, "c", 0.0)
                c = 0.0 if c is None else c
            else:
                raise TypeError(
                    f"cannot read an initial head from {type(init).__name__}: give (b, c), a LinearHead or a checked condition's witness"
                )
            b = as_float_tensor(b, "initial head b")
            c = as_float_tensor(c, "initial head c")
            if b.dim() == 1:
                head = cls.binary(b, c)
            else:
                head = cls(b, c.reshape(-1).expand(b.shape[0]).clone())
        if head.weight.shape[0] != num_classes:
            raise ValueError(f"initial head has {head.weight.shape[0]} classes, the labels have {num_classes}")
        return head

    @property
    def num_classes(self) -> int:
        return self.weight.shape[0]

    @property
    def b(self) -> Tensor:
        """``weight[1] - weight[0]`` (two classes)."""
        self._binary()
        return self.weight[1] - self.weight[0]

    @property
    def c(self) -> Tensor:
        """``bias[1] - bias[0]`` (two classes)."""
        self._binary()
        return self.bias[1] - self.bias[0]

    def _binary(self):
        if self.num_classes != 2:
            raise ValueError(f"b and c are defined for two classes; this head has {self.num_classes}")

    def logits(self, features: Tensor) -> Tensor:
        """(B, n) features -> (B, C) scores."""
        return features @ self.weight.to(features.dtype).T + self.bias.to(features.dtype)

    def predict(self, features: Tensor) -> Tensor:
        """(B, n) -> (B,) classes; for two classes ``1[b . G + c >= 0]``."""
        if self.num_classes == 2:
            return (features @ self.b.to(features.dtype) + self.c.to(features.dtype) >= 0).long()
        return self.logits(features).argmax(-1)

    def accuracy(self, features: Tensor, labels: Tensor) -> float:
        return accuracy(self.predict(features), labels)


@dataclass
class HeadFit:
    """Result of :func:`fit_head`.

    Attributes:
        head: the fitted :class:`LinearHead` (on raw features).
        train_accuracy, val_accuracy: accuracies of ``head`` (val: NaN without a split).
        log: the optimiser's :class:`~hmmtune.tuning.TrainLog`.
    """

    head: LinearHead
    train_accuracy: float
    val_accuracy: float
    log: TrainLog


def fit_head(
    features: Tensor,
    labels: Tensor,
    val_features: Tensor | None = None,
    val_labels: Tensor | None = None,
    *,
    num_classes: int | None = None,
    l2: float = 0.0,
    init: Any = None,
    standardize: bool = True,
    config: TrainConfig | None = None,
    **optimiser,
) -> HeadFit:
    """Fit a linear head by logistic regression (docs/theory.md, "Theorem H (head tuning)").

    Args:
        features: (B, n) frozen features (``G_0`` from :meth:`hmmtune.OracleMLM.mask_prediction`,
            or any feature tensor).
        labels: (B,) classes ``0..C-1``.
        val_features: validation features for early stopping (optional).
        val_labels: validation labels.
        num_classes: C (default: from the labels, at least 2).
        l2: weight of ``l2 / 2 * ||w||^2`` on the (standardised) weights; the bias is free.
        init: initial head: a :class:`LinearHead`, ``(b, c)`` (numbers or exact rational
            strings), an object with attributes ``b`` and ``c``, or a head witness of
            :func:`hmmtune.analysis.check` as is, e.g.
            ``init=report.condition("head: task in row space of W")`` (see
            :meth:`LinearHead.from_init`). Default: zeros.
        standardize: standardise features internally (see the module docstring).
        config: the optimiser's :class:`~hmmtune.tuning.TrainConfig` (default
            ``TrainConfig()``: L-BFGS to convergence, at most 1000 iterations).
        optimiser: deprecated: the old keywords ``method``, ``max_iter``, ``check_every``,
            ``patience``, ``lr``, ``epochs``, ``batch_size``, ``seed`` (the fields of
            :class:`~hmmtune.tuning.TrainConfig`; a ``DeprecationWarning``).

    Returns:
        :class:`HeadFit`.
    """
    config = train_config(config, optimiser, "fit_head")
    l2 = arguments.real("l2", l2, 0.0)
    X, y = check_features(features, labels, "fit_head")
    X = X.reshape(X.shape[0], -1)
    has_val = val_features is not None and val_labels is not None
    if has_val:
        Xv, yv = check_features(val_features, val_labels, "fit_head (validation)")
        Xv = Xv.reshape(Xv.shape[0], -1).to(X.dtype)
    C = count_classes(torch.cat([y, yv]) if has_val else y, num_classes, X.shape[1])
    st = Standardizer(X, standardize)
    Z = st(X)
    Zv = st(Xv) if has_val else None
    n = X.shape[1]
    if init is None:
        w0, c0 = torch.zeros(C, n, dtype=X.dtype), torch.zeros(C, dtype=X.dtype)
    else:
        w0, c0 = st.to_z(LinearHead.from_init(init, C))
    w, c = free_rows(w0, c0, X.dtype)  # two classes: one free logit row (logistic regression)
    full = lambda wf, cf: full_rows(wf, cf, C)  # noqa: E731

    def loss_on(Zs, ys):
        W, bias = full(w, c)
        return F.cross_entropy(Zs @ W.T + bias, ys)

    def loss_fn(idx):
        Zs, ys = (Z, y) if idx is None else (Z[idx], y[idx])
        loss = loss_on(Zs, ys)
        if l2:
            loss = loss + 0.5 * l2 * (w * w).sum()
        return loss

    def evaluate():
        head = st.to_raw(*full(w, c))
        return head.accuracy(Xv, yv), float(loss_on(Zv, yv))

    log = train(
        [w, c],
        loss_fn,
        X.shape[0],
        evaluate if has_val else None,
        config,
    )
    head = st.to_raw(*full(w.detach(), c.detach()))
    return HeadFit(head, head.accuracy(X, y), head.accuracy(Xv, yv) if has_val else float("nan"), log)
