"""The conv kernels against a naive numpy twin: the row scatter (any stride and padding) and
the 3x3 window sweep (padding 1, stride 1 or 2, few output channels, ascending events).

Weights are multiples of 2^-8 of small magnitude: float sums are exact in any order, so the
kernels must agree bit for bit with the twin.
"""

import numpy as np
import pytest

from eventsnn.engine.numba_engine import internal_order
from eventsnn.kernels import synapses
from eventsnn.network import ConvConnection
from twins import conv_scatter as twin


@pytest.mark.parametrize("seed", range(40))
def test_conv_rows_image(seed):
    rng = np.random.default_rng(seed)
    ci, co = int(rng.integers(1, 10)), int(rng.choice([1, 3, 16, 17, 32]))
    h, w = int(rng.integers(1, 9)), int(rng.integers(1, 9))
    kh, kw = int(rng.integers(1, 5)), int(rng.integers(1, 5))
    stride = [1, 1] if seed < 8 else [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    padding = [int(rng.integers(0, kh)), int(rng.integers(0, kw)),
               int(rng.integers(0, kh)), int(rng.integers(0, kw))]
    ho = (h + padding[0] + padding[2] - kh) // stride[0] + 1
    wo = (w + padding[1] + padding[3] - kw) // stride[1] + 1
    if ho < 1 or wo < 1:
        pytest.skip("empty output")
    weight = (rng.integers(-64, 65, (co, ci, kh, kw)) / 256).astype(np.float32)
    conn = ConvConnection("a", "b", (ci, h, w), (co, ho, wo), weight=weight, stride=stride,
                          padding=padding)
    density = rng.choice([0.1, 0.5, 1.0])
    counts = (rng.integers(1, 6, (2, ci, h, w)) * (rng.random((2, ci, h, w)) < density))
    if seed % 3 == 0:  # signed (Poisson-coded input)
        counts = counts * rng.choice([-1, 1], counts.shape)
    so, do = internal_order((ci, h, w)), internal_order((co, ho, wo))
    fan_out = np.ascontiguousarray(conn.fan_out()[so])
    wr = synapses.row_weight(weight, stride[1])
    expected = twin(counts, weight, stride, padding, (co, ho, wo)).reshape(2, -1)[:, do]
    for b in range(2):
        c = counts[b].reshape(-1)[so]
        nz = np.flatnonzero(c)
        if seed % 2:  # any event order (pooling populations emit theirs in window order)
            nz = rng.permutation(nz)
        idx = np.zeros(c.size, np.int32)
        cnt = np.zeros(c.size, np.int32)
        idx[:len(nz)], cnt[:len(nz)] = nz, c[nz]
        I = np.zeros(co * ho * wo, np.float32)
        ops = synapses.conv_rows_image(idx, cnt, len(nz), ci, w, kh, kw, *stride, padding[0],
                                       padding[1], co, ho, wo, wr, fan_out, I)
        np.testing.assert_array_equal(I, expected[b].astype(np.float32))
        assert ops == int(np.abs(counts[b]).reshape(-1) @ conn.fan_out())


@pytest.mark.parametrize("seed", range(40))
def test_conv3x3_image(seed):
    """The window sweep equals the twin and the row scatter bit for bit, SynOps included."""
    rng = np.random.default_rng(seed)
    stride = 1 + seed % 2
    ci, co = int(rng.integers(1, 20)), int(rng.choice(synapses.WINDOW_LANES[stride]))
    h, w = int(rng.integers(1, 10)), int(rng.integers(1, 10))
    ho, wo = (h - 1) // stride + 1, (w - 1) // stride + 1
    weight = (rng.integers(-64, 65, (co, ci, 3, 3)) / 256).astype(np.float32)
    conn = ConvConnection("a", "b", (ci, h, w), (co, ho, wo), weight=weight,
                          stride=[stride] * 2, padding=[1, 1, 1, 1])
    density = rng.choice([0.02, 0.2, 1.0])
    counts = rng.integers(1, 6, (ci, h, w)) * (rng.random((ci, h, w)) < density)
    if seed % 4 > 1:  # signed (Poisson-coded input)
        counts = counts * rng.choice([-1, 1], counts.shape)
    so, do = internal_order((ci, h, w)), internal_order((co, ho, wo))
    fan_out = np.ascontiguousarray(conn.fan_out()[so])
    wr = synapses.row_weight(weight, stride)
    c = counts.reshape(-1)[so]
    nz = np.flatnonzero(c)  # ascending, as IF populations emit them
    idx = np.zeros(c.size, np.int32)
    cnt = np.zeros(c.size, np.int32)
    idx[:len(nz)], cnt[:len(nz)] = nz, c[nz]
    I = (rng.integers(-64, 65, co * ho * wo) / 256).astype(np.float32)  # current so far
    rows = I.copy()
    ops = synapses.conv3x3_image(idx, cnt, len(nz), ci, h, w, stride, co, wr, fan_out, I)
    expected = twin(counts[None], weight, [stride] * 2, [1, 1, 1, 1], (co, ho, wo))
    np.testing.assert_array_equal(I, (expected.reshape(-1)[do] + rows).astype(np.float32))
    assert ops == int(np.abs(counts).reshape(-1) @ conn.fan_out())
    assert synapses.conv_rows_image(idx, cnt, len(nz), ci, w, 3, 3, stride, stride, 1, 1, co,
                                    ho, wo, wr, fan_out, rows) == ops
    np.testing.assert_array_equal(I, rows)


def test_row_weight_layout():
    w = np.arange(2 * 3 * 2 * 3, dtype=np.float32).reshape(2, 3, 2, 3)  # (O, I, kh, kw)
    wr = synapses.row_weight(w).reshape(2, 3, 3, 2)                      # (kh, I, r, O)
    for co in range(2):
        for ci in range(3):
            for ky in range(2):
                for kx in range(3):
                    assert wr[ky, ci, 3 - 1 - kx, co] == w[co, ci, ky, kx]


def test_row_weight_phases():
    """Stride 2, kw = 3: phase 0 holds taps (2, 0), phase 1 tap (1,), each (kh, I, r, O)."""
    w = np.arange(2 * 3 * 2 * 3, dtype=np.float32).reshape(2, 3, 2, 3)  # (O, I, kh, kw)
    wr = synapses.row_weight(w, 2)
    p0 = wr[:2 * 3 * 2 * 2].reshape(2, 3, 2, 2)
    p1 = wr[2 * 3 * 2 * 2:].reshape(2, 3, 1, 2)
    np.testing.assert_array_equal(p0[:, :, 0, :], w[:, :, :, 2].transpose(2, 1, 0))
    np.testing.assert_array_equal(p0[:, :, 1, :], w[:, :, :, 0].transpose(2, 1, 0))
    np.testing.assert_array_equal(p1[:, :, 0, :], w[:, :, :, 1].transpose(2, 1, 0))


@pytest.mark.parametrize("m", [0, 5, 16, 20, 48, 96])
def test_axpy4_against_numpy(m):
    # vector path for multiples of 16, loop otherwise; dyadic values: exact in any order
    rng = np.random.default_rng(m)
    src = (rng.integers(-64, 65, 400) / 256).astype(np.float32)
    dst = (rng.integers(-64, 65, 200) / 256).astype(np.float32)
    a = [int(v) for v in rng.integers(0, 400 - max(m, 1), 4)]
    s = [np.float32(v) for v in rng.integers(-5, 6, 4)]
    d = 7
    want = dst.astype(np.float64)
    want[d:d + m] += sum(float(s[k]) * src[a[k]:a[k] + m].astype(np.float64) for k in range(4))
    synapses._axpy4(dst, d, src, *a, *s, m)
    assert np.array_equal(dst, want.astype(np.float32))
