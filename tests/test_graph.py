"""Tests for eventsnn.graph: ops (hand-computed and against torch), shape inference, I/O."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsnn.graph import (
    OPS,
    SUPPORTED_OPS,
    Graph,
    Node,
    avgpool2d,
    conv2d,
    load_graph,
    maxpool2d,
    out_size,
)

RNG = np.random.default_rng(0)


def rel_err(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-30)


def one(op, input_shape, attrs=None, params=None, n_inputs=1):
    """Graph with a single op applied to the input (``n_inputs`` times for add)."""
    return Graph([Node("n", op, ("input",) * n_inputs, attrs or {}, params or {})], input_shape)


def randn(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def naive_conv(x, w, b, stride, pad):
    """Loop twin of conv2d (float64)."""
    sh, sw = stride
    pt, pl, pb, pr = pad
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    B, _, H, W = xp.shape
    O, _, kh, kw = w.shape
    ho, wo = (H - kh) // sh + 1, (W - kw) // sw + 1
    y = np.zeros((B, O, ho, wo))
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            y[:, :, i, j] = np.einsum("bchw,ochw->bo", patch, w)
    return y + (0 if b is None else b[None, :, None, None])


# --- hand-computed values -----------------------------------------------------------------


def test_conv_hand():
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    w = np.ones((1, 1, 2, 2), np.float32)
    g = one("conv", (1, 4, 4), {"stride": [2, 2], "padding": [0, 0, 0, 0]}, {"weight": w, "bias": np.array([1.0])})
    y = g.forward(x)
    np.testing.assert_array_equal(y[0, 0], [[0 + 1 + 4 + 5 + 1, 2 + 3 + 6 + 7 + 1], [8 + 9 + 12 + 13 + 1, 10 + 11 + 14 + 15 + 1]])
    # asymmetric padding: one zero row on top only, stride 1
    y = conv2d(x, w, None, 1, [1, 0, 0, 0])
    assert y.shape == (1, 1, 4, 3)
    np.testing.assert_array_equal(y[0, 0, 0], [0 + 1, 1 + 2, 2 + 3])


@settings(max_examples=30, deadline=None)
@given(
    c=st.integers(1, 3), o=st.integers(1, 3), h=st.integers(3, 7), w=st.integers(3, 7),
    kh=st.integers(1, 3), kw=st.integers(1, 3), sh=st.integers(1, 3), sw=st.integers(1, 3),
    pad=st.tuples(*[st.integers(0, 2)] * 4), seed=st.integers(0, 1000),
)
def test_conv2d_matches_naive_twin(c, o, h, w, kh, kw, sh, sw, pad, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, c, h, w)).astype(np.float32)
    wt = rng.standard_normal((o, c, kh, kw)).astype(np.float32)
    b = rng.standard_normal(o).astype(np.float32)
    y = conv2d(x, wt, b, (sh, sw), pad)
    ref = naive_conv(x, wt, b, (sh, sw), pad)
    assert y.dtype == np.float32 and y.flags.c_contiguous
    assert y.shape == ref.shape
    assert y.shape[2] == out_size(h, kh, sh, pad[0], pad[2])
    np.testing.assert_allclose(y, ref, rtol=1e-5, atol=1e-5)


def test_linear_hand():
    w = np.array([[1, 2, 3], [0, -1, 0.5]], np.float32)
    g = one("linear", (3,), {}, {"weight": w, "bias": np.array([0.5, -1], np.float32)})
    np.testing.assert_allclose(g.forward(np.array([[1, 1, 2]], np.float32)), [[1 + 2 + 6 + 0.5, -1 + 1 - 1]])
    g = one("linear", (3,), {}, {"weight": w})  # bias optional
    np.testing.assert_allclose(g.forward(np.array([[1, 1, 2]], np.float32)), [[9, 0]])


def test_batchnorm_hand():
    p = {"mean": [1.0, -1.0], "var": [4.0, 0.25], "weight": [2.0, 1.0], "bias": [0.0, 3.0]}
    g = one("batchnorm", (2, 1, 2), {"eps": 0.0}, p)
    x = np.array([[[[3.0, 1.0]], [[0.0, -1.0]]]], np.float32)
    np.testing.assert_allclose(g.forward(x), [[[[2.0, 0.0]], [[5.0, 3.0]]]], rtol=1e-6)
    g = one("batchnorm", (2,), {"eps": 0.0}, p)  # vector input
    np.testing.assert_allclose(g.forward(np.array([[3.0, 0.0]], np.float32)), [[2.0, 5.0]], rtol=1e-6)
    assert one("batchnorm", (2,), {}, p).nodes[0].attrs["eps"] == 1e-5  # default


def test_relu_identity_flatten_reshape_add_hand():
    x = np.array([[[-1.0, 2.0], [3.0, -4.0]]], np.float32)[None]  # (1, 1, 2, 2)
    np.testing.assert_array_equal(one("relu", (1, 2, 2)).forward(x), [[[[0, 2], [3, 0]]]])
    np.testing.assert_array_equal(one("identity", (1, 2, 2)).forward(x), x)
    np.testing.assert_array_equal(one("flatten", (1, 2, 2)).forward(x), [[-1, 2, 3, -4]])
    g = one("reshape", (1, 2, 2), {"shape": [4, 1]})
    assert g.nodes[0].shape == (4, 1)
    np.testing.assert_array_equal(g.forward(x), [[[-1], [2], [3], [-4]]])
    np.testing.assert_array_equal(one("add", (1, 2, 2), n_inputs=3).forward(x), 3 * x)


def test_pools_hand():
    x = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], np.float32)[None, None]
    g = one("maxpool", (1, 3, 3), {"kernel": [2, 2], "stride": [1, 1]})
    np.testing.assert_array_equal(g.forward(x)[0, 0], [[5, 6], [8, 9]])
    # padding is -inf for max: negative inputs must not become 0
    g = one("maxpool", (1, 3, 3), {"kernel": [2, 2], "stride": [2, 2], "padding": [1, 1, 0, 0]})
    np.testing.assert_array_equal(g.forward(-x)[0, 0], [[-1, -2], [-4, -5]])
    g = one("avgpool", (1, 3, 3), {"kernel": [2, 2], "stride": [2, 2], "padding": [1, 1, 0, 0],
                                   "count_include_pad": True})
    np.testing.assert_allclose(g.forward(x)[0, 0], [[1 / 4, 5 / 4], [11 / 4, 28 / 4]])
    g = one("avgpool", (1, 3, 3), {"kernel": [2, 2], "stride": [2, 2], "padding": [1, 1, 0, 0],
                                   "count_include_pad": False})
    np.testing.assert_allclose(g.forward(x)[0, 0], [[1, 5 / 2], [11 / 2, 7]])
    assert g.nodes[0].shape == (1, 2, 2)
    np.testing.assert_allclose(one("global_avgpool", (1, 3, 3)).forward(x), [[[[5.0]]]])
    # stride defaults to the kernel
    assert one("maxpool", (1, 4, 4), {"kernel": 2}).nodes[0].attrs == {
        "kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0]}


def test_pad_slice_hand():
    x = np.arange(12, dtype=np.float32).reshape(1, 1, 3, 4)
    g = one("pad", (1, 3, 4), {"pads": [1, 0, 2, 0, 1, 0]})  # 1 channel before, 1 row after, 2 cols before
    y = g.forward(x)
    assert y.shape == (1, 2, 4, 6) == (1,) + g.nodes[0].shape
    np.testing.assert_array_equal(y[0, 0], 0)
    np.testing.assert_array_equal(y[0, 1, :3, 2:], x[0, 0])
    np.testing.assert_array_equal(y[0, 1, 3], 0)
    g = one("slice", (1, 3, 4), {"starts": [0, 0, 1], "ends": [1, 3, 4], "steps": [1, 2, 2]})
    np.testing.assert_array_equal(g.forward(x)[0, 0], [[1, 3], [9, 11]])
    assert g.nodes[0].shape == (1, 2, 2)


def test_resnet_option_a_shortcut_hand():
    """x[:, :, ::2, ::2] then channel zero-pad, as in CIFAR ResNets."""
    x = randn(2, 4, 8, 8)
    nodes = [Node("s", "slice", ("input",), {"starts": [0, 0, 0], "ends": [4, 8, 8], "steps": [1, 2, 2]}),
             Node("p", "pad", ("s",), {"pads": [2, 0, 0, 2, 0, 0]})]
    y = Graph(nodes, (4, 8, 8)).forward(x)
    ref = np.pad(x[:, :, ::2, ::2], ((0, 0), (2, 2), (0, 0), (0, 0)))
    np.testing.assert_array_equal(y, ref)


# --- against torch ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("stride,padding", [((1, 1), (0, 0, 0, 0)), ((2, 1), (1, 0, 2, 1)), ((1, 3), (2, 2, 0, 1))])
def test_conv_vs_torch(torch, stride, padding):
    F = torch.nn.functional
    x, w, b = randn(3, 5, 11, 9), randn(7, 5, 3, 2), randn(7)
    g = one("conv", (5, 11, 9), {"stride": list(stride), "padding": list(padding)}, {"weight": w, "bias": b})
    pt, pl, pb, pr = padding
    ref = F.conv2d(F.pad(torch.from_numpy(x), (pl, pr, pt, pb)), torch.from_numpy(w), torch.from_numpy(b), stride)
    y = g.forward(x)
    assert y.shape == tuple(ref.shape)
    assert rel_err(y, ref.numpy()) < 1e-5


def test_linear_bn_vs_torch(torch):
    F = torch.nn.functional
    x, w, b = randn(4, 20), randn(6, 20), randn(6)
    assert rel_err(one("linear", (20,), {}, {"weight": w, "bias": b}).forward(x),
                   F.linear(*map(torch.from_numpy, (x, w, b))).numpy()) < 1e-5
    x = randn(3, 4, 5, 6)
    p = {"mean": randn(4), "var": np.abs(randn(4)) + 0.1, "weight": randn(4), "bias": randn(4)}
    t = {k: torch.from_numpy(v) for k, v in p.items()}
    ref = F.batch_norm(torch.from_numpy(x), t["mean"], t["var"], t["weight"], t["bias"], False, 0.1, 1e-3)
    assert rel_err(one("batchnorm", (4, 5, 6), {"eps": 1e-3}, p).forward(x), ref.numpy()) < 1e-5


@pytest.mark.parametrize("kernel,stride,pad", [((2, 2), (2, 2), (0, 0)), ((3, 3), (2, 2), (1, 1)), ((3, 2), (1, 2), (1, 0))])
def test_pools_vs_torch(torch, kernel, stride, pad):
    F = torch.nn.functional
    x = randn(2, 3, 9, 8)
    tx = torch.from_numpy(x)
    attrs = {"kernel": list(kernel), "stride": list(stride), "padding": [pad[0], pad[1], pad[0], pad[1]]}
    ref = F.max_pool2d(tx, kernel, stride, pad)
    assert rel_err(one("maxpool", (3, 9, 8), attrs).forward(x), ref.numpy()) < 1e-6
    for cip in (True, False):
        ref = F.avg_pool2d(tx, kernel, stride, pad, count_include_pad=cip)
        y = one("avgpool", (3, 9, 8), {**attrs, "count_include_pad": cip}).forward(x)
        assert y.shape == tuple(ref.shape) and rel_err(y, ref.numpy()) < 1e-5
    ref = F.adaptive_avg_pool2d(tx, 1)
    assert rel_err(one("global_avgpool", (3, 9, 8)).forward(x), ref.numpy()) < 1e-5


def test_small_cnn_vs_torch(torch):
    nn = torch.nn
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
                      nn.Conv2d(8, 4, 3, stride=2), nn.ReLU(), nn.AvgPool2d(2, ceil_mode=False),
                      nn.Flatten(), nn.Linear(4, 5)).eval()
    with torch.no_grad():
        m[1].running_mean.uniform_(-1, 1)
        m[1].running_var.uniform_(0.5, 2)
    sd = {k: v.numpy() for k, v in m.state_dict().items()}
    nodes = [
        Node("c1", "conv", ("input",), {"padding": [1, 1, 1, 1]}, {"weight": sd["0.weight"], "bias": sd["0.bias"]}),
        Node("bn", "batchnorm", ("c1",), {"eps": 1e-5}, {"mean": sd["1.running_mean"], "var": sd["1.running_var"],
                                                         "weight": sd["1.weight"], "bias": sd["1.bias"]}),
        Node("r1", "relu", ("bn",)),
        Node("mp", "maxpool", ("r1",), {"kernel": [2, 2]}),
        Node("c2", "conv", ("mp",), {"stride": [2, 2]}, {"weight": sd["4.weight"], "bias": sd["4.bias"]}),
        Node("r2", "relu", ("c2",)),
        Node("ap", "avgpool", ("r2",), {"kernel": [2, 2]}),
        Node("fl", "flatten", ("ap",)),
        Node("fc", "linear", ("fl",), {}, {"weight": sd["8.weight"], "bias": sd["8.bias"]}),
    ]
    g = Graph(nodes, (3, 12, 12))
    x = randn(4, 3, 12, 12)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    assert rel_err(g.forward(x), ref) < 1e-5
    assert g.macs() == {"c1": 8 * 3 * 9 * 144, "bn": 0, "r1": 0, "mp": 0, "c2": 4 * 8 * 9 * 4, "r2": 0,
                        "ap": 0, "fl": 0, "fc": 20}


# --- graph structure, shape inference and errors -----------------------------------------


def small_graph():
    w = randn(4, 2, 3, 3)
    nodes = [
        Node("conv", "conv", ("input",), {"stride": [1, 1], "padding": [1, 1, 1, 1]}, {"weight": w, "bias": randn(4)}),
        Node("relu", "relu", ("conv",)),
        Node("add", "add", ("relu", "conv")),
        Node("pool", "avgpool", ("add",), {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0],
                                          "count_include_pad": False}),
        Node("flat", "flatten", ("pool",)),
        Node("fc", "linear", ("flat",), {}, {"weight": randn(3, 16)}),
    ]
    return Graph(nodes, (2, 4, 4))


def test_structure_and_return_all():
    g = small_graph()
    assert [n.name for n in g.consumers("conv")] == ["relu", "add"]
    assert [n.name for n in g.consumers("input")] == ["conv"]
    assert g.node("pool").shape == (4, 2, 2) and g.output == "fc" and g.output_shape == (3,)
    x = randn(2, 2, 4, 4)
    acts = g.forward(x, return_all=True)
    assert set(acts) == {"input", "conv", "relu", "add", "pool", "flat", "fc"}
    for n in g.nodes:
        assert acts[n.name].shape == (2,) + n.shape and acts[n.name].dtype == np.float32
    np.testing.assert_array_equal(acts["fc"], g.forward(x))
    np.testing.assert_array_equal(acts["add"], np.maximum(acts["conv"], 0) + acts["conv"])
    with pytest.raises(KeyError, match="nope"):
        g.node("nope")
    s = g.summary()
    for n in g.nodes:
        assert n.name in s
    assert "MACs" in s and f"{4 * 2 * 9 * 16:,}" in s
    assert set(SUPPORTED_OPS) == set(OPS) and len(SUPPORTED_OPS) == 17


def test_output_override():
    g = Graph(small_graph().nodes, (2, 4, 4), output="pool")
    assert g.forward(randn(1, 2, 4, 4)).shape == (1, 4, 2, 2)
    with pytest.raises(ValueError, match="output 'zz'"):
        Graph(small_graph().nodes, (2, 4, 4), output="zz")


def test_unsupported_op():
    with pytest.raises(ValueError) as e:
        one("softmax", (3,))
    msg = str(e.value)
    assert "'n'" in msg and "softmax" in msg and all(op in msg for op in SUPPORTED_OPS)


@pytest.mark.parametrize("nodes,input_shape,pattern", [
    ([Node("c", "conv", ("input",), {}, {"weight": np.ones((2, 3, 3, 3))})], (4, 8, 8),
     r"'c'.*'conv'.*expects 3 input channels, input has 4"),
    ([Node("c", "conv", ("input",), {}, {"weight": np.ones((2, 3, 3, 3))})], (3, 8),
     r"'c'.*\(C, H, W\), got \(3, 8\)"),
    ([Node("c", "conv", ("input",), {}, {"weight": np.ones((2, 3, 5, 5))})], (3, 4, 4),
     r"'c'.*does not fit"),
    ([Node("c", "conv", ("input",), {}, {"weight": np.ones((2, 3, 1, 1)), "bias": np.ones(3)})], (3, 4, 4),
     r"bias must have shape \(2,\), got \(3,\)"),
    ([Node("c", "conv", ("input",), {"groups": 2}, {"weight": np.ones((3, 1, 1, 1))})], (3, 4, 4),
     r"groups=2 must divide the 3 input"),
    ([Node("c", "conv", ("input",), {"dilation": 0}, {"weight": np.ones((3, 3, 1, 1))})], (3, 4, 4),
     r"dilation \[0, 0\] must be >= 1"),
    ([Node("k", "clip", ("input",), {"max": -1.0})], (3, 4, 4), r"'k'.*'clip'.*must be finite and > 0"),
    ([Node("k", "concat", ("input", "input"), {"axis": 0}), Node("q", "concat", ("k", "input"), {"axis": 1})],
     (3, 4, 4), r"'q'.*agree on every axis but 1"),
    ([Node("t", "transpose", ("input",), {"perm": [0, 2, 2]})], (3, 4, 4), r"'t'.*permutation"),
    ([Node("a", "adaptive_avgpool", ("input",), {"output": [5, 1]})], (3, 4, 4), r"'a'.*between 1 and"),
    ([Node("l", "linear", ("input",), {}, {"weight": np.ones((2, 5))})], (4,),
     r"'l'.*'linear'.*expects 5 inputs, got input shape \(4,\)"),
    ([Node("l", "linear", ("input",), {}, {"weight": np.ones((2, 48))})], (3, 4, 4), r"flatten"),
    ([Node("l", "linear", ("input",), {}, {"w": np.ones((2, 4))})], (4,), r"missing \['weight'\], unknown \['w'\]"),
    ([Node("l", "linear", ("input",), {}, {"weight": np.full((2, 4), np.nan)})], (4,), r"NaN"),
    ([Node("b", "batchnorm", ("input",), {}, {k: np.ones(2) for k in ("mean", "var", "weight", "bias")})],
     (3, 4, 4), r"'b'.*param 'mean' must have shape \(3,\), got \(2,\)"),
    ([Node("a", "add", ("input",))], (3,), r"expected at least 2 input"),
    ([Node("f", "flatten", ("input",)), Node("a", "add", ("f", "input"))], (3, 2, 2), r"'a'.*equal shapes"),
    ([Node("r", "reshape", ("input",), {"shape": [5]})], (3, 2), r"cannot reshape \(3, 2\) to \(5,\)"),
    ([Node("r", "reshape", ("input",), {"shape": [-1]})], (3, 2), r"resolved"),
    ([Node("r", "reshape", ("input",))], (3, 2), r"missing attribute 'shape'"),
    ([Node("p", "pad", ("input",), {"pads": [1, 1]})], (3, 2), r"pads must have 4 entries"),
    ([Node("p", "pad", ("input",), {"pads": [0, -1, 0, 0]})], (3, 2), r"non-negative"),
    ([Node("s", "slice", ("input",), {"starts": [2], "ends": [2]})], (3,), r"empty"),
    ([Node("s", "slice", ("input",), {"starts": [0], "ends": [9]})], (3,), r"clamped"),
    ([Node("s", "slice", ("input",), {"starts": [0], "ends": [3], "steps": [0]})], (3,), r"steps"),
    ([Node("m", "maxpool", ("input",), {"kernel": [2, 2], "padding": [2, 0, 0, 0]})], (1, 4, 4), r"smaller than the kernel"),
    ([Node("m", "maxpool", ("input",), {"kernel": [5, 5]})], (1, 4, 4), r"'m'.*does not fit"),
    ([Node("m", "maxpool", ("input",), {"kernel": "big"})], (1, 4, 4), r"kernel.*malformed"),
    ([Node("r", "relu", ("x",))], (3,), r"'r'.*input 'x'.*topological"),
    ([Node("r", "relu", ("s",)), Node("s", "relu", ("input",))], (3,), r"topological"),
    ([Node("r", "relu", ("input",)), Node("r", "relu", ("input",))], (3,), r"unique"),
    ([Node("input", "relu", ("input",))], (3,), r"graph input name"),
    ([Node("r", "relu", ("input",), {"fn": object()})], (3,), r"JSON"),
    ([], (3,), r"at least one node"),
    ([Node("r", "relu", ("input",))], (0, 3), r"positive"),
])
def test_shape_inference_errors(nodes, input_shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        Graph(nodes, input_shape)


def test_forward_bad_inputs():
    g = small_graph()
    with pytest.raises(ValueError, match=r"expected \(B, 2, 4, 4\).*x\[None\]"):
        g.forward(randn(2, 4, 4))
    with pytest.raises(ValueError, match=r"shape \(1, 3, 4, 4\), expected \(B, 2, 4, 4\)"):
        g.forward(randn(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"floating.*astype"):
        g.forward(np.zeros((1, 2, 4, 4), np.uint8))
    x = randn(1, 2, 4, 4)
    x[0, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf"):
        g.forward(x)
    x[0, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf"):
        g.forward(x)
    with pytest.raises(ValueError, match="empty"):
        g.forward(np.zeros((0, 2, 4, 4), np.float32))
    y64 = g.forward(randn(3, 2, 4, 4).astype(np.float64))  # float64 accepted, computed in float32
    assert y64.dtype == np.float32 and y64.shape == (3, 3)


# --- persistence --------------------------------------------------------------------------


def test_save_load_exact(tmp_path):
    g = small_graph()
    bn = Node("bn", "batchnorm", ("flat",), {"eps": 1.2345678901234567e-3},
              {"mean": randn(16), "var": np.abs(randn(16)) + np.float32(0.1), "weight": randn(16), "bias": randn(16)})
    nodes = g.nodes[:5] + [bn, Node("s", "slice", ("bn",), {"starts": [1], "ends": [16], "steps": [3]}),
                           Node("pd", "pad", ("s",), {"pads": [1, 2]}), Node("r", "reshape", ("pd",), {"shape": [2, 4]})]
    renamed = [Node(n.name, n.op, tuple("img" if i == "input" else i for i in n.inputs), n.attrs, n.params)
               for n in nodes]
    g = Graph(renamed, (2, 4, 4), output="pd", input_name="img")
    path = g.save(tmp_path / "g.npz")
    h = load_graph(path)
    assert (h.input_shape, h.input_name, h.output) == ((2, 4, 4), "img", "pd")
    assert len(h.nodes) == len(g.nodes)
    for a, b in zip(g.nodes, h.nodes):
        assert (a.name, a.op, a.inputs, a.attrs, a.shape) == (b.name, b.op, b.inputs, b.attrs, b.shape)
        assert a.params.keys() == b.params.keys()
        for k in a.params:
            assert b.params[k].dtype == np.float32
            assert a.params[k].tobytes() == b.params[k].tobytes()
    assert h.node("bn").attrs["eps"] == 1.2345678901234567e-3
    x = randn(2, 2, 4, 4)
    np.testing.assert_array_equal(g.forward(x), h.forward(x))
    # no pickle inside: plain npz loadable with allow_pickle=False
    with np.load(path, allow_pickle=False) as f:
        assert "__graph__" in f.files


def test_load_bad_files(tmp_path):
    p = tmp_path / "junk.npz"
    p.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="not a readable .npz"):
        load_graph(p)
    q = tmp_path / "other.npz"
    np.savez(q, a=np.zeros(3))
    with pytest.raises(ValueError, match="not written by Graph.save"):
        load_graph(q)
    with pytest.raises(FileNotFoundError):
        load_graph(tmp_path / "missing.npz")


def test_helpers_match_ops():
    x = randn(2, 3, 7, 7)
    np.testing.assert_array_equal(maxpool2d(x, 3, 2, 1), one("maxpool", (3, 7, 7), {"kernel": 3, "stride": 2, "padding": 1}).forward(x))
    np.testing.assert_array_equal(avgpool2d(x, 2, 1), one("avgpool", (3, 7, 7), {"kernel": 2, "stride": 1}).forward(x))


def test_conv2d_batch_chunking_is_exact(monkeypatch):
    import eventsnn.graph as graph_mod

    x, w, b = randn(11, 4, 9, 8), randn(5, 4, 3, 3), randn(5)
    full = conv2d(x, w, b, (2, 1), (1, 0, 1, 2))
    monkeypatch.setattr(graph_mod, "_IM2COL_BYTES", 4 * 9 * 5 * 9 * 4 * 3)  # 3 images per chunk
    np.testing.assert_array_equal(conv2d(x, w, b, (2, 1), (1, 0, 1, 2)), full)
