"""An HMM built from lists or numpy arrays is validated in numpy and makes its torch tensors
on first use (so that reading a model file and checking ranks and the graph never imports
torch); one built from tensors, or with a dtype or device, keeps the eager path. Both paths
must give the same tensors, the same errors and the same analysis."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from hmmtune import HMM
from hmmtune.analysis import matrices

rng = np.random.default_rng(11)


def _random_model(m=4, n=5):
    def rows(r, c):
        a = rng.random((r, c)) + 0.05
        return a / a.sum(-1, keepdims=True)

    return rows(1, m)[0], rows(m, m), rows(m, n)


def test_numpy_first_tensors_equal_the_eager_ones_bit_for_bit():
    pi, A, B = _random_model()
    lazy = HMM(pi, A.tolist(), B)
    eager = HMM(torch.from_numpy(pi), torch.from_numpy(A), torch.from_numpy(B))
    for name in ("initial", "transition", "emission"):
        t, e = getattr(lazy, name), getattr(eager, name)
        assert t.dtype == e.dtype == torch.float64 and t.device == e.device
        assert torch.equal(t, e)
        np.testing.assert_array_equal(lazy.as_numpy(name), eager.as_numpy(name))
    x = torch.from_numpy(rng.integers(0, 5, (3, 7)))
    assert torch.equal(lazy.posterior(x), eager.posterior(x))
    assert lazy.dtype == torch.float64 and (lazy.num_states, lazy.num_tokens) == (4, 5)


def test_the_model_owns_its_numbers_and_as_numpy_is_read_only():
    pi, A, B = _random_model()
    model = HMM(pi, A, B)
    A[0, 0] = 7.0  # the caller's array changes later: the model kept a copy
    assert model.as_numpy("transition")[0, 0] != 7.0
    view = model.as_numpy("transition")
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 1.0
    with pytest.raises(ValueError, match="'initial', 'transition' or 'emission'"):
        model.as_numpy("W")


def test_tensor_and_its_numpy_view_stay_one_set_of_numbers():
    pi, A, B = _random_model()
    model = HMM(pi, A, B)
    model.transition[0] = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)  # in place
    np.testing.assert_array_equal(model.as_numpy("transition")[0], [0.25] * 4)
    model.emission = model.emission.flip(0).contiguous()  # replaced
    np.testing.assert_array_equal(model.as_numpy("emission"), B[::-1])


def test_float32_models_keep_the_eager_path():
    pi, A, B = _random_model()
    model = HMM(pi, A, B, dtype=torch.float32)
    assert model.emission.dtype == torch.float32
    np.testing.assert_allclose(model.as_numpy("emission"), B, rtol=1e-6)
    assert model.as_numpy("emission").dtype == np.float64


BAD = [
    ("transition", lambda A: A.__setitem__((1, 2), np.nan), r"transition\[1, 2\] is not finite \(nan\)"),
    ("transition", lambda A: A.__setitem__((2, 0), -0.5), r"transition\[2, 0\] is negative \(-0.5\)"),
    ("transition", lambda A: A.__setitem__((3, 1), A[3, 1] + 0.1), r"transition row 3 sums to 1\.(1|0999)\d*, not 1 \(relative tolerance 1e-09\)"),
]


@pytest.mark.parametrize("field, spoil, message", BAD)
def test_numpy_and_tensor_inputs_fail_with_the_same_message(field, spoil, message):
    pi, A, B = _random_model()
    spoil(A)
    with pytest.raises(ValueError, match=message) as from_numpy:
        HMM(pi, A, B)
    with pytest.raises(ValueError, match=message) as from_tensors:
        HMM(torch.from_numpy(pi), torch.from_numpy(A), torch.from_numpy(B))
    assert str(from_numpy.value) == str(from_tensors.value)


def test_float32_numbers_are_checked_at_float32_resolution_on_both_paths():
    pi, A, B = _random_model()
    A32 = A.astype(np.float32)  # rows off 1 by float32 rounding: accepted, as before
    HMM(pi, A32, B)
    HMM(torch.from_numpy(pi), torch.from_numpy(A32), torch.from_numpy(B))
    A32[0] *= np.float32(1.001)
    for make in (lambda: HMM(pi, A32, B), lambda: HMM(torch.from_numpy(pi), torch.from_numpy(A32), torch.from_numpy(B))):
        with pytest.raises(ValueError, match="transition row 0 sums to"):
            make()


def test_a_model_file_is_read_and_its_ranks_checked_without_torch():
    code = (
        "import sys\n"
        "from hmmtune.io import load_model\n"
        "from hmmtune.analysis import matrices, linalg\n"
        "from hmmtune import example_path\n"
        "model = load_model(example_path('full_rank'))\n"
        "W = matrices.float_W(model)\n"
        "r, _, _ = linalg.numerical_rank(W)\n"
        "print(r, model.num_states, model.num_tokens, 'torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout.split()
    assert out == ["3", "3", "4", "False"]
    from hmmtune import load_example

    model = load_example("full_rank")  # in this process: the same rank from numpy's matrix_rank on the tensor
    assert np.linalg.matrix_rank(model.emission.numpy()) == 3 and matrices.float_W(model).shape == (4, 3)


def test_copies_and_pickles_keep_their_own_parameters():
    import copy
    import pickle

    pi, A, B = _random_model()
    model = HMM(pi, A, B, name="m")
    shallow, deep, restored = copy.copy(model), copy.deepcopy(model), pickle.loads(pickle.dumps(model))
    shallow.initial = torch.full((4,), 0.25, dtype=torch.float64)
    np.testing.assert_array_equal(model.as_numpy("initial"), pi)  # the original is untouched
    for other in (deep, restored):
        assert other.name == "m" and torch.equal(other.transition, model.transition)
        np.testing.assert_array_equal(other.as_numpy("emission"), B)
