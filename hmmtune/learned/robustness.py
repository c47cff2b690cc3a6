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

saves one atomic JSON record per point (resumable, as the sweep engine's store), and
writes the curves, the located published points and the paper-style plots.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

import numpy as np

from ..experiments import exp1, store
from ..experiments import robustness as R
from .experiment import CPU_SCALE, LearnedScale
from .pretrain import mask_tv_distance, pretrain
from .tune import tune_head, tune_prompt

__all__ = [
    "LEARNED_STEPS",
    "LEARNED_SIZES",
    "QUICK_SCALE",
    "LearnedPointConfig",
    "learned_points",
    "RobustnessResult",
    "run_robustness",
]

#: Pretraining steps at which the learned network is measured (the CPU scale runs 3000).
LEARNED_STEPS = (20, 60, 200, 600, 3000)
#: exp1 sizes of the learned points (the CPU scale's, as in ``reproduce --mode learned``).
LEARNED_SIZES = (4, 10, 25)
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
QUICK_LEARNED_SIZES = (4,)


@dataclass(frozen=True)
class LearnedPointConfig:
    """One learned network of experiment 1 at one size, measured at several steps."""

    size: int
    steps: tuple
    scale: str = "cpu"
    prompt_epochs: int = 8

    @property
    def label(self) -> str:
        return f"learned-exp1-{self.size}-{self.scale}"

    def to_dict(self) -> dict:
        d = asdict(self)
        d["steps"] = list(self.steps)
        return d


def _scale(name: str) -> LearnedScale:
    return {"cpu": CPU_SCALE, "quick": QUICK_SCALE}[name]


def learned_points(config: LearnedPointConfig, seed: int, workdir: str | os.PathLike) -> list[dict]:
    """Pretrain one network, stopping at ``config.steps``; one record's results per stop.

    The model, task and inputs are :func:`hmmtune.experiments.exp1.build`'s at the scale's
    sizes. ``workdir`` holds the checkpoint between stops.
    """
    sc = replace(_scale(config.scale), prompt_epochs=config.prompt_epochs)
    cfg = exp1.Exp1Config(config.size, length=sc.length, num_train=sc.num_train, num_val=sc.num_val, num_test=sc.num_test, prompt_tokens=sc.prompt_tokens)
    s = exp1.build(cfg, seed)
    tr, va, te = s.splits
    x, y = s.tokens, s.labels
    pcfg = sc.pretrain_config(int(np.random.SeedSequence([int(seed), config.size, 0x5EED]).generate_state(1)[0]))
    steps = sorted({min(int(k), pcfg.total_steps) for k in config.steps})
    Path(workdir).mkdir(parents=True, exist_ok=True)
    ckpt = Path(workdir) / f"{config.label}-seed{seed}.pt"
    reference = s.oracle.mask_prediction(x[te])
    out = []
    for k in steps:
        t0 = time.perf_counter()
        res = pretrain(s.model, pcfg, sc.encoder(int(s.model.num_tokens)), checkpoint=ckpt, max_steps=k, progress=False)
        lm = res.model
        t_pre = time.perf_counter() - t0
        tv = mask_tv_distance(lm.mask_prediction(x[te]), reference)
        t0 = time.perf_counter()
        head = tune_head(lm, x[tr], y[tr], x[va], y[va], num_classes=s.task.num_classes)
        prompt = tune_prompt(
            lm,
            x[tr],
            y[tr],
            x[va],
            y[va],
            num_prompt_tokens=sc.prompt_tokens,
            num_classes=s.task.num_classes,
            lr=sc.prompt_lr,
            epochs=sc.prompt_epochs,
            batch_size=sc.prompt_batch_size,
            seed=seed,
        )
        common = {"tv_mean": float(tv.mean()), "tv_worst": float(tv.max()), "step": int(res.step)}
        out.append(
            {
                "source": "learned",
                "head": {"test": head.accuracy(lm, x[te], y[te]), "val": head.val_accuracy, **common},
                "prompt": {"test": prompt.accuracy(lm, x[te], y[te]), "val": prompt.val_accuracy, **common},
                "pretrain": {"step": int(res.step), "total_steps": pcfg.total_steps, "seconds": round(t_pre, 2)},
                "tune_seconds": round(time.perf_counter() - t0, 2),
            }
        )
    try:
        ckpt.unlink()
    except OSError:
        pass
    return out


def _run_imperfect(spec: tuple) -> dict:
    cfg_dict, seed, path = spec
    import torch

    torch.set_num_threads(1)
    cfg = R.config_from_dict(cfg_dict)
    t0 = time.perf_counter()
    results = R.run(cfg, seed)
    record = {
        "experiment": R.NAME,
        "key": Path(path).stem,
        "config": cfg_dict,
        "config_hash": store.config_hash(cfg_dict),
        "seed": seed,
        "x": cfg.x,
        "results": results,
        "elapsed_s": round(time.perf_counter() - t0, 3),
        "created": store.now_utc(),
    }
    store.save_record(path, record)
    return record


def _run_learned(spec: tuple) -> list[dict]:
    cfg_dict, seed, paths, workdir = spec
    import torch

    torch.set_num_threads(1)
    cfg = LearnedPointConfig(cfg_dict["size"], tuple(cfg_dict["steps"]), cfg_dict["scale"], cfg_dict["prompt_epochs"])
    t0 = time.perf_counter()
    pts = learned_points(cfg, seed, workdir)
    records = []
    for path, res in zip(paths, pts):
        step_cfg = {"base": "exp1", "size": cfg.size, "error": "none", "runner": "learned", "scale": cfg.scale, "step": res["pretrain"]["step"]}
        rec = {
            "experiment": R.NAME,
            "key": Path(path).stem,
            "config": step_cfg,
            "config_hash": store.config_hash(step_cfg),
            "seed": seed,
            "x": cfg.size,
            "results": res,
            "elapsed_s": round(time.perf_counter() - t0, 3),
            "created": store.now_utc(),
        }
        store.save_record(path, rec)
        records.append(rec)
    return records


@dataclass
class RobustnessResult:
    """What :func:`run_robustness` returns: the records, the averaged curve points, the
    located published points, the output paths, and timings."""

    records: list
    curve_points: list
    located: list
    paths: dict
    ran: int
    resumed: int
    elapsed_s: float


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
    models: str = "paper",
    out: str | os.PathLike = "results",
    jobs: int = 1,
    progress: Callable[[int, int], None] | None = None,
    name: str | None = None,
) -> RobustnessResult:
    """Run (or resume) the robustness study and write its summary JSON and plots.

    Args:
        quick: a few sizes and errors at small splits, and a tiny learned network (under
            a minute).
        seeds: seeds 0..N-1 of the imperfect-oracle grid (default 2, quick 1); the learned
            points use seed 0.
        bases: restrict the grid to these base experiments.
        errors: restrict it to these errors (``PretrainingError`` labels).
        sizes: ``{base: sizes}`` instead of the paper's.
        learned_sizes: the learned points' exp1 sizes.
        learned_steps: the pretraining steps where they are measured.
        learned: add the learned points (experiment 1 only).
        models: exp1's ``"paper"`` or ``"authors"`` models (the imperfect-oracle grid).
        out: results folder; records go to ``out/robustness/``, the summary to
            ``out/<name>.json`` and the plots to ``out/<name>-<base>.png``.
        jobs: worker processes. progress: called with (done, total) after each unit.
        name: file stem (default ``robustness`` or ``robustness-quick``).
    """
    t0 = time.perf_counter()
    if int(jobs) < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    nseeds = seeds if seeds is not None else (R.QUICK_SEEDS if quick else R.DEFAULT_SEEDS)
    seed_list = list(range(int(nseeds)))
    grid = R.configs(quick, bases=bases, sizes=sizes, errors=errors, models=models)
    name = name or ("robustness-quick" if quick else "robustness")
    rec_dir = Path(out) / R.NAME
    todo_imp, records = [], []
    for cfg in grid:
        d = cfg.to_dict()
        for seed in seed_list:
            path = store.record_path(out, R.NAME, store.run_key(cfg.label, seed, d))
            rec = store.load_record(path)
            if rec is not None and rec.get("config_hash") == store.config_hash(d):
                records.append(rec)
            else:
                todo_imp.append((d, seed, str(path)))
    todo_learned = []
    if learned and "exp1" in bases:
        lsizes = learned_sizes or (QUICK_LEARNED_SIZES if quick else LEARNED_SIZES)
        lsteps = tuple(learned_steps or (QUICK_LEARNED_STEPS if quick else LEARNED_STEPS))
        for size in lsizes:
            lc = LearnedPointConfig(int(size), lsteps, "quick" if quick else "cpu", 1 if quick else 8)
            d = lc.to_dict()
            paths = [str(store.record_path(out, R.NAME, store.run_key(f"{lc.label}-step{k}", 0, d))) for k in lsteps]
            recs = [store.load_record(p) for p in paths]
            if all(r is not None for r in recs):
                records.extend(recs)
            else:
                todo_learned.append((d, 0, paths, str(rec_dir / "checkpoints")))
    resumed = len(records)
    total = len(todo_imp) + len(todo_learned)
    done = 0

    def _tick():
        nonlocal done
        done += 1
        if progress:
            progress(done, total)

    if jobs == 1:
        for spec in todo_learned:
            records.extend(_run_learned(spec))
            _tick()
        for spec in todo_imp:
            records.append(_run_imperfect(spec))
            _tick()
    else:
        with ProcessPoolExecutor(max_workers=int(jobs), mp_context=get_context("spawn")) as pool:
            futs = [pool.submit(_run_learned, s) for s in todo_learned]  # the long ones first
            futs += [pool.submit(_run_imperfect, s) for s in todo_imp]
            try:
                for fut in as_completed(futs):
                    r = fut.result()
                    records.extend(r if isinstance(r, list) else [r])
                    _tick()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    settings = {
        "quick": quick,
        "seeds": seed_list,
        "bases": list(bases),
        "models": models,
        "imperfect_config": {k: v for k, v in grid[0].to_dict().items() if k not in ("base", "size", "error")} if grid else None,
        "errors": sorted({c.error for c in grid}),
        "learned_scale": ("quick" if quick else "cpu") if learned and "exp1" in bases else None,
        "learned_steps": list(learned_steps or (QUICK_LEARNED_STEPS if quick else LEARNED_STEPS)),
    }
    cps, located, paths = summarize_study(records, out, name, settings, ran=total, resumed=resumed, elapsed_s=time.perf_counter() - t0)
    return RobustnessResult(records, cps, located, paths, total, resumed, time.perf_counter() - t0)


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
        if c.source == "learned" and c.method == "head":
            key = (c.base, c.size)
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
    tmp = paths["summary"] + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(summary, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, paths["summary"])
    seeds = settings.get("seeds") or []
    length = (settings.get("imperfect_config") or {}).get("length", "-")
    sub = f"{len(seeds)} seed(s), T = {length}, imperfect oracle + learned networks ({settings.get('learned_scale')} scale)"
    for base in R.BASES:
        if any(c.base == base for c in cps):
            paths[f"plot-{base}"] = R.plot_curves(cps, str(Path(out) / f"{name}-{base}.png"), base, subtitle=sub)
    return cps, located, paths
