"""``check``: every applicable condition of the paper for a model and optional task."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..models.hmm import HMM
from . import conditions as C
from .report import Report
from .task import as_task_spec

__all__ = ["check", "default_certificate_length"]


def default_certificate_length(num_tokens: int, max_inputs: int = 1024, longest: int = 6) -> int:
    """Largest T <= ``longest`` with ``n^T <= max_inputs`` (at least 1): the LP then sees
    every input of that length."""
    T = 1
    while T < longest and num_tokens ** (T + 1) <= max_inputs:
        T += 1
    return T


def check(
    model: Any,
    task: Any = None,
    *,
    max_prompt_length: int = 4,
    tau: float = 0.0,
    num_inputs: int = 2000,
    length: int = 16,
    certificate_length: int | None = None,
    max_inputs: int = 1024,
    seed: int = 0,
    tol: float | None = None,
    require: str = "all",
) -> Report:
    """Check the paper's conditions for ``model`` (and ``task`` when given).

    For an :class:`hmmtune.HMM`: chain structure; Theorem H (``rank W = m``, and the task
    in the row space of W with a verified witness head and its tolerated pretraining
    error); when the task is not in the row space, the LP certificate on concrete inputs;
    Theorem P (shortest prompt and smallest support, witness prompt and head verified
    with the exact prompted oracle); and, for a parametric model, the degeneracy loci.
    For a :class:`hmmtune.MemoryHMM`: Theorem M (per-local-state rank, the flattened
    condition beside it, anchors and leave-one-out stability on samples) and, for a
    parametric model, the degeneracy locus of the memory condition per local state.

    Args:
        model: an HMM or a MemoryHMM.
        task: a :class:`~hmmtune.analysis.task.TaskSpec`, a dict in the task-file format,
            an object with ``weights``/``cell``, or a 1-D ``mu``; None checks the task-free
            conditions only.
        max_prompt_length: longest prompt K searched.
        tau: transition entries at or below tau count as zero in the prompt search
            (tolerance mode for dense but peaked transitions); 0 is exact.
        num_inputs: sampled inputs used to verify witnesses and measure margins.
        length: length T of those inputs.
        certificate_length: input length of the LP certificate (default: the largest
            T <= 6 with n^T <= ``max_inputs``, so every input of that length is used).
        max_inputs: above this many inputs the LP uses a sample instead of [n]^T.
        seed: seed for sampled inputs.
        tol: singular-value tolerance of numerical ranks (default: numpy's rule).
        require: what decides ``Report.holds`` and the exit code: ``"all"``, ``"head"``,
            ``"prompt"``, ``"memory"`` or ``"task"`` (see :meth:`Report.requiring`).

    Returns:
        A :class:`~hmmtune.analysis.report.Report`.
    """
    from ..models import arguments
    from ..models.memory import MemoryHMM

    max_prompt_length = arguments.integer("max_prompt_length", max_prompt_length, 1)
    tau = arguments.real("tau", tau, 0.0)
    num_inputs = arguments.integer("num_inputs", num_inputs, 1)
    length = arguments.integer("length", length, 1)
    if certificate_length is not None:
        certificate_length = arguments.integer("certificate_length", certificate_length, 1)
    max_inputs = arguments.integer("max_inputs", max_inputs, 1)
    seed = arguments.seed("seed", seed)
    if tol is not None:
        tol = arguments.real("tol", tol, 0.0)
    spec = as_task_spec(task)

    settings = {
        "max_prompt_length": max_prompt_length,
        "tau": tau,
        "num_inputs": num_inputs,
        "length": length,
        "seed": seed,
        "tol": tol,
        "require": require,
    }
    name = getattr(model, "name", None) or "model"
    if isinstance(model, MemoryHMM):
        conds = [C.chain_condition(_ChainView(model), tau)]
        conds += C.memory_condition(model, spec, num_inputs=min(num_inputs, 500), length=max(length, 32), seed=seed, tol=tol)
        if getattr(model, "parameters", None):
            conds += C.memory_parametric_conditions(model)
        shape = {
            "num_cells": model.num_cells,
            "num_values": model.num_values,
            "num_local_states": model.num_local_states,
            "num_tokens": model.num_tokens,
        }
        return Report(name, "memory_hmm", shape, spec.to_dict() if spec else None, conds, settings).requiring(require)
    if not isinstance(model, HMM):
        raise TypeError(f"check needs an hmmtune.HMM or MemoryHMM, got {type(model).__name__}")
    conds = [C.chain_condition(model, tau)]
    ev = C.evidence(model, num_inputs, length, seed) if spec is not None else None
    head = C.head_condition(model, spec, num_inputs=num_inputs, length=length, seed=seed, tol=tol, inputs=ev)
    conds += head
    support = None
    if spec is not None:
        if head[-1].holds is False:
            T = certificate_length or default_certificate_length(model.num_tokens, max_inputs)
            settings["certificate_length"] = T
            conds.append(C.head_certificate(model, spec, length=T, max_inputs=max_inputs, num_samples=num_inputs, seed=seed))
            if T != length:  # also the inputs the rest of the report uses (issue 12, item 8b)
                conds.append(C.head_certificate(model, spec, length=length, num_samples=num_inputs, seed=seed, sampled=True))
        prompt = C.prompt_condition(
            model,
            spec,
            max_prompt_length=max_prompt_length,
            tau=tau,
            num_inputs=num_inputs,
            length=length,
            seed=seed,
            tol=tol,
            inputs=ev,
            known_ranks={frozenset(range(model.num_states)): head[0].witness["rank"]},
        )
        if prompt.holds is False and head[-1].holds is True:
            prompt = _prompt_through_head(model, prompt, head[-1])
        conds.append(prompt)
        support = prompt.witness.get("support") if prompt.holds else None
    if getattr(model, "parameters", None):
        conds += C.parametric_conditions(model, support, spec)
    shape = {"num_states": model.num_states, "num_tokens": model.num_tokens}
    return Report(name, "hmm", shape, spec.to_dict() if spec else None, conds, settings).requiring(require)


def _is_stationary(model: HMM) -> tuple[bool, str]:
    """Whether ``initial @ transition == initial`` (exactly for exact models)."""
    exact = getattr(model, "exact", None)
    if exact:
        pi = exact["initial"].reshape(1, model.num_states)
        return bool((pi * exact["transition"] - pi).is_zero_matrix), "exact"
    pi = model.initial.detach().double().cpu().numpy()
    A = model.transition.detach().double().cpu().numpy()
    return bool(np.abs(pi @ A - pi).max() <= 1e-12), "numerical (|pi A - pi| <= 1e-12)"


def _prompt_through_head(model: HMM, prompt: C.Condition, head_task: C.Condition) -> C.Condition:
    """When the head's witness already recovers the task and ``pi`` is stationary, the
    one-token prompt ``u = 1`` leaves the mask's prior at ``pi A = pi``: the prompted model
    is the pretrained one and the same head works, so prompt tuning recovers the task too.
    Otherwise the prompt row keeps its verdict and says why the head does not carry over."""
    stationary, how = _is_stationary(model)
    m = model.num_states
    if not stationary:
        return C.Condition(
            prompt.name,
            prompt.holds,
            prompt.method,
            prompt.explanation + "; head tuning recovers this task (head row), but every prompt moves the mask's "
            "prior away from pi (pi A != pi), so the head's witness does not carry over",
            prompt.witness,
            prompt.counts,
        )
    witness = {
        "prompt_length": 1,
        "prompt": [[1] * m],
        "prior": "initial (pi A = pi)",
        "head": head_task.witness.get("head"),
        "through_head": True,
        "support_search": prompt.witness,
    }
    expl = (
        "no support S of Theorem P, but the head's witness already recovers the task and pi is stationary "
        "(pi A = pi): the one-token prompt u = 1 leaves the mask's prior at pi, so the prompted model keeps the "
        "head's exact identity b . G_0^u(x) = mu . p_0(x) and prompt tuning recovers F* too"
    )
    return C.Condition(prompt.name, True, f"{how}; through the head's witness", expl, witness, prompt.counts)


class _ChainView:
    """The Z-chain of a memory model seen as (initial, transition) for chain facts."""

    def __init__(self, model):
        self.initial = model.initial
        self.transition = model.transition
        self.exact = None
        self.num_states = model.initial.shape[0]
