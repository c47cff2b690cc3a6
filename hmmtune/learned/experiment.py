"""The paper's experiments in learned mode (docs/theory.md, "The paper's experiments").

Oracle mode (:mod:`hmmtune.experiments`) tunes heads and prompts on the *perfect* masked
LM. Learned mode pretrains a real transformer (:func:`hmmtune.learned.pretrain`) on text
from the same HMM, then tunes on the frozen network. Each run uses exactly the model,
task and labelled inputs of the oracle-mode run with the same configuration and seed
(:func:`hmmtune.experiments.exp1.build`), and also runs the oracle on them, so the
results table puts three numbers side by side for each method: learned, oracle, and the
paper's (published, read off its figure).

- **exp1**: head tuning vs prompt tuning (k = 20) on the paper's random HMMs.
- **exp2**: a memory HMM with an attention head over the learned per-position predictions
  vs the vanilla control with a linear head at the mask.

Two scales (:data:`SCALES`): ``"cpu"`` (default; a 2-layer, 64-wide encoder and short
inputs, one seed of exp1 for m in {4, 10, 25} in minutes on two cores) and ``"paper"``
(BERT-base, 5000 x 10,240 tokens in 512-token blocks, 3 epochs, lr 1e-5; needs a GPU).
Both experiments are recipes of the one sweep engine (:mod:`hmmtune.experiments.sweep`,
registered as ``"exp1-learned"`` and ``"exp2-learned"``): it plans the (size, seed) runs,
resumes from the store, executes them locally or on Ray (``executor="ray"``; a run asks
Ray for one GPU when ``device`` is CUDA), saves each record the moment it finishes and
writes the table. Pretraining checkpoints sit beside the records, so an interrupted
run resumes inside pretraining too.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import common
from ..experiments.sweep import SweepResult
from ..tuning.training import TrainConfig
from .model import EncoderConfig
from .pretrain import PretrainConfig, mask_tv_distance, pretrain
from .tune import tune_attention, tune_head, tune_prompt

__all__ = [
    "CPU_SCALE",
    "tune_head_and_prompt",
    "EXP1_CPU_STATES",
    "EXP1_LEARNED",
    "EXP2_CPU_VALUES",
    "EXP2_LEARNED",
    "LearnedConfig",
    "LearnedResult",
    "LearnedRow",
    "LearnedScale",
    "PAPER_SCALE",
    "SCALES",
    "config_from_dict",
    "format_learned_table",
    "plot_learned",
    "run_exp1_learned",
    "run_exp2_learned",
    "run_learned",
]


@dataclass(frozen=True)
class LearnedScale:
    """Sizes of a learned-mode run: the network, its pretraining, the downstream splits
    and the prompt-tuning schedule.

    ``num_layers``, ``hidden``, ``heads``, ``feedforward`` and ``dropout`` make the
    :class:`EncoderConfig` (:meth:`encoder`); ``num_sequences``, ``sequence_length``,
    ``block_length``, ``epochs``, ``batch_size``, ``lr``, ``warmup_steps``,
    ``mask_rate``, ``shard_sequences``, ``eval_every`` and ``eval_inputs`` the
    :class:`PretrainConfig` (:meth:`pretrain_config`, whose ``eval_length`` is
    ``length``); ``num_train``, ``num_val`` and ``num_test`` are the downstream splits;
    ``prompt_tokens``, ``prompt_epochs``, ``prompt_batch_size`` and ``prompt_lr`` the
    prompt tuning.

    Attributes:
        name: ``"cpu"``, ``"paper"`` or free text (used in file names).
        length: T, tokens per downstream input (the model reads ``[MASK] x_1..x_T``, so
            ``T + 1 <= block_length``).
        stride: masking stride of the per-position predictions (exp2's attention head).
    """

    name: str
    num_layers: int
    hidden: int
    heads: int
    feedforward: int
    dropout: float
    num_sequences: int
    sequence_length: int
    block_length: int
    epochs: int
    batch_size: int
    lr: float
    warmup_steps: int
    mask_rate: float
    shard_sequences: int
    eval_every: int
    eval_inputs: int
    length: int
    num_train: int
    num_val: int
    num_test: int
    prompt_tokens: int = 20
    prompt_epochs: int = 100
    prompt_batch_size: int = 128
    prompt_lr: float = 0.01
    stride: int = 20

    def __post_init__(self):
        if self.length + 1 > self.block_length:
            raise ValueError(
                f"length + 1 = {self.length + 1} exceeds block_length {self.block_length}: the model "
                "would read the downstream input on positions it never saw in pretraining"
            )

    def encoder(self, num_tokens: int) -> EncoderConfig:
        return EncoderConfig(
            num_tokens,
            num_layers=self.num_layers,
            hidden=self.hidden,
            heads=self.heads,
            feedforward=self.feedforward,
            max_length=self.block_length,
            dropout=self.dropout,
        )

    def pretrain_config(self, seed: int) -> PretrainConfig:
        return PretrainConfig(
            num_sequences=self.num_sequences,
            sequence_length=self.sequence_length,
            block_length=self.block_length,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            warmup_steps=self.warmup_steps,
            mask_rate=self.mask_rate,
            shard_sequences=self.shard_sequences,
            seed=seed,
            eval_every=self.eval_every,
            eval_inputs=self.eval_inputs,
            eval_length=self.length,
        )

    def prompt_config(self, seed: int) -> TrainConfig:
        """Prompt tuning's Adam schedule at this scale (:func:`tune_prompt`'s ``config``)."""
        return TrainConfig.paper(lr=self.prompt_lr, epochs=self.prompt_epochs, batch_size=self.prompt_batch_size, seed=seed)

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        c = self.pretrain_config(0)
        return (
            f"{self.name} scale: encoder {self.num_layers} layers x {self.hidden} ({self.heads} heads); "
            f"pretraining {self.num_sequences} x {self.sequence_length} tokens in {self.block_length}-token "
            f"blocks, {self.epochs} epoch(s) = {c.total_steps} steps of {self.batch_size}, lr {self.lr:g}, "
            f"mask rate {self.mask_rate:g}; T = {self.length}, train/val/test "
            f"{self.num_train}/{self.num_val}/{self.num_test}; prompt k = {self.prompt_tokens}, "
            f"{self.prompt_epochs} epochs"
        )


#: CPU default. Pretraining reads 3.1M tokens (3000 steps of 16 blocks of 64). Two
#: departures from the paper buy a usable model in minutes: mask rate 0.15 (BERT's
#: usual rate: three times the training signal per token of the authors' 0.05; at 0.05
#: the same budget leaves the model near the context-free prediction) and lr 3e-3
#: (a 2-layer network, not BERT-base). Inputs are 63 tokens (one block with the mask).
CPU_SCALE = LearnedScale(
    name="cpu",
    num_layers=2,
    hidden=64,
    heads=4,
    feedforward=256,
    dropout=0.0,
    num_sequences=2400,
    sequence_length=1280,
    block_length=64,
    epochs=1,
    batch_size=16,
    lr=3e-3,
    warmup_steps=100,
    mask_rate=0.15,
    shard_sequences=100,
    eval_every=500,
    eval_inputs=500,
    length=63,
    num_train=1000,
    num_val=200,
    num_test=1000,
    prompt_tokens=20,
    prompt_epochs=15,
    prompt_batch_size=64,
    prompt_lr=0.01,
    stride=16,
)

#: The authors' setting (docs/theory.md, "The paper's experiments"): BERT-base, 5000 sequences of 10,240 tokens in
#: 512-token blocks, 3 epochs, mask rate 0.05, lr 1e-5; T = 128, splits 5000/500/1000,
#: prompt tuning lr 0.01, 100 epochs, batch 128. Needs a GPU.
PAPER_SCALE = LearnedScale(
    name="paper",
    num_layers=12,
    hidden=768,
    heads=12,
    feedforward=3072,
    dropout=0.1,
    num_sequences=5000,
    sequence_length=10240,
    block_length=512,
    epochs=3,
    batch_size=32,
    lr=1e-5,
    warmup_steps=0,
    mask_rate=0.05,
    shard_sequences=250,
    eval_every=2000,
    eval_inputs=500,
    length=128,
    num_train=5000,
    num_val=500,
    num_test=1000,
    prompt_tokens=20,
    prompt_epochs=100,
    prompt_batch_size=128,
    prompt_lr=0.01,
    stride=20,
)

SCALES = {"cpu": CPU_SCALE, "paper": PAPER_SCALE}

#: exp1 sizes of the CPU default (the paper: 4, 8, 10, 12, 15, 25, 30).
EXP1_CPU_STATES = (4, 10, 25)
#: exp2 memory sizes V of the CPU default (the paper: 2, 3, 5, 7).
EXP2_CPU_VALUES = (2, 5)


def _scale(scale: str | LearnedScale) -> LearnedScale:
    if isinstance(scale, LearnedScale):
        return scale
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    return SCALES[scale]


# ------------------------------------------------------------------ one point
def _tv_on(lm, oracle, tokens) -> float:
    return float(mask_tv_distance(lm.mask_prediction(tokens), oracle.mask_prediction(tokens)).mean())


def _pretrain(model, scale, seed, device, checkpoint, progress, tag):
    cfg = scale.pretrain_config(common.derive_seed(seed, 0x1EA, tag))
    return pretrain(model, cfg, scale.encoder(int(model.num_tokens)), device=device, checkpoint=checkpoint, progress=progress)


def _summary(res) -> dict:
    d = res.to_dict()
    return {
        "tv": res.tv,
        "tv_reference": res.tv_reference,
        "steps": res.step,
        "seconds": round(res.seconds, 2),
        "parameters": d["parameters"],
        "history": d["history"],
    }


def exp1_point(
    m: int,
    seed: int,
    scale: str | LearnedScale = "cpu",
    *,
    device: Any = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict:
    """One (m, seed) of experiment 1 in learned mode: the record's ``results``.

    The model, task and inputs are those of
    :func:`hmmtune.experiments.exp1.build` for the same configuration and seed;
    :func:`hmmtune.experiments.exp1.run` gives the oracle's numbers on them.
    """
    from ..experiments import exp1

    sc = _scale(scale)
    cfg = exp1.Exp1Config(
        int(m), length=sc.length, num_train=sc.num_train, num_val=sc.num_val, num_test=sc.num_test, prompt_tokens=sc.prompt_tokens
    )
    t0 = time.perf_counter()
    oracle_results = exp1.run(cfg, seed)
    t_oracle = time.perf_counter() - t0
    s = exp1.build(cfg, seed)
    tr, va, te = s.splits
    x, y = s.tokens, s.labels

    t0 = time.perf_counter()
    pre = _pretrain(s.model, sc, seed, device, checkpoint, progress, 1)
    t_pre = time.perf_counter() - t0
    lm = pre.model
    head, prompt, t_head, t_prompt = tune_head_and_prompt(lm, s, sc, seed, progress=progress)
    return {
        "learned": {
            "head": {"train": head.train_accuracy, "val": head.val_accuracy, "test": head.accuracy(lm, x[te], y[te])},
            "prompt": {
                "train": prompt.train_accuracy,
                "val": prompt.val_accuracy,
                "test": prompt.accuracy(lm, x[te], y[te]),
                "epochs": len(prompt.log.history),
                "best_epoch": prompt.log.best_check + 1,
            },
        },
        "oracle": {k: oracle_results[k] for k in ("head", "prompt")},
        "task": oracle_results.get("task"),
        "tv_test": _tv_on(lm, s.oracle, x[te]),
        "pretrain": _summary(pre),
        "seconds": {"oracle": t_oracle, "pretrain": t_pre, "head": t_head, "prompt": t_prompt},
    }


def tune_head_and_prompt(lm, setup, scale: LearnedScale, seed: int, *, progress: bool = False):
    """Head tuning and prompt tuning of a frozen network on an exp1 setup's train and
    validation splits, as every learned exp1 runner does them.

    Returns ``(head, prompt, head_seconds, prompt_seconds)``.
    """
    tr, va, _ = setup.splits
    x, y = setup.tokens, setup.labels
    t0 = time.perf_counter()
    head = tune_head(lm, x[tr], y[tr], x[va], y[va], num_classes=setup.task.num_classes)
    t_head = time.perf_counter() - t0
    t0 = time.perf_counter()
    prompt = tune_prompt(
        lm,
        x[tr],
        y[tr],
        x[va],
        y[va],
        num_prompt_tokens=scale.prompt_tokens,
        num_classes=setup.task.num_classes,
        config=scale.prompt_config(seed),
        progress=progress,
    )
    return head, prompt, t_head, time.perf_counter() - t0


def exp2_point(
    num_values: int,
    seed: int,
    scale: str | LearnedScale = "cpu",
    *,
    device: Any = None,
    checkpoint: str | os.PathLike | None = None,
    progress: bool = False,
) -> dict:
    """One (V, seed) of experiment 2 in learned mode: the record's ``results``.

    Two networks are pretrained, one on the memory HMM and one on its vanilla control
    (same flattened size ``m = V * S``, S = 4). The models, tasks and inputs are those of
    :func:`hmmtune.experiments.exp2.build` for the same configuration and seed, the
    recipe :func:`hmmtune.experiments.exp2.run` reads too (which gives the oracle's numbers).

    - ``memory_attention``: an attention head over the learned per-position predictions
      (:func:`tune_attention`), label from the memory posterior;
    - ``vanilla_linear``: a linear head on the control's learned mask output;
    - ``memory_linear`` (diagnostic): a linear head on the memory model's mask output.
    """
    from ..experiments import exp2

    sc = _scale(scale)
    cfg = exp2.Exp2Config(int(num_values), length=sc.length, num_train=sc.num_train, num_val=sc.num_val, num_test=sc.num_test)
    t0 = time.perf_counter()
    oracle_results = exp2.run(cfg, seed)
    t_oracle = time.perf_counter() - t0
    s = exp2.build(cfg, seed)
    setups = {m: (v.model, v.oracle, v.tokens, v.task, v.labels) for m, v in (("memory", s.memory), ("vanilla", s.vanilla))}
    tr, va, te = s.splits
    learned, pre_out, tv, seconds = {}, {}, {}, {"oracle": t_oracle}
    ckpt = None if checkpoint is None else Path(checkpoint)
    for tag, model in ((2, "memory"), (3, "vanilla")):
        hmm, oracle, x, task, y = setups[model]
        path = None if ckpt is None else ckpt.with_name(f"{ckpt.stem}-{model}{ckpt.suffix}")
        t0 = time.perf_counter()
        pre = _pretrain(hmm, sc, seed, device, path, progress, tag)
        seconds[f"pretrain_{model}"] = time.perf_counter() - t0
        lm = pre.model
        pre_out[model] = _summary(pre)
        tv[model] = _tv_on(lm, oracle, x[te])
        t0 = time.perf_counter()
        fits = {}
        if model == "memory":
            fits["memory_attention"] = tune_attention(lm, x[tr], y[tr], x[va], y[va], stride=sc.stride, num_classes=task.num_classes)
            fits["memory_linear"] = tune_head(lm, x[tr], y[tr], x[va], y[va], num_classes=task.num_classes)
        else:
            fits["vanilla_linear"] = tune_head(lm, x[tr], y[tr], x[va], y[va], num_classes=task.num_classes)
        for method, fit in fits.items():
            learned[method] = {"train": fit.train_accuracy, "val": fit.val_accuracy, "test": fit.accuracy(lm, x[te], y[te])}
        seconds[f"tune_{model}"] = time.perf_counter() - t0
    return {
        "learned": learned,
        "oracle": {k: oracle_results[k] for k in learned},
        "task": oracle_results.get("task"),
        "tv_test": tv,
        "pretrain": pre_out,
        "seconds": seconds,
    }


# --------------------------------------------------------------------- sweeps
#: Learned-mode titles; methods, published numbers and paper sizes come from the
#: oracle experiments' modules (one table per experiment).
_TITLES = {
    "exp1": "Experiment 1 (learned mode): head vs prompt tuning on a pretrained transformer",
    "exp2": "Experiment 2 (learned mode): memory + attention vs vanilla + linear head",
}
_CPU_SIZES = {"exp1": EXP1_CPU_STATES, "exp2": EXP2_CPU_VALUES}


def _module(experiment: str):
    from ..experiments import exp1, exp2

    if experiment not in _TITLES:
        raise ValueError(f"unknown experiment {experiment!r}; choose exp1 or exp2")
    return exp1 if experiment == "exp1" else exp2


def _info(experiment: str) -> dict:
    mod = _module(experiment)
    return dict(
        x_name="m" if experiment == "exp1" else "V",
        x_label="number of hidden states m" if experiment == "exp1" else "flattened number of states m = V x S",
        methods=mod.METHODS,
        published=mod.PUBLISHED,
        title=_TITLES[experiment],
        sizes={"cpu": _CPU_SIZES[experiment], "paper": mod.STATES if experiment == "exp1" else mod.VALUES},
        seeds={"cpu": 1, "paper": mod.DEFAULT_SEEDS},
    )


def _x_of(experiment: str, size: int) -> int:
    if experiment == "exp1":
        return int(size)
    from ..experiments import exp2

    return int(size) * exp2.Exp2Config(int(size)).num_local_states  # flattened m = V * S


@dataclass(frozen=True)
class LearnedConfig:
    """One point of a learned-mode sweep: the experiment, its size (exp1: m; exp2: V)
    and the scale. ``to_dict()`` is the record's ``config``."""

    experiment: str
    size: int
    scale: LearnedScale

    @property
    def x(self) -> int:
        return _x_of(self.experiment, self.size)

    @property
    def label(self) -> str:
        return f"{'m' if self.experiment == 'exp1' else 'V'}{int(self.size)}"

    num_tokens = 10

    def to_dict(self) -> dict:
        return {"experiment": self.experiment, "size": int(self.size), "scale": self.scale.to_dict()}


def config_from_dict(d: dict) -> LearnedConfig:
    return LearnedConfig(d["experiment"], int(d["size"]), LearnedScale(**d["scale"]))


def learned_run_one(config: LearnedConfig, seed: int, ctx) -> dict:
    """The sweep engine's learned runner: one (size, seed) -> the record's results."""
    point = exp1_point if config.experiment == "exp1" else exp2_point
    return point(config.size, seed, config.scale, device=ctx.device, checkpoint=ctx.checkpoint, progress=ctx.show_progress)


def learned_plan(experiment: str, quick: bool = False, truncate: bool = False, scale: str | LearnedScale = "cpu") -> list:
    """The scale's default sizes (``quick``/``truncate`` are oracle-mode options)."""
    if quick or truncate:
        raise ValueError("--quick and --truncate are oracle-mode options; learned mode sizes its runs with --scale cpu|paper")
    sc = _scale(scale)
    key = sc.name if sc.name in ("cpu", "paper") else "paper"
    return [LearnedConfig(experiment, int(v), sc) for v in _info(experiment)["sizes"][key]]


def _learned_accuracy(results: dict, method: str) -> float:
    return results["learned"][method]["test"]


def _learned_extra(config: LearnedConfig, ctx) -> dict:
    return {"size": int(config.size)}


def _learned_folder(experiment: str, configs, quick, truncate):
    name = f"{experiment}-learned-{configs[0].scale.name}"
    return name, name


def _learned_settings(configs, seeds) -> str:
    return f"{len(seeds)} seed(s); {configs[0].scale.describe()}"


def _learned_plot(experiment: str, rows, path, configs, subtitle) -> str:
    return plot_learned(experiment, rows, path, subtitle=subtitle)


def learned_resources(config: LearnedConfig, device) -> dict:
    """A Ray task's resources: one CPU, and one GPU when the network runs on CUDA."""
    gpu = device is not None and str(device).startswith("cuda")
    return {"num_cpus": 1, "num_gpus": 1 if gpu else 0}


def _learned_recipe(experiment: str):
    from ..experiments.sweep import Recipe

    info = _info(experiment)
    return Recipe(
        name=f"{experiment}-learned",
        experiment=experiment,
        mode="learned",
        title=info["title"],
        methods=info["methods"],
        published=info["published"],
        x_label=info["x_label"],
        x_short="m" if experiment == "exp1" else "m = V x S",
        plan=partial(learned_plan, experiment),
        config_from_dict=config_from_dict,
        run_one=learned_run_one,
        build=_module(experiment).build,
        default_seeds=1,
        quick_seeds=1,
        accuracy=_learned_accuracy,
        summarize=partial(summarize_learned, experiment),
        format_table=partial(format_learned_table, experiment),
        plot=partial(_learned_plot, experiment),
        settings=_learned_settings,
        folder=partial(_learned_folder, experiment),
        extra=_learned_extra,
        resources=learned_resources,
        checkpoints=True,
    )


def LearnedProgress(done, total, record, resumed):  # noqa: N802 - the engine's Progress, old name
    """Deprecated: :class:`hmmtune.experiments.sweep.Progress`, what ``progress`` receives after each run."""
    import warnings

    from ..experiments.sweep import Progress

    warnings.warn("LearnedProgress is deprecated; use hmmtune.experiments.Progress", DeprecationWarning, stacklevel=2)
    return Progress(done, total, record, resumed)


@dataclass
class LearnedRow:
    """One (x, method) of the results table: means over seeds (accuracies in %)."""

    x: int
    method: str
    learned: float
    oracle: float
    published: float | None
    tv: float
    seeds: int
    learned_std: float = float("nan")

    def to_dict(self) -> dict:
        nan = lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        return {k: nan(v) for k, v in asdict(self).items()}


@dataclass(init=False)
class LearnedResult(SweepResult):
    """What :func:`run_learned` returns: the engine's :class:`~hmmtune.experiments.sweep.SweepResult`
    (records, table rows, the Markdown table, the output paths ``table``, ``summary``,
    ``plot``, ``records``, counts, wall time ``elapsed_s``, the sum of the runs' times
    ``run_time_s``, its cost line) with the experiment's name (``"exp1"``, ``"exp2"``) and
    the :class:`LearnedScale` it ran at. Constructed as
    ``LearnedResult(experiment, scale, records, rows, table, ran, resumed, ...)``."""

    scale: LearnedScale | None = None

    def __init__(self, experiment: str, scale: LearnedScale, *args, **kwargs):
        SweepResult.__init__(self, experiment, *args, **kwargs)
        self.scale = scale


def summarize_learned(experiment: str, records: list[dict]) -> list[LearnedRow]:
    info = _info(experiment)
    published = info["published"]
    rows = []
    xs = sorted({int(r["x"]) for r in records})
    for x in xs:
        recs = [r for r in records if int(r["x"]) == x]
        for method in info["methods"]:
            lv = np.array([100 * r["results"]["learned"][method]["test"] for r in recs])
            ov = np.array([100 * r["results"]["oracle"][method]["test"] for r in recs])
            tv = [r["results"]["tv_test"] for r in recs]
            if isinstance(tv[0], dict):  # exp2: one network per model
                tv = [t["vanilla" if method.startswith("vanilla") else "memory"] for t in tv]
            rows.append(
                LearnedRow(
                    x,
                    method,
                    float(lv.mean()),
                    float(ov.mean()),
                    published.get(method, {}).get(x),
                    float(np.mean(tv)),
                    len(recs),
                    float(lv.std(ddof=1)) if len(lv) > 1 else float("nan"),
                )
            )
    return rows


def format_learned_table(experiment: str, rows: list[LearnedRow]) -> str:
    """Markdown: for each x, each method's learned / oracle / published accuracy (%), and
    the learned model's TV distance to the oracle's ``G_0`` on the test inputs."""
    info = _info(experiment)
    methods = list(info["methods"])
    x_head = "m" if experiment == "exp1" else "m = V x S"
    head = [x_head]
    for m in methods:
        name = info["methods"][m]
        head += [f"{name}: learned", "oracle", "paper"]
    head += ["TV to oracle" if experiment == "exp1" else "TV (memory / vanilla)", "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    get = {(r.x, r.method): r for r in rows}
    for x in sorted({r.x for r in rows}):
        cells = [str(x)]
        for m in methods:
            r = get[(x, m)]
            std = "" if math.isnan(r.learned_std) else f" ± {r.learned_std:.1f}"
            cells += [f"{r.learned:.1f}{std}", f"{r.oracle:.1f}", "–" if r.published is None else f"{r.published:.1f}"]
        if experiment == "exp1":
            cells.append(f"{get[(x, methods[0])].tv:.3f}")
        else:
            cells.append(f"{get[(x, 'memory_attention')].tv:.3f} / {get[(x, 'vanilla_linear')].tv:.3f}")
        cells.append(str(get[(x, methods[0])].seeds))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot_learned(experiment: str, rows: list[LearnedRow], path: str | os.PathLike, subtitle: str | None = None) -> str:
    """Accuracy against x: learned (solid), oracle (dotted), published (dashed) for each
    method, with a vertical line at the vocabulary size n = 10."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    info = _info(experiment)
    colors = ["tab:red", "tab:blue", "tab:green"]
    fig, ax = plt.subplots(figsize=(8.6, 4.4), dpi=120)
    try:
        for i, (method, label) in enumerate(info["methods"].items()):
            rs = sorted((r for r in rows if r.method == method), key=lambda r: r.x)
            xs = [r.x for r in rs]
            ax.plot(xs, [r.learned for r in rs], marker="o", color=colors[i], label=f"{label} (learned)")
            ax.plot(xs, [r.oracle for r in rs], marker="s", linestyle=":", color=colors[i], alpha=0.8, label=f"{label} (oracle)")
            pub = [(r.x, r.published) for r in rs if r.published is not None]
            if pub:
                ax.plot(*zip(*pub), linestyle="--", marker="x", color=colors[i], alpha=0.6, label=f"{label} (paper)")
        ax.axvline(10, color="gray", linestyle=":", label="vocabulary size n = 10")
        ax.set_xlabel(info["x_label"])
        ax.set_ylabel("test accuracy (%)")
        ax.set_title(info["title"], fontsize=9)
        if subtitle:
            fig.text(0.5, 0.005, subtitle, ha="center", va="bottom", fontsize=6, color="dimgray", wrap=True)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0)  # off the data
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        fig.savefig(path, bbox_inches="tight")
    finally:
        plt.close(fig)
    return str(path)


def run_learned(
    experiment: str,
    *,
    scale: str | LearnedScale = "cpu",
    sizes: list[int] | tuple[int, ...] | None = None,
    seeds: int | list[int] | None = None,
    device: Any = None,
    out: str | os.PathLike = "results",
    threads: int | None = None,
    progress: Callable | None = None,
    show_progress: bool = False,
    plot: bool = True,
    checkpoints: bool = True,
    executor: str = "local",
    ray_address: str | None = None,
    jobs: int = 1,
) -> LearnedResult:
    """Run (or resume) an experiment in learned mode and write its table: the sweep
    engine (:func:`hmmtune.experiments.sweep.run_sweep`) with the learned runner.

    Args:
        experiment: ``"exp1"`` or ``"exp2"``.
        scale: ``"cpu"`` (default), ``"paper"`` or a :class:`LearnedScale`.
        sizes: exp1: numbers of states m; exp2: memory sizes V (default: the scale's).
        seeds: a number of seeds (0..N-1) or a list (default: 1 at the CPU scale, the
            paper's 20 / 5 at paper scale).
        device: torch device of the network (``"cuda"`` for the paper scale; on Ray each
            run then asks for one GPU).
        out: results folder: records in ``out/<experiment>-learned-<scale>/`` (with the
            pretraining checkpoints), table / summary / plot at
            ``out/<experiment>-learned-<scale>.{md,json,png}``.
        threads: torch intra-op threads during the sweep (restored after). None: 1 when
            the network runs on the CPU (its tensors are small, so more threads mostly
            add synchronisation), torch's default
            otherwise.
        progress: called with a :class:`~hmmtune.experiments.sweep.Progress` after every run.
        show_progress: tqdm bars inside each run (pretraining, prompt tuning).
        plot: write the PNG.
        checkpoints: save pretraining checkpoints beside the records, so a run stopped
            during pretraining resumes there (at paper scale each is about 1.3 GB); they
            are deleted once the run's record is saved.
        executor: ``"local"`` or ``"ray"`` (:func:`~hmmtune.experiments.sweep.run_sweep`).
        ray_address: the Ray cluster (``"auto"``, ``"HOST:PORT"``; None: start one).
        jobs: local worker processes, or the CPUs of a Ray instance started here.
    """
    from ..experiments.sweep import get_recipe, run_sweep

    info = _info(experiment)
    sc = _scale(scale)
    key_scale = sc.name if sc.name in info["sizes"] else "paper"
    sizes = list(sizes) if sizes is not None else list(info["sizes"][key_scale])
    if seeds is None:
        seeds = info["seeds"][key_scale]
    if not sizes:
        raise ValueError("at least one size is needed")
    if threads is None and (device is None or torch.device(device).type == "cpu"):
        threads = 1
    res = run_sweep(
        get_recipe(f"{experiment}-learned"),
        configs=[LearnedConfig(experiment, int(v), sc) for v in sizes],
        seeds=seeds,
        out=out,
        jobs=jobs,
        progress=progress,
        plot=plot,
        threads=threads,
        executor=executor,
        ray_address=ray_address,
        device=device,
        show_progress=show_progress,
        checkpoints=checkpoints,
    )
    return LearnedResult(experiment, sc, **{f.name: getattr(res, f.name) for f in fields(SweepResult) if f.name != "experiment"})


def run_exp1_learned(**kwargs) -> LearnedResult:
    """:func:`run_learned` for experiment 1."""
    return run_learned("exp1", **kwargs)


def run_exp2_learned(**kwargs) -> LearnedResult:
    """:func:`run_learned` for experiment 2."""
    return run_learned("exp2", **kwargs)


def with_scale(scale: str | LearnedScale, **changes) -> LearnedScale:
    """A copy of a scale with some fields changed (e.g. fewer pretraining sequences)."""
    return replace(_scale(scale), **changes)


def _register() -> None:
    from ..experiments.sweep import register

    register("exp1-learned", EXP1_LEARNED)
    register("exp2-learned", EXP2_LEARNED)


#: Experiments 1 and 2 in learned mode, as the sweep engine runs them.
EXP1_LEARNED = _learned_recipe("exp1")
EXP2_LEARNED = _learned_recipe("exp2")
_register()
