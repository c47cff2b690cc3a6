"""The robustness study (docs/robustness.md): accuracy against pretraining error.

Runs ``hmmtune reproduce robustness`` (records under ``--results``, resumable) and copies
its summary JSON and plots to ``docs/figures/``:

    python bench/robustness_study.py --jobs 2            # the study (under 30 min on 2 cores)
    python bench/robustness_study.py --quick             # under a minute
    python bench/robustness_study.py --summarize-only    # the records present, no runs

The JSON records the wall time and ``os.getloadavg()``, and the copy in ``docs/figures/``
the CPU time of this process and its workers (``cpu_s``).
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
from pathlib import Path

from hmmtune.experiments import robustness as R
from hmmtune.experiments import store
from hmmtune.learned.robustness import LEARNED_STEPS, learned_configs, run_robustness, summarize_study


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--learned-seeds", type=int, default=1, help="learned networks per size (seeds 0..N-1)")
    ap.add_argument("--name", default=None, help="file stem of the summary and plots (default robustness[-quick])")
    ap.add_argument("--learned-exp2-sizes", type=int, nargs="+", default=None, help="exp2 memory sizes V of the learned networks (default 2 5)")
    ap.add_argument("--results", default="results")
    ap.add_argument("--figures", default="docs/figures")
    ap.add_argument("--summarize-only", action="store_true", help="summarise the records already in --results (a partial study) without running anything")
    args = ap.parse_args(argv)
    if args.summarize_only:
        records = store.load_records(sorted((Path(args.results) / R.NAME).glob("*.json")))
        grid = R.configs(args.quick)
        settings = {
            "quick": args.quick,
            "seeds": sorted({int(r["seed"]) for r in records if r["config"].get("runner") != "learned"}),
            "bases": list(R.BASES),
            "models": "paper",
            "imperfect_config": {k: v for k, v in grid[0].to_dict().items() if k not in ("base", "size", "error")},
            "errors": sorted({c.error for c in grid}),
            "learned_scale": "quick" if args.quick else "cpu",
            "learned_steps": list(LEARNED_STEPS),
            "learned_sizes": {b: sorted({c.size for c in learned_configs(args.quick) if c.base == b}) for b in R.BASES},
            "partial": "summarised from the records present (--summarize-only)",
        }
        name = "robustness-quick" if args.quick else "robustness"
        _, _, paths = summarize_study(records, args.results, name, settings, resumed=len(records))
    else:
        res = run_robustness(quick=args.quick, seeds=args.seeds, learned_seeds=args.learned_seeds, learned_exp2_sizes=args.learned_exp2_sizes, name=args.name, out=args.results, jobs=args.jobs)
        paths = res.paths
        print(f"{res.ran} runs computed, {res.resumed} resumed, {res.elapsed_s:.0f} s wall")
    figs = Path(args.figures)
    figs.mkdir(parents=True, exist_ok=True)
    for what, path in paths.items():
        if what != "records":
            shutil.copy(path, figs / Path(path).name)
            print(f"{what}: {figs / Path(path).name}")
    if not args.summarize_only:
        summary = figs / Path(paths["summary"]).name
        data = json.loads(summary.read_text())
        own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        data["cpu_s"] = {"self": round(own.ru_utime + own.ru_stime, 1), "workers": round(workers.ru_utime + workers.ru_stime, 1)}
        summary.write_text(json.dumps(data, indent=1) + "\n")
        print(f"cpu: {data['cpu_s']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
