"""Benchmark: exact memory posteriors P(M_j | x) of a memory-augmented HMM (issue 3, item 10).

Three ways to compute the same numbers:

1. ``MemoryHMM.memory_posterior``: one batched forward pass over the N*S-state chain for all
   V^N memory configurations at once (B * V^N chains of N*S states), keeping only the
   current position's messages.
2. The flattened vanilla HMM (``MemoryHMM.to_hmm()``, V^N * N * S states, block-diagonal
   transition): one forward pass, then P(M = c | x) is the filtered law at the last
   position summed over each configuration's block. Two variants: the library's
   ``hmm_forward`` (stores every position's messages, as ``HMM.log_prob`` does), and the
   same message-free loop as (1) on the flattened chain (the like-for-like comparison).
3. Pyro: ``TraceEnum_ELBO.compute_marginals`` of the memory sites of ``MemoryHMM.model``.
   It is slow, so by default it runs on a grid of smaller batch sizes and lengths; the
   script prints every measured time, fits ``t = a B^alpha T^beta`` by least squares on
   the logs, prints the fit (coefficients, R^2, worst residual) and the full-size
   ESTIMATE it gives (not a bound: the growth in T steepens with T). ``--pyro-full``
   measures the full size directly instead (minutes).

With ``--posteriors`` it also times the smoothed posteriors P(Z_t | x) (forward-backward
with stored messages) against ``HMM.posterior`` of the flattened model.

It checks that the methods agree, then prints times and ratios.

Usage::

    python bench/bench_memory.py --json docs/figures/memory-bench-cpu.json   # N=2, V=5, S=4, T=512, B=1000
    python bench/bench_memory.py --pyro-full      # Pyro measured at the full size (minutes)
    python bench/bench_memory.py --device cuda
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from hmmtune import MemoryHMM
from hmmtune.models import inference


def random_model(N, V, S, n, seed, device):
    rng = np.random.default_rng(seed)
    K = N * S
    return MemoryHMM(
        rng.dirichlet(np.ones(V), size=N),
        rng.dirichlet(np.ones(K)),
        rng.dirichlet(np.ones(K), size=K),
        rng.dirichlet(np.ones(n) * 0.5, size=(V, S)),
        device=device,
    )


def sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def best_of(fn, repeats, device):
    times, out = [], None
    for _ in range(repeats):
        sync(device)
        t0 = time.perf_counter()
        out = fn()
        sync(device)
        times.append(time.perf_counter() - t0)
    return min(times), out


def flattened_memory_posterior(model, hmm, x, chunk):
    """P(M_j | x) from the flattened HMM: filtered law at the last position, per block."""
    N, V, K, C = model.num_cells, model.num_values, model.num_states, model.num_configurations
    outs = []
    for lo in range(0, x.shape[0], chunk):
        tok = x[lo : lo + chunk]
        fwd = inference.hmm_forward(hmm.initial, hmm.transition, hmm.likelihoods(tok))
        pc = fwd.filtered[:, -1].reshape(-1, C, K).sum(-1)  # (b, C)
        grid = pc.reshape((-1,) + (V,) * N)
        outs.append(torch.stack([grid.sum([1 + i for i in range(N) if i != j]) if N > 1 else grid for j in range(N)], 1))
    return torch.cat(outs, 0)


def flattened_streaming(model, hmm, x):
    """P(M_j | x) on the flattened chain with the same message-free loop as MemoryHMM uses."""
    N, V, K, C = model.num_cells, model.num_values, model.num_states, model.num_configurations
    B, T = x.shape
    E, A = hmm.emission.T, hmm.transition  # (n, m), (m, m)
    alpha = hmm.initial.expand(B, -1)
    for t in range(T):
        f = alpha * E[x[:, t]]
        f = f / f.sum(-1, keepdim=True)
        alpha = f @ A if t + 1 < T else f
    grid = alpha.reshape(B, C, K).sum(-1).reshape((B,) + (V,) * N)
    return torch.stack([grid.sum([1 + i for i in range(N) if i != j]) if N > 1 else grid for j in range(N)], 1)


def pyro_memory_posterior(model, x):
    import pyro
    from pyro.infer import TraceEnum_ELBO

    pyro.clear_param_store()
    marg = TraceEnum_ELBO(max_plate_nesting=1).compute_marginals(model.model, lambda tokens: None, x)
    values = torch.arange(model.num_values, device=x.device)[:, None]
    return torch.stack([marg[f"m_{j}"].log_prob(values).exp().T for j in range(model.num_cells)], 1)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cells", type=int, default=2)
    p.add_argument("--values", type=int, default=5)
    p.add_argument("--local-states", type=int, default=4)
    p.add_argument("--tokens", type=int, default=10)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--sequences", type=int, default=1000)
    p.add_argument("--pyro-batches", type=int, nargs="+", default=[2, 16, 64], help="batch sizes of the Pyro grid (at least 2)")
    p.add_argument("--pyro-lengths", type=int, nargs="+", default=[32, 64, 128], help="lengths of the Pyro grid")
    p.add_argument("--pyro-full", action="store_true", help="measure Pyro directly at the full size (minutes) instead of fitting")
    p.add_argument("--json", metavar="FILE", help="also write the figures and the Pyro fit as JSON")
    p.add_argument("--posteriors", action="store_true", help="also time smoothed posteriors P(Z_t | x)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--flat-chunk", type=int, default=100, help="sequences per chunk on the flattened path")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    N, V, S, T, B = args.cells, args.values, args.local_states, args.length, args.sequences
    model = random_model(N, V, S, args.tokens, 0, args.device)
    x = model.sample(B, T, seed=1).tokens.to(args.device)
    hmm = model.to_hmm()
    dev = torch.device(args.device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"memory HMM N={N} V={V} S={S} n={args.tokens}: V^N = {V**N} configurations, {N * S} chain states, "
          f"{hmm.num_states} flattened states; B={B} sequences of T={T}; {name}; torch {torch.__version__}")

    t_ours, ours = best_of(lambda: model.memory_posterior(x), args.repeats, args.device)
    t_flat, flat = best_of(lambda: flattened_memory_posterior(model, hmm, x, args.flat_chunk), args.repeats, args.device)
    t_fs, fs = best_of(lambda: flattened_streaming(model, hmm, x), args.repeats, args.device)
    rows = [
        ("MemoryHMM.memory_posterior", t_ours, None, ""),
        ("flattened HMM, hmm_forward", t_flat, (ours - flat).abs().max().item(), ""),
        ("flattened HMM, same loop as ours", t_fs, (ours - fs).abs().max().item(), ""),
    ]
    if args.posteriors:
        t_post, post = best_of(lambda: model.posterior(x), args.repeats, args.device)
        t_fpost, fpost = best_of(lambda: hmm.posterior(x), args.repeats, args.device)
        fz = fpost.reshape(B, T, model.num_configurations, model.num_states).sum(2)
        rows.append(("MemoryHMM.posterior P(Z_t|x)", t_post, None, ""))
        rows.append(("flattened HMM.posterior", t_fpost, (post - fz).abs().max().item(), f"  ({t_fpost / t_post:.1f} x MemoryHMM.posterior)"))

    # Pyro: measured on a grid of batch sizes and lengths, then a power law
    # t = a * B^alpha * T^beta fitted by least squares on the logs (shown), which gives the
    # full-size estimate; --pyro-full measures the full size directly instead.
    pyro = {"grid": [], "fit": None, "full_measured_s": None}
    if args.pyro_full:
        t_full, pyro_post = best_of(lambda: pyro_memory_posterior(model, x), 1, args.device)
        err_pyro = (ours - pyro_post).abs().max().item()
        pyro["full_measured_s"] = t_full
        rows.append(("Pyro TraceEnum compute_marginals", t_full, err_pyro, "  (measured directly at the full size)"))
    else:
        grid = [(b, t) for b in args.pyro_batches for t in args.pyro_lengths if b <= B and t <= T]
        for b, t in grid:
            tb, pyro_post = best_of(lambda: pyro_memory_posterior(model, x[:b, :t]), 1, args.device)
            err = (model.memory_posterior(x[:b, :t]) - pyro_post).abs().max().item()
            pyro["grid"].append({"B": b, "T": t, "seconds": tb, "max_abs_diff": err})
            print(f"  Pyro measured: B={b:5d} T={t:4d}: {tb:8.3f} s (max |diff| to ours {err:.1e})")
        lb = np.log([g["B"] for g in pyro["grid"]])
        lt = np.log([g["T"] for g in pyro["grid"]])
        ly = np.log([g["seconds"] for g in pyro["grid"]])
        X = np.stack([np.ones_like(lb), lb, lt], 1)
        coef, *_ = np.linalg.lstsq(X, ly, rcond=None)
        pred = X @ coef
        r2 = 1 - float(((ly - pred) ** 2).sum() / max(((ly - ly.mean()) ** 2).sum(), 1e-300))
        est = float(np.exp(coef[0] + coef[1] * np.log(B) + coef[2] * np.log(T)))
        pyro["fit"] = {
            "model": "t = a * B^alpha * T^beta (least squares on logs)",
            "a": float(np.exp(coef[0])),
            "alpha": float(coef[1]),
            "beta": float(coef[2]),
            "r2": r2,
            "max_rel_residual": float(np.abs(np.exp(ly - pred) - 1).max()),
            "estimate_full_s": est,
            "longest_T_measured": int(max(g["T"] for g in pyro["grid"])),
        }
        print(f"  fit: t = {np.exp(coef[0]):.3g} * B^{coef[1]:.2f} * T^{coef[2]:.2f} (R^2 {r2:.3f}, worst residual "
              f"{100 * pyro['fit']['max_rel_residual']:.0f}%): at B={B}, T={T} about {est:,.0f} s")
        err_pyro = max(g["max_abs_diff"] for g in pyro["grid"])
        rows.append(("Pyro TraceEnum compute_marginals", est, err_pyro,
                     f"  (ESTIMATE from the fitted power law, measured up to T={pyro['fit']['longest_T_measured']}: not a bound)"))

    print(f"{'method':<36}{'time (s)':>12}{'vs ours':>10}{'max |diff|':>12}")
    for label, t, err, note in rows:
        ratio = t / t_ours
        print(f"{label:<36}{t:>12.3f}{ratio:>10,.1f}{'-' if err is None else f'{err:.1e}':>12}{note}")
    if args.json:
        import json
        import os

        data = {
            "script": "bench/bench_memory.py",
            "args": vars(args),
            "device": name,
            "torch": torch.__version__,
            "loadavg": os.getloadavg(),
            "rows": [{"method": lbl, "seconds": t, "vs_ours": t / t_ours, "max_abs_diff": err, "note": note.strip()} for lbl, t, err, note in rows],
            "pyro": pyro,
        }
        with open(args.json, "w") as f:
            json.dump(data, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
