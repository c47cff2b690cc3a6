"""Theorem H's tolerated pretraining error, checked by worst-case perturbations.

(docs/theory.md, "Theorem H (head tuning)") If ``W^T b_c = weights[c] - weights[0]`` for
every class c (``b_0 = 0``), the witness head's score differences are the task's:
``(b_y - b_c) . G_0(x) = s_yc(x) := (weights[y] - weights[c]) . p_0(x)``. A pretrained model
whose output is ``G'(x) = G_0(x) + e(x)`` with ``||e(x)||_1 <= eps`` moves each difference
by ``(b_y - b_c) . e(x)``, at most ``eps ||b_y - b_c||_inf`` in size, so no label changes
while ``eps < eps* = gamma / max_{c,c'} ||b_c - b_c'||_inf`` (``gamma`` = the smallest
margin). This module builds, for every sampled input, the perturbation that attains that
bound, ``e = eps * sign * delta_k`` on the coordinate ``k`` where ``|b_y - b_c|`` is
largest, for the most vulnerable competitor ``c``, and re-labels:

- at ``eps = (1 - 1e-6) eps*`` no label may change (the theorem);
- at ``eps = (1 + 1e-6) eps*`` at least one must change if the bound is tight;
- ``eps_flip``, the exact smallest ``eps`` that changes a sampled label, and
  ``slack = eps_flip / eps*`` (1 means tight).

The same is reported for perturbations that keep ``G'`` a distribution (``sum e = 0``,
``G + e >= 0``), the case of a real masked LM: the worst such ``e`` moves mass ``eps / 2``
from the coordinates where ``b_y - b_c`` is largest (as far as ``G`` has mass there) to the
one where it is smallest; its threshold ``eps_flip_distribution`` is up to twice ``eps*``.

Numbers: the scores ``s_yc(x)`` are the task's (the identity above; the head's own
float64 scores differ from them by rounding, which matters when ``gamma`` is near 1e-16),
and ``(b_y - b_c) . e`` is computed from the sparse ``e``, so margins of 1e-20 stay exact
to float64 relative precision.
"""

from __future__ import annotations

import numpy as np

from .tolerances import ADVERSARIAL_STEP as REL_STEP

__all__ = ["adversarial_head_check", "REL_STEP"]


def _pair_shift_free(d: np.ndarray, eps: float) -> float:
    """Worst (most negative) ``d . e`` over ``||e||_1 <= eps``: ``-eps ||d||_inf``."""
    return -eps * float(np.abs(d).max())


def _pair_shift_distribution(d: np.ndarray, G: np.ndarray, eps: float) -> np.ndarray:
    """Worst ``d . e`` over ``sum e = 0``, ``||e||_1 <= eps``, ``G + e >= 0``, per row of
    ``G`` (N, n): move ``eps / 2`` from the largest ``d_j`` (up to ``G_j`` each) to the
    smallest (a fractional knapsack, so greedy is optimal)."""
    order = np.argsort(-d)
    Gs = G[:, order]
    before = np.cumsum(Gs, axis=1) - Gs
    take = np.clip(eps / 2 - before, 0.0, Gs)  # mass taken from each coordinate
    return (eps / 2) * d.min() - take @ d[order]


def _labels_after(scores: np.ndarray, labels: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Labels after moving the true class's score down by ``-shifts`` (N, C) per competitor:
    the new score of class c relative to the true class y is ``s_c - s_y - shift_yc``."""
    N, C = scores.shape
    rel = scores - scores[np.arange(N), labels][:, None]  # s_c - s_y (<= 0)
    new = rel - shifts  # shift_yc <= 0 lowers s_y - s_c
    new[np.arange(N), labels] = 0.0
    if C == 2:  # binary rule: label 1 iff mu . p >= 0 (a tie goes to 1)
        other = 1 - labels
        s_other = new[np.arange(N), other]
        flip_to_other = np.where(other == 1, s_other >= 0, s_other > 0)
        return np.where(flip_to_other, other, labels)
    # argmax with ties to the smallest class
    best = new.max(1, keepdims=True)
    return (new == best).argmax(1)


def adversarial_head_check(scores: np.ndarray, heads: np.ndarray, G: np.ndarray, eps_star: float) -> dict:
    """Worst-case perturbations of ``G`` at Theorem H's ``eps*`` (see the module docstring).

    Args:
        scores: (N, C) task scores ``weights @ p_0(x)`` of the sampled inputs.
        heads: (C - 1, n) witness heads ``b_c`` for the differences ``weights[c] - weights[0]``.
        G: (N, n) the oracle's outputs ``G_0(x)``.
        eps_star: the reported tolerance.

    Returns:
        a JSON-serialisable dict: ``eps_star``, ``within`` and ``above`` (the ``eps`` used,
        the number of labels changed, the smallest signed adversarial margin), ``eps_flip``,
        ``slack``, ``tight``, and the same under ``distribution`` for perturbations that keep
        ``G'`` a distribution.
    """
    scores = np.asarray(scores, dtype=np.float64)
    G = np.asarray(G, dtype=np.float64)
    N, C = scores.shape
    B = np.vstack([np.zeros(G.shape[1]), np.atleast_2d(np.asarray(heads, dtype=np.float64))])  # (C, n)
    if C == 2:
        labels = (scores[:, 1] - scores[:, 0] >= 0).astype(int)
    else:
        labels = scores.argmax(1)
    margin = scores[np.arange(N), labels][:, None] - scores  # s_yc >= 0, (N, C)

    # per (input, competitor): the direction d = b_y - b_c, its sup norm and spread
    D = B[labels][:, None, :] - B[None, :, :]  # (N, C, n)
    sup = np.abs(D).max(-1)  # ||b_y - b_c||_inf
    spread = D.max(-1) - D.min(-1)  # max d - min d
    other = np.ones((N, C), dtype=bool)
    other[np.arange(N), labels] = False
    with np.errstate(divide="ignore", invalid="ignore"):
        flip_free = np.where(other & (sup > 0), margin / sup, np.inf)
        flip_dist = np.where(other & (spread > 0), 2 * margin / spread, np.inf)

    def at(eps: float, kind: str) -> dict:
        if not np.isfinite(eps):
            return {"eps": None, "flips": 0, "min_margin": None}
        shifts = np.zeros((N, C))
        for y in range(C):
            rows = labels == y
            if not rows.any():
                continue
            for c in range(C):
                if c == y:
                    continue
                d = B[y] - B[c]
                if kind == "free":
                    shifts[rows, c] = _pair_shift_free(d, eps)
                else:
                    shifts[rows, c] = _pair_shift_distribution(d, G[rows], eps)
        new = _labels_after(scores, labels, shifts)
        adv_margin = np.where(other, margin + shifts, np.inf).min(1)  # s_yc + worst d.e
        return {"eps": float(eps), "flips": int((new != labels).sum()), "min_margin": float(adv_margin.min())}

    out = {"eps_star": float(eps_star), "num_inputs": int(N), "rel_step": REL_STEP}
    for kind, thresholds in (("free", flip_free), ("distribution", flip_dist)):
        eps_flip = float(thresholds.min()) if N else float("inf")
        ref = float(eps_star) if kind == "free" else eps_flip
        block = {
            "eps_flip": eps_flip if np.isfinite(eps_flip) else None,
            "within": at(ref * (1 - REL_STEP), kind) if np.isfinite(ref) else at(np.inf, kind),
            "above": at(ref * (1 + REL_STEP), kind) if np.isfinite(ref) else at(np.inf, kind),
        }
        if kind == "free":
            block["slack"] = eps_flip / eps_star if eps_star > 0 and np.isfinite(eps_flip) else None
            block["tight"] = bool(block["within"]["flips"] == 0 and block["above"]["flips"] > 0)
            out.update(block)
        else:
            block["ratio_to_eps_star"] = eps_flip / eps_star if eps_star > 0 and np.isfinite(eps_flip) else None
            out["distribution"] = block
    return out
