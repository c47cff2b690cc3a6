"""Adapters between :class:`hmmtune.HMM` and other libraries: hmmlearn's
``CategoricalHMM`` and Pyro's ``DiscreteHMM`` (both imported only when called)."""

from __future__ import annotations

import math

from ..common import torch
from ..models.hmm import HMM

__all__ = ["hmm_from_hmmlearn", "hmm_to_hmmlearn", "hmm_to_pyro_discrete_hmm"]


def hmm_from_hmmlearn(model, **kwargs):
    """An :class:`HMM` from ``hmmlearn.hmm.CategoricalHMM`` (``startprob_`` is the law of the
    first state in both libraries)."""
    for attr in ("startprob_", "transmat_", "emissionprob_"):
        if not hasattr(model, attr):
            raise ValueError(f"hmmlearn model has no {attr}: fit it or set its parameters first")
    return HMM(model.startprob_, model.transmat_, model.emissionprob_, **kwargs)


def hmm_to_hmmlearn(hmm):
    """A ``hmmlearn.hmm.CategoricalHMM`` with the same parameters (float64, CPU)."""
    try:
        from hmmlearn.hmm import CategoricalHMM
    except ImportError as exc:  # pragma: no cover - exercised only without hmmlearn
        raise ImportError("to_hmmlearn needs hmmlearn: pip install hmmlearn") from exc
    model = CategoricalHMM(n_components=hmm.num_states, n_features=hmm.num_tokens, init_params="", params="")
    model.startprob_ = hmm.initial.double().cpu().numpy()
    model.transmat_ = hmm.transition.double().cpu().numpy()
    model.emissionprob_ = hmm.emission.double().cpu().numpy()
    return model


def hmm_to_pyro_discrete_hmm(hmm, length: int):
    """A ``pyro.distributions.DiscreteHMM`` over sequences of ``length`` tokens.

    Pyro's ``initial_logits`` is the law of a state one transition *before* the first
    observation. We make the first transition time-dependent with every row equal to
    ``initial``, which represents our convention exactly for any transition matrix
    (solving ``pi_pyro @ A = pi`` needs A invertible and may leave the simplex). Its
    ``log_prob`` equals :meth:`hmmtune.HMM.log_prob`.
    """
    import pyro.distributions as dist

    if not isinstance(length, int) or length < 1:
        raise ValueError(f"length must be a positive integer, got {length!r}")
    m = hmm.num_states
    with torch.no_grad():
        log_init = hmm.initial.log()
        log_trans = hmm.transition.log()
    trans = torch.empty(length, m, m, dtype=hmm.dtype, device=hmm.device)
    trans[0] = log_init.expand(m, m)
    trans[1:] = log_trans
    return dist.DiscreteHMM(
        initial_logits=torch.zeros(m, dtype=hmm.dtype, device=hmm.device) - math.log(m),
        transition_logits=trans,
        observation_dist=dist.Categorical(probs=hmm.emission),
    )
