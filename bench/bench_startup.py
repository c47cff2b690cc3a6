"""Benchmark: start-up time of the ``hmmtune`` command (issue 11, item 4).

Targets on 2 cores: ``hmmtune --help`` and ``hmmtune examples`` under 0.3 s,
``hmmtune check --example full_rank`` under 1.5 s.

Each command runs ``--repeats`` times as a fresh process (``python -m hmmtune``, the same
code path as the console script), interleaved round-robin so that load changes hit every
command alike; the figures are medians of wall-clock times. Peers measured in the same run
bound what start-up can reach: a bare interpreter (``python -c pass``), the imports of a
task-free check (``import numpy, sympy, flint, networkx``: the exact entries, ranks and
the transition graph) and ``import torch``, which a check with a task adds (it samples
its evidence with the model's tensors; ``hmmtune check --example prompt`` is timed beside
it). The load average is recorded beside the figures, because other work on the machine
slows every row.

Usage::

    python bench/bench_startup.py --repeats 15 --json docs/figures/startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

TARGETS = {"hmmtune --help": 0.3, "hmmtune examples": 0.3, "hmmtune check --example full_rank": 1.5}


def commands(python: str) -> dict[str, list[str]]:
    cli = [python, "-m", "hmmtune"]
    return {
        "python -c pass (bare interpreter)": [python, "-c", "pass"],
        "hmmtune --help": cli + ["--help"],
        "hmmtune examples": cli + ["examples"],
        "python -c 'import numpy, sympy, flint, networkx' (peer: the imports of a task-free check)": [
            python,
            "-c",
            "import numpy, sympy, flint, networkx",
        ],
        "python -c 'import torch' (peer: what a check with a task adds)": [python, "-c", "import torch"],
        "hmmtune check --example full_rank": cli + ["check", "--example", "full_rank"],
        "hmmtune check --example prompt (a task: evidence sampled with torch)": cli + ["check", "--example", "prompt"],
    }


def run_once(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if proc.returncode not in (0, 1):  # check exits 1 when a condition fails
        raise RuntimeError(f"{' '.join(cmd)} failed with exit {proc.returncode}: {proc.stderr.decode()[-500:]}")
    return dt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    cmds = commands(sys.executable)
    times: dict[str, list[float]] = {k: [] for k in cmds}
    load_before = os.getloadavg()
    for cmd in cmds.values():  # warm-up: page cache, .pyc files
        run_once(cmd)
    for _ in range(args.repeats):
        for name, cmd in cmds.items():
            times[name].append(run_once(cmd))
    load_after = os.getloadavg()
    print(f"start-up, medians of {args.repeats} runs (round-robin), {os.cpu_count()} cores, "
          f"load average {load_before[0]:.1f} -> {load_after[0]:.1f}\n")
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        target = TARGETS.get(name)
        verdict = "" if target is None else f"  target < {target} s: {'met' if med < target else 'MISSED'}"
        print(f"{name:<80} {med:6.3f} s  [{min(ts):.3f} .. {max(ts):.3f}]{verdict}")
        rows.append({"command": name, "median_s": med, "min_s": min(ts), "max_s": max(ts), "times_s": ts, "target_s": target})
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "repeats": args.repeats,
                    "cpu_count": os.cpu_count(),
                    "machine": platform.processor() or platform.machine(),
                    "python": platform.python_version(),
                    "loadavg_before": load_before,
                    "loadavg_after": load_after,
                    "rows": rows,
                },
                f,
                indent=1,
            )
            f.write("\n")


if __name__ == "__main__":
    main()
