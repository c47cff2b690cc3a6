"""Learned mode at the CPU scale: the tables of docs/learned.md, with their JSON.

Runs ``run_learned(EXP, scale="cpu")`` (what ``hmmtune reproduce EXP --mode learned``
runs) in a fresh results folder, then writes the summary rows, the wall and CPU time and
the load average to one JSON file.

Usage::

    python bench/learned_cpu.py exp1 --json docs/figures/learned-exp1-cpu.json
    python bench/learned_cpu.py exp2 --json docs/figures/learned-exp2-cpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time

from hmmtune.learned.experiment import run_learned


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("experiment", choices=["exp1", "exp2"])
    p.add_argument("--json", metavar="FILE", required=True)
    args = p.parse_args()
    load0 = os.getloadavg()
    t0, c0 = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as out:
        res = run_learned(args.experiment, scale="cpu", out=out, plot=False, checkpoints=False)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = [dataclasses.asdict(r) if dataclasses.is_dataclass(r) else r for r in res.rows]
    data = {
        "script": "bench/learned_cpu.py",
        "experiment": args.experiment,
        "scale": "cpu",
        "wall_s": wall,
        "cpu_s": cpu,
        "loadavg_start": load0,
        "loadavg_end": os.getloadavg(),
        "rows": rows,
        "table": res.table,
    }
    with open(args.json, "w") as f:
        json.dump(data, f, indent=1, default=str)
    print(res.table)
    print(f"wall {wall:.0f} s, cpu {cpu:.0f} s, load {load0} -> {os.getloadavg()}")


if __name__ == "__main__":
    main()
