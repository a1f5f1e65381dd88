"""Programs are reused between simulate() calls on an unchanged network, rebuilt otherwise."""

import copy

import numpy as np
from hypothesis import HealthCheck, given, settings

from eventsnn.engine import simulate
from eventsnn.engine.numba_engine import NumbaProgram
from eventsnn.engine.program_cache import cached_program, network_fingerprint
from eventsnn.network import DenseConnection, IdentityConnection

from eventsnn.testing.strategies import networks_and_inputs

SETTINGS = settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _arrays(conn):
    return [v for v in vars(conn).values() if isinstance(v, np.ndarray) and v.size]


@SETTINGS
@given(case=networks_and_inputs())
def test_cache_hit_only_for_equal_content(case):
    net, x, T = case
    prog = cached_program(net)
    assert cached_program(net) is prog
    assert cached_program(copy.deepcopy(net)) is prog  # equal content, another object
    # any in-place change of a parameter or of a population setting is a new network
    conn = next(c for c in net.connections if _arrays(c))
    changed = copy.deepcopy(net)
    arr = _arrays(next(c for c in changed.connections if c.name == conn.name))[0]
    arr.reshape(-1)[0] += np.float32(0.5)
    assert network_fingerprint(changed) != network_fingerprint(net)
    assert cached_program(changed) is not prog
    changed = copy.deepcopy(net)
    changed.populations[0].threshold += 0.25
    assert network_fingerprint(changed) != network_fingerprint(net)


@SETTINGS
@given(case=networks_and_inputs())
def test_cached_program_runs_like_a_fresh_one(case):
    net, x, T = case
    simulate(net, x, T, progress=False)  # fills the cache
    a = simulate(net, x, T, progress=False)
    b = NumbaProgram(net).run(x, T)
    assert np.array_equal(a.outputs, b.outputs)
    for k in b.synops:
        assert np.array_equal(a.synops[k], b.synops[k])
    for k in b.spikes:
        assert np.array_equal(a.spikes[k], b.spikes[k])


def test_fingerprint_sees_the_connection_kind():
    scale = np.ones(3, np.float32)
    ident = IdentityConnection("a", "b", (3,), (3,), scale=scale)
    dense = DenseConnection("a", "b", (3,), (3,), weight=np.diag(scale))
    h = {network_fingerprint(type("N", (), {"input_shape": (3,), "populations": [],
                                             "connections": [c]})()) for c in (ident, dense)}
    assert len(h) == 2
