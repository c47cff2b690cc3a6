"""JSON round trips with exact rationals, malformed files, bundled examples (item 9)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import sympy
import torch

from hmmtune import HMM, ModelFileError, list_examples, load_example, load_model, paper_hmm
from hmmtune.examples import example_path
from hmmtune.io import hmm_from_json, hmm_to_json

from conftest import brute_log_prob

pytestmark = pytest.mark.usefixtures("torch_single_thread")

EXACT = {
    "kind": "hmm",
    "format_version": 1,
    "name": "thirds",
    "description": "exact test model",
    "initial": ["1/3", "2/3"],
    "transition": [["1/3", "2/3"], [1, 0]],
    "emission": [["1/7", "6/7", "0"], ["0.25", "0.5", "1/4"]],
}
R = sympy.Rational


def test_exact_rationals_are_kept():
    hmm = hmm_from_json(EXACT)
    assert hmm.exact is not None
    assert hmm.exact["initial"][0] == R(1, 3) and isinstance(hmm.exact["initial"][0], sympy.Rational)
    assert hmm.exact["transition"][1, 0] == 1
    assert hmm.exact["emission"][1, 0] == R(1, 4)  # the decimal "0.25" is exact
    assert hmm.exact["emission"][0, 0] == R(1, 7)
    assert sympy.Matrix(hmm.exact["emission"]).shape == (2, 3)
    # the float tensors are the nearest doubles of the exact values
    assert hmm.initial[0].item() == 1 / 3 and hmm.emission[0, 1].item() == 6 / 7
    assert hmm.name == "thirds" and hmm.description == "exact test model"


def test_exact_round_trip_writes_strings(tmp_path):
    hmm = hmm_from_json(EXACT)
    path = tmp_path / "m.json"
    text = hmm_to_json(hmm, path)
    data = json.loads(path.read_text())
    assert json.loads(text) == data
    assert data["initial"] == ["1/3", "2/3"]
    assert data["transition"][1] == [1, 0]
    assert data["emission"][1] == ["1/4", "1/2", "1/4"]
    for source in (path, str(path), text, data):
        back = hmm_from_json(source)
        for key in ("initial", "transition", "emission"):
            assert back.exact[key] == hmm.exact[key]
            assert torch.equal(getattr(back, key), getattr(hmm, key))
        assert back.name == "thirds"


def test_exact_model_computes_the_exact_probability():
    hmm = hmm_from_json(EXACT)
    x = [1, 0, 1]
    pi, A, B = (np.array(hmm.exact[k].tolist(), dtype=float).squeeze() for k in ("initial", "transition", "emission"))
    assert hmm.log_prob(x).item() == pytest.approx(brute_log_prob(pi, A, B, x), rel=1e-14)
    # and exactly, with rationals: sum over the 8 hidden paths
    import itertools

    E = hmm.exact
    p = sum(
        E["initial"][h[0]] * E["emission"][h[0], x[0]] * E["transition"][h[0], h[1]] * E["emission"][h[1], x[1]]
        * E["transition"][h[1], h[2]] * E["emission"][h[2], x[2]]
        for h in itertools.product(range(2), repeat=3)
    )
    assert isinstance(p, sympy.Rational)
    assert hmm.log_prob(x).item() == pytest.approx(float(sympy.log(p)), rel=1e-14)


def test_a_json_float_makes_the_model_numerical():
    data = json.loads(json.dumps(EXACT))
    data["emission"][1] = [0.25, "1/2", "1/4"]
    hmm = hmm_from_json(data)
    assert hmm.exact is None
    assert hmm.emission[1, 0].item() == 0.25
    with pytest.raises(ValueError, match="no exact entries"):
        hmm_to_json(hmm, exact=True)


def test_float_round_trip_is_bit_exact(tmp_path):
    hmm = paper_hmm(5, seed=1)
    hmm_to_json(hmm, tmp_path / "p.json")
    back = hmm_from_json(tmp_path / "p.json")
    assert back.exact is None and back.dtype == torch.float64
    for key in ("initial", "transition", "emission"):
        assert torch.equal(getattr(back, key), getattr(hmm, key))
    assert back.name == hmm.name


def test_exact_model_can_be_written_as_floats():
    hmm = hmm_from_json(EXACT)
    data = json.loads(hmm_to_json(hmm, exact=False))
    assert data["initial"] == [1 / 3, 2 / 3]
    assert hmm_from_json(data).exact is None


@pytest.mark.parametrize("load_dtype", [None, torch.float32, torch.float64])
def test_float32_model_round_trip(load_dtype):
    """float32 rows cannot sum to 1 within 1e-9; the file must still load."""
    hmm = paper_hmm(8, seed=0, dtype=torch.float32)
    back = hmm_from_json(hmm_to_json(hmm), dtype=load_dtype)
    assert back.dtype == (load_dtype or torch.float32)
    for key in ("initial", "transition", "emission"):
        assert torch.equal(getattr(back, key).float(), getattr(hmm, key))


def test_exact_model_loads_in_float32():
    hmm = hmm_from_json(EXACT, dtype=torch.float32)
    assert hmm.dtype == torch.float32 and hmm.exact is not None


def test_single_token_emission_is_exact():
    """An (m, 1) emission matrix: every row is [1], each sums to exactly 1."""
    hmm = hmm_from_json({"initial": ["1/2", "1/2"], "transition": [["1/2", "1/2"], ["1/3", "2/3"]], "emission": [[1], [1]]})
    assert hmm.exact["emission"].shape == (2, 1)
    assert hmm.log_prob([0, 0, 0]).item() == pytest.approx(0.0, abs=1e-15)


def test_exact_rows_must_sum_to_exactly_one():
    # 1/3 + 1/3 + 0.3333333333 is within 1e-9 of 1 in floats, but not exactly 1
    data = {"initial": ["1/3", "1/3", "0.3333333333"], "transition": [["1"] * 1 + ["0"] * 2] * 3, "emission": [[1]] * 3}
    with pytest.raises(ModelFileError, match=r"<dict>: field 'initial' sums to 29999999999/30000000000 exactly, not 1"):
        hmm_from_json(data)
    data = json.loads(json.dumps(EXACT))
    data["transition"][0] = ["1/3", "1/2"]
    with pytest.raises(ModelFileError, match=r"field 'transition' row 0 sums to 5/6 exactly"):
        hmm_from_json(data)
    data = json.loads(json.dumps(EXACT))
    data["emission"][0] = ["1/7", "7/7", "-1/7"]
    with pytest.raises(ModelFileError, match=r"field 'emission'\[0\]\[2\] = -1/7 is negative"):
        hmm_from_json(data)


def _write(tmp_path, data, name="bad.json"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def _edit(**changes):
    data = json.loads(json.dumps(EXACT))
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    "data, pattern",
    [
        (_edit(emission=None), r"missing field 'emission'"),
        (_edit(transition="not a list"), r"field 'transition' must be a list"),
        (_edit(transition=[["1/3", "2/3"], "x"]), r"field 'transition'\[1\] must be a list"),
        (_edit(initial=["1/3", "two thirds"]), r"field 'initial'\[1\]: cannot read 'two thirds'"),
        (_edit(initial=["1/3", None]), r"field 'initial'\[1\]: expected a number"),
        (_edit(initial=[True, 0]), r"field 'initial'\[0\]: expected a number"),
        (_edit(initial=[{"p": 1}, 0]), r"field 'initial'\[0\]: expected a number"),
        (_edit(emission=[["1/7", "6/7", "0"], ["1/2", "1/2"]]), r"field 'emission' row 1 has 2 entries"),
        (_edit(kind="memory_hmm_unknown"), r"field 'kind'"),
        (_edit(initial=[0.5, 0.6], transition=[[0.5, 0.5], [1, 0]]), r"initial sums to 1\.1"),
        (_edit(transition=[[0.5, 0.4], [1, 0]]), r"transition row 0 sums to 0\.9"),
        (_edit(emission=[[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]]), r"emission must have shape"),
        (_edit(dtype="float16", initial=[0.5, 0.5]), r"field 'dtype'"),
        ("{not json", r"invalid JSON at line 1"),
        ("[1, 2]", r"top level must be a JSON object"),
    ],
)
def test_malformed_files_name_the_file_and_the_field(tmp_path, data, pattern):
    path = _write(tmp_path, data)
    with pytest.raises(ModelFileError, match=pattern) as info:
        hmm_from_json(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, ValueError)
    with pytest.raises(ModelFileError, match=pattern):
        load_model(path)


def test_missing_file():
    with pytest.raises(ModelFileError, match=r"no_such_model\.json: cannot read file"):
        hmm_from_json(Path("no_such_model.json"))
    with pytest.raises(ModelFileError, match=r"no_such_model\.json"):
        load_model("no_such_model.json")


def test_unknown_kind_in_load_model():
    with pytest.raises(ModelFileError, match=r"field 'kind' is 'spaceship'; known kinds: .*hmm"):
        load_model(_edit(kind="spaceship"))


def test_load_model_dispatches_to_hmm():
    hmm = load_model(EXACT)
    assert isinstance(hmm, HMM) and hmm.exact is not None
    no_kind = _edit(kind=None)
    assert isinstance(load_model(no_kind), HMM)


def test_bundled_examples():
    names = list_examples()
    assert "full_rank" in names and names["full_rank"]
    for name in names:
        data = json.loads(example_path(name).read_text())
        model = load_example(name)  # every bundled example loads
        assert model.num_tokens >= 1
        if data.get("kind", "hmm") == "hmm":
            assert isinstance(model, HMM)
    full = load_example("full_rank")
    assert full.exact is not None
    assert full.exact["initial"][2] == R(1, 6)
    assert full.num_states == 3 and full.num_tokens == 4
    with pytest.raises(ValueError, match="unknown example 'nope'.*full_rank"):
        example_path("nope")
