"""Benchmark: the condition checker, ``hmmtune.analysis.check`` (issue 4, item 11).

Targets (on 2 cores):

1. the full report for m = n = 200 with exact rationals: under 10 s;
2. the same report numeric only: under 1 s;
3. the prompt search for m = 30: under 5 s.

Scenarios and what is timed (medians over ``--repeats``; every repeat starts from a freshly
loaded model, so no cached FLINT matrices carry over):

* ``exact 200``: a random HMM with m = n = 200 and exact rational entries (integer weights
  1..9 normalised; 5 successors per state, dense emission), a binary task with 6 nonzero
  integer weights (the paper's task shape). ``check(model, task)`` with the default settings
  (2000 sampled inputs of length 16): chain structure, exact rank facts of W (200 x 200),
  the exact minimum-norm head and its check, the prompt search with exact ranks, and the
  verification of both witnesses on the sample. Loading the model file (parsing 80,000
  rationals) is timed separately.
* ``exact 200, rank 150``: the same with 50 emission rows copied from others (rank W = 150),
  so the head fails and the report adds the LP certificate (all 200 inputs of length 1) with
  exact verification of the Farkas weights.
* ``numeric 200``: the first model in float64 (no exact entries). "Numeric only" is defined
  as: every condition decided in float64 (SVD rank facts, least-squares witnesses, the prompt
  search with numerical ranks) and the witnesses verified on a small sample, 200 inputs of
  length 16 (``num_inputs=200``). The default 2000 inputs are timed too.
* ``prompt 30``: ``prompt_condition`` (search, witness, verification on 2000 inputs) for
  m = 30, n = 10: (a) the paper's generator (``paper_hmm``) in tolerance mode, tau = 0.01,
  with the paper's task (M in R^{2 x m}, 6 random N(0, 1) entries), seeds 0-4; (b) random exact
  models with 3 successors per state and 2 relevant states, seeds 0-4, where the exact search
  enumerates subsets of up to 16 candidate states. "search only" is the same call with 10
  inputs of length 1 (the verification then costs nothing).

* ``large`` (issue 11, item 5): the same random model family (5 successors per state, dense
  emission, binary task with 6 nonzero weights) at m = n = 500, 1000, 2000 with exact
  rationals and at m = n = 500 .. 4000 in float64 (drawn in numpy, ``float_model_dict``), ``check(model, task)`` with the default
  settings. The model file is written to a temporary folder first; then a fresh process
  (so its peak resident memory is its own, without the file's generation) loads it (JSON
  decode + parse + exact row checks), timed on its own, and runs ``check``, once by default
  (``--large-repeats``). Wall and process CPU time are reported (CPU: the steadier figure on
  a shared machine), with the peak RSS of the process (``ru_maxrss``). Targets: exact 1000
  under 20 s, float 2000 under 5 s.

Usage::

    python bench/bench_check.py                  # the issue-4 scenarios, 2 threads
    python bench/bench_check.py --only large --exact-sizes 500 1000 2000 --float-sizes 500 1000 2000 4000 --json docs/figures/check-large.json
    python bench/bench_check.py --profile        # + cProfile top entries of each scenario
    python bench/bench_check.py --only prompt --repeats 5
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import platform
import pstats
import statistics
import time
from fractions import Fraction

import numpy as np
import torch

from hmmtune import HMM, paper_hmm
from hmmtune.analysis import check, prompt_condition
from hmmtune.models import limits
from hmmtune.io import hmm_from_json

TARGETS = {"exact 200": 10.0, "numeric 200": 1.0, "prompt 30": 5.0, "exact 1000": 20.0, "float 2000": 5.0}
SHORT = {
    "head: rank W = m": "rank",
    "head: task in row space of W": "row space",
    "head: LP certificate on concrete inputs": "LP",
    "prompt: Theorem P support": "prompt",
}


def verdicts(report) -> str:
    return ", ".join(f"{SHORT.get(c.name, c.name)}={c.holds}" for c in report.conditions if c.can_decide)


def exact_model_dict(m: int, n: int, successors: int, seed: int, rank: int | None = None) -> dict:
    """A model file (dict) with exact rational entries: integer weights 1..9, normalised."""
    rng = np.random.default_rng(seed)

    def row(c, k=None):
        w = rng.integers(1, 10, size=c)
        if k is not None:
            keep = np.zeros(c, bool)
            keep[rng.choice(c, size=k, replace=False)] = True
            w = w * keep
        s = int(w.sum())
        return [str(Fraction(int(v), s)) for v in w]

    emission = [row(n) for _ in range(m)]
    if rank is not None:  # copy rows: rank W = rank
        for h in range(rank, m):
            emission[h] = list(emission[int(rng.integers(rank))])
    return {
        "kind": "hmm",
        "format_version": 1,
        "name": f"random exact m={m} n={n}",
        "initial": row(m),
        "transition": [row(m, successors) for _ in range(m)],
        "emission": emission,
    }


def float_model_dict(m: int, n: int, successors: int, seed: int) -> dict:
    """The family of :func:`exact_model_dict` (integer weights 1..9 normalised, ``successors``
    per state, dense emission) in float64, drawn with numpy (vectorised: no per-entry
    rationals, so m = 4000 is cheap to write)."""
    rng = np.random.default_rng(seed)

    def norm(w):
        return w / w.sum(axis=-1, keepdims=True)

    trans = rng.integers(1, 10, size=(m, m)).astype(float)
    keep = np.argsort(rng.random((m, m)), axis=1)[:, :successors]
    mask = np.zeros((m, m), bool)
    np.put_along_axis(mask, keep, True, axis=1)
    return {
        "kind": "hmm",
        "format_version": 1,
        "name": f"random float m={m} n={n}",
        "initial": norm(rng.integers(1, 10, size=m).astype(float)).tolist(),
        "transition": norm(trans * mask).tolist(),
        "emission": norm(rng.integers(1, 10, size=(m, n)).astype(float)).tolist(),
    }


def int_task(m: int, nonzero: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    mu = [0] * m
    for h in rng.choice(m, size=nonzero, replace=False):
        mu[int(h)] = int(rng.choice([-5, -4, -3, -2, -1, 1, 2, 3, 4, 5]))
    return mu


def paper_task(m: int, seed: int) -> np.ndarray:
    """The paper's task: M in R^{2 x m} with 6 entries N(0, 1) at uniform positions; mu = M[1] - M[0]."""
    rng = np.random.default_rng(seed)
    M = np.zeros((2, m))
    M.flat[rng.integers(0, 2 * m, size=6)] = rng.normal(size=6)
    return M[1] - M[0]


def timed(fn, repeats: int, setup=None):
    """Medians of the wall-clock and the process CPU time of ``fn(setup())`` (setup not
    timed; one untimed warm-up run first), and the list of wall-clock times. CPU time counts every thread of the process:
    on a machine shared with other work it is the steadier figure."""
    walls, cpus, out = [], [], None
    fn(setup()) if setup else fn()  # warm-up, not timed (imports, BLAS and FLINT start-up)
    for _ in range(repeats):
        arg = setup() if setup else None
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn(arg) if setup else fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return (statistics.median(walls), statistics.median(cpus)), walls, out


def profile(fn, top: int) -> str:
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(top)
    lines = [ln for ln in s.getvalue().splitlines() if ln.strip()]
    start = next(i for i, ln in enumerate(lines) if ln.lstrip().startswith("ncalls"))
    return "\n".join(lines[start : start + top + 1])


def write_large_model(kind: str, m: int, path: str) -> tuple[dict, float]:
    """Write the size-m model file of ``kind`` ("exact" or "float") to ``path``; returns the
    task and the file size in MB."""
    import os

    task = {"mu": int_task(m, 6, seed=1)}
    if kind == "exact":
        d = exact_model_dict(m, m, 5, seed=0)
    else:  # the same family drawn in float64 directly (no exact intermediate at m = 4000)
        d = float_model_dict(m, m, 5, seed=0)
        task = {"mu": [float(v) for v in task["mu"]]}
    with open(path, "w") as f:
        json.dump(d, f)
    return task, os.path.getsize(path) / 1e6


def large_profile(model, task, top: int) -> list[dict]:
    """cProfile of one ``check``: the ``top`` hmmtune functions by cumulative time, as
    shares of the profiled total."""
    from hmmtune.analysis.linalg import clear_svd_cache

    clear_svd_cache()  # a cold check, as the timed one
    pr = cProfile.Profile()
    pr.enable()
    check(model, task)
    pr.disable()
    st = pstats.Stats(pr)
    total = max(v[3] for v in st.stats.values())
    rows = [
        {"function": f"{fn[0].split('hmmtune/')[-1]}:{fn[2]}", "cumulative_s": v[3], "share": v[3] / total}
        for fn, v in st.stats.items()
        if "/hmmtune/" in fn[0]
    ]
    return sorted(rows, key=lambda r: -r["cumulative_s"])[:top]


def large_child(kind: str, path: str, task: dict, threads: int, repeats: int, top: int = 0) -> dict:
    """One large scenario in this fresh process (so ``ru_maxrss`` is its own): time loading
    the file and ``check``, wall and process CPU."""
    import resource

    from hmmtune.analysis.linalg import clear_svd_cache

    torch.set_num_threads(threads)
    loads, checks, load_cpu, check_cpu, verdict = [], [], [], [], ""
    for _ in range(repeats):
        c0, t0 = time.process_time(), time.perf_counter()
        with limits.override(max_file_bytes=2**34, max_entries=2**31):  # large models on purpose
            model = hmm_from_json(path)
        loads.append(time.perf_counter() - t0)
        load_cpu.append(time.process_time() - c0)
        assert (model.exact is not None) == (kind == "exact")
        clear_svd_cache()  # every repeat starts cold
        c0, t0 = time.process_time(), time.perf_counter()
        rep = check(model, task)
        checks.append(time.perf_counter() - t0)
        check_cpu.append(time.process_time() - c0)
        verdict = verdicts(rep)
        del model, rep
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # kB -> GB (Linux)
    prof = None
    if top:
        with limits.override(max_file_bytes=2**34, max_entries=2**31):
            prof = large_profile(hmm_from_json(path), task, top)
    return {"profile": prof, "load_s": statistics.median(loads), "check_s": statistics.median(checks),
            "load_cpu_s": statistics.median(load_cpu), "check_cpu_s": statistics.median(check_cpu),
            "loads_s": loads, "checks_s": checks, "peak_rss_gb": peak, "verdicts": verdict, "threads": threads}


def run_large(args) -> list[dict]:
    import os
    import subprocess
    import sys
    import tempfile

    out = []
    for kind, sizes in (("exact", args.exact_sizes), ("float", args.float_sizes)):
        for m in sizes:
            with tempfile.TemporaryDirectory() as tmp:
                path = os.path.join(tmp, "model.json")
                task, size_mb = write_large_model(kind, m, path)
                with open(os.path.join(tmp, "task.json"), "w") as f:
                    json.dump(task, f)
                cmd = [sys.executable, __file__, "--large-child", kind, path, "--threads", str(args.threads), "--large-repeats", str(args.large_repeats)]
                if args.profile:
                    cmd += ["--profile", "--top", str(args.top)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{kind} {m} failed: {proc.stderr[-2000:]}")
            row = {"kind": kind, "m": m, "n": m, "file_mb": size_mb, **json.loads(proc.stdout.strip().splitlines()[-1])}
            row["loadavg"] = os.getloadavg()
            target = TARGETS.get(f"{kind} {m}")
            ok = "" if target is None else f"  target < {target:g} s: {'met' if row['check_s'] < target else 'MISSED'} (wall)"
            print(f"{kind} m = n = {m}: file {row['file_mb']:.0f} MB, load {row['load_s']:.2f} s (cpu {row['load_cpu_s']:.2f}), "
                  f"check {row['check_s']:.2f} s (cpu {row['check_cpu_s']:.2f}), "
                  f"peak RSS {row['peak_rss_gb']:.2f} GB{ok}  ({row['verdicts']})", flush=True)
            row["target_s"] = target
            for pr in row.get("profile") or []:
                print(f"    {100 * pr['share']:5.1f}%  {pr['cumulative_s']:7.2f} s  {pr['function']}")
            out.append(row)
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--exact-sizes", type=int, nargs="*", default=[500, 1000, 2000], help="large: exact m = n")
    p.add_argument("--float-sizes", type=int, nargs="*", default=[500, 1000, 2000, 4000], help="large: float64 m = n")
    p.add_argument("--large-repeats", type=int, default=1, help="large: runs per size (median)")
    p.add_argument("--large-child", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=2, help="torch threads (the targets are for 2 cores)")
    p.add_argument("--only", choices=["exact", "numeric", "prompt", "large"], action="append", help="run only these scenarios (default: all but large)")
    p.add_argument("--profile", action="store_true", help="print cProfile top entries of each scenario")
    p.add_argument("--top", type=int, default=18, help="profile entries shown")
    p.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = p.parse_args(argv)
    if args.large_child:
        import os

        kind, path = args.large_child
        with open(os.path.join(os.path.dirname(path), "task.json")) as f:
            task = json.load(f)
        print(json.dumps(large_child(kind, path, task, args.threads, args.large_repeats, args.top if args.profile else 0)))
        return
    torch.set_num_threads(args.threads)
    only = set(args.only or ["exact", "numeric", "prompt"])
    print(f"hmmtune check benchmark: {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, medians of {args.repeats} repeats\n")
    rows, profiles = [], {}

    def report(name, med, times, note="", target=None):
        wall, cpu = med
        ok = "" if target is None else ("  target < %g s: %s" % (target, "met" if wall < target else "MISSED"))
        spread = f"[{min(times):.2f} .. {max(times):.2f}]"
        print(f"{name}\n    wall {wall:7.3f} s {spread}  cpu {cpu:7.3f} s{ok}  {note}")
        rows.append({"scenario": name, "wall_s": wall, "cpu_s": cpu, "walls_s": times, "target_s": target, "note": note})

    d200 = exact_model_dict(200, 200, 5, seed=0)
    mu200 = int_task(200, 6, seed=1)
    task200 = {"mu": mu200}

    if "exact" in only:
        med, times, model = timed(lambda: hmm_from_json(d200), args.repeats)
        report("exact 200: load the model file (80,000 rationals)", med, times)
        med, times, rep = timed(lambda mdl: check(mdl, task200), args.repeats, setup=lambda: hmm_from_json(d200))
        report("exact 200: check(model, task), exact rationals", med, times, verdicts(rep), TARGETS["exact 200"])
        if args.profile:
            mdl = hmm_from_json(d200)
            profiles["exact 200"] = profile(lambda: check(mdl, task200), args.top)
        dlow = exact_model_dict(200, 200, 5, seed=0, rank=150)
        med, times, rep = timed(lambda mdl: check(mdl, task200), args.repeats, setup=lambda: hmm_from_json(dlow))
        report("exact 200, rank W = 150: check (adds the LP certificate)", med, times, verdicts(rep))
        if args.profile:
            mdl = hmm_from_json(dlow)
            profiles["exact 200, rank 150"] = profile(lambda: check(mdl, task200), args.top)

    if "numeric" in only:
        ex = hmm_from_json(d200)
        mk = lambda: HMM(ex.initial.clone(), ex.transition.clone(), ex.emission.clone())
        muf = np.array(mu200, dtype=float)
        med, times, rep = timed(lambda mdl: check(mdl, muf, num_inputs=200), args.repeats, setup=mk)
        assert all("numerical" in c.method or "graph" in c.method for c in rep.conditions)
        report("numeric 200: check(model, task, num_inputs=200), float64", med, times, verdicts(rep), TARGETS["numeric 200"])
        med, times, rep = timed(lambda mdl: check(mdl, muf), args.repeats, setup=mk)
        report("numeric 200: check with the default 2000 inputs", med, times)
        if args.profile:
            mdl = mk()
            profiles["numeric 200"] = profile(lambda: check(mdl, muf, num_inputs=200), args.top)

    if "prompt" in only:
        for label, make, kw in (
            ("paper_hmm(30, 10), tau = 0.01", lambda s: (paper_hmm(30, 10, seed=s), paper_task(30, s)), {"tau": 0.01}),
            (
                "random exact m = 30, n = 10",
                lambda s: (hmm_from_json(exact_model_dict(30, 10, 3, seed=100 + s)), {"mu": int_task(30, 2, seed=200 + s)}),
                {},
            ),
        ):
            for what, extra in (("search + verification (2000 inputs)", {}), ("search only", {"num_inputs": 10, "length": 1})):
                meds, outs = [], []
                for s in range(5):
                    model, task = make(s)
                    med, times, c = timed(lambda: prompt_condition(model, task, **kw, **extra), args.repeats)
                    meds.append(med)
                    outs.append((c.holds, c.witness.get("prompt_length"), len(c.witness.get("support") or []), c.method))
                found = sum(1 for o in outs if o[1])
                note = f"support found for {found}/5 seeds; holds for {sum(1 for o in outs if o[0])}/5"
                worst = max(meds)
                report(f"prompt 30: {label}: {what}, worst of 5 seeds", worst, [w for w, _ in meds], note, TARGETS["prompt 30"])
        if args.profile:
            model, task = paper_hmm(30, 10, seed=0), paper_task(30, 0)
            profiles["prompt 30 (paper, tau=0.01)"] = profile(lambda: prompt_condition(model, task, tau=0.01), args.top)

    large = run_large(args) if "large" in only else []

    if args.profile:
        for name, text in profiles.items():
            print(f"\n--- cProfile, {name} (cumulative) ---\n{text}")
    if args.json:
        with open(args.json, "w") as f:
            import os

            json.dump({"threads": torch.get_num_threads(), "repeats": args.repeats, "loadavg": os.getloadavg(), "rows": rows, "large": large}, f, indent=1)


if __name__ == "__main__":
    main()
