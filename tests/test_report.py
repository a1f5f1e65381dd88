"""Tests of eventsnn.report: JSON completeness/validity, Markdown content, plots on disk."""

import json
import subprocess
import sys

import numpy as np
import pytest

from eventsnn.analysis import Analysis
from eventsnn.engine.result import SimResult
from eventsnn.graph import Graph, Node
from eventsnn.network import DenseConnection, Population, SpikingNetwork
from eventsnn.report import FORMATS, build_report, render_markdown, write_report


def _i64(*v):
    return np.array(v, dtype=np.int64)


def case():
    """Two burst-IF neurons (Γ = 2) with input weights 1 and 0.25, an identity 2-class output."""
    g = Graph([Node("l1", "linear", ("input",), params={"weight": np.array([[1.0], [0.25]])}),
               Node("r1", "relu", ("l1",)),
               Node("l2", "linear", ("r1",), params={"weight": np.eye(2)})], (1,))
    one = np.float32(1)
    net = SpikingNetwork((1,), [
        Population("h", (2,), "if", burst=2, ann_node="r1", scale=one),
        Population("out", (2,), "output", ann_node="l2", scale=one)],
        [DenseConnection("input", "h", (1,), (2,), weight=np.array([[1.0], [0.25]])),
         DenseConnection("h", "out", (2,), (2,), weight=np.eye(2))])
    return g, net


def result():
    """Hand simulation of :func:`case` for x = (2.75, 1.0), T = 4.

    Image 0, currents (2.75, 0.6875): h0 fires 2 per step (V(4) = 3); h1 fires at t = 2, 3
    (V(4) = 0.75). Image 1, currents (1, 0.25): h0 fires 1 per step; h1 fires at t = 4.
    """
    T = 4
    return SimResult(
        T=T, outputs=np.array([[[2, 0], [1, 0]], [[4, 1], [2, 0]], [[6, 2], [3, 0]],
                               [[8, 2], [4, 1]]], np.float32),
        spikes={"h": _i64(3, 4, 4, 4)}, events={"h": _i64(2, 3, 3, 3)},
        synops={"input->h": _i64(0, 0, 0, 0), "h->out": _i64(6, 8, 8, 8)},
        input_macs=4, burst_hist={"h": _i64(0, 7, 4)}, n_images=2,
        records={"neuron_counts": {"h": _i64([8, 2], [4, 1])},
                 "potential": {"h": np.array([[3.0, 0.75], [0.0, 0.0]], np.float32)}})


X = np.array([[2.75], [1.0]], np.float32)
Y = np.array([0, 1])


def _strict_json(path):
    def no_constants(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=no_constants)


def _non_trivial_png(path):
    import matplotlib.image as mpimg

    assert path.stat().st_size > 5000
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 300
    assert len(np.unique(img.reshape(-1, img.shape[2]), axis=0)) > 10   # more than a blank canvas


def test_write_report_all_formats(tmp_path):
    pytest.importorskip("matplotlib")
    g, net = case()
    paths = write_report(g, net, result(), X, Y, tmp_path / "rep")
    expected = {"json", "md", "npz", "png:accuracy", "png:firing_rate", "png:energy",
                "png:burst_hist", "png:errors"}
    assert set(paths) == expected
    for k, p in paths.items():
        assert p.exists(), k
        if k.startswith("png:"):
            _non_trivial_png(p)
    rep = _strict_json(paths["json"])
    for key in ("T", "n_images", "units", "accuracy", "settle", "layers", "errors",
                "output_error", "pooling", "energy", "network", "missing"):
        assert key in rep, key
    assert rep["T"] == 4 and rep["n_images"] == 2 and rep["missing"] == []
    assert rep["accuracy"]["snn_per_step"] == [0.5] * 4 and rep["accuracy"]["ann"] == 0.5
    (layer,) = rep["layers"]
    assert layer["firing_rate"] == 15 / 16 and layer["burst_factor"] == 15 / 11
    assert layer["burst_hist"] == [0, 7, 4]
    (err,) = rep["errors"]
    assert err["residual_rate"] == pytest.approx(3 / 4 / 4)       # floor(3) spikes, 4 pairs, T = 4
    assert err["above_gamma_share"] == pytest.approx(0.25)        # only 2.75 > Γ
    assert rep["energy"]["total"]["ann_macs"] == 2 + 4
    assert rep["energy"]["total"]["snn_energy_pJ"] == pytest.approx(2 * 4.6 + 15 * 0.9)
    with np.load(paths["npz"]) as z:
        np.testing.assert_allclose(z["h"], [12 / 8, 3 / 8])
    md = paths["md"].read_text(encoding="utf-8")
    for needle in ("spikes / neuron / step", "pJ", "SNN/ANN", "![accuracy vs T](accuracy.png)",
                   "## Energy per image", "## Conversion errors", "45nm-fp32", "steps"):
        assert needle in md, needle


def test_write_report_subset_and_bad_format(tmp_path):
    g, net = case()
    paths = write_report(g, net, result(), X, Y, tmp_path, formats=("json",))
    assert set(paths) == {"json"} and [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with pytest.raises(ValueError, match="formats"):
        write_report(g, net, result(), X, Y, tmp_path, formats=("pdf",))


def test_report_from_accumulated_analysis(tmp_path):
    g, net = case()
    res = result()
    an = Analysis(net, g).add(res, X, Y)
    a = build_report(g, net, an)
    b = build_report(g, net, res, X, Y)
    assert a == b
    with pytest.raises(ValueError, match="already holds"):
        build_report(g, net, an, X, Y)
    paths = write_report(g, net, an, None, None, tmp_path, formats=("json", "md"))
    assert _strict_json(paths["json"]) == a


def test_report_without_graph_or_labels(tmp_path):
    _, net = case()
    res = result()
    res.records = {}
    paths = write_report(None, net, res, None, None, tmp_path, formats=("json", "md"))
    rep = _strict_json(paths["json"])
    assert rep["energy"] is None and rep["accuracy"] is None and rep["errors"] == []
    assert any("energy" in m for m in rep["missing"])
    md = paths["md"].read_text(encoding="utf-8")
    assert "## Not computed" in md and "## Firing per layer" in md


def test_render_markdown_handles_no_spikes():
    g, net = case()
    res = result()
    z = np.zeros(4, np.int64)
    res.spikes, res.events, res.burst_hist = {"h": z}, {"h": z}, {"h": _i64(0, 0, 0)}
    res.records = {}
    rep = build_report(g, net, res, X, Y)
    assert rep["layers"][0]["burst_factor"] is None          # 0 spikes / 0 events
    assert "n/a" in render_markdown(rep)


def test_plots_render_with_no_events(tmp_path):
    pytest.importorskip("matplotlib")
    g, net = case()
    res = result()
    z = np.zeros(4, np.int64)
    res.spikes, res.events, res.burst_hist = {"h": z}, {"h": z}, {"h": _i64(0, 0, 0)}
    paths = write_report(g, net, res, X, Y, tmp_path, formats=("png",))
    assert "png:accuracy" in paths and all(p.stat().st_size > 0 for p in paths.values())


def test_import_does_not_load_matplotlib():
    code = ("import sys, eventsnn, eventsnn.analysis, eventsnn.energy, eventsnn.report; "
            "bad = [m for m in ('matplotlib', 'torch', 'onnx') if m in sys.modules]; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_hand_result_matches_engine():
    from eventsnn.engine import simulate

    g, net = case()
    res = simulate(net, X, 4, record=("neuron_counts", "potential"), progress=False)
    assert build_report(g, net, res, X, Y) == build_report(g, net, result(), X, Y)
    assert set(FORMATS) == {"json", "md", "png", "npz"}
