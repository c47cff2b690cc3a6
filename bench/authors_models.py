"""Experiment 1 on the authors' own HMMs and tasks beside ours (docs/reproducing.md).

For every m and seed: the oracle-mode experiment 1 (head and prompt tuning) on our draws of
the paper's random HMMs (``models="paper"``) and on the authors' own
(``paper_hmm(..., source="authors")``, their seeds 1..20, their task retries), the
analysis' verdicts (Theorem H, Theorem P exactly and with tau = 1e-6) for each, and how
many labels the authors' convention ``transmat @ P(H_1 | x)`` flips against the exact
``P(H_0 | x)`` on all the run's inputs (train + validation + test).

    python bench/authors_models.py --seeds 20 --jobs 2 --out docs/figures/authors-models.json

``--length``/``--num-train``/... shrink the splits (the defaults are the paper's).
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


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--states", default="4,8,10,12,15,25,30")
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--num-train", type=int, default=5000)
    ap.add_argument("--num-val", type=int, default=500)
    ap.add_argument("--num-test", type=int, default=1000)
    ap.add_argument("--max-iter", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--results", default="results/authors-bench", help="records folder (resumable)")
    ap.add_argument("--out", default="docs/figures/authors-models.json")
    args = ap.parse_args(argv)
    states = tuple(int(s) for s in args.states.split(","))
    sizes = dict(length=args.length, num_train=args.num_train, num_val=args.num_val, num_test=args.num_test, max_iter=args.max_iter)
    t0 = time.time()
    by = {}
    for models in ("paper", "authors"):
        cfgs = exp1.configs(states=states, models=models, **sizes)
        res = run_sweep("exp1", configs=cfgs, seeds=args.seeds, out=str(Path(args.results) / models), jobs=args.jobs, plot=False)
        for rec in res.records:
            v = record_verdicts(rec)
            by.setdefault((models, rec["x"]), []).append((rec, v))
        print(f"{models}: {res.ran} runs, {res.elapsed_s:.0f} s", file=sys.stderr)
    rows = []
    for m in states:
        row = {"m": m}
        for models in ("paper", "authors"):
            items = by[(models, m)]
            acc = lambda k: [100 * r["results"][k]["test"] for r, _ in items]
            flips = [r["results"]["task"]["authors_convention_flips"] for r, _ in items]
            frac = lambda k: float(np.mean([bool(v[k]) for _, v in items]))
            eps = [v["eps_star"] for _, v in items if v["eps_star"] is not None]
            row[models] = {
                "head": float(np.mean(acc("head"))),
                "head_std": float(np.std(acc("head"), ddof=1)) if len(items) > 1 else None,
                "prompt": float(np.mean(acc("prompt"))),
                "prompt_std": float(np.std(acc("prompt"), ddof=1)) if len(items) > 1 else None,
                "head_task_holds": frac("head_task"),
                "prompt_exact_holds": frac("prompt_exact"),
                "prompt_tau_holds": frac("prompt_tau"),
                "eps_star_median": float(np.median(eps)) if eps else None,
                "convention_flips_mean": float(np.mean(flips)),
                "convention_flips_max": float(np.max(flips)),
                "runs_with_flips": int(sum(f > 0 for f in flips)),
                "convention_tv_max": float(max(r["results"]["task"]["authors_convention_tv_max"] for r, _ in items)),
                "task_redraws": [int(r["results"]["task"]["redraw"]) for r, _ in items],
                "seeds": len(items),
            }
        rows.append(row)
    out = {
        "command": "python bench/authors_models.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "sizes": sizes,
        "seeds": args.seeds,
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
