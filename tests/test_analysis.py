"""Tests of eventsnn.analysis on hand-checkable networks whose every figure is known."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventsnn.analysis import (Analysis, analyze, analyze_simulation, firing_rates,
                               normalised_activations, settle_steps)
from eventsnn.engine.result import SimResult, concatenate
from eventsnn.graph import Graph, Node
from eventsnn.network import (DenseConnection, IdentityConnection, PoolConnection, Population,
                              SpikingNetwork)


def _i64(*v):
    return np.array(v, dtype=np.int64)


# --------------------------------------------------------------------------------------
# hand-built cases
# --------------------------------------------------------------------------------------


def if_case(gamma=2):
    """One burst-IF neuron driven by a constant current 2.75 through a weight-1 synapse."""
    g = Graph([Node("fc1", "linear", ("input",), params={"weight": np.ones((1, 1))}),
               Node("relu1", "relu", ("fc1",)),
               Node("fc2", "linear", ("relu1",), params={"weight": np.ones((1, 1))})], (1,))
    net = SpikingNetwork((1,), [
        Population("h", (1,), "if", burst=gamma, ann_node="relu1", scale=np.float32(1)),
        Population("out", (1,), "output", ann_node="fc2", scale=np.float32(1))],
        [DenseConnection("input", "h", (1,), (1,), weight=np.ones((1, 1))),
         DenseConnection("h", "out", (1,), (1,), weight=np.ones((1, 1)))])
    return g, net


def if_result(x=2.75, gamma=2, T=8):
    """Hand simulation of :func:`if_case`: V += x; s = clip(floor(V), 0, Γ); V -= s."""
    v, s_list = 0.0, []
    for _ in range(T):
        v += x
        s = int(min(max(math.floor(v), 0), gamma))
        v -= s
        s_list.append(s)
    s_arr = np.array(s_list, dtype=np.int64)
    hist = np.bincount(s_arr[s_arr > 0], minlength=gamma + 1).astype(np.int64)
    return SimResult(T=T, outputs=np.cumsum(s_arr).astype(np.float32).reshape(T, 1, 1),
                     spikes={"h": s_arr}, events={"h": (s_arr > 0).astype(np.int64)},
                     synops={"input->h": np.zeros(T, np.int64), "h->out": s_arr.copy()},
                     input_macs=1, burst_hist={"h": hist}, n_images=1,
                     records={"neuron_counts": {"h": _i64([s_arr.sum()])},
                              "potential": {"h": np.array([[v]], np.float32)}})


def sin_case():
    """Two IF neurons A (current 0.25) and B (0.5) feed C with weights -2 and +1: the ANN
    activation of C is relu(-2·0.25 + 0.5) = 0, but B fires at t=2 before A (t=4), so C
    emits one spike of an inactivated neuron (SIN). The output has a bias (0, 0.3)."""
    g = Graph([Node("l1", "linear", ("input",), params={"weight": np.array([[0.25], [0.5]])}),
               Node("r1", "relu", ("l1",)),
               Node("l2", "linear", ("r1",), params={"weight": np.array([[-2.0, 1.0]])}),
               Node("r2", "relu", ("l2",)),
               Node("l3", "linear", ("r2",), params={"weight": np.array([[1.0], [0.0]]),
                                                     "bias": np.array([0.0, 0.3])})], (1,))
    one = np.float32(1)
    net = SpikingNetwork((1,), [
        Population("h1", (2,), "if", ann_node="r1", scale=one),
        Population("h2", (1,), "if", ann_node="r2", scale=one),
        Population("out", (2,), "output", bias=np.array([0.0, 0.3]), ann_node="l3", scale=one)],
        [DenseConnection("input", "h1", (1,), (2,), weight=np.array([[0.25], [0.5]])),
         DenseConnection("h1", "h2", (2,), (1,), weight=np.array([[-2.0, 1.0]])),
         DenseConnection("h2", "out", (1,), (2,), weight=np.array([[1.0], [0.0]]))])
    return g, net


def sin_result():
    """Hand simulation of :func:`sin_case` for x = 1, T = 4 (see its docstring).

    t=1: V_h1 = (.25, .5); t=2: B fires -> C gets +1 -> fires; t=3: nothing; t=4: A and B
    fire -> C gets -1 -> V_C = -1. U(t) = (cumulative C spikes, 0.3 t): predictions 1,0,0,1.
    """
    T = 4
    u = np.array([[0, 0.3], [1, 0.6], [1, 0.9], [1, 1.2]], np.float32).reshape(T, 1, 2)
    return SimResult(T=T, outputs=u,
                     spikes={"h1": _i64(0, 1, 0, 2), "h2": _i64(0, 1, 0, 0)},
                     events={"h1": _i64(0, 1, 0, 2), "h2": _i64(0, 1, 0, 0)},
                     synops={"input->h1": _i64(0, 0, 0, 0), "h1->h2": _i64(0, 1, 0, 2),
                             "h2->out": _i64(0, 2, 0, 0)},
                     input_macs=2, burst_hist={"h1": _i64(0, 3), "h2": _i64(0, 1)}, n_images=1,
                     records={"neuron_counts": {"h1": _i64([1, 2]), "h2": _i64([1])},
                              "potential": {"h1": np.zeros((1, 2), np.float32),
                                            "h2": np.array([[-1.0]], np.float32)}})


def pool_case(kind):
    """An IF layer (1, 2, 6) pooled 2x2/2 into three windows, then a dense output."""
    net = SpikingNetwork((1, 2, 6), [
        Population("h", (1, 2, 6), "if"),
        Population("p", (1, 1, 3), kind, pool={"source": "h", "kernel": [2, 2], "stride": [2, 2],
                                               "padding": [0, 0, 0, 0]}),
        Population("out", (3,), "output")],
        [IdentityConnection("input", "h", (1, 2, 6), (1, 2, 6)),
         PoolConnection("h", "p", (1, 2, 6), (1, 1, 3)),
         DenseConnection("p", "out", (1, 1, 3), (3,), weight=np.eye(3))])
    return net


def pool_result(out_counts, T=10):
    # windows: [[3, 5], [2, 0]] (max 5), [[4, 4], [1, 0]] (max 4), zeros (max 0)
    h = np.array([[3, 5, 4, 4, 0, 0], [2, 0, 1, 0, 0, 0]], np.int64).reshape(1, -1)
    p = np.array([out_counts], np.int64)
    z = np.zeros(T, np.int64)
    return SimResult(T=T, outputs=np.zeros((T, 1, 3), np.float32),
                     spikes={"h": z + np.r_[h.sum(), np.zeros(T - 1, np.int64)],
                             "p": z + np.r_[p.sum(), np.zeros(T - 1, np.int64)]},
                     events={"h": z.copy(), "p": z.copy()},
                     synops={"input->h": z.copy(), "h->p": z.copy(), "p->out": z.copy()},
                     input_macs=12, burst_hist={"h": _i64(0, 0)}, n_images=1,
                     records={"neuron_counts": {"h": h, "p": p}})


# --------------------------------------------------------------------------------------
# settle steps
# --------------------------------------------------------------------------------------


def test_settle_steps_hand():
    pred = np.array([[1, 1, 0, 2], [0, 1, 0, 0], [0, 1, 0, 1], [1, 1, 0, 1]])
    assert settle_steps(pred).tolist() == [4, 1, 1, 3]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 2), min_size=3, max_size=3), min_size=1, max_size=12))
def test_settle_steps_property(rows):
    pred = np.array(rows)
    s = settle_steps(pred)
    for b in range(pred.shape[1]):
        t = s[b]
        assert 1 <= t <= len(pred)
        assert (pred[t - 1:, b] == pred[-1, b]).all()
        assert t == 1 or pred[t - 2, b] != pred[-1, b]


def test_settle_steps_rejects_bad_shape():
    with pytest.raises(ValueError, match="shape"):
        settle_steps(np.zeros(3))


# --------------------------------------------------------------------------------------
# one IF neuron with constant input: residual information exactly known
# --------------------------------------------------------------------------------------


def test_if_neuron_residual_information_gamma2():
    g, net = if_case(gamma=2)
    res = if_result(2.75, gamma=2, T=8)
    # hand: 2 spikes every step (the cap), V grows by 0.75 per step -> V(T) = 6
    assert res.records["neuron_counts"]["h"][0, 0] == 16
    assert res.records["potential"]["h"][0, 0] == 6.0
    rep = analyze(net, res, np.array([[2.75]], np.float32), np.array([0]), g).to_dict()
    (layer,) = rep["layers"]
    assert layer["firing_rate"] == 2.0 and layer["event_rate"] == 1.0
    assert layer["burst_factor"] == 2.0
    assert layer["burst_hist"] == [0, 0, 8]
    assert layer["gamma_event_share"] == 1.0
    assert layer["capped_share"] == 1.0 and layer["gamma_neuron_share_lower_bound"] == 1.0
    assert layer["silent_share"] == 0.0
    assert layer["gamma_neuron_share"] is None           # needs record="trains"
    (err,) = rep["errors"]
    assert err["mean_error"] == pytest.approx(-0.75) and err["mae"] == pytest.approx(0.75)
    assert err["rmse"] == pytest.approx(0.75)
    assert err["mae_reachable"] == 0.0                   # rate equals clip(a, 0, Γ) = 2
    assert err["above_gamma_share"] == 1.0
    assert err["ann_excess_rate"] == pytest.approx(0.75)
    # V(T) = 6: six whole spikes held back -> residual rate 6 / 8 = a - Γ
    assert err["residual_rate"] == pytest.approx(0.75)
    assert err["residual_share"] == 1.0
    assert err["mean_v_above_threshold"] == pytest.approx(5.0)
    assert err["mean_final_v"] == pytest.approx(6.0)
    assert err["sin_spikes"] == 0 and err["inactive_share"] == 0.0
    assert err["inactive_firing_share"] is None and err["sin_rate"] is None
    # output U(T)/T = 16/8 = 2 against the ANN output 2.75
    assert rep["output_error"]["mae"] == pytest.approx(0.75)
    assert rep["accuracy"]["snn_per_step"] == [1.0] * 8 and rep["accuracy"]["ann"] == 1.0


def test_if_neuron_without_residual_when_gamma_suffices():
    g, net = if_case(gamma=3)
    res = if_result(2.75, gamma=3, T=8)
    assert res.records["neuron_counts"]["h"][0, 0] == 22 and res.records["potential"]["h"][0, 0] == 0
    (err,) = analyze(net, res, np.array([[2.75]], np.float32), None, g).to_dict()["errors"]
    assert err["mae"] == pytest.approx(0.0) and err["above_gamma_share"] == 0.0
    assert err["residual_rate"] == 0.0 and err["mean_v_above_threshold"] == 0.0


def test_firing_rates_function():
    _, net = if_case(2)
    assert firing_rates(net, if_result(2.75, 2, 8)) == {"h": 2.0}
    _, net = sin_case()
    assert firing_rates(net, sin_result()) == {"h1": 3 / 8, "h2": 1 / 4}


# --------------------------------------------------------------------------------------
# spikes of inactivated neurons
# --------------------------------------------------------------------------------------


def test_sin_hand_network():
    g, net = sin_case()
    x = np.ones((1, 1), np.float32)
    acts = g.forward(x, return_all=True)
    assert acts["r2"][0, 0] == 0.0                       # C is inactive in the ANN
    rep = analyze(net, sin_result(), x, np.array([1]), g).to_dict()
    errs = {e["name"]: e for e in rep["errors"]}
    assert errs["h1"]["mae"] == 0.0 and errs["h1"]["sin_spikes"] == 0   # rates 1/4, 2/4 exact
    c = errs["h2"]
    assert c["sin_spikes"] == 1 and c["sin_share_of_spikes"] == 1.0
    assert c["inactive_share"] == 1.0 and c["inactive_firing_share"] == 1.0
    assert c["sin_rate"] == 0.25 and c["mean_error"] == 0.25
    assert c["mean_final_v"] == -1.0 and c["residual_rate"] == 0.0
    layers = {d["name"]: d for d in rep["layers"]}
    assert layers["h1"]["firing_rate"] == 3 / 8 and layers["h2"]["firing_rate"] == 1 / 4
    assert layers["h1"]["silent_share"] == 0.0
    assert layers["h1"]["neuron_rate_quantiles"]["max"] == 0.5
    # output: U(T)/T = (0.25, 0.3) vs ANN (0, 0.3)
    oe = rep["output_error"]
    assert oe["mae"] == pytest.approx(0.125) and oe["argmax_agreement_share"] == 1.0
    acc = rep["accuracy"]
    assert acc["snn_per_step"] == [1.0, 0.0, 0.0, 1.0] and acc["ann"] == 1.0
    assert acc["snn_best_step"] == 1
    assert rep["settle"]["mean_step"] == 4.0 and rep["settle"]["histogram"] == [0, 0, 0, 1]
    assert rep["settle"]["mean_step_correct"] == 4.0 and rep["settle"]["mean_step_wrong"] is None
    assert rep["missing"] == []


def test_normalised_activations_channelwise():
    pop = Population("p", (2, 1, 2), "if", scale=np.array([2.0, 0.0]))
    a = normalised_activations(pop, np.array([[[[4.0, 2.0]], [[5.0, 5.0]]]]))
    assert a.tolist() == [[2.0, 1.0, 0.0, 0.0]]          # λ = 0 channel -> 0
    with pytest.raises(ValueError, match="neurons"):
        normalised_activations(pop, np.zeros((1, 3)))


# --------------------------------------------------------------------------------------
# pooling error and correct ratio
# --------------------------------------------------------------------------------------


def test_pool_correct_ratio_maxgate_hand():
    net = pool_case("maxgate")
    rep = analyze(net, pool_result([5, 7, 0])).to_dict()
    (p,) = rep["pooling"]
    # d = (5-5, 7-4, 0-0) = (0, 3, 0) spikes over T = 10
    assert p["windows"] == 3 and p["positive_windows"] == 2
    assert p["correct_ratio"] == 0.5
    assert p["mean_error"] == pytest.approx(0.1) and p["mae"] == pytest.approx(0.1)
    assert p["max_error"] == pytest.approx(0.3)
    assert p["over_share"] == pytest.approx(1 / 3) and p["under_share"] == 0.0


def test_pool_correct_ratio_tolerance_is_one_spike():
    net = pool_case("lipool")
    # |d| = 1 spike = 1/T < 2/T: correct; |d| = 2 spikes = 2/T: not
    (p,) = analyze(net, pool_result([6, 6, 0])).to_dict()["pooling"]
    assert p["correct_ratio"] == 0.5 and p["under_share"] == 0.0
    (p,) = analyze(net, pool_result([5, 4, 0])).to_dict()["pooling"]
    assert p["correct_ratio"] == 1.0 and p["mae"] == 0.0 and p["max_error"] == 0.0


# --------------------------------------------------------------------------------------
# accumulation over batches
# --------------------------------------------------------------------------------------


def test_merge_equals_one_shot():
    g, net = if_case(2)
    xs = [2.75, 1.5, 0.0]
    results = [if_result(v, 2, 8) for v in xs]
    x = np.array(xs, np.float32).reshape(3, 1)
    y = np.array([0, 0, 0])
    whole = analyze(net, concatenate(results), x, y, g).to_dict()
    streamed = Analysis(net, g)
    for k, r in enumerate(results):
        streamed.add(r, x[k:k + 1], y[k:k + 1])
    merged = analyze(net, results[0], x[:1], y[:1], g).merge(
        analyze(net, concatenate(results[1:]), x[1:], y[1:], g))
    for other in (streamed.to_dict(), merged.to_dict()):
        _compare(other, whole)
    assert whole["n_images"] == 3
    layer = whole["layers"][0]
    assert layer["silent_share"] == pytest.approx(1 / 3)       # the x = 0 image
    assert layer["spikes"] == 16 + 12
    np.testing.assert_allclose(streamed.neuron_rates()["h"], [(16 + 12) / 24])


def _compare(a, b):
    if isinstance(a, dict):
        assert set(a) == set(b)
        for k in a:
            _compare(a[k], b[k])
    elif isinstance(a, list):
        assert len(a) == len(b)
        for u, v in zip(a, b):
            _compare(u, v)
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-12, abs=1e-12)
    else:
        assert a == b
    return True


def test_missing_records_are_reported_not_guessed():
    _, net = sin_case()
    res = sin_result()
    res.records = {}
    rep = analyze(net, res).to_dict()
    assert rep["errors"] == [] and rep["accuracy"] is None and rep["output_error"] is None
    layer = rep["layers"][0]
    assert "silent_share" not in layer and layer["firing_rate"] == 3 / 8
    assert any("neuron_counts" in m for m in rep["missing"])
    assert any("no labels" in m for m in rep["missing"])
    assert any("no graph" in m for m in rep["missing"])


def test_validation_messages():
    g, net = sin_case()
    res = sin_result()
    with pytest.raises(ValueError, match="one per simulated image"):
        analyze(net, res, None, np.array([0, 1]))
    with pytest.raises(TypeError, match="integer"):
        analyze(net, res, None, np.array([0.5]))
    with pytest.raises(ValueError, match="images"):
        analyze(net, res, np.ones((2, 1), np.float32), None, g)
    _, other = if_case(2)
    with pytest.raises(ValueError, match="network"):
        analyze(other, res)
    with pytest.raises(TypeError, match="SimResult"):
        analyze(net, {"T": 4})
    an = analyze(net, res)
    longer = sin_result()
    longer.T = 5
    with pytest.raises(ValueError, match="different T"):
        an.add(longer)
    with pytest.raises(ValueError, match="nothing was accumulated"):
        Analysis(net).to_dict()


# --------------------------------------------------------------------------------------
# integration with the simulator (reference engine: exact arithmetic, dyadic weights)
# --------------------------------------------------------------------------------------


@pytest.fixture(params=["reference", "numba"])
def engine(request):
    """Each engine in turn."""
    return request.param


@pytest.fixture
def simulate():
    from eventsnn.engine import simulate as sim

    return sim



def _records_equal(a, b):
    for kind in b.records:
        for pop in b.records[kind]:
            np.testing.assert_array_equal(a.records[kind][pop], b.records[kind][pop])


def test_engine_reproduces_hand_sin_result(simulate, engine):
    g, net = sin_case()
    res = simulate(net, np.ones((1, 1), np.float32), 4, engine=engine,
                   record=("neuron_counts", "potential"))
    hand = sin_result()
    for k in ("spikes", "events", "synops", "burst_hist"):
        for name, v in getattr(hand, k).items():
            np.testing.assert_array_equal(getattr(res, k)[name], v, err_msg=f"{k}[{name}]")
    assert res.input_macs == hand.input_macs
    _records_equal(res, hand)
    np.testing.assert_allclose(res.outputs, hand.outputs, rtol=1e-6)
    rep = analyze(net, res, np.ones((1, 1), np.float32), np.array([1]), g).to_dict()
    assert {e["name"]: e["sin_spikes"] for e in rep["errors"]} == {"h1": 0, "h2": 1}


@pytest.mark.parametrize("gamma", [2, 3])
def test_engine_reproduces_hand_if_result(simulate, gamma, engine):
    g, net = if_case(gamma)
    res = simulate(net, np.array([[2.75]], np.float32), 8, engine=engine,
                   record=("neuron_counts", "potential", "trains"))
    hand = if_result(2.75, gamma, 8)
    _records_equal(res, hand)
    rep = analyze(net, res, np.array([[2.75]], np.float32), None, g).to_dict()
    layer = rep["layers"][0]
    assert layer["gamma_neuron_share"] == 1.0          # exact from trains
    assert rep["errors"][0]["residual_rate"] == (0.75 if gamma == 2 else 0.0)


def test_engine_pooling_error_maxgate_vs_lipool(simulate, engine):
    # window 1: b = 0.375 (index 0) and a = 0.5 (index 1) -> the max-gate switches winners
    x = np.zeros((1, 1, 2, 6), np.float32)
    x[0, 0, 0, :2] = [0.375, 0.5]
    x[0, 0, 0, 2:4] = [0.25, 0.75]
    x[0, 0, 1, 4:6] = [1.0, 0.125]
    T = 16
    reps = {}
    for kind in ("maxgate", "lipool"):
        res = simulate(pool_case(kind), x, T, engine=engine, record=("neuron_counts",))
        (reps[kind],) = analyze(pool_case(kind), res).to_dict()["pooling"]
    assert reps["lipool"]["mae"] == 0.0 and reps["lipool"]["correct_ratio"] == 1.0
    assert reps["maxgate"]["under_share"] == 0.0          # Eq. 11: never below the max
    assert reps["maxgate"]["max_error"] > 0.0


def test_analyze_simulation_batches_equal_one_shot(simulate, engine):
    g, net = if_case(2)
    x = np.array([[2.75], [1.5], [0.25], [3.5], [0.0]], np.float32)
    y = np.zeros(5, np.int64)
    whole = analyze(net, simulate(net, x, 8, engine=engine,
                                  record=("neuron_counts", "potential")), x, y, g)
    streamed = analyze_simulation(net, x, 8, y, g, batch_size=2, engine=engine)
    _compare(streamed.to_dict(), whole.to_dict())


@pytest.mark.parametrize("gamma, spikes, v_final, residual", [(2, 16, 6.5, 0.75), (3, 22, 0.5, 0.0)])
def test_residual_information_with_initial_potential(gamma, spikes, v_final, residual):
    """V(0) = θ/2: charge V(0) + 8·2.75 = 22.5 = n + V(T); the residual counts only whole spikes
    held back by the cap Γ (V(T) ≥ θ), not the half spike V(0) added."""
    from eventsnn.engine import simulate

    g, net = if_case(gamma)
    net.populations[0].v_init = np.float32(0.5)
    x = np.array([[2.75]], np.float32)
    for engine in ("reference", "numba"):
        res = simulate(net, x, 8, engine=engine, progress=False,
                       record=("neuron_counts", "potential"))
        assert res.records["neuron_counts"]["h"][0, 0] == spikes
        assert res.records["potential"]["h"][0, 0] == v_final
        (err,) = analyze(net, res, x, np.array([0]), g).to_dict()["errors"]
        assert err["residual_rate"] == pytest.approx(residual)
        assert err["mean_final_v"] == pytest.approx(v_final)
        assert rep_settle(net, res) == 1


def rep_settle(net, res):
    return int(analyze(net, res).settle_steps()[0])
