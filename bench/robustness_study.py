"""The robustness study (docs/robustness.md): accuracy against pretraining error.

Runs ``hmmtune reproduce robustness`` (records under ``--results``, resumable) and copies
its summary JSON and plots to ``docs/figures/``:

    python bench/robustness_study.py --jobs 2            # the study (about 30 min on 2 quiet cores)
    python bench/robustness_study.py --quick             # under a minute

The JSON records the wall time and ``os.getloadavg()``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from hmmtune.learned.robustness import run_robustness


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--results", default="results")
    ap.add_argument("--figures", default="docs/figures")
    args = ap.parse_args(argv)
    res = run_robustness(quick=args.quick, seeds=args.seeds, out=args.results, jobs=args.jobs)
    figs = Path(args.figures)
    figs.mkdir(parents=True, exist_ok=True)
    for what, path in res.paths.items():
        if what != "records":
            shutil.copy(path, figs / Path(path).name)
            print(f"{what}: {figs / Path(path).name}")
    print(f"{res.ran} units computed, {res.resumed} resumed, {res.elapsed_s:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
