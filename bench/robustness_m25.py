"""Why the CPU-scale learned network of experiment 1 stays far from the oracle at m = 25
(docs/robustness.md, "From the perfect oracle to a learned model").

In the robustness study the CPU-scale network (:data:`hmmtune.learned.experiment.CPU_SCALE`:
2 layers x 64, lr 3e-3, mask rate 0.15, 3000 steps) ends at a mean TV of about 0.02 to the
perfect oracle at m = 10 but 0.13 at m = 25. This script pretrains the same network on the
same m = 25 model (seed 0, the study's pretraining seed) with one setting changed at a time
and records the TV trajectory (every 500 steps, on 500 held-out inputs) and the final TV on
the study's 1000 test inputs:

- ``cpu``: the study's network, as a reference;
- ``steps-x3``: three epochs over the same corpus (9000 steps; the linear decay is
  stretched to match);
- ``hidden-128``: twice the width (hidden 128, feed-forward 512);
- ``layers-4``: twice the depth;
- ``lr-1e-3`` / ``lr-1e-2``: the peak learning rate divided / multiplied by about 3.

Beside them, how much of the input the perfect prediction needs: the TV to the oracle of
the perfect prediction from the first K tokens only (the imperfect oracle ``context=K``),
for m = 4, 10 and 25 on the same test inputs; the larger it stays at large K, the longer the
range of evidence a network has to combine.

    python bench/robustness_m25.py --json docs/figures/robustness-m25.json

Every variant is written to the JSON as soon as it ends; ``--keep`` keeps the variants
already in the JSON (and its context TVs) and computes the others. The JSON records the
wall time of each variant and ``os.getloadavg()``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import time

import torch

from hmmtune import common
from hmmtune.experiments import exp1
from hmmtune.learned.experiment import CPU_SCALE
from hmmtune.learned.pretrain import mask_tv_distance, pretrain
from hmmtune.perturbed import PretrainingError, imperfect_oracle, tv_to_oracle

VARIANTS = {
    "cpu": {},
    "layers-4": {"num_layers": 4},
    "hidden-128": {"hidden": 128, "feedforward": 512},
    "lr-1e-2": {"lr": 1e-2},
    "lr-1e-3": {"lr": 1e-3},
    "steps-x3": {"epochs": 3},
}


def build(size: int, seed: int):
    sc = CPU_SCALE
    cfg = exp1.Exp1Config(size, length=sc.length, num_train=sc.num_train, num_val=sc.num_val, num_test=sc.num_test, prompt_tokens=sc.prompt_tokens)
    return exp1.build(cfg, seed)


def context_tvs(sizes, seed: int, contexts=(1, 2, 4, 8, 16, 32)) -> dict:
    out = {}
    for m in sizes:
        s = build(m, seed)
        x = s.tokens[s.splits[2]]
        out[str(m)] = {str(k): tv_to_oracle(imperfect_oracle(s.model, PretrainingError.parse(f"context={k}"), seed=0), s.oracle, x)._asdict() for k in contexts}
    return out


def variant(name: str, size: int, seed: int) -> dict:
    sc = dataclasses.replace(CPU_SCALE, **VARIANTS[name])
    s = build(size, seed)
    te = s.splits[2]
    pcfg = dataclasses.replace(sc.pretrain_config(common.derive_seed(seed, size, 0x5EED)), eval_every=500)
    t0 = time.perf_counter()
    res = pretrain(s.model, pcfg, sc.encoder(int(s.model.num_tokens)), progress=False)
    wall = time.perf_counter() - t0
    tv = mask_tv_distance(res.model.mask_prediction(s.tokens[te]), s.oracle.mask_prediction(s.tokens[te]))
    # the same network inside the input (both sides of context), as in most of pretraining
    x = s.tokens[te][:200]
    pos = 0.5 * (res.model.token_predictions(x, stride=sc.stride).double() - s.oracle.token_predictions(x)).abs().sum(-1)
    return {
        "variant": name,
        "changes": VARIANTS[name],
        "size": size,
        "seed": seed,
        "parameters": sum(p.numel() for p in res.model.parameters()),
        "steps": res.step,
        "tv_test_mean": float(tv.mean()),
        "tv_test_worst": float(tv.max()),
        "tv_test_median": float(tv.median()),
        "tv_context_free": res.tv_reference,
        "tv_positions_mean": float(pos.mean()),
        "tv_position_1_mean": float(pos[:, 0].mean()),
        "tv_positions_8_to_55_mean": float(pos[:, 7:55].mean()),
        "history": [{"step": r.step, "tv": r.tv, "eval_loss": r.eval_loss, "train_loss": r.train_loss} for r in res.history],
        "wall_s": round(wall, 1),
        "loadavg_after": list(os.getloadavg()),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=25)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--json", default=None, help="write the figures here")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the variants already in --json")
    ap.add_argument("--redo", action="store_true", help="with --keep: recompute the --variants listed")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cmd = "python bench/robustness_m25.py" + (f" --json {args.json}" if args.json else "")
    report = {"script": cmd, "scale": dataclasses.asdict(CPU_SCALE), "threads": args.threads, "loadavg_before": list(os.getloadavg()), "variants": []}

    def save():
        if args.json:
            common.write_text_atomic(args.json, json.dumps(report, indent=1) + "\n")

    old = json.loads(open(args.json).read()) if args.keep and args.json and os.path.exists(args.json) else {}
    redo = set(args.variants) if args.redo else set()
    report["variants"] = [v for v in old.get("variants", []) if v["size"] == args.size and v["seed"] == args.seed and v["variant"] not in redo]
    done = {v["variant"] for v in report["variants"]}
    t0 = time.perf_counter()
    report["context_tv"] = old.get("context_tv") or context_tvs(sorted({4, 10, args.size}), args.seed)
    report["context_tv_s"] = old.get("context_tv_s", round(time.perf_counter() - t0, 1))
    print("context TV (mean):", {m: {k: round(v["mean"], 3) for k, v in d.items()} for m, d in report["context_tv"].items()}, flush=True)
    save()
    for name in args.variants:
        if name in done:
            continue
        r = variant(name, args.size, args.seed)
        report["variants"].append(r)
        traj = ", ".join(f"{h['step']}: {h['tv']:.3f}" for h in r["history"])
        print(f"{name}: test TV {r['tv_test_mean']:.3f} (median {r['tv_test_median']:.3f}; inside the input {r['tv_positions_8_to_55_mean']:.3f}), {r['wall_s']} s; trajectory {traj}", flush=True)
        save()
    report["loadavg_after"] = list(os.getloadavg())
    save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
