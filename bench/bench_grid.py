"""Benchmark grid: exact inference of a vanilla HMM in every regime (issue 11, item 2).

For m in {4, 32, 256} states and (B, T) in {(1, 100000), (4, 20000), (400, 256),
(4000, 64)} (B sequences of T tokens, n = 10 tokens, float64, ``paper_hmm(m, 10,
seed=0)``, tokens sampled from the model), times three quantities:

- ``posterior``: ``P(H_t | x)`` for every position, (B, T, m);
- ``masked_posterior``: ``P(H_t | x_{-t})`` (position t left out), (B, T, m);
- ``log_prob``: ``log P(x)`` per sequence, (B,);

with hmmtune (``HMM.posterior`` / ``HMM.loo_posterior`` / ``HMM.log_prob``, the path
chosen by the cost rule, recorded per cell) and these peers, measured in the same run:

- hmmlearn ``CategoricalHMM``, ``implementation="log"`` (its default) and ``"scaling"``:
  ``predict_proba(X, lengths)`` and ``score(X, lengths)`` on all B sequences;
- dynamax 1.0 (JAX, float64, ``jax.jit`` of ``jax.vmap`` over sequences):
  ``hidden_markov_model.inference.hmm_smoother`` / ``hmm_filter`` (sequential
  ``lax.scan``) and ``hidden_markov_model.parallel_inference.hmm_smoother`` /
  ``hmm_filter`` (associative scan); the compile run is not timed;
- Pyro ``DiscreteHMM.log_prob`` (its parallel-scan log-likelihood) for ``log_prob``.
  Pyro and dynamax's parallel smoother hold B*T (m, m) matrices; where those exceed
  ``--max-scan-bytes`` they are marked skipped (memory), not run. Pyro
  has no forward-backward posterior call; its enumeration (``TraceEnum_ELBO
  .compute_marginals``) is timed by bench/bench_inference.py, not here.

No peer has a leave-one-out posterior: for them ``masked_posterior`` is their posterior
divided by the emission column of the observed token and renormalised (exact, the
emissions of ``paper_hmm`` are positive), and that division is timed with it.

Each implementation runs once untimed (warm-up / compilation) and checks its answer
against hmmtune (max abs difference, recorded), then ``--repeats`` timed runs, more for fast calls until ``--min-time`` seconds have
passed (median of all).
A run longer than ``--long`` seconds is not repeated. A peer whose time on a cell,
predicted from its smallest measured cell of the same m and quantity as proportional to
B*T, exceeds ``--budget`` seconds is not run there: the JSON marks it ``skipped`` with the
prediction (an extrapolation, never used as a measurement). Peak memory: the increase of
the process's resident set size over its value before the call, sampled every 2 ms by a
thread in a separate untimed run.

Ratios: ``fastest peer time / hmmtune time`` per cell (> 1: hmmtune is faster).

Usage::

    python bench/bench_grid.py --out docs/figures/bench-grid.json --plot docs/figures/bench-grid.png
    python bench/bench_grid.py --quick        # tiny sizes, a smoke test (seconds)
    python bench/bench_grid.py --threads 1    # torch on one thread
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import statistics
import sys
import threading
import time

import numpy as np
import torch

from hmmtune.models import inference, paper_hmm

GRID_M = [4, 32, 256]
GRID_BT = [(1, 100_000), (4, 20_000), (400, 256), (4000, 64)]
QUICK_M = [3, 5]
QUICK_BT = [(1, 300), (20, 16)]
QUANTITIES = ["posterior", "masked_posterior", "log_prob"]


# ----------------------------------------------------------------------------- memory
def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _trim():
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # pragma: no cover - not glibc
        pass


def peak_memory(fn) -> int | None:
    """Peak increase of resident memory (bytes) during ``fn()``; None off Linux."""
    if not os.path.exists("/proc/self/statm"):
        return None
    _trim()
    base = _rss()
    peak = [base]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss())
            time.sleep(0.002)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    try:
        out = fn()
        peak[0] = max(peak[0], _rss())
    finally:
        stop.set()
        th.join()
    del out
    return peak[0] - base


# ----------------------------------------------------------------------------- peers
def _masked_from_posterior(post: np.ndarray, E: np.ndarray, tok: np.ndarray) -> np.ndarray:
    q = post / E.T[tok]
    return q / q.sum(-1, keepdims=True)


def make_hmmtune(hmm, tok):
    x = torch.as_tensor(tok)
    return {
        "posterior": lambda: hmm.posterior(x),
        "masked_posterior": lambda: hmm.loo_posterior(x),
        "log_prob": lambda: hmm.log_prob(x),
    }


def make_hmmlearn(hmm, tok, impl):
    from hmmtune.io import hmm_to_hmmlearn

    model = hmm_to_hmmlearn(hmm)
    model.implementation = impl
    B, T = tok.shape
    X = tok.reshape(-1, 1)
    lengths = [T] * B
    E = hmm.emission.numpy()

    def post():
        return model.predict_proba(X, lengths).reshape(B, T, -1)

    return {
        "posterior": post,
        "masked_posterior": lambda: _masked_from_posterior(post(), E, tok),
        # score() returns the sum over sequences: the same forward passes
        "log_prob": lambda: model.score(X, lengths),
    }


def make_dynamax(hmm, tok, parallel):
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    if parallel:
        from dynamax.hidden_markov_model import parallel_inference as dx
    else:
        from dynamax.hidden_markov_model import inference as dx
    pi = jnp.asarray(hmm.initial.numpy())
    A = jnp.asarray(hmm.transition.numpy())
    logE = jnp.log(jnp.asarray(hmm.emission.numpy()))
    E = jnp.asarray(hmm.emission.numpy())
    x = jnp.asarray(tok)

    def one_post(xs):
        return dx.hmm_smoother(pi, A, logE.T[xs]).smoothed_probs

    def one_lp(xs):
        return dx.hmm_filter(pi, A, logE.T[xs]).marginal_loglik

    post = jax.jit(lambda xx: jax.vmap(one_post)(xx))

    def masked(xx):
        p = jax.vmap(one_post)(xx) / E.T[xx]
        return p / p.sum(-1, keepdims=True)

    masked = jax.jit(masked)
    lp = jax.jit(lambda xx: jax.vmap(one_lp)(xx))
    return {
        "posterior": lambda: post(x).block_until_ready(),
        "masked_posterior": lambda: masked(x).block_until_ready(),
        "log_prob": lambda: lp(x).block_until_ready(),
    }


def make_pyro(hmm, tok):
    from hmmtune.io import hmm_to_pyro_discrete_hmm

    d = hmm_to_pyro_discrete_hmm(hmm, tok.shape[1])
    x = torch.as_tensor(tok).to(hmm.emission.dtype)

    def lp():
        with torch.no_grad():
            return d.log_prob(x)

    return {"log_prob": lp}


# ----------------------------------------------------------------------------- driver
def _to_np(v):
    if isinstance(v, torch.Tensor):
        return v.detach().cpu().numpy()
    return np.asarray(v)


def _diff(q, got, ref):
    got, ref = _to_np(got), _to_np(ref)
    if q == "log_prob" and got.ndim == 0:  # hmmlearn's score: the sum over sequences
        ref = ref.sum()
    return float(np.max(np.abs(got - ref)))


def run(args) -> dict:
    torch.manual_seed(0)
    if args.threads:
        torch.set_num_threads(args.threads)
    ms, bts = (QUICK_M, QUICK_BT) if args.quick else (GRID_M, GRID_BT)
    if args.min_time is None:
        args.min_time = 0.0 if args.quick else 0.5
    if args.m:
        ms = [m for m in ms if m in args.m]
    peers = [p for p in ["hmmlearn-log", "hmmlearn-scaling", "dynamax", "dynamax-parallel", "pyro"] if p not in args.skip]
    env = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "loadavg_start": list(os.getloadavg()),
        "argv": sys.argv,
        "path_rules": "hmmtune.models.inference.use_compiled, use_time_parallel",
    }
    # a warm process: the compiled kernels are loaded before any timing (their one-off
    # setup per process, importing numba and loading the cached machine code, is timed
    # here and reported beside the grid, not charged to a cell)
    t0 = time.perf_counter()
    env["compiled_kernels"] = inference.prepare_compiled()
    env["compiled_setup_s"] = time.perf_counter() - t0
    for mod in ("hmmlearn", "jax", "dynamax", "pyro"):
        try:
            env[mod] = __import__(mod).__version__
        except Exception as exc:  # noqa: BLE001 - report, don't fail
            env[mod] = f"unavailable: {type(exc).__name__}: {exc}"
    cells = []
    smallest: dict = {}  # (impl, m, q) -> (B*T, seconds)
    order = sorted(((m, B, T) for m in ms for (B, T) in bts), key=lambda c: c[0] * c[0] * c[1] * c[2])
    for m, B, T in order:
        hmm = paper_hmm(m, 10, seed=0)
        tok = hmm.sample(B, T, seed=1)[0].numpy()
        path = "compiled" if inference.use_compiled(B, T, m) else "time-parallel" if inference.use_time_parallel(B, T, m) else "sequential"
        cell = {"m": m, "B": B, "T": T, "path": path,
                "loadavg": list(os.getloadavg()), "results": {}}
        impls = {"hmmtune": make_hmmtune(hmm, tok)}
        refs = {}
        for q in QUANTITIES:
            refs[q] = impls["hmmtune"][q]()
        for p in peers:
            try:
                if p.startswith("hmmlearn"):
                    impls[p] = make_hmmlearn(hmm, tok, p.split("-")[1])
                elif p.startswith("dynamax"):
                    impls[p] = make_dynamax(hmm, tok, p.endswith("parallel"))
                else:
                    impls[p] = make_pyro(hmm, tok)
            except Exception as exc:  # noqa: BLE001
                cell["results"].setdefault(p, {})["error"] = f"{type(exc).__name__}: {exc}"
        for q in QUANTITIES:
            res = {}
            for name, fns in impls.items():
                if q not in fns:
                    continue
                key = (name, m, q)
                if name in ("pyro", "dynamax-parallel") and B * T * m * m * 8 > args.max_scan_bytes:
                    res[name] = {"skipped": f"its parallel scan holds B*T (m, m) matrices: {B * T * m * m * 8 / 2**30:.1f} GiB > --max-scan-bytes"}
                    print(f"m={m:<4} B={B:<5} T={T:<7} {q:<17} {name:<17} skipped (memory)", flush=True)
                    continue
                if name != "hmmtune" and key in smallest:
                    bt0, s0 = smallest[key]
                    pred = s0 * (B * T) / bt0
                    if pred > args.budget:
                        res[name] = {"skipped": f"predicted {pred:.0f} s > budget {args.budget:.0f} s (time proportional to B*T from its {s0:.3g} s at B*T = {bt0}): an extrapolation, not a measurement",
                                     "predicted_s": pred}
                        continue
                try:
                    t0 = time.perf_counter()
                    out = fns[q]()
                    first = time.perf_counter() - t0
                    r = {"max_abs_diff_vs_hmmtune": _diff(q, out, refs[q]) if name != "hmmtune" else 0.0}
                    del out
                    times = [first] if (name != "hmmtune" and not name.startswith("dynamax") and first > args.long) else []
                    if not times:
                        n = args.repeats if first < args.long else 1
                        t_start = time.perf_counter()
                        # at least --repeats runs; fast calls repeat until --min-time has passed
                        # (a median of a few millisecond runs moves with every interruption)
                        while len(times) < n or (time.perf_counter() - t_start < args.min_time and len(times) < 1000):
                            t0 = time.perf_counter()
                            fns[q]()
                            times.append(time.perf_counter() - t0)
                    r["times_s"] = times
                    r["median_s"] = statistics.median(times)
                    if not args.no_memory and r["median_s"] < args.long:
                        r["peak_rss_increase_bytes"] = peak_memory(fns[q])
                    res[name] = r
                    if key not in smallest:
                        smallest[key] = (B * T, r["median_s"])
                except Exception as exc:  # noqa: BLE001
                    res[name] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
                print(f"m={m:<4} B={B:<5} T={T:<7} {q:<17} {name:<17} "
                      + (f"{res[name]['median_s'] * 1e3:10.1f} ms" if "median_s" in res[name] else str(res[name])[:90]), flush=True)
            ours = res["hmmtune"]["median_s"]
            peer_times = {k: v["median_s"] for k, v in res.items() if k != "hmmtune" and "median_s" in v}
            if peer_times:
                fastest = min(peer_times, key=peer_times.get)
                res["_summary"] = {"fastest_peer": fastest, "fastest_peer_s": peer_times[fastest],
                                   "ratio_fastest_peer_over_hmmtune": peer_times[fastest] / ours}
            cell["results"][q] = res
        cells.append(cell)
        if args.out:  # after every cell, so an interrupted run keeps what it measured
            with open(args.out, "w") as f:
                json.dump({"environment": env, "cells": cells, "summary": _summary(cells), "complete": False}, f, indent=1)
    env["loadavg_end"] = list(os.getloadavg())
    return {"environment": env, "cells": cells, "summary": _summary(cells), "complete": True}


def _summary(cells: list) -> dict:
    ratios = [c["results"][q]["_summary"]["ratio_fastest_peer_over_hmmtune"] for c in cells for q in QUANTITIES
              if "_summary" in c["results"].get(q, {})]
    summary = {"cells_with_a_peer": len(ratios), "median_ratio": statistics.median(ratios) if ratios else None,
               "min_ratio": min(ratios) if ratios else None,
               "cells_slower_than_fastest_peer": [
                   f"{q} m={c['m']} B={c['B']} T={c['T']}: {c['results'][q]['_summary']['ratio_fastest_peer_over_hmmtune']:.2f}x vs {c['results'][q]['_summary']['fastest_peer']}"
                   for c in cells for q in QUANTITIES
                   if "_summary" in c["results"].get(q, {}) and c["results"][q]["_summary"]["ratio_fastest_peer_over_hmmtune"] < 1]}
    return summary


def plot(data: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cells = data["cells"]
    fig, axes = plt.subplots(1, len(QUANTITIES), figsize=(5 * len(QUANTITIES), 4.2), sharey=True)
    for ax, q in zip(axes, QUANTITIES):
        labels = [f"m={c['m']}\n{c['B']}x{c['T']}" for c in cells]
        names = ["hmmtune", "hmmlearn-log", "hmmlearn-scaling", "dynamax", "dynamax-parallel", "pyro"]
        w = 0.8 / len(names)
        for i, name in enumerate(names):
            ys = [c["results"].get(q, {}).get(name, {}).get("median_s", np.nan) for c in cells]
            if all(np.isnan(ys)):
                continue
            ax.bar(np.arange(len(cells)) + (i - len(names) / 2) * w, ys, w, label=name)
        ax.set_yscale("log")
        ax.set_title(q)
        ax.set_xticks(np.arange(len(cells)))
        ax.set_xticklabels(labels, fontsize=6)
    axes[0].set_ylabel("median time (s), log scale")
    axes[-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _fmt(r: dict) -> str:
    if "median_s" in r:
        v = r["median_s"]
        return f"{v * 1e3:.1f} ms" if v < 10 else f"{v:.1f} s"
    if "skipped" in r:
        return "skipped (memory)" if "GiB" in r["skipped"] else f"skipped (pred. {r['predicted_s']:.0f} s)"
    return "error" if "error" in r else "-"


def markdown(data: dict) -> str:
    """The grid as a Markdown table (one row per cell and quantity)."""
    names = ["hmmlearn-log", "hmmlearn-scaling", "dynamax", "dynamax-parallel", "pyro"]
    head = ("| m | B x T | quantity | hmmtune (path) | hmmlearn log | hmmlearn scaling | dynamax | "
            "dynamax parallel | Pyro | fastest peer / hmmtune | peak MiB: hmmtune / fastest peer |")
    lines = [head, "|" + " --- |" * 11]
    for c in data["cells"]:
        for q in QUANTITIES:
            res = c["results"].get(q, {})
            ours = res.get("hmmtune", {})
            summ = res.get("_summary")
            ratio = f"**{summ['ratio_fastest_peer_over_hmmtune']:.2f}x** ({summ['fastest_peer']})" if summ else "-"

            def mib(r):
                b = r.get("peak_rss_increase_bytes")
                return "-" if b is None else f"{b / 2**20:.0f}"

            mem = f"{mib(ours)} / {mib(res.get(summ['fastest_peer'], {})) if summ else '-'}"
            path = {"time-parallel": "par", "compiled": "comp"}.get(c["path"], "seq")
            lines.append(f"| {c['m']} | {c['B']} x {c['T']} | {q} | {_fmt(ours)} ({path}) | "
                         + " | ".join(_fmt(res.get(n, {})) for n in names) + f" | {ratio} | {mem} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes: a smoke test")
    p.add_argument("--out", help="write the JSON here")
    p.add_argument("--plot", help="write the figure (PNG) here")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--min-time", type=float, default=None, help="seconds: fast calls repeat at least this long (median of all; default 0.5, 0 with --quick)")
    p.add_argument("--long", type=float, default=10.0, help="seconds: a longer run is not repeated")
    p.add_argument("--budget", type=float, default=60.0, help="seconds: skip a peer predicted to take longer")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--m", type=int, action="append", help="only these m (repeatable)")
    p.add_argument("--skip", action="append", default=[], help="peers to leave out (repeatable)")
    p.add_argument("--max-scan-bytes", type=float, default=4 * 2**30,
                   help="skip Pyro / dynamax-parallel where B*T*m*m*8 exceeds this (default 4 GiB)")
    p.add_argument("--render", metavar="JSON", help="print the Markdown table of a saved run (and --plot it) and exit")
    p.add_argument("--no-memory", action="store_true", help="do not measure peak memory")
    args = p.parse_args(argv)
    if args.render:
        with open(args.render) as f:
            saved = json.load(f)
        print(markdown(saved))
        if args.plot:
            plot(saved, args.plot)
        return None
    data = run(args)
    s = data["summary"]
    print(f"median ratio (fastest peer / hmmtune): {s['median_ratio']}; min {s['min_ratio']}")
    for line in s["cells_slower_than_fastest_peer"]:
        print("slower than the fastest peer:", line)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(data, f, indent=1)
    if args.plot:
        plot(data, args.plot)
    return data


if __name__ == "__main__":
    main()
