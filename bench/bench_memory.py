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
   It is slow and grows faster than linearly in T, so it runs on a subset of the sequences
   at two shorter lengths; the script prints the measured times, the growth exponent in T,
   and two extrapolations to the full size: linear in B and T (a lower bound) and
   power-law in T.

With ``--posteriors`` it also times the smoothed posteriors P(Z_t | x) (forward-backward
with stored messages) against ``HMM.posterior`` of the flattened model.

It checks that the methods agree, then prints times and ratios.

Usage::

    python bench/bench_memory.py                 # N=2, V=5, S=4, T=512, B=1000
    python bench/bench_memory.py --device cuda --pyro-sequences 20
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
    p.add_argument("--pyro-sequences", type=int, default=4, help="subset of sequences for Pyro (at least 2)")
    p.add_argument("--pyro-length", type=int, default=64, help="longest length measured for Pyro (also half of it)")
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

    Bp = max(2, min(args.pyro_sequences, B))  # Pyro's compute_marginals fails on a plate of size 1
    T2 = min(args.pyro_length, T)
    T1 = max(1, T2 // 2)
    t1, _ = best_of(lambda: pyro_memory_posterior(model, x[:Bp, :T1]), 1, args.device)
    t2, pyro_post = best_of(lambda: pyro_memory_posterior(model, x[:Bp, :T2]), 1, args.device)
    err_pyro = (model.memory_posterior(x[:Bp, :T2]) - pyro_post).abs().max().item()
    k = float(np.log(t2 / t1) / np.log(T2 / T1)) if T2 > T1 else 1.0
    linear = t2 * (B / Bp) * (T / T2)
    power = t2 * (B / Bp) * (T / T2) ** max(k, 1.0)
    rows.append(("Pyro TraceEnum compute_marginals", linear, err_pyro,
                 f"  (measured {t1:.2f} s at T={T1}, {t2:.2f} s at T={T2} on B={Bp}: time ~ T^{k:.1f}; "
                 f"linear extrapolation shown, a lower bound; power law gives {power:,.0f} s = {power / t_ours:,.0f} x ours)"
                 if (Bp, T2) != (B, T) else ""))

    print(f"{'method':<36}{'time (s)':>12}{'vs ours':>10}{'max |diff|':>12}")
    for label, t, err, note in rows:
        ratio = t / t_ours
        print(f"{label:<36}{t:>12.3f}{ratio:>10,.1f}{'-' if err is None else f'{err:.1e}':>12}{note}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
