"""Properties of spiking max pooling: LIPooling max recovery (Eq. 12) and max-gate bounds (Eq. 11)."""

import numpy as np
import pytest
from hypothesis import given, settings

from eventsnn.pooling import lipool, maxgate, pool_geometry
from eventsnn.testing import check_max_recovery, pooling_cases
from twins import window_reduce


@settings(max_examples=200, deadline=None)
@given(pooling_cases())
def test_lipool_max_recovery(case):
    """Eq. 12: cumulative output == window max of cumulative inputs at every step."""
    counts, k, s, p = case
    out = lipool(counts, k, s, p)
    check_max_recovery(counts, out, k, s, p)
    assert out.dtype == np.int64 and out.min() >= 0


@settings(max_examples=200, deadline=None)
@given(pooling_cases())
def test_maxgate_bounds(case):
    """Eq. 11: max_i C_i(t) <= O(t) <= sum_i C_i(t); each step o(t) <= max_i s_i(t)."""
    counts, k, s, p = case
    out = maxgate(counts, k, s, p)
    cum = np.cumsum(counts, axis=0)
    cum_out = np.cumsum(out, axis=0)
    assert np.all(cum_out >= window_reduce(cum, k, s, p, np.max))
    assert np.all(cum_out <= window_reduce(cum, k, s, p, np.sum))
    assert np.all(out <= window_reduce(counts, k, s, p, np.max))
    assert np.all(out >= 0)


@settings(max_examples=100, deadline=None)
@given(pooling_cases())
def test_maxgate_naive_twin(case):
    """max-gate against a loop over windows with explicit first-index tie-breaking."""
    counts, k, s, p = case
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (ho, wo) = pool_geometry(counts.shape, k, s, p)
    xp = np.pad(counts, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    expect = np.zeros(counts.shape[:2] + (ho, wo), dtype=np.int64)
    for c in range(counts.shape[1]):
        for i in range(ho):
            for j in range(wo):
                win = xp[:, c, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(len(xp), -1)
                cum = np.zeros(win.shape[1], dtype=np.int64)
                for t in range(len(win)):
                    cum += win[t]
                    best = 0
                    for e in range(1, len(cum)):
                        if cum[e] > cum[best]:
                            best = e
                    expect[t, c, i, j] = win[t, best]
    np.testing.assert_array_equal(maxgate(counts, k, s, p), expect)


def test_maxgate_overshoots_paper_two_largest_remark():
    """Counterexample: with 3 elements the max-gate output can exceed the two largest inputs."""
    counts = np.zeros((3, 1, 1, 3), dtype=np.int64)
    counts[0, 0, 0, 0], counts[1, 0, 0, 1], counts[2, 0, 0, 2] = 1, 2, 3
    out = maxgate(counts, (1, 3))
    assert out[:, 0, 0, 0].tolist() == [1, 2, 3]  # 6 spikes out; inputs 1, 2, 3 (two largest: 5)
    assert lipool(counts, (1, 3))[:, 0, 0, 0].tolist() == [1, 1, 1]  # max recovery: 3


def test_lipool_corrects_history():
    """A later winner inhibits the output instead of adding to it (Fig. 4)."""
    counts = np.array([[1, 0], [0, 1], [0, 1], [0, 1]]).reshape(4, 1, 1, 2)
    assert lipool(counts, (1, 2))[:, 0, 0, 0].tolist() == [1, 0, 1, 1]
    assert maxgate(counts, (1, 2))[:, 0, 0, 0].tolist() == [1, 0, 1, 1]
    counts = np.array([[1, 0], [0, 2], [1, 0]]).reshape(3, 1, 1, 2)
    assert lipool(counts, (1, 2))[:, 0, 0, 0].tolist() == [1, 1, 0]
    assert maxgate(counts, (1, 2))[:, 0, 0, 0].tolist() == [1, 2, 1]  # tie -> lowest index: 4 > 2


def test_kernel_one_is_identity():
    counts = np.random.default_rng(0).integers(0, 4, size=(5, 2, 3, 4))
    np.testing.assert_array_equal(lipool(counts, 1), counts)
    np.testing.assert_array_equal(maxgate(counts, 1), counts)


def test_padding_forms_agree():
    counts = np.random.default_rng(1).integers(0, 3, size=(4, 1, 5, 5))
    a = lipool(counts, 3, 2, 1)
    np.testing.assert_array_equal(a, lipool(counts, (3, 3), (2, 2), (1, 1)))
    np.testing.assert_array_equal(a, lipool(counts, (3, 3), (2, 2), (1, 1, 1, 1)))
    assert lipool(counts, 2).shape == (4, 1, 2, 2)  # stride defaults to the kernel


@settings(max_examples=100, deadline=None)
@given(pooling_cases())
def test_lipool_matches_torch_max_pool2d(case):
    """Cumulative LIPool output == torch max_pool2d of cumulative counts (float64, exact)."""
    torch = pytest.importorskip("torch")
    counts, k, s, p = case
    cum = torch.from_numpy(np.cumsum(counts, axis=0).astype(np.float64))
    expect = torch.nn.functional.max_pool2d(cum, k, s, p).numpy()
    np.testing.assert_array_equal(np.cumsum(lipool(counts, k, s, p), axis=0), expect)


@pytest.mark.parametrize("fn", [lipool, maxgate])
def test_bad_inputs(fn):
    good = np.zeros((2, 1, 4, 4), dtype=np.int64)
    with pytest.raises(TypeError, match="integer"):
        fn(good.astype(np.float32), 2)
    with pytest.raises(ValueError, match=r"\(T, C, H, W\)"):
        fn(good[0], 2)
    with pytest.raises(ValueError, match=">= 0"):
        fn(good - 1, 2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        fn(good, 5)
    with pytest.raises(ValueError, match=">= 1"):
        fn(good, 0)
    with pytest.raises(ValueError, match=">= 1"):
        fn(good, 2, stride=(1, 0))
    with pytest.raises(ValueError, match="padding"):
        fn(good, 2, padding=-1)
    with pytest.raises(TypeError, match="kernel_size"):
        fn(good, (2, 2, 2))
    with pytest.raises(TypeError, match="kernel_size"):
        fn(good, 2.5)
    with pytest.raises(TypeError, match="padding"):
        fn(good, 2, padding=(1, 1, 1))
