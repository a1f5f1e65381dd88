"""Tests of eventsnn.energy: arithmetic against hand computation and the layer mapping."""

import numpy as np
import pytest

from eventsnn.analysis import analyze
from eventsnn.energy import (PRESETS, EnergyModel, estimate_energy, format_energy,
                             get_energy_model, layer_map)
from eventsnn.engine.result import SimResult
from eventsnn.graph import Graph, Node
from eventsnn.network import (ConvConnection, DenseConnection, IdentityConnection, Population,
                              SpikingNetwork)


def _i64(*v):
    return np.array(v, dtype=np.int64)


def chain_case():
    """input(1) -> l1 (2 MACs) -> r1 [h1] -> l2 (2 MACs) -> r2 [h2] -> l3 (2 MACs) [out]."""
    g = Graph([Node("l1", "linear", ("input",), params={"weight": np.array([[0.25], [0.5]])}),
               Node("r1", "relu", ("l1",)),
               Node("l2", "linear", ("r1",), params={"weight": np.array([[-2.0, 1.0]])}),
               Node("r2", "relu", ("l2",)),
               Node("l3", "linear", ("r2",), params={"weight": np.array([[1.0], [0.0]]),
                                                     "bias": np.array([0.0, 0.3])})], (1,))
    net = SpikingNetwork((1,), [
        Population("h1", (2,), "if", ann_node="r1"),
        Population("h2", (1,), "if", ann_node="r2"),
        Population("out", (2,), "output", bias=np.array([0.0, 0.3]), ann_node="l3")],
        [DenseConnection("input", "h1", (1,), (2,), weight=np.array([[0.25], [0.5]])),
         DenseConnection("h1", "h2", (2,), (1,), weight=np.array([[-2.0, 1.0]])),
         DenseConnection("h2", "out", (1,), (2,), weight=np.array([[1.0], [0.0]]))])
    return g, net


def chain_result(n_images=1):
    """SynOps of the hand-simulated chain (x = 1, T = 4): h1->h2 3, h2->out 2 per image."""
    T = 4
    return SimResult(T=T, outputs=np.zeros((T, n_images, 2), np.float32),
                     spikes={"h1": _i64(0, 1, 0, 2) * n_images, "h2": _i64(0, 1, 0, 0) * n_images},
                     events={"h1": _i64(0, 1, 0, 2) * n_images, "h2": _i64(0, 1, 0, 0) * n_images},
                     synops={"input->h1": _i64(0, 0, 0, 0), "h1->h2": _i64(0, 1, 0, 2) * n_images,
                             "h2->out": _i64(0, 2, 0, 0) * n_images},
                     input_macs=2 * n_images,
                     burst_hist={"h1": _i64(0, 3) * n_images, "h2": _i64(0, 1) * n_images},
                     n_images=n_images)


def test_presets_are_the_cited_figures():
    fp32 = PRESETS["45nm-fp32"]
    assert (fp32.mac_pj, fp32.ac_pj) == (4.6, 0.9)
    assert (PRESETS["45nm-int8"].mac_pj, PRESETS["45nm-int8"].ac_pj) == (0.23, 0.03)
    assert (PRESETS["45nm-fp16"].mac_pj, PRESETS["45nm-fp16"].ac_pj) == (1.5, 0.4)
    assert (PRESETS["45nm-int32"].mac_pj, PRESETS["45nm-int32"].ac_pj) == (3.2, 0.1)
    for m in PRESETS.values():
        assert "Horowitz" in m.source and "ISSCC 2014" in m.source


def test_get_energy_model_forms_and_errors():
    assert get_energy_model() is PRESETS["45nm-fp32"]
    m = get_energy_model({"mac_pj": 2.0, "ac_pj": 0.5})
    assert (m.mac_pj, m.ac_pj, m.name) == (2.0, 0.5, "custom")
    own = EnergyModel(1.0, 0.1, "x", "mine")
    assert get_energy_model(own) is own
    with pytest.raises(ValueError, match="unknown energy model"):
        get_energy_model("7nm")
    with pytest.raises(ValueError, match="mac_pj"):
        get_energy_model({"mac": 1})
    with pytest.raises(ValueError, match="finite number"):
        EnergyModel(-1.0, 0.1, "bad")
    with pytest.raises(TypeError):
        get_energy_model(4.6)


def test_energy_arithmetic_by_hand():
    g, net = chain_case()
    assert g.macs() == {"l1": 2, "r1": 0, "l2": 2, "r2": 0, "l3": 2}
    for n_images in (1, 3):
        e = estimate_energy(g, net, chain_result(n_images))
        layers = {d["name"]: d for d in e["layers"]}
        assert layers["h1"]["ann_nodes"] == ["l1", "r1"] and layers["out"]["ann_nodes"] == ["l3"]
        # h1: ANN 2 MACs; SNN: 2 input MACs (direct coding), no SynOps
        assert layers["h1"]["ann_energy_pJ"] == pytest.approx(2 * 4.6)
        assert layers["h1"]["snn_input_macs"] == 2 and layers["h1"]["snn_synops"] == 0
        assert layers["h1"]["snn_energy_pJ"] == pytest.approx(2 * 4.6)
        assert layers["h1"]["ratio"] == pytest.approx(1.0)
        # h2: 3 SynOps (A once, B twice, fan-out 1); out: 2 SynOps (C once, fan-out 2)
        assert layers["h2"]["snn_synops"] == 3 and layers["h2"]["snn_energy_pJ"] == pytest.approx(2.7)
        assert layers["out"]["connections"] == {"h2->out": 2.0}
        assert layers["out"]["snn_energy_pJ"] == pytest.approx(1.8)
        tot = e["total"]
        assert tot["ann_macs"] == 6 and tot["ann_energy_pJ"] == pytest.approx(27.6)
        assert tot["snn_energy_pJ"] == pytest.approx(9.2 + 2.7 + 1.8)
        assert tot["ratio"] == pytest.approx(13.7 / 27.6)
        assert e["unit"] == "pJ per image" and e["unmapped"]["nodes"] == {}


def test_energy_include_bias_and_other_model():
    g, net = chain_case()
    e = estimate_energy(g, net, chain_result(), "45nm-int8", include_bias=True)
    layers = {d["name"]: d for d in e["layers"]}
    # the output has one non-zero bias: T = 4 additions per image
    assert layers["out"]["snn_bias_acs"] == 4.0
    assert layers["out"]["snn_energy_pJ"] == pytest.approx((2 + 4) * 0.03)
    assert layers["h1"]["snn_bias_acs"] == 0.0
    assert e["total"]["snn_energy_pJ"] == pytest.approx(2 * 0.23 + 3 * 0.03 + 6 * 0.03)
    assert e["model"]["name"] == "45nm-int8"


def test_energy_upto_and_compare():
    g, net = chain_case()
    res = chain_result(2)
    model = EnergyModel(mac_pj=4.6, ac_pj=0.9)
    for upto, syn in ((None, 5), (4, 5), (3, 3), (2, 3), (1, 0)):
        full = estimate_energy(g, net, res, model, upto=upto)["total"]
        c = model.compare(g, res, upto=upto)
        assert c["snn_synops"] == syn and full["snn_synops"] == syn
        assert c["snn_pj"] == pytest.approx(full["snn_energy_pJ"])
        assert c["snn_pj"] == pytest.approx(2 * 4.6 + syn * 0.9)
        assert c["ann_pj"] == pytest.approx(27.6) and c["ratio"] == pytest.approx(c["snn_pj"] / 27.6)
    e = estimate_energy(g, net, res, include_bias=True, upto=2)
    assert e["T"] == 2 and e["layers"][-1]["snn_bias_acs"] == 2.0
    with pytest.raises(ValueError, match="upto"):
        model.compare(g, res, upto=5)


def test_energy_accepts_an_analysis_and_matches():
    g, net = chain_case()
    res = chain_result(2)
    a = estimate_energy(g, net, res)
    b = estimate_energy(g, net, analyze(net, res))
    assert a == b


def test_energy_validation():
    g, net = chain_case()
    res = chain_result()
    res.synops["ghost->h1"] = _i64(0, 0, 0, 0)
    with pytest.raises(ValueError, match="connections"):
        estimate_energy(g, net, res)
    bad = chain_result()
    bad.n_images = 0
    with pytest.raises(ValueError, match="no images"):
        estimate_energy(g, net, bad)


def residual_case():
    """conv c1 -> relu r1 [A] -> conv c2 -> relu r2 [B] -> conv c3 -> add(c3, r1) -> relu r3
    [C] -> flatten -> linear fc [out] -> identity tail (unmapped)."""
    w = np.full((1, 1, 3, 3), 2.0 ** -4, np.float32)
    pad = [1, 1, 1, 1]
    conv = lambda name, inp: Node(name, "conv", (inp,), {"stride": [1, 1], "padding": pad},  # noqa: E731
                                  {"weight": w})
    g = Graph([conv("c1", "input"), Node("r1", "relu", ("c1",)),
               conv("c2", "r1"), Node("r2", "relu", ("c2",)),
               conv("c3", "r2"), Node("add", "add", ("c3", "r1")), Node("r3", "relu", ("add",)),
               Node("flat", "flatten", ("r3",)),
               Node("fc", "linear", ("flat",), params={"weight": np.ones((2, 16), np.float32)}),
               Node("tail", "identity", ("fc",))], (1, 4, 4), output="tail")
    s = (1, 4, 4)
    cc = lambda a, b: ConvConnection(a, b, s, s, weight=w, stride=[1, 1], padding=pad)  # noqa: E731
    net = SpikingNetwork(s, [Population("A", s, "if", ann_node="r1"),
                             Population("B", s, "if", ann_node="r2"),
                             Population("C", s, "if", ann_node="r3"),
                             Population("out", (2,), "output", ann_node="fc")],
                         [cc("input", "A"), cc("A", "B"), cc("B", "C"),
                          IdentityConnection("A", "C", s, s),
                          DenseConnection("C", "out", s, (2,), weight=np.ones((2, 16)))])
    return g, net


def test_layer_map_residual_no_double_counting():
    g, net = residual_case()
    m = layer_map(g, net)
    assert m == {"A": ["c1", "r1"], "B": ["c2", "r2"], "C": ["c3", "add", "r3"],
                 "out": ["flat", "fc"], "unmapped": ["tail"]}
    macs = g.macs()
    z = np.zeros(3, np.int64)
    res = SimResult(T=3, outputs=np.zeros((3, 1, 2), np.float32),
                    spikes={"A": z, "B": z, "C": z}, events={"A": z, "B": z, "C": z},
                    synops={"input->A": z, "A->B": _i64(10, 0, 0), "B->C": _i64(0, 7, 0),
                            "A->C": _i64(1, 1, 1), "C->out": _i64(2, 0, 0)},
                    input_macs=int(net.connections[0].fan_out().sum()),
                    burst_hist={"A": _i64(0, 0), "B": _i64(0, 0), "C": _i64(0, 0)}, n_images=1)
    e = estimate_energy(g, net, res)
    layers = {d["name"]: d for d in e["layers"]}
    assert layers["C"]["ann_macs"] == macs["c3"]
    assert layers["C"]["connections"] == {"B->C": 7.0, "A->C": 3.0}
    assert layers["C"]["snn_synops"] == 10.0
    # structural input MACs count only taps inside the image: (2+3+3+2)^2 = 100, while the
    # ANN conv counts every tap, padding included: 9 * 16 = 144
    assert layers["A"]["snn_input_macs"] == 100 and layers["A"]["ann_macs"] == 144
    assert sum(d["ann_macs"] for d in e["layers"]) + e["unmapped"]["ann_macs"] == e["total"]["ann_macs"]
    assert e["total"]["snn_energy_pJ"] == pytest.approx(100 * 4.6 + (10 + 10 + 2) * 0.9)


def test_layer_map_rejects_foreign_graph():
    g, _ = chain_case()
    _, net = residual_case()
    with pytest.raises(ValueError, match="lacks"):
        layer_map(g, net)


@pytest.mark.parametrize("pj,text", [(0.9, "0.9 pJ"), (4600.0, "4.6 nJ"), (2.5e6, "2.5 µJ"),
                                     (1.44e9, "1.44 mJ"), (None, "n/a")])
def test_format_energy(pj, text):
    assert format_energy(pj) == text


def test_energy_from_engine_synops():
    from eventsnn.engine import simulate

    g, net = chain_case()
    res = simulate(net, np.ones((2, 1), np.float32), 4, progress=False)
    e = estimate_energy(g, net, res)
    assert e["total"]["snn_energy_pJ"] == pytest.approx(9.2 + 2.7 + 1.8)
