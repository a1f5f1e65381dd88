"""The reference engine: a plain-Python, event-by-event simulator (the oracle; small networks only).

It implements docs/design.md "Simulation semantics" as literally as possible and shares no code with
the numba engine except the input encoders (:mod:`eventsnn.engine.encoding`, so both engines
see the same input) and the connections' ``to_csr()`` export:

* One **global event queue** (``sortedcontainers.SortedList``) holds spike events
  ``(step, population order, neuron, multiplicity)``; the input image has population order -1.
* Within step ``t`` populations are updated in list order. Before population ``k`` updates,
  every queued event of step ``t`` from populations ``< k`` is popped, one at a time, and
  delivered along each outgoing connection's pre-synaptic CSR row (zero synaptic delay):
  ``I[target] += multiplicity * w``, costing ``|multiplicity| * row length`` SynOps.
* A :class:`~eventsnn.network.PoolConnection` synapse (source element ``i``, window ``w``) *is*
  the LIPool hidden unit ``h_{w,i}`` (Eq. 12) or the max-gate counter ``C_{w,i}`` (Eq. 11):
  events add to it, and the pooling population reads its windows column by column.

Every population is updated by the numpy step functions of :mod:`eventsnn.engine.steps`.
Arithmetic is float64 (exact for the dyadic test networks, where it agrees bit for bit
with the numba engine), except that the NIR neurons (``"lif"``, and ``"output"`` with
``dynamics``) keep float32 potentials and round their input ``I + b`` to float32, as the numba
engine does; results are cast to the :class:`SimResult` dtypes.
"""

from __future__ import annotations

import numpy as np
from sortedcontainers import SortedList

from ..network import INPUT, PoolConnection
from .encoding import (ENCODINGS, direct_currents, direct_macs_per_image, input_connections,
                       poisson_spikes, resolve_seed)
from .result import SimResult
from .steps import burst_if_step, integrator_step, lipool_step, maxgate_step, nir_step

SPIKING_KINDS = ("if", "lipool", "maxgate", "lif")


class _Synapses:
    """A connection exported once as pre-synaptic CSR rows."""

    def __init__(self, conn, order):
        m = conn.to_csr()
        self.conn = conn
        self.dst_order = order[conn.dst]
        self.indptr = m.indptr.astype(np.int64)
        self.indices = m.indices.astype(np.int64)
        self.weights = m.data.astype(np.float64)
        self.is_pool = isinstance(conn, PoolConnection)
        if self.is_pool:
            # Synapses of every window (CSR column). CSR entries are sorted by source row, so
            # each list is in increasing source index = row-major order inside the window
            # (max-gate ties go to the first).
            by_window = [[] for _ in range(m.shape[1])]
            for syn, window in enumerate(self.indices):
                by_window[window].append(syn)
            self.windows = [np.array(s, dtype=np.int64) for s in by_window]

    def row(self, neuron):
        """Synapse indices of pre-synaptic ``neuron``."""
        return np.arange(self.indptr[neuron], self.indptr[neuron + 1])


class _State:
    """Per-image state of one population."""

    def __init__(self, pop, n_synapses):
        n = pop.size
        self.current = np.zeros(n)                      # I(t), summed within the step
        # V ("if", "lif": from V(0)) or U ("output", from 0); float32 for the NIR neurons (see
        # module docstring)
        self.potential = pop.initial_potential().astype(
            np.float32 if pop.dynamics is not None else np.float64)
        self.params = pop.step_parameters() if pop.dynamics is not None else None
        self.hidden = np.zeros(n_synapses, np.int64)    # lipool h_{w,i} / maxgate C_{w,i}
        self.step_count = np.zeros(n_synapses, np.int64)  # maxgate s_{w,i}(t)


def simulate_reference(net, x, T, encoding="direct", seed=None, record=(), first_index=0):
    """Simulate ``net`` with the pure-Python event-queue engine.

    Parameters
    ----------
    net : SpikingNetwork
    x : ndarray, float32, shape (B, *net.input_shape)
        Validated input images (see :func:`eventsnn.simulate`, which calls this).
    T : int
        Number of steps.
    encoding : {"direct", "poisson"}
        Input coding (:mod:`eventsnn.engine.encoding`).
    seed : int or None
        Seed of Poisson coding (None: fresh entropy).
    record : tuple of str
        Per-neuron records, see :data:`eventsnn.engine.result.RECORD_KINDS`.
    first_index : int
        Position of ``x[0]`` in the whole simulated array (selects each image's Poisson stream).

    Returns
    -------
    SimResult
    """
    if encoding not in ENCODINGS:
        raise ValueError(f"unknown encoding {encoding!r}; choose one of {ENCODINGS}")
    x = np.ascontiguousarray(x, dtype=np.float32)
    B = len(x)
    pops = net.populations
    order = {p.name: k for k, p in enumerate(pops)}
    order[INPUT] = -1
    synapses = [_Synapses(c, order) for c in net.connections]
    outgoing = {name: [s for s in synapses if s.conn.src == name] for name in order}
    pool_in = {s.conn.dst: s for s in synapses if s.is_pool}
    spiking = [p for p in pops if p.kind in SPIKING_KINDS]
    direct = encoding == "direct"

    outputs = np.zeros((T, B, net.output.size), dtype=np.float32)
    spikes = {p.name: np.zeros(T, np.int64) for p in spiking}
    events = {p.name: np.zeros(T, np.int64) for p in spiking}
    synops = {s.conn.name: np.zeros(T, np.int64) for s in synapses}
    neurons = [p for p in pops if p.kind in ("if", "lif")]
    burst_hist = {p.name: np.zeros(p.burst + 1, np.int64) for p in neurons}
    trains = {p.name: np.zeros((T, B, p.size), np.int64) for p in spiking}
    potential = {p.name: np.zeros((B, p.size), np.float32) for p in neurons}

    currents = direct_currents(net, x) if direct else None
    in_spikes = None if direct else poisson_spikes(x, T, resolve_seed(seed), first_index).reshape(T, B, -1)

    for b in range(B):
        state = {p.name: _State(p, len(pool_in[p.name].indices) if p.name in pool_in else 0)
                 for p in pops}
        queue = SortedList()

        def deliver_until(key):
            """Pop and deliver, one at a time, every queued event ordered before ``key``."""
            while queue and queue[0] < key:
                t, k, neuron, mult = queue.pop(0)
                src = INPUT if k == -1 else pops[k].name
                for syn in outgoing[src]:
                    row = syn.row(neuron)
                    synops[syn.conn.name][t] += abs(mult) * len(row)
                    target = state[syn.conn.dst]
                    if syn.is_pool:
                        target.hidden[row] += mult
                        target.step_count[row] += mult
                    else:
                        np.add.at(target.current, syn.indices[row], mult * syn.weights[row])

        for t in range(T):
            for p in pops:
                st = state[p.name]
                st.current[:] = 0.0
                st.step_count[:] = 0
            if direct:
                for c in input_connections(net):
                    state[c.dst].current += currents[c.name][b]
            else:
                for neuron in np.flatnonzero(in_spikes[t, b]):
                    queue.add((t, -1, int(neuron), int(in_spikes[t, b, neuron])))

            for k, p in enumerate(pops):
                deliver_until((t, k))
                st = state[p.name]
                if p.kind == "output":
                    _update_neurons(p, st)
                    outputs[t, b] = st.potential
                    continue
                out = _update_spiking(p, st, pool_in.get(p.name))
                for neuron in np.flatnonzero(out):
                    queue.add((t, k, int(neuron), int(out[neuron])))
                trains[p.name][t, b] = out
                spikes[p.name][t] += int(out.sum())
                events[p.name][t] += int(np.count_nonzero(out))
                if p.name in burst_hist:
                    burst_hist[p.name] += np.bincount(out[out > 0], minlength=p.burst + 1)
            deliver_until((t + 1,))  # events nobody listens to (populations without targets)

        for p in neurons:
            potential[p.name][b] = state[p.name].potential

    records = {}
    if "trains" in record:
        records["trains"] = trains
    if "neuron_counts" in record:
        records["neuron_counts"] = {name: tr.sum(axis=0) for name, tr in trains.items()}
    if "potential" in record:
        records["potential"] = potential
    return SimResult(
        T=T, outputs=outputs, spikes=spikes, events=events, synops=synops,
        input_macs=B * direct_macs_per_image(net) if direct else 0,
        burst_hist=burst_hist, n_images=B, records=records,
    )


def _bias(p):
    return 0.0 if p.bias is None else p.bias.reshape(-1).astype(np.float64)


def _update_neurons(p, st):
    """One step of an "if", "lif" or "output" population; returns its spikes (int64) or None."""
    x = st.current + _bias(p)
    if p.dynamics is not None:
        leak, params = st.params
        return nir_step(st.potential, x.astype(np.float32), params, leak, p.kind == "lif")
    if p.kind == "output":
        return integrator_step(st.potential, x)
    return burst_if_step(st.potential, x, p.threshold, p.burst, p.v_max)


def _update_spiking(p, st, pool_syn):
    """One step of a spiking population; returns its spike counts (int64, one per neuron)."""
    if p.kind in ("if", "lif"):
        return _update_neurons(p, st)
    if p.kind == "lipool":
        return lipool_step(st.hidden, pool_syn.windows)
    return maxgate_step(st.hidden, st.step_count, pool_syn.windows)
