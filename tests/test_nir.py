"""NIR both ways: from_nir against an independent numpy implementation of the semantics,
round trips through nir.write / nir.read, strict refusal and the lossy report.

Exactness: inputs are multiples of 2^-3 in [-1, 1], weights and biases multiples of 2^-4 of
magnitude <= 2, ``dt/tau = 1/2`` and ``r``, ``v_leak``, thresholds and resets dyadic, T <= 8:
every value the float32 engines compute is then a multiple of 2^-16 below 2^7 (the leak adds
one bit per step), exactly representable in float32, so the float64 twin below and the
engines agree bit for bit (the twin asserts that its own values are float32-exact).
"""

import warnings

import numpy as np
import pytest

import eventsnn
from eventsnn.engine import simulate

nir = pytest.importorskip("nir")

T = 8


def dy(rng, shape, lo, hi, q=2.0 ** -4):
    return (rng.integers(lo, hi + 1, size=shape) * q).astype(np.float32)


# --- the independent numpy implementation of the NIR semantics (float64, dense, per step) ---


def _conv(x, node):
    """Direct-loop 2-D convolution with stride, padding, dilation and groups (x: (C, H, W))."""
    w = np.asarray(node.weight, np.float64)
    o, i, kh, kw = w.shape
    s = np.broadcast_to(np.asarray(node.stride), (2,))
    d = np.broadcast_to(np.asarray(node.dilation), (2,))
    pad = node.padding.decode() if isinstance(node.padding, bytes) else node.padding
    if isinstance(pad, str) and pad == "same":
        tot = [d[0] * (kh - 1), d[1] * (kw - 1)]
        pb = [tot[0] // 2, tot[1] // 2]
        pe = [tot[0] - pb[0], tot[1] - pb[1]]
    elif isinstance(pad, str):
        pb = pe = [0, 0]
    else:
        pb = pe = list(np.broadcast_to(np.asarray(pad), (2,)))
    c, h, wd = x.shape
    xp = np.zeros((c, h + pb[0] + pe[0], wd + pb[1] + pe[1]))
    xp[:, pb[0]:pb[0] + h, pb[1]:pb[1] + wd] = x
    ho = (xp.shape[1] - d[0] * (kh - 1) - 1) // s[0] + 1
    wo = (xp.shape[2] - d[1] * (kw - 1) - 1) // s[1] + 1
    g = int(node.groups)
    out = np.zeros((o, ho, wo))
    for oc in range(o):
        grp = oc // (o // g)
        for ic in range(i):
            for ky in range(kh):
                for kx in range(kw):
                    for y in range(ho):
                        for xx in range(wo):
                            out[oc, y, xx] += w[oc, ic, ky, kx] * xp[
                                grp * i + ic, y * s[0] + ky * d[0], xx * s[1] + kx * d[1]]
    return out + np.asarray(node.bias, np.float64).reshape(-1, 1, 1)


def _pool(x, node):
    k, s, p = (np.broadcast_to(np.asarray(v), (2,)) for v in
               (node.kernel_size, node.stride, node.padding))
    c, h, w = x.shape
    xp = np.zeros((c, h + 2 * p[0], w + 2 * p[1]))
    xp[:, p[0]:p[0] + h, p[1]:p[1] + w] = x
    ho, wo = (xp.shape[1] - k[0]) // s[0] + 1, (xp.shape[2] - k[1]) // s[1] + 1
    out = np.zeros((c, ho, wo))
    for y in range(ho):
        for xx in range(wo):
            out[:, y, xx] = xp[:, y * s[0]:y * s[0] + k[0], xx * s[1]:xx * s[1] + k[1]].sum(axis=(1, 2))
    return out / (k[0] * k[1]) if type(node).__name__ == "AvgPool2d" else out


def nir_twin(g, x, steps, dt):
    """Simulate NIR graph ``g`` on one input ``x`` for ``steps`` steps (module semantics).

    Returns the value sent to Output after each step (the I / LI potential, or the running sum
    of a spiking / linear value, as from_nir defines) and the spikes of every IF/LIF node.
    """
    order, preds = [], {n: [s for s, d in g.edges if d == n] for n in g.nodes}
    while len(order) < len(g.nodes):
        order += [n for n in g.nodes if n not in order and all(p in order for p in preds[n])]
    state = {n: 0.0 for n in g.nodes}
    outs, spikes = [], {n: [] for n, v in g.nodes.items() if type(v).__name__ in ("IF", "LIF")}
    total = 0.0
    for _ in range(steps):
        val = {}
        for n in order:
            node, kind = g.nodes[n], type(g.nodes[n]).__name__
            if kind == "Input":
                val[n] = x.astype(np.float64)
                continue
            i = sum(val[p] for p in preds[n])
            if kind == "Output":
                if type(g.nodes[preds[n][0]]).__name__ in ("I", "LI"):
                    outs.append(np.ravel(i))
                else:
                    total = total + np.ravel(i)
                    outs.append(total)
            elif kind == "Conv2d":
                val[n] = _conv(i, node)
            elif kind in ("SumPool2d", "AvgPool2d"):
                val[n] = _pool(i, node)
            elif kind in ("Affine", "Linear"):
                val[n] = np.asarray(node.weight, np.float64) @ np.ravel(i) + (
                    np.asarray(node.bias, np.float64) if kind == "Affine" else 0.0)
            elif kind == "Scale":
                val[n] = i * np.asarray(node.scale, np.float64)
            elif kind == "Flatten":
                val[n] = np.ravel(i)
            else:
                p = {k: np.asarray(getattr(node, k), np.float64).reshape(np.shape(i))
                     for k in ("r", "tau", "v_leak", "v_threshold", "v_reset")
                     if getattr(node, k, None) is not None}
                v = state[n]
                if kind in ("LIF", "LI"):
                    v = v + dt / p["tau"] * (p["v_leak"] - v + p["r"] * i)
                else:
                    v = v + dt * p["r"] * i
                if kind in ("IF", "LIF"):
                    z = v > p["v_threshold"]
                    v = np.where(z, p.get("v_reset", 0.0), v)
                    val[n] = z.astype(np.float64)
                    spikes[n].append(int(z.sum()))
                else:
                    val[n] = v
                assert np.array_equal(v, np.float32(v)), "twin left float32-exact arithmetic"
                state[n] = v
    return np.array(outs), {n: np.array(s) for n, s in spikes.items()}


# --- hand-written graphs -------------------------------------------------------------------


def _full(shape, v):
    return np.full(shape, v, np.float32)


def graph_conv(rng, grouped=True):
    """Input -> conv 'same' -> LIF -> (grouped dilated conv + Scale shortcut) -> IF ->
    SumPool -> Flatten -> Affine -> LI -> Output."""
    c = (4, 6, 6)
    gconv = (nir.Conv2d(input_shape=(6, 6), weight=dy(rng, (4, 2, 3, 3), -24, 32), stride=1,
                        padding=2, dilation=2, groups=2, bias=dy(rng, 4, -4, 8)) if grouped else
             nir.Conv2d(input_shape=(6, 6), weight=dy(rng, (4, 4, 2, 2), -24, 32), stride=1,
                        padding="same", dilation=1, groups=1, bias=dy(rng, 4, -4, 8)))
    nodes = {
        "in": nir.Input(input_type={"input": np.array([1, 6, 6])}),
        "conv": nir.Conv2d(input_shape=(6, 6), weight=dy(rng, (4, 1, 3, 3), -32, 32), stride=1,
                           padding="same", dilation=1, groups=1, bias=dy(rng, 4, -8, 8)),
        "lif": nir.LIF(tau=_full(c, 2.0), r=rng.choice([0.5, 1.0, 2.0], c).astype(np.float32),
                       v_leak=dy(rng, c, -4, 4), v_threshold=rng.choice([0.5, 1.0], c).astype(np.float32),
                       v_reset=dy(rng, c, -4, 0)),
        "gconv": gconv,
        "skip": nir.Scale(scale=np.array([0.5, 1.0, 0.25, 1.0], np.float32).reshape(4, 1, 1)),
        "if": nir.IF(r=_full(c, 1.0), v_threshold=_full(c, 1.0), v_reset=None),
        "pool": nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                              padding=np.array([0, 0])),
        "flat": nir.Flatten(input_type={"input": np.array([4, 3, 3])}, start_dim=0, end_dim=-1),
        "aff": nir.Affine(weight=dy(rng, (3, 36), -16, 16), bias=dy(rng, 3, -4, 4)),
        "li": nir.LI(tau=_full(3, 2.0), r=_full(3, 1.0), v_leak=dy(rng, 3, -2, 2)),
        "out": nir.Output(output_type={"output": np.array([3])}),
    }
    edges = [("in", "conv"), ("conv", "lif"), ("lif", "gconv"), ("gconv", "if"), ("lif", "skip"),
             ("skip", "if"), ("if", "pool"), ("pool", "flat"), ("flat", "aff"), ("aff", "li"),
             ("li", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), (1, 6, 6)


def graph_dense(rng):
    """Input (8,) -> Linear -> IF (r=2) -> Affine -> I -> Output."""
    nodes = {
        "in": nir.Input(input_type={"input": np.array([8])}),
        "lin": nir.Linear(weight=dy(rng, (6, 8), -32, 32)),
        "if": nir.IF(r=_full(6, 2.0), v_threshold=rng.choice([0.5, 1.0], 6).astype(np.float32),
                     v_reset=dy(rng, 6, -4, 0)),
        "aff": nir.Affine(weight=dy(rng, (4, 6), -16, 16), bias=dy(rng, 4, -4, 4)),
        "i": nir.I(r=rng.choice([0.5, 1.0], 4).astype(np.float32)),
        "out": nir.Output(output_type={"output": np.array([4])}),
    }
    edges = [("in", "lin"), ("lin", "if"), ("if", "aff"), ("aff", "i"), ("i", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), (8,)


def graph_pool(rng):
    """Input (2,8,8) -> AvgPool 2x2/2 -> conv 'valid' stride 2 -> LIF -> Flatten -> Linear
    -> Output (a linear node into Output: outputs are its running sum)."""
    c = (3, 2, 2)
    nodes = {
        "in": nir.Input(input_type={"input": np.array([2, 8, 8])}),
        "avg": nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]),
                             padding=np.array([0, 0])),
        "conv": nir.Conv2d(input_shape=(4, 4), weight=dy(rng, (3, 2, 2, 2), -32, 32), stride=2,
                           padding="valid", dilation=1, groups=1, bias=np.zeros(3, np.float32)),
        "lif": nir.LIF(tau=_full(c, 2.0), r=_full(c, 1.0), v_leak=_full(c, 0.0),
                       v_threshold=_full(c, 0.5), v_reset=_full(c, 0.0)),
        "flat": nir.Flatten(input_type={"input": np.array(c)}, start_dim=0, end_dim=-1),
        "lin": nir.Linear(weight=dy(rng, (2, 12), -16, 16)),
        "out": nir.Output(output_type={"output": np.array([2])}),
    }
    edges = [("in", "avg"), ("avg", "conv"), ("conv", "lif"), ("lif", "flat"), ("flat", "lin"),
             ("lin", "out")]
    return nir.NIRGraph(nodes=nodes, edges=edges, type_check=False), (2, 8, 8)


GRAPHS = {"conv": graph_conv, "dense": graph_dense, "pool": graph_pool}


def _inputs(rng, shape, n=3):
    return dy(rng, (n,) + shape, -8, 8, q=2.0 ** -3)


@pytest.mark.parametrize("dt", [1.0, 0.5])
@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_from_nir_matches_numpy_semantics(name, dt):
    rng = np.random.default_rng(len(name))
    g, shape = GRAPHS[name](rng)
    if dt != 1.0:  # keep dt/tau = 1/2 (exact): halve every tau
        for node in g.nodes.values():
            if getattr(node, "tau", None) is not None:
                node.tau = node.tau * np.float32(dt)
    net = eventsnn.from_nir(g, dt=dt)
    x = _inputs(rng, shape)
    fast = simulate(net, x, T, progress=False, record=("trains",))
    ref = simulate(net, x, T, engine="reference", record=("trains",))
    np.testing.assert_array_equal(fast.outputs, ref.outputs)
    for b in range(len(x)):
        outs, spikes = nir_twin(g, x[b], T, dt)
        np.testing.assert_array_equal(fast.outputs[:, b], outs.astype(np.float32))
        for pop, s in spikes.items():
            np.testing.assert_array_equal(
                fast.records["trains"][pop][:, b].sum(axis=1), s, err_msg=pop)
    assert sum(int(s.sum()) for s in fast.spikes.values()) > 0  # the example is not silent


def test_grouped_dilated_conv_is_exact_csr_with_true_fan_out():
    g, _ = graph_conv(np.random.default_rng(0))
    net = eventsnn.from_nir(g)
    conn = net.incoming("if")[0]
    assert conn.kind == "csr"
    # grouped (2 groups of 2 channels), dilation 2, plus the one-to-one Scale shortcut: every
    # input channel reaches 2 output channels through at most 9 taps each, plus itself
    m = conn.to_csr()
    assert m.shape == (144, 144) and np.diff(m.indptr).max() <= 2 * 9 + 1


def test_dense_twin_runs_nir_neurons():
    torch = pytest.importorskip("torch")  # noqa: F841
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from dense_torch import DenseTorchSNN

    for name, make in GRAPHS.items():
        rng = np.random.default_rng(7)
        g, shape = make(rng)
        net = eventsnn.from_nir(g)
        x = _inputs(rng, shape)
        np.testing.assert_array_equal(DenseTorchSNN(net).run(x, T).numpy(),
                                      simulate(net, x, T, progress=False).outputs, err_msg=name)


def _assert_same(a, b):
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert list(a.spikes) == list(b.spikes)
    for k in a.spikes:
        np.testing.assert_array_equal(a.spikes[k], b.spikes[k])
    assert sorted(np.sum([v for v in a.synops.values()], axis=0)) == sorted(
        np.sum([v for v in b.synops.values()], axis=0))


@pytest.mark.parametrize("name", ["conv_plain", "dense", "pool"])
def test_round_trip_through_a_file_is_bit_identical(name, tmp_path):
    rng = np.random.default_rng(3)
    g, shape = graph_conv(rng, grouped=False) if name == "conv_plain" else GRAPHS[name](rng)
    net = eventsnn.from_nir(g, dt=0.5)
    exported = eventsnn.to_nir(net)  # strict: everything is exact
    assert exported.metadata["dt"] == 0.5
    nir.write(tmp_path / "net.nir", exported)
    again = eventsnn.from_nir(tmp_path / "net.nir", dt=0.5)
    x = dy(rng, (4,) + shape, -256, 256, q=2.0 ** -8)  # any values: same float32 operations
    _assert_same(simulate(net, x, T, progress=False), simulate(again, x, T, progress=False))
    # and once more: the second export is the same graph
    third = eventsnn.from_nir(eventsnn.to_nir(again), dt=0.5)
    _assert_same(simulate(again, x, T, progress=False), simulate(third, x, T, progress=False))


def test_unsupported_nodes_and_structures_are_named():
    rng = np.random.default_rng(0)
    g, _ = graph_dense(rng)
    g.nodes["if"] = nir.Threshold(threshold=np.ones(6, np.float32))
    with pytest.raises(ValueError, match=r"'if' has type Threshold.*supported: Input"):
        eventsnn.from_nir(g)
    g, _ = graph_dense(rng)
    g.edges.append(("if", "lin"))
    with pytest.raises(ValueError, match="cycle"):
        eventsnn.from_nir(g)
    g, _ = graph_dense(rng)
    g.nodes["i2"] = nir.I(r=np.ones(6, np.float32))
    g.edges += [("lin", "i2"), ("i2", "aff")]
    with pytest.raises(ValueError, match="non-spiking"):
        eventsnn.from_nir(g)
    with pytest.raises(ValueError, match="dt must be"):
        eventsnn.from_nir(graph_dense(rng)[0], dt=0.0)
    with pytest.raises(ValueError, match="no NIR file"):
        eventsnn.from_nir("/nonexistent/net.nir")


def test_grouped_conv_into_image_population_cannot_be_exported():
    net = eventsnn.from_nir(graph_conv(np.random.default_rng(0))[0])
    with pytest.raises(ValueError, match="csr connection lif->if into a \\(C, H, W\\) population"):
        eventsnn.to_nir(net, strict=False)


# --- the shipped model --------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    from eventsnn.datasets import default_model_path, load_shipped

    graph = eventsnn.load_graph(default_model_path()[0])
    calib, test = load_shipped("train"), load_shipped("test")
    idx = np.concatenate([np.flatnonzero(test.y == c)[:3] for c in range(10)])  # 3 per class
    return graph, calib.x[:64], test.x[idx], test.y[idx]


def test_strict_refusal_and_lossy_report_on_the_shipped_model(shipped):
    from eventsnn.io.nir import export_report

    graph, calib_x, x, y = shipped
    net = eventsnn.convert(graph, calib_x)  # defaults: Γ=5, LIPool
    with pytest.raises(ValueError) as err:
        eventsnn.to_nir(net)
    msg = str(err.value)
    for p in net.populations:
        if p.kind == "if":
            assert f"{p.name}: subtractive (soft) reset" in msg and f"{p.name}: bursts of up to Γ=5" in msg
        if p.kind == "lipool":
            assert f"{p.name}: LIPool" in msg
    with pytest.warns(UserWarning, match="approximates"):
        g = eventsnn.to_nir(net, strict=False)
    assert "subtractive" in g.metadata["approximations"]
    rows = export_report(net, g, x, y, [4, 8], progress=False)
    assert [r["T"] for r in rows] == [4, 8]
    original = simulate(net, x, 8, progress=False)
    assert rows[1]["acc_original"] == original.accuracy(y)[7]
    assert rows[1]["synops_original"] == original.total_synops() / len(x)
    assert rows[1]["synops_nir"] > 0


def test_nir_preset_exports_exactly(shipped, tmp_path):
    from eventsnn.io.nir import NIR_PRESET

    graph, calib_x, x, _ = shipped
    net = eventsnn.convert(graph, calib_x, **NIR_PRESET)
    assert {p.kind for p in net.populations} == {"lif", "output"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = eventsnn.to_nir(net)
    nir.write(tmp_path / "vgg.nir", g)
    back = eventsnn.from_nir(nir.read(tmp_path / "vgg.nir"), dt=1.0)
    for p in net.populations:  # the same parameters, bit for bit
        q = back.population(p.name)
        assert (p.bias is None) == (q.bias is None) and (
            p.bias is None or np.array_equal(p.bias, q.bias)), p.name
    for c in net.connections:
        d = next(d for d in back.connections if (d.src, d.dst) == (c.src, c.dst))
        assert c.attrs() == d.attrs(), c.name
        for k, a in c.arrays().items():
            np.testing.assert_array_equal(a, d.arrays()[k], err_msg=f"{c.name} {k}")
    a, b = simulate(net, x, 6, progress=False), simulate(back, x, 6, progress=False)
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert a.total_synops() == b.total_synops()
    with pytest.raises(ValueError, match="burst=1"):
        eventsnn.convert(graph, calib_x, reset="zero")


def test_cli_export_nir_prints_list_and_loss_report(tmp_path, capsys):
    from eventsnn.cli import main

    out = tmp_path / "vgg.nir"
    assert main(["export-nir", "--out", str(out), "-n", "10", "--T", "1,2", "--calib", "32",
                 "--preset", "paper", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "features NIR cannot express exactly: 17" in text and "maxpool_6: LIPool" in text
    assert "acc original %" in text and len(nir.read(out).nodes) > 10
    assert main(["export-nir", "--out", str(out), "-n", "10", "--T", "1", "--calib", "32",
                 "--preset", "paper", "--strict", "--no-progress"]) == 2
    assert "NIR cannot express this network exactly (17 features)" in capsys.readouterr().err
    # the default preset also starts from V(0) = θ/2, which NIR cannot hold (one more per layer)
    assert main(["export-nir", "--out", str(out), "-n", "10", "--T", "1", "--calib", "32",
                 "--strict", "--no-progress"]) == 2
    assert "v_init ≠ 0" in capsys.readouterr().err
    assert main(["export-nir", "--exact", "--strict", "--out", str(out), "-n", "10", "--T", "2",
                 "--calib", "32", "--no-progress"]) == 0
    assert "features NIR cannot express exactly: 0" in capsys.readouterr().out


@pytest.mark.parametrize("padding", [[0, 0, 1, 1], [2, 0, 0, 1], [0, 1, 2, 0]])
def test_asymmetric_conv_padding_exports_as_widened_kernel(padding):
    from eventsnn.network import (INPUT, ConvConnection, DenseConnection, Population,
                                  SpikingNetwork)

    rng = np.random.default_rng(5)
    ho, wo = 6 + padding[0] + padding[2] - 3 + 1, 6 + padding[1] + padding[3] - 3 + 1
    dyn = {"r": 1.0, "v_threshold": 0.5, "v_reset": 0.0}
    net = SpikingNetwork((1, 6, 6), [
        Population("a", (2, 6, 6), "lif", dynamics=dyn),
        Population("b", (3, ho, wo), "lif", dynamics=dyn),
        Population("out", (2,), "output")], [
        ConvConnection(INPUT, "a", (1, 6, 6), (2, 6, 6), weight=dy(rng, (2, 1, 3, 3), -16, 32),
                       padding=[1, 1, 1, 1]),
        ConvConnection("a", "b", (2, 6, 6), (3, ho, wo), weight=dy(rng, (3, 2, 3, 3), -8, 16),
                       padding=padding),
        DenseConnection("b", "out", (3, ho, wo), (2,), weight=dy(rng, (2, 3 * ho * wo), -8, 8))])
    back = eventsnn.from_nir(eventsnn.to_nir(net))
    x = _inputs(rng, (1, 6, 6))
    a, b = simulate(net, x, T, progress=False), simulate(back, x, T, progress=False)
    np.testing.assert_array_equal(a.outputs, b.outputs)
    np.testing.assert_array_equal(a.spikes["b"], b.spikes["b"])
    assert a.spikes["b"].sum() > 0
