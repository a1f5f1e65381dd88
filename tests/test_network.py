"""SpikingNetwork and its connections: to_csr vs apply, fan-out, save/load, validation."""

import dataclasses

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsnn.graph import avgpool2d, conv2d, maxpool2d
from eventsnn.network import (
    INPUT,
    ConvConnection,
    DenseConnection,
    IdentityConnection,
    PoolConnection,
    Population,
    SparseConnection,
    SpikingNetwork,
    load_network,
)
from eventsnn.testing import dyadic, spiking_networks


@st.composite
def conv_cases(draw):
    """A ConvConnection with random kernel, stride and asymmetric padding, plus an input batch."""
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    pad = [draw(st.integers(0, 3)) for _ in range(4)]
    kh = draw(st.integers(1, min(4, h + pad[0] + pad[2])))
    kw = draw(st.integers(1, min(4, w + pad[1] + pad[3])))
    stride = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    o = draw(st.integers(1, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weight = dyadic(rng, (o, c, kh, kw), -64, 64)
    ho = (h + pad[0] + pad[2] - kh) // stride[0] + 1
    wo = (w + pad[1] + pad[3] - kw) // stride[1] + 1
    conn = ConvConnection("a", "b", (c, h, w), (o, ho, wo), weight=weight, stride=stride, padding=pad)
    return conn, dyadic(rng, (2, c, h, w), -256, 256)


@st.composite
def pool_cases(draw):
    c, h, w = draw(st.integers(1, 3)), draw(st.integers(1, 7)), draw(st.integers(1, 7))
    kernel = [draw(st.integers(1, min(3, h))), draw(st.integers(1, min(3, w)))]
    stride = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    pad = [draw(st.integers(0, kernel[i % 2] // 2)) for i in range(4)]
    ho = (h + pad[0] + pad[2] - kernel[0]) // stride[0] + 1
    wo = (w + pad[1] + pad[3] - kernel[1]) // stride[1] + 1
    conn = PoolConnection("a", "b", (c, h, w), (c, ho, wo), kernel=kernel, stride=stride, padding=pad)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return conn, dyadic(rng, (2, c, h, w), 0, 256)


def csr_apply(conn, x):
    """The linear map a connection's CSR export describes: x (B, n_src) -> (B, n_dst)."""
    return np.asarray(x.reshape(len(x), -1) @ conn.to_csr().toarray(), dtype=np.float64)


def check_fan_out(conn):
    m = conn.to_csr()
    assert m.shape == (conn.n_src, conn.n_dst)
    fan = conn.fan_out()
    assert fan.dtype == np.int64 and fan.shape == (conn.n_src,)
    np.testing.assert_array_equal(fan, np.diff(m.indptr))


@settings(max_examples=100, deadline=None)
@given(conv_cases())
def test_conv_csr_matches_apply_and_graph_conv2d(case):
    conn, x = case
    expect = conv2d(x, conn.weight, None, conn.stride, conn.padding).reshape(len(x), -1)
    np.testing.assert_array_equal(csr_apply(conn, x), expect)  # dyadic values: exact
    np.testing.assert_array_equal(conn.apply(x), expect)
    check_fan_out(conn)
    # every (input, output, tap) triple is a synapse, zero weights included
    assert conn.to_csr().nnz == conn.fan_out().sum()


@settings(max_examples=100, deadline=None)
@given(conv_cases())
def test_conv_csr_matches_torch(case):
    torch = pytest.importorskip("torch")
    conn, x = case
    pt, pl, pb, pr = conn.padding
    xt = torch.nn.functional.pad(torch.from_numpy(x).double(), (pl, pr, pt, pb))
    expect = torch.nn.functional.conv2d(xt, torch.from_numpy(conn.weight).double(),
                                        stride=conn.stride).numpy().reshape(len(x), -1)
    np.testing.assert_array_equal(csr_apply(conn, x), expect)


def test_conv_zero_weights_are_synapses():
    weight = np.zeros((2, 1, 3, 3), np.float32)
    conn = ConvConnection("a", "b", (1, 4, 4), (2, 4, 4), weight=weight, padding=[1, 1, 1, 1])
    check_fan_out(conn)
    fan = conn.fan_out().reshape(4, 4)
    assert fan[0, 0] == 2 * 4 and fan[1, 1] == 2 * 9 and fan[0, 1] == 2 * 6


@settings(max_examples=100, deadline=None)
@given(pool_cases())
def test_pool_csr_is_window_membership(case):
    """Column j of the pool CSR holds exactly the elements of window j, weight 1."""
    conn, x = case
    m = conn.to_csr()
    assert np.all(m.data == 1.0)
    ksize = conn.kernel[0] * conn.kernel[1]
    window_sum = avgpool2d(x, conn.kernel, conn.stride, conn.padding, count_include_pad=True) * ksize
    np.testing.assert_allclose(csr_apply(conn, x), window_sum.reshape(len(x), -1), rtol=0, atol=1e-5)
    check_fan_out(conn)
    # apply is the max pool of non-negative values (padding contributes nothing)
    np.testing.assert_array_equal(conn.apply(x), maxpool2d(x, conn.kernel, conn.stride,
                                                           conn.padding).reshape(len(x), -1))


def test_pool_csr_matches_torch_max_pool():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 7, 6)).astype(np.float32)
    conn = PoolConnection("a", "b", (3, 7, 6), (3, 4, 4), kernel=[3, 2], stride=[2, 2],
                          padding=[1, 1, 1, 1])
    expect = torch.nn.functional.max_pool2d(torch.from_numpy(x), (3, 2), 2, 1).numpy()
    np.testing.assert_array_equal(conn.apply(x), expect.reshape(2, -1))


def test_dense_csr_and_apply():
    rng = np.random.default_rng(1)
    conn = DenseConnection("a", "b", (2, 3, 2), (5,), weight=dyadic(rng, (5, 12), -64, 64))
    x = dyadic(rng, (3, 2, 3, 2), -256, 256)
    expect = x.reshape(3, -1) @ conn.weight.T
    np.testing.assert_array_equal(conn.apply(x), expect)
    np.testing.assert_array_equal(csr_apply(conn, x), expect)
    np.testing.assert_array_equal(conn.apply(x.reshape(3, -1)), expect)  # flat input accepted
    check_fan_out(conn)
    assert np.all(conn.fan_out() == 5)


def test_sparse_csr_keeps_explicit_zeros():
    data = np.array([0.5, 0.0, -0.25, 0.0], np.float32)
    matrix = sp.csr_matrix((data, [2, 0, 1, 3], [0, 2, 2, 4]), shape=(3, 4))
    conn = SparseConnection("a", "b", (3,), (4,), matrix=matrix)
    check_fan_out(conn)
    np.testing.assert_array_equal(conn.fan_out(), [2, 0, 2])
    x = np.array([[1.0, 2.0, 4.0]], np.float32)
    np.testing.assert_array_equal(conn.apply(x), [[0.0, -1.0, 0.5, 0.0]])
    np.testing.assert_array_equal(csr_apply(conn, x), conn.apply(x))


@pytest.mark.parametrize("scale", [np.float32(0.5), np.array([0.5, 2.0], np.float32)])
def test_identity_csr_and_apply(scale):
    conn = IdentityConnection("a", "b", (2, 2, 3), (2, 2, 3), scale=scale)
    x = np.arange(24, dtype=np.float32).reshape(2, 2, 2, 3)
    expect = (x * np.broadcast_to(np.reshape(scale, (-1, 1, 1)), (2, 2, 3))).reshape(2, -1)
    np.testing.assert_array_equal(conn.apply(x), expect)
    np.testing.assert_array_equal(csr_apply(conn, x), expect)
    check_fan_out(conn)


@settings(max_examples=40, deadline=None)
@given(spiking_networks())
def test_every_connection_of_random_networks(net):
    rng = np.random.default_rng(0)
    for c in net.connections:
        check_fan_out(c)
        if not isinstance(c, PoolConnection):
            x = dyadic(rng, (2,) + c.src_shape, -256, 256)
            np.testing.assert_array_equal(c.apply(x), csr_apply(c, x))


def assert_same_network(a, b):
    assert a.input_shape == b.input_shape and a.meta == b.meta
    assert len(a.populations) == len(b.populations) and len(a.connections) == len(b.connections)
    for p, q in zip(a.populations, b.populations):
        for attr in ("name", "shape", "kind", "threshold", "burst", "pool", "ann_node"):
            assert getattr(p, attr) == getattr(q, attr), attr
        assert p.v_init.shape == q.v_init.shape and p.v_init.dtype == q.v_init.dtype
        np.testing.assert_array_equal(p.v_init, q.v_init)
        for attr in ("bias", "scale"):
            u, v = getattr(p, attr), getattr(q, attr)
            assert (u is None) == (v is None)
            if u is not None:
                assert u.dtype == v.dtype
                np.testing.assert_array_equal(u, v)
    for c, d in zip(a.connections, b.connections):
        assert type(c) is type(d) and c.name == d.name and c.attrs() == d.attrs()
        for k, arr in c.arrays().items():
            np.testing.assert_array_equal(arr, d.arrays()[k])
        mc, md = c.to_csr(), d.to_csr()
        for part in ("data", "indices", "indptr"):
            np.testing.assert_array_equal(getattr(mc, part), getattr(md, part))


@settings(max_examples=30, deadline=None)
@given(spiking_networks())
def test_save_load_round_trip(tmp_path_factory, net):
    path = tmp_path_factory.mktemp("net") / "net.npz"
    net.save(path)
    assert_same_network(net, load_network(path))


def small_network(**changes):
    """input (1,4,4) -conv-> a (2,4,4) -lipool 2x2-> p (2,2,2) -dense-> out (3,)."""
    parts = {
        "pops": [
            Population("a", (2, 4, 4), "if", threshold=0.75, burst=3,
                       bias=np.full((2, 4, 4), 0.125, np.float32), ann_node="relu1",
                       scale=np.array([2.0, 4.0], np.float32)),
            Population("p", (2, 2, 2), "lipool", pool={"source": "a", "kernel": [2, 2],
                                                      "stride": [2, 2], "padding": [0, 0, 0, 0]}),
            Population("out", (3,), "output", bias=np.zeros(3, np.float32), scale=np.float32(3.0)),
        ],
        "conns": [
            ConvConnection(INPUT, "a", (1, 4, 4), (2, 4, 4), weight=np.ones((2, 1, 3, 3)),
                           padding=[1, 1, 1, 1]),
            PoolConnection("a", "p", (2, 4, 4), (2, 2, 2)),
            DenseConnection("p", "out", (2, 2, 2), (3,), weight=np.ones((3, 8))),
        ],
    }
    parts.update(changes)
    return SpikingNetwork((1, 4, 4), parts["pops"], parts["conns"], meta={"norm": "p99.9", "burst": 3})


def test_save_load_scale_and_meta(tmp_path):
    net = small_network()
    net.save(tmp_path / "n.npz")
    back = load_network(tmp_path / "n.npz")
    assert_same_network(net, back)
    assert back.population("out").scale.shape == () and back.population("a").ann_node == "relu1"


@pytest.mark.parametrize("v_init", [0.25, np.array([0.0, 0.5], np.float32),
                                    np.linspace(0, 0.7, 32, dtype=np.float32).reshape(2, 4, 4)])
def test_save_load_initial_potential(tmp_path, v_init):
    pops = small_network().populations
    pops[0] = dataclasses.replace(pops[0], v_init=v_init)
    net = small_network(pops=pops)
    net.save(tmp_path / "n.npz")
    back = load_network(tmp_path / "n.npz")
    assert_same_network(net, back)
    expect = np.broadcast_to(np.reshape(v_init, (-1, 1, 1)) if np.ndim(v_init) == 1 else v_init,
                             (2, 4, 4)).reshape(-1)
    np.testing.assert_array_equal(back.population("a").initial_potential(), expect)


@pytest.mark.parametrize("kind, v_init, match", [
    ("if", -0.125, r"\[0, threshold\)"), ("if", 0.75, r"\[0, threshold\)"),
    ("if", np.nan, "outside"), ("if", np.zeros(3), "per channel"),
    ("output", 0.5, "pass v_init=0")])
def test_bad_initial_potential(kind, v_init, match):
    with pytest.raises(ValueError, match=match):
        Population("a", (2, 4, 4), kind, threshold=0.75, v_init=v_init)


def test_load_rejects_other_files(tmp_path):
    bad = tmp_path / "bad.npz"
    np.savez(bad, a=np.zeros(3))
    with pytest.raises(ValueError, match="no topology"):
        load_network(bad)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a readable"):
        load_network(tmp_path / "junk.npz")


def test_network_accessors():
    net = small_network()
    assert net.output.name == "out" and net.population("p").kind == "lipool"
    assert [c.name for c in net.incoming("out")] == ["p->out"]
    assert [c.name for c in net.outgoing(INPUT)] == ["input->a"]
    assert "lipool" in net.summary()
    with pytest.raises(KeyError, match="no population"):
        net.population("zzz")


# ---- validation -------------------------------------------------------------------------


def test_population_validation():
    with pytest.raises(ValueError, match="unknown kind"):
        Population("a", (3,), "relu")
    with pytest.raises(ValueError, match="threshold"):
        Population("a", (3,), "if", threshold=0.0)
    with pytest.raises(ValueError, match="burst"):
        Population("a", (3,), "if", burst=0)
    with pytest.raises(ValueError, match="burst"):
        Population("a", (3,), "if", burst=2.5)
    with pytest.raises(ValueError, match="bias"):
        Population("a", (3,), "if", bias=np.zeros(4))
    with pytest.raises(ValueError, match="pool"):
        Population("a", (1, 2, 2), "lipool")
    with pytest.raises(ValueError, match="kernel"):
        Population("a", (1, 2, 2), "maxgate", pool={"source": "b", "kernel": [2], "stride": [2, 2],
                                                    "padding": [0, 0, 0, 0]})


def test_connection_shape_validation():
    with pytest.raises(ValueError, match="conv connection"):
        ConvConnection("a", "b", (1, 4, 4), (2, 4, 4), weight=np.ones((2, 1, 3, 3)))  # no padding
    with pytest.raises(ValueError, match="conv connection"):
        ConvConnection("a", "b", (3, 4, 4), (2, 2, 2), weight=np.ones((2, 1, 3, 3)))  # channels
    with pytest.raises(ValueError, match="dense connection"):
        DenseConnection("a", "b", (4,), (3,), weight=np.ones((4, 3)))  # transposed
    with pytest.raises(ValueError, match="sparse connection"):
        SparseConnection("a", "b", (4,), (3,), matrix=sp.csr_matrix((3, 4)))
    with pytest.raises(ValueError, match="identity connection"):
        IdentityConnection("a", "b", (4,), (3,))
    with pytest.raises(ValueError, match="scale"):
        IdentityConnection("a", "b", (2, 2, 2), (2, 2, 2), scale=np.ones(3))
    with pytest.raises(ValueError, match="pool connection"):
        PoolConnection("a", "b", (1, 4, 4), (1, 3, 3))
    with pytest.raises(ValueError, match="stride"):
        ConvConnection("a", "b", (1, 4, 4), (1, 4, 4), weight=np.ones((1, 1, 1, 1)), stride=[1])
    conn = DenseConnection("a", "b", (2, 2), (3,), weight=np.ones((3, 4)))
    with pytest.raises(ValueError, match="does not match"):
        conn.apply(np.ones((2, 5)))


def test_network_validation():
    net = small_network()
    pops, conns = net.populations, net.connections
    a, p, out = pops
    conv, pool, dense = conns
    with pytest.raises(ValueError, match="last population"):
        small_network(pops=[a, p])
    with pytest.raises(ValueError, match="only the last"):
        small_network(pops=[a, Population("o2", (2, 2, 2), "output"), p, out])
    with pytest.raises(ValueError, match="used twice or reserved"):
        small_network(pops=[a, a, p, out])
    with pytest.raises(ValueError, match="used twice or reserved"):
        small_network(pops=[Population(INPUT, (2,), "if"), p, out])
    with pytest.raises(ValueError, match="listed before"):  # wrong order: pool before its source
        small_network(pops=[p, a, out])
    with pytest.raises(ValueError, match="unknown target"):
        small_network(conns=conns + [DenseConnection("a", "zz", (2, 4, 4), (3,), weight=np.ones((3, 32)))])
    with pytest.raises(ValueError, match="appears twice"):
        small_network(conns=conns + [dense])
    with pytest.raises(ValueError, match="do not match the populations"):
        small_network(conns=[conv, pool, DenseConnection("p", "out", (8,), (3,), weight=np.ones((3, 8)))])
    with pytest.raises(ValueError, match="no incoming"):
        small_network(conns=[pool, dense])
    # pooling without (or with the wrong kind of) PoolConnection
    with pytest.raises(ValueError, match="exactly one PoolConnection"):
        small_network(conns=[conv, dense, SparseConnection("a", "p", (2, 4, 4), (2, 2, 2),
                                                           matrix=sp.csr_matrix((32, 8)))])
    with pytest.raises(ValueError, match="exactly one PoolConnection"):
        small_network(conns=[conv, dense])
    b2 = Population("b2", (2, 2, 2), "if")
    with pytest.raises(ValueError, match="cannot take a pool connection"):
        SpikingNetwork((1, 4, 4), [a, b2, p, out],
                       [conv, pool, dense, PoolConnection("a", "b2", (2, 4, 4), (2, 2, 2))])
    with pytest.raises(ValueError, match="must pool a spiking population"):
        SpikingNetwork((2, 4, 4), [Population("p", (2, 2, 2), "lipool", pool={
            "source": INPUT, "kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0]}), out],
            [PoolConnection(INPUT, "p", (2, 4, 4), (2, 2, 2)), dense])


def test_pool_geometry_must_match_its_connection():
    src = Population("a", (1, 4, 4), "if", bias=np.zeros((1, 4, 4)))
    pool = Population("p", (1, 2, 2), "lipool",
                      pool={"source": "a", "kernel": [3, 3], "stride": [1, 1], "padding": [0] * 4})
    out = Population("out", (2,), "output", bias=np.zeros(2))
    conns = [IdentityConnection("input", "a", (1, 4, 4), (1, 4, 4)),
             PoolConnection("a", "p", (1, 4, 4), (1, 2, 2), kernel=[2, 2], stride=[2, 2]),
             DenseConnection("p", "out", (1, 2, 2), (2,), weight=np.ones((2, 4)))]
    with pytest.raises(ValueError, match="PoolConnection has"):
        SpikingNetwork((1, 4, 4), [src, pool, out], conns)


def test_sparse_connection_copies_and_merges_duplicates():
    raw = sp.csr_matrix((np.array([0.5, 0.25], np.float32), np.array([1, 1]),
                         np.array([0, 2, 2])), shape=(2, 2))
    c = SparseConnection("a", "b", (2,), (2,), matrix=raw)
    assert c.fan_out().tolist() == [1, 0]          # one synapse of weight 0.75, not two
    assert c.to_csr().toarray()[0, 1] == 0.75
    assert raw.nnz == 2                             # the caller's matrix is untouched


def test_pooling_population_rejects_bias_and_bad_burst():
    with pytest.raises(ValueError, match="cannot have a bias"):
        Population("p", (1, 2, 2), "lipool", bias=np.zeros((1, 2, 2)),
                   pool={"source": "a", "kernel": [2, 2], "stride": [2, 2], "padding": [0] * 4})
    with pytest.raises(ValueError, match="burst"):
        Population("a", (2,), "if", burst=None)
