"""The one sweep engine: plan (configuration, seed) runs, run them, store, summarise.

Every experiment, in oracle or learned mode, is a :class:`Recipe`: how to plan its
configurations, how to turn one (configuration, seed) into the record's ``results``
(``run_one``), and how to summarise, tabulate and plot the records. :func:`run_sweep`
does the rest, the same way for all of them:

1. **plan** every (configuration, seed) with the path of its record;
2. **resume**: read each existing record, validate it (a bad one is set aside, renamed
   and never deleted, and recomputed) and skip the valid ones;
3. **execute** the rest on an executor (:mod:`~hmmtune.experiments.executors`):
   ``"local"`` (in this process, or ``jobs`` spawned worker processes) or ``"ray"`` (one
   Ray task per run, with declared resources, retried on worker failure). Workers only
   compute; the driver writes every record atomically into the store the moment it
   arrives, so a sweep interrupted on one executor resumes on the other;
4. **summarise**: the table (mean and standard deviation over seeds, beside the
   published numbers), its JSON and the paper-style plot; wall time and the sum of the
   runs' times.

Adding an experiment (docs/scale.md, "Adding an experiment"): build a :class:`Recipe`
and :func:`register` it under a name; ``run_sweep(name, ...)`` then plans, resumes,
executes and summarises it like the paper's. Nothing here prints: pass ``progress``.

Interrupts: Ctrl-C (or SIGTERM, while :func:`run_sweep` runs in the main thread) stops
the workers at once and raises :class:`SweepInterrupted`, a ``KeyboardInterrupt`` that
says how many runs are saved.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple

from .. import common
from . import store

__all__ = [
    "RECIPES",
    "Recipe",
    "RunContext",
    "RunOptions",
    "register",
    "get_recipe",
    "module_recipe",
    "RunSpec",
    "Progress",
    "SummaryRow",
    "SweepResult",
    "SweepInterrupted",
    "plan",
    "execute",
    "run_one",
    "run_sweep",
    "summarize",
    "format_table",
]


# ----------------------------------------------------------------------------- recipes
class RunContext(NamedTuple):
    """What a recipe's ``run_one`` gets besides (configuration, seed).

    Attributes:
        path: where the record will be saved (by the driver).
        device: torch device for networks (learned mode), or None.
        checkpoint: where the run may keep a checkpoint it resumes from, or None.
        show_progress: tqdm bars inside the run.
    """

    path: Path
    device: Any = None
    checkpoint: Path | None = None
    show_progress: bool = False


@dataclass(frozen=True)
class Recipe:
    """An experiment as the engine sees it. Functions must be module-level (they travel
    to worker processes and Ray tasks by reference).

    Attributes:
        name: registry name (``"exp1"``, ``"exp1-learned"``...).
        experiment: the ``experiment`` field of its records (default: ``name``).
        mode: ``"oracle"`` or ``"learned"`` (records of learned runs say so).
        title, methods (result key -> label), published (method -> {x: %}),
        x_label, x_short: for the table and the plot.
        plan: ``plan(quick=False, truncate=False) -> [config, ...]``; each configuration
            has ``x``, ``label`` and ``to_dict()``.
        config_from_dict: the inverse of ``config.to_dict()``.
        run_one: ``run_one(config, seed, ctx: RunContext) -> results`` (a JSON-able dict).
        build: ``build(config, seed)``: the models, tasks and labelled inputs of a run
            (shared by the oracle and learned runners of an experiment).
        default_seeds, quick_seeds: seeds when the caller gives none.
        accuracy: ``accuracy(results, method) -> float`` in [0, 1], the number the
            summary averages (default ``results[method]["test"]``); every method's must
            be there for a stored record to be valid.
        summarize, format_table, plot, settings, folder, extra: optional overrides of
            :func:`summarize` (``records -> rows``), :func:`format_table` (``rows ->
            str``), the plot (``rows, path, configs, subtitle``), the settings line
            (``configs, seeds -> str``), the records folder / output base name
            (``configs, quick, truncate -> (folder, base)``) and extra record fields
            (``config, ctx -> dict``).
        resources: ``resources(config, device) -> {"num_cpus": .., "num_gpus": ..}``, a Ray
            task's declared resources (default one CPU).
        checkpoints: the runs keep checkpoints beside their records (``<key>*.pt``),
            deleted once the record is saved.
        check: ``check(results, config_dict) -> None``, extra validation of a stored
            record's results (raise ``ValueError``, ``KeyError`` or ``TypeError`` saying
            what is wrong); for recipes whose methods depend on the configuration
            (``methods`` may then be empty).
        seeds_for: ``seeds_for(config, seeds) -> seeds``, the seeds one configuration runs
            with (default: all of them), e.g. one seed for an expensive kind of run.
    """

    name: str
    title: str
    methods: dict
    published: dict
    x_label: str
    x_short: str
    plan: Callable
    config_from_dict: Callable
    run_one: Callable
    build: Callable | None = None
    experiment: str | None = None
    mode: str = "oracle"
    default_seeds: int = 1
    quick_seeds: int = 1
    accuracy: Callable | None = None
    summarize: Callable | None = None
    format_table: Callable | None = None
    plot: Callable | None = None
    settings: Callable | None = None
    folder: Callable | None = None
    extra: Callable | None = None
    resources: Callable | None = None
    checkpoints: bool = False
    check: Callable | None = None
    seeds_for: Callable | None = None

    # the attribute names of an experiment module (plots.plot_summary reads these)
    METHODS = property(lambda self: self.methods)
    PUBLISHED = property(lambda self: self.published)
    X_LABEL = property(lambda self: self.x_label)
    X_SHORT = property(lambda self: self.x_short)
    TITLE = property(lambda self: self.title)

    @property
    def record_experiment(self) -> str:
        return self.experiment or self.name

    def score(self, results: dict, method: str) -> float:
        if self.accuracy is not None:
            return self.accuracy(results, method)
        return results[method]["test"]

    def check_results(self, results: dict, path, config: dict | None = None) -> None:
        """Every method's accuracy is a number in [0, 1], and the recipe's own ``check``
        passes (:class:`store.RecordError` naming the file if not)."""
        if self.check is not None:
            try:
                self.check(results, config)
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                why = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
                raise store.RecordError(f"record {path}: field 'results' is not valid: {why}") from None
        for method in self.methods:
            try:
                v = self.score(results, method)
            except (KeyError, TypeError, IndexError):
                raise store.RecordError(f"record {path}: field 'results' has no accuracy for method {method!r}") from None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= 1.0):
                raise store.RecordError(f"record {path}: field 'results' accuracy of {method!r} must be a number in [0, 1], got {v!r}")


def _module_plan(module: str, quick: bool = False, truncate: bool = False) -> list:
    return importlib.import_module(module).configs(quick=quick, truncate=truncate)


def _module_run_one(module: str, config, seed: int, ctx=None) -> dict:
    return importlib.import_module(module).run(config, seed)


def module_recipe(module: str) -> Recipe:
    """The :class:`Recipe` of an oracle-mode experiment written as a module (as
    :mod:`~hmmtune.experiments.exp1` and :mod:`~hmmtune.experiments.exp2` are): it defines
    ``NAME``, ``TITLE``, ``METHODS``, ``PUBLISHED``, ``X_LABEL``, ``X_SHORT``,
    ``DEFAULT_SEEDS``, ``QUICK_SEEDS``, ``configs(quick, truncate)``, ``config_from_dict``,
    ``build(config, seed)`` and ``run(config, seed) -> results``. The plan and the runner
    look ``configs`` and ``run`` up when called (``ctx`` is unused in oracle mode)."""
    from functools import partial

    mod = importlib.import_module(module)
    return Recipe(
        name=mod.NAME,
        title=mod.TITLE,
        methods=mod.METHODS,
        published=mod.PUBLISHED,
        x_label=mod.X_LABEL,
        x_short=mod.X_SHORT,
        plan=partial(_module_plan, module),
        config_from_dict=mod.config_from_dict,
        run_one=partial(_module_run_one, module),
        build=mod.build,
        default_seeds=mod.DEFAULT_SEEDS,
        quick_seeds=mod.QUICK_SEEDS,
    )


#: Registry: name -> :class:`Recipe`, or ``"module:attribute"`` imported on first use.
RECIPES: dict[str, Recipe | str] = {
    "exp1": "hmmtune.experiments.exp1:RECIPE",
    "exp2": "hmmtune.experiments.exp2:RECIPE",
    "robustness": "hmmtune.experiments.robustness:RECIPE",
}
#: The paper's oracle-mode experiments: name -> module (``EXPERIMENTS``, deprecated).
_PAPER_MODULES = {"exp1": "hmmtune.experiments.exp1", "exp2": "hmmtune.experiments.exp2"}


def __getattr__(name: str):
    if name == "EXPERIMENTS":
        import warnings

        warnings.warn(
            "hmmtune.experiments.EXPERIMENTS is deprecated; use RECIPES / get_recipe(name)", DeprecationWarning, stacklevel=2
        )
        return _PAPER_MODULES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def register(name: str, recipe: Recipe | str) -> None:
    """Add (or replace) a recipe under ``name``: a :class:`Recipe` or ``"module:attribute"``."""
    RECIPES[name] = recipe


def get_recipe(name: str | Recipe) -> Recipe:
    """The :class:`Recipe` registered under ``name`` (``ValueError`` if none)."""
    if isinstance(name, Recipe):
        return name
    if name not in RECIPES:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(RECIPES)}")
    r = RECIPES[name]
    if isinstance(r, str):
        mod, _, attr = r.partition(":")
        r = getattr(importlib.import_module(mod), attr)
        RECIPES[name] = r
    return r


def experiment_module(name: str):
    """Deprecated: the module of one of the paper's oracle experiments (``exp1``, ``exp2``);
    use :func:`get_recipe` (its ``build``, ``run_one``, ``methods``...) or import the module."""
    import warnings

    warnings.warn("experiment_module is deprecated; use get_recipe(name) or import hmmtune.experiments.exp1 / exp2", DeprecationWarning, stacklevel=2)
    if name not in _PAPER_MODULES:
        raise ValueError(f"unknown experiment {name!r}; choose one of {', '.join(_PAPER_MODULES)}")
    return importlib.import_module(_PAPER_MODULES[name])


# ------------------------------------------------------------------------------ runs
class RunSpec(NamedTuple):
    """One planned run: its recipe's name, resolved configuration (a dict), seed and record path."""

    experiment: str
    config: dict
    seed: int
    path: Path


class RunOptions(NamedTuple):
    """Per-sweep settings a run needs besides its spec (none of them change results).

    Attributes:
        threads: torch intra-op threads during a run (None: leave torch's setting).
        device: torch device for networks. show_progress: bars inside each run.
        checkpoints: let recipes with checkpoints keep them beside the records.
    """

    threads: int | None = 1
    device: Any = None
    show_progress: bool = False
    checkpoints: bool = True


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


def plan(experiment: str | Recipe, configs: list, seeds, out: str | os.PathLike, folder: str | None = None) -> list[RunSpec]:
    """Every (configuration, seed) of a sweep with the path of its record
    (``out/<folder>/<label>-seed<seed>-<hash>.json``; folder: the recipe's name)."""
    if isinstance(experiment, Recipe):
        name, seeds_for = experiment.name, experiment.seeds_for
    else:
        name, seeds_for = experiment, (get_recipe(experiment).seeds_for if experiment in RECIPES else None)
    folder = folder or name
    specs = []
    for cfg in configs:
        d = cfg.to_dict()
        for seed in seeds_for(cfg, list(seeds)) if seeds_for else seeds:
            key = store.run_key(cfg.label, seed, d)
            specs.append(RunSpec(name, d, int(seed), store.record_path(out, folder, key)))
    return specs


def execute(recipe: Recipe | str, spec: RunSpec, options: RunOptions = RunOptions()) -> dict:
    """Compute one run's record (without saving it): what a worker does."""
    import torch

    recipe = get_recipe(recipe)
    cfg = recipe.config_from_dict(spec.config)
    ckpt = spec.path.with_suffix(".pt") if recipe.checkpoints and options.checkpoints else None
    ctx = RunContext(spec.path, options.device, ckpt, options.show_progress)
    before = torch.get_num_threads()
    if options.threads:
        torch.set_num_threads(int(options.threads))
    try:
        t0 = time.perf_counter()
        results = recipe.run_one(cfg, spec.seed, ctx)
        elapsed = time.perf_counter() - t0
        threads = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    record = {
        "experiment": recipe.record_experiment,
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
    if recipe.mode != "oracle":
        record.update(mode=recipe.mode, device=str(options.device or "cpu"), threads=threads)
    if recipe.extra is not None:
        record.update(recipe.extra(cfg, ctx))
    return record


def save(recipe: Recipe, spec: RunSpec, record: dict) -> None:
    """Save a record (driver side) and drop the run's checkpoints."""
    store.save_record(spec.path, record)
    if recipe.checkpoints:
        for ck in spec.path.parent.glob(f"{spec.path.stem}*.pt"):
            ck.unlink(missing_ok=True)


def run_one(spec: RunSpec, threads: int | None = 1) -> dict:
    """Run one (configuration, seed), save its record atomically, return it."""
    recipe = get_recipe(spec.experiment)
    rec = execute(recipe, spec, RunOptions(threads=threads))
    save(recipe, spec, rec)
    return rec


# --------------------------------------------------------------------------- results
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
        elapsed_s: wall time of this call. run_time_s: the sum of the computed runs'
            own times (``run_time_s / elapsed_s`` is the parallel speed-up).
        set_aside: records that failed validation, renamed (their new paths).
        executor: ``"local"`` or ``"ray"``. retries: runs restarted after a worker died.
    """

    experiment: str
    records: list
    rows: list
    table: str
    ran: int
    resumed: int
    paths: dict = field(default_factory=dict)
    elapsed_s: float = 0.0
    run_time_s: float = 0.0
    set_aside: list = field(default_factory=list)
    executor: str = "local"
    retries: int = 0

    @property
    def speedup(self) -> float:
        return self.run_time_s / self.elapsed_s if self.elapsed_s > 0 else float("nan")

    def cost_line(self) -> str:
        """``N runs computed, M resumed ... in W s wall; the runs took S s (x speed-up)``."""
        line = (
            f"{self.ran} runs computed, {self.resumed} resumed from {self.paths.get('records', '?')} "
            f"in {self.elapsed_s:.1f} s wall"
        )
        if self.ran:
            line += f"; the runs took {self.run_time_s:.1f} s in all ({self.speedup:.2f}x parallel speed-up, {self.executor})"
        if self.set_aside:
            line += f"; {len(self.set_aside)} bad record(s) set aside and recomputed"
        return line


class SweepInterrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C or SIGTERM. ``saved`` of ``total`` runs are in the store
    (``folder``); rerunning the same command resumes. ``signum``: the signal."""

    def __init__(self, saved: int, total: int, folder: str, signum: int = signal.SIGINT):
        self.saved, self.total, self.folder, self.signum = saved, total, folder, signum
        super().__init__(self.message)

    @property
    def message(self) -> str:
        return (
            f"interrupted: {self.saved} of {self.total} runs are saved in {self.folder}; "
            "run the same command again to resume"
        )

    def __str__(self) -> str:
        return self.message


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread while a sweep runs."""


def run_sweep(
    experiment: str | Recipe,
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
    executor: str = "local",
    ray_address: str | None = None,
    device: Any = None,
    show_progress: bool = False,
    checkpoints: bool = True,
    retries: int = 2,
) -> SweepResult:
    """Run (or resume) an experiment's sweep and write its summary.

    Args:
        experiment: a registered name (``"exp1"``, ``"exp2"``, ``"exp1-learned"``...,
            see :data:`RECIPES`) or a :class:`Recipe`.
        seeds: a number of seeds (0..N-1) or a list; default: the recipe's (the paper's
            20 for exp1 and 5 for exp2), or its quick number with ``quick``.
        quick: small sizes that run in seconds (the same models and tasks).
        truncate: the authors' input truncation (exp1 only).
        out: the results folder; records go to ``out/<experiment>/``, the table, summary
            JSON and plot to ``out/<experiment>[-quick][-truncated].{md,json,png}``.
        jobs: local executor: parallel worker processes (spawned); Ray executor started
            here: its number of CPUs (default: all).
        executor: ``"local"`` or ``"ray"`` (needs ``pip install "hmmtune[ray]"``).
        ray_address: Ray executor: ``"auto"``, ``"HOST:PORT"`` or None (start a local
            Ray instance for this sweep, or use the one this process already runs).
        threads: torch threads per run (default 1, fastest for these small tensors).
        device: torch device of learned-mode networks; show_progress: bars inside runs.
        checkpoints: learned mode: keep pretraining checkpoints beside the records.
        retries: times a run is restarted after its worker process died.
        progress: called with a :class:`Progress` after every run.
        configs: explicit configurations instead of the experiment's own.
        plot: write the PNG.

    Raises:
        SweepInterrupted: on Ctrl-C / SIGTERM, after stopping the workers.
        ValueError: bad arguments; ``store.SweepBusyError`` if another sweep holds the
            records folder.
    """
    from ..models import arguments  # numpy and torch: loaded when a sweep runs
    from . import executors

    t0 = time.perf_counter()
    recipe = get_recipe(experiment)
    if configs is None:
        configs = recipe.plan(quick=quick, truncate=truncate)
    elif truncate:
        raise ValueError("pass truncate inside explicit configs")
    if not configs:
        raise ValueError("at least one configuration is needed")
    if seeds is None:
        seeds = recipe.quick_seeds if quick else recipe.default_seeds
    seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    if not seed_list:
        raise ValueError("at least one seed is needed")
    jobs = arguments.integer("jobs", jobs)
    if executor not in executors.EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; choose one of {', '.join(executors.EXECUTORS)}")
    if executor == "ray":
        executors.require_ray()
    retries = arguments.integer("retries", retries, 0)
    if recipe.folder is not None:
        folder, base_name = recipe.folder(configs, quick, truncate)
    else:
        folder = recipe.name
        base_name = recipe.name + ("-quick" if quick else "") + ("-truncated" if truncate else "")
    specs = plan(recipe, configs, seed_list, out, folder)
    records_dir = Path(out) / folder
    options = RunOptions(threads=threads, device=device, show_progress=show_progress, checkpoints=checkpoints)

    with store.folder_lock(records_dir), _sigterm_raises():
        store.remove_stale_temporaries(records_dir)
        total = len(specs)
        records: dict[Path, dict] = {}
        set_aside: list[str] = []
        todo = []
        for spec in specs:
            rec = _resume(recipe, spec, set_aside)
            if rec is None:
                todo.append(spec)
            else:
                records[spec.path] = rec
        resumed = len(records)
        state = {"done": 0, "run_time": 0.0}
        for spec in specs:
            if spec.path in records:
                state["done"] += 1
                if progress:
                    progress(Progress(state["done"], total, records[spec.path], True))

        def on_result(spec: RunSpec, rec: dict) -> None:
            save(recipe, spec, rec)
            records[spec.path] = rec
            state["done"] += 1
            state["run_time"] += float(rec.get("elapsed_s", 0.0))
            if progress:
                progress(Progress(state["done"], total, rec, False))

        try:
            if executor == "ray":
                n_retries = executors.run_ray(
                    recipe, todo, options, on_result, address=ray_address, num_cpus=jobs if jobs > 1 else None, retries=retries
                )
            else:
                n_retries = executors.run_local(recipe, todo, options, on_result, jobs=int(jobs), retries=retries)
        except KeyboardInterrupt as exc:
            signum = signal.SIGTERM if isinstance(exc, _Terminated) else signal.SIGINT
            # count what is on disk: the signal may land between a record's atomic rename
            # and its entry in ``records`` (a saved file is always a whole record)
            saved = sum(1 for s in specs if s.path in records or os.path.exists(s.path))
            raise SweepInterrupted(saved, total, str(records_dir), signum) from None

    ordered = [records[s.path] for s in specs]
    summarize_fn = recipe.summarize or (lambda recs: summarize(recs, recipe))
    rows = summarize_fn(ordered)
    table = recipe.format_table(rows) if recipe.format_table else format_table(rows, recipe)
    settings = recipe.settings(configs, seed_list) if recipe.settings else _settings_line(configs, seed_list)
    base = Path(out) / base_name
    paths = {"records": str(records_dir), "table": str(base) + ".md", "summary": str(base) + ".json"}
    Path(out).mkdir(parents=True, exist_ok=True)
    common.write_text_atomic(paths["table"], f"# {recipe.title}\n\n{settings}\n\n{table}\n")
    elapsed = time.perf_counter() - t0
    summary = {
        "experiment": recipe.record_experiment,
        "recipe": recipe.name,
        "mode": recipe.mode,
        "title": recipe.title,
        "seeds": seed_list,
        "configs": [c.to_dict() for c in configs],
        "rows": [r.to_dict() for r in rows],
        "records": [r["key"] for r in ordered],
        "elapsed_s": [r.get("elapsed_s") for r in ordered],
        "cost": {"executor": executor, "wall_s": round(elapsed, 3), "run_time_s": round(state["run_time"], 3), "ran": len(todo)},
        "environment": store.environment(),
    }
    common.write_text_atomic(paths["summary"], json.dumps(summary, indent=1) + "\n")
    if plot:
        paths["plot"] = str(base) + ".png"
        if recipe.plot is not None:
            recipe.plot(rows, paths["plot"], configs, settings)
        else:
            from .plots import plot_summary

            plot_summary(rows, paths["plot"], recipe, vocab_size=configs[0].num_tokens, subtitle=settings)
    return SweepResult(
        recipe.name, ordered, rows, table, len(todo), resumed, paths, time.perf_counter() - t0,
        state["run_time"], set_aside, executor, n_retries,
    )


def _resume(recipe: Recipe, spec: RunSpec, set_aside: list) -> dict | None:
    """The valid stored record of ``spec``, or None (missing; a bad one is set aside)."""
    try:
        rec = store.read_record(spec.path)
        store.validate_record(rec, spec.path, config=spec.config, seed=spec.seed)
        if rec["experiment"] != recipe.record_experiment:
            raise store.RecordError(f"record {spec.path}: field 'experiment' is {rec['experiment']!r}, expected {recipe.record_experiment!r}")
        recipe.check_results(rec["results"], spec.path, spec.config)
        return rec
    except FileNotFoundError:
        return None
    except store.RecordError:
        if spec.path.exists() or spec.path.is_symlink():
            set_aside.append(str(store.set_aside(spec.path)))
        return None


class _sigterm_raises:
    """While a sweep runs in the main thread, SIGTERM raises (so workers are stopped and
    the interrupt is reported like Ctrl-C); the previous handler comes back after."""

    def __enter__(self):
        self.prev = None
        if threading.current_thread() is threading.main_thread():
            def handler(signum, frame):
                raise _Terminated()

            try:
                self.prev = signal.signal(signal.SIGTERM, handler)
            except (ValueError, OSError):
                self.prev = None
        return self

    def __exit__(self, *exc):
        if self.prev is not None:
            signal.signal(signal.SIGTERM, self.prev)
        return False


def _settings_line(configs: list, seeds: list[int]) -> str:
    c = configs[0]
    if not all(hasattr(c, a) for a in ("length", "num_train", "num_val", "num_test", "num_tokens")):
        return f"{len(seeds)} seeds"
    trunc = ", inputs truncated as the authors did" if getattr(c, "truncate", False) else ""
    return (
        f"oracle features, {len(seeds)} seeds, T = {c.length}, train/val/test "
        f"{c.num_train}/{c.num_val}/{c.num_test}, n = {c.num_tokens}{trunc}"
    )


def summarize(records: list[dict], mod) -> list[SummaryRow]:
    """Mean and standard deviation (ddof = 1; NaN for one seed) of the test accuracy in %,
    per x and method, with the published number where there is one. ``mod``: a
    :class:`Recipe` or an experiment module (its ``METHODS`` and ``PUBLISHED``)."""
    import numpy as np

    score = mod.score if isinstance(mod, Recipe) else (lambda results, method: results[method]["test"])
    by: dict[tuple[int, str], list[float]] = {}
    xs = []
    for rec in records:
        x = int(rec["x"])
        if x not in xs:
            xs.append(x)
        for method in mod.METHODS:
            by.setdefault((x, method), []).append(100.0 * score(rec["results"], method))
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
