"""Conversion of the ops third-party CNNs use: concatenation, bounded ReLUs (ReLU6 / Clip),
grouped, depthwise and dilated convolutions, per-channel affines around max pooling,
adaptive average pooling and NHWC flattening.

Each graph is checked as in ``test_convert`` (the SNN's rate limit ``analog_forward`` times λ
equals the ANN activation of every population; tolerance explained there), plus the
structure the conversion must have (each concatenated part keeps its own λ; grouped convs
are CSR connections holding exactly the real synapses), and both engines and the dense
twin agree bit for bit on the dyadic version of every converted network.
"""

import numpy as np
import pytest

from eventsnn.convert import POOLINGS, analog_forward, ann_activations
from eventsnn.convert import convert as convert_any_preset
from eventsnn.engine import simulate
from eventsnn.convert.fusion import Conv, probe
from eventsnn.graph import Graph, Node, conv2d
from eventsnn.network import ConvConnection, Population, SpikingNetwork, conv_csr
from test_convert import RTOL, Builder, calib, scale_bcast
from fuzz_models import dyadic_version
from eventsnn.testing import check_engines_agree


def convert(graph, calib_x, **kwargs):
    """The converter with the paper preset (no layer-wise calibration), whose rate limit
    equals the ANN exactly: the conversion tests here compare against that limit."""
    return convert_any_preset(graph, calib_x, **{"preset": "paper", **kwargs})


class OpsBuilder(Builder):
    def gconv(self, x, o, k=3, s=1, p=1, groups=1, dilation=1, bias=True):
        c = self.shape(x)[0]
        params = {"weight": self.r(o, c // groups, k, k, scale=1.5 / np.sqrt(c // groups * k * k))}
        if bias:
            params["bias"] = self.r(o, scale=0.1)
        pad = list(p) if isinstance(p, (list, tuple)) else [p] * 4
        return self._add("conv", [x], {"stride": [s, s], "padding": pad, "groups": groups,
                                       "dilation": [dilation, dilation]}, params)

    def clip(self, x, hi=6.0):
        return self._add("clip", [x], {"max": hi})

    def cat(self, *xs, axis=0):
        return self._add("concat", xs, {"axis": axis})

    def affine(self, x, positive=True):
        c = self.shape(x)[0]
        scale = self.rng.uniform(0.5, 2, c).astype(np.float32)
        if not positive:
            scale[0] = -scale[0]
        return self._add("batchnorm", [x], {"eps": 0.0}, {
            "mean": np.zeros(c, np.float32), "var": np.ones(c, np.float32), "weight": scale,
            "bias": self.r(c, scale=0.3)})

    def transpose(self, x, perm):
        return self._add("transpose", [x], {"perm": perm})

    def adaptive(self, x, out):
        return self._add("adaptive_avgpool", [x], {"output": out})


def inception(avg=False):
    """Inception-style block: 1x1, 3x3 and pool branches concatenated, a DenseNet-style
    concat of a population with a new layer, max pooling of the concatenation, a concat of
    two expressions (BN after each) feeding a ReLU, and a concat of vectors."""
    b = OpsBuilder((3, 8, 8), 11, avg)
    x = b.relu(b.conv("input", 4))
    b1 = b.relu(b.conv(x, 3, k=1, p=0))
    b2 = b.relu(b.conv(b.relu(b.conv(x, 2, k=1, p=0)), 3))
    b3 = b.relu(b.conv(b.maxpool(x, 3, 1, 1), 2, k=1, p=0))
    x = b.cat(b1, b2, b3)                                   # 8 channels, three populations
    x = b.cat(x, b.relu(b.bn(b.conv(x, 2))))                # DenseNet: x and a new layer
    x = b.maxpool(b.relu(x))                                # pooled part by part
    y = b.relu(b.cat(b.bn(b.conv(x, 3)), b.bn(x)))          # one population over the concat
    v = b.cat(b.flatten(b.gap(y)), b.flatten(b.gap(x)))     # concat of vectors
    b.linear(v, 5)
    return b.graph()


def mobilenet(avg=False):
    """ReLU6 / Clip(0, a) after BN, depthwise and grouped convs, a dilated conv, a clip of a
    population, an inverted residual, adaptive average pooling to 3x3."""
    b = OpsBuilder((3, 9, 9), 12, avg)
    x = b.clip(b.bn(b.gconv("input", 6, s=1)), 6.0)
    y = b.clip(b.bn(b.gconv(x, 6, groups=6)), 6.0)           # depthwise
    y = b.bn(b.gconv(y, 6, k=1, p=0, groups=2))              # grouped pointwise
    x = b.add(x, y)                                          # inverted residual, linear
    x = b.clip(b.relu(b.gconv(x, 4, p=2, dilation=2)), 2.0)  # dilated; clip of an IF population
    x = b.clip(x, 3.0)                                       # looser bound: same population
    x = b.adaptive(x, [3, 3])                                # 9 -> 3 (uneven windows would be 4 -> 3)
    b.linear(b.flatten(x), 4)
    return b.graph()


def keras_order(avg=False):
    """Keras ordering conv-ReLU-BN-MaxPool (positive BN scale commuted through the max), a
    constant affine before a maxpool of a concatenation's consumer, adaptive pooling with
    uneven windows, NHWC flatten through a transpose, raw-range input."""
    b = OpsBuilder((2, 7, 7), 13, avg)
    x = b.maxpool(b.affine(b.relu(b.conv("input", 4))), 2, 2, 0)
    x = b.maxpool(b.affine(b.relu(b.conv(x, 5, p=[0, 0, 1, 1]))), 1, 1, 0)  # 'same' pad, 1x1 pool
    x = b.relu(b.conv(x, 4))
    x = b.adaptive(x, [2, 2])                                 # 3 -> 2: overlapping windows
    x = b.flatten(b.transpose(x, [1, 2, 0]))
    b.linear(x, 3)
    return b.graph()


def assert_matches_ann(net, ann_graph, x):
    """As ``test_convert.assert_matches_ann``; a pooling population made for a part of a
    concatenation or behind an affine has no ANN node of its own (``ann_node`` None): it is
    checked through the populations and the output it feeds."""
    analog = analog_forward(net, x)
    ref = ann_activations(ann_graph, net, x)
    for p in net.populations:
        if p.ann_node is None:
            assert p.kind in POOLINGS
            continue
        got, want = analog[p.name] * scale_bcast(p), ref[p.name]
        assert got.shape == want.shape == (len(x),) + p.shape
        err = np.max(np.abs(got - want))
        assert err <= RTOL * max(np.max(np.abs(want)), 1e-3), (p.name, p.kind, err)
    logits = ann_graph.forward(x)
    np.testing.assert_allclose(analog[net.output.name], logits, rtol=0, atol=RTOL * np.abs(logits).max())


GRAPHS = {"inception": inception, "mobilenet": mobilenet, "keras_order": keras_order}


@pytest.mark.filterwarnings("ignore:.*calibration activations are 0")
@pytest.mark.filterwarnings("ignore:.*used the maximum")
@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("channelwise", [False, True])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_analog_forward_equals_ann(name, channelwise, pooling):
    g = GRAPHS[name]()
    x = calib(g) * 3
    net = convert(g, x, percentile=99.0, burst=3, channelwise=channelwise, pooling=pooling)
    ann = GRAPHS[name](avg=True) if pooling == "avg" else g
    assert_matches_ann(net, ann, calib(g, 6, seed=1) * 3)


@pytest.mark.filterwarnings("ignore:.*calibration activations are 0")
@pytest.mark.parametrize("pooling", ["lipool", "maxgate"])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_engines_agree_on_dyadic_conversions(name, pooling):
    g = GRAPHS[name]()
    net = dyadic_version(convert(g, calib(g) * 3, percentile=99.0, burst=3, pooling=pooling))
    x = np.round(calib(g, 2, seed=3) * 16) / 16
    ref, fast = check_engines_agree(net, x, 6)
    assert any(v.sum() for v in fast.spikes.values())


def test_concat_parts_keep_their_own_scale_and_connections():
    g = inception()
    net = convert(g, calib(g) * 3, percentile=99.0)
    names = {p.ann_node: p for p in net.populations if p.kind == "if"}
    # the conv after the first concat: one weight-shared conv per part (its slice of input
    # channels), each part normalised by its own λ
    incoming = net.incoming(names["relu14"].name)
    assert [c.src for c in incoming] == [names[n].name for n in ("relu3", "relu7", "relu10")]
    assert all(isinstance(c, ConvConnection) for c in incoming)
    assert [c.weight.shape[1] for c in incoming] == [3, 3, 2]
    assert len({float(names[n].scale) for n in ("relu3", "relu7", "relu10")}) == 3
    # maxpool of the concatenation: one pooling population per part, no extra IF stage
    pools = [p for p in net.populations if p.kind == "lipool" and p.ann_node is None]
    assert sorted(p.shape[0] for p in pools) == [2, 2, 3, 3]


def test_concat_synops_are_counted_per_real_connection():
    g = inception()
    net = convert(g, calib(g) * 3, percentile=99.0)
    res = simulate(net, calib(g, 2, seed=4) * 3, 8, record=("trains",))
    for c in net.connections:
        if c.src == "input" or c.kind == "pool":
            continue
        fan = c.fan_out()
        want = sum(int(np.sum(res.records["trains"][c.src][t] * fan)) for t in range(8))
        assert int(res.synops[c.name].sum()) == want, c.name


def test_bounded_relu_population():
    g = mobilenet()
    net = convert(g, calib(g) * 3, percentile=99.0, burst=5)
    bounded = [p for p in net.populations if p.v_max is not None]
    assert [p.ann_node for p in bounded] == ["clip2", "clip5", "clip11"]
    for p in bounded:
        bound = g.node(p.ann_node).attrs["max"]
        assert 1 <= p.burst <= 5 and p.v_max == 1.0
        np.testing.assert_allclose(float(p.scale) * p.burst, bound, rtol=1e-6)  # cap == clip


def test_bounded_relu_saturates_without_residual_charge():
    """Input far above the bound: rate exactly Γ from the first step, V never above v_max, and
    once the input stops the neuron is silent after at most one spike (no stored charge)."""
    pops = [Population("a", (3,), "if", burst=2, v_max=1.0, bias=np.array([9.0, 2.5, 0.75], np.float32)),
            Population("o", (3,), "output")]
    from eventsnn.network import IdentityConnection
    net = SpikingNetwork((3,), pops, [IdentityConnection("input", "a", (3,), (3,), scale=0.0),
                                      IdentityConnection("a", "o", (3,), (3,))])
    for engine in ("reference", "numba"):
        r = simulate(net, np.zeros((1, 3), np.float32), 8, engine=engine, record=("trains", "potential"))
        tr = r.records["trains"]["a"][:, 0]
        np.testing.assert_array_equal(tr[:, 0], 2)       # 9 per step, capped at Γ = 2
        np.testing.assert_array_equal(tr[:, 1], 2)
        assert tr[:, 2].sum() == 6                       # 0.75 per step, below the cap: 6 in 8 steps
        assert np.all(r.records["potential"]["a"] <= 1.0)
    net.populations[0].bias[:] = 0
    r = simulate(net, np.zeros((1, 3), np.float32), 4, engine="reference", record=("trains",))
    assert r.records["trains"]["a"].sum() == 0


@pytest.mark.parametrize("groups,dilation,stride", [(1, 2, 1), (3, 1, 2), (6, 1, 1), (2, 2, 1)])
def test_grouped_conv_csr_holds_exactly_the_synapses(groups, dilation, stride):
    rng = np.random.default_rng(groups * 10 + dilation)
    w = rng.uniform(0.5, 1.5, (6, 6 // groups, 3, 3)).astype(np.float32)  # no zero weights
    pad = [1, 2, 0, 1]
    src = (6, 7, 8)
    x = rng.normal(size=(2,) + src).astype(np.float32)
    y = conv2d(x, w, None, stride, pad, groups, dilation)
    conv = Conv(w, [stride] * 2, pad, src, y.shape[1:], groups, [dilation] * 2)
    m = conv_csr(w, [stride] * 2, pad, src, y.shape[1:], groups, [dilation] * 2)
    ref = probe([conv], src)  # response to every unit input: exact zeros are no synapses
    assert (m != ref).nnz == 0 and m.nnz == ref.nnz
    np.testing.assert_allclose((x.reshape(2, -1) @ m).reshape(y.shape), y, rtol=1e-5, atol=1e-5)


def test_grouped_conv_becomes_a_csr_connection():
    g = mobilenet()
    net = convert(g, calib(g) * 3)
    (dw,) = net.incoming("clip5")  # depthwise 3x3: each input neuron reaches <= 9 outputs of its channel
    assert dw.kind == "csr" and dw.src == "clip2" and np.diff(dw.to_csr().indptr).max() == 9


def test_max_pool_of_negative_affine_is_refused():
    b = OpsBuilder((2, 6, 6), 3)
    x = b.maxpool(b.affine(b.relu(b.conv("input", 3)), positive=False))
    b.linear(b.flatten(x), 2)
    g = b.graph()
    with pytest.raises(ValueError, match=r"maxpool\d.*negative scale turns the max into a min"):
        convert(g, calib(g))


@pytest.mark.filterwarnings("ignore:.*calibration activations are 0")
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_dense_twin_agrees_on_dyadic_conversions(name):
    torch = pytest.importorskip("torch")
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from dense_torch import DenseTorchSNN

    g = GRAPHS[name]()
    net = dyadic_version(convert(g, calib(g) * 3, percentile=99.0, burst=3))
    x = np.round(calib(g, 2, seed=3) * 16) / 16
    r = simulate(net, x, 6, engine="numba", progress=False)
    with torch.inference_mode():
        np.testing.assert_array_equal(DenseTorchSNN(net).run(x, 6).numpy(), r.outputs)


def test_final_relu_on_the_logits_is_dropped():
    b = OpsBuilder((2, 6, 6), 5)
    x = b.relu(b.conv("input", 3))
    b.clip(b.relu(b.linear(b.flatten(x), 4)), 6.0)
    g = b.graph()
    with pytest.warns(UserWarning, match=r"relu on the logits \(node 'relu4'\) is dropped.*argmax"):
        net = convert(g, calib(g))
    assert net.output.ann_node == "linear3" and [p.kind for p in net.populations] == ["if", "output"]
    logits = g.forward(calib(g, 3, seed=2), return_all=True)["linear3"]
    np.testing.assert_allclose(analog_forward(net, calib(g, 3, seed=2))["output"], logits, rtol=0,
                               atol=RTOL * np.abs(logits).max())


def test_bounded_population_survives_save_and_load(tmp_path):
    from eventsnn.network import load_network

    g = mobilenet()
    net = convert(g, calib(g) * 3, percentile=99.0)
    net.save(tmp_path / "n.npz")
    back = load_network(tmp_path / "n.npz")
    assert [p.v_max for p in back.populations] == [p.v_max for p in net.populations]
    assert "V<=1 (bounded ReLU)" in back.summary()
    x = calib(g, 2, seed=5)
    np.testing.assert_array_equal(simulate(back, x, 5).outputs, simulate(net, x, 5).outputs)


def test_max_pool_of_a_spatial_concatenation_is_refused():
    b = OpsBuilder((2, 6, 6), 6)
    x = b.relu(b.conv("input", 3))
    y = b.relu(b.conv("input", 3))
    x = b.maxpool(b.cat(b.cat(x, y, axis=1), b.cat(y, x, axis=1)))  # H-concat inside a C-concat
    b.linear(b.flatten(x), 2)
    g = b.graph()
    with pytest.raises(ValueError, match=r"maxpool\d+.*every part to be a ReLU output \(concatenated along"):
        convert(g, calib(g))
    assert {p.kind for p in convert(g, calib(g), pooling="avg").populations} == {"if", "output"}
