"""The command line (item 10): help, version, examples, sample; exit codes and messages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import hmmtune
from hmmtune import HMM, load_example
from hmmtune.cli import main
from hmmtune.io import hmm_to_json

from conftest import brute_mask_posterior, brute_mask_prediction, brute_prob

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _one_line_error(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("hmmtune: error: ")
    return lines[0]


def test_version_subprocess():
    out = subprocess.run(
        [sys.executable, "-m", "hmmtune", "--version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"hmmtune {hmmtune.__version__}"
    assert hmmtune.__version__ != "0.0.0+unknown"  # installed: the version comes from the metadata


def test_help(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("examples", "sample"):
        assert command in out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage: hmmtune" in capsys.readouterr().out


def test_examples_list_and_show(capsys):
    assert main(["examples"]) == 0
    out = capsys.readouterr().out
    assert "full_rank" in out
    assert main(["examples", "full_rank"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["initial"] == ["1/2", "1/3", "1/6"]


def test_examples_unknown(capsys):
    assert main(["examples", "no_such_example"]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert "no_such_example" in line and "full_rank" in line


def test_sample_from_example(tmp_path, capsys):
    out = tmp_path / "s.npz"
    assert main(["sample", "--example", "full_rank", "-n", "6", "-T", "9", "--seed", "3", "-o", str(out)]) == 0
    assert str(out) in capsys.readouterr().out
    with np.load(out) as data:
        tokens, states = data["tokens"], data["states"]
    assert tokens.shape == states.shape == (6, 9)
    assert np.issubdtype(tokens.dtype, np.integer)
    # the same seed through the library gives the same draw
    t, s = load_example("full_rank").sample(6, 9, seed=3)
    np.testing.assert_array_equal(tokens, t.numpy())
    np.testing.assert_array_equal(states, s.numpy())
    assert not list(tmp_path.glob("*.tmp*"))  # no temporary file left behind


def test_sample_from_file_is_reproducible(tmp_path):
    pi, A, B = [0.2, 0.8], [[0.0, 1.0], [0.5, 0.5]], [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5]]
    model = tmp_path / "m.json"
    hmm_to_json(HMM(pi, A, B), model)
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    assert main(["sample", str(model), "-n", "50", "-T", "4", "--seed", "7", "-o", str(a)]) == 0
    assert main(["sample", str(model), "-n", "50", "-T", "4", "--seed", "7", "-o", str(b)]) == 0
    with np.load(a) as da, np.load(b) as db:
        np.testing.assert_array_equal(da["tokens"], db["tokens"])
        tokens = da["tokens"]
    for seq in tokens:
        assert brute_prob(np.array(pi), np.array(A), np.array(B), seq) > 0


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["sample", "{missing}", "-n", "2", "-T", "2", "-o", "{out}"], "missing.json"),
        (["sample", "{bad}", "-n", "2", "-T", "2", "-o", "{out}"], "field 'transition'"),
        (["sample", "--example", "full_rank", "-n", "2", "-T", "2", "-o", "{dir}/x.txt"], ".npz"),
        (["sample", "--example", "full_rank", "-n", "2", "-T", "2", "-o", "{dir}/nodir/x.npz"], "does not exist"),
        (["sample", "-n", "2", "-T", "2", "-o", "{out}"], "no model given"),
        (["sample", "{bad}", "--example", "full_rank", "-n", "2", "-T", "2", "-o", "{out}"], "not both"),
        (["sample", "--example", "nope", "-n", "2", "-T", "2", "-o", "{out}"], "unknown example"),
    ],
)
def test_bad_input_exit_2_with_one_line(tmp_path, capsys, argv, expected):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"initial": [1.0], "transition": "oops", "emission": [[1.0]]}))
    fill = dict(missing=str(tmp_path / "missing.json"), bad=str(bad), out=str(tmp_path / "o.npz"), dir=str(tmp_path))
    assert main([a.format(**fill) for a in argv]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert expected in line
    if expected.startswith("field"):
        assert str(bad) in line  # names the file and the field
    assert not (tmp_path / "o.npz").exists()


@pytest.mark.parametrize(
    "argv",
    [
        ["reproduce", "exp1", "--quick", "--device", "cuda"],
        ["reproduce", "exp2", "--quick", "--scale", "paper"],
        ["reproduce", "robustness", "--threads", "4"],
        ["reproduce", "exp1", "--quick", "--pretraining-error", "noise=0.1", "--device", "cpu"],
    ],
)
def test_learned_mode_options_are_refused_in_oracle_mode_not_ignored(tmp_path, capsys, argv):
    """An oracle-mode run computes exact features on the CPU: --device, --scale and
    --threads would be ignored there, so they are refused before anything runs."""
    flag = next(a for a in argv if a in ("--device", "--scale", "--threads"))
    assert main(argv + ["--out", str(tmp_path / "r")]) == 2
    line = _one_line_error(capsys.readouterr().err)
    assert line.startswith(f"hmmtune: error: {flag} is a learned-mode option") and "--mode learned" in line
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flag, value", [("-n", "0"), ("-T", "-3"), ("-n", "many")])
def test_bad_numbers_are_usage_errors(capsys, tmp_path, flag, value):
    argv = ["sample", "--example", "full_rank", "-n", "2", "-T", "2", "-o", str(tmp_path / "o.npz")]
    argv[argv.index(flag) + 1] = value
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "positive integer" in capsys.readouterr().err


def test_predict(capsys):
    """The printed posteriors and predictions are the perfect masked LM's (brute force)."""
    assert main(["predict", "--example", "full_rank", "-n", "2", "-T", "3", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    hmm = load_example("full_rank")
    pi, A, B = (np.array(hmm.exact[k].tolist(), dtype=float).squeeze() for k in ("initial", "transition", "emission"))
    blocks = out.split("x = ")[1:]
    assert len(blocks) == 2
    for block in blocks:
        lines = block.splitlines()
        x = [int(v) for v in lines[0].split()]
        assert len(x) == 3
        post = np.array(lines[1].split("=", 1)[1].strip(" []").split(), dtype=float)
        pred = np.array(lines[2].split("=", 1)[1].strip(" []").split(), dtype=float)
        np.testing.assert_allclose(post, brute_mask_posterior(pi, A, B, x), atol=1e-3)
        np.testing.assert_allclose(pred, brute_mask_prediction(pi, A, B, x), atol=1e-3)


def _subparsers(parser):
    import argparse

    for action in parser._actions:  # argparse keeps subcommands here; no public accessor
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_every_option_has_help_with_its_default_and_every_command_a_description():
    """Issue 12, item 5: a newcomer learns every option from --help alone."""
    from hmmtune.cli import build_parser

    commands = _subparsers(build_parser())
    assert {"examples", "check", "sample", "predict", "reproduce"} <= set(commands)
    for name, sub in commands.items():
        assert sub.description and len(sub.description) > 40, name
        text = sub.format_help()
        for action in sub._actions:
            if action.dest == "help":
                continue
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
            if action.option_strings:
                rendered = sub._get_formatter()._get_help_string(action)
                assert "default" in rendered or action.required, f"{name} {action.option_strings}: no default"
                if action.required:
                    assert "required" in action.help
        assert "default: " in text
