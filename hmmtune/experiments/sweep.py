"""Running a sweep of (configuration, seed) runs, resuming, and summarising.

:func:`run_sweep` plans every (configuration, seed) of an experiment, skips those whose
record is already in the store, runs the rest (in parallel processes with ``jobs > 1``),
saves each record atomically the moment it finishes, and writes the summary table
(mean and standard deviation over seeds, beside the published numbers), its JSON, and the
paper-style plot. Nothing here prints: pass ``progress`` to follow the sweep.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, NamedTuple

from . import store

__all__ = [
    "EXPERIMENTS",
    "experiment_module",
    "RunSpec",
    "Progress",
    "SummaryRow",
    "SweepResult",
    "plan",
    "run_one",
    "run_sweep",
    "summarize",
    "format_table",
]

#: Experiment name -> module implementing ``configs``, ``run``, ``METHODS``, ``PUBLISHED``.
EXPERIMENTS = {"exp1": "hmmtune.experiments.exp1", "exp2": "hmmtune.experiments.exp2"}


def experiment_module(name: str):
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(EXPERIMENTS)}")
    return importlib.import_module(EXPERIMENTS[name])


class RunSpec(NamedTuple):
    """One planned run: its experiment, resolved configuration (a dict), seed and record path."""

    experiment: str
    config: dict
    seed: int
    path: Path


class Progress(NamedTuple):
    """What ``progress`` receives after every run (finished now, or found in the store).

    Attributes:
        done: runs complete so far; total: runs in the sweep.
        record: the run's record. resumed: True if it came from the store.
    """

    done: int
    total: int
    record: dict
    resumed: bool


@dataclass
class SummaryRow:
    """Test accuracy (%) of one method at one x, over seeds."""

    x: int
    method: str
    mean: float
    std: float
    count: int
    published: float | None = None

    def to_dict(self) -> dict:
        nan = lambda v: None if v is None or (isinstance(v, float) and math.isnan(v)) else v
        return {
            "x": self.x,
            "method": self.method,
            "mean": nan(self.mean),
            "std": nan(self.std),
            "count": self.count,
            "published": self.published,
        }


@dataclass
class SweepResult:
    """What :func:`run_sweep` returns.

    Attributes:
        experiment: its name. records: one per (configuration, seed), in plan order.
        rows: the summary. table: the summary as a Markdown table.
        ran, resumed: runs computed now / found in the store.
        paths: ``{"table": ..., "summary": ..., "plot": ..., "records": ...}``.
        elapsed_s: wall time of this call.
    """

    experiment: str
    records: list
    rows: list
    table: str
    ran: int
    resumed: int
    paths: dict = field(default_factory=dict)
    elapsed_s: float = 0.0


def plan(experiment: str, configs: list, seeds, out: str | os.PathLike) -> list[RunSpec]:
    """Every (configuration, seed) of a sweep with the path of its record."""
    specs = []
    for cfg in configs:
        d = cfg.to_dict()
        for seed in seeds:
            key = store.run_key(cfg.label, seed, d)
            specs.append(RunSpec(experiment, d, int(seed), store.record_path(out, experiment, key)))
    return specs


def run_one(spec: RunSpec, threads: int | None = 1) -> dict:
    """Run one (configuration, seed), save its record atomically, return it.

    ``threads``: torch intra-op threads during the run (restored after). One is fastest:
    every tensor here is small, and threads fight over shared cores.
    """
    import torch

    mod = experiment_module(spec.experiment)
    cfg = mod.config_from_dict(spec.config)
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        t0 = time.perf_counter()
        results = mod.run(cfg, spec.seed)
        elapsed = time.perf_counter() - t0
    finally:
        torch.set_num_threads(before)
    record = {
        "experiment": spec.experiment,
        "key": spec.path.stem,
        "config": spec.config,
        "config_hash": store.config_hash(spec.config),
        "seed": spec.seed,
        "x": cfg.x,
        "results": results,
        "environment": store.environment(),
        "elapsed_s": round(elapsed, 3),
        "created": store.now_utc(),
    }
    store.save_record(spec.path, record)
    return record


def run_sweep(
    experiment: str,
    *,
    seeds: int | list[int] | None = None,
    quick: bool = False,
    truncate: bool = False,
    out: str | os.PathLike = "results",
    jobs: int = 1,
    progress: Callable[[Progress], None] | None = None,
    configs: list | None = None,
    plot: bool = True,
    threads: int | None = 1,
) -> SweepResult:
    """Run (or resume) an experiment's sweep and write its summary.

    Args:
        experiment: ``"exp1"`` or ``"exp2"``.
        seeds: a number of seeds (0..N-1) or a list; default: the paper's (20 for exp1,
            5 for exp2), or 3 / 2 with ``quick``.
        quick: small sizes that run in seconds (the same models and tasks).
        truncate: the authors' input truncation (exp1 only).
        out: the results folder; records go to ``out/<experiment>/``, the table, summary
            JSON and plot to ``out/<experiment>[-quick][-truncated].{md,json,png}``.
        jobs: parallel worker processes (spawned).
        threads: torch threads per run (default 1, fastest for these small tensors).
        progress: called with a :class:`Progress` after every run.
        configs: explicit configurations instead of the experiment's own.
        plot: write the PNG.
    """
    t0 = time.perf_counter()
    mod = experiment_module(experiment)
    if configs is None:
        configs = mod.configs(quick=quick, truncate=truncate)
    elif truncate:
        raise ValueError("pass truncate inside explicit configs")
    if seeds is None:
        seeds = mod.QUICK_SEEDS if quick else mod.DEFAULT_SEEDS
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("at least one seed is needed")
    if int(jobs) < 1:
        raise ValueError(f"jobs must be a positive integer, got {jobs!r}")
    specs = plan(experiment, configs, seed_list, out)
    total = len(specs)
    records: dict[Path, dict] = {}
    todo = []
    for spec in specs:
        rec = store.load_record(spec.path)
        if rec is not None and rec.get("config_hash") == store.config_hash(spec.config) and rec.get("seed") == spec.seed:
            records[spec.path] = rec
        else:
            todo.append(spec)
    resumed = len(records)
    done = 0
    for spec in specs:
        if spec.path in records:
            done += 1
            if progress:
                progress(Progress(done, total, records[spec.path], True))

    if jobs == 1 or len(todo) <= 1:
        for spec in todo:
            rec = run_one(spec, threads)
            records[spec.path] = rec
            done += 1
            if progress:
                progress(Progress(done, total, rec, False))
    else:
        with ProcessPoolExecutor(max_workers=int(jobs), mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(run_one, spec, threads): spec for spec in todo}
            try:
                for fut in as_completed(futures):
                    rec = fut.result()
                    records[futures[fut].path] = rec
                    done += 1
                    if progress:
                        progress(Progress(done, total, rec, False))
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    ordered = [records[s.path] for s in specs]
    rows = summarize(ordered, mod)
    table = format_table(rows, mod)
    suffix = ("-quick" if quick else "") + ("-truncated" if truncate else "")
    base = Path(out) / f"{experiment}{suffix}"
    paths = {"records": str(Path(out) / experiment), "table": str(base) + ".md", "summary": str(base) + ".json"}
    Path(out).mkdir(parents=True, exist_ok=True)
    _write_text(paths["table"], f"# {mod.TITLE}\n\n{_settings_line(configs, seed_list)}\n\n{table}\n")
    summary = {
        "experiment": experiment,
        "title": mod.TITLE,
        "seeds": seed_list,
        "configs": [c.to_dict() for c in configs],
        "rows": [r.to_dict() for r in rows],
        "records": [r["key"] for r in ordered],
        "environment": store.environment(),
    }
    _write_text(paths["summary"], json.dumps(summary, indent=1) + "\n")
    if plot:
        from .plots import plot_summary

        paths["plot"] = str(base) + ".png"
        plot_summary(rows, paths["plot"], mod, vocab_size=configs[0].num_tokens, subtitle=_settings_line(configs, seed_list))
    return SweepResult(experiment, ordered, rows, table, len(todo), resumed, paths, time.perf_counter() - t0)


def _write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def _settings_line(configs: list, seeds: list[int]) -> str:
    c = configs[0]
    trunc = ", inputs truncated as the authors did" if getattr(c, "truncate", False) else ""
    return (
        f"oracle features, {len(seeds)} seeds, T = {c.length}, train/val/test "
        f"{c.num_train}/{c.num_val}/{c.num_test}, n = {c.num_tokens}{trunc}"
    )


def summarize(records: list[dict], mod) -> list[SummaryRow]:
    """Mean and standard deviation (ddof = 1; NaN for one seed) of the test accuracy in %,
    per x and method, with the published number where there is one."""
    import numpy as np

    by: dict[tuple[int, str], list[float]] = {}
    xs = []
    for rec in records:
        x = int(rec["x"])
        if x not in xs:
            xs.append(x)
        for method in mod.METHODS:
            by.setdefault((x, method), []).append(100.0 * rec["results"][method]["test"])
    rows = []
    for x in sorted(xs):
        for method in mod.METHODS:
            v = np.array(by[(x, method)], dtype=float)
            std = float(v.std(ddof=1)) if len(v) > 1 else float("nan")
            rows.append(SummaryRow(x, method, float(v.mean()), std, len(v), mod.PUBLISHED.get(method, {}).get(x)))
    return rows


def format_table(rows: list[SummaryRow], mod) -> str:
    """The summary as a Markdown table: ours (mean ± std) beside the published mean."""
    methods = list(mod.METHODS)
    head = [mod.X_SHORT] + [h for m in methods for h in (f"{mod.METHODS[m]} (oracle)", f"{mod.METHODS[m]} (paper)")] + ["seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    xs = sorted({r.x for r in rows})
    get = {(r.x, r.method): r for r in rows}
    for x in xs:
        cells = [str(x)]
        for m in methods:
            r = get[(x, m)]
            std = "" if math.isnan(r.std) else f" ± {r.std:.1f}"
            cells.append(f"{r.mean:.1f}{std}")
            cells.append("–" if r.published is None else f"{r.published:.1f}")
        cells.append(str(get[(x, methods[0])].count))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
