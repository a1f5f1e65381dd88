"""One set of argument checks (eventsnn.validation) behind graph, convert, simulate and analysis:
the same mistake gives the same exception and message everywhere, and nothing wrong passes
silently (labels the model cannot predict, raw pixels, runs that cannot fit in memory)."""

import numpy as np
import pytest

import eventsnn.engine as engine
from eventsnn import UnsupportedModelError, analyze_simulation, convert, simulate
from eventsnn.files import file_kind
from eventsnn.graph import Graph, Node
from eventsnn.network import DenseConnection, IdentityConnection, Population, SpikingNetwork
from eventsnn.validation import (check_batch, check_finite_float, check_labels,
                                 check_positive_int)


def two_class_net():
    """input (2,) -> IF (2,) -> output (2,): two classes."""
    pops = [Population("a", (2,), "if", burst=2), Population("out", (2,), "output")]
    conns = [IdentityConnection("input", "a", (2,), (2,), scale=np.float32(1.0)),
             DenseConnection("a", "out", (2,), (2,), weight=np.eye(2, dtype=np.float32))]
    return SpikingNetwork((2,), pops, conns)


def tiny_graph():
    rng = np.random.default_rng(0)
    nodes = [Node("fc", "linear", ("input",), params={
        "weight": rng.normal(0, 0.5, (3, 4)).astype(np.float32), "bias": np.zeros(3, np.float32)}),
        Node("relu", "relu", ("fc",)),
        Node("out", "linear", ("relu",), params={
            "weight": rng.normal(0, 0.5, (2, 3)).astype(np.float32), "bias": np.zeros(2, np.float32)})]
    return Graph(nodes, (4,))


X = np.array([[0.3, 0.7], [0.9, 0.1], [0.5, 0.5]], np.float32)


# --- labels ---------------------------------------------------------------------------------


def test_labels_outside_the_model_classes_are_refused_everywhere():
    net = two_class_net()
    res = simulate(net, X, 4)
    assert res.accuracy([1, 0, 0]).shape == (4,)
    for bad in ([1, 0, 2], [1, -1, 0]):
        with pytest.raises(ValueError, match="outside the model's 2 classes 0..1"):
            res.accuracy(bad)
        with pytest.raises(ValueError, match="outside the model's 2 classes"):
            analyze_simulation(net, X, 4, np.array(bad))
    with pytest.raises(TypeError, match="integer class indices"):
        res.accuracy([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="one per simulated image"):
        res.accuracy([1, 0])


def test_check_labels_lists_the_offending_values():
    with pytest.raises(ValueError, match=r"labels \[10, 11\] are outside"):
        check_labels([0, 10, 11, 10], 4, 10)
    np.testing.assert_array_equal(check_labels(np.array([0, 9], np.uint8), 2, 10), [0, 9])


# --- images ---------------------------------------------------------------------------------


def test_raw_uint8_images_are_refused_by_simulate_like_forward_and_convert():
    net, g = two_class_net(), tiny_graph()
    raw = np.array([[30, 200]], np.uint8)
    with pytest.raises(ValueError, match=r"dtype uint8.*x.astype\(np.float32\) / 255"):
        simulate(net, raw, 3)
    with pytest.raises(ValueError, match="dtype uint8"):
        g.forward(np.zeros((1, 4), np.uint8))
    with pytest.raises(ValueError, match="dtype uint8"):
        convert(g, np.zeros((2, 4), np.uint8))


def test_float_images_in_0_255_are_questioned():
    net, g = two_class_net(), tiny_graph()
    with pytest.warns(UserWarning, match=r"raw 0-255 pixels.*--mean/--std"):
        simulate(net, np.array([[30.0, 200.0]], np.float32), 2)
    with pytest.warns(UserWarning, match="raw 0-255 pixels"):
        g.forward(np.full((1, 4), 128.0, np.float32))
    # normalised images (also ones above 1 or below 0) pass without a word
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_batch(np.array([[-1.9, 2.7]], np.float32), (2,))
        check_batch(np.array([[0.0, 1.0]], np.float32), (2,))


def test_same_mistake_same_message():
    net, g = two_class_net(), tiny_graph()
    calls = [lambda x: simulate(net, x, 2), lambda x: check_batch(x, (2,))]
    for call in calls:
        with pytest.raises(ValueError, match=r"shape \(2,\), expected \(B, 2\).*x\[None\]"):
            call(np.zeros(2, np.float32))
        with pytest.raises(ValueError, match="NaN or inf"):
            call(np.array([[np.nan, 0]], np.float32))
        with pytest.raises(ValueError, match="empty"):
            call(np.zeros((0, 2), np.float32))
    with pytest.raises(ValueError, match=r"calib_x has shape \(4,\), expected \(B, 4\)"):
        convert(g, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match=r"input has shape \(4,\), expected \(B, 4\)"):
        g.forward(np.zeros(4, np.float32))


def test_scalar_checks():
    assert check_positive_int(np.int64(3), "n") == 3
    assert check_positive_int(None, "n", allow_none=True) is None
    with pytest.raises(TypeError, match="n must be an integer >= 1"):
        check_positive_int(2.0, "n")
    with pytest.raises(TypeError):
        check_positive_int(True, "n")
    with pytest.raises(ValueError, match="got 0"):
        check_positive_int(0, "n")
    assert check_finite_float(1, "e", minimum=0) == 1.0
    with pytest.raises(ValueError, match=r"e must be in \[0, inf\], got -1"):
        check_finite_float(-1, "e", minimum=0)
    with pytest.raises(ValueError, match="finite"):
        check_finite_float(float("nan"), "e")
    with pytest.raises(TypeError):
        check_finite_float("1", "e")
    with pytest.raises(TypeError, match="T .*integer"):
        simulate(two_class_net(), X, 2.5)


def test_huge_burst_is_refused_before_allocating():
    g = tiny_graph()
    x = np.random.default_rng(1).normal(size=(8, 4)).astype(np.float32)
    for burst in (10 ** 9, 1e23):
        with pytest.raises(ValueError, match="from 1 to 65536"):
            convert(g, x, burst=burst)
    with pytest.raises(ValueError, match="from 1 to 65536"):
        Population("a", (2,), "if", burst=10 ** 9)


# --- resources and progress -----------------------------------------------------------------


def test_memory_is_estimated_before_allocating(monkeypatch):
    net = two_class_net()
    monkeypatch.setattr(engine, "available_memory", lambda: 2 ** 20)     # 1 MiB left
    with pytest.raises(MemoryError, match=r"GiB.*records \['trains'\].*drop 'trains'"):
        simulate(net, np.ones((4, 2), np.float32), 100_000, record=("trains",))
    simulate(net, np.ones((4, 2), np.float32), 8)                      # small runs go ahead


def test_progress_is_off_by_default_and_per_image_when_asked(capsys):
    net = two_class_net()
    x = np.tile(X, (30, 1))
    a = simulate(net, x, 5)
    assert capsys.readouterr().err == ""
    b = simulate(net, x, 5, progress=True, batch_size=7)
    err = capsys.readouterr().err
    assert "simulate" in err and f"{len(x)}/{len(x)}" in err and "img" in err
    np.testing.assert_array_equal(a.outputs, b.outputs)   # chunking does not change results
    assert a.total_synops() == b.total_synops()


# --- errors of unsupported models -----------------------------------------------------------


def test_graph_unsupported_op_error_names_node_and_op():
    with pytest.raises(UnsupportedModelError) as e:
        Graph([Node("act", "sigmoid", ("input",))], (4,))
    assert isinstance(e.value, ValueError)
    assert (e.value.node, e.value.op) == ("act", "sigmoid")


# --- files by content -----------------------------------------------------------------------


def test_files_are_recognised_by_content(tmp_path):
    g = tiny_graph()
    g.save(tmp_path / "model.bin")
    two_class_net().save(tmp_path / "net.weird")
    np.savez(tmp_path / "data", x=np.zeros((2, 4)), y=np.zeros(2, int))
    (tmp_path / "random.npz").write_bytes(np.random.default_rng(0).bytes(500))
    assert file_kind(tmp_path / "model.bin") == "graph"
    assert file_kind(tmp_path / "net.weird") == "network"
    assert file_kind(tmp_path / "data.npz") == "data"
    assert file_kind(tmp_path / "random.npz") == "unknown"
    assert file_kind(tmp_path) == "folder"
    with pytest.raises(FileNotFoundError):
        file_kind(tmp_path / "nope")


def test_onnx_is_recognised_without_its_suffix(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    model = helper.make_model(helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])]))
    onnx.save(model, tmp_path / "model")
    assert file_kind(tmp_path / "model") == "onnx"
