"""Every numba kernel against a naive numpy twin on random inputs.

The per-image kernels (neurons, synapses, pooling) are tested here one by one; the batch
driver :func:`eventsnn.kernels.simulate.simulate_batch` that strings them together is tested
against a dense numpy clock-driven twin in ``test_numba_engine.py``.

Float results are compared for exact equality: weights, biases and potentials are multiples of
2^-8 of small magnitude, so every partial sum is exactly representable in float32 and the
order of accumulation does not matter. Integer outputs (events, counts, SynOps) are exact.
"""

import numpy as np
import pytest

from eventsnn.engine.numba_engine import internal_order, scatter_table, to_internal, to_public
from eventsnn.kernels import neurons, pooling, synapses
from eventsnn.network import ConvConnection, PoolConnection
from twins import conv_scatter, gather, window_slots


def q8(a):
    """Round to a multiple of 2^-8 (exact float32 arithmetic in these tests)."""
    return (np.round(np.asarray(a) * 256) / 256).astype(np.float32)


def make_events(counts):
    """Kernel event lists (idx, cnt, n) of a dense (B, N) int array, ascending neuron order."""
    B, N = counts.shape
    idx = np.zeros((B, N), np.int32)
    cnt = np.zeros((B, N), np.int32)
    n = np.zeros(B, np.int32)
    for b in range(B):
        nz = np.flatnonzero(counts[b])
        idx[b, :len(nz)] = nz
        cnt[b, :len(nz)] = counts[b, nz]
        n[b] = len(nz)
    return idx, cnt, n


def events_to_dense(idx, cnt, n, N):
    out = np.zeros((len(n), N), np.int64)
    for b in range(len(n)):
        np.add.at(out[b], idx[b, :n[b]], cnt[b, :n[b]])
    return out


def random_counts(rng, B, N, p=0.3, high=4, signed=False):
    c = rng.integers(1, high + 1, size=(B, N)) * (rng.random((B, N)) < p)
    if signed:
        c = c * rng.choice([-1, 1], size=(B, N))
    return c.astype(np.int32)


# ---------------------------------------------------------------- neurons

@pytest.mark.parametrize("seed", range(6))
def test_if_image_and_burst_stats(seed):
    rng = np.random.default_rng(seed)
    N, gamma = 60, int(rng.integers(1, 5))
    theta = np.float32(rng.choice([0.5, 1.0, 2.0]))
    v_max = np.float32(np.inf) if seed % 2 else theta / 2  # a clamp of V on even seeds
    V = q8(rng.uniform(-1, 2, N))
    I = q8(rng.uniform(-2, 6, N))
    const = q8(rng.uniform(-0.5, 1, N))
    # twin (Eq. 2-4, then the clamp of V after the reset)
    v = V + (I + const)
    s = np.clip(np.floor(v / theta), 0, gamma).astype(np.int64)
    v_exp = np.minimum(v - s * theta, v_max)
    idx, cnt = np.zeros(N, np.int32), np.zeros(N, np.int32)
    n = neurons.if_image(V, I, const, theta, gamma, v_max, idx, cnt)
    if seed % 2 == 0:
        assert np.any(v - s * theta > v_max)  # the clamp was exercised
    np.testing.assert_array_equal(V, v_exp.astype(np.float32))
    np.testing.assert_array_equal(I, 0)
    assert n == np.count_nonzero(s)
    np.testing.assert_array_equal(idx[:n], np.flatnonzero(s))  # ascending neuron order
    np.testing.assert_array_equal(cnt[:n], s[s > 0])  # multiplicities in 1..Γ
    hist = np.zeros(gamma + 1, np.int64)
    assert neurons.burst_stats(cnt, n, hist) == s.sum()
    expected = np.bincount(s, minlength=gamma + 1)
    expected[0] = 0
    np.testing.assert_array_equal(hist, expected)


def test_output_image():
    rng = np.random.default_rng(1)
    U, I, const = (q8(rng.normal(size=7)) for _ in range(3))
    expected = U + (I + const)
    neurons.output_image(U, I, const)
    np.testing.assert_array_equal(U, expected)
    np.testing.assert_array_equal(I, 0)


def test_count_events_and_spikes_to_events():
    rng = np.random.default_rng(2)
    spk = random_counts(rng, 1, 30, signed=True)[0].astype(np.int8)
    idx, cnt = np.zeros(30, np.int32), np.zeros(30, np.int32)
    n = neurons.spikes_to_events(spk, idx, cnt)
    nz = np.flatnonzero(spk)
    assert n == len(nz)
    np.testing.assert_array_equal(idx[:n], nz)
    np.testing.assert_array_equal(cnt[:n], spk[nz])
    counts = rng.integers(0, 5, 30).astype(np.int64)
    expected = counts + spk
    neurons.count_events(idx, cnt, n, counts)
    np.testing.assert_array_equal(counts, expected)


# ---------------------------------------------------------------- synapses

@pytest.mark.parametrize("seed", range(6))
def test_conv_image(seed):
    rng = np.random.default_rng(seed)
    B, ci, co = 2, int(rng.integers(1, 7)), int(rng.integers(1, 6))
    h, w = int(rng.integers(3, 8)), int(rng.integers(3, 8))
    kh, kw = int(rng.integers(1, 4)), int(rng.integers(1, 4))
    stride = [int(rng.integers(1, 3)), int(rng.integers(1, 3))]
    padding = [int(rng.integers(0, kh)), int(rng.integers(0, kw)),
               int(rng.integers(0, kh)), int(rng.integers(0, kw))]
    ho = (h + padding[0] + padding[2] - kh) // stride[0] + 1
    wo = (w + padding[1] + padding[3] - kw) // stride[1] + 1
    weight = q8(rng.normal(0, 0.5, (co, ci, kh, kw)))
    conn = ConvConnection("a", "b", (ci, h, w), (co, ho, wo), weight=weight, stride=stride,
                          padding=padding)
    signed = bool(seed % 2)
    counts_pub = random_counts(rng, B, ci * h * w, signed=signed)
    # kernel works channel-last
    src_order, dst_order = internal_order((ci, h, w)), internal_order((co, ho, wo))
    ev = make_events(np.ascontiguousarray(counts_pub[:, src_order]))
    (yp, yo, yt), (xp, xo, xt) = (scatter_table(h, ho, kh, stride[0], padding[0]),
                                  scatter_table(w, wo, kw, stride[1], padding[1]))
    fan_out = conn.fan_out()[src_order]
    I = np.zeros((B, co * ho * wo), np.float32)
    syn = np.zeros(B, np.int64)
    w_hwio = np.ascontiguousarray(weight.transpose(2, 3, 1, 0)).ravel()
    for b in range(B):  # events at one position are consecutive: exercises the grouped path
        syn[b] = synapses.conv_image(ev[0][b], ev[1][b], ev[2][b], ci, w, yp, yo, yt, xp, xo, xt,
                                     kw, co, wo, w_hwio, fan_out, I[b])
    expected = conv_scatter(counts_pub.reshape(B, ci, h, w), weight, stride, padding,
                                  (co, ho, wo)).reshape(B, -1)[:, dst_order]
    np.testing.assert_array_equal(I, expected.astype(np.float32))
    np.testing.assert_array_equal(syn, np.abs(counts_pub) @ conn.fan_out())
    # and the structural matrix agrees too
    np.testing.assert_array_equal(conn.fan_out(), np.diff(conn.to_csr().indptr))


def test_dense_image():
    rng = np.random.default_rng(3)
    wt = q8(rng.normal(0, 0.5, (20, 9)))
    counts = random_counts(rng, 3, 20, signed=True)
    I = q8(rng.normal(size=(3, 9)))
    expected = I + counts @ wt.astype(np.float64)
    idx, cnt, n = make_events(counts)
    syn = [synapses.dense_image(idx[b], cnt[b], n[b], wt.ravel(), 9, I[b]) for b in range(3)]
    np.testing.assert_array_equal(I, expected.astype(np.float32))
    np.testing.assert_array_equal(syn, np.abs(counts).sum(1) * 9)


def test_csr_image():
    import scipy.sparse as sp

    rng = np.random.default_rng(4)
    m = sp.random(25, 12, density=0.3, random_state=5, format="csr", dtype=np.float32)
    m.data = q8(m.data * 4 - 2)
    m.data[::5] = 0.0  # explicit zeros are synapses too
    counts = random_counts(rng, 3, 25, signed=True)
    I = np.zeros((3, 12), np.float32)
    expected = counts @ m.toarray().astype(np.float64)
    idx, cnt, n = make_events(counts)
    syn = [synapses.csr_image(idx[b], cnt[b], n[b], m.indptr.astype(np.int64),
                              m.indices.astype(np.int64), m.data, I[b]) for b in range(3)]
    np.testing.assert_array_equal(I, expected.astype(np.float32))
    np.testing.assert_array_equal(syn, np.abs(counts) @ np.diff(m.indptr))


def test_map_image():
    """At most one synapse per source: as the dense twin bit for bit; a source without a
    synapse leaves every current alone, -0.0 included (column 0 receives no synapse)."""
    rng = np.random.default_rng(6)
    n_src, n_dst = 30, 12
    has = rng.random(n_src) < 0.5
    target = np.where(has, rng.integers(1, n_dst, n_src), 0).astype(np.int64)
    weight = np.where(has, q8(rng.normal(size=n_src)), 0).astype(np.float32)
    weight[np.flatnonzero(has)[0]] = 0.0  # an explicit zero synapse still counts
    fan_out = has.astype(np.int64)
    dense = np.zeros((n_src, n_dst))
    dense[has, target[has]] = weight[has]
    counts = random_counts(rng, 3, n_src, signed=True)
    I = np.zeros((3, n_dst), np.float32)
    I[:, 0] = np.float32(-0.0)
    expected = (I + counts @ dense).astype(np.float32)
    idx, cnt, n = make_events(counts)
    syn = [synapses.map_image(idx[b], cnt[b], n[b], target, weight, fan_out, I[b])
           for b in range(3)]
    np.testing.assert_array_equal(I, expected)
    assert np.all(np.signbit(I[:, 0]))
    np.testing.assert_array_equal(syn, np.abs(counts) @ fan_out)


def test_identity_image():
    rng = np.random.default_rng(5)
    scale = q8(rng.uniform(0, 2, 15))
    counts = random_counts(rng, 2, 15)
    I = np.zeros((2, 15), np.float32)
    idx, cnt, n = make_events(counts)
    syn = [synapses.identity_image(idx[b], cnt[b], n[b], scale, I[b]) for b in range(2)]
    np.testing.assert_array_equal(I, (counts * scale.astype(np.float64)).astype(np.float32))
    np.testing.assert_array_equal(syn, counts.sum(1))


# ---------------------------------------------------------------- pooling

def pool_geometry(rng):
    c, h, w = int(rng.integers(1, 4)), int(rng.integers(2, 8)), int(rng.integers(2, 8))
    kernel = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    stride = [int(rng.integers(1, 4)), int(rng.integers(1, 4))]
    padding = [int(rng.integers(0, kernel[0])), int(rng.integers(0, kernel[1])),
               int(rng.integers(0, kernel[0])), int(rng.integers(0, kernel[1]))]
    ho = (h + padding[0] + padding[2] - kernel[0]) // stride[0] + 1
    wo = (w + padding[1] + padding[3] - kernel[1]) // stride[1] + 1
    return (c, h, w), (c, ho, wo), kernel, stride, padding


def pool_setup(seed):
    rng = np.random.default_rng(seed)
    src, dst, kernel, stride, padding = pool_geometry(rng)
    conn = PoolConnection("a", "b", src, dst, kernel=kernel, stride=stride, padding=padding)
    (yp, yo, yt), (xp, xo, xt) = (scatter_table(src[1], dst[1], kernel[0], stride[0], padding[0]),
                                  scatter_table(src[2], dst[2], kernel[1], stride[1], padding[1]))
    return rng, src, dst, kernel, stride, padding, conn, (yp, yo, yt, xp, xo, xt)


@pytest.mark.parametrize("seed", range(8))
def test_lipool_image(seed):
    rng, src, dst, kernel, stride, padding, conn, tables = pool_setup(seed)
    yp, yo, yt, xp, xo, xt = tables
    B, n_src, n_win, K = 3, int(np.prod(src)), int(np.prod(dst)), kernel[0] * kernel[1]
    so, do = internal_order(src), internal_order(dst)
    slots = window_slots(src, dst, kernel, stride, padding)
    h_twin = np.zeros((B, n_win, K), np.int64)  # padded slots included (count 0)
    h = np.zeros((B, n_win * K), np.int32)
    stamp, touched = np.full((B, n_win), -1, np.int32), np.zeros((B, n_win), np.int32)
    out = (np.zeros((B, n_win), np.int32), np.zeros((B, n_win), np.int32), np.zeros(B, np.int32))
    for t in range(12):
        counts = random_counts(rng, B, n_src, p=0.4, high=3)
        # twin (Eq. 12): h += x; o = max(0, max h); h -= o
        h_twin += gather(counts, slots)
        o = np.maximum(0, h_twin.max(axis=2))
        h_twin -= o[:, :, None]
        idx, cnt, n = make_events(np.ascontiguousarray(counts[:, so]))
        syn = np.zeros(B, np.int64)
        for b in range(B):
            out[2][b], syn[b] = pooling.lipool_image(
                t, idx[b], cnt[b], n[b], src[0], src[2], yp, yo, yt, xp, xo, xt, kernel[1],
                dst[2], conn.fan_out()[so], h[b], stamp[b], touched[b], out[0][b], out[1][b])
        np.testing.assert_array_equal(events_to_dense(*out, n_win), o[:, do])
        np.testing.assert_array_equal(syn, counts @ conn.fan_out())


@pytest.mark.parametrize("seed", range(8))
def test_maxgate_image(seed):
    rng, src, dst, kernel, stride, padding, conn, tables = pool_setup(seed)
    yp, yo, yt, xp, xo, xt = tables
    B, n_src, n_win = 3, int(np.prod(src)), int(np.prod(dst))
    so, do = internal_order(src), internal_order(dst)
    slots = window_slots(src, dst, kernel, stride, padding)
    cum_twin = np.zeros((B, n_src), np.int64)
    cum, cur = np.zeros((B, n_src), np.int32), np.zeros((B, n_src), np.int32)
    stamp, touched = np.full((B, n_win), -1, np.int32), np.zeros((B, n_win), np.int32)
    out = (np.zeros((B, n_win), np.int32), np.zeros((B, n_win), np.int32), np.zeros(B, np.int32))
    for t in range(12):
        counts = random_counts(rng, B, n_src, p=0.3, high=2)
        # twin (Eq. 11): gate = first argmax of cumulative counts in row-major window order,
        # padded slots counting 0; output = that element's count this step
        cum_twin += counts
        gate = np.argmax(gather(cum_twin, slots), axis=2)
        o = np.take_along_axis(gather(counts.astype(np.int64), slots), gate[:, :, None], 2)[:, :, 0]
        idx, cnt, n = make_events(np.ascontiguousarray(counts[:, so]))
        syn = np.zeros(B, np.int64)
        for b in range(B):
            out[2][b], syn[b] = pooling.maxgate_image(
                t, idx[b], cnt[b], n[b], src[0], src[1], src[2], kernel[0], kernel[1], stride[0],
                stride[1], padding[0], padding[1], yp, yo, xp, xo, dst[2], conn.fan_out()[so],
                cum[b], cur[b], stamp[b], touched[b], out[0][b], out[1][b])
        np.testing.assert_array_equal(events_to_dense(*out, n_win), o[:, do])
        np.testing.assert_array_equal(cur, 0)
        np.testing.assert_array_equal(cum, cum_twin[:, so])
        np.testing.assert_array_equal(syn, counts @ conn.fan_out())


def test_scatter_table_matches_axis_taps():
    from eventsnn.network import axis_fan_out

    for n_in, k, s, p in [(7, 3, 2, 1), (5, 1, 1, 0), (6, 4, 3, 2), (4, 2, 2, 0)]:
        n_out = (n_in + 2 * p - k) // s + 1
        ptr, out, tap = scatter_table(n_in, n_out, k, s, p)
        np.testing.assert_array_equal(np.diff(ptr), axis_fan_out(n_in, n_out, k, s, p))
        for i in range(n_in):
            for o, kk in zip(out[ptr[i]:ptr[i + 1]], tap[ptr[i]:ptr[i + 1]]):
                assert o * s - p + kk == i and 0 <= kk < k and 0 <= o < n_out


def test_claim_next_hands_out_every_index_once():
    """The driver's work queue: concurrent claims return 0, 1, 2, ... each exactly once."""
    import numba

    from eventsnn.kernels.simulate import claim_next

    @numba.njit(parallel=True)
    def claim_all(n, n_workers):
        owner = np.full(n, -1, np.int64)
        claims = np.zeros(n_workers, np.int64)
        counter = np.zeros(1, np.int64)
        for w in numba.prange(n_workers):
            i = claim_next(counter)
            while i < n:
                owner[i] = w
                claims[w] += 1
                i = claim_next(counter)
        return owner, claims, counter

    n_workers = numba.get_num_threads()
    owner, claims, final = claim_all(10_000, n_workers)
    assert (owner >= 0).all() and claims.sum() == 10_000
    assert final[0] == 10_000 + n_workers  # each worker's last claim is past the end


@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 2, 2), (4, 1, 1), (7,)])
@pytest.mark.parametrize("lead", [(), (2,), (3, 2)])
def test_layout_conversions_match_internal_order(shape, lead):
    """to_internal / to_public (transposing copies) are the gathers by ``internal_order``."""
    n = int(np.prod(shape))
    a = np.random.default_rng(0).standard_normal(lead + (n,)).astype(np.float32)
    order = internal_order(shape)
    inner = to_internal(a, shape)
    np.testing.assert_array_equal(inner, a[..., order])
    assert inner.flags.c_contiguous and not np.shares_memory(inner, a)
    public = to_public(inner, shape)
    np.testing.assert_array_equal(public, a)
    assert public.flags.c_contiguous and not np.shares_memory(public, inner)


@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, 31, 100, 4099])
@pytest.mark.parametrize("p", [0.0, 0.13, 0.5, 1.0])
def test_compact_events_lists_the_positive_counts_in_order(n, p):
    # both the AVX-512 path (where the CPU has it, 16 neurons per step) and the scalar path
    rng = np.random.default_rng(n)
    dense = ((rng.random(n) < p) * rng.integers(-2, 6, n)).astype(np.int32)
    want = np.flatnonzero(dense > 0)          # neurons that fired (counts <= 0 are no events)
    for compact in (lambda i, c: neurons.compact_events(i, c, n),
                    lambda i, c: neurons.compact_scalar(i, c, 0, 0, n)):
        idx, cnt = np.full(n, -7, np.int32), dense.copy()
        ne = compact(idx, cnt)
        assert ne == len(want)
        np.testing.assert_array_equal(idx[:ne], want)
        np.testing.assert_array_equal(cnt[:ne], dense[want])
