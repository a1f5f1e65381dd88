"""Importing third-party CNN structures with both importers (and back with to_torch).

One torch model holds every structure of the issue: an input normalisation inside the model
(``(x - mean) / std`` with per-channel buffers), ReLU6 and Hardtanh(0, a) and clamp, a
depthwise and a grouped conv, a dilated conv, Keras-style asymmetric 'same' padding, Keras
ordering conv-ReLU-BN-MaxPool and a constant affine before a max pool, torch.cat of branches
(Inception / DenseNet), a 1x1 stride-1 max pool, global max pooling, average pooling,
an NHWC flatten through permute, and a final softmax (dropped: argmax is
unchanged). It goes through ``from_torch`` and through ONNX from both exporters (the legacy
TorchScript one, opset 17, and ``dynamo=True``, opset 18); each import must match torch
within 1e-4 relative to the output scale (float32 summation order), and converts exactly
(the SNN's rate limit equals the ANN, as in test_convert).
"""

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from eventsnn.convert import analog_forward  # noqa: E402
from eventsnn.convert import convert as convert_any_preset  # noqa: E402
from eventsnn.io.onnx import load_onnx  # noqa: E402
from eventsnn.io.torch_import import from_torch  # noqa: E402
from eventsnn.io.torch_export import to_torch  # noqa: E402


def convert(graph, calib_x, **kwargs):
    """The converter with the paper preset (no layer-wise calibration), whose rate limit
    equals the ANN exactly: the conversion tests here compare against that limit."""
    return convert_any_preset(graph, calib_x, **{"preset": "paper", **kwargs})

RTOL = 1e-4


class ThirdParty(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.4, 0.5, 0.6]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.2, 0.25, 0.3]).view(1, 3, 1, 1))
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.bn0 = nn.BatchNorm2d(8)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.pw = nn.Conv2d(8, 8, 1, groups=2)
        self.dil = nn.Conv2d(8, 6, 3, padding=2, dilation=2)
        self.b1 = nn.Conv2d(8, 4, 1)
        self.b2 = nn.Conv2d(8, 4, 3, padding="same")
        self.keras = nn.Conv2d(14, 6, 2)           # 'same' for an even kernel: pad 0 before, 1 after
        self.bn1 = nn.BatchNorm2d(6)
        self.head = nn.Linear(6 * 2 * 2 + 6, 5)

    def forward(self, x):
        x = (x - self.mean) / self.std                       # input normalisation in the model
        x = F.relu6(self.bn0(self.stem(x)))                  # MobileNet: ReLU6
        y = nn.functional.hardtanh(self.dw(x), 0.0, 4.0)     # depthwise + Hardtanh(0, 4)
        x = x + self.pw(y)                                   # grouped pointwise, residual
        d = torch.clamp(self.dil(x), 0, 3)                   # dilated conv + clamp(0, 3)
        x = torch.cat([F.relu(self.b1(x)), F.relu(self.b2(x)), d], dim=1)   # Inception concat
        x = F.max_pool2d(x, 1, 1)                            # 1x1 stride-1 max pool
        x = F.pad(x, (0, 1, 0, 1))                           # Keras 'same' (asymmetric)
        x = self.bn1(F.relu(self.keras(x)))                  # conv-ReLU-BN ...
        x = F.max_pool2d(x * 0.5 + 0.1, 2)                   # ... a constant affine, then MaxPool
        g = F.adaptive_max_pool2d(x, 1).flatten(1)           # global max pool
        x = F.avg_pool2d(x, 2)                               # 4x4 -> 2x2
        x = x.permute(0, 2, 3, 1).flatten(1)                 # NHWC flatten
        return F.softmax(self.head(torch.cat([x, g], 1)), dim=1)


def _model():
    torch.manual_seed(0)
    m = ThirdParty()
    with torch.no_grad():
        for bn in (m.bn0, m.bn1):
            bn.running_mean.uniform_(-0.2, 0.2)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    return m.eval()


def _x(n=4):
    return np.random.default_rng(0).uniform(0, 1, (n, 3, 9, 9)).astype(np.float32)


def _logits(m, x):
    with torch.no_grad():
        return torch.log(m(torch.from_numpy(x))).numpy()  # softmax dropped: compare log-probabilities


def _check(g, m, x):
    got = g.forward(x)
    ref = _logits(m, x)
    shifted = got - got.max(1, keepdims=True) - np.log(np.exp(got - got.max(1, keepdims=True)).sum(1, keepdims=True))
    err = np.abs(shifted - ref).max() / np.abs(ref).max()
    assert err < RTOL, err
    np.testing.assert_array_equal(got.argmax(1), ref.argmax(1))


def test_from_torch_imports_every_structure():
    m, x = _model(), _x()
    with pytest.warns(UserWarning, match="final softmax .* dropped.*argmax"):
        g = from_torch(m, x[:1])
    ops = {n.op for n in g.nodes}
    assert {"concat", "clip", "transpose", "conv", "maxpool", "batchnorm"} <= ops
    assert any(n.attrs.get("groups") == 8 for n in g.nodes if n.op == "conv")
    assert any(n.attrs.get("dilation") == [2, 2] for n in g.nodes if n.op == "conv")
    assert sorted(n.attrs["max"] for n in g.nodes if n.op == "clip") == [3.0, 4.0, 6.0]
    _check(g, m, x)


@pytest.mark.parametrize("dynamo", [False, True])
def test_load_onnx_from_both_exporters(tmp_path, dynamo):
    if dynamo:
        pytest.importorskip("onnxscript")
    m, x = _model(), _x()
    path = tmp_path / "m.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kw = {"dynamo": True} if dynamo else {"dynamo": False, "opset_version": 17}
        torch.onnx.export(m, (torch.from_numpy(x[:1]),), str(path), **kw)
    with pytest.warns(UserWarning, match="final Softmax .* dropped"):
        g = load_onnx(path)
    assert {"concat", "clip", "transpose"} <= {n.op for n in g.nodes}
    _check(g, m, x)


def test_to_torch_round_trip_and_exact_conversion():
    m, x = _model(), _x()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = from_torch(m, x[:1])
    back = to_torch(g)
    with torch.no_grad():
        out = back(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(out, g.forward(x), rtol=0, atol=RTOL * np.abs(out).max())
    g2 = from_torch(back, x[:1])  # the rebuilt module imports again to the same function
    np.testing.assert_allclose(g2.forward(x), out, rtol=0, atol=RTOL * np.abs(out).max())
    net = convert(g, _x(16), percentile=99.0)
    logits = g.forward(x)
    np.testing.assert_allclose(analog_forward(net, x)[net.output.name], logits, rtol=0,
                               atol=1e-5 * np.abs(logits).max())
    assert {p.kind for p in net.populations} >= {"if", "lipool", "output"}
    assert sum(p.v_max is not None for p in net.populations) == 3
