"""Spiking max pooling on spike-count tensors: LIPooling (Eq. 12) and the max-gate baseline (Eq. 11).

Both functions take the spike counts a pooled population receives at every step, shape
``(T, C, H, W)`` (counts above one are bursts, Sec. 3.3), and return the counts the pooling
population emits at every step, shape ``(T, C, Ho, Wo)``. The geometry follows
``torch.nn.functional.max_pool2d`` (floor mode, stride defaulting to the kernel) and padded
positions receive no spikes (count 0). Windows are independent of each other, so overlapping
windows (stride < kernel) are handled exactly.

These are the standalone, whole-time-series forms of the ``"lipool"`` and ``"maxgate"``
population kinds of :class:`eventsnn.network.Population`; both simulation engines implement
the same rules step by step (docs/design.md, "Simulation semantics", item 4).
"""

from __future__ import annotations

import numpy as np

from .primitives import out_hw, pool_windows, quad


def _int_tuple(value, name, lengths):
    """``value`` as a tuple of ints, broadcasting a scalar to ``lengths[0]`` entries."""
    if np.ndim(value) == 0:
        value = (value,) * lengths[0]
    out = tuple(value)
    if len(out) not in lengths or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in out):
        raise TypeError(
            f"{name} must be an int or a tuple of {' or '.join(map(str, lengths))} ints, got {value!r}"
        )
    return tuple(int(v) for v in out)


def pool_geometry(shape, kernel_size, stride=None, padding=0):
    """Validate a pooling geometry and compute the output size.

    Parameters
    ----------
    shape : tuple of int
        Input shape ``(T, C, H, W)``.
    kernel_size : int or (int, int)
        Window height and width, each >= 1.
    stride : int or (int, int) or None
        Step between windows, each >= 1; ``None`` means the kernel size (as in torch).
    padding : int or (int, int) or (int, int, int, int)
        Zero padding: one value for all sides, ``(ph, pw)`` applied on both sides of each axis
        (torch), or ``(top, left, bottom, right)`` as stored in :class:`PoolConnection`.

    Returns
    -------
    kernel, stride, padding, out_hw : tuples
        ``(kh, kw)``, ``(sh, sw)``, ``(pt, pl, pb, pr)`` and ``(Ho, Wo)``.
    """
    kernel = _int_tuple(kernel_size, "kernel_size", (2,))
    stride = kernel if stride is None else _int_tuple(stride, "stride", (2,))
    pad = quad(_int_tuple(padding, "padding", (4, 2)))
    if min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"kernel_size {kernel} and stride {stride} must be >= 1")
    if min(pad) < 0:
        raise ValueError(f"padding {pad} must be >= 0")
    h, w = shape[2] + pad[0] + pad[2], shape[3] + pad[1] + pad[3]
    if kernel[0] > h or kernel[1] > w:
        raise ValueError(
            f"kernel {kernel} is larger than the padded input {(h, w)}; use a smaller kernel "
            "or more padding"
        )
    return kernel, stride, pad, out_hw(shape[2:], kernel, stride, pad)


def _windows(counts, kernel_size, stride, padding, caller):
    """Validated counts as a ``(T, C, Ho, Wo, kh*kw)`` array of windows (row-major in-window order)."""
    counts = np.asarray(counts)
    if counts.ndim != 4:
        raise ValueError(
            f"{caller}: counts must have shape (T, C, H, W) (one spike-count map per step), "
            f"got shape {counts.shape}"
        )
    if not np.issubdtype(counts.dtype, np.integer):
        raise TypeError(
            f"{caller}: counts must be an integer array of spike counts, got dtype {counts.dtype}; "
            "convert with counts.astype(np.int64) if the values are whole numbers"
        )
    if counts.size and counts.min() < 0:
        raise ValueError(f"{caller}: spike counts must be >= 0, found {counts.min()}")
    kernel, stride, pad, _ = pool_geometry(counts.shape, kernel_size, stride, padding)
    win = pool_windows(counts.astype(np.int64), kernel, stride, pad)
    return win.reshape(win.shape[:4] + (-1,))


def lipool(counts, kernel_size, stride=None, padding=0):
    """Lateral Inhibition Pooling (LIPooling, Eq. 12) of a spike-count time series.

    Every window ``w`` has one hidden unit per element ``i`` (padding included). At step ``t``
    each hidden unit accumulates the count its element receives, ``h_{w,i} += s_i(t)``; the window
    emits ``o_w(t) = max(0, max_i h_{w,i})`` spikes, which inhibit every hidden unit of the window
    by the same amount, ``h_{w,i} -= o_w(t)`` (``w_exc = 1``, ``w_inh = -1``, Eq. 12).

    By induction the cumulative output equals the window maximum of the cumulative input counts
    at every step (max recovery, Sec. 3.4):
    ``sum_{tau<=t} o_w(tau) = max_i sum_{tau<=t} s_i(tau)``.

    Parameters
    ----------
    counts : array_like of int, shape (T, C, H, W)
        Non-negative spike counts per step (bursts: counts > 1).
    kernel_size : int or (int, int)
        Window size.
    stride : int or (int, int), optional
        Window step; defaults to ``kernel_size``.
    padding : int or (int, int) or (int, int, int, int), optional
        Zero padding, see :func:`pool_geometry`. Padded positions never spike.

    Returns
    -------
    ndarray of int64, shape (T, C, Ho, Wo)
        Output spike counts per step.

    Raises
    ------
    TypeError
        If ``counts`` is not an integer array or a geometry value is not an int.
    ValueError
        If ``counts`` is not 4-D or has negative entries, or the geometry is invalid.
    """
    win = _windows(counts, kernel_size, stride, padding, "lipool")
    out = np.zeros(win.shape[:4], dtype=np.int64)
    hidden = np.zeros(win.shape[1:], dtype=np.int64)
    for t in range(win.shape[0]):
        hidden += win[t]
        out[t] = np.maximum(hidden.max(axis=-1), 0)
        hidden -= out[t][..., None]
    return out


def maxgate(counts, kernel_size, stride=None, padding=0):
    """Max-gated spiking pooling, the baseline analysed in Eq. 11.

    At step ``t`` each window passes on the current count ``s_k(t)`` of the element ``k`` whose
    cumulative count ``C_i(t) = sum_{tau<=t} s_i(tau)`` (this step included) is largest; ties go
    to the lowest index in row-major window order.

    Because the selected element changes over time, the cumulative output overshoots the true
    maximum (Eq. 11): for every window and step,
    ``max_i C_i(t) <= sum_{tau<=t} o(tau) <= sum_i C_i(t)``, and ``o(t) <= max_i s_i(t)``.
    (Lower bound by induction: with ``k`` the winner at ``t``,
    ``O(t) = O(t-1) + s_k(t) >= C_k(t-1) + s_k(t) = C_k(t) = max_i C_i(t)``.)
    The paper's remark that the output stays below the sum of the two largest inputs does not
    hold in general with three or more elements per window.

    Parameters
    ----------
    counts : array_like of int, shape (T, C, H, W)
        Non-negative spike counts per step.
    kernel_size, stride, padding
        As in :func:`lipool`.

    Returns
    -------
    ndarray of int64, shape (T, C, Ho, Wo)
        Output spike counts per step.

    Raises
    ------
    TypeError, ValueError
        As :func:`lipool`.
    """
    win = _windows(counts, kernel_size, stride, padding, "maxgate")
    winner = np.cumsum(win, axis=0).argmax(axis=-1)  # argmax returns the first of equal maxima
    return np.take_along_axis(win, winner[..., None], axis=-1)[..., 0]
