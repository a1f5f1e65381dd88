"""Property-based testing of the simulator: Hypothesis strategies and invariant checkers.

For people who test code against eventsnn (and for eventsnn's own tests):

* strategies (:mod:`eventsnn.testing.strategies`, need Hypothesis: ``pip install
  eventsnn[test]``): :func:`spiking_networks` (random small networks with every population
  and connection kind, weights that are multiples of 2⁻⁸ so that float sums are exact in any
  order), :func:`inputs`, :func:`networks_and_inputs`, :func:`spike_counts`,
  :func:`pooling_geometries`, :func:`pooling_cases`; :func:`dyadic` draws such arrays from a
  numpy generator;
* checkers (:mod:`eventsnn.testing.checks`, numpy only): :func:`check_engines_agree` (the
  numba and the reference engine give identical results), :func:`check_synops` (SynOps =
  Σ multiplicity × fan-out), :func:`check_burst_bounds` (0 ≤ s ≤ Γ and the spike
  bookkeeping), :func:`check_max_recovery` (LIPooling, Eq. 12), :func:`assert_results_equal`.

Examples
--------
>>> from hypothesis import given, settings
>>> from eventsnn import testing as et
>>> @settings(max_examples=20, deadline=None)
... @given(et.networks_and_inputs())
... def test_engines(case):
...     net, x, T = case
...     ref, _ = et.check_engines_agree(net, x, T)   # exact: dyadic arithmetic
...     et.check_synops(net, ref)
...     et.check_burst_bounds(net, ref)
>>> test_engines()

>>> from eventsnn.pooling import lipool
>>> @given(et.pooling_cases())
... def test_lipool(case):
...     counts, kernel, stride, padding = case
...     et.check_max_recovery(counts, lipool(counts, kernel, stride, padding),
...                           kernel, stride, padding)
>>> test_lipool()
"""

from .checks import (ALL_RECORDS, assert_results_equal, check_burst_bounds, check_engines_agree,
                     check_max_recovery, check_synops)

_STRATEGIES = ("Q", "MAX_T", "THRESHOLDS", "dyadic", "spiking_networks", "inputs",
               "networks_and_inputs", "pooling_geometries", "spike_counts", "pooling_cases")

__all__ = ["ALL_RECORDS", "assert_results_equal", "check_engines_agree", "check_synops",
           "check_burst_bounds", "check_max_recovery", *_STRATEGIES]


def __getattr__(name):
    # The strategies need Hypothesis (an optional extra): import them only when asked for,
    # so the checkers work without it and a missing Hypothesis gives a clear ImportError.
    if name in _STRATEGIES:
        from . import strategies

        return getattr(strategies, name)
    raise AttributeError(f"module 'eventsnn.testing' has no attribute {name!r}")
