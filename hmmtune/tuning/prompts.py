"""Prompt tuning through the exact prompted oracle (docs/theory.md, "Theorem P (prompt tuning)").

``k`` soft tokens ``z_1..z_k`` are prepended to ``[MASK] x_1..x_T``; each is an arbitrary
nonnegative likelihood row ``u_j`` over the hidden states. The prompted features are
``G_0^u(x) = W P_u(H_0 | z, x)`` with ``P_u(H_0 | z, x)`` proportional to
``r(u) * beta_0(x)``; ``beta_0(x)`` does not depend on the prompt, so it is computed once
per input (:meth:`hmmtune.OracleMLM.encode`) and every training step only recomputes the
``k``-step prompt prior ``r(u)`` and a (B, m) product.

Parametrisation: ``u_j = exp(theta_j - max_h theta_j[h])`` (floored at 1e-200): nonnegative by construction,
at least one entry 1 per row (the row's scale cancels in ``r(u)``), and a state can be
switched off smoothly by driving its ``theta`` down, which is what the proof of Theorem P
does. ``theta = 0`` (all-ones rows) is the default start.

Prompt and head are fitted jointly (cross-entropy, L-BFGS by default), starting from a
given head (e.g. the one :func:`hmmtune.tuning.fit_head` found without a prompt) or zeros.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
import torch.nn.functional as F

from ..oracle import MaskMessages, OracleMLM
from ..models import arguments
from .training import Standardizer, TrainConfig, TrainLog, count_classes, free_rows, full_rows, train, train_config
from .heads import LinearHead, accuracy, as_float_tensor, witness_dict

__all__ = ["PromptFit", "fit_prompt", "prompt_features", "prompt_from_logits", "DEFAULT_PROMPT_TOKENS"]

#: The paper's number of soft prompt tokens.
DEFAULT_PROMPT_TOKENS = 20

_U_LOG_FLOOR = -460.0  # exp(-460) ~ 1e-200: the smallest weight a prompt entry gets


def prompt_from_logits(theta: Tensor) -> Tensor:
    """``u = exp(max(theta - rowmax(theta), -460))``: (k, m) logits -> (k, m) rows in
    ``[1e-200, 1]``. The floor keeps every state reachable in floating point, so no input
    ever gets probability zero during training."""
    return torch.exp((theta - theta.max(-1, keepdim=True).values.detach()).clamp_min(_U_LOG_FLOOR))


def prompt_features(oracle: OracleMLM, messages: Any, prompt: Tensor | None) -> Tensor:
    """``G_0^u`` for every input, (B, n); ``messages`` are tokens or :class:`MaskMessages`."""
    return oracle.mask_prediction(messages, prompt)


@dataclass
class PromptFit:
    """Result of :func:`fit_prompt`.

    Attributes:
        prompt: (k, m) the fitted soft-token rows ``u`` (nonnegative, max 1 per row).
        head: the :class:`LinearHead` on the prompted features ``G_0^u``.
        train_accuracy, val_accuracy: accuracies of the pair (val: NaN without a split).
        log: the optimiser's log.
    """

    prompt: Tensor
    head: LinearHead
    train_accuracy: float
    val_accuracy: float
    log: TrainLog

    def predict(self, oracle: OracleMLM, messages: Any) -> Tensor:
        """Classes of inputs (tokens or :class:`MaskMessages`)."""
        with torch.no_grad():
            return self.head.predict(prompt_features(oracle, messages, self.prompt))

    def accuracy(self, oracle: OracleMLM, messages: Any, labels: Tensor) -> float:
        return accuracy(self.predict(oracle, messages), torch.as_tensor(labels))


def fit_prompt(
    oracle: OracleMLM,
    messages: Any,
    labels: Tensor,
    val_messages: Any = None,
    val_labels: Tensor | None = None,
    *,
    num_prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    num_classes: int | None = None,
    init_head: Any = None,
    init_prompt: Tensor | None = None,
    l2: float = 0.0,
    standardize: bool = True,
    config: TrainConfig | None = None,
    **optimiser,
) -> PromptFit:
    """Fit ``k`` soft prompt tokens and a linear head jointly (docs/theory.md, "Theorem P (prompt tuning)").

    Args:
        oracle: the perfect masked LM of an HMM (prompt rows over its m states) or of a
            memory HMM (rows over the ``V * S`` columns of W).
        messages: training inputs, (B, T) tokens or the messages of ``oracle.encode``
            (reused, never recomputed).
        labels: (B,) classes.
        val_messages: validation inputs for early stopping (optional).
        val_labels: validation labels.
        num_prompt_tokens: k (the paper: 20).
        init_head: initial head on the prompted features (see
            :meth:`LinearHead.from_init`: numbers, exact rational strings or a checked
            condition's witness); default zeros, or the witness's head when
            ``init_prompt`` is a witness.
        init_prompt: (k, m) nonnegative initial rows ``u``, or the Theorem P witness of
            :func:`hmmtune.analysis.check` as is (``report.condition("prompt: Theorem P
            support")``, its JSON dict or its ``witness``: its ``"prompt"`` rows start the
            prompt and, unless ``init_head`` is given, its ``"head"`` starts the head);
            default all ones. Entries are floored at ``exp(-460)``, about 1e-200.
        num_classes: C (default: from the labels).
        l2: as in :func:`hmmtune.tuning.fit_head`.
        standardize: as in :func:`hmmtune.tuning.fit_head`, with the statistics of the
            *initial* prompted training features.
        config: the optimiser's :class:`~hmmtune.tuning.TrainConfig`, as in
            :func:`hmmtune.tuning.fit_head` (the old keywords ``method``, ``max_iter``, ...
            still work, with a ``DeprecationWarning``).

    Returns:
        :class:`PromptFit`.
    """
    m = oracle.model.emission.shape[0]  # prompt rows: over states (HMM) or W's columns (memory)
    dtype = oracle.model.dtype
    msgs = oracle.encode(messages)
    config = train_config(config, optimiser, "fit_prompt")
    l2 = arguments.real("l2", l2, 0.0)
    y = arguments.class_labels("fit_prompt: labels", labels)
    if msgs.backward.shape[0] != y.shape[0]:
        raise ValueError(f"{msgs.backward.shape[0]} inputs but {y.shape[0]} labels")
    take = lambda ms, idx: type(ms)(*(None if f is None else f[idx] for f in ms))
    has_val = val_messages is not None and val_labels is not None
    if has_val:
        vmsgs = oracle.encode(val_messages)
        yv = arguments.class_labels("fit_prompt: val_labels", val_labels)
    C = count_classes(torch.cat([y, yv]) if has_val else y, num_classes, m)

    if init_prompt is None:
        theta0 = torch.zeros(arguments.integer("num_prompt_tokens", num_prompt_tokens), m, dtype=dtype)
    else:
        wd = None if isinstance(init_prompt, (Tensor, list, tuple)) else witness_dict(init_prompt)
        if wd is not None:
            if "prompt" not in wd:
                raise ValueError(f"init_prompt: the witness has no 'prompt' field (fields: {sorted(wd)})")
            if init_head is None and "head" in wd:
                init_head = wd
            init_prompt = wd["prompt"]
        u0 = as_float_tensor(init_prompt, "init_prompt").to(dtype)
        u0 = u0[None] if u0.dim() == 1 else u0
        if u0.dim() != 2 or u0.shape[1] != m or u0.shape[0] < 1:
            raise ValueError(f"init_prompt must have shape (k, {m}), got {tuple(u0.shape)}")
        if not bool(torch.isfinite(u0).all()) or bool((u0 < 0).any()) or not bool((u0.sum(-1) > 0).all()):
            raise ValueError("init_prompt rows must be finite, nonnegative and not all zero")
        theta0 = u0.log().clamp_min(_U_LOG_FLOOR)
    theta = theta0.clone().requires_grad_(True)

    with torch.no_grad():
        st = Standardizer(prompt_features(oracle, msgs, prompt_from_logits(theta)), standardize)
    n = st.mean.shape[0]
    if init_head is None:
        w0, c0 = torch.zeros(C, n, dtype=dtype), torch.zeros(C, dtype=dtype)
    else:
        w0, c0 = st.to_z(LinearHead.from_init(init_head, C))
    w, c = free_rows(w0, c0)
    full = lambda wf, cf: full_rows(wf, cf, C)  # noqa: E731

    def logits(ms: MaskMessages):
        W, bias = full(w, c)
        return st(prompt_features(oracle, ms, prompt_from_logits(theta))) @ W.T + bias

    def loss_fn(idx):
        if idx is None:
            loss = F.cross_entropy(logits(msgs), y)
        else:
            loss = F.cross_entropy(logits(take(msgs, idx)), y[idx])
        if l2:
            loss = loss + 0.5 * l2 * (w * w).sum()
        return loss

    def current() -> tuple[Tensor, LinearHead]:
        return prompt_from_logits(theta).detach(), st.to_raw(*full(w.detach(), c.detach()))

    def evaluate():
        u, head = current()
        acc = accuracy(head.predict(prompt_features(oracle, vmsgs, u)), yv)
        return acc, float(F.cross_entropy(logits(vmsgs), yv))

    log = train(
        [theta, w, c],
        loss_fn,
        y.shape[0],
        evaluate if has_val else None,
        config,
    )
    u, head = current()
    with torch.no_grad():
        train_acc = accuracy(head.predict(prompt_features(oracle, msgs, u)), y)
        val_acc = accuracy(head.predict(prompt_features(oracle, vmsgs, u)), yv) if has_val else float("nan")
    return PromptFit(u, head, train_acc, val_acc, log)
