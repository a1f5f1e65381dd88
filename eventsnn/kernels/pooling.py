"""Per-image spiking pooling kernels: LIPooling (Eq. 12) and max-gated pooling (Eq. 11).

Both read the events of their source population (channel-last ``(H, W, C)``) and emit events
of the pooled population (channel-last ``(H_out, W_out, C)``, one neuron per window). Windows
may have any kernel, stride and padding (overlapping windows included); padded elements never
spike. Only windows that received an event this step are visited: a window without input
cannot fire (LIPool: every hidden unit is <= 0 after each step; max-gate: the gated element
did not spike).

Source neuron ``j`` at ``(y, x, c)`` lies in window ``(oy, ox, c)`` at slot ``ky * kw + kx``
for every ``(oy, ky)`` of ``y_out/y_tap[y_ptr[y]:y_ptr[y+1]]`` and ``(ox, kx)`` likewise.
Each event costs ``s * fan_out[j]`` SynOps (weight-1 synapses to the windows covering ``j``).
"""

from .caching import kernel_jit


@kernel_jit()
def lipool_image(t, ev_idx, ev_cnt, n, c, w_in, y_ptr, y_out, y_tap, x_ptr, x_out, x_tap,
                 kw, w_out, fan_out, h, stamp, touched, out_idx, out_cnt):
    """One step of LIPooling (Eq. 12) for one image.

    Per window: hidden units ``h_i += count_i`` (this step's input spikes); the window emits
    ``o = max(0, max_i h_i)`` spikes and inhibits every hidden unit of the window by ``o``
    (``h_i -= o``). Hence the cumulative output of a window equals the maximum cumulative
    input count of its elements at every step (max recovery).

    Parameters
    ----------
    t : int
        Step index (marks windows touched this step in ``stamp``).
    ev_idx, ev_cnt : int32
        Events of the source population, first ``n`` valid.
    c, w_in : int
        Channels and width of the source.
    y_ptr, y_out, y_tap, x_ptr, x_out, x_tap : int64
        Window/tap tables per input row and column.
    kw, w_out : int
        Kernel width and output width.
    fan_out : int64 (N_src,)
        Number of windows covering each source neuron.
    h : int32 (N_windows * kh * kw,)
        Hidden units, window-major; updated.
    stamp : int32 (N_windows,)
        Last step each window was touched (initialise to -1).
    touched : int32 (N_windows,)
        Scratch list of windows touched this step.
    out_idx, out_cnt : int32 (N_windows,)
        Output events (window, spikes).

    Returns
    -------
    (int, int)
        Number of output events, SynOps of the pool connection.
    """
    K = h.shape[0] // stamp.shape[0]
    nt = 0
    ops = 0
    for e in range(n):
        j = ev_idx[e]
        s = ev_cnt[e]
        ops += s * fan_out[j]
        ch = j % c
        pos = j // c
        y = pos // w_in
        x = pos - y * w_in
        for a in range(y_ptr[y], y_ptr[y + 1]):
            row = y_out[a] * w_out
            krow = y_tap[a] * kw
            for a2 in range(x_ptr[x], x_ptr[x + 1]):
                win = (row + x_out[a2]) * c + ch
                h[win * K + krow + x_tap[a2]] += s
                if stamp[win] != t:
                    stamp[win] = t
                    touched[nt] = win
                    nt += 1
    ne = 0
    for k in range(nt):
        win = touched[k]
        o = 0
        for i in range(win * K, win * K + K):
            if h[i] > o:
                o = h[i]
        if o > 0:
            for i in range(win * K, win * K + K):
                h[i] -= o
            out_idx[ne] = win
            out_cnt[ne] = o
            ne += 1
    return ne, ops


@kernel_jit()
def maxgate_image(t, ev_idx, ev_cnt, n, c, h_in, w_in, kh, kw, sh, sw, pt, pl,
                  y_ptr, y_out, x_ptr, x_out, w_out, fan_out, cum, cur, stamp, touched,
                  out_idx, out_cnt):
    """One step of max-gated pooling (Eq. 11) for one image.

    Per window the element with the highest cumulative spike count (this step included;
    ties go to the lowest row-major index in the window) is gated through: the window emits
    that element's spikes of this step.

    Parameters
    ----------
    t : int
        Step index (for ``stamp``).
    ev_idx, ev_cnt : int32
        Events of the source population, first ``n`` valid.
    c, h_in, w_in : int
        Source channels, height, width.
    kh, kw, sh, sw, pt, pl : int
        Kernel, stride and leading padding of the windows.
    y_ptr, y_out, x_ptr, x_out : int64
        Windows covering each input row / column.
    w_out : int
        Output width.
    fan_out : int64 (N_src,)
        Number of windows covering each source neuron.
    cum : int32 (N_src,)
        Cumulative spike count of every source neuron; updated.
    cur : int32 (N_src,)
        Scratch, zero on entry and exit: this step's count per source neuron.
    stamp, touched, out_idx, out_cnt
        As in :func:`lipool_image`.

    Returns
    -------
    (int, int)
        Number of output events, SynOps of the pool connection.
    """
    nt = 0
    ops = 0
    for e in range(n):
        j = ev_idx[e]
        s = ev_cnt[e]
        ops += s * fan_out[j]
        cum[j] += s
        cur[j] += s
        ch = j % c
        pos = j // c
        y = pos // w_in
        x = pos - y * w_in
        for a in range(y_ptr[y], y_ptr[y + 1]):
            row = y_out[a] * w_out
            for a2 in range(x_ptr[x], x_ptr[x + 1]):
                win = (row + x_out[a2]) * c + ch
                if stamp[win] != t:
                    stamp[win] = t
                    touched[nt] = win
                    nt += 1
    ne = 0
    for k in range(nt):
        win = touched[k]
        pos = win // c
        ch = win - pos * c
        oy = pos // w_out
        ox = pos - oy * w_out
        best = -1
        best_count = -1
        for ky in range(kh):
            y = oy * sh - pt + ky
            if y < 0 or y >= h_in:
                continue
            for kx in range(kw):
                x = ox * sw - pl + kx
                if x < 0 or x >= w_in:
                    continue
                j = (y * w_in + x) * c + ch
                if cum[j] > best_count:
                    best_count = cum[j]
                    best = j
        o = cur[best]
        if o > 0:
            out_idx[ne] = win
            out_cnt[ne] = o
            ne += 1
    for e in range(n):
        cur[ev_idx[e]] = 0
    return ne, ops
