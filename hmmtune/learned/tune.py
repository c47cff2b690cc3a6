"""Head and prompt tuning on a frozen learned masked LM (docs/theory.md, "Theorem H (head tuning)", "Theorem P (prompt tuning)", "Memory-augmented HMMs", "The paper's experiments").

The same three recipes as on the perfect model (:mod:`hmmtune.tuning`), with the learned
network in place of the oracle:

- **head tuning** (:func:`tune_head`): a logistic-regression probe on the frozen model's
  output at the mask of ``[MASK] x`` (probabilities by default, the learned ``G_0``;
  logits as an option), fitted by :func:`hmmtune.tuning.fit_head`;
- **prompt tuning** (:func:`tune_prompt`): ``k = 20`` trainable input embeddings prepended,
  ``z_1..z_k [MASK] x``, plus the same probe on the mask output, trained jointly by Adam
  with the backbone frozen (the paper: lr 0.01, 100 epochs, batch 128);
- **attention head** (:func:`tune_attention`): for memory models, the per-position
  predictions of the frozen model (:meth:`MaskedLM.token_predictions`) fed to
  :func:`hmmtune.tuning.fit_attention`.

Every fit keeps the parameters with the best validation accuracy (ties: lower
validation loss).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from ..tuning import (
    DEFAULT_PROMPT_TOKENS,
    AttentionFit,
    LinearHead,
    TrainConfig,
    TrainLog,
    accuracy,
    fit_attention,
    fit_head,
)
from ..tuning.training import train_config
from .model import MaskedLM

__all__ = [
    "FEATURE_KINDS",
    "LearnedAttentionFit",
    "LearnedHeadFit",
    "LearnedPromptFit",
    "mask_features",
    "token_features",
    "tune_attention",
    "tune_head",
    "tune_prompt",
]

#: Features a head can read at the mask.
FEATURE_KINDS = ("probabilities", "logits")


def _check_kind(kind: str) -> str:
    if kind not in FEATURE_KINDS:
        raise ValueError(f"features must be one of {FEATURE_KINDS}, got {kind!r}")
    return kind


def _labels(labels: Any, num: int, what: str) -> Tensor:
    y = torch.as_tensor(labels).long().cpu()
    if y.dim() != 1 or y.shape[0] != num:
        raise ValueError(f"{what}: {num} inputs but labels of shape {tuple(y.shape)}")
    return y


def mask_features(lm: MaskedLM, tokens: Any, kind: str = "probabilities", batch_size: int = 512) -> Tensor:
    """The frozen model's output at the mask of ``[MASK] x``, (B, n) float64 on the CPU.

    ``kind="probabilities"`` is the learned ``G_0(x)``; ``"logits"`` the pre-softmax scores.
    """
    return lm.mask_features(tokens, _check_kind(kind), batch_size).double().cpu()


def token_features(lm: MaskedLM, tokens: Any, stride: int = 20, batch_size: int = 256) -> Tensor:
    """Per-position predictions ``G_t(x)`` of the frozen model, (B, T, n) float64 on the
    CPU (see :meth:`MaskedLM.token_predictions` for ``stride``)."""
    return lm.token_predictions(tokens, stride=stride, batch_size=batch_size).double().cpu()


# ------------------------------------------------------------------ head tuning
@dataclass
class LearnedHeadFit:
    """Result of :func:`tune_head`.

    Attributes:
        head: the :class:`hmmtune.tuning.LinearHead` on raw features of kind ``features``.
        features: ``"probabilities"`` or ``"logits"``.
        train_accuracy, val_accuracy: accuracies (val: NaN without a split).
        log: the optimiser's log.
    """

    head: LinearHead
    features: str
    train_accuracy: float
    val_accuracy: float
    log: TrainLog

    def predict(self, lm: MaskedLM, tokens: Any) -> Tensor:
        """Classes of downstream inputs (B, T) -> (B,)."""
        return self.head.predict(mask_features(lm, tokens, self.features))

    def accuracy(self, lm: MaskedLM, tokens: Any, labels: Any) -> float:
        return accuracy(self.predict(lm, tokens), torch.as_tensor(labels).long())


def tune_head(
    lm: MaskedLM,
    tokens: Any,
    labels: Any,
    val_tokens: Any = None,
    val_labels: Any = None,
    *,
    features: str = "probabilities",
    batch_size: int = 512,
    min_scale: float = 1e-2,
    l2: float = 1e-3,
    **fit_kwargs,
) -> LearnedHeadFit:
    """Head tuning on the frozen learned model (docs/theory.md, "Theorem H (head tuning)").

    Args:
        lm: the pretrained :class:`MaskedLM` (not modified).
        tokens: (B, T) downstream inputs ``x`` (the model reads ``[MASK] x``).
        labels: (B,) classes.
        val_tokens: (B', T) validation inputs for early stopping (optional).
        val_labels: (B',) their classes.
        features: ``"probabilities"`` (default) or ``"logits"`` at the mask.
        batch_size: inputs per forward pass when computing features.
        min_scale: features are standardised (training mean and standard deviation)
            before the fit, but no coordinate is divided by less than this: a
            coordinate that barely varies is mostly rounding noise, and amplifying it
            makes the head's decisions depend on that noise (see :func:`tune_prompt`).
            The returned head acts on raw features.
        l2: ridge weight on the standardised head (oracle mode uses none). Without it
            L-BFGS grows the weights on separable data until the decisions follow
            rounding noise; 1e-3 keeps a briefly pretrained network's head stable under
            feature perturbations of 1e-4 (tested). On the CPU-scale network of
            experiment 1 at m = 25 it cost 0.4 points of test accuracy (90.7% -> 90.3%).
        fit_kwargs: passed to :func:`hmmtune.tuning.fit_head` (``method``, ``l2``, ...).
    """
    X = mask_features(lm, tokens, features, batch_size)
    y = _labels(labels, X.shape[0], "tune_head")
    if val_tokens is not None and val_labels is not None:
        Xv = mask_features(lm, val_tokens, features, batch_size)
        yv = _labels(val_labels, Xv.shape[0], "tune_head (validation)")
    else:
        Xv = yv = None
    # standardise here, with a floor on the scale (see tune_prompt), then map the head back
    mean = X.mean(0)
    scale = (X.std(0) if X.shape[0] > 1 else torch.ones_like(mean)).clamp_min(min_scale)
    z = lambda f: (f - mean) / scale
    fit_kwargs.setdefault("standardize", False)
    fit = fit_head(z(X), y, None if Xv is None else z(Xv), yv, l2=l2, **fit_kwargs)
    w = fit.head.weight / scale
    head = LinearHead(w, fit.head.bias - w @ mean)
    return LearnedHeadFit(head, features, fit.train_accuracy, fit.val_accuracy, fit.log)


# ---------------------------------------------------------------- prompt tuning
@dataclass
class LearnedPromptFit:
    """Result of :func:`tune_prompt`.

    Attributes:
        prompt: (k, d) the trained input embeddings (on the model's device).
        head: the :class:`hmmtune.tuning.LinearHead` on the prompted mask output.
        features: ``"probabilities"`` or ``"logits"``.
        train_accuracy, val_accuracy: accuracies (val: NaN without a split).
        log: per-epoch history ``(steps, train_loss, val_accuracy, val_loss)``.
    """

    prompt: Tensor
    head: LinearHead
    features: str
    train_accuracy: float
    val_accuracy: float
    log: TrainLog

    def features_of(self, lm: MaskedLM, tokens: Any, batch_size: int = 512) -> Tensor:
        """Prompted features at the mask, (B, n) float64 on the CPU."""
        return _prompted_features(lm, tokens, self.prompt, self.features, batch_size).double().cpu()

    def predict(self, lm: MaskedLM, tokens: Any) -> Tensor:
        return self.head.predict(self.features_of(lm, tokens))

    def accuracy(self, lm: MaskedLM, tokens: Any, labels: Any) -> float:
        return accuracy(self.predict(lm, tokens), torch.as_tensor(labels).long())


def _feature_map(logits: Tensor, kind: str) -> Tensor:
    return torch.softmax(logits.float(), -1) if kind == "probabilities" else logits.float()


def _prompted_features(lm: MaskedLM, tokens: Any, prompt: Tensor, kind: str, batch_size: int) -> Tensor:
    was = lm.training
    lm.eval()
    try:
        with torch.no_grad():
            return _feature_map(lm.mask_logits(tokens, prompt, batch_size), kind)
    finally:
        lm.train(was)


def tune_prompt(
    lm: MaskedLM,
    tokens: Any,
    labels: Any,
    val_tokens: Any = None,
    val_labels: Any = None,
    *,
    num_prompt_tokens: int = DEFAULT_PROMPT_TOKENS,
    features: str = "probabilities",
    num_classes: int | None = None,
    init_head: Any = "fit",
    init_prompt: Tensor | None = None,
    l2: float = 0.0,
    init_l2: float = 1e-3,
    min_scale: float = 1e-2,
    eval_batch_size: int = 512,
    progress: bool = False,
    config: TrainConfig | None = None,
    **optimiser,
) -> LearnedPromptFit:
    """Prompt tuning on the frozen learned model (docs/theory.md, "Theorem P (prompt tuning)", "The paper's experiments").

    ``k`` trainable input embeddings ``z_1..z_k`` are prepended to ``[MASK] x`` and a linear
    probe reads the mask output; prompt and probe are trained jointly by Adam
    (cross-entropy), the network's weights stay frozen. The probe sees the features
    standardised with the statistics of the initially prompted training features (an
    invertible affine map: the set of heads is unchanged).

    Args:
        lm: the pretrained :class:`MaskedLM` (its weights are not modified).
        tokens: (B, T) training inputs.
        labels: (B,) their classes.
        val_tokens: validation inputs; the epoch with the best validation accuracy is
            kept.
        val_labels: their classes.
        num_prompt_tokens: k (the paper: 20).
        features: ``"probabilities"`` (default) or ``"logits"`` at the mask.
        init_head: initial probe. ``"fit"`` (default): the logistic-regression head
            fitted (:func:`hmmtune.tuning.fit_head`, L-BFGS) on the features of the
            initially prompted frozen model, so the joint training starts from head
            tuning on those features; ``None``: zeros (the paper's start; with few
            epochs the probe then lags); or any head
            :meth:`hmmtune.tuning.LinearHead.from_init` accepts.
        init_prompt: (k, d) initial embeddings; default the embeddings of ``k`` random
            real tokens (:meth:`MaskedLM.init_prompt`, seeded).
        l2: weight of ``l2 / 2 * ||w||^2`` on the (standardised) probe during the joint
            training.
        init_l2: the L2 weight of the ``"fit"`` initial head on standardised features
            (separable features would otherwise give it unbounded weights and the
            joint training a huge loss).
        min_scale: the smallest standard deviation a feature is divided by.
        progress: show a tqdm bar over epochs.
        config: the Adam schedule, a :class:`hmmtune.tuning.TrainConfig` with
            ``method="adam"``: ``lr``, ``epochs`` (passes over the training inputs),
            ``batch_size``, ``patience`` (epochs without a better validation score before
            stopping; None: run every epoch) and ``seed`` (the prompt's initialisation and
            the batch order). Default :meth:`TrainConfig.paper() <hmmtune.tuning.TrainConfig.paper>`:
            lr 0.01, 100 epochs, batch 128, every epoch run.
        optimiser: deprecated: the old keywords ``lr``, ``epochs``, ``batch_size``,
            ``patience``, ``seed`` (a ``DeprecationWarning``).

    Returns:
        :class:`LearnedPromptFit`.
    """
    from tqdm.auto import tqdm

    _check_kind(features)
    config = train_config(config, optimiser, "tune_prompt", default=TrainConfig.paper())
    if config.method != "adam":
        raise ValueError(f"tune_prompt trains by Adam: config.method must be 'adam', got {config.method!r} (use TrainConfig.paper(...))")
    lr, epochs, batch_size, patience, seed = config.lr, config.epochs, config.batch_size, config.patience, config.seed
    dev = lm.device
    X = lm.input_tokens(tokens)
    y = _labels(labels, X.shape[0], "tune_prompt").to(dev)
    has_val = val_tokens is not None and val_labels is not None
    if has_val:
        Xv = lm.input_tokens(val_tokens)
        yv = _labels(val_labels, Xv.shape[0], "tune_prompt (validation)").to(dev)
    C = max(2, int(torch.cat([y, yv]).max()) + 1 if has_val else int(y.max()) + 1)
    if num_classes is not None:
        if num_classes < C:
            raise ValueError(f"labels go up to {C - 1} but num_classes = {num_classes}")
        C = num_classes

    frozen = [p.requires_grad for p in lm.parameters()]
    was_training = lm.training
    for p in lm.parameters():
        p.requires_grad_(False)
    lm.eval()
    try:
        if init_prompt is None:
            prompt = lm.init_prompt(num_prompt_tokens, seed)
        else:
            prompt = torch.as_tensor(init_prompt, dtype=torch.float32, device=dev).detach().clone()
            if prompt.dim() != 2 or prompt.shape[1] != lm.config.hidden:
                raise ValueError(f"init_prompt must have shape (k, {lm.config.hidden}), got {tuple(prompt.shape)}")
            prompt.requires_grad_(True)
        f0 = _prompted_features(lm, X, prompt.detach(), features, eval_batch_size)
        n = f0.shape[1]
        mean = f0.mean(0)
        scale = f0.std(0).clamp_min(min_scale)
        if isinstance(init_head, str) and init_head == "fit":  # fitted on the standardised features
            z0 = ((f0 - mean) / scale).double().cpu()
            h = fit_head(z0, y.cpu(), num_classes=C, standardize=False, l2=init_l2).head
            w0, c0 = h.weight.float().to(dev), h.bias.float().to(dev)
        elif init_head is None:
            w0, c0 = torch.zeros(C, n, device=dev), torch.zeros(C, device=dev)
        else:  # a head on raw features, moved to the standardised ones
            h = LinearHead.from_init(init_head, C)
            w_raw, c_raw = h.weight.float().to(dev), h.bias.float().to(dev)
            w0, c0 = w_raw * scale, c_raw + w_raw @ mean
        w = w0.clone().requires_grad_(True)
        c = c0.clone().requires_grad_(True)

        def logits_of(batch: Tensor, p: Tensor) -> Tensor:
            z = (_feature_map(lm.mask_logits(batch, p), features) - mean) / scale
            return z @ w.T + c

        def evaluate() -> tuple[float, float]:
            with torch.no_grad():
                out = torch.cat([logits_of(Xv[s : s + eval_batch_size], prompt) for s in range(0, Xv.shape[0], eval_batch_size)])
                return float((out.argmax(-1) == yv).float().mean()), float(F.cross_entropy(out, yv))

        opt = torch.optim.Adam([prompt, w, c], lr=lr)
        gen = torch.Generator().manual_seed(int(seed))
        log = TrainLog("adam")
        best_score = evaluate() if has_val else None
        best = (prompt.detach().clone(), w.detach().clone(), c.detach().clone())
        bad = 0
        bar = tqdm(range(epochs), disable=not progress, desc="prompt tuning", unit="epoch", dynamic_ncols=True)
        for _ in bar:
            perm = torch.randperm(X.shape[0], generator=gen).to(dev)
            total = torch.zeros((), device=dev)
            for s in range(0, X.shape[0], batch_size):
                idx = perm[s : s + batch_size]
                loss = F.cross_entropy(logits_of(X[idx], prompt), y[idx])
                if l2:
                    loss = loss + 0.5 * l2 * (w * w).sum()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total = total + loss.detach() * len(idx)
                log.iterations += 1
            train_loss = float(total) / X.shape[0]
            log.checks += 1
            if not has_val:
                best = (prompt.detach().clone(), w.detach().clone(), c.detach().clone())
                log.best_check = log.checks - 1
                log.history.append((log.iterations, train_loss, float("nan"), float("nan")))
                continue
            score = evaluate()
            log.history.append((log.iterations, train_loss, score[0], score[1]))
            bar.set_postfix(val_acc=f"{score[0]:.3f}", refresh=False)
            if score[0] > best_score[0] or (score[0] == best_score[0] and score[1] < best_score[1]):
                best_score, bad = score, 0
                best = (prompt.detach().clone(), w.detach().clone(), c.detach().clone())
                log.best_check = log.checks - 1
            else:
                bad += 1
                if patience is not None and bad >= patience:
                    log.stopped = "patience"
                    break
        bar.close()
        p_best, w_best, c_best = best
        # the head on raw features: w (f - mean) / scale + c
        w_raw = (w_best.double() / scale.double()).cpu()
        head = LinearHead(w_raw, c_best.double().cpu() - w_raw @ mean.double().cpu())
        fit = LearnedPromptFit(p_best, head, features, float("nan"), float("nan"), log)
        fit.train_accuracy = accuracy(head.predict(fit.features_of(lm, X, eval_batch_size)), y.cpu())
        if has_val:
            fit.val_accuracy = accuracy(head.predict(fit.features_of(lm, Xv, eval_batch_size)), yv.cpu())
        return fit
    finally:
        for p, g in zip(lm.parameters(), frozen):
            p.requires_grad_(g)
        lm.train(was_training)


# --------------------------------------------------------------- attention head
@dataclass
class LearnedAttentionFit:
    """Result of :func:`tune_attention`: helper-4's :class:`hmmtune.tuning.AttentionFit`
    on the learned per-position predictions, and the ``stride`` that made them."""

    fit: AttentionFit
    stride: int

    @property
    def train_accuracy(self) -> float:
        return self.fit.train_accuracy

    @property
    def val_accuracy(self) -> float:
        return self.fit.val_accuracy

    def predict(self, lm: MaskedLM, tokens: Any) -> Tensor:
        return self.fit.head.predict(token_features(lm, tokens, self.stride))

    def accuracy(self, lm: MaskedLM, tokens: Any, labels: Any) -> float:
        return accuracy(self.predict(lm, tokens), torch.as_tensor(labels).long())


def tune_attention(
    lm: MaskedLM,
    tokens: Any,
    labels: Any,
    val_tokens: Any = None,
    val_labels: Any = None,
    *,
    stride: int = 20,
    batch_size: int = 256,
    **fit_kwargs,
) -> LearnedAttentionFit:
    """An attention head over the frozen model's per-position predictions (docs/theory.md, "Theorem M (attention heads)").

    Args:
        lm: the pretrained :class:`MaskedLM`.
        tokens: (B, T) training inputs.
        labels: (B,) their classes.
        val_tokens: validation inputs (optional).
        val_labels: their classes.
        stride: masking stride of :meth:`MaskedLM.token_predictions`.
        fit_kwargs: passed to :func:`hmmtune.tuning.fit_attention`.
    """
    X = token_features(lm, tokens, stride, batch_size)
    y = _labels(labels, X.shape[0], "tune_attention")
    if val_tokens is not None and val_labels is not None:
        Xv = token_features(lm, val_tokens, stride, batch_size)
        yv = _labels(val_labels, Xv.shape[0], "tune_attention (validation)")
    else:
        Xv = yv = None
    return LearnedAttentionFit(fit_attention(X, y, Xv, yv, **fit_kwargs), stride)
