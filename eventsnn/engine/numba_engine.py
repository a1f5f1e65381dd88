"""The fast engine: event-driven simulation with Numba kernels (:mod:`eventsnn.kernels`).

Semantics are those of DESIGN.md ("Simulation semantics"); see :func:`eventsnn.simulate`.
Per step, populations are updated in list order. Before a population is updated, the events
that each of its sources emitted in the same step (zero synaptic delay) are delivered through
the incoming connections into its input current; an ``"if"`` population then integrates,
fires bursts (Eq. 2-4) and writes a compact event list per image; pooling populations turn
their source's events into window events (Eq. 11, 12). Work per step is proportional to the
number of events times the fan-out, plus one pass over the neurons of every population that
integrates a current.

Internal layout: populations of shape ``(C, H, W)`` are stored channel-last (``(H, W, C)``)
so that a conv event scatters a contiguous run of output channels; conv weights are stored
``(kh, kw, C_in, C_out)``, dense weights transposed ``(N_src, N_dst)``. Conversions to and
from the public C-order layout happen only at the boundary (input currents, biases, records,
outputs). Memory is O(parameters + neurons × batch); conv layers are never materialised.
"""

from __future__ import annotations

import numpy as np

from ..kernels import neurons, pooling, synapses
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
    """``a`` (..., N) with neurons in public order -> internal order (contiguous copy)."""
    return np.ascontiguousarray(a[..., internal_order(shape)])


def to_public(a, shape):
    """``a`` (..., N) with neurons in internal order -> public C order (contiguous copy)."""
    out = np.empty_like(a)
    out[..., internal_order(shape)] = a
    return out


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
    ty = scatter_table(h, ho, kernel[0], stride[0], padding[0])
    tx = scatter_table(w, wo, kernel[1], stride[1], padding[1])
    return ty, tx


class _Conn:
    """A connection prepared for the kernels (internal layouts)."""

    def __init__(self, conn):
        self.name = conn.name
        self.src = conn.src
        self.kind = conn.kind
        self.fan_out = to_internal(conn.fan_out().astype(np.int64), conn.src_shape)
        if isinstance(conn, ConvConnection):
            o, i, kh, kw = conn.weight.shape
            self.weight = np.ascontiguousarray(conn.weight.transpose(2, 3, 1, 0)).ravel()
            (self.y_ptr, self.y_out, self.y_tap), (self.x_ptr, self.x_out, self.x_tap) = \
                _window_tables(conn.src_shape, conn.dst_shape, (kh, kw), conn.stride, conn.padding)
            self.c_in, self.w_in = i, conn.src_shape[2]
            self.kw, self.c_out, self.w_out = kw, o, conn.dst_shape[2]
        elif isinstance(conn, DenseConnection):
            wt = conn.weight.T[internal_order(conn.src_shape)][:, internal_order(conn.dst_shape)]
            self.wt = np.ascontiguousarray(wt, dtype=np.float32)
        elif isinstance(conn, SparseConnection):
            m = conn.matrix[internal_order(conn.src_shape)]
            inv = np.empty(conn.n_dst, dtype=np.int64)
            inv[internal_order(conn.dst_shape)] = np.arange(conn.n_dst)
            self.indptr = m.indptr.astype(np.int64)
            self.indices = inv[m.indices].astype(np.int64)
            self.data = np.ascontiguousarray(m.data, dtype=np.float32)
        elif isinstance(conn, IdentityConnection):
            self.scale = to_internal(conn.per_neuron_scale(), conn.src_shape).astype(np.float32)
        elif isinstance(conn, PoolConnection):
            (self.y_ptr, self.y_out, self.y_tap), (self.x_ptr, self.x_out, self.x_tap) = \
                _window_tables(conn.src_shape, conn.dst_shape, conn.kernel, conn.stride, conn.padding)
            c, h, w = conn.src_shape
            self.c, self.h_in, self.w_in = c, h, w
            self.kernel, self.stride, self.padding = conn.kernel, conn.stride, conn.padding
            self.w_out = conn.dst_shape[2]
        else:  # pragma: no cover - SpikingNetwork only builds the kinds above
            raise TypeError(f"connection {conn.name}: unsupported kind {conn.kind!r}")

    def scatter(self, ev, I, syn_t):
        """Deliver the events ``ev = (idx, cnt, n)`` into current ``I``; SynOps into ``syn_t``."""
        idx, cnt, n = ev
        if self.kind == "conv":
            synapses.conv_scatter(idx, cnt, n, self.c_in, self.w_in, self.y_ptr, self.y_out,
                                  self.y_tap, self.x_ptr, self.x_out, self.x_tap, self.kw,
                                  self.c_out, self.w_out, self.weight, self.fan_out, I, syn_t)
        elif self.kind == "dense":
            synapses.dense_scatter(idx, cnt, n, self.wt, I, syn_t)
        elif self.kind == "csr":
            synapses.csr_scatter(idx, cnt, n, self.indptr, self.indices, self.data, I, syn_t)
        else:
            synapses.identity_scatter(idx, cnt, n, self.scale, I, syn_t)


class NumbaProgram:
    """A :class:`~eventsnn.network.SpikingNetwork` compiled into kernel-ready arrays.

    Build once per network, then :meth:`run` batches of images.
    """

    def __init__(self, net):
        self.net = net
        self.pops = list(net.populations)
        self.conns = {c.name: _Conn(c) for c in net.connections}
        self.incoming = {p.name: [self.conns[c.name] for c in net.incoming(p.name)]
                         for p in self.pops}
        self.input_conns = [self.conns[c.name] for c in net.connections if c.src == INPUT]
        self.macs_per_image = direct_macs_per_image(net)
        self.bias = {p.name: (to_internal(p.bias.reshape(-1), p.shape) if p.bias is not None
                              else np.zeros(p.size, np.float32))[None, :].astype(np.float32)
                     for p in self.pops if p.kind in ("if", "output")}

    def _constant_currents(self, x, encoding):
        """Per population: bias + direct-coded input current, internal layout, (1|B, N)."""
        const = dict(self.bias)
        if encoding != "direct":
            return const
        currents = direct_currents(self.net, x)
        for c in self.net.connections:
            if c.src == INPUT:
                cur = to_internal(currents[c.name], c.dst_shape)
                const[c.dst] = np.ascontiguousarray(const[c.dst] + cur, dtype=np.float32)
        return const

    def run(self, x, T, *, encoding="direct", seed=None, first_index=0, record=()):
        """Simulate images ``x`` (B, *input_shape), float32, already validated.

        ``first_index`` is the position of ``x[0]`` in the whole simulated array (it selects
        the Poisson random stream of each image, see :func:`~.encoding.poisson_spikes`).
        """
        net = self.net
        B = len(x)
        const = self._constant_currents(x, encoding)
        spiking = [p for p in self.pops if p.kind != "output"]
        state, ev, I = {}, {}, {}
        spikes = {p.name: np.zeros((T, B), np.int64) for p in spiking}
        events = {p.name: np.zeros((T, B), np.int64) for p in spiking}
        synops = {c.name: np.zeros((T, B), np.int64) for c in net.connections}
        hist = {p.name: np.zeros((B, p.burst + 1), np.int64) for p in spiking if p.kind == "if"}
        for p in self.pops:
            n = p.size
            if p.kind != "output":
                ev[p.name] = (np.zeros((B, n), np.int32), np.zeros((B, n), np.int32),
                              np.zeros(B, np.int32))
            if p.kind in ("if", "output"):
                I[p.name] = np.zeros((B, n), np.float32)
                state[p.name] = np.zeros((B, n), np.float32)
            elif p.kind == "lipool":
                k = self.incoming[p.name][0].kernel
                state[p.name] = (np.zeros((B, n, k[0] * k[1]), np.int32),
                                 np.full((B, n), -1, np.int32), np.zeros((B, n), np.int32))
            else:  # maxgate
                n_src = int(np.prod(net.population(p.pool["source"]).shape))
                state[p.name] = (np.zeros((B, n_src), np.int32), np.zeros((B, n_src), np.int32),
                                 np.full((B, n), -1, np.int32), np.zeros((B, n), np.int32))
        counts = ({p.name: np.zeros((B, p.size), np.int64) for p in spiking}
                  if "neuron_counts" in record else None)
        trains = ({p.name: np.zeros((T, B, p.size), np.int64) for p in spiking}
                  if "trains" in record else None)
        out = self.pops[-1]
        outputs = np.zeros((T, B, out.size), np.float32)

        if encoding == "poisson" and self.input_conns:
            spk = poisson_spikes(x, T, seed, first_index).reshape(T, B, -1)
            spk = to_internal(spk, net.input_shape)
            n_in = spk.shape[2]
            ev[INPUT] = (np.zeros((B, n_in), np.int32), np.zeros((B, n_in), np.int32),
                         np.zeros(B, np.int32))

        for t in range(T):
            if encoding == "poisson" and self.input_conns:
                neurons.dense_to_events(spk[t], *ev[INPUT])
            for p in self.pops:
                name = p.name
                if p.kind in ("if", "output"):
                    for c in self.incoming[name]:
                        if c.src != INPUT or encoding == "poisson":
                            c.scatter(ev[c.src], I[name], synops[c.name][t])
                    if p.kind == "if":
                        neurons.if_step(state[name], I[name], const[name], np.float32(p.threshold),
                                        p.burst, *ev[name], spikes[name][t], events[name][t],
                                        hist[name])
                    else:
                        neurons.output_step(state[name], I[name], const[name])
                        outputs[t] = state[name]
                elif p.kind == "lipool":
                    c = self.incoming[name][0]
                    h, stamp, touched = state[name]
                    pooling.lipool_step(t, *ev[c.src], c.c, c.w_in, c.y_ptr, c.y_out, c.y_tap,
                                        c.x_ptr, c.x_out, c.x_tap, c.kernel[1], c.w_out,
                                        c.fan_out, h, stamp, touched, *ev[name],
                                        synops[c.name][t], spikes[name][t], events[name][t])
                else:
                    c = self.incoming[name][0]
                    cum, cur, stamp, touched = state[name]
                    pooling.maxgate_step(t, *ev[c.src], c.c, c.h_in, c.w_in, c.kernel[0],
                                         c.kernel[1], c.stride[0], c.stride[1], c.padding[0],
                                         c.padding[1], c.y_ptr, c.y_out, c.x_ptr, c.x_out,
                                         c.w_out, c.fan_out, cum, cur, stamp, touched,
                                         *ev[name], synops[c.name][t], spikes[name][t],
                                         events[name][t])
                if p.kind != "output":
                    if counts is not None:
                        neurons.count_events(*ev[name], counts[name])
                    if trains is not None:
                        neurons.count_events(*ev[name], trains[name][t])

        records = {}
        if counts is not None:
            records["neuron_counts"] = {p.name: to_public(counts[p.name], p.shape) for p in spiking}
        if "potential" in record:
            records["potential"] = {p.name: to_public(state[p.name], p.shape)
                                    for p in spiking if p.kind == "if"}
        if trains is not None:
            records["trains"] = {p.name: to_public(trains[p.name], p.shape) for p in spiking}
        return SimResult(
            T=T,
            outputs=to_public(outputs, out.shape),
            spikes={k: v.sum(axis=1) for k, v in spikes.items()},
            events={k: v.sum(axis=1) for k, v in events.items()},
            synops={k: v.sum(axis=1) for k, v in synops.items()},
            input_macs=self.macs_per_image * B if encoding == "direct" else 0,
            burst_hist={k: v.sum(axis=0) for k, v in hist.items()},
            n_images=B,
            records=records,
        )
