"""Experiment 2 of the paper: memory HMM + attention head vs vanilla HMM + linear head,
in oracle mode (docs/theory.md, "Memory-augmented HMMs", "The paper's experiments").

For every number of memory values ``V`` (flattened ``m = V * S`` with ``S = 4`` local
states) and seed:

- **memory + attention**: the paper's memory HMM (:func:`hmmtune.models.generators.paper_memory_hmm`,
  one memory cell), the paper's random task on the exact memory posterior
  ``P(M_1 | x_1..x_T)``, and an attention head over the oracle's per-position
  predictions ``G_t(x)`` (:func:`hmmtune.tuning.fit_attention`);
- **vanilla + linear**: the vanilla control with the same ``m`` and a full random
  transition (:func:`hmmtune.models.generators.paper_vanilla_control`), the random task
  on the first-state posterior, and a linear head on ``G_0(x)``
  (:func:`hmmtune.tuning.fit_head`), as in experiment 1;
- **memory + linear** (not in the paper; a diagnostic): a linear head on the memory
  model's ``G_0(x)`` for the memory task, which shows how much of the gain needs the
  attention.

The paper gives no split sizes or input length for experiment 2; we use experiment 1's
(T = 128, train / validation / test 5000 / 500 / 1000) and the paper's 5 seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch

from .. import common
from .sweep import module_recipe
from ..models.generators import paper_memory_hmm, paper_vanilla_control
from ..oracle import OracleMLM
from ..tuning.attention import fit_attention
from ..tuning.heads import fit_head
from ..tuning.training import TrainConfig
from ..tuning.tasks import MIN_CLASS_FRACTION, balanced_paper_task, sample_inputs

__all__ = ["NAME", "VALUES", "METHODS", "PUBLISHED", "DEFAULT_SEEDS", "Exp2Config", "Exp2Setup", "configs", "build", "run", "RECIPE"]

NAME = "exp2"
#: The paper's numbers of memory values (flattened m = 8, 12, 20, 28 with S = 4).
VALUES = (2, 3, 5, 7)
METHODS = {
    "memory_attention": "memory HMM + attention head",
    "vanilla_linear": "vanilla HMM + linear head",
    "memory_linear": "memory HMM + linear head",
}
#: Published test accuracy (%) (docs/theory.md, "The paper's experiments"), keyed by the flattened m.
PUBLISHED = {
    "memory_attention": {8: 99.8, 12: 99.9, 20: 99.9, 28: 97.8},
    "vanilla_linear": {8: 83.2, 12: 80.7, 20: 64.4, 28: 66.2},
}
DEFAULT_SEEDS = 5
X_LABEL = "number of hidden states m = V x S (flattened)"
X_SHORT = "m"
TITLE = "Experiment 2: memory + attention vs vanilla + linear (oracle features)"

QUICK = dict(length=64, num_train=400, num_val=100, num_test=400, max_iter=200)
QUICK_SEEDS = 2


@dataclass(frozen=True)
class Exp2Config:
    """One point of the sweep.

    Attributes:
        num_values: V. num_local_states: S. num_tokens: n.
        length, num_train, num_val, num_test: inputs and splits.
        min_class_fraction, max_redraws: minority-class rejection of the tasks.
        method, max_iter, l2: optimiser settings.
    """

    num_values: int
    num_local_states: int = 4
    num_tokens: int = 10
    length: int = 128
    num_train: int = 5000
    num_val: int = 500
    num_test: int = 1000
    min_class_fraction: float = MIN_CLASS_FRACTION
    max_redraws: int = 20
    method: str = "lbfgs"
    max_iter: int = 1000
    l2: float = 0.0

    @property
    def x(self) -> int:
        return self.num_values * self.num_local_states

    def train_config(self, seed: int) -> TrainConfig:
        """The optimiser's settings of the three heads of run ``seed``."""
        return TrainConfig(method=self.method, max_iter=self.max_iter, seed=seed)

    @property
    def label(self) -> str:
        return f"V{self.num_values}"

    def to_dict(self) -> dict:
        return asdict(self)


def config_from_dict(d: dict) -> Exp2Config:
    return Exp2Config(**d)


def configs(quick: bool = False, truncate: bool = False, values=VALUES, **overrides) -> list[Exp2Config]:
    if truncate:
        raise ValueError("experiment 2 has no input truncation option")
    extra = dict(QUICK) if quick else {}
    extra.update(overrides)
    return [Exp2Config(int(v), **extra) for v in values]


def derived_seed(seed: int, config: Exp2Config, tag: int) -> int:
    return common.derive_seed(seed, config.num_values, config.num_local_states, config.num_tokens, 0xE2, tag)


def _split(config: Exp2Config):
    a, b = config.num_train, config.num_train + config.num_val
    return slice(0, a), slice(a, b), slice(b, b + config.num_test)


def _scores(train, val, test, log) -> dict:
    return {"train": train, "val": val, "test": test, "iterations": log.iterations, "stopped": log.stopped, "restarts": log.restarts}


def _task_info(task, frac) -> dict:
    return {"weights": task.weights.tolist(), "redraw": task.redraw, "minority_fraction": frac}


def make_models(config: Exp2Config, seed: int):
    """``(memory HMM, vanilla control)`` of one (configuration, seed)."""
    V, S = config.num_values, config.num_local_states
    mem = paper_memory_hmm(V, S, config.num_tokens, seed=derived_seed(seed, config, 1))
    van = paper_vanilla_control(V, S, config.num_tokens, seed=derived_seed(seed, config, 4))
    return mem, van


class Exp2Model(NamedTuple):
    """One of a run's two models with its labelled inputs.

    Attributes:
        model: the HMM. oracle: its :class:`OracleMLM`. tokens: (B, T) inputs (train,
        then validation, then test). task: the task (after re-draws). labels: (B,).
        posterior: the posterior the task reads (memory: ``P(M_1 | x)``; vanilla:
        ``P(H_0 | x)``). minority_fraction: of the labels.
    """

    model: Any
    oracle: OracleMLM
    tokens: torch.Tensor
    task: Any
    labels: torch.Tensor
    posterior: torch.Tensor
    minority_fraction: float


class Exp2Setup(NamedTuple):
    """Everything a run of experiment 2 trains on (see :func:`build`): the memory model
    and the vanilla control, and the train / validation / test slices."""

    memory: Exp2Model
    vanilla: Exp2Model
    splits: tuple


def build(config: Exp2Config, seed: int) -> Exp2Setup:
    """The memory HMM (task on the memory cell) and the vanilla control (task on the
    first state) of one (configuration, seed), with their oracles and labelled inputs.
    Oracle mode (:func:`run`) and learned mode read this one recipe."""
    total = config.num_train + config.num_val + config.num_test
    V, S = config.num_values, config.num_local_states
    mem, van = make_models(config, seed)
    oracle = OracleMLM(mem)
    tokens = sample_inputs(mem, total, config.length, seed=derived_seed(seed, config, 2))
    post = oracle.memory_posterior(tokens, cell=0)
    task, frac = balanced_paper_task(
        V, derived_seed(seed, config, 3), post, cell=0, min_fraction=config.min_class_fraction, max_redraws=config.max_redraws
    )
    voracle = OracleMLM(van)
    vtokens = sample_inputs(van, total, config.length, seed=derived_seed(seed, config, 5))
    vpost = voracle.mask_posterior(vtokens)
    vtask, vfrac = balanced_paper_task(
        V * S, derived_seed(seed, config, 6), vpost, min_fraction=config.min_class_fraction, max_redraws=config.max_redraws
    )
    return Exp2Setup(
        Exp2Model(mem, oracle, tokens, task, task.labels(post), post, frac),
        Exp2Model(van, voracle, vtokens, vtask, vtask.labels(vpost), vpost, vfrac),
        _split(config),
    )


def run(config: Exp2Config, seed: int) -> dict:
    """The three heads on one (configuration, seed); returns the record's results."""
    s = build(config, seed)
    tr, va, te = s.splits
    opts = dict(l2=config.l2, config=config.train_config(seed))

    # memory HMM: task on the memory cell
    m = s.memory
    y = m.labels
    G = m.oracle.token_predictions(m.tokens)
    af = fit_attention(G[tr], y[tr], G[va], y[va], num_classes=m.task.num_classes, **opts)
    attention = _scores(af.train_accuracy, af.val_accuracy, af.head.accuracy(G[te], y[te]), af.log)
    G0 = m.oracle.mask_prediction(m.tokens)
    mf = fit_head(G0[tr], y[tr], G0[va], y[va], num_classes=m.task.num_classes, **opts)
    memory_linear = _scores(mf.train_accuracy, mf.val_accuracy, mf.head.accuracy(G0[te], y[te]), mf.log)

    # vanilla control: task on the first-state posterior
    v = s.vanilla
    vy = v.labels
    VG = v.oracle.mask_prediction(v.tokens)
    vf = fit_head(VG[tr], vy[tr], VG[va], vy[va], num_classes=v.task.num_classes, **opts)
    vanilla = _scores(vf.train_accuracy, vf.val_accuracy, vf.head.accuracy(VG[te], vy[te]), vf.log)

    return {
        "memory_attention": attention,
        "memory_linear": memory_linear,
        "vanilla_linear": vanilla,
        "task": {"memory": _task_info(m.task, m.minority_fraction), "vanilla": _task_info(v.task, v.minority_fraction)},
    }


def run_one(config, seed: int, ctx=None) -> dict:
    """The sweep engine's runner: :func:`run` (``ctx`` is unused in oracle mode)."""
    return run(config, seed)


def plan(quick: bool = False, truncate: bool = False) -> list:
    """The sweep's configurations for the engine (:func:`configs`)."""
    return configs(quick=quick, truncate=truncate)


#: Experiment 2 in oracle mode, as the sweep engine runs it (registered as ``"exp2"``).
RECIPE = module_recipe(__name__)
