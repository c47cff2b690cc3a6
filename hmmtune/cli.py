"""The ``hmmtune`` command line. It parses, calls the library and prints; it owns no math.

Exit codes (docs: errors): 0 success (``check``: every counted condition holds), 1 some
condition fails (``check``), 2 bad input or a refused resource request (one line naming the
file, field or option), 3 an internal error (one line asking for a bug report; the
traceback with ``--debug``), 130 interrupted (Ctrl-C). A closed output pipe keeps the code.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import __version__, common
from .examples import example_path, list_examples

# numpy, torch and the model loaders are imported inside the commands that use them:
# 'hmmtune --help' and 'hmmtune examples' start without them (docs: benchmarks-check).
from .models import limits  # standard library only; hmmtune.models loads its parts lazily

EXIT_OK, EXIT_FAIL, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


#: ``check --require`` choices (the same as hmmtune.analysis.report.REQUIRE_CHOICES, kept here
#: so that the CLI starts without importing the analysis code).
REQUIRE_CHOICES = ("all", "head", "prompt", "memory", "task")


class _CliError(Exception):
    """Bad input detected by the CLI itself."""


def _model_from_args(args):
    from .io import load_model

    if getattr(args, "example", None) and getattr(args, "model", None):
        raise _CliError("give either a MODEL file or --example NAME, not both")
    if getattr(args, "example", None):
        return load_model(example_path(args.example))
    if not getattr(args, "model", None):
        raise _CliError("no model given: pass MODEL.json or --example NAME (see 'hmmtune examples')")
    return load_model(Path(args.model))


def _option(label, check, convert):
    """An argparse type: ``convert`` the text, then the library's own ``check`` (same wording)."""

    def parse(text):
        if isinstance(check, str):  # a function of hmmtune.models.arguments, imported when used
            from .models import arguments

            checker = getattr(arguments, check)
        else:
            checker = check
        try:
            value = convert(text)
        except ValueError:
            value = text
        try:
            return checker(label, value)
        except ValueError as exc:  # argparse prefixes "argument LABEL: "
            raise argparse.ArgumentTypeError(str(exc).removeprefix(f"{label} ")) from None

    return parse


def _positive(label):
    return _option(label, "integer", int)


_seed = _option("--seed", "seed", int)


def _path(text):
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a path, got an empty string")
    return text


def _size(text):
    try:
        return limits.parse_bytes(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _require_memory(model, num, length, options: str, per_state: int) -> None:
    """Refuse, before anything is allocated, a request whose memory exceeds --max-memory.

    ``per_state``: float64 arrays of shape (num, length, states) the command keeps at once.
    A memory HMM's exact inference works in chunks under its own bound
    (``InferenceTooLargeError``), so only its sampled tokens are counted here.
    """
    states = 0 if hasattr(model, "num_flat_states") else model.num_states
    nbytes = float(num) * length * (32 + 8 * model.num_tokens + 8 * per_state * states)
    limits.check_memory(options, nbytes)


def _real_nonnegative(label, value):
    from .models import arguments

    return arguments.real(label, value, 0.0)


_nonnegative_float = _option("--tau", _real_nonnegative, float)


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
    import numpy as np

    model = _model_from_args(args)
    _require_memory(model, args.num_sequences, args.length, f"-n {args.num_sequences} x -T {args.length}", 0)
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
    common.write_atomic(out, lambda fh: np.savez_compressed(fh, **arrays), binary=True)
    shapes = ", ".join(f"{k} {tuple(v.shape)}" for k, v in arrays.items())
    print(f"wrote {out}: {shapes}")
    return 0


def cmd_predict(args) -> int:
    import numpy as np

    from .oracle import OracleMLM

    model = _model_from_args(args)
    _require_memory(model, args.num_sequences, args.length, f"-n {args.num_sequences} x -T {args.length}", 4)
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
    from .io import load_task
    from .io import load_json_source

    if args.task:
        return load_task(Path(args.task))
    source = example_path(args.example) if args.example else Path(args.model)
    data, _ = load_json_source(source)
    return load_task(source) if "task" in data else None


def cmd_check(args) -> int:
    from .analysis import check

    model = _model_from_args(args)
    task = _task_from_args(args)
    longest = max(args.length + 1, args.certificate_length or 0)
    what = f"--num-inputs {args.num_inputs} x --length {args.length}"
    if longest > args.length + 1:
        what += f" (--certificate-length {args.certificate_length})"
    _require_memory(model, args.num_inputs, longest, what, 6)
    report = check(
        model,
        task,
        max_prompt_length=args.max_prompt_length,
        tau=args.tau,
        num_inputs=args.num_inputs,
        length=args.length,
        certificate_length=args.certificate_length,
        seed=args.seed,
        require=args.require,
    )
    if args.output:
        out = Path(args.output)
        if not out.parent.exists():
            raise _CliError(f"output folder {out.parent} does not exist")
        report.to_json(out)
    args.exit_code = report.exit_code  # kept if the reader closes the pipe while we print
    print(report.to_json() if args.json else str(report))
    return report.exit_code


def _reproduce_learned(args) -> int:
    """``reproduce --mode learned``: pretrain a transformer, tune on it (hmmtune.learned)."""
    from tqdm import tqdm

    from .learned.experiment import run_learned

    for flag, bad in (("--truncate", args.truncate), ("--quick", args.quick), ("--jobs", args.jobs != 1)):
        if bad:
            raise _CliError(f"{flag} is an oracle-mode option; learned mode sizes its runs with --scale cpu|paper")
    _check_executor(args)
    args.scale = args.scale or "cpu"
    if args.scale == "paper" and not str(args.device or "").startswith("cuda"):
        print("hmmtune: warning: --scale paper pretrains BERT-base; without --device cuda this takes days", file=sys.stderr)
    bar = tqdm(total=None, unit="run", desc=f"{args.experiment} learned", disable=args.no_progress or None)

    def progress(p):
        if bar.total is None:
            bar.reset(total=p.total)
        bar.update(1)

    kwargs = dict(
        scale=args.scale,
        seeds=args.seeds,
        device=args.device,
        out=args.out,
        threads=args.threads,
        progress=progress,
        show_progress=not args.no_progress,
    )
    if args.executor != "local":  # only then: callers (and tests) of the local path see the old options
        kwargs.update(executor=args.executor, ray_address=args.ray_address)
    return _finish_sweep(lambda: run_learned(args.experiment, **kwargs), bar)


def _check_executor(args) -> None:
    if args.ray_address and args.executor != "ray":
        raise _CliError("--ray-address needs --executor ray")
    if args.executor == "ray":
        from .experiments.executors import require_ray

        require_ray()  # exits 2 with the install line when Ray is missing


def _finish_sweep(run, bar) -> int:
    """Run a sweep, print its table, cost and files; Ctrl-C / SIGTERM: say what is saved."""
    from .experiments.sweep import SweepInterrupted

    try:
        try:
            result = run()
        finally:
            bar.close()
    except SweepInterrupted as exc:
        print(f"hmmtune: {exc.message}", file=sys.stderr)
        return 128 + int(exc.signum)
    print(result.table)
    print(f"\n{result.cost_line()}")
    for what in ("table", "summary", "plot"):
        if what in result.paths:
            print(f"{what}: {result.paths[what]}")
    return 0


#: memory of one seed's share of a sweep's plan, rounded up from 2.5 KiB measured for exp1's
#: 7 configurations (tracemalloc over ``experiments.sweep.plan``); records add to it
SWEEP_BYTES_PER_SEED = 4096


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
    _check_executor(args)
    bar = tqdm(total=None, unit="run", desc=f"{args.experiment} robustness", disable=args.no_progress or None)

    def progress(done, total):
        if bar.total is None:
            bar.reset(total=total)
        bar.update(1)

    from .experiments.sweep import SweepInterrupted

    try:
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
                executor=args.executor,
                ray_address=args.ray_address,
            )
        finally:
            bar.close()
    except SweepInterrupted as exc:
        print(f"hmmtune: {exc.message}", file=sys.stderr)
        return 128 + int(exc.signum)
    for row in result.located:
        cross = ", ".join(f"{k} {'-' if v is None else f'{v:.3g}'}" for k, v in row["crossing_tv"].items())
        learned = "" if row["learned_tv"] is None else f"; learned TV {row['learned_tv']:.3g}"
        print(f"{row['base']} size {row['size']} {row['method']}: paper {row['published']}, ours {row['perfect']:.1f}; TV where our curves reach it: {cross}{learned}")
    print(f"\n{result.sweep.cost_line()}")
    for what, path in result.paths.items():
        if what != "records":
            print(f"{what}: {path}")
    print(f"table: {result.sweep.paths['table']}")
    return 0


def _refuse_learned_options(args) -> None:
    """Learned-mode options given to an oracle-mode run would be ignored: refuse them."""
    for flag, value in (("--device", args.device), ("--scale", args.scale), ("--threads", args.threads)):
        if value is not None:
            raise _CliError(
                f"{flag} is a learned-mode option (add --mode learned); oracle mode computes exact features on the CPU"
            )


def cmd_reproduce(args) -> int:
    if getattr(args, "mode", "oracle") != "learned":
        _refuse_learned_options(args)
    if args.seeds:
        limits.check_memory(f"--seeds {args.seeds}", float(args.seeds) * SWEEP_BYTES_PER_SEED)
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
    _check_executor(args)
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
    return _finish_sweep(
        lambda: run_sweep(
            args.experiment,
            seeds=args.seeds,
            quick=args.quick,
            truncate=args.truncate and not extra,
            out=str(Path(args.out) / ("authors-truncated" if args.truncate else "authors")) if extra else args.out,
            jobs=args.jobs,
            progress=progress,
            executor=args.executor,
            ray_address=args.ray_address,
            **extra,
        ),
        bar,
    )


class _Help(argparse.HelpFormatter):
    """Every option's help ends with its default (unless it says it already)."""

    def _get_help_string(self, action):
        text = action.help or ""
        if not action.option_strings or action.required or action.default is argparse.SUPPRESS or "default" in text:
            return text
        if action.nargs == 0:  # a flag
            return text + (" (default: off)" if action.const is True else "")
        return text + f" (default: {'none' if action.default is None else action.default})"


class _Parser(argparse.ArgumentParser):
    """Bad options: one readable line on stderr and exit status 2 (no usage block)."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Help)
        super().__init__(*args, **kwargs)

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hmmtune",
        description="Exact HMM inference, the perfect masked LM, and checkable conditions for head and prompt tuning.",
    )
    parser.add_argument("--version", action="version", version=f"hmmtune {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser(
        "examples",
        help="list the bundled example models, or print one",
        description="List the bundled example models with a line each, or print one example's JSON "
        "(a model file you can copy and edit; docs: file formats).",
    )
    p.add_argument("name", nargs="?", help="an example's name: print its JSON (default: list them all)")
    p.set_defaults(func=cmd_examples)

    def model_args(p):
        p.add_argument("model", nargs="?", metavar="MODEL.json", help="a model file (docs: file formats); give it or --example")
        p.add_argument("--example", metavar="NAME", help="use a bundled example instead of a file (list: 'hmmtune examples')")

    p = sub.add_parser(
        "check",
        help="check the paper's conditions (Theorems H, P, M) with witnesses and certificates",
        description="Check which of the paper's guarantees apply to a model (and a task), with witnesses and "
        "certificates. Exit code 0: the conditions chosen by --require hold (default: every checked condition); "
        "1: some do not; 2: bad input. Rows marked 'fact' never decide the exit code.",
    )
    model_args(p)
    p.add_argument("--task", metavar="TASK.json", help="a task file (default: the model file's own 'task' field, if any)")
    p.add_argument(
        "--require",
        choices=REQUIRE_CHOICES,
        default="all",
        help="what decides the exit code: all (every checked condition), head (the head condition: the task in the row "
        "space of W, or rank W = m without a task), prompt (Theorem P), memory (Theorem M's rank condition), task "
        "(head or prompt tuning provably recovers the given task)",
    )
    p.add_argument("--json", action="store_true", help="print the full report (witnesses, certificates) as JSON")
    p.add_argument("-o", "--output", type=_path, metavar="REPORT.json", help="also write the JSON report to this file")
    p.add_argument("--max-prompt-length", type=_positive("--max-prompt-length"), default=4, metavar="K", help="longest prompt searched for Theorem P")
    p.add_argument("--tau", type=_nonnegative_float, default=0.0, help="treat transitions <= tau as zero in the prompt search (0: exact)")
    p.add_argument("--num-inputs", type=_positive("--num-inputs"), default=2000, metavar="N", help="sampled inputs for verifying witnesses and measuring margins")
    p.add_argument("--length", type=_positive("--length"), default=16, metavar="T", help="length of the sampled inputs")
    p.add_argument(
        "--certificate-length",
        type=_positive("--certificate-length"),
        default=None,
        metavar="T",
        help="input length of the head's LP certificate (default: the largest T <= 6 with n^T <= 1024, so every input "
        "of that length is used)",
    )
    p.add_argument("--seed", type=_seed, default=0, help="seed of the sampled inputs")
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "sample",
        help="sample sequences from a model into an .npz file",
        description="Sample sequences (tokens and hidden states; a memory model also saves its memory) into a "
        "compressed numpy .npz file.",
    )
    model_args(p)
    p.add_argument("-n", "--num-sequences", type=_positive("-n"), required=True, metavar="N", help="number of sequences (required)")
    p.add_argument("-T", "--length", type=_positive("-T"), required=True, metavar="T", help="tokens per sequence (required)")
    p.add_argument("--seed", type=_seed, default=None, help="random seed (default: fresh randomness)")
    p.add_argument("-o", "--output", type=_path, required=True, metavar="OUT.npz", help="the .npz file to write (required)")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser(
        "predict",
        help="sample inputs and print the perfect masked LM's predictions at the mask",
        description="Sample downstream inputs x and print, for each, the perfect masked LM's posterior P(H_0 | x) "
        "over the mask's hidden state and its prediction G_0(x) = W P(H_0 | x) at the mask.",
    )
    model_args(p)
    p.add_argument("-n", "--num-sequences", type=_positive("-n"), default=3, metavar="N", help="number of inputs")
    p.add_argument("-T", "--length", type=_positive("-T"), default=8, metavar="T", help="tokens per input")
    p.add_argument("--seed", type=_seed, default=0, help="random seed of the inputs")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser(
        "reproduce",
        help="reproduce one of the paper's experiments in oracle or learned mode (table, JSON records, plot)",
        description="Run (or resume) the paper's experiment 1 (head vs prompt tuning) or 2 (memory + attention vs "
        "vanilla + linear head) on exact features. Each (configuration, seed) is saved as soon as it finishes, "
        "so an interrupted sweep resumes where it stopped.",
    )
    p.add_argument(
        "experiment",
        choices=["exp1", "exp2", "robustness"],
        help="exp1: head vs prompt tuning on the paper's random HMMs; exp2: memory HMM + attention head vs vanilla HMM + linear head; robustness: accuracy against pretraining error (docs: robustness)",
    )
    p.add_argument("--seeds", type=_positive("--seeds"), default=None, metavar="N", help="seeds 0..N-1 (default: the paper's, 20 for exp1 and 5 for exp2; 3 / 2 with --quick)")
    p.add_argument("--quick", action="store_true", help="small splits and short inputs: the same models, in seconds")
    p.add_argument("--out", type=_path, default="results", metavar="DIR", help="results folder (default: results)")
    p.add_argument("--jobs", type=_positive("--jobs"), default=1, metavar="J", help="parallel worker processes (local executor); CPUs of a Ray instance started here")
    p.add_argument("--executor", choices=["local", "ray"], default="local", help="local: this machine (default); ray: one Ray task per run, on a cluster with --ray-address (needs: pip install \"hmmtune[ray]\"; docs: running at scale)")
    p.add_argument("--ray-address", default=None, metavar="ADDR", help="Ray executor: 'auto' or HOST:PORT of a running cluster (default: start a local Ray instance)")
    p.add_argument("--truncate", action="store_true", help="exp1: truncate inputs as the authors did (79 tokens, 59 with the prompt)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--mode", choices=["oracle", "learned"], default="oracle", help="oracle: exact features (default); learned: pretrain a transformer masked LM, tune on it (docs: learned mode)")
    p.add_argument("--scale", choices=["cpu", "paper"], default=None, help="learned mode: cpu (default, minutes) or paper (BERT-base, needs --device cuda)")
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
    _add_contract_options(parser, sub)
    return parser


def _add_contract_options(parser, sub) -> None:
    """--debug everywhere; the limits (docs: errors) on every command."""
    parser.add_argument("--debug", action="store_true", help="show the traceback of an internal error")
    for p in sub.choices.values():
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show the traceback of an internal error (default: off)")
        if p.get_default("func") is cmd_examples:
            continue
        p.add_argument("--max-memory", type=_size, default=None, metavar="SIZE",
                       help=f"refuse requests estimated above SIZE (default {limits.format_bytes(limits.Limits.max_memory)}; e.g. 16G)")
        p.add_argument("--max-file-size", type=_size, default=None, metavar="SIZE",
                       help=f"refuse input files above SIZE; also allows one number per {limits.ENTRY_BYTES} bytes of it (default {limits.format_bytes(limits.Limits.max_file_bytes)}, {limits.Limits.max_entries} numbers)")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _run(args) -> int:
    changes = {}
    if getattr(args, "max_memory", None):
        changes["max_memory"] = args.max_memory
    if getattr(args, "max_file_size", None):
        changes["max_file_bytes"] = args.max_file_size
        # a larger file may hold more numbers: the entry limit grows in proportion (one entry
        # per ENTRY_BYTES bytes, the default limits' ratio), never below its default
        changes["max_entries"] = max(limits.Limits.max_entries, args.max_file_size // limits.ENTRY_BYTES)
    with limits.override(**changes):
        code = args.func(args)
    sys.stdout.flush()  # a closed pipe shows here, inside the contract
    return code


def main(argv=None) -> int:
    """Run the command line; returns the exit code of the contract in the module docstring."""
    parser = build_parser()
    args = parser.parse_args(argv)  # --help, --version, a bad option: SystemExit 0 or 2 (one line)
    if not getattr(args, "func", None):
        parser.print_help()
        return EXIT_INPUT
    debug = bool(getattr(args, "debug", False) or os.environ.get("HMMTUNE_DEBUG"))
    try:
        return _run(args)
    except BrokenPipeError:  # the reader (head, less) closed the pipe: stop quietly, keep the code
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:  # pragma: no cover - stdout without a descriptor
            pass
        return getattr(args, "exit_code", EXIT_OK)
    except KeyboardInterrupt:
        print("hmmtune: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except (_CliError, ValueError, OSError) as exc:  # ModelFileError, ResourceLimitError are ValueErrors
        if debug:
            import traceback

            traceback.print_exc()
        print(f"hmmtune: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_INPUT
    except MemoryError:
        print("hmmtune: error: out of memory; lower the sizes asked for (see --max-memory in 'hmmtune COMMAND --help')", file=sys.stderr)
        return EXIT_INPUT
    except Exception as exc:  # anything else is a bug of hmmtune
        if debug:
            import traceback

            traceback.print_exc()
        print(
            f"hmmtune: internal error: {type(exc).__name__}: {_one_line(exc)}. This is a bug: please report it "
            "with the command and input that caused it" + ("" if debug else " (rerun with --debug for the traceback)"),
            file=sys.stderr,
        )
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
