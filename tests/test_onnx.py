"""Tests for eventsnn.io.onnx.load_onnx: pretrained ResNets vs onnxruntime on real CIFAR-10
images, small torch-exported models (opsets 13 and 17, BN kept or folded), hand-built ONNX
graphs for the less common op forms, and clear errors for bad files / unsupported ops."""

import functools
import io
import json
import sys
import tarfile
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from eventsnn.graph import Graph  # noqa: E402
from eventsnn.io import SUPPORTED_ONNX_OPS, load_onnx  # noqa: E402

RNG = np.random.default_rng(0)


def rel_err(a, b):
    """max |a - b| / max |b|."""
    return float(np.max(np.abs(np.asarray(a, np.float64) - b)) / max(np.max(np.abs(b)), 1e-30))


def run_ort(model, x):
    data = model if isinstance(model, bytes) else model.SerializeToString()
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


# --- pretrained CIFAR-10 ResNets on real images ------------------------------------------


@functools.lru_cache(maxsize=1)
def _cifar_subset(shared):
    """40 CIFAR-10 test images (every 250th of the class-sorted test set), normalised as meta.json says."""
    pil = pytest.importorskip("PIL.Image", reason="decoding the CIFAR-10 JPEGs needs Pillow")
    archive = shared / "data" / "cifar10-jpeg" / "cifar10-jpeg.tar.gz"
    if not archive.is_file():
        pytest.skip(f"{archive} is not present")
    meta = json.loads((shared / "models" / "meta.json").read_text())
    blobs = {}
    with tarfile.open(archive, "r|gz") as tar:  # same order and decoding as to_npz.py
        for m in tar:
            if m.isfile() and m.name.startswith("test/") and m.name.endswith(".jpg"):
                blobs[m.name] = tar.extractfile(m).read()
    names = sorted(blobs)[::250]
    imgs = np.stack([np.asarray(pil.open(io.BytesIO(blobs[n])).convert("RGB"), np.uint8) for n in names])
    labels = np.array([meta["classes"].index(n.split("/")[1]) for n in names])
    x = imgs.astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    mean = np.array(meta["mean"], np.float32)[:, None, None]
    std = np.array(meta["std"], np.float32)[:, None, None]
    return ((x - mean) / std).astype(np.float32), labels


@pytest.fixture
def cifar_images(shared_dir):
    return _cifar_subset(shared_dir)


@pytest.mark.parametrize("name,depth", [("resnet20", 20), ("resnet56", 56)])
def test_pretrained_resnet_matches_onnxruntime(shared_dir, cifar_images, name, depth):
    path = shared_dir / "models" / f"{name}_cifar10.onnx"
    x, y = cifar_images
    g = load_onnx(path)
    assert isinstance(g, Graph) and g.input_shape == (3, 32, 32) and g.output_shape == (10,)
    ops = [n.op for n in g.nodes]
    assert ops.count("conv") == depth - 1 and ops.count("batchnorm") == depth - 1
    assert ops.count("add") == (depth - 2) // 2  # one residual Add per basic block
    assert ops.count("slice") == 4 and ops.count("pad") == 2 and ops.count("linear") == 1
    assert g.nodes[0].name == "conv1.Conv"  # sanitised ONNX node name
    ours = g.forward(x)
    ref = run_ort(path.read_bytes(), x)
    assert rel_err(ours, ref) < 1e-4
    assert np.array_equal(ours.argmax(1), ref.argmax(1))
    assert (ours.argmax(1) == y).mean() > 0.5  # sanity: the images decode and normalise correctly


# --- small models exported from torch ------------------------------------------------------


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def export(torch, model, x, opset, fold, dynamic=True):
    """torch.onnx.export (TorchScript exporter) to a ModelProto."""
    f = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.from_numpy(x),), f, opset_version=opset, dynamo=False,
                          do_constant_folding=fold, input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "batch"}, "y": {0: "batch"}} if dynamic else None)
    return onnx.load_from_string(f.getvalue())


def randomize_bn(torch, model):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    return model


def make_cnn(torch):
    nn, F = torch.nn, torch.nn.functional

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
            self.pool1 = nn.MaxPool2d(3, 2, 1)
            self.conv2, self.bn2 = nn.Conv2d(8, 6, (3, 2), stride=(2, 1), padding=(1, 0)), nn.BatchNorm2d(6)
            self.pool2 = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=True)
            self.drop = nn.Dropout(0.3)
            self.fc = nn.Linear(10 * 3 * 4, 5)

        def forward(self, x):
            x = self.pool1(F.relu(self.bn1(self.conv1(x))))             # (8, 8, 8)
            y = self.pool2(F.relu(self.bn2(self.conv2(x))))             # (6, 5, 8)
            y = F.pad(y, (1, 0, 0, 1))                                   # (6, 6, 9)
            y = F.pad(y[:, :, ::2, 1::2], (0, 0, 0, 0, 2, 2))            # (10, 3, 4)
            y = self.drop(y)
            return self.fc(y.view(y.size(0), -1))

    torch.manual_seed(0)
    return randomize_bn(torch, CNN())


def make_mlp(torch):
    nn = torch.nn
    torch.manual_seed(1)
    return nn.Sequential(nn.Flatten(), nn.Linear(2 * 4 * 4, 16), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(16, 7, bias=False))


def make_matmul(torch):
    nn = torch.nn

    class MM(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(32, 12) * 0.2)
            self.b = nn.Parameter(torch.randn(12))
            self.w2 = nn.Parameter(torch.randn(12, 3))

        def forward(self, x):
            h = torch.relu(torch.flatten(x, 1) @ self.w + self.b)
            return torch.matmul(h, self.w2) - 0.5

    torch.manual_seed(2)
    return MM()


def make_pools(torch):
    nn, F = torch.nn, torch.nn.functional

    class Pools(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 4, 1)
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):                                   # (2, 9, 9)
            x = F.relu(self.bn(self.conv(x)))
            a = F.max_pool2d(x, 3, 2, ceil_mode=True)           # (4, 4, 4) vs floor 4 -> ceil 4
            b = F.avg_pool2d(x, 2, 2, ceil_mode=True, count_include_pad=False)  # (4, 5, 5) ceil
            c = F.max_pool2d(x, 2, 2, ceil_mode=True)           # (4, 5, 5)
            d = F.adaptive_avg_pool2d(b + c, 1).flatten(1)      # GlobalAveragePool
            e = a.mean((2, 3))                                  # ReduceMean
            return d + e

    torch.manual_seed(3)
    return randomize_bn(torch, Pools())


MODELS = {
    "cnn": (make_cnn, (3, 16, 16), {"Conv", "MaxPool", "AveragePool", "Pad", "Slice", "Gemm", "Reshape"}),
    "mlp": (make_mlp, (2, 4, 4), {"Flatten", "Gemm", "Relu"}),
    "matmul": (make_matmul, (2, 4, 4), {"MatMul", "Add", "Sub"}),
}


@pytest.mark.parametrize("opset", [13, 17])
@pytest.mark.parametrize("fold", [True, False])
@pytest.mark.parametrize("kind", sorted(MODELS))
def test_torch_exported_models(torch, kind, fold, opset):
    make, shape, expect_ops = MODELS[kind]
    model = make(torch).eval()
    x = RNG.standard_normal((5, *shape)).astype(np.float32)
    proto = export(torch, model, x[:1], opset, fold)
    ops = {n.op_type for n in proto.graph.node}
    assert expect_ops <= ops, f"export no longer produces {expect_ops - ops}"
    if kind == "cnn":
        assert ("BatchNormalization" in ops) == (not fold)
    g = load_onnx(proto)
    with torch.no_grad():
        ref_torch = model(torch.from_numpy(x)).numpy()
    ours = g.forward(x)
    assert rel_err(ours, run_ort(proto, x)) < 1e-5
    assert rel_err(ours, ref_torch) < 1e-5
    if kind == "cnn":
        canon = [n.op for n in g.nodes]
        assert canon.count("batchnorm") == (0 if fold else 2)
        assert {"conv", "maxpool", "avgpool", "pad", "slice", "flatten", "linear"} <= set(canon)
    if kind == "matmul":  # the bias Add is folded into the MatMul's linear node, "- 0.5" too
        assert [n.op for n in g.nodes] == ["flatten", "linear", "relu", "linear"]


def test_torch_static_batch_and_bytes(torch):
    model = make_cnn(torch)
    x = RNG.standard_normal((3, 3, 16, 16)).astype(np.float32)
    proto = export(torch, model, x[:2], 17, True, dynamic=False)  # batch fixed at 2 in the file
    g = load_onnx(proto.SerializeToString())
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    assert rel_err(g.forward(x), ref) < 1e-5  # any batch size works on the graph


def test_torch_ceil_mode_pools_and_reductions(torch):
    model = make_pools(torch)
    x = RNG.standard_normal((4, 2, 9, 9)).astype(np.float32)
    for opset in (13, 17):
        proto = export(torch, model, x[:1], opset, False)
        ops = {n.op_type for n in proto.graph.node}
        assert {"MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean"} <= ops
        g = load_onnx(proto)
        ref = run_ort(proto, x)
        with torch.no_grad():
            assert rel_err(model(torch.from_numpy(x)).numpy(), ref) < 1e-5
        assert rel_err(g.forward(x), ref) < 1e-5


# --- hand-built ONNX graphs ---------------------------------------------------------------


def make_model(nodes, inits, in_shape, out_shape=None, opset=17, in_name="x"):
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info(in_name, TensorProto.FLOAT, in_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def f32(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def i64(*v):
    return np.array(v, np.int64)


HAND = {
    "gemm_transB0_alpha_beta": ([
        helper.make_node("Flatten", ["x"], ["f"], axis=1),
        helper.make_node("Gemm", ["f", "W", "C"], ["y"], alpha=0.5, beta=2.0, transB=0),
    ], {"W": f32(12, 5), "C": f32(1, 5)}, ["N", 3, 2, 2], 17),
    "pad_crop_and_axes_opset18": ([
        helper.make_node("Pad", ["x", "p1"], ["a"], mode="constant"),                # negative pads crop
        helper.make_node("Pad", ["a", "p2", "", "ax"], ["y"], mode="constant"),      # opset-18 axes input
    ], {"p1": i64(0, 1, -1, 0, 0, 0, 2, -2), "p2": i64(1, 2, 0, 3), "ax": i64(-2, -1)}, ["N", 2, 5, 6], 18),
    "slice_negative_and_unsqueeze_squeeze": ([
        helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["a1"]),
        helper.make_node("Unsqueeze", ["a1", "ua"], ["a2"]),
        helper.make_node("Squeeze", ["a2", "ua"], ["y"]),
    ], {"s": i64(-4, 1), "e": i64(1000, -1), "a": i64(3, 1), "st": i64(2, 1), "ua": i64(2)}, ["N", 3, 4, 7], 13),
    "sum_globalmax_affine_same_pad": ([
        helper.make_node("Mul", ["x", "scale"], ["m"]),
        helper.make_node("Div", ["m", "div"], ["d"]),
        helper.make_node("Sub", ["shift", "d"], ["s"]),
        helper.make_node("Conv", ["s", "W"], ["c"], auto_pad="SAME_UPPER", strides=[2, 2]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("MaxPool", ["r"], ["mp"], kernel_shape=[2, 2], auto_pad="SAME_LOWER", strides=[1, 1]),
        helper.make_node("Sum", ["r", "mp", "r"], ["sm"]),
        helper.make_node("GlobalMaxPool", ["sm"], ["y"]),
    ], {"scale": f32(3, 1, 1), "div": np.float32(1.5), "shift": f32(1, 3, 1, 1), "W": f32(4, 3, 3, 3)},
        ["N", 3, 7, 8], 13),
    "opset11_attribute_forms": ([
        helper.make_node("Unsqueeze", ["x"], ["u"], axes=[3]),
        helper.make_node("Squeeze", ["u"], ["q"], axes=[3]),
        helper.make_node("ReduceMean", ["q"], ["rm"], axes=[2, 3], keepdims=0),
        helper.make_node("Identity", ["rm"], ["y"]),
    ], {}, ["N", 3, 4, 5], 11),
    "dropout_cast_identity": ([
        helper.make_node("Dropout", ["x", "ratio", "train"], ["d", "mask"]),
        helper.make_node("Cast", ["d"], ["c"], to=TensorProto.FLOAT),
        helper.make_node("Identity", ["c"], ["y"]),
    ], {"ratio": np.float32(0.5), "train": np.array(False)}, ["N", 3, 2, 2], 13),
}


@pytest.mark.parametrize("case", sorted(HAND))
def test_hand_built_graphs_match_onnxruntime(case):
    nodes, inits, in_shape, opset = HAND[case]
    model = make_model(nodes, inits, in_shape, opset=opset)
    x = RNG.standard_normal((3, *in_shape[1:])).astype(np.float32)
    ref = run_ort(model, x)
    g = load_onnx(model)
    out = g.forward(x)
    assert out.shape == ref.shape
    assert rel_err(out, ref) < 1e-5


def test_symbolic_spatial_dims_need_input_shape():
    model = make_model([helper.make_node("Conv", ["x", "W"], ["y"], pads=[1, 1, 1, 1])],
                       {"W": f32(2, 3, 3, 3)}, ["N", 3, "H", "W"])
    with pytest.raises(ValueError, match=r"symbolic.*input_shape=\(C, H, W\)"):
        load_onnx(model)
    g = load_onnx(model, input_shape=(3, 6, 5))
    assert g.input_shape == (3, 6, 5) and g.output_shape == (2, 6, 5)
    x = f32(2, 3, 6, 5)
    assert rel_err(g.forward(x), run_ort(model, x)) < 1e-5
    with pytest.raises(ValueError, match="does not match"):
        load_onnx(model, input_shape=(4, 6, 5))
    with pytest.raises(ValueError, match="without the batch axis"):
        load_onnx(model, input_shape=(1, 3, 6, 5))


def test_node_names_sanitised_and_unique():
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="/blk/Relu"),
             helper.make_node("Relu", ["a"], ["b"], name="blk.Relu"),
             helper.make_node("Relu", ["b"], ["c"], name=""),
             helper.make_node("Relu", ["c"], ["y"], name="input")]
    g = load_onnx(make_model(nodes, {}, ["N", 4]))
    names = [n.name for n in g.nodes]
    assert names[:2] == ["blk.Relu", "blk.Relu_1"] and names[2] == "relu_2" and names[3] != "input"
    assert len(set(names)) == 4


# --- errors -------------------------------------------------------------------------------


def test_unsupported_op_is_named():
    model = make_model([helper.make_node("Relu", ["x"], ["r"], name="/act/Relu"),
                        helper.make_node("Sigmoid", ["r"], ["y"], name="/act/Sigmoid")], {}, ["N", 4])
    with pytest.raises(ValueError) as e:
        load_onnx(model)
    msg = str(e.value)
    assert "'/act/Sigmoid'" in msg and "Sigmoid" in msg and "Conv" in msg and "BatchNormalization" in msg
    assert set(SUPPORTED_ONNX_OPS) >= {"Conv", "Gemm", "MatMul", "Pad", "Slice", "Shape", "ConstantOfShape"}


@pytest.mark.parametrize("nodes,inits,in_shape,pattern", [
    ([helper.make_node("Conv", ["x", "W"], ["y"], group=2)], {"W": f32(4, 1, 3, 3)}, ["N", 3, 5, 5],
     "groups=2 must divide the 3 input"),
    ([helper.make_node("Conv", ["x", "W"], ["y"], dilations=[3, 3])], {"W": f32(4, 2, 3, 3)}, ["N", 2, 5, 5],
     "does not fit"),
    ([helper.make_node("Clip", ["x", "lo", "hi"], ["y"])], {"lo": np.float32(-1), "hi": np.float32(1)},
     ["N", 2, 5, 5], r"Clip to \[-1.0, 1.0\] is not supported"),
    ([helper.make_node("Softmax", ["x"], ["s"], axis=1), helper.make_node("Relu", ["s"], ["y"])], {},
     ["N", 4], "a softmax inside the network"),
    ([helper.make_node("Concat", ["x", "c"], ["y"], axis=1)], {"c": f32(1, 2, 5, 5)}, ["N", 2, 5, 5],
     "Concat of constants and activations"),
    ([helper.make_node("Concat", ["x", "x"], ["y"], axis=0)], {}, ["N", 2, 5, 5], "batch axis"),
    ([helper.make_node("Sigmoid", ["x"], ["y"])], {}, ["N", 2], r"\(Sigmoid\): cannot be converted: a sigmoid"),
    ([helper.make_node("Erf", ["x"], ["y"])], {}, ["N", 2], r"\(Erf\): cannot be converted: erf \(GELU\)"),
    ([helper.make_node("LayerNormalization", ["x", "g"], ["y"])], {"g": f32(2)}, ["N", 2],
     "layer normalisation divides"),
    ([helper.make_node("HardSwish", ["x"], ["y"])], {}, ["N", 2], "hard-swish multiplies"),
    ([helper.make_node("Pad", ["x", "p"], ["y"], mode="reflect")], {"p": i64(0, 0, 1, 1, 0, 0, 1, 1)},
     ["N", 2, 5, 5], "mode 'reflect'"),
    ([helper.make_node("Pad", ["x", "p", "v"], ["y"])], {"p": i64(0, 0, 1, 1, 0, 0, 1, 1), "v": np.float32(1)},
     ["N", 2, 5, 5], "only zero padding"),
    ([helper.make_node("Pad", ["x", "p"], ["y"])], {"p": i64(1, 0, 0, 0, 0, 0, 0, 0)}, ["N", 2, 5, 5],
     "batch axis"),
    ([helper.make_node("Reshape", ["x", "s"], ["y"])], {"s": i64(-1)}, ["N", 2, 5, 5], "mix the batch axis"),
    ([helper.make_node("Flatten", ["x"], ["y"], axis=0)], {}, ["N", 2, 5, 5], "mix the batch axis"),
    ([helper.make_node("Transpose", ["x"], ["y"], perm=[1, 0, 2, 3])], {}, ["N", 2, 5, 5], "moves the batch axis"),
    ([helper.make_node("Mul", ["x", "x"], ["y"])], {}, ["N", 2, 5, 5], "Mul of non-constant.*product of two"),
    ([helper.make_node("Add", ["x", "c"], ["y"])], {"c": f32(1, 2, 5, 5)}, ["N", 2, 5, 5], "per-channel"),
    ([helper.make_node("Slice", ["x", "s", "e", "a"], ["y"])], {"s": i64(0), "e": i64(1), "a": i64(0)},
     ["N", 2, 5, 5], "batch axis"),
    ([helper.make_node("Gemm", ["W", "x"], ["y"])], {"W": f32(3, 4)}, ["N", 4], "transA=0"),
    ([helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[7, 7])], {}, ["N", 2, 5, 5], "does not fit"),
    ([helper.make_node("Relu", ["nope"], ["y"])], {}, ["N", 2], "truncated"),
    ([helper.make_node("Shape", ["x"], ["y"])], {}, ["N", 2], "does not depend on the model input"),
])
def test_unsupported_usage_errors(nodes, inits, in_shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_onnx(make_model(nodes, inits, in_shape))


def test_model_level_errors():
    two_in = helper.make_model(helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["y"])], "g",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 2]) for n in "ab"],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]))
    with pytest.raises(ValueError, match="2 non-constant inputs"):
        load_onnx(two_in)
    two_out = make_model([helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Relu", ["x"], ["z"])], {}, ["N", 2])
    two_out.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, None))
    with pytest.raises(ValueError, match="2 outputs"):
        load_onnx(two_out)
    int_in = helper.make_model(helper.make_graph(
        [helper.make_node("Cast", ["x"], ["y"], to=TensorProto.FLOAT)], "g",
        [helper.make_tensor_value_info("x", TensorProto.INT64, ["N", 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)]))
    with pytest.raises(ValueError, match="only float inputs"):
        load_onnx(int_in)


def test_bad_files(tmp_path):
    txt = tmp_path / "model.onnx"
    txt.write_text("this is not an onnx model\n")
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        load_onnx(txt)
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="not a valid ONNX model"):
        load_onnx(empty)
    data = make_model([helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
                       helper.make_node("Relu", ["c"], ["y"], name="relu")],
                      {"W": f32(8, 3, 3, 3)}, ["N", 3, 8, 8]).SerializeToString()
    assert load_onnx(data).output_shape == (8, 6, 6)
    for cut in (len(data) // 3, len(data) // 2, len(data) - 7):
        bad = tmp_path / f"cut{cut}.onnx"
        bad.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="truncated"):
            load_onnx(bad)
    with pytest.raises(FileNotFoundError):
        load_onnx(tmp_path / "missing.onnx")


def test_truncated_pretrained_file(shared_dir, tmp_path):
    data = (shared_dir / "models" / "resnet20_cifar10.onnx").read_bytes()
    bad = tmp_path / "r20.onnx"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_onnx(bad)


def test_missing_onnx_package(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "onnx", None)  # makes `import onnx` raise ImportError
    with pytest.raises(ImportError, match=r"pip install eventsnn\[onnx\]"):
        load_onnx(tmp_path / "m.onnx")
