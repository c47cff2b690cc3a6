"""hmmtune.io owns the file formats: round trips through the package, dispatch on the
file's kind without registration, and the hmmlearn / Pyro adapters."""

from __future__ import annotations

import json

import numpy as np
import pytest
import sympy
import torch

import hmmtune
import hmmtune.io as hio
from hmmtune import HMM, MemoryHMM


def _memory():
    return MemoryHMM(
        [[1 / 3, 2 / 3], [0.5, 0.5]],
        [0.25, 0.25, 0.25, 0.25],
        np.full((4, 4), 0.25),
        [[[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], [[0.1, 0.1, 0.8], [1.0, 0.0, 0.0]]],
        2,
    )


EXACT_MEMORY = {
    "kind": "memory_hmm",
    "memory_prior": ["1/3", "2/3"],
    "initial": ["1/2", "1/2"],
    "transition": [["1/4", "3/4"], [1, 0]],
    "emission": [[["1/2", "1/2"], [0, 1]], [[1, 0], ["1/5", "4/5"]]],
}


def test_hmm_round_trip_exact_and_float(tmp_path):
    hmm = hio.hmm_from_json({"initial": ["1/3", "2/3"], "transition": [["1/2", "1/2"], [0, 1]], "emission": [["1/4", "3/4"], [1, 0]]})
    assert hmm.exact["initial"][0] == sympy.Rational(1, 3)
    text = hio.hmm_to_json(hmm, tmp_path / "h.json")
    back = hio.load_model(tmp_path / "h.json")
    assert isinstance(back, HMM) and back.exact == hmm.exact and json.loads(text)["kind"] == "hmm"
    num = hmmtune.paper_hmm(4, 6, seed=0)
    again = hio.load_model(hio.hmm_to_json(num))
    assert again.exact is None and torch.equal(again.transition, num.transition)


def test_memory_round_trip_exact_and_float(tmp_path):
    exact = hio.load_model(EXACT_MEMORY)
    assert isinstance(exact, MemoryHMM) and exact.exact["memory_prior"].shape == (1, 2)
    hio.memory_hmm_to_json(exact, tmp_path / "m.json")
    back = hio.load_model(tmp_path / "m.json")
    assert back.exact == exact.exact and torch.equal(back.emission, exact.emission)
    num = _memory()
    again = hio.memory_hmm_from_json(hio.memory_hmm_to_json(num))
    assert again.exact is None and torch.equal(again.memory_prior, num.memory_prior)
    torch.testing.assert_close(again.log_prob([[0, 2, 1]]), num.log_prob([[0, 2, 1]]), rtol=0, atol=0)


def test_load_model_dispatches_on_kind_without_registration():
    assert set(hio.KINDS) == {"hmm", "memory_hmm"}
    with pytest.raises(hio.ModelFileError, match="known kinds: hmm, memory_hmm"):
        hio.load_model({"kind": "other"})
    with pytest.raises(hio.ModelFileError, match="expected 'memory_hmm'"):
        hio.memory_hmm_from_json(dict(EXACT_MEMORY, kind="hmm"))


def test_exact_rows_are_checked_once_for_both_formats():
    # within 1e-9 of 1 as floats, so only the exact check (hmmtune.io.check_exact_rows) sees it
    bad = dict(EXACT_MEMORY, transition=[["1/3", "0.666666666667"], [1, 0]])
    with pytest.raises(hio.ModelFileError, match=r"field 'transition' row 0 sums to \S+ exactly, not 1"):
        hio.load_model(bad)
    bad = {"initial": ["1/3", "0.666666666667"], "transition": [[1, 0], [0, 1]], "emission": [[1], [1]]}
    with pytest.raises(hio.ModelFileError, match=r"field 'initial' sums to \S+ exactly, not 1"):
        hio.load_model(bad)


def test_adapters_round_trip():
    pytest.importorskip("hmmlearn")
    hmm = hmmtune.paper_hmm(3, 5, seed=1)
    back = hio.hmm_from_hmmlearn(hio.hmm_to_hmmlearn(hmm))
    assert torch.equal(back.emission, hmm.emission)
    x = hmm.sample(2, 4, seed=0)[0]
    d = hio.hmm_to_pyro_discrete_hmm(hmm, 4)
    torch.testing.assert_close(d.log_prob(x.to(hmm.dtype)), hmm.log_prob(x), rtol=1e-12, atol=1e-12)


def test_io_is_light_to_import():
    import subprocess
    import sys

    code = "import sys, hmmtune.io.expr; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
