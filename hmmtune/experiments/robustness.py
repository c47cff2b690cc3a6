"""Accuracy against pretraining error: the paper's experiments on imperfect oracles
(docs/robustness.md).

A run is one (base experiment, size, pretraining error, seed): the models, task and
labelled inputs are those of :func:`hmmtune.experiments.exp1.build` (or experiment 2's
models), the labels stay exact, and the tuned methods read the outputs of an imperfect
masked LM (:func:`hmmtune.perturbed.imperfect_oracle`) instead of the perfect one:

- ``exp1``: head tuning (linear probe on ``G'_0``) and prompt tuning (20 soft tokens
  through the imperfect model), as in experiment 1;
- ``exp2``: memory HMM + attention head over ``G'_t`` and vanilla HMM + linear head on
  ``G'_0``, as in experiment 2.

Each method's record carries its test accuracy and the measured mean and worst total
variation of the features it reads to the perfect oracle's, on the test inputs.
:func:`curves` averages records into accuracy-against-TV curves, :func:`locate_published`
finds where they pass through the published numbers, and :func:`plot_curves` draws them in
the paper's style.

The grid runs through the one sweep engine (:mod:`hmmtune.experiments.sweep`) as the
recipe :data:`RECIPE`, registered as ``"robustness"``: ``run_sweep("robustness",
quick=True)`` plans, resumes, executes (local or Ray) and summarises it like the paper's
experiments. The study that adds learned networks at several pretraining steps,
:func:`hmmtune.learned.robustness.run_robustness`, runs the recipe
``"robustness-learned"`` that :mod:`hmmtune.learned.robustness` registers (this grid plus
the learned points, in one sweep).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .. import common
from ..oracle import MaskMessages, OracleMLM
from ..perturbed import PretrainingError, imperfect_oracle, tv_to_oracle
from ..tuning.attention import fit_attention
from ..tuning.heads import fit_head
from ..tuning.prompts import fit_prompt
from ..tuning.tasks import balanced_paper_task, sample_inputs
from ..tuning.training import TrainConfig
from . import exp1, exp2

__all__ = [
    "NAME",
    "BASES",
    "METHODS",
    "PUBLISHED",
    "DEFAULT_ERRORS",
    "QUICK_ERRORS",
    "RobustnessConfig",
    "configs",
    "config_from_dict",
    "run",
    "run_one",
    "check_results",
    "study_folder",
    "summary_rows",
    "format_curve_table",
    "RECIPE",
    "curves",
    "locate_published",
    "plot_curves",
]

NAME = "robustness"
BASES = ("exp1", "exp2")
#: Methods per base experiment (result keys) and their labels.
METHODS = {
    "exp1": {"prompt": "prompt tuning", "head": "head tuning"},
    "exp2": {"memory_attention": "memory HMM + attention head", "vanilla_linear": "vanilla HMM + linear head"},
}
#: Published accuracies (%), keyed by method and the base experiment's size (m for exp1, V
#: for exp2): the paper's figures, as in :data:`exp1.PUBLISHED` / :data:`exp2.PUBLISHED`.
PUBLISHED = {
    "exp1": exp1.PUBLISHED,
    "exp2": {k: {m // 4: v for m, v in d.items()} for k, d in exp2.PUBLISHED.items()},
}
#: The default grid of pretraining errors: each part of the model alone at several row
#: distances, and additive noise on G at several mixing weights.
_MODEL_ERRORS = (
    ["none"]
    + [f"emission={d:g}" for d in (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 0.6)]
    + [f"transition={d:g}" for d in (0.001, 0.01, 0.1, 0.3, 0.6)]
    + [f"noise={d:g}" for d in (0.01, 0.03, 0.1, 0.3, 0.6, 0.9)]
)
#: Per base experiment. A short context (``context=K``) is defined at the mask only, so
#: experiment 2's attention heads get the other kinds.
DEFAULT_ERRORS = {
    "exp1": _MODEL_ERRORS + [f"context={k}" for k in (16, 8, 4, 2, 1)],
    "exp2": list(_MODEL_ERRORS),
}
QUICK_ERRORS = {
    "exp1": ["none", "emission=0.03", "emission=0.3", "noise=0.1", "noise=0.6", "context=4", "context=1"],
    "exp2": ["none", "emission=0.3", "noise=0.6"],
}
#: Sizes of the study (the paper's, less exp1's m = 12, which has no published number).
DEFAULT_SIZES = {"exp1": (4, 8, 10, 15, 25, 30), "exp2": (2, 3, 5, 7)}
QUICK_SIZES = {"exp1": (4, 10), "exp2": (2,)}
X_LABEL = "size"
X_SHORT = "size"
TITLE = "Accuracy against pretraining error (imperfect oracle)"
DEFAULT_SEEDS = 2
QUICK_SEEDS = 1


@dataclass(frozen=True)
class RobustnessConfig:
    """One point: a base experiment at one size, with one pretraining error.

    Attributes:
        base: ``"exp1"`` or ``"exp2"``. size: m (exp1) or V (exp2).
        error: a :class:`hmmtune.perturbed.PretrainingError` in its text form
            (``"emission=0.01"``, ``"noise=0.1"``, ``"none"``...).
        models: exp1's ``"paper"`` or ``"authors"`` models.
        length, num_train, num_val, num_test, prompt_tokens, max_iter: as in exp1 / exp2
            (smaller defaults: the study has many points).
    """

    base: str
    size: int
    error: str = "none"
    models: str = "paper"
    length: int = 64
    num_train: int = 1000
    num_val: int = 200
    num_test: int = 1000
    prompt_tokens: int = 20
    max_iter: int = 200

    def __post_init__(self):
        if self.base not in BASES:
            raise ValueError(f"base must be one of {', '.join(BASES)}, got {self.base!r}")
        object.__setattr__(self, "error", PretrainingError.parse(self.error).label)

    @property
    def pretraining_error(self) -> PretrainingError:
        return PretrainingError.parse(self.error)

    @property
    def x(self) -> int:
        return self.size

    @property
    def label(self) -> str:
        err = self.error.replace("=", "").replace(",", "+")
        return f"{self.base}-{self.size}-{err}" + ("-authors" if self.models == "authors" else "")

    def to_dict(self) -> dict:
        return asdict(self)


def config_from_dict(d: dict) -> RobustnessConfig:
    return RobustnessConfig(**d)


def configs(
    quick: bool = False,
    truncate: bool = False,
    *,
    bases=BASES,
    sizes: dict | None = None,
    errors=None,
    **overrides,
) -> list[RobustnessConfig]:
    """The grid: every base, size and pretraining error (``quick``: a few, small)."""
    if truncate:
        raise ValueError("the robustness study has no input truncation option")
    sizes = sizes or (QUICK_SIZES if quick else DEFAULT_SIZES)
    table = QUICK_ERRORS if quick else DEFAULT_ERRORS
    per_base = {b: (list(errors) if errors is not None else table[b]) for b in bases}
    extra = dict(length=32, num_train=300, num_val=100, num_test=300, max_iter=60, prompt_tokens=5) if quick else {}
    extra.update(overrides)
    return [RobustnessConfig(b, int(s), e, **extra) for b in bases for s in sizes[b] for e in per_base[b]]


def _error_seed(seed: int, config: RobustnessConfig) -> int:
    """The perturbation's seed: a function of (seed, base, size) only, so the directions
    are shared by every distance of a curve (the curve is one path away from the model)."""
    return common.derive_seed(seed, config.size, 0xE4, BASES.index(config.base))


def _fit_scores(fit, test_acc: float, tv) -> dict:
    return {"train": fit.train_accuracy, "val": fit.val_accuracy, "test": test_acc, "tv_mean": tv.mean, "tv_worst": tv.worst, "iterations": fit.log.iterations}


def run(config: RobustnessConfig, seed: int) -> dict:
    """The base experiment's methods on one imperfect oracle; the record's results."""
    if config.base == "exp1":
        return _run_exp1(config, seed)
    return _run_exp2(config, seed)


def _run_exp1(config: RobustnessConfig, seed: int) -> dict:
    cfg = exp1.Exp1Config(
        config.size,
        length=config.length,
        num_train=config.num_train,
        num_val=config.num_val,
        num_test=config.num_test,
        prompt_tokens=config.prompt_tokens,
        max_iter=config.max_iter,
        models=config.models,
    )
    s = exp1.build(cfg, seed)
    tr, va, te = s.splits
    y = s.labels
    err = config.pretraining_error
    imp = imperfect_oracle(s.model, err, seed=_error_seed(seed, config))
    opts = dict(config=TrainConfig(max_iter=config.max_iter, seed=seed))
    msgs = imp.encode(s.tokens)
    G = imp.mask_prediction(msgs)
    tv = tv_to_oracle(imp, s.oracle, s.tokens[te])
    hf = fit_head(G[tr], y[tr], G[va], y[va], num_classes=s.task.num_classes, **opts)
    head = _fit_scores(hf, hf.head.accuracy(G[te], y[te]), tv)
    msg = lambda sl: MaskMessages(msgs.backward[sl])
    pf = fit_prompt(
        imp, msg(tr), y[tr], msg(va), y[va], num_prompt_tokens=config.prompt_tokens, num_classes=s.task.num_classes, init_head=hf.head, **opts
    )
    prompt = _fit_scores(pf, pf.accuracy(imp, msg(te), y[te]), tv)
    return {"head": head, "prompt": prompt, "error": err.to_dict(), "task": {"redraw": s.task.redraw, "minority_fraction": s.minority_fraction}}


def _run_exp2(config: RobustnessConfig, seed: int) -> dict:
    cfg = exp2.Exp2Config(
        config.size, length=config.length, num_train=config.num_train, num_val=config.num_val, num_test=config.num_test, max_iter=config.max_iter
    )
    a, b = cfg.num_train, cfg.num_train + cfg.num_val
    tr, va, te = slice(0, a), slice(a, b), slice(b, b + cfg.num_test)
    total = b + cfg.num_test
    err = config.pretraining_error
    opts = dict(config=TrainConfig(max_iter=config.max_iter, seed=seed))
    mem, van = exp2.make_models(cfg, seed)

    oracle = OracleMLM(mem)
    tokens = sample_inputs(mem, total, cfg.length, seed=exp2.derived_seed(seed, cfg, 2))
    post = oracle.memory_posterior(tokens, cell=0)
    task, _ = balanced_paper_task(
        cfg.num_values, exp2.derived_seed(seed, cfg, 3), post, cell=0, min_fraction=cfg.min_class_fraction, max_redraws=cfg.max_redraws
    )
    y = task.labels(post)
    imp = imperfect_oracle(mem, err, seed=_error_seed(seed, config))
    G = imp.token_predictions(tokens)
    tv = tv_to_oracle(imp, oracle, tokens[te], positions=True)
    af = fit_attention(G[tr], y[tr], G[va], y[va], num_classes=task.num_classes, **opts)
    attention = _fit_scores(af, af.head.accuracy(G[te], y[te]), tv)

    voracle = OracleMLM(van)
    vtokens = sample_inputs(van, total, cfg.length, seed=exp2.derived_seed(seed, cfg, 5))
    vpost = voracle.mask_posterior(vtokens)
    vtask, _ = balanced_paper_task(
        cfg.num_values * cfg.num_local_states,
        exp2.derived_seed(seed, cfg, 6),
        vpost,
        min_fraction=cfg.min_class_fraction,
        max_redraws=cfg.max_redraws,
    )
    vy = vtask.labels(vpost)
    vimp = imperfect_oracle(van, err, seed=_error_seed(seed, config) + 1)
    VG = vimp.mask_prediction(vtokens)
    vtv = tv_to_oracle(vimp, voracle, vtokens[te])
    vf = fit_head(VG[tr], vy[tr], VG[va], vy[va], num_classes=vtask.num_classes, **opts)
    vanilla = _fit_scores(vf, vf.head.accuracy(VG[te], vy[te]), vtv)
    return {"memory_attention": attention, "vanilla_linear": vanilla, "error": err.to_dict()}


# ------------------------------------------------------------------ the engine's recipe
def plan(quick: bool = False, truncate: bool = False) -> list[RobustnessConfig]:
    """The recipe's plan: :func:`configs` (every base, size and error)."""
    return configs(quick, truncate)


def run_one(config: RobustnessConfig, seed: int, ctx=None) -> dict:
    """The recipe's runner: :func:`run` (``ctx`` unused)."""
    return run(config, seed)


def _check_point(r, where: str) -> None:
    if not isinstance(r, dict):
        raise ValueError(f"{where} must be an object")
    for key, hi in (("test", 1.0), ("tv_mean", 1.0 + 1e-9), ("tv_worst", 1.0 + 1e-9)):
        v = r.get(key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0.0 <= v <= hi):
            raise ValueError(f"{where}[{key!r}] must be a number in [0, 1], got {v!r}")


def check_results(results: dict, config: dict | None) -> None:
    """A stored point's results: each method of its base has a test accuracy and mean /
    worst TV in [0, 1]; a learned point (``config["runner"] == "learned"``) has them at
    every stop (``results["steps"]``). ``ValueError`` says what is wrong."""
    config = config or {}
    base = config.get("base", "exp1")
    if base not in METHODS:
        raise ValueError(f"unknown base {base!r}")
    if config.get("runner") == "learned":
        parts = results.get("steps")
        if not isinstance(parts, list) or not parts:
            raise ValueError("'steps' must be a non-empty list")
        names = [f"steps[{i}]" for i in range(len(parts))]
    else:
        parts, names = [results], ["results"]
    for part, name in zip(parts, names):
        if not isinstance(part, dict):
            raise ValueError(f"{name} must be an object")
        for method in METHODS[base]:
            _check_point(part.get(method), f"{name}[{method!r}]")


def study_folder(name: str | None, configs: list, quick: bool, truncate: bool) -> tuple[str, str]:
    """Records go to ``out/robustness/``; the engine's table and JSON to
    ``out/<name>-sweep.{md,json}`` (``name``: the study's file stem, by default
    ``robustness[-quick]``), beside the study's own ``<name>.json`` and plots."""
    return NAME, (name or ("robustness-quick" if quick else "robustness")) + "-sweep"


def _folder(configs: list, quick: bool, truncate: bool) -> tuple[str, str]:
    return study_folder(None, configs, quick, truncate)


def summary_rows(records: list[dict]) -> list:
    """The engine's summary: :func:`curves` of :func:`points_of` the records."""
    return curves(points_of(records))


def format_curve_table(rows: list) -> str:
    """Curve points as a Markdown table (accuracy in %, mean over seeds)."""
    lines = ["| base | size | method | source | error | mean TV | worst TV | accuracy (%) | seeds |", "|" + "---|" * 9]
    for c in rows:
        std = "" if math.isnan(c.accuracy_std) else f" ± {c.accuracy_std:.1f}"
        lines.append(f"| {c.base} | {c.size} | {c.method} | {c.source} | {c.error} | {c.tv_mean:.3g} | {c.tv_worst:.3g} | {c.accuracy:.1f}{std} | {c.count} |")
    return "\n".join(lines)


def plot_recipe(rows: list, path: str, configs: list, subtitle: str | None = None) -> str:
    """The engine's plot: the curves of the first base experiment present."""
    return plot_curves(rows, path, rows[0].base if rows else configs[0].base, subtitle=subtitle)


def _settings(configs: list, seeds: list) -> str:
    c = next((c for c in configs if isinstance(c, RobustnessConfig)), None)
    grid = f"imperfect oracles, T = {c.length}, train/val/test {c.num_train}/{c.num_val}/{c.num_test}, " if c else ""
    return f"{grid}{len(seeds)} seed(s), {len(configs)} configurations"


def _recipe(**kw):
    from .sweep import Recipe

    return Recipe(
        name="robustness",
        experiment=NAME,
        title=TITLE,
        methods={},
        published={},
        x_label=X_LABEL,
        x_short=X_SHORT,
        plan=plan,
        config_from_dict=config_from_dict,
        run_one=run_one,
        default_seeds=DEFAULT_SEEDS,
        quick_seeds=QUICK_SEEDS,
        summarize=summary_rows,
        format_table=format_curve_table,
        plot=plot_recipe,
        settings=_settings,
        folder=_folder,
        check=check_results,
        **kw,
    )


#: The imperfect-oracle grid as a sweep recipe (registered as ``"robustness"``).
RECIPE = _recipe()


# ------------------------------------------------------------------ summaries
def error_kind(label: str) -> str:
    """``"emission"``, ``"transition"``, ``"initial"``, ``"noise"``, ``"none"`` or
    ``"mixed"`` (several parts) of an error label."""
    if label == "none":
        return "none"
    names = {item.split("=")[0] for item in label.split(",")}
    return names.pop() if len(names) == 1 else "mixed"


@dataclass
class CurvePoint:
    """Mean over seeds of one (base, size, method, source, error) point.

    Attributes:
        tv_mean: mean over seeds of the mean TV; tv_worst: the worst over seeds and inputs.
        accuracy, accuracy_std: test accuracy (%) mean and standard deviation (ddof 1).
        source: ``"imperfect"`` (an imperfect oracle) or ``"learned"`` (a network).
        error: the error label, or ``"step=<k>"`` for a learned point.
    """

    base: str
    size: int
    method: str
    source: str
    kind: str
    error: str
    tv_mean: float
    tv_worst: float
    accuracy: float
    accuracy_std: float
    count: int
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["accuracy_std"] = None if math.isnan(self.accuracy_std) else self.accuracy_std
        return d


def points_of(records: list[dict]) -> list[dict]:
    """One flat point per (record, method), and per stop of a learned record (its
    ``results["steps"]``): base, size, seed, source, error, TV, accuracy."""
    out = []
    for rec in records:
        cfg = rec["config"]
        base = cfg.get("base", "exp1")
        results = rec["results"]
        parts = results["steps"] if "steps" in results else [results]  # older learned records: one per stop
        for part in parts:
            out.extend(_points_of_part(rec, cfg, base, part, part.get("source", results.get("source", "imperfect"))))
    return out


def _points_of_part(rec: dict, cfg: dict, base: str, part: dict, source: str) -> list[dict]:
    out = []
    for method in METHODS[base]:
        r = part[method]
        learned = "step" in r
        out.append(
            {
                "base": base,
                "size": int(cfg["size"]),
                "seed": int(rec["seed"]),
                "method": method,
                "source": source,
                "kind": "learned" if learned else error_kind(cfg["error"]),
                "error": f"step={r['step']}" if learned else cfg["error"],
                "tv_mean": float(r["tv_mean"]),
                "tv_worst": float(r["tv_worst"]),
                "accuracy": 100.0 * float(r["test"]),
            }
        )
    return out


def curves(points: list[dict]) -> list[CurvePoint]:
    """Average flat points over seeds, per (base, size, method, source, kind, error)."""
    groups: dict[tuple, list[dict]] = {}
    for p in points:
        groups.setdefault((p["base"], p["size"], p["method"], p["source"], p["kind"], p["error"]), []).append(p)
    out = []
    for (base, size, method, source, kind, error), ps in groups.items():
        acc = np.array([p["accuracy"] for p in ps])
        out.append(
            CurvePoint(
                base,
                size,
                method,
                source,
                kind,
                error,
                float(np.mean([p["tv_mean"] for p in ps])),
                float(max(p["tv_worst"] for p in ps)),
                float(acc.mean()),
                float(acc.std(ddof=1)) if len(acc) > 1 else float("nan"),
                len(ps),
            )
        )
    out.sort(key=lambda c: (c.base, c.size, c.method, c.source, c.kind, c.tv_mean))
    return out


def _crossing(tvs: np.ndarray, accs: np.ndarray, target: float) -> float | None:
    """The smallest TV at which the piecewise-linear (in log TV) curve first falls to
    ``target``; None if it never does (or starts below it)."""
    if len(tvs) == 0 or accs[0] < target:
        return None
    for i in range(1, len(tvs)):
        if accs[i] <= target:
            a0, a1 = accs[i - 1], accs[i]
            l0, l1 = math.log(max(tvs[i - 1], 1e-12)), math.log(max(tvs[i], 1e-12))
            f = 0.0 if a0 == a1 else (a0 - target) / (a0 - a1)
            return float(math.exp(l0 + f * (l1 - l0)))
    return None


def locate_published(curve_points: list[CurvePoint], learned_tv: dict | None = None) -> list[dict]:
    """For each published point: the TV at which each of our curves first falls to the
    published accuracy: one per imperfect-oracle error kind (through the error-free point)
    and the learned network's checkpoints (kind ``"learned"``); and the learned network's
    TV at its last step beside it.

    Args:
        learned_tv: ``{(base, size): tv}`` or ``{(base, size, method): tv}`` of the final
            learned model (per method where the methods read different networks), if
            measured.

    Returns:
        one dict per published point: ``base``, ``size``, ``method``, ``published``,
        ``perfect`` (our error-free accuracy), ``crossing_tv`` ``{kind: TV or None}``
        (None: the curve stays above the published number over the TVs measured, or, when
        ``below_at_min_tv[kind]``, is already below it at the smallest TV measured),
        ``min_tv_measured`` / ``max_tv_measured`` (the range of each curve), ``learned_tv``.
    """
    out = []
    by = {}
    for c in curve_points:
        by.setdefault((c.base, c.size, c.method), []).append(c)
    for base, methods in PUBLISHED.items():
        for method, table in methods.items():
            for size, value in table.items():
                cs = by.get((base, size, method))
                if not cs:
                    continue
                zero = [c for c in cs if c.kind == "none" and c.source == "imperfect"]
                row = {
                    "base": base,
                    "size": size,
                    "method": method,
                    "published": value,
                    "perfect": zero[0].accuracy if zero else None,
                    "crossing_tv": {},
                    "max_tv_measured": {},
                    "min_tv_measured": {},
                    "below_at_min_tv": {},
                    "learned_tv": (learned_tv or {}).get((base, size, method), (learned_tv or {}).get((base, size))),
                }
                for kind in sorted({c.kind for c in cs} - {"none", "mixed"}):
                    own = [c for c in cs if c.kind == kind]
                    pts = sorted(own if kind == "learned" else zero + own, key=lambda c: c.tv_mean)
                    tvs = np.array([c.tv_mean for c in pts])
                    accs = np.minimum.accumulate(np.array([c.accuracy for c in pts]))  # first fall
                    row["crossing_tv"][kind] = _crossing(tvs, accs, value)
                    row["max_tv_measured"][kind] = float(tvs.max())
                    row["min_tv_measured"][kind] = float(tvs.min())
                    row["below_at_min_tv"][kind] = bool(accs[0] < value)
                out.append(row)
    return out


#: TVs below this are drawn at it (the perfect oracle's 0 and rounding-level errors).
TV_FLOOR = 1e-5

_KIND_MARKERS = {"emission": "o", "transition": "s", "initial": "^", "noise": "D", "context": "x", "mixed": "v", "none": "*", "learned": "P"}


def plot_curves(curve_points: list[CurvePoint], path: str, base: str, *, subtitle: str | None = None) -> str:
    """One panel per size: test accuracy (%) against the mean TV to the perfect oracle
    (log scale), one colour per method, one marker per error kind (imperfect oracle, thin
    lines) and the learned networks' checkpoints (thick line, plus markers); the published
    accuracy as a dashed horizontal line of the method's colour, as in the paper's figures."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    sizes = sorted({c.size for c in curve_points if c.base == base})
    if not sizes:
        raise ValueError(f"no points of {base} to plot")
    cols = min(3, len(sizes))
    rows = math.ceil(len(sizes) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), dpi=110, squeeze=False)
    colors = {m: c for m, c in zip(METHODS[base], ["tab:red", "tab:blue"])}
    try:
        for ax, size in zip(axes.flat, sizes):
            cs = [c for c in curve_points if c.base == base and c.size == size]
            floor = TV_FLOOR
            for method, label in METHODS[base].items():
                mc = [c for c in cs if c.method == method]
                zero = [c for c in mc if c.kind == "none" and c.source == "imperfect"]
                for kind in sorted({c.kind for c in mc} - {"none"}):
                    learned = kind == "learned"
                    pts = sorted(([] if learned else zero) + [c for c in mc if c.kind == kind], key=lambda c: c.tv_mean)
                    xs = [max(c.tv_mean, floor) for c in pts]
                    ax.plot(
                        xs,
                        [c.accuracy for c in pts],
                        marker=_KIND_MARKERS.get(kind, "o"),
                        markersize=5 if learned else 3,
                        linewidth=2.2 if learned else 0.8,
                        alpha=1.0 if learned else 0.6,
                        color=colors[method],
                        label=f"{label}: {kind}" if size == sizes[0] else None,
                    )
                pub = PUBLISHED[base].get(method, {}).get(size)
                if pub is not None:
                    ax.axhline(pub, color=colors[method], linestyle="--", linewidth=1, label=f"{label}: paper" if size == sizes[0] else None)
            ax.set_xscale("log")
            ax.set_title(f"{'m' if base == 'exp1' else 'V'} = {size}", fontsize=9)
            ax.set_xlabel("mean TV to the perfect oracle", fontsize=8)
            ax.set_ylabel("test accuracy (%)", fontsize=8)
            ax.grid(alpha=0.3)
        for ax in list(axes.flat)[len(sizes):]:
            ax.axis("off")
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, fontsize=6, loc="lower center", ncol=4)
        title = "Experiment 1: head vs prompt tuning" if base == "exp1" else "Experiment 2: memory + attention vs vanilla + linear"
        fig.suptitle(f"{title}, against pretraining error", fontsize=10, y=0.995)
        if subtitle:
            fig.text(0.5, 0.955, subtitle + f"; TV < {TV_FLOOR:g} drawn at {TV_FLOOR:g}", ha="center", va="top", fontsize=7, color="dimgray")
        fig.tight_layout(rect=(0, 0.06 + 0.02 * math.ceil(len(handles) / 4), 1, 0.93))
        fig.savefig(path)
    finally:
        plt.close(fig)
    return str(path)
