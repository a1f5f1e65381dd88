"""Convergence on the shipped model: with long T, SNN firing rates approach the normalised ANN
activations (Eq. 5) and the SNN's predictions approach the ANN's."""

import numpy as np
import pytest

import eventsnn
from eventsnn.datasets import default_model_path, load_shipped


@pytest.fixture(scope="module")
def shipped():
    try:
        path, _ = default_model_path()
    except FileNotFoundError:
        pytest.skip("shipped model not present")
    graph = eventsnn.load_graph(path)
    test, calib = load_shipped("test"), load_shipped("train")
    net = eventsnn.convert(graph, calib.x)
    x, y = test.x[::10], test.y[::10]          # 100 images, 10 per class
    return graph, net, x, y


def _rate_errors(net, acts, result, T):
    """Mean |rate - clip(a/λ, 0, Γ)| per spiking population (Γ·T is the most a neuron can fire)."""
    errors = {}
    for p in net.populations:
        if p.kind == "output":
            continue
        scale = np.asarray(p.scale, dtype=np.float64)
        if scale.ndim:
            scale = scale.reshape((-1,) + (1,) * (len(p.shape) - 1))
        target = np.clip(acts[p.name] / scale, 0, p.burst).reshape(len(result.outputs[0]), -1)
        rate = result.records["neuron_counts"][p.name] / T
        errors[p.name] = float(np.abs(rate - target).mean())
    return errors


def test_rates_and_predictions_converge_to_the_ann(shipped):
    graph, net, x, y = shipped
    acts = eventsnn.ann_activations(graph, net, x)
    ann_pred = graph.forward(x).argmax(axis=1)
    short = eventsnn.simulate(net, x, 32, record=("neuron_counts",), progress=False)
    long = eventsnn.simulate(net, x, 256, record=("neuron_counts",), progress=False)
    e_short = _rate_errors(net, acts, short, 32)
    e_long = _rate_errors(net, acts, long, 256)
    for name in e_short:
        # Soft reset keeps |Σ input − θ·spikes| bounded, so the rate error shrinks about as 1/T.
        assert e_long[name] < e_short[name], (name, e_short[name], e_long[name])
        if net.population(name).kind == "if":
            assert e_long[name] < 0.03, (name, e_long[name])
    agree_short = (short.predictions()[-1] == ann_pred).mean()
    agree_long = (long.predictions()[-1] == ann_pred).mean()
    assert agree_long >= agree_short and agree_long >= 0.98
    acc = long.accuracy(y)
    assert abs(acc[-1] - (ann_pred == y).mean()) <= 0.02
    # the output integrator approaches the ANN logits: U(T)/T -> logits (λ_out = 1)
    logits = graph.forward(x)
    err = np.abs(long.outputs[-1] / 256 - logits).mean() / np.abs(logits).mean()
    assert err < 0.1
