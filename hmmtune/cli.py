"""The ``hmmtune`` command line. It parses, calls the library and prints; it owns no math.

Exit codes: 0 success, 1 a checked condition fails (``check``), 2 bad input.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .examples import example_path, list_examples
from .models.io import ModelFileError, load_model


class _CliError(Exception):
    """Bad input detected by the CLI itself."""


def _model_from_args(args):
    if getattr(args, "example", None) and getattr(args, "model", None):
        raise _CliError("give either a MODEL file or --example NAME, not both")
    if getattr(args, "example", None):
        return load_model(example_path(args.example))
    if not getattr(args, "model", None):
        raise _CliError("no model given: pass MODEL.json or --example NAME (see 'hmmtune examples')")
    return load_model(Path(args.model))


def _positive(label):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{label} must be a positive integer, got {text!r}") from None
        if v < 1:
            raise argparse.ArgumentTypeError(f"{label} must be a positive integer, got {v}")
        return v

    return parse


def _nonnegative_float(text):
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0 and v < float("inf")):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return v


def cmd_examples(args) -> int:
    if args.name:
        print(example_path(args.name).read_text(), end="")
        return 0
    names = list_examples()
    width = max(len(n) for n in names)
    for name, desc in names.items():
        print(f"{name:<{width}}  {desc}")
    print("\nShow one with 'hmmtune examples NAME'; use one with '--example NAME'.")
    return 0


def cmd_sample(args) -> int:
    model = _model_from_args(args)
    result = model.sample(args.num_sequences, args.length, seed=args.seed)
    if hasattr(result, "_asdict"):
        arrays = {k: v.numpy() for k, v in result._asdict().items()}
    else:
        tokens, states = result
        arrays = {"tokens": tokens.numpy(), "states": states.numpy()}
    out = Path(args.output)
    if out.suffix != ".npz":
        raise _CliError(f"output file {out} must end in .npz")
    if not out.parent.exists():
        raise _CliError(f"output folder {out.parent} does not exist")
    tmp = out.with_name(out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(out)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"wrote {out}: {shapes}")
    return 0


def cmd_predict(args) -> int:
    from .oracle import OracleMLM

    model = _model_from_args(args)
    oracle = OracleMLM(model)
    result = model.sample(args.num_sequences, args.length, seed=args.seed)
    tokens = result[0]
    pred = oracle.mask_prediction(tokens)
    post = oracle.mask_posterior(tokens)
    name = getattr(model, "name", None) or args.model or args.example
    print(f"model {name}: {model.num_states} states, {model.num_tokens} tokens")
    print("inputs are '[MASK] x_1 .. x_T'; the perfect masked LM's prediction at the mask is")
    print("G_0(x) = W P(H_0 | x), and P(H_0 | x) is its posterior over the mask's hidden state.\n")
    np.set_printoptions(precision=3, suppress=True, linewidth=120)
    for b in range(tokens.shape[0]):
        toks = " ".join(str(int(t)) for t in tokens[b])
        print(f"x = {toks}")
        print(f"  P(H_0 | x)  = {post[b].detach().cpu().numpy()}")
        print(f"  G_0(x)      = {pred[b].detach().cpu().numpy()}")
    return 0


def _task_from_args(args):
    from .analysis.task import load_task
    from .models.io import load_json_source

    if args.task:
        return load_task(Path(args.task))
    source = example_path(args.example) if args.example else Path(args.model)
    data, _ = load_json_source(source)
    return load_task(source) if "task" in data else None


def cmd_check(args) -> int:
    from .analysis import check

    model = _model_from_args(args)
    task = _task_from_args(args)
    report = check(
        model,
        task,
        max_prompt_length=args.max_prompt_length,
        tau=args.tau,
        num_inputs=args.num_inputs,
        length=args.length,
        certificate_length=args.certificate_length,
        seed=args.seed,
    )
    if args.output:
        out = Path(args.output)
        if not out.parent.exists():
            raise _CliError(f"output folder {out.parent} does not exist")
        report.to_json(out)
    print(report.to_json() if args.json else str(report))
    return report.exit_code


def _reproduce_learned(args) -> int:
    """``reproduce --mode learned``: pretrain a transformer, tune on it (hmmtune.learned)."""
    from tqdm import tqdm

    from .learned.experiment import run_learned

    for flag, bad in (("--truncate", args.truncate), ("--quick", args.quick), ("--jobs", args.jobs != 1)):
        if bad:
            raise _CliError(f"{flag} is an oracle-mode option; learned mode sizes its runs with --scale cpu|paper")
    if args.scale == "paper" and not str(args.device or "").startswith("cuda"):
        print("hmmtune: warning: --scale paper pretrains BERT-base; without --device cuda this takes days", file=sys.stderr)
    bar = tqdm(total=None, unit="run", desc=f"{args.experiment} learned", disable=args.no_progress or None)

    def progress(p):
        if bar.total is None:
            bar.reset(total=p.total)
        bar.update(1)

    try:
        result = run_learned(
            args.experiment,
            scale=args.scale,
            seeds=args.seeds,
            device=args.device,
            out=args.out,
            threads=args.threads,
            progress=progress,
            show_progress=not args.no_progress,
        )
    finally:
        bar.close()
    print(result.table)
    print(f"\n{result.ran} runs computed, {result.resumed} resumed from {result.paths['records']} in {result.elapsed_s:.1f} s")
    for what in ("table", "summary", "plot"):
        if what in result.paths:
            print(f"{what}: {result.paths[what]}")
    return 0


def _reproduce_robustness(args) -> int:
    """``reproduce robustness`` and ``reproduce exp1|exp2 --pretraining-error``: accuracy
    against pretraining error (docs: robustness)."""
    from tqdm import tqdm

    from .learned.robustness import run_robustness
    from .perturbed import PretrainingError

    if args.truncate:
        raise _CliError("--truncate is not an option of the robustness study")
    if args.mode != "oracle":
        raise _CliError("--pretraining-error and 'robustness' use imperfect oracles (and their own learned points); drop --mode")
    errors = None
    if args.pretraining_error:
        errors = ["none"] + [PretrainingError.parse(e).label for e in args.pretraining_error.split(";") if e.strip()]
    bases = ("exp1", "exp2") if args.experiment == "robustness" else (args.experiment,)
    if args.models == "authors" and bases != ("exp1",):
        raise _CliError("--models authors applies to exp1 only (the authors' generator for exp2 is not reproduced)")
    bar = tqdm(total=None, unit="run", desc=f"{args.experiment} robustness", disable=args.no_progress or None)

    def progress(done, total):
        if bar.total is None:
            bar.reset(total=total)
        bar.update(1)

    try:
        result = run_robustness(
            quick=args.quick,
            seeds=args.seeds,
            bases=bases,
            errors=errors,
            learned=args.experiment == "robustness" and not args.no_learned,
            models=args.models,
            out=args.out,
            jobs=args.jobs,
            progress=progress,
            name=None if args.experiment == "robustness" else f"{args.experiment}-pretraining-error" + ("-quick" if args.quick else ""),
        )
    finally:
        bar.close()
    for row in result.located:
        cross = ", ".join(f"{k} {'-' if v is None else f'{v:.3g}'}" for k, v in row["crossing_tv"].items())
        learned = "" if row["learned_tv"] is None else f"; learned TV {row['learned_tv']:.3g}"
        print(f"{row['base']} size {row['size']} {row['method']}: paper {row['published']}, ours {row['perfect']:.1f}; TV where our curves reach it: {cross}{learned}")
    print(f"\n{result.ran} runs computed, {result.resumed} resumed from {result.paths['records']} in {result.elapsed_s:.1f} s")
    for what, path in result.paths.items():
        if what != "records":
            print(f"{what}: {path}")
    return 0


def cmd_reproduce(args) -> int:
    if args.experiment == "robustness" or args.pretraining_error:
        return _reproduce_robustness(args)
    if args.models != "paper" and (args.experiment != "exp1" or args.mode != "oracle"):
        raise _CliError("--models authors applies to exp1 in oracle mode")
    if getattr(args, "mode", "oracle") == "learned":
        return _reproduce_learned(args)
    from tqdm import tqdm

    from .experiments import run_sweep

    if args.truncate and args.experiment != "exp1":
        raise _CliError("--truncate reproduces the authors' input truncation of exp1; exp2 has none")
    bar = tqdm(total=None, unit="run", desc=f"{args.experiment}", disable=args.no_progress or None)

    def progress(p):
        if bar.total is None:
            bar.reset(total=p.total)
        bar.update(1)
        rec = p.record
        bar.set_postfix_str(f"{rec['key'].rsplit('-', 1)[0]}{' (stored)' if p.resumed else ''}")

    extra = {}
    if args.models == "authors":  # the authors' own HMMs and tasks; summaries in OUT/authors/
        from .experiments import exp1

        extra = {"configs": exp1.configs(quick=args.quick, truncate=args.truncate, models="authors")}
    try:
        result = run_sweep(
            args.experiment,
            seeds=args.seeds,
            quick=args.quick,
            truncate=args.truncate and not extra,
            out=str(Path(args.out) / ("authors-truncated" if args.truncate else "authors")) if extra else args.out,
            jobs=args.jobs,
            progress=progress,
            **extra,
        )
    finally:
        bar.close()
    print(result.table)
    print(
        f"\n{result.ran} runs computed, {result.resumed} resumed from {result.paths['records']} "
        f"in {result.elapsed_s:.1f} s"
    )
    for what in ("table", "summary", "plot"):
        if what in result.paths:
            print(f"{what}: {result.paths[what]}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Bad options: one readable line on stderr and exit status 2 (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hmmtune",
        description="Exact HMM inference, the perfect masked LM, and checkable conditions for head and prompt tuning.",
    )
    parser.add_argument("--version", action="version", version=f"hmmtune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("examples", help="list the bundled example models, or print one")
    p.add_argument("name", nargs="?", help="an example's name: print its JSON")
    p.set_defaults(func=cmd_examples)

    def model_args(p):
        p.add_argument("model", nargs="?", metavar="MODEL.json", help="a model file (see docs: formats)")
        p.add_argument("--example", metavar="NAME", help="use a bundled example instead of a file")

    p = sub.add_parser(
        "check",
        help="check the paper's conditions (Theorems H, P, M) with witnesses and certificates",
        description="Check which of the paper's guarantees apply. Exit code 0: every checked condition holds; "
        "1: some do not; 2: bad input.",
    )
    model_args(p)
    p.add_argument("--task", metavar="TASK.json", help="a task file (default: the model file's own 'task' field, if any)")
    p.add_argument("--json", action="store_true", help="print the full report (witnesses, certificates) as JSON")
    p.add_argument("-o", "--output", metavar="REPORT.json", help="also write the JSON report to this file")
    p.add_argument("--max-prompt-length", type=_positive("--max-prompt-length"), default=4, metavar="K")
    p.add_argument("--tau", type=_nonnegative_float, default=0.0, help="treat transitions <= tau as zero in the prompt search")
    p.add_argument("--num-inputs", type=_positive("--num-inputs"), default=2000, help="sampled inputs for verification")
    p.add_argument("--length", type=_positive("--length"), default=16, help="length of the sampled inputs")
    p.add_argument("--certificate-length", type=_positive("--certificate-length"), default=None, metavar="T")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("sample", help="sample sequences from a model into an .npz file")
    model_args(p)
    p.add_argument("-n", "--num-sequences", type=_positive("-n"), required=True)
    p.add_argument("-T", "--length", type=_positive("-T"), required=True)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("predict", help="sample inputs and print the perfect masked LM's predictions at the mask")
    model_args(p)
    p.add_argument("-n", "--num-sequences", type=_positive("-n"), default=3)
    p.add_argument("-T", "--length", type=_positive("-T"), default=8)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "reproduce",
        help="reproduce one of the paper's experiments in oracle or learned mode (table, JSON records, plot)",
        description="Run (or resume) the paper's experiment 1 (head vs prompt tuning) or 2 (memory + attention vs "
        "vanilla + linear head) on exact features. Each (configuration, seed) is saved as soon as it finishes, "
        "so an interrupted sweep resumes where it stopped.",
    )
    p.add_argument("experiment", choices=["exp1", "exp2", "robustness"], help="exp1, exp2, or robustness: accuracy against pretraining error (docs: robustness)")
    p.add_argument("--seeds", type=_positive("--seeds"), default=None, metavar="N", help="seeds 0..N-1 (default: the paper's, 20 for exp1 and 5 for exp2; 3 / 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="small splits and short inputs: the same models, in seconds")
    p.add_argument("--out", default="results", metavar="DIR", help="results folder (default: results)")
    p.add_argument("--jobs", type=_positive("--jobs"), default=1, metavar="J", help="parallel worker processes")
    p.add_argument("--truncate", action="store_true", help="exp1: truncate inputs as the authors did (79 tokens, 59 with the prompt)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--mode", choices=["oracle", "learned"], default="oracle", help="oracle: exact features (default); learned: pretrain a transformer masked LM, tune on it (docs: learned mode)")
    p.add_argument("--scale", choices=["cpu", "paper"], default="cpu", help="learned mode: cpu (default, minutes) or paper (BERT-base, needs --device cuda)")
    p.add_argument("--device", default=None, metavar="DEV", help="learned mode: torch device of the network, e.g. cuda")
    p.add_argument("--threads", type=_positive("--threads"), default=None, metavar="N", help="learned mode: torch CPU threads (default: 1 on the CPU, where the small tensors gain nothing from more)")
    # pretraining error and the authors' models (docs: robustness)
    p.add_argument(
        "--models",
        choices=["paper", "authors"],
        default="paper",
        help="exp1: paper (default) = our draws of the paper's random HMMs and tasks; authors = the authors' own "
        "(their seeds 1..20 for our seeds 0..19, their task retries); summaries go to OUT/authors/",
    )
    p.add_argument(
        "--pretraining-error",
        metavar="SPEC[;SPEC...]",
        default=None,
        help="run exp1/exp2 on imperfect oracles: SPEC is NAME=VALUE[,NAME=VALUE] with NAME in initial, transition, "
        "emission, all (row TV of the misspecified model), noise (additive noise weight on G), context (tokens read); "
        "e.g. 'emission=0.1;noise=0.3' (default: none; 'robustness' runs the whole grid)",
    )
    p.add_argument("--no-learned", action="store_true", help="robustness: skip the learned networks (imperfect oracles only)")
    p.set_defaults(func=cmd_reproduce)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except BrokenPipeError:  # the reader (head, less) closed the pipe: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (_CliError, ModelFileError, ValueError, OSError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"hmmtune: error: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
