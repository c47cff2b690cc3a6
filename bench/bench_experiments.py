"""Benchmark: the paper's two experiments in oracle mode, at full settings (issue 5, item 10).

Runs ``hmmtune reproduce exp1`` (7 sizes x 20 seeds) and ``exp2`` (4 sizes x 5 seeds) into a
fresh folder with ``--jobs`` worker processes, times each sweep (targets on 2 cores: exp1
under 10 minutes, exp2 under 5), prints the summary tables beside the published numbers,
then rebuilds the model and task of every run and prints the analysis' verdicts
(Theorems H, P, M) per size. Everything it prints is also written to ``OUT/bench.json``
and ``OUT/bench.md``.

Usage::

    python bench/bench_experiments.py --jobs 2 --out results/bench
    python bench/bench_experiments.py --quick            # the --quick settings, seconds
    python bench/bench_experiments.py --only exp1 --truncate
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

from hmmtune.experiments import run_sweep
from hmmtune.experiments.verdicts import record_verdicts


def verdict_table(experiment: str, records: list[dict]) -> tuple[str, dict]:
    by = defaultdict(list)
    for rec in records:
        by[rec["x"]].append(record_verdicts(rec))
    out = {}
    if experiment == "exp1":
        lines = [
            "| m | rank W = m | task in row space of W (Thm H) | median eps* | Thm P exact | Thm P, tau = 1e-6 |",
            "|---|---|---|---|---|---|",
        ]
    else:
        lines = [
            "| m | memory non-degenerate (Thm M) | flattened rank W = V*S | anchor rate | leave-one-out stability | vanilla control: task in row space (Thm H) |",
            "|---|---|---|---|---|---|",
        ]
    for x in sorted(by):
        vs = by[x]
        n = len(vs)
        frac = lambda key: f"{sum(bool(v[key]) for v in vs)}/{n}"
        if experiment == "exp1":
            eps = sorted(v["eps_star"] for v in vs if v["eps_star"] is not None)
            med = f"{eps[len(eps) // 2]:.1e}" if eps else "–"
            lines.append(f"| {x} | {frac('head_rank')} | {frac('head_task')} | {med} | {frac('prompt_exact')} | {frac('prompt_tau')} |")
        else:
            mean = lambda key: sum(v[key] for v in vs if v[key] is not None) / max(1, sum(v[key] is not None for v in vs))
            lines.append(
                f"| {x} | {frac('memory_nondegenerate')} | {frac('memory_flattened_rank')} | {mean('anchor_rate'):.2f} | "
                f"{mean('loo_stability'):.3f} | {frac('vanilla_head_task')} |"
            )
        out[x] = vs
    return "\n".join(lines), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="results folder (default: a fresh results/bench-<time>)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--truncate", action="store_true", help="exp1 with the authors' input truncation")
    ap.add_argument("--only", choices=["exp1", "exp2"], default=None)
    ap.add_argument("--no-verdicts", action="store_true")
    ap.add_argument("--json", metavar="FILE", help="also write the report (bench.json) to FILE, e.g. docs/figures/reproduce-bench.json")
    args = ap.parse_args()
    out = Path(args.out or f"results/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()}, "jobs": args.jobs, "loadavg_start": os.getloadavg(), "experiments": {}}
    md = [f"# Experiments benchmark\n\n{os.cpu_count()} CPUs, {args.jobs} worker processes, out: {out}\n"]
    for exp in ("exp1", "exp2"):
        if args.only and exp != args.only:
            continue
        t0 = time.perf_counter()
        res = run_sweep(exp, quick=args.quick, truncate=args.truncate and exp == "exp1", out=out, jobs=args.jobs)
        wall = time.perf_counter() - t0
        run_times = [r["elapsed_s"] for r in res.records]
        line = (
            f"{exp}: {len(res.records)} runs ({res.ran} computed, {res.resumed} resumed) in {wall:.1f} s wall; "
            f"per run {min(run_times):.2f}..{max(run_times):.2f} s, total {sum(run_times):.1f} s of run time"
        )
        print(line, flush=True)
        print(res.table, flush=True)
        md += [f"## {exp}\n", line + "\n", res.table + "\n"]
        entry = {"wall_s": wall, "runs": len(res.records), "computed": res.ran, "run_time_s": sum(run_times), "rows": [r.to_dict() for r in res.rows], "paths": res.paths}
        if not args.no_verdicts:
            t1 = time.perf_counter()
            vt, verdicts = verdict_table(exp, res.records)
            print(f"analysis verdicts ({time.perf_counter() - t1:.1f} s):\n{vt}\n", flush=True)
            md += ["Analysis verdicts for the same models and tasks:\n", vt + "\n"]
            entry["verdicts"] = {str(k): v for k, v in verdicts.items()}
        report["experiments"][exp] = entry
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=1, default=str) + "\n")
    (out / "bench.md").write_text("\n".join(md))
    report["loadavg_end"] = os.getloadavg()
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"wrote {out / 'bench.json'} and {out / 'bench.md'}")


if __name__ == "__main__":
    main()
