"""Benchmark: the same workloads on two source trees, side by side (issue 10: "no slowdown").

A refactor must not make anything slower. This script times a fixed set of workloads, each
through the public API that both trees offer, once per tree per round, in fresh
processes (``PYTHONPATH=<tree>``), alternating the trees round by round so that load
changes on the machine hit both alike. Each in-process workload warms up once and reports
the median of its own repeats; the script prints, per workload, the median over rounds for
each tree and the ratio ``after / before`` (below 1: the second tree is faster).

Workloads (float64, 2 torch threads):

* ``posterior m32 400x256``: ``HMM.posterior`` on many short sequences;
* ``posterior m8 1x100000``: one long sequence (the time-parallel path);
* ``log_prob m64 4x20000``;
* ``masked posterior m32 400x256``: leave-one-out posteriors;
* ``oracle mask_prediction m32 2000x64``: encode + the mask's prediction;
* ``memory posterior V5 S4 1000x512``: the memory HMM's exact memory posterior;
* ``memory oracle 500x128``: the memory oracle's mask prediction;
* ``check example prompt``: load the bundled example and ``analysis.check`` it, in process;
* ``cli check full_rank``: the whole command as a fresh process (start-up included).

Usage::

    python bench/bench_trees.py BEFORE_TREE AFTER_TREE --rounds 5 --json docs/figures/refactor-bench.json
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
import warnings

PRELUDE = """
import json, statistics, sys, time, warnings
warnings.simplefilter("ignore")
import torch
torch.set_num_threads(2)
def timed(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    print(json.dumps(statistics.median(ts)))
"""

WORKLOADS = {
    "posterior m32 400x256": """
from hmmtune.models.generators import paper_hmm
h = paper_hmm(32, seed=0); x, _ = h.sample(400, 256, seed=1)
timed(lambda: h.posterior(x), 5)
""",
    "posterior m8 1x100000": """
from hmmtune.models.generators import paper_hmm
h = paper_hmm(8, seed=0); x, _ = h.sample(1, 100000, seed=1)
timed(lambda: h.posterior(x), 3)
""",
    "log_prob m64 4x20000": """
from hmmtune.models.generators import paper_hmm
h = paper_hmm(64, seed=0); x, _ = h.sample(4, 20000, seed=1)
timed(lambda: h.log_prob(x), 3)
""",
    "masked posterior m32 400x256": """
from hmmtune.models.generators import paper_hmm
h = paper_hmm(32, seed=0); x, _ = h.sample(400, 256, seed=1)
f = getattr(h, "loo_posterior", None) or h.masked_posterior
timed(lambda: f(x), 5)
""",
    "oracle mask_prediction m32 2000x64": """
from hmmtune.models.generators import paper_hmm
from hmmtune.oracle import OracleMLM
h = paper_hmm(32, seed=0); x, _ = h.sample(2000, 64, seed=1); o = OracleMLM(h)
timed(lambda: o.mask_prediction(x), 5)
""",
    "memory posterior V5 S4 1000x512": """
from hmmtune.models.generators import paper_memory_hmm
h = paper_memory_hmm(5, seed=0); s = h.sample(1000, 512, seed=1)
timed(lambda: h.memory_posterior(s.tokens), 3)
""",
    "memory oracle 500x128": """
from hmmtune.models.generators import paper_memory_hmm
from hmmtune.oracle import OracleMLM
h = paper_memory_hmm(5, seed=0); s = h.sample(500, 128, seed=1); o = OracleMLM(h)
timed(lambda: o.mask_prediction(s.tokens), 5)
""",
    "check example prompt": """
from hmmtune.examples import example_path
from hmmtune.analysis import check
try:
    from hmmtune.io import load_model
except ImportError:
    from hmmtune.models.io import load_model
path = example_path("prompt")
timed(lambda: check(load_model(path)), 3)  # a fresh model each time: no cache carries over
""",
}


def run_workload(tree: str, name: str) -> float:
    env = dict(os.environ, PYTHONPATH=tree, OMP_NUM_THREADS="2", MKL_NUM_THREADS="2")
    if name == "cli check full_rank":
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hmmtune", "check", "--example", "full_rank"], env=env, cwd=tree, capture_output=True)
        return time.perf_counter() - t
    out = subprocess.run([sys.executable, "-c", PRELUDE + WORKLOADS[name]], env=env, cwd=tree, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{name} on {tree} failed:\n{out.stderr[-2000:]}")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("before", help="source tree (a folder holding the hmmtune package) measured first")
    p.add_argument("after", help="source tree measured second")
    p.add_argument("--rounds", type=int, default=5, help="rounds; each runs every workload once per tree")
    p.add_argument("--only", nargs="*", help="workload names (default: all)")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args()
    names = args.only or [*WORKLOADS, "cli check full_rank"]
    trees = [os.path.abspath(args.before), os.path.abspath(args.after)]
    times: dict[str, list[list[float]]] = {n: [[], []] for n in names}
    load = [os.getloadavg()[0]]
    for r in range(args.rounds):
        for n in names:
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for i in order:
                times[n][i].append(run_workload(trees[i], n))
        load.append(os.getloadavg()[0])
        print(f"round {r + 1}/{args.rounds} done (load {load[-1]:.2f})", file=sys.stderr)
    rows = []
    print(f"{'workload':40s} {'before':>10s} {'after':>10s} {'after/before':>13s}")
    for n in names:
        b, a = statistics.median(times[n][0]), statistics.median(times[n][1])
        rows.append({"workload": n, "before_s": b, "after_s": a, "ratio": a / b, "before_all": times[n][0], "after_all": times[n][1]})
        print(f"{n:40s} {b * 1e3:9.1f}ms {a * 1e3:9.1f}ms {a / b:13.2f}")
    ratios = [r["ratio"] for r in rows]
    print(f"median ratio {statistics.median(ratios):.2f}, worst {max(ratios):.2f} ({rows[ratios.index(max(ratios))]['workload']})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"trees": trees, "rounds": args.rounds, "rows": rows, "load_average_1min": load,
                       "python": platform.python_version(), "cpu_count": os.cpu_count(),
                       "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    warnings.simplefilter("ignore")
    main()
