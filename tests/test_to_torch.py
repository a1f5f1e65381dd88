"""to_torch: a Graph as a torch.nn.Module (one submodule per node) computing the same function.

Tolerance: outputs are compared with a max-abs error relative to the output's max-abs value
below RTOL = 1e-5. Both sides compute in float32 and differ only in summation order (torch's
convolution / GEMM kernels against numpy's im2col GEMM), which for the reductions here (at
most a few thousand terms) gives relative errors around 1e-6.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

import eventsnn  # noqa: E402
from eventsnn import datasets  # noqa: E402
from eventsnn.graph import OPS, Graph, Node, load_graph  # noqa: E402
from eventsnn.io.torch import _TO_TORCH_OPS, from_torch, to_torch  # noqa: E402

RTOL = 1e-5


def _rel_err(got, ref):
    return float(np.abs(got - ref).max()) / max(float(np.abs(ref).max()), 1e-12)


def _run(module, x):
    with torch.no_grad():
        return module(torch.from_numpy(np.ascontiguousarray(x, np.float32))).numpy()


def _rng_params(rng, shape, scale=0.3):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _all_ops_graph(seed=0):
    """A small graph that uses every op of the registry, odd paddings included."""
    rng = np.random.default_rng(seed)
    bn = lambda c: {"mean": _rng_params(rng, c), "var": rng.uniform(0.5, 1.5, c).astype(np.float32),  # noqa: E731
                    "weight": rng.uniform(0.5, 1.5, c).astype(np.float32), "bias": _rng_params(rng, c)}
    nodes = [
        Node("conv a", "conv", ("input",), {"stride": [1, 1], "padding": [1, 1, 1, 1]},
             {"weight": _rng_params(rng, (4, 2, 3, 3)), "bias": _rng_params(rng, 4)}),
        Node("bn", "batchnorm", ("conv a",), {"eps": 1e-3}, bn(4)),
        Node("relu", "relu", ("bn",)),
        Node("conv.asym", "conv", ("relu",), {"stride": [2, 1], "padding": [0, 1, 1, 2]},
             {"weight": _rng_params(rng, (4, 4, 2, 3))}),                       # (4, 5, 11)
        Node("pad", "pad", ("conv.asym",), {"pads": [1, 0, 1, 1, 1, 0]}),      # (6, 6, 12)
        Node("slice", "slice", ("pad",), {"starts": [1, 0, 0], "ends": [5, 6, 12], "steps": [1, 1, 1]}),
        Node("maxpool", "maxpool", ("slice",), {"kernel": [2, 2], "stride": [2, 2], "padding": [0, 0, 0, 0]}),
        Node("maxpool odd", "maxpool", ("slice",), {"kernel": [3, 3], "stride": [2, 2], "padding": [0, 2, 1, 0]}),
        Node("avgpool", "avgpool", ("slice",), {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1, 1, 1],
                                                "count_include_pad": False}),
        Node("avgpool asym", "avgpool", ("slice",), {"kernel": [3, 3], "stride": [2, 2],
                                                     "padding": [0, 1, 1, 0], "count_include_pad": False}),
        Node("avgpool asym incl", "avgpool", ("slice",), {"kernel": [3, 3], "stride": [2, 2],
                                                          "padding": [0, 1, 1, 0], "count_include_pad": True}),
        Node("sum", "add", ("maxpool", "avgpool", "avgpool asym", "avgpool asym incl"), {}),
        Node("12", "identity", ("sum",)),
        Node("dw", "conv", ("maxpool odd",), {"stride": [1, 1], "padding": [2, 2, 2, 2], "groups": 4,
                                              "dilation": [2, 2]}, {"weight": _rng_params(rng, (4, 1, 3, 3))}),
        Node("relu6", "clip", ("dw",), {"max": 6.0}),
        Node("clip", "clip", ("dw",), {"max": 0.25}),
        Node("cat", "concat", ("relu6", "clip"), {"axis": 0}),                   # (8, 3, 6)
        Node("nhwc", "transpose", ("cat",), {"perm": [1, 2, 0]}),
        Node("back", "transpose", ("nhwc",), {"perm": [2, 0, 1]}),
        Node("adapt", "adaptive_avgpool", ("back",), {"output": [2, 4]}),
        Node("gap", "global_avgpool", ("adapt",)),
        Node("flat gap", "flatten", ("gap",)),
        Node("flatten", "flatten", ("12",)),
        Node("reshape", "reshape", ("flatten",), {"shape": [4, 18]}),
        Node("flatten2", "flatten", ("reshape",)),
        Node("linear", "linear", ("flatten2",), {}, {"weight": _rng_params(rng, (8, 72)), "bias": _rng_params(rng, 8)}),
        Node("bn1d", "batchnorm", ("linear",), {}, bn(8)),
        Node("pad1d", "pad", ("bn1d",), {"pads": [0, 4]}),
        Node("train", "relu", ("pad1d",)),  # a name that clashes with nn.Module.train
        Node("linear2", "linear", ("flat gap",), {}, {"weight": _rng_params(rng, (12, 8))}),
        Node("out", "add", ("train", "linear2")),
    ]
    return Graph(nodes, (2, 9, 11))


def test_every_registry_op_is_supported():
    assert set(_TO_TORCH_OPS) == set(OPS), "a new Graph op needs a to_torch module"
    assert {n.op for n in _all_ops_graph()} == set(OPS)


def test_all_ops_graph_matches_numpy_forward():
    g = _all_ops_graph()
    m = to_torch(g)
    x = np.random.default_rng(1).standard_normal((5,) + g.input_shape).astype(np.float32)
    ref = g.forward(x)
    got = _run(m, x)
    assert got.shape == ref.shape == (5, 12)
    assert _rel_err(got, ref) < RTOL
    assert not m.training and all(not mod.training for mod in m.modules())
    # attribute-safe, unique keys; the mapping covers every node
    assert set(m.names) == {n.name for n in g.nodes}
    assert m.names["conv a"] == "conv_a" and m.names["conv.asym"] == "conv_asym"
    assert m.names["12"] == "n_12" and m.names["train"] != "train"
    assert len(set(m.names.values())) == len(g.nodes)


def test_standard_modules_are_children():
    """ReLU and MaxPool are module children (what BrainCog's named_children walk replaces)."""
    g = _all_ops_graph()
    m = to_torch(g)
    kinds = {k: type(v) for k, v in m.layers.named_children()}
    assert kinds[m.names["relu"]] is nn.ReLU and kinds[m.names["maxpool"]] is nn.MaxPool2d
    assert kinds[m.names["conv a"]] is nn.Conv2d and kinds[m.names["bn"]] is nn.BatchNorm2d
    assert kinds[m.names["bn1d"]] is nn.BatchNorm1d and kinds[m.names["gap"]] is nn.AdaptiveAvgPool2d
    assert kinds[m.names["conv.asym"]] is nn.Sequential  # ZeroPad2d + Conv2d
    assert any(isinstance(c, nn.MaxPool2d) for c in m.layers[m.names["maxpool odd"]].children())
    # fx-traceable (SpikingJelly's converter traces with torch.fx)
    gm = torch.fx.symbolic_trace(m)
    x = np.random.default_rng(2).standard_normal((3,) + g.input_shape).astype(np.float32)
    assert _rel_err(_run(gm, x), g.forward(x)) < RTOL


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(8 * 4 * 4, 10)

    def forward(self, x):
        y = torch.relu(self.bn1(self.conv1(x)))
        z = self.bn2(self.conv2(y)) + y
        z = self.pool(torch.relu(z))
        z = nn.functional.pad(z[:, :, ::2, ::2], (0, 0, 0, 0, 2, 2))[:, 2:10]
        return self.fc(z.flatten(1))


def test_round_trip_from_torch():
    torch.manual_seed(0)
    model = _Residual()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    model.eval()
    x = torch.randn(6, 3, 16, 16)
    back = to_torch(from_torch(model, x[:1]))
    with torch.no_grad():
        ref, got = model(x).numpy(), back(x).numpy()
    assert _rel_err(got, ref) < RTOL


def test_shipped_model():
    path, _ = datasets.default_model_path()
    g = load_graph(path)
    m = eventsnn.to_torch(g)
    ds = datasets.load_shipped()
    x = ds.x[:200]
    ref, got = g.forward(x), _run(m, x)
    assert _rel_err(got, ref) < RTOL
    assert (got.argmax(1) == ref.argmax(1)).mean() >= 0.995


def test_pretrained_resnet20(shared_dir):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    path = shared_dir / "models" / "resnet20_cifar10.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    g = eventsnn.load_onnx(path)
    m = to_torch(g)
    x = np.random.default_rng(0).standard_normal((8, 3, 32, 32)).astype(np.float32)
    got = _run(m, x)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ref = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    assert _rel_err(got, ref) < 1e-4  # onnxruntime sums in yet another order (and fuses BN)
    assert _rel_err(got, g.forward(x)) < RTOL
    relus = [c for c in m.layers.children() if isinstance(c, nn.ReLU)]
    assert len(relus) == 19


def test_lazy_export():
    assert eventsnn.to_torch is to_torch
    assert eventsnn.io.to_torch is to_torch
    assert "to_torch" in eventsnn.__all__


def test_bad_input():
    with pytest.raises(TypeError, match="eventsnn.graph.Graph"):
        to_torch(nn.Linear(2, 2))
    g = Graph([Node("r", "relu", ("input",)), Node("s", "identity", ("r",))], (3,))
    g.nodes[1].op = "softmax"  # e.g. an op added to a graph behind the registry's back
    with pytest.raises(ValueError, match=r"'s'.*'softmax'.*supported ops"):
        to_torch(g)
