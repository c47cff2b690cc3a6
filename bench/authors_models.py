"""Experiment 1 on the authors' own HMMs and tasks beside ours (docs/reproducing.md).

Two parts, for our draws of the paper's random HMMs (``models="paper"``) and the authors'
own (``paper_hmm(..., source="authors")``, their seeds 1..20, their task retries):

1. **without training**, every seed at the paper's sizes (T = 128, 6500 inputs; or, with
   ``--part1-sizes given``, the sizes of part 2): the
   analysis' verdicts (Theorem H, Theorem P exactly and with tau = 1e-6) and how many labels
   the authors' convention ``transmat @ P(H_1 | x)`` flips against the exact ``P(H_0 | x)``
   (and the largest TV between the two posteriors);
2. **accuracies**: the oracle-mode experiment 1 (head and prompt tuning) on
   ``--train-seeds`` seeds at the sizes given (``--length``, ``--num-train``...).

    python bench/authors_models.py --seeds 20 --train-seeds 20 --jobs 2 --out docs/figures/authors-models.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

from hmmtune.experiments import exp1, run_sweep, store
from hmmtune.experiments.verdicts import record_verdicts
from hmmtune.tuning.tasks import authors_label_posterior


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20, help="seeds of part 1 (verdicts, label flips; no training)")
    ap.add_argument("--train-seeds", type=int, default=20, help="seeds of part 2 (accuracies)")
    ap.add_argument("--states", default="4,8,10,12,15,25,30")
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--num-train", type=int, default=5000)
    ap.add_argument("--num-val", type=int, default=500)
    ap.add_argument("--num-test", type=int, default=1000)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--part1-sizes", choices=["paper", "given"], default="paper", help="inputs of part 1: the paper's (T = 128, 6500) or the sizes given")
    ap.add_argument("--results", default="results/authors-bench", help="records folder (resumable)")
    ap.add_argument("--out", default="docs/figures/authors-models.json")
    args = ap.parse_args(argv)
    states = tuple(int(s) for s in args.states.split(","))
    sizes = dict(length=args.length, num_train=args.num_train, num_val=args.num_val, num_test=args.num_test, max_iter=args.max_iter)
    t0 = time.time()
    full = exp1.Exp1Config(4, **sizes) if args.part1_sizes == "given" else exp1.Exp1Config(4)
    part1 = {}
    for models in ("paper", "authors"):
        for m in states:
            for seed in range(args.seeds):
                cfg = exp1.Exp1Config(m, length=full.length, num_train=full.num_train, num_val=full.num_val, num_test=full.num_test, models=models)
                setup = exp1.build(cfg, seed)
                auth = authors_label_posterior(setup.model, setup.tokens)
                flips = float((setup.task.labels(auth) != setup.labels).double().mean())
                tv = float(0.5 * (auth - setup.posterior).abs().sum(-1).max())
                rec = {"experiment": "exp1", "config": cfg.to_dict(), "seed": seed, "results": {"task": {"weights": setup.task.weights.tolist()}}}
                v = record_verdicts(rec)
                part1.setdefault((models, m), []).append({"flips": flips, "tv": tv, "redraw": int(setup.task.redraw), **v})
        print(f"{models}: verdicts and flips done, {time.time() - t0:.0f} s", file=sys.stderr)
    by = {}
    for models in ("paper", "authors"):
        cfgs = exp1.configs(states=states, models=models, **sizes)
        res = run_sweep("exp1", configs=cfgs, seeds=args.train_seeds, out=str(Path(args.results) / models), jobs=args.jobs, plot=False)
        for rec in res.records:
            by.setdefault((models, rec["x"]), []).append(rec)
        print(f"{models}: {res.ran} runs, {res.elapsed_s:.0f} s", file=sys.stderr)
    rows = []
    for m in states:
        row = {"m": m}
        for models in ("paper", "authors"):
            items = by[(models, m)]
            acc = lambda k: [100 * r["results"][k]["test"] for r in items]
            p1 = part1[(models, m)]
            frac = lambda k: float(np.mean([bool(v[k]) for v in p1]))
            eps = [v["eps_star"] for v in p1 if v["eps_star"] is not None]
            flips = [v["flips"] for v in p1]
            row[models] = {
                "head": float(np.mean(acc("head"))),
                "head_std": float(np.std(acc("head"), ddof=1)) if len(items) > 1 else None,
                "prompt": float(np.mean(acc("prompt"))),
                "prompt_std": float(np.std(acc("prompt"), ddof=1)) if len(items) > 1 else None,
                "train_seeds": len(items),
                "head_rank_holds": frac("head_rank"),
                "head_task_holds": frac("head_task"),
                "prompt_exact_holds": frac("prompt_exact"),
                "prompt_tau_holds": frac("prompt_tau"),
                "eps_star_median": float(np.median(eps)) if eps else None,
                "convention_flips_mean": float(np.mean(flips)),
                "convention_flips_max": float(np.max(flips)),
                "runs_with_flips": int(sum(f > 0 for f in flips)),
                "convention_tv_max": float(max(v["tv"] for v in p1)),
                "task_redraws": [v["redraw"] for v in p1],
                "seeds": len(p1),
            }
        rows.append(row)
    out = {
        "command": "python bench/authors_models.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "sizes": sizes,
        "seeds": args.seeds,
        "train_seeds": args.train_seeds,
        "rows": rows,
        "published": exp1.PUBLISHED,
        "elapsed_s": round(time.time() - t0, 1),
        "loadavg": list(os.getloadavg()),
        "environment": store.environment(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")
    for row in rows:
        a, p = row["authors"], row["paper"]
        print(
            f"m={row['m']:2d}  ours: head {p['head']:.1f} prompt {p['prompt']:.1f} H {p['head_task_holds']:.2f} P {p['prompt_exact_holds']:.2f} | "
            f"authors: head {a['head']:.1f} prompt {a['prompt']:.1f} H {a['head_task_holds']:.2f} P {a['prompt_exact_holds']:.2f} "
            f"flips mean {a['convention_flips_mean']:.2e} max {a['convention_flips_max']:.2e} ({a['runs_with_flips']} runs), TV max {a['convention_tv_max']:.2e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
