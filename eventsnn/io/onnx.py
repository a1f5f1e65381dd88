"""Import an ONNX model (e.g. from ``torch.onnx.export``) into an eventsnn :class:`~eventsnn.graph.Graph`.

:func:`load_onnx` walks the ONNX graph once in its (topological) node order, keeping for every
tensor either

* a **constant** numpy array (initializers, ``Constant`` nodes, and the result of any node whose
  inputs are all constants — evaluated with numpy, so the shape-computation subgraphs PyTorch
  emits around ``F.pad``, ``view(x.size(0), -1)`` etc. fold away for the static input shape), or
* a **dynamic** value: the canonical :class:`~eventsnn.graph.Node` that computes it and its
  per-sample shape.

Nodes with a dynamic input are mapped onto canonical ops:

=====================================================  ==============================================
ONNX                                                   Graph op
=====================================================  ==============================================
Conv (2-D, any group and dilation, auto_pad any)       ``conv``
Gemm (transA 0, any transB / alpha / beta), MatMul     ``linear`` (weight ``(O, I)``)
Add / Sub with a constant after Conv/Gemm/MatMul       folded into that node's bias
BatchNormalization (inference)                         ``batchnorm``
Add/Sub/Mul/Div with a per-channel constant elsewhere  ``batchnorm`` with mean 0, var 1, eps 0
                                                       (i.e. ``y = weight * x + bias`` exactly)
Relu; Clip(0) / Clip(0, a) (ReLU6, Hardtanh(0, a))     ``relu``; ``clip`` (bounded ReLU)
Concat of activations (not the batch axis)             ``concat``
Transpose of activations (batch axis first)            ``transpose`` (e.g. an NHWC flatten)
Softmax / LogSoftmax on the model output               dropped with a warning (argmax unchanged)
MaxPool, AveragePool (floor or ceil mode)              ``maxpool``, ``avgpool``
GlobalAveragePool, ReduceMean over (H, W)              ``global_avgpool`` (+ ``flatten``)
GlobalMaxPool, ReduceMax over (H, W)                   ``maxpool`` with the whole image as window
Flatten (axis 1), Reshape/Squeeze/Unsqueeze            ``flatten`` / ``reshape`` (batch axis kept)
Add / Sum of two or more dynamic tensors               ``add``
Identity, Dropout, Cast to float                       ``identity``
Pad (constant mode, value 0)                           ``pad`` (+ ``slice`` for negative pads)
Slice (steps >= 1, batch axis untouched)               ``slice``
=====================================================  ==============================================

The batch axis is axis 0 of every tensor.  While folding, ``Shape`` of a dynamic tensor reports
the model's static batch size, or a sentinel value when the batch axis is symbolic, so that a
later ``Reshape`` can tell the batch axis apart from the per-sample axes.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np

from ..graph import OPS, Graph, Node
from ._refusals import why_not_rate_coded

__all__ = ["load_onnx", "SUPPORTED_ONNX_OPS"]

_BATCH_SENTINEL = 65521  # stands for a symbolic batch size during constant folding
_MAX_CONST_ELEMENTS = 50_000_000
_INPUT_NAME = "input"


@dataclass(frozen=True)
class _Dyn:
    """A tensor computed from the model input: canonical producer name and per-sample shape."""

    node: str
    shape: tuple


# ---------------------------------------------------------------------------------------
# Constant folding (numpy evaluation of nodes whose inputs are all constants)
# ---------------------------------------------------------------------------------------


def _axes_arg(imp, onode, ins, attrs, pos):
    """Axes given as input ``pos`` (newer opsets) or as attribute ``axes`` (older ones)."""
    if len(ins) > pos and ins[pos] is not None:
        return [int(a) for a in np.asarray(imp.const(onode, ins[pos], "axes")).ravel()]
    return None if attrs.get("axes") is None else [int(a) for a in attrs["axes"]]


def _resolve_reshape(onode, imp, in_shape, target, allowzero):
    target = [int(t) for t in np.asarray(target).ravel()]
    out = []
    for i, t in enumerate(target):
        if t == 0 and not allowzero:
            if i >= len(in_shape):
                raise imp.fail(onode, f"Reshape target {target} copies axis {i} which the input {in_shape} lacks")
            t = in_shape[i]
        out.append(t)
    total = int(np.prod(in_shape, dtype=np.int64))
    if out.count(-1) > 1:
        raise imp.fail(onode, f"Reshape target {target} has more than one -1")
    if -1 in out:
        rest = int(np.prod([t for t in out if t != -1], dtype=np.int64))
        if rest == 0 or total % rest:
            raise imp.fail(onode, f"cannot reshape {tuple(in_shape)} to {target}")
        out[out.index(-1)] = total // rest
    if int(np.prod(out, dtype=np.int64)) != total or min(out, default=0) < 0:
        raise imp.fail(onode, f"cannot reshape {tuple(in_shape)} to {target}")
    return out


def _int_div(a, b):
    if np.issubdtype(np.result_type(a, b), np.integer):
        q = np.floor_divide(a, b)
        return np.where((np.remainder(a, b) != 0) & ((a < 0) != (b < 0)), q + 1, q).astype(np.result_type(a, b))
    return np.divide(a, b)


def _slice_args(imp, onode, ins, attrs, rank):
    """(axes, starts, ends, steps) of a Slice, from inputs (opset >= 10) or attributes."""
    if len(ins) > 1:
        starts = np.asarray(imp.const(onode, ins[1], "starts")).ravel()
        ends = np.asarray(imp.const(onode, ins[2], "ends")).ravel()
        axes = _axes_arg(imp, onode, ins, {}, 3)
        steps = None if len(ins) <= 4 or ins[4] is None else np.asarray(imp.const(onode, ins[4], "steps")).ravel()
    else:
        starts, ends, axes, steps = attrs["starts"], attrs["ends"], attrs.get("axes"), None
    axes = list(range(len(starts))) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    axes = [a + rank if a < 0 else a for a in axes]
    return axes, [int(v) for v in starts], [int(v) for v in ends], [int(v) for v in steps]


def _fold_slice(imp, onode, ins, attrs):
    x = ins[0]
    idx = [slice(None)] * x.ndim
    for ax, s, e, st in zip(*_slice_args(imp, onode, ins, attrs, x.ndim)):
        if st == 0:
            raise imp.fail(onode, "Slice step 0 is invalid")
        idx[ax] = slice(s, e, st)
    return [x[tuple(idx)]]


def _fold_unsqueeze(imp, onode, ins, attrs):
    x = ins[0]
    axes = _axes_arg(imp, onode, ins, attrs, 1)
    r = x.ndim + len(axes)
    for a in sorted(a + r if a < 0 else a for a in axes):
        x = np.expand_dims(x, a)
    return [x]


def _fold_squeeze(imp, onode, ins, attrs):
    x = ins[0]
    axes = _axes_arg(imp, onode, ins, attrs, 1)
    if axes is None:
        return [np.squeeze(x)]
    return [np.squeeze(x, axis=tuple(a + x.ndim if a < 0 else a for a in axes))]


def _fold_constant(imp, onode, ins, attrs):
    for key, conv in (("value", np.asarray), ("value_float", lambda v: np.array(v, np.float32)),
                      ("value_floats", lambda v: np.array(v, np.float32)),
                      ("value_int", lambda v: np.array(v, np.int64)),
                      ("value_ints", lambda v: np.array(v, np.int64))):
        if key in attrs:
            return [conv(attrs[key])]
    raise imp.fail(onode, f"only numeric Constant values are supported, got attributes {sorted(attrs)}")


def _fold_constant_of_shape(imp, onode, ins, attrs):
    shape = [int(s) for s in np.asarray(ins[0]).ravel()]
    if int(np.prod(shape, dtype=np.int64)) > _MAX_CONST_ELEMENTS:
        raise imp.fail(onode, f"constant of shape {shape} is too large (does it depend on the batch size? "
                              "only per-sample computations are supported)")
    value = np.asarray(attrs.get("value", np.zeros(1, np.float32))).ravel()
    return [np.full(shape, value[0], dtype=value.dtype)]


def _fold_cast(imp, onode, ins, attrs):
    from onnx import helper

    return [np.asarray(ins[0]).astype(helper.tensor_dtype_to_np_dtype(attrs["to"]))]


def _fold_shape(imp, onode, ins, attrs):
    x = ins[0]
    shape = [imp.batch, *x.shape] if isinstance(x, _Dyn) else list(np.shape(x))
    start, end = attrs.get("start", 0), attrs.get("end", None)
    return [np.array(shape[start:end], dtype=np.int64)]


def _fold_reshape(imp, onode, ins, attrs):
    target = _resolve_reshape(onode, imp, ins[0].shape, imp.const(onode, ins[1], "shape"), attrs.get("allowzero", 0))
    return [ins[0].reshape(target)]


def _fold_flatten(imp, onode, ins, attrs):
    x = ins[0]
    axis = attrs.get("axis", 1)
    axis = axis + x.ndim if axis < 0 else axis
    return [x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)]


def _elementwise(fn):
    return lambda imp, onode, ins, attrs: [np.asarray(fn(*ins))]


_FOLD = {
    "Constant": _fold_constant,
    "Shape": _fold_shape,
    "Size": lambda imp, onode, ins, attrs: [np.array(np.size(ins[0]), np.int64)],
    "Gather": lambda imp, onode, ins, attrs: [np.take(ins[0], ins[1], axis=attrs.get("axis", 0))],
    "Unsqueeze": _fold_unsqueeze,
    "Squeeze": _fold_squeeze,
    "ConstantOfShape": _fold_constant_of_shape,
    "Concat": lambda imp, onode, ins, attrs: [np.concatenate([np.atleast_1d(v) for v in ins if v is not None],
                                                             axis=attrs["axis"])],
    "Cast": _fold_cast,
    "Transpose": lambda imp, onode, ins, attrs: [np.transpose(ins[0], attrs.get("perm"))],
    "Reshape": _fold_reshape,
    "Flatten": _fold_flatten,
    "Slice": _fold_slice,
    "Expand": lambda imp, onode, ins, attrs: [
        np.array(np.broadcast_to(ins[0], np.broadcast_shapes(ins[0].shape, tuple(int(s) for s in ins[1]))))],
    "Range": lambda imp, onode, ins, attrs: [np.arange(ins[0], ins[1], ins[2]).astype(np.asarray(ins[0]).dtype)],
    "Identity": lambda imp, onode, ins, attrs: [ins[0]],
    "Dropout": lambda imp, onode, ins, attrs: [ins[0]],
    "Add": _elementwise(np.add),
    "Sub": _elementwise(np.subtract),
    "Mul": _elementwise(np.multiply),
    "Div": _elementwise(_int_div),
    "Pow": _elementwise(np.power),
    "Neg": _elementwise(np.negative),
    "Abs": _elementwise(np.abs),
    "Sqrt": _elementwise(np.sqrt),
    "Floor": _elementwise(np.floor),
    "Ceil": _elementwise(np.ceil),
    "Relu": _elementwise(lambda x: np.maximum(x, 0).astype(np.asarray(x).dtype)),
    "Equal": _elementwise(np.equal),
    "Less": _elementwise(np.less),
    "Greater": _elementwise(np.greater),
    "Not": _elementwise(np.logical_not),
    "Where": _elementwise(np.where),
    "Min": _elementwise(lambda *a: np.minimum.reduce(np.broadcast_arrays(*a))),
    "Max": _elementwise(lambda *a: np.maximum.reduce(np.broadcast_arrays(*a))),
}


# ---------------------------------------------------------------------------------------
# Mapping of nodes with dynamic inputs onto canonical ops
# ---------------------------------------------------------------------------------------


def _spatial_pads(imp, onode, attrs, in_hw, kernel, strides):
    """ONNX pads / auto_pad -> [top, left, bottom, right]."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto in ("NOTSET", ""):
        pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
        if len(pads) != 4:
            raise imp.fail(onode, f"expected 4 pads for a 2-D op, got {pads}")
        return pads
    if auto == "VALID":
        return [0, 0, 0, 0]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for n, k, s in zip(in_hw, kernel, strides):
            total = max((-(-n // s) - 1) * s + k - n, 0)
            small, big = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else big)
            end.append(big if auto == "SAME_UPPER" else small)
        return begin + end
    raise imp.fail(onode, f"auto_pad={auto!r} is not supported")


def _check_2d(imp, onode, x, what="input"):
    if len(x.shape) != 3:
        raise imp.fail(onode, f"only 2-D (N, C, H, W) tensors are supported, got {what} of per-sample shape "
                              f"{x.shape}")


def _check_dilation(imp, onode, attrs):
    if any(int(d) != 1 for d in attrs.get("dilations", [1, 1])):
        raise imp.fail(onode, f"dilations {attrs['dilations']} are not supported (only 1)")


def _map_conv(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    _check_2d(imp, onode, x)
    w = imp.const(onode, ins[1], "weight")
    b = imp.const(onode, ins[2], "bias") if len(ins) > 2 and ins[2] is not None else None
    if w.ndim != 4:
        raise imp.fail(onode, f"only 2-D convolutions are supported (weight (O, I, kh, kw)), got weight {w.shape}")
    dilation = [int(d) for d in attrs.get("dilations", [1, 1])]
    strides = [int(s) for s in attrs.get("strides", [1, 1])]
    span = [(k - 1) * d + 1 for k, d in zip(w.shape[2:], dilation)]
    pads = _spatial_pads(imp, onode, attrs, x.shape[1:], span, strides)
    params = {"weight": w} if b is None else {"weight": w, "bias": b}
    return imp.emit(onode, "conv", [x], {"stride": strides, "padding": pads, "groups": int(attrs.get("group", 1)),
                                         "dilation": dilation}, params)


def _linear_input(imp, onode, x):
    if len(x.shape) != 1:
        raise imp.fail(onode, f"the non-constant operand must be a batch of vectors (B, I), got per-sample shape "
                              f"{x.shape} (flatten it first)")


def _map_gemm(imp, onode, ins, attrs):
    if not isinstance(ins[0], _Dyn) or int(attrs.get("transA", 0)):
        raise imp.fail(onode, "only Gemm(A=activations, B=constant weight, transA=0) is supported")
    x = imp.dyn(onode, ins[0])
    _linear_input(imp, onode, x)
    wb = imp.const(onode, ins[1], "B").astype(np.float32)
    w = wb if int(attrs.get("transB", 0)) else wb.T
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    if alpha != 1.0:
        w = w * np.float32(alpha)
    params = {"weight": w}
    if len(ins) > 2 and ins[2] is not None:
        c = imp.const(onode, ins[2], "C").astype(np.float32)
        try:
            c = np.broadcast_to(c, (1, w.shape[0]))[0]
        except ValueError:
            raise imp.fail(onode, f"bias C of shape {c.shape} does not broadcast to (1, {w.shape[0]})") from None
        params["bias"] = c * np.float32(beta) if beta != 1.0 else c
    return imp.emit(onode, "linear", [x], {}, params)


def _map_matmul(imp, onode, ins, attrs):
    if not isinstance(ins[0], _Dyn):
        raise imp.fail(onode, "only MatMul(activations, constant weight) is supported")
    x = imp.dyn(onode, ins[0])
    _linear_input(imp, onode, x)
    w = imp.const(onode, ins[1], "weight")
    if w.ndim != 2:
        raise imp.fail(onode, f"the weight must be a 2-D constant (I, O), got shape {w.shape}")
    return imp.emit(onode, "linear", [x], {}, {"weight": np.ascontiguousarray(w.T)})


def _map_batchnorm(imp, onode, ins, attrs):
    if int(attrs.get("training_mode", 0)):
        raise imp.fail(onode, "training_mode=1 is not supported; export the model in eval() mode")
    x = imp.dyn(onode, ins[0])
    names = ("weight", "bias", "mean", "var")
    params = {k: imp.const(onode, v, k) for k, v in zip(names, ins[1:5])}
    return imp.emit(onode, "batchnorm", [x], {"eps": float(attrs.get("epsilon", 1e-5))}, params)


def _per_channel(imp, onode, c, shape):
    """Reduce a constant broadcast against (B, *shape) to one value per channel (axis 1), or fail."""
    c = np.asarray(c, dtype=np.float32)
    target = (1,) + tuple(shape)
    try:
        ok = np.broadcast_shapes(c.shape, target) == target
    except ValueError:
        ok = False
    if not ok:
        raise imp.fail(onode, f"constant of shape {c.shape} does not broadcast to the per-sample shape {shape} "
                              "without touching the batch axis")
    vec = np.broadcast_to(c, target)[0].reshape(shape[0], -1)
    if not np.all(vec == vec[:, :1]):
        raise imp.fail(onode, f"only per-channel constants are supported for element-wise ops on activations; "
                              f"got shape {c.shape} for input {shape}")
    return np.ascontiguousarray(vec[:, 0])


def _map_binary(imp, onode, ins, attrs):
    op = onode.op_type
    dyn_pos = [i for i, v in enumerate(ins) if isinstance(v, _Dyn)]
    if len(dyn_pos) >= 2 or op == "Sum":
        if op not in ("Add", "Sum") or len(dyn_pos) != len(ins):
            why = f"; {why_not_rate_coded('mul')}" if op in ("Mul", "Div") else ""
            raise imp.fail(onode, f"{op} of non-constant tensors is not supported (only Add/Sum of activations, "
                                  f"or element-wise ops with a per-channel constant){why}")
        xs = [imp.dyn(onode, v) for v in ins]
        if any(x.shape != xs[0].shape for x in xs):
            raise imp.fail(onode, f"broadcasting between activations is not supported: shapes "
                                  f"{[x.shape for x in xs]}")
        return imp.emit(onode, "add", xs, {}, {})
    (i,) = dyn_pos
    x = imp.dyn(onode, ins[i])
    c = _per_channel(imp, onode, imp.const(onode, ins[1 - i], "operand"), x.shape)
    one, zero = np.ones_like(c), np.zeros_like(c)
    if op == "Add":
        scale, shift = one, c
    elif op == "Sub":
        scale, shift = (one, -c) if i == 0 else (-one, c)
    elif op == "Mul":
        scale, shift = c, zero
    elif i == 0:  # Div(x, c)
        scale, shift = (np.float32(1) / c).astype(np.float32), zero
    else:
        raise imp.fail(onode, "Div(constant, activations) is not supported")
    if np.all(scale == 1) and imp.fold_bias(onode, onode.input[i], shift):
        return None
    params = {"mean": zero, "var": one, "weight": scale, "bias": shift}
    return imp.emit(onode, "batchnorm", [x], {"eps": 0.0}, params)


def _pool_geometry(imp, onode, x, attrs, count_include_pad=False):
    _check_2d(imp, onode, x)
    _check_dilation(imp, onode, attrs)
    kernel = [int(k) for k in attrs["kernel_shape"]]
    strides = [int(s) for s in attrs.get("strides", [1, 1])]
    pads = _spatial_pads(imp, onode, attrs, x.shape[1:], kernel, strides)
    if int(attrs.get("ceil_mode", 0)):
        for ax in range(2):
            n, k, s, p0, p1 = x.shape[1 + ax], kernel[ax], strides[ax], pads[ax], pads[ax + 2]
            out = -(-(n + p0 + p1 - k) // s) + 1
            if (out - 1) * s >= n + p0:  # PyTorch/ONNX rule: the last window must start inside
                out -= 1
            extra = (out - 1) * s + k - (n + p0 + p1)
            if extra > 0:
                if count_include_pad:
                    raise imp.fail(onode, "ceil_mode=1 with count_include_pad=1 changes the divisor of the last "
                                          "windows and is not supported; export with ceil_mode=False")
                pads[ax + 2] += extra
    return {"kernel": kernel, "stride": strides, "padding": pads}


def _map_maxpool(imp, onode, ins, attrs):
    if len(onode.output) > 1 and imp.used(onode.output[1]):
        raise imp.fail(onode, "the Indices output of MaxPool is not supported")
    x = imp.dyn(onode, ins[0])
    return imp.emit(onode, "maxpool", [x], _pool_geometry(imp, onode, x, attrs), {})


def _map_avgpool(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    cip = bool(int(attrs.get("count_include_pad", 0)))
    geo = _pool_geometry(imp, onode, x, attrs, cip)
    return imp.emit(onode, "avgpool", [x], {**geo, "count_include_pad": cip}, {})


def _map_global_avgpool(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    _check_2d(imp, onode, x)
    return imp.emit(onode, "global_avgpool", [x], {}, {})


def _map_global_maxpool(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    _check_2d(imp, onode, x)
    return imp.emit(onode, "maxpool", [x], {"kernel": list(x.shape[1:]), "stride": [1, 1]}, {})


def _map_reduce_spatial(imp, onode, ins, attrs):
    """ReduceMean / ReduceMax over (H, W): global average / max pooling (+ flatten without keepdims)."""
    x = imp.dyn(onode, ins[0])
    axes = _axes_arg(imp, onode, ins, attrs, 1)
    rank = len(x.shape) + 1
    if len(x.shape) != 3 or axes is None or sorted(a + rank if a < 0 else a for a in axes) != [2, 3]:
        raise imp.fail(onode, f"only {onode.op_type} over the spatial axes (2, 3) of (N, C, H, W) is supported, "
                              f"got axes {axes} for per-sample shape {x.shape}")
    if onode.op_type == "ReduceMax":
        y = imp.emit(onode, "maxpool", [x], {"kernel": list(x.shape[1:]), "stride": [1, 1]}, {})
    else:
        y = imp.emit(onode, "global_avgpool", [x], {}, {})
    if int(attrs.get("keepdims", 1)):
        return y
    return imp.emit(onode, "flatten", [y], {}, {}, suffix="flatten")


def _map_reshape_like(imp, onode, x, full_target):
    """Emit flatten/reshape for a per-sample target; full_target includes the batch axis."""
    if full_target[0] != imp.batch or int(np.prod(full_target[1:], dtype=np.int64)) != int(np.prod(x.shape)):
        raise imp.fail(onode, f"the result {list(full_target)} would mix the batch axis with the per-sample axes "
                              f"of (B, {', '.join(map(str, x.shape))}); only reshapes that keep axis 0 as the "
                              "batch are supported")
    target = [int(t) for t in full_target[1:]]
    if len(target) == 1:
        return imp.emit(onode, "flatten", [x], {}, {})
    return imp.emit(onode, "reshape", [x], {"shape": target}, {})


def _map_reshape(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    full = [imp.batch, *x.shape]
    target = _resolve_reshape(onode, imp, full, imp.const(onode, ins[1], "shape"), attrs.get("allowzero", 0))
    return _map_reshape_like(imp, onode, x, target)


def _map_flatten(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    full = [imp.batch, *x.shape]
    axis = int(attrs.get("axis", 1))
    axis = axis + len(full) if axis < 0 else axis
    lead = int(np.prod(full[:axis], dtype=np.int64))
    return _map_reshape_like(imp, onode, x, [lead, int(np.prod(full[axis:], dtype=np.int64))])


def _map_squeeze_unsqueeze(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    fake = np.empty((1,) + x.shape, dtype=np.bool_)  # batch 1 here; axis 0 is checked below
    axes = _axes_arg(imp, onode, ins, attrs, 1)
    if onode.op_type == "Squeeze" and axes is None:
        axes = [i + 1 for i, s in enumerate(x.shape) if s == 1]
    rank = fake.ndim + (len(axes) if onode.op_type == "Unsqueeze" else 0)
    if any((a + rank if a < 0 else a) == 0 for a in axes):
        raise imp.fail(onode, f"{onode.op_type} on the batch axis (axes {axes}) is not supported")
    y = (_fold_unsqueeze if onode.op_type == "Unsqueeze" else _fold_squeeze)(imp, onode, [fake, *ins[1:]], attrs)[0]
    return _map_reshape_like(imp, onode, x, [imp.batch, *y.shape[1:]])


def _map_identity(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    if onode.op_type == "Dropout":
        if len(ins) > 2 and ins[2] is not None and bool(np.asarray(imp.const(onode, ins[2], "training_mode"))):
            raise imp.fail(onode, "Dropout in training mode is not supported; export the model in eval() mode")
        if len(onode.output) > 1 and imp.used(onode.output[1]):
            raise imp.fail(onode, "the mask output of Dropout is not supported")
    if onode.op_type == "Cast":
        from onnx import TensorProto

        if int(attrs["to"]) != TensorProto.FLOAT:
            raise imp.fail(onode, f"Cast of activations to type {attrs['to']} is not supported (only to float32)")
    return imp.emit(onode, "identity", [x], {}, {})


def _map_relu(imp, onode, ins, attrs):
    return imp.emit(onode, "relu", [imp.dyn(onode, ins[0])], {}, {})


def _map_clip(imp, onode, ins, attrs):
    """Clip(0, a) is a bounded ReLU (ReLU6: a = 6); Clip(0) or Clip(0, inf) a ReLU."""
    x = imp.dyn(onode, ins[0])
    if len(ins) > 1 or "min" not in attrs:  # opset >= 11: bounds are optional inputs
        lo = imp.const(onode, ins[1], "min") if len(ins) > 1 and ins[1] is not None else None
        hi = imp.const(onode, ins[2], "max") if len(ins) > 2 and ins[2] is not None else None
    else:
        lo, hi = attrs.get("min"), attrs.get("max")
    lo = None if lo is None else float(np.asarray(lo))
    hi = None if hi is None or not np.isfinite(float(np.asarray(hi))) else float(np.asarray(hi))
    if lo != 0.0 or (hi is not None and not hi > 0):
        raise imp.fail(onode, f"Clip to [{lo}, {hi}] is not supported: only a lower bound of 0 (a ReLU) and an "
                              "optional positive upper bound (ReLU6, Hardtanh(0, a)) become spiking neurons; "
                              "spike rates are non-negative")
    if hi is None:
        return imp.emit(onode, "relu", [x], {}, {})
    return imp.emit(onode, "clip", [x], {"max": hi}, {})


def _map_concat(imp, onode, ins, attrs):
    xs = [v for v in ins if v is not None]
    if not all(isinstance(v, _Dyn) for v in xs):
        raise imp.fail(onode, "Concat of constants and activations is not supported; concatenate tensors "
                              "computed from the input only")
    rank = len(xs[0].shape) + 1
    axis = int(attrs["axis"]) % rank
    if axis == 0:
        raise imp.fail(onode, "Concat along the batch axis is not supported")
    if len(xs) == 1:
        return xs[0]
    return imp.emit(onode, "concat", xs, {"axis": axis - 1}, {})


def _map_transpose(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    rank = len(x.shape) + 1
    perm = [int(p) % rank for p in attrs.get("perm", list(range(rank))[::-1])]
    if perm[0] != 0:
        raise imp.fail(onode, f"Transpose with perm {perm} moves the batch axis; keep it first")
    if perm == list(range(rank)):
        return x
    return imp.emit(onode, "transpose", [x], {"perm": [p - 1 for p in perm[1:]]}, {})


def _map_softmax(imp, onode, ins, attrs):
    """A Softmax / LogSoftmax on the logits is dropped (monotone: argmax unchanged)."""
    import warnings

    x = imp.dyn(onode, ins[0])
    if onode.output[0] not in imp.graph_outputs or imp.n_uses.get(onode.output[0], 0) != 1:
        raise imp.fail(onode, f"cannot be converted: {why_not_rate_coded('softmax')}")
    if len(x.shape) != 1 or int(attrs.get("axis", -1)) % 2 != 1:
        raise imp.fail(onode, "only a softmax over the classes of (N, classes) logits can be dropped")
    warnings.warn(f"load_onnx: the final {onode.op_type} (node {onode.name!r}) is dropped; the imported graph "
                  "outputs the logits (argmax, hence the prediction, is unchanged)", UserWarning, stacklevel=4)
    return x


def _map_pad(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    rank = len(x.shape) + 1
    mode = attrs.get("mode", "constant")
    if mode != "constant":
        raise imp.fail(onode, f"Pad mode {mode!r} is not supported (only 'constant' with value 0)")
    if len(ins) > 1 and ins[1] is not None:
        pads = [int(p) for p in np.asarray(imp.const(onode, ins[1], "pads")).ravel()]
        value = imp.const(onode, ins[2], "constant_value") if len(ins) > 2 and ins[2] is not None else 0
    else:
        pads, value = [int(p) for p in attrs["pads"]], attrs.get("value", 0.0)
    if np.any(np.asarray(value) != 0):
        raise imp.fail(onode, f"Pad value {value} is not supported (only zero padding)")
    axes = _axes_arg(imp, onode, ins, {}, 3) or list(range(rank))
    axes = [a + rank if a < 0 else a for a in axes]
    if len(pads) != 2 * len(axes):
        raise imp.fail(onode, f"pads {pads} do not match {len(axes)} axes")
    begin, end = [0] * rank, [0] * rank
    for k, a in enumerate(axes):
        begin[a], end[a] = pads[k], pads[k + len(axes)]
    if begin[0] or end[0]:
        raise imp.fail(onode, f"padding the batch axis (pads {pads}) is not supported")
    pos = [max(p, 0) for p in begin[1:] + end[1:]]
    if not any(pos) and all(p >= 0 for p in begin + end):
        return imp.emit(onode, "identity", [x], {}, {})
    if any(pos):
        x = imp.emit(onode, "pad", [x], {"pads": pos}, {})
    if min(begin + end) < 0:
        starts = [-min(b, 0) for b in begin[1:]]
        ends = [n + min(e, 0) for n, e in zip(x.shape, end[1:])]
        x = imp.emit(onode, "slice", [x], {"starts": starts, "ends": ends, "steps": [1] * len(starts)}, {},
                     suffix="crop" if any(pos) else "")
    return x


def _map_slice(imp, onode, ins, attrs):
    x = imp.dyn(onode, ins[0])
    full = [imp.batch, *x.shape]
    starts, ends, steps = [0] * len(x.shape), list(x.shape), [1] * len(x.shape)
    for ax, s, e, st in zip(*_slice_args(imp, onode, ins, attrs, len(full))):
        if st < 1:
            raise imp.fail(onode, f"Slice steps must be >= 1 on activations (got {st}; reversing is not supported)")
        s, e, st = slice(s, e, st).indices(full[ax])
        if ax == 0:
            if (s, e, st) != (0, imp.batch, 1):
                raise imp.fail(onode, "slicing the batch axis is not supported")
            continue
        starts[ax - 1], ends[ax - 1], steps[ax - 1] = s, e, st
    return imp.emit(onode, "slice", [x], {"starts": starts, "ends": ends, "steps": steps}, {})


_MAP = {
    "Conv": _map_conv,
    "Gemm": _map_gemm,
    "MatMul": _map_matmul,
    "BatchNormalization": _map_batchnorm,
    "Relu": _map_relu,
    "MaxPool": _map_maxpool,
    "AveragePool": _map_avgpool,
    "GlobalAveragePool": _map_global_avgpool,
    "GlobalMaxPool": _map_global_maxpool,
    "ReduceMean": _map_reduce_spatial,
    "ReduceMax": _map_reduce_spatial,
    "Flatten": _map_flatten,
    "Reshape": _map_reshape,
    "Squeeze": _map_squeeze_unsqueeze,
    "Unsqueeze": _map_squeeze_unsqueeze,
    "Add": _map_binary,
    "Sum": _map_binary,
    "Sub": _map_binary,
    "Mul": _map_binary,
    "Div": _map_binary,
    "Identity": _map_identity,
    "Dropout": _map_identity,
    "Cast": _map_identity,
    "Pad": _map_pad,
    "Slice": _map_slice,
    "Clip": _map_clip,
    "Concat": _map_concat,
    "Transpose": _map_transpose,
    "Softmax": _map_softmax,
    "LogSoftmax": _map_softmax,
}

SUPPORTED_ONNX_OPS: tuple[str, ...] = tuple(sorted(set(_MAP) | set(_FOLD)))
"""ONNX op types :func:`load_onnx` understands (on activations, on constants, or both)."""


# ---------------------------------------------------------------------------------------
# Importer
# ---------------------------------------------------------------------------------------


def _sanitize(name: str) -> str:
    name = name.strip("/").replace("/", ".")
    name = re.sub(r"[^A-Za-z0-9_.\-]+", "_", name)
    return re.sub(r"\.{2,}", ".", name).strip("._")


def _attributes(onode) -> dict:
    from onnx import helper, numpy_helper

    out = {}
    for a in onode.attribute:
        v = helper.get_attribute_value(a)
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif hasattr(v, "dims") and hasattr(v, "data_type"):  # TensorProto
            v = numpy_helper.to_array(v)
        elif isinstance(v, list):
            v = [x.decode("utf-8", "replace") if isinstance(x, bytes) else x for x in v]
        out[a.name] = v
    return out


class _Importer:
    def __init__(self, model, input_shape):
        from onnx import TensorProto, numpy_helper

        g = model.graph
        self.values: dict = {}
        for init in g.initializer:
            self.values[init.name] = numpy_helper.to_array(init)
        inputs = [i for i in g.input if i.name not in self.values]
        if len(inputs) != 1:
            raise ValueError(f"the ONNX model has {len(inputs)} non-constant inputs "
                             f"{[i.name for i in inputs]}; eventsnn graphs take exactly one input")
        inp = inputs[0]
        tt = inp.type.tensor_type
        if tt.elem_type not in (TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16):
            raise ValueError(f"ONNX input {inp.name!r} has element type {tt.elem_type}; only float inputs are supported")
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tt.shape.dim]
        if len(dims) < 2:
            raise ValueError(f"ONNX input {inp.name!r} has rank {len(dims)}; expected (batch, ...) with rank >= 2")
        if input_shape is None:
            if None in dims[1:]:
                raise ValueError(f"ONNX input {inp.name!r} has symbolic per-sample dimensions "
                                 f"{[d.dim_param or d.dim_value for d in tt.shape.dim][1:]}; pass "
                                 "input_shape=(C, H, W) (per sample, without the batch axis)")
            input_shape = tuple(dims[1:])
        else:
            input_shape = tuple(int(s) for s in input_shape)
            if len(input_shape) != len(dims) - 1 or any(d is not None and d != s for d, s in zip(dims[1:], input_shape)):
                raise ValueError(f"input_shape {input_shape} does not match the ONNX input {inp.name!r} of shape "
                                 f"{['B' if d is None else d for d in dims]}; give the per-sample shape without "
                                 "the batch axis")
        self.input_shape = input_shape
        self.batch = dims[0] or _BATCH_SENTINEL
        self.values[inp.name] = _Dyn(_INPUT_NAME, input_shape)
        self.nodes: list[Node] = []
        self.by_name: dict[str, Node] = {}
        self.shapes = {_INPUT_NAME: input_shape}
        self.names = {_INPUT_NAME}
        self.n_uses: dict[str, int] = {}
        for n in g.node:
            for t in n.input:
                self.n_uses[t] = self.n_uses.get(t, 0) + 1
        self.graph_outputs = [o.name for o in g.output]
        for o in self.graph_outputs:
            self.n_uses[o] = self.n_uses.get(o, 0) + 1
        self._current_outputs = ()

    # --- helpers used by the mappers ----------------------------------------------------

    def fail(self, onode, msg) -> ValueError:
        return ValueError(f"ONNX node {onode.name!r} ({onode.op_type}): {msg}")

    def used(self, tensor: str) -> bool:
        return bool(tensor) and self.n_uses.get(tensor, 0) > 0

    def dyn(self, onode, v) -> _Dyn:
        if not isinstance(v, _Dyn):
            raise self.fail(onode, "expected an activation (a tensor computed from the model input) here, "
                                   "got a constant")
        return v

    def const(self, onode, v, what) -> np.ndarray:
        if isinstance(v, _Dyn) or v is None:
            raise self.fail(onode, f"{what} must be a constant (initializer or foldable subgraph), but it "
                                   "depends on the model input")
        return v

    def emit(self, onode, op, inputs, attrs, params, suffix="") -> _Dyn:
        """Append a canonical node for ``onode`` (its shape inferred now) and return its value."""
        base = _sanitize(onode.name) or f"{onode.op_type.lower()}_{len(self.nodes)}"
        if suffix:
            base = f"{base}.{suffix}"
        name, k = base, 1
        while name in self.names:
            name, k = f"{base}_{k}", k + 1
        self.names.add(name)
        params = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in params.items()}
        node = Node(name, op, tuple(x.node for x in inputs), dict(attrs), params)
        node.shape = tuple(int(s) for s in OPS[op].infer(node, [x.shape for x in inputs]))
        self.nodes.append(node)
        self.by_name[name] = node
        return _Dyn(name, node.shape)

    def fold_bias(self, onode, tensor: str, shift: np.ndarray) -> bool:
        """Add a per-channel constant into the bias of the conv/linear producing ``tensor`` if it feeds only here."""
        v = self.values[tensor]
        producer = self.by_name.get(v.node)
        if (producer is None or producer.op not in ("conv", "linear") or self.n_uses.get(tensor, 0) != 1
                or any(v.node in n.inputs for n in self.nodes)):
            return False
        n_out = producer.params["weight"].shape[0]
        bias = producer.params.get("bias", np.zeros(n_out, np.float32))
        producer.params["bias"] = (bias + shift).astype(np.float32)
        self.values[onode.output[0]] = v
        return True

    # --- main loop -----------------------------------------------------------------------

    def run(self, model) -> Graph:
        for onode in model.graph.node:
            self.visit(onode)
        if len(self.graph_outputs) != 1:
            raise ValueError(f"the ONNX model has {len(self.graph_outputs)} outputs {self.graph_outputs}; "
                             "eventsnn graphs have exactly one output")
        out = self.values.get(self.graph_outputs[0])
        if not isinstance(out, _Dyn) or out.node == _INPUT_NAME:
            raise ValueError(f"the ONNX output {self.graph_outputs[0]!r} does not depend on the model input "
                             "through any supported op")
        keep, stack = set(), [out.node]
        by_name = self.by_name
        while stack:
            name = stack.pop()
            if name in keep or name == _INPUT_NAME:
                continue
            keep.add(name)
            stack.extend(by_name[name].inputs)
        nodes = [n for n in self.nodes if n.name in keep]
        return Graph(nodes, self.input_shape, output=out.node, input_name=_INPUT_NAME)

    def visit(self, onode):
        op = onode.op_type
        if onode.domain not in ("", "ai.onnx"):
            raise self.fail(onode, f"custom-domain op {onode.domain}::{op} is not supported; supported ONNX ops: "
                                   f"{', '.join(SUPPORTED_ONNX_OPS)}")
        ins = []
        for t in onode.input:
            if not t:
                ins.append(None)
            elif t not in self.values:
                raise self.fail(onode, f"input tensor {t!r} is neither an initializer nor produced by an earlier "
                                       "node (is the file truncated, or the graph not topologically sorted?)")
            else:
                ins.append(self.values[t])
        attrs = _attributes(onode)
        dynamic = any(isinstance(v, _Dyn) for v in ins)
        if (not dynamic or op == "Shape") and op in _FOLD:
            try:
                outs = _FOLD[op](self, onode, ins, attrs)
            except (ValueError, TypeError, KeyError, IndexError) as e:
                if str(e).startswith("ONNX node"):
                    raise
                raise self.fail(onode, f"cannot evaluate on constants: {type(e).__name__}: {e}") from None
            for name, val in zip(onode.output, outs):
                self.values[name] = np.asarray(val)
            return
        if op not in _MAP:
            if op in _FOLD:
                raise self.fail(onode, f"{op} is supported only on constants (shape computations), but its input "
                                       "depends on the model input")
            reason = why_not_rate_coded(op)
            if reason is not None:
                raise self.fail(onode, f"cannot be converted: {reason}. Replace it by a ReLU (or ReLU6) and retrain "
                                       f"or fine-tune; supported ops: {', '.join(SUPPORTED_ONNX_OPS)}")
            raise self.fail(onode, f"unsupported ONNX op {op!r}; supported ops: {', '.join(SUPPORTED_ONNX_OPS)}")
        if not dynamic:
            raise self.fail(onode, f"{op} on constants only is not supported")
        y = _MAP[op](self, onode, ins, attrs)
        if y is not None:
            self.values[onode.output[0]] = y


def _read_model(path):
    try:
        import onnx
    except ImportError as e:
        raise ImportError("load_onnx needs the 'onnx' package: pip install eventsnn[onnx]  "
                          "(or: pip install onnx)") from e
    if isinstance(path, onnx.ModelProto):
        return path
    if isinstance(path, (bytes, bytearray)):
        data, where = bytes(path), "the given bytes"
    else:
        where = os.fspath(path)
        if not os.path.isfile(where):
            raise FileNotFoundError(f"ONNX file not found: {where}")
        with open(where, "rb") as f:
            data = f.read()
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as e:  # google.protobuf DecodeError and friends
        raise ValueError(f"{where} is not a valid ONNX model (protobuf parse failed: {e}); the file may be "
                         "truncated or not an .onnx file") from None
    if not model.HasField("graph") or not model.graph.node or not model.graph.output:
        raise ValueError(f"{where} is not a valid ONNX model (no graph nodes or outputs); the file may be "
                         "truncated or not an .onnx file")
    if model.graph.initializer and any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer):
        if isinstance(path, (bytes, bytearray)):
            raise ValueError("the model stores weights in external data files; pass the .onnx file path")
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, os.path.dirname(os.path.abspath(where)))
    return model


def load_onnx(path, input_shape=None) -> Graph:
    """Load an ONNX model as a :class:`~eventsnn.graph.Graph`.

    Parameters
    ----------
    path : str, os.PathLike, bytes or onnx.ModelProto
        The ``.onnx`` file (or its bytes, or a loaded model).
    input_shape : tuple of int, optional
        Per-sample input shape, e.g. ``(3, 32, 32)`` (no batch axis). Needed only when the
        model's non-batch input dimensions are symbolic; otherwise checked against the model.

    Returns
    -------
    Graph
        Canonical graph with float32 parameters; node names are the sanitised ONNX node names
        (``/layer1/layer1.0/conv1/Conv`` -> ``layer1.layer1.0.conv1.Conv``), made unique.

    Raises
    ------
    ImportError
        The ``onnx`` package is not installed (``pip install eventsnn[onnx]``).
    FileNotFoundError
        ``path`` does not exist.
    ValueError
        Not an ONNX file / truncated; an unsupported op (names the node, the op type and the
        supported ops, :data:`SUPPORTED_ONNX_OPS`); or a supported op used in an unsupported way
        (e.g. grouped conv, non-zero pad value, ops mixing the batch axis).

    Notes
    -----
    Tested with models exported by ``torch.onnx.export`` at opsets 13-18 (older attribute forms
    of Pad/Slice/Squeeze/Unsqueeze/ReduceMean are accepted too). Shape subgraphs are
    constant-folded for the static input shape.
    """
    model = _read_model(path)
    return _Importer(model, input_shape).run(model)
