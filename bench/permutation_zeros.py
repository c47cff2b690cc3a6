"""Share of exactly-zero entries in the paper generator's transition matrix.

``permutation_mixture`` sums m random permutation matrices; an entry none of them maps
stays exactly 0, on average ``(1 - 1/m)^m`` of the entries. This script measures the
share over seeds for several m and writes it as JSON (docs/reproducing.md cites it).

Usage::

    python bench/permutation_zeros.py --json docs/figures/permutation-zeros.json
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from hmmtune.models.generators import paper_hmm


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--states", type=int, nargs="+", default=[4, 10, 30])
    p.add_argument("--seeds", type=int, default=100)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    rows = []
    for m in args.states:
        zeros = [float((paper_hmm(m, seed=s).transition.double().numpy() == 0).mean()) for s in range(args.seeds)]
        rows.append({"m": m, "seeds": args.seeds, "mean_zero_share": float(np.mean(zeros)), "expected": (1 - 1 / m) ** m})
        print(f"m = {m:3d}: {100 * np.mean(zeros):.1f}% of entries exactly 0 over {args.seeds} seeds (expected (1-1/m)^m = {100 * (1 - 1 / m) ** m:.1f}%)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"script": "bench/permutation_zeros.py", "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
