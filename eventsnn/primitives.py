"""Sliding-window geometry shared by the graph, the network, the converter and pooling.

Conventions (those of :mod:`eventsnn.graph`, PyTorch and ONNX): kernels and strides are
``[height, width]``, 2-D padding is ``[top, left, bottom, right]``, output sizes are
floor-mode, ``(n + p_begin + p_end - k) // s + 1``, and padded positions hold a constant
(0 for sums and spike counts, ``-inf`` for max pooling).

* :func:`out_size`, :func:`out_hw`: output extent along one axis / of a 2-D window op;
* :func:`pair`, :func:`quad`: an int or a sequence as ``(h, w)`` / ``(top, left, bottom,
  right)``;
* :func:`pool_windows`: a strided view of all windows of a padded batched array.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["out_size", "out_hw", "pair", "quad", "pool_windows"]


def out_size(n: int, kernel: int, stride: int, pad_begin: int = 0, pad_end: int = 0) -> int:
    """Floor-mode output length of a sliding window along one axis.

    Parameters
    ----------
    n : int
        Input length.
    kernel, stride : int
        Window length and step.
    pad_begin, pad_end : int
        Padding added before and after the input.

    Returns
    -------
    int
        ``(n + pad_begin + pad_end - kernel) // stride + 1`` (may be <= 0 when the
        window does not fit; callers validate).
    """
    return (n + pad_begin + pad_end - kernel) // stride + 1


def out_hw(hw, kernel, stride, padding) -> tuple[int, int]:
    """Floor-mode output height and width of a 2-D sliding window (:func:`out_size` per axis).

    Parameters
    ----------
    hw : (int, int)
        Input height and width.
    kernel, stride : (int, int)
        Window ``[kh, kw]`` and step ``[sh, sw]``.
    padding : (int, int, int, int)
        ``[top, left, bottom, right]``.

    Returns
    -------
    (int, int)
        ``(Ho, Wo)`` (may be <= 0 when the window does not fit; callers validate).
    """
    return (out_size(hw[0], kernel[0], stride[0], padding[0], padding[2]),
            out_size(hw[1], kernel[1], stride[1], padding[1], padding[3]))


def pair(v) -> tuple[int, int]:
    """``v`` as ``(h, w)``: an int or a one-element sequence is used for both axes.

    Raises
    ------
    ValueError
        ``v`` has more than two entries.
    """
    if np.ndim(v) == 0:
        return int(v), int(v)
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return v[0], v[0]
    if len(v) != 2:
        raise ValueError(f"expected an int or a pair [h, w], got {list(v)}")
    return v


def quad(v) -> tuple[int, int, int, int]:
    """Padding ``v`` as ``(top, left, bottom, right)``.

    An int (or one-element sequence) pads every side; a pair ``[ph, pw]`` pads both sides of
    each axis (PyTorch's convention); four values are returned as they are.

    Raises
    ------
    ValueError
        ``v`` has three or more than four entries.
    """
    if np.ndim(v) == 0:
        return (int(v),) * 4
    v = tuple(int(a) for a in v)
    if len(v) == 1:
        return (v[0],) * 4
    if len(v) == 2:
        return v[0], v[1], v[0], v[1]
    if len(v) != 4:
        raise ValueError(
            f"expected padding as an int, [ph, pw] or [top, left, bottom, right], got {list(v)}"
        )
    return v


def pool_windows(x: np.ndarray, kernel, stride, padding=0, pad_value: float = 0.0) -> np.ndarray:
    """Strided view of all 2-D sliding windows of a batched NCHW array.

    Parameters
    ----------
    x : numpy.ndarray
        Input ``(B, C, H, W)``.
    kernel, stride : int or sequence of 2 ints
        Window size ``[kh, kw]`` and step ``[sh, sw]``.
    padding : int or sequence of 2 or 4 ints
        ``[top, left, bottom, right]`` (a pair means symmetric ``[ph, pw]``).
    pad_value : float
        Value of padded elements (``-inf`` for max pooling, 0 for sums).

    Returns
    -------
    numpy.ndarray
        Read-only view ``(B, C, Ho, Wo, kh, kw)`` with floor-mode ``Ho, Wo``; element
        ``[b, c, i, j, u, v]`` is padded-input position ``(i*sh + u, j*sw + v)``.
    """
    kh, kw = pair(kernel)
    sh, sw = pair(stride)
    pt, pl, pb, pr = quad(padding)
    if pt or pl or pb or pr:
        x = np.pad(x, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=pad_value)
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))
    return win[:, :, ::sh, ::sw]
