"""Synapse kernels: deliver one step's spike events through a connection (Sec. 3, Eq. 2).

An event ``(j, s)`` adds ``s * w`` to every target of pre-synaptic neuron ``j`` (a burst of
``s`` spikes is delivered once) and costs ``|s| * fan_out[j]`` synaptic operations, which are
added to ``syn_t[b]`` (int64, exact).
"""

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True)
def conv_scatter(ev_idx, ev_cnt, n_ev, c_in, w_in, y_ptr, y_out, y_tap, x_ptr, x_out, x_tap,
                 kw, c_out, w_out, weight, fan_out, I, syn_t):
    """Scatter events of a channel-last ``(H, W, C_in)`` population through a convolution.

    The weight-shared kernel is never materialised as a matrix: an event at ``(y, x, ci)``
    adds ``s * weight[ky, kx, ci, :]`` to output position ``(oy, ox, :)`` for every pair of
    taps covering it, with the inner loop over output channels contiguous.

    Parameters
    ----------
    ev_idx, ev_cnt, n_ev : int32
        Events of the source population (channel-last indices).
    c_in, w_in : int
        Source channels and width.
    y_ptr, y_out, y_tap : int64
        Per input row ``y``: the output rows ``y_out[y_ptr[y]:y_ptr[y+1]]`` reading it and the
        kernel taps ``y_tap`` they read it through (same for columns with ``x_*``).
    kw, c_out, w_out : int
        Kernel width, output channels, output width.
    weight : float32 (kh * kw * c_in * c_out,)
        Kernel in ``(kh, kw, C_in, C_out)`` order, flattened.
    fan_out : int64 (N_src,)
        Structural fan-out of every source neuron (channel-last).
    I : float32 (B, H_out * W_out * C_out)
        Input current of the target population (channel-last), incremented.
    syn_t : int64 (B,)
        SynOps per image, incremented.
    """
    B = I.shape[0]
    for b in prange(B):
        ops = 0
        for e in range(n_ev[b]):
            j = ev_idx[b, e]
            s = ev_cnt[b, e]
            ops += abs(s) * fan_out[j]
            sf = np.float32(s)
            ci = j % c_in
            pos = j // c_in
            y = pos // w_in
            x = pos - y * w_in
            for a in range(y_ptr[y], y_ptr[y + 1]):
                row = y_out[a] * w_out
                krow = y_tap[a] * kw
                for a2 in range(x_ptr[x], x_ptr[x + 1]):
                    ob = (row + x_out[a2]) * c_out
                    wb = ((krow + x_tap[a2]) * c_in + ci) * c_out
                    for co in range(c_out):
                        I[b, ob + co] += sf * weight[wb + co]
        syn_t[b] += ops


@njit(cache=True, parallel=True)
def dense_scatter(ev_idx, ev_cnt, n_ev, wt, I, syn_t):
    """Scatter events through an all-to-all connection: ``I[b] += s * wt[j]``.

    ``wt`` is float32 ``(N_src, N_dst)`` (the transposed weight, rows contiguous); the fan-out
    of every source neuron is ``N_dst``.
    """
    B = I.shape[0]
    n_dst = wt.shape[1]
    for b in prange(B):
        ops = 0
        for e in range(n_ev[b]):
            j = ev_idx[b, e]
            s = ev_cnt[b, e]
            ops += abs(s) * n_dst
            sf = np.float32(s)
            for k in range(n_dst):
                I[b, k] += sf * wt[j, k]
        syn_t[b] += ops


@njit(cache=True, parallel=True)
def csr_scatter(ev_idx, ev_cnt, n_ev, indptr, indices, data, I, syn_t):
    """Scatter events through an explicit sparse matrix (CSR, one row per source neuron).

    Every stored entry is a synapse (explicit zeros included), so the fan-out of ``j`` is
    ``indptr[j+1] - indptr[j]``.
    """
    B = I.shape[0]
    for b in prange(B):
        ops = 0
        for e in range(n_ev[b]):
            j = ev_idx[b, e]
            s = ev_cnt[b, e]
            lo = indptr[j]
            hi = indptr[j + 1]
            ops += abs(s) * (hi - lo)
            sf = np.float32(s)
            for k in range(lo, hi):
                I[b, indices[k]] += sf * data[k]
        syn_t[b] += ops


@njit(cache=True, parallel=True)
def identity_scatter(ev_idx, ev_cnt, n_ev, scale, I, syn_t):
    """Scatter events one-to-one with a per-neuron scale: ``I[b, j] += s * scale[j]``."""
    B = I.shape[0]
    for b in prange(B):
        ops = 0
        for e in range(n_ev[b]):
            j = ev_idx[b, e]
            s = ev_cnt[b, e]
            ops += abs(s)
            I[b, j] += np.float32(s) * scale[j]
        syn_t[b] += ops
