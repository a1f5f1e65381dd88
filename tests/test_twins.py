"""Every neuron and pooling kernel against its numpy step function (eventsnn.engine.steps).

The step functions are the semantics the reference engine runs on. For the neuron kernels the
values are random float32 numbers, not dyadic ones: kernel and step function perform the same
float32 operations in the same order, so they must agree bit for bit on any input. Pooling
works on integer counts (exact). The synapse kernels' twins are in ``twins.py``, and so is the
k-order twin of the reproducible matrix product.
"""

import numpy as np
import pytest

from eventsnn.engine import steps
from eventsnn.engine.numba_engine import internal_order
from eventsnn.kernels import neurons, pooling
from eventsnn.kernels.gemm import linear, matmul
from test_kernels import events_to_dense, make_events, pool_setup, random_counts
from twins import matmul_in_k_order, window_slots


def _f32(rng, n, lo, hi):
    return rng.uniform(lo, hi, n).astype(np.float32)


def _events(s, idx, cnt, n):
    np.testing.assert_array_equal(idx[:n], np.flatnonzero(s))  # ascending neuron order
    np.testing.assert_array_equal(cnt[:n], s[s > 0])


@pytest.mark.parametrize("bounded", [False, True])
@pytest.mark.parametrize("seed", range(8))
def test_if_image_is_burst_if_step(seed, bounded):
    rng = np.random.default_rng(seed)
    N, gamma = 200, int(rng.integers(1, 6))
    theta = np.float32(rng.uniform(0.3, 2.0))
    v_max = theta if bounded else None
    V, I, const = _f32(rng, N, -1, 2), _f32(rng, N, -2, 6), _f32(rng, N, -0.5, 1)
    v = V.copy()
    s = steps.burst_if_step(v, I + const, theta, gamma, v_max)
    idx, cnt = np.zeros(N, np.int32), np.zeros(N, np.int32)
    n = neurons.if_image(V, I, const, theta, gamma, np.float32(np.inf if v_max is None else v_max),
                         idx, cnt)
    np.testing.assert_array_equal(V, v)
    np.testing.assert_array_equal(I, 0)
    _events(s, idx, cnt, n)


@pytest.mark.parametrize("leak", [False, True])
@pytest.mark.parametrize("spiking", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_nir_image_is_nir_step(seed, leak, spiking):
    rng = np.random.default_rng(seed)
    N = 300
    params = np.stack([_f32(rng, N, 0.05, 1.0), _f32(rng, N, 0.2, 3.0), _f32(rng, N, -0.5, 0.5),
                       _f32(rng, N, 0.2, 1.5), _f32(rng, N, -0.5, 0.2)])
    V, I, const = _f32(rng, N, -1, 1.5), _f32(rng, N, -1, 3), _f32(rng, N, -0.5, 1)
    for _ in range(5):  # several steps: resets and leaks compound
        v = V.copy()
        z = steps.nir_step(v, I + const, params, leak, spiking)
        idx, cnt = np.zeros(N, np.int32), np.zeros(N, np.int32)
        n = neurons.nir_image(V, I, const, params.ravel(), leak, spiking, idx, cnt)
        np.testing.assert_array_equal(V, v)
        np.testing.assert_array_equal(I, 0)
        if spiking:
            assert 0 < n < N
            _events(z, idx, cnt, n)
        else:
            assert n == 0 and not z.any()
        I = _f32(rng, N, -1, 3)


def test_output_image_is_integrator_step():
    rng = np.random.default_rng(1)
    U, I, const = _f32(rng, 50, -2, 2), _f32(rng, 50, -2, 2), _f32(rng, 50, -2, 2)
    u = U.copy()
    steps.integrator_step(u, I + const)
    neurons.output_image(U, I, const)
    np.testing.assert_array_equal(U, u)
    np.testing.assert_array_equal(I, 0)


def _windows(src, dst, kernel, stride, padding):
    """Hidden-unit indices of each window for the step functions: unit ``w*K + k`` is slot k
    of window w (padded slots have no unit); plus the source element of every unit."""
    slots = window_slots(src, dst, kernel, stride, padding)
    K = slots.shape[1]
    windows = [w * K + np.flatnonzero(row >= 0) for w, row in enumerate(slots)]
    return windows, np.where(slots >= 0, slots, 0).ravel(), (slots >= 0).ravel()


@pytest.mark.parametrize("kind", ["lipool", "maxgate"])
@pytest.mark.parametrize("seed", range(8))
def test_pooling_kernels_are_pooling_steps(seed, kind):
    rng, src, dst, kernel, stride, padding, conn, (yp, yo, yt, xp, xo, xt) = pool_setup(seed)
    n_src, n_win, K = int(np.prod(src)), int(np.prod(dst)), kernel[0] * kernel[1]
    so, do = internal_order(src), internal_order(dst)
    windows, unit_src, real = _windows(src, dst, kernel, stride, padding)
    hidden = np.zeros(n_win * K, np.int64)          # step state: h_{w,i} or C_{w,i}
    h, cum, cur = (np.zeros(n_win * K, np.int32), np.zeros(n_src, np.int32),
                   np.zeros(n_src, np.int32))
    stamp, touched = np.full(n_win, -1, np.int32), np.zeros(n_win, np.int32)
    out_idx, out_cnt = np.zeros(n_win, np.int32), np.zeros(n_win, np.int32)
    fan = conn.fan_out()[so]
    for t in range(10):
        counts = random_counts(rng, 1, n_src, p=0.4, high=3)[0]
        step_count = counts[unit_src] * real
        hidden += step_count
        if kind == "lipool":
            expect = steps.lipool_step(hidden, windows)
        else:
            expect = steps.maxgate_step(hidden, step_count, windows)
        idx, cnt, n = make_events(np.ascontiguousarray(counts[so])[None])
        if kind == "lipool":
            ne, _ = pooling.lipool_image(t, idx[0], cnt[0], n[0], src[0], src[2], yp, yo, yt, xp,
                                         xo, xt, kernel[1], dst[2], fan, h, stamp, touched,
                                         out_idx, out_cnt)
        else:
            ne, _ = pooling.maxgate_image(t, idx[0], cnt[0], n[0], src[0], src[1], src[2],
                                          kernel[0], kernel[1], stride[0], stride[1], padding[0],
                                          padding[1], yp, yo, xp, xo, dst[2], fan, cum, cur,
                                          stamp, touched, out_idx, out_cnt)
        got = events_to_dense(out_idx[None], out_cnt[None], np.array([ne]), n_win)[0]
        np.testing.assert_array_equal(got, expect[do], err_msg=f"step {t}")


# --- the reproducible matrix product (ANN forward, input currents) -------------------------


@pytest.mark.parametrize("m,k,n", [(1, 1, 1), (3, 7, 5), (16, 27, 700), (5, 300, 257), (9, 2, 1030)])
def test_matmul_is_k_order_twin(m, k, n):
    # same float32 operations in the same order: equal bit for bit on random (non-dyadic) data
    rng = np.random.default_rng(m * k * n)
    a = rng.standard_normal((m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)
    np.testing.assert_array_equal(matmul(a, b), matmul_in_k_order(a, b))


def test_matmul_does_not_depend_on_the_batch():
    # column j of a @ b is the same whether b has 1 column or 1000 (BLAS gives no such promise)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((16, 147)).astype(np.float32)
    b = rng.standard_normal((147, 1000)).astype(np.float32)
    whole = matmul(a, b)
    for j0, j1 in [(0, 1), (3, 260), (999, 1000), (255, 513)]:
        np.testing.assert_array_equal(matmul(a, b[:, j0:j1]), whole[:, j0:j1])


def test_matmul_refuses_mismatched_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(4, 5\)"):
        matmul(np.ones((2, 3)), np.ones((4, 5)))


def test_linear_rounds_as_matmul_of_the_transposed_weight():
    # x @ W.T computed as (W @ x.T).T: the same products in the same k order, equal bits
    rng = np.random.default_rng(2)
    x = rng.standard_normal((7, 300)).astype(np.float32)
    w = rng.standard_normal((33, 300)).astype(np.float32)
    got = linear(x, w)
    np.testing.assert_array_equal(got, matmul_in_k_order(x, w.T))
    assert got.flags.c_contiguous and got.dtype == np.float32
