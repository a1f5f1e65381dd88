"""from_torch: torch.fx import of CNNs into a Graph whose numpy forward equals module(x)."""

import gzip
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn
F = torch.nn.functional

from eventsnn.graph import load_graph  # noqa: E402
from eventsnn.io.torch import from_torch  # noqa: E402

RTOL = 1e-4


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------


class VGGSmall(nn.Module):
    """conv-bn-relu-maxpool x2, flatten, dropout, linear-relu-linear (28x28 grey input)."""

    def __init__(self, c=1):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(c, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=(1, 1)), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2, 2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Dropout(0.5), nn.Linear(16 * 7 * 7, 32), nn.BatchNorm1d(32), nn.ReLU(),
            nn.Linear(32, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


class LambdaLayer(nn.Module):
    """Module whose forward calls a stored function (CIFAR-ResNet option-A shortcut)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


class BlockA(nn.Module):
    """Basic residual block, F.relu, parameter-free option-A shortcut, ``out += shortcut(x)``."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            pad = planes // 4
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, pad, pad), "constant", 0))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResNetA(nn.Module):
    """CIFAR-style ResNet (3 stages, option-A shortcuts), global pool via avg_pool2d(size())."""

    def __init__(self, c=1, width=8, blocks=(1, 1, 1), classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(c, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        layers, cin = [], width
        for i, n in enumerate(blocks):
            planes = width * 2 ** i
            for j in range(n):
                layers.append(BlockA(cin, planes, 2 if i > 0 and j == 0 else 1))
                cin = planes
        self.layers = nn.Sequential(*layers)
        self.linear = nn.Linear(cin, classes)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layers(out)
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


class BlockB(nn.Module):
    """torchvision-style block: nn.ReLU(inplace=True), conv 1x1 + BN projection shortcut."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, planes, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or cin != planes:
            self.downsample = nn.Sequential(nn.Conv2d(cin, planes, 1, stride, bias=False),
                                            nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out += identity
        return self.relu(out)


class ResNetB(nn.Module):
    """Stem conv + maxpool(3, 2, 1), two stages, AdaptiveAvgPool2d((1, 1)), torch.flatten."""

    def __init__(self, c=1, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(c, 8, 3, 1, 1, bias=False), nn.BatchNorm2d(8),
                                  nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        self.layer1 = nn.Sequential(BlockB(8, 8, 1), BlockB(8, 8, 1))
        self.layer2 = nn.Sequential(BlockB(8, 16, 2), BlockB(16, 16, 1))
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.layer2(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class Mixed(nn.Module):
    """Assorted forms: 'same'/'valid'/tuple padding, AvgPool2d, F.max_pool2d, x.mean, torch.add,
    x.relu(), adaptive pool to 2x2, ZeroPad2d, reshape of a vector back to an image."""

    def __init__(self, c=1):
        super().__init__()
        self.c1 = nn.Conv2d(c, 6, 4, padding="same")             # even kernel: asymmetric padding
        self.c2 = nn.Conv2d(6, 6, (3, 1), padding=(1, 0), bias=False)
        self.c3 = nn.Conv2d(6, 6, 3, padding="valid")
        self.pool = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)
        self.apool = nn.AdaptiveAvgPool2d(2)
        self.zpad = nn.ZeroPad2d((1, 0, 0, 1))
        self.drop = nn.Dropout(0.3)
        self.fc1 = nn.Linear(6 * 2 * 2, 2 * 4 * 4)
        self.c4 = nn.Conv2d(2, 4, 3, stride=(2, 1), padding=1)
        self.fc2 = nn.Linear(4, 10)

    def forward(self, x):
        a = self.c1(x).relu()
        b = torch.add(self.c2(a), a)
        b = F.max_pool2d(b, kernel_size=2, stride=2)           # 28 -> 14
        b = self.pool(torch.relu(self.c3(self.zpad(b))))       # 15 -> 13 -> 7
        b = self.apool(b)                                       # 7x7: uneven windows, refused
        v = self.drop(b.reshape(b.shape[0], -1))
        v = F.relu(self.fc1(v))
        img = v.view(-1, 2, 4, 4)
        y = F.relu(self.c4(img))
        y = y.mean((2, 3), keepdim=False)
        return self.fc2(y)


def _randomise(model, seed):
    """Random weights and BN statistics so that BN is far from the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.3)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.randn(c, generator=g) * 0.2)
    return model.eval()


def _rel_err(graph, model, x):
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = graph.forward(x)
    assert got.shape == ref.shape and got.dtype == np.float32
    return float(np.abs(got - ref).max() / np.abs(ref).max())


def _fmnist_images(shared, n=64):
    path = shared / "data" / "fashion-mnist" / "t10k-images-idx3-ubyte.gz"
    if not path.exists():
        pytest.skip(f"{path} not present")
    with gzip.open(path, "rb") as f:
        raw = np.frombuffer(f.read(), dtype=np.uint8, offset=16)
    x = raw.reshape(-1, 1, 28, 28)[:: 10000 // n][:n].astype(np.float32) / 255.0
    return (x - 0.286) / 0.353


MODELS = {
    "vgg": (VGGSmall, {"conv": 2, "batchnorm": 3, "maxpool": 2, "flatten": 1, "linear": 2}),
    "resnet_a": (ResNetA, {"slice": 2, "pad": 2, "add": 3, "global_avgpool": 1, "flatten": 1}),
    "resnet_b": (ResNetB, {"conv": 10, "add": 4, "maxpool": 1, "global_avgpool": 1}),
}


# ---------------------------------------------------------------------------------------
# equivalence
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_matches_torch_random(name):
    cls, counts = MODELS[name]
    model = _randomise(cls(), seed=1)
    x = np.random.default_rng(0).standard_normal((8, 1, 28, 28)).astype(np.float32)
    g = from_torch(model, torch.from_numpy(x[:2]))
    assert g.input_shape == (1, 28, 28) and g.output_shape == (10,)
    ops = [n.op for n in g.nodes]
    for op, k in counts.items():
        assert ops.count(op) == k, (op, ops)
    assert "identity" not in ops  # Dropout / empty Sequential shortcuts are passed through
    assert _rel_err(g, model, x) < RTOL


@pytest.mark.parametrize("name", sorted(MODELS))
def test_forward_matches_torch_fashion_mnist(name, shared_dir):
    cls, _ = MODELS[name]
    model = _randomise(cls(), seed=2)
    x = _fmnist_images(shared_dir)
    g = from_torch(model, x[:1])
    assert _rel_err(g, model, x) < RTOL


def test_resnet_a_structure():
    g = from_torch(_randomise(ResNetA(), 3), torch.zeros(2, 1, 28, 28))
    sl = [n for n in g.nodes if n.op == "slice"]
    pd = [n for n in g.nodes if n.op == "pad"]
    assert sl[0].attrs["steps"] == [1, 2, 2] and sl[0].attrs["starts"] == [0, 0, 0]
    assert pd[0].attrs["pads"] == [4, 0, 0, 4, 0, 0]  # planes // 4 channels each side
    assert pd[1].attrs["pads"] == [8, 0, 0, 8, 0, 0]
    for add in (n for n in g.nodes if n.op == "add"):
        assert len(add.inputs) == 2 and add.name in {c.inputs[0] for c in g.consumers(add.name)}
        assert [c.op for c in g.consumers(add.name)] == ["relu"]


@pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")
def test_mixed_forms():
    model = Mixed()
    # AdaptiveAvgPool2d(2) on 7x7 has uneven (overlapping) windows: its own linear op ...
    x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)
    g = from_torch(_randomise(model, 4), x[:1])
    assert g.node("apool").op == "adaptive_avgpool" and g.node("apool").attrs["output"] == [2, 2]
    assert _rel_err(g, model, x) < RTOL
    # ... and imported as avgpool(4, 4) once it is 8x8 (zpad gives 17x17, c3 15x15, pool 8x8)
    model.zpad = nn.ZeroPad2d((1, 2, 1, 2))
    model = _randomise(model, 4)
    x = np.random.default_rng(1).standard_normal((4, 1, 28, 28)).astype(np.float32)
    g = from_torch(model, x[:1])
    byname = {n.name: n for n in g.nodes}
    assert byname["c1"].attrs["padding"] == [1, 1, 2, 2]
    assert byname["c2"].attrs["padding"] == [1, 0, 1, 0] and "bias" not in byname["c2"].params
    assert byname["c3"].attrs["padding"] == [0, 0, 0, 0]
    assert byname["pool"].op == "avgpool" and byname["pool"].attrs["count_include_pad"] is False
    assert byname["apool"].op == "avgpool" and byname["apool"].attrs["kernel"] == [4, 4]
    assert byname["zpad"].op == "pad" and byname["zpad"].attrs["pads"] == [0, 1, 1, 0, 2, 2]
    assert byname["view"].op == "reshape" and byname["view"].attrs["shape"] == [2, 4, 4]
    assert byname["c4"].attrs["stride"] == [2, 1]
    assert [n.op for n in g.nodes if n.name.startswith("mean")] == ["global_avgpool", "flatten"]
    assert _rel_err(g, model, x) < RTOL


def test_numpy_example_input_and_save_roundtrip(tmp_path):
    model = _randomise(VGGSmall(), 5)
    x = np.random.default_rng(2).standard_normal((3, 1, 28, 28)).astype(np.float32)
    g = from_torch(model, x)
    g2 = load_graph(g.save(tmp_path / "vgg.npz"))
    np.testing.assert_array_equal(g2.forward(x), g.forward(x))
    for n in g.nodes:
        assert all(p.dtype == np.float32 for p in n.params.values())


class FunctionalNet(nn.Module):
    """Raw parameters used through F.conv2d / F.batch_norm / F.linear (fx get_attr nodes)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 1, 3, 3) * 0.5)
        self.register_buffer("mean", torch.randn(4) * 0.1)
        self.register_buffer("var", torch.rand(4) + 0.5)
        self.fw = nn.Parameter(torch.randn(3, 4 * 4 * 4) * 0.2)
        self.fb = nn.Parameter(torch.randn(3))

    def forward(self, x):
        y = F.conv2d(x, self.w, None, 2, 1)
        y = F.batch_norm(y, self.mean, self.var, training=False, eps=1e-3)
        y = F.relu(y, inplace=True)
        y = F.dropout(y, 0.5, training=self.training)
        return F.linear(y.flatten(1), self.fw, self.fb)


def test_functional_forms():
    model = FunctionalNet().eval()
    x = np.random.default_rng(3).standard_normal((5, 1, 8, 8)).astype(np.float32)
    g = from_torch(model, x[:1])
    assert [n.op for n in g.nodes] == ["conv", "batchnorm", "relu", "flatten", "linear"]
    assert g.nodes[1].attrs["eps"] == pytest.approx(1e-3)
    assert _rel_err(g, model, x) < RTOL


# ---------------------------------------------------------------------------------------
# in-place ops and training mode
# ---------------------------------------------------------------------------------------


class InplaceAlias(nn.Module):
    """``b = a.relu_()`` mutates ``a``: later uses of ``a`` see the rectified values."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.drop = nn.Dropout()

    def forward(self, x):
        a = self.conv(x)
        c = self.drop(a)          # an alias of a (the same tensor in eval mode)
        b = a.relu_()
        return (b + c).flatten(1)


class InplaceOnView(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)

    def forward(self, x):
        a = self.conv(x)
        v = a.view(a.size(0), -1)
        a.relu_()
        return v


def test_inplace_relu_follows_aliases():
    model = _randomise(InplaceAlias(), 6)
    x = np.random.default_rng(4).standard_normal((3, 1, 6, 6)).astype(np.float32)
    g = from_torch(model, x)
    add = next(n for n in g.nodes if n.op == "add")
    assert add.inputs == ("relu_", "relu_")
    assert _rel_err(g, model, x) < RTOL


class UnassignedInplace(nn.Module):
    """``self.relu(y)`` used for its side effect, then a chain of squeezes."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        y = self.conv(x)
        self.relu(y)
        return self.pool(y).squeeze(-1).squeeze(-1)


def test_unassigned_inplace_and_reshape_chain():
    model = _randomise(UnassignedInplace(), 9)
    x = np.random.default_rng(6).standard_normal((3, 1, 6, 6)).astype(np.float32)
    g = from_torch(model, x)
    assert [n.op for n in g.nodes] == ["conv", "relu", "global_avgpool", "flatten"]
    assert _rel_err(g, model, x) < RTOL


def test_inplace_on_view_is_refused():
    with pytest.raises(ValueError, match="in-place operation .* view"):
        from_torch(InplaceOnView().eval(), torch.zeros(1, 1, 6, 6))


def test_training_mode_module_is_imported_in_eval_mode_with_warning():
    model = _randomise(VGGSmall(), 7).train()
    x = np.random.default_rng(5).standard_normal((4, 1, 28, 28)).astype(np.float32)
    with pytest.warns(UserWarning, match="training mode"):
        g = from_torch(model, x)
    assert model.training and model.features[1].training  # the caller's module is untouched
    assert _rel_err(g, model.eval(), x) < RTOL


def test_eval_module_imports_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_torch(_randomise(ResNetB(), 8), torch.zeros(1, 1, 16, 16))


# ---------------------------------------------------------------------------------------
# clear errors
# ---------------------------------------------------------------------------------------


def _seq(*layers):
    return nn.Sequential(*layers).eval()


@pytest.mark.parametrize("model, shape, pattern", [
    (_seq(nn.Conv2d(1, 2, 3), nn.Sigmoid()), (1, 1, 8, 8),
     r"fx node '_1' \(module '1' of type torch\.nn\.modules\.activation\.Sigmoid\) cannot be converted: "
     r"a sigmoid is not piecewise linear.*Supported: modules Conv2d"),
    (_seq(nn.Conv2d(1, 2, 3), nn.GELU()), (1, 1, 8, 8), r"fx node '_1' .*GELU\) cannot be converted: GELU"),
    (_seq(nn.Conv2d(1, 2, 3), nn.SiLU()), (1, 1, 8, 8), r"SiLU\) cannot be converted: SiLU/swish multiplies"),
    (_seq(nn.Conv2d(1, 2, 3), nn.LayerNorm([2, 6, 6])), (1, 1, 8, 8),
     r"LayerNorm\) cannot be converted: layer normalisation divides"),
    (_seq(nn.Conv2d(1, 2, 3), nn.Softmax(1), nn.Conv2d(2, 2, 1)), (1, 1, 8, 8),
     r"fx node '_1'.*Softmax\): cannot be converted: a softmax inside the network"),
    (_seq(nn.Conv2d(1, 2, 3), nn.Hardtanh(-1, 1)), (1, 1, 8, 8), r"clamping to \[-1.*, 1.*\] is not supported"),
    (_seq(nn.Conv2d(1, 2, 3), nn.LeakyReLU()), (1, 1, 8, 8), r"LeakyReLU\) cannot be converted: a leaky ReLU"),
    (_seq(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect")), (1, 1, 8, 8), "padding_mode='reflect'"),
    (_seq(nn.MaxPool2d(2, ceil_mode=True)), (1, 1, 7, 7), "ceil_mode=True is not supported"),
    (_seq(nn.MaxPool2d(2, dilation=2)), (1, 1, 8, 8), "dilation=2 is not supported for max pooling"),
    (_seq(nn.AvgPool2d(2, divisor_override=3)), (1, 1, 8, 8), "divisor_override"),
    (_seq(nn.Conv1d(1, 2, 3)), (1, 1, 8), "Conv1d"),
    (_seq(nn.BatchNorm2d(1, track_running_stats=False)), (2, 1, 4, 4), "track_running_stats=False"),
], ids=["sigmoid", "gelu", "silu", "layernorm", "inner-softmax", "hardtanh-negative", "leaky", "padding-mode", "ceil-mode", "pool-dilation",
        "divisor", "conv1d", "bn-batch-stats"])
def test_unsupported_modules_raise_clear_errors(model, shape, pattern):
    with pytest.raises(ValueError, match=pattern):
        from_torch(model, torch.zeros(shape))


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


@pytest.mark.parametrize("fn, pattern", [
    (lambda x: x + x.mean((2, 3), keepdim=True), "varies inside a channel|broadcast"),
    (lambda x: torch.sigmoid(x), r"fx node 'sigmoid' \(function torch\.sigmoid\) cannot be converted"),
    (lambda x: x * x, "product of two input-dependent tensors"),
    (lambda x: 1.0 / x, "dividing a constant by an activation"),
    (lambda x: x + torch.arange(4.0), "varies inside a channel"),
    (lambda x: F.dropout(x, 0.5), "training=True is random"),
    (lambda x: x[:, 0], "only slices"),
    (lambda x: x[:2], "batch axis"),
    (lambda x: x.flatten(), "does not keep the batch axis"),
    (lambda x: x.mean(1), r"mean over dim=1"),
    (lambda x: F.pad(x, (1, 1, 1, 1), mode="reflect"), "constant zero padding"),
    (lambda x: x + x[:, :1], "broadcasting is not supported"),
    (lambda x: (x, x), "single tensor"),
], ids=["broadcast-add", "sigmoid", "product", "reciprocal", "per-column", "dropout-train", "int-index", "batch-slice", "flatten-batch",
        "mean-channels", "reflect-pad", "broadcast", "tuple-output"])
def test_unsupported_functions_raise_clear_errors(fn, pattern):
    with pytest.raises(ValueError, match=pattern):
        from_torch(_Fn(fn).eval(), torch.zeros(3, 2, 4, 4))


class DataDependent(nn.Module):
    def forward(self, x):
        if x.sum() > 0:
            return x
        return -x


def test_untraceable_module_suggests_onnx():
    with pytest.raises(ValueError, match=r"torch.fx could not trace DataDependent.*load_onnx"):
        from_torch(DataDependent().eval(), torch.zeros(1, 1, 4, 4))


def test_bad_arguments():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        from_torch(lambda x: x, torch.zeros(1, 3))
    with pytest.raises(TypeError, match="example_input"):
        from_torch(nn.ReLU(), [[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"does not run on example_input of shape \(1, 1, 8, 8\): "
                                         r"fx node '_0'"):
        from_torch(_seq(nn.Conv2d(3, 2, 3)), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="non-empty batch"):
        from_torch(_seq(nn.ReLU()), torch.zeros(5))
