"""eventsnn.testing: its documented example runs, its checkers fail on broken results, and the
checkers work without Hypothesis while the strategies say how to install it."""

import doctest
import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import eventsnn.testing as et
from eventsnn.engine import simulate
from eventsnn.pooling import lipool, maxgate
from eventsnn.testing import checks


def test_module_example_runs():
    result = doctest.testmod(et, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def _case():
    """A fixed dyadic network (drawn once from the strategy) and its inputs."""
    from hypothesis import find

    return find(et.networks_and_inputs(), lambda c: len(c[0].populations) >= 3
                and any(p.kind == "if" and p.burst > 1 for p in c[0].populations))


def test_checkers_pass_on_engine_results_and_fail_on_tampered_ones():
    net, x, T = _case()
    ref, fast = et.check_engines_agree(net, x, T)
    et.check_synops(net, ref)
    et.check_burst_bounds(net, ref)

    bad = simulate(net, x, T, progress=False, record=et.ALL_RECORDS)
    bad.outputs[-1, 0, 0] += np.float32(2.0 ** -8)
    with pytest.raises(AssertionError):
        et.assert_results_equal(fast, bad)

    conn = net.connections[-1]
    ref.synops[conn.name][-1] += 1
    with pytest.raises(AssertionError, match=conn.name):
        et.check_synops(net, ref)

    pop = next(p for p in net.populations if p.kind == "if")
    ref.records["trains"][pop.name][0, 0, 0] = pop.burst + 1  # a burst above Γ
    with pytest.raises(AssertionError):
        et.check_burst_bounds(net, ref)


def test_max_recovery_checker_separates_lipool_from_maxgate():
    counts = np.zeros((2, 1, 2, 2), np.int64)
    counts[0, 0, 0, 0] = 2                       # step 1: element 0 fires twice
    counts[1, 0, 1, 1] = 3                       # step 2: element 3 fires three times
    et.check_max_recovery(counts, lipool(counts, 2), 2)
    # max-gate passes element 0's spikes at step 1 and element 3's at step 2: 5 > max = 3
    with pytest.raises(AssertionError):
        et.check_max_recovery(counts, maxgate(counts, 2), 2)


def test_checkers_need_no_hypothesis_and_strategies_name_the_extra():
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import eventsnn.testing as et\n"
        "assert callable(et.check_max_recovery)\n"
        "try:\n"
        "    et.spiking_networks\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert "pip install eventsnn[test]" in out.stdout


def test_strategies_are_exported_lazily():
    assert "spiking_networks" in et.__all__
    strategies = importlib.import_module("eventsnn.testing.strategies")
    assert et.spiking_networks is strategies.spiking_networks
    assert checks.check_synops is et.check_synops
    with pytest.raises(AttributeError):
        et.no_such_name  # noqa: B018
