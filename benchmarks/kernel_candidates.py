"""Candidate event kernels, measured next to the landed ones by ``bench_kernels.py``.

Not used by the engine: these are proposals with their measurements (see the report of
``bench_kernels.py``). They follow the conventions of :mod:`eventsnn.kernels`: per image, raw
contiguous arrays, channel-last populations, compact position-major event lists, SynOps
returned as an exact integer.

``conv_rows_image`` — "row scatter" for stride-1 convolutions
-------------------------------------------------------------
With channel-last layouts, the outputs that one input position ``(y, x)`` reaches through the
``kw`` taps of one kernel row ``ky`` are ``kw`` *consecutive* output positions
``(oy, x + pl - kw + 1 .. x + pl)``, i.e. one contiguous run of ``kw * C_out`` floats of the
target current. If the kernel is stored as ``Wr[ky, ci, r, co] = W[co, ci, ky, kw - 1 - r]``,
the matching weights are contiguous too, so an event ``(y, x, ci, s)`` is delivered as ``kh``
AXPYs of length ``kw * C_out`` (clipped at the borders) instead of ``kh * kw`` AXPYs of
length ``C_out``: 3x fewer loop starts, bounds and index computations for a 3x3 kernel, and
runs long enough to vectorise well even for 16 output channels. Events of the same position
are taken two at a time (``out += s0 * w0 + s1 * w1``), halving the loads and stores of the
target current; their SynOps are one multiplication per position (all channels of a position
have the same fan-out); positions and rows come from float reciprocals, not integer
divisions. Strided convolutions keep the landed tap-by-tap kernel. The summation order
differs from the landed kernel (float results agree exactly whenever the arithmetic is exact,
e.g. dyadic test weights).
"""

from __future__ import annotations

import numpy as np
from numba import njit


def row_weight(weight):
    """``(O, I, kh, kw)`` conv weight -> flat ``Wr[ky, ci, r, co] = W[co, ci, ky, kw-1-r]``."""
    w = np.asarray(weight, dtype=np.float32)
    return np.ascontiguousarray(w[:, :, :, ::-1].transpose(2, 1, 3, 0)).ravel()


@njit(cache=True, inline="always")
def _div(j, d, inv_d):
    """``j // d`` for 0 <= j < 2**31 via a float64 reciprocal (no integer division)."""
    q = np.int64(j * inv_d)
    if q * d > j:
        q -= 1
    elif (q + 1) * d <= j:
        q += 1
    return q


@njit(cache=True)
def conv_rows_image(ev_idx, ev_cnt, n, c_in, h_in, w_in, kh, kw, pt, pl, c_out, h_out, w_out,
                    wr, fan_out, I):
    """Deliver events of a channel-last ``(H, W, C_in)`` population through a stride-1
    convolution (any kernel size and padding; ``pt``/``pl`` = top/left padding).

    Parameters
    ----------
    ev_idx, ev_cnt : int32
        Events (channel-last neuron, multiplicity), ascending neuron order, first ``n`` valid.
    c_in, h_in, w_in : int
        Source channels, height, width.
    kh, kw, pt, pl : int
        Kernel size, top and left padding.
    c_out, h_out, w_out : int
        Target channels, height, width.
    wr : float32
        Kernel from :func:`row_weight`.
    fan_out : int64 (N_src,)
        Structural fan-out of every source neuron (channel-last).
    I : float32 (h_out * w_out * c_out,)
        Target current (channel-last), incremented.

    Returns
    -------
    int
        SynOps, Σ |s| · fan_out.
    """
    ops = 0
    rs = kw * c_out  # weight stride between input channels within a kernel row
    inv_c = 1.0 / c_in
    inv_w = 1.0 / w_in
    e = 0
    while e < n:
        pos = _div(ev_idx[e], c_in, inv_c)
        base = pos * c_in
        lim = base + c_in
        y = _div(pos, w_in, inv_w)
        x = pos - y * w_in
        ox0 = x + pl - (kw - 1)          # first output column reached (tap kw - 1)
        r0 = max(0, -ox0)
        m = max(min(kw, w_out - ox0) - r0, 0) * c_out
        ob0 = (ox0 + r0) * c_out         # + oy * w_out * c_out
        # kernel rows reaching an output row oy = y + pt - ky inside [0, h_out)
        ky_lo = max(0, y + pt - (h_out - 1))
        ky_hi = min(kh, y + pt + 1) if m > 0 else 0
        g = e
        spikes = 0  # Σ |s| at this position; all its neurons have the same fan-out
        while g < n and ev_idx[g] < lim:
            spikes += abs(ev_cnt[g])
            g += 1
        ops += spikes * fan_out[base]
        k = e
        while k + 1 < g:  # two events of this position at a time
            a = (ev_idx[k] - base) * rs + r0 * c_out
            b = (ev_idx[k + 1] - base) * rs + r0 * c_out
            s0 = np.float32(ev_cnt[k])
            s1 = np.float32(ev_cnt[k + 1])
            for ky in range(ky_lo, ky_hi):
                ob = (y + pt - ky) * w_out * c_out + ob0
                kb = ky * c_in * rs
                out = I[ob:ob + m]
                w0 = wr[kb + a:kb + a + m]
                w1 = wr[kb + b:kb + b + m]
                for i in range(m):
                    out[i] += s0 * w0[i] + s1 * w1[i]
            k += 2
        if k < g:
            a = (ev_idx[k] - base) * rs + r0 * c_out
            s0 = np.float32(ev_cnt[k])
            for ky in range(ky_lo, ky_hi):
                ob = (y + pt - ky) * w_out * c_out + ob0
                kb = ky * c_in * rs
                out = I[ob:ob + m]
                w0 = wr[kb + a:kb + a + m]
                for i in range(m):
                    out[i] += s0 * w0[i]
        e = g
    return ops
