"""The grid's GPU column (issue 11, item 3), prepared for a machine with a CUDA device.

For every cell of ``bench/bench_grid.py`` plus the large one the issue names (B = 4000,
T = 1024, m = 256), it times ``HMM.posterior``, ``HMM.loo_posterior`` and ``HMM.log_prob``
with the model and the tokens on ``--device`` (the cost rule picks the sequential or the
time-parallel path there: the compiled kernels are CPU-only), checks each answer against the
CPU's (maximal absolute difference, recorded), and times the CPU beside it in the same run
(compiled kernels loaded first, torch on ``--threads``). Medians of ``--repeats`` runs after
a warm-up; the device is synchronised around every timed call. A cell whose CPU run is
predicted to exceed ``--cpu-budget`` seconds (from the GPU-free cost rule's estimate) is
timed on the device only.

Writes one JSON (``--out``) and prints a Markdown table. One command on a GPU machine::

    python bench/bench_gpu.py --device cuda --out $OUT/bench-gpu.json

and on the CPU, as the suite's smoke test does::

    python bench/bench_gpu.py --device cpu --quick --out /tmp/bench-gpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

from hmmtune.models import inference
from hmmtune.models.generators import paper_hmm

GRID_M = [4, 32, 256]
GRID_BT = [(1, 100_000), (4, 20_000), (400, 256), (4000, 64)]
EXTRA = [(256, 4000, 1024)]  # the large cell: 8 GiB of float64 posteriors
QUICK = [(4, 3, 50), (8, 20, 16)]
QUANTITIES = {"posterior": "posterior", "masked_posterior": "loo_posterior", "log_prob": "log_prob"}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, repeats: int, device: torch.device) -> tuple[float, list[float], object]:
    out = fn()  # warm-up (and the answer)
    _sync(device)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def cells(quick: bool) -> list[tuple[int, int, int]]:
    if quick:
        return QUICK
    return [(m, B, T) for m in GRID_M for (B, T) in GRID_BT] + EXTRA


def run(args) -> dict:
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    inference.prepare_compiled()
    env = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine(),
        "torch": torch.__version__, "python": sys.version.split()[0], "torch_threads": args.threads,
        "cpu_count": os.cpu_count(), "argv": sys.argv, "loadavg_start": list(os.getloadavg()),
    }
    rows = []
    for m, B, T in cells(args.quick):
        hmm = paper_hmm(m, 10, seed=0)
        x, _ = hmm.sample(B, T, seed=1)
        dev_hmm, dev_x = hmm.to(device=device), x.to(device)
        seq, par, _ = inference._estimates(B, T, m)
        cpu_pred = min(seq, par)
        row = {"m": m, "B": B, "T": T, "device_path": "time-parallel" if inference.use_time_parallel(B, T, m) else "sequential",
               "cpu_path": "compiled" if inference.use_compiled(B, T, m) else "torch", "results": {}}
        for q, meth in QUANTITIES.items():
            res = {}
            try:
                med, times, got = timed(lambda: getattr(dev_hmm, meth)(dev_x), args.repeats, device)
                res["device"] = {"median_s": med, "times_s": times}
                if cpu_pred <= args.cpu_budget or args.quick:
                    cmed, ctimes, ref = timed(lambda: getattr(hmm, meth)(x), args.repeats, torch.device("cpu"))
                    res["cpu"] = {"median_s": cmed, "times_s": ctimes}
                    res["max_abs_diff"] = float((got.cpu() - ref).abs().max())
                    res["cpu_over_device"] = cmed / med
                else:
                    res["cpu"] = {"skipped": f"predicted {cpu_pred:.0f} s on the CPU's torch path > --cpu-budget (an estimate, not a measurement)"}
                del got
            except (RuntimeError, MemoryError) as exc:  # out of device memory, reported per cell
                res["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
            row["results"][q] = res
            if device.type == "cuda":
                torch.cuda.empty_cache()
            print(_line(row, q), flush=True)
        rows.append(row)
        if args.out:  # saved after every cell: a stopped run keeps what it measured
            _write(args.out, {"environment": env, "cells": rows, "complete": False})
    env["loadavg_end"] = list(os.getloadavg())
    data = {"environment": env, "cells": rows, "complete": True}
    if args.out:
        _write(args.out, data)
    print()
    print(markdown(data))
    return data


def _write(path: str, data: dict) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1)
        fh.write("\n")
    os.replace(tmp, path)


def _ms(r: dict) -> str:
    if "median_s" not in r:
        return "skipped"
    s = r["median_s"]
    return f"{s * 1e3:.1f} ms" if s < 10 else f"{s:.1f} s"


def _line(row: dict, q: str) -> str:
    r = row["results"][q]
    if "error" in r:
        return f"m={row['m']:<4} B={row['B']:<5} T={row['T']:<7} {q:<17} error: {r['error']}"
    ratio = f"  cpu/device {r['cpu_over_device']:.2f}x" if "cpu_over_device" in r else ""
    return f"m={row['m']:<4} B={row['B']:<5} T={row['T']:<7} {q:<17} device {_ms(r['device'])}  cpu {_ms(r['cpu'])}{ratio}"


def markdown(data: dict) -> str:
    dev = data["environment"]["device_name"]
    lines = [f"| m | B x T | quantity | {dev} (path) | CPU (path) | CPU / device | max abs diff |", "| --- | --- | --- | --- | --- | --- | --- |"]
    for row in data["cells"]:
        for q in QUANTITIES:
            r = row["results"].get(q, {})
            if "error" in r:
                lines.append(f"| {row['m']} | {row['B']} x {row['T']} | {q} | error | | | |")
                continue
            ratio = f"{r['cpu_over_device']:.2f}x" if "cpu_over_device" in r else "-"
            diff = f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"
            lines.append(f"| {row['m']} | {row['B']} x {row['T']} | {q} | {_ms(r['device'])} ({row['device_path']}) | "
                         f"{_ms(r['cpu'])} ({row['cpu_path']}) | {ratio} | {diff} |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cuda")
    p.add_argument("--quick", action="store_true", help="two tiny cells: a smoke test")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=2, help="torch threads of the CPU runs")
    p.add_argument("--cpu-budget", type=float, default=60.0, help="seconds: skip a CPU run predicted to take longer")
    p.add_argument("--out", help="write the JSON here")
    args = p.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        p.error("no CUDA device here: use --device cpu for a smoke run")
    return run(args)


if __name__ == "__main__":
    main()
