"""Issue 10 (one clean house): inference speed before and after the refactor, measured in
the same run.

Runs the same cases with two source trees of hmmtune (``--base``: a copy of the tree
before the change; ``--new``: this tree), alternating the trees (and which goes first) in
fresh subprocesses, one torch thread each; each subprocess times :data:`CALLS` calls after a
warm-up and reports their median. Prints the median over subprocesses and the ratio
new / base (below 1: faster).
Cases: ``HMM.posterior`` / the leave-one-out posterior / ``log_prob`` at m = 32 on
(400, 256) and m = 8 on (1, 100000); the memory HMM oracle of experiment 2
(``paper_memory_hmm(4)``, 900 inputs of 64 tokens): ``mask_prediction`` (encode),
``token_predictions`` and ``memory_posterior``; the condition check (load the bundled
``prompt`` example and ``analysis.check`` it, in process) and the whole command
``hmmtune check --example full_rank`` as a fresh process (start-up included). With ``--huge-pages`` it also times
``HMM.posterior`` on (2000, 256, 32) in the new tree with the huge-pages setting off and
on (``hmmtune.models.settings``).

Usage (the base tree is the commit before issue 10, a4e0bae, unpacked outside the repository):
    mkdir -p /tmp/base && git archive a4e0bae | tar -x -C /tmp/base
    python bench/bench_refactor.py --base /tmp/base --new . --repeats 4 --huge-pages --out docs/figures/bench_refactor.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

#: timed calls per subprocess (after one warm-up call); the subprocess reports their median
CALLS = 5

CASES = [
    "hmm_m32_400x256_posterior",
    "hmm_m32_400x256_loo",
    "hmm_m32_400x256_log_prob",
    "hmm_m8_1x100000_posterior",
    "hmm_m8_1x100000_loo",
    "hmm_m8_1x100000_log_prob",
    "memory_exp2_mask_prediction",
    "memory_exp2_token_predictions",
    "memory_exp2_memory_posterior",
    "check_example_prompt",
    "cli_check_full_rank",
]


def _child(case: str, huge: str | None) -> float:
    """Time one case once in this process (after a warm-up call); returns seconds."""
    import torch

    torch.set_num_threads(1)
    import hmmtune

    if case.startswith("hmm_"):
        _, m, shape, what = case.split("_", 3)
        m = int(m[1:])
        B, T = (int(v) for v in shape.split("x"))
        hmm = hmmtune.dirichlet_hmm(m, 16, seed=0)
        x = hmm.sample(B, T, seed=1)[0]
        loo = getattr(hmm, "loo_posterior", None) or hmm.masked_posterior
        fn = {"posterior": hmm.posterior, "loo": loo, "log_prob": hmm.log_prob}[what]
        run = lambda: fn(x)
    elif case == "check_example_prompt":
        from hmmtune.analysis import check
        from hmmtune.examples import example_path

        try:
            from hmmtune.io import load_model
        except ImportError:  # the tree before issue 10
            from hmmtune.models.io import load_model
        path = example_path("prompt")
        run = lambda: check(load_model(path))  # a fresh model each call: no cache carries over
    elif case.startswith("memory_"):
        what = case.split("_", 2)[2]
        model = hmmtune.paper_memory_hmm(4, seed=0)
        oracle = hmmtune.OracleMLM(model)
        x = model.sample(900, 64, seed=1).tokens
        run = lambda: getattr(oracle, what)(x)
    else:  # huge pages
        from hmmtune.models import settings

        hmm = hmmtune.dirichlet_hmm(32, 16, seed=0)
        x = hmm.sample(2000, 256, seed=1)[0]

        def run():
            with settings.override(huge_pages=huge == "on"):
                return hmm.posterior(x)

    run()
    times = []
    for _ in range(CALLS):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _measure(tree: str, case: str, huge: str | None = None) -> float:
    env = dict(os.environ, PYTHONPATH=os.path.abspath(tree), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    if case == "cli_check_full_rank":  # wall time of the command, start-up included
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "hmmtune", "check", "--example", "full_rank"], env=env, capture_output=True, cwd="/tmp")
        return time.perf_counter() - t0
    cmd = [sys.executable, "-c", f"import sys; sys.path.insert(0, {os.path.abspath(tree)!r}); "
           f"import bench_refactor as c; print(c._child({case!r}, {huge!r}))"]
    env["PYTHONPATH"] = os.path.abspath(tree) + os.pathsep + os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True, cwd="/tmp")
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="source tree before the change")
    ap.add_argument("--new", default=".", help="source tree after the change")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--case", action="append", help="only these cases (repeatable)")
    ap.add_argument("--huge-pages", action="store_true", help="also time the huge-pages setting")
    ap.add_argument("--out", help="write the JSON here")
    args = ap.parse_args()
    cases = args.case or CASES
    rows = []
    load_before = os.getloadavg()
    for case in cases:
        times = {"base": [], "new": []}
        for r in range(args.repeats):
            order = (("base", args.base), ("new", args.new))
            for label, tree in order if r % 2 == 0 else order[::-1]:  # alternate which tree runs first
                times[label].append(_measure(tree, case))
        b, n = statistics.median(times["base"]), statistics.median(times["new"])
        rows.append({"case": case, "base_s": b, "new_s": n, "ratio": n / b, "times": times})
        print(f"{case:34s} base {b * 1e3:9.1f} ms   new {n * 1e3:9.1f} ms   new/base {n / b:5.2f}", flush=True)
    huge = None
    if args.huge_pages:
        times = {"off": [], "on": []}
        for r in range(args.repeats):
            for label in ("off", "on") if r % 2 == 0 else ("on", "off"):
                times[label].append(_measure(args.new, "huge_pages", label))
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        huge = {"case": "HMM.posterior (2000, 256), m = 32", "off_s": off, "on_s": on, "ratio_on_off": on / off, "times": times}
        print(f"huge pages: off {off * 1e3:.1f} ms  on {on * 1e3:.1f} ms  on/off {on / off:.2f}", flush=True)
    result = {
        "command": "python bench/bench_refactor.py " + " ".join(sys.argv[1:]),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "torch_threads": 1,
        "calls_per_subprocess": CALLS,
        "rows": rows,
        "huge_pages": huge,
    }
    print(f"load average before {load_before}, after {result['loadavg_after']}")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
