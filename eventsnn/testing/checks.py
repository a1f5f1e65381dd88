"""Checkers of the simulator's invariants (docs/design.md, "Simulation semantics").

Each ``check_*`` function recomputes an invariant independently of the engines from their
results (and the per-neuron spike trains, ``record=("trains",)``) and raises
``AssertionError`` naming what differs. All comparisons are exact: counts are integers.
They need only numpy, not Hypothesis.
"""

from __future__ import annotations

import numpy as np

from ..network import INPUT
from ..pooling import pool_geometry

__all__ = ["assert_results_equal", "check_engines_agree", "check_synops", "check_burst_bounds",
           "check_max_recovery", "ALL_RECORDS"]

ALL_RECORDS = ("trains", "neuron_counts", "potential")


def assert_results_equal(a, b):
    """Assert that two :class:`~eventsnn.engine.SimResult` are identical.

    Same ``T``, number of images and input MACs; bit-identical float32 outputs; the same
    populations/connections in the same order with identical int64 ``spikes``, ``events``,
    ``synops`` and ``burst_hist``; identical per-neuron records.

    Raises
    ------
    AssertionError
        Naming the first field that differs.
    """
    assert (a.T, a.n_images, a.input_macs) == (b.T, b.n_images, b.input_macs)
    assert a.outputs.dtype == b.outputs.dtype == np.float32
    np.testing.assert_array_equal(a.outputs, b.outputs)
    for field in ("spikes", "events", "synops", "burst_hist"):
        da, db = getattr(a, field), getattr(b, field)
        assert list(da) == list(db), field
        for k in da:
            assert da[k].dtype == db[k].dtype == np.int64, (field, k)
            np.testing.assert_array_equal(da[k], db[k], err_msg=f"{field}[{k}]")
    assert set(a.records) == set(b.records)
    for kind in a.records:
        assert list(a.records[kind]) == list(b.records[kind]), kind
        for k in a.records[kind]:
            ra, rb = a.records[kind][k], b.records[kind][k]
            assert ra.dtype == rb.dtype and ra.shape == rb.shape, (kind, k)
            np.testing.assert_array_equal(ra, rb, err_msg=f"records[{kind}][{k}]")


def check_engines_agree(net, x, T, **kwargs):
    """Simulate with both engines and assert that they agree exactly.

    Exact agreement is required where float arithmetic is exact and order-independent, e.g.
    on the dyadic networks of :func:`eventsnn.testing.spiking_networks` (docs/design.md).

    Parameters
    ----------
    net : SpikingNetwork
    x : numpy.ndarray
        Input batch ``(B, *net.input_shape)``.
    T : int
        Number of steps.
    **kwargs
        Passed to :func:`eventsnn.simulate` (``encoding``, ``seed``, ...).

    Returns
    -------
    (SimResult, SimResult)
        The reference and the numba result, both with every per-neuron record.
    """
    from ..engine import simulate

    ref = simulate(net, x, T, engine="reference", record=ALL_RECORDS, **kwargs)
    fast = simulate(net, x, T, engine="numba", progress=False, record=ALL_RECORDS, **kwargs)
    assert_results_equal(ref, fast)
    return ref, fast


def check_synops(net, result, input_trains=None):
    """Assert SynOps = Σ multiplicity × fan-out, per connection and step.

    Parameters
    ----------
    net : SpikingNetwork
    result : SimResult
        Simulated with ``record=("trains", ...)``.
    input_trains : numpy.ndarray, optional
        ``(T, B, N_input)`` spike counts of the input under a spiking input code (absolute
        values of :func:`eventsnn.engine.encoding.poisson_spikes`). None for direct coding:
        connections from the input then cost no SynOps and ``B × synapses`` MACs.

    Raises
    ------
    AssertionError
        A connection's SynOps, or the input MACs, differ from the count.
    """
    trains = dict(result.records["trains"])
    direct = input_trains is None
    if not direct:
        trains[INPUT] = np.asarray(input_trains, np.int64)
    for c in net.connections:
        fan = np.diff(c.to_csr().indptr)  # structural fan-out: the CSR row lengths
        if c.src == INPUT and direct:
            expect = np.zeros(result.T, np.int64)
        else:
            expect = (trains[c.src] * fan).sum(axis=(1, 2))
        np.testing.assert_array_equal(result.synops[c.name], expect, err_msg=c.name)
    macs = sum(c.to_csr().nnz for c in net.connections if c.src == INPUT)
    assert result.input_macs == (result.n_images * macs if direct else 0), result.input_macs


def check_burst_bounds(net, result):
    """Assert the spike bookkeeping of every spiking population, and 0 ≤ s ≤ Γ (Eq. 4).

    From the per-neuron trains (``record=("trains", ...)``): spikes and events per step are
    the sums and the non-zero counts of the trains, ``neuron_counts`` (when recorded) their
    sums over steps; every burst of an ``"if"`` (or NIR ``"lif"``, Γ = 1) population is at most its Γ and its
    ``burst_hist`` is the histogram of the non-zero trains.

    Raises
    ------
    AssertionError
        Naming the population.
    """
    for p in net.populations:
        if p.kind == "output":
            continue
        tr = result.records["trains"][p.name]
        np.testing.assert_array_equal(result.spikes[p.name], tr.sum(axis=(1, 2)), err_msg=p.name)
        np.testing.assert_array_equal(result.events[p.name], (tr > 0).sum(axis=(1, 2)),
                                      err_msg=p.name)
        if "neuron_counts" in result.records:
            np.testing.assert_array_equal(result.records["neuron_counts"][p.name], tr.sum(axis=0),
                                          err_msg=p.name)
        assert tr.min(initial=0) >= 0, p.name
        if p.kind in ("if", "lif"):
            assert tr.max(initial=0) <= p.burst, (p.name, int(tr.max()), p.burst)
            np.testing.assert_array_equal(
                result.burst_hist[p.name], np.bincount(tr[tr > 0], minlength=p.burst + 1),
                err_msg=p.name)


def check_max_recovery(counts, pooled, kernel_size, stride=None, padding=0):
    """Assert LIPooling's max recovery (Eq. 12) on spike-count tensors.

    At every step the cumulative output of each window equals the maximum over the window of
    the cumulative input counts (padding counts 0), computed here window by window.

    Parameters
    ----------
    counts : array_like of int, shape (T, C, H, W)
        Input spike counts per step.
    pooled : array_like of int, shape (T, C, Ho, Wo)
        Output counts of the pooling (e.g. :func:`eventsnn.pooling.lipool`, or the trains of a
        ``"lipool"`` population reshaped).
    kernel_size, stride, padding
        As in :func:`eventsnn.pooling.pool_geometry`.

    Raises
    ------
    AssertionError
        The cumulative outputs differ from the window maxima.
    """
    counts = np.asarray(counts, dtype=np.int64)
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (ho, wo) = pool_geometry(counts.shape, kernel_size,
                                                                   stride, padding)
    cum = np.pad(np.cumsum(counts, axis=0), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    expect = np.zeros(counts.shape[:2] + (ho, wo), dtype=np.int64)
    for i in range(ho):
        for j in range(wo):
            expect[:, :, i, j] = cum[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))
    np.testing.assert_array_equal(np.cumsum(np.asarray(pooled, np.int64), axis=0), expect)
