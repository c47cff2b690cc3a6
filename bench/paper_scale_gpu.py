"""Experiment 1 at the paper's scale on a GPU (issue 6, item 7).

Pretrains BERT-base (12 layers, hidden 768, 12 heads) as a masked LM on text from the
paper's random HMMs (5000 sequences of 10,240 tokens in 512-token blocks, 3 epochs,
mask rate 0.05, lr 1e-5), then tunes a head and a 20-vector soft prompt on the frozen
network, for a few numbers of hidden states m. The oracle's numbers on the same inputs
and the published ones go beside the learned ones.

Writes to ``--out`` (at most 8 files, flat): ``exp1-learned-<name>.md`` (the table),
``.json`` (summary), ``.png`` (accuracy against m), ``tv-<name>.png`` (TV distance to
the oracle against pretraining tokens) and ``bench-<name>.json`` (device, timings,
throughput, every record's results). Records and pretraining checkpoints go to
``--work``, so a run that is stopped resumes there.

Usage::

    # the paper's setting (hours on one GPU)
    python bench/paper_scale_gpu.py --device cuda --sizes 4 10 25 --out figures
    # a reduced sweep that fits a few minutes (what docs/learned.md reports)
    python bench/paper_scale_gpu.py --device cuda --sizes 4 10 25 --num-sequences 400 \\
        --epochs 1 --lr 1e-4 --prompt-epochs 10 --num-train 2000 --bf16 --budget-s 330 --out $OUT
    # the script itself, tiny, on the CPU (seconds)
    python bench/paper_scale_gpu.py --tiny --sizes 4 --out /tmp/bench-tiny
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from hmmtune.learned.experiment import PAPER_SCALE, plot_learned, run_learned, with_scale

TINY = dict(
    name="tiny",
    num_layers=1,
    hidden=32,
    heads=2,
    feedforward=64,
    dropout=0.1,
    num_sequences=8,
    sequence_length=256,
    block_length=32,
    epochs=1,
    batch_size=8,
    lr=3e-3,
    warmup_steps=2,
    mask_rate=0.15,
    shard_sequences=4,
    eval_every=4,
    eval_inputs=50,
    length=24,
    num_train=100,
    num_val=50,
    num_test=100,
    prompt_tokens=4,
    prompt_epochs=2,
    prompt_batch_size=50,
)


def build_scale(args):
    if args.tiny:
        base = with_scale(PAPER_SCALE, **TINY)
    else:
        base = PAPER_SCALE
    changes = {}
    for arg, fld in (
        ("num_sequences", "num_sequences"),
        ("epochs", "epochs"),
        ("lr", "lr"),
        ("batch_size", "batch_size"),
        ("prompt_epochs", "prompt_epochs"),
        ("num_train", "num_train"),
        ("eval_every", "eval_every"),
        ("warmup_steps", "warmup_steps"),
    ):
        v = getattr(args, arg)
        if v is not None:
            changes[fld] = v
    reduced = bool(changes) and not args.tiny
    name = args.name or ("tiny" if args.tiny else ("paper-reduced" if reduced else "paper"))
    return with_scale(base, name=name, **changes)


def tv_figure(records, path, title):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=120)
    try:
        for rec in sorted(records, key=lambda r: r["x"]):
            hist = rec["results"]["pretrain"]["history"]
            ax.plot([h["tokens"] / 1e6 for h in hist], [h["tv"] for h in hist], marker=".", label=f"m = {rec['x']}")
            ax.axhline(rec["results"]["pretrain"]["tv_reference"], linestyle=":", linewidth=0.8, color=ax.lines[-1].get_color())
        ax.set_xlabel("pretraining tokens (millions)")
        ax.set_ylabel("TV distance to the oracle's G_0")
        ax.set_title(title, fontsize=8)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)


def report(args, scale, device, out, work, done, skipped, per_size, errors, t_start):
    """Write the table, figures and JSON of the sizes done so far (records are read back
    from the store; nothing is recomputed)."""
    res = run_learned("exp1", scale=scale, sizes=done, seeds=args.seeds, device=device, out=work, plot=False)
    assert res.ran == 0
    base = f"exp1-learned-{scale.name}"
    device_name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    settings = f"{scale.describe()}; device {device_name}" + ("; bf16 autocast" if args.bf16 else "")
    (out / f"{base}.md").write_text(f"# Experiment 1, learned mode, {scale.name} scale\n\n{settings}\n\n{res.table}\n")
    plot_learned("exp1", res.rows, out / f"{base}.png", subtitle=settings)
    tv_figure(res.records, out / f"tv-{scale.name}.png", f"BERT-style MLM pretraining, {device_name}")
    throughput = []
    for r in res.records:
        pr = r["results"]["pretrain"]
        tokens = pr["history"][-1]["tokens"]
        throughput.append(
            {"m": r["x"], "seed": r["seed"], "tokens": tokens, "seconds": pr["seconds"], "tokens_per_s": tokens / max(pr["seconds"], 1e-9)}
        )
    bench = {
        "scale": scale.to_dict(),
        "device": device_name,
        "torch": torch.__version__,
        "bf16": bool(args.bf16),
        "command": " ".join(sys.argv),
        "sizes_done": done,
        "sizes_skipped": skipped,
        "errors": errors,
        "seconds_per_size": per_size,
        "total_seconds": time.perf_counter() - t_start,
        "pretraining_throughput": throughput,
        "rows": [r.to_dict() for r in res.rows],
        "records": [{k: r[k] for k in ("x", "seed", "results", "elapsed_s")} for r in res.records],
    }
    (out / f"bench-{scale.name}.json").write_text(json.dumps(bench, indent=1, default=str) + "\n")
    (out / f"{base}.json").write_text(json.dumps({"rows": bench["rows"], "scale": bench["scale"], "device": device_name}, indent=1) + "\n")
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[4, 10, 25], help="numbers of hidden states m")
    p.add_argument("--seeds", type=int, default=1, help="seeds 0..N-1 per size")
    p.add_argument("--out", default="figures", help="folder for the figures and JSON (flat, at most 8 files)")
    p.add_argument("--work", default=None, help="records and checkpoints (default: OUT/../paper-scale-work)")
    p.add_argument("--name", default=None, help="name of the scale in file names")
    p.add_argument("--tiny", action="store_true", help="a tiny network and corpus: checks the script on a CPU in seconds")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast on CUDA (TF32 matmuls are on regardless)")
    p.add_argument("--no-checkpoints", action="store_true", help="do not write pretraining checkpoints")
    p.add_argument("--budget-s", type=float, default=None, help="start no new size after this many seconds")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    for flag, typ in (
        ("--num-sequences", int),
        ("--epochs", int),
        ("--lr", float),
        ("--batch-size", int),
        ("--prompt-epochs", int),
        ("--num-train", int),
        ("--eval-every", int),
        ("--warmup-steps", int),
    ):
        p.add_argument(flag, type=typ, default=None, help="override the paper's value")
    args = p.parse_args(argv)

    t_start = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.set_float32_matmul_precision("high")
    scale = build_scale(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    work = Path(args.work) if args.work else out.resolve().parent / "paper-scale-work"
    work.mkdir(parents=True, exist_ok=True)
    print(scale.describe(), flush=True)
    print(f"device {device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""), flush=True)

    amp = torch.autocast("cuda", dtype=torch.bfloat16) if (args.bf16 and device.type == "cuda") else contextlib.nullcontext()
    done, skipped, per_size, errors = [], [], {}, {}
    for m in args.sizes:
        elapsed = time.perf_counter() - t_start
        if args.budget_s is not None and per_size:
            slowest = max(per_size.values())
            if elapsed + slowest > args.budget_s:
                skipped.append(m)
                print(f"m = {m}: skipped (budget: {elapsed:.0f} s used, last size took {slowest:.0f} s)", flush=True)
                continue
        t0 = time.perf_counter()
        try:
            with amp:
                res = run_learned(
                    "exp1",
                    scale=scale,
                    sizes=[m],
                    seeds=args.seeds,
                    device=device,
                    out=work,
                    threads=args.threads,
                    show_progress=False,
                    plot=False,
                    checkpoints=not args.no_checkpoints,
                )
        except Exception:  # keep going: the other sizes and the report still come out
            errors[m] = traceback.format_exc()
            print(f"m = {m}: failed\n{errors[m]}", file=sys.stderr, flush=True)
            continue
        per_size[m] = time.perf_counter() - t0
        done.append(m)
        report(args, scale, device, out, work, done, skipped, per_size, errors, t_start)  # partial results survive a kill
        for r in res.records:
            pr = r["results"]["pretrain"]
            lr_ = r["results"]["learned"]
            print(
                f"m = {m} seed {r['seed']}: TV {pr['history'][0]['tv']:.3f} -> {pr['tv']:.3f} (reference {pr['tv_reference']:.3f}); "
                f"head {100 * lr_['head']['test']:.1f}%, prompt {100 * lr_['prompt']['test']:.1f}%; "
                f"oracle head {100 * r['results']['oracle']['head']['test']:.1f}%, "
                f"prompt {100 * r['results']['oracle']['prompt']['test']:.1f}%; "
                f"pretraining {pr['seconds']:.0f} s, run {r['elapsed_s']:.0f} s",
                flush=True,
            )
    if not done:
        print("nothing ran", file=sys.stderr)
        (out / f"bench-{scale.name}.json").write_text(json.dumps({"errors": errors, "skipped": skipped}, indent=1) + "\n")
        return 1
    res = report(args, scale, device, out, work, done, skipped, per_size, errors, t_start)
    print(res.table)
    print(f"total {time.perf_counter() - t_start:.0f} s; wrote {sorted(os.listdir(out))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
