"""Framework-neutral ANN graph: ops with numpy parameters, shape inference and a numpy forward.

A :class:`Graph` is the common currency of eventsnn: importers (``eventsnn.io``) build one,
the converter reads it (and calibrates on :meth:`Graph.forward`), and the SNN is compared
against it.  Every op lives in one registry entry (:data:`OPS`) that holds its shape
inference, its batched numpy forward and its MAC count, so adding an op is one place.

Conventions
-----------
* Shapes stored on nodes are *per sample* (no batch axis): images ``(C, H, W)``,
  vectors ``(N,)``.  :meth:`Graph.forward` takes and returns batched float32 arrays
  ``(B, *shape)`` in NCHW layout.
* Padding of 2-D ops is ``[top, left, bottom, right]``; strides and kernels are
  ``[height, width]``; output size is floor-mode,
  ``(n + p_begin + p_end - k) // s + 1``.

The numpy helpers :func:`conv2d`, :func:`maxpool2d` and :func:`avgpool2d` are public and
reused by the converter and tests; the window geometry they share (:func:`out_size`,
:func:`pool_windows`, the int/pair/padding normalisers) lives in :mod:`eventsnn.primitives`
and is re-exported here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .primitives import out_hw, out_size, pair, pool_windows, quad

__all__ = [
    "Node",
    "Graph",
    "OpDef",
    "OPS",
    "SUPPORTED_OPS",
    "load_graph",
    "conv2d",
    "pool_windows",
    "maxpool2d",
    "avgpool2d",
    "out_size",
    "bn_scale_shift",
    "conv_geometry",
    "adaptive_bounds",
]

_FORMAT = "eventsnn.graph"
_FORMAT_VERSION = 1
_TOPOLOGY_KEY = "__graph__"
_IM2COL_BYTES = 1 << 27  # conv2d processes the batch in chunks whose im2col matrix fits this


# ---------------------------------------------------------------------------------------
# Public numpy helpers (batched NCHW, float32)
# ---------------------------------------------------------------------------------------


def conv2d(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride=1, padding=0,
           groups: int = 1, dilation=1) -> np.ndarray:
    """2-D cross-correlation (PyTorch/ONNX ``Conv``) with reproducible rounding.

    Windows are gathered with :func:`numpy.lib.stride_tricks.sliding_window_view` into one
    im2col matrix ``(C*kh*kw, B*Ho*Wo)`` and contracted with the kernel by one matrix product,
    :func:`eventsnn.kernels.gemm.matmul`, which sums every output over ``(c, ky, kx)`` in a
    fixed order: an image's result does not depend on its batch, the thread count or the CPU
    (a BLAS GEMM's does, in the last bits). A dilated kernel is applied as the kernel with
    ``dilation - 1`` zeros between its taps (the same sums); groups run one product each.

    Parameters
    ----------
    x : numpy.ndarray
        Input ``(B, C, H, W)`` float32.
    w : numpy.ndarray
        Kernel ``(O, C / groups, kh, kw)``.
    b : numpy.ndarray or None
        Bias ``(O,)``.
    stride : int or sequence of 2 ints
        ``[sh, sw]``.
    padding : int or sequence of 2 or 4 ints
        Zero padding ``[top, left, bottom, right]``.
    groups : int
        Input and output channels split into ``groups`` blocks; output block ``g`` reads
        input block ``g`` only (``groups = C`` is a depthwise convolution).
    dilation : int or sequence of 2 ints
        Spacing ``[dh, dw]`` between kernel taps.

    Returns
    -------
    numpy.ndarray
        ``(B, O, Ho, Wo)`` float32, C-contiguous.
    """
    dh, dw = pair(dilation)
    if (dh, dw) != (1, 1):
        o, i, kh, kw = w.shape
        wd = np.zeros((o, i, (kh - 1) * dh + 1, (kw - 1) * dw + 1), dtype=w.dtype)
        wd[:, :, ::dh, ::dw] = w
        w = wd
    if groups != 1:
        ci, co = x.shape[1] // groups, w.shape[0] // groups
        out = np.concatenate([conv2d(x[:, g * ci:(g + 1) * ci], w[g * co:(g + 1) * co], None, stride, padding)
                              for g in range(groups)], axis=1)
        if b is not None:
            out += b.reshape(1, -1, 1, 1)
        return np.ascontiguousarray(out, dtype=np.float32)
    win = pool_windows(x, w.shape[2:], stride, padding, 0.0)  # (B, C, Ho, Wo, kh, kw)
    n, c, ho, wo, kh, kw = win.shape
    chunk = max(1, _IM2COL_BYTES // max(1, c * kh * kw * ho * wo * 4))
    if n > chunk:  # bound the im2col buffer for large batches
        return np.concatenate([conv2d(x[i:i + chunk], w, b, stride, padding) for i in range(0, n, chunk)])
    cols = np.ascontiguousarray(win.transpose(1, 4, 5, 0, 2, 3)).reshape(c * kh * kw, n * ho * wo)
    from .kernels.gemm import matmul

    out = matmul(w.reshape(w.shape[0], c * kh * kw), cols)  # (O, B*Ho*Wo), reproducible rounding
    if b is not None:
        out += b[:, None]
    out = out.reshape(w.shape[0], n, ho, wo).transpose(1, 0, 2, 3)
    return np.ascontiguousarray(out, dtype=np.float32)


def maxpool2d(x: np.ndarray, kernel, stride, padding=0) -> np.ndarray:
    """Max pooling of ``(B, C, H, W)``; padded elements are ``-inf`` (never selected).

    Parameters
    ----------
    x : numpy.ndarray
        Input ``(B, C, H, W)``.
    kernel, stride, padding
        As in :func:`pool_windows`.

    Returns
    -------
    numpy.ndarray
        ``(B, C, Ho, Wo)`` float32.
    """
    win = pool_windows(x, kernel, stride, padding, -np.inf)
    return np.ascontiguousarray(win.max(axis=(4, 5)), dtype=np.float32)


def avgpool2d(x: np.ndarray, kernel, stride, padding=0, count_include_pad: bool = True) -> np.ndarray:
    """Average pooling of ``(B, C, H, W)`` with zero padding.

    Parameters
    ----------
    x : numpy.ndarray
        Input ``(B, C, H, W)``.
    kernel, stride, padding
        As in :func:`pool_windows`.
    count_include_pad : bool
        If True every window is divided by ``kh*kw`` (padded zeros count); otherwise by the
        number of real (unpadded) elements in the window, as in PyTorch/ONNX.

    Returns
    -------
    numpy.ndarray
        ``(B, C, Ho, Wo)`` float32.
    """
    kh, kw = pair(kernel)
    win = pool_windows(x, (kh, kw), stride, padding, 0.0)
    total = win.sum(axis=(4, 5), dtype=np.float32)
    if count_include_pad or not any(quad(padding)):
        return np.ascontiguousarray(total / np.float32(kh * kw), dtype=np.float32)
    ones = np.ones((1, 1) + x.shape[2:], dtype=np.float32)
    count = pool_windows(ones, (kh, kw), stride, padding, 0.0).sum(axis=(4, 5))
    return np.ascontiguousarray(total / count, dtype=np.float32)


# ---------------------------------------------------------------------------------------
# Node and op registry
# ---------------------------------------------------------------------------------------


@dataclass
class Node:
    """One op of a :class:`Graph`.

    Attributes
    ----------
    name : str
        Unique name in the graph.
    op : str
        Canonical op name, one of :data:`SUPPORTED_OPS`.
    inputs : tuple of str
        Names of producer nodes (or the graph's ``input_name``), in argument order.
    attrs : dict
        JSON-serialisable attributes; canonicalised (defaults filled, ints/lists) by
        :class:`Graph`.
    params : dict of str to numpy.ndarray
        float32 parameter arrays (e.g. ``weight``, ``bias``).
    shape : tuple of int or None
        Per-sample output shape, filled by shape inference in :class:`Graph`.
    """

    name: str
    op: str
    inputs: tuple = ()
    attrs: dict = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    shape: tuple | None = None


@dataclass(frozen=True)
class OpDef:
    """Registry entry describing one canonical op.

    Attributes
    ----------
    name : str
        Canonical op name.
    n_inputs : tuple of (int, int or None)
        Minimum and maximum number of inputs (None = unbounded).
    params : tuple of str
        Required parameter names.
    optional_params : tuple of str
        Optional parameter names.
    infer : callable
        ``infer(node, in_shapes) -> out_shape``; canonicalises ``node.attrs`` in place and
        raises ValueError (via :func:`_fail`) on any inconsistency.
    forward : callable
        ``forward(node, xs) -> y`` on batched float32 arrays.
    macs : callable
        ``macs(node, in_shapes) -> int`` multiply-accumulates per sample.
    """

    name: str
    n_inputs: tuple
    params: tuple
    optional_params: tuple
    infer: Callable
    forward: Callable
    macs: Callable


def _fail(node: Node, msg: str) -> ValueError:
    return ValueError(f"node {node.name!r} (op {node.op!r}): {msg}")


def _attr_ints(node: Node, key: str, conv: Callable, default=None) -> list[int]:
    if key not in node.attrs:
        if default is None:
            raise _fail(node, f"missing attribute {key!r}")
        value = default
    else:
        value = node.attrs[key]
    try:
        out = list(conv(value))
    except (TypeError, ValueError) as e:
        raise _fail(node, f"attribute {key}={value!r} is malformed: {e}") from None
    node.attrs[key] = out
    return out


def _check_image(node: Node, shape: tuple) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise _fail(
            node,
            f"expected an image input of per-sample shape (C, H, W), got {shape}"
            " (insert a 'reshape' to (C, H, W) first)",
        )
    return shape


def _window_shape(node: Node, shape, kernel, stride, padding) -> tuple[int, int]:
    _, h, w = shape
    if min(kernel) < 1 or min(stride) < 1:
        raise _fail(node, f"kernel {kernel} and stride {stride} must be >= 1")
    if min(padding) < 0:
        raise _fail(node, f"padding {padding} must be non-negative")
    ho, wo = out_hw((h, w), kernel, stride, padding)
    if ho < 1 or wo < 1:
        raise _fail(
            node,
            f"window {kernel} with padding {padding} does not fit the input of spatial size "
            f"{(h, w)} (output would be {(ho, wo)}); use a smaller kernel or more padding",
        )
    return ho, wo


def _zero_macs(node: Node, in_shapes) -> int:
    return 0


# conv ----------------------------------------------------------------------------------


def conv_geometry(attrs: dict) -> tuple[int, list[int]]:
    """``(groups, [dh, dw])`` of a conv node's canonical attributes (1 and [1, 1] when absent)."""
    return int(attrs.get("groups", 1)), list(pair(attrs.get("dilation", 1)))


def _conv_infer(node, in_shapes):
    c, h, w = _check_image(node, in_shapes[0])
    groups = node.attrs.get("groups", 1)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise _fail(node, f"attribute groups={groups!r} must be a positive integer")
    dilation = _attr_ints(node, "dilation", pair, [1, 1])
    if min(dilation) < 1:
        raise _fail(node, f"dilation {dilation} must be >= 1")
    # canonical form: groups / dilation are stored only when they differ from 1
    if groups == 1:
        node.attrs.pop("groups", None)
    if dilation == [1, 1]:
        node.attrs.pop("dilation")
    wt = node.params["weight"]
    if wt.ndim != 4:
        raise _fail(node, f"weight must be (O, I/groups, kh, kw), got shape {wt.shape}")
    o, i, kh, kw = wt.shape
    if c % groups or o % groups:
        raise _fail(node, f"groups={groups} must divide the {c} input and {o} output channels")
    if i * groups != c:
        per_group = f" ({i} per group x {groups} groups)" if groups > 1 else ""
        raise _fail(node, f"weight expects {i * groups} input channels{per_group}, "
                          f"input has {c} (shape {in_shapes[0]})")
    stride = _attr_ints(node, "stride", pair, [1, 1])
    padding = _attr_ints(node, "padding", quad, [0, 0, 0, 0])
    _bias_shape(node, o)
    span = [(kh - 1) * dilation[0] + 1, (kw - 1) * dilation[1] + 1]
    ho, wo = _window_shape(node, (c, h, w), span, stride, padding)
    return (o, ho, wo)


def _bias_shape(node, n):
    b = node.params.get("bias")
    if b is not None and b.shape != (n,):
        raise _fail(node, f"bias must have shape ({n},), got {b.shape}")


def _conv_forward(node, xs):
    groups, dilation = conv_geometry(node.attrs)
    return conv2d(xs[0], node.params["weight"], node.params.get("bias"),
                  node.attrs["stride"], node.attrs["padding"], groups, dilation)


def _conv_macs(node, in_shapes):
    o, i, kh, kw = node.params["weight"].shape
    return int(o * i * kh * kw * node.shape[1] * node.shape[2])


# linear --------------------------------------------------------------------------------


def _linear_infer(node, in_shapes):
    (shape,) = in_shapes
    wt = node.params["weight"]
    if wt.ndim != 2:
        raise _fail(node, f"weight must be (O, I), got shape {wt.shape}")
    if len(shape) != 1:
        raise _fail(node, f"expected a vector input (I,), got {shape} (insert a 'flatten' first)")
    if wt.shape[1] != shape[0]:
        raise _fail(node, f"weight expects {wt.shape[1]} inputs, got input shape {shape}")
    _bias_shape(node, wt.shape[0])
    return (wt.shape[0],)


def _linear_forward(node, xs):
    from .kernels.gemm import linear

    y = linear(xs[0], node.params["weight"])
    b = node.params.get("bias")
    if b is not None:
        y += b
    return y.astype(np.float32, copy=False)


def _linear_macs(node, in_shapes):
    return int(node.params["weight"].size)


# batchnorm -----------------------------------------------------------------------------


def _bn_infer(node, in_shapes):
    (shape,) = in_shapes
    if len(shape) not in (1, 3):
        raise _fail(node, f"expected input (C,) or (C, H, W), got {shape}")
    c = shape[0]
    for k in ("mean", "var", "weight", "bias"):
        if node.params[k].shape != (c,):
            raise _fail(node, f"param {k!r} must have shape ({c},), got {node.params[k].shape}")
    eps = node.attrs.get("eps", 1e-5)
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise _fail(node, f"attribute eps={eps!r} must be a float") from None
    if not eps >= 0:
        raise _fail(node, f"attribute eps={eps} must be >= 0")
    if np.any(node.params["var"] + eps <= 0):
        raise _fail(node, "var + eps must be positive for every channel")
    node.attrs["eps"] = eps
    return shape


def bn_scale_shift(params: dict, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel affine form of inference batch normalisation.

    ``y = (x - mean) / sqrt(var + eps) * weight + bias = scale * x + shift`` (paper Eq. 7
    folds this into the preceding layer).

    Parameters
    ----------
    params : dict
        ``mean``, ``var``, ``weight``, ``bias`` arrays ``(C,)``.
    eps : float
        Variance epsilon.

    Returns
    -------
    scale, shift : numpy.ndarray
        float32 ``(C,)`` each (computed in float64).
    """
    var = params["var"].astype(np.float64)
    scale = params["weight"].astype(np.float64) / np.sqrt(var + eps)
    shift = params["bias"].astype(np.float64) - params["mean"].astype(np.float64) * scale
    return scale.astype(np.float32), shift.astype(np.float32)


def _bn_forward(node, xs):
    x = xs[0]
    scale, shift = bn_scale_shift(node.params, node.attrs["eps"])
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    return (x * scale.reshape(bshape) + shift.reshape(bshape)).astype(np.float32, copy=False)


# elementwise / structural ----------------------------------------------------------------


def _same_infer(node, in_shapes):
    return in_shapes[0]


def _relu_forward(node, xs):
    return np.maximum(xs[0], np.float32(0))


def _identity_forward(node, xs):
    return xs[0]


def _add_infer(node, in_shapes):
    for s in in_shapes[1:]:
        if s != in_shapes[0]:
            raise _fail(node, f"all inputs must have equal shapes, got {list(in_shapes)}")
    return in_shapes[0]


def _add_forward(node, xs):
    y = xs[0] + xs[1]
    for x in xs[2:]:
        y += x
    return y


def _flatten_infer(node, in_shapes):
    return (int(np.prod(in_shapes[0])),)


def _flatten_forward(node, xs):
    return xs[0].reshape(xs[0].shape[0], -1)


def _reshape_infer(node, in_shapes):
    target = _attr_ints(node, "shape", lambda v: [int(a) for a in v])
    if any(t < 1 for t in target):
        raise _fail(node, f"target shape {target} must be fully resolved positive sizes (no -1/0)")
    if int(np.prod(target)) != int(np.prod(in_shapes[0])):
        raise _fail(node, f"cannot reshape {in_shapes[0]} to {tuple(target)}: element counts differ")
    return tuple(target)


def _reshape_forward(node, xs):
    return xs[0].reshape((xs[0].shape[0],) + tuple(node.attrs["shape"]))


# pooling -------------------------------------------------------------------------------


def _pool_infer(node, in_shapes):
    c, h, w = _check_image(node, in_shapes[0])
    kernel = _attr_ints(node, "kernel", pair)
    stride = _attr_ints(node, "stride", pair, kernel)
    padding = _attr_ints(node, "padding", quad, [0, 0, 0, 0])
    if padding[0] >= kernel[0] or padding[2] >= kernel[0] or padding[1] >= kernel[1] or padding[3] >= kernel[1]:
        raise _fail(node, f"padding {padding} must be smaller than the kernel {kernel} "
                          "(otherwise a window can lie entirely in the padding)")
    if node.op == "avgpool":
        node.attrs["count_include_pad"] = bool(node.attrs.get("count_include_pad", True))
    ho, wo = _window_shape(node, (c, h, w), kernel, stride, padding)
    return (c, ho, wo)


def _maxpool_forward(node, xs):
    a = node.attrs
    return maxpool2d(xs[0], a["kernel"], a["stride"], a["padding"])


def _avgpool_forward(node, xs):
    a = node.attrs
    return avgpool2d(xs[0], a["kernel"], a["stride"], a["padding"], a["count_include_pad"])


def _gap_infer(node, in_shapes):
    c, _, _ = _check_image(node, in_shapes[0])
    return (c, 1, 1)


def _gap_forward(node, xs):
    return xs[0].mean(axis=(2, 3), keepdims=True, dtype=np.float32)


# pad / slice ---------------------------------------------------------------------------


def _pad_infer(node, in_shapes):
    (shape,) = in_shapes
    nd = len(shape)
    pads = _attr_ints(node, "pads", lambda v: [int(a) for a in v])
    if len(pads) != 2 * nd:
        raise _fail(node, f"pads must have {2 * nd} entries (begin per axis, then end per axis) "
                          f"for input shape {shape}, got {pads}")
    if min(pads) < 0:
        raise _fail(node, f"pads {pads} must be non-negative (use a 'slice' to crop)")
    return tuple(s + pads[i] + pads[i + nd] for i, s in enumerate(shape))


def _pad_forward(node, xs):
    pads = node.attrs["pads"]
    nd = len(pads) // 2
    width = [(0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)]
    return np.pad(xs[0], width)


def _slice_infer(node, in_shapes):
    (shape,) = in_shapes
    nd = len(shape)
    conv = lambda v: [int(a) for a in v]  # noqa: E731
    starts = _attr_ints(node, "starts", conv)
    ends = _attr_ints(node, "ends", conv)
    steps = _attr_ints(node, "steps", conv, [1] * nd)
    if not len(starts) == len(ends) == len(steps) == nd:
        raise _fail(node, f"starts/ends/steps need one entry per axis of {shape}, "
                          f"got {starts}/{ends}/{steps}")
    out = []
    for ax, (s, e, st, n) in enumerate(zip(starts, ends, steps, shape)):
        if st < 1:
            raise _fail(node, f"steps {steps} must be >= 1")
        if not (0 <= s <= n and 0 <= e <= n):
            raise _fail(node, f"axis {ax}: start {s} / end {e} must be clamped to [0, {n}]")
        k = len(range(s, e, st))
        if k < 1:
            raise _fail(node, f"axis {ax}: slice {s}:{e}:{st} of size {n} is empty")
        out.append(k)
    return tuple(out)


def _slice_forward(node, xs):
    a = node.attrs
    idx = (slice(None),) + tuple(slice(s, e, st) for s, e, st in zip(a["starts"], a["ends"], a["steps"]))
    return np.ascontiguousarray(xs[0][idx])


# bounded ReLU / concat / transpose / adaptive average pooling ------------------------------


def _clip_infer(node, in_shapes):
    hi = node.attrs.get("max")
    try:
        hi = float(hi)
    except (TypeError, ValueError):
        raise _fail(node, f"attribute max={hi!r} must be a number (the upper bound of min(max(x, 0), max))") from None
    if not (np.isfinite(hi) and hi > 0):
        raise _fail(node, f"attribute max={hi} must be finite and > 0 (ReLU6: max=6)")
    node.attrs["max"] = hi
    return in_shapes[0]


def _clip_forward(node, xs):
    return np.clip(xs[0], np.float32(0), np.float32(node.attrs["max"]))


def _concat_infer(node, in_shapes):
    ref = in_shapes[0]
    axis = node.attrs.get("axis", 0)
    if isinstance(axis, bool) or not isinstance(axis, int) or not -len(ref) <= axis < len(ref):
        raise _fail(node, f"attribute axis={axis!r} must be a per-sample axis in [0, {len(ref)}) "
                          "(the channel axis of (C, H, W) is 0: torch.cat(dim=1) of NCHW tensors)")
    axis %= len(ref)
    node.attrs["axis"] = axis
    for s in in_shapes[1:]:
        if len(s) != len(ref) or any(a != b for k, (a, b) in enumerate(zip(s, ref)) if k != axis):
            raise _fail(node, f"inputs must agree on every axis but {axis}, got {list(in_shapes)}")
    return tuple(sum(s[axis] for s in in_shapes) if k == axis else n for k, n in enumerate(ref))


def _concat_forward(node, xs):
    return np.concatenate(xs, axis=1 + node.attrs["axis"])


def _transpose_infer(node, in_shapes):
    (shape,) = in_shapes
    perm = _attr_ints(node, "perm", lambda v: [int(a) for a in v])
    if sorted(perm) != list(range(len(shape))):
        raise _fail(node, f"perm {perm} must be a permutation of the per-sample axes 0..{len(shape) - 1} "
                          "(no batch axis: NCHW -> NHWC is perm [1, 2, 0])")
    return tuple(shape[k] for k in perm)


def _transpose_forward(node, xs):
    return np.ascontiguousarray(xs[0].transpose([0] + [1 + k for k in node.attrs["perm"]]))


def adaptive_bounds(n_in: int, n_out: int) -> list[tuple[int, int]]:
    """Windows ``[floor(i n_in / n_out), ceil((i + 1) n_in / n_out))`` of adaptive pooling (PyTorch)."""
    return [(i * n_in // n_out, -(-(i + 1) * n_in // n_out)) for i in range(n_out)]


def _adaptive_infer(node, in_shapes):
    c, h, w = _check_image(node, in_shapes[0])
    oh, ow = _attr_ints(node, "output", pair)
    if not (1 <= oh <= h and 1 <= ow <= w):
        raise _fail(node, f"output size {[oh, ow]} must be between 1 and the input size {[h, w]}")
    return (c, oh, ow)


def _adaptive_forward(node, xs):
    x = xs[0]
    oh, ow = node.attrs["output"]
    rows = adaptive_bounds(x.shape[2], oh)
    cols = adaptive_bounds(x.shape[3], ow)
    out = np.empty(x.shape[:2] + (oh, ow), dtype=np.float32)
    for i, (y0, y1) in enumerate(rows):
        for j, (x0, x1) in enumerate(cols):
            out[:, :, i, j] = x[:, :, y0:y1, x0:x1].mean(axis=(2, 3), dtype=np.float32)
    return out


OPS: dict[str, OpDef] = {
    d.name: d
    for d in [
        OpDef("conv", (1, 1), ("weight",), ("bias",), _conv_infer, _conv_forward, _conv_macs),
        OpDef("linear", (1, 1), ("weight",), ("bias",), _linear_infer, _linear_forward, _linear_macs),
        OpDef("batchnorm", (1, 1), ("mean", "var", "weight", "bias"), (), _bn_infer, _bn_forward, _zero_macs),
        OpDef("relu", (1, 1), (), (), _same_infer, _relu_forward, _zero_macs),
        OpDef("maxpool", (1, 1), (), (), _pool_infer, _maxpool_forward, _zero_macs),
        OpDef("avgpool", (1, 1), (), (), _pool_infer, _avgpool_forward, _zero_macs),
        OpDef("global_avgpool", (1, 1), (), (), _gap_infer, _gap_forward, _zero_macs),
        OpDef("flatten", (1, 1), (), (), _flatten_infer, _flatten_forward, _zero_macs),
        OpDef("reshape", (1, 1), (), (), _reshape_infer, _reshape_forward, _zero_macs),
        OpDef("add", (2, None), (), (), _add_infer, _add_forward, _zero_macs),
        OpDef("identity", (1, 1), (), (), _same_infer, _identity_forward, _zero_macs),
        OpDef("pad", (1, 1), (), (), _pad_infer, _pad_forward, _zero_macs),
        OpDef("slice", (1, 1), (), (), _slice_infer, _slice_forward, _zero_macs),
        OpDef("clip", (1, 1), (), (), _clip_infer, _clip_forward, _zero_macs),
        OpDef("concat", (1, None), (), (), _concat_infer, _concat_forward, _zero_macs),
        OpDef("transpose", (1, 1), (), (), _transpose_infer, _transpose_forward, _zero_macs),
        OpDef("adaptive_avgpool", (1, 1), (), (), _adaptive_infer, _adaptive_forward, _zero_macs),
    ]
}
"""Op registry: canonical op name -> :class:`OpDef`."""

SUPPORTED_OPS: tuple[str, ...] = tuple(sorted(OPS))
"""Canonical op names accepted by :class:`Graph`."""


# ---------------------------------------------------------------------------------------
# Graph
# ---------------------------------------------------------------------------------------


def _jsonable(node: Node, value):
    """Canonical JSON-compatible copy of an attribute value (numpy scalars -> python)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, str) or value is None:
        return value
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_jsonable(node, v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, dict):
        return {str(k): _jsonable(node, v) for k, v in value.items()}
    raise _fail(node, f"attribute value {value!r} of type {type(value).__name__} is not "
                      "JSON-serialisable; use ints, floats, bools, strings or lists")


class Graph:
    """A validated, shape-inferred DAG of canonical ops with a numpy forward pass.

    Parameters
    ----------
    nodes : sequence of Node
        Nodes in topological order (each input is the graph input or an earlier node).
    input_shape : tuple of int
        Per-sample input shape, e.g. ``(3, 32, 32)``.
    output : str, optional
        Name of the output node; defaults to the last node.
    input_name : str
        Name by which nodes refer to the graph input.

    Raises
    ------
    ValueError
        Unsupported op (names the node, the op and :data:`SUPPORTED_OPS`), unknown or
        out-of-order inputs, duplicate names, missing/unknown/non-finite params, or any
        shape mismatch (names the node, the op and what was expected vs. got).

    Notes
    -----
    Nodes are kept (not copied): ``attrs`` are canonicalised in place (defaults filled,
    pairs expanded to lists), ``params`` converted to contiguous float32 arrays, and
    ``shape`` filled in.
    """

    def __init__(self, nodes, input_shape, output: str | None = None, input_name: str = "input"):
        self.nodes: list[Node] = list(nodes)
        if not self.nodes:
            raise ValueError("a Graph needs at least one node")
        try:
            self.input_shape = tuple(int(s) for s in input_shape)
        except (TypeError, ValueError):
            raise ValueError(f"input_shape must be a tuple of ints such as (3, 32, 32), got {input_shape!r}") from None
        if not self.input_shape or min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be non-empty positive sizes per sample (no batch axis), "
                             f"got {self.input_shape}")
        self.input_name = str(input_name)
        self._index: dict[str, int] = {}
        shapes = {self.input_name: self.input_shape}
        for i, node in enumerate(self.nodes):
            if not isinstance(node, Node):
                raise TypeError(f"nodes[{i}] is a {type(node).__name__}, expected eventsnn.graph.Node")
            self._check_node(node, shapes)
            self._index[node.name] = i
            shapes[node.name] = node.shape
        self.output = self.nodes[-1].name if output is None else str(output)
        if self.output not in self._index:
            raise ValueError(f"output {self.output!r} is not a node of the graph; "
                             f"pass one of {list(self._index)[-5:]} (or omit it for the last node)")
        self._consumers: dict[str, list[Node]] = {n: [] for n in shapes}
        for node in self.nodes:
            for inp in dict.fromkeys(node.inputs):
                self._consumers[inp].append(node)

    def _check_node(self, node: Node, shapes: dict) -> None:
        if not isinstance(node.name, str) or not node.name:
            raise ValueError(f"node name must be a non-empty string, got {node.name!r}")
        if node.name in shapes:
            what = "the graph input name" if node.name == self.input_name else "an earlier node"
            raise ValueError(f"node {node.name!r}: name is already used by {what}; node names must be unique")
        opdef = OPS.get(node.op)
        if opdef is None:
            from .validation import UnsupportedModelError

            raise UnsupportedModelError(f"node {node.name!r}: unsupported op {node.op!r}; "
                                        f"supported ops are {', '.join(SUPPORTED_OPS)}",
                                        node=node.name, op=node.op)
        if isinstance(node.inputs, str):
            node.inputs = (node.inputs,)
        node.inputs = tuple(node.inputs)
        lo, hi = opdef.n_inputs
        if len(node.inputs) < lo or (hi is not None and len(node.inputs) > hi):
            want = str(lo) if lo == hi else f"at least {lo}" if hi is None else f"{lo}..{hi}"
            raise _fail(node, f"expected {want} input(s), got {len(node.inputs)}: {list(node.inputs)}")
        for inp in node.inputs:
            if inp not in shapes:
                raise _fail(node, f"input {inp!r} is neither the graph input {self.input_name!r} nor an "
                                  "earlier node; nodes must be listed in topological order")
        if not isinstance(node.attrs, dict) or not isinstance(node.params, dict):
            raise _fail(node, "attrs and params must be dicts")
        allowed = set(opdef.params) | set(opdef.optional_params)
        missing = [p for p in opdef.params if p not in node.params]
        unknown = [p for p in node.params if p not in allowed]
        if missing or unknown:
            raise _fail(node, f"params {sorted(node.params)} do not match the op: missing {missing}, "
                              f"unknown {unknown} (allowed: {sorted(allowed)})")
        params = {}
        for k, v in node.params.items():
            if v is None and k in opdef.optional_params:
                continue
            try:
                arr = np.ascontiguousarray(v, dtype=np.float32)
            except (TypeError, ValueError):
                raise _fail(node, f"param {k!r} must be a numeric array, got {type(v).__name__}") from None
            if not np.all(np.isfinite(arr)):
                raise _fail(node, f"param {k!r} contains NaN or inf")
            params[k] = arr
        node.params = params
        node.attrs = _jsonable(node, node.attrs)
        shape = opdef.infer(node, [shapes[i] for i in node.inputs])
        node.shape = tuple(int(s) for s in shape)
        node.attrs = _jsonable(node, node.attrs)

    # --- access ------------------------------------------------------------------------

    def node(self, name: str) -> Node:
        """Return the node called ``name`` (KeyError naming the available nodes otherwise)."""
        try:
            return self.nodes[self._index[name]]
        except KeyError:
            raise KeyError(f"no node named {name!r}; nodes are {list(self._index)}") from None

    def consumers(self, name: str) -> list[Node]:
        """Nodes (in topological order) that take ``name`` (a node or the graph input) as input."""
        if name not in self._consumers:
            raise KeyError(f"no node named {name!r}; nodes are {list(self._index)}")
        return list(self._consumers[name])

    def shape_of(self, name: str) -> tuple:
        """Per-sample shape of a node's output or of the graph input."""
        return self.input_shape if name == self.input_name else self.node(name).shape

    @property
    def output_shape(self) -> tuple:
        """Per-sample shape of the output node."""
        return self.node(self.output).shape

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self):
        return iter(self.nodes)

    def __repr__(self) -> str:
        return (f"Graph({len(self.nodes)} nodes, input {self.input_name!r} {self.input_shape}, "
                f"output {self.output!r} {self.output_shape})")

    # --- compute -----------------------------------------------------------------------

    def check_input(self, x) -> np.ndarray:
        """Validate a batch for :meth:`forward` and return it as contiguous float32.

        Raises
        ------
        ValueError, TypeError
            Wrong shape, non-floating dtype, or NaN/inf values; the message says how to fix it
            (:func:`eventsnn.validation.check_batch`).
        """
        from .validation import check_batch

        return check_batch(x, self.input_shape, "input")

    def forward(self, x, return_all: bool = False):
        """Run the ANN in numpy float32.

        Parameters
        ----------
        x : array_like
            Batch ``(B, *input_shape)`` of floating values (cast to float32).
        return_all : bool
            If True, return every activation, not only the output.

        Returns
        -------
        numpy.ndarray or dict
            Output ``(B, *output_shape)`` float32, or (``return_all``) a dict
            ``name -> (B, *shape)`` for the graph input and every node.
        """
        acts = {self.input_name: self.check_input(x)}
        last_use = {}
        if not return_all:
            for i, node in enumerate(self.nodes):
                for inp in node.inputs:
                    last_use[inp] = i
        for i, node in enumerate(self.nodes):
            y = OPS[node.op].forward(node, [acts[n] for n in node.inputs])
            acts[node.name] = y
            if not return_all:
                for inp in node.inputs:
                    if last_use.get(inp) == i and inp != self.output:
                        acts.pop(inp, None)
        return acts if return_all else acts[self.output]

    __call__ = forward

    def macs(self) -> dict[str, int]:
        """Multiply-accumulate operations per sample for every node (conv and linear; 0 otherwise)."""
        return {n.name: OPS[n.op].macs(n, [self.shape_of(i) for i in n.inputs]) for n in self.nodes}

    def n_params(self) -> int:
        """Total number of parameter values (all nodes)."""
        return int(sum(p.size for n in self.nodes for p in n.params.values()))

    def summary(self) -> str:
        """Text table with one row per node: name, op, inputs, shape, params, MACs (plus totals)."""
        macs = self.macs()
        rows = [("name", "op", "inputs", "shape", "params", "MACs")]
        rows.append((self.input_name, "input", "", str(self.input_shape), "0", "0"))
        for n in self.nodes:
            rows.append((n.name, n.op, ",".join(n.inputs), str(n.shape),
                         f"{sum(p.size for p in n.params.values()):,}", f"{macs[n.name]:,}"))
        rows.append(("total", "", "", f"out {self.output}", f"{self.n_params():,}", f"{sum(macs.values()):,}"))
        widths = [max(len(r[j]) for r in rows) for j in range(6)]
        lines = []
        for k, r in enumerate(rows):
            cells = [c.ljust(w) if j < 4 else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths))]
            lines.append("  ".join(cells).rstrip())
            if k == 0 or k == len(rows) - 2:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)

    # --- persistence -------------------------------------------------------------------

    def save(self, path) -> Path:
        """Save to an ``.npz`` file (topology as JSON + float32 params), loadable by :func:`load_graph`.

        Parameters
        ----------
        path : str or os.PathLike
            Destination file, written exactly at this path.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        arrays, nodes = {}, []
        for i, n in enumerate(self.nodes):
            keys = {}
            for k, v in n.params.items():
                keys[k] = f"p{i}_{k}"
                arrays[keys[k]] = v
            nodes.append({"name": n.name, "op": n.op, "inputs": list(n.inputs), "attrs": n.attrs, "params": keys})
        topo = {"format": _FORMAT, "version": _FORMAT_VERSION, "input_shape": list(self.input_shape),
                "input_name": self.input_name, "output": self.output, "nodes": nodes}
        arrays[_TOPOLOGY_KEY] = np.array(json.dumps(topo))
        path = Path(path)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
        return path


def load_graph(path) -> Graph:
    """Load a :class:`Graph` saved by :meth:`Graph.save` (exact, float32 bit-for-bit).

    Parameters
    ----------
    path : str or os.PathLike
        The ``.npz`` file.

    Returns
    -------
    Graph

    Raises
    ------
    ValueError
        The file is not an eventsnn graph file (or is corrupt / from a newer version).
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except FileNotFoundError:
        raise
    except Exception as e:  # zipfile/pickle errors: not an npz
        raise ValueError(f"{path}: not a readable .npz graph file ({e}); save graphs with Graph.save") from None
    if _TOPOLOGY_KEY not in arrays:
        raise ValueError(f"{path}: .npz has no {_TOPOLOGY_KEY!r} entry; it was not written by Graph.save")
    topo = json.loads(str(arrays[_TOPOLOGY_KEY]))
    if topo.get("format") != _FORMAT or int(topo.get("version", 0)) > _FORMAT_VERSION:
        raise ValueError(f"{path}: unknown graph format {topo.get('format')!r} version {topo.get('version')!r} "
                         f"(this eventsnn reads {_FORMAT} up to version {_FORMAT_VERSION})")
    nodes = [Node(d["name"], d["op"], tuple(d["inputs"]), d["attrs"],
                  {k: arrays[key] for k, key in d["params"].items()}) for d in topo["nodes"]]
    return Graph(nodes, tuple(topo["input_shape"]), output=topo["output"], input_name=topo["input_name"])
