"""``check``: every applicable condition of the paper for a model and optional task.

The entry point calls the rooms in order and assembles their rows into a :class:`Report`:
for an HMM the chain facts (:mod:`~hmmtune.analysis.chain`), Theorem H and its LP
certificate (:mod:`~hmmtune.analysis.head`), Theorem P (:mod:`~hmmtune.analysis.prompt`,
sharing the head's sampled inputs and rank of W) and, for a parametric model, the loci
(:mod:`~hmmtune.analysis.parametric`, the only room that needs sympy's solvers); for a
memory HMM the Z-chain's facts, Theorem M (:mod:`~hmmtune.analysis.memory`) and its loci.
"""

from __future__ import annotations

from typing import Any

from ..models.hmm import HMM
from . import matrices
from .chain import chain_facts, model_chain_facts
from .evidence import evidence
from .head import head_certificate, head_condition
from .memory import memory_condition
from .prompt import prompt_condition, prompt_through_head
from .report import Report
from .task import as_task

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
        task: a :class:`~hmmtune.analysis.task.Task`, a dict in the task-file format,
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
    spec = as_task(task)

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
        return _check_memory(model, spec, name, settings, num_inputs, length, seed, tol, tau)
    if not isinstance(model, HMM):
        raise TypeError(f"check needs an hmmtune.HMM or MemoryHMM, got {type(model).__name__}")
    conds = [model_chain_facts(model, tau)]
    ev = evidence(model, num_inputs, length, seed) if spec is not None else None
    head = head_condition(model, spec, num_inputs=num_inputs, length=length, seed=seed, tol=tol, inputs=ev)
    conds += head
    support = None
    if spec is not None:
        if head[-1].holds is False:
            T = certificate_length or default_certificate_length(model.num_tokens, max_inputs)
            settings["certificate_length"] = T
            conds.append(head_certificate(model, spec, length=T, max_inputs=max_inputs, num_samples=num_inputs, seed=seed))
            if T != length:  # also the inputs the rest of the report uses (issue 12, item 8b)
                conds.append(head_certificate(model, spec, length=length, num_samples=num_inputs, seed=seed, sampled=True))
        prompt = prompt_condition(
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
            prompt = prompt_through_head(model, prompt, head[-1])
        conds.append(prompt)
        support = prompt.witness.get("support") if prompt.holds else None
    if getattr(model, "parameters", None):
        from .parametric import parametric_conditions  # sympy: parametric models only

        conds += parametric_conditions(model, support, spec)
    shape = {"num_states": model.num_states, "num_tokens": model.num_tokens}
    return Report(name, "hmm", shape, spec.to_dict() if spec else None, conds, settings).requiring(require)


def _check_memory(model, spec, name: str, settings: dict, num_inputs: int, length: int, seed: int, tol, tau: float) -> Report:
    """:func:`check` for a :class:`hmmtune.MemoryHMM`: the Z-chain's facts, Theorem M and,
    for a parametric model, its loci."""
    transition = matrices.array(model, "transition")
    initial = matrices.array(model, "initial")
    conds = [chain_facts(transition, initial, tau)]
    conds += memory_condition(model, spec, num_inputs=min(num_inputs, 500), length=max(length, 32), seed=seed, tol=tol)
    if getattr(model, "parameters", None):
        from .parametric import memory_parametric_conditions  # sympy: parametric models only

        conds += memory_parametric_conditions(model)
    shape = {
        "num_cells": model.num_cells,
        "num_values": model.num_values,
        "num_local_states": model.num_local_states,
        "num_tokens": model.num_tokens,
    }
    return Report(name, "memory_hmm", shape, spec.to_dict() if spec else None, conds, settings).requiring(settings["require"])
