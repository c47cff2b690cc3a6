"""Bounded reads and resource limits (docs/errors.md, "Limits and how to raise them")."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest

from hmmtune import HMM, load_model
from hmmtune.analysis.task import load_task
from hmmtune.models import limits
from hmmtune.io import ModelFileError

SMALL = {"kind": "hmm", "format_version": 1, "initial": [1, 0], "transition": [[1, 0], [0, 1]], "emission": [[1, 0], [0, 1]]}


def test_symlink_to_dev_zero_is_refused_without_reading(tmp_path):
    link = tmp_path / "model.json"
    link.symlink_to("/dev/zero")
    start = time.perf_counter()
    with pytest.raises(ModelFileError, match=r"model\.json: is a device; only regular files are read"):
        load_model(link)
    assert time.perf_counter() - start < 1


def test_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.json"
    os.mkfifo(fifo)
    done = []
    t = threading.Thread(target=lambda: done.append(pytest.raises(ModelFileError, load_model, fifo)))
    t.start()
    t.join(5)
    assert done and "FIFO" in str(done[0].value)


def test_folder_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="is a folder"):
        load_model(tmp_path)


def test_file_size_is_checked_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.json"
    path.write_text(json.dumps(SMALL) + " " * 5000)
    calls = []
    real_open = os.open
    monkeypatch.setattr(os, "open", lambda *a, **k: calls.append(a) or real_open(*a, **k))
    with limits.override(max_file_bytes=1000):
        with pytest.raises(limits.ResourceLimitError, match=r"big\.json: the file has 5\.\d KiB, above the limit 1000 B \(raise it with --max-file-size"):
            load_model(path)
    assert not calls  # refused from stat alone
    assert load_model(path).num_states == 2  # the default limit reads it


def test_the_50mb_of_zeros_file_is_refused_in_seconds(tmp_path):
    # the case: 25 million zeros (50 MB) took 7 minutes and 4 GB before
    n = 5000
    row = "[" + ",".join(["0"] * n) + "]"
    path = tmp_path / "zeros.json"
    with open(path, "w") as f:
        f.write('{"initial": ' + row + ', "transition": [' + ",".join([row] * n) + '], "emission": [[1]]}')
    assert path.stat().st_size > 50e6
    start = time.perf_counter()
    with pytest.raises(limits.ResourceLimitError, match="above the limit"):
        load_model(path)
    assert time.perf_counter() - start < 2


def test_entries_are_counted_before_parsing_them(tmp_path):
    path = tmp_path / "many.json"
    path.write_text(json.dumps({**SMALL, "extra": [0] * 3000}))
    with limits.override(max_entries=1000):
        with pytest.raises(limits.ResourceLimitError, match=r"many\.json: the file holds more than 1000 entries"):
            load_model(path)


@pytest.mark.parametrize("depth", [40, 100_000])
def test_json_nesting_depth(tmp_path, depth):
    path = tmp_path / "deep.json"
    path.write_text('{"initial": ' + "[" * depth + "]" * depth + "}")
    start = time.perf_counter()
    with pytest.raises(limits.ResourceLimitError, match=r"deep\.json: JSON nested"):
        load_model(path)
    assert time.perf_counter() - start < 2


@pytest.mark.parametrize(
    "text, pattern",
    [
        ('{"initial": [NaN, 1]}', "NaN is not a number hmmtune accepts"),
        ('{"initial": [Infinity]}', "Infinity is not a number"),
        ('{"initial": [' + "9" * 5000 + "]}", "invalid JSON"),
        ('{"initial": [1e999, 0], "transition": [[1, 0], [0, 1]], "emission": [[1], [1]]}', "not a finite number"),
        ('{"initial": [' + str(2**1100) + ', 0], "transition": [[1, 0], [0, 1]], "emission": [[1], [1]]}', "too large for a float"),
        ('{"initial": ["1e60", 0], "transition": [[1, 0], [0, 1]], "emission": [[1], [1]]}', "sums to"),
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_bad_numbers_and_bytes(tmp_path, text, pattern):
    path = tmp_path / "m.json"
    (path.write_bytes if isinstance(text, bytes) else path.write_text)(text)
    with pytest.raises(ModelFileError, match=pattern) as info:
        load_model(path)
    assert "m.json" in str(info.value)


@pytest.mark.parametrize("version", [99, 0, "1", 1.0, None, True])
def test_format_version_is_checked(version):
    with pytest.raises(ModelFileError, match=r"field 'format_version' is .*; this version of hmmtune reads format_version 1"):
        load_model({**SMALL, "format_version": version})
    with pytest.raises(ModelFileError, match="format_version"):
        load_task({"kind": "task", "format_version": version, "mu": [1, -1]})
    assert load_model({**SMALL, "format_version": 1}).num_states == 2


def test_memory_format_version_is_checked():
    from hmmtune.examples import example_path

    data = json.loads(example_path("memory").read_text())
    load_model(data)
    with pytest.raises(ModelFileError, match="format_version"):
        load_model({**data, "format_version": 2})


def test_sampling_memory_is_estimated_before_allocating():
    model = HMM([1.0], [[1.0]], [[0.5, 0.5]])
    start = time.perf_counter()
    with pytest.raises(limits.ResourceLimitError, match=r"sampling 100000 sequences of length 100000 needs about 447\.0 GiB, above the limit 4\.0 GiB"):
        model.sample(100_000, 100_000)
    assert time.perf_counter() - start < 1
    with limits.override(max_memory=100):
        with pytest.raises(limits.ResourceLimitError, match="above the limit 100 B"):
            model.sample(10, 10)
    assert model.sample(10, 10, seed=0)[0].shape == (10, 10)


def test_memory_model_sampling_is_estimated():
    from hmmtune.examples import example_path

    model = load_model(example_path("memory"))
    with limits.override(max_memory=1000):
        with pytest.raises(limits.ResourceLimitError, match="sampling 100 sequences of length 100 needs about"):
            model.sample(100, 100)


def test_override_is_scoped_and_checked():
    before = limits.current()
    with limits.override(max_memory=123) as lim:
        assert lim.max_memory == 123 and limits.current().max_memory == 123
    assert limits.current() == before
    with pytest.raises(TypeError, match="unknown limit"):
        with limits.override(max_ram=1):
            pass
    with pytest.raises(ValueError, match="positive integer"):
        with limits.override(max_memory=0):
            pass


@pytest.mark.parametrize("text, expected", [("512", 512), ("1k", 1024), ("64M", 64 * 2**20), ("8GiB", 8 * 2**30), ("1.5g", int(1.5 * 2**30))])
def test_parse_bytes(text, expected):
    assert limits.parse_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "x", "-1", "0", "1q", "nan", "1e999", "99999999999999999999T"])
def test_parse_bytes_refuses(text):
    with pytest.raises(ValueError, match="expected a size"):
        limits.parse_bytes(text)


def test_complex_and_boolean_arrays_are_refused():
    with pytest.raises(ValueError, match="initial: cannot read as an array of real numbers .* complex"):
        HMM(np.array([1 + 1j, 0]), [[1, 0], [0, 1]], [[1, 0], [0, 1]])
    import torch

    with pytest.raises(ValueError, match="transition must hold real numbers .*complex"):
        HMM([1.0, 0.0], torch.eye(2, dtype=torch.complex128), [[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="emission: cannot read .* boolean"):
        HMM([1.0, 0.0], [[1, 0], [0, 1]], np.eye(2, dtype=bool))


def test_max_file_size_on_the_command_line_also_raises_the_entry_limit(tmp_path, capsys):
    """``--max-file-size`` grants one number per ``ENTRY_BYTES`` bytes (never fewer than the
    default), so a large model that fits the raised size is not refused for its count."""
    from hmmtune import cli

    m = 40  # 40 + 1600 + 1600 numbers
    model = {
        "initial": [1] + [0] * (m - 1),
        "transition": [[1 if j == (i + 1) % m else 0 for j in range(m)] for i in range(m)],
        "emission": [[1 if j == i else 0 for j in range(m)] for i in range(m)],
    }
    path = tmp_path / "m.json"
    path.write_text(json.dumps(model))
    with limits.override(max_entries=1000):
        assert cli.main(["check", str(path), "--num-inputs", "10"]) == 2
        assert "entries" in capsys.readouterr().err
        assert cli.main(["check", str(path), "--num-inputs", "10", "--max-file-size", "1M"]) in (0, 1)
