"""A small BERT-style masked language model in plain torch (docs/theory.md, "The paper's experiments").

The learned counterpart of :class:`hmmtune.OracleMLM`: token and position embeddings,
an ``nn.TransformerEncoder`` and an output layer over the ``n`` real tokens. The
vocabulary holds the ``n`` tokens of the HMM plus ``[MASK]`` (id ``n``). Sequences are
fixed-length blocks, so no padding token is needed.

A downstream input ``x = (x_1..x_T)`` is fed exactly as to the oracle,
``[MASK] x_1 .. x_T`` (mask at position 0). With a soft prompt of ``k`` trainable input
embeddings the model reads ``z_1..z_k [MASK] x_1..x_T``. The prompt vectors get no
position embedding: the mask and the input keep positions ``0..T`` as in pretraining,
so a prompt never pushes the input onto positions the model was not trained on. This
loses nothing: a fixed position vector added to a freely trained vector is only a
change of variables (BERT-style implementations that add positions ``0..k-1`` to the
prompt train the same family of inputs).

Shapes: ``B`` inputs, ``T`` tokens per input, ``L`` tokens per block, ``n`` tokens,
``d`` the hidden size, ``k`` prompt vectors.
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..models import arguments
from ..models.arguments import as_tokens

__all__ = ["EncoderConfig", "MaskedLM"]


def _fresh_casts(method):
    """Run ``method`` with autocast's cast cache off (the previous setting is restored).

    Inside an autocast region, torch caches the low-precision cast of every leaf weight
    that requires a gradient and reuses it until the outermost region exits, keyed by
    the tensor and blind to in-place updates. A caller that wraps a whole run in one
    region (``bench/paper_scale_gpu.py --bf16``) then gets forward passes that ignore
    the optimiser's updates, casts made under ``no_grad`` that cut gradients off, and a
    frozen model (``requires_grad`` off: never cached) that computes other features
    than the same model with gradients on -- prompt tuning reported train and
    validation accuracies of one network and the test accuracy came from another.
    Casting afresh in every call costs one cast per weight and forward pass, as an
    autocast region per step does.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        was = torch.is_autocast_cache_enabled()
        torch.set_autocast_cache_enabled(False)
        try:
            return method(*args, **kwargs)
        finally:
            torch.set_autocast_cache_enabled(was)

    return wrapper


@dataclass(frozen=True)
class EncoderConfig:
    """Size of a :class:`MaskedLM`.

    Attributes:
        num_tokens: ``n``, the HMM's vocabulary (``[MASK]`` is added as id ``n``).
        num_layers: transformer layers.
        hidden: ``d``, the embedding and hidden size.
        heads: attention heads (must divide ``hidden``).
        feedforward: inner size of each layer's MLP (default ``4 * hidden``).
        max_length: the longest token sequence (mask + input, or a pretraining block)
            the position embeddings cover; prompt vectors do not count.
        dropout: dropout in embeddings and layers (BERT uses 0.1).
    """

    num_tokens: int
    num_layers: int = 2
    hidden: int = 64
    heads: int = 4
    feedforward: int | None = None
    max_length: int = 256
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("num_tokens", "num_layers", "hidden", "heads", "max_length"):
            object.__setattr__(self, name, arguments.integer(name, getattr(self, name)))
        if self.hidden % self.heads:
            raise ValueError(f"hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if self.feedforward is not None:
            object.__setattr__(self, "feedforward", arguments.integer("feedforward", self.feedforward))
        if not (0.0 <= self.dropout < 1.0):
            raise ValueError(f"dropout must lie in [0, 1), got {self.dropout!r}")

    @classmethod
    def paper(cls, num_tokens: int = 10, max_length: int = 512) -> "EncoderConfig":
        """BERT-base as the authors used it: 12 layers, hidden 768, 12 heads, MLP 3072,
        dropout 0.1, 512 positions."""
        return cls(num_tokens, num_layers=12, hidden=768, heads=12, feedforward=3072, max_length=max_length, dropout=0.1)

    def to_dict(self) -> dict:
        return asdict(self)


class MaskedLM(nn.Module):
    """A bidirectional transformer masked LM over an HMM's tokens.

    Args:
        config: an :class:`EncoderConfig`.

    ``forward(tokens)`` maps (B, L) token ids in ``[0, n]`` (``n`` = ``[MASK]``) to
    (B, L, n) logits over the real tokens. The convenience methods take downstream
    inputs ``x`` (B, T) and prepend the mask themselves.
    """

    def __init__(self, config: EncoderConfig):
        super().__init__()
        if not isinstance(config, EncoderConfig):
            raise TypeError(f"MaskedLM needs an EncoderConfig, got {type(config).__name__}")
        self.config = config
        d = config.hidden
        self.token_embedding = nn.Embedding(config.num_tokens + 1, d)
        self.position_embedding = nn.Embedding(config.max_length, d)
        self.embedding_norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(config.dropout)
        layer = nn.TransformerEncoderLayer(
            d,
            config.heads,
            config.feedforward or 4 * d,
            config.dropout,
            activation="gelu",
            batch_first=True,
            norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.num_layers, norm=nn.LayerNorm(d), enable_nested_tensor=False)
        self.output = nn.Linear(d, config.num_tokens)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """BERT's initialisation: normal(0, 0.02) weights, zero biases, unit norms."""
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=0.02)
                if isinstance(module, nn.Linear) and module.bias is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, nn.MultiheadAttention):
                nn.init.normal_(module.in_proj_weight, std=0.02)
                nn.init.zeros_(module.in_proj_bias)
            elif isinstance(module, nn.LayerNorm):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    # ------------------------------------------------------------------ basics
    @property
    def num_tokens(self) -> int:
        """``n``, the number of real tokens (the output layer's size)."""
        return self.config.num_tokens

    @property
    def mask_id(self) -> int:
        """The id of ``[MASK]`` (``n``)."""
        return self.config.num_tokens

    @property
    def device(self) -> torch.device:
        return self.output.weight.device

    def __repr__(self) -> str:
        c = self.config
        size = sum(p.numel() for p in self.parameters())
        return (
            f"MaskedLM(n={c.num_tokens}, layers={c.num_layers}, hidden={c.hidden}, heads={c.heads}, "
            f"max_length={c.max_length}, parameters={size:,})"
        )

    @_fresh_casts
    def forward(self, tokens: Tensor, prompt: Tensor | None = None, return_hidden: bool = False) -> Tensor:
        """Logits over the ``n`` real tokens at every position.

        Args:
            tokens: (B, L) ids in ``[0, n]``; ``n`` is ``[MASK]``.
            prompt: optional (k, d) input embeddings prepended to every sequence
                (no position embedding is added to them).
            return_hidden: return the final hidden states (B, L, d) instead of logits.

        Returns:
            (B, L, n) logits (prompt positions dropped).
        """
        B, L = tokens.shape
        if L > self.config.max_length:
            raise ValueError(f"sequence of {L} tokens exceeds max_length {self.config.max_length} of this model")
        h = self.token_embedding(tokens) + self.position_embedding.weight[:L]
        k = 0
        if prompt is not None:
            if prompt.dim() != 2 or prompt.shape[1] != self.config.hidden:
                raise ValueError(f"prompt must have shape (k, {self.config.hidden}), got {tuple(prompt.shape)}")
            k = prompt.shape[0]
            h = torch.cat([prompt.to(h.dtype).unsqueeze(0).expand(B, -1, -1), h], 1)
        h = self.dropout(self.embedding_norm(h))
        h = self.encoder(h)[:, k:]
        return h if return_hidden else self.output(h)

    # ------------------------------------------------------ downstream inputs
    def input_tokens(self, x: Any) -> Tensor:
        """Downstream inputs ``x_1 .. x_T`` checked against the vocabulary, as (B, T) ids
        on the model's device (``ValueError`` naming ``x`` otherwise)."""
        tokens, _ = as_tokens(x, self.num_tokens, device=self.device, name="x")
        return tokens

    def masked_input(self, x: Any) -> Tensor:
        """``[MASK] x_1 .. x_T`` as (B, T + 1) ids."""
        tokens = self.input_tokens(x)
        mask = torch.full((tokens.shape[0], 1), self.mask_id, dtype=torch.long, device=tokens.device)
        return torch.cat([mask, tokens], 1)

    def mask_logits(self, x: Any, prompt: Tensor | None = None, batch_size: int | None = None) -> Tensor:
        """Logits at the mask of ``[MASK] x`` (or ``prompt [MASK] x``), shape (B, n).

        Differentiable (with respect to ``prompt`` and the weights) when ``batch_size``
        is None; with a batch size the inputs are processed in chunks.
        """
        ids = self.masked_input(x)
        if batch_size is None:
            return self(ids, prompt)[:, 0]
        return torch.cat([self(ids[s : s + batch_size], prompt)[:, 0] for s in range(0, ids.shape[0], batch_size)])

    @torch.no_grad()
    def mask_prediction(self, x: Any, prompt: Tensor | None = None, batch_size: int = 512) -> Tensor:
        """The learned model's prediction at the mask, a probability vector per input.

        The counterpart of :meth:`hmmtune.OracleMLM.mask_prediction` (``G_0(x)``).

        Args:
            x: (B, T) downstream tokens.
            prompt: optional (k, d) soft prompt.
            batch_size: inputs per forward pass.

        Returns:
            (B, n) float32 probabilities on the model's device (no gradient).
        """
        was = self.training
        self.eval()
        try:
            return torch.softmax(self.mask_logits(x, prompt, batch_size).float(), -1)
        finally:
            self.train(was)

    @torch.no_grad()
    @_fresh_casts
    def mask_features(self, x: Any, kind: str = "probabilities", batch_size: int = 512) -> Tensor:
        """Frozen features at the mask for head tuning: ``"probabilities"`` (default,
        as the theory's ``G_0``), ``"logits"``, or ``"hidden"`` (the final hidden state)."""
        was = self.training
        self.eval()
        try:
            ids = self.masked_input(x)
            outs = []
            for s in range(0, ids.shape[0], batch_size):
                h = self(ids[s : s + batch_size], return_hidden=True)[:, 0]
                if kind == "hidden":
                    outs.append(h)
                elif kind == "logits":
                    outs.append(self.output(h))
                elif kind == "probabilities":
                    outs.append(torch.softmax(self.output(h).float(), -1))
                else:
                    raise ValueError(f"kind must be 'probabilities', 'logits' or 'hidden', got {kind!r}")
            return torch.cat(outs).float()
        finally:
            self.train(was)

    @torch.no_grad()
    def token_predictions(self, x: Any, stride: int = 20, batch_size: int = 256) -> Tensor:
        """Predictions ``P(X_t | rest)`` at every input position ``t = 1..T``, (B, T, n).

        The learned counterpart of :meth:`hmmtune.OracleMLM.token_predictions` (the
        ``G_t`` an attention head reads, docs/theory.md, "Theorem M (attention heads)"). The input is ``[MASK] x``; in
        pass ``r`` (``r = 0..stride-1``) the positions ``t`` with ``t % stride == r`` are
        masked together and predicted. ``stride = T`` is exact leave-one-out (``T``
        passes); the default 20 masks one position in 20, the density the model saw in
        pretraining at mask rate 0.05, in 20 passes.
        """
        arguments.integer("stride", stride)
        was = self.training
        self.eval()
        try:
            ids = self.masked_input(x)
            B, L = ids.shape
            T = L - 1
            stride = min(stride, T)
            pos = torch.arange(1, L, device=ids.device)
            out = torch.empty(B, T, self.num_tokens, device=ids.device)
            for r in range(stride):
                sel = pos[(pos - 1) % stride == r]
                masked = ids.clone()
                masked[:, sel] = self.mask_id
                for s in range(0, B, batch_size):
                    logits = self(masked[s : s + batch_size])[:, sel]
                    out[s : s + batch_size, sel - 1] = torch.softmax(logits.float(), -1)
            return out
        finally:
            self.train(was)

    # ----------------------------------------------------------------- prompts
    def init_prompt(self, k: int = 20, seed: int | None = 0) -> Tensor:
        """A fresh (k, d) soft prompt, initialised from the embeddings of random real
        tokens (seeded), as a leaf tensor with ``requires_grad=True``."""
        arguments.integer("k", k)
        gen = torch.Generator().manual_seed(0 if seed is None else seed)
        ids = torch.randint(self.num_tokens, (k,), generator=gen)
        with torch.no_grad():
            p = self.token_embedding.weight[ids.to(self.device)].detach().clone()
        return p.requires_grad_(True)

    def freeze(self) -> "MaskedLM":
        """Turn off gradients of every weight (head and prompt tuning keep the backbone
        frozen) and switch to eval mode; returns self."""
        for p in self.parameters():
            p.requires_grad_(False)
        return self.eval()

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

