"""The shared helpers: atomic writes and seed derivation."""

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
