"""Fuzz: random third-party-style CNNs (tests/fuzz_models.py) through both importers, the
converter and both engines.

Per drawn torch model:

* ``from_torch`` (and, for one model in ``ONNX_EVERY``, ``torch.onnx.export`` with the legacy
  exporter + ``load_onnx``) either imports it within 1e-4 of torch (relative to the output
  scale: float32 summation order) or refuses with a ValueError/TypeError naming the node and
  its op — nothing else (0 crashes);
* ``convert`` either converts it — the SNN's rate limit then equals the ANN's logits (1e-4 of
  their scale) — or refuses with a ValueError naming the node and its op;
* the dyadic version of the converted network gives bit-identical results in the reference
  and the numba engine.

The default run draws ``DEFAULT_EXAMPLES`` models; ``-m slow`` draws 10 000 and prints the
outcome counts (``EVENTSNN_FUZZ_REPORT=path`` also writes them as JSON).
"""

import io
import json
import os
import re
import warnings
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

torch = pytest.importorskip("torch")
pytest.importorskip("onnx")

from eventsnn.convert import analog_forward  # noqa: E402
from eventsnn.convert import convert as convert_any_preset  # noqa: E402
from eventsnn.engine import simulate  # noqa: E402
from eventsnn.io.onnx import load_onnx  # noqa: E402
from eventsnn.io.torch_import import from_torch  # noqa: E402
from fuzz_models import build_fuzz_net, dyadic_version, fuzz_models  # noqa: E402
from eventsnn.testing import assert_results_equal  # noqa: E402


def convert(graph, calib_x, **kwargs):
    """The converter with the paper preset (no layer-wise calibration), whose rate limit
    equals the ANN exactly: the conversion tests here compare against that limit."""
    return convert_any_preset(graph, calib_x, **{"preset": "paper", **kwargs})

DEFAULT_EXAMPLES = 250
ONNX_EVERY = 20
TOL = 1e-4
NAMES_NODE = re.compile(r"node '[^']*' \(")   # "... node 'x' (op 'maxpool')", "fx node 'x' (module ...)"
COUNTS = Counter()
REASONS = Counter()  # refusal messages with the node name masked, for the report


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import numba

    before = numba.get_num_threads(), torch.get_num_threads()
    numba.set_num_threads(1)
    torch.set_num_threads(1)
    yield
    numba.set_num_threads(before[0])
    torch.set_num_threads(before[1])


def _rel(got, ref):
    return float(np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-6))


def _refused(e, what):
    assert isinstance(e, (ValueError, TypeError)), e
    assert NAMES_NODE.search(str(e)), f"{what} refusal does not name the node and op: {e}"
    COUNTS[f"{what} refused"] += 1
    REASONS[NAMES_NODE.sub("node '*' (", str(e))[:160]] += 1


def _logits(model, x):
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    if model.spec[-1]["softmax"]:
        out = np.log(out)
    return out


def _imported(g, model, x):
    got = g.forward(x)
    ref = _logits(model, x)
    if model.spec[-1]["softmax"]:  # the importers drop it: compare log-probabilities
        got = got - got.max(1, keepdims=True)
        got = got - np.log(np.exp(got).sum(1, keepdims=True))
    assert _rel(got, ref) < TOL


def check_model(spec, in_shape, seed, via_onnx):
    model = build_fuzz_net(spec, in_shape, seed)
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, (8,) + in_shape).astype(np.float32)
    COUNTS["models"] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # final softmax/ReLU dropped, calibration fallbacks
        try:
            g = from_torch(model, x[:1], check=False)
        except (ValueError, TypeError) as e:
            return _refused(e, "from_torch")
        _imported(g, model, x)
        if via_onnx:
            f = io.BytesIO()
            try:
                torch.onnx.export(model, (torch.from_numpy(x[:1]),), f, dynamo=False, opset_version=17)
            except torch.onnx.errors.OnnxExporterError:  # e.g. adaptive pooling to uneven windows
                COUNTS["onnx: torch exporter refused"] += 1
            else:
                COUNTS["onnx models"] += 1
                try:
                    _imported(load_onnx(f.getvalue()), model, x)
                except (ValueError, TypeError) as e:
                    return _refused(e, "load_onnx")
        try:
            net = convert(g, x, percentile=99.0, burst=3)
        except (ValueError, TypeError) as e:
            # the strategy draws one unconvertible structure on purpose: a max pool of a signal
            # that is not a rate (nor a non-negative affine of one)
            assert "(op 'maxpool')" in str(e), e
            return _refused(e, "convert")
    COUNTS["converted"] += 1
    logits = g.forward(x)
    assert _rel(analog_forward(net, x)["output"], g.forward(x, return_all=True)[net.output.ann_node]) < TOL \
        or not np.abs(logits).max()
    dy = dyadic_version(net)
    xq = np.round(x[:2] * 16) / 16
    ref = simulate(dy, xq, 4, engine="reference", record=("trains", "potential"))
    fast = simulate(dy, xq, 4, engine="numba", progress=False, record=("trains", "potential"))
    assert_results_equal(ref, fast)
    COUNTS["engines identical"] += 1


SETTINGS = dict(deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@settings(max_examples=DEFAULT_EXAMPLES, **SETTINGS)
@given(case=fuzz_models(), pick=__import__("hypothesis").strategies.integers(0, ONNX_EVERY - 1))
def test_fuzz_import_convert_simulate(case, pick):
    check_model(*case, via_onnx=pick == 0)


@pytest.mark.slow
@settings(max_examples=10_000, **{**SETTINGS, "derandomize": False})
@given(case=fuzz_models(), pick=__import__("hypothesis").strategies.integers(0, ONNX_EVERY - 1))
def test_fuzz_10000(case, pick):
    check_model(*case, via_onnx=pick == 0)


def teardown_module():
    print("\nfuzz outcome counts:", dict(COUNTS), "\nrefusals:", dict(REASONS))
    path = os.environ.get("EVENTSNN_FUZZ_REPORT")
    if path:
        with open(path, "w") as f:
            json.dump({"counts": dict(COUNTS), "refusals": dict(REASONS)}, f, indent=1)
