"""How much tau the paper's models tolerate: Theorem P in tolerance mode, certified.

For the paper's generator (``paper_hmm``: permutation-mixture transitions at temperature
0.01, n = 10 tokens) and its random task (``paper_task``), run ``prompt_condition`` at
several thresholds tau and record whether a support is found, how many of the sampled
non-tie inputs the leak bound certifies, the prior leak, the largest per-input bound and
the uniform bound (docs/theorems.md, "Theorem P"). Deterministic (seeded); no timing.

Usage::

    python bench/tolerance_tau.py --json docs/figures/tolerance-tau.json
"""

from __future__ import annotations

import argparse
import json
import os

from hmmtune.analysis import prompt_condition
from hmmtune.models.generators import paper_hmm
from hmmtune.tuning.tasks import paper_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--states", type=int, nargs="+", default=[4, 10, 30])
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--taus", type=float, nargs="+", default=[1e-12, 1e-6, 1e-3, 1e-2, 1e-1])
    p.add_argument("--num-inputs", type=int, default=500)
    p.add_argument("--length", type=int, default=16)
    p.add_argument("--json", metavar="FILE")
    args = p.parse_args()
    rows = []
    print(f"{'m':>3} {'tau':>7} {'support found':>13} {'holds (all certified)':>21} {'certified/clear':>15} {'max prior leak':>14} {'uniform bounds < 0.01':>22}")
    for m in args.states:
        for tau in args.taus:
            found = holds = 0
            cert_n = clear_n = 0
            leaks, uniforms = [], []
            for s in range(args.seeds):
                model = paper_hmm(m, 10, seed=s)
                task = {"weights": paper_task(m, s).weights.tolist()}
                c = prompt_condition(model, task, tau=tau, num_inputs=args.num_inputs, length=args.length, seed=s)
                cert = c.witness.get("certificate")
                if cert is None:
                    continue
                found += 1
                holds += bool(c.holds)
                cert_n += cert["num_certified"]
                clear_n += cert["num_clear"]
                leaks.append(cert["prior_leak"])
                uniforms.append(cert["uniform_bound"])
            row = {
                "m": m,
                "tau": tau,
                "seeds": args.seeds,
                "support_found": found,
                "holds": holds,
                "certified": cert_n,
                "clear": clear_n,
                "max_prior_leak": max(leaks) if leaks else None,
                "uniform_bounds": uniforms,
            }
            rows.append(row)
            ub = [u for u in uniforms if u is not None]
            print(
                f"{m:>3} {tau:>7.0e} {found:>10}/{args.seeds} {holds:>18}/{args.seeds} {cert_n:>8}/{clear_n:<6} "
                f"{(max(leaks) if leaks else float('nan')):>14.2g} {sum(u < 0.01 for u in ub):>19}/{found}"
            )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"script": "bench/tolerance_tau.py", "args": vars(args), "loadavg": os.getloadavg(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
