"""The numba engine on hand-built networks with known results, and against a dense twin.

Weights, biases and inputs are multiples of 2^-8 of small magnitude, so float32 sums are exact
whatever the accumulation order and results can be compared for equality.
"""

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventsnn.engine import SimResult, concatenate, simulate
from eventsnn.engine.encoding import poisson_spikes
from eventsnn.network import (ConvConnection, DenseConnection, IdentityConnection,
                              PoolConnection, Population, SparseConnection, SpikingNetwork)

SETTINGS = settings(max_examples=30, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def q8(a):
    return (np.round(np.asarray(a) * 256) / 256).astype(np.float32)


def single_neuron(theta=1.0, burst=1):
    pops = [Population("a", (1,), "if", threshold=theta, burst=burst),
            Population("out", (1,), "output")]
    conns = [IdentityConnection("input", "a", (1,), (1,), scale=np.float32(1.0)),
             DenseConnection("a", "out", (1,), (1,), weight=np.ones((1, 1), np.float32))]
    return SpikingNetwork((1,), pops, conns)


# ------------------------------------------------------------- one IF neuron (Eq. 2-4)

@SETTINGS
@given(k=st.integers(-300, 3000), theta=st.sampled_from([0.5, 1.0, 2.0]),
       burst=st.integers(1, 5), T=st.integers(1, 40))
def test_single_if_neuron_constant_input(k, theta, burst, T):
    c = k / 256
    net = single_neuron(theta, burst)
    r = simulate(net, np.array([[c]], np.float32), T, progress=False,
                 record=("neuron_counts", "potential", "trains"))
    trains = r.records["trains"]["a"][:, 0, 0]
    assert trains.min() >= 0 and trains.max() <= burst  # at most Γ spikes per step
    if c <= 0:
        n_spikes, v_final = 0, T * c
    elif c <= burst * theta:  # never saturates: V stays in [0, θ), N = floor(T c / θ)
        n_spikes = int(np.floor(T * c / theta))
        v_final = T * c - n_spikes * theta
    else:  # saturated: Γ spikes every step, the excess accumulates
        n_spikes, v_final = burst * T, T * (c - burst * theta)
    assert r.records["neuron_counts"]["a"][0, 0] == n_spikes
    assert r.records["potential"]["a"][0, 0] == np.float32(v_final)
    assert r.spikes["a"].sum() == n_spikes
    assert r.burst_hist["a"].sum() == r.events["a"].sum() == np.count_nonzero(trains)
    # the output integrates the spikes: U(t) = cumulative count
    np.testing.assert_array_equal(r.outputs[:, 0, 0], np.cumsum(trains))
    assert r.input_macs == 1
    assert r.synops["a->out"].sum() == n_spikes


def test_plain_if_neuron_by_hand():
    """Γ = 1, θ = 1, input 0.75: V = .75 -> 1.5 (spike, .5) -> 1.25 (spike, .25) -> 1.0 (spike, 0)."""
    r = simulate(single_neuron(), np.array([[0.75]], np.float32), 4, progress=False,
                 record=("trains", "potential"))
    np.testing.assert_array_equal(r.records["trains"]["a"][:, 0, 0], [0, 1, 1, 1])
    assert r.records["potential"]["a"][0, 0] == 0.0


def test_burst_neuron_by_hand():
    """Γ = 3, θ = 1, input 2.5: 2 spikes (V=.5), 3 spikes (V=0), 2 (V=.5), 3 (V=0)."""
    r = simulate(single_neuron(burst=3), np.array([[2.5]], np.float32), 4, progress=False,
                 record=("trains",))
    np.testing.assert_array_equal(r.records["trains"]["a"][:, 0, 0], [2, 3, 2, 3])
    np.testing.assert_array_equal(r.burst_hist["a"], [0, 0, 2, 2])
    assert r.events["a"].sum() == 4 and r.spikes["a"].sum() == 10


# ------------------------------------------------------------- LIPool max recovery (Eq. 12)

def pool_net(kind, c, h, w, kernel, stride, padding):
    ho = (h + padding[0] + padding[2] - kernel[0]) // stride[0] + 1
    wo = (w + padding[1] + padding[3] - kernel[1]) // stride[1] + 1
    pool = {"source": "a", "kernel": kernel, "stride": stride, "padding": padding}
    pops = [Population("a", (c, h, w), "if", burst=2),
            Population("p", (c, ho, wo), kind, pool=pool),
            Population("out", (2,), "output")]
    conns = [IdentityConnection("input", "a", (c, h, w), (c, h, w), scale=np.float32(1.0)),
             PoolConnection("a", "p", (c, h, w), (c, ho, wo), kernel=kernel, stride=stride,
                            padding=padding),
             DenseConnection("p", "out", (c, ho, wo), (2,),
                             weight=np.ones((2, c * ho * wo), np.float32))]
    return SpikingNetwork((c, h, w), pops, conns)


@st.composite
def pool_geometries(draw):
    kernel = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    stride = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    padding = [draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1)),
               draw(st.integers(0, kernel[0] - 1)), draw(st.integers(0, kernel[1] - 1))]
    h = draw(st.integers(max(1, kernel[0] - padding[0] - padding[2]), 7))
    w = draw(st.integers(max(1, kernel[1] - padding[1] - padding[3]), 7))
    return draw(st.integers(1, 3)), h, w, kernel, stride, padding


@SETTINGS
@given(geom=pool_geometries(), seed=st.integers(0, 2**16))
def test_lipool_max_recovery(geom, seed):
    c, h, w, kernel, stride, padding = geom
    net = pool_net("lipool", c, h, w, kernel, stride, padding)
    x = q8(np.random.default_rng(seed).uniform(0, 2.2, (2, c, h, w)))
    r = simulate(net, x, 15, progress=False, record=("trains",))
    src = np.cumsum(r.records["trains"]["a"], axis=0)  # (T, B, N) cumulative input counts
    out = np.cumsum(r.records["trains"]["p"], axis=0)
    members = net.connections[1].to_csr().tocsc()
    for win in range(out.shape[2]):
        rows = members.indices[members.indptr[win]:members.indptr[win + 1]]
        expected = src[:, :, rows].max(axis=2) if len(rows) else 0
        np.testing.assert_array_equal(out[:, :, win], np.maximum(expected, 0))


# ------------------------------------------------------------- dense numpy twin

def window_slots(net, pop):
    """(N_windows, kh*kw) public source index of every window slot, -1 where padded."""
    src = net.population(pop.pool["source"])
    c, h, w = src.shape
    _, ho, wo = pop.shape
    (kh, kw), (sh, sw), pad = pop.pool["kernel"], pop.pool["stride"], pop.pool["padding"]
    ch, oy, ox, ky, kx = np.meshgrid(np.arange(c), np.arange(ho), np.arange(wo), np.arange(kh),
                                     np.arange(kw), indexing="ij")
    y, x = oy * sh - pad[0] + ky, ox * sw - pad[1] + kx
    idx = np.where((y >= 0) & (y < h) & (x >= 0) & (x < w), (ch * h + y) * w + x, -1)
    return idx.reshape(c * ho * wo, kh * kw)


def gather(counts, slots):
    padded = np.concatenate([counts, np.zeros((len(counts), 1), counts.dtype)], axis=1)
    return padded[:, np.where(slots < 0, counts.shape[1], slots)]


def dense_simulate(net, x, T, spikes_in=None):
    """Straightforward clock-driven simulation with dense matrices (public layout).

    ``spikes_in`` (T, B, N_in): Poisson-coded input spikes; None for direct coding.
    """
    B = len(x)
    x = x.reshape(B, -1).astype(np.float64)
    mats = {c.name: c.to_csr().toarray().astype(np.float64) for c in net.connections}
    fan = {c.name: np.diff(c.to_csr().indptr) for c in net.connections}
    state = {}
    for p in net.populations:
        if p.kind in ("if", "output"):
            state[p.name] = np.zeros((B, p.size))
        elif p.kind == "lipool":
            state[p.name] = np.zeros((B, p.size, int(np.prod(p.pool["kernel"]))), np.int64)
        else:
            state[p.name] = np.zeros((B, net.population(p.pool["source"]).size), np.int64)
    res = {"outputs": np.zeros((T, B, net.output.size)), "counts": {}, "synops": {}, "spikes": {},
           "events": {}}
    total = {p.name: np.zeros((B, p.size), np.int64) for p in net.populations[:-1]}
    for t in range(T):
        cnt = {"input": spikes_in[t].reshape(B, -1).astype(np.int64) if spikes_in is not None
               else None}
        for p in net.populations:
            if p.kind in ("if", "output"):
                current = np.zeros((B, p.size))
                for c in net.incoming(p.name):
                    src = x if c.src == "input" and spikes_in is None else cnt[c.src]
                    current += src @ mats[c.name]
                bias = 0 if p.bias is None else p.bias.reshape(-1)
                state[p.name] += current + bias
                if p.kind == "output":
                    res["outputs"][t] = state[p.name]
                    continue
                s = np.clip(np.floor(state[p.name] / p.threshold), 0, p.burst).astype(np.int64)
                state[p.name] -= s * p.threshold
            elif p.kind == "lipool":
                h = state[p.name]
                h += gather(cnt[p.pool["source"]], window_slots(net, p))
                s = np.maximum(0, h.max(axis=2))
                h -= s[:, :, None]
            else:
                slots = window_slots(net, p)
                state[p.name] += cnt[p.pool["source"]]
                gate = np.argmax(gather(state[p.name], slots), axis=2)
                s = np.take_along_axis(gather(cnt[p.pool["source"]], slots), gate[:, :, None],
                                       axis=2)[:, :, 0]
            cnt[p.name] = s
            total[p.name] += s
            res["spikes"].setdefault(p.name, []).append(s.sum())
            res["events"].setdefault(p.name, []).append((s != 0).sum())
        for c in net.connections:
            ops = 0 if cnt[c.src] is None else int((np.abs(cnt[c.src]) @ fan[c.name]).sum())
            res["synops"].setdefault(c.name, []).append(ops)
    res["counts"] = total
    return res


def mixed_net(seed, burst=3):
    """Conv (strided, padded) + LIPool + max-gate + residual identity + csr + dense + output."""
    rng = np.random.default_rng(seed)
    w = lambda *shape: q8(rng.normal(0, 0.4, shape))  # noqa: E731
    pops = [
        Population("c1", (4, 6, 6), "if", burst=burst, bias=q8(rng.normal(0, 0.05, (4, 6, 6)))),
        Population("c2", (4, 6, 6), "if", burst=burst, threshold=0.5),
        Population("r", (4, 6, 6), "if", burst=burst),
        Population("lp", (4, 3, 3), "lipool",
                   pool={"source": "r", "kernel": [3, 3], "stride": [2, 2], "padding": [1, 1, 1, 1]}),
        Population("mg", (4, 3, 3), "maxgate",
                   pool={"source": "c1", "kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0]}),
        Population("c3", (5, 2, 2), "if", burst=burst),
        Population("fc", (12,), "if", burst=1, bias=q8(rng.normal(0, 0.05, 12))),
        Population("out", (3,), "output", bias=q8(rng.normal(0, 0.1, 3))),
    ]
    sparse = sp.random(36, 12, density=0.3, random_state=seed, format="csr", dtype=np.float32)
    sparse.data = q8(sparse.data - 0.3)
    sparse.data[::4] = 0.0  # explicit zeros are synapses: they count SynOps
    conns = [
        ConvConnection("input", "c1", (2, 6, 6), (4, 6, 6), weight=w(4, 2, 3, 3), stride=[1, 1],
                       padding=[1, 1, 1, 1]),
        ConvConnection("c1", "c2", (4, 6, 6), (4, 6, 6), weight=w(4, 4, 3, 3), stride=[1, 1],
                       padding=[1, 1, 1, 1]),
        ConvConnection("c2", "r", (4, 6, 6), (4, 6, 6), weight=w(4, 4, 1, 1), stride=[1, 1],
                       padding=[0, 0, 0, 0]),
        IdentityConnection("c1", "r", (4, 6, 6), (4, 6, 6), scale=q8([1.0, 0.5, 0.75, 1.25])),
        PoolConnection("r", "lp", (4, 6, 6), (4, 3, 3), kernel=[3, 3], stride=[2, 2],
                       padding=[1, 1, 1, 1]),
        PoolConnection("c1", "mg", (4, 6, 6), (4, 3, 3), kernel=[2, 2], stride=[2, 2],
                       padding=[0, 0, 0, 0]),
        ConvConnection("lp", "c3", (4, 3, 3), (5, 2, 2), weight=w(5, 4, 2, 2), stride=[2, 2],
                       padding=[0, 0, 1, 1]),
        SparseConnection("mg", "fc", (4, 3, 3), (12,), matrix=sparse),
        DenseConnection("c3", "fc", (5, 2, 2), (12,), weight=w(12, 20)),
        DenseConnection("fc", "out", (12,), (3,), weight=w(3, 12)),
        DenseConnection("lp", "out", (4, 3, 3), (3,), weight=w(3, 36)),
    ]
    return SpikingNetwork((2, 6, 6), pops, conns)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_matches_dense_numpy_twin(seed, encoding):
    net = mixed_net(seed)
    x = q8(np.random.default_rng(seed + 10).uniform(-0.2, 1.2, (3, 2, 6, 6)))
    T = 12
    r = simulate(net, x, T, progress=False, encoding=encoding, seed=7,
                 record=("neuron_counts", "potential"))
    spikes_in = poisson_spikes(x, T, 7) if encoding == "poisson" else None
    twin = dense_simulate(net, x, T, spikes_in)
    np.testing.assert_array_equal(r.outputs, twin["outputs"].astype(np.float32))
    for p in net.populations[:-1]:
        np.testing.assert_array_equal(r.records["neuron_counts"][p.name], twin["counts"][p.name])
        np.testing.assert_array_equal(r.spikes[p.name], twin["spikes"][p.name])
        np.testing.assert_array_equal(r.events[p.name], twin["events"][p.name])
    for c in net.connections:
        np.testing.assert_array_equal(r.synops[c.name], twin["synops"][c.name])
    assert r.total_spikes() > 0 and r.total_synops() > 0
    expected_macs = 3 * net.connections[0].fan_out().sum() if encoding == "direct" else 0
    assert r.input_macs == expected_macs
    assert set(r.records["potential"]) == {"c1", "c2", "r", "c3", "fc"}


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_synops_equal_spikes_times_fan_out(encoding):
    net = mixed_net(1)
    x = q8(np.random.default_rng(3).uniform(0, 1, (4, 2, 6, 6)))
    T = 10
    r = simulate(net, x, T, progress=False, encoding=encoding, seed=11, record=("neuron_counts",))
    for c in net.connections:
        fan_out = np.diff(c.to_csr().indptr)
        if c.src == "input":
            if encoding == "direct":
                assert r.synops[c.name].sum() == 0
                continue
            counts = np.abs(poisson_spikes(x, T, 11).astype(np.int64)).sum(0).reshape(4, -1)
        else:
            counts = r.records["neuron_counts"][c.src]
        assert r.synops[c.name].sum() == (counts @ fan_out).sum()


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
def test_batching_invariance(encoding):
    net = mixed_net(2)
    x = q8(np.random.default_rng(4).uniform(0, 1, (5, 2, 6, 6)))
    rec = ("neuron_counts", "potential", "trains")
    full = simulate(net, x, 9, progress=False, encoding=encoding, seed=5, record=rec)
    for bs in (1, 2):
        part = simulate(net, x, 9, progress=False, encoding=encoding, seed=5, record=rec,
                        batch_size=bs)
        np.testing.assert_array_equal(part.outputs, full.outputs)
        for d in ("spikes", "events", "synops", "burst_hist"):
            for k, v in getattr(full, d).items():
                np.testing.assert_array_equal(getattr(part, d)[k], v)
        for kind in rec:
            for k, v in full.records[kind].items():
                np.testing.assert_array_equal(part.records[kind][k], v)
        assert part.input_macs == full.input_macs and part.n_images == 5


def test_result_helpers():
    net = mixed_net(0)
    x = q8(np.random.default_rng(5).uniform(0, 1, (4, 2, 6, 6)))
    r = simulate(net, x, 6, progress=False)
    pred = r.predictions()
    assert pred.shape == (6, 4) and pred.dtype == np.int64
    np.testing.assert_array_equal(pred, r.outputs.argmax(axis=2))
    np.testing.assert_array_equal(r.accuracy(pred[-1]), (pred == pred[-1]).mean(axis=1))
    assert r.accuracy(pred[-1])[-1] == 1.0
    a = simulate(net, x[:1], 6, progress=False)
    b = simulate(net, x[1:], 6, progress=False)
    m = a.merge(b)
    np.testing.assert_array_equal(m.outputs, r.outputs)
    assert m.total_synops() == r.total_synops() and m.total_spikes() == r.total_spikes()
    assert concatenate([a, b]).n_images == 4
    assert isinstance(m, SimResult)
    with pytest.raises(ValueError, match="labels"):
        r.accuracy([0, 1])


# ------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(T=0), ValueError, "T"),
    (dict(T=-3), ValueError, "T"),
    (dict(T=2.5), TypeError, "T"),
    (dict(engine="torch"), ValueError, "engine"),
    (dict(encoding="rate"), ValueError, "encoding"),
    (dict(record=("voltage",)), ValueError, "record"),
    (dict(batch_size=0), ValueError, "batch_size"),
    (dict(seed=-1, encoding="poisson"), ValueError, "seed"),
])
def test_bad_arguments(kwargs, exc, match):
    net = single_neuron()
    args = dict(T=3, progress=False)
    args.update(kwargs)
    T = args.pop("T")
    with pytest.raises(exc, match=match):
        simulate(net, np.ones((1, 1), np.float32), T, **args)


def test_bad_inputs():
    net = mixed_net(0)
    with pytest.raises(ValueError, match=r"expected \(B, 2, 6, 6\)"):
        simulate(net, np.zeros((1, 3, 6, 6), np.float32), 3, progress=False)
    with pytest.raises(ValueError, match="batch axis"):
        simulate(net, np.zeros((2, 6, 6), np.float32), 3, progress=False)
    x = np.zeros((1, 2, 6, 6), np.float32)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        simulate(net, x, 3, progress=False)
    x[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        simulate(net, x, 3, progress=False)
    with pytest.raises(TypeError, match="numeric"):
        simulate(net, np.full((1, 2, 6, 6), "a"), 3, progress=False)
    with pytest.raises(TypeError, match="SpikingNetwork"):
        simulate("net", x, 3, progress=False)
