"""Tests for the converter: BN folding, linear-chain fusion, normalisation, analog oracle.

The central check: ``analog_forward(net, x)[pop] * pop.scale`` (the SNN's exact rate limit,
de-normalised) equals the ANN activation of ``pop.ann_node`` for every population, and the
output population equals the ANN logits — for every norm, layer-/channel-wise λ and pooling
mode, on small random graphs covering VGG- and ResNet-style topologies.

Tolerance: errors are compared to the magnitude of the whole layer (``max |activation|``),
with rtol 1e-5. The SNN side runs float32 weights rescaled by λ ratios, biases pushed
through ops in float32, and convolutions materialised / composed / summed in a different
order than the ANN's GEMM; each step adds float32 rounding (~6e-8 relative to the layer
scale) and a few layers accumulate ~1e-6. An element-wise rtol would fail on activations
that are tiny only because of cancellation.
"""

import json
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsnn.convert import NORMS, POOLINGS, analog_forward, ann_activations, fold_batchnorm
from eventsnn.convert import convert as convert_any_preset
from eventsnn.convert.calibrate import ScaleAccumulator, activation_scale, percentile_index
from eventsnn.graph import Graph, Node
from eventsnn.network import (ConvConnection, DenseConnection, IdentityConnection,
                              SparseConnection, load_network)

RTOL = 1e-5


def convert(graph, calib_x, **kw):
    """The exact conversion these tests check (no calibration, V(0) = 0): the paper preset."""
    return convert_any_preset(graph, calib_x, **{"preset": "paper", **kw})


class Builder:
    """Builds a random test graph node by node (names are ``f"{op}{index}"``)."""

    def __init__(self, input_shape, seed=0, maxpool_as_avg=False):
        self.input_shape = tuple(input_shape)
        self.rng = np.random.default_rng(seed)
        self.nodes = []
        self.avg = maxpool_as_avg

    def shape(self, x):
        if x == "input":
            return self.input_shape
        return Graph(self.nodes, self.input_shape).node(x).shape

    def _add(self, op, inputs, attrs=None, params=None):
        name = f"{op}{len(self.nodes)}"
        self.nodes.append(Node(name, op, tuple(inputs), attrs or {}, params or {}))
        return name

    def r(self, *s, scale=1.0):
        return (self.rng.standard_normal(s) * scale).astype(np.float32)

    def conv(self, x, o, k=3, s=1, p=1, bias=True):
        c = self.shape(x)[0]
        params = {"weight": self.r(o, c, k, k, scale=1.5 / np.sqrt(c * k * k))}
        if bias:
            params["bias"] = self.r(o, scale=0.1)
        pad = list(p) if isinstance(p, (list, tuple)) else [p] * 4
        return self._add("conv", [x], {"stride": [s, s], "padding": pad}, params)

    def bn(self, x):
        c = self.shape(x)[0]
        sign = self.rng.choice([-1.0, 1.0], c)
        return self._add("batchnorm", [x], {"eps": 1e-5}, {
            "mean": self.r(c, scale=0.2), "var": self.rng.uniform(0.5, 2, c).astype(np.float32),
            "weight": (self.rng.uniform(0.5, 1.5, c) * sign).astype(np.float32),
            "bias": self.r(c, scale=0.2)})

    def relu(self, x):
        return self._add("relu", [x])

    def maxpool(self, x, k=2, s=2, p=0):
        if self.avg:
            return self.avgpool(x, k, s, p)
        return self._add("maxpool", [x], {"kernel": [k, k], "stride": [s, s], "padding": [p] * 4})

    def avgpool(self, x, k=2, s=2, p=0, cip=True):
        return self._add("avgpool", [x], {"kernel": [k, k], "stride": [s, s], "padding": [p] * 4,
                                          "count_include_pad": cip})

    def gap(self, x):
        return self._add("global_avgpool", [x])

    def flatten(self, x):
        return self._add("flatten", [x])

    def linear(self, x, o, bias=True):
        n = self.shape(x)[0]
        params = {"weight": self.r(o, n, scale=1.5 / np.sqrt(n))}
        if bias:
            params["bias"] = self.r(o, scale=0.1)
        return self._add("linear", [x], {}, params)

    def add(self, *xs):
        return self._add("add", xs)

    def pad(self, x, pads):
        return self._add("pad", [x], {"pads": pads})

    def slice(self, x, starts, ends, steps):
        return self._add("slice", [x], {"starts": starts, "ends": ends, "steps": steps})

    def identity(self, x):
        return self._add("identity", [x])

    def graph(self):
        return Graph(self.nodes, self.input_shape)


# --- test graphs (each takes maxpool_as_avg to build its avg-pool twin) -------------------


def vgg(avg=False):
    """conv-bn-relu x2, maxpool 2/2, conv-bn-relu, overlapping padded maxpool 3/2/1, linear."""
    b = Builder((3, 10, 10), 1, avg)
    x = b.relu(b.bn(b.conv("input", 6)))
    x = b.relu(b.bn(b.conv(x, 6)))
    x = b.maxpool(x)
    x = b.relu(b.bn(b.conv(x, 8, bias=False)))
    x = b.maxpool(x, 3, 2, 1)
    x = b.relu(b.linear(b.flatten(x), 12))
    b.linear(x, 5)
    return b.graph()


def resnet(avg=False):
    """Stem, identity block, option-A (slice + channel pad) block, conv-shortcut block,
    avgpool, global pool, linear."""
    b = Builder((3, 8, 8), 2, avg)
    x = b.relu(b.bn(b.conv("input", 4)))
    # identity shortcut
    y = b.relu(b.bn(b.conv(x, 4)))
    y = b.bn(b.conv(y, 4))
    x = b.relu(b.add(y, x))
    # option A: stride-2 branch, shortcut x[:, ::2, ::2] padded with zero channels
    y = b.relu(b.bn(b.conv(x, 8, s=2)))
    y = b.bn(b.conv(y, 8))
    sc = b.pad(b.slice(x, [0, 0, 0], [4, 8, 8], [1, 2, 2]), [2, 0, 0, 2, 0, 0])
    x = b.relu(b.add(y, sc))
    # conv shortcut (1x1 stride 1 + BN)
    y = b.relu(b.bn(b.conv(x, 6)))
    y = b.bn(b.conv(y, 6))
    sc = b.bn(b.conv(x, 6, k=1, p=0))
    x = b.relu(b.add(y, sc))
    x = b.avgpool(x, 2, 1, 0)
    b.linear(b.flatten(b.gap(x)), 5)
    return b.graph()


def maxpool_before_relu(avg=False):
    """conv-bn-maxpool-relu (commuted), then a padded maxpool on the input side as well."""
    b = Builder((2, 8, 8), 3, avg)
    x = b.relu(b.maxpool(b.bn(b.conv("input", 5)), 3, 1, 1))
    x = b.relu(b.maxpool(b.conv(x, 6), 2, 2, 0))
    x = b.linear(b.flatten(x), 4)
    return b.graph()


def bn_after_relu(avg=False):
    """ReLU -> BN -> zero-padded conv: the BN shift becomes a per-neuron bias (exact at borders);
    also a BN after an Add and an identity (dropout) node."""
    b = Builder((3, 7, 7), 4, avg)
    x = b.relu(b.conv("input", 5))
    x = b.identity(b.bn(x))
    x = b.relu(b.conv(x, 5))
    y = b.relu(b.conv(x, 5))
    x = b.relu(b.bn(b.add(x, y)))
    x = b.linear(b.flatten(b.bn(x)), 3)
    return b.graph()


def fused_chains(avg=False):
    """Pad -> conv (folded into conv padding), avgpool -> conv (composed), overlapping
    avgpool -> conv (materialised), add of two terms from one source (merged), a maxpool
    taken straight off the input and flatten -> ReLU of a population."""
    b = Builder((2, 9, 9), 5, avg)
    x = b.relu(b.maxpool(b.identity("input"), 2, 1, 0))
    x = b.relu(b.conv(b.pad(x, [0, 1, 2, 0, 1, 0]), 4, p=0))
    x = b.relu(b.conv(b.avgpool(x, 2, 2, 0), 4))
    x = b.relu(b.conv(b.avgpool(x, 3, 1, 1, cip=False), 4))
    y = b.conv(x, 4, bias=False)
    x = b.relu(b.add(y, x, b.conv(x, 4, k=1, p=0)))
    x = b.relu(b.flatten(x))
    x = b.linear(x, 3)
    return b.graph()


GRAPHS = {"vgg": vgg, "resnet": resnet, "maxpool_before_relu": maxpool_before_relu,
          "bn_after_relu": bn_after_relu, "fused_chains": fused_chains}


def calib(graph, n=24, seed=0):
    return np.random.default_rng(seed).standard_normal((n,) + graph.input_shape).astype(np.float32)


def scale_bcast(pop):
    s = np.asarray(pop.scale, dtype=np.float64)
    return s if s.ndim == 0 else s.reshape((-1,) + (1,) * (len(pop.shape) - 1))


def assert_matches_ann(net, ann_graph, x):
    """analog_forward * λ == ANN activation of ann_node, every population; output == logits."""
    analog = analog_forward(net, x)
    ref = ann_activations(ann_graph, net, x)
    assert set(analog) == {p.name for p in net.populations}
    for p in net.populations:
        got = analog[p.name] * scale_bcast(p)
        want = ref[p.name]
        assert got.shape == want.shape == (len(x),) + p.shape
        err = np.max(np.abs(got - want))
        assert err <= RTOL * max(np.max(np.abs(want)), 1e-3), (p.name, p.kind, err)
    np.testing.assert_allclose(analog[net.output.name], ann_graph.forward(x),
                               rtol=0, atol=RTOL * np.abs(ann_graph.forward(x)).max())


# --- BatchNorm folding (Eq. 7) -------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_fold_batchnorm_keeps_every_activation(name):
    g = GRAPHS[name]()
    f = fold_batchnorm(g)
    x = calib(g, 5)
    a, b = g.forward(x, return_all=True), f.forward(x, return_all=True)
    assert set(b) <= set(a) and f.output == g.output
    for k, v in b.items():
        np.testing.assert_allclose(v, a[k], rtol=0, atol=1e-5 * max(np.abs(a[k]).max(), 1))


def test_fold_batchnorm_which_bns():
    b = Builder((2, 5, 5))
    c1 = b.conv("input", 3, bias=False)
    b1 = b.bn(c1)                                  # folded (conv without bias)
    r = b.relu(b1)
    b2 = b.bn(r)                                   # after ReLU: stays
    c2 = b.conv(b2, 3)
    b3 = b.bn(c2)                                  # conv has two consumers: stays
    s = b.add(b3, c2)
    v = b.linear(b.flatten(s), 4)
    b4 = b.bn(v)                                   # BN1d after linear and graph output: folded
    g = Graph(b.nodes, b.input_shape)
    f = fold_batchnorm(g)
    ops = {n.name: n.op for n in f.nodes}
    assert ops[b1] == "conv" and c1 not in ops
    assert ops[b2] == "batchnorm" and ops[b3] == "batchnorm" and ops[c2] == "conv"
    assert ops[b4] == "linear" and v not in ops and f.output == b4
    assert len(f.nodes) == len(g.nodes) - 2
    x = calib(g, 4)
    np.testing.assert_allclose(f.forward(x), g.forward(x), rtol=1e-5, atol=1e-5)
    # the input graph is untouched
    assert g.node(c1).op == "conv" and "bias" not in g.node(c1).params


def test_fold_batchnorm_rejects_non_graph():
    with pytest.raises(TypeError, match="Graph"):
        fold_batchnorm([])


# --- analog_forward == ANN for every setting ----------------------------------------------


@pytest.mark.filterwarnings("ignore:.*calibration activations are 0")
@pytest.mark.filterwarnings("ignore:.*used the maximum")
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("channelwise", [False, True])
@pytest.mark.parametrize("norm", NORMS)
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_analog_forward_equals_ann(name, norm, channelwise, pooling):
    g = GRAPHS[name]()
    x = calib(g)
    net = convert(g, x, norm=norm, channelwise=channelwise, pooling=pooling, percentile=99.0,
                  burst=3, batch_size=7)
    ann = GRAPHS[name](avg=True) if pooling == "avg" else g
    assert_matches_ann(net, ann, calib(g, 6, seed=1))
    for p in net.populations:
        assert p.threshold == 1.0
        assert p.burst == (3 if p.kind == "if" else 1)
        assert np.all(p.scale > 0)
        if channelwise and p.kind != "output":
            assert p.scale.shape == (p.shape[0],)
        else:
            assert p.scale.shape == ()
    kinds = {p.kind for p in net.populations}
    if pooling != "avg" and any(n.op == "maxpool" for n in g.nodes):
        assert pooling in kinds
    if pooling == "avg":
        assert kinds <= {"if", "output"}


def test_vgg_structure():
    g = vgg()
    net = convert(g, calib(g))
    kinds = [(p.name, p.kind, p.ann_node) for p in net.populations]
    assert kinds == [("relu2", "if", "relu2"), ("relu5", "if", "relu5"),
                     ("maxpool6", "lipool", "maxpool6"), ("relu9", "if", "relu9"),
                     ("maxpool10", "lipool", "maxpool10"), ("relu13", "if", "relu13"),
                     ("output", "output", "linear14")]
    conn = {c.name: c for c in net.connections}
    assert isinstance(conn["input->relu2"], ConvConnection)
    assert isinstance(conn["maxpool6->relu9"], ConvConnection)
    assert isinstance(conn["maxpool10->relu13"], DenseConnection)
    assert conn["relu5->maxpool6"].kind == "pool"
    assert net.population("maxpool6").scale == net.population("relu5").scale
    assert net.population("maxpool6").pool == {"source": "relu5", "kernel": [2, 2],
                                               "stride": [2, 2], "padding": [0, 0, 0, 0]}
    assert net.output.scale == 1.0


def test_resnet_structure():
    g = resnet()
    net = convert(g, calib(g))
    by_dst = {}
    for c in net.connections:
        by_dst.setdefault(c.dst, []).append(c)
    kinds = {c.name: c.kind for c in net.connections}
    # identity shortcut, option-A (slice + pad) shortcut, conv shortcut
    assert kinds["relu2->relu9"] == "identity"
    assert kinds["relu9->relu18"] == "csr"
    assert kinds["relu18->relu27"] == "conv"
    sc = next(c for c in net.connections if c.name == "relu9->relu18")
    # option A: each kept source neuron has exactly one synapse, dropped ones none
    assert sc.to_csr().nnz == 4 * 4 * 4 and set(np.unique(sc.fan_out())) == {0, 1}
    # avgpool -> global pool -> flatten -> linear is materialised (dense: every entry nonzero)
    assert isinstance(next(c for c in net.connections if c.dst == "output"), DenseConnection)
    assert all(len({c.src for c in cs}) == len(cs) for cs in by_dst.values())


def test_fused_chain_structure():
    g = fused_chains()
    net = convert(g, calib(g))
    assert [p.kind for p in net.populations[:2]] == ["if", "lipool"]   # maxpool/ReLU swapped
    kinds = {c.name: c.kind for c in net.connections}
    assert kinds["input->relu2"] == "identity"              # ReLU taken straight off the input
    assert kinds["relu2->maxpool1"] == "pool"
    assert kinds["maxpool1->relu5"] == "conv"               # pad folded into conv padding
    assert kinds["relu5->relu8"] == "conv"                  # avgpool 2/2 composed into the conv
    assert kinds["relu8->relu11"] == "dense"                # overlapping avgpool: probed, >50% full
    assert kinds["relu11->relu15"] == "conv"                # conv + identity + 1x1 conv merged
    assert kinds["relu15->relu17"] == "csr"                 # ReLU of a flattened population
    pad_conv = next(c for c in net.connections if c.name == "maxpool1->relu5")
    assert pad_conv.padding == [1, 2, 1, 0]                 # pads [c,h,w begin, c,h,w end]
    composed = next(c for c in net.connections if c.name == "relu5->relu8")
    assert composed.weight.shape[2:] == (6, 6) and composed.stride == [2, 2]


def test_same_source_terms_merge_into_one_connection():
    b = Builder((3, 6, 6), 7)
    x = b.relu(b.conv("input", 4))
    nest = b.add(b.conv(x, 4), x, b.bn(b.conv(x, 4, k=1, p=0)), x)        # RepVGG-like: nests
    y = b.relu(nest)
    shifted = b.conv(y, 4, p=[2, 0, 0, 2])                               # same output size,
    z = b.relu(b.add(b.conv(y, 4), shifted))                            # kernels do not nest
    b.linear(b.flatten(z), 3)
    g = b.graph()
    net = convert(g, calib(g), channelwise=True)
    merged = net.incoming(net.populations[1].name)
    assert len(merged) == 1 and isinstance(merged[0], ConvConnection)
    assert merged[0].weight.shape == (4, 4, 3, 3)
    other = net.incoming(net.populations[2].name)
    assert len(other) == 1 and isinstance(other[0], SparseConnection)
    assert_matches_ann(net, g, calib(g, 4, seed=5))


def test_analog_pooling_equals_pool_connection_apply():
    g = vgg()
    net = convert(g, calib(g))
    x = calib(g, 3, seed=8)
    a = analog_forward(net, x)
    for p in net.populations:
        if p.kind == "lipool":
            (c,) = net.incoming(p.name)
            np.testing.assert_array_equal(a[p.name].reshape(3, -1), c.apply(a[c.src]))


def test_bn_after_relu_bias_is_per_neuron_and_exact_at_borders():
    g = bn_after_relu()
    net = convert(g, calib(g), norm="max")
    pop = net.population("relu5")
    assert pop.bias.shape == pop.shape
    # zero padding reads no BN shift: corner and centre biases differ
    assert not np.allclose(pop.bias[:, 0, 0], pop.bias[:, 3, 3])
    assert_matches_ann(net, g, calib(g, 5, seed=3))


def test_output_population_integrates_logits():
    g = vgg()
    net = convert(g, calib(g), norm="max")
    x = calib(g, 4, seed=9)
    np.testing.assert_allclose(analog_forward(net, x)["output"], g.forward(x), rtol=1e-5, atol=1e-5)
    assert net.output.kind == "output" and net.output.ann_node == g.output


def test_relu_at_graph_output_and_population_aliases():
    b = Builder((2, 4, 4))
    x = b.relu(b.conv("input", 3))
    x = b.relu(b.identity(x))                         # ReLU of a population: same population
    g = b.graph()
    with pytest.warns(UserWarning, match=r"relu on the logits \(node 'relu3'\) is dropped"):
        net = convert(g, calib(g))
    assert [p.kind for p in net.populations] == ["if", "output"]
    assert isinstance(net.incoming("output")[0], IdentityConnection)
    assert_matches_ann(net, g, calib(g, 3, seed=2))


def test_meta_and_save_roundtrip(tmp_path):
    g = resnet()
    net = convert(g, calib(g), channelwise=True, burst=2, pooling="maxgate", percentile=99.5)
    m = net.meta
    assert (m["norm"], m["percentile"], m["burst"], m["pooling"], m["channelwise"], m["calib_size"]) == \
        ("burst-percentile", 99.5, 2, "maxgate", True, 24)
    assert m["folded_batchnorms"] == 8          # every BN of resnet() follows a conv
    assert set(m["scales"]) == {p.name for p in net.populations}
    json.dumps(m)
    net.save(tmp_path / "n.npz")
    back = load_network(tmp_path / "n.npz")
    x = calib(g, 3, seed=4)
    a, b = analog_forward(net, x), analog_forward(back, x)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_maxpool_before_relu_records_relu_targets():
    g = maxpool_before_relu()
    net = convert(g, calib(g))
    first = net.populations[0]
    assert first.kind == "if" and first.ann_node == "batchnorm1"
    assert first.name in net.meta["ann_relu"]
    assert net.populations[1].kind == "lipool" and net.populations[1].ann_node == "relu3"


# --- λ (Eq. 6) against hand computation ----------------------------------------------------


def test_percentile_index_follows_the_authors():
    assert percentile_index(1000, 99.9) == 998
    assert percentile_index(1000, 100) == 999
    assert percentile_index(10, 5) == 0


def test_scale_hand_values():
    vals = np.arange(1, 1001, dtype=np.float32) / 100      # 0.01 .. 10.00
    acts = np.random.default_rng(0).permutation(vals).reshape(10, 100)
    assert activation_scale(acts, "max") == np.float32(10.0)
    assert activation_scale(acts, "percentile", 99.9) == np.float32(9.99)   # sorted[998]
    assert activation_scale(acts, "percentile", 50) == np.float32(5.0)      # sorted[499]
    # burst-aware: values > 1 become v / Γ; with Γ = 5 the largest is 10 / 5 = 2
    assert activation_scale(acts, "burst-percentile", 100, burst=5) == np.float32(2.0)
    t = np.where(vals > 1, vals / 5, vals)
    assert activation_scale(acts, "burst-percentile", 90, burst=5) == np.sort(t)[899]
    # zeros are counted: 900 zeros + 100 values, p = 95 -> sorted[949] = 50th positive
    z = np.concatenate([np.zeros(900, np.float32), np.arange(1, 101, dtype=np.float32)])
    assert activation_scale(z.reshape(100, 10), "percentile", 95) == 50.0


def test_scale_channelwise_hand_values():
    acts = np.zeros((4, 2, 3), np.float32)
    acts[:, 0] = np.arange(12).reshape(4, 3)
    acts[:, 1] = 2 * np.arange(12).reshape(4, 3)
    lam = activation_scale(acts, "max", channelwise=True)
    np.testing.assert_array_equal(lam, [11, 22])
    lam = activation_scale(acts, "percentile", 50, channelwise=True)   # 12 values -> index 5
    np.testing.assert_array_equal(lam, [5, 10])


def test_scale_zero_fallbacks_warn():
    with pytest.warns(UserWarning, match="all calibration activations are 0"):
        assert activation_scale(np.zeros((3, 4)), "max") == 1.0
    sparse = np.zeros((100, 10), np.float32)
    sparse[0, 0] = 3.0
    with pytest.warns(UserWarning, match="used the maximum"):
        assert activation_scale(sparse, "percentile", 99.0) == 3.0


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 40), size=st.integers(1, 30), p=st.floats(0.5, 100),
       norm=st.sampled_from(NORMS), cw=st.booleans(), chunks=st.integers(1, 5),
       seed=st.integers(0, 10_000))
def test_streaming_scale_equals_sorting_everything(n, size, p, norm, cw, chunks, seed):
    rng = np.random.default_rng(seed)
    acts = np.maximum(rng.standard_normal((n, 2, size)) * 2, 0).astype(np.float32)
    acc = ScaleAccumulator((2, size), n, norm, p, 3, cw)
    for part in np.array_split(acts, chunks):
        acc.update(part)
    rows = acts.transpose(1, 0, 2).reshape(2, -1) if cw else acts.reshape(1, -1)
    if norm == "burst-percentile":
        rows = np.where(rows > 1, rows / np.float32(3), rows)
    want = rows.max(axis=1) if norm == "max" else \
        np.sort(rows, axis=1)[:, percentile_index(rows.shape[1], p)]
    np.testing.assert_array_equal(acc.raw(), want)


@pytest.mark.parametrize("norm", NORMS)
def test_convert_scales_match_hand_computation(norm):
    g = resnet()
    x = calib(g, 30)
    # λ is measured on the BN-folded graph: its activations differ from the unfolded graph's by
    # float rounding, which can move a percentile's rank or an MMSE argmin
    acts = fold_batchnorm(g).forward(x, return_all=True)
    for cw in (False, True):
        net = convert(g, x, norm=norm, percentile=98.0, burst=2, channelwise=cw, batch_size=8)
        for p in net.populations:
            if p.kind == "if":
                want = activation_scale(acts[p.ann_node], norm, 98.0, 2, cw)
                # Exact: convert runs the ANN in batches of 8 and the hand computation in one
                # batch, but the forward pass rounds each image the same way in any batch
                # (eventsnn.kernels.gemm.matmul), so both see the same activations. The
                # population stores λ in float32 (MMSE's λ is a float64 candidate).
                np.testing.assert_array_equal(p.scale, np.float32(want))
            np.testing.assert_array_equal(net.meta["scales"][p.name], p.scale)


def test_dead_layer_gets_unit_scale_with_warning():
    b = Builder((2, 4, 4))
    b.nodes.append(Node("dead", "conv", ("input",), {"padding": [1, 1, 1, 1]}, {
        "weight": np.zeros((3, 2, 3, 3), np.float32), "bias": -np.ones(3, np.float32)}))
    b.linear(b.flatten(b.relu("dead")), 2)            # the ReLU output is always 0
    g = b.graph()
    with pytest.warns(UserWarning, match="all calibration activations are 0"):
        net = convert(g, calib(g))
    assert net.populations[0].scale == 1.0


# --- errors --------------------------------------------------------------------------------


def test_bad_arguments():
    g = vgg()
    x = calib(g, 4)
    with pytest.raises(TypeError, match="Graph"):
        convert("model.onnx", x)
    with pytest.raises(ValueError, match=r"expected \(B, 3, 10, 10\)"):
        convert(g, x[0])
    with pytest.raises(ValueError, match=r"expected \(B, 3, 10, 10\)"):
        convert(g, x[:, :2])
    with pytest.raises(ValueError, match="empty"):
        convert(g, x[:0])
    bad = x.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        convert(g, bad)
    with pytest.raises(ValueError, match="dtype"):
        convert(g, (x * 10).astype(np.uint8))
    with pytest.raises(ValueError, match="'max', 'percentile'"):
        convert(g, x, norm="p-norm")
    with pytest.raises(ValueError, match="'lipool', 'maxgate', 'avg'"):
        convert(g, x, pooling="max")
    for p in (0, -1, 100.5):
        with pytest.raises(ValueError, match=r"\(0, 100\]"):
            convert(g, x, percentile=p)
    with pytest.raises(TypeError, match="percentile"):
        convert(g, x, percentile="99")
    for bad_burst in (0, 2.5, 10 ** 9, 1e23):
        with pytest.raises(ValueError, match="integer from 1 to 65536"):
            convert(g, x, burst=bad_burst)
    with pytest.raises(TypeError, match="burst"):
        convert(g, x, burst="5")
    with pytest.raises(TypeError, match="channelwise"):
        convert(g, x, channelwise="yes")
    with pytest.raises(ValueError, match="batch_size"):
        convert(g, x, batch_size=0)


def test_maxpool_of_non_relu_signal_is_rejected():
    b = Builder((2, 6, 6))
    x = b.maxpool(b.conv("input", 3))
    b.linear(b.flatten(x), 2)
    g = b.graph()
    with pytest.raises(ValueError, match=r"maxpool1.*neither a ReLU output nor a non-negative"):
        convert(g, calib(g))
    # fine as average pooling
    net = convert(g, calib(g), pooling="avg")
    assert [p.kind for p in net.populations] == ["output"]


def test_analog_forward_validates_input():
    g = vgg()
    net = convert(g, calib(g, 4))
    with pytest.raises(ValueError, match=r"expected \(B, 3, 10, 10\)"):
        analog_forward(net, np.zeros((3, 10, 10), np.float32))
    with pytest.raises(TypeError, match="SpikingNetwork"):
        analog_forward(g, calib(g, 2))


# --- the real ResNet-20 (ONNX) -------------------------------------------------------------


def _onnx_graph(shared_dir, name):
    pytest.importorskip("onnx")
    load_onnx = pytest.importorskip("eventsnn.io.onnx").load_onnx
    return load_onnx(shared_dir / "models" / name)


def test_resnet20_onnx_converts(shared_dir):
    g = _onnx_graph(shared_dir, "resnet20_cifar10.onnx")
    x = np.random.default_rng(0).standard_normal((6,) + g.input_shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        net = convert(g, x, batch_size=3)
    assert sum(p.kind == "if" for p in net.populations) == 19
    assert net.meta["folded_batchnorms"] == 19
    kinds = [c.kind for c in net.connections]
    assert (kinds.count("conv"), kinds.count("identity"), kinds.count("csr"), kinds.count("dense")) \
        == (19, 7, 2, 1)
    # option-A shortcuts: every other pixel of every channel, one synapse each
    for c in net.connections:
        if c.kind == "csr":
            assert c.to_csr().nnz == c.n_src // 4 and c.fan_out().max() == 1
    assert_matches_ann(net, g, x[:2])


@pytest.mark.slow
def test_resnet56_onnx_converts_channelwise(shared_dir):
    g = _onnx_graph(shared_dir, "resnet56_cifar10.onnx")
    x = np.random.default_rng(1).standard_normal((32,) + g.input_shape).astype(np.float32)
    net = convert(g, x, channelwise=True, norm="percentile", batch_size=16)
    assert sum(p.kind == "if" for p in net.populations) == 55
    assert_matches_ann(net, g, x[:4])


def test_zero_padding_after_relu_before_maxpool_is_pooled_exactly():
    """ZeroPad2d between a ReLU and a MaxPool keeps the signal non-negative: the padding is
    taken over by the pool, and the analog limit equals the ANN."""
    b = Builder((2, 6, 6))
    x = b.relu(b.conv("input", 3))
    x = b.maxpool(b.pad(x, [0, 1, 0, 0, 1, 1]), 2, 2, 0)     # pad top 1, bottom 1, right 1
    b.linear(b.flatten(x), 2)
    g = b.graph()
    xs = calib(g, 6)
    net = convert(g, xs, norm="max")
    pool = [p for p in net.populations if p.kind == "lipool"]
    assert len(pool) == 1 and pool[0].pool["padding"] == [1, 0, 1, 1]
    assert_matches_ann(net, g, xs)
    # a padded signal that is not a ReLU output is still refused
    b = Builder((2, 6, 6))
    b.linear(b.flatten(b.maxpool(b.pad(b.conv("input", 3), [0, 1, 0, 0, 1, 1]))), 2)
    g = b.graph()
    with pytest.raises(ValueError, match="neither a ReLU output"):
        convert(g, calib(g))
