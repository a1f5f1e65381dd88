"""The numba engine against the pure-Python reference engine, plus independent invariants.

Networks come from :mod:`eventsnn.testing` (dyadic weights, biases, inputs and thresholds), where
float arithmetic is exact and order-independent, so the two engines must agree bit for bit
(docs/design.md, "Simulation semantics").
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from eventsnn.engine import simulate
from eventsnn.engine.encoding import poisson_spikes
from eventsnn.network import INPUT
from eventsnn.pooling import lipool, maxgate
from eventsnn.testing import (ALL_RECORDS, MAX_T, assert_results_equal, check_burst_bounds,
                              check_engines_agree, check_synops, dyadic, networks_and_inputs)
from eventsnn.testing.strategies import with_v_init


@pytest.fixture
def one_thread():
    """Run the numba kernels on one thread: on a loaded machine the parallel kernels' thread
    hand-off costs milliseconds per call, which dominates these tiny networks (the parallel
    path, several images on several threads, is covered by the fixed examples)."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)
SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.function_scoped_fixture])


@settings(max_examples=200, **SETTINGS)
@given(case=networks_and_inputs())
def test_engines_agree_direct(one_thread, case):
    net, x, T = case
    ref, _ = check_engines_agree(net, x, T)
    check_counts(net, x, T, ref)


@settings(max_examples=100, **SETTINGS)
@given(case=networks_and_inputs(), seed=st.integers(0, 2**31))
def test_engines_agree_poisson(one_thread, case, seed):
    net, x, T = case
    ref, _ = check_engines_agree(net, x, T, encoding="poisson", seed=seed)
    check_counts(net, x, T, ref, seed=seed)


@settings(max_examples=100, **SETTINGS)
@given(case=networks_and_inputs(), seed=st.integers(0, 2**31), poisson=st.booleans())
def test_engines_agree_with_initial_potential(one_thread, case, seed, poisson):
    """Any dyadic V(0) in [0, θ) (scalar, per channel or per neuron): still bit-identical."""
    net, x, T = case
    net = with_v_init(net, seed)
    kw = {"encoding": "poisson", "seed": seed} if poisson else {}
    ref, _ = check_engines_agree(net, x, T, **kw)
    check_counts(net, x, T, ref, seed=kw.get("seed"))


@settings(max_examples=200, **SETTINGS)
@given(a=st.integers(0, 5 * 256), burst=st.integers(1, 5), T=st.integers(1, 64),
       half=st.booleans())
@example(a=240, burst=1, T=24, half=True)          # error equal to the bound 1/(2T)
def test_rate_error_of_constant_input(one_thread, a, burst, T, half):
    """A burst IF neuron (θ = 1) driven by a constant dyadic current ``a ≤ Γ`` (below the cap)
    fires ``floor(V(0) + aT)`` spikes: rate error ``≤ 1/(2T)`` from ``V(0) = 1/2`` (rounding),
    ``< 1/T`` from 0 (flooring). Exact: dyadic sums of at most 64 terms are exact in float32,
    and the error is compared in rational arithmetic (it can equal the bound, e.g. a = 15/16,
    T = 24: 23 spikes, error exactly 1/48)."""
    from eventsnn.network import DenseConnection, Population, SpikingNetwork

    a_256 = min(a, 256 * burst)
    a = a_256 / 256
    v0 = 0.5 if half else 0.0
    net = SpikingNetwork((1,), [Population("p", (1,), "if", burst=burst, v_init=v0),
                                Population("out", (1,), "output")],
                         [DenseConnection(INPUT, "p", (1,), (1,), weight=np.ones((1, 1))),
                          DenseConnection("p", "out", (1,), (1,), weight=np.ones((1, 1)))])
    x = np.full((1, 1), a, np.float32)
    for engine in ("reference", "numba"):
        n = simulate(net, x, T, engine=engine, progress=False).spikes["p"].sum()
        assert n == np.floor(v0 + a * T)
        err = abs(Fraction(int(n), T) - Fraction(a_256, 256))    # exact: the bound is reached
        assert err <= Fraction(1, 2 * T) if half else err < Fraction(1, T)


@settings(max_examples=50, **SETTINGS)
@given(case=networks_and_inputs(max_batch=4))
def test_numba_batches_are_independent(one_thread, case):
    """Splitting the batch (batch_size=1) changes nothing, Poisson streams included."""
    net, x, T = case
    for kw in ({}, {"encoding": "poisson", "seed": 7}):
        whole = simulate(net, x, T, progress=False, record=ALL_RECORDS, **kw)
        split = simulate(net, x, T, progress=False, record=ALL_RECORDS, batch_size=1, **kw)
        assert_results_equal(whole, split)


def check_counts(net, x, T, res, seed=None):
    """Invariants computed independently of both engines from the per-neuron trains.

    - SynOps per connection and step == Σ multiplicity × fan-out (row lengths of to_csr());
      direct input costs MACs == B × synapses of the input connections, not SynOps
      (:func:`eventsnn.testing.check_synops`).
    - spikes / events / burst_hist / neuron_counts are the sums of the trains, bursts ≤ Γ
      (:func:`eventsnn.testing.check_burst_bounds`).
    - pooling populations' trains == eventsnn.pooling applied to their source's trains.
    - charge conservation of every IF neuron (Eq. 2-4, soft reset):
      V(T) + θ · Σ_t s(t) == V(0) + Σ_t (I(t) + b) (not for the NIR neurons: hard reset and leak).
    - NIR IF/LIF neurons emit at most one spike per step.
    """
    B = len(x)
    trains = dict(res.records["trains"])
    if seed is not None:
        trains[INPUT] = np.abs(poisson_spikes(x, T, seed).reshape(T, B, -1)).astype(np.int64)
    check_synops(net, res, None if seed is None else trains[INPUT])
    check_burst_bounds(net, res)

    for p in net.populations:
        if p.kind not in ("lipool", "maxgate"):
            continue
        tr = res.records["trains"][p.name]
        src = net.population(p.pool["source"])
        counts = res.records["trains"][src.name].reshape((T * B,) + src.shape)
        pool = {"lipool": lipool, "maxgate": maxgate}[p.kind]
        per_image = [pool(counts.reshape((T, B) + src.shape)[:, b], p.pool["kernel"],
                          p.pool["stride"], p.pool["padding"]) for b in range(B)]
        np.testing.assert_array_equal(tr, np.stack(per_image, axis=1).reshape(T, B, -1),
                                      err_msg=p.name)

    direct = seed is None
    for p in net.populations:
        if p.kind not in ("if", "output") or p.dynamics is not None:
            continue
        charge = np.broadcast_to(p.initial_potential().astype(np.float64), (B, p.size)).copy()
        if p.bias is not None:
            charge += T * p.bias.reshape(-1).astype(np.float64)
        for c in net.incoming(p.name):
            if c.src == INPUT and direct:
                charge += T * c.apply(x).astype(np.float64)
            else:
                total = trains[c.src] if c.src != INPUT else poisson_spikes(x, T, seed).reshape(T, B, -1)
                charge += c.to_csr().T.dot(total.sum(axis=0).astype(np.float64).T).T
        if p.kind == "if":
            fired = res.records["neuron_counts"][p.name] * np.float64(p.threshold)
            np.testing.assert_array_equal(res.records["potential"][p.name] + fired, charge,
                                          err_msg=p.name)
        else:
            np.testing.assert_array_equal(res.outputs[-1], charge, err_msg=p.name)


@pytest.mark.parametrize("encoding", ["direct", "poisson"])
@pytest.mark.parametrize("T", [1, MAX_T])
def test_engines_agree_on_fixed_example(one_thread, T, encoding):
    """A deterministic example exercising every population kind (failures reproduce trivially)."""
    net = _fixed_net()
    x = dyadic(np.random.default_rng(3), (5,) + net.input_shape, -256, 256)
    seed = 11 if encoding == "poisson" else None
    ref, _ = check_engines_agree(net, x, T, encoding=encoding, seed=seed)
    check_counts(net, x, T, ref, seed=seed)
    if T == MAX_T:  # the example is meant to exercise every population
        assert all(ref.spikes[p.name].sum() > 0 for p in net.populations[:-1]), ref.spikes


def test_parallel_batches_agree():
    """Several images on the default number of threads (prange over images) and split batches."""
    net = _fixed_net()
    x = dyadic(np.random.default_rng(4), (5,) + net.input_shape, -256, 256)
    _, fast = check_engines_agree(net, x, 6, encoding="poisson", seed=5)
    split = simulate(net, x, 6, progress=False, record=ALL_RECORDS, batch_size=2, encoding="poisson",
                     seed=5)
    assert_results_equal(fast, split)


def _fixed_net():
    from eventsnn.network import (ConvConnection, DenseConnection, IdentityConnection,
                                  PoolConnection, Population, SpikingNetwork)
    rng = np.random.default_rng(0)
    pops = [
        Population("c1", (2, 5, 5), "if", burst=3, bias=dyadic(rng, (2, 5, 5), 0, 64)),
        Population("c2", (2, 5, 5), "if", threshold=0.75, burst=2),
        Population("c3", (2, 5, 5), "if", burst=5),
        Population("lp", (2, 2, 2), "lipool", pool={"source": "c3", "kernel": [3, 3],
                                                   "stride": [2, 2], "padding": [0, 0, 0, 0]}),
        Population("mg", (2, 3, 3), "maxgate", pool={"source": "c1", "kernel": [2, 2],
                                                    "stride": [2, 2], "padding": [1, 1, 0, 0]}),
        # 1x1 "pool" of a pool with padding 1: its border windows lie entirely in the padding
        Population("lp2", (2, 5, 5), "lipool", pool={"source": "mg", "kernel": [1, 1],
                                                    "stride": [1, 1], "padding": [1, 1, 1, 1]}),
        Population("out", (3,), "output"),
    ]
    conns = [
        ConvConnection(INPUT, "c1", (1, 5, 5), (2, 5, 5), weight=dyadic(rng, (2, 1, 3, 3), 0, 64),
                       padding=[1, 1, 1, 1]),
        ConvConnection("c1", "c2", (2, 5, 5), (2, 5, 5), weight=dyadic(rng, (2, 2, 3, 3), -32, 128),
                       padding=[1, 1, 1, 1]),
        ConvConnection("c2", "c3", (2, 5, 5), (2, 5, 5), weight=dyadic(rng, (2, 2, 1, 1), 0, 256)),
        IdentityConnection("c1", "c3", (2, 5, 5), (2, 5, 5), scale=np.array([0.5, 1.0], np.float32)),
        PoolConnection("c3", "lp", (2, 5, 5), (2, 2, 2), kernel=[3, 3], stride=[2, 2]),
        PoolConnection("c1", "mg", (2, 5, 5), (2, 3, 3), kernel=[2, 2], stride=[2, 2],
                       padding=[1, 1, 0, 0]),
        DenseConnection("lp", "out", (2, 2, 2), (3,), weight=dyadic(rng, (3, 8), -64, 64)),
        DenseConnection("mg", "out", (2, 3, 3), (3,), weight=dyadic(rng, (3, 18), -64, 64)),
        PoolConnection("mg", "lp2", (2, 3, 3), (2, 5, 5), kernel=[1, 1], stride=[1, 1],
                       padding=[1, 1, 1, 1]),
        DenseConnection("lp2", "out", (2, 5, 5), (3,), weight=dyadic(rng, (3, 50), -64, 64)),
    ]
    return SpikingNetwork((1, 5, 5), pops, conns)
