"""The shared helpers: atomic writes and seed derivation."""

import subprocess
import sys

import numpy as np
import pytest

from hmmtune import common


def test_write_text_atomic_replaces_and_leaves_nothing_behind(tmp_path):
    path = tmp_path / "sub" / "a.json"
    common.write_text_atomic(path, "one")
    common.write_text_atomic(path, "two")
    assert path.read_text() == "two"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.json"]


def test_write_atomic_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.bin"
    common.write_atomic(path, lambda fh: fh.write(b"old"), binary=True)

    def broken(fh):
        fh.write(b"half")
        raise RuntimeError("disk gone")

    with pytest.raises(RuntimeError, match="disk gone"):
        common.write_atomic(path, broken, binary=True)
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_derive_seed_is_numpy_seed_sequence():
    # Independent reference: numpy's SeedSequence, first 32-bit word of its state.
    for parts in [(0,), (1, 2, 3), (2**40, 0xE1, 7)]:
        want = int(np.random.SeedSequence(list(parts)).generate_state(1, np.uint32)[0])
        assert common.derive_seed(*parts) == want
    assert common.derive_seed(1, 2) != common.derive_seed(2, 1)


def test_lazy_module_imports_on_first_read_and_then_reads_like_the_module():
    code = (
        "import sys\n"
        "from hmmtune.common import lazy_module\n"
        "js = lazy_module('json')\n"
        "fresh = 'json' not in sys.modules\n"
        "dumps = js.dumps\n"
        "import json\n"
        "print(fresh, dumps is json.dumps, 'dumps' in vars(js), js.loads('[1]') == [1])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert out == ["True", "True", "True", "True"]


def test_lazy_module_names_a_missing_attribute_and_is_tensor_needs_no_torch():
    from hmmtune.common import is_tensor, lazy_module

    with pytest.raises(AttributeError, match="no_such_name"):
        lazy_module("json").no_such_name  # noqa: B018
    with pytest.raises(AttributeError):  # dunder probes (copy, pickle, inspect) do not import
        lazy_module("json").__file__  # noqa: B018  (the real module has one)
    import torch

    assert is_tensor(torch.zeros(2)) and is_tensor(torch.nn.Parameter(torch.zeros(2)))
    assert not is_tensor(np.zeros(2)) and not is_tensor([0.0])
