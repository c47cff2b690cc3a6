"""Benchmark: the Ray executor against ``--jobs`` on one machine (issue 13, item 5).

Runs experiment 1 in oracle mode (``--quick`` sizes by default: 7 sizes x 3 seeds = 21
runs; ``--full`` for the paper's 7 x 20) into fresh folders, alternately with

- ``local``: the local executor with ``--jobs J`` spawned worker processes;
- ``ray-cold``: ``--executor ray`` as the CLI runs it: it starts a local Ray instance
  with J CPUs, runs one task per run, and shuts Ray down (start-up included);
- ``ray-warm``: the same on a Ray instance started before the clock starts (a cluster
  that is already up).

It reports medians over ``--repeats`` of the wall time, the sum of the runs' own times,
the ratio to ``local`` and the overhead per run ``(wall - wall_local) / runs``, checks
that every executor's records equal the local ones (results, bit for bit), and writes
everything with the load average to ``--json``.

Usage::

    python bench/bench_executors.py --jobs 2 --repeats 3 --json docs/figures/executors-exp1-oracle.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from hmmtune.experiments import exp1, run_sweep


def once(kind: str, jobs: int, quick: bool, work: Path) -> dict:
    out = work / f"{kind}-{time.monotonic_ns()}"
    import ray

    if kind == "ray-warm":
        ray.init(num_cpus=jobs, include_dashboard=False, logging_level="ERROR")
    try:
        t0 = time.perf_counter()
        res = run_sweep(
            "exp1",
            quick=quick,
            out=out,
            jobs=jobs,
            executor="local" if kind == "local" else "ray",
            plot=False,
        )
        wall = time.perf_counter() - t0
    finally:
        if kind == "ray-warm":
            ray.shutdown()
    results = [r["results"] for r in res.records]
    shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "run_time_s": res.run_time_s, "runs": res.ran, "results": results}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--full", action="store_true", help="the paper's exp1 (140 runs) instead of --quick (21)")
    ap.add_argument("--json", default="docs/figures/executors-exp1-oracle.json")
    args = ap.parse_args()
    kinds = ["local", "ray-cold", "ray-warm"]
    work = Path(tempfile.mkdtemp(prefix="bench-executors-"))
    load_before = os.getloadavg()
    samples: dict[str, list[dict]] = {k: [] for k in kinds}
    try:
        for rep in range(args.repeats):
            for kind in kinds:  # interleaved, so a change of machine load hits all alike
                s = once(kind, args.jobs, not args.full, work)
                samples[kind].append(s)
                print(f"repeat {rep + 1}: {kind:9s} wall {s['wall_s']:7.2f} s, runs took {s['run_time_s']:7.2f} s", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ref = samples["local"][0]["results"]
    identical = all(s["results"] == ref for k in kinds for s in samples[k])
    med = {k: statistics.median(s["wall_s"] for s in samples[k]) for k in kinds}
    runs = samples["local"][0]["runs"]
    rows = {}
    for k in kinds:
        rows[k] = {
            "wall_s_median": round(med[k], 3),
            "wall_s": [round(s["wall_s"], 3) for s in samples[k]],
            "run_time_s_median": round(statistics.median(s["run_time_s"] for s in samples[k]), 3),
            "ratio_to_local": round(med[k] / med["local"], 3),
            "overhead_per_run_s": round((med[k] - med["local"]) / runs, 3),
        }
    report = {
        "benchmark": "exp1 oracle sweep: Ray executor vs local --jobs",
        "command": f"python bench/bench_executors.py --jobs {args.jobs} --repeats {args.repeats}"
        + (" --full" if args.full else "")
        + f" --json {args.json}",
        "settings": {"quick": not args.full, "jobs": args.jobs, "runs": runs, "repeats": args.repeats},
        "results_identical_across_executors": identical,
        "executors": rows,
        "targets": {"ratio_to_local_max": 1.3, "overhead_per_run_s_max": 0.5},
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
    }
    try:
        import ray

        report["ray"] = ray.__version__
    except ImportError:
        pass
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print(f"\n{runs} runs, jobs {args.jobs}, median of {args.repeats}; load average {report['loadavg_before']} -> {report['loadavg_after']}")
    print("| executor | wall (s) | runs' own time (s) | ratio to local | overhead per run (s) |")
    print("|---|---|---|---|---|")
    for k in kinds:
        r = rows[k]
        print(f"| {k} | {r['wall_s_median']:.1f} | {r['run_time_s_median']:.1f} | {r['ratio_to_local']:.2f} | {r['overhead_per_run_s']:+.2f} |")
    print(f"records identical across executors: {identical}")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
