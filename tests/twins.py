"""Naive numpy twins of the Numba kernels, in one place (imported by the kernel tests).

The neuron and pooling *step* functions themselves live in :mod:`eventsnn.engine.steps` (the
reference engine runs on them; ``test_twins.py`` compares every neuron and pooling kernel with
them). Here are the twins of the synapse kernels and the window helpers of the pooling tests:
plain loops over events, taps and windows, written for clarity, not speed.
"""

import numpy as np

from eventsnn.pooling import pool_geometry


def conv_scatter(counts, weight, stride, padding, dst_shape):
    """Every event times every kernel tap (public (C, H, W) layout), float64."""
    o_n, i_n, kh, kw = weight.shape
    B = counts.shape[0]
    _, ho, wo = dst_shape
    out = np.zeros((B,) + tuple(dst_shape))
    for b, ci, y, x in zip(*np.nonzero(counts)):
        for ky in range(kh):
            for kx in range(kw):
                ny, nx = y + padding[0] - ky, x + padding[1] - kx
                if ny % stride[0] or nx % stride[1]:
                    continue
                oy, ox = ny // stride[0], nx // stride[1]
                if 0 <= oy < ho and 0 <= ox < wo:
                    out[b, :, oy, ox] += counts[b, ci, y, x] * weight[:, ci, ky, kx].astype(np.float64)
    return out


def window_slots(src_shape, dst_shape, kernel, stride, padding):
    """(N_windows, kh*kw) public source index per window slot, -1 for padded slots."""
    c, h, w = src_shape
    _, ho, wo = dst_shape
    slots = np.full((c, ho, wo, kernel[0] * kernel[1]), -1, np.int64)
    for ch in range(c):
        for oy in range(ho):
            for ox in range(wo):
                for ky in range(kernel[0]):
                    for kx in range(kernel[1]):
                        y, x = oy * stride[0] - padding[0] + ky, ox * stride[1] - padding[1] + kx
                        if 0 <= y < h and 0 <= x < w:
                            slots[ch, oy, ox, ky * kernel[1] + kx] = (ch * h + y) * w + x
    return slots.reshape(-1, kernel[0] * kernel[1])


def gather(counts, slots):
    """counts (B, N_src) -> (B, N_windows, K), padded slots 0."""
    padded = np.concatenate([counts, np.zeros((len(counts), 1), counts.dtype)], axis=1)
    return padded[:, np.where(slots < 0, counts.shape[1], slots)]


def window_reduce(x, kernel, stride, padding, reduce):
    """Naive per-window reduction of (T, C, H, W) with zero padding (loop over windows)."""
    (kh, kw), (sh, sw), (pt, pl, pb, pr), (ho, wo) = pool_geometry(x.shape, kernel, stride, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)))
    out = np.zeros(x.shape[:2] + (ho, wo), dtype=np.int64)
    for i in range(ho):
        for j in range(wo):
            out[:, :, i, j] = reduce(xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].reshape(
                x.shape[0], x.shape[1], -1), axis=-1)
    return out


def matmul_in_k_order(a, b):
    """``a @ b`` as float32 rank-1 updates in increasing k: the summation order of
    :func:`eventsnn.kernels.gemm.matmul` (numpy's element-wise float32 ops are exact IEEE)."""
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    out = np.zeros((a.shape[0], b.shape[1]), np.float32)
    for k in range(a.shape[1]):
        out += a[:, k:k + 1] * b[k]
    return out
