"""The batch driver: the whole simulation of a batch of images in one parallel loop.

The network arrives as flat tables built by :class:`eventsnn.engine.numba_engine.NumbaProgram`
(see the column constants below); the per-image kernels of :mod:`.neurons`, :mod:`.synapses`
and :mod:`.pooling` do the work. Semantics: DESIGN.md "Simulation semantics" — at each step
populations are updated in list order and a connection delivers the events its source emitted
in the same step (zero synaptic delay).
"""

import numpy as np
from numba import njit, prange

from .neurons import burst_stats, count_events, if_image, output_image, spikes_to_events
from .pooling import lipool_image, maxgate_image
from .synapses import conv_rows_image, csr_image, dense_image, identity_image

# population kinds and columns of the population table (int64, one row per population)
POP_IF, POP_LIPOOL, POP_MAXGATE, POP_OUTPUT = 0, 1, 2, 3
P_KIND, P_OFF, P_N, P_GAMMA, P_HIST, P_STATE, P_CONN, P_CONST, P_NPARAM = 0, 1, 2, 3, 4, 5, 6, 7, 8

# connection kinds and columns of the connection table (int64, one row per connection)
CONN_CONV, CONN_DENSE, CONN_CSR, CONN_IDENTITY, CONN_POOL = 0, 1, 2, 3, 4
C_KIND, C_SRC, C_DST, C_ACTIVE, C_FANOUT, C_FLOAT = 0, 1, 2, 3, 4, 5
# kind-specific columns start at C_ARGS; ibuf offsets of tables are stored as columns too
C_ARGS = 6
C_NPARAM = 22


@njit(cache=True)
def deliver(prm, ei, ec, ne, fbuf, ibuf, I):
    """Deliver ``ne`` events ``(ei, ec)`` through connection ``prm`` (a table row) into ``I``.

    Returns the SynOps (Σ |multiplicity| × fan-out).
    """
    kind = prm[C_KIND]
    fo = ibuf[prm[C_FANOUT]:]
    w = fbuf[prm[C_FLOAT]:]
    a = C_ARGS
    if kind == CONN_CONV:
        return conv_rows_image(ei, ec, ne, prm[a], prm[a + 1], prm[a + 2], prm[a + 3], prm[a + 4],
                               prm[a + 5], prm[a + 6], prm[a + 7], prm[a + 8], prm[a + 9],
                               prm[a + 10], w, fo, I)
    elif kind == CONN_DENSE:
        return dense_image(ei, ec, ne, w, prm[a], I)
    elif kind == CONN_CSR:
        return csr_image(ei, ec, ne, ibuf[prm[a]:], ibuf[prm[a + 1]:], w, I)
    else:
        return identity_image(ei, ec, ne, w, I)


@njit(cache=True, parallel=True)
def simulate_batch(T, pops, theta, inc_ptr, inc_conn, conns, fbuf, ibuf, bias, const, x_spk,
                   V, I, ev_idx, ev_cnt, lip_h, stamp, touched, mg_cum, mg_cur,
                   outputs, spikes, events, synops, hist, counts, trains):
    """Simulate a batch for ``T`` steps; images run in parallel, each one serially.

    Parameters
    ----------
    T : int
        Number of steps.
    pops : int64 (P, P_NPARAM)
        Population table (kind, neuron offset, size, Γ, histogram offset, state offset,
        incoming pool connection, offset in ``const`` or -1), in update order.
    theta : float32 (P,)
        Thresholds.
    inc_ptr, inc_conn : int64
        Incoming connections of population ``p``: ``inc_conn[inc_ptr[p]:inc_ptr[p+1]]``.
    conns : int64 (C, C_NPARAM)
        Connection table. Source index ``P`` means the input image.
    fbuf, ibuf : float32, int64
        All weights / all integer tables (fan-outs, window tables, CSR structure).
    bias : float32 (N_tot,)
        Bias current per neuron, all populations packed.
    const : float32 (B, ·)
        Per image, bias + direct-coded input current of the populations that receive the
        input (at their ``P_CONST`` offset); the others use ``bias``.
    x_spk : int8 (B, T, N_in)
        Poisson-coded input spikes (internal layout), or ``(B, 0, 0)`` for direct coding.
    V, I : float32 (B, N_tot)
        Potentials and synaptic currents, packed (zero-initialised).
    ev_idx, ev_cnt : int32 (B, N_tot + N_in)
        Event lists of every population (at its offset) and of the input (at ``N_tot``).
    lip_h : int32 (B, ·)
        LIPool hidden units (at each LIPool population's state offset).
    stamp, touched : int32 (B, N_tot)
        Pooling scratch (``stamp`` initialised to -1).
    mg_cum, mg_cur : int32 (B, ·)
        Max-gate cumulative / current counts (at each max-gate population's state offset).
    outputs : float32 (B, T, n_out)
        Output potentials after each step.
    spikes, events : int64 (B, T, P)
        Spikes and events per step and population.
    synops : int64 (B, T, C)
        SynOps per step and connection.
    hist : int64 (B, ·)
        Burst histograms of IF populations (at their histogram offsets).
    counts : int64 (B, N_tot) or (0, 0)
        Total spikes per neuron, if recorded.
    trains : int64 (B, T, N_tot) or (0, 0, 0)
        Spikes per neuron and step, if recorded.
    """
    B = V.shape[0]
    P = pops.shape[0]
    n_tot = V.shape[1]
    n_in = x_spk.shape[2]
    poisson = x_spk.shape[1] > 0
    rec_counts = counts.shape[0] > 0
    rec_trains = trains.shape[0] > 0
    for b in prange(B):
        nev = np.zeros(P + 1, np.int64)
        for t in range(T):
            if poisson:
                nev[P] = spikes_to_events(x_spk[b, t], ev_idx[b, n_tot:], ev_cnt[b, n_tot:])
            for p in range(P):
                kind = pops[p, P_KIND]
                off = pops[p, P_OFF]
                n = pops[p, P_N]
                if kind == POP_IF or kind == POP_OUTPUT:
                    Ib = I[b, off:off + n]
                    for k in range(inc_ptr[p], inc_ptr[p + 1]):
                        c = inc_conn[k]
                        if conns[c, C_ACTIVE] == 0:
                            continue
                        s = conns[c, C_SRC]
                        soff = n_tot if s == P else pops[s, P_OFF]
                        synops[b, t, c] = deliver(conns[c], ev_idx[b, soff:], ev_cnt[b, soff:],
                                                  nev[s], fbuf, ibuf, Ib)
                    co = pops[p, P_CONST]
                    cst = const[b, co:co + n] if co >= 0 else bias[off:off + n]
                    if kind == POP_IF:
                        ne = if_image(V[b, off:off + n], Ib, cst, theta[p],
                                      pops[p, P_GAMMA], ev_idx[b, off:off + n],
                                      ev_cnt[b, off:off + n])
                        h0 = pops[p, P_HIST]
                        spikes[b, t, p] = burst_stats(ev_cnt[b, off:], ne,
                                                      hist[b, h0:h0 + pops[p, P_GAMMA] + 1])
                    else:
                        output_image(V[b, off:off + n], Ib, cst)
                        outputs[b, t, :] = V[b, off:off + n]
                        continue
                else:
                    c = pops[p, P_CONN]
                    s = conns[c, C_SRC]
                    soff = pops[s, P_OFF]
                    prm = conns[c]
                    a = C_ARGS
                    st = pops[p, P_STATE]
                    fo = ibuf[prm[C_FANOUT]:]
                    if kind == POP_LIPOOL:
                        K = prm[a + 3] * prm[a + 4]
                        ne, ops = lipool_image(
                            t, ev_idx[b, soff:], ev_cnt[b, soff:], nev[s], prm[a], prm[a + 2],
                            ibuf[prm[a + 10]:], ibuf[prm[a + 11]:], ibuf[prm[a + 12]:],
                            ibuf[prm[a + 13]:], ibuf[prm[a + 14]:], ibuf[prm[a + 15]:],
                            prm[a + 4], prm[a + 9], fo, lip_h[b, st:st + n * K],
                            stamp[b, off:off + n], touched[b, off:off + n],
                            ev_idx[b, off:off + n], ev_cnt[b, off:off + n])
                    else:
                        ns = pops[s, P_N]
                        ne, ops = maxgate_image(
                            t, ev_idx[b, soff:], ev_cnt[b, soff:], nev[s], prm[a], prm[a + 1],
                            prm[a + 2], prm[a + 3], prm[a + 4], prm[a + 5], prm[a + 6],
                            prm[a + 7], prm[a + 8], ibuf[prm[a + 10]:], ibuf[prm[a + 11]:],
                            ibuf[prm[a + 13]:], ibuf[prm[a + 14]:], prm[a + 9], fo,
                            mg_cum[b, st:st + ns], mg_cur[b, st:st + ns],
                            stamp[b, off:off + n], touched[b, off:off + n],
                            ev_idx[b, off:off + n], ev_cnt[b, off:off + n])
                    synops[b, t, c] = ops
                    tot = 0
                    for e in range(ne):
                        tot += ev_cnt[b, off + e]
                    spikes[b, t, p] = tot
                nev[p] = ne
                events[b, t, p] = ne
                if rec_counts:
                    count_events(ev_idx[b, off:], ev_cnt[b, off:], ne, counts[b, off:off + n])
                if rec_trains:
                    count_events(ev_idx[b, off:], ev_cnt[b, off:], ne, trains[b, t, off:off + n])
