"""An attention head over the oracle's per-position predictions (docs/theory.md, "Theorem M (attention heads)").

For a memory HMM the oracle predicts every token from the rest,
``G_t(x) = P(X_t | x_{-t})`` (:meth:`token_predictions`, shape (B, T, n)). Theorem M's head
attends to the positions where the model is sure to read the task's memory cell in a
good local state (anchors) and reads a linear function there:

``alpha = softmax_t(q . G_t(x))``,  ``f(x) = argmax_c (V sum_t alpha_t G_t(x) + bias)_c``,

with a query ``q`` (n,), a value map ``V`` (C, n) and a bias (C,). For two classes this is
``1[b . sum_t alpha_t G_t(x) + c >= 0]`` as in the theorem. The head is trained by
gradient (cross-entropy; L-BFGS or Adam) with early stopping on validation.

Features are standardised per token coordinate over all positions of the training split;
this affine map leaves the set of heads unchanged (a constant shift of every ``q . G_t``
cancels in the softmax).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
import torch.nn.functional as F

from ..models import arguments
from .training import Standardizer, TrainConfig, TrainLog, check_features, count_classes, free_rows, full_rows, train, train_config
from .heads import LinearHead, accuracy

__all__ = ["AttentionHead", "AttentionFit", "fit_attention"]


@dataclass
class AttentionHead:
    """``argmax_c (value @ sum_t softmax_t(query . G_t) G_t + bias)_c`` on raw features.

    Attributes:
        query: (n,).
        value: (C, n).
        bias: (C,).
    """

    query: Tensor
    value: Tensor
    bias: Tensor

    def weights(self, features: Tensor) -> Tensor:
        """Attention weights ``alpha``, (B, T), for features (B, T, n)."""
        return torch.softmax(features @ self.query.to(features.dtype), -1)

    def pooled(self, features: Tensor) -> Tensor:
        """``sum_t alpha_t G_t``, (B, n)."""
        return (self.weights(features).unsqueeze(-1) * features).sum(-2)

    def logits(self, features: Tensor) -> Tensor:
        return LinearHead(self.value, self.bias).logits(self.pooled(features))

    def predict(self, features: Tensor) -> Tensor:
        """(B, T, n) -> (B,) classes (two classes: ``1[b . pooled + c >= 0]``)."""
        return LinearHead(self.value, self.bias).predict(self.pooled(features))

    def accuracy(self, features: Tensor, labels: Tensor) -> float:
        return accuracy(self.predict(features), torch.as_tensor(labels))


@dataclass
class AttentionFit:
    """Result of :func:`fit_attention`: the head, its accuracies and the optimiser log."""

    head: AttentionHead
    train_accuracy: float
    val_accuracy: float
    log: TrainLog


def fit_attention(
    features: Tensor,
    labels: Tensor,
    val_features: Tensor | None = None,
    val_labels: Tensor | None = None,
    *,
    num_classes: int | None = None,
    init: Any = None,
    l2: float = 0.0,
    standardize: bool = True,
    config: TrainConfig | None = None,
    **optimiser,
) -> AttentionFit:
    """Fit an attention head on per-position features (docs/theory.md, "Theorem M (attention heads)").

    Args:
        features: (B, T, n) per-position predictions ``G_t(x)``.
        labels: (B,) classes.
        init: an :class:`AttentionHead`, a tuple ``(q, b, c)`` or ``(q, V, bias)``, or
            None. Default: a small fixed query (so positions are not all equal at the
            start, which would make the query's gradient vanish) and a zero value map.
        l2: on the query and the value map (standardised).
        config: the optimiser's :class:`~hmmtune.tuning.TrainConfig`, as in
            :func:`hmmtune.tuning.fit_head` (its ``seed`` also draws the default initial
            query); the old keywords ``method``, ``max_iter``, ... still work, with a
            ``DeprecationWarning``.
    """
    config = train_config(config, optimiser, "fit_attention")
    l2 = arguments.real("l2", l2, 0.0)
    X, y = check_features(features, labels, "fit_attention")
    if X.dim() != 3:
        raise ValueError(f"fit_attention needs features of shape (B, T, n), got {tuple(X.shape)}")
    has_val = val_features is not None and val_labels is not None
    if has_val:
        Xv, yv = check_features(val_features, val_labels, "fit_attention (validation)")
        Xv = Xv.to(X.dtype)
    C = count_classes(torch.cat([y, yv]) if has_val else y, num_classes, X.shape[-1])
    st = Standardizer(X, standardize)
    Z = st(X)
    Zv = st(Xv) if has_val else None
    n = X.shape[-1]
    if init is None:
        gen = torch.Generator().manual_seed(int(config.seed))
        q0 = 0.1 * torch.randn(n, generator=gen, dtype=X.dtype)
        v0, c0 = torch.zeros(C, n, dtype=X.dtype), torch.zeros(C, dtype=X.dtype)
    else:
        if isinstance(init, AttentionHead):
            q_raw, head = init.query, LinearHead(init.value, init.bias)
        else:
            q_raw, *rest = init
            head = LinearHead.from_init(tuple(rest), C)
        q_raw = torch.as_tensor(q_raw, dtype=X.dtype)
        q0 = q_raw * st.scale  # q . G = (q * scale) . z + const
        v0, c0 = st.to_z(head)
    q = q0.clone().requires_grad_(True)
    v, c = free_rows(v0, c0)
    full = lambda vf, cf: full_rows(vf, cf, C)  # noqa: E731

    def logits_z(Zs):
        alpha = torch.softmax(Zs @ q, -1)
        pooled = (alpha.unsqueeze(-1) * Zs).sum(-2)
        V, bias = full(v, c)
        return pooled @ V.T + bias

    def loss_fn(idx):
        Zs, ys = (Z, y) if idx is None else (Z[idx], y[idx])
        loss = F.cross_entropy(logits_z(Zs), ys)
        if l2:
            loss = loss + 0.5 * l2 * ((v * v).sum() + (q * q).sum())
        return loss

    def current() -> AttentionHead:
        lin = st.to_raw(*full(v.detach(), c.detach()))
        return AttentionHead((q.detach() / st.scale).clone(), lin.weight, lin.bias)

    def evaluate():
        return current().accuracy(Xv, yv), float(F.cross_entropy(logits_z(Zv), yv))

    log = train(
        [q, v, c],
        loss_fn,
        X.shape[0],
        evaluate if has_val else None,
        config,
    )
    head = current()
    return AttentionFit(head, head.accuracy(X, y), head.accuracy(Xv, yv) if has_val else float("nan"), log)
