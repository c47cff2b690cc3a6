"""A float task (e.g. hmmtune.tuning.LinearTask) on an exact model: the prompt witness is
computed in float64 and must agree with the exact one computed from the same task given
as exact rationals."""

from fractions import Fraction

import numpy as np

from hmmtune import load_example
from hmmtune.analysis import prompt_condition


class FloatTask:
    weights = np.array([[0.0, 0, 0, 0, 0], [1.0, -1.0, 0, 0, 0]])
    cell = None


def test_float_task_on_exact_model_matches_the_exact_witness():
    model = load_example("prompt")
    c_float = prompt_condition(model, FloatTask(), num_inputs=200, length=8)
    c_exact = prompt_condition(model, {"mu": ["1", "-1", 0, 0, 0]}, num_inputs=200, length=8)
    assert c_float.holds is True and c_exact.holds is True
    exact_b = [float(Fraction(v)) for v in c_exact.witness["head"][0]]
    np.testing.assert_allclose(c_float.witness["head"][0], exact_b, rtol=1e-12)
    assert c_float.witness["agreement"] == 1.0
