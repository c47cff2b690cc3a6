"""Experiment 1 of the paper: head vs prompt tuning on vanilla HMMs, in oracle mode (docs/theory.md, "The paper's experiments").

For every number of hidden states ``m`` and seed: draw the paper's random HMM
(:func:`hmmtune.paper_hmm`, n = 10 tokens), sample downstream inputs ``x_1..x_128``
(train / validation / test 5000 / 500 / 1000), label them with the paper's random task
on the exact first-state posterior (re-drawn deterministically while its minority class
is under 10%), then

- **head tuning**: a logistic-regression probe on the perfect masked LM's output at the
  mask, ``G_0(x)`` (:func:`hmmtune.tuning.fit_head`);
- **prompt tuning**: 20 soft tokens trained jointly with the probe through the exact
  prompted oracle, starting from the fitted head (:func:`hmmtune.tuning.fit_prompt`).

Both are scored on the test split. ``truncate=True`` reproduces the authors' inputs:
the head sees ``x_1..x_79`` and the prompted model ``x_1..x_59``, while labels still use
all 128 tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import torch

from .. import common
from .sweep import module_recipe
from ..models.generators import paper_hmm
from ..oracle import MaskMessages, OracleMLM
from ..task import Task
from ..tuning.heads import fit_head
from ..tuning.prompts import fit_prompt
from ..tuning.training import TrainConfig
from ..tuning.tasks import (
    MIN_CLASS_FRACTION,
    authors_label_posterior,
    balanced_authors_task,
    balanced_paper_task,
    sample_inputs,
)

__all__ = [
    "NAME",
    "STATES",
    "METHODS",
    "PUBLISHED",
    "DEFAULT_SEEDS",
    "Exp1Config",
    "Exp1Setup",
    "configs",
    "build",
    "run",
    "RECIPE",
]

NAME = "exp1"
#: The paper's numbers of hidden states.
STATES = (4, 8, 10, 12, 15, 25, 30)
#: Result keys and their labels, in plotting order.
METHODS = {"prompt": "prompt tuning", "head": "head tuning"}
#: Published test accuracy (%), mean over seeds, read off the paper's figure (docs/theory.md, "The paper's experiments");
#: m = 12 is in the figure but not in the table.
PUBLISHED = {
    "prompt": {4: 99.7, 8: 97.0, 10: 93.0, 15: 87.0, 25: 74.8, 30: 75.1},
    "head": {4: 94.0, 8: 84.0, 10: 79.7, 15: 74.6, 25: 66.1, 30: 66.2},
}
DEFAULT_SEEDS = 20
X_LABEL = "number of hidden states m"
X_SHORT = "m"
TITLE = "Experiment 1: head vs prompt tuning (vanilla HMM, oracle features)"

#: ``--quick``: the same sweep at sizes that run in seconds.
QUICK = dict(length=64, num_train=500, num_val=100, num_test=500, max_iter=300)
QUICK_SEEDS = 3


@dataclass(frozen=True)
class Exp1Config:
    """One point of the sweep (all fields end up in the record).

    Attributes:
        num_states: m.
        num_tokens: n (vocabulary size).
        length: T, tokens per downstream input (after the mask).
        num_train, num_val, num_test: split sizes.
        prompt_tokens: k soft tokens.
        truncate: feed the head ``x_1..x_head_input_length`` and the prompted model
            ``x_1..x_prompt_input_length`` (labels use all T tokens).
        min_class_fraction, max_redraws: minority-class rejection of the task.
        method, max_iter, l2: optimiser settings for both probes.
        models: ``"paper"`` (default): our own draws of the paper's random HMMs and tasks;
            ``"authors"``: the authors' own HMMs and tasks (:func:`hmmtune.paper_hmm` with
            ``source="authors"``), sweep seed ``s`` = the authors' seed ``s + 1`` (they
            used 1..20), the task re-drawn with their retry seeds.
    """

    num_states: int
    num_tokens: int = 10
    length: int = 128
    num_train: int = 5000
    num_val: int = 500
    num_test: int = 1000
    prompt_tokens: int = 20
    truncate: bool = False
    head_input_length: int = 79
    prompt_input_length: int = 59
    min_class_fraction: float = MIN_CLASS_FRACTION
    max_redraws: int = 20
    method: str = "lbfgs"
    max_iter: int = 1000
    l2: float = 0.0
    models: str = "paper"

    def __post_init__(self):
        if self.models not in ("paper", "authors"):
            raise ValueError(f"models must be 'paper' or 'authors', got {self.models!r}")

    @property
    def x(self) -> int:
        """The plot's x value."""
        return self.num_states

    def train_config(self, seed: int) -> TrainConfig:
        """The optimiser's settings of both probes of run ``seed``."""
        return TrainConfig(method=self.method, max_iter=self.max_iter, seed=seed)

    @property
    def label(self) -> str:
        return f"m{self.num_states}" + ("-authors" if self.models == "authors" else "")

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["models"] == "paper":  # keeps the records (and hashes) of earlier sweeps valid
            del d["models"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Exp1Config":
        return cls(**d)


def configs(quick: bool = False, truncate: bool = False, states=STATES, **overrides) -> list[Exp1Config]:
    """The sweep's configurations (``quick``: :data:`QUICK` sizes)."""
    extra = dict(QUICK) if quick else {}
    extra.update(overrides)
    return [Exp1Config(int(m), truncate=truncate, **extra) for m in states]


def config_from_dict(d: dict) -> Exp1Config:
    return Exp1Config.from_dict(d)


def derived_seed(seed: int, config: Exp1Config, tag: int) -> int:
    """A 32-bit seed for one random draw of a run; the model and task depend only on
    ``(seed, m, n)``, so the quick and full sweeps use the same HMMs."""
    return common.derive_seed(seed, config.num_states, config.num_tokens, 0xE1, tag)


class Exp1Setup(NamedTuple):
    """Everything a run trains on (see :func:`build`).

    Attributes:
        model: the HMM. oracle: its :class:`OracleMLM`. task: the task (after re-draws).
        tokens: (B, T) all inputs (train, then validation, then test).
        posterior: (B, m) exact ``P(H_0 | x_1..x_T)``. labels: (B,).
        splits: slices of train / validation / test. minority_fraction: of the labels.
    """

    model: Any
    oracle: OracleMLM
    task: Task
    tokens: torch.Tensor
    posterior: torch.Tensor
    labels: torch.Tensor
    splits: tuple
    minority_fraction: float


def make_model(config: Exp1Config, seed: int):
    """The random HMM of one (configuration, seed)."""
    if config.models == "authors":
        return paper_hmm(config.num_states, config.num_tokens, seed=int(seed) + 1, source="authors")
    return paper_hmm(config.num_states, config.num_tokens, seed=derived_seed(seed, config, 1))


def build(config: Exp1Config, seed: int) -> Exp1Setup:
    """The model, task and labelled inputs of one (configuration, seed)."""
    model = make_model(config, seed)
    oracle = OracleMLM(model)
    total = config.num_train + config.num_val + config.num_test
    tokens = sample_inputs(model, total, config.length, seed=derived_seed(seed, config, 2))
    posterior = oracle.mask_posterior(tokens)
    if config.models == "authors":
        task, frac = balanced_authors_task(
            config.num_states, int(seed) + 1, posterior, min_fraction=config.min_class_fraction, max_redraws=config.max_redraws
        )
    else:
        task, frac = balanced_paper_task(
            config.num_states,
            derived_seed(seed, config, 3),
            posterior,
            min_fraction=config.min_class_fraction,
            max_redraws=config.max_redraws,
        )
    a, b = config.num_train, config.num_train + config.num_val
    splits = (slice(0, a), slice(a, b), slice(b, total))
    return Exp1Setup(model, oracle, task, tokens, posterior, task.labels(posterior), splits, frac)


def _scores(fit_acc: tuple[float, float, float], log) -> dict:
    tr, va, te = fit_acc
    return {
        "train": tr,
        "val": va,
        "test": te,
        "iterations": log.iterations,
        "stopped": log.stopped,
        "restarts": log.restarts,
    }


def run(config: Exp1Config, seed: int) -> dict:
    """Head and prompt tuning on one (configuration, seed); returns the record's results."""
    s = build(config, seed)
    tr, va, te = s.splits
    y = s.labels
    opts = dict(l2=config.l2, config=config.train_config(seed))

    head_tokens = s.tokens[:, : config.head_input_length] if config.truncate else s.tokens
    prompt_tokens = s.tokens[:, : config.prompt_input_length] if config.truncate else s.tokens
    head_msgs = s.oracle.encode(head_tokens)
    prompt_msgs = head_msgs if prompt_tokens is head_tokens else s.oracle.encode(prompt_tokens)

    G = s.oracle.mask_prediction(head_msgs)
    hf = fit_head(G[tr], y[tr], G[va], y[va], num_classes=s.task.num_classes, **opts)
    head = _scores((hf.train_accuracy, hf.val_accuracy, hf.head.accuracy(G[te], y[te])), hf.log)

    msg = lambda sl: MaskMessages(prompt_msgs.backward[sl])
    init = hf.head
    if prompt_msgs is not head_msgs:  # the head was fitted on other inputs; refit on these
        Gp = s.oracle.mask_prediction(prompt_msgs)
        init = fit_head(Gp[tr], y[tr], Gp[va], y[va], num_classes=s.task.num_classes, **opts).head
    pf = fit_prompt(
        s.oracle,
        msg(tr),
        y[tr],
        msg(va),
        y[va],
        num_prompt_tokens=config.prompt_tokens,
        num_classes=s.task.num_classes,
        init_head=init,
        **opts,
    )
    prompt = _scores((pf.train_accuracy, pf.val_accuracy, pf.accuracy(s.oracle, msg(te), y[te])), pf.log)

    scores = s.task.scores(s.posterior)
    mu_p = scores[:, 1] - scores[:, 0]
    # The authors' labels use transmat @ P(H_1 | x) instead of P(H_0 | x): how many differ.
    authors_post = authors_label_posterior(s.model, s.tokens)
    authors_labels = s.task.labels(authors_post)
    return {
        "head": head,
        "prompt": prompt,
        "task": {
            "weights": s.task.weights.tolist(),
            "redraw": s.task.redraw,
            "minority_fraction": s.minority_fraction,
            "tie_fraction": float((mu_p == 0).double().mean()),
            "median_margin": float(mu_p.abs().median()),
            "authors_convention_flips": float((authors_labels != s.labels).double().mean()),
            "authors_convention_tv_max": float(0.5 * (authors_post - s.posterior).abs().sum(-1).max()),
        },
    }



def run_one(config, seed: int, ctx=None) -> dict:
    """The sweep engine's runner: :func:`run` (``ctx`` is unused in oracle mode)."""
    return run(config, seed)


def plan(quick: bool = False, truncate: bool = False) -> list:
    """The sweep's configurations for the engine (:func:`configs`)."""
    return configs(quick=quick, truncate=truncate)


#: Experiment 1 in oracle mode, as the sweep engine runs it (registered as ``"exp1"``).
RECIPE = module_recipe(__name__)
