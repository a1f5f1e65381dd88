"""Import a PyTorch ``nn.Module`` into an eventsnn :class:`~eventsnn.graph.Graph`.

:func:`from_torch` traces the module with ``torch.fx`` (symbolic tracing, so ``forward`` may use
modules, ``torch.nn.functional`` calls, tensor methods and operators such as ``out += x``),
runs the traced graph once on an example batch to learn every static shape (a
``torch.fx.Interpreter`` pass like ``ShapeProp`` that also keeps ``x.size()`` values), and
maps each fx node onto the canonical ops of :mod:`eventsnn.graph`.  Parameters become
float32 numpy arrays; the result no longer depends on torch.

Mapping (fx node -> Graph op)
-----------------------------
* ``conv``: ``nn.Conv2d``, ``F.conv2d`` (dilation 1, groups 1, zero padding; ``'same'`` and
  ``'valid'`` resolved, the odd extra pixel of ``'same'`` at the end as in PyTorch).
* ``linear``: ``nn.Linear``, ``F.linear``.
* ``batchnorm``: ``nn.BatchNorm1d/2d``, ``F.batch_norm`` (running statistics).
* ``relu``: ``nn.ReLU``, ``F.relu``, ``torch.relu``, ``x.relu()`` and their in-place forms.
* ``maxpool``: ``nn.MaxPool2d``, ``F.max_pool2d`` (floor mode, dilation 1).
* ``avgpool`` / ``global_avgpool``: ``nn.AvgPool2d``, ``F.avg_pool2d`` (a window covering the
  whole unpadded input becomes ``global_avgpool``).
* ``global_avgpool`` / ``avgpool`` / ``maxpool``: ``nn.AdaptiveAvgPool2d``,
  ``nn.AdaptiveMaxPool2d`` and their functional forms, when the output size divides the input.
* ``global_avgpool`` (+ ``flatten`` without ``keepdim``): ``x.mean((2, 3))``, ``torch.mean``.
* ``flatten`` / ``reshape``: ``nn.Flatten``, ``nn.Unflatten``, ``torch.flatten``, ``view``,
  ``reshape``, ``squeeze``, ``unsqueeze`` (target from the propagated shape).
* ``add``: ``x + y``, ``out += y``, ``torch.add``, ``x.add(y)`` (tensors of equal shape).
* ``pad``: ``F.pad`` (constant 0), ``nn.ZeroPad2d``, ``nn.ConstantPad2d`` with value 0.
* ``slice``: ``x[:, :, ::2, ::2]`` (slices of the per-sample axes, batch axis whole).
* no node (the value is passed on): ``nn.Identity``, ``nn.Dropout*`` and ``F.dropout*`` in
  eval mode, ``contiguous``, ``detach``, ``clone``, ``float``.
* static constants: ``x.size()``, ``x.shape``, ``x.dim()`` and arithmetic on them.

The inverse, :func:`to_torch`, builds an ``nn.Module`` from a Graph (one submodule per node).

Custom modules (e.g. a ``LambdaLayer`` whose ``forward`` calls a lambda, as in the CIFAR
ResNets with option-A shortcuts) are traced through.  The batch axis is axis 0 of every
tensor and must never be mixed with the per-sample axes.
"""

from __future__ import annotations

import copy
import inspect
import operator
import re
import warnings
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from ._refusals import why_not_rate_coded

__all__ = ["from_torch", "to_torch"]

_INPUT = "input"
_CHECK_RTOL = 1e-3

_SUPPORTED = (
    "modules Conv2d (groups, dilation), Linear, BatchNorm1d, BatchNorm2d, ReLU, ReLU6, Hardtanh(0, a), "
    "MaxPool2d, AvgPool2d, AdaptiveAvgPool2d, AdaptiveMaxPool2d, Flatten, Unflatten, ZeroPad2d, "
    "ConstantPad1d/2d/3d(value 0), Dropout*, Identity, Softmax/LogSoftmax on the output; functions F.conv2d, "
    "F.linear, F.batch_norm, F.relu, torch.relu, F.relu6, F.hardtanh(0, a), torch.clamp/clip(0, a), "
    "F.max_pool2d, F.avg_pool2d, F.adaptive_avg_pool2d, F.adaptive_max_pool2d, torch.mean, "
    "torch.flatten, torch.reshape, torch.squeeze, torch.unsqueeze, torch.cat, torch.permute, "
    "torch.add, operator +/+=, x * c, x / c, x - c with constant scalars or per-channel tensors, "
    "F.pad (constant 0), F.dropout* (training=False), tensor[slices]; methods relu, relu_, clamp, add, "
    "add_, mul, div, sub, mean, view, reshape, flatten, permute, squeeze, unsqueeze, contiguous, "
    "detach, clone, float, size, dim"
)
_FALLBACK = ("export the model with torch.onnx.export(model, example_input, 'model.onnx') and "
             "load it with eventsnn.load_onnx('model.onnx')")


def _import_torch():
    try:
        import torch
        import torch.fx  # noqa: F401
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError(
            "eventsnn.from_torch needs PyTorch; install it with `pip install eventsnn[torch]` "
            f"(import failed: {e})"
        ) from e
    return torch


# ---------------------------------------------------------------------------------------
# values flowing through the fx graph
# ---------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Act:
    """A batched activation: produced by Graph node ``name`` with per-sample ``shape``.

    ``base`` is the activation this one is a view of (reshape / slice), ``holders`` the fx
    nodes whose value is this very object (aliases such as Dropout or Identity share it), so
    that in-place ops can redirect every alias at once.  ``reshaped`` is ``(node, source name,
    source shape)`` when Graph node ``node`` is a flatten/reshape, so that a chain of reshapes
    collapses into one.
    """

    name: str
    shape: tuple
    base: "_Act | None" = None
    holders: list = field(default_factory=list)
    reshaped: tuple | None = None


class _Param:
    """A tensor that does not depend on the input (``get_attr`` parameters, buffers)."""

    def __init__(self, tensor):
        self.tensor = tensor


class _TensorMeta:
    """Shape and dtype of an input-dependent tensor, as recorded by shape propagation."""

    def __init__(self, shape, dtype):
        self.shape = tuple(int(s) for s in shape)
        self.dtype = dtype


# argument signatures of the supported callables, bound with inspect to normalise args/kwargs
_SIGNATURES = {
    "conv2d": lambda input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1: None,
    "linear": lambda input, weight, bias=None: None,
    "batch_norm": lambda input, running_mean, running_var, weight=None, bias=None, training=False,
    momentum=0.1, eps=1e-5: None,
    "relu": lambda input, inplace=False: None,
    "relu_": lambda input: None,
    "max_pool2d": lambda input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
    return_indices=False: None,
    "avg_pool2d": lambda input, kernel_size, stride=None, padding=0, ceil_mode=False,
    count_include_pad=True, divisor_override=None: None,
    "adaptive": lambda input, output_size, return_indices=False: None,
    "mean": lambda input, dim=None, keepdim=False, *, dtype=None: None,
    "add": lambda input, other, *, alpha=1, out=None: None,
    "pad": lambda input, pad, mode="constant", value=None: None,
    "dropout": lambda input, p=0.5, training=True, inplace=False: None,
    "hardtanh": lambda input, min_val=-1.0, max_val=1.0, inplace=False: None,
    "relu6": lambda input, inplace=False: None,
    "clamp": lambda input, min=None, max=None, *, out=None: None,
    "cat": lambda tensors, dim=0, *, out=None: None,
    "softmax": lambda input, dim=None, _stacklevel=3, dtype=None: None,
}


def _bind(kind, args, kwargs, where):
    try:
        bound = inspect.signature(_SIGNATURES[kind]).bind(*args, **kwargs)
    except TypeError as e:
        raise ValueError(f"{where}: cannot read the call's arguments ({e})") from None
    bound.apply_defaults()
    return bound.arguments


def _pair(v, what, where):
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return [int(v), int(v)]
    if isinstance(v, (tuple, list)) and len(v) in (1, 2) and all(isinstance(a, (int, np.integer)) for a in v):
        return [int(v[0]), int(v[-1])]
    raise ValueError(f"{where}: {what}={v!r} must be an int or a pair of ints")


# ---------------------------------------------------------------------------------------
# the importer
# ---------------------------------------------------------------------------------------


def _readable_names(nodes, output, expected):
    """Give the anonymous children of an ``nn.Sequential`` (fx names ``_0``, ``_1``, ...) their
    op as a prefix (``conv_0``, ``relu_2``), so layer names in summaries and reports say what
    they are; a name that would clash with an existing one is left as it is."""
    taken = {n.name for n in nodes}
    rename = {}
    for n in nodes:
        new = f"{n.op}{n.name}"
        if re.fullmatch(r"_\d+", n.name) and new not in taken:
            rename[n.name] = new
            taken.add(new)
    if not rename:
        return nodes, output, expected
    nodes = [replace(n, name=rename.get(n.name, n.name),
                                 inputs=tuple(rename.get(i, i) for i in n.inputs)) for n in nodes]
    expected = {rename.get(k, k): v for k, v in expected.items()}
    return nodes, rename.get(output, output), expected


def from_torch(module, example_input, *, check: bool = True):
    """Convert a PyTorch CNN into an eventsnn :class:`~eventsnn.graph.Graph`.

    The module is traced with ``torch.fx.symbolic_trace`` and run once on ``example_input``
    (shape propagation) to resolve every static shape (``view(x.size(0), -1)``, ``-1`` in
    reshapes, pool kernels computed from ``x.size()``).  Batch normalisation uses the running
    statistics, so the Graph computes the inference-mode ANN whose activations the converter
    normalises (paper Eq. 7 folds BN into the preceding layer).

    Parameters
    ----------
    module : torch.nn.Module
        The ANN.  If it (or any submodule) is in training mode, an eval-mode deep copy is
        imported instead and a ``UserWarning`` is issued; ``module`` itself is not modified.
        Parameters of another dtype/device are imported from a float32 CPU copy.
    example_input : torch.Tensor or numpy.ndarray
        A batch ``(B, *input_shape)``, e.g. ``torch.zeros(1, 3, 32, 32)``; only its shape
        matters for the import (its values are used by ``check``).
    check : bool
        If True (default), verify that ``Graph.forward(example_input)`` reproduces
        ``module(example_input)`` (max-abs error relative to the output's max-abs value
        below 1e-3) and raise ``RuntimeError`` otherwise.

    Returns
    -------
    eventsnn.graph.Graph
        Per-sample ``input_shape = example_input.shape[1:]``, input named ``"input"``;
        node names are the fx node names (e.g. ``layer1_0_conv1``); anonymous children of an
        ``nn.Sequential`` get their op as a prefix (``conv_0``, ``relu_2``).

    Raises
    ------
    ImportError
        PyTorch is not installed (``pip install eventsnn[torch]``).
    TypeError
        ``module`` is not an ``nn.Module`` or ``example_input`` is not an array/tensor.
    ValueError
        Tracing failed (data-dependent control flow ...; the message suggests the ONNX
        route), ``example_input`` does not run through the module, or an fx node is not
        supported (the message names the node, its target and the supported set) or is used
        with unsupported settings (``groups != 1``, ``ceil_mode=True``, ...).
    """
    torch = _import_torch()
    from ..graph import Graph

    module, x = _prepare(torch, module, example_input)
    gm = _trace(torch, module)
    values = _propagate(torch, gm, x)
    builder = _Builder(torch, gm, values, batch=x.shape[0])
    nodes, output, expected = builder.build()
    nodes, output, expected = _readable_names(nodes, output, expected)
    graph = Graph(nodes, tuple(x.shape[1:]), output=output, input_name=_INPUT)
    for node in graph.nodes:
        if node.shape != expected[node.name]:  # pragma: no cover - importer invariant
            raise RuntimeError(f"from_torch: internal error: node {node.name!r} has shape "
                               f"{node.shape}, torch computed {expected[node.name]}")
    if check:
        _check_forward(torch, graph, module, x, builder.dropped)
    return graph


def _prepare(torch, module, example_input):
    if not isinstance(module, torch.nn.Module):
        raise TypeError(f"from_torch expects a torch.nn.Module, got {type(module).__name__}")
    if isinstance(example_input, np.ndarray):
        example_input = torch.from_numpy(np.ascontiguousarray(example_input))
    if not isinstance(example_input, torch.Tensor):
        raise TypeError("example_input must be a torch.Tensor or numpy array of shape (B, *input_shape), "
                        f"got {type(example_input).__name__}")
    if example_input.ndim < 2 or example_input.shape[0] < 1 or example_input.numel() == 0:
        raise ValueError(f"example_input has shape {tuple(example_input.shape)}; pass a non-empty batch "
                         "(B, *input_shape) such as torch.zeros(1, 3, 32, 32)")
    x = example_input.detach().to("cpu", torch.float32).clone()
    if not torch.isfinite(x).all():
        raise ValueError("example_input contains NaN or inf values")
    needs_copy = False
    if any(m.training for m in module.modules()):
        warnings.warn(
            f"from_torch: {type(module).__name__} is in training mode; importing an eval-mode copy "
            "(BatchNorm uses its running statistics, Dropout is the identity). Call module.eval() "
            "before from_torch to silence this warning.", UserWarning, stacklevel=3)
        needs_copy = True
    tensors = list(module.parameters()) + list(module.buffers())
    if any(t.is_floating_point() and (t.dtype != torch.float32 or t.device.type != "cpu") for t in tensors):
        needs_copy = True
    if needs_copy:
        module = copy.deepcopy(module).eval().to("cpu", torch.float32)
    return module, x


def _trace(torch, module):
    try:
        return torch.fx.symbolic_trace(module)
    except Exception as e:
        raise ValueError(
            f"from_torch: torch.fx could not trace {type(module).__name__}: {type(e).__name__}: {e}. "
            "Symbolic tracing fails on data-dependent Python control flow (if/for on tensor values, "
            f".item(), len(tensor)); rewrite forward without it, or {_FALLBACK}"
        ) from e


def _propagate(torch, gm, x):
    """Run the traced graph once; record static values and tensor shapes of every fx node.

    This is what ``torch.fx.passes.shape_prop.ShapeProp`` does, except that the non-tensor
    results (``x.size()``, arithmetic on sizes) are kept as well, and a failing node is
    reported in the error instead of printed to stderr.
    """
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        names = [n.name for n in placeholders]
        raise ValueError(f"from_torch supports modules with exactly one input tensor; forward takes "
                         f"{len(placeholders)} ({names})")
    depends = set()
    for n in gm.graph.nodes:
        if n.op == "placeholder" or any(a in depends for a in n.all_input_nodes):
            depends.add(n)
    values = {}

    class _Recorder(torch.fx.Interpreter):
        def run_node(self, n):
            try:
                result = super().run_node(n)
            except Exception as e:
                raise ValueError(
                    f"from_torch: the module does not run on example_input of shape {tuple(x.shape)}: "
                    f"fx node {n.name!r} ({n.op} {getattr(n.target, '__name__', n.target)!s}) raised "
                    f"{type(e).__name__}: {e}") from e
            if n in depends and isinstance(result, torch.Tensor):
                values[n] = _TensorMeta(result.shape, result.dtype)
            else:
                values[n] = result
            return result

    recorder = _Recorder(gm)
    recorder.extra_traceback = False  # our message already names the node
    with torch.no_grad():
        recorder.run(x.clone())
    return values


def _check_forward(torch, graph, module, x, dropped=None):
    with torch.no_grad():
        ref = module(x.clone())
    if not isinstance(ref, torch.Tensor):  # pragma: no cover - build() already refused this
        raise ValueError("from_torch: the module must return a single tensor")
    ref = ref.detach().numpy()
    got = graph.forward(x.numpy()).reshape(ref.shape)
    if dropped is not None:  # compare with the dropped final activation put back
        got = getattr(torch, dropped)(torch.from_numpy(got), dim=-1).numpy()
    scale = max(float(np.abs(ref).max()), 1e-12)
    err = float(np.abs(got - ref).max()) / scale
    if not err < _CHECK_RTOL:
        raise RuntimeError(
            f"from_torch: the imported Graph does not reproduce module(example_input): max-abs error "
            f"{err:.3g} relative to the output scale (tolerance {_CHECK_RTOL}). This usually means "
            "forward mutates tensors in ways torch.fx does not record (in-place ops on a tensor that "
            f"is used again later); rewrite them out of place, or {_FALLBACK}. Pass check=False to "
            "skip this verification.")


class _Builder:
    """Walks the fx graph once, turning each fx node into zero, one or two Graph nodes."""

    def __init__(self, torch, gm, values, batch):
        self.torch = torch
        self.gm = gm
        self.values = values
        self.batch = int(batch)
        self.modules = dict(gm.named_modules())
        self.env = {}
        self.nodes = []
        self.expected = {}
        self.names = {_INPUT}
        self.order = {n: i for i, n in enumerate(gm.graph.nodes)}
        self.current = None
        self.dropped = None  # "softmax" / "log_softmax" when the output's final activation was dropped
        self.by_module, self.by_function, self.by_method = _dispatch_tables(torch)

    # --- driver --------------------------------------------------------------------------

    def build(self):
        output = None
        for n in self.gm.graph.nodes:
            self.current = n
            if n.op == "placeholder":
                self._set(n, _Act(_INPUT, self.values[n].shape[1:]))
            elif n.op == "get_attr":
                self._set(n, _Param(self.values[n]))
            elif n.op == "output":
                output = self._output(n)
            else:
                self._set(n, self._call(n))
        return self._prune(output), output, self.expected

    def _set(self, n, value):
        if isinstance(value, _Act):
            value.holders.append(n)
        self.env[n] = value

    def _output(self, n):
        from torch.fx.node import map_arg

        out = map_arg(n.args[0], lambda a: self.env[a])
        if not isinstance(out, _Act):
            raise ValueError(f"from_torch: forward must return a single tensor that depends on the input; "
                             f"it returns {type(out).__name__} (fx node {n.name!r}). Return only the logits.")
        if out.name == _INPUT:  # the whole module is the identity
            return self._emit("output", "identity", [out], {}, {}, out.shape).name
        return out.name

    def _prune(self, output):
        """Drop nodes the output does not depend on (unused branches of forward)."""
        needed = {output}
        for node in reversed(self.nodes):
            if node.name in needed:
                needed.update(node.inputs)
        return [node for node in self.nodes if node.name in needed]

    def _call(self, n):
        from torch.fx.node import map_arg

        args = map_arg(n.args, lambda a: self.env[a])
        kwargs = map_arg(n.kwargs, lambda a: self.env[a])
        acts = [v for v in _leaves((args, kwargs)) if isinstance(v, _Act)]
        recorded = self.values[n]
        if not isinstance(recorded, _TensorMeta) and not _holds_tensor(self.torch, recorded):
            if not acts or self._is_shape_query(n):
                return recorded  # static python value (sizes, ints, slices, ...)
        if not acts:
            if isinstance(recorded, self.torch.Tensor):
                return _Param(recorded)
            raise self._unsupported(n)
        if not isinstance(recorded, _TensorMeta):
            raise self._unsupported(n, "returns a non-tensor value computed from the input")
        if recorded.dtype not in (self.torch.float32, self.torch.float64, self.torch.float16):
            raise self._unsupported(n, f"produces a {recorded.dtype} tensor")
        if len(recorded.shape) < 1 or recorded.shape[0] != self.batch:
            raise ValueError(f"{self._where(n)}: output shape {recorded.shape} does not keep the batch "
                             f"axis of size {self.batch} first; eventsnn needs per-sample operations")
        handler = self._handler(n)
        if handler is None:
            raise self._unsupported(n)
        return handler(self, n, args, kwargs, recorded.shape[1:])

    def _handler(self, n):
        if n.op == "call_module":
            mod = self.modules[n.target]
            for cls, handler in self.by_module:
                if type(mod) is cls:
                    return handler
            return None
        if n.op == "call_function":
            for fn, handler in self.by_function:
                if n.target is fn:
                    return handler
            return None
        if n.op == "call_method":
            return self.by_method.get(n.target)
        return None

    def _is_shape_query(self, n):
        if n.op == "call_method":
            return n.target in ("size", "dim", "numel", "ndimension", "nelement")
        if n.op == "call_function" and n.target is getattr and len(n.args) == 2:
            return n.args[1] in ("shape", "ndim", "dtype", "device")
        return False

    # --- emitting ------------------------------------------------------------------------

    def _unique(self, name):
        base, k = name, 1
        while name in self.names:
            name = f"{base}_{k}"
            k += 1
        self.names.add(name)
        return name

    def _emit(self, name, op, inputs, attrs, params, shape, base=None):
        from ..graph import Node

        name = self._unique(name)
        params = {k: np.ascontiguousarray(v.detach().cpu().numpy(), dtype=np.float32)
                  for k, v in params.items() if v is not None}
        self.nodes.append(Node(name=name, op=op, inputs=tuple(a.name for a in inputs),
                               attrs=attrs, params=params))
        self.expected[name] = tuple(shape)
        return _Act(name, tuple(shape), base=base)

    def node_op(self, n, op, inputs, attrs, params, shape, base=None):
        """Emit one Graph node named after the fx node."""
        return self._emit(n.name, op, inputs, attrs, params, shape, base)

    def mutate(self, n, act, new):
        """In-place op: every alias of ``act`` now refers to ``new``'s Graph node."""
        related = []
        a = act.base
        while a is not None:
            related.append(a)
            a = a.base
        if any(self._used_later(r) for r in related) or self._has_live_views(act):
            raise ValueError(
                f"{self._where(n)}: in-place operation on a tensor that shares memory with a view "
                "(view/reshape/slice) used later; the importer follows aliases but not views. Use the "
                "out-of-place form (e.g. F.relu(x) instead of x.relu_() / inplace=True).")
        act.name, act.shape = new.name, new.shape
        return act

    def _used_later(self, act):
        me = self.order[self.current]
        return any(self.order[u] > me for h in act.holders for u in h.users)

    def _has_live_views(self, act):
        return any(isinstance(v, _Act) and v is not act and _is_view_of(v, act) and self._used_later(v)
                   for v in self.env.values())

    # --- errors --------------------------------------------------------------------------

    def _where(self, n):
        return f"from_torch: fx node {n.name!r} ({self._target(n)})"

    def _target(self, n):
        if n.op == "call_module":
            mod = self.modules[n.target]
            return f"module {n.target!r} of type {type(mod).__module__}.{type(mod).__name__}"
        if n.op == "call_function":
            mod = {"_operator": "operator", None: ""}.get(getattr(n.target, "__module__", None),
                                                          getattr(n.target, "__module__", ""))
            name = getattr(n.target, "__name__", repr(n.target))
            return f"function {mod + '.' if mod else ''}{name}"
        return f"{n.op} {n.target!r}"

    def _unsupported(self, n, why="is not supported"):
        key = type(self.modules[n.target]).__name__ if n.op == "call_module" else \
            getattr(n.target, "__name__", str(n.target))
        reason = why_not_rate_coded(key)
        if reason is not None and why == "is not supported":
            return ValueError(f"{self._where(n)} cannot be converted: {reason}. Replace it by a ReLU (or "
                              f"ReLU6) and retrain or fine-tune. Supported: {_SUPPORTED}")
        return ValueError(f"{self._where(n)} {why}. Supported: {_SUPPORTED}. Rewrite this part of the "
                            f"model with supported layers, or {_FALLBACK}")

    def refuse(self, n, msg):
        return ValueError(f"{self._where(n)}: {msg}")


def _is_view_of(v, act):
    a = v.base
    while a is not None:
        if a is act:
            return True
        a = a.base
    return False


def _leaves(obj):
    if isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _leaves(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _leaves(o)
    elif isinstance(obj, slice):
        yield from _leaves((obj.start, obj.stop, obj.step))
    else:
        yield obj


def _holds_tensor(torch, value):
    return any(isinstance(v, (torch.Tensor, _TensorMeta)) for v in _leaves(value))


# ---------------------------------------------------------------------------------------
# handlers: (builder, fx node, args, kwargs, per-sample output shape) -> _Act
# ---------------------------------------------------------------------------------------


def _need_act(b, n, value, what="input"):
    if not isinstance(value, _Act):
        raise b.refuse(n, f"{what} must be a tensor computed from the model input, got "
                          f"{type(value).__name__}; constants/parameters are only supported as "
                          "conv/linear/batch-norm weights")
    return value


def _need_param(b, n, value, what):
    if value is None:
        return None
    if not isinstance(value, _Param):
        raise b.refuse(n, f"{what} must be a parameter or constant tensor, not a value computed "
                          "from the input")
    return value.tensor


def _conv(b, n, x, weight, bias, stride, padding, dilation, groups, shape):
    x = _need_act(b, n, x)
    dilation = _pair(dilation, "dilation", b._where(n))
    if len(x.shape) != 3 or weight.ndim != 4:
        raise b.refuse(n, f"only 2-D convolution of (C, H, W) inputs is supported, got input {x.shape}")
    kh, kw = int(weight.shape[2]), int(weight.shape[3])
    if isinstance(padding, str):
        if padding == "valid":
            pads = [0, 0, 0, 0]
        elif padding == "same":
            th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)  # the odd extra pixel goes at the end
            pads = [th // 2, tw // 2, th - th // 2, tw - tw // 2]
        else:
            raise b.refuse(n, f"padding={padding!r} must be 'same', 'valid' or ints")
    else:
        ph, pw = _pair(padding, "padding", b._where(n))
        pads = [ph, pw, ph, pw]
    attrs = {"stride": _pair(stride, "stride", b._where(n)), "padding": pads, "groups": int(groups),
             "dilation": dilation}
    return b.node_op(n, "conv", [x], attrs, {"weight": weight, "bias": bias}, shape)


def _h_conv_module(b, n, args, kwargs, shape):
    m = b.modules[n.target]
    if m.padding_mode != "zeros":
        raise b.refuse(n, f"padding_mode={m.padding_mode!r} is not supported (only 'zeros')")
    (x,) = args
    return _conv(b, n, x, m.weight, m.bias, m.stride, m.padding, m.dilation, m.groups, shape)


def _h_conv_fn(b, n, args, kwargs, shape):
    a = _bind("conv2d", args, kwargs, b._where(n))
    return _conv(b, n, a["input"], _need_param(b, n, a["weight"], "weight"),
                 _need_param(b, n, a["bias"], "bias"), a["stride"], a["padding"], a["dilation"],
                 a["groups"], shape)


def _linear(b, n, x, weight, bias, shape):
    x = _need_act(b, n, x)
    if len(x.shape) != 1:
        raise b.refuse(n, f"Linear is applied to a per-sample tensor of shape {x.shape}; only vectors "
                          "are supported (flatten first, e.g. x.flatten(1))")
    return b.node_op(n, "linear", [x], {}, {"weight": weight, "bias": bias}, shape)


def _h_linear_module(b, n, args, kwargs, shape):
    m = b.modules[n.target]
    return _linear(b, n, args[0], m.weight, m.bias, shape)


def _h_linear_fn(b, n, args, kwargs, shape):
    a = _bind("linear", args, kwargs, b._where(n))
    return _linear(b, n, a["input"], _need_param(b, n, a["weight"], "weight"),
                   _need_param(b, n, a["bias"], "bias"), shape)


def _batchnorm(b, n, x, mean, var, weight, bias, eps, shape):
    torch = b.torch
    x = _need_act(b, n, x)
    if len(x.shape) not in (1, 3):
        raise b.refuse(n, f"batch norm of per-sample shape {x.shape} is not supported; only (C,) "
                          "and (C, H, W)")
    c = x.shape[0]
    weight = torch.ones(c) if weight is None else weight
    bias = torch.zeros(c) if bias is None else bias
    params = {"mean": mean, "var": var, "weight": weight, "bias": bias}
    return b.node_op(n, "batchnorm", [x], {"eps": float(eps)}, params, shape)


def _h_bn_module(b, n, args, kwargs, shape):
    m = b.modules[n.target]
    if m.training:  # pragma: no cover - _prepare imports an eval copy
        raise b.refuse(n, "is in training mode; call module.eval() first")
    if m.running_mean is None or m.running_var is None:
        raise b.refuse(n, "has track_running_stats=False, so it normalises with batch statistics "
                          "even in eval mode; such a layer has no fixed inference form")
    return _batchnorm(b, n, args[0], m.running_mean, m.running_var, m.weight, m.bias, m.eps, shape)


def _h_bn_fn(b, n, args, kwargs, shape):
    a = _bind("batch_norm", args, kwargs, b._where(n))
    if a["training"] or a["running_mean"] is None:
        raise b.refuse(n, "F.batch_norm must use running statistics (training=False)")
    return _batchnorm(b, n, a["input"], _need_param(b, n, a["running_mean"], "running_mean"),
                      _need_param(b, n, a["running_var"], "running_var"),
                      _need_param(b, n, a["weight"], "weight"), _need_param(b, n, a["bias"], "bias"),
                      a["eps"], shape)


def _relu(b, n, x, inplace, shape):
    x = _need_act(b, n, x)
    y = b.node_op(n, "relu", [x], {}, {}, shape)
    return b.mutate(n, x, y) if inplace else y


def _h_relu_module(b, n, args, kwargs, shape):
    return _relu(b, n, args[0], b.modules[n.target].inplace, shape)


def _h_relu_fn(b, n, args, kwargs, shape):
    a = _bind("relu", args, kwargs, b._where(n))
    return _relu(b, n, a["input"], a["inplace"], shape)


def _h_relu_inplace(b, n, args, kwargs, shape):
    a = _bind("relu_", args, kwargs, b._where(n))
    return _relu(b, n, a["input"], True, shape)


def _h_relu_method(b, n, args, kwargs, shape):
    return _relu(b, n, args[0], n.target == "relu_", shape)


def _pool(b, n, op, x, kernel, stride, padding, ceil_mode, shape, count_include_pad=None):
    x = _need_act(b, n, x)
    if ceil_mode:
        raise b.refuse(n, "ceil_mode=True is not supported (floor mode only); use ceil_mode=False, "
                          "or pad explicitly")
    if len(x.shape) != 3:
        raise b.refuse(n, f"2-D pooling needs a (C, H, W) input, got {x.shape}")
    where = b._where(n)
    kernel = _pair(kernel, "kernel_size", where)
    stride = kernel if stride is None or (isinstance(stride, (list, tuple)) and not stride) \
        else _pair(stride, "stride", where)
    ph, pw = _pair(padding, "padding", where)
    if op == "avgpool" and kernel == list(x.shape[1:]) and ph == pw == 0:
        return b.node_op(n, "global_avgpool", [x], {}, {}, shape)
    attrs = {"kernel": kernel, "stride": stride, "padding": [ph, pw, ph, pw]}
    if op == "avgpool":
        attrs["count_include_pad"] = bool(count_include_pad)
    return b.node_op(n, op, [x], attrs, {}, shape)


def _check_dilation(b, n, dilation):
    if _pair(dilation, "dilation", b._where(n)) != [1, 1]:
        raise b.refuse(n, f"dilation={dilation} is not supported for max pooling (only 1)")


def _h_maxpool_module(b, n, args, kwargs, shape):
    m = b.modules[n.target]
    _check_dilation(b, n, m.dilation)
    if m.return_indices:
        raise b.refuse(n, "return_indices=True is not supported")
    return _pool(b, n, "maxpool", args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode, shape)


def _h_maxpool_fn(b, n, args, kwargs, shape):
    a = _bind("max_pool2d", args, kwargs, b._where(n))
    _check_dilation(b, n, a["dilation"])
    if a["return_indices"]:
        raise b.refuse(n, "return_indices=True is not supported")
    return _pool(b, n, "maxpool", a["input"], a["kernel_size"], a["stride"], a["padding"],
                 a["ceil_mode"], shape)


def _avgpool_checks(b, n, divisor_override):
    if divisor_override is not None:
        raise b.refuse(n, f"divisor_override={divisor_override} is not supported")


def _h_avgpool_module(b, n, args, kwargs, shape):
    m = b.modules[n.target]
    _avgpool_checks(b, n, m.divisor_override)
    return _pool(b, n, "avgpool", args[0], m.kernel_size, m.stride, m.padding, m.ceil_mode, shape,
                 m.count_include_pad)


def _h_avgpool_fn(b, n, args, kwargs, shape):
    a = _bind("avg_pool2d", args, kwargs, b._where(n))
    _avgpool_checks(b, n, a["divisor_override"])
    return _pool(b, n, "avgpool", a["input"], a["kernel_size"], a["stride"], a["padding"],
                 a["ceil_mode"], shape, a["count_include_pad"])


def _adaptive(b, n, op, x, shape):
    """Adaptive pooling is a plain pool when the output size divides the input size."""
    x = _need_act(b, n, x)
    if len(x.shape) != 3:
        raise b.refuse(n, f"adaptive 2-D pooling needs a (C, H, W) input, got {x.shape}")
    c, h, w = x.shape
    oh, ow = shape[1], shape[2]
    if (oh, ow) == (h, w):
        return x
    if h % oh or w % ow:
        if op == "avgpool":  # uneven (possibly overlapping) windows: still a linear map
            return b.node_op(n, "adaptive_avgpool", [x], {"output": [oh, ow]}, {}, shape)
        raise b.refuse(n, f"adaptive max pooling from {(h, w)} to {(oh, ow)} uses uneven windows; only "
                          "output sizes that divide the input size are supported")
    if op == "avgpool" and (oh, ow) == (1, 1):
        return b.node_op(n, "global_avgpool", [x], {}, {}, shape)
    k = [h // oh, w // ow]
    attrs = {"kernel": k, "stride": k, "padding": [0, 0, 0, 0]}
    if op == "avgpool":
        attrs["count_include_pad"] = True
    return b.node_op(n, op, [x], attrs, {}, shape)


def _h_adaptive_avg(b, n, args, kwargs, shape):
    return _adaptive(b, n, "avgpool", _adaptive_input(b, n, args, kwargs), shape)


def _h_adaptive_max(b, n, args, kwargs, shape):
    return _adaptive(b, n, "maxpool", _adaptive_input(b, n, args, kwargs), shape)


def _adaptive_input(b, n, args, kwargs):
    if n.op == "call_module":
        if getattr(b.modules[n.target], "return_indices", False):
            raise b.refuse(n, "return_indices=True is not supported")
        return args[0]
    a = _bind("adaptive", args, kwargs, b._where(n))
    if a["return_indices"]:
        raise b.refuse(n, "return_indices=True is not supported")
    return a["input"]


def _h_mean(b, n, args, kwargs, shape):
    a = _bind("mean", args, kwargs, b._where(n))
    x = _need_act(b, n, a["input"])
    dims = a["dim"]
    dims = [dims] if isinstance(dims, int) else list(dims) if dims is not None else None
    if len(x.shape) != 3 or dims is None or sorted(d % 4 for d in dims) != [2, 3]:
        raise b.refuse(n, f"mean over dim={a['dim']} of a per-sample {x.shape} tensor is not supported; "
                          "only the spatial mean x.mean((2, 3)) of (B, C, H, W) tensors (global "
                          "average pooling)")
    y = b.node_op(n, "global_avgpool", [x], {}, {}, (x.shape[0], 1, 1))
    if a["keepdim"]:
        return y
    return b._emit(f"{n.name}_flatten", "flatten", [y], {}, {}, shape)


def _h_reshape(b, n, args, kwargs, shape):
    """view / reshape / flatten / squeeze / unsqueeze: the target is the propagated static shape."""
    x = _need_act(b, n, args[0])
    shape = tuple(shape)
    if shape == x.shape:
        return x
    src = x
    if x.reshaped is not None and x.reshaped[0] == x.name:  # reshape of a reshape: read the source
        src = _Act(x.reshaped[1], x.reshaped[2])
        if shape == src.shape:
            return _Act(src.name, src.shape, base=x)
    if len(shape) == 1:
        y = b.node_op(n, "flatten", [src], {}, {}, shape, base=x)
    else:
        y = b.node_op(n, "reshape", [src], {"shape": list(shape)}, {}, shape, base=x)
    y.reshaped = (y.name, src.name, src.shape)
    return y


def _h_alias(b, n, args, kwargs, shape):
    x = _need_act(b, n, args[0])
    if tuple(shape) != x.shape:  # pragma: no cover - aliases keep the shape
        raise b.refuse(n, f"changes the shape from {x.shape} to {tuple(shape)}")
    return x


def _h_copy(b, n, args, kwargs, shape):
    x = _h_alias(b, n, args, kwargs, shape)
    return _Act(x.name, x.shape)  # same Graph value, but a distinct tensor for in-place ops


def _h_dropout_fn(b, n, args, kwargs, shape):
    a = _bind("dropout", args, kwargs, b._where(n))
    if a["training"]:
        raise b.refuse(n, "functional dropout with training=True is random; pass "
                          "training=self.training and import the model in eval mode")
    return _h_alias(b, n, (a["input"],), {}, shape)


def _add(b, n, x, y, alpha, inplace, shape):
    if not (isinstance(x, _Act) and isinstance(y, _Act)):
        raise b.refuse(n, "only the sum of two tensors computed from the input (a residual add) is "
                          f"supported, got {type(x).__name__} + {type(y).__name__}; biases and "
                          "scalar offsets cannot be converted")
    if alpha != 1:
        raise b.refuse(n, f"torch.add with alpha={alpha} is not supported (only alpha=1)")
    if x.shape != y.shape or tuple(shape) != x.shape:
        raise b.refuse(n, f"adds tensors of per-sample shapes {x.shape} and {y.shape}; broadcasting is "
                          "not supported, both operands must have the same shape")
    z = b.node_op(n, "add", [x, y], {}, {}, shape)
    return b.mutate(n, x, z) if inplace else z


def _h_add(b, n, args, kwargs, shape):
    a = _bind("add", args, kwargs, b._where(n))
    if not (isinstance(a["input"], _Act) and isinstance(a["other"], _Act)):
        return _h_arith(b, n, (a["input"], a["other"]), {"alpha": a["alpha"]}, shape)
    inplace = (n.op == "call_method" and n.target == "add_") or n.target is operator.iadd
    return _add(b, n, a["input"], a["other"], a["alpha"], inplace, shape)


def _pad(b, n, x, pad, shape):
    x = _need_act(b, n, x)
    nd = len(x.shape)
    pad = [int(p) for p in pad]
    if len(pad) % 2 or len(pad) // 2 > nd + 1:
        raise b.refuse(n, f"pad={pad} must hold (begin, end) pairs for at most {nd + 1} axes")
    begin, end = [0] * nd, [0] * nd
    for k in range(len(pad) // 2):  # pairs run from the last axis backwards
        axis = nd - 1 - k
        lo, hi = pad[2 * k], pad[2 * k + 1]
        if axis < 0:
            if lo or hi:
                raise b.refuse(n, f"pad={pad} pads the batch axis; only per-sample axes can be padded")
            continue
        begin[axis], end[axis] = lo, hi
    if min(begin + end) < 0:
        raise b.refuse(n, f"pad={pad} has negative entries (cropping); use slicing instead")
    if not any(begin + end):
        return _Act(x.name, x.shape)
    return b.node_op(n, "pad", [x], {"pads": begin + end}, {}, shape)


def _h_pad_fn(b, n, args, kwargs, shape):
    a = _bind("pad", args, kwargs, b._where(n))
    if a["mode"] != "constant" or a["value"] not in (None, 0, 0.0):
        raise b.refuse(n, f"F.pad with mode={a['mode']!r}, value={a['value']!r} is not supported; only "
                          "constant zero padding")
    return _pad(b, n, a["input"], a["pad"], shape)


def _h_pad_module(b, n, args, kwargs, shape):
    m = b.modules[n.target]
    if float(getattr(m, "value", 0.0)) != 0.0:
        raise b.refuse(n, f"constant padding with value={m.value} is not supported (only 0)")
    return _pad(b, n, args[0], m.padding, shape)


def _h_getitem(b, n, args, kwargs, shape):
    x, index = args
    x = _need_act(b, n, x, "the indexed value")
    index = index if isinstance(index, tuple) else (index,)
    if sum(i is Ellipsis for i in index) > 1:
        raise b.refuse(n, "more than one Ellipsis in an index")
    if Ellipsis in index:
        k = index.index(Ellipsis)
        index = index[:k] + (slice(None),) * (len(x.shape) + 1 - (len(index) - 1)) + index[k + 1:]
    index = index + (slice(None),) * (len(x.shape) + 1 - len(index))
    if len(index) != len(x.shape) + 1 or not all(isinstance(i, slice) for i in index):
        raise b.refuse(n, f"index {args[1]!r} is not supported; only slices (start:stop:step) such as "
                          "x[:, :, ::2, ::2] (no integer, None, boolean or tensor indices)")
    if index[0].indices(b.batch) != (0, b.batch, 1):
        raise b.refuse(n, f"index {args[1]!r} slices the batch axis; keep it whole (x[:, ...])")
    starts, ends, steps = [], [], []
    for sl, size in zip(index[1:], x.shape):
        if sl.step is not None and sl.step < 1:
            raise b.refuse(n, f"negative or zero slice step in {args[1]!r} is not supported")
        start, stop, step = sl.indices(size)
        starts.append(start)
        ends.append(max(stop, start))
        steps.append(step)
    if tuple(shape) == x.shape and all(s == 1 for s in steps):
        return x
    attrs = {"starts": starts, "ends": ends, "steps": steps}
    return b.node_op(n, "slice", [x], attrs, {}, shape, base=x)


def _clip(b, n, x, lo, hi, inplace, shape):
    """Bounded ReLU ``min(max(x, 0), hi)`` (ReLU6, Hardtanh(0, a), clamp(0, a)); ``hi`` None is a ReLU."""
    x = _need_act(b, n, x)
    if lo is None or float(lo) != 0.0 or (hi is not None and not float(hi) > 0):
        raise b.refuse(n, f"clamping to [{lo}, {hi}] is not supported: only a lower bound of 0 (a ReLU) and an "
                          "optional positive upper bound (ReLU6, Hardtanh(0, a)) become spiking neurons; "
                          "spike rates are non-negative")
    if hi is None:
        y = b.node_op(n, "relu", [x], {}, {}, shape)
    else:
        y = b.node_op(n, "clip", [x], {"max": float(hi)}, {}, shape)
    return b.mutate(n, x, y) if inplace else y


def _h_relu6(b, n, args, kwargs, shape):
    if n.op == "call_module":
        return _clip(b, n, args[0], 0.0, 6.0, b.modules[n.target].inplace, shape)
    a = _bind("relu6", args, kwargs, b._where(n))
    return _clip(b, n, a["input"], 0.0, 6.0, a["inplace"], shape)


def _h_hardtanh(b, n, args, kwargs, shape):
    if n.op == "call_module":
        m = b.modules[n.target]
        return _clip(b, n, args[0], m.min_val, m.max_val, m.inplace, shape)
    a = _bind("hardtanh", args, kwargs, b._where(n))
    return _clip(b, n, a["input"], a["min_val"], a["max_val"], a["inplace"], shape)


def _h_clamp(b, n, args, kwargs, shape):
    a = _bind("clamp", args, kwargs, b._where(n))
    if any(isinstance(v, (_Act, _Param)) for v in (a["min"], a["max"])):
        raise b.refuse(n, "clamp with tensor bounds is not supported; use numbers (0 and an upper bound)")
    inplace = n.op == "call_method" and n.target.endswith("_")
    return _clip(b, n, a["input"], a["min"], a["max"], inplace, shape)


def _h_cat(b, n, args, kwargs, shape):
    a = _bind("cat", args, kwargs, b._where(n))
    xs = list(a["tensors"])
    if not xs or not all(isinstance(x, _Act) for x in xs):
        raise b.refuse(n, "torch.cat of constant tensors and activations is not supported; concatenate "
                          "tensors computed from the input only")
    dim = int(a["dim"]) % (len(xs[0].shape) + 1)
    if dim == 0:
        raise b.refuse(n, "concatenation along the batch axis is not supported")
    if len(xs) == 1:
        return xs[0]
    return b.node_op(n, "concat", xs, {"axis": dim - 1}, {}, shape)


def _h_permute(b, n, args, kwargs, shape):
    x = _need_act(b, n, args[0])
    dims = kwargs.get("dims", args[1:])
    dims = list(dims[0]) if len(dims) == 1 and isinstance(dims[0], (list, tuple)) else list(dims)
    rank = len(x.shape) + 1
    dims = [int(d) % rank for d in dims]
    if not dims or dims[0] != 0:
        raise b.refuse(n, f"permute{tuple(dims)} moves the batch axis; keep it first")
    perm = [d - 1 for d in dims[1:]]
    if perm == list(range(len(perm))):
        return x
    return b.node_op(n, "transpose", [x], {"perm": perm}, {}, shape, base=x)


def _per_channel(b, n, c, x):
    """A constant operand (number or tensor) as one value per channel of ``x`` (axis 0), or refuse."""
    arr = np.asarray(c.tensor.detach().cpu().numpy() if isinstance(c, _Param) else c, dtype=np.float64)
    target = (1,) + tuple(x.shape)
    try:
        full = np.broadcast_to(arr, target)[0].reshape(x.shape[0], -1)
    except ValueError:
        raise b.refuse(n, f"constant of shape {arr.shape} does not broadcast to the per-sample shape {x.shape} "
                          "without touching the batch axis") from None
    if not np.all(full == full[:, :1]):
        raise b.refuse(n, f"the constant of shape {arr.shape} varies inside a channel of the {x.shape} input; only "
                          "scalars and per-channel constants (e.g. shape (1, C, 1, 1)) fold into the network")
    return full[:, 0]


def _h_arith(b, n, args, kwargs, shape):
    """x + c, x - c, c - x, x * c, x / c with a constant c: a per-channel affine (like BatchNorm)."""
    name = (n.target if isinstance(n.target, str) else n.target.__name__).rstrip("_")
    kind = {"iadd": "add", "isub": "sub", "imul": "mul", "itruediv": "div", "truediv": "div"}.get(name, name)
    x, y = args[0], args[1] if len(args) > 1 else kwargs.get("other")
    alpha = kwargs.get("alpha", 1)
    if kind in ("add", "sub") and alpha != 1:
        raise b.refuse(n, f"alpha={alpha} is not supported (only alpha=1)")
    if isinstance(x, _Act) and isinstance(y, _Act):
        if kind == "add":
            return _h_add(b, n, args, kwargs, shape)
        raise b.refuse(n, why_not_rate_coded("mul") if kind in ("mul", "div") else
                       "only the sum of two activations (a residual add) is supported")
    act_first = isinstance(x, _Act)
    act, c = (x, y) if act_first else (y, x)
    act = _need_act(b, n, act)
    c = _per_channel(b, n, c, act)
    one, zero = np.ones_like(c), np.zeros_like(c)
    if kind == "add":
        scale, shift = one, c
    elif kind == "sub":
        scale, shift = (one, -c) if act_first else (-one, c)
    elif kind == "mul":
        scale, shift = c, zero
    elif kind == "div" and act_first:
        scale, shift = 1.0 / c, zero
    else:
        raise b.refuse(n, "dividing a constant by an activation is not a linear map and cannot be converted")
    t = b.torch
    params = {"mean": t.zeros(len(c)), "var": t.ones(len(c)), "weight": t.from_numpy(scale.astype(np.float32)),
              "bias": t.from_numpy(shift.astype(np.float32))}
    y = b.node_op(n, "batchnorm", [act], {"eps": 0.0}, params, shape)
    inplace = n.target in (operator.iadd, operator.isub, operator.imul, operator.itruediv) or \
        (n.op == "call_method" and n.target.endswith("_"))
    return b.mutate(n, act, y) if inplace else y


def _h_softmax(b, n, args, kwargs, shape):
    """A softmax / log-softmax on the logits is dropped (monotone: argmax unchanged)."""
    x = _need_act(b, n, args[0])
    if not all(u.op == "output" for u in n.users):
        raise b.refuse(n, f"cannot be converted: {why_not_rate_coded('softmax')}")
    name = type(b.modules[n.target]).__name__ if n.op == "call_module" else getattr(n.target, "__name__", n.target)
    dim = b.modules[n.target].dim if n.op == "call_module" else (args[1] if len(args) > 1 else kwargs.get("dim"))
    if len(x.shape) != 1 or (dim is not None and int(dim) % 2 != 1):
        raise b.refuse(n, "only a softmax over the classes of (B, N) logits can be dropped")
    b.dropped = "log_softmax" if "log" in name.lower() else "softmax"
    warnings.warn(f"from_torch: the final {b.dropped} ({b._where(n)}) is dropped; the imported graph outputs "
                  "the logits (argmax, hence the prediction, is unchanged)", UserWarning, stacklevel=4)
    return x


@lru_cache(maxsize=1)
def _dispatch_tables(torch):
    nn, F = torch.nn, torch.nn.functional
    dropouts = [getattr(nn, name) for name in ("Dropout", "Dropout1d", "Dropout2d", "Dropout3d",
                                               "AlphaDropout", "FeatureAlphaDropout") if hasattr(nn, name)]
    by_module = [
        (nn.Conv2d, _h_conv_module), (nn.Linear, _h_linear_module),
        (nn.BatchNorm1d, _h_bn_module), (nn.BatchNorm2d, _h_bn_module),
        (nn.ReLU, _h_relu_module), (nn.MaxPool2d, _h_maxpool_module),
        (nn.AvgPool2d, _h_avgpool_module), (nn.AdaptiveAvgPool2d, _h_adaptive_avg),
        (nn.AdaptiveMaxPool2d, _h_adaptive_max), (nn.Flatten, _h_reshape), (nn.Unflatten, _h_reshape),
        (nn.ZeroPad2d, _h_pad_module), (nn.ConstantPad2d, _h_pad_module), (nn.Identity, _h_alias),
        (nn.ConstantPad1d, _h_pad_module), (nn.ConstantPad3d, _h_pad_module),
        (nn.ReLU6, _h_relu6), (nn.Hardtanh, _h_hardtanh), (nn.Softmax, _h_softmax),
        (nn.LogSoftmax, _h_softmax),
    ] + [(cls, _h_alias) for cls in dropouts]
    by_function = [
        (F.conv2d, _h_conv_fn), (F.linear, _h_linear_fn), (F.batch_norm, _h_bn_fn),
        (F.relu, _h_relu_fn), (torch.relu, _h_relu_fn), (F.relu_, _h_relu_inplace),
        (torch.relu_, _h_relu_inplace), (F.max_pool2d, _h_maxpool_fn), (torch.max_pool2d, _h_maxpool_fn),
        (F.avg_pool2d, _h_avgpool_fn), (F.adaptive_avg_pool2d, _h_adaptive_avg),
        (F.adaptive_max_pool2d, _h_adaptive_max), (torch.mean, _h_mean),
        (torch.flatten, _h_reshape), (torch.reshape, _h_reshape), (torch.squeeze, _h_reshape),
        (torch.unsqueeze, _h_reshape), (operator.add, _h_add), (operator.iadd, _h_add),
        (torch.add, _h_add), (F.pad, _h_pad_fn), (operator.getitem, _h_getitem),
        (F.dropout, _h_dropout_fn), (F.dropout1d, _h_dropout_fn), (F.dropout2d, _h_dropout_fn),
        (F.dropout3d, _h_dropout_fn), (F.alpha_dropout, _h_dropout_fn),
        (F.feature_alpha_dropout, _h_dropout_fn),
        (F.relu6, _h_relu6), (F.hardtanh, _h_hardtanh), (torch.clamp, _h_clamp), (torch.clip, _h_clamp),
        (torch.cat, _h_cat), (torch.concat, _h_cat), (torch.permute, _h_permute),
        (operator.mul, _h_arith), (operator.imul, _h_arith), (operator.truediv, _h_arith),
        (operator.itruediv, _h_arith), (operator.sub, _h_arith), (operator.isub, _h_arith),
        (torch.mul, _h_arith), (torch.div, _h_arith), (torch.sub, _h_arith),
        (F.softmax, _h_softmax), (F.log_softmax, _h_softmax), (torch.softmax, _h_softmax),
        (torch.log_softmax, _h_softmax),
    ]
    by_method = {
        "relu": _h_relu_method, "relu_": _h_relu_method, "add": _h_add, "add_": _h_add,
        "mean": _h_mean, "view": _h_reshape, "reshape": _h_reshape, "flatten": _h_reshape,
        "squeeze": _h_reshape, "unsqueeze": _h_reshape, "contiguous": _h_alias, "detach": _h_alias,
        "float": _h_alias, "clone": _h_copy, "clamp": _h_clamp, "clip": _h_clamp, "clamp_": _h_clamp,
        "permute": _h_permute, "mul": _h_arith, "div": _h_arith, "sub": _h_arith, "mul_": _h_arith,
        "div_": _h_arith, "sub_": _h_arith, "softmax": _h_softmax, "log_softmax": _h_softmax,
    }
    return by_module, by_function, by_method


# ---------------------------------------------------------------------------------------
# Graph -> torch.nn.Module
# ---------------------------------------------------------------------------------------

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
