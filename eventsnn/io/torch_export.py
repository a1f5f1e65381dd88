"""Export an eventsnn :class:`~eventsnn.graph.Graph` as a PyTorch ``nn.Module``: :func:`to_torch`.

The inverse of :func:`eventsnn.io.torch_import.from_torch` and
:func:`eventsnn.io.onnx.load_onnx`: one standard torch submodule per graph node, so that any
model eventsnn can read can be handed to a torch-based tool. Needs ``torch``, imported only
when :func:`to_torch` is called.
"""

from __future__ import annotations

import re
from functools import lru_cache

import numpy as np

from .torch_import import _import_torch

__all__ = ["to_torch"]

_TO_TORCH_OPS = ("adaptive_avgpool", "add", "avgpool", "batchnorm", "clip", "concat", "conv", "flatten",
                 "global_avgpool", "identity", "linear", "maxpool", "pad", "relu", "reshape", "slice",
                 "transpose")


def to_torch(graph):
    """Build a ``torch.nn.Module`` that computes the same function as a Graph (the inverse of
    :func:`from_torch` / :func:`eventsnn.io.onnx.load_onnx`).

    Every Graph node becomes one submodule of ``module.layers`` (an ``nn.ModuleDict``), in the
    Graph's topological order, and ``forward`` evaluates them in that order. Wherever torch has
    a standard module for the op it is used, so tools that walk ``named_children()`` (e.g.
    BrainCog's converter) or trace with ``torch.fx`` (e.g. SpikingJelly's) find the
    ``nn.ReLU`` / ``nn.MaxPool2d`` / ``nn.Conv2d`` / ``nn.BatchNorm2d`` instances they replace:

    * ``conv``: ``nn.Conv2d`` with its groups and dilation (asymmetric padding:
      ``nn.Sequential(nn.ZeroPad2d, nn.Conv2d)``);
    * ``clip``: ``nn.ReLU6`` for a bound of 6, else ``nn.Hardtanh(0, bound)``;
    * ``adaptive_avgpool``: ``nn.AdaptiveAvgPool2d(output)``;
    * ``linear``: ``nn.Linear``; ``batchnorm``: ``nn.BatchNorm1d`` / ``nn.BatchNorm2d`` in
      eval mode with the running statistics;
    * ``relu``: ``nn.ReLU``; ``identity``: ``nn.Identity``; ``flatten``: ``nn.Flatten``;
    * ``maxpool``: ``nn.MaxPool2d`` (padding that torch does not accept — asymmetric or more
      than half the kernel — becomes ``nn.Sequential(nn.ConstantPad2d(-inf), nn.MaxPool2d)``);
    * ``avgpool``: ``nn.AvgPool2d`` (asymmetric padding: a small module that zero-pads, pools
      and divides by the per-window count, so ``count_include_pad`` keeps its meaning);
    * ``global_avgpool``: ``nn.AdaptiveAvgPool2d(1)``;
    * ``pad``: ``nn.ConstantPad1d/2d/3d`` (value 0) over the per-sample axes;
    * ``reshape``, ``slice``, ``add``, ``concat``, ``transpose``: small modules (``x.reshape``,
      ``x[:, slices]``, a sum, ``torch.cat``, ``x.permute``).

    Parameters
    ----------
    graph : eventsnn.graph.Graph
        The ANN. Not modified; parameters are copied.

    Returns
    -------
    torch.nn.Module
        In eval mode, float32 on the CPU. ``module(x)`` takes a batch ``(B, *graph.input_shape)``
        and returns ``(B, *graph.output_shape)``. ``module.layers`` holds the submodules,
        ``module.names`` maps each Graph node name to its key in ``module.layers`` (names made
        attribute-safe: characters other than letters, digits and ``_`` become ``_``, a
        leading digit or a clash with a ``ModuleDict`` attribute gets a prefix/suffix, and
        duplicates a numeric suffix).

    Raises
    ------
    ImportError
        PyTorch is not installed (``pip install eventsnn[torch]``).
    TypeError
        ``graph`` is not an :class:`eventsnn.graph.Graph`.
    ValueError
        A node has an op that ``to_torch`` cannot build (names the node, the op and the
        supported ops).

    Notes
    -----
    The outputs agree with ``graph.forward`` up to float32 rounding (torch's convolutions and
    GEMMs sum in a different order from numpy's im2col GEMM).
    """
    torch = _import_torch()
    from ..graph import Graph

    if not isinstance(graph, Graph):
        raise TypeError(f"to_torch expects an eventsnn.graph.Graph, got {type(graph).__name__}; "
                        "load one with eventsnn.load_graph, eventsnn.load_onnx or eventsnn.from_torch")
    for node in graph.nodes:
        if node.op not in _TO_TORCH_OPS:
            raise ValueError(f"to_torch: node {node.name!r} has op {node.op!r}, which to_torch cannot "
                             f"build; supported ops are {', '.join(_TO_TORCH_OPS)}")
    classes = _torch_classes(torch)
    keys = _module_keys(torch, [graph.input_name] + [n.name for n in graph.nodes])
    layers = torch.nn.ModuleDict()
    for node in graph.nodes:
        in_shape = graph.shape_of(node.inputs[0])
        layers[keys[node.name]] = _node_module(torch, classes, node, in_shape)
    plan = [(keys[n.name], tuple(keys[i] for i in n.inputs)) for n in graph.nodes]
    module = classes["GraphModule"](layers, plan, keys[graph.input_name], keys[graph.output],
                                    {n.name: keys[n.name] for n in graph.nodes})
    return module.eval()


def _module_keys(torch, names):
    reserved = set(dir(torch.nn.ModuleDict())) | {""}
    keys, used = {}, set()
    for name in names:
        base = re.sub(r"\W", "_", str(name), flags=re.ASCII)
        if not base or base[0].isdigit():
            base = "n_" + base
        if base in reserved:
            base += "_"
        key, k = base, 1
        while key in used:
            k += 1
            key = f"{base}_{k}"
        used.add(key)
        keys[name] = key
    return keys


def _param(torch, a):
    return torch.nn.Parameter(torch.tensor(np.array(a, dtype=np.float32, copy=True)))


def _node_module(torch, classes, node, in_shape):
    from ..graph import conv_geometry

    nn = torch.nn
    op, a, p = node.op, node.attrs, node.params
    if op == "conv":
        o, i, kh, kw = p["weight"].shape
        pt, pl, pb, pr = a["padding"]
        sym = pt == pb and pl == pr
        groups, dilation = conv_geometry(a)
        conv = nn.Conv2d(i * groups, o, (kh, kw), stride=tuple(a["stride"]), padding=(pt, pl) if sym else 0,
                         dilation=tuple(dilation), groups=groups, bias="bias" in p)
        conv.weight = _param(torch, p["weight"])
        if "bias" in p:
            conv.bias = _param(torch, p["bias"])
        return conv if sym else nn.Sequential(nn.ZeroPad2d((pl, pr, pt, pb)), conv)
    if op == "linear":
        o, i = p["weight"].shape
        lin = nn.Linear(i, o, bias="bias" in p)
        lin.weight = _param(torch, p["weight"])
        if "bias" in p:
            lin.bias = _param(torch, p["bias"])
        return lin
    if op == "batchnorm":
        c = in_shape[0]
        bn = (nn.BatchNorm2d if len(in_shape) == 3 else nn.BatchNorm1d)(c, eps=a["eps"])
        bn.weight = _param(torch, p["weight"])
        bn.bias = _param(torch, p["bias"])
        bn.running_mean.copy_(torch.tensor(np.array(p["mean"], dtype=np.float32)))
        bn.running_var.copy_(torch.tensor(np.array(p["var"], dtype=np.float32)))
        return bn.eval()
    if op == "relu":
        return nn.ReLU()
    if op == "clip":
        return nn.ReLU6() if a["max"] == 6.0 else nn.Hardtanh(0.0, a["max"])
    if op == "adaptive_avgpool":
        return nn.AdaptiveAvgPool2d(tuple(a["output"]))
    if op == "concat":
        return classes["Concat"](a["axis"])
    if op == "transpose":
        return classes["Transpose"](a["perm"])
    if op == "identity":
        return nn.Identity()
    if op == "flatten":
        return nn.Flatten()
    if op == "global_avgpool":
        return nn.AdaptiveAvgPool2d(1)
    if op in ("maxpool", "avgpool"):
        kernel, stride = tuple(a["kernel"]), tuple(a["stride"])
        pt, pl, pb, pr = a["padding"]
        native = pt == pb and pl == pr and 2 * pt <= kernel[0] and 2 * pl <= kernel[1]
        if op == "maxpool":
            if native:
                return nn.MaxPool2d(kernel, stride, padding=(pt, pl))
            return nn.Sequential(nn.ConstantPad2d((pl, pr, pt, pb), float("-inf")),
                                 nn.MaxPool2d(kernel, stride))
        if native:
            return nn.AvgPool2d(kernel, stride, padding=(pt, pl), count_include_pad=a["count_include_pad"])
        return classes["PaddedAvgPool"](kernel, stride, (pl, pr, pt, pb), a["count_include_pad"], in_shape)
    if op == "pad":
        pads = a["pads"]
        nd = len(pads) // 2
        if nd > 3:
            return classes["Pad"](pads)
        spec = []  # torch order: last axis first, (begin, end) per axis
        for ax in reversed(range(nd)):
            spec += [pads[ax], pads[ax + nd]]
        return {1: nn.ConstantPad1d, 2: nn.ConstantPad2d, 3: nn.ConstantPad3d}[nd](tuple(spec), 0.0)
    if op == "reshape":
        return classes["Reshape"](a["shape"])
    if op == "slice":
        return classes["Slice"](a["starts"], a["ends"], a["steps"])
    if op == "add":
        return classes["Add"]()
    raise AssertionError(op)  # pragma: no cover - to_torch checked the op


@lru_cache(maxsize=1)
def _torch_classes(torch):
    nn, F = torch.nn, torch.nn.functional

    class GraphModule(nn.Module):
        """An eventsnn Graph as a torch module (built by :func:`eventsnn.to_torch`)."""

        def __init__(self, layers, plan, input_key, output_key, names):
            super().__init__()
            self.layers = layers
            self._plan = list(plan)
            self._input_key, self._output_key = input_key, output_key
            self.names = dict(names)

        def forward(self, x):
            values = {self._input_key: x}
            for key, inputs in self._plan:
                values[key] = self.layers[key](*[values[i] for i in inputs])
            return values[self._output_key]

    class Reshape(nn.Module):
        """``x.reshape(B, *shape)``."""

        def __init__(self, shape):
            super().__init__()
            self.shape = tuple(int(s) for s in shape)

        def forward(self, x):
            return x.reshape((x.shape[0],) + self.shape)

        def extra_repr(self):
            return f"shape={self.shape}"

    class Slice(nn.Module):
        """``x[:, s0:e0:st0, s1:e1:st1, ...]`` over the per-sample axes."""

        def __init__(self, starts, ends, steps):
            super().__init__()
            self.index = (slice(None),) + tuple(slice(int(s), int(e), int(st))
                                                for s, e, st in zip(starts, ends, steps))

        def forward(self, x):
            return x[self.index]

        def extra_repr(self):
            return f"index={self.index[1:]}"

    class Concat(nn.Module):
        """``torch.cat`` of all inputs along a per-sample axis."""

        def __init__(self, axis):
            super().__init__()
            self.axis = int(axis)

        def forward(self, *xs):
            return torch.cat(xs, dim=1 + self.axis)

        def extra_repr(self):
            return f"axis={self.axis}"

    class Transpose(nn.Module):
        """``x.permute(0, *(1 + perm))`` (per-sample axes)."""

        def __init__(self, perm):
            super().__init__()
            self.dims = (0,) + tuple(1 + int(k) for k in perm)

        def forward(self, x):
            return x.permute(self.dims)

        def extra_repr(self):
            return f"dims={self.dims}"

    class Add(nn.Module):
        """Sum of all inputs (residual add)."""

        def forward(self, x, *rest):
            for r in rest:
                x = x + r
            return x

    class Pad(nn.Module):
        """Zero padding of the per-sample axes (``pads``: begins per axis, then ends)."""

        def __init__(self, pads):
            super().__init__()
            nd = len(pads) // 2
            spec = []
            for ax in reversed(range(nd)):
                spec += [int(pads[ax]), int(pads[ax + nd])]
            self.spec = tuple(spec)

        def forward(self, x):
            return F.pad(x, self.spec)

    class PaddedAvgPool(nn.Module):
        """Average pooling with asymmetric zero padding ``(left, right, top, bottom)``."""

        def __init__(self, kernel, stride, pad, count_include_pad, in_shape):
            super().__init__()
            self.kernel, self.stride, self.pad = kernel, stride, tuple(pad)
            ones = torch.ones((1, 1) + tuple(in_shape[1:]))
            count = F.avg_pool2d(F.pad(ones, self.pad), kernel, stride, divisor_override=1)
            if count_include_pad:
                count = torch.full_like(count, float(kernel[0] * kernel[1]))
            self.register_buffer("count", count)

        def forward(self, x):
            s = F.avg_pool2d(F.pad(x, self.pad), self.kernel, self.stride, divisor_override=1)
            return s / self.count

    return {"GraphModule": GraphModule, "Reshape": Reshape, "Slice": Slice, "Add": Add, "Pad": Pad,
            "Concat": Concat, "Transpose": Transpose,
            "PaddedAvgPool": PaddedAvgPool}
