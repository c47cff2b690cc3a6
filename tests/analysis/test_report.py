"""The Report (issue 4, item 8): JSON round trip, strict JSON, the text table, exit codes."""

from __future__ import annotations

import json

import pytest

import hmmtune
from hmmtune.analysis import Condition, Report, check

from analysis_helpers import exact_model
from conftest import np_params

pytestmark = pytest.mark.usefixtures("torch_single_thread")

QUICK = dict(num_inputs=100, length=4)


def _strict(text: str) -> dict:
    """Parse as RFC 8259 JSON: NaN and Infinity are not JSON."""

    def refuse(const):
        raise ValueError(f"non-standard JSON constant {const}")

    return json.loads(text, parse_constant=refuse)


@pytest.fixture(scope="module")
def example_reports():
    out = {}
    for name in ("full_rank", "prompt", "memory", "parametric"):
        model = hmmtune.load_example(name)
        task = None
        if name in ("prompt", "parametric"):
            from hmmtune.analysis import load_task

            task = load_task(hmmtune.example_path(name))
        out[name] = check(model, task, **QUICK)
    return out


@pytest.mark.parametrize("name", ["full_rank", "prompt", "memory", "parametric"])
def test_round_trip_text_path_and_dict(example_reports, name, tmp_path):
    r = example_reports[name]
    text = r.to_json()
    d = _strict(text)
    assert d["kind"] == "hmmtune.report"
    back = Report.from_json(text)
    assert back == r and back.to_json() == text
    path = tmp_path / "report.json"
    r.to_json(path)
    assert Report.from_json(path) == r
    assert Report.from_json(str(path)) == r
    assert Report.from_json(d) == r
    # the conditions survive field by field
    for c0, c1 in zip(r.conditions, back.conditions):
        assert (c0.name, c0.holds, c0.method, c0.explanation, c0.can_decide) == (c1.name, c1.holds, c1.method, c1.explanation, c1.can_decide)


@pytest.mark.parametrize("name", ["full_rank", "prompt", "memory", "parametric"])
def test_holds_and_exit_code_follow_the_counting_conditions(example_reports, name):
    r = example_reports[name]
    d = _strict(r.to_json())
    counting = [c["holds"] for c in d["conditions"] if c["counts"]]
    assert counting, "every report checks at least one condition"
    expected = all(h is True for h in counting)
    assert d["holds"] == r.holds == expected
    assert r.exit_code == (0 if expected else 1)
    assert r.exit_code == {"full_rank": 0, "prompt": 1, "memory": 0, "parametric": 0}[name]


@pytest.mark.parametrize("name", ["full_rank", "prompt", "memory", "parametric"])
def test_text_table_lists_every_condition_with_its_mark(example_reports, name):
    r = example_reports[name]
    text = str(r)
    lines = text.splitlines()
    assert lines[0].startswith(f"hmmtune check: {name}")
    mark = {True: "yes", False: "NO", None: "-"}
    fact_mark = {True: "yes", False: "no", None: "-"}
    for c in r.conditions:
        row = [ln for ln in lines if ln.startswith(c.name + " ")]
        assert len(row) == 1, c.name
        holds, role = row[0][len(c.name) :].split()[:2]
        # rows that do not decide the exit code never read "NO": they are facts
        assert (holds, role) == ((mark[c.holds], "decides") if c.can_decide else (fact_mark[c.holds], "fact"))
    verdict = text.split("verdict:")[1]
    if r.holds:
        assert verdict.startswith(" holds (--require all): every deciding condition holds")
    else:
        failing = [c.name for c in r.conditions if c.can_decide and c.holds is not True]
        assert verdict.startswith(f" does not hold (--require all): {len(failing)} deciding condition(s) fail")
        for n in failing:
            assert n in verdict
    for c in r.conditions:  # the verdict line names exactly the conditions that decided it
        assert (c.name in verdict.splitlines()[0]) == c.can_decide


def test_task_line_binary_and_multiclass():
    pi, A, B = np_params("m3n4")
    model = exact_model(pi, A, B)
    binary = check(model, {"mu": [1, 0, -1]}, **QUICK)
    assert "task: y = 1[mu . p >= 0], mu = [1, 0, -1], p = P(H_0 | x)" in str(binary)
    multi = check(model, {"weights": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}, **QUICK)
    assert "3 classes" in str(multi)
    assert Report.from_json(multi.to_json()) == multi
    none = check(model, **QUICK)
    assert "task: none given" in str(none) and none.task is None


def test_from_json_refuses_other_documents_and_condition_lookup():
    with pytest.raises(ValueError, match="not an hmmtune report"):
        Report.from_json({"kind": "hmm"})
    r = Report("m", "hmm", {"num_states": 1}, None, [Condition("x", True, "exact", "fine")])
    assert r.condition("x").holds is True
    with pytest.raises(KeyError):
        r.condition("y")
    assert r != Report("m", "hmm", {"num_states": 1}, None, [Condition("x", False, "exact", "fine")])


def test_report_of_an_all_ties_task_is_strict_json_and_round_trips():
    pi, A, B = np_params("m3n4")  # pi[1] = 0
    model = exact_model(pi, A, B)
    r = check(model, {"mu": [0, 1, 0]}, num_inputs=50, length=3)
    text = r.to_json()
    _strict(text)
    assert Report.from_json(text) == r
