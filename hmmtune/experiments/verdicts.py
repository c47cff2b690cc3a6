"""The analysis' verdicts (Theorems H, P, M) for the models and tasks of saved runs.

A record holds its configuration, seed and the task's weights, so the exact model and task
of the run are rebuilt here (no sampling) and handed to :mod:`hmmtune.analysis`:

- experiment 1: Theorem H (``rank W = m``; the task in the row space of W, with the
  tolerated pretraining error ``eps*``) and Theorem P, exactly (on the float model's
  entries: the permutation mixture leaves about a third of the transition entries
  exactly zero, so exact supports can be small) and with transitions below ``tau``
  treated as zero (``docs/theory.md``, "Tolerance mode");
- experiment 2: memory non-degeneracy (Theorem M) for the memory HMM, and Theorem H for
  the vanilla control.
"""

from __future__ import annotations

from typing import Any

import torch

from ..task import Task

__all__ = ["record_verdicts", "DEFAULT_TAU"]

#: Transition entries at or below this are treated as zero in the tolerance-mode prompt check.
DEFAULT_TAU = 1e-6


def _holds(conds, prefix: str) -> Any:
    for c in conds:
        if c.name.startswith(prefix):
            return c
    return None


def record_verdicts(record: dict, tau: float = DEFAULT_TAU) -> dict:
    """Verdicts for one saved run (see the module docstring); a JSON-ready dict."""
    from ..analysis import head_condition, memory_condition, prompt_condition

    if record["experiment"] == "exp1":
        from . import exp1

        cfg = exp1.config_from_dict(record["config"])
        model = exp1.make_model(cfg, record["seed"])
        task = Task(torch.tensor(record["results"]["task"]["weights"], dtype=torch.float64))
        head = head_condition(model, task)
        rank, in_row = _holds(head, "head: rank"), _holds(head, "head: task")
        exact = prompt_condition(model, task, tau=0.0)
        approx = prompt_condition(model, task, tau=tau)
        return {
            "head_rank": rank.holds,
            "head_task": in_row.holds,
            "eps_star": in_row.witness.get("eps_star"),
            "prompt_exact": exact.holds,
            "prompt_tau": approx.holds,
            "tau": tau,
        }
    if record["experiment"] == "exp2":
        from . import exp2

        cfg = exp2.config_from_dict(record["config"])
        mem, van = exp2.make_models(cfg, record["seed"])
        tasks = record["results"]["task"]
        mtask = Task(torch.tensor(tasks["memory"]["weights"], dtype=torch.float64), cell=0)
        vtask = Task(torch.tensor(tasks["vanilla"]["weights"], dtype=torch.float64))
        mc = memory_condition(mem, mtask)
        vh = head_condition(van, vtask)
        anchors = _holds(mc, "memory: anchors")
        return {
            "memory_nondegenerate": _holds(mc, "memory: rank").holds,
            "memory_flattened_rank": _holds(mc, "memory: flattened").holds,
            "anchor_rate": anchors.witness.get("anchor_rate") if anchors else None,
            "loo_stability": anchors.witness.get("loo_stability") if anchors else None,
            "vanilla_head_task": _holds(vh, "head: task").holds,
        }
    raise ValueError(f"no verdicts for experiment {record['experiment']!r}")
