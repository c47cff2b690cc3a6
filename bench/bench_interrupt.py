"""Benchmark: how fast Ctrl-C stops `hmmtune reproduce` (issue 9, item 4).

Starts ``hmmtune reproduce exp1`` on tiny configurations (2 sizes x 15 seeds) in a new
process group, waits for its first record, sends SIGINT to the whole group (what Ctrl-C
in a terminal does) and measures the time until the "interrupted: N of M runs are saved"
line appears on stderr and until the process has exited (the rest is the interpreter's
own shutdown: torch and friends unloading). With ``--jobs 1`` and ``--jobs 2``, medians
over ``--repeats``; writes JSON with the load average.

Usage::

    python bench/bench_interrupt.py --repeats 3 --json docs/figures/interrupt-latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

TINY1 = dict(length=24, num_train=150, num_val=50, num_test=100, max_iter=60)
CLI = textwrap.dedent(
    f"""
    import sys
    from hmmtune.experiments import exp1
    _configs = exp1.configs
    exp1.configs = lambda quick=False, truncate=False: _configs(states=(4, 15), **{TINY1!r})
    from hmmtune.cli import main
    sys.exit(main(["reproduce", "exp1", "--no-progress", *sys.argv[1:]]))
    """
)


def once(jobs: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="bench-interrupt-"))
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", CLI, "--out", str(out), "--seeds", "15", "--jobs", str(jobs)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        while not (out / "exp1").exists() or not list((out / "exp1").glob("*.json")):
            if proc.poll() is not None:
                raise RuntimeError(proc.stderr.read())
            time.sleep(0.05)
        time.sleep(0.3)  # in the middle of the next runs
        t0 = time.perf_counter()
        os.killpg(proc.pid, signal.SIGINT)
        line = proc.stderr.readline()
        t_message = time.perf_counter() - t0
        proc.wait()
        t_exit = time.perf_counter() - t0
        return {"message_s": t_message, "exit_s": t_exit, "code": proc.returncode, "line": line.strip()}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", default="docs/figures/interrupt-latency.json")
    args = ap.parse_args()
    load_before = os.getloadavg()
    samples = {1: [], 2: []}
    for _ in range(args.repeats):
        for jobs in samples:
            s = once(jobs)
            samples[jobs].append(s)
            print(f"--jobs {jobs}: exit {s['code']}, message after {s['message_s']:.2f} s, exited after {s['exit_s']:.2f} s", flush=True)
    rows = {
        f"jobs{j}": {
            "message_s_median": round(statistics.median(s["message_s"] for s in v), 3),
            "exit_s_median": round(statistics.median(s["exit_s"] for s in v), 3),
            "codes": sorted({s["code"] for s in v}),
            "example": v[0]["line"],
        }
        for j, v in samples.items()
    }
    report = {
        "benchmark": "Ctrl-C latency of hmmtune reproduce",
        "command": f"python bench/bench_interrupt.py --repeats {args.repeats} --json {args.json}",
        "results": rows,
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
    }
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    print("| jobs | message after Ctrl-C (s) | process gone (s) | exit code |")
    print("|---|---|---|---|")
    for j in samples:
        r = rows[f"jobs{j}"]
        print(f"| {j} | {r['message_s_median']:.2f} | {r['exit_s_median']:.2f} | {', '.join(map(str, r['codes']))} |")
    print(f"load average {report['loadavg_before']} -> {report['loadavg_after']}; wrote {args.json}")


if __name__ == "__main__":
    main()
