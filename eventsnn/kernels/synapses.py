"""Per-image synapse kernels: deliver one step's spike events through a connection (Eq. 2).

An event ``(j, s)`` adds ``s * w`` to every target of pre-synaptic neuron ``j`` (a burst of
``s`` spikes is delivered once) and costs ``|s| * fan_out[j]`` synaptic operations; every
kernel returns the SynOps of the events it delivered (int, exact).
"""

import numpy as np
from llvmlite import ir
from numba import literally, types
from numba.extending import intrinsic

from .caching import kernel_jit
from .vectors import pointer, splat, vflush, vmadd, vzero


@kernel_jit()
def conv_image(ev_idx, ev_cnt, n, c_in, w_in, y_ptr, y_out, y_tap, x_ptr, x_out, x_tap,
               kw, c_out, w_out, weight, fan_out, I):
    """Scatter events of a channel-last ``(H, W, C_in)`` population through a convolution.

    Tap by tap; the engine uses :func:`conv_rows_image` (about 2x faster), this kernel is kept
    as its independent cross-check in the tests and as the baseline of
    ``benchmarks/bench_kernels.py``. The weight-shared kernel is never materialised as a matrix: an event at ``(y, x, ci)``
    adds ``s * weight[ky, kx, ci, :]`` to output position ``(oy, ox, :)`` for every pair of
    taps covering it, the inner loop over output channels contiguous. Consecutive events at
    the same position (channel-last event lists are position-major) are first combined per
    tap in a small buffer, so each output position is read and written once per tap.

    Parameters
    ----------
    ev_idx, ev_cnt : int32
        Events of the source population (channel-last indices), first ``n`` valid.
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
    I : float32 (H_out * W_out * C_out,)
        Input current of the target population (channel-last), incremented.

    Returns
    -------
    int
        SynOps.
    """
    acc = np.empty(c_out, dtype=np.float32)
    ops = 0
    e = 0
    while e < n:
        pos = ev_idx[e] // c_in
        g = e + 1
        while g < n and ev_idx[g] // c_in == pos:
            g += 1
        for k in range(e, g):
            ops += abs(ev_cnt[k]) * fan_out[ev_idx[k]]
        y = pos // w_in
        x = pos - y * w_in
        for a in range(y_ptr[y], y_ptr[y + 1]):
            row = y_out[a] * w_out
            krow = y_tap[a] * kw
            for a2 in range(x_ptr[x], x_ptr[x + 1]):
                ob = (row + x_out[a2]) * c_out
                tap = (krow + x_tap[a2]) * c_in - pos * c_in
                # slices indexed by a range variable: no negative-index wraparound inside the
                # loops, so LLVM vectorises them
                dst = I[ob:ob + c_out]
                if g == e + 1:
                    sf = np.float32(ev_cnt[e])
                    wb = (tap + ev_idx[e]) * c_out
                    src = weight[wb:wb + c_out]
                    for co in range(c_out):
                        dst[co] += sf * src[co]
                else:
                    acc[:] = 0.0
                    for k in range(e, g):
                        sf = np.float32(ev_cnt[k])
                        wb = (tap + ev_idx[k]) * c_out
                        src = weight[wb:wb + c_out]
                        for co in range(c_out):
                            acc[co] += sf * src[co]
                    for co in range(c_out):
                        dst[co] += acc[co]
        e = g
    return ops


@kernel_jit(inline="always")
def _div(j, d, inv_d):
    """``j // d`` for ``0 <= j < 2**31`` from a float64 reciprocal (no integer division)."""
    q = np.int64(j * inv_d)
    if q * d > j:
        q -= 1
    elif (q + 1) * d <= j:
        q += 1
    return q


def row_weight(weight, stride_w=1):
    """Conv weight ``(O, I, kh, kw)`` in the layout of :func:`conv_rows_image` (flat float32).

    Taps are grouped by horizontal phase ``φ = kx mod stride_w``; within a phase, the ``n_φ``
    taps ``kx = φ + (n_φ - 1 - r) * stride_w`` are stored in the order ``r`` of the consecutive
    output columns they reach: ``Wr_φ[ky, ci, r, co]``, phases one after the other. For stride 1
    this is ``Wr[ky, ci, r, co] = W[co, ci, ky, kw - 1 - r]``.
    """
    w = np.asarray(weight, dtype=np.float32)
    kw = w.shape[3]
    parts = []
    for phase in range(min(stride_w, kw)):
        taps = np.arange(phase, kw, stride_w)[::-1]          # r = 0 .. n_φ - 1
        parts.append(w[:, :, :, taps].transpose(2, 1, 3, 0).ravel())
    return np.ascontiguousarray(np.concatenate(parts))


VECTOR = 16  # floats per vector of :func:`_axpy4_vector`


@intrinsic
def _axpy4_vector(typingctx, dst, d, src, a0, a1, a2, a3, s0, s1, s2, s3):
    """``dst[d:d+16] += (s0 * src[a0:a0+16] + s1 * src[a1:]) + (s2 * src[a2:] + s3 * src[a3:])``.

    One LLVM vector operation (``<16 x float>`` loads, products and sums, no fused
    multiply-add: the same float32 roundings as the scalar loop of :func:`_axpy4`). Writing it
    out avoids what the loop vectoriser adds around a short loop of unknown length (a run-time
    check that ``dst`` and ``src`` do not overlap and a remainder loop), which costs as much
    as the arithmetic for runs of 48-96 floats. Offsets are in elements; no bounds checks.
    """
    sig = types.void(dst, d, src, a0, a1, a2, a3, s0, s1, s2, s3)

    def codegen(context, builder, signature, args):
        vty = ir.VectorType(ir.FloatType(), VECTOR)
        terms = [builder.fmul(splat(builder, args[7 + k], vty),
                              builder.load(pointer(context, builder, signature.args[2], args[2],
                                                   args[3 + k], vty), align=4))
                 for k in range(4)]
        acc = builder.fadd(builder.fadd(terms[0], terms[1]), builder.fadd(terms[2], terms[3]))
        p = pointer(context, builder, signature.args[0], args[0], args[1], vty)
        builder.store(builder.fadd(builder.load(p, align=4), acc), p, align=4)
        return context.get_dummy_value()

    return sig, codegen


@kernel_jit(inline="always")
def _axpy4(dst, d, src, a0, a1, a2, a3, s0, s1, s2, s3, m):
    """``dst[d:d+m] += (s0 * src[a0:a0+m] + s1 * src[a1:]) + (s2 * src[a2:] + s3 * src[a3:])``.

    By vectors of :data:`VECTOR` floats when ``m`` is a multiple of it, else by a loop.
    """
    if m % VECTOR == 0:
        for j in range(0, m, VECTOR):
            _axpy4_vector(dst, d + j, src, a0 + j, a1 + j, a2 + j, a3 + j, s0, s1, s2, s3)
    else:
        # slices indexed by a range variable: no wraparound checks, LLVM vectorises
        out = dst[d:d + m]
        w0, w1, w2, w3 = src[a0:a0 + m], src[a1:a1 + m], src[a2:a2 + m], src[a3:a3 + m]
        for i in range(m):
            out[i] += (s0 * w0[i] + s1 * w1[i]) + (s2 * w2[i] + s3 * w3[i])


@kernel_jit()
def conv_rows_image(ev_idx, ev_cnt, n, c_in, w_in, kh, kw, sh, sw, pt, pl, c_out, h_out, w_out,
                    wr, fan_out, I):
    """Scatter events through a convolution, one kernel row at a time ("row scatter").

    With channel-last layouts the outputs an input position ``(y, x)`` reaches through the taps
    of kernel row ``ky`` are *consecutive* output positions: for stride ``sw`` the taps of one
    phase ``φ = (x + pl) mod sw`` (``kx = φ, φ + sw, ...``) reach output columns
    ``(x + pl - kx) / sw``, which step by one. They form one contiguous run of ``n_φ * C_out``
    floats of ``I``, and in the layout of :func:`row_weight` the matching weights are
    contiguous too. An event ``(y, x, ci, s)`` is thus one AXPY of length ``n_φ * C_out``
    (clipped at the borders) per kernel row reaching an output row, instead of one of length
    ``C_out`` per tap. Events of one position (consecutive in the position-major event list)
    are delivered four at a time, ``out += (s0 * w0 + s1 * w1) + (s2 * w2 + s3 * w3)``
    (:func:`_axpy4`; missing events count as multiplicity 0), so ``I`` is loaded and stored
    once per four events. With dyadic weights every partial sum is exact and the grouping
    does not matter; otherwise float32 sums can differ in the last bits from one event at a
    time. The SynOps are one product per position (all channels of a position have the
    same fan-out). Positions come from float reciprocals, not integer divisions.

    Parameters
    ----------
    ev_idx, ev_cnt : int32
        Events of the source population (channel-last), first ``n`` valid, in any order
        (ascending order, as IF populations emit them, groups every position once).
    c_in, w_in : int
        Source channels and width.
    kh, kw, sh, sw, pt, pl : int
        Kernel size, stride, top and left zero-padding.
    c_out, h_out, w_out : int
        Target channels, height and width.
    wr : float32
        Kernel in the layout of :func:`row_weight` (with ``stride_w = sw``).
    fan_out : int64 (N_src,)
        Structural fan-out of every source neuron (channel-last).
    I : float32 (h_out * w_out * c_out,)
        Input current of the target population (channel-last), incremented.

    Returns
    -------
    int
        SynOps.
    """
    ops = 0
    inv_c = 1.0 / c_in
    inv_w = 1.0 / w_in
    plane = kh * c_in * c_out  # weights per horizontal tap, all rows and input channels
    e = 0
    while e < n:
        pos = _div(ev_idx[e], c_in, inv_c)
        base = pos * c_in
        lim = base + c_in
        y = _div(pos, w_in, inv_w)
        x = pos - y * w_in
        g = e
        spikes = 0
        # consecutive events of the same position form a group (IF populations list their
        # events in ascending order; pooling populations in window order, so a position may
        # come back later: it then forms another group)
        while g < n and base <= ev_idx[g] < lim:
            spikes += abs(ev_cnt[g])
            g += 1
        ops += spikes * fan_out[base]
        # horizontal: taps of phase ph reach output columns ox0 .. ox0 + nph - 1
        if sw == 1:
            ph, nph, woff = 0, kw, 0
            ox0 = x + pl - (kw - 1)
        else:
            ph = (x + pl) % sw
            nph = (kw - ph + sw - 1) // sw if ph < kw else 0
            woff = 0
            for q in range(ph):
                woff += (kw - q + sw - 1) // sw
            woff *= plane
            ox0 = (x + pl - ph) // sw - (nph - 1)
        r0 = max(0, -ox0)
        m = max(min(nph, w_out - ox0) - r0, 0) * c_out
        rs = nph * c_out  # weight stride between input channels within a kernel row
        ob0 = (ox0 + r0) * c_out
        # vertical: kernel rows ky = ky0, ky0 + sh, ... reach output rows oy0, oy0 - 1, ...
        if sh == 1:
            ky0 = max(0, y + pt - (h_out - 1))
        else:
            ky0 = (y + pt) % sh
            while ky0 < y + pt - (h_out - 1) * sh:
                ky0 += sh
        ky1 = min(kh, y + pt + 1) if m > 0 else 0
        oy0 = (y + pt - ky0) // sh if sh > 1 else y + pt - ky0
        k = e
        while k < g:
            # up to four events of the position per pass over the output rows (fewer: the
            # last one again with multiplicity 0)
            nk = min(4, g - k)
            a0 = woff + (ev_idx[k] - base) * rs + r0 * c_out
            a1 = woff + (ev_idx[k + min(1, nk - 1)] - base) * rs + r0 * c_out
            a2 = woff + (ev_idx[k + min(2, nk - 1)] - base) * rs + r0 * c_out
            a3 = woff + (ev_idx[k + nk - 1] - base) * rs + r0 * c_out
            s0 = np.float32(ev_cnt[k])
            s1 = np.float32(ev_cnt[k + 1]) if nk > 1 else np.float32(0.0)
            s2 = np.float32(ev_cnt[k + 2]) if nk > 2 else np.float32(0.0)
            s3 = np.float32(ev_cnt[k + 3]) if nk > 3 else np.float32(0.0)
            oy = oy0
            for ky in range(ky0, ky1, sh):
                kb = ky * c_in * rs
                _axpy4(I, oy * w_out * c_out + ob0, wr, kb + a0, kb + a1, kb + a2, kb + a3,
                       s0, s1, s2, s3, m)
                oy -= 1
            k += nk
        e = g
    return ops


# output channels for which :func:`conv3x3_image` is compiled and used, per stride: it beats the
# row scatter 1.2-3x there, and loses at stride 1 from 64 channels on (`benchmarks/
# bench_kernels.py` conv cases; README "Speed")
WINDOW_LANES = {1: (16, 32), 2: (16, 32, 64)}


@kernel_jit()
def conv3x3_image(ev_idx, ev_cnt, n, c_in, h, w, stride, c_out, wr, fan_out, I):
    """Events through a 3x3 convolution, padding 1, stride 1 or 2, in registers ("window sweep").

    Faster than the row scatter of :func:`conv_rows_image` for few output channels (``c_out``
    in :data:`WINDOW_LANES`), where that spends most of its time loading and storing ``I``.
    The source must list its events in ascending index order (IF populations and the input
    do; pooling populations do not: the engine uses :func:`conv_rows_image` for them).

    One input row ``y`` is swept left to right, the output vectors its events reach held in
    registers (:mod:`.vectors`) as a sliding window. Stride 1: the events at column ``x``
    reach output columns ``x - 1, x, x + 1`` of output rows ``y + 1, y, y - 1`` (kernel rows
    0, 1, 2), nine vectors; each event ``(ci, s)`` adds ``s * Wr[ky, ci, r, :]`` to all nine,
    and when the sweep moves on, column ``x - 1`` has received everything row ``y`` gives it
    and is added to ``I`` once per output row. Stride 2 (output ``ceil(h / 2) x ceil(w / 2)``):
    an even input row reaches output row ``y / 2`` through kernel row 1, an odd one rows
    ``(y + 1) / 2`` and ``(y - 1) / 2`` through kernel rows 0 and 2; an even column reaches
    output column ``x / 2`` (tap 1), an odd one columns ``(x - 1) / 2`` and ``(x + 1) / 2``
    (taps 2 and 0), so two vectors per output row make the window and one is complete after
    every odd column. Every weight vector is loaded once per event, every ``I`` vector once
    per input row it depends on. Per output vector the sum is ``I + ((s_a w_a + s_b w_b) +
    ...)`` over the events of its input columns in order; with dyadic weights every partial
    sum is exact, so it equals the other kernels bit for bit.

    Parameters
    ----------
    ev_idx, ev_cnt : int32
        Events of the source ``(h, w, c_in)`` population (channel-last), first ``n`` valid,
        in ascending ``ev_idx`` order.
    c_in, h, w : int
        Source channels, height and width.
    stride : int
        1 (the target is ``h x w``) or 2 (``ceil(h / 2) x ceil(w / 2)``).
    c_out : int
        Target channels, one of ``WINDOW_LANES[stride]``.
    wr : float32
        Kernel in the layout of :func:`row_weight` with ``stride_w = stride``.
    fan_out : int64 (N_src,)
        Structural fan-out of every source neuron (channel-last).
    I : float32 (h_out * w_out * c_out,)
        Input current of the target population (channel-last), incremented.

    Returns
    -------
    int
        SynOps.
    """
    if stride == 1:
        if c_out == 16:
            return _window_sweep(ev_idx, ev_cnt, n, c_in, h, w, wr, fan_out, I, 16)
        return _window_sweep(ev_idx, ev_cnt, n, c_in, h, w, wr, fan_out, I, 32)
    if c_out == 16:
        return _window_sweep_s2(ev_idx, ev_cnt, n, c_in, h, w, wr, fan_out, I, 16)
    if c_out == 32:
        return _window_sweep_s2(ev_idx, ev_cnt, n, c_in, h, w, wr, fan_out, I, 32)
    return _window_sweep_s2(ev_idx, ev_cnt, n, c_in, h, w, wr, fan_out, I, 64)


@kernel_jit()
def _window_sweep(ev_idx, ev_cnt, n, c_in, h, w, wr, fan_out, I, lanes):
    """:func:`conv3x3_image` at stride 1 for ``c_out == lanes`` (a literal: the vector width)."""
    literally(lanes)
    tap = 3 * lanes              # weights per (ky, ci): Wr[ky, ci, r, :], r = 0, 1, 2
    krow = c_in * tap            # weights per kernel row
    orow = w * lanes             # floats per output row
    ops = 0
    k = 0
    for y in range(h):
        if k >= n or ev_idx[k] >= (y + 1) * w * c_in:
            continue             # no events in this input row
        below = y + 1 < h        # kernel row 0 reaches output row y + 1
        above = y >= 1           # kernel row 2 reaches output row y - 1
        # window over output columns x - 1 (a), x (b), x + 1 (c) for kernel rows 0, 1, 2
        a0, b0, c0 = vzero(lanes), vzero(lanes), vzero(lanes)
        a1, b1, c1 = vzero(lanes), vzero(lanes), vzero(lanes)
        a2, b2, c2 = vzero(lanes), vzero(lanes), vzero(lanes)
        for x in range(w):
            p = y * w + x
            lim = (p + 1) * c_in
            while k < n and ev_idx[k] < lim:
                ops += abs(ev_cnt[k]) * fan_out[ev_idx[k]]
                s = np.float32(ev_cnt[k])
                o = (ev_idx[k] - p * c_in) * tap
                a0, b0, c0 = (vmadd(a0, s, wr, o), vmadd(b0, s, wr, o + lanes),
                              vmadd(c0, s, wr, o + 2 * lanes))
                o += krow
                a1, b1, c1 = (vmadd(a1, s, wr, o), vmadd(b1, s, wr, o + lanes),
                              vmadd(c1, s, wr, o + 2 * lanes))
                o += krow
                a2, b2, c2 = (vmadd(a2, s, wr, o), vmadd(b2, s, wr, o + lanes),
                              vmadd(c2, s, wr, o + 2 * lanes))
                k += 1
            if x >= 1:           # column x - 1 is complete (column -1 is padding)
                d = (x - 1) * lanes
                if below:
                    vflush(I, (y + 1) * orow + d, a0)
                vflush(I, y * orow + d, a1)
                if above:
                    vflush(I, (y - 1) * orow + d, a2)
            a0, b0, c0 = b0, c0, vzero(lanes)
            a1, b1, c1 = b1, c1, vzero(lanes)
            a2, b2, c2 = b2, c2, vzero(lanes)
        d = (w - 1) * lanes      # the last column; column w is padding
        if below:
            vflush(I, (y + 1) * orow + d, a0)
        vflush(I, y * orow + d, a1)
        if above:
            vflush(I, (y - 1) * orow + d, a2)
    return ops


@kernel_jit()
def _window_sweep_s2(ev_idx, ev_cnt, n, c_in, h, w, wr, fan_out, I, lanes):
    """:func:`conv3x3_image` at stride 2 for ``c_out == lanes`` (a literal: the vector width)."""
    literally(lanes)
    h_out = (h + 1) // 2
    orow = ((w + 1) // 2) * lanes  # floats per output row
    tap1 = 3 * c_in * 2 * lanes    # the weights of tap kx = 1 (phase 1) start here
    ops = 0
    k = 0
    for y in range(h):
        if k >= n or ev_idx[k] >= (y + 1) * w * c_in:
            continue               # no events in this input row
        q = y >> 1
        odd = (y & 1) == 1
        # row set A: kernel row 1 into output row q (even y), or 0 into q + 1 (odd y);
        # row set B (odd y only): kernel row 2 into output row q
        ky = 0 if odd else 1
        oy = q + 1 if odd else q
        below = oy < h_out
        a, a_next = vzero(lanes), vzero(lanes)  # output columns x // 2 and x // 2 + 1
        b, b_next = vzero(lanes), vzero(lanes)
        for x in range(w):
            p = y * w + x
            lim = (p + 1) * c_in
            if x & 1:              # taps 2 and 0 (phase 0, r = 0, 1)
                while k < n and ev_idx[k] < lim:
                    ops += abs(ev_cnt[k]) * fan_out[ev_idx[k]]
                    s = np.float32(ev_cnt[k])
                    ci = ev_idx[k] - p * c_in
                    o = (ky * c_in + ci) * 2 * lanes
                    a, a_next = vmadd(a, s, wr, o), vmadd(a_next, s, wr, o + lanes)
                    if odd:
                        o = (2 * c_in + ci) * 2 * lanes
                        b, b_next = vmadd(b, s, wr, o), vmadd(b_next, s, wr, o + lanes)
                    k += 1
                d = (x >> 1) * lanes  # output column (x - 1) / 2 is complete
                if below:
                    vflush(I, oy * orow + d, a)
                if odd:
                    vflush(I, q * orow + d, b)
                a, a_next = a_next, vzero(lanes)
                b, b_next = b_next, vzero(lanes)
            else:                  # tap 1 (phase 1)
                while k < n and ev_idx[k] < lim:
                    ops += abs(ev_cnt[k]) * fan_out[ev_idx[k]]
                    s = np.float32(ev_cnt[k])
                    ci = ev_idx[k] - p * c_in
                    a = vmadd(a, s, wr, tap1 + (ky * c_in + ci) * lanes)
                    if odd:
                        b = vmadd(b, s, wr, tap1 + (2 * c_in + ci) * lanes)
                    k += 1
        if w & 1:                  # the last column is even: its output column is complete
            d = (w >> 1) * lanes
            if below:
                vflush(I, oy * orow + d, a)
            if odd:
                vflush(I, q * orow + d, b)
    return ops


@kernel_jit()
def dense_image(ev_idx, ev_cnt, n, wt, n_dst, I):
    """Scatter events through an all-to-all connection: ``I += s * wt[j]``.

    ``wt`` is float32 ``(N_src * n_dst,)``, the transposed weight ``(N_src, N_dst)`` flattened
    (rows contiguous); the fan-out of every source neuron is ``n_dst``. Returns SynOps.
    """
    ops = 0
    for e in range(n):
        j = ev_idx[e]
        s = ev_cnt[e]
        ops += abs(s) * n_dst
        sf = np.float32(s)
        row = wt[j * n_dst:(j + 1) * n_dst]
        for k in range(n_dst):
            I[k] += sf * row[k]
    return ops


@kernel_jit()
def csr_image(ev_idx, ev_cnt, n, indptr, indices, data, I):
    """Scatter events through an explicit sparse matrix (CSR, one row per source neuron).

    Every stored entry is a synapse (explicit zeros included), so the fan-out of ``j`` is
    ``indptr[j+1] - indptr[j]``. Returns SynOps.
    """
    ops = 0
    for e in range(n):
        j = ev_idx[e]
        s = ev_cnt[e]
        lo = indptr[j]
        hi = indptr[j + 1]
        ops += abs(s) * (hi - lo)
        sf = np.float32(s)
        for k in range(lo, hi):
            I[indices[k]] += sf * data[k]
    return ops


@kernel_jit()
def map_image(ev_idx, ev_cnt, n, target, weight, fan_out, I):
    """Scatter events through a connection with at most one synapse per source neuron.

    ``I[target[j]] += s * weight[j]`` for a source ``j`` with a synapse (``fan_out[j] == 1``),
    as :func:`csr_image` does, without its loop over a row of length 0 or 1, whose exit
    branch the processor cannot predict when half the sources have no synapse (a strided
    shortcut). A source without one (``target[j] == 0``) adds ``-0.0``, which leaves every
    value, ``+0.0`` included, unchanged; the choice is a select, not a branch. Returns SynOps.
    """
    ops = 0
    for e in range(n):
        j = ev_idx[e]
        s = ev_cnt[e]
        ops += abs(s) * fan_out[j]
        v = np.float32(s) * weight[j]
        I[target[j]] += v if fan_out[j] else np.float32(-0.0)
    return ops


@kernel_jit()
def identity_image(ev_idx, ev_cnt, n, scale, I):
    """Scatter events one-to-one with a per-neuron scale: ``I[j] += s * scale[j]``. Returns SynOps."""
    ops = 0
    for e in range(n):
        j = ev_idx[e]
        s = ev_cnt[e]
        ops += abs(s)
        I[j] += np.float32(s) * scale[j]
    return ops
