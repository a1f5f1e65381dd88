"""The fast engine: event-driven simulation with Numba kernels (:mod:`eventsnn.kernels`).

Semantics are those of docs/design.md ("Simulation semantics"); see :func:`eventsnn.simulate`.
Per step, populations are updated in list order. Before a population is updated, the events
that each of its sources emitted in the same step (zero synaptic delay) are delivered through
the incoming connections into its input current; an ``"if"`` population then integrates,
fires bursts (Eq. 2-4) and writes a compact event list; pooling populations turn their
source's events into window events (Eq. 11, 12). Work per step is proportional to the number
of events times the fan-out, plus one pass over the neurons of every population that
integrates a current.

:class:`NumbaProgram` flattens the network once into integer/float tables (columns named in
:mod:`eventsnn.kernels.schema`); a batch then runs
in a single call of :func:`eventsnn.kernels.simulate.simulate_batch`, parallel over images.

Internal layout: populations of shape ``(C, H, W)`` are stored channel-last (``(H, W, C)``)
so that a conv event scatters a contiguous run of output channels; conv weights are stored
per stride phase ``(kh, C_in, kw reversed, C_out)`` (row scatter, :func:`~eventsnn.kernels.
synapses.conv_rows_image`, or the window sweep of :func:`~eventsnn.kernels.synapses.
conv3x3_image` for 3x3 convs with padding 1 and few output channels, see
:func:`window_sweep`), dense weights transposed ``(N_src, N_dst)``, sparse connections as CSR
rows or, with at most one synapse per source, as a target map. Conversions to and from the
public C-order layout happen only at the boundary (input currents, biases, records,
outputs). Memory is O(parameters + neurons × threads + outputs × batch), plus the per-neuron
records requested; conv layers are never materialised.
"""

from __future__ import annotations

import numba
import numpy as np

from ..kernels import schema as S
from ..kernels import simulate as K
from ..kernels import synapses
from ..network import (INPUT, ConvConnection, DenseConnection, IdentityConnection,
                       PoolConnection, SparseConnection, axis_taps)
from .encoding import direct_currents, direct_macs_per_image, poisson_spikes
from .result import SimResult


def internal_order(shape):
    """Public (C-order) index of every neuron in internal order.

    ``(C, H, W)`` populations are stored channel-last; other shapes keep C order.
    """
    n = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(n, dtype=np.int64)
    c, h, w = shape
    return np.arange(n, dtype=np.int64).reshape(c, h, w).transpose(1, 2, 0).ravel()


def to_internal(a, shape):
    """``a`` (..., N) with neurons in public order -> internal order (contiguous copy).

    Equals ``a[..., internal_order(shape)]``, as one transposing copy (no gather).
    """
    a = np.asarray(a)
    if len(shape) != 3:
        return a.copy()
    lead = a.shape[:-1]
    return np.moveaxis(a.reshape(lead + tuple(shape)), -3, -1).copy().reshape(a.shape)


def to_public(a, shape):
    """``a`` (..., N) with neurons in internal order -> public C order (contiguous copy).

    The inverse of :func:`to_internal`: ``out[..., internal_order(shape)] = a``.
    """
    a = np.asarray(a)
    if len(shape) != 3:
        return a.copy()
    c, h, w = shape
    lead = a.shape[:-1]
    return np.moveaxis(a.reshape(lead + (h, w, c)), -1, -3).copy().reshape(a.shape)


def scatter_table(n_in, n_out, kernel, stride, pad_begin):
    """For each input position along one axis, the output positions reading it and their taps.

    Returns ``ptr`` (n_in + 1), ``out``, ``tap`` (int64): input ``i`` is read by output
    ``out[k]`` through kernel tap ``tap[k]`` for ``k`` in ``ptr[i]:ptr[i+1]``.
    """
    pairs = [(int(i), int(o), k) for k, (os_, is_) in
             enumerate(axis_taps(n_in, n_out, kernel, stride, pad_begin))
             for o, i in zip(os_, is_)]
    pairs.sort()
    ptr = np.zeros(n_in + 1, dtype=np.int64)
    for i, _, _ in pairs:
        ptr[i + 1] += 1
    ptr = np.cumsum(ptr)
    out = np.array([o for _, o, _ in pairs], dtype=np.int64)
    tap = np.array([k for _, _, k in pairs], dtype=np.int64)
    return ptr, out, tap


def _window_tables(src_shape, dst_shape, kernel, stride, padding):
    _, h, w = src_shape
    _, ho, wo = dst_shape
    return (scatter_table(h, ho, kernel[0], stride[0], padding[0]),
            scatter_table(w, wo, kernel[1], stride[1], padding[1]))


def aligned_zeros(n, dtype):
    """Zeros ``(n,)`` whose first element lies on a 64-byte boundary (a cache line).

    The conv kernel loads weights and currents by vectors of
    :data:`~eventsnn.kernels.synapses.VECTOR` floats (64 bytes) at multiples of 64 bytes from
    the start of the arrays: aligned, none of them straddles two cache lines.
    """
    itemsize = np.dtype(dtype).itemsize
    raw = np.zeros(n + 64 // itemsize, dtype)
    skip = (-raw.ctypes.data % 64) // itemsize
    return raw[skip:skip + n]


class _Buffers:
    """Growing flat float32 / int64 buffers; ``add`` returns the offset of the added array.

    Float arrays start at multiples of :data:`~eventsnn.kernels.synapses.VECTOR` floats and the
    float buffer is 64-byte aligned (:func:`aligned_zeros`).
    """

    def __init__(self):
        self.floats, self.ints = [], []
        self.n_floats = self.n_ints = 0

    def add_float(self, a):
        a = np.ascontiguousarray(a, dtype=np.float32).ravel()
        pad = -self.n_floats % synapses.VECTOR
        if pad:
            self.floats.append(np.zeros(pad, np.float32))
            self.n_floats += pad
        self.floats.append(a)
        self.n_floats += a.size
        return self.n_floats - a.size

    def add_int(self, a):
        a = np.ascontiguousarray(a, dtype=np.int64).ravel()
        self.ints.append(a)
        self.n_ints += a.size
        return self.n_ints - a.size

    def arrays(self):
        f = aligned_zeros(self.n_floats + 1, np.float32)
        if self.floats:
            np.concatenate(self.floats, out=f[:self.n_floats])
        i = np.concatenate(self.ints) if self.ints else np.zeros(0, np.int64)
        return f, np.concatenate([i, np.zeros(1, np.int64)])


# population kinds whose event lists are in ascending neuron order (compacted from a pass over
# the neurons); pooling populations list theirs in window order
ASCENDING_EVENTS = ("if", "lif", "output")


def window_sweep(conn, ascending):
    """Whether ``conn`` is delivered by :func:`~eventsnn.kernels.synapses.conv3x3_image`.

    A 3x3 convolution with padding 1, stride 1 (output as large as the input) or 2 (output
    ``ceil(h / 2) x ceil(w / 2)``), ``C_out`` in
    :data:`~eventsnn.kernels.synapses.WINDOW_LANES` for its stride, from a source whose
    events come in ascending order (``ascending``); otherwise the row scatter is used.
    """
    if not (ascending and isinstance(conn, ConvConnection)
            and conn.weight.shape[2:] == (3, 3) and tuple(conn.padding[:2]) == (1, 1)):
        return False
    sh, sw = conn.stride
    _, h, w = conn.src_shape
    return (sh == sw and conn.weight.shape[0] in synapses.WINDOW_LANES.get(sh, ())
            and tuple(conn.dst_shape[1:]) == ((h - 1) // sh + 1, (w - 1) // sw + 1))


def _connection_row(conn, src, dst, buf, ascending=False):
    """The kernel table row of one connection (columns of :mod:`eventsnn.kernels.schema`);
    its arrays are appended to ``buf``. ``ascending``: the source lists its events in
    ascending order (:data:`ASCENDING_EVENTS`, or the input)."""
    common = dict(src=src, dst=dst, active=1, float=0,
                  fanout=buf.add_int(to_internal(conn.fan_out().astype(np.int64),
                                                 conn.src_shape)))
    if window_sweep(conn, ascending):
        common["float"] = buf.add_float(synapses.row_weight(conn.weight, conn.stride[1]))
        c, h, w = conn.src_shape
        return S.connection_row(S.CONN_CONV3X3, **common, c_in=c, h=h, w=w,
                                stride=conn.stride[0], c_out=conn.dst_shape[0])
    if isinstance(conn, ConvConnection):
        # row scatter: the taps of a kernel row (one phase of the stride) reach consecutive
        # output positions
        o, i, kh, kw = conn.weight.shape
        common["float"] = buf.add_float(synapses.row_weight(conn.weight, conn.stride[1]))
        return S.connection_row(
            S.CONN_CONV, **common, c_in=i, w_in=conn.src_shape[2], kh=kh, kw=kw,
            sh=conn.stride[0], sw=conn.stride[1], pt=conn.padding[0], pl=conn.padding[1],
            c_out=o, h_out=conn.dst_shape[1], w_out=conn.dst_shape[2])
    if isinstance(conn, DenseConnection):
        wt = conn.weight.T[internal_order(conn.src_shape)][:, internal_order(conn.dst_shape)]
        common["float"] = buf.add_float(wt)
        return S.connection_row(S.CONN_DENSE, **common, n_dst=conn.n_dst)
    if isinstance(conn, SparseConnection):
        m = conn.matrix[internal_order(conn.src_shape)]
        inv = np.empty(conn.n_dst, dtype=np.int64)
        inv[internal_order(conn.dst_shape)] = np.arange(conn.n_dst)
        rows = np.diff(m.indptr)
        if m.nnz and rows.max() == 1:  # one synapse per source at most: a target map
            has = rows == 1
            target = np.zeros(conn.n_src, np.int64)
            weight = np.zeros(conn.n_src, np.float32)
            target[has], weight[has] = inv[m.indices], m.data
            common["float"] = buf.add_float(weight)
            return S.connection_row(S.CONN_MAP, **common, targets=buf.add_int(target))
        common["float"] = buf.add_float(m.data)
        return S.connection_row(S.CONN_CSR, **common, indptr=buf.add_int(m.indptr),
                                indices=buf.add_int(inv[m.indices]))
    if isinstance(conn, IdentityConnection):
        common["float"] = buf.add_float(to_internal(conn.per_neuron_scale(), conn.src_shape))
        return S.connection_row(S.CONN_IDENTITY, **common)
    if isinstance(conn, PoolConnection):
        c, h, w = conn.src_shape
        ty, tx = _window_tables(conn.src_shape, conn.dst_shape, conn.kernel, conn.stride,
                                conn.padding)
        tables = dict(zip(("y_ptr", "y_out", "y_tap", "x_ptr", "x_out", "x_tap"),
                          (buf.add_int(t) for t in ty + tx)))
        return S.connection_row(
            S.CONN_POOL, **common, **tables, c=c, h_in=h, w_in=w, kh=conn.kernel[0],
            kw=conn.kernel[1], sh=conn.stride[0], sw=conn.stride[1], pt=conn.padding[0],
            pl=conn.padding[1], w_out=conn.dst_shape[2])
    # SpikingNetwork only builds the kinds above
    raise TypeError(f"connection {conn.name}: unsupported kind {conn.kind!r}")  # pragma: no cover


class NumbaProgram:
    """A :class:`~eventsnn.network.SpikingNetwork` compiled into flat kernel tables.

    Build once per network, then :meth:`run` batches of images. All populations are packed
    one after the other (internal layout) into the state arrays of a worker thread.
    """

    def __init__(self, net):
        self.net = net
        pops = list(net.populations)
        index = {p.name: k for k, p in enumerate(pops)}
        index[INPUT] = len(pops)
        self.offsets = np.concatenate([[0], np.cumsum([p.size for p in pops])]).astype(np.int64)
        self.n_tot = int(self.offsets[-1])
        self.n_in = int(np.prod(net.input_shape))
        buf = _Buffers()
        ascending = {p.name for p in pops if p.kind in ASCENDING_EVENTS} | {INPUT}
        self.conns = np.stack([_connection_row(c, index[c.src], index[c.dst], buf,
                                               c.src in ascending)
                               for c in net.connections])
        self.input_rows = [k for k, c in enumerate(net.connections) if c.src == INPUT]
        table = np.zeros((len(pops), S.P_NPARAM), dtype=np.int64)
        self.theta = np.array([p.threshold for p in pops], dtype=np.float32)
        self.v_max = np.array([np.inf if p.v_max is None else p.v_max for p in pops], dtype=np.float32)
        n_hist = n_lip = n_mg = 0
        inc_ptr, inc_conn = [0], []
        for k, p in enumerate(pops):
            table[k, S.P_KIND] = S.POPULATION_KINDS[p.kind]
            table[k, S.P_OFF], table[k, S.P_N], table[k, S.P_GAMMA] = self.offsets[k], p.size, p.burst
            incoming = [j for j, c in enumerate(net.connections) if c.dst == p.name]
            inc_conn += incoming
            inc_ptr.append(len(inc_conn))
            table[k, S.P_DYN] = -1
            if p.dynamics is not None:
                leak, params = p.step_parameters()
                table[k, S.P_LEAK] = leak
                table[k, S.P_DYN] = buf.add_float(to_internal(params, p.shape))
            if p.kind in ("if", "lif"):
                table[k, S.P_HIST] = n_hist
                n_hist += p.burst + 1
            elif p.kind == "lipool":
                conn = net.connections[incoming[0]]
                table[k, S.P_CONN], table[k, S.P_STATE] = incoming[0], n_lip
                n_lip += p.size * conn.kernel[0] * conn.kernel[1]
            elif p.kind == "maxgate":
                table[k, S.P_CONN], table[k, S.P_STATE] = incoming[0], n_mg
                n_mg += net.connections[incoming[0]].n_src
        self.pops, self.n_hist, self.n_lip, self.n_mg = table, n_hist, n_lip, n_mg
        self.inc_ptr = np.array(inc_ptr, dtype=np.int64)
        self.inc_conn = np.array(inc_conn, dtype=np.int64)
        self.fbuf, self.ibuf = buf.arrays()
        self.bias = np.zeros(self.n_tot, np.float32)
        self.v0 = np.zeros(self.n_tot, np.float32)
        for k, p in enumerate(pops):
            if p.bias is not None:
                self.bias[self.offsets[k]:self.offsets[k + 1]] = to_internal(p.bias.reshape(-1), p.shape)
            self.v0[self.offsets[k]:self.offsets[k + 1]] = to_internal(p.initial_potential(), p.shape)
        # populations fed by the analog input get a per-image constant current (direct coding)
        self.const_pops = sorted({index[c.dst] for c in net.connections if c.src == INPUT})
        self.n_const = 0
        table[:, S.P_CONST] = -1
        for k in self.const_pops:
            table[k, S.P_CONST] = self.n_const
            self.n_const += pops[k].size
        self.macs_per_image = direct_macs_per_image(net)

    def bytes_per_image(self, T, record=(), encoding="direct"):
        """Memory of the per-image arrays that :meth:`run` allocates (bytes).

        Input currents (or Poisson spikes), per-step counters, outputs, burst histograms and
        the requested per-neuron records; the simulation state is per thread
        (:meth:`bytes_per_worker`).
        """
        P, C = len(self.net.populations), len(self.net.connections)
        n = self.n_tot
        per = 4 * self.n_const + 8 * self.n_hist                      # input currents, histograms
        per += 8 * T * (2 * P + C) + 4 * T * self.net.output.size     # per-step counters, outputs
        if encoding == "poisson":
            per += T * self.n_in
        if "potential" in record:
            per += 4 * n
        if "neuron_counts" in record:
            per += 8 * n
        if "trains" in record:
            per += 8 * T * n
        return int(per)

    def bytes_per_worker(self):
        """Memory of the simulation state that each worker thread allocates (bytes).

        Potentials, currents, event lists (input included), pooling state and scratch of one
        image, see :func:`eventsnn.kernels.simulate.simulate_batch`.
        """
        return S.worker_bytes(neurons=self.n_tot, inputs=self.n_in, lipool=self.n_lip,
                              maxgate=self.n_mg, populations=len(self.net.populations))

    def default_batch_size(self, T, record=(), encoding="direct", budget=256 * 2**20, cap=512):
        """Images per batch so that the per-image arrays fit in ``budget`` bytes (1 to ``cap``)."""
        return int(max(1, min(cap, budget // max(1, self.bytes_per_image(T, record, encoding)))))

    def _slice(self, a, k):
        return a[..., self.offsets[k]:self.offsets[k + 1]]

    def run(self, x, T, *, encoding="direct", seed=None, first_index=0, record=()):
        """Simulate images ``x`` (B, *input_shape), float32, already validated.

        ``first_index`` is the position of ``x[0]`` in the whole simulated array (it selects
        the Poisson random stream of each image, see :func:`~.encoding.poisson_spikes`).
        """
        net = self.net
        B = len(x)
        pops = net.populations
        index = {p.name: k for k, p in enumerate(pops)}
        conns = self.conns.copy()
        table = self.pops
        if encoding == "direct":
            conns[self.input_rows, S.C_ACTIVE] = 0
            const = np.zeros((B, self.n_const), np.float32)
            for k in self.const_pops:
                co = table[k, S.P_CONST]
                const[:, co:co + pops[k].size] = self._slice(self.bias, k)
            currents = direct_currents(net, x)
            for c in net.connections:
                if c.src == INPUT:
                    co = table[index[c.dst], S.P_CONST]
                    const[:, co:co + c.n_dst] += to_internal(currents[c.name], c.dst_shape)
            x_spk = np.zeros((B, 0, 0), np.int8)
        else:
            table = table.copy()
            table[:, S.P_CONST] = -1
            const = np.zeros((B, 0), np.float32)
            spk = poisson_spikes(x, T, seed, first_index).reshape(T, B, -1)
            x_spk = np.ascontiguousarray(to_internal(spk, net.input_shape).transpose(1, 0, 2))
        P, C = len(pops), len(net.connections)
        out = pops[-1]
        outputs = np.zeros((B, T, out.size), np.float32)
        spikes = np.zeros((B, T, P), np.int64)
        events = np.zeros((B, T, P), np.int64)
        synops = np.zeros((B, T, C), np.int64)
        hist = np.zeros((B, self.n_hist), np.int64)
        V = (np.zeros((B, self.n_tot), np.float32) if "potential" in record
             else np.zeros((0, 0), np.float32))
        counts = (np.zeros((B, self.n_tot), np.int64) if "neuron_counts" in record
                  else np.zeros((0, 0), np.int64))
        trains = (np.zeros((B, T, self.n_tot), np.int64) if "trains" in record
                  else np.zeros((0, 0, 0), np.int64))
        K.simulate_batch(
            T, min(B, numba.get_num_threads()), table, self.theta, self.v_max, self.inc_ptr,
            self.inc_conn, conns, self.fbuf, self.ibuf, self.bias, self.v0, const, x_spk, self.n_lip,
            self.n_mg,
            outputs, spikes, events, synops, hist, V, counts, trains)

        spiking = [(k, p) for k, p in enumerate(pops) if p.kind != "output"]
        records = {}
        if "neuron_counts" in record:
            records["neuron_counts"] = {p.name: to_public(self._slice(counts, k), p.shape)
                                        for k, p in spiking}
        if "potential" in record:
            records["potential"] = {p.name: to_public(self._slice(V, k), p.shape)
                                    for k, p in spiking if p.kind in ("if", "lif")}
        if "trains" in record:
            records["trains"] = {p.name: np.ascontiguousarray(
                to_public(self._slice(trains, k), p.shape).transpose(1, 0, 2))
                                 for k, p in spiking}
        burst_hist = {}
        for k, p in spiking:
            if p.kind in ("if", "lif"):
                h0 = self.pops[k, S.P_HIST]
                burst_hist[p.name] = hist[:, h0:h0 + p.burst + 1].sum(axis=0)
        return SimResult(
            T=T,
            outputs=to_public(outputs, out.shape).transpose(1, 0, 2).copy(),
            spikes={p.name: spikes[:, :, k].sum(axis=0) for k, p in spiking},
            events={p.name: events[:, :, k].sum(axis=0) for k, p in spiking},
            synops={c.name: synops[:, :, k].sum(axis=0) for k, c in enumerate(net.connections)},
            input_macs=self.macs_per_image * B if encoding == "direct" else 0,
            burst_hist=burst_hist,
            n_images=B,
            records=records,
        )
