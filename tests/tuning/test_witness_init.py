"""A report's witness starts head and prompt tuning as is (issue 15, item 3).

For every bundled example, ``check`` runs through the public API, the report goes through
its JSON form (exact rationals become strings such as ``"3/7"``), and the witness starts
``fit_head`` / ``fit_prompt`` with no conversion by the caller. The reference is
independent: the witness's own head, evaluated with numpy on the oracle's features,
reproduces the task's labels, and Adam with ``lr = 0`` (which never moves) returns a head
that predicts exactly what that numpy evaluation predicts.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from hmmtune import OracleMLM
from hmmtune.analysis import check
from hmmtune.analysis.report import Report
import json

from hmmtune.examples import example_path, list_examples, load_example
from hmmtune.tuning import LinearHead, fit_head, fit_prompt, prompt_features
from hmmtune.tuning.heads import as_float_tensor
from hmmtune.tuning import TrainConfig

#: a task for the examples that ship without one
_DEFAULT_TASKS = {"full_rank": {"mu": [1, -1, 0]}}


def _rows(entries) -> np.ndarray:
    """Independent parse of a witness's rows (exact strings via Fraction)."""
    return np.array([[float(Fraction(str(v))) for v in row] for row in entries])


def _labels(oracle, x, weights) -> tuple[np.ndarray, np.ndarray]:
    p0 = oracle.mask_posterior(x).double().numpy()
    s = p0 @ np.asarray(weights, dtype=float).T
    srt = np.sort(s, 1)
    return s.argmax(1), (srt[:, -1] - srt[:, -2]) > 1e-12


def _task_weights(rep: Report) -> np.ndarray:
    return np.array([[float(Fraction(str(v))) for v in row] for row in rep.task["weights"]])


@pytest.mark.parametrize("name", sorted(list_examples()))
def test_witness_from_a_real_report_starts_tuning(name):
    model = load_example(name)
    task = json.loads(example_path(name).read_text()).get("task") or _DEFAULT_TASKS[name]  # as `hmmtune check --example`
    rep = check(model, task, num_inputs=300, length=8)
    rep = Report.from_json(rep.to_json())  # what a user reads back: exact rationals as strings
    used = 0
    if rep.kind == "hmm":
        oracle = OracleMLM(model)
        x, _ = model.sample(400, 9, seed=3)
        x = x[:, 1:]
        y, clear = _labels(oracle, x, _task_weights(rep))
        yt = torch.as_tensor(y)
        head = rep.condition("head: task in row space of W")
        if head.holds:
            used += 1
            b = _rows(head.witness["head"])
            G = oracle.mask_prediction(x).double().numpy()
            ref = (np.hstack([np.zeros((len(G), 1)), G @ b.T]).argmax(1))
            assert (ref == y)[clear].all()  # the witness recovers the task (Theorem H)
            for init in (head, head.to_dict(), head.witness):
                fit = fit_head(torch.as_tensor(G), yt, init=init, config=TrainConfig(method="adam", lr=0.0, epochs=1))
                assert torch.equal(fit.head.predict(torch.as_tensor(G)), torch.as_tensor(ref))
            fit = fit_head(torch.as_tensor(G), yt, init=head)
            assert fit.head.accuracy(torch.as_tensor(G)[clear], yt[clear]) == 1.0
        prompt = rep.condition("prompt: Theorem P support")
        if prompt.holds:
            used += 1
            u = as_float_tensor(prompt.witness["prompt"])
            b = _rows(prompt.witness["head"])
            Gu = prompt_features(oracle, x, u).double().numpy()
            ref = np.hstack([np.zeros((len(Gu), 1)), Gu @ b.T]).argmax(1)
            assert (ref == y)[clear].all()  # the prompted witness recovers the task (Theorem P)
            fit = fit_prompt(oracle, x, yt, init_prompt=prompt, config=TrainConfig(method="adam", lr=0.0, epochs=1))
            assert fit.prompt.shape == u.shape
            assert torch.equal(fit.predict(oracle, x), torch.as_tensor(ref))
    else:
        mem = rep.condition("memory: anchors and leave-one-out stability (empirical)")
        used += 1
        b = _rows([mem.witness["head"]])[0]
        h = LinearHead.from_init(mem, 2)
        assert torch.allclose(h.b, torch.as_tensor(b))
        assert float(h.c) == 0.0
        G = torch.rand(50, model.num_tokens, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        ref = (G.numpy() @ b >= 0).astype(int)
        fit = fit_head(G, torch.as_tensor(ref), init=mem, config=TrainConfig(method="adam", lr=0.0, epochs=1))
        assert torch.equal(fit.head.predict(G), torch.as_tensor(ref))
    assert used, f"{name}: the report has no witness to start tuning from"


def test_exact_rational_strings_and_clear_errors():
    h = LinearHead.from_init((["1/3", "-2/3", 0], "1/2"), 2)
    assert torch.allclose(h.b, torch.tensor([1 / 3, -2 / 3, 0.0], dtype=torch.float64))
    assert float(h.c) == 0.5
    with pytest.raises(ValueError, match=r"initial head b\[1\].*'x/3'"):
        LinearHead.from_init((["1/3", "x/3"], 0), 2)
    with pytest.raises(ValueError, match="no 'head' field"):
        LinearHead.from_init({"rank": 3}, 2)
    with pytest.raises(ValueError, match="rows of different lengths"):
        as_float_tensor([[1, 2], [3]], "rows")
