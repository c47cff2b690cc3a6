"""Benchmark of the safety checks of issue 9 (docs/errors.md).

Measures, in one run:

1. memory of a sweep's plan per seed (``tracemalloc`` peak over ``experiments.sweep.plan``),
   the figure behind ``hmmtune reproduce``'s ``--seeds`` estimate;
2. parsing one exact entry: ``sympy.Rational(text)`` (the old reader) against
   ``parse_expression`` on plain ``"p/q"`` (fast path) and on an expression (full grammar),
   medians over ``--repeats``, with the ratios;
3. how long the issue's absurd inputs take to be refused: a 50 MB file of zeros, JSON nested
   100,000 deep, ``check --num-inputs 1000000000``, ``sample -n 100000 -T 100000``.

Usage: ``python bench/bench_limits.py [--repeats 5] [--out docs/figures/errors-limits.json]``
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
import tracemalloc
from pathlib import Path

import sympy


def plan_bytes_per_seed(seeds: int = 200) -> dict:
    from hmmtune.experiments import sweep

    out = {}
    for exp in ("exp1", "exp2"):
        configs = sweep.get_recipe(exp).plan(quick=False, truncate=False)
        tracemalloc.start()
        sweep.plan(exp, configs, list(range(seeds)), tempfile.mkdtemp())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[exp] = {"configs": len(configs), "seeds": seeds, "peak_bytes_per_seed": peak / seeds}
    return out


def parse_speed(repeats: int, n: int = 20000) -> dict:
    from hmmtune.io.expr import parse_expression

    a = sympy.Symbol("a", real=True)
    plain = [f"{i % 9 + 1}/{i % 13 + 17}" for i in range(n)]
    expr = [f"{i % 9 + 1}/{i % 13 + 17} - a/2" for i in range(n)]
    cases = {
        "sympy.Rational, plain": (sympy.Rational, plain),
        "parse_expression, plain": (parse_expression, plain),
        "parse_expression, expression": (lambda t: parse_expression(t, {"a": a}), expr),
    }
    out = {}
    for name, (fn, texts) in cases.items():
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            for text in texts:
                fn(text)
            times.append((time.perf_counter() - t) / len(texts) * 1e6)
        out[name] = {"median_us_per_entry": statistics.median(times), "all_us": times}
    base = out["sympy.Rational, plain"]["median_us_per_entry"]
    for v in out.values():
        v["ratio_to_sympy_rational"] = v["median_us_per_entry"] / base
    return out


def refusal_times() -> dict:
    from hmmtune.cli import main

    def timed(argv):
        err = io.StringIO()
        t = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
            code = main(argv)
        return {"argv": argv, "exit": code, "seconds": time.perf_counter() - t, "stderr": err.getvalue().strip()}

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        zeros = Path(tmp) / "zeros.json"
        row = "[" + ",".join(["0"] * 5000) + "]"
        zeros.write_text('{"initial": ' + row + ', "transition": [' + ",".join([row] * 5000) + '], "emission": [[1]]}')
        out["50 MB of zeros"] = timed(["check", str(zeros)])
        deep = Path(tmp) / "deep.json"
        deep.write_text('{"initial": ' + "[" * 100000 + "]" * 100000 + "}")
        out["JSON 100,000 deep"] = timed(["check", str(deep)])
        out["--num-inputs 1000000000"] = timed(["check", "--example", "full_rank", "--num-inputs", "1000000000"])
        out["sample -n 100000 -T 100000"] = timed(["sample", "--example", "full_rank", "-n", "100000", "-T", "100000", "-o", str(Path(tmp) / "x.npz")])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="docs/figures/errors-limits.json")
    args = parser.parse_args()
    result = {
        "loadavg_before": os.getloadavg(),
        "plan_memory": plan_bytes_per_seed(),
        "parse_speed": parse_speed(args.repeats),
        "refusals": refusal_times(),
        "loadavg_after": os.getloadavg(),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items()}, indent=1))


if __name__ == "__main__":
    main()
