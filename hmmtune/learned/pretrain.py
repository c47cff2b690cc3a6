"""Masked-LM pretraining of a :class:`MaskedLM` on text streamed from a generative model.

docs/theory.md, "The paper's experiments": the authors pretrained BERT on 5000 sequences of 10,240 tokens cut
into 512-token blocks, 3 epochs, mask rate 0.05, lr 1e-5. :func:`pretrain` repeats this
at any scale without storing the corpus: the corpus is split into shards of
``shard_sequences`` sequences, and shard ``j`` is always sampled with the same seed, so
every epoch re-reads the same text. Everything a step does (which shard and blocks, which
positions are masked) is a function of ``(seed, step)``; with the model, optimizer,
schedule and torch RNG state saved in a checkpoint, a resumed run reaches exactly the
state of an uninterrupted one (on the same device and torch build).

Diagnostic: every ``eval_every`` steps the total-variation distance between the
learned prediction at the mask and the oracle's ``G_0`` on held-out downstream inputs,

    TV = mean_x 1/2 || softmax(model([MASK] x))_0 - G_0(x) ||_1,

is recorded with the training and held-out losses (:class:`TrainingRecord`).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor
from torch.nn import functional as F

from .. import common
from ..models import arguments
from .model import EncoderConfig, MaskedLM

__all__ = [
    "PretrainConfig",
    "PretrainResult",
    "TrainingRecord",
    "downstream_inputs",
    "load_pretrained",
    "mask_tv_distance",
    "pretrain",
    "sample_tokens",
]

# Fields of PretrainConfig that may differ between a checkpoint and the run resuming it.
_RESUMABLE_FIELDS = ("eval_every",)


@dataclass(frozen=True)
class PretrainConfig:
    """What :func:`pretrain` does. Defaults are a CPU-sized run; see :meth:`paper`.

    Attributes:
        num_sequences: sequences in the corpus.
        sequence_length: tokens per sequence.
        block_length: tokens per training block (each sequence is cut into
            ``sequence_length // block_length`` blocks; a remainder is dropped).
        epochs: passes over the corpus.
        batch_size: blocks per step.
        lr: peak AdamW learning rate.
        weight_decay: AdamW weight decay.
        warmup_steps: linear warm-up steps.
        schedule: ``"linear"`` (warm-up, then linear decay to 0 as in BERT) or
            ``"constant"`` (warm-up, then flat).
        mask_rate: fraction of the positions of each block replaced by ``[MASK]`` and
            predicted (``max(1, round(mask_rate * block_length))`` positions per block).
        shard_sequences: sequences sampled at once (the memory knob of the stream).
        seed: seeds the corpus, the masks, the initial weights and dropout.
        grad_clip: gradient-norm clip (None: off).
        eval_every: steps between diagnostics (0: only at the start and end).
        eval_inputs: held-out downstream inputs for the TV distance.
        eval_length: their length ``T`` (inputs are ``[MASK] x_1..x_T``).
        eval_blocks: held-out blocks for the held-out masked-LM loss.
    """

    num_sequences: int = 512
    sequence_length: int = 1280
    block_length: int = 128
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.01
    warmup_steps: int = 50
    schedule: str = "linear"
    mask_rate: float = 0.05
    shard_sequences: int = 64
    seed: int = 0
    grad_clip: float | None = 1.0
    eval_every: int = 100
    eval_inputs: int = 500
    eval_length: int = 64
    eval_blocks: int = 64

    def __post_init__(self):
        for name in (
            "num_sequences",
            "sequence_length",
            "block_length",
            "epochs",
            "batch_size",
            "shard_sequences",
            "eval_inputs",
            "eval_length",
            "eval_blocks",
        ):
            object.__setattr__(self, name, arguments.integer(name, getattr(self, name)))
        for name in ("warmup_steps", "eval_every"):
            object.__setattr__(self, name, arguments.integer(name, getattr(self, name), 0))
        if self.block_length > self.sequence_length:
            raise ValueError(
                f"block_length ({self.block_length}) exceeds sequence_length ({self.sequence_length})"
            )
        if not (0.0 < self.mask_rate < 1.0):
            raise ValueError(f"mask_rate must lie in (0, 1), got {self.mask_rate!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be a positive finite number, got {self.lr!r}")
        if self.schedule not in ("linear", "constant"):
            raise ValueError(f"schedule must be 'linear' or 'constant', got {self.schedule!r}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip!r}")

    @classmethod
    def paper(cls, **overrides) -> "PretrainConfig":
        """The authors' pretraining: 5000 x 10,240 tokens in 512-token blocks, 3 epochs,
        mask rate 0.05, lr 1e-5 (batch 32, no warm-up, linear decay as BERT)."""
        base = dict(
            num_sequences=5000,
            sequence_length=10240,
            block_length=512,
            epochs=3,
            batch_size=32,
            lr=1e-5,
            warmup_steps=0,
            shard_sequences=250,
            eval_every=2000,
            eval_length=128,
        )
        base.update(overrides)
        return cls(**base)

    @property
    def blocks_per_sequence(self) -> int:
        return self.sequence_length // self.block_length

    @property
    def masks_per_block(self) -> int:
        return max(1, round(self.mask_rate * self.block_length))

    def _shard_sizes(self) -> list[int]:
        full, rest = divmod(self.num_sequences, self.shard_sequences)
        return [self.shard_sequences] * full + ([rest] if rest else [])

    def _batches_per_shard(self) -> list[int]:
        return [s * self.blocks_per_sequence // self.batch_size for s in self._shard_sizes()]

    @property
    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch (blocks left over in a shard after the last full
        batch are dropped)."""
        return sum(self._batches_per_shard())

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def total_tokens(self) -> int:
        """Tokens in the corpus (one epoch)."""
        return self.num_sequences * self.sequence_length

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class TrainingRecord:
    """One diagnostic point.

    Attributes:
        step: optimizer steps done.
        tokens: training tokens read so far (blocks x block length).
        train_loss: mean masked-LM cross-entropy (nats) over the steps since the last
            record (NaN at step 0).
        eval_loss: masked-LM cross-entropy on the held-out blocks.
        tv: mean total-variation distance to the oracle's ``G_0`` on held-out inputs.
        seconds: training wall time so far.
    """

    step: int
    tokens: int
    train_loss: float
    eval_loss: float
    tv: float
    seconds: float


@dataclass
class PretrainResult:
    """What :func:`pretrain` returns.

    Attributes:
        model: the trained :class:`MaskedLM` (on the training device, eval mode).
        config: the :class:`PretrainConfig`.
        history: the :class:`TrainingRecord` list, first at step 0.
        tv_reference: TV distance to ``G_0`` of a prediction that ignores the input,
            the marginal law of ``X_0`` (estimated by the mean of ``G_0`` over the
            held-out inputs): a learned model well below it uses the context.
        step: steps done (``total_steps`` unless stopped by ``max_steps``).
        seconds: training wall time, resumed runs included.
    """

    model: MaskedLM
    config: PretrainConfig
    history: list[TrainingRecord]
    tv_reference: float
    step: int
    seconds: float
    device: str = "cpu"

    @property
    def finished(self) -> bool:
        return self.step >= self.config.total_steps

    @property
    def tv(self) -> float:
        """The last recorded TV distance."""
        return self.history[-1].tv

    def to_dict(self) -> dict:
        return {
            "encoder": self.model.config.to_dict(),
            "parameters": self.model.num_parameters(),
            "pretrain": self.config.to_dict(),
            "step": self.step,
            "total_steps": self.config.total_steps,
            "seconds": self.seconds,
            "device": self.device,
            "tv_reference": self.tv_reference,
            "history": [asdict(r) for r in self.history],
        }

    def save_history(self, path: str | os.PathLike) -> Path:
        """Write :meth:`to_dict` as JSON."""
        path = Path(path)
        common.write_text_atomic(path, json.dumps(self.to_dict(), indent=1))
        return path


# --------------------------------------------------------------------- helpers
def sample_tokens(model: Any, num_sequences: int, length: int, seed: int) -> Tensor:
    """Tokens (B, T) from any model with ``sample(B, T, seed)`` returning a tuple or a
    NamedTuple whose first field (or ``tokens``) holds the tokens."""
    out = model.sample(num_sequences, length, seed=seed)
    tokens = getattr(out, "tokens", None)
    if tokens is None:
        tokens = out[0] if isinstance(out, (tuple, list)) else out
    return torch.as_tensor(tokens, dtype=torch.long)


def downstream_inputs(model: Any, num_inputs: int, length: int, seed: int) -> Tensor:
    """Downstream inputs ``x_1..x_T`` as the oracle reads them: positions 1..T of a
    sampled sequence of length T + 1 (position 0 is the mask's)."""
    return sample_tokens(model, num_inputs, length + 1, seed)[:, 1:]


def _default_reference(model: Any) -> Callable[[Tensor], Tensor]:
    from ..oracle import OracleMLM

    try:
        oracle = OracleMLM(model)
    except TypeError:
        oracle = None
    if oracle is None:
        for name in ("oracle", "to_oracle"):
            if callable(getattr(model, name, None)):
                oracle = getattr(model, name)()
                break
    if oracle is None or not callable(getattr(oracle, "mask_prediction", None)):
        raise TypeError(
            f"no oracle known for {type(model).__name__}: pass reference=callable mapping (B, T) "
            "tokens to the perfect model's (B, n) prediction at the mask"
        )
    return oracle.mask_prediction


def mask_tv_distance(prediction: Tensor, reference: Tensor) -> Tensor:
    """Per-input total-variation distance ``1/2 ||p - q||_1`` between two (B, n)
    probability tensors (computed in float64)."""
    p = prediction.detach().double().cpu()
    q = reference.detach().double().cpu()
    if p.shape != q.shape:
        raise ValueError(f"shapes differ: {tuple(p.shape)} vs {tuple(q.shape)}")
    return 0.5 * (p - q).abs().sum(-1)


class _Stream:
    """The corpus as a function of the step (no state beyond a one-shard cache)."""

    def __init__(self, model: Any, config: PretrainConfig, mask_id: int):
        self.model = model
        self.c = config
        self.mask_id = mask_id
        self.sizes = config._shard_sizes()
        self.batches = config._batches_per_shard()
        if config.steps_per_epoch < 1:
            raise ValueError(
                f"the corpus ({config.num_sequences} sequences x {config.blocks_per_sequence} blocks) "
                f"holds fewer than one batch of {config.batch_size} blocks per shard"
            )
        self._cache: tuple[tuple[int, int], Tensor] | None = None

    def _shard(self, epoch: int, shard: int) -> Tensor:
        key = (epoch, shard)
        if self._cache is not None and self._cache[0] == key:
            return self._cache[1]
        c = self.c
        tokens = sample_tokens(self.model, self.sizes[shard], c.sequence_length, common.derive_seed(c.seed, 1, shard))
        L = c.block_length
        blocks = tokens[:, : c.blocks_per_sequence * L].reshape(-1, L)
        gen = torch.Generator().manual_seed(common.derive_seed(c.seed, 2, epoch, shard))
        blocks = blocks[torch.randperm(blocks.shape[0], generator=gen)]
        self._cache = (key, blocks)
        return blocks

    def batch(self, step: int) -> tuple[Tensor, Tensor]:
        """(inputs with masks, labels with -100 where not predicted), both (batch, L)."""
        c = self.c
        epoch, r = divmod(step, c.steps_per_epoch)
        gen = torch.Generator().manual_seed(common.derive_seed(c.seed, 3, epoch))
        order = torch.randperm(len(self.sizes), generator=gen).tolist()
        for shard in order:
            if r < self.batches[shard]:
                break
            r -= self.batches[shard]
        blocks = self._shard(epoch, shard)[r * c.batch_size : (r + 1) * c.batch_size]
        return _mask_blocks(blocks, c.masks_per_block, self.mask_id, common.derive_seed(c.seed, 4, step))


def _mask_blocks(blocks: Tensor, per_block: int, mask_id: int, seed: int) -> tuple[Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.rand(blocks.shape, generator=gen)
    idx = scores.topk(per_block, -1).indices
    chosen = torch.zeros(blocks.shape, dtype=torch.bool).scatter_(1, idx, True)
    inputs = blocks.masked_fill(chosen, mask_id)
    labels = blocks.masked_fill(~chosen, -100)
    return inputs, labels


def _lr_lambda(config: PretrainConfig) -> Callable[[int], float]:
    total = max(1, config.total_steps)
    warm = config.warmup_steps

    def f(step: int) -> float:
        w = min(1.0, (step + 1) / warm) if warm else 1.0
        if config.schedule == "linear":
            w *= max(0.0, (total - step) / max(1, total - warm)) if step >= warm else 1.0
        return w

    return f


class _Evaluator:
    def __init__(self, model: Any, config: PretrainConfig, reference: Callable[[Tensor], Tensor], mask_id: int):
        c = config
        self.inputs = downstream_inputs(model, c.eval_inputs, c.eval_length, common.derive_seed(c.seed, 5))
        self.target = reference(self.inputs).detach().double().cpu()
        blocks = sample_tokens(model, c.eval_blocks, c.block_length, common.derive_seed(c.seed, 6))
        self.blocks = _mask_blocks(blocks, c.masks_per_block, mask_id, common.derive_seed(c.seed, 7))
        # a prediction that ignores the input: the marginal law of X_0, estimated by the
        # mean of the oracle's predictions
        prior = self.target.mean(0, keepdim=True).expand_as(self.target)
        self.tv_reference = float(mask_tv_distance(prior, self.target).mean())

    @torch.no_grad()
    def __call__(self, lm: MaskedLM) -> tuple[float, float]:
        pred = lm.mask_prediction(self.inputs, batch_size=256)
        tv = float(mask_tv_distance(pred, self.target).mean())
        was = lm.training
        lm.eval()
        inputs, labels = (t.to(lm.device) for t in self.blocks)
        loss = float(F.cross_entropy(lm(inputs).flatten(0, 1).float(), labels.flatten(), ignore_index=-100))
        lm.train(was)
        return loss, tv


def _config_mismatch(saved: dict, now: PretrainConfig) -> list[str]:
    out = []
    for f in fields(PretrainConfig):
        if f.name in _RESUMABLE_FIELDS:
            continue
        a, b = saved.get(f.name), getattr(now, f.name)
        if a != b:
            out.append(f"{f.name}: checkpoint {a!r}, now {b!r}")
    return out


def _rng_devices(device: torch.device) -> list:
    return [device] if device.type == "cuda" else []


def _save_checkpoint(path: Path, lm, opt, sched, step, history, seconds, config, device, running) -> None:
    state = {
        "running_loss": (running[0].cpu(), running[1]),
        "format": "hmmtune.learned.checkpoint/1",
        "encoder": lm.config.to_dict(),
        "pretrain": config.to_dict(),
        "model": lm.state_dict(),
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "step": step,
        "history": [asdict(r) for r in history],
        "seconds": seconds,
        "rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
    }
    common.write_atomic(path, lambda fh: torch.save(state, fh), binary=True)


def load_pretrained(path: str | os.PathLike, device: Any = None) -> tuple[MaskedLM, list[TrainingRecord]]:
    """Read a checkpoint written by :func:`pretrain`: the model (eval mode) and its history."""
    state = torch.load(Path(path), map_location=device or "cpu", weights_only=False)
    if state.get("format") != "hmmtune.learned.checkpoint/1":
        raise ValueError(f"{path} is not an hmmtune.learned checkpoint")
    lm = MaskedLM(EncoderConfig(**state["encoder"]))
    lm.load_state_dict(state["model"])
    if device is not None:
        lm.to(device)
    return lm.eval(), [TrainingRecord(**r) for r in state["history"]]


# ------------------------------------------------------------------ the loop
def pretrain(
    model: Any,
    config: PretrainConfig | None = None,
    encoder: EncoderConfig | MaskedLM | None = None,
    *,
    device: Any = None,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_every: int | None = None,
    resume: bool = True,
    max_steps: int | None = None,
    progress: bool = True,
    reference: Callable[[Tensor], Tensor] | None = None,
    history_path: str | os.PathLike | None = None,
) -> PretrainResult:
    """Pretrain a masked LM on text sampled from ``model``.

    Args:
        model: the generative model (an :class:`hmmtune.HMM`, or anything with
            ``sample(B, T, seed)`` and ``num_tokens``).
        config: a :class:`PretrainConfig` (default: the CPU-sized one).
        encoder: an :class:`EncoderConfig` (a fresh model, initialised from
            ``config.seed``) or a :class:`MaskedLM` to train further. Default:
            ``EncoderConfig(n, max_length=max(block_length, ...))``.
        device: torch device for the network (sampling and the oracle stay on CPU).
        checkpoint: file to save to every ``checkpoint_every`` steps and at the end;
            with ``resume`` (default) an existing file there is loaded and training
            continues from its step. Its data-defining settings must match ``config``.
        checkpoint_every: steps between checkpoints (default: at each diagnostic).
        max_steps: stop after this many steps in total (counting resumed ones), e.g.
            to split a run over sessions; the result then has ``finished == False``.
        progress: show a tqdm progress bar (False disables it).
        reference: callable mapping (B, T) downstream inputs to the perfect model's
            (B, n) prediction at the mask (default: :class:`hmmtune.OracleMLM`).
        history_path: write the result's JSON (history, TV distances) there.

    Returns:
        A :class:`PretrainResult`.
    """
    from tqdm.auto import tqdm

    config = config or PretrainConfig()
    n = int(getattr(model, "num_tokens"))
    device = torch.device(device) if device is not None else None
    if isinstance(encoder, MaskedLM):
        lm = encoder
        device = device or lm.device
    else:
        enc = encoder or EncoderConfig(n, max_length=max(config.block_length, config.eval_length + 1))
        if enc.num_tokens != n:
            raise ValueError(f"encoder has {enc.num_tokens} tokens, the model {n}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(common.derive_seed(config.seed, 0))
            lm = MaskedLM(enc)
    device = device or torch.device("cpu")
    lm.to(device)
    for label, need in (("block_length", config.block_length), ("eval_length + 1", config.eval_length + 1)):
        if need > lm.config.max_length:
            raise ValueError(f"{label} = {need} exceeds the encoder's max_length {lm.config.max_length}")
    if lm.num_tokens != n:
        raise ValueError(f"encoder has {lm.num_tokens} tokens, the model {n}")

    stream = _Stream(model, config, lm.mask_id)
    evaluator = _Evaluator(model, config, reference or _default_reference(model), lm.mask_id)
    total = config.total_steps
    stop = total if max_steps is None else min(total, max_steps)

    decay, no_decay = [], []
    for name, p in lm.named_parameters():
        (no_decay if p.dim() < 2 else decay).append(p)
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(config))

    ckpt = Path(checkpoint) if checkpoint is not None else None
    every = checkpoint_every if checkpoint_every is not None else config.eval_every
    step, history, seconds = 0, [], 0.0
    loss_sum, loss_count = torch.zeros((), dtype=torch.float64, device=device), 0
    rng_state = cuda_state = None
    if ckpt is not None and resume and ckpt.exists():
        state = torch.load(ckpt, map_location=device, weights_only=False)
        if state.get("format") != "hmmtune.learned.checkpoint/1":
            raise ValueError(f"{ckpt} is not an hmmtune.learned checkpoint")
        bad = _config_mismatch(state["pretrain"], config)
        if state["encoder"] != lm.config.to_dict():
            bad.append(f"encoder: checkpoint {state['encoder']}, now {lm.config.to_dict()}")
        if bad:
            raise ValueError(f"checkpoint {ckpt} was written with other settings: " + "; ".join(bad))
        lm.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, seconds = int(state["step"]), float(state["seconds"])
        history = [TrainingRecord(**r) for r in state["history"]]
        rng_state, cuda_state = state["rng"], state["cuda_rng"]
        loss_sum, loss_count = state["running_loss"][0].to(device), int(state["running_loss"][1])

    with torch.random.fork_rng(devices=_rng_devices(device)):
        if rng_state is not None:
            torch.set_rng_state(rng_state.cpu() if hasattr(rng_state, "cpu") else rng_state)
            if cuda_state is not None and device.type == "cuda":
                torch.cuda.set_rng_state(cuda_state.cpu(), device)
        else:
            torch.manual_seed(common.derive_seed(config.seed, 8))

        def record(train_loss: float) -> None:
            eval_loss, tv = evaluator(lm)
            tokens = step * config.batch_size * config.block_length
            history.append(TrainingRecord(step, tokens, train_loss, eval_loss, tv, seconds))
            bar.set_postfix(loss=f"{eval_loss:.3f}", tv=f"{tv:.3f}", refresh=False)

        bar = tqdm(total=total, initial=step, disable=not progress, desc="pretrain", unit="step", dynamic_ncols=True)
        try:
            if not history:
                record(float("nan"))
            lm.train()
            t0 = time.perf_counter()
            while step < stop:
                inputs, labels = stream.batch(step)
                inputs, labels = inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True)
                logits = lm(inputs)
                loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), ignore_index=-100)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(lm.parameters(), config.grad_clip)
                opt.step()
                sched.step()
                loss_sum = loss_sum + loss.detach().double()
                loss_count += 1
                step += 1
                bar.update(1)
                # Records fall at multiples of eval_every and at the last step only, so an
                # interrupted and resumed run has the same history as an uninterrupted one.
                at_eval = bool(config.eval_every) and step % config.eval_every == 0
                if at_eval or step == total or step == stop:
                    seconds += time.perf_counter() - t0
                    if at_eval or step == total:
                        record(float(loss_sum) / max(1, loss_count))
                        loss_sum, loss_count = torch.zeros((), dtype=torch.float64, device=device), 0
                    lm.train()
                    t0 = time.perf_counter()
                if ckpt is not None and ((every and step % every == 0) or step == stop):
                    _save_checkpoint(ckpt, lm, opt, sched, step, history, seconds, config, device, (loss_sum, loss_count))
            if ckpt is not None and step == stop and stop == 0:
                _save_checkpoint(ckpt, lm, opt, sched, step, history, seconds, config, device, (loss_sum, loss_count))
        finally:
            bar.close()
    lm.eval()
    result = PretrainResult(lm, config, history, evaluator.tv_reference, step, seconds, str(device))
    if history_path is not None:
        result.save_history(history_path)
    return result

