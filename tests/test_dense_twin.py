"""The dense PyTorch baseline of the benchmarks (benchmarks/dense_torch.py) simulates the same SNN.

On random dyadic networks (eventsnn.testing: float sums exact in any order) the dense,
clock-driven torch simulation and the event-driven numba engine must give identical output
potentials at every step, so benchmark timings compare the same computation.
"""

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventsnn.engine import simulate
from eventsnn.testing import networks_and_inputs
from eventsnn.testing.strategies import with_v_init

torch = pytest.importorskip("torch")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from dense_torch import DenseTorchSNN, best_batch_size  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=networks_and_inputs(), v_init_seed=st.none() | st.integers(0, 2**31))
def test_dense_twin_matches_event_engine(case, v_init_seed):
    net, x, T = case
    if v_init_seed is not None:  # random dyadic V(0) in [0, θ)
        net = with_v_init(net, v_init_seed)
    r = simulate(net, x, T, engine="numba", progress=False)
    for channels_last in (False, True):
        out = DenseTorchSNN(net, channels_last=channels_last).run(x, T).numpy()
        np.testing.assert_array_equal(out, r.outputs)


def test_best_batch_size_reports_a_candidate():
    from eventsnn.network import (ConvConnection, DenseConnection, Population,
                                  SpikingNetwork)

    rng = np.random.default_rng(0)
    pops = [Population("a", (4, 6, 6), "if", burst=2), Population("out", (3,), "output")]
    conns = [ConvConnection("input", "a", (1, 6, 6), (4, 6, 6),
                            weight=rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32),
                            padding=[1, 1, 1, 1]),
             DenseConnection("a", "out", (4, 6, 6), (3,),
                             weight=rng.normal(0, 0.1, (3, 144)).astype(np.float32))]
    net = SpikingNetwork((1, 6, 6), pops, conns)
    x = rng.normal(size=(8, 1, 6, 6)).astype(np.float32)
    bs, cl, table = best_batch_size(net, x, 4, candidates=(1, 4), rounds=2)
    assert (bs, cl) in {(r[0], r[1]) for r in table} and len(table) == 4
    assert all(r[2] > 0 for r in table)
