"""The HMM class: validation (item 3), dtype and device, sampling (item 5)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hmmtune import HMM

from conftest import brute_prob, np_params

pytestmark = pytest.mark.usefixtures("torch_single_thread")

PI = [0.5, 0.3, 0.2]
A = [[0.5, 0.5, 0.0], [0.0, 0.2, 0.8], [0.3, 0.0, 0.7]]
B = [[0.7, 0.3], [0.1, 0.9], [0.5, 0.5]]


def _with(array, index, value):
    out = np.array(array, dtype=float)
    out[index] = value
    return out


# ------------------------------------------------------------------ construction
@pytest.mark.parametrize("kind", ["list", "numpy", "torch"])
def test_accepts_lists_numpy_and_tensors(kind):
    conv = {"list": lambda a: a, "numpy": np.asarray, "torch": lambda a: torch.tensor(a, dtype=torch.float64)}[kind]
    hmm = HMM(conv(PI), conv(A), conv(B))
    assert hmm.num_states == 3 and hmm.num_tokens == 2
    assert hmm.dtype == torch.float64
    np.testing.assert_array_equal(hmm.transition.numpy(), np.asarray(A))
    assert "num_states=3" in repr(hmm)


def test_model_owns_its_parameters():
    """Changing the caller's arrays after construction must not change (or invalidate) the model."""
    pi, a, b = np.array(PI), np.array(A), np.array(B)
    tp, ta, tb = (torch.tensor(v, dtype=torch.float64) for v in (PI, A, B))
    for args in ((pi, a, b), (tp, ta, tb)):
        hmm = HMM(*args)
        args[0][0] = 7.0
        args[1][1, 1] = -1.0
        args[2][2, 0] = 0.0
        np.testing.assert_array_equal(hmm.initial.numpy(), PI)
        np.testing.assert_array_equal(hmm.transition.numpy(), A)
        np.testing.assert_array_equal(hmm.emission.numpy(), B)


def test_dtype_float32():
    hmm = HMM(PI, A, B, dtype=torch.float32)
    assert hmm.dtype == hmm.transition.dtype == hmm.emission.dtype == torch.float32
    # float32 tensors in, float32 model out (no silent widening)
    f32 = HMM(*(torch.tensor(a, dtype=torch.float32) for a in (PI, A, B)))
    assert f32.dtype == torch.float32
    # float32 numbers widened to float64 are valid (checked at their own resolution)
    for conv in (lambda a: torch.tensor(a, dtype=torch.float32), lambda a: np.asarray(a, dtype=np.float32)):
        wide = HMM(*(conv(a) for a in (PI, A, B)), dtype=torch.float64)
        assert wide.dtype == torch.float64
    x = [[0, 1, 1], [1, 1, 0]]
    for h in (hmm, f32):
        assert h.log_prob(x).dtype == torch.float32
        assert h.posterior(x).dtype == torch.float32
        assert h.loo_posterior(x).dtype == torch.float32
    np.testing.assert_allclose(
        hmm.log_prob(x).numpy(), [np.log(brute_prob(np.array(PI), np.array(A), np.array(B), s)) for s in x], rtol=1e-6
    )


def test_integer_tensors_become_float64():
    hmm = HMM(torch.tensor([1, 0]), torch.tensor([[1, 0], [0, 1]]), torch.tensor([[1, 0], [0, 1]]))
    assert hmm.dtype == torch.float64


def test_to_changes_dtype_and_keeps_values():
    hmm = HMM(PI, A, B)
    h32 = hmm.to(dtype=torch.float32)
    assert h32.dtype == torch.float32 and hmm.dtype == torch.float64
    np.testing.assert_allclose(h32.transition.numpy(), A, rtol=1e-7)
    assert h32.to(dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("dtype", [torch.float16, torch.int64, torch.complex64])
def test_unsupported_dtype(dtype):
    with pytest.raises(ValueError, match="dtype"):
        HMM(PI, A, B, dtype=dtype)


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("device", DEVICES)
def test_device(device, dtype):
    from hmmtune import ZeroProbabilityError

    from conftest import brute_masked_posterior, brute_posterior

    pi, a, b = np_params("m3n4")
    hmm = HMM(pi, a, b, device=device, dtype=dtype)
    assert hmm.device.type == device and hmm.dtype == dtype
    assert hmm.to(dtype=dtype).device.type == device
    x = torch.tensor([[0, 1, 2, 3], [3, 2, 2, 0], [2, 2, 2, 2]])
    tol = 1e-12 if dtype == torch.float64 else 2e-6
    lp, post, mpost = hmm.log_prob(x), hmm.posterior(x), hmm.loo_posterior(x.tolist())
    for out in (lp, post, mpost):
        assert out.device.type == device and out.dtype == dtype
    np.testing.assert_allclose(
        lp.cpu().numpy(), [np.log(brute_prob(pi, a, b, s)) for s in x.numpy()], rtol=tol * 10
    )
    np.testing.assert_allclose(post.cpu().numpy(), [brute_posterior(pi, a, b, s) for s in x.numpy()], atol=tol)
    np.testing.assert_allclose(mpost.cpu().numpy(), [brute_masked_posterior(pi, a, b, s) for s in x.numpy()], atol=tol)
    # chunks and zero-probability sequences behave the same on the device
    np.testing.assert_allclose(hmm.posterior(x, chunk_size=1).cpu().numpy(), post.cpu().numpy(), atol=tol)
    m2 = HMM(*np_params("m2n2"), device=device, dtype=dtype)
    with pytest.raises(ZeroProbabilityError) as info:
        m2.log_prob([[0, 1], [1, 1], [0, 0]], chunk_size=2)
    assert info.value.index == 2
    tokens, states = hmm.sample(4, 3, seed=0)
    assert tokens.shape == (4, 3) and tokens.dtype == torch.long
    cpu_tokens, _ = HMM(pi, a, b, dtype=dtype).sample(4, 3, seed=0)
    assert torch.equal(tokens.cpu(), cpu_tokens)  # the seed decides the draw, whatever the device


# ------------------------------------------------------------------ validation
@pytest.mark.parametrize(
    "args, pattern",
    [
        # non-finite entries, named with array, index and value
        ((_with(PI, 1, np.nan), A, B), r"initial\[1\] is not finite \(nan\)"),
        ((PI, _with(A, (2, 0), np.inf), B), r"transition\[2, 0\] is not finite \(inf\)"),
        ((PI, A, _with(B, (1, 1), -np.inf)), r"emission\[1, 1\] is not finite \(-inf\)"),
        # negative entries
        ((_with(PI, 2, -0.2), A, B), r"initial\[2\] is negative \(-0\.2\)"),
        ((PI, _with(A, (1, 0), -0.25), B), r"transition\[1, 0\] is negative \(-0\.25\)"),
        ((PI, A, _with(B, (0, 1), -1e-300)), r"emission\[0, 1\] is negative"),
        # rows that do not sum to 1: array, row, value
        ((_with(PI, 0, 0.6), A, B), r"initial sums to 1\.(1|0999)\d*, not 1"),
        ((PI, _with(A, (1, 2), 0.7), B), r"transition row 1 sums to 0\.(9|8999)\d*, not 1"),
        ((PI, A, _with(B, (2, 1), 0.75)), r"emission row 2 sums to 1\.25, not 1"),
        # shapes
        ((PI, [[0.5, 0.5], [0.5, 0.5]], B), r"transition must have shape \(m, m\) = \(3, 3\)"),
        ((PI, [[1 / 3] * 3] * 2 + [[1.0, 0.0, 0.0]] + [[1.0, 0.0, 0.0]], B), r"transition must have shape"),
        ((PI, A, [[0.5, 0.5], [0.5, 0.5]]), r"emission must have shape \(m, n\) with m = 3"),
        ((PI, A, [0.5, 0.5]), r"emission must have 2 dimension"),
        (([PI], A, B), r"initial must have 1 dimension"),
        (([], [], []), r"empty"),
        ((PI, A, [[0.5, 0.5], [1.0], [0.5, 0.5]]), r"emission: cannot read"),
        ((["a", "b", "c"], A, B), r"initial: cannot read"),
    ],
)
def test_validation_errors(args, pattern):
    with pytest.raises(ValueError, match=pattern):
        HMM(*args)


def test_row_sum_relative_tolerance_is_1e_minus_9():
    ok = _with(A, (1, 2), 0.8 + 5e-10)  # sum 1 + 5e-10: accepted
    HMM(PI, ok, B)
    bad = _with(A, (1, 2), 0.8 + 5e-9)  # sum 1 + 5e-9: rejected, naming the row and the value
    with pytest.raises(ValueError, match=r"transition row 1 sums to 1\.000000005"):
        HMM(PI, bad, B)
    with pytest.raises(ValueError, match=r"initial sums to 0\.99999999"):
        HMM(_with(PI, 0, 0.5 - 1e-8), A, B)


def test_float32_rows_are_checked_at_float32_resolution():
    # the float32 nearest to 0.1 etc. never sums to 1 within 1e-9, but is a valid model
    third = torch.full((3, 3), 1 / 3, dtype=torch.float32)
    HMM(torch.full((3,), 1 / 3, dtype=torch.float32), third, torch.full((3, 2), 0.5, dtype=torch.float32))
    with pytest.raises(ValueError, match="transition row 0"):
        HMM(PI, torch.tensor([[0.5, 0.49, 0.0], *A[1:]], dtype=torch.float32), B, dtype=torch.float32)


# ------------------------------------------------------------------ token validation
@pytest.mark.parametrize(
    "tokens, pattern",
    [
        ([[0, 1, 2]], r"tokens\[0, 2\] = 2 is outside the vocabulary \[0, 2\)"),
        ([[0, 1], [-1, 0]], r"tokens\[1, 0\] = -1 is outside the vocabulary"),
        (torch.tensor([[0, 5]]), r"tokens\[0, 1\] = 5"),
        ([[0, 1, 1], [0, 1]], r"equal lengths; row 1 has 2 tokens, row 0 has 3"),
        ([[0.5, 1.0]], r"must hold integers"),
        (np.array([[0.0, np.nan]]), r"must hold integers"),
        (torch.tensor([[0.0, 1.0]]), r"integer tensor"),
        (torch.tensor([[True, False]]), r"integer tensor"),
        ([["a", "b"]], r"tokens"),
        ([[]], r"length 0"),
        (torch.zeros(2, 2, 2, dtype=torch.long), r"shape \(B, T\)"),
    ],
)
@pytest.mark.parametrize("method", ["log_prob", "posterior", "loo_posterior"])
def test_bad_tokens(tokens, pattern, method):
    hmm = HMM(PI, A, B)
    with pytest.raises(ValueError, match=pattern):
        getattr(hmm, method)(tokens)


def test_token_inputs_agree():
    """LongTensor, int32 tensor, numpy and lists give the same answer."""
    hmm = HMM(PI, A, B)
    x = [[0, 1, 1, 0], [1, 1, 1, 1]]
    want = [np.log(brute_prob(np.array(PI), np.array(A), np.array(B), s)) for s in x]
    for form in (x, np.array(x), np.array(x, dtype=np.int32), torch.tensor(x), torch.tensor(x, dtype=torch.int32)):
        np.testing.assert_allclose(hmm.log_prob(form).numpy(), want, rtol=1e-12)


# ------------------------------------------------------------------ sampling
def test_sample_shapes_types_and_reproducibility():
    hmm = HMM(*np_params("m3n4"))
    tokens, states = hmm.sample(7, 5, seed=123)
    assert tokens.shape == states.shape == (7, 5)
    assert tokens.dtype == states.dtype == torch.long
    t2, s2 = hmm.sample(7, 5, seed=123)
    assert torch.equal(tokens, t2) and torch.equal(states, s2)
    t3, s3 = hmm.sample(7, 5, seed=124)
    assert not (torch.equal(tokens, t3) and torch.equal(states, s3))
    # the global torch RNG neither seeds nor is consumed by a seeded call
    torch.manual_seed(0)
    r0 = torch.rand(1)
    torch.manual_seed(0)
    hmm.sample(3, 3, seed=1)
    assert torch.equal(torch.rand(1), r0)
    # unseeded calls differ
    a, _ = hmm.sample(50, 20)
    b, _ = hmm.sample(50, 20)
    assert not torch.equal(a, b)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True, None])
def test_sample_bad_sizes(bad):
    hmm = HMM(PI, A, B)
    with pytest.raises(ValueError, match="num_sequences"):
        hmm.sample(bad, 3)
    with pytest.raises(ValueError, match="length"):
        hmm.sample(3, bad)


def test_sample_never_uses_impossible_steps():
    pi, a, b = np_params("m3n4")
    hmm = HMM(pi, a, b)
    tokens, states = hmm.sample(3000, 8, seed=5)
    s, x = states.numpy(), tokens.numpy()
    assert np.all(pi[s[:, 0]] > 0)
    assert np.all(a[s[:, :-1], s[:, 1:]] > 0)
    assert np.all(b[s, x] > 0)


def test_sample_statistics_match_exact_marginals():
    """Empirical state, token and pair frequencies against exact marginals pi A^t (B)."""
    pi, a, b = np_params("m4n3")
    hmm = HMM(pi, a, b)
    N, T = 20000, 5
    tokens, states = hmm.sample(N, T, seed=2024)
    s, x = states.numpy(), tokens.numpy()
    m, n = b.shape
    marg = pi.copy()
    for t in range(T):
        state_freq = np.bincount(s[:, t], minlength=m) / N
        token_freq = np.bincount(x[:, t], minlength=n) / N
        tok_marg = marg @ b
        # five standard deviations of a binomial proportion
        assert np.all(np.abs(state_freq - marg) <= 5 * np.sqrt(marg * (1 - marg) / N) + 1e-12), t
        assert np.all(np.abs(token_freq - tok_marg) <= 5 * np.sqrt(tok_marg * (1 - tok_marg) / N) + 1e-12), t
        if t + 1 < T:
            pair = np.zeros((m, m))
            np.add.at(pair, (s[:, t], s[:, t + 1]), 1.0)
            pair /= N
            want = marg[:, None] * a
            assert np.all(np.abs(pair - want) <= 5 * np.sqrt(want * (1 - want) / N) + 1e-12), t
        marg = marg @ a
    # tokens given states follow the emission rows
    for h in range(m):
        sel = x[s == h]
        freq = np.bincount(sel, minlength=n) / len(sel)
        assert np.all(np.abs(freq - b[h]) <= 5 * np.sqrt(b[h] * (1 - b[h]) / len(sel)) + 1e-12)


def test_sample_float32_model():
    pi, a, b = np_params("m3n2")
    tokens, states = HMM(pi, a, b, dtype=torch.float32).sample(5000, 2, seed=0)
    freq = np.bincount(states[:, 0].numpy(), minlength=3) / 5000
    assert np.all(np.abs(freq - pi) < 5 * np.sqrt(pi * (1 - pi) / 5000))
