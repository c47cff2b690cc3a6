"""Calibrate the cost rules of exact inference: the sequential torch loop, the time-parallel
torch path and the compiled (numba) kernels (docs/inference.md, "Compiled kernels").

For a grid of (B, T, m) it times ``hmm_posterior`` (one forward and one backward pass) on
each path, forced through ``inference.COMPILED`` / ``parallel=``, with the kernels loaded
beforehand (their one-off setup is timed separately, in a fresh process), medians of
``--repeats``. It then fits the constants of each path's cost model by non-negative least
squares on relative errors:

* sequential torch: ``2 T COST_STEP + 2 B T (m^2 COST_SEQ_MAC + m COST_SEQ_ELEM)``;
* compiled, loops (m < BLAS_FROM, or one sequence): ``2 B T (m^2 COST_KERNEL_MAC + m COST_KERNEL_LOOP_ELEM) / P``
  (``P``: the threads the sequences are split over, ``inference.kernel_split``);
* compiled, BLAS (m >= BLAS_FROM and B >= 2): ``2 T COST_KERNEL_STEP + 2 B T (m^2 COST_KERNEL_BLAS_MAC + m COST_KERNEL_ELEM)``

(the time-parallel constants are not refitted here), prints the fitted values beside the
ones in ``hmmtune.models.inference``, and for every cell which path is fastest and which the
rule (with the module's constants) picks.

Usage::

    python bench/calibrate_paths.py --json docs/figures/calibrate-paths.json
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

import numpy as np
import torch
from scipy.optimize import nnls

from hmmtune.models import inference
from hmmtune.models.generators import paper_hmm

SMALL_M = [2, 4, 8, 12]
LARGE_M = [16, 32, 64, 128, 256]
SHAPES = [(1, 20000), (4, 5000), (16, 2000), (256, 128), (2048, 16)]


def timed(fn, repeats: int) -> float:
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def setup_seconds() -> float:
    """Wall time of importing numba and loading the cached kernels, in a fresh process."""
    code = (
        "import time, numpy as np; t = time.perf_counter()\n"
        "from hmmtune.models import kernels\n"
        "x = np.zeros((1, 3), np.int64); p = np.full(2, 0.5); A = np.full((2, 2), 0.5); E = np.full((2, 2), 0.5)\n"
        "kernels.smooth(x, p, A, E, False); kernels.log_prob(x, p, A, E); kernels.start_backward(x, A, E)\n"
        "print(time.perf_counter() - t)"
    )
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout) for _ in range(3)]
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    inference.prepare_compiled()
    setup = setup_seconds()
    rows = []
    load = [os.getloadavg()[0]]
    for m in SMALL_M + LARGE_M:
        hmm = paper_hmm(m, 10, seed=0)
        for B, T in SHAPES:
            x, _ = hmm.sample(B, T, seed=1)
            L = inference.TokenLikelihoods(hmm.emission, x)
            res = {"m": m, "B": B, "T": T}
            for name, comp, par in [("sequential", False, False), ("parallel", False, True), ("compiled", True, False)]:
                if name == "parallel" and (T < 64 or B * T * m * m * 8 > 2**31):
                    continue
                inference.COMPILED = comp
                res[name] = timed(lambda: inference.hmm_posterior(hmm.initial, hmm.transition, L, parallel=par), args.repeats)
            inference.COMPILED = None
            seq, par, comp = inference._estimates(B, T, m)
            res["rule"] = "compiled" if inference.use_compiled(B, T, m) else ("parallel" if inference.use_time_parallel(B, T, m) else "sequential")
            res["fastest"] = min((k for k in ("sequential", "parallel", "compiled") if k in res), key=lambda k: res[k])
            rows.append(res)
            print(f"m={m:4d} B={B:5d} T={T:6d}  " + "  ".join(f"{k} {res[k] * 1e3:9.2f}ms" for k in ("sequential", "parallel", "compiled") if k in res)
                  + f"  fastest {res['fastest']}, rule {res['rule']}", flush=True)
        load.append(os.getloadavg()[0])

    def fit(cols, key, select):
        sel = [r for r in rows if select(r)]
        X = np.array([[c(r) for c in cols] for r in sel])
        y = np.array([r[key] for r in sel])
        coef, _ = nnls(X / y[:, None], np.ones(len(y)))
        rel = X @ coef / y
        return coef.tolist(), float(np.max(np.abs(np.log(rel))))

    seq_fit = fit([lambda r: 2 * r["T"], lambda r: 2 * r["B"] * r["T"] * r["m"] ** 2, lambda r: 2 * r["B"] * r["T"] * r["m"]], "sequential", lambda r: True)
    def loops(r):
        return r["m"] < 16 or r["B"] < 2

    def split(r):
        return inference.kernel_split(r["B"], r["T"], r["m"])

    loop_fit = fit([lambda r: 2 * r["B"] * r["T"] * r["m"] ** 2 / split(r), lambda r: 2 * r["B"] * r["T"] * r["m"] / split(r)], "compiled", loops)
    blas_fit = fit([lambda r: 2 * r["T"], lambda r: 2 * r["B"] * r["T"] * r["m"] ** 2, lambda r: 2 * r["B"] * r["T"] * r["m"]], "compiled", lambda r: not loops(r))
    fitted = {
        "COST_STEP": seq_fit[0][0], "COST_SEQ_MAC": seq_fit[0][1], "COST_SEQ_ELEM": seq_fit[0][2],
        "COST_KERNEL_MAC": loop_fit[0][0], "COST_KERNEL_LOOP_ELEM": loop_fit[0][1],
        "COST_KERNEL_STEP": blas_fit[0][0], "COST_KERNEL_BLAS_MAC": blas_fit[0][1], "COST_KERNEL_ELEM (BLAS)": blas_fit[0][2],
        "COST_KERNEL_SETUP": setup,
    }
    print("\nfitted constants (module value in brackets); worst fit error as a factor:")
    for k, v in fitted.items():
        mod = getattr(inference, k.split(" ")[0], None)
        print(f"  {k:26s} {v:.3g}  [{mod}]")
    print(f"  fit error: sequential x{np.exp(seq_fit[1]):.2f}, loops x{np.exp(loop_fit[1]):.2f}, BLAS x{np.exp(blas_fit[1]):.2f}")
    agree = sum(r["rule"] == r["fastest"] for r in rows)
    regret = statistics.median(r[r["rule"]] / r[r["fastest"]] for r in rows if r["rule"] in r)
    worst = max(rows, key=lambda r: r[r["rule"]] / r[r["fastest"]] if r["rule"] in r else 0)
    print(f"rule picks the fastest path in {agree} of {len(rows)} cells; median time of its pick / fastest {regret:.2f}; "
          f"worst {worst[worst['rule']] / worst[worst['fastest']]:.2f} (m={worst['m']}, B={worst['B']}, T={worst['T']})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"rows": rows, "fitted": fitted, "fit_error_factor": {"sequential": np.exp(seq_fit[1]), "loops": np.exp(loop_fit[1]), "blas": np.exp(blas_fit[1])},
                       "rule_agrees": agree, "cells": len(rows), "load_average_1min": load, "threads": args.threads,
                       "python": platform.python_version(), "torch": torch.__version__, "cpu_count": os.cpu_count(),
                       "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}, fh, indent=1)
            fh.write("\n")


if __name__ == "__main__":
    main()
