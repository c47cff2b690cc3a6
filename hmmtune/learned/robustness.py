"""The robustness study: accuracy against pretraining error, from imperfect oracles and
from learned networks at several pretraining steps, on the same axes (docs/robustness.md).

:func:`run_robustness` runs

1. the imperfect-oracle grid of :mod:`hmmtune.experiments.robustness` (every base
   experiment, size, named pretraining error and seed), and
2. learned points: for experiment 1 at a few sizes, one transformer masked LM pretrained
   at the CPU scale (:data:`hmmtune.learned.experiment.CPU_SCALE`) and stopped at several
   steps (one run, resumed from its checkpoint between stops, so every stop is a snapshot
   of the same training); at each stop the measured mean / worst TV of its mask prediction
   to the perfect oracle's and the head- and prompt-tuning test accuracies,

through the one sweep engine (:func:`hmmtune.experiments.sweep.run_sweep`): this module
registers the recipe ``"robustness-learned"`` (the imperfect-oracle grid of the recipe
``"robustness"`` plus one learned run per size, seed 0 only, planned first since they are
the long ones), so the study gets the engine's executors (``local`` with ``jobs``
processes, or ``ray``), folder lock, Ctrl-C handling, record validation and cost summary.
One record per (configuration, seed): an imperfect-oracle point, or a learned network
with its measurements at every stop (``results["steps"]``). It then writes the curves,
the located published points and the paper-style plots.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np

from .. import common
from ..experiments import exp1, store
from ..experiments import robustness as R
from ..experiments.sweep import register, run_sweep
from .experiment import CPU_SCALE, LearnedScale, tune_head_and_prompt
from .pretrain import mask_tv_distance, pretrain
from .tune import token_features, tune_attention, tune_head

__all__ = [
    "LEARNED_STEPS",
    "LEARNED_SIZES",
    "LEARNED_EXP2_SIZES",
    "QUICK_SCALE",
    "LearnedPointConfig",
    "learned_points",
    "learned_points_exp2",
    "STUDY_RECIPE",
    "RobustnessResult",
    "run_robustness",
]

#: Pretraining steps at which the learned network is measured (the CPU scale runs 3000).
LEARNED_STEPS = (20, 60, 200, 600, 3000)
#: exp1 sizes of the learned points (the CPU scale's, as in ``reproduce --mode learned``).
LEARNED_SIZES = (4, 10, 25)
#: exp2 memory sizes V of the learned points (the CPU scale's, as in ``reproduce exp2 --mode learned``).
LEARNED_EXP2_SIZES = (2, 5)
#: ``--quick``: a tiny network and short schedule, seconds per point.
QUICK_SCALE = replace(
    CPU_SCALE,
    name="quick",
    num_layers=1,
    hidden=32,
    heads=2,
    feedforward=64,
    num_sequences=40,
    sequence_length=320,
    block_length=32,
    shard_sequences=20,
    eval_every=0,
    eval_inputs=50,
    length=31,
    num_train=200,
    num_val=50,
    num_test=200,
    prompt_tokens=5,
    prompt_epochs=2,
    warmup_steps=5,
)
QUICK_LEARNED_STEPS = (5, 25)
#: The largest exp1 size learns slowly at the CPU scale (TV 0.13 after 3000 steps, still
#: falling; bench/robustness_m25.py): its network runs three epochs over the same corpus
#: (9000 steps, the linear decay stretched to match), measured at these steps.
LONG_SCALE = replace(CPU_SCALE, name="cpu-long", epochs=3)
LEARNED_LONG_SIZES = (25,)
LEARNED_LONG_STEPS = LEARNED_STEPS + (9000,)
QUICK_LEARNED_SIZES = (4,)
QUICK_LEARNED_EXP2_SIZES = (2,)


@dataclass(frozen=True)
class LearnedPointConfig:
    """Learned networks of one base experiment at one size, measured at several steps (one
    run of the sweep, one record with every stop in ``results["steps"]``).

    ``base="exp1"``: one network on the size-``m`` HMM, head and prompt tuning at each stop;
    ``base="exp2"``: two networks, one on the memory HMM with ``V = size`` values (memory +
    attention head, and memory + linear head as a diagnostic) and one on its vanilla
    control (vanilla + linear head), as :func:`hmmtune.learned.experiment.exp2_point`."""

    size: int
    steps: tuple
    scale: str = "cpu"
    prompt_epochs: int = 8
    base: str = "exp1"

    def __post_init__(self):
        if self.base not in R.BASES:
            raise ValueError(f"base must be one of {', '.join(R.BASES)}, got {self.base!r}")

    @property
    def label(self) -> str:
        return f"learned-{self.base}-{self.size}-{self.scale}"

    @property
    def x(self) -> int:
        return self.size

    def to_dict(self) -> dict:
        d = asdict(self)
        d["steps"] = list(self.steps)
        d.update(runner="learned")
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "LearnedPointConfig":
        d = {k: v for k, v in d.items() if k != "runner"}
        d["steps"] = tuple(d["steps"])
        return cls(**d)


def _scale(name: str) -> LearnedScale:
    return {"cpu": CPU_SCALE, "cpu-long": LONG_SCALE, "quick": QUICK_SCALE}[name]


def learned_points(
    config: LearnedPointConfig, seed: int, workdir: str | os.PathLike | None = None, *, checkpoint: str | os.PathLike | None = None
) -> list[dict]:
    """Pretrain one network, stopping at ``config.steps``; the measurements at each stop.

    The model, task and inputs are :func:`hmmtune.experiments.exp1.build`'s at the scale's
    sizes (experiment 2: :func:`learned_points_exp2`). The checkpoint between stops is ``checkpoint``, or a file in ``workdir``; one
    left by an interrupted run is discarded (its earlier stops were not saved), so every
    stop is measured in this run, from step 0.
    """
    if checkpoint is None and workdir is None:
        raise ValueError("learned_points needs a workdir or a checkpoint path")
    ckpt = Path(checkpoint) if checkpoint is not None else Path(workdir) / f"{config.label}-seed{seed}.pt"
    if config.base == "exp2":
        return learned_points_exp2(config, seed, ckpt)
    sc = replace(_scale(config.scale), prompt_epochs=config.prompt_epochs)
    cfg = exp1.Exp1Config(config.size, length=sc.length, num_train=sc.num_train, num_val=sc.num_val, num_test=sc.num_test, prompt_tokens=sc.prompt_tokens)
    s = exp1.build(cfg, seed)
    tr, va, te = s.splits
    x, y = s.tokens, s.labels
    pcfg = sc.pretrain_config(common.derive_seed(seed, config.size, 0x5EED))
    steps = sorted({min(int(k), pcfg.total_steps) for k in config.steps})
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.unlink(missing_ok=True)
    reference = s.oracle.mask_prediction(x[te])
    out = []
    for k in steps:
        t0 = time.perf_counter()
        res = pretrain(s.model, pcfg, sc.encoder(int(s.model.num_tokens)), checkpoint=ckpt, max_steps=k, progress=False)
        lm = res.model
        t_pre = time.perf_counter() - t0
        tv = mask_tv_distance(lm.mask_prediction(x[te]), reference)
        t0 = time.perf_counter()
        head, prompt, _, _ = tune_head_and_prompt(lm, s, sc, seed)
        tv_stats = {"tv_mean": float(tv.mean()), "tv_worst": float(tv.max()), "step": int(res.step)}
        out.append(
            {
                "source": "learned",
                "head": {"test": head.accuracy(lm, x[te], y[te]), "val": head.val_accuracy, **tv_stats},
                "prompt": {"test": prompt.accuracy(lm, x[te], y[te]), "val": prompt.val_accuracy, **tv_stats},
                "pretrain": {"step": int(res.step), "total_steps": pcfg.total_steps, "seconds": round(t_pre, 2)},
                "tune_seconds": round(time.perf_counter() - t0, 2),
            }
        )
    try:
        ckpt.unlink()
    except OSError:
        pass
    return out


def _stop_stats(tv, step: int) -> dict:
    return {"tv_mean": float(tv.mean()), "tv_worst": float(tv.max()), "step": int(step)}


def learned_points_exp2(config: LearnedPointConfig, seed: int, checkpoint: str | os.PathLike) -> list[dict]:
    """Experiment 2's learned points: the two networks of
    :func:`hmmtune.learned.experiment.exp2_point` (same models, tasks, inputs and
    pretraining seeds, so the stop at the scale's last step is that function's network),
    each pretrained once and stopped at ``config.steps``; at each stop

    - ``memory_attention``: an attention head over the memory network's per-position
      predictions (masking stride ``scale.stride``), its TV to the perfect oracle's
      leave-one-out ``G_t`` averaged over every test input and position
      (docs/theory.md, "Theorem M (attention heads)");
    - ``memory_linear`` (diagnostic): a linear head at the memory network's mask, TV at
      the mask;
    - ``vanilla_linear``: a linear head at the vanilla control's network's mask, TV at the
      mask.

    The checkpoints between stops are ``checkpoint`` with ``-memory`` / ``-vanilla``
    before the suffix; any left by an interrupted run is discarded.
    """
    from ..experiments import exp2

    sc = _scale(config.scale)
    cfg = exp2.Exp2Config(config.size, length=sc.length, num_train=sc.num_train, num_val=sc.num_val, num_test=sc.num_test)
    s = exp2.build(cfg, seed)
    tr, va, te = s.splits
    ckpt = Path(checkpoint)
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    per_model = {}
    for tag, name, part in ((2, "memory", s.memory), (3, "vanilla", s.vanilla)):
        x, y, classes = part.tokens, part.labels, part.task.num_classes
        # exp2_point's pretraining seed for this network (hmmtune.learned.experiment)
        pcfg = sc.pretrain_config(common.derive_seed(seed, 0x1EA, tag))
        steps = sorted({min(int(k), pcfg.total_steps) for k in config.steps})
        path = ckpt.with_name(f"{ckpt.stem}-{name}{ckpt.suffix}")
        path.unlink(missing_ok=True)
        mask_ref = part.oracle.mask_prediction(x[te])
        pos_ref = part.oracle.token_predictions(x[te]) if name == "memory" else None
        stops = []
        for k in steps:
            t0 = time.perf_counter()
            res = pretrain(part.model, pcfg, sc.encoder(int(part.model.num_tokens)), checkpoint=path, max_steps=k, progress=False)
            lm = res.model
            t_pre = time.perf_counter() - t0
            at_mask = _stop_stats(mask_tv_distance(lm.mask_prediction(x[te]), mask_ref), res.step)
            t0 = time.perf_counter()
            lin = tune_head(lm, x[tr], y[tr], x[va], y[va], num_classes=classes)
            entry = {"memory_linear" if name == "memory" else "vanilla_linear": {"test": lin.accuracy(lm, x[te], y[te]), "val": lin.val_accuracy, **at_mask}}
            if name == "memory":
                G = token_features(lm, x[te], sc.stride)
                at_positions = _stop_stats(0.5 * (G - pos_ref).abs().sum(-1).flatten(), res.step)
                att = tune_attention(lm, x[tr], y[tr], x[va], y[va], stride=sc.stride, num_classes=classes)
                entry["memory_attention"] = {"test": att.fit.head.accuracy(G, y[te]), "val": att.val_accuracy, "tv_mask_mean": at_mask["tv_mean"], **at_positions}
            entry[f"pretrain_{name}"] = {"step": int(res.step), "total_steps": pcfg.total_steps, "seconds": round(t_pre, 2)}
            entry[f"tune_seconds_{name}"] = round(time.perf_counter() - t0, 2)
            stops.append(entry)
        path.unlink(missing_ok=True)
        per_model[name] = stops
    return [{"source": "learned", **m, **v} for m, v in zip(per_model["memory"], per_model["vanilla"])]


def run_one(config, seed: int, ctx=None) -> dict:
    """The study recipe's runner: an imperfect-oracle point
    (:func:`hmmtune.experiments.robustness.run`), or a learned network measured at every
    stop (``{"source": "learned", "steps": [...]}``; the checkpoint between stops is the
    engine's, ``ctx.checkpoint``, or a temporary folder)."""
    if not isinstance(config, LearnedPointConfig):
        return R.run(config, seed)
    if ctx is not None and ctx.checkpoint is not None:
        return {"source": "learned", "steps": learned_points(config, seed, checkpoint=ctx.checkpoint)}
    import tempfile

    with tempfile.TemporaryDirectory(prefix="hmmtune-learned-") as tmp:
        return {"source": "learned", "steps": learned_points(config, seed, tmp)}


def config_from_dict(d: dict):
    """A learned point's configuration (``"runner": "learned"``) or an imperfect-oracle one."""
    return LearnedPointConfig.from_dict(d) if d.get("runner") == "learned" else R.config_from_dict(d)


def learned_configs(quick: bool = False, sizes=None, steps=None, *, exp2_sizes=None, bases=R.BASES) -> list[LearnedPointConfig]:
    """The learned points, measured at ``steps``: one network per exp1 size (``sizes``)
    and two per exp2 memory size V (``exp2_sizes``), for the ``bases`` listed. Without
    ``steps``, exp1's sizes in :data:`LEARNED_LONG_SIZES` run the longer schedule
    :data:`LONG_SCALE` to :data:`LEARNED_LONG_STEPS`."""
    lsteps = tuple(steps or (QUICK_LEARNED_STEPS if quick else LEARNED_STEPS))
    scale, epochs = ("quick", 1) if quick else ("cpu", 8)
    per_base = {
        "exp1": sizes or (QUICK_LEARNED_SIZES if quick else LEARNED_SIZES),
        "exp2": exp2_sizes or (QUICK_LEARNED_EXP2_SIZES if quick else LEARNED_EXP2_SIZES),
    }
    out = []
    for base in (b for b in R.BASES if b in bases):
        for size in per_base[base]:
            long = base == "exp1" and not quick and steps is None and int(size) in LEARNED_LONG_SIZES
            out.append(LearnedPointConfig(int(size), LEARNED_LONG_STEPS if long else lsteps, "cpu-long" if long else scale, epochs, base))
    return out


def plan(quick: bool = False, truncate: bool = False) -> list:
    """The study's plan: the learned points first (the long runs), then the grid."""
    return learned_configs(quick) + R.configs(quick, truncate)


def seeds_for(config, seeds: list, learned_seeds: int = 1) -> list:
    """A learned network runs with the first ``learned_seeds`` seeds (default 1); the grid
    with every seed."""
    return seeds[:learned_seeds] if isinstance(config, LearnedPointConfig) else seeds


#: The whole study as a sweep recipe (registered as ``"robustness-learned"``): its
#: records are shared with the imperfect-oracle recipe ``"robustness"``.
STUDY_RECIPE = replace(
    R.RECIPE,
    name="robustness-learned",
    title="Accuracy against pretraining error (imperfect oracles and learned networks)",
    plan=plan, config_from_dict=config_from_dict, run_one=run_one, seeds_for=seeds_for, checkpoints=True
)
register("robustness-learned", STUDY_RECIPE)


@dataclass
class RobustnessResult:
    """What :func:`run_robustness` returns: the records, the averaged curve points, the
    located published points, the output paths, and timings; ``sweep``: the engine's
    :class:`~hmmtune.experiments.sweep.SweepResult` (its table, cost line and paths)."""

    records: list
    curve_points: list
    located: list
    paths: dict
    ran: int
    resumed: int
    elapsed_s: float
    sweep: object = field(default=None, repr=False)


def run_robustness(
    *,
    quick: bool = False,
    seeds: int | None = None,
    bases=R.BASES,
    errors=None,
    sizes: dict | None = None,
    learned: bool = True,
    learned_sizes=None,
    learned_steps=None,
    learned_exp2_sizes=None,
    learned_seeds: int = 1,
    models: str = "paper",
    out: str | os.PathLike = "results",
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    name: str | None = None,
    executor: str = "local",
    ray_address: str | None = None,
) -> RobustnessResult:
    """Run (or resume) the robustness study and write its summary JSON and plots.

    The runs go through the sweep engine (:func:`hmmtune.experiments.sweep.run_sweep`,
    recipe ``"robustness-learned"``, or ``"robustness"`` without learned points): records
    are validated on resume (a bad one is set aside and recomputed), the records folder is
    locked, and Ctrl-C / SIGTERM stops the workers and raises
    :class:`~hmmtune.experiments.sweep.SweepInterrupted` saying how many runs are saved.

    Args:
        quick: a few sizes and errors at small splits, and a tiny learned network (under
            a minute).
        seeds: seeds 0..N-1 of the imperfect-oracle grid (default 2, quick 1); the learned
            points use seed 0.
        bases: restrict the grid to these base experiments.
        errors: restrict it to these errors (``PretrainingError`` labels).
        sizes: ``{base: sizes}`` instead of the paper's.
        learned_sizes: the learned points' exp1 sizes m.
        learned_exp2_sizes: their exp2 memory sizes V.
        learned_steps: the pretraining steps where they are measured.
        learned_seeds: learned networks per size (seeds 0..N-1, at most ``seeds``).
        learned: add the learned points (of every base experiment in ``bases``).
        models: exp1's ``"paper"`` or ``"authors"`` models (the imperfect-oracle grid).
        out: results folder; records go to ``out/robustness/``, the summary to
            ``out/<name>.json``, the plots to ``out/<name>-<base>.png`` and the engine's
            table of curve points and cost to ``out/<name>-sweep.{md,json}``.
        jobs: local executor: worker processes; Ray started here: its CPUs.
        progress: called with (done, total) after each run (done counts the resumed).
        name: file stem (default ``robustness`` or ``robustness-quick``).
        executor: ``"local"`` or ``"ray"``; ray_address: ``"auto"``, ``"HOST:PORT"`` or
            None (start a local Ray instance).
    """
    t0 = time.perf_counter()
    if isinstance(jobs, bool) or int(jobs) < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    nseeds = seeds if seeds is not None else (R.QUICK_SEEDS if quick else R.DEFAULT_SEEDS)
    seed_list = list(range(int(nseeds)))
    grid = R.configs(quick, bases=bases, sizes=sizes, errors=errors, models=models)
    name = name or ("robustness-quick" if quick else "robustness")
    if isinstance(learned_seeds, bool) or int(learned_seeds) < 1:
        raise ValueError(f"learned_seeds must be a positive integer, got {learned_seeds!r}")
    lconfigs = learned_configs(quick, learned_sizes, learned_steps, exp2_sizes=learned_exp2_sizes, bases=bases) if learned else []
    with_learned = bool(lconfigs)
    recipe = STUDY_RECIPE if lconfigs else R.RECIPE
    recipe = replace(recipe, folder=partial(R.study_folder, name))
    if lconfigs:
        recipe = replace(recipe, seeds_for=partial(seeds_for, learned_seeds=int(learned_seeds)))
    sweep = run_sweep(
        recipe,
        seeds=seed_list,
        out=out,
        jobs=int(jobs),
        progress=(lambda p: progress(p.done, p.total)) if progress else None,
        configs=lconfigs + grid,
        plot=False,
        executor=executor,
        ray_address=ray_address,
    )
    settings = {
        "quick": quick,
        "seeds": seed_list,
        "bases": list(bases),
        "models": models,
        "imperfect_config": {k: v for k, v in grid[0].to_dict().items() if k not in ("base", "size", "error")} if grid else None,
        "errors": sorted({c.error for c in grid}),
        "learned_scale": ("quick" if quick else "cpu") if with_learned else None,
        "learned_steps": list(learned_steps or (QUICK_LEARNED_STEPS if quick else LEARNED_STEPS)),
        "learned_sizes": {b: sorted({c.size for c in lconfigs if c.base == b}) for b in R.BASES},
        "learned_seeds": int(learned_seeds) if with_learned else 0,
        "executor": executor,
    }
    cps, located, paths = summarize_study(
        sweep.records, out, name, settings, ran=sweep.ran, resumed=sweep.resumed, elapsed_s=time.perf_counter() - t0
    )
    return RobustnessResult(sweep.records, cps, located, paths, sweep.ran, sweep.resumed, time.perf_counter() - t0, sweep)


def summarize_study(
    records: list[dict], out: str | os.PathLike, name: str, settings: dict, *, ran: int = 0, resumed: int = 0, elapsed_s: float = 0.0
) -> tuple[list, list, dict]:
    """Curves, located published points, the summary JSON ``out/<name>.json`` and the plots
    ``out/<name>-<base>.png`` of the given records (also a partial study's: the JSON lists
    what is there)."""
    points = R.points_of(records)
    cps = R.curves(points)
    learned_tv = {}
    for c in cps:
        if c.source == "learned":
            key = (c.base, c.size, c.method)  # exp2: the memory and vanilla networks differ
            step = int(c.error.split("=")[1])
            if key not in learned_tv or step > learned_tv[key][0]:
                learned_tv[key] = (step, c.tv_mean)
    located = R.locate_published(cps, {k: v[1] for k, v in learned_tv.items()})
    Path(out).mkdir(parents=True, exist_ok=True)
    paths = {"records": str(Path(out) / R.NAME), "summary": str(Path(out) / f"{name}.json")}
    present = sorted({(p["base"], p["size"], p["source"]) for p in points})
    summary = {
        "study": "robustness",
        "settings": settings,
        "present": [{"base": b, "size": z, "source": src} for b, z, src in present],
        "curve_points": [c.to_dict() for c in cps],
        "located": located,
        "points": points,
        "ran": ran,
        "resumed": resumed,
        "elapsed_s": round(elapsed_s, 1),
        "loadavg": list(os.getloadavg()),
        "environment": store.environment(),
    }
    store.write_text_atomic(paths["summary"], json.dumps(summary, indent=1) + "\n")
    seeds = settings.get("seeds") or []
    length = (settings.get("imperfect_config") or {}).get("length", "-")
    sub = f"{len(seeds)} seed(s), T = {length}, imperfect oracle + learned networks ({settings.get('learned_scale')} scale)"
    for base in R.BASES:
        if any(c.base == base for c in cps):
            paths[f"plot-{base}"] = R.plot_curves(cps, str(Path(out) / f"{name}-{base}.png"), base, subtitle=sub)
    return cps, located, paths
