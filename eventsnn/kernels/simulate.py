"""The batch driver: the whole simulation of a batch of images in one parallel loop.

The network arrives as flat tables built by :class:`eventsnn.engine.numba_engine.NumbaProgram`
(columns named in :mod:`.schema`); the per-image kernels of :mod:`.neurons`, :mod:`.synapses`
and :mod:`.pooling` do the work. Semantics: docs/design.md "Simulation semantics" — at each step
populations are updated in list order and a connection delivers the events its source emitted
in the same step (zero synaptic delay).

Parallelism: :func:`simulate_batch` starts one worker per thread; each worker allocates the
state of ONE image (potentials, currents, event lists, pooling state), then repeatedly claims
the next unsimulated image of the batch with an atomic counter (:func:`claim_next`), resets
its state and simulates that image's ``T`` steps (:func:`simulate_image`). Images go to
whichever thread is free (a thread slowed down by other processes takes fewer images), the
state stays in the worker's cache from one image to the next, and the memory of the state is
per thread, not per image.
"""

import numpy as np
from llvmlite import ir
from numba import prange, types
from numba.extending import intrinsic

from .caching import kernel_jit
from .neurons import (burst_stats, count_events, if_image, nir_image, output_image,
                      spikes_to_events)
from .pooling import lipool_image, maxgate_image
from .schema import (CONN_CONV, CONN_CONV3X3, CONN_CSR, CONN_DENSE, CONN_MAP, CV_C_IN, CV_C_OUT,
                     CV_H_OUT, CV_KH, CV_KW, CV_PL, CV_PT, CV_SH, CV_SW, CV_W_IN, CV_W_OUT,
                     C_ACTIVE, C_FANOUT, C_FLOAT, C_KIND, C_SRC, DN_N_DST, MP_TARGETS, PL_C,
                     PL_H_IN, PL_KH, PL_KW, PL_PL, PL_PT, PL_SH, PL_SW, PL_W_IN, PL_W_OUT,
                     PL_X_OUT, PL_X_PTR, PL_X_TAP, PL_Y_OUT, PL_Y_PTR, PL_Y_TAP, POP_IF, POP_LIF,
                     POP_LIPOOL, POP_OUTPUT, P_CONN, P_CONST, P_DYN, P_GAMMA, P_HIST, P_KIND,
                     P_LEAK, P_N, P_OFF, P_STATE, SP_INDICES, SP_INDPTR, W3_C_IN, W3_C_OUT, W3_H,
                     W3_STRIDE, W3_W)
from .synapses import (conv3x3_image, conv_rows_image, csr_image, dense_image, identity_image,
                       map_image)



@kernel_jit()
def deliver(prm, ei, ec, ne, fbuf, ibuf, I):
    """Deliver ``ne`` events ``(ei, ec)`` through connection ``prm`` (a table row) into ``I``.

    Returns the SynOps (Σ |multiplicity| × fan-out).
    """
    kind = prm[C_KIND]
    fo = ibuf[prm[C_FANOUT]:]
    w = fbuf[prm[C_FLOAT]:]
    if kind == CONN_CONV:
        return conv_rows_image(ei, ec, ne, prm[CV_C_IN], prm[CV_W_IN], prm[CV_KH], prm[CV_KW],
                               prm[CV_SH], prm[CV_SW], prm[CV_PT], prm[CV_PL], prm[CV_C_OUT],
                               prm[CV_H_OUT], prm[CV_W_OUT], w, fo, I)
    elif kind == CONN_CONV3X3:
        return conv3x3_image(ei, ec, ne, prm[W3_C_IN], prm[W3_H], prm[W3_W], prm[W3_STRIDE],
                             prm[W3_C_OUT], w, fo, I)
    elif kind == CONN_DENSE:
        return dense_image(ei, ec, ne, w, prm[DN_N_DST], I)
    elif kind == CONN_CSR:
        return csr_image(ei, ec, ne, ibuf[prm[SP_INDPTR]:], ibuf[prm[SP_INDICES]:], w, I)
    elif kind == CONN_MAP:
        return map_image(ei, ec, ne, ibuf[prm[MP_TARGETS]:], w, fo, I)
    else:
        return identity_image(ei, ec, ne, w, I)


@intrinsic
def claim_next(typingctx, counter):
    """Atomically ``old = counter[0]; counter[0] += 1``; returns ``old``.

    ``counter`` is a 1-D int64 array shared by the threads of a parallel loop; every value is
    returned to exactly one caller (a work queue of image indices).
    """
    if not (isinstance(counter, types.Array) and counter.dtype == types.int64
            and counter.ndim == 1):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        return builder.atomic_rmw("add", ary.data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return types.int64(counter), codegen


@kernel_jit()
def simulate_image(b, T, pops, theta, v_max, inc_ptr, inc_conn, conns, fbuf, ibuf, bias, v0, const,
                   x_spk,
                   V, I, ev_idx, ev_cnt, lip_h, stamp, touched, mg_cum, mg_cur, nev,
                   outputs, spikes, events, synops, hist, counts, trains):
    """Simulate image ``b`` of the batch for ``T`` steps in the state arrays of one worker.

    ``V`` ... ``nev`` are the worker's state (one image, layouts as in :func:`simulate_batch`
    without the batch axis); they are reset here (``V`` to the initial potentials ``v0``).
    Results go to row ``b`` of ``outputs`` ...
    ``trains`` (see :func:`simulate_batch`).
    """
    P = pops.shape[0]
    n_tot = V.shape[0]
    poisson = x_spk.shape[1] > 0
    rec_counts = counts.shape[0] > 0
    rec_trains = trains.shape[0] > 0
    V[:] = v0
    I[:] = 0.0
    lip_h[:] = 0
    stamp[:] = -1
    mg_cum[:] = 0
    mg_cur[:] = 0
    nev[:] = 0
    for t in range(T):
        if poisson:
            nev[P] = spikes_to_events(x_spk[b, t], ev_idx[n_tot:], ev_cnt[n_tot:])
        for p in range(P):
            kind = pops[p, P_KIND]
            off = pops[p, P_OFF]
            n = pops[p, P_N]
            if kind == POP_IF or kind == POP_OUTPUT or kind == POP_LIF:
                Ib = I[off:off + n]
                for k in range(inc_ptr[p], inc_ptr[p + 1]):
                    c = inc_conn[k]
                    if conns[c, C_ACTIVE] == 0:
                        continue
                    s = conns[c, C_SRC]
                    soff = n_tot if s == P else pops[s, P_OFF]
                    synops[b, t, c] = deliver(conns[c], ev_idx[soff:], ev_cnt[soff:], nev[s],
                                              fbuf, ibuf, Ib)
                co = pops[p, P_CONST]
                cst = const[b, co:co + n] if co >= 0 else bias[off:off + n]
                dyn = pops[p, P_DYN]
                if kind == POP_IF:
                    ne = if_image(V[off:off + n], Ib, cst, theta[p], pops[p, P_GAMMA], v_max[p],
                                  ev_idx[off:off + n], ev_cnt[off:off + n])
                elif dyn >= 0:
                    ne = nir_image(V[off:off + n], Ib, cst, fbuf[dyn:dyn + 5 * n],
                                   pops[p, P_LEAK] != 0, kind == POP_LIF,
                                   ev_idx[off:off + n], ev_cnt[off:off + n])
                else:
                    output_image(V[off:off + n], Ib, cst)
                if kind == POP_OUTPUT:
                    outputs[b, t, :] = V[off:off + n]
                    continue
                h0 = pops[p, P_HIST]
                spikes[b, t, p] = burst_stats(ev_cnt[off:], ne,
                                              hist[b, h0:h0 + pops[p, P_GAMMA] + 1])
            else:
                c = pops[p, P_CONN]
                s = conns[c, C_SRC]
                soff = pops[s, P_OFF]
                prm = conns[c]
                st = pops[p, P_STATE]
                fo = ibuf[prm[C_FANOUT]:]
                if kind == POP_LIPOOL:
                    K = prm[PL_KH] * prm[PL_KW]
                    ne, ops = lipool_image(
                        t, ev_idx[soff:], ev_cnt[soff:], nev[s], prm[PL_C], prm[PL_W_IN],
                        ibuf[prm[PL_Y_PTR]:], ibuf[prm[PL_Y_OUT]:], ibuf[prm[PL_Y_TAP]:],
                        ibuf[prm[PL_X_PTR]:], ibuf[prm[PL_X_OUT]:], ibuf[prm[PL_X_TAP]:],
                        prm[PL_KW], prm[PL_W_OUT], fo, lip_h[st:st + n * K],
                        stamp[off:off + n], touched[off:off + n],
                        ev_idx[off:off + n], ev_cnt[off:off + n])
                else:
                    ns = pops[s, P_N]
                    ne, ops = maxgate_image(
                        t, ev_idx[soff:], ev_cnt[soff:], nev[s], prm[PL_C], prm[PL_H_IN],
                        prm[PL_W_IN], prm[PL_KH], prm[PL_KW], prm[PL_SH], prm[PL_SW],
                        prm[PL_PT], prm[PL_PL], ibuf[prm[PL_Y_PTR]:], ibuf[prm[PL_Y_OUT]:],
                        ibuf[prm[PL_X_PTR]:], ibuf[prm[PL_X_OUT]:], prm[PL_W_OUT], fo,
                        mg_cum[st:st + ns], mg_cur[st:st + ns],
                        stamp[off:off + n], touched[off:off + n],
                        ev_idx[off:off + n], ev_cnt[off:off + n])
                synops[b, t, c] = ops
                tot = 0
                for e in range(ne):
                    tot += ev_cnt[off + e]
                spikes[b, t, p] = tot
            nev[p] = ne
            events[b, t, p] = ne
            if rec_counts:
                count_events(ev_idx[off:], ev_cnt[off:], ne, counts[b, off:off + n])
            if rec_trains:
                count_events(ev_idx[off:], ev_cnt[off:], ne, trains[b, t, off:off + n])


@kernel_jit(parallel=True)
def simulate_batch(T, n_workers, pops, theta, v_max, inc_ptr, inc_conn, conns, fbuf, ibuf, bias, v0,
                   const,
                   x_spk, n_lip, n_mg, outputs, spikes, events, synops, hist, potential, counts,
                   trains):
    """Simulate a batch for ``T`` steps: ``n_workers`` threads, each image on one thread.

    Parameters
    ----------
    T : int
        Number of steps.
    n_workers : int
        Parallel workers (at most the number of threads; 1 runs serially). Each allocates the
        state of one image and simulates the images it claims one after the other.
    pops : int64 (P, P_NPARAM)
        Population table (columns ``P_*`` of :mod:`.schema`), in update order.
    theta : float32 (P,)
        Thresholds.
    v_max : float32 (P,)
        Upper clamp of V after the reset (``inf``: none; bounded ReLU populations).
    inc_ptr, inc_conn : int64
        Incoming connections of population ``p``: ``inc_conn[inc_ptr[p]:inc_ptr[p+1]]``.
    conns : int64 (C, C_NPARAM)
        Connection table (columns ``C_*`` and per kind, :mod:`.schema`). Source index ``P``
        means the input image.
    fbuf, ibuf : float32, int64
        All weights / all integer tables (fan-outs, window tables, CSR structure).
    bias : float32 (N_tot,)
        Bias current per neuron, all populations packed.
    v0 : float32 (N_tot,)
        Initial membrane potential ``V(0)`` per neuron (0 for non-"if" populations).
    const : float32 (B, ·)
        Per image, bias + direct-coded input current of the populations that receive the
        input (at their ``P_CONST`` offset); the others use ``bias``.
    x_spk : int8 (B, T, N_in)
        Poisson-coded input spikes (internal layout), or ``(B, 0, 0)`` for direct coding.
    n_lip, n_mg : int
        Sizes of the LIPool hidden units and of the max-gate counts of all pooling
        populations (at each one's ``P_STATE`` offset).
    outputs : float32 (B, T, n_out)
        Output potentials after each step.
    spikes, events : int64 (B, T, P)
        Spikes and events per step and population.
    synops : int64 (B, T, C)
        SynOps per step and connection.
    hist : int64 (B, ·)
        Burst histograms of IF populations (at their histogram offsets).
    potential : float32 (B, N_tot) or (0, 0)
        Final potentials, if recorded.
    counts : int64 (B, N_tot) or (0, 0)
        Total spikes per neuron, if recorded.
    trains : int64 (B, T, N_tot) or (0, 0, 0)
        Spikes per neuron and step, if recorded.

    Notes
    -----
    Worker state (:data:`.schema.WORKER_STATE`; internal layout, populations packed at their
    offsets): potentials ``V`` and synaptic currents ``I`` (float32, N_tot); event lists
    ``ev_idx``, ``ev_cnt`` (int32, N_tot + N_in: every population at its offset, the Poisson
    input at ``N_tot``); LIPool
    hidden units ``lip_h`` and max-gate cumulative / current counts ``mg_cum``, ``mg_cur``
    (int32); pooling scratch ``stamp``, ``touched`` (int32, N_tot); events per population
    this step ``nev`` (int64, P + 1).
    """
    B = outputs.shape[0]
    P = pops.shape[0]
    n_tot = bias.shape[0]
    n_ev = n_tot + x_spk.shape[2]
    rec_potential = potential.shape[0] > 0
    next_image = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        V = np.empty(n_tot, np.float32)
        # currents start on a 64-byte boundary: the conv kernel's vector loads and stores
        # then never straddle two cache lines (population offsets of conv layers are
        # multiples of 16 floats)
        I_raw = np.empty(n_tot + 16, np.float32)
        skip = (-I_raw.ctypes.data % 64) // 4
        I = I_raw[skip:skip + n_tot]
        ev_idx = np.empty(n_ev, np.int32)
        ev_cnt = np.empty(n_ev, np.int32)
        lip_h = np.empty(n_lip, np.int32)
        stamp = np.empty(n_tot, np.int32)
        touched = np.empty(n_tot, np.int32)
        mg_cum = np.empty(n_mg, np.int32)
        mg_cur = np.empty(n_mg, np.int32)
        nev = np.empty(P + 1, np.int64)
        b = claim_next(next_image)
        while b < B:
            simulate_image(b, T, pops, theta, v_max, inc_ptr, inc_conn, conns, fbuf, ibuf, bias, v0,
                           const,
                           x_spk, V, I, ev_idx, ev_cnt, lip_h, stamp, touched, mg_cum, mg_cur,
                           nev, outputs, spikes, events, synops, hist, counts, trains)
            if rec_potential:
                potential[b, :] = V
            b = claim_next(next_image)
